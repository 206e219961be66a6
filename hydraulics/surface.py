"""Surface waterlogging: spread the water that leaves manholes over the DEM.

:func:`spread_flood` is a static *fill-and-spill* model.  Water that leaves a
node runs downhill (steepest descent) to a pit, then fills that depression
lowest cells first with one flat level; when the level reaches the
depression's spill point the excess runs over the saddle and down into the
next depression, and so on.  A depression that fills up to a lake that is
already there merges with it and both rise together.

Several nodes share one water surface: they are processed one after another,
in node-ID order, on the surface left by the previous ones (water that reaches
a lake joins it; a full lake passes new water on over its spill point), so
overlapping floods merge and rise together instead of being summed cell by
cell.  Where one node's runoff path runs past a lake made by another, the
order decides whether it joins that lake or runs on to another depression;
elsewhere (for example several nodes in one depression) the result does not
depend on it.  Ties (two saddles of exactly equal height) go to the lower
cell index, so a run is deterministic.

It is a steady-state picture (no flow velocities, no travel time): good for
maximum depths and for which roads and buildings get wet, not for timing.
Volume is conserved to rounding: volume in = volume stored on the grid +
volume that left it (``boundary="outflow"`` only).

Cost: lakes persist between nodes, so water reaching an existing lake resumes
that lake's priority flood instead of re-flooding it; each wet cell is pushed
and popped about once (plus relabelling the smaller lake on a merge).  That
loop is pure Python over flat lists (a few microseconds per cell); lake levels
are solved in closed form, and the rest is numpy or shapely vectorised.  See
``benchmarks/surface_spread.py``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gisdata.errors import GeometryError, TwinError
from gisdata.raster import Raster

ROAD_STATUSES = ("open", "closed_to_cars", "closed")
"""Road states handed to the agents, from least to most restrictive."""

INLET_RETURN_CMS = 0.05
"""Rate at which street water around a manhole that no longer overflows drains back through
its gully inlets, m3/s per manhole (a few 10-20 L/s gullies per model manhole).  One value for
the coupled simulation (:mod:`twin.coupler`) and the forecast (:mod:`hydraulics.ensemble`), so a
forecast's waterlogging durations are those the simulation then plays out."""

_INF = math.inf


class UnknownNodeError(TwinError, KeyError):
    """A node ID given with a volume is not among the nodes."""


class FloodInputError(TwinError, ValueError):
    """A flood volume or option is invalid (negative, not finite, unknown boundary...)."""


@dataclass(frozen=True, eq=False)
class SurfaceFlood:
    """Water on the ground after spreading node volumes over a DEM.

    Parameters
    ----------
    depth : Raster
        Water depth, m (0 where dry), on the DEM's grid.
    nodes : pandas.DataFrame
        Index ``node_id``; ``volume_m3`` (spread), ``row``, ``col`` (DEM cell),
        ``ground_elev_m``, ``level_m`` (water surface at the node's cell, m) and
        ``depth_m`` (water depth at the node's cell).
    volume_in_m3 : float
        Total volume spread, m3.
    volume_stored_m3 : float
        Volume on the grid at the end, m3.
    outflow_m3 : float
        Volume that ran off the edge of the grid (or into nodata), m3.
    boundary : str
        ``"wall"`` or ``"outflow"``.
    """

    depth: Raster
    nodes: pd.DataFrame
    volume_in_m3: float
    volume_stored_m3: float
    outflow_m3: float
    boundary: str

    @property
    def continuity_error(self) -> float:
        """(in - stored - outflow) / in; 0 when nothing was spread."""
        if self.volume_in_m3 == 0:
            return 0.0
        return (self.volume_in_m3 - self.volume_stored_m3 - self.outflow_m3) / self.volume_in_m3

    @property
    def max_depth_m(self) -> float:
        """Largest water depth on the grid, m."""
        return float(self.depth.values.max())

    def flooded_area_m2(self, threshold_m: float = 0.0) -> float:
        """Area where the depth exceeds ``threshold_m``, m2."""
        return float((self.depth.values > threshold_m).sum() * self.depth.cell_size_m ** 2)


