"""Synthetic city services: management grid, depots, sensors and vendor sites."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import shapely
from scipy.spatial import cKDTree
from shapely.geometry import Polygon, box

from gisdata.schema import DEPARTMENTS

DISTRICT_CELL_M = 500.0
"""Edge of a management grid cell, m."""

_DEPARTMENT_NAMES = {
    "city_management": "Urban Management Station",
    "drainage": "Drainage Maintenance Depot",
    "police": "Police Station",
    "emergency": "Emergency Response Base",
}


def generate_districts(boundary: Polygon, crs: str, *, cell_m: float = DISTRICT_CELL_M) -> gpd.GeoDataFrame:
    """Management grid cells of ``cell_m`` covering ``boundary``, named ``<column letter><row>`` from the north-west.

    Examples
    --------
    >>> generate_districts(box(0, 0, 1000, 600), "EPSG:32650")["name"].tolist()
    ['Grid A1', 'Grid B1', 'Grid A2', 'Grid B2']
    """
    xmin, ymin, xmax, ymax = boundary.bounds
    nx_, ny_ = int(np.ceil((xmax - xmin) / cell_m)), int(np.ceil((ymax - ymin) / cell_m))
    ids, names, geoms = [], [], []
    for row in range(ny_):
        for col in range(nx_):
            cell = box(xmin + col * cell_m, ymax - (row + 1) * cell_m, xmin + (col + 1) * cell_m, ymax - row * cell_m)
            cell = cell.intersection(boundary)
            if cell.is_empty or cell.area < 1.0:
                continue
            ids.append(f"D{row:02d}{col:02d}")
            names.append(f"Grid {_column_letters(col)}{row + 1}")
            geoms.append(cell)
    return gpd.GeoDataFrame({"district_id": ids, "name": names}, geometry=geoms, crs=crs).set_index("district_id")


def _column_letters(col: int) -> str:
    letters = ""
    col += 1
    while col:
        col, rem = divmod(col - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _spread_points(rng: np.random.Generator, candidates: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` candidates spread over the area (farthest-point sampling from a random start)."""
    n = min(n, len(candidates))
    chosen = [int(rng.integers(len(candidates)))]
    dist = np.linalg.norm(candidates - candidates[chosen[0]], axis=1)
    for _ in range(n - 1):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(candidates - candidates[nxt], axis=1))
    return np.asarray(chosen)


def generate_depots(rng: np.random.Generator, roads: gpd.GeoDataFrame, area_km2: float, crs: str) -> gpd.GeoDataFrame:
    """Depots on street junctions: every department has at least one, more in a larger city."""
    junctions = np.unique(shapely.get_coordinates(shapely.boundary(roads.geometry.values)), axis=0)
    per_dept = max(1, int(round(area_km2 / 4.0)))
    rows = []
    for dept in DEPARTMENTS:
        n = per_dept + (1 if dept in ("city_management", "drainage") and area_km2 > 3 else 0)
        for k, idx in enumerate(_spread_points(rng, junctions, n)):
            crews = int(rng.integers(3, 7) if dept == "drainage" else rng.integers(2, 6))
            rows.append((f"{dept[:2].upper()}{k + 1:02d}", dept, f"{_DEPARTMENT_NAMES[dept]} {k + 1}", crews,
                         shapely.Point(junctions[idx])))
    ids, dept, names, crews, geoms = zip(*rows)
    return gpd.GeoDataFrame({"depot_id": ids, "department": dept, "name": names, "n_crews": crews},
                            geometry=list(geoms), crs=crs).set_index("depot_id")


