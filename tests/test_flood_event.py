"""The flood event library (twin.flood_event) and its map layers, with real SWMM runs in their own process.

One event on the tiny city (a 50-year, 60-minute Chicago storm; five of its
six manholes spill onto the street) is run once per module on the coupled
sewer and street model: the street holds what the manholes spilled less what
went back, road states follow their thresholds, and every table uses the
city's IDs.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from hydraulics.build import ModelBuildError
from hydraulics.errors import SwmmError
from hydraulics.rainfall import RainFileError, RainSeries
from hydraulics.surface import ROAD_STATUSES
from conftest import make_tiny_city
from twin import flood_event as fe


@pytest.fixture(scope="module")
def city():
    return make_tiny_city()


@pytest.fixture(scope="module")
def storm():
    return fe.StormSpec("chicago", return_period_yr=50, duration_min=60).build()


@pytest.fixture(scope="module")
def event(city, storm):
    seen: list[fe.FloodProgress] = []
    result = fe.run_flood_event(city, storm, drain_time_h=1.0, progress=seen.append, cell_size_m=5.0)
    return result, seen


def test_coupled_event_balances_its_water(event, city):
    result, _ = event
    s = result.summary
    spilled = float(result.flood_summary["volume_m3"].sum())
    assert s["flooded_nodes"] == 5 and spilled > 100  # the storm really floods the tiny city
    assert s["flood_volume_m3"] == pytest.approx(spilled) == pytest.approx(s["to_surface_m3"])
    # The street holds what the manholes spilled minus what the gullies took back and what left it.
    mb = result.mass_balance.iloc[-1]
    assert s["surface_volume_m3"] == pytest.approx(
        s["to_surface_m3"] - s["to_network_m3"] - mb["boundary_out_m3"] - mb["bank_to_river_m3"], rel=1e-9)
    # ... and the last depth frame is that water, cell by cell (float32 frames).
    last = result.depths.depth_m[-1].astype(float).sum() * result.depths.cell_size_m ** 2
    assert last == pytest.approx(s["surface_volume_m3"], rel=1e-4)
    # The coupled system's books: SWMM's own routing error on the tiny city is ~1 %, and it is most of it.
    assert abs(s["mass_balance_error_rel"]) < 0.02 and abs(s["flow_routing_error_pct"]) < 2
    assert s["max_surface_depth_m"] == pytest.approx(float(result.depth.values.max()))
    assert 0.05 < s["max_surface_depth_m"] < 2.0
    assert s["surface_cell_m"] > 0 and "2D street surface" in result.metadata["surface"]


def test_hydrographs_match_the_exchange(event):
    result, _ = event
    vol = result.node_flood_volume_m3
    assert (vol.diff().dropna() >= -1e-9).all().all()  # cumulative spill never falls
    final = vol.iloc[-1]
    fs = result.flood_summary
    # The series nets each interval's spill and take-back; the summary counts every m3 that spilled.
    assert (final[fs.index] <= fs["volume_m3"] + 1e-6).all() and (final[fs.index] > 0.5 * fs["volume_m3"]).all()
    assert (final.drop(fs.index) == 0).all()
    # A manhole spills only when its head stands above its rim; the 5-minute samples catch most of them there.
    flooded = result.nodes.loc[fs.index]
    assert (flooded["peak_depth_m"] > flooded["max_depth_m"]).sum() >= 3
    assert (result.node_flooding_cms[fs.index].max() > 0).all()
    worst = result.worst_node
    assert worst == fs["volume_m3"].idxmax()
    h = result.hydrograph(worst)
    assert list(h.columns) == ["depth_m", "flooding_cms", "flood_volume_m3"]
    assert h.index.is_monotonic_increasing and h.index[0] == 0
    # Snapshots every report step (5 min) through rain (60 min) and drain time (1 h), plus the start.
    assert len(h) == 25 and h.index[-1] == pytest.approx(120, abs=0.5)
    with pytest.raises(KeyError, match="'nope'"):
        result.hydrograph("nope")


def test_road_closures_follow_the_thresholds(event, city):
    result, _ = event
    roads = result.roads
    car_m, all_m = roads.attrs["car_m"], roads.attrs["all_m"]
    assert (car_m, all_m) == (0.15, 0.30)
    expected = np.where(roads["depth_m"] >= all_m, "closed",
                        np.where(roads["depth_m"] >= car_m, "closed_to_cars", "open"))
    assert roads["status"].astype(str).tolist() == expected.tolist()
    assert list(roads["status"].cat.categories) == list(ROAD_STATUSES)
    # Effective carriageway depths: water on the roads, never deeper than the deepest street cell.
    assert (roads["depth_m"] > 0.02).any()
    assert (roads["depth_m"] <= result.summary["max_surface_depth_m"] + 1e-9).all()
    s = result.summary
    assert s["roads_closed"] == int((roads["status"] == "closed").sum())
    assert s["roads_closed_to_cars"] == int((roads["status"] == "closed_to_cars").sum())
    assert (result.buildings["depth_m"] >= 0.10).all()


def test_result_ids_line_up_with_the_city(event, city):
    result, _ = event
    node_ids = city.nodes.index.astype(str).tolist()
    for table in (result.node_depth_m, result.node_flooding_cms, result.node_flood_volume_m3):
        assert table.columns.tolist() == node_ids
        assert table.index.equals(result.node_depth_m.index)
        assert table.notna().all().all()
    assert sorted(result.nodes.index) == sorted(node_ids)
    assert set(result.flood_summary.index) <= set(node_ids)
    assert result.roads.index.tolist() == city.roads.index.tolist()
    assert set(result.buildings.index) <= set(city.buildings.index)
    assert result.depth.shape == result.depths.shape
    assert tuple(result.depth.transform) == tuple(result.depths.transform) and result.depth.crs == city.crs
    assert result.city_name == city.name
    # Nodes sorted worst first: flood volume descending.
    vols = result.nodes["flood_volume_m3"].to_numpy()
    assert (np.diff(vols) <= 0).all()


def test_progress_runs_through_the_stages_in_order(event):
    _, seen = event
    stages = [p.stage for p in seen]
    assert stages[0] == "build" and stages[-1] == "done"
    order = [fe.STAGES.index(s) for s in stages]
    assert order == sorted(order)
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    runs = [p for p in seen if p.stage == "run"]
    assert len(runs) >= 2  # the run reports back while it runs (at most every 0.2 s of wall time)
    assert runs[-1].simulated_s == pytest.approx(runs[-1].total_s)
    assert len(seen) < 120  # throttled to about one call per percent


def test_result_pickles(event):
    result, _ = event
    back = pickle.loads(pickle.dumps(result))
    assert back.summary == result.summary and back.depth.equals(result.depth)
    pd.testing.assert_frame_equal(back.node_depth_m, result.node_depth_m)


def test_engine_runs_in_its_own_process(city, monkeypatch):
    """The event runs even while this process's engine is busy (it never uses it)."""
    import hydraulics.run

    monkeypatch.setattr(hydraulics.run, "_ACTIVE", True)
    rain = fe.StormSpec("block", intensity_mm_h=5.0, duration_min=30).build()
    result = fe.run_flood_event(city, rain, drain_time_h=0.5, coupling_step_s=300)
    assert result.summary["flooded_nodes"] == 0 and result.summary["max_surface_depth_m"] == 0.0
    assert (result.roads["status"] == "open").all()
    assert len(result.node_depth_m) == 13  # the start and 60 min of 5-minute snapshots
    assert result.node_depth_m.max().max() > 0  # but water did flow in the pipes


