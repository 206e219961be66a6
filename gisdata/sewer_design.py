"""Design a storm-sewer network under a street network: layout, sizing, subcatchments.

The designer is what a drainage engineer would sketch for a new district, and it
is shared by the synthetic city generator and the OSM importer:

1. **Layout.** Manholes sit at the street junctions and every
   ``manhole_spacing_m`` along the streets.  Each junction drains along the
   street graph to an outfall by the cheapest route, where going uphill (which
   forces the pipe deeper) and crossing a channel (a river under a bridge) are
   penalised.  The routes form a spanning forest: one tree per outfall, every
   manhole with exactly one outgoing pipe.
2. **Subcatchments.** Blocks (the polygons the streets enclose) are split
   among the manholes by Voronoi cells; each piece drains to its manhole.
   Imperviousness comes from building and road coverage, slope from the DEM.
3. **Sizing.** From the top of each tree down, the rational method
   ``Q = psi * i * A`` gives the design flow, with ``i`` from the IDF at the time
   of concentration (inlet time + pipe travel time at the flood-wave celerity)
   for ``return_period_yr``; at a confluence ``Q`` is at least the sum of the
   branches' design flows.  Each pipe takes the smallest commercial diameter
   whose full-flow Manning capacity carries it, never smaller than the pipes
   above it.  Pipes keep a minimum cover and a minimum slope, follow the ground
   where it falls faster (up to a 3 m/s full-flow velocity; drop manholes take
   the rest), and line up crown-to-crown at manholes.

Calibration against SWMM
------------------------
The constants :data:`RUNOFF_COEFFICIENTS`, :data:`INLET_TIME_MIN`,
:data:`WAVE_CELERITY_FACTOR` and :data:`ADD_BRANCH_PEAKS` were checked against
dynamic-wave runs of the model :mod:`hydraulics.build` writes, under Chicago
storms of the same IDF (demo city, pipes sized for 3 years): under the 2-year
storm SWMM's peak flows are 0.7-0.9 of the design flows, from the smallest
branches to the trunks.  With textbook values (psi 0.9/0.2, 10 min inlet time,
travel time at the water velocity) the same 2-year peaks reached 0.85-1.25 of
the design flows, the largest in the trunks, and a 20-year storm flooded half
the manholes of the demo city instead of a few tens.

Closed depressions of the DEM thus get deep pipes and low manhole rims: they are
where a storm larger than the design storm comes out first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

from gisdata.errors import CRSError, TwinError
from gisdata.idf import DEFAULT_IDF, ChineseIDF
from gisdata.raster import Raster
from gisdata.schema import validate_layer

COMMERCIAL_DIAMETERS_M = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.35, 1.5, 1.65, 1.8, 2.0, 2.2, 2.4,
                          2.6, 2.8, 3.0, 3.2, 3.5)
"""Inside diameters of commercial reinforced-concrete pipes, m (GB/T 11836 series, 300-3500 mm)."""

MANNING_N = 0.013
"""Manning roughness of concrete pipes, s/m^(1/3)."""

MIN_COVER_M = 1.5
"""Minimum soil cover above the pipe crown, m (frost and traffic loads)."""

INLET_TIME_MIN = 5.0
"""Surface inlet time added to the pipe travel time, min (GB 50014: 5-15 min; 5-8 in dense districts)."""

MAX_VELOCITY_M_S = 3.0
"""Largest full-flow velocity, m/s: on steeper ground the pipe runs flatter and drop
manholes take up the difference (GB 50014 allows 5 m/s in concrete; 3 m/s is
common practice against scour and to keep head in reserve for surcharge)."""

WAVE_CELERITY_FACTOR = 1.5
"""Pipe travel time uses the flood-wave celerity, this many times the full-flow velocity.

A peak travels down a pipe faster than the water (kinematic celerity about
1.5 times the mean velocity in a part-full circular pipe); timing it with the
water velocity overstates the time of concentration of large trees and
undersizes their trunks (GB 50014-2014 dropped the old "m = 2" pipe-storage
factor for the same reason)."""

ADD_BRANCH_PEAKS = True
"""At a confluence, design for at least the sum of the branches' design flows.

The plain rational method takes the longest time of concentration at a
confluence and so a lower intensity; when a fast branch joins a slow one the
peaks still coincide under a short intense storm (the "partial area" effect),
and SWMM shows trunk peaks near the sum of the branch peaks."""

UPHILL_COST_M_PER_M = 300.0
"""Route cost of one metre of rise against the flow, in metres of pipe."""

CHANNEL_DEPTH_THRESHOLD_M = 1.5
"""A street whose ground dips this far below both ends crosses a channel (a bridge), m."""

EXCLUDED_ROAD_CLASSES = ("motorway", "path", "service")
"""Road classes with no storm sewer (unless nothing else is left)."""

RUNOFF_COEFFICIENTS = {"impervious": 0.95, "pervious": 0.45}
"""Runoff coefficients psi of impervious and pervious surfaces in a design storm, dimensionless.

