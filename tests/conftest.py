"""Shared fixtures: a tiny hand-built city, paths to the shared real data, a seeded rng."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from shapely.geometry import LineString, Point, box

from gisdata.city import CityTwin
from gisdata.raster import Raster

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CRS = "EPSG:32650"
X0, Y0 = 500_000.0, 3_400_000.0


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repo (read-only real data)."""
    if not SHARED_DATA.exists():
        pytest.fail(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def make_tiny_city() -> CityTwin:
    """A 6-manhole city on a 200 m x 100 m plane sloping east to an outfall.

    Manholes J0..J5 sit on a 3 x 2 grid at 80 m spacing; J2 and J5 drain to the
    outfall O1 at the east edge.  Ground falls 1 m per 100 m eastwards.
    """
    cell = 5.0
    cols, rows = 48, 24  # 240 m x 120 m
    transform = Affine(cell, 0, X0 - 20, 0, -cell, Y0 + 100)
    xs = X0 - 20 + (np.arange(cols) + 0.5) * cell
    dem = np.tile(20.0 - 0.01 * (xs - X0), (rows, 1))
    ground = lambda x: 20.0 - 0.01 * (x - X0)  # noqa: E731

    pts = {f"J{r * 3 + c}": (X0 + 80 * c, Y0 + 80 * r) for r in range(2) for c in range(3)}
    pts["O1"] = (X0 + 200, Y0)
    nodes = gpd.GeoDataFrame(
        {
            "node_id": list(pts),
            "node_type": ["junction"] * 6 + ["outfall"],
            "rim_elev_m": [ground(x) for x, _ in pts.values()],
        },
        geometry=[Point(p) for p in pts.values()], crs=CRS,
    )
    nodes["invert_elev_m"] = nodes["rim_elev_m"] - 2.0
    nodes["max_depth_m"] = 2.0
    links = [("J0", "J1"), ("J1", "J2"), ("J3", "J4"), ("J4", "J5"), ("J5", "J2"), ("J2", "O1")]
    conduits = gpd.GeoDataFrame(
        {
            "conduit_id": [f"C{i}" for i in range(len(links))],
            "from_node": [a for a, _ in links],
            "to_node": [b for _, b in links],
            "diameter_m": [0.3, 0.4, 0.3, 0.4, 0.4, 0.6],
            "roughness_n": 0.013,
        },
        geometry=[LineString([pts[a], pts[b]]) for a, b in links], crs=CRS,
    )
    conduits["length_m"] = conduits.length
    roads = conduits.rename(columns={"conduit_id": "road_id"})[["road_id", "from_node", "to_node", "geometry"]].copy()
    roads["length_m"] = roads.length
    roads["road_class"] = ["arterial", "arterial", "local", "local", "local", "arterial"]
    roads["speed_kmh"] = [50.0, 50.0, 30.0, 30.0, 30.0, 50.0]
    roads["lanes"] = [4, 4, 2, 2, 2, 4]
    buildings = gpd.GeoDataFrame(
        {"building_id": ["B1", "B2"], "height_m": [12.0, 30.0], "height_source": "synthetic",
         "use": ["residential", "commercial"], "residents": [40, 0]},
        geometry=[box(X0 + 10, Y0 + 10, X0 + 60, Y0 + 60), box(X0 + 90, Y0 + 10, X0 + 140, Y0 + 60)], crs=CRS,
    )
    subs = gpd.GeoDataFrame(
        {"subcatchment_id": [f"S{i}" for i in range(6)], "outlet_node": [f"J{i}" for i in range(6)],
         "imperv_pct": 60.0, "slope_pct": 1.0},
        geometry=[box(x - 40, y - 40, x + 40, y + 40) for x, y in list(pts.values())[:6]], crs=CRS,
    )
    subs["area_m2"] = subs.area
    subs["width_m"] = 80.0
    districts = gpd.GeoDataFrame({"district_id": ["D1"], "name": ["Centre"]},
                                 geometry=[box(X0 - 20, Y0 - 20, X0 + 220, Y0 + 100)], crs=CRS)
    depots = gpd.GeoDataFrame(
        {"depot_id": ["DP1", "DP2", "DP3", "DP4"],
         "department": ["city_management", "drainage", "police", "emergency"],
         "name": ["CM", "Drainage", "Police", "Emergency"], "n_crews": [2, 2, 1, 1]},
        geometry=[Point(X0, Y0 + 80), Point(X0 + 160, Y0), Point(X0 + 80, Y0), Point(X0 + 160, Y0 + 80)], crs=CRS,
    )
    sensors = gpd.GeoDataFrame(
        {"sensor_id": ["RG1", "WL1"], "sensor_type": ["rain_gauge", "water_level"], "node_id": ["", "J2"]},
        geometry=[Point(X0 + 80, Y0 + 40), Point(pts["J2"])], crs=CRS,
    )
    vendor_sites = gpd.GeoDataFrame(
        {"site_id": ["V1"], "site_type": ["market"], "attractiveness": [0.8]},
        geometry=[Point(X0 + 80, Y0 + 80)], crs=CRS,
    )
    return CityTwin(
        name="tiny", crs=CRS, roads=roads, buildings=buildings, nodes=nodes, conduits=conduits,
        subcatchments=subs, districts=districts, depots=depots, sensors=sensors,
        vendor_sites=vendor_sites, dem=Raster(dem, transform, CRS), metadata={"source": "tests/conftest.py"},
    )


@pytest.fixture
def tiny_city() -> CityTwin:
    """A 6-manhole city (see :func:`make_tiny_city`)."""
    return make_tiny_city()


# ----------------------------------------------------------------------------- fuzzing summary (issue #12)

FUZZ_STATS = pytest.StashKey[dict]()
"""Counters of ``tests/test_fuzz_readers.py`` (examples, peak memory), printed at the end of the run."""


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    stats = config.stash.get(FUZZ_STATS, None)
    if not stats or not stats.get("examples"):
        return
    failed = [r for r in terminalreporter.stats.get("failed", []) if "test_fuzz_readers" in r.nodeid]
    terminalreporter.write_line(
        f"fuzz readers (profile {stats['profile']}): {stats['examples']} examples tried, {len(failed)} failures, "
        f"peak memory {stats['peak_bytes'] / 2**20:.1f} MB per example ({stats['peak_reader']}; tracemalloc, "
        f"budget 200 MB); {stats['returned']} read, {stats['twin_errors']} refused with a TwinError; "
        f"{stats.get('elapsed_s', 0.0):.0f} s")