def test_errors_reach_the_caller(city):
    from gisdata.errors import TwinError

    two_gauges = RainSeries(pd.DataFrame({"A": [10.0, 20.0], "B": [5.0, 5.0]}, index=[0, 300]), step_s=300)
    with pytest.raises(ModelBuildError, match="rain gauges"):
        fe.run_flood_event(city, two_gauges)
    with pytest.raises(fe.FloodEventError, match="coupling_step_s"):
        fe.run_flood_event(city, two_gauges, coupling_step_s=0)
    with pytest.raises(fe.FloodEventError, match="boundary='sea'"):
        fe.run_flood_event(city, two_gauges, boundary="sea")
    # An error raised in the worker comes back with its type and message.
    rain = fe.StormSpec("block", intensity_mm_h=5.0, duration_min=30).build()
    with pytest.raises(TwinError, match="cell"):
        fe.run_flood_event(city, rain, cell_size_m=-5)


def test_storm_specs_and_keys(storm):
    assert storm.max_depth_mm > 50 and storm.duration_s == 3600
    block = fe.StormSpec("block", intensity_mm_h=30, duration_min=60).build()
    assert block.max_depth_mm == pytest.approx(30.0)
    nrcs = fe.StormSpec("nrcs", depth_mm=100, nrcs_type="II", step_min=6).build()
    assert nrcs.max_depth_mm == pytest.approx(100.0) and nrcs.duration_s == 86400
    with pytest.raises(fe.FloodEventError, match="kind='hurricane'"):
        fe.StormSpec("hurricane")
    k = fe.flood_event_key("preset:small", storm, drain_time_h=2.0)
    assert k == fe.flood_event_key("preset:small", storm, drain_time_h=2.0)
    assert k != fe.flood_event_key("preset:demo", storm, drain_time_h=2.0)
    assert k != fe.flood_event_key("preset:small", block, drain_time_h=2.0)
    assert k != fe.flood_event_key("preset:small", storm, drain_time_h=1.0)
    assert fe.rain_key(storm) == fe.rain_key(fe.StormSpec("chicago", return_period_yr=50, duration_min=60).build())


