"""Routing on the road graph: travel times, closures, trees."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agents.errors import RoutingError
from agents.gridcity import make_grid_city
from agents.routing import RoadGraph


def line_graph() -> RoadGraph:
    roads = pd.DataFrame({"from_node": ["a", "b", "a"], "to_node": ["b", "c", "c"],
                          "length_m": [100.0, 100.0, 1000.0], "speed_kmh": [36.0, 36.0, 36.0]},
                         index=pd.Index(["r1", "r2", "r3"], name="road_id"))
    return RoadGraph(roads, node_xy={"a": (0, 0), "b": (100, 0), "c": (200, 0)})


def test_travel_time_is_length_over_speed():
    g = line_graph()
    assert g.travel_time("a", "b") == pytest.approx(10.0)       # 100 m at 10 m/s
    assert g.travel_time("a", "c") == pytest.approx(20.0)       # via b, not the 1 km road
    assert g.travel_time("c", "a") == pytest.approx(20.0)       # symmetric


def test_closed_road_forces_detour_and_reopens():
    g = line_graph()
    g.apply_closures({"r2": "closed"})
    assert g.travel_time("a", "c") == pytest.approx(100.0)      # the 1 km road
    assert g.path("a", "c") == [g.node_index["a"], g.node_index["c"]]
    g.apply_closures({"r2": "closed", "r3": "closed"})
    assert np.isinf(g.travel_time("a", "c"))
    g.apply_closures(None)
    assert g.travel_time("a", "c") == pytest.approx(20.0)


def test_closed_to_cars_is_slowed_not_removed():
    g = line_graph()
    g.apply_closures(pd.DataFrame({"road_id": ["r1"], "status": ["closed_to_cars"]}))
    # r1 at 10 km/h: 100 m / 2.78 m/s = 36 s, plus r2 10 s; the detour r3 takes 100 s
    assert g.travel_time("a", "c") == pytest.approx(100 / (10 / 3.6) + 10.0)
    assert g.closures().loc["r1", "status"] == "closed_to_cars"


def test_closure_bumps_version_and_clears_cache():
    g = line_graph()
    before = g.travel_times_from("c").copy()
    v = g.version
    g.apply_closures({"r1": "closed"})
    assert g.version == v + 1
    assert not np.array_equal(before, g.travel_times_from("c"))


def test_bad_closures_are_named():
    g = line_graph()
    with pytest.raises(RoutingError, match="r99"):
        g.apply_closures({"r99": "closed"})
    with pytest.raises(RoutingError, match="flooded"):
        g.apply_closures({"r1": "flooded"})


def test_bad_roads_are_named():
    roads = pd.DataFrame({"from_node": ["a"], "to_node": ["b"], "length_m": [10.0], "speed_kmh": [0.0]},
                         index=pd.Index(["r1"], name="road_id"))
    with pytest.raises(RoutingError, match="r1"):
        RoadGraph(roads, node_xy={"a": (0, 0), "b": (1, 0)})
    with pytest.raises(RoutingError, match="speed_kmh"):
        RoadGraph(roads.drop(columns="speed_kmh"), node_xy={"a": (0, 0), "b": (1, 0)})


def test_grid_matches_manhattan_distance(tiny_city):
    city = make_grid_city(5, 5, spacing_m=100.0, arterial_every=100)  # all locals but row/col 0 at 50 km/h
    g = RoadGraph.from_city(city)
    a, b = g.node_index["N001_001"], g.node_index["N004_003"]
    # all interior roads are 30 km/h locals: 5 blocks x 100 m at 8.33 m/s
    assert g.travel_time(a, b) == pytest.approx(500 / (30 / 3.6))
    tiny = RoadGraph.from_city(tiny_city)
    assert tiny.n_nodes == 7 and np.isfinite(tiny.travel_times_from("J0")).all()


def test_tree_passes_matches_explicit_paths():
    city = make_grid_city(6, 6)
    g = RoadGraph.from_city(city)
    roots = np.array([0, 17, 35])
    trees = g.free_flow_trees(roots)
    rng = np.random.default_rng(0)
    for _ in range(30):
        k = int(rng.integers(len(roots)))
        h = int(rng.integers(g.n_nodes))
        path = set(g.path(h, int(roots[k])))
        on = [n for n in range(g.n_nodes) if trees.passes(np.array([k]), np.array([h]), n)[0]]
        assert set(on) == path
        assert trees.time_s[k, h] == pytest.approx(g.travel_time(h, int(roots[k])))


def test_travel_time_matrix_shape_and_values():
    g = RoadGraph.from_city(make_grid_city(4, 4))
    m = g.travel_time_matrix([0, 1, 2], [5, 6])
    assert m.shape == (3, 2)
    assert m[1, 0] == pytest.approx(g.travel_time(1, 5))


def test_accepts_the_hydraulics_closure_table_shape():
    # hydraulics.surface.road_closures: index road_id, depth_m, ordered categorical status
    g = line_graph()
    table = pd.DataFrame({"depth_m": [0.05, 0.2, 0.5],
                          "status": pd.Categorical(["open", "closed_to_cars", "closed"],
                                                   categories=["open", "closed_to_cars", "closed"], ordered=True)},
                         index=pd.Index(["r1", "r2", "r3"], name="road_id"))
    g.apply_closures(table)
    assert g.closures()["status"].to_dict() == {"r2": "closed_to_cars", "r3": "closed"}
    assert g.travel_time("a", "c") == pytest.approx(10.0 + 100 / (10 / 3.6))
