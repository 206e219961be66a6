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