def test_read_rain_upload_names_the_uploaded_file():
    good = b"time,RG1\n2024-07-01 00:00,0\n2024-07-01 00:05,12\n2024-07-01 00:10,6\n"
    rain = fe.read_rain_upload("obs.csv", good, units="mm_h")
    assert rain.step_s == 300 and rain.gauges == ["RG1"] and rain.max_depth_mm == pytest.approx(1.5)
    bad = b"time,RG1\n2024-07-01 00:00,0\n2024-07-01 00:05,lots\n"
    with pytest.raises(RainFileError) as info:
        fe.read_rain_upload("obs.csv", bad, units="mm_h")
    assert str(info.value).startswith("obs.csv:3: column 'RG1'")
    assert "citytwin-rain-" not in str(info.value)


# ----------------------------------------------------------------------------- viz


def test_flood_deck_layers(event, city):
    from twin.viz.flood_layers import STATUS_RGB, depth_rgba, flood_deck, flood_legend_html

    result, _ = event
    deck = flood_deck(city, result, lang="zh")
    ids = [layer.id for layer in deck.layers]
    assert ids == ["terrain", "buildings", "road_status", "flood_depth", "flooded_nodes"]  # water above the roads
    assert deck.to_json().count("__MAP_STYLE__") == 1  # style left unset: Streamlit draws no basemap (None fetches CARTO)
    spec = deck.to_json()
    assert "data:image/png;base64," in spec and "mapbox" not in spec.lower()
    roads = next(layer for layer in deck.layers if layer.id == "road_status").data
    assert len(roads) == len(city.roads)
    status_of = dict(zip(result.roads.index, result.roads["status"].astype(str)))
    closed = [r["color"] for r in roads if r["color"] in (STATUS_RGB["closed"], STATUS_RGB["closed_to_cars"])]
    assert len(closed) == sum(s != "open" for s in status_of.values())
    wet = [r["color"] for r in roads if r["color"] == STATUS_RGB["wet"]]  # open, but 5 cm or more of water
    depth_of = result.roads["depth_m"]
    assert len(wet) == int(((depth_of >= 0.05) & (result.roads["status"].astype(str) == "open")).sum())
    nodes = next(layer for layer in deck.layers if layer.id == "flooded_nodes").data
    assert len(nodes) == result.summary["flooded_nodes"]
    rgba = depth_rgba(result.depth)
    wet = result.depth.values >= 0.02
    assert rgba.shape == (*result.depth.shape, 4)
    assert (rgba[..., 3][~wet] == 0).all() and (rgba[..., 3][wet] > 0).all()
    legend = flood_legend_html(result, lang="zh")
    assert "禁止机动车" in legend


def test_charts_and_static_map(event, city, tmp_path):
    from PIL import Image

    from twin.viz.flood_layers import hydrograph_chart, rain_chart, write_flood_png

    result, _ = event
    chart = hydrograph_chart(result, result.worst_node, lang="en").to_dict()
    assert chart["resolve"]["scale"]["y"] == "independent"
    assert rain_chart(result.rain, lang="zh").to_dict()["mark"]["type"] == "rect"
    png = write_flood_png(city, result, tmp_path / "flood.png")
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    assert img.shape[0] > 500
    # Blue water is drawn: pixels whose blue channel clearly dominates red.
    assert ((img[..., 2] - img[..., 0]) > 60).sum() > 1000


def test_flood_scene_has_a_water_surface(event, city):
    from twin.viz.scene import build_city_scene

    result, _ = event
    pl = build_city_scene(city, flood_depth=result.depth, window_size=(400, 300))
    try:
        assert "water" in pl.actors
        _, hi = pl._citytwin_info.ranges["depth_m"]
        assert hi == pytest.approx(result.summary["max_surface_depth_m"], rel=1e-6)
    finally:
        pl.close()
