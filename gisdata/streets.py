"""Synthetic streets and blocks: a jittered arterial grid, local streets, bridges.

Arterials form a coarse grid (superblocks of ~500 m); inside each superblock,
local streets run at ~150-200 m with their own jitter, some dropped, so the
blocks are irregular and T-junctions are common.  Streets stop at the river,
except the arterials chosen as bridges.  The network is noded by shapely and
turned into a graph whose junctions have stable IDs.
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import LineString, MultiLineString, Polygon, box

ROAD_CLASS_ATTRS = {
    # class: (speed_kmh, lanes, paved width m)
    "arterial": (50.0, 6, 30.0),
    "collector": (40.0, 4, 18.0),
    "local": (30.0, 2, 10.0),
}
"""Speed, lane count and paved width of each generated road class."""

_STREET_NAMES = (
    "Jianshe", "Heping", "Renmin", "Zhongshan", "Jiefang", "Xinhua", "Chaoyang", "Guangming",
    "Yingbin", "Wenhua", "Changjiang", "Huanghe", "Dongfeng", "Minzhu", "Shengli", "Xingfu",
    "Qingnian", "Binhe", "Taiping", "Yanan", "Beijing", "Nanjing", "Kunlun", "Taishan",
)


@dataclass(frozen=True)
class StreetNetwork:
    """Generated streets.

    Parameters
    ----------
    roads : geopandas.GeoDataFrame
        Segments between junctions, following the ``roads`` schema.
    blocks : geopandas.GeoDataFrame
        Polygons enclosed by streets (index ``block_id``), land only.
    boundary : shapely.geometry.Polygon
        Outline of the built-up area, m.
    """

    roads: gpd.GeoDataFrame
    blocks: gpd.GeoDataFrame
    boundary: Polygon


def _jittered_positions(rng, start: float, stop: float, spacing: float, jitter: float) -> np.ndarray:
    """Roughly evenly spaced positions strictly inside (start, stop)."""
    n = max(int(round((stop - start) / spacing)) - 1, 0)
    if n == 0:
        return np.empty(0)
    base = np.linspace(start, stop, n + 2)[1:-1]
    step = (stop - start) / (n + 1)
    return base + rng.uniform(-1, 1, n) * min(jitter, 0.25 * step)


def generate_streets(
    rng: np.random.Generator,
    *,
    boundary: Polygon,
    river: Polygon,
    crs: str,
    arterial_spacing_m: float = 520.0,
    local_spacing_m: float = 170.0,
    n_bridges: int = 3,
    drop_share: float = 0.15,
) -> StreetNetwork:
    """Generate a street network with blocks inside ``boundary``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    boundary : shapely.geometry.Polygon
        Rectangle of the built-up area, m.
    river : shapely.geometry.Polygon
        Water surface; streets stop 15 m from it except on bridges.
    crs : str
        Projected CRS.
    arterial_spacing_m, local_spacing_m : float
        Mean spacing of arterials and of local streets, m.
    n_bridges : int
        Number of north-south arterials that cross the river.
    drop_share : float
        Share of local street segments left out (irregular blocks), 0-1.

    Returns
    -------
    StreetNetwork

    Examples
    --------
    >>> from shapely.geometry import box
    >>> net = generate_streets(np.random.default_rng(0), boundary=box(0, 0, 1200, 1200),
    ...                        river=box(-10, 500, 1210, 540), crs="EPSG:32650")
    >>> sorted(set(net.roads["road_class"]))
    ['arterial', 'collector', 'local']
    >>> bool(net.roads.intersects(box(-10, 500, 1210, 540)).sum() >= 1)  # a bridge
    True
    """
    xmin, ymin, xmax, ymax = boundary.bounds
    ax = np.concatenate([[xmin], _jittered_positions(rng, xmin, xmax, arterial_spacing_m, 60.0), [xmax]])
    ay = np.concatenate([[ymin], _jittered_positions(rng, ymin, ymax, arterial_spacing_m, 60.0), [ymax]])
    # Slight tilt of inner arterials: endpoints move independently.
    tilt = 25.0
    arterials, kinds = [], []
    for i, x in enumerate(ax):
        dx = (0, 0) if i in (0, len(ax) - 1) else rng.uniform(-tilt, tilt, 2)
        arterials.append(LineString([(x + dx[0], ymin), (x + dx[1], ymax)]))
        kinds.append("ns")
    for j, y in enumerate(ay):
        dy = (0, 0) if j in (0, len(ay) - 1) else rng.uniform(-tilt, tilt, 2)
        arterials.append(LineString([(xmin, y + dy[0]), (xmax, y + dy[1])]))
        kinds.append("ew")

    # Local streets, superblock by superblock, overshooting so they meet the arterials.
    locals_, collectors = [], []
    over = 40.0
    for i in range(len(ax) - 1):
        for j in range(len(ay) - 1):
            x_lo, x_hi, y_lo, y_hi = ax[i], ax[i + 1], ay[j], ay[j + 1]
            for k, x in enumerate(_jittered_positions(rng, x_lo, x_hi, local_spacing_m, 30.0)):
                if rng.random() < drop_share:
                    continue
                line = LineString([(x, y_lo - over), (x + rng.uniform(-8, 8), y_hi + over)])
                (collectors if k == 1 else locals_).append(line)
            for k, y in enumerate(_jittered_positions(rng, y_lo, y_hi, local_spacing_m, 30.0)):
                if rng.random() < drop_share:
                    continue
                line = LineString([(x_lo - over, y), (x_hi + over, y + rng.uniform(-8, 8))])
                (collectors if k == 1 else locals_).append(line)

    # Bridges: a few inner north-south arterials keep their river crossing.
    ns_inner = [k for k, kind in enumerate(kinds) if kind == "ns"][1:-1]
    n_b = min(n_bridges, len(ns_inner))
    bridge_idx = set(np.sort(rng.choice(ns_inner, size=n_b, replace=False)).tolist()) if n_b else set()
    keep_out = river.buffer(15.0)
    land = boundary.difference(keep_out)
    pieces = []
    for k, line in enumerate(arterials):
        pieces.append(line.intersection(boundary) if k in bridge_idx else line.intersection(land))
    pieces += [line.intersection(land) for line in collectors + locals_]
    noded = shapely.unary_union([p for p in pieces if not p.is_empty])
    segments = np.asarray(shapely.get_parts(noded))
    segments = _remove_dangles(segments, min_length_m=45.0)
    segments = np.asarray(shapely.get_parts(shapely.line_merge(MultiLineString(list(segments)))))
    segments = segments[shapely.length(segments) > 1.0]

    # Classify each segment by the line it lies on (midpoint within 1 m).
    mids = shapely.line_interpolate_point(segments, 0.5, normalized=True)
    road_class = np.full(len(segments), "local", dtype=object)
    coll_union = shapely.union_all(collectors) if collectors else None
    if coll_union is not None:
        road_class[shapely.distance(mids, coll_union) < 1.0] = "collector"
    art_dist = np.stack([shapely.distance(mids, a) for a in arterials])
    on_art = art_dist.min(axis=0) < 1.0
    road_class[on_art] = "arterial"
    art_names = [f"{_STREET_NAMES[k % len(_STREET_NAMES)]} {'Lu' if kind == 'ns' else 'Jie'}"
                 for k, kind in enumerate(kinds)]
    names = np.where(on_art, np.array(art_names, dtype=object)[art_dist.argmin(axis=0)], "")

    # Only the connected network: a stray segment cut off by the river serves nobody.
    segments, road_class, names = _largest_component(segments, road_class, names)
    roads = _road_graph(segments, crs)
    roads["road_class"] = road_class
    roads["speed_kmh"] = [ROAD_CLASS_ATTRS[c][0] for c in road_class]
    roads["lanes"] = [ROAD_CLASS_ATTRS[c][1] for c in road_class]
    roads["name"] = names

    polys = np.asarray(shapely.get_parts(shapely.polygonize(segments)))
    polys = shapely.difference(polys, keep_out)
    polys = np.asarray(shapely.get_parts(polys))
    polys = polys[shapely.area(polys) > 2000.0]
    blocks = gpd.GeoDataFrame(
        {"block_id": [f"K{i:05d}" for i in range(len(polys))]}, geometry=list(polys), crs=crs
    ).set_index("block_id")
    return StreetNetwork(roads=roads, blocks=blocks, boundary=boundary)


def _remove_dangles(segments: np.ndarray, *, min_length_m: float) -> np.ndarray:
    """Drop short dead-end stubs (left by overshooting lines), repeatedly."""
    for _ in range(3):
        start = shapely.get_coordinates(shapely.get_point(segments, 0)).round(3)
        end = shapely.get_coordinates(shapely.get_point(segments, -1)).round(3)
        _, inv, counts = np.unique(np.vstack([start, end]), axis=0, return_inverse=True, return_counts=True)
        deg = counts[inv.ravel()]
        n = len(segments)
        dangling = (deg[:n] == 1) | (deg[n:] == 1)
        drop = dangling & (shapely.length(segments) < min_length_m)
        if not drop.any():
            break
        segments = segments[~drop]
    return segments


def _largest_component(segments: np.ndarray, *columns: np.ndarray):
    """Keep the segments of the largest connected piece of the network (and their attributes)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    start = shapely.get_coordinates(shapely.get_point(segments, 0)).round(2)
    end = shapely.get_coordinates(shapely.get_point(segments, -1)).round(2)
    _, inv = np.unique(np.vstack([start, end]), axis=0, return_inverse=True)
    inv = inv.ravel()
    n = len(segments)
    m = coo_matrix((np.ones(n), (inv[:n], inv[n:])), shape=(inv.max() + 1,) * 2)
    _, label = connected_components(m, directed=False)
    keep = label[inv[:n]] == np.bincount(label[inv[:n]]).argmax()
    return (segments[keep], *(c[keep] for c in columns))


