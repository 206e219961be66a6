"""A georeferenced raster (the DEM) and its GeoTIFF reader and writer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine

from gisdata.errors import ColumnValueError, CorruptFileError, CRSError, InputFileNotFoundError
from gisdata.limits import MAX_GRID_CELLS


@dataclass(frozen=True, eq=False)
class Raster:
    """A single-band raster on a north-up grid.

    Parameters
    ----------
    values : numpy.ndarray
        2-D array (rows, cols) of float64 values, e.g. ground elevation in m.
        Row 0 is the northern edge.
    transform : affine.Affine
        Maps (col, row) pixel corners to (x, y) in the CRS, metres.
    crs : str
        Projected CRS, e.g. ``"EPSG:32650"``.
    nodata : float or None
        Value marking cells without data.
    """

    values: np.ndarray
    transform: Affine
    crs: str
    nodata: float | None = None

    def __post_init__(self) -> None:
        if self.transform.b != 0 or self.transform.d != 0:
            raise ValueError("only north-up rasters (no rotation) are supported")
        arr = np.asarray(self.values, dtype="float64")
        if arr.ndim != 2:
            raise ValueError(f"raster values must be 2-D, got shape {arr.shape}")
        if np.isinf(arr).any():  # NaN may mark missing cells; an infinite elevation is never data
            r, c = np.argwhere(np.isinf(arr))[0]
            raise ColumnValueError(f"raster ({self.crs}): {int(np.isinf(arr).sum())} infinite value(s), first at "
                                   f"row {r}, col {c}; expected finite values (NaN for no data)")
        if not (math.isfinite(self.transform.a) and math.isfinite(self.transform.e) and self.transform.a != 0
                and self.transform.e != 0 and math.isfinite(self.transform.c) and math.isfinite(self.transform.f)):
            raise ColumnValueError(f"raster ({self.crs}): transform {tuple(self.transform)[:6]} must be finite "
                                   "with non-zero cell size")
        arr = arr.copy()
        arr.setflags(write=False)  # the model is data: nobody edits it in place
        object.__setattr__(self, "values", arr)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return self.values.shape

    @property
    def cell_size_m(self) -> float:
        """Cell edge length in metres (square cells assumed)."""
        return abs(self.transform.a)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) in metres."""
        rows, cols = self.shape
        t = self.transform
        x0, y0, x1, y1 = t.c, t.f, t.c + cols * t.a, t.f + rows * t.e
        return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Return 2-D arrays (x, y) of cell-centre coordinates in metres."""
        rows, cols = self.shape
        c, r = np.meshgrid(np.arange(cols) + 0.5, np.arange(rows) + 0.5)
        t = self.transform  # north-up: no rotation terms
        return t.c + c * t.a, t.f + r * t.e

    def index_of(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Return (row, col) integer indices of points (x, y) in metres, clipped to the grid."""
        t = self.transform  # north-up: no rotation terms
        c = (np.asarray(x, dtype=float) - t.c) / t.a
        r = (np.asarray(y, dtype=float) - t.f) / t.e
        rows, cols = self.shape
        r = np.clip(np.floor(r).astype(int), 0, rows - 1)
        c = np.clip(np.floor(c).astype(int), 0, cols - 1)
        return r, c

    def sample(self, x, y) -> np.ndarray:
        """Values at points (x, y) in metres (nearest cell; points outside take the edge cell)."""
        r, c = self.index_of(x, y)
        return self.values[r, c]

    def equals(self, other: "Raster") -> bool:
        """True if values, transform, CRS and nodata are identical."""
        return (
            isinstance(other, Raster)
            and self.shape == other.shape
            and np.array_equal(self.values, other.values, equal_nan=True)
            and tuple(self.transform) == tuple(other.transform)
            and self.crs == other.crs
            and self.nodata == other.nodata
        )


def read_geotiff(path: str | Path, *, band: int = 1) -> Raster:
    """Read one band of a GeoTIFF into a :class:`Raster`.

    Raises
    ------
    InputFileNotFoundError
        If ``path`` does not exist.
    CorruptFileError
        If the file is not a readable raster.
    CRSError
        If the raster has no CRS.
    """
    import rasterio

    path = Path(path)
    if not path.exists():
        raise InputFileNotFoundError(f"{path}: DEM file not found (expected a GeoTIFF)")
    try:
        with rasterio.open(path) as src:
            if src.width * src.height > MAX_GRID_CELLS:  # a sparse file of a few bytes may claim any size
                raise CorruptFileError(f"{path}: {src.height} x {src.width} = {src.width * src.height:,} cells; "
                                       f"expected at most {MAX_GRID_CELLS:,} (MAX_GRID_CELLS)")
            values = src.read(band).astype("float64")
            transform = src.transform
            crs = src.crs
            nodata = src.nodata
    except rasterio.errors.RasterioIOError as exc:
        raise CorruptFileError(f"{path}: not a readable GeoTIFF ({exc})", key="err.dem.unreadable",
                               file=Path(path).name) from exc
    if crs is None:
        raise CRSError(f"{path}: DEM has no CRS; expected a projected CRS in metres")
    crs_str = crs.to_string()
    return Raster(values, transform, crs_str, None if nodata is None else float(nodata))


def write_geotiff(raster: Raster, path: str | Path) -> Path:
    """Write ``raster`` as a lossless float64 GeoTIFF (DEFLATE) and return the path.

    The file is written to a temporary name and renamed into place, so a
    failed write never leaves a half-written DEM.
    """
    import rasterio

    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    rows, cols = raster.shape
    profile = dict(
        driver="GTiff", height=rows, width=cols, count=1, dtype="float64",
        crs=raster.crs, transform=raster.transform, nodata=raster.nodata,
        compress="deflate",
    )
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(raster.values, 1)
    tmp.replace(path)
    return path