def generate_sensors(rng: np.random.Generator, nodes: gpd.GeoDataFrame, boundary: Polygon,
                     crs: str) -> gpd.GeoDataFrame:
    """Rain gauges on a coarse grid (about one per 2.5 km^2) and water-level sensors at manholes.

    Half the water-level sensors watch the lowest manholes (where the city knows
    it floods), the others are spread over the network.
    """
    xmin, ymin, xmax, ymax = boundary.bounds
    n_side = max(1, int(round(np.sqrt((xmax - xmin) * (ymax - ymin) / 2.5e6))))
    gx = xmin + (np.arange(n_side) + 0.5) * (xmax - xmin) / n_side
    gy = ymin + (np.arange(n_side) + 0.5) * (ymax - ymin) / n_side
    gauges = [shapely.Point(x + rng.uniform(-80, 80), y + rng.uniform(-80, 80)) for y in gy for x in gx]
    junctions = nodes[nodes["node_type"] == "junction"]
    n_level = max(3, len(junctions) // 40)
    lowest = junctions["rim_elev_m"].sort_values(kind="stable").index[: n_level // 2].tolist()
    rest = junctions.index.difference(lowest)
    xy = shapely.get_coordinates(junctions.loc[rest].geometry.values)
    spread = rest[_spread_points(rng, xy, n_level - len(lowest))].tolist()
    watched = sorted(lowest + spread)
    ids = [f"RG{i + 1:02d}" for i in range(len(gauges))] + [f"WL{i + 1:03d}" for i in range(len(watched))]
    return gpd.GeoDataFrame(
        {
            "sensor_id": ids,
            "sensor_type": ["rain_gauge"] * len(gauges) + ["water_level"] * len(watched),
            "node_id": [""] * len(gauges) + watched,
        },
        geometry=gauges + list(junctions.loc[watched].geometry.values), crs=crs,
    ).set_index("sensor_id")


def generate_vendor_sites(rng: np.random.Generator, roads: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame,
                          blocks: gpd.GeoDataFrame, block_use: np.ndarray, crs: str) -> gpd.GeoDataFrame:
    """Markets, metro exits, schools, parks, hospitals and plazas where vendors gather."""
    sites: list[tuple[str, shapely.Point]] = []
    area_km2 = blocks.geometry.area.sum() / 1e6
    # Metro exits: at arterial crossings, a line of stations.
    art = roads[roads["road_class"] == "arterial"]
    ends = shapely.get_coordinates(shapely.boundary(art.geometry.values))
    uniq, counts = np.unique(ends.round(2), axis=0, return_counts=True)
    crossings = uniq[counts >= 4]
    if len(crossings):
        for idx in _spread_points(rng, crossings, max(2, int(area_km2 / 1.2))):
            for dx, dy in ((18, 18), (-18, -18)):
                sites.append(("metro_exit", shapely.Point(crossings[idx] + (dx, dy))))
    # Markets and plazas beside commercial or mixed buildings.
    shops = buildings[buildings["use"].isin(["commercial", "mixed"])]
    if len(shops):
        pts = shapely.get_coordinates(shapely.centroid(shops.geometry.values))
        for idx in _spread_points(rng, pts, max(2, int(area_km2 * 0.8))):
            sites.append(("market", shapely.Point(pts[idx] + (0, -25))))
        for idx in _spread_points(rng, pts, max(1, int(area_km2 * 0.4))):
            sites.append(("plaza", shapely.Point(pts[idx] + (25, 0))))
    # Schools and hospitals are the public buildings; parks the empty park blocks.
    public = buildings[buildings["use"] == "public"]
    pub_pts = shapely.get_coordinates(shapely.centroid(public.geometry.values)) if len(public) else np.empty((0, 2))
    if len(pub_pts):
        order = _spread_points(rng, pub_pts, max(3, int(area_km2 * 1.5)))
        n_hosp = max(1, len(order) // 5)
        for k, idx in enumerate(order):
            sites.append(("hospital" if k < n_hosp else "school", shapely.Point(pub_pts[idx])))
    for poly in blocks.geometry.values[block_use == "park"]:
        sites.append(("park", poly.representative_point()))
    kinds = np.array([k for k, _ in sites], dtype=object)
    pull = {"metro_exit": (0.7, 1.0), "market": (0.6, 1.0), "plaza": (0.4, 0.8), "school": (0.4, 0.8),
            "hospital": (0.3, 0.7), "park": (0.3, 0.7)}
    attractiveness = np.array([rng.uniform(*pull[k]) for k in kinds]).round(3)
    # Keep only sites off the street centre lines' junctions; nearest duplicates dropped.
    pts = np.array([p.coords[0] for _, p in sites])
    keep = np.ones(len(sites), bool)
    if len(pts) > 1:
        pairs = cKDTree(pts).query_pairs(5.0, output_type="ndarray")
        keep[pairs[:, 1]] = False
    return gpd.GeoDataFrame(
        {"site_id": [f"V{i + 1:03d}" for i in range(int(keep.sum()))], "site_type": kinds[keep],
         "attractiveness": attractiveness[keep]},
        geometry=[p for (_, p), k in zip(sites, keep) if k], crs=crs,
    ).set_index("site_id")