def _road_graph(segments: np.ndarray, crs: str) -> gpd.GeoDataFrame:
    """Give segment endpoints stable junction IDs (sorted by coordinates) and segments road IDs."""
    start = shapely.get_coordinates(shapely.get_point(segments, 0)).round(2)
    end = shapely.get_coordinates(shapely.get_point(segments, -1)).round(2)
    uniq, inv = np.unique(np.vstack([start, end]), axis=0, return_inverse=True)
    inv = inv.ravel()
    node_ids = np.array([f"N{i:05d}" for i in range(len(uniq))], dtype=object)
    n = len(segments)
    # Order segments by their from-node then to-node so IDs do not depend on union internals.
    order = np.lexsort((inv[n:], inv[:n]))
    segments = segments[order]
    return gpd.GeoDataFrame(
        {
            "road_id": [f"R{i:05d}" for i in range(n)],
            "from_node": node_ids[inv[:n][order]],
            "to_node": node_ids[inv[n:][order]],
            "length_m": shapely.length(segments),
        },
        geometry=list(segments), crs=crs,
    ).set_index("road_id")


def city_boundary(x0: float, y0: float, width_m: float, height_m: float, margin_m: float) -> Polygon:
    """The built-up rectangle: the DEM extent less a margin on each side."""
    return box(x0 + margin_m, y0 + margin_m, x0 + width_m - margin_m, y0 + height_m - margin_m)