# ----------------------------------------------------------------------------- inputs


def _node_points(nodes) -> tuple[list[str], np.ndarray, np.ndarray]:
    if isinstance(nodes, (gpd.GeoDataFrame, gpd.GeoSeries)):
        geom = nodes.geometry if isinstance(nodes, gpd.GeoDataFrame) else nodes
        if len(geom) and not (geom.geom_type == "Point").all():
            raise GeometryError("nodes: every geometry must be a Point")
        return [str(i) for i in nodes.index], geom.x.to_numpy(float), geom.y.to_numpy(float)
    if isinstance(nodes, pd.DataFrame):
        for cx, cy in (("x_m", "y_m"), ("x", "y")):
            if cx in nodes.columns and cy in nodes.columns:
                return [str(i) for i in nodes.index], nodes[cx].to_numpy(float), nodes[cy].to_numpy(float)
        raise GeometryError(f"nodes: a DataFrame needs columns x_m, y_m (or x, y); has {list(nodes.columns)}")
    if isinstance(nodes, Mapping):
        xy = np.array([tuple(v) for v in nodes.values()], dtype=float).reshape(-1, 2)
        return [str(k) for k in nodes], xy[:, 0], xy[:, 1]
    xy = np.asarray(nodes, dtype=float)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise GeometryError(f"nodes: expected (N, 2) coordinates in m, got shape {xy.shape}")
    return [str(i) for i in range(len(xy))], xy[:, 0], xy[:, 1]


def _node_volumes(ids: list[str], volumes) -> np.ndarray:
    if isinstance(volumes, (pd.Series, Mapping)):
        vol = pd.Series(volumes, dtype="float64")
        vol.index = vol.index.astype(str)
        unknown = sorted(set(vol.index) - set(ids))
        if unknown:
            raise UnknownNodeError(f"node_volumes_m3: node IDs {unknown[:5]} are not among the {len(ids)} nodes")
        out = vol.reindex(ids).fillna(0.0).to_numpy()
    else:
        out = np.asarray(volumes, dtype="float64").ravel()
        if len(out) != len(ids):
            raise FloodInputError(f"node_volumes_m3: {len(out)} values for {len(ids)} nodes")
    bad = ~np.isfinite(out) | (out < 0)
    if bad.any():
        k = int(np.argmax(bad))
        raise FloodInputError(
            f"node_volumes_m3: node '{ids[k]}' has volume {float(out[k])!r}; expected a finite value >= 0 m3"
        )
    return out


# ----------------------------------------------------------------------------- core


class _Lake:
    """A depression's water body: its cells, level and the priority-flood frontier around it."""

    __slots__ = ("cells", "heap", "id", "level", "n", "s", "water")

    def __init__(self, lake_id: int, cell: int, ground: float) -> None:
        self.id = lake_id
        self.level = ground
        self.n = 0          # cells in the lake
        self.s = 0.0        # sum of their ground elevations
        self.water = 0.0    # stored volume, m3 == area * (n * level - s)
        self.heap = [(ground, ground, cell)]  # (spill key, ground, cell)
        self.cells: list[int] = []


