"""Synthetic city generator (gisdata.synth): determinism, sizes, schema, plausibility."""

from __future__ import annotations

import time

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely

from gisdata.city import load_city
from gisdata.errors import UnknownPresetError
from gisdata.presets import DEFAULT_SEEDS, bundled_demo_path
from gisdata.schema import DEPARTMENTS, LAYER_NAMES, LAYERS
from gisdata.synth import ORIGIN, PRESET_SPECS, generate_city
from gisdata.terrain import generate_terrain


@pytest.fixture(scope="module")
def small():
    t0 = time.perf_counter()
    city = generate_city("small", seed=DEFAULT_SEEDS["small"])
    return city, time.perf_counter() - t0


@pytest.fixture(scope="module")
def demo():
    return generate_city("demo")


def _terrain_of(preset: str, seed: int):
    """The terrain is the generator's first draw, so the same seed reproduces it."""
    spec = PRESET_SPECS[preset]
    return generate_terrain(np.random.default_rng(seed), x0=ORIGIN[0], y0=ORIGIN[1], width_m=spec.size_m,
                            height_m=spec.size_m, crs="EPSG:32650", n_basins=spec.n_basins)


def test_same_seed_gives_identical_city(small):
    again = generate_city("small", seed=DEFAULT_SEEDS["small"])
    assert again.equals(small[0])


def test_different_seed_gives_different_city(small):
    other = generate_city("small", seed=DEFAULT_SEEDS["small"] + 1)
    assert not other.equals(small[0])
    assert len(other.nodes) != len(small[0].nodes) or not other.nodes.geometry.geom_equals(small[0].nodes.geometry).all()


def test_small_preset_size_and_speed(small):
    city, seconds = small
    s = city.summary()
    assert 150 <= s["manholes"] <= 300, s
    assert seconds < 10.0, f"small city took {seconds:.1f} s"
    assert city.crs == "EPSG:32650"
    xmin, ymin, *_ = city.extent
    assert (xmin, ymin) == ORIGIN


def test_demo_preset_size(demo):
    s = demo.summary()
    assert 800 <= s["manholes"] <= 1500, s
    assert 2.8 <= s["size_km"][0] <= 3.5 and 2.8 <= s["size_km"][1] <= 3.5
    assert s["outfalls"] >= 4
    assert s["residents"] > 50_000


def test_unknown_preset_is_a_typed_error():
    with pytest.raises(UnknownPresetError, match="unknown city preset 'huge'"):
        generate_city("huge")


def test_every_layer_follows_its_schema(small):
    city = small[0]
    for name in LAYER_NAMES:
        gdf = getattr(city, name)
        schema = LAYERS[name]
        assert len(gdf) > 0, name
        assert gdf.index.name == schema.index and gdf.index.is_unique, name
        assert list(gdf.columns[: len(schema.columns)]) == schema.column_names, name
        assert gdf.geometry.is_valid.all() and gdf.geometry.geom_type.isin(schema.geometry).all(), name


def test_services_are_complete(small):
    city = small[0]
    assert set(city.depots["department"]) == set(DEPARTMENTS)
    assert (city.depots["n_crews"] > 0).all()
    gauges = city.sensors[city.sensors["sensor_type"] == "rain_gauge"]
    levels = city.sensors[city.sensors["sensor_type"] == "water_level"]
    assert len(gauges) >= 1 and len(levels) >= 3
    assert levels["node_id"].isin(city.nodes.index[city.nodes["node_type"] == "junction"]).all()
    assert len(city.vendor_sites) > 0 and city.vendor_sites["attractiveness"].between(0, 1).all()
    # The management grid tiles the built-up area without overlaps.
    cells = city.districts.geometry
    assert abs(cells.area.sum() - shapely.union_all(cells.values).area) < 1.0


