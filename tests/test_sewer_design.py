"""Sewer designer (gisdata.sewer_design): layout, hydraulics, rational method, subcatchments, bad input."""

from __future__ import annotations

import math

import geopandas as gpd
import networkx as nx
import numpy as np
import pytest
import shapely
from scipy.spatial import cKDTree

from gisdata.errors import CRSError, EmptyDataError
from gisdata.idf import DEFAULT_IDF
from gisdata.raster import Raster
from gisdata.schema import validate_layer
from gisdata.sewer_design import (
    COMMERCIAL_DIAMETERS_M,
    INLET_TIME_MIN,
    MANNING_N,
    MIN_COVER_M,
    DesignInputError,
    SewerDesign,
    design_sewer,
    full_flow_capacity_cms,
    min_slope,
    runoff_coefficient,
)
from gisdata.synth import generate_city


@pytest.fixture(scope="module")
def small_city():
    return generate_city("small")


@pytest.fixture(scope="module")
def design(small_city) -> SewerDesign:
    """The designer run directly on the small city's streets, buildings and DEM (no synth post-processing)."""
    outfalls = small_city.nodes[small_city.nodes["node_type"] == "outfall"].geometry
    return design_sewer(small_city.roads, small_city.dem, buildings=small_city.buildings,
                        outfall_candidates=outfalls, return_period_yr=3.0, seed=1)


def _tree(design: SewerDesign) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(design.nodes.index)
    g.add_edges_from(zip(design.conduits["from_node"], design.conduits["to_node"]))
    return g


def test_layers_follow_the_schema(design):
    for layer in ("nodes", "conduits", "subcatchments"):
        gdf = getattr(design, layer)
        assert validate_layer(gdf, layer).equals(gdf), layer


def test_network_is_a_forest_draining_to_outfalls(design):
    g = _tree(design)
    nodes = design.nodes
    outfalls = set(nodes.index[nodes["node_type"] == "outfall"])
    assert outfalls and nx.is_directed_acyclic_graph(g)
    for node in nodes.index[nodes["node_type"] == "junction"]:
        assert g.out_degree(node) == 1, node  # one way down from every manhole
        assert nx.descendants(g, node) & outfalls, f"{node} does not reach an outfall"
    assert all(g.out_degree(o) == 0 and g.in_degree(o) == 1 for o in outfalls)


def test_pipes_fall_downhill_with_cover_and_min_slope(design):
    nodes, c = design.nodes, design.conduits
    up = nodes.loc[c["from_node"], "invert_elev_m"].to_numpy() + c["in_offset_m"].to_numpy()
    down = nodes.loc[c["to_node"], "invert_elev_m"].to_numpy() + c["out_offset_m"].to_numpy()
    slope = (up - down) / c["length_m"].to_numpy()
    assert (slope > 0).all()
    need = np.array([min_slope(d) for d in c["diameter_m"]])
    assert (slope >= need - 2e-4).all()  # inverts are rounded to the mm
    rim_up = nodes.loc[c["from_node"], "rim_elev_m"].to_numpy()
    assert (rim_up - (up + c["diameter_m"].to_numpy()) >= MIN_COVER_M - 2e-3).all()
    assert (nodes["max_depth_m"] > 0).all()
    assert (c["in_offset_m"] >= 0).all() and (c["out_offset_m"] >= 0).all()


def test_diameters_are_commercial_and_never_shrink_downstream(design):
    c = design.conduits
    assert c["diameter_m"].isin(COMMERCIAL_DIAMETERS_M).all()
    assert (c["roughness_n"] == MANNING_N).all()
    d_out = dict(zip(c["from_node"], c["diameter_m"]))
    for _, pipe in c.iterrows():
        if pipe["to_node"] in d_out:
            assert d_out[pipe["to_node"]] >= pipe["diameter_m"]


