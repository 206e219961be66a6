"""Files of a standalone 2D run (``twin flood2d``): strict readers and the result writer.

Every reader checks sizes before it allocates, and raises a
:class:`~hydraulics.surface2d.Surface2DInputError` (a ``TwinError``) whose
message names the file, the row or column, and what was expected.

Inputs
------
- DEM: a GeoTIFF in a projected CRS in metres, square cells, north up.
  Nodata cells connected to the edge of the raster are outside the domain
  (a clipped DEM); nodata holes enclosed by data are refused, since
  guessing ground there would invent terrain.
- ``rain.csv``: ``time_s,mm_h``, uniform over the grid; each intensity holds
  until the next row, and the last row closes the series.
- ``inflows.csv``: ``name,x,y,time_s,q_m3s``, one row per point and time,
  linear between times.
- ``gauges.csv``: ``name,x,y``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage

from gisdata.errors import CRSError, InputFileNotFoundError
from gisdata.limits import MAX_GRID_CELLS, MAX_RAIN_INTENSITY_MM_H
from gisdata.raster import Raster, write_geotiff
from hydraulics.surface2d import PointSource, Surface2DInputError, TimeSeries

MAX_CSV_BYTES = 50 * 1024 * 1024
"""Largest rain, inflow or gauge CSV read, bytes."""
MAX_CSV_ROWS = 1_000_000
"""Largest number of rows in one of those CSVs."""


@dataclass(frozen=True)
class Domain:
    """A DEM ready for the 2D surface.

    Parameters
    ----------
    dem : Raster
        Ground elevation, m (nodata replaced by 0 where ``outside``).
    outside : ndarray of bool
        Cells outside the domain.
    filled_from : str
        The DEM file, for messages.
    """

    dem: Raster
    outside: np.ndarray
    filled_from: str

    def cell_of(self, what: str, x: float, y: float, *, file: str) -> tuple[int, int]:
        """(row, col) of point (x, y) in m; refuses a point off the grid or outside the domain."""
        xmin, ymin, xmax, ymax = self.dem.bounds
        if not (math.isfinite(x) and math.isfinite(y) and xmin <= x < xmax and ymin < y <= ymax):
            raise Surface2DInputError(f"{file}: {what} at x={x}, y={y} lies outside the DEM extent "
                                      f"x {xmin:.1f}..{xmax:.1f}, y {ymin:.1f}..{ymax:.1f}")
        r, c = self.dem.index_of(x, y)
        r, c = int(r), int(c)
        if self.outside[r, c]:
            raise Surface2DInputError(f"{file}: {what} at x={x}, y={y} lies on a nodata cell of the DEM "
                                      f"(row {r}, col {c})")
        return r, c


def _check_file(path: Path, what: str, limit: int | None = None) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputFileNotFoundError(f"{path}: {what} not found")
    if limit is not None and path.stat().st_size > limit:
        raise Surface2DInputError(f"{path}: {what} is {path.stat().st_size / 2**20:.0f} MB; "
                                  f"the limit is {limit / 2**20:.0f} MB")
    return path


def _open_raster(path: Path, what: str):
    import rasterio

    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise Surface2DInputError(f"{path}: not a readable GeoTIFF {what} ({' '.join(str(exc).split())})") from None


def read_domain(path: str | Path) -> Domain:
    """Read a DEM for a 2D run: projected CRS, square north-up cells, no enclosed nodata holes.

    Raises
    ------
    InputFileNotFoundError, CRSError, Surface2DInputError
    """
    from pyproj import CRS

    path = _check_file(Path(path), "DEM")
    with _open_raster(path, "DEM") as src:
        rows, cols = src.height, src.width
        if rows * cols > MAX_GRID_CELLS:
            raise Surface2DInputError(f"{path}: DEM has {rows} x {cols} = {rows * cols:,} cells; the limit is "
                                      f"{MAX_GRID_CELLS:,} (resample it coarser)")
        if src.crs is None:
            raise CRSError(f"{path}: DEM has no CRS; expected a projected CRS in metres")
        crs = CRS.from_user_input(src.crs.to_wkt())
        if not crs.is_projected:
            raise CRSError(f"{path}: DEM is in a geographic CRS ({crs.name}); the 2D surface needs a projected "
                           "CRS in metres (reproject it, e.g. to UTM)")
        unit = crs.axis_info[0].unit_name if crs.axis_info else "metre"
        if unit not in ("metre", "meter"):
            raise CRSError(f"{path}: DEM CRS units are {unit}; expected metres")
        t = src.transform
        if t.b != 0 or t.d != 0 or t.a <= 0 or t.e >= 0:
            raise Surface2DInputError(f"{path}: DEM must be north-up without rotation")
        if not math.isclose(t.a, -t.e, rel_tol=1e-6):
            raise Surface2DInputError(f"{path}: DEM cells must be square; got {t.a} x {-t.e} m")
        values = src.read(1, masked=True).astype("float64")
        crs_str = src.crs.to_string()
    invalid = np.ma.getmaskarray(values) | ~np.isfinite(values.filled(np.nan))
    outside = np.zeros(invalid.shape, dtype=bool)
    if invalid.any():
        labels, n = ndimage.label(invalid)
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        outside = np.isin(labels, edge[edge > 0])
        holes = invalid & ~outside
        if holes.any():
            r, c = np.argwhere(holes)[0]
            x, y = t.c + (c + 0.5) * t.a, t.f + (r + 0.5) * t.e
            raise Surface2DInputError(
                f"{path}: DEM has {int(holes.sum())} nodata cell(s) inside the domain, first at row {r}, col {c} "
                f"(x={x:.1f}, y={y:.1f}); refused rather than guessed: fill them (e.g. gdal_fillnodata) "
                "or make them part of the outside by clipping")
        if outside.all():
            raise Surface2DInputError(f"{path}: DEM holds no valid cell")
    z = np.where(outside, 0.0, values.filled(0.0))
    return Domain(Raster(z, t, crs_str), outside, str(path))


def read_cell_raster(path: str | Path, domain: Domain, *, what: str, unit: str) -> np.ndarray:
    """A raster on exactly the DEM's grid (Manning's n, initial depth), as float64 (rows, cols)."""
    path = _check_file(Path(path), what)
    with _open_raster(path, what) as src:
        if (src.height, src.width) != domain.dem.shape or not src.transform.almost_equals(domain.dem.transform):
            raise Surface2DInputError(f"{path}: {what} grid {src.height} x {src.width} at {tuple(src.transform)[:6]} "
                                      f"differs from the DEM's {domain.dem.shape} at "
                                      f"{tuple(domain.dem.transform)[:6]}; resample it onto the DEM grid")
        arr = src.read(1, masked=True).astype("float64")
    values = arr.filled(np.nan)
    bad = ~np.isfinite(values) & ~domain.outside
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise Surface2DInputError(f"{path}: {what} is nodata or not finite at row {r}, col {c} inside the domain")
    return np.where(domain.outside, 0.0, values)


def _read_csv(path: str | Path, what: str, columns: dict[str, str]) -> pd.DataFrame:
    """A CSV with exactly the named columns (extra columns are ignored); numeric ones are checked."""
    path = _check_file(Path(path), what, MAX_CSV_BYTES)
    try:
        with warnings.catch_warnings():
            # a row with more fields than the header: refused (pandas would otherwise make the extra fields a
            # many-level index, which takes minutes for a few thousand fields, or drop them silently)
            warnings.simplefilter("error", pd.errors.ParserWarning)
            df = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=MAX_CSV_ROWS + 1, index_col=False,
                             skipinitialspace=True, encoding="utf-8")
    except pd.errors.ParserWarning:
        raise Surface2DInputError(f"{path}: {what} has a row with more fields than its header "
                                  f"(expected columns {','.join(columns)})") from None
    except UnicodeDecodeError:
        raise Surface2DInputError(f"{path}: {what} is not UTF-8 text") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise Surface2DInputError(f"{path}: {what} is not a readable CSV ({' '.join(str(exc).split())})") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise Surface2DInputError(f"{path}: {what} lacks column(s) {missing}; expected columns "
                                  f"{','.join(columns)} (found {','.join(df.columns) or 'none'})")
    if len(df) > MAX_CSV_ROWS:
        raise Surface2DInputError(f"{path}: {what} has more than {MAX_CSV_ROWS:,} rows")
    if df.empty:
        raise Surface2DInputError(f"{path}: {what} has no data rows")
    out = pd.DataFrame(index=df.index)
    for col, kind in columns.items():
        if kind == "str":
            out[col] = df[col].str.strip()
            blank = out[col] == ""
            if blank.any():
                raise Surface2DInputError(f"{path}: line {int(np.argmax(blank)) + 2}: column {col} is empty")
            continue
        num = pd.to_numeric(df[col].str.strip(), errors="coerce")
        bad = num.isna() | ~np.isfinite(num)
        if bad.any():
            k = int(np.argmax(bad.to_numpy()))
            raise Surface2DInputError(f"{path}: line {k + 2}: column {col} = {df[col].iloc[k]!r} is not a "
                                      f"finite number")
        out[col] = num.astype("float64")
    return out


def _check_range(path, df: pd.DataFrame, col: str, lo: float, hi: float, unit: str) -> None:
    bad = (df[col] < lo) | (df[col] > hi)
    if bad.any():
        k = int(np.argmax(bad.to_numpy()))
        raise Surface2DInputError(f"{path}: line {k + 2}: {col} = {df[col].iloc[k]} {unit} is out of range; "
                                  f"expected {lo}..{hi} {unit}")


def _series(path, times: np.ndarray, values: np.ndarray, *, hold: bool, label: str) -> TimeSeries:
    if times.size > 1 and np.any(np.diff(times) <= 0):
        k = int(np.argmax(np.diff(times) <= 0)) + 1
        raise Surface2DInputError(f"{path}: {label}time_s must increase (time {times[k]} s follows {times[k - 1]} s)")
    return TimeSeries(times, values, hold=hold)


MAX_TIME_S = 30 * 86400.0
"""Latest time a rain or inflow series may name, s (30 days)."""


def read_rain_csv(path: str | Path) -> TimeSeries:
    """``time_s,mm_h`` rain over the grid: held from each row to the next; the last row closes it."""
    df = _read_csv(path, "rain CSV", {"time_s": "float", "mm_h": "float"})
    _check_range(path, df, "time_s", 0.0, MAX_TIME_S, "s")
    _check_range(path, df, "mm_h", 0.0, MAX_RAIN_INTENSITY_MM_H, "mm/h")
    return _series(path, df["time_s"].to_numpy(), df["mm_h"].to_numpy(), hold=True, label="")


def read_inflows_csv(path: str | Path, domain: Domain) -> list[PointSource]:
    """``name,x,y,time_s,q_m3s`` point inflows (linear in time) on the domain's cells."""
    df = _read_csv(path, "inflow CSV", {"name": "str", "x": "float", "y": "float", "time_s": "float",
                                        "q_m3s": "float"})
    _check_range(path, df, "time_s", 0.0, MAX_TIME_S, "s")
    _check_range(path, df, "q_m3s", 0.0, 1e4, "m3/s")
    sources = []
    for name, rows in df.groupby("name", sort=False):
        xs, ys = rows["x"].unique(), rows["y"].unique()
        if xs.size != 1 or ys.size != 1:
            raise Surface2DInputError(f"{path}: inflow {name!r} has more than one position; give one x, y per name")
        r, c = domain.cell_of(f"inflow {name!r}", float(xs[0]), float(ys[0]), file=str(path))
        rows = rows.sort_values("time_s", kind="stable")
        series = _series(path, rows["time_s"].to_numpy(), rows["q_m3s"].to_numpy(), hold=False,
                         label=f"inflow {name!r}: ")
        sources.append(PointSource(str(name), r, c, series))
    return sources


def read_gauges_csv(path: str | Path, domain: Domain) -> pd.DataFrame:
    """``name,x,y`` gauges; returns a frame indexed by name with ``x``, ``y``, ``row``, ``col``."""
    df = _read_csv(path, "gauge CSV", {"name": "str", "x": "float", "y": "float"})
    if df["name"].duplicated().any():
        raise Surface2DInputError(f"{path}: gauge name {df['name'][df['name'].duplicated()].iloc[0]!r} repeats")
    cells = [domain.cell_of(f"gauge {n!r}", x, y, file=str(path)) for n, x, y in zip(df["name"], df["x"], df["y"])]
    df["row"] = [rc[0] for rc in cells]
    df["col"] = [rc[1] for rc in cells]
    return df.set_index("name")


def write_depth_tif(depth: np.ndarray, domain: Domain, path: Path) -> Path:
    """Write a depth grid (m) with the DEM's CRS and transform; nodata (-9999) outside the domain."""
    values = np.where(domain.outside, -9999.0, depth)
    return write_geotiff(Raster(values, domain.dem.transform, domain.dem.crs, nodata=-9999.0), path)