def test_road_graph_matches_geometry(small):
    roads = small[0].roads
    start = shapely.get_coordinates(shapely.get_point(roads.geometry.values, 0))
    end = shapely.get_coordinates(shapely.get_point(roads.geometry.values, -1))
    position = {}
    for node, xy in zip(list(roads["from_node"]) + list(roads["to_node"]), np.vstack([start, end])):
        assert np.allclose(position.setdefault(node, xy), xy), node
    assert np.allclose(roads["length_m"], roads.length)
    graph = nx.from_pandas_edgelist(roads, "from_node", "to_node")
    assert nx.is_connected(graph)  # bridges join the two banks
    assert set(roads["road_class"]) <= {"arterial", "collector", "local"}


def test_roads_cross_the_river_only_on_bridges(demo):
    terrain = _terrain_of("demo", DEFAULT_SEEDS["demo"])
    crossing = demo.roads[demo.roads.intersects(terrain.river)]
    assert len(crossing) > 0
    assert (crossing["road_class"] == "arterial").all()
    bridges = shapely.get_parts(shapely.union_all(crossing.geometry.intersection(terrain.river).values))
    assert len(bridges) <= PRESET_SPECS["demo"].n_bridges


def test_buildings_sit_in_blocks_off_the_streets(small):
    city = small[0]
    assert not city.buildings.intersects(shapely.union_all(city.roads.geometry.values)).any()
    assert city.buildings["height_m"].between(2.5, 200).all()
    assert (city.buildings["height_source"] == "synthetic").all()
    res = city.buildings[city.buildings["use"] == "residential"]
    assert (res["residents"] > 0).mean() > 0.95


def test_outfalls_sit_on_the_river_banks(demo):
    terrain = _terrain_of("demo", DEFAULT_SEEDS["demo"])
    outfalls = demo.nodes[demo.nodes["node_type"] == "outfall"]
    assert (outfalls.distance(terrain.river) < 10.0).all()
    # ... and the river is the lowest ground of the map.
    junctions = demo.nodes[demo.nodes["node_type"] == "junction"]
    assert outfalls["rim_elev_m"].min() < junctions["rim_elev_m"].min()


def test_sewers_do_not_cross_the_river(demo):
    terrain = _terrain_of("demo", DEFAULT_SEEDS["demo"])
    assert not demo.conduits.intersects(terrain.river).any()
    assert not demo.nodes.intersects(terrain.river).any()


def test_dem_has_closed_basins(demo):
    from scipy import ndimage

    terrain = _terrain_of("demo", DEFAULT_SEEDS["demo"])
    z = demo.dem.values
    cut = z != terrain.dem.values  # the sags, and only they, lower the generated terrain
    assert cut.any() and (z[cut] < terrain.dem.values[cut]).all()
    assert cut.sum() < 0.02 * z.size
    for basin in terrain.basins:
        c = basin.centroid
        r, col = demo.dem.index_of(c.x, c.y)
        window = z[max(r - 40, 0): r + 41, max(col - 40, 0): col + 41]
        # The basin centre is a local minimum of a 10 m-smoothed DEM within +-400 m ... almost: allow 0.5 m of noise.
        assert ndimage.uniform_filter(z, 3)[r, col] <= window.min() + 0.5 or z[r, col] < np.median(window) - 0.5


def test_bundled_demo_is_up_to_date(demo):
    if not bundled_demo_path().exists():
        pytest.fail(f"{bundled_demo_path()} missing: run `python -m gisdata.build_demo`")
    bundled = load_city("demo")
    assert bundled.equals(demo), "gisdata/data/demo.gpkg is stale: run `python -m gisdata.build_demo`"