def test_rational_method_sizes_one_pipe(design):
    """Recompute Q = psi * i(tc, P) * A for the largest non-outfall pipe from its upstream subcatchments."""
    nodes, c, subs = design.nodes, design.conduits, design.subcatchments
    inner = c[nodes.loc[c["to_node"], "node_type"].to_numpy() == "junction"]
    pipe = inner.loc[inner["drained_area_m2"].idxmax()]
    g = _tree(design)
    upstream = nx.ancestors(g, pipe["from_node"]) | {pipe["from_node"]}
    drained = subs[subs["outlet_node"].isin(upstream)]
    assert pipe["drained_area_m2"] == pytest.approx(drained["area_m2"].sum(), rel=1e-6)
    ca = float((drained["area_m2"] * runoff_coefficient(drained["imperv_pct"])).sum())
    assert pipe["tc_min"] > INLET_TIME_MIN  # pipe travel time upstream adds to the inlet time
    q = ca * DEFAULT_IDF.intensity_mm_h(pipe["tc_min"], 3.0) / 3.6e6
    assert pipe["design_flow_cms"] == pytest.approx(q, rel=2e-3, abs=1e-4)
    # Manning full-flow capacity at the pipe's own slope carries it ...
    assert pipe["full_flow_cms"] == pytest.approx(full_flow_capacity_cms(pipe["diameter_m"], pipe["slope"]), rel=1e-3)
    assert pipe["full_flow_cms"] >= pipe["design_flow_cms"]
    # ... and the next size down would not (unless the pipes above already are this size).
    k = COMMERCIAL_DIAMETERS_M.index(pipe["diameter_m"])
    biggest_above = c.loc[c["to_node"] == pipe["from_node"], "diameter_m"].max()
    if k > 0 and not biggest_above >= pipe["diameter_m"]:
        smaller = COMMERCIAL_DIAMETERS_M[k - 1]
        assert full_flow_capacity_cms(smaller, max(pipe["slope"], min_slope(smaller))) < pipe["design_flow_cms"] * 1.5


def test_manning_capacity_is_analytic():
    # Q = (1/n) A R^(2/3) S^(1/2) for a full 1 m pipe at 0.1 %: A = pi/4, R = 0.25 m.
    expected = (math.pi / 4) * 0.25 ** (2 / 3) * math.sqrt(0.001) / 0.013
    assert full_flow_capacity_cms(1.0, 0.001) == pytest.approx(expected, rel=1e-12)


def test_subcatchments_cover_the_built_area(design, small_city):
    subs = design.subcatchments
    covered = shapely.union_all(subs.geometry.values)
    footprints = small_city.buildings.geometry
    share = footprints.intersection(covered).area.sum() / footprints.area.sum()
    assert share > 0.98
    assert np.allclose(subs["area_m2"], subs.area, rtol=1e-6)
    assert subs["imperv_pct"].between(5, 95).all() and subs["slope_pct"].between(0.3, 15).all()
    assert (subs["width_m"] > 0).all()
    junctions = design.nodes[design.nodes["node_type"] == "junction"]
    assert subs["outlet_node"].isin(junctions.index).all()
    # Each piece drains to the manhole nearest to it (Voronoi split of the blocks).
    pts = shapely.get_coordinates(subs.geometry.representative_point().values)
    nearest = junctions.index[cKDTree(shapely.get_coordinates(junctions.geometry.values)).query(pts)[1]]
    assert (nearest == subs["outlet_node"].to_numpy()).mean() > 0.97


def test_outfalls_are_the_candidates(design, small_city):
    given = small_city.nodes[small_city.nodes["node_type"] == "outfall"].geometry
    got = design.nodes[design.nodes["node_type"] == "outfall"].geometry
    d, _ = cKDTree(shapely.get_coordinates(given.values)).query(shapely.get_coordinates(got.values))
    assert (d < 1e-6).all()


def test_same_seed_same_design(small_city, design):
    outfalls = small_city.nodes[small_city.nodes["node_type"] == "outfall"].geometry
    again = design_sewer(small_city.roads, small_city.dem, buildings=small_city.buildings,
                         outfall_candidates=outfalls, return_period_yr=3.0, seed=1)
    for layer in ("nodes", "conduits", "subcatchments"):
        assert getattr(again, layer).equals(getattr(design, layer)), layer


