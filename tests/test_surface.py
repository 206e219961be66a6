"""Surface waterlogging: analytic levels, fill-and-spill, volume conservation, roads and buildings."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from affine import Affine
from scipy import ndimage
from shapely.geometry import LineString, box

from gisdata.errors import GeometryError, TwinError
from gisdata.raster import Raster
from hydraulics.surface import (
    ROAD_STATUSES,
    FloodInputError,
    SurfaceFlood,
    UnknownNodeError,
    building_max_depth,
    exposed_buildings,
    max_surface_depth,
    road_closures,
    road_max_depth,
    spread_flood,
)

CRS = "EPSG:32650"


def raster(z: np.ndarray, cell: float = 1.0, nodata: float | None = None) -> Raster:
    rows = z.shape[0]
    return Raster(z, Affine(cell, 0, 0, 0, -cell, rows * cell), CRS, nodata)


def centre(r: int, c: int, cell: float = 1.0, rows: int = 0) -> tuple[float, float]:
    """x, y of the centre of cell (r, c) for a raster built by :func:`raster`."""
    return (c + 0.5) * cell, (rows - r - 0.5) * cell


def two_pits() -> np.ndarray:
    """10 m plateau with two 5 x 5 pits; the ridge between them is at 9 m.

    Pit A (cols 2-6) bottom 7 m, pit B (cols 8-12) bottom 6 m, ridge col 7 at 9 m.
    """
    z = np.full((9, 15), 10.0)
    z[2:7, 2:7] = 7.0
    z[2:7, 8:13] = 6.0
    z[2:7, 7] = 9.0
    return z


# ----------------------------------------------------------------------------- analytic levels


@pytest.mark.parametrize("cell", [1.0, 2.5])
@pytest.mark.parametrize("volume", [1.0, 9.0, 17.9])  # per m2 of cell; the pit holds 18
def test_box_pit_level_is_analytic(cell, volume):
    z = np.full((7, 7), 10.0)
    z[2:5, 2:5] = 8.0  # 3 x 3 cells, 2 m deep
    volume = volume * cell ** 2
    f = spread_flood(raster(z, cell), {"J": centre(3, 3, cell, 7)}, {"J": volume})
    expected = volume / (9 * cell ** 2)
    assert expected < 2.0
    assert np.allclose(f.depth.values[2:5, 2:5], expected, rtol=0, atol=1e-12)
    assert f.depth.values.sum() * cell ** 2 == pytest.approx(volume, rel=1e-12)
    assert f.nodes.loc["J", "level_m"] == pytest.approx(8.0 + expected, abs=1e-12)


def test_cone_pit_level_matches_discrete_and_continuous_solution():
    n, cell, slope = 201, 1.0, 0.05
    yy, xx = np.mgrid[0:n, 0:n]
    rad = np.hypot(xx - n // 2, yy - n // 2) * cell
    z = 100.0 + slope * rad
    volume = 20_000.0
    f = spread_flood(raster(z, cell), {"J": centre(n // 2, n // 2, cell, n)}, {"J": volume})
    level = f.nodes.loc["J", "level_m"]
    # discrete: the flat level that holds exactly the volume in the cone's cells
    assert (cell ** 2 * np.clip(level - z, 0, None)).sum() == pytest.approx(volume, rel=1e-9)
    # continuous cone: V = pi h^3 / (3 s^2)
    h = (3 * volume * slope ** 2 / np.pi) ** (1 / 3)
    assert level - 100.0 == pytest.approx(h, rel=0.02)
    wet = f.depth.values > 0
    assert np.ptp((z + f.depth.values)[wet]) < 1e-9  # one flat level


# ----------------------------------------------------------------------------- fill and spill


def test_single_depression_fills_lowest_cells_first_with_a_flat_level(rng):
    n = 60
    yy, xx = np.mgrid[0:n, 0:n]
    z = 5.0 + 0.002 * ((xx - 30) ** 2 + (yy - 30) ** 2) + rng.uniform(0, 0.3, (n, n))
    z[0, :], z[-1, :], z[:, 0], z[:, -1] = 50.0, 50.0, 50.0, 50.0
    f = spread_flood(raster(z), {"J": centre(30, 30, 1.0, n)}, {"J": 150.0})
    d = f.depth.values
    wet = d > 0
    level = f.nodes.loc["J", "level_m"]
    assert np.ptp((z + d)[wet]) < 1e-9
    # the wet cells are exactly the cells below the level connected to the lake
    labels, _ = ndimage.label(z < level, structure=[[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    lake = labels == labels[30, 30]
    assert np.array_equal(wet, lake)
    assert d.sum() == pytest.approx(150.0, rel=1e-12)


def test_spill_into_neighbour_depression_when_full():
    z = two_pits()
    A_cap_to_ridge = 25 * 2.0  # pit A: 25 cells from 7 m to 9 m
    src = {"J": centre(4, 4, 1.0, 9)}

    small = spread_flood(raster(z), src, {"J": 20.0}).depth.values
    assert small[2:7, 8:13].sum() == 0  # pit B still dry
    assert np.allclose(small[2:7, 2:7], 20.0 / 25)

    f = spread_flood(raster(z), src, {"J": A_cap_to_ridge + 30.0}).depth.values
    assert np.allclose(f[2:7, 2:7], 2.0)  # pit A full to the ridge (9 m)
    assert np.allclose(f[2:7, 8:13], 30.0 / 25)  # the rest pools flat in pit B, below the ridge
    assert f[2:7, 7].sum() == 0

    B_cap_to_ridge = 25 * 3.0
    extra = 40.0
    merged = spread_flood(raster(z), src, {"J": A_cap_to_ridge + B_cap_to_ridge + extra}).depth.values
    level = z + merged
    lake = merged > 0
    assert lake[2:7, 2:13].all() and lake.sum() == 55  # both pits and the ridge
    assert np.ptp(level[lake]) < 1e-12
    assert level[4, 4] == pytest.approx(9.0 + extra / 55)


def test_nodes_share_one_water_surface():
    z = two_pits()
    a, b = centre(4, 3, 1.0, 9), centre(4, 5, 1.0, 9)
    together = spread_flood(raster(z), {"A": a, "B": b}, {"A": 40.0, "B": 30.0})
    one = spread_flood(raster(z), {"A": a}, {"A": 70.0})
    assert np.allclose(together.depth.values, one.depth.values, atol=1e-12)


def test_result_is_deterministic_and_independent_of_order_within_a_depression(rng):
    n = 60
    yy, xx = np.mgrid[0:n, 0:n]
    bowl = 0.002 * ((xx - 30) ** 2 + (yy - 30) ** 2)  # one depression: the order cannot matter
    xy = rng.uniform(5, n - 5, (20, 2))
    vols = rng.uniform(10, 200, 20)
    fwd = [f"N{i:02d}" for i in range(20)]
    rev = fwd[::-1]
    a = spread_flood(raster(bowl), pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1]}, index=fwd), pd.Series(vols, index=fwd))
    b = spread_flood(raster(bowl), pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1]}, index=rev), pd.Series(vols, index=rev))
    assert np.allclose(a.depth.values, b.depth.values, rtol=0, atol=1e-9)
    bumpy = 20.0 + ndimage.gaussian_filter(rng.normal(0, 1, (n, n)), 3) * 20
    c1 = spread_flood(raster(bumpy), xy, vols).depth.values
    c2 = spread_flood(raster(bumpy), xy, vols).depth.values
    assert np.array_equal(c1, c2)


# ----------------------------------------------------------------------------- conservation


@pytest.mark.parametrize("boundary", ["wall", "outflow"])
def test_volume_conserved_on_a_bowl(boundary, rng):
    n = 80
    yy, xx = np.mgrid[0:n, 0:n]
    z = 0.001 * ((xx - 40) ** 2 + (yy - 40) ** 2) + rng.normal(0, 0.05, (n, n))
    xy = rng.uniform(2, n - 2, (25, 2)) * 2.0
    vols = rng.uniform(0, 500, 25)
    f = spread_flood(raster(z, 2.0), xy, vols, boundary=boundary)
    stored = f.depth.values.sum() * 4.0
    assert f.volume_in_m3 == pytest.approx(vols.sum())
    assert (stored + f.outflow_m3) == pytest.approx(vols.sum(), rel=1e-6)
    assert abs(f.continuity_error) < 1e-9
    assert (f.depth.values >= 0).all()
    if boundary == "wall":
        assert f.outflow_m3 == 0


def test_volume_conserved_on_tiny_city(tiny_city):
    vols = pd.Series(250.0, index=tiny_city.nodes.index)
    f = spread_flood(tiny_city.dem, tiny_city.nodes, vols)
    cell_area = tiny_city.dem.cell_size_m ** 2
    assert f.depth.values.sum() * cell_area == pytest.approx(vols.sum(), rel=1e-6)
    assert f.depth.crs == tiny_city.crs and f.depth.shape == tiny_city.dem.shape
    # the plane slopes east: the water ends against the east edge, not at the nodes
    assert f.depth.values[:, -1].min() > 0 and f.depth.values[:, :10].max() == 0
    out = spread_flood(tiny_city.dem, tiny_city.nodes, vols, boundary="outflow")
    assert out.outflow_m3 == pytest.approx(vols.sum(), rel=1e-12) and out.max_depth_m == 0


def test_max_surface_depth_uses_column_maxima(tiny_city):
    series = pd.DataFrame({"J2": [0.0, 100.0, 40.0], "J5": [0.0, 20.0, 80.0]})
    f = max_surface_depth(tiny_city.dem, tiny_city.nodes, series)
    assert isinstance(f, SurfaceFlood)
    assert f.volume_in_m3 == pytest.approx(180.0)
    assert f.nodes.loc[["J2", "J5"], "volume_m3"].tolist() == [100.0, 80.0]


def test_connectivity_4_keeps_water_behind_a_diagonal_wall():
    n = 12
    r, c = np.mgrid[0:n, 0:n]
    z = np.where(c > r, 5.0, 0.0)  # upper triangle 5 m, lower triangle 0 m
    z[r == c] = 10.0               # a diagonal wall, one cell thick
    node = {"J": centre(1, n - 2, 1.0, n)}
    four = spread_flood(raster(z), node, {"J": 10.0}, connectivity=4).depth.values
    eight = spread_flood(raster(z), node, {"J": 10.0}, connectivity=8).depth.values
    assert four[c > r].sum() == pytest.approx(10.0) and four[c < r].sum() == 0
    assert eight[c < r].sum() == pytest.approx(10.0) and eight[c > r].sum() == 0


def test_nodata_cells_are_walls():
    z = np.full((5, 7), 10.0)
    z[1:4, 1:6] = 9.0
    z[2, 3] = -9999.0  # a hole in the pit's floor
    f = spread_flood(raster(z, nodata=-9999.0), {"J": centre(2, 1, 1.0, 5)}, {"J": 7.0})
    assert f.depth.values[2, 3] == 0
    assert np.allclose(f.depth.values[1:4, 1:6].sum(), 7.0)


# ----------------------------------------------------------------------------- roads, buildings


@pytest.fixture
def pit_flood():
    """A 20 x 20 m grid (1 m cells) with a 6 x 6 m pit 1 m deep at x 7-13, y 7-13, 0.5 m of water."""
    z = np.full((20, 20), 10.0)
    z[7:13, 7:13] = 9.0
    return spread_flood(raster(z), {"J": (10.0, 10.0)}, {"J": 18.0})


def test_road_depths_and_closures(pit_flood):
    roads = gpd.GeoDataFrame(
        {"road_id": ["through", "edge", "far", "off"]},
        geometry=[LineString([(0, 10), (20, 10)]), LineString([(12.6, 0), (12.6, 20)]),
                  LineString([(0, 1), (20, 1)]), LineString([(100, 100), (120, 100)])],
        crs=CRS,
    ).set_index("road_id")
    depth = road_max_depth(roads, pit_flood)
    assert depth.name == "depth_m" and depth.index.name == "road_id"
    assert depth["through"] == pytest.approx(0.5) and depth["edge"] == pytest.approx(0.5)
    assert depth["far"] == 0 and np.isnan(depth["off"])

    status = road_closures(depth)
    assert status.loc["through", "status"] == "closed" and status.loc["far", "status"] == "open"
    assert status.loc["off", "status"] == "open"
    assert list(status["status"].cat.categories) == list(ROAD_STATUSES)
    assert status.attrs == {"car_m": 0.15, "all_m": 0.30}
    lenient = road_closures(depth, car_m=0.4, all_m=0.6)
    assert lenient.loc["through", "status"] == "closed_to_cars"
    thresholds = road_closures(pd.Series({"a": 0.149, "b": 0.15, "c": 0.299, "d": 0.30}))
    assert thresholds["status"].tolist() == ["open", "closed_to_cars", "closed_to_cars", "closed"]
    with pytest.raises(FloodInputError, match="car_m"):
        road_closures(depth, car_m=0.5, all_m=0.3)


def test_exposed_buildings(pit_flood):
    b = gpd.GeoDataFrame(
        {"building_id": ["wet", "dry", "tiny"], "residents": [10, 5, 1]},
        geometry=[box(12.5, 8.0, 16.0, 12.0), box(0.5, 0.5, 4.0, 4.0), box(9.2, 9.2, 9.4, 9.4)],
        crs=CRS,
    ).set_index("building_id")
    d = building_max_depth(b, pit_flood)
    assert d["wet"] == pytest.approx(0.5) and d["dry"] == 0 and d["tiny"] == pytest.approx(0.5)
    exposed = exposed_buildings(b, pit_flood, threshold_m=0.1)
    assert set(exposed.index) == {"wet", "tiny"}
    assert exposed.loc["wet", "residents"] == 10
    assert exposed_buildings(b, pit_flood, threshold_m=0.6).empty


# ----------------------------------------------------------------------------- errors


def test_spread_flood_bad_input():
    dem = raster(np.zeros((5, 5)))
    with pytest.raises(GeometryError, match=r"\['far'\] lie outside the DEM"):
        spread_flood(dem, {"far": (50.0, 50.0)}, {"far": 1.0})
    with pytest.raises(UnknownNodeError, match="J9"):
        spread_flood(dem, {"J1": (1.0, 1.0)}, {"J9": 1.0})
    with pytest.raises(KeyError):
        spread_flood(dem, {"J1": (1.0, 1.0)}, {"J9": 1.0})
    with pytest.raises(FloodInputError, match="'J1' has volume -1"):
        spread_flood(dem, {"J1": (1.0, 1.0)}, {"J1": -1.0})
    with pytest.raises(FloodInputError, match="boundary"):
        spread_flood(dem, {"J1": (1.0, 1.0)}, {"J1": 1.0}, boundary="sea")
    with pytest.raises(FloodInputError, match="2 values for 1 nodes"):
        spread_flood(dem, np.array([[1.0, 1.0]]), [1.0, 2.0])
    hole = raster(np.array([[1.0, -1.0], [1.0, 1.0]]), nodata=-1.0)
    with pytest.raises(GeometryError, match="nodata"):
        spread_flood(hole, {"J": (1.5, 1.5)}, {"J": 1.0})
    assert issubclass(FloodInputError, TwinError) and issubclass(UnknownNodeError, TwinError)


def test_inputs_are_not_mutated(tiny_city):
    nodes = tiny_city.nodes.copy()
    vols = pd.Series({"J0": 10.0, "J4": 20.0})
    before = tiny_city.dem.values.copy()
    spread_flood(tiny_city.dem, nodes, vols)
    assert np.array_equal(tiny_city.dem.values, before)
    pd.testing.assert_frame_equal(nodes, tiny_city.nodes)
    assert vols.to_dict() == {"J0": 10.0, "J4": 20.0}


# ----------------------------------------------------------------------------- reference implementation


def _reference_spread(z: np.ndarray, cells: list[tuple[int, int]], volumes: list[float], cell_m: float,
                      boundary: str, connectivity: int) -> np.ndarray:
    """Plain fill-and-spill without persistent lakes: every arrival re-floods from its pit on the
    current water surface (slow but simple); used to check the fast lake-merging version."""
    import heapq

    rows, cols = z.shape
    w = cols + 2
    edge = np.inf if boundary == "wall" else -np.inf
    pad = np.full((rows + 2, w), edge)
    pad[1:-1, 1:-1] = z
    ws = pad.ravel().tolist()
    nb = (-1, 1, -w, w) + ((-w - 1, -w + 1, w - 1, w + 1) if connectivity == 8 else ())
    area = cell_m ** 2

    def descend(i):
        while True:
            best = min((i + d for d in nb), key=lambda j: ws[j])
            if ws[best] >= ws[i] or ws[best] == -np.inf:
                return best if ws[best] == -np.inf else i
            i = best

    for (r, c), vol in zip(cells, volumes):  # in the given (node-ID) order
        src = (r + 1) * w + c + 1
        while vol > 0:
            pit = descend(src)
            if ws[pit] == -np.inf:
                break
            level, heap, seen, region, n, s = ws[pit], [(ws[pit], ws[pit], pit)], {pit}, [], 0, 0.0
            src = None
            while heap:
                key, wq, q = heapq.heappop(heap)
                if wq < level:
                    vol -= area * (n * level - s)
                    src = q
                    break
                if wq > level:
                    if vol <= area * (n * wq - s):
                        level, vol = (vol / area + s) / n, 0.0
                        break
                    level = wq
                region.append(q)
                n, s = n + 1, s + wq
                for d in nb:
                    j = q + d
                    if j not in seen:
                        seen.add(j)
                        heapq.heappush(heap, (max(ws[j], key), ws[j], j))
            for cidx in region:
                ws[cidx] = level
            if src is not None and ws[src] == -np.inf:
                break
    return np.maximum(np.asarray(ws).reshape(rows + 2, w)[1:-1, 1:-1] - z, 0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("boundary", ["wall", "outflow"])
@pytest.mark.parametrize("connectivity", [4, 8])
def test_lake_merging_matches_reference_fill_and_spill(seed, boundary, connectivity):
    rng = np.random.default_rng(seed)
    n = 50
    z = 10.0 + ndimage.gaussian_filter(rng.normal(0, 1, (n, n)), 2) * 8 + 0.02 * np.arange(n)[None, :]
    cells = [tuple(rc) for rc in rng.integers(2, n - 2, (30, 2))]
    cells = list(dict.fromkeys(cells))
    vols = rng.uniform(1, 60, len(cells)).tolist()
    ids = [f"N{i:02d}" for i in range(len(cells))]
    xy = {k: centre(r, c, 2.0, n) for k, (r, c) in zip(ids, cells)}
    fast = spread_flood(raster(z, 2.0), xy, dict(zip(ids, vols)), boundary=boundary, connectivity=connectivity)
    ref = _reference_spread(z, cells, vols, 2.0, boundary, connectivity)
    assert (fast.depth.values > 0).sum() > 50
    assert np.allclose(fast.depth.values, ref, rtol=0, atol=1e-9)
