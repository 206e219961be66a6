"""The street surface built from a city: kerbs, blocked buildings, the river as a boundary, water in the streets."""

from __future__ import annotations

import numpy as np
import pytest

from gisdata.city import load_city
from gisdata.errors import TwinError
from hydraulics.surface2d import PointSource, TimeSeries
from hydraulics.urban_surface import KERB_M, build_urban_surface


@pytest.fixture(scope="module")
def small_city():
    return load_city("small")


def test_grids_follow_the_city(small_city):
    flat = build_urban_surface(small_city, cell_size_m=5.0, kerb_m=0.0)
    surf = build_urban_surface(small_city, cell_size_m=5.0)
    assert surf.shape == flat.shape and surf.ground.cell_size_m == 5.0
    lowered = flat.ground.values - surf.ground.values
    assert np.allclose(lowered[surf.carriageway], KERB_M) and np.allclose(lowered[~surf.carriageway], 0.0)
    assert 0.05 < surf.carriageway.mean() < 0.4                    # the streets are there, as a share of the city
    assert surf.outside.mean() > 0.03                               # and the buildings block water
    assert not (surf.carriageway & surf.outside).any() and not (surf.river & surf.outside).any()
    water_area = small_city.water.geometry.area.sum()
    assert surf.river.sum() * 25.0 == pytest.approx(water_area, rel=0.1)
    assert (surf.manning[surf.carriageway] < surf.manning[~surf.carriageway & ~surf.outside].min()).all()