def test_tiny_city_without_candidates_drains_to_its_low_edge(tiny_city):
    d = design_sewer(tiny_city.roads, tiny_city.dem)
    outfalls = d.nodes[d.nodes["node_type"] == "outfall"]
    assert len(outfalls) >= 1
    # The plane falls eastwards: the outfall is at the east end, below every manhole.
    junctions = d.nodes[d.nodes["node_type"] == "junction"]
    assert outfalls.geometry.x.min() >= junctions.geometry.x.max() - 1.0
    assert d.nodes.loc[outfalls.index, "invert_elev_m"].max() < junctions["invert_elev_m"].min()
    # 80 m streets with 60 m spacing: one intermediate manhole per street.
    assert (junctions.shape[0]) > tiny_city.nodes.shape[0] - 1


def test_higher_return_period_gives_bigger_pipes(small_city):
    two = design_sewer(small_city.roads, small_city.dem, return_period_yr=2.0)
    ten = design_sewer(small_city.roads, small_city.dem, return_period_yr=10.0)
    assert (ten.conduits["diameter_m"].to_numpy() >= two.conduits["diameter_m"].to_numpy()).all()
    assert ten.conduits["diameter_m"].sum() > two.conduits["diameter_m"].sum()


def test_bad_input_raises_typed_errors(tiny_city):
    with pytest.raises(CRSError, match="DEM is in"):
        design_sewer(tiny_city.roads, Raster(tiny_city.dem.values, tiny_city.dem.transform, "EPSG:32651"))
    with pytest.raises(EmptyDataError):
        design_sewer(tiny_city.roads.iloc[:0], tiny_city.dem)
    with pytest.raises(DesignInputError, match="manhole_spacing_m"):
        design_sewer(tiny_city.roads, tiny_city.dem, manhole_spacing_m=0)
    with pytest.raises(DesignInputError, match="return_period_yr"):
        design_sewer(tiny_city.roads, tiny_city.dem, return_period_yr=-1)


def test_roads_are_not_mutated(tiny_city):
    roads = tiny_city.roads.copy()
    design_sewer(tiny_city.roads, tiny_city.dem, buildings=tiny_city.buildings)
    assert tiny_city.roads.equals(roads)
    assert isinstance(tiny_city.roads, gpd.GeoDataFrame)


@pytest.fixture(scope="module")
def pbf_city(shared_data):
    from gisdata.osm import import_osm

    return import_osm(shared_data / "gis" / "pyrosm" / "test.osm.pbf")


def test_without_candidates_outfalls_are_low_and_pipes_fall_to_them(pbf_city):
    """test.osm.pbf has no water: the fallback DEM rises 0.5 % northwards from the southern edge.

    The outfalls must be on the low (southern) side, never on the high northern edge
    with trunks running uphill to them.
    """
    nodes, c = pbf_city.nodes, pbf_city.conduits
    outfalls = nodes.index[nodes["node_type"] == "outfall"]
    assert len(outfalls) >= 1
    low_rims = nodes["rim_elev_m"].quantile(0.2)
    assert (nodes.loc[outfalls, "rim_elev_m"] <= low_rims).all(), nodes.loc[outfalls, "rim_elev_m"].to_dict()
    up = nodes.loc[c["from_node"], "invert_elev_m"].to_numpy() + c["in_offset_m"].to_numpy()
    down = nodes.loc[c["to_node"], "invert_elev_m"].to_numpy() + c["out_offset_m"].to_numpy()
    assert (down <= up + 2e-3).all()  # inverts are rounded to the mm
    # On a plane every manhole stands above the outfall it drains to: no route climbs to its outfall.
    g = _tree(pbf_city)
    for o in outfalls:
        upstream = list(nx.ancestors(g, o))
        assert nodes.loc[upstream, "rim_elev_m"].min() >= nodes.loc[o, "rim_elev_m"] - 0.25, o