Upper values of GB 50014 for roofs and pavements; for the pervious part, the
share that runs off at the peak of a 2-5 year storm on compacted urban soil
(with the Horton parameters of :mod:`hydraulics.build`, infiltration has decayed
to ~15 mm/h by the peak, when intensities exceed 100 mm/h).  The textbook
0.10-0.20 of lawns is a volumetric coefficient for light rain; with it the
pipes come out about 25 % smaller than the peak flows SWMM computes for the
same storm.
"""


class DesignInputError(TwinError, ValueError):
    """A design parameter is out of range (e.g. a negative manhole spacing)."""


def min_slope(diameter_m: float) -> float:
    """Minimum pipe slope for self-cleansing, m/m (GB 50014 practice, 0.003 at 300 mm)."""
    return float(np.interp(diameter_m, [0.3, 0.6, 1.0, 1.5, 2.4], [0.003, 0.0015, 0.001, 0.0007, 0.0005]))


def max_velocity_slope(diameter_m: float, n: float = MANNING_N) -> float:
    """Slope at which a full pipe flows at :data:`MAX_VELOCITY_M_S`, m/m (never below :func:`min_slope`)."""
    return max((MAX_VELOCITY_M_S * n / (diameter_m / 4) ** (2 / 3)) ** 2, min_slope(diameter_m))


def full_flow_capacity_cms(diameter_m: float, slope: float, n: float = MANNING_N) -> float:
    """Manning full-flow capacity of a circular pipe, m^3/s.

    Examples
    --------
    >>> round(full_flow_capacity_cms(0.6, 0.002), 3)
    0.275
    """
    area = math.pi * diameter_m**2 / 4
    return area * (diameter_m / 4) ** (2 / 3) * math.sqrt(max(slope, 0.0)) / n


def runoff_coefficient(imperv_pct):
    """Rational-method runoff coefficient psi from imperviousness in %, dimensionless."""
    f = np.asarray(imperv_pct, dtype=float) / 100.0
    return RUNOFF_COEFFICIENTS["impervious"] * f + RUNOFF_COEFFICIENTS["pervious"] * (1 - f)


@dataclass(frozen=True)
class SewerDesign:
    """A designed sewer network.

    Parameters
    ----------
    nodes : geopandas.GeoDataFrame
        Manholes and outfalls (``nodes`` schema).
    conduits : geopandas.GeoDataFrame
        Circular pipes (``conduits`` schema) plus the design figures:
        ``slope`` (m/m), ``design_flow_cms`` (rational-method flow, m^3/s),
        ``full_flow_cms`` (Manning capacity, m^3/s), ``drained_area_m2`` and
        ``tc_min`` (time of concentration at the upstream end, min).
    subcatchments : geopandas.GeoDataFrame
        Areas draining to one manhole (``subcatchments`` schema) plus ``block_id``.
    """

    nodes: gpd.GeoDataFrame
    conduits: gpd.GeoDataFrame
    subcatchments: gpd.GeoDataFrame


def design_sewer(
    roads: gpd.GeoDataFrame,
    dem: Raster,
    *,
    buildings: gpd.GeoDataFrame | None = None,
    outfall_candidates: gpd.GeoSeries | None = None,
    idf: ChineseIDF = DEFAULT_IDF,
    return_period_yr: float = 2.0,
    manhole_spacing_m: float = 60.0,
    seed: int = 0,
) -> SewerDesign:
    """Lay out and size a storm-sewer forest under ``roads``, draining to outfalls.

    Parameters
    ----------
    roads : geopandas.GeoDataFrame
        Street segments (``roads`` schema: ``from_node``, ``to_node``,
        ``length_m``, ``road_class``, ``lanes``), in a projected CRS in metres.
        Classes in :data:`EXCLUDED_ROAD_CLASSES` get no sewer.
    dem : Raster
        Ground elevation, m, in the same CRS.
    buildings : geopandas.GeoDataFrame, optional
        Footprints; they raise imperviousness and extend the drained area to
        buildings outside the street blocks.  Without them 25 % building cover
        is assumed.
    outfall_candidates : geopandas.GeoSeries, optional
        Points where pipes may discharge (e.g. on a river bank).  Each is tied
        to the nearest street junction within ``max(300 m, 5 * spacing)``.
        Default: low points of the network's outer boundary that are also low
        overall (:data:`LOW_OUTFALL_BAND`); small street components wholly
        above that band then get no sewer.
    idf : ChineseIDF
        Rainfall intensity formula for the rational method.
    return_period_yr : float
        Design return period, years (2-3 is usual for Chinese city streets).
    manhole_spacing_m : float
        Largest distance between manholes along a street, m.
    seed : int
        Breaks ties between equally cheap routes (regular grids have many).

    Returns
    -------
    SewerDesign

    Raises
    ------
    EmptyDataError
        If ``roads`` is empty.
    CRSError
        If ``roads`` and ``dem`` are in different CRSs.
    DesignInputError
        If a numeric parameter is out of range (also a ``ValueError``).

    Examples
    --------
    >>> import sys; sys.path.insert(0, "tests")
    >>> from conftest import make_tiny_city
    >>> city = make_tiny_city()
    >>> d = design_sewer(city.roads, city.dem, buildings=city.buildings)
    >>> bool((d.nodes["node_type"] == "outfall").any())
    True
    """
    if not manhole_spacing_m > 0:
        raise DesignInputError(f"manhole_spacing_m={manhole_spacing_m} must be > 0")
    if not return_period_yr > 0:
        raise DesignInputError(f"return_period_yr={return_period_yr} must be > 0")
    roads = validate_layer(roads, "roads", source="design_sewer: roads", allow_empty=False)
    crs = roads.crs.to_string()
    from pyproj import CRS

    if not CRS.from_user_input(dem.crs).equals(CRS.from_user_input(crs)):
        raise CRSError(f"design_sewer: roads are in {crs} but the DEM is in {dem.crs}; expected one CRS")
    rng = np.random.default_rng(seed)

    graph = _street_graph(roads, min_edge_m=max(10.0, 0.25 * manhole_spacing_m))
    z = dem.sample(graph.xy[:, 0], graph.xy[:, 1])
    outfalls = _attach_outfalls(graph, z, outfall_candidates, manhole_spacing_m)
    graph = _drop_high_strays(graph, z, outfalls)
    downstream, outfalls, reached = _drainage_forest(graph, z, dem, outfalls, rng)
    net = _place_manholes(graph, downstream, outfalls, reached, manhole_spacing_m)
    rim = dem.sample(net.xy[:, 0], net.xy[:, 1])
    subs = _subcatchments(net, roads, buildings, dem, crs)
    sized = _size_pipes(net, rim, subs, idf, return_period_yr)
    return _assemble(net, rim, sized, subs, crs)


# ----------------------------------------------------------------------------- street graph


@dataclass(frozen=True)
class _StreetGraph:
    xy: np.ndarray          # (n_nodes, 2) junction coordinates, m
    u: np.ndarray           # edge start node index
    v: np.ndarray           # edge end node index
    length: np.ndarray      # edge length, m
    geoms: np.ndarray       # edge LineStrings, oriented u -> v


def _as_linestring(geom):
    if geom.geom_type == "LineString":
        return geom
    merged = shapely.line_merge(geom)
    if merged.geom_type == "LineString":
        return merged
    parts = shapely.get_parts(merged)
    return shapely.linestrings([shapely.get_coordinates(parts[0])[0], shapely.get_coordinates(parts[-1])[-1]])


def _street_graph(roads: gpd.GeoDataFrame, *, min_edge_m: float) -> _StreetGraph:
    """Street junctions and segments as arrays, short segments contracted.

    Segments shorter than ``min_edge_m`` (slivers of noding, dual carriageway
    joints) are contracted so no pipe is uselessly short; this keeps the
    dynamic-wave routing stable at a coarse step.
    """
    keep = ~roads["road_class"].isin(EXCLUDED_ROAD_CLASSES)
    if keep.any():
        roads = roads[keep]
    geoms = np.array([_as_linestring(g) for g in roads.geometry.values], dtype=object)
    ids, inv = np.unique(np.concatenate([roads["from_node"].to_numpy(str), roads["to_node"].to_numpy(str)]),
                         return_inverse=True)
    n_edges = len(roads)
    u, v = inv[:n_edges], inv[n_edges:]
    start = shapely.get_coordinates(shapely.get_point(geoms, 0))
    end = shapely.get_coordinates(shapely.get_point(geoms, -1))
    xy = np.full((len(ids), 2), np.nan)
    xy[v] = end
    xy[u] = start  # a node's position: the start of a segment leaving it, else the end of one arriving
    length = shapely.length(geoms)

    # Contract short edges (union-find by connected components of the short ones).
    short = (length < min_edge_m) & (u != v)
    if short.any():
        m = coo_matrix((np.ones(short.sum()), (u[short], v[short])), shape=(len(ids), len(ids)))
        _, label = connected_components(m, directed=False)
        # Representative of each group: its lowest index, which keeps its own position.
        rep = np.full(label.max() + 1, len(ids))
        np.minimum.at(rep, label, np.arange(len(ids)))
        u, v = rep[label[u]], rep[label[v]]
    ok = u != v
    u, v, length, geoms = u[ok], v[ok], length[ok], geoms[ok]
    # Parallel segments: keep the shortest of each node pair.
    a, b = np.minimum(u, v), np.maximum(u, v)
    order = np.lexsort((length, b, a))
    first = np.ones(len(order), bool)
    first[1:] = (a[order][1:] != a[order][:-1]) | (b[order][1:] != b[order][:-1])
    sel = order[first]
    used = np.unique(np.concatenate([u[sel], v[sel]]))
    remap = np.full(len(ids), -1)
    remap[used] = np.arange(len(used))
    return _StreetGraph(xy=xy[used], u=remap[u[sel]], v=remap[v[sel]], length=length[sel], geoms=geoms[sel])


# ----------------------------------------------------------------------------- outfalls and routes


@dataclass(frozen=True)
class _Outfalls:
    node: np.ndarray        # street-junction index each outfall is tied to
    xy: np.ndarray          # outfall positions, m
    low_limit_m: float = math.inf  # highest ground an outfall may sit on, m (finite only without candidates)


def _attach_outfalls(graph: _StreetGraph, z: np.ndarray, candidates, spacing: float) -> _Outfalls:
    """Tie outfall candidates to their nearest junction; or pick the boundary's low points."""
    tree = cKDTree(graph.xy)
    if candidates is not None and len(candidates):
        pts = shapely.get_coordinates(shapely.point_on_surface(np.asarray(candidates.geometry.values
                                                                          if hasattr(candidates, "geometry")
                                                                          else candidates)))
        dist, idx = tree.query(pts)
        ok = dist <= max(300.0, 5 * spacing)
        if ok.any():
            dist, idx, pts = dist[ok], idx[ok], pts[ok]
            order = np.lexsort((dist, idx))
            first = np.ones(len(order), bool)
            first[1:] = idx[order][1:] != idx[order][:-1]
            sel = np.sort(order[first])
            return _Outfalls(node=idx[sel], xy=pts[sel])
    return _boundary_low_points(graph, z, spacing)