def test_sags_are_marked_on_the_roads_and_cut_into_the_ground(demo):
    """Underpasses (1.5-3 m) and low crossings (0.6-1.1 m) away from the river, each over a manhole whose
    rim follows the cut ground and whose design water level stays below the floor (it drains up to the
    design storm)."""
    from gisdata.sewer_design import SAG_FREEBOARD_M

    terrain = _terrain_of("demo", DEFAULT_SEEDS["demo"])
    roads = demo.roads
    spec = PRESET_SPECS["demo"]
    assert set(roads["sag"]) == {"", "underpass", "low_crossing"}
    assert ((roads["sag"] == "") == (roads["sag_depth_m"] == 0)).all()
    under = roads[roads["sag"] == "underpass"]
    low = roads[roads["sag"] == "low_crossing"]
    assert len(under) == spec.n_underpasses and under["road_class"].isin(["arterial", "collector"]).all()
    assert under["sag_depth_m"].between(1.5, 3.0).all() and low["sag_depth_m"].between(0.6, 1.1).all()
    assert low["sag_depth_m"].nunique() == spec.n_low_crossings  # one depth per crossing, 3+ arms each
    assert len(low) >= 3 * spec.n_low_crossings
    assert (roads.loc[roads["sag"] != ""].distance(terrain.river) > 100).all()  # never a bridge
    # each sag's low point is a manhole with its rim on the cut ground, as deep as its sag
    junctions = demo.nodes[demo.nodes["node_type"] == "junction"]
    ground = demo.dem.sample(junctions.geometry.x.to_numpy(), junctions.geometry.y.to_numpy())
    assert np.allclose(junctions["rim_elev_m"], ground, atol=1e-3)
    natural = terrain.dem.sample(junctions.geometry.x.to_numpy(), junctions.geometry.y.to_numpy())
    lowered = natural - junctions["rim_elev_m"].to_numpy()
    for _, road in pd.concat([under, low]).iterrows():
        on_road = junctions.distance(road.geometry).to_numpy() < 1.0
        assert on_road.any() and lowered[on_road].max() == pytest.approx(road["sag_depth_m"], abs=0.02)
    # no pipe crown rises into a sag: the sewer dips under it where its cover would be too thin
    inv = demo.nodes["invert_elev_m"]
    crown_up = inv.loc[demo.conduits["from_node"]].to_numpy() + demo.conduits["in_offset_m"] + demo.conduits["diameter_m"]
    assert (demo.nodes.loc[demo.conduits["from_node"], "rim_elev_m"].to_numpy() - crown_up >= 0.3 - 1e-6).all()
    assert 0 < SAG_FREEBOARD_M < 0.5


def test_sags_leave_the_rest_of_the_city_as_it_was(small, monkeypatch):
    """Sags draw from their own random stream and only cut the ground and move rims down: the same seed
    without sags has the same streets, buildings, depots, vendors and sewer layout (water-level sensors
    watch the lowest rims, so some move to the sags)."""
    from dataclasses import replace

    import gisdata.synth as synth

    city = small[0]
    flat_spec = replace(PRESET_SPECS["small"], n_underpasses=0, n_low_crossings=0)
    monkeypatch.setitem(synth.PRESET_SPECS, "small", flat_spec)
    flat = generate_city("small", seed=DEFAULT_SEEDS["small"])
    assert (flat.roads["sag"] == "").all() and (city.roads["sag"] != "").any()
    assert city.roads.geometry.geom_equals(flat.roads.geometry).all()
    for layer in ("buildings", "depots", "vendor_sites", "subcatchments"):
        assert getattr(city, layer).equals(getattr(flat, layer)), layer
    assert city.nodes.index.equals(flat.nodes.index) and city.nodes.geometry.geom_equals(flat.nodes.geometry).all()
    moved = city.nodes["rim_elev_m"] != flat.nodes["rim_elev_m"]
    assert 0 < moved.sum() < 0.1 * len(moved) and (city.nodes["rim_elev_m"] <= flat.nodes["rim_elev_m"]).all()
    assert city.conduits["diameter_m"].equals(flat.conduits["diameter_m"])
    assert city.sensors.index.equals(flat.sensors.index)