class _Surface:
    """Lakes on a padded, flattened DEM; water is added node by node (fill-spill-merge).

    Lakes persist between nodes, so water that reaches a lake resumes that
    lake's flood instead of re-flooding its cells: the cost is about one heap
    push and pop per cell that ever gets wet, plus the relabelling of the
    smaller lake when two merge.
    """

    def __init__(self, ground: list, nbrs: tuple, area: float) -> None:
        self.ground = ground
        self.nbrs = nbrs
        self.area = area
        self.owner = [-1] * len(ground)   # lake id of each wet cell
        self.seen = [-1] * len(ground)    # lake id that last pushed the cell
        self.lakes: list[_Lake | None] = []
        self.outflow = 0.0

    def add(self, cell: int, volume: float) -> None:
        """Let ``volume`` m3 leave the ground at ``cell`` and come to rest."""
        ground, owner = self.ground, self.owner
        guard = 0
        while volume > 0:
            guard += 1
            if guard > 4 * len(ground) + 16:
                raise TwinError("surface spread did not converge; please report this DEM")
            if owner[cell] < 0:
                cell = self._descend(cell)
                if ground[cell] == -_INF:
                    self.outflow += volume
                    return
            lid = owner[cell]
            if lid < 0:
                lake = _Lake(len(self.lakes), cell, ground[cell])
                self.lakes.append(lake)
                self.seen[cell] = lake.id
            else:
                lake = self.lakes[lid]
            volume, cell = self._rise(lake, volume)
            if cell is None:
                return
            if ground[cell] == -_INF:
                self.outflow += volume
                return

    def _descend(self, i: int) -> int:
        """Steepest descent on the water surface from ``i`` until a pit, a lake or the outside."""
        ground, owner, nbrs, lakes = self.ground, self.owner, self.nbrs, self.lakes
        while True:
            best, bz = i, ground[i]
            for d in nbrs:
                j = i + d
                o = owner[j]
                v = lakes[o].level if o >= 0 else ground[j]
                if v < bz:
                    best, bz = j, v
            if best == i or bz == -_INF or owner[best] >= 0:
                return best
            i = best

    def _rise(self, lake: _Lake, volume: float):
        """Add ``volume`` to ``lake`` and raise it in order of spill elevation.

        Returns ``(0.0, None)`` when the water found its level, or ``(excess,
        cell)`` when the lake is full to its spill point and ``excess`` m3 runs
        on from ``cell``, the first cell beyond the saddle.
        """
        ground, owner, seen, lakes, nbrs = self.ground, self.owner, self.seen, self.lakes, self.nbrs
        area = self.area
        push, pop = heapq.heappush, heapq.heappop
        level, n, s, water, heap, lid = lake.level, lake.n, lake.s, lake.water + volume, lake.heap, lake.id
        while True:
            key, g, q = pop(heap)
            o = owner[q]
            if o == lid:
                continue  # a duplicate of a cell already in the lake
            if o >= 0:
                other = lakes[o]
                surf = other.level
                if surf > key:  # that lake rose since the cell was queued
                    push(heap, (surf, g, q))
                    continue
            else:
                other, surf = None, g
            if surf < level:
                # Beyond the saddle and lower: the lake is full; the rest runs on from q.
                push(heap, (key, g, q))
                full = area * (n * level - s)
                lake.level, lake.n, lake.s, lake.water = level, n, s, full
                return max(water - full, 0.0), q
            if surf > level:
                need = area * (n * surf - s)  # water to raise the lake to this cell
                if water <= need:
                    push(heap, (key, g, q))
                    lake.level, lake.n, lake.s, lake.water = (water / area + s) / n, n, s, water
                    return 0.0, None
                level = surf
            if other is not None:
                # The lakes meet at the same level: merge the smaller into the larger.
                big, small = (lake, other) if len(lake.cells) >= len(other.cells) else (other, lake)
                for c in small.cells:
                    owner[c] = big.id
                big.cells.extend(small.cells)
                bheap, sheap = (heap, other.heap) if big is lake else (other.heap, heap)
                for item in sheap:
                    push(bheap, item)
                n += other.n
                s += other.s
                water += other.water
                lakes[small.id] = None
                lake, heap, lid = big, bheap, big.id
                lake.heap = heap
                continue
            owner[q] = lid
            lake.cells.append(q)
            n += 1
            s += g
            for d in nbrs:
                j = q + d
                if seen[j] != lid:
                    seen[j] = lid
                    gj = ground[j]
                    oj = owner[j]
                    sj = lakes[oj].level if oj >= 0 else gj
                    push(heap, (sj if sj > key else key, gj, j))  # not max(): hot loop