LOW_OUTFALL_BAND = (1.0, 0.1)
"""Without candidates, outfalls sit at most ``max(a, b * relief)`` m above the lowest junction of the
network boundary, where ``relief`` is the boundary's range of ground elevation, m and dimensionless.

The lowest tenth of the boundary's relief: on a plane rising 0.5 % over 2 km, a band of about 1 m
along the low edge.  Water leaves a district where its boundary is low; an outfall on the high
edge makes the pipes that reach it run uphill and end many metres deep."""

LOW_POINT_RADIUS_M = 600.0
"""Without candidates, an outfall is the lowest junction within this distance, m (and outfalls are
at least this far apart)."""


def _boundary_low_points(graph: _StreetGraph, z: np.ndarray, spacing: float, *, max_count: int = 12) -> _Outfalls:
    """Low points of the network's outer boundary that are low overall.

    A boundary junction qualifies when no junction within :data:`LOW_POINT_RADIUS_M`
    (inside the network or on its boundary) is lower, so that the ground falls
    towards it, and when it lies within :data:`LOW_OUTFALL_BAND` of the lowest
    boundary junction.  If none does (a closed depression inside the network
    next to every low boundary point), the boundary profile's own low points in
    that band are used.  Outfalls are taken from the lowest up, at least
    :data:`LOW_POINT_RADIUS_M` apart.
    """
    hull = shapely.convex_hull(shapely.multipoints(graph.xy))
    pts = shapely.points(graph.xy)
    near = shapely.distance(pts, hull.exterior if hull.geom_type == "Polygon" else hull) < max(2 * spacing, 100.0)
    cand = np.flatnonzero(near) if near.any() else np.arange(len(z))
    z_low = z[cand].min()
    low_limit = z_low + max(LOW_OUTFALL_BAND[0], LOW_OUTFALL_BAND[1] * (z[cand].max() - z_low))
    cand = cand[z[cand] <= low_limit]

    all_tree, cand_tree = cKDTree(graph.xy), cKDTree(graph.xy[cand])
    lowest_around = np.array([z[nb].min() for nb in all_tree.query_ball_point(graph.xy[cand], r=LOW_POINT_RADIUS_M)])
    lows = cand[z[cand] <= lowest_around]
    if not len(lows):
        neighbours = cand_tree.query_ball_point(graph.xy[cand], r=LOW_POINT_RADIUS_M)
        lows = cand[[z[c] <= z[cand[nb]].min() for c, nb in zip(cand, neighbours)]]
    lows = lows[np.argsort(z[lows], kind="stable")]
    chosen: list[int] = []
    for k in lows:  # flat stretches have several equally low junctions: keep them apart
        if len(chosen) == max_count:
            break
        if not chosen or np.min(np.linalg.norm(graph.xy[chosen] - graph.xy[k], axis=1)) >= LOW_POINT_RADIUS_M:
            chosen.append(int(k))
    lows = np.asarray(chosen, dtype=int)
    centre = np.asarray(hull.centroid.coords[0])
    out = graph.xy[lows] - centre
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
    return _Outfalls(node=lows, xy=graph.xy[lows] + 10.0 * out, low_limit_m=float(low_limit))