# ----------------------------------------------------------------------------- sag points

SAG_KINDS = ("underpass", "low_crossing")
"""Kinds of sag point the generator makes (the ``sag`` column of ``roads``)."""

UNDERPASS_CLASSES = ("arterial", "collector")
"""Road classes that may pass under a rail line or an elevated road (through traffic)."""

UNDERPASS_GRADE = 0.06
"""Grade of an underpass ramp, m/m (CJJ 37 allows up to 5-8 % on urban roads)."""

SAG_CLEARANCE_M = 10.0
"""Least distance from the top of an underpass ramp to the next junction, m."""


@dataclass(frozen=True)
class SagPlan:
    """The sag points of a street network, for :func:`gisdata.terrain.carve_sags`.

    Parameters
    ----------
    roads : geopandas.GeoDataFrame
        The street segments with two more columns: ``sag`` (``"underpass"``,
        ``"low_crossing"`` or ``""``) and ``sag_depth_m`` (depth of the dip below
        the surrounding grade, m; 0 off a sag).  No segment or ID changes.
    sags : geopandas.GeoDataFrame
        One row per sag (index ``sag_id``): ``kind``, ``depth_m``, ``length_m``
        (underpass: between the tops of its ramps; low crossing: bowl diameter),
        ``half_width_m`` (underpass: half the cutting's width), ``node_id`` (the
        manhole at the low point), ``road_ids`` (comma-separated), ``line`` (an
        underpass's road centre line; None for a low crossing) and the low point
        as geometry.
    """

    roads: gpd.GeoDataFrame
    sags: gpd.GeoDataFrame


