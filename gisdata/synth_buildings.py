"""Synthetic buildings inside street blocks, with use, height and residents.

Each block gets one land use: a commercial core around the city centre, an
industrial quarter downstream by the river, a few parks and public blocks
(schools, hospitals), and residential compounds of east-west slabs elsewhere
(the usual layout of Chinese housing estates: rows facing south).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from shapely.geometry import Point

SETBACK_M = 12.0
"""Distance from the street centre line to the first building face, m."""

M2_PER_RESIDENT = 33.0
"""Gross residential floor area per resident, m^2 (Chinese urban average)."""

_LAYOUT = {
    # use: (footprint width m, depth m, lattice dx m, dy m)
    "residential": (60.0, 13.0, 75.0, 40.0),
    "mixed": (40.0, 20.0, 55.0, 40.0),
    "commercial": (45.0, 32.0, 60.0, 50.0),
    "industrial": (70.0, 40.0, 90.0, 60.0),
    "public": (50.0, 20.0, 70.0, 45.0),
}


def assign_block_use(rng: np.random.Generator, blocks: gpd.GeoDataFrame, *, centre: Point,
                     core_radius_m: float, industrial_zone) -> np.ndarray:
    """Choose one use per block: ``commercial``/``mixed`` core, ``industrial``, ``park``, ``public``, ``residential``."""
    cent = shapely.centroid(blocks.geometry.values)
    dist = shapely.distance(cent, centre)
    in_ind = shapely.intersects(cent, industrial_zone)
    u = rng.random(len(blocks))
    use = np.full(len(blocks), "residential", dtype=object)
    core = dist < core_radius_m
    use[core & (u < 0.55)] = "commercial"
    use[core & (u >= 0.55)] = "mixed"
    use[~core & in_ind] = "industrial"
    other = ~core & ~in_ind
    use[other & (u < 0.07)] = "park"
    use[other & (u >= 0.07) & (u < 0.13)] = "public"
    use[other & (u >= 0.13) & (u < 0.22)] = "mixed"
    return use


def generate_buildings(rng: np.random.Generator, blocks: gpd.GeoDataFrame, block_use: np.ndarray,
                       crs: str, *, streets: np.ndarray | None = None) -> gpd.GeoDataFrame:
    """Lay out building footprints in each block and give them height, use and residents.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    blocks : geopandas.GeoDataFrame
        Block polygons, m.
    block_use : numpy.ndarray of str
        Use of each block (``park`` blocks stay empty).
    crs : str
        Projected CRS.
    streets : numpy.ndarray of LineString, optional
        Street centre lines; footprints closer than the setback to any of them
        are dropped (dead-end streets run into blocks).

    Returns
    -------
    geopandas.GeoDataFrame
        Buildings following the ``buildings`` schema, plus ``block_id``.
    """
    geoms, uses, floors, block_ids = [], [], [], []
    inner = shapely.buffer(blocks.geometry.values, -SETBACK_M, join_style="mitre")
    for k, (bid, poly, use) in enumerate(zip(blocks.index, inner, block_use)):
        if use == "park" or poly.is_empty:
            continue
        w, d, dx, dy = _LAYOUT[use]
        xmin, ymin, xmax, ymax = poly.bounds
        xs = np.arange(xmin + w / 2 + rng.uniform(0, 5), xmax - w / 2 + 1e-6, dx)
        ys = np.arange(ymin + d / 2 + rng.uniform(0, 5), ymax - d / 2 + 1e-6, dy)
        if len(xs) == 0 or len(ys) == 0:
            # Narrow block: one smaller building at its centre if it fits.
            xs, ys = np.array([(xmin + xmax) / 2]), np.array([(ymin + ymax) / 2])
            w, d = min(w, 0.8 * (xmax - xmin)), min(d, 0.8 * (ymax - ymin))
            if w < 8 or d < 8:
                continue
        cx, cy = (a.ravel() for a in np.meshgrid(xs, ys))
        ww = w * rng.uniform(0.75, 1.0, len(cx))
        dd = d * rng.uniform(0.8, 1.0, len(cx))
        rects = shapely.box(cx - ww / 2, cy - dd / 2, cx + ww / 2, cy + dd / 2)
        keep = shapely.within(rects, poly) & (rng.random(len(rects)) > 0.08)
        rects = rects[keep]
        if len(rects) == 0:
            continue
        base = {"residential": rng.integers(6, 28), "mixed": rng.integers(4, 18),
                "commercial": rng.integers(5, 40), "industrial": 1, "public": rng.integers(3, 7)}[use]
        spread = rng.integers(-2, 3, len(rects))
        geoms.extend(rects)
        uses.extend([use] * len(rects))
        floors.extend(np.maximum(base + spread, 1).tolist())
        block_ids.extend([bid] * len(rects))
    geoms = np.asarray(geoms, dtype=object)
    keep = np.ones(len(geoms), bool)
    if streets is not None and len(streets) and len(geoms):
        near, _ = shapely.STRtree(streets).query(geoms, predicate="dwithin", distance=SETBACK_M - 2.0)
        keep[near] = False
    geoms = geoms[keep]
    uses = np.asarray(uses, dtype=object)[keep]
    floors = np.asarray(floors, dtype=float)[keep]
    block_ids = np.asarray(block_ids, dtype=object)[keep]
    uses_arr = uses
    storey_m = np.where(uses_arr == "industrial", rng.uniform(8.0, 14.0, len(floors)), 3.0)
    height = np.round(floors * storey_m, 1)
    footprint = shapely.area(geoms)
    resident_share = np.select([uses_arr == "residential", uses_arr == "mixed"], [1.0, 0.5], 0.0)
    residents = np.floor(footprint * floors * 0.85 * resident_share / M2_PER_RESIDENT).astype("int64")
    return gpd.GeoDataFrame(
        {
            "building_id": [f"B{i:06d}" for i in range(len(geoms))],
            "height_m": height,
            "height_source": "synthetic",
            "use": uses_arr,
            "residents": residents,
            "block_id": block_ids,
        },
        geometry=list(geoms), crs=crs,
    ).set_index("building_id")