STRAY_MAX_JUNCTIONS = 20
"""Without candidates, a street component with fewer junctions than this, no outfall and no
junction below the outfalls' height band gets no sewer (see :func:`_drop_high_strays`)."""


def _drop_high_strays(graph: _StreetGraph, z: np.ndarray, outfalls: _Outfalls) -> _StreetGraph:
    """Remove small street components that lie wholly above ``outfalls.low_limit_m``.

    A stray piece of street (cut off by the edge of an extract, or reached only
    by roads that carry no sewer) would otherwise drain to its own lowest
    junction: an outfall on high ground, where no water leaves the district.
    Its area still drains: the subcatchment split gives it to the nearest
    manholes of the network.  Larger components keep their own outfall.
    """
    if not math.isfinite(outfalls.low_limit_m):
        return graph
    n = len(graph.xy)
    _, comp = connected_components(coo_matrix((np.ones(len(graph.u)), (graph.u, graph.v)), shape=(n, n)),
                                   directed=False)
    drained = np.zeros(comp.max() + 1, bool)
    drained[comp[outfalls.node]] = True
    sizes = np.bincount(comp)
    lowest = np.full(len(sizes), np.inf)
    np.minimum.at(lowest, comp, z)
    stray = ~drained & (sizes < STRAY_MAX_JUNCTIONS) & (lowest > outfalls.low_limit_m)
    keep = ~stray[comp[graph.u]]
    if keep.all():
        return graph
    return _StreetGraph(xy=graph.xy, u=graph.u[keep], v=graph.v[keep], length=graph.length[keep],
                        geoms=graph.geoms[keep])


def _edge_dips(graph: _StreetGraph, dem: Raster, z: np.ndarray) -> np.ndarray:
    """How far the ground along each edge dips below its lower end, m."""
    fractions = np.linspace(0.1, 0.9, 9)
    pts = shapely.line_interpolate_point(np.repeat(graph.geoms, len(fractions)),
                                         np.tile(fractions, len(graph.geoms)), normalized=True)
    xy = shapely.get_coordinates(pts)
    along = dem.sample(xy[:, 0], xy[:, 1]).reshape(len(graph.geoms), len(fractions))
    return np.minimum(z[graph.u], z[graph.v]) - along.min(axis=1)


def _drainage_forest(graph: _StreetGraph, z: np.ndarray, dem: Raster, outfalls: _Outfalls,
                     rng: np.random.Generator):
    """Downstream junction of every junction (cheapest route to an outfall).

    Returns ``downstream`` (index, or -1 at a junction tied to an outfall),
    the outfalls (extended by one per component that had none) and a mask of
    the junctions that drain somewhere (tiny components are dropped).
    """
    n = len(graph.xy)
    crossing = _edge_dips(graph, dem, z) > CHANNEL_DEPTH_THRESHOLD_M
    tie = 1.0 + 0.02 * rng.random(len(graph.u))
    base = graph.length * tie * np.where(crossing, 50.0, 1.0)

    def flow_cost(a, b):  # flow a -> b
        return base + UPHILL_COST_M_PER_M * np.maximum(z[b] - z[a], 0.0)

    # Reverse graph: an arc b -> a carries the cost of flow a -> b, so a search from the outfalls
    # finds, for every junction, its cheapest way down.
    rows = np.concatenate([graph.v, graph.u])
    cols = np.concatenate([graph.u, graph.v])
    data = np.concatenate([flow_cost(graph.u, graph.v), flow_cost(graph.v, graph.u)])
    csg = coo_matrix((data, (rows, cols)), shape=(n, n)).tocsr()

    n_comp, comp = connected_components(csg, directed=False)
    has_outfall = np.zeros(n_comp, bool)
    has_outfall[comp[outfalls.node]] = True
    sizes = np.bincount(comp, minlength=n_comp)
    extra = []
    for c in np.flatnonzero(~has_outfall & (sizes >= 3)):
        members = np.flatnonzero(comp == c)
        extra.append(members[np.argmin(z[members])])
    if extra:
        extra = np.asarray(extra)
        outfalls = _Outfalls(node=np.concatenate([outfalls.node, extra]),
                             xy=np.vstack([outfalls.xy, graph.xy[extra] + [10.0, 0.0]]))
    dist, pred, _ = dijkstra(csg, directed=True, indices=outfalls.node, min_only=True, return_predecessors=True)
    reached = np.isfinite(dist)
    downstream = np.where(pred >= 0, pred, -1)
    return downstream, outfalls, reached