def place_sags(
    rng: np.random.Generator,
    roads: gpd.GeoDataFrame,
    manholes: gpd.GeoDataFrame,
    dem,
    *,
    river: Polygon,
    boundary: Polygon,
    n_underpasses: int,
    n_low_crossings: int,
    depth_underpass_m: tuple[float, float] = (1.5, 3.0),
    depth_low_crossing_m: tuple[float, float] = (0.6, 1.1),
    radius_low_crossing_m: tuple[float, float] = (55.0, 80.0),
    min_spacing_m: float = 350.0,
    river_clearance_m: float = 250.0,
) -> SagPlan:
    """Choose the sag points of a city, each over a manhole of its sewer: underpasses and low crossings.

    Real cities waterlog first at their sags, and the worst are underpasses:
    a street dips 1.5-3 m to pass under a rail line or an elevated road, and
    its low point is drained only by gullies into the sewer below.  The other
    kind is a low crossing: a junction in a shallow hollow (0.6-1.1 m over
    55-80 m), where the streets that meet there all fall towards it.  The
    structure above an underpass is not modelled, only the dip of the road.

    A sag is drained by gravity into the sewer that already runs under its
    street, so it stays dry as long as that sewer's water level stays below
    its floor.  Each manhole says how deep a dip it can drain
    (``manholes["max_sag_depth_m"]``: the depth of its design water level
    below the ground, less a freeboard; see
    :func:`gisdata.sewer_design.max_sag_depth_m`); a sag's depth is drawn from
    its range and cut to what every manhole it lowers can drain, and a site
    that cannot take the least depth of its kind is passed over.  Up to the
    design storm the sags drain; above it the sewer surcharges and backs up
    into them first, since their gullies are the lowest openings of the
    network (the mechanism of underpass flooding, where no pump station
    keeps them dry).

    - **Underpasses** go on arterials and collectors, centred on a manhole
      along a segment (not at a junction) with room for two ramps at
      :data:`UNDERPASS_GRADE`, a level floor of 20-40 m (under the structure) and
      :data:`SAG_CLEARANCE_M` to each junction.
    - **Low crossings** go on manholes at junctions where at least three
      streets meet.

    No sag lies within ``river_clearance_m`` of the river (a bridge is never a
    sag), and sags keep ``min_spacing_m`` from each other and half of it from
    the edge of the city.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    roads : geopandas.GeoDataFrame
        Street segments (from :func:`generate_streets`).
    manholes : geopandas.GeoDataFrame
        Junction manholes of the sewer (index ``node_id``) with ``max_sag_depth_m``, m.
    dem : Raster
        Ground before the sags, m.
    river : shapely.geometry.Polygon
        Water surface.
    boundary : shapely.geometry.Polygon
        Built-up area.
    n_underpasses, n_low_crossings : int
        How many of each (fewer if the city has no room for them).
    depth_underpass_m, depth_low_crossing_m : (float, float)
        Range of the dip depth, m.
    radius_low_crossing_m : (float, float)
        Range of a low crossing's bowl radius, m.
    min_spacing_m : float
        Least distance between two sags, m.
    river_clearance_m : float
        Least distance from a sag to the river, m.

    Returns
    -------
    SagPlan
    """
    from gisdata.terrain import carve_sags

    if n_underpasses < 0 or n_low_crossings < 0:
        raise ValueError(f"n_underpasses={n_underpasses}, n_low_crossings={n_low_crossings} must be >= 0")
    crs = roads.crs
    roads = roads.copy()
    roads["sag"] = ""
    roads["sag_depth_m"] = 0.0
    lines = np.asarray(roads.geometry.values)
    tolerate = manholes["max_sag_depth_m"].to_numpy(float)
    mh_xy = shapely.get_coordinates(np.asarray(manholes.geometry.values))
    inner = boundary.buffer(-0.5 * min_spacing_m)
    chosen: list[shapely.Point] = []
    rows: list[dict] = []

    ends = np.concatenate([roads["from_node"].to_numpy(str), roads["to_node"].to_numpy(str)])
    end_xy = np.vstack([shapely.get_coordinates(shapely.get_point(lines, 0)),
                        shapely.get_coordinates(shapely.get_point(lines, -1))])
    end_pos = np.concatenate([np.arange(len(roads)), np.arange(len(roads))])
    junction_ids, junction_inv, degree = np.unique(ends, return_inverse=True, return_counts=True)
    tree = shapely.STRtree(lines)

    def deepest_drained(sag: dict, depths) -> float | None:
        """The deepest of ``depths`` every manhole the sag lowers can drain (None: none can)."""
        for depth in depths:
            trial = gpd.GeoDataFrame([{**sag, "depth_m": depth, "length_m": sag["length_fn"](depth)}],
                                     geometry=[sag["geometry"]], crs=crs).drop(columns=["length_fn"])
            lowered = dem.sample(mh_xy[:, 0], mh_xy[:, 1]) - carve_sags(dem, trial).sample(mh_xy[:, 0], mh_xy[:, 1])
            if np.all(lowered <= tolerate + 0.005):
                return float(depth)
        return None

    def depth_steps(lo: float, hi: float) -> np.ndarray:
        top = float(rng.uniform(lo, hi))
        return np.round(np.arange(top, lo - 1e-9, -0.1), 2)

    def free(pt) -> bool:
        return inner.contains(pt) and all(pt.distance(p) >= min_spacing_m for p in chosen)

    near_river = shapely.distance(shapely.points(mh_xy), river) < river_clearance_m
    order = rng.permutation(len(manholes))

    # Underpasses: manholes along (not at the ends of) arterials and collectors.
    n_up = 0
    for m in order:
        if n_up >= n_underpasses:
            break
        pt = shapely.Point(mh_xy[m])
        if near_river[m] or not free(pt):
            continue
        hit = [k for k in tree.query(pt.buffer(0.5)) if roads["road_class"].iloc[k] in UNDERPASS_CLASSES
               and lines[k].geom_type == "LineString"]
        if len(hit) != 1:
            continue
        k = hit[0]
        line = lines[k]
        along = line.project(pt)
        room = min(along, line.length - along) - SAG_CLEARANCE_M
        floor = float(rng.uniform(20.0, 40.0))
        max_depth = (room - floor / 2) * UNDERPASS_GRADE
        if max_depth < depth_underpass_m[0]:
            continue
        lanes = int(roads["lanes"].iloc[k])
        sag = {"kind": "underpass", "half_width_m": 0.5 * 3.5 * max(lanes, 1) + 4.0, "line": line,
               "length_fn": lambda d, floor=floor: round(floor + 2 * d / UNDERPASS_GRADE, 1), "geometry": pt}
        depth = deepest_drained(sag, depth_steps(depth_underpass_m[0], min(depth_underpass_m[1], max_depth)))
        if depth is None:
            continue
        chosen.append(pt)
        roads.iloc[k, roads.columns.get_loc("sag")] = "underpass"
        roads.iloc[k, roads.columns.get_loc("sag_depth_m")] = depth
        rows.append({**sag, "depth_m": depth, "length_m": sag["length_fn"](depth), "node_id": manholes.index[m],
                     "road_ids": str(roads.index[k])})
        n_up += 1

    # Low crossings: manholes at junctions of three or more streets.
    n_low = 0
    for m in order:
        if n_low >= n_low_crossings:
            break
        pt = shapely.Point(mh_xy[m])
        if near_river[m] or not free(pt):
            continue
        at = np.flatnonzero(np.hypot(*(end_xy - mh_xy[m]).T) < 0.5)
        if len(at) == 0 or degree[junction_inv[at[0]]] < 3:
            continue
        members = np.unique(end_pos[junction_inv == junction_inv[at[0]]])
        if (roads["sag"].iloc[members] != "").any():
            continue
        radius = float(rng.uniform(*radius_low_crossing_m))
        sag = {"kind": "low_crossing", "half_width_m": 0.0, "line": None,
               "length_fn": lambda d, radius=radius: round(2 * radius, 1), "geometry": pt}
        depth = deepest_drained(sag, depth_steps(*depth_low_crossing_m))
        if depth is None:
            continue
        chosen.append(pt)
        roads.iloc[members, roads.columns.get_loc("sag")] = "low_crossing"
        roads.iloc[members, roads.columns.get_loc("sag_depth_m")] = depth
        rows.append({**sag, "depth_m": depth, "length_m": sag["length_fn"](depth), "node_id": manholes.index[m],
                     "road_ids": ",".join(str(r) for r in roads.index[members])})
        n_low += 1

    rows.sort(key=lambda r: (r["kind"] != "underpass", r["node_id"]))
    columns = ["kind", "depth_m", "length_m", "half_width_m", "node_id", "road_ids", "line"]
    sags = gpd.GeoDataFrame([{c: r[c] for c in columns} for r in rows], columns=columns,
                            geometry=[r["geometry"] for r in rows], crs=crs)
    kinds = [r["kind"] for r in rows]
    sags.index = pd.Index([f"{'U' if k == 'underpass' else 'L'}{kinds[: i + 1].count(k):02d}"
                           for i, k in enumerate(kinds)], name="sag_id")
    return SagPlan(roads=roads, sags=sags)