def test_water_runs_along_the_street_and_into_the_river(small_city):
    surf = build_urban_surface(small_city, cell_size_m=5.0)
    rows, cols = np.nonzero(surf.carriageway)
    # a carriageway cell away from the river and the grid's edges
    far = [(r, c) for r, c in zip(rows, cols)
           if 20 < r < surf.shape[0] - 20 and 20 < c < surf.shape[1] - 20
           and not surf.river[r - 20:r + 20, c - 20:c + 20].any()]
    r0, c0 = far[len(far) // 2]
    src = PointSource("MH", int(r0), int(c0), TimeSeries([0.0, 900.0, 900.001], [0.3, 0.3, 0.0]))
    model = surf.surface2d(sources=[src])
    model.run_until(1800.0)
    wet = model.max_depth_m > 0.01
    assert wet.sum() > 20
    assert (wet & surf.carriageway).sum() / wet.sum() > 0.7        # the kerbs keep it on the carriageway
    assert not (model.depth_m[surf.outside] > 0).any()              # nothing inside buildings
    assert abs(model.mass_balance().error_rel) < 1e-9


def test_bad_cell_size_is_refused(small_city):
    with pytest.raises(TwinError, match="cell_size_m"):
        build_urban_surface(small_city, cell_size_m=0.0)


def _road_cells(surf, city, road_pos):
    from hydraulics.street_flood import _road_labels
    from hydraulics.urban_surface import LANE_WIDTH_M

    labels = _road_labels(surf, city.roads, LANE_WIDTH_M)
    return labels == road_pos


def test_one_deep_cell_does_not_close_a_street_but_a_flooded_carriageway_does(small_city):
    from hydraulics.street_flood import street_flood

    surf = build_urban_surface(small_city, cell_size_m=5.0)
    roads = small_city.roads
    pos = int(np.argmax(roads["length_m"].to_numpy()))             # the longest segment: many cells
    cells = _road_cells(surf, small_city, pos)
    assert cells.sum() > 10
    puddle = np.zeros(surf.shape)
    puddle[tuple(np.argwhere(cells)[0])] = 1.0                      # one deep cell at a gully
    street = np.where(cells, 0.2, 0.0)                              # 20 cm along the whole carriageway
    flood = street_flood(surf, small_city, [(0.0, puddle), (600.0, street), (1800.0, street), (2400.0, puddle)])
    row = flood.roads.iloc[pos]
    assert row["max_depth_m"] == pytest.approx(0.2)
    assert row["onset_s"] == 600.0 and row["flooded_s"] == pytest.approx(1800.0)
    assert row["closed_to_cars_s"] == pytest.approx(1800.0) and row["closed_s"] == 0.0
    assert row["is_risk_point"] and row["max_flooded_length_m"] > 20.0
    others = flood.roads.drop(index=roads.index[pos])
    assert (others["max_depth_m"] < 0.15).sum() >= len(others) - 6  # only its neighbours at junctions share cells
    assert flood.closures_summary()["roads_closed_all"] == 0
    points = flood.risk_points()
    assert roads.index[pos] in set(points.loc[points.kind == "road", "element_id"])
    only_puddle = street_flood(surf, small_city, [(0.0, puddle), (3600.0, puddle)])
    assert only_puddle.roads.iloc[pos]["max_depth_m"] == 0.0 and not only_puddle.roads["is_risk_point"].any()
    assert flood.districts["share_closed_to_cars"].max() > 0


def test_a_surcharging_manhole_makes_its_street_a_risk_point(small_city):
    from hydraulics.street_flood import street_flood

    surf = build_urban_surface(small_city, cell_size_m=5.0)
    rows, cols = np.nonzero(surf.carriageway)
    mid = len(rows) // 2
    src = PointSource("MH", int(rows[mid]), int(cols[mid]), TimeSeries([0.0, 1800.0, 1800.001], [0.5, 0.5, 0.0]))
    model = surf.surface2d(sources=[src])
    snaps = []
    for t in np.arange(0.0, 3601.0, 300.0):
        model.run_until(float(t))
        snaps.append((float(t), model.depth_m.copy()))
    flood = street_flood(surf, small_city, snaps, threshold_m=0.05)
    points = flood.risk_points()
    roads_hit = points.loc[points.kind == "road", "element_id"]
    assert len(roads_hit) >= 1 and set(points["kind"]) <= {"road", "sag", "entrance"}
    # the segment the manhole sits on is among them, and it was flooded within minutes
    from hydraulics.street_flood import _road_labels
    from hydraulics.urban_surface import LANE_WIDTH_M
    own = small_city.roads.index[_road_labels(surf, small_city.roads, LANE_WIDTH_M)[rows[mid], cols[mid]]]
    assert own in set(roads_hit)
    assert flood.roads.loc[own, "onset_s"] <= 600.0
    assert model.mass_balance().to_river_m3 > 0                    # what ran off went to the river, not onto a map


def test_an_underpass_is_a_dip_of_the_street_surface(small_city):
    """The generator's underpass comes through the resampling: its carriageway dips by about its depth."""
    from hydraulics.street_flood import _road_labels
    from hydraulics.urban_surface import FINE_CELL_M, LANE_WIDTH_M

    roads = small_city.roads
    under = roads.index[roads["sag"] == "underpass"]
    assert len(under) >= 1
    for cell in (10.0, FINE_CELL_M):
        surf = build_urban_surface(small_city, cell_size_m=cell)
        labels = _road_labels(surf, roads, LANE_WIDTH_M)
        for rid in under:
            z = surf.ground.values[labels == roads.index.get_loc(rid)]
            assert z.max() - z.min() >= 0.8 * roads.loc[rid, "sag_depth_m"], (rid, cell)


def test_water_in_an_underpass_makes_a_sag_risk_point(small_city):
    """Water standing at the bottom of an underpass: a sag risk point (its deepest water) even while less
    than 20 m of the carriageway is under water, so the segment is not closed yet."""
    from hydraulics.street_flood import _road_labels, street_flood
    from hydraulics.urban_surface import LANE_WIDTH_M

    surf = build_urban_surface(small_city, cell_size_m=10.0)
    roads = small_city.roads
    rid = roads.index[roads["sag"] == "underpass"][0]
    cells = np.argwhere(_road_labels(surf, roads, LANE_WIDTH_M) == roads.index.get_loc(rid))
    low = cells[np.argmin(surf.ground.values[cells[:, 0], cells[:, 1]])]
    pond = np.zeros(surf.shape)
    pond[low[0], low[1]] = 0.4
    dry = np.zeros(surf.shape)
    flood = street_flood(surf, small_city, [(0.0, dry), (600.0, pond), (1800.0, pond), (2400.0, dry)])
    row = flood.roads.loc[rid]
    assert row["sag"] == "underpass" and row["sag_max_depth_m"] == pytest.approx(0.4)
    assert row["sag_onset_s"] == 600.0 and row["is_sag_risk_point"]
    assert row["max_depth_m"] < 0.15 and not row["is_risk_point"]     # one cell: the road stays open
    points = flood.risk_points()
    assert points[points["kind"] == "sag"]["element_id"].tolist() == [rid]
    assert flood.closures_summary()["roads_closed_cars_at_sags"] == 0
    assert flood.roads.loc[roads["sag"] == "", "sag_max_depth_m"].isna().all()
    brief = street_flood(surf, small_city, [(0.0, pond), (300.0, dry)])  # 5 min: deep, but not for long
    assert not brief.roads["is_sag_risk_point"].any() and brief.roads.loc[rid, "sag_max_depth_m"] == 0.4