# ----------------------------------------------------------------------------- manholes and pipes


@dataclass(frozen=True)
class _Network:
    xy: np.ndarray           # (n_nodes, 2): junctions first, then outfalls
    n_junctions: int
    pipe_from: np.ndarray    # node index
    pipe_to: np.ndarray      # node index


def _place_manholes(graph: _StreetGraph, downstream: np.ndarray, outfalls: _Outfalls, reached: np.ndarray,
                    spacing: float) -> _Network:
    """Manholes at junctions and every ``spacing`` m along the tree's streets; pipes between them."""
    junctions = np.flatnonzero(reached)
    new_index = np.full(len(graph.xy), -1)
    new_index[junctions] = np.arange(len(junctions))
    edge_of = {}
    for k, (a, b) in enumerate(zip(graph.u, graph.v)):
        edge_of[(a, b)] = (k, False)
        edge_of[(b, a)] = (k, True)
    up = junctions[downstream[junctions] >= 0]
    dn = downstream[up]
    info = [edge_of[(a, b)] for a, b in zip(up, dn)]
    k_edge = np.array([k for k, _ in info], dtype=int)
    reverse = np.array([r for _, r in info], dtype=bool)
    n_pieces = np.maximum(1, np.round(graph.length[k_edge] / spacing).astype(int))

    # Intermediate manholes, along the street geometry in the flow direction.
    n_mid = n_pieces - 1
    rep = np.repeat(np.arange(len(up)), n_mid)
    step = np.concatenate([np.arange(1, m + 1) for m in n_mid]) if n_mid.sum() else np.empty(0, int)
    frac = step / n_pieces[rep]
    frac = np.where(reverse[rep], 1 - frac, frac)
    mid_xy = shapely.get_coordinates(shapely.line_interpolate_point(graph.geoms[k_edge[rep]], frac, normalized=True))
    mid_index = len(junctions) + np.arange(len(rep))

    chain_from, chain_to = [], []
    offsets = np.concatenate([[0], np.cumsum(n_mid)])
    for t in range(len(up)):
        mids = mid_index[offsets[t]:offsets[t + 1]].tolist()
        chain = [new_index[up[t]], *mids, new_index[dn[t]]]
        chain_from.extend(chain[:-1])
        chain_to.extend(chain[1:])
    n_j = len(junctions) + len(rep)
    out_from = new_index[outfalls.node]
    out_index = n_j + np.arange(len(outfalls.node))
    xy = np.vstack([graph.xy[junctions], mid_xy.reshape(-1, 2), outfalls.xy])
    return _Network(
        xy=xy, n_junctions=n_j,
        pipe_from=np.concatenate([np.asarray(chain_from, int), out_from]),
        pipe_to=np.concatenate([np.asarray(chain_to, int), out_index]),
    )


# ----------------------------------------------------------------------------- subcatchments


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """Keep only the polygonal parts of each geometry (intersections can add lines and points)."""
    out = geoms.copy()
    mixed = np.flatnonzero(shapely.get_type_id(geoms) == 7)  # GeometryCollection
    for k in mixed:
        parts = [p for p in shapely.get_parts(geoms[k]) if p.geom_type in ("Polygon", "MultiPolygon")]
        out[k] = shapely.union_all(parts) if parts else shapely.Polygon()
    return out


def _subcatchments(net: _Network, roads: gpd.GeoDataFrame, buildings, dem: Raster, crs: str) -> gpd.GeoDataFrame:
    """Blocks split by the manholes' Voronoi cells; one subcatchment per (manhole, block) piece."""
    road_lines = np.asarray([_as_linestring(g) for g in roads.geometry.values], dtype=object)
    blocks = np.asarray(shapely.get_parts(shapely.polygonize(road_lines)))
    blocks = blocks[shapely.area(blocks) > 100.0]
    if buildings is not None and len(buildings):
        bgeom = np.asarray(buildings.geometry.values)
        footprint_zone = shapely.union_all(shapely.buffer(bgeom, 10.0))
        extra = footprint_zone if not len(blocks) else shapely.difference(footprint_zone, shapely.union_all(blocks))
        if not extra.is_empty and extra.area > 100.0:
            blocks = np.concatenate([blocks, shapely.get_parts(extra)])
    else:
        bgeom = np.empty(0, dtype=object)
    if not len(blocks):  # a tree-like street network: drain the street corridors
        blocks = np.asarray([shapely.union_all(shapely.buffer(road_lines, 60.0))])

    mh = shapely.points(net.xy[: net.n_junctions])
    envelope = shapely.buffer(shapely.envelope(shapely.union_all(blocks)), 500.0)
    cells = np.asarray(shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(mh), extend_to=envelope,
                                                                  ordered=True)))
    tree = shapely.STRtree(blocks)
    ci, bi = tree.query(cells, predicate="intersects")
    pieces = _polygonal(shapely.intersection(cells[ci], blocks[bi]))
    area = shapely.area(pieces)
    ok = area >= 50.0
    ci, bi, pieces, area = ci[ok], bi[ok], pieces[ok], area[ok]
    order = np.lexsort((bi, ci))
    ci, bi, pieces, area = ci[order], bi[order], pieces[order], area[order]
    pieces = shapely.make_valid(pieces)

    building_frac = _covered_share(pieces, bgeom) if len(bgeom) else np.full(len(pieces), 0.25)
    widths = 3.5 * roads["lanes"].to_numpy(float).clip(1, 8) + 3.0  # carriageway + kerbs, m
    road_polys = shapely.buffer(np.asarray(roads.geometry.values), widths / 2, cap_style="flat")
    road_frac = _covered_share(pieces, road_polys)
    paved = np.clip(building_frac + road_frac, 0, 1)
    imperv = np.clip(paved + 0.35 * (1 - paved), 0.05, 0.95) * 100.0  # yards and car parks partly paved

    slope = _mean_slope_pct(pieces, dem)
    flow_length = np.clip(np.sqrt(area), 10.0, 100.0)
    return gpd.GeoDataFrame(
        {
            "subcatchment_id": [f"S{i:05d}" for i in range(len(pieces))],
            "outlet_index": ci,
            "block_index": bi,
            "area_m2": area,
            "imperv_pct": np.round(imperv, 1),
            "slope_pct": np.round(slope, 2),
            "width_m": np.round(area / flow_length, 1),
        },
        geometry=list(pieces), crs=crs,
    )


