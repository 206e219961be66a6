"""A small synthetic grid city for agent tests and benchmarks.

Stand-in until :mod:`gisdata.synth` (``load_city("small")``) lands: a Manhattan
grid of roads (arterials every ``arterial_every`` lines, 50 km/h; locals 30 km/h),
one residential block per cell with residents, some commercial blocks, four
depots (one per department), water-level sensors and vendor sites.  Sewer nodes
share the road junction IDs so flood incidents can name either.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
from affine import Affine
from shapely.geometry import LineString, Point, box

from gisdata.city import CityTwin
from gisdata.raster import Raster

CRS = "EPSG:32650"


def make_grid_city(nx: int = 10, ny: int = 10, *, spacing_m: float = 150.0, residents_per_block: int = 120,
                   arterial_every: int = 4, seed: int = 0, x0: float = 500_000.0, y0: float = 3_400_000.0) -> CityTwin:
    """Build an ``nx`` x ``ny`` junction grid city.

    Parameters
    ----------
    nx, ny : int
        Junctions along x and y (>= 2).
    spacing_m : float
        Block size (m).
    residents_per_block : int
        Mean residents of a residential block.
    arterial_every : int
        Every n-th grid line is an arterial.
    seed : int
        Seed of the block uses and resident counts.
    x0, y0 : float
        South-west corner in the CRS (m).

    Examples
    --------
    >>> make_grid_city(4, 3).summary()["layers"]["roads"]
    17
    """
    if nx < 2 or ny < 2:
        raise ValueError(f"nx={nx}, ny={ny} must both be >= 2")
    if spacing_m <= 0:
        raise ValueError(f"spacing_m={spacing_m} must be > 0")
    rng = np.random.default_rng(seed)
    jid = lambda i, j: f"N{i:03d}_{j:03d}"
    pos = {jid(i, j): (x0 + i * spacing_m, y0 + j * spacing_m) for i in range(nx) for j in range(ny)}
    roads = []
    for j in range(ny):
        for i in range(nx - 1):
            roads.append((jid(i, j), jid(i + 1, j), j % arterial_every == 0))
    for i in range(nx):
        for j in range(ny - 1):
            roads.append((jid(i, j), jid(i, j + 1), i % arterial_every == 0))
    rgeom = [LineString([pos[a], pos[b]]) for a, b, _ in roads]
    road_gdf = gpd.GeoDataFrame({
        "road_id": [f"R{k:05d}" for k in range(len(roads))], "from_node": [a for a, _, _ in roads],
        "to_node": [b for _, b, _ in roads], "length_m": [g.length for g in rgeom],
        "road_class": ["arterial" if art else "local" for _, _, art in roads],
        "speed_kmh": [50.0 if art else 30.0 for _, _, art in roads], "lanes": [4 if art else 2 for _, _, art in roads],
    }, geometry=rgeom, crs=CRS)
    # one building per block, inset from the streets
    blocks, uses, res = [], [], []
    m = 0.2 * spacing_m
    for i in range(nx - 1):
        for j in range(ny - 1):
            bx, by = x0 + i * spacing_m, y0 + j * spacing_m
            blocks.append(box(bx + m, by + m, bx + spacing_m - m, by + spacing_m - m))
            u = rng.choice(["residential", "commercial", "mixed", "public"], p=[0.7, 0.15, 0.1, 0.05])
            uses.append(str(u))
            res.append(int(rng.poisson(residents_per_block)) if u in ("residential", "mixed") else 0)
    buildings = gpd.GeoDataFrame({
        "building_id": [f"B{k:05d}" for k in range(len(blocks))], "height_m": rng.uniform(9, 45, len(blocks)),
        "height_source": "synthetic", "use": uses, "residents": res}, geometry=blocks, crs=CRS)
    # sewer: nodes at junctions, conduits along x-roads draining east
    nodes = gpd.GeoDataFrame({"node_id": list(pos), "node_type": "junction",
                              "rim_elev_m": [20.0 - 0.002 * (x - x0) for x, _ in pos.values()]},
                             geometry=[Point(p) for p in pos.values()], crs=CRS)
    nodes["invert_elev_m"] = nodes["rim_elev_m"] - 2.5
    nodes["max_depth_m"] = 2.5
    xr = road_gdf.iloc[: ny * (nx - 1)]
    conduits = gpd.GeoDataFrame({"conduit_id": [f"C{k:05d}" for k in range(len(xr))],
                                 "from_node": xr["from_node"].to_numpy(), "to_node": xr["to_node"].to_numpy(),
                                 "length_m": xr["length_m"].to_numpy(), "diameter_m": 0.6, "roughness_n": 0.013},
                                geometry=xr.geometry.to_numpy(), crs=CRS)
    subs = gpd.GeoDataFrame({"subcatchment_id": [f"S{k:05d}" for k in range(len(nodes))],
                             "outlet_node": nodes["node_id"].to_numpy(), "imperv_pct": 60.0, "slope_pct": 1.0,
                             "width_m": spacing_m},
                            geometry=[box(x - spacing_m / 2, y - spacing_m / 2, x + spacing_m / 2, y + spacing_m / 2)
                                      for x, y in pos.values()], crs=CRS)
    subs["area_m2"] = subs.area
    w, h = (nx - 1) * spacing_m, (ny - 1) * spacing_m
    districts = gpd.GeoDataFrame({"district_id": ["D1"], "name": ["Grid"]},
                                 geometry=[box(x0 - spacing_m, y0 - spacing_m, x0 + w + spacing_m, y0 + h + spacing_m)],
                                 crs=CRS)
    corners = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)]
    depots = gpd.GeoDataFrame({"depot_id": ["DP_CM", "DP_DR", "DP_PO", "DP_EM"],
                               "department": ["city_management", "drainage", "police", "emergency"],
                               "name": ["City management", "Drainage", "Police", "Emergency"], "n_crews": [3, 3, 2, 2]},
                              geometry=[Point(x0 + fx * w, y0 + fy * h) for fx, fy in corners], crs=CRS)
    sens_ids = [jid(i, j) for i in range(1, nx, max(1, nx // 3)) for j in range(1, ny, max(1, ny // 3))]
    sensors = gpd.GeoDataFrame({"sensor_id": [f"WL{k:03d}" for k in range(len(sens_ids))] + ["RG001"],
                                "sensor_type": ["water_level"] * len(sens_ids) + ["rain_gauge"],
                                "node_id": sens_ids + [""]},
                               geometry=[Point(pos[s]) for s in sens_ids] + [Point(x0 + w / 2, y0 + h / 2)], crs=CRS)
    n_sites = max(3, (nx * ny) // 8)
    sx = rng.uniform(x0, x0 + w, n_sites)
    sy = rng.uniform(y0, y0 + h, n_sites)
    vendor_sites = gpd.GeoDataFrame({"site_id": [f"VS{k:03d}" for k in range(n_sites)],
                                     "site_type": rng.choice(["market", "metro_exit", "school", "plaza"], n_sites),
                                     "attractiveness": rng.uniform(0.2, 1.0, n_sites)},
                                    geometry=[Point(a, b) for a, b in zip(sx, sy)], crs=CRS)
    cell = 10.0
    cols, rows = int(np.ceil((w + 2 * spacing_m) / cell)), int(np.ceil((h + 2 * spacing_m) / cell))
    transform = Affine(cell, 0, x0 - spacing_m, 0, -cell, y0 + h + spacing_m)
    xs = x0 - spacing_m + (np.arange(cols) + 0.5) * cell
    dem = np.tile(20.0 - 0.002 * (xs - x0), (rows, 1))
    return CityTwin(name=f"grid{nx}x{ny}", crs=CRS, roads=road_gdf, buildings=buildings, nodes=nodes,
                    conduits=conduits, subcatchments=subs, districts=districts, depots=depots, sensors=sensors,
                    vendor_sites=vendor_sites, dem=Raster(dem, transform, CRS),
                    metadata={"source": "agents.gridcity", "seed": str(seed)})