def spread_flood(dem: Raster, nodes, node_volumes_m3, *, boundary: Literal["wall", "outflow"] = "wall",
                 connectivity: Literal[4, 8] = 4) -> SurfaceFlood:
    """Spread each node's flooded (or ponded) volume over the DEM by fill-and-spill.

    Parameters
    ----------
    dem : Raster
        Ground elevation, m.  Nodata and NaN cells are treated like the boundary.
    nodes : GeoDataFrame, DataFrame, Mapping or array
        Node positions in the DEM's CRS, m: Points indexed by node ID, a frame
        with ``x_m``/``y_m`` (or ``x``/``y``), a mapping ID -> (x, y), or an (N, 2) array.
    node_volumes_m3 : pandas.Series, Mapping or array
        Volume to spread per node, m3 (Series/Mapping by node ID, missing nodes
        spread nothing; or an array aligned with ``nodes``).
    boundary : {"wall", "outflow"}
        ``"wall"``: the grid edge is a wall and all water stays (it ponds against
        the lowest edge).  ``"outflow"``: water that reaches the edge leaves and is
        reported as :attr:`SurfaceFlood.outflow_m3`.
    connectivity : {4, 8}
        Cell neighbourhood.  4 (default) keeps water from leaking diagonally
        between two touching cells of a wall.

    Returns
    -------
    SurfaceFlood

    Raises
    ------
    GeometryError
        If a node lies outside the DEM or on a nodata cell.
    UnknownNodeError, FloodInputError

    Examples
    --------
    >>> from affine import Affine
    >>> z = np.full((5, 5), 10.0); z[1:4, 1:4] = 9.0          # a 3 x 3 pit, 1 m deep
    >>> dem = Raster(z, Affine(1, 0, 0, 0, -1, 5), "EPSG:32650")
    >>> f = spread_flood(dem, {"J1": (2.5, 2.5)}, {"J1": 4.5})
    >>> round(f.max_depth_m, 9), round(f.continuity_error, 12)
    (0.5, 0.0)
    """
    if boundary not in ("wall", "outflow"):
        raise FloodInputError(f"boundary={boundary!r}; expected 'wall' or 'outflow'")
    if connectivity not in (4, 8):
        raise FloodInputError(f"connectivity={connectivity!r}; expected 4 or 8")
    ids, x, y = _node_points(nodes)
    vols = _node_volumes(ids, node_volumes_m3)
    rows, cols = dem.shape
    z = dem.values
    invalid = ~np.isfinite(z)
    if dem.nodata is not None:
        invalid |= z == dem.nodata
    xmin, ymin, xmax, ymax = dem.bounds
    outside = (x < xmin) | (x > xmax) | (y < ymin) | (y > ymax) | ~np.isfinite(x) | ~np.isfinite(y)
    if outside.any():
        bad = [ids[k] for k in np.flatnonzero(outside)[:5]]
        raise GeometryError(f"nodes {bad} lie outside the DEM extent {tuple(round(v, 1) for v in dem.bounds)}")
    r, c = dem.index_of(x, y)
    on_nodata = invalid[r, c]
    if on_nodata.any():
        bad = [ids[k] for k in np.flatnonzero(on_nodata)[:5]]
        raise GeometryError(f"nodes {bad} lie on nodata cells of the DEM")

    # Elevations relative to the lowest cell keep the level sums well conditioned.
    datum = float(z[~invalid].min()) if (~invalid).any() else 0.0
    edge = _INF if boundary == "wall" else -_INF
    width = cols + 2
    padded = np.full((rows + 2, width), edge)
    padded[1:-1, 1:-1] = np.where(invalid, edge, z - datum)
    nbrs = (-1, 1, -width, width)
    if connectivity == 8:
        nbrs += (-width - 1, -width + 1, width - 1, width + 1)
    area = dem.cell_size_m ** 2
    flat = ((r + 1) * width + (c + 1)).tolist()
    surface = _Surface(padded.ravel().tolist(), nbrs, area)
    for k in sorted(range(len(ids)), key=lambda k: ids[k]):
        if vols[k] > 0:
            surface.add(flat[k], float(vols[k]))

    ground = padded.ravel()
    level_flat = ground.copy()
    for lake in surface.lakes:
        if lake is not None and lake.cells:
            level_flat[np.asarray(lake.cells)] = lake.level
    outflow = surface.outflow
    level = level_flat.reshape(rows + 2, width)[1:-1, 1:-1]
    base = ground.reshape(rows + 2, width)[1:-1, 1:-1]
    depth = np.zeros((rows, cols))
    depth[~invalid] = np.maximum(level[~invalid] - base[~invalid], 0.0)
    depth_r = Raster(depth, dem.transform, dem.crs)
    table = pd.DataFrame(
        {"volume_m3": vols, "row": r, "col": c, "ground_elev_m": z[r, c],
         "level_m": z[r, c] + depth[r, c], "depth_m": depth[r, c]},
        index=pd.Index(ids, name="node_id"),
    )
    return SurfaceFlood(depth=depth_r, nodes=table, volume_in_m3=float(vols.sum()),
                        volume_stored_m3=float(depth.sum() * area), outflow_m3=float(outflow),
                        boundary=boundary)