def _covered_share(pieces: np.ndarray, cover: np.ndarray) -> np.ndarray:
    """Share of each piece's area covered by the ``cover`` polygons (overlaps counted once per pair)."""
    if not len(cover):
        return np.zeros(len(pieces))
    pi, ki = shapely.STRtree(cover).query(pieces, predicate="intersects")
    inter = shapely.area(shapely.intersection(pieces[pi], cover[ki]))
    covered = np.bincount(pi, weights=inter, minlength=len(pieces))
    return np.clip(covered / np.maximum(shapely.area(pieces), 1e-9), 0.0, 1.0)


def _mean_slope_pct(pieces: np.ndarray, dem: Raster) -> np.ndarray:
    """Mean DEM slope over each piece, %; pieces smaller than a cell take the slope at their centre."""
    from rasterio.features import rasterize

    gy, gx = np.gradient(dem.values, dem.cell_size_m)
    slope = 100.0 * np.hypot(gx, gy)
    labels = rasterize(((g, i + 1) for i, g in enumerate(pieces)), out_shape=dem.shape,
                       transform=dem.transform, fill=0, dtype="int32")
    total = np.bincount(labels.ravel(), weights=slope.ravel(), minlength=len(pieces) + 1)[1:]
    count = np.bincount(labels.ravel(), minlength=len(pieces) + 1)[1:]
    centre = shapely.get_coordinates(shapely.point_on_surface(pieces))
    r, c = dem.index_of(centre[:, 0], centre[:, 1])
    mean = np.where(count > 0, total / np.maximum(count, 1), slope[r, c])
    return np.clip(mean, 0.3, 15.0)


# ----------------------------------------------------------------------------- sizing


@dataclass(frozen=True)
class _Sizing:
    diameter: np.ndarray
    slope: np.ndarray
    z_up: np.ndarray          # pipe invert at its upstream end, m
    z_dn: np.ndarray          # pipe invert at its downstream end, m
    design_flow: np.ndarray   # m3/s
    capacity: np.ndarray      # m3/s
    drained_area: np.ndarray  # m2
    tc: np.ndarray            # min, at the upstream end
    length: np.ndarray        # m


def _size_pipes(net: _Network, rim: np.ndarray, subs: gpd.GeoDataFrame, idf: ChineseIDF,
                return_period_yr: float) -> _Sizing:
    """Rational-method sizing from the top of each tree down (see the module docstring)."""
    n_nodes, n_pipes = len(net.xy), len(net.pipe_from)
    length = np.maximum(np.linalg.norm(net.xy[net.pipe_to] - net.xy[net.pipe_from], axis=1), 1.0)
    area_local = np.bincount(subs["outlet_index"], weights=subs["area_m2"], minlength=n_nodes)
    ca_local = np.bincount(subs["outlet_index"], weights=subs["area_m2"] * runoff_coefficient(subs["imperv_pct"]),
                           minlength=n_nodes)
    out_pipe = np.full(n_nodes, -1)
    out_pipe[net.pipe_from] = np.arange(n_pipes)
    tree = nx.DiGraph()
    tree.add_nodes_from(range(n_nodes))
    tree.add_edges_from(zip(net.pipe_from.tolist(), net.pipe_to.tolist()))
    if not nx.is_directed_acyclic_graph(tree):
        raise TwinError("design_sewer: the drainage network has a cycle (internal error)")
    inflows: list[list[int]] = [[] for _ in range(n_nodes)]
    for p, t in enumerate(net.pipe_to):
        inflows[t].append(p)
    is_outfall = np.arange(n_nodes) >= net.n_junctions

    diameter, slope = np.zeros(n_pipes), np.zeros(n_pipes)
    z_up, z_dn = np.zeros(n_pipes), np.zeros(n_pipes)
    q_design, cap = np.zeros(n_pipes), np.zeros(n_pipes)
    area_acc, ca_acc = np.zeros(n_pipes), np.zeros(n_pipes)
    tc_up, tc_end = np.zeros(n_pipes), np.zeros(n_pipes)
    for node in nx.topological_sort(tree):
        p = out_pipe[node]
        if p < 0:
            continue
        ins = inflows[node]
        area_acc[p] = area_local[node] + area_acc[ins].sum()
        ca_acc[p] = ca_local[node] + ca_acc[ins].sum()
        tc_up[p] = max([INLET_TIME_MIN] + tc_end[ins].tolist())
        q = ca_acc[p] * idf.intensity_mm_h(tc_up[p], return_period_yr) / 3.6e6
        if ADD_BRANCH_PEAKS and len(ins) > 1:
            q = max(q, q_design[ins].sum())
        d_min = max([COMMERCIAL_DIAMETERS_M[0]] + diameter[ins].tolist())
        crown_limit = min([np.inf] + (z_dn[ins] + diameter[ins]).tolist())
        to = net.pipe_to[p]
        for d in COMMERCIAL_DIAMETERS_M:
            if d < d_min - 1e-9:
                continue
            zu = min(rim[node] - MIN_COVER_M - d, crown_limit - d)
            s = min_slope(d)
            if not is_outfall[to]:
                s = min(max(s, (zu - (rim[to] - MIN_COVER_M - d)) / length[p]), max_velocity_slope(d))
            c = full_flow_capacity_cms(d, s)
            if c >= q:
                break
        else:  # the largest pipe is too small at this slope: steepen it, within reason
            a = math.pi * d**2 / 4
            s = max(s, min((q * MANNING_N / (a * (d / 4) ** (2 / 3))) ** 2, 0.02))
            c = full_flow_capacity_cms(d, s)
        diameter[p], slope[p], z_up[p], z_dn[p] = d, s, zu, zu - s * length[p]
        q_design[p], cap[p] = q, c
        velocity = c / (math.pi * d**2 / 4)
        tc_end[p] = tc_up[p] + length[p] / max(WAVE_CELERITY_FACTOR * velocity, 0.3) / 60.0
    return _Sizing(diameter, slope, z_up, z_dn, q_design, cap, area_acc, tc_up, length)


