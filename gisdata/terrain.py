"""Synthetic terrain: a DEM with a river valley, a regional slope and closed basins.

The DEM is what makes a synthetic city drain plausibly: the river is the lowest
line of the map, the ground rises away from it (steeper on the terrace next to
the river, flatter further out), falls gently downstream, and holds a few
closed depressions (the low spots where water collects in a storm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine
from scipy.ndimage import gaussian_filter
from shapely.geometry import LineString, Point, Polygon

from gisdata.raster import Raster

RIVER_WIDTH_M = 50.0
"""Width of the river channel at the water line, m."""

CHANNEL_DEPTH_M = 4.0
"""Depth of the channel bed below its banks, m."""


@dataclass(frozen=True)
class Terrain:
    """A generated DEM and the landforms it was made from.

    Parameters
    ----------
    dem : Raster
        Ground elevation, m above datum.
    river_centerline : shapely.geometry.LineString
        Centre line of the river, flowing west to east.
    river : shapely.geometry.Polygon
        Water surface of the river (the channel between its banks).
    basins : list of shapely.geometry.Polygon
        Footprints of the closed depressions (discs of 1.5 radii).
    """

    dem: Raster
    river_centerline: LineString
    river: Polygon
    basins: list[Polygon]


def _river_y(x: np.ndarray, y_mid: float, amplitude_m: float, wavelength_m: float, phase: float) -> np.ndarray:
    """Northing of the river centre line at easting ``x`` (a gentle two-harmonic meander)."""
    k = 2 * np.pi / wavelength_m
    return y_mid + amplitude_m * (np.sin(k * x + phase) + 0.35 * np.sin(2.3 * k * x + 1.7 * phase))


def generate_terrain(
    rng: np.random.Generator,
    *,
    x0: float,
    y0: float,
    width_m: float,
    height_m: float,
    crs: str,
    cell_m: float = 10.0,
    n_basins: int = 4,
) -> Terrain:
    """Generate a DEM with a meandering west-east river valley and closed basins.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (the only one used).
    x0, y0 : float
        South-west corner of the DEM, m (in ``crs``).
    width_m, height_m : float
        Extent of the DEM, m.
    crs : str
        Projected CRS of the DEM.
    cell_m : float
        DEM cell size, m.
    n_basins : int
        Number of closed depressions (1.5-3 m deep, 120-250 m radius).

    Returns
    -------
    Terrain

    Examples
    --------
    >>> t = generate_terrain(np.random.default_rng(0), x0=0, y0=0, width_m=1000, height_m=1000, crs="EPSG:32650")
    >>> t.dem.shape
    (100, 100)
    """
    if width_m <= 0 or height_m <= 0 or cell_m <= 0:
        raise ValueError(f"width_m={width_m}, height_m={height_m}, cell_m={cell_m} must all be > 0")
    cols, rows = int(round(width_m / cell_m)), int(round(height_m / cell_m))
    transform = Affine(cell_m, 0, x0, 0, -cell_m, y0 + rows * cell_m)
    c, r = np.meshgrid(np.arange(cols) + 0.5, np.arange(rows) + 0.5)
    x = x0 + c * cell_m
    y = y0 + rows * cell_m - r * cell_m

    # River: a third of the way up, meandering a little; it is the valley floor.
    y_mid = y0 + height_m * rng.uniform(0.32, 0.42)
    amplitude = height_m * rng.uniform(0.025, 0.045)
    wavelength = width_m * rng.uniform(0.8, 1.3)
    phase = rng.uniform(0, 2 * np.pi)
    yc = _river_y(x, y_mid, amplitude, wavelength, phase)
    dydx = np.gradient(yc, axis=1) / cell_m
    dist = np.abs(y - yc) / np.sqrt(1 + dydx**2)  # distance to the centre line, m
    side = np.sign(y - yc)

    bed_m = 40.0 - 0.0004 * (x - x0)  # river falls 0.4 m/km eastwards
    half = RIVER_WIDTH_M / 2
    # Channel: bed at the centre, rising to bank level at the water line.
    channel = CHANNEL_DEPTH_M * np.clip(dist / half, 0, 1) ** 2
    # Valley sides: a terrace rising ~6 m within the first ~700 m, then a gentle 0.15 % slope;
    # the north side rises a little faster than the south (asymmetric valley).
    out = np.maximum(dist - half, 0)
    side_gain = np.where(side > 0, 1.15, 0.9)
    valley = side_gain * (6.0 * (1 - np.exp(-out / 700.0)) + 0.0015 * out)
    z = bed_m + channel + valley

    # Smooth noise: undulations of a few hundred metres, ~0.4 m standard deviation.
    noise = gaussian_filter(rng.standard_normal((rows, cols)), sigma=200.0 / cell_m, mode="reflect")
    noise *= 0.4 / max(noise.std(), 1e-12)
    z += np.where(dist > half, noise, 0.0)

    # Closed basins away from the river (the low spots of the city).
    centres: list[Point] = []
    basins: list[Polygon] = []
    margin = 0.12
    tries = 0
    while len(basins) < n_basins and tries < 200:
        tries += 1
        bx = x0 + width_m * rng.uniform(margin, 1 - margin)
        by = y0 + height_m * rng.uniform(margin, 1 - margin)
        ryc = _river_y(np.array([bx]), y_mid, amplitude, wavelength, phase)[0]
        if abs(by - ryc) < 350 or any(p.distance(Point(bx, by)) < 500 for p in centres):
            continue
        radius = rng.uniform(120, 250)
        depth = rng.uniform(1.5, 3.0)
        z -= depth * np.exp(-(((x - bx) ** 2 + (y - by) ** 2) / (2 * radius**2)))
        centres.append(Point(bx, by))
        basins.append(Point(bx, by).buffer(1.5 * radius))

    z = np.round(z, 2)  # cm precision: plenty for drainage, and the GeoTIFF compresses well
    xs = np.linspace(x0, x0 + width_m, max(int(width_m / 20), 2))
    centerline = LineString(np.column_stack([xs, _river_y(xs, y_mid, amplitude, wavelength, phase)]))
    river = centerline.buffer(half, cap_style="flat")
    return Terrain(Raster(z, transform, crs), centerline, river, basins)


UNDERPASS_TAPER_M = 6.0
"""Width over which an underpass cutting meets the ground beside it (its retaining walls), m."""


def carve_sags(dem: Raster, sags, *, grade: float = 0.06) -> Raster:
    """Lower the ground at the sag points of a city: underpass cuttings and low-crossing hollows.

    - **Underpass** (a row with a ``line``): a level floor ``depth_m`` below the
      road's natural grade at the low point (the sag's geometry), ramps rising
      at ``grade`` along the road until they meet the ground, across the
      cutting's ``half_width_m`` on each side of the centre line (carriageway
      and footways), then up to the ground over :data:`UNDERPASS_TAPER_M`.
    - **Low crossing** (``line`` None): a paraboloid hollow ``depth_m`` deep at
      the junction and ``length_m`` across; where the natural ground is lower
      than the hollow's shape (downhill of the junction) it is kept, so water
      leaves a low crossing downhill once the hollow is full.

    Parameters
    ----------
    dem : Raster
        Ground elevation, m.
    sags : geopandas.GeoDataFrame
        ``SagPlan.sags`` (:func:`gisdata.streets.place_sags`).
    grade : float
        Grade of the ramps, m/m.

    Returns
    -------
    Raster
        A new DEM (cm precision); cells off the sags keep their elevation.

    Examples
    --------
    >>> import geopandas as gpd
    >>> from affine import Affine
    >>> flat = Raster(np.full((40, 40), 50.0), Affine(10, 0, 0, 0, -10, 400), "EPSG:32650")
    >>> sag = gpd.GeoDataFrame({"kind": ["underpass"], "depth_m": [2.0], "length_m": [100.0],
    ...                         "half_width_m": [12.0], "line": [LineString([(0, 205), (400, 205)])]},
    ...                        geometry=[Point(200, 205)], crs="EPSG:32650")
    >>> z = carve_sags(flat, sag).values
    >>> float(z.min()), float(z[0, 0])
    (48.0, 50.0)
    """
    import shapely

    z = np.array(dem.values, dtype="float64", copy=True)
    rows, cols = z.shape
    cell = dem.cell_size_m
    tr = dem.transform
    for sag in sags.itertuples():
        pt = sag.geometry
        line = getattr(sag, "line", None)
        depth = float(sag.depth_m)
        reach = float(sag.length_m) / 2 + (sag.half_width_m + UNDERPASS_TAPER_M if line is not None else 0.0) + cell
        r0, r1 = (pt.y + reach - tr.f) / tr.e, (pt.y - reach - tr.f) / tr.e
        c0, c1 = (pt.x - reach - tr.c) / tr.a, (pt.x + reach - tr.c) / tr.a
        r0, r1 = max(int(np.floor(r0)), 0), min(int(np.ceil(r1)) + 1, rows)
        c0, c1 = max(int(np.floor(c0)), 0), min(int(np.ceil(c1)) + 1, cols)
        if r0 >= r1 or c0 >= c1:
            continue
        rr, cc = np.mgrid[r0:r1, c0:c1]
        xs, ys = tr.c + (cc + 0.5) * tr.a, tr.f + (rr + 0.5) * tr.e
        win = z[r0:r1, c0:c1]
        pr, pc = dem.index_of(pt.x, pt.y)
        z_low = float(dem.values[pr, pc]) - depth
        if line is not None:
            pts = shapely.points(xs.ravel(), ys.ravel())
            along = shapely.line_locate_point(line, pts).reshape(xs.shape)
            off = shapely.distance(line, pts).reshape(xs.shape)
            floor = float(sag.length_m) - 2 * depth / grade
            target = z_low + grade * np.maximum(np.abs(along - line.project(pt)) - floor / 2, 0.0)
            weight = np.clip((sag.half_width_m + UNDERPASS_TAPER_M - off) / UNDERPASS_TAPER_M, 0.0, 1.0)
            win -= weight * np.maximum(win - target, 0.0)
        else:
            radius = float(sag.length_m) / 2
            r2 = ((xs - pt.x) ** 2 + (ys - pt.y) ** 2) / radius**2
            target = np.where(r2 < 1.0, z_low + depth * r2, np.inf)
            np.minimum(win, target, out=win)
    return Raster(np.round(z, 2), dem.transform, dem.crs, dem.nodata)