def max_surface_depth(dem: Raster, nodes, flood_volume_m3, **options) -> SurfaceFlood:
    """Maximum surface flooding of a whole run from each node's maximum flood volume.

    Parameters
    ----------
    dem : Raster
        Ground elevation, m.
    nodes : GeoDataFrame, DataFrame, Mapping or array
        Node positions (see :func:`spread_flood`).
    flood_volume_m3 : pandas.Series or pandas.DataFrame
        Maximum flooded (or ponded) volume per node, m3; or a time series
        (index time, one column per node) whose column maxima are used.
    **options
        Passed to :func:`spread_flood` (``boundary``, ``connectivity``).

    Notes
    -----
    Nodes that peak at different times are spread together, so where their
    floods merge this is an upper bound of the depth at any one time.
    """
    vol = flood_volume_m3.max(axis=0) if isinstance(flood_volume_m3, pd.DataFrame) else flood_volume_m3
    return spread_flood(dem, nodes, vol, **options)


# ----------------------------------------------------------------------------- exposure


def _as_raster(depth) -> Raster:
    return depth.depth if isinstance(depth, SurfaceFlood) else depth


def _max_along_lines(lines: np.ndarray, ras: Raster, spacing_m: float) -> np.ndarray:
    """Max raster value sampled every ``spacing_m`` along each line (NaN if entirely off the grid)."""
    n_lines = len(lines)
    if n_lines == 0:
        return np.zeros(0)
    lengths = shapely.length(lines)
    n_pts = np.ceil(lengths / spacing_m).astype(int) + 1
    which = np.repeat(np.arange(n_lines), n_pts)
    first = np.repeat(np.cumsum(n_pts) - n_pts, n_pts)
    frac = (np.arange(len(which)) - first) / np.maximum(n_pts[which] - 1, 1)
    pts = shapely.line_interpolate_point(lines[which], frac, normalized=True)
    px, py = shapely.get_x(pts), shapely.get_y(pts)
    xmin, ymin, xmax, ymax = ras.bounds
    inside = (px >= xmin) & (px <= xmax) & (py >= ymin) & (py <= ymax)
    vals = np.full(len(which), np.nan)
    vals[inside] = ras.sample(px[inside], py[inside])
    return pd.Series(vals).groupby(which).max().reindex(range(n_lines)).to_numpy()


def road_max_depth(roads: gpd.GeoDataFrame, depth: Raster | SurfaceFlood, *,
                   spacing_m: float | None = None) -> pd.Series:
    """Maximum water depth along each road segment, m.

    Parameters
    ----------
    roads : geopandas.GeoDataFrame
        Lines indexed by ``road_id``, in the DEM's CRS.
    depth : Raster or SurfaceFlood
        Water depth, m.
    spacing_m : float, optional
        Sampling distance along the lines, m; default half a cell.

    Returns
    -------
    pandas.Series
        ``depth_m`` indexed by ``road_id``; NaN for a road entirely off the grid.
    """
    ras = _as_raster(depth)
    spacing = float(spacing_m or ras.cell_size_m / 2.0)
    if spacing <= 0:
        raise FloodInputError(f"spacing_m={spacing_m} must be > 0")
    out = _max_along_lines(np.asarray(roads.geometry.values), ras, spacing)
    return pd.Series(out, index=pd.Index(roads.index, name="road_id"), name="depth_m")