# ----------------------------------------------------------------------------- output tables


def _assemble(net: _Network, rim: np.ndarray, sz: _Sizing, subs: gpd.GeoDataFrame, crs: str) -> SewerDesign:
    n_nodes = len(net.xy)
    invert = np.full(n_nodes, np.nan)
    invert[net.pipe_from] = sz.z_up  # a manhole's invert is its outgoing pipe's (the lowest, crowns aligned)
    outfall_pipes = np.flatnonzero(net.pipe_to >= net.n_junctions)
    invert[net.pipe_to[outfall_pipes]] = sz.z_dn[outfall_pipes]
    is_outfall = np.arange(n_nodes) >= net.n_junctions
    # An outfall in the channel may sit below its own invert on the DEM: its rim is at least the pipe crown.
    crown = np.zeros(n_nodes)
    crown[net.pipe_to[outfall_pipes]] = sz.diameter[outfall_pipes]
    rim = np.where(is_outfall, np.maximum(rim, invert + crown), rim)
    n_j = net.n_junctions
    node_ids = np.array([f"J{i:05d}" for i in range(n_j)] + [f"O{i:03d}" for i in range(n_nodes - n_j)], dtype=object)
    nodes = gpd.GeoDataFrame(
        {
            "node_id": node_ids,
            "node_type": np.where(is_outfall, "outfall", "junction"),
            "invert_elev_m": np.round(invert, 3),
            "rim_elev_m": np.round(rim, 3),
        },
        geometry=list(shapely.points(net.xy)), crs=crs,
    )
    nodes["max_depth_m"] = nodes["rim_elev_m"] - nodes["invert_elev_m"]
    conduits = gpd.GeoDataFrame(
        {
            "conduit_id": [f"C{i:05d}" for i in range(len(net.pipe_from))],
            "from_node": node_ids[net.pipe_from],
            "to_node": node_ids[net.pipe_to],
            "length_m": np.round(sz.length, 2),
            "diameter_m": sz.diameter,
            "roughness_n": MANNING_N,
            "in_offset_m": np.round(sz.z_up - invert[net.pipe_from], 3),
            "out_offset_m": np.round(sz.z_dn - invert[net.pipe_to], 3),
            "slope": np.round(sz.slope, 6),
            "design_flow_cms": np.round(sz.design_flow, 4),
            "full_flow_cms": np.round(sz.capacity, 4),
            "drained_area_m2": np.round(sz.drained_area, 1),
            "tc_min": np.round(sz.tc, 2),
        },
        geometry=list(shapely.linestrings(np.stack([net.xy[net.pipe_from], net.xy[net.pipe_to]], axis=1))),
        crs=crs,
    )
    conduits["out_offset_m"] = conduits["out_offset_m"].clip(lower=0.0)
    sub = subs.copy()
    sub["outlet_node"] = node_ids[sub["outlet_index"].to_numpy()]
    sub["block_id"] = [f"K{i:05d}" for i in sub["block_index"]]
    sub = sub.drop(columns=["outlet_index", "block_index"])
    return SewerDesign(
        nodes=validate_layer(nodes, "nodes", source="design_sewer"),
        conduits=validate_layer(conduits, "conduits", source="design_sewer"),
        subcatchments=validate_layer(sub, "subcatchments", source="design_sewer"),
    )


# ----------------------------------------------------------------------------- sags

SAG_FREEBOARD_M = 0.2
"""Least height of a sag's floor above the design water level of the sewer under it, m."""

SAG_MIN_COVER_M = 0.3
"""Least cover over a pipe crown under a sag's floor, m (less than :data:`MIN_COVER_M`: a short
reach under a cutting, protected by the road slab; deeper pipes dip under it as an inverted siphon)."""


def _part_full_depth_ratio(flow_ratio: np.ndarray) -> np.ndarray:
    """Normal depth over diameter of a circular pipe carrying ``flow_ratio`` of its full-flow capacity (Manning)."""
    yd = np.linspace(1e-3, 0.938, 2000)  # 0.938: the largest flow, 1.076 x full
    theta = 2 * np.arccos(1 - 2 * yd)
    area = (theta - np.sin(theta)) / 8
    q = area * (area / (theta / 2)) ** (2 / 3) / (math.pi / 4 * 0.25 ** (2 / 3))
    return np.interp(np.asarray(flow_ratio, dtype=float), q, yd, right=1.0)


def max_sag_depth_m(nodes: gpd.GeoDataFrame, conduits: gpd.GeoDataFrame, *,
                    freeboard_m: float = SAG_FREEBOARD_M) -> pd.Series:
    """How deep a dip of the ground each junction's manhole can drain by gravity, m.

    The design water level at a manhole is the highest normal-depth water
    surface, at design flow, of the pipes that meet there (a pipe of
    ``design_flow_cms`` above ``full_flow_cms``, e.g. a bottleneck, counts as
    full).  A sag whose floor stays ``freeboard_m`` above that level drains
    up to the design storm; a larger storm surcharges the sewer and backs
    up into it.  Checked against SWMM on the demo city before its sags were
    cut (Chicago storms, Beijing IDF; a floor at this depth below every
    manhole): with a 0.2 m freeboard no floor is reached by the water of a
    2-year storm, 64 % are by a 20-year storm and 91 % by a 100-year storm
    (with 0.3 m: 0, 47 and 88 %).

    Parameters
    ----------
    nodes, conduits : geopandas.GeoDataFrame
        A designed sewer (:class:`SewerDesign`: conduits with ``design_flow_cms``
        and ``full_flow_cms``).
    freeboard_m : float
        Height of a floor above the design water level, m.

    Returns
    -------
    pandas.Series
        Index: the junctions' ``node_id``; rim minus design water level minus
        freeboard, m (never below 0).
    """
    inv = nodes["invert_elev_m"]
    yd = _part_full_depth_ratio(conduits["design_flow_cms"] / conduits["full_flow_cms"].clip(lower=1e-9))
    depth = yd * conduits["diameter_m"].to_numpy(float)
    up = inv.loc[conduits["from_node"]].to_numpy() + conduits["in_offset_m"].to_numpy() + depth
    dn = inv.loc[conduits["to_node"]].to_numpy() + conduits["out_offset_m"].to_numpy() + depth
    level = pd.concat([pd.Series(up, index=conduits["from_node"].to_numpy()),
                       pd.Series(dn, index=conduits["to_node"].to_numpy())]).groupby(level=0).max()
    junctions = nodes.index[nodes["node_type"] == "junction"]
    level = level.reindex(junctions).fillna(inv.loc[junctions])
    return (nodes.loc[junctions, "rim_elev_m"] - level - freeboard_m).clip(lower=0.0).rename("max_sag_depth_m")


def fit_sewer_to_ground(nodes: gpd.GeoDataFrame, conduits: gpd.GeoDataFrame, dem: Raster, *,
                        min_cover_m: float = SAG_MIN_COVER_M) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Set every junction's rim to the ground of ``dem`` after the ground was lowered (sags).

    A manhole's rim is the ground at its cover; where the ground was cut
    down (an underpass, a hollow) the rim follows it.  Where a pipe's crown
    would then lie less than ``min_cover_m`` under the new ground, its end at
    that manhole goes down to ``min_cover_m`` and the manhole's invert with it:
    the sewer dips under the sag as an inverted siphon and climbs back to its
    own grade at the next manholes, which keep their depth.  Outfalls are left
    as they are.

    Parameters
    ----------
    nodes, conduits : geopandas.GeoDataFrame
        A designed sewer.
    dem : Raster
        The ground now, m.
    min_cover_m : float
        Least cover over a crown, m.

    Returns
    -------
    (nodes, conduits)
        New tables; ``max_depth_m``, ``in_offset_m`` and ``out_offset_m`` follow.
        ``slope``, ``design_flow_cms`` and ``full_flow_cms`` keep the design figures.
    """
    nodes, conduits = nodes.copy(), conduits.copy()
    junction = (nodes["node_type"] == "junction").to_numpy()
    xy = shapely.get_coordinates(np.asarray(nodes.geometry.values))
    ground = np.round(dem.sample(xy[:, 0], xy[:, 1]), 3)
    rim = np.where(junction, ground, nodes["rim_elev_m"].to_numpy(float))
    pos = pd.Series(np.arange(len(nodes)), index=nodes.index)
    a, b = pos.loc[conduits["from_node"]].to_numpy(), pos.loc[conduits["to_node"]].to_numpy()
    inv = nodes["invert_elev_m"].to_numpy(float)
    d = conduits["diameter_m"].to_numpy(float)
    up = inv[a] + conduits["in_offset_m"].to_numpy(float)
    dn = inv[b] + conduits["out_offset_m"].to_numpy(float)
    up = np.where(junction[a], np.minimum(up, rim[a] - min_cover_m - d), up)
    dn = np.where(junction[b], np.minimum(dn, rim[b] - min_cover_m - d), dn)
    lowest = inv.copy()
    np.minimum.at(lowest, a, up)
    np.minimum.at(lowest, b, dn)
    inv = np.round(np.where(junction, lowest, inv), 3)
    nodes["rim_elev_m"] = rim
    nodes["invert_elev_m"] = inv
    nodes["max_depth_m"] = nodes["rim_elev_m"] - nodes["invert_elev_m"]
    conduits["in_offset_m"] = np.round(up - inv[a], 3)
    conduits["out_offset_m"] = np.round(dn - inv[b], 3).clip(min=0.0)
    return (validate_layer(nodes, "nodes", source="fit_sewer_to_ground"),
            validate_layer(conduits, "conduits", source="fit_sewer_to_ground"))


__all__ = ["SewerDesign", "DesignInputError", "design_sewer", "COMMERCIAL_DIAMETERS_M", "MANNING_N", "MIN_COVER_M",
           "full_flow_capacity_cms", "min_slope", "runoff_coefficient", "max_sag_depth_m", "fit_sewer_to_ground",
           "SAG_FREEBOARD_M", "SAG_MIN_COVER_M"]