def building_max_depth(buildings: gpd.GeoDataFrame, depth: Raster | SurfaceFlood) -> pd.Series:
    """Maximum water depth touching each building footprint, m.

    The maximum over the cells the footprint touches and over points every half
    cell along its outline (water stands *around* a building, and footprints
    are often smaller than a cell).  NaN for a building entirely off the grid.
    """
    from rasterio.features import rasterize

    ras = _as_raster(depth)
    polys = np.asarray(buildings.geometry.values)
    along = _max_along_lines(shapely.boundary(polys), ras, ras.cell_size_m / 2.0) if len(polys) else np.zeros(0)
    out = along.copy()
    if len(polys):
        labels = rasterize(((g, k + 1) for k, g in enumerate(polys)), out_shape=ras.shape,
                           transform=ras.transform, fill=0, all_touched=True, dtype="int32")
        hit = labels > 0
        if hit.any():
            inner = pd.Series(ras.values[hit]).groupby(labels[hit] - 1).max()
            cur = out[inner.index.to_numpy()]
            out[inner.index.to_numpy()] = np.fmax(cur, inner.to_numpy())
    return pd.Series(out, index=pd.Index(buildings.index, name="building_id"), name="depth_m")


def exposed_buildings(buildings: gpd.GeoDataFrame, depth: Raster | SurfaceFlood, *,
                      threshold_m: float = 0.1) -> pd.DataFrame:
    """Buildings with water of at least ``threshold_m`` against them.

    Returns
    -------
    pandas.DataFrame
        Index ``building_id`` (only the exposed ones, deepest first); ``depth_m``
        and, where the layer has them, ``residents`` and ``use``.
    """
    if not threshold_m >= 0:
        raise FloodInputError(f"threshold_m={threshold_m} must be >= 0")
    d = building_max_depth(buildings, depth)
    table = d.to_frame()
    for col in ("residents", "use"):
        if col in buildings.columns:
            table[col] = buildings[col].to_numpy()
    return table[table["depth_m"] >= threshold_m].sort_values("depth_m", ascending=False, kind="stable")


def road_closures(road_depths: pd.Series, *, car_m: float = 0.15, all_m: float = 0.30) -> pd.DataFrame:
    """Road state from the water depth on each segment.

    Parameters
    ----------
    road_depths : pandas.Series
        Maximum depth per road, m (from :func:`road_max_depth`).
    car_m : float
        Depth at and above which cars may not pass, m.
    all_m : float
        Depth at and above which the road is closed to everyone (crews included), m.

    Returns
    -------
    pandas.DataFrame
        Index ``road_id``; ``depth_m`` and ``status`` (ordered categorical:
        ``open`` < ``closed_to_cars`` < ``closed``).  Unknown depths (NaN) are open.
        The thresholds are in ``.attrs``.

    Examples
    --------
    >>> road_closures(pd.Series({"R1": 0.05, "R2": 0.2, "R3": 0.5}))["status"].tolist()
    ['open', 'closed_to_cars', 'closed']
    """
    if not (0 <= car_m <= all_m):
        raise FloodInputError(f"thresholds car_m={car_m}, all_m={all_m}: need 0 <= car_m <= all_m (m)")
    d = pd.Series(road_depths, dtype="float64")
    status = np.where(d >= all_m, "closed", np.where(d >= car_m, "closed_to_cars", "open"))
    out = pd.DataFrame({"depth_m": d.to_numpy(),
                        "status": pd.Categorical(status, categories=ROAD_STATUSES, ordered=True)},
                       index=pd.Index(d.index, name="road_id"))
    out.attrs.update(car_m=car_m, all_m=all_m)
    return out
