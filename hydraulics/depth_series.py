"""Street water depth over time: the one artefact every picture of a coupled run reads.

A coupled run (the flood event, the coupled simulation, ``twin swmm run --city``)
keeps a :class:`DepthSeries`: the 2D surface's depth grid at every report time,
on the surface's grid.  It is written as one multi-band GeoTIFF,
``depth_series.tif`` (band k = report time k, float32 m, deflate-compressed,
nodata -9999 on walls and river), with the times in the band descriptions
(``t=300s``) and in a ``time_s`` tag, so a flood engineer can open it in QGIS
and the workbench, the 3D scene and ``twin render`` read the same frames.

Frames are thinned to at most :data:`MAX_FRAMES` (every k-th report, the last
always kept) so a long run stays a few MB.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gisdata.errors import TwinError

MAX_FRAMES = 300
"""Most frames kept in a depth series."""
NODATA = -9999.0
FILE_NAME = "depth_series.tif"
"""Name of the series inside a run folder."""


class DepthSeriesError(TwinError, ValueError):
    """A depth series file is missing, malformed or too large (the message names the file)."""


@dataclass(frozen=True, eq=False)
class DepthSeries:
    """Depth grids at report times.

    Parameters
    ----------
    times_s : ndarray (T,)
        Simulated time of each frame, s from the run start (increasing).
    depth_m : ndarray (T, rows, cols), float32
        Water depth, m (0 on walls and river cells).
    transform : affine.Affine
        Grid transform (north up, square cells, m).
    crs : str
        The grid's CRS (projected, m).
    domain : ndarray (rows, cols) of bool
        Cells where street water can be (not a wall, not the river).
    """

    times_s: np.ndarray
    depth_m: np.ndarray
    transform: object
    crs: str
    domain: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.depth_m.shape[1:]

    @property
    def cell_size_m(self) -> float:
        return float(abs(self.transform.a))

    def frame_at(self, t_s: float) -> int:
        """Index of the last frame at or before ``t_s`` (the first frame before it starts)."""
        k = int(np.searchsorted(self.times_s, float(t_s) + 1e-9, side="right")) - 1
        return max(k, 0)

    def max_depth_m(self) -> np.ndarray:
        """Largest depth of each cell over the frames, m."""
        return self.depth_m.max(axis=0) if len(self.times_s) else np.zeros(self.shape, np.float32)

    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax), m."""
        rows, cols = self.shape
        t = self.transform
        return (t.c, t.f + rows * t.e, t.c + cols * t.a, t.f)

    def write(self, path: str | Path) -> Path:
        """Write ``depth_series.tif`` (see the module docstring); returns the path."""
        import rasterio

        path = Path(path)
        n, rows, cols = self.depth_m.shape
        with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=max(n, 1), dtype="float32",
                           crs=self.crs, transform=self.transform, nodata=NODATA, compress="deflate",
                           predictor=3, tiled=rows >= 256 and cols >= 256) as dst:
            for k in range(max(n, 1)):
                band = self.depth_m[k] if n else np.zeros((rows, cols), np.float32)
                dst.write(np.where(self.domain, band, NODATA).astype("float32"), k + 1)
                if n:
                    dst.set_band_description(k + 1, f"t={self.times_s[k]:g}s")
            dst.update_tags(time_s=",".join(f"{t:g}" for t in self.times_s), units="m",
                            content="street water depth at report times")
        return path


class DepthSeriesRecorder:
    """Collects frames from a running surface: pass :meth:`add` as (or inside) ``on_report``.

    Parameters
    ----------
    transform, crs, domain
        As in :class:`DepthSeries`.
    every_s : float
        Keep a frame at most this often, s (the report step, or a multiple of it).
    """

    def __init__(self, transform, crs: str, domain: np.ndarray, *, every_s: float = 300.0) -> None:
        self.transform, self.crs, self.domain = transform, crs, np.asarray(domain, bool)
        self.every_s = float(every_s)
        self._t: list[float] = []
        self._d: list[np.ndarray] = []

    def add(self, t_s: float, depth_m: np.ndarray) -> None:
        """Keep ``depth_m`` (copied, float32) at time ``t_s`` if a frame is due."""
        if self._t and t_s < self._t[-1] + self.every_s - 1e-6:
            return
        self._t.append(float(t_s))
        self._d.append(np.where(self.domain, depth_m, 0.0).astype(np.float32))

    def result(self) -> DepthSeries:
        """The frames, thinned to :data:`MAX_FRAMES` (the last kept)."""
        times = np.array(self._t, float)
        frames = self._d
        if len(frames) > MAX_FRAMES:
            step = int(np.ceil(len(frames) / MAX_FRAMES))
            keep = list(range(0, len(frames), step))
            if keep[-1] != len(frames) - 1:
                keep[-1] = len(frames) - 1
            times, frames = times[keep], [frames[k] for k in keep]
        shape = self.domain.shape
        depth = np.stack(frames) if frames else np.zeros((0, *shape), np.float32)
        return DepthSeries(times, depth, self.transform, self.crs, self.domain)


def read_depth_series(path: str | Path) -> DepthSeries:
    """Read a ``depth_series.tif`` written by :meth:`DepthSeries.write` (or a run folder holding one).

    Raises
    ------
    DepthSeriesError
        Missing file, no ``time_s`` tag, or times that do not match the bands.
    """
    import rasterio

    from gisdata.limits import MAX_GRID_CELLS

    path = Path(path)
    if path.is_dir():
        path = path / FILE_NAME
    if not path.is_file():
        raise DepthSeriesError(f"{path}: no depth series (a coupled run writes {FILE_NAME})")
    try:
        with rasterio.open(path) as src:
            if src.width * src.height * src.count > MAX_GRID_CELLS * 4:
                raise DepthSeriesError(f"{path}: {src.count} bands of {src.width} x {src.height} cells is too "
                                       f"large to load")
            tag = src.tags().get("time_s")
            if tag is None:
                raise DepthSeriesError(f"{path}: no time_s tag; not a CityTwin depth series")
            times = np.array([float(v) for v in tag.split(",") if v != ""], float)
            data = src.read().astype(np.float32)
            transform, crs = src.transform, (src.crs.to_string() if src.crs else "")
    except rasterio.errors.RasterioError as exc:
        raise DepthSeriesError(f"{path}: not a readable GeoTIFF ({exc})") from None
    except ValueError as exc:
        raise DepthSeriesError(f"{path}: bad time_s tag ({exc})") from None
    domain = data[0] != NODATA
    if times.size == 0:
        return DepthSeries(times, np.zeros((0, *domain.shape), np.float32), transform, crs, domain)
    if times.size != data.shape[0] or not np.all(np.diff(times) > 0):
        raise DepthSeriesError(f"{path}: {times.size} times for {data.shape[0]} bands, or times not increasing")
    data[:, ~domain] = 0.0
    return DepthSeries(times, data, transform, crs, domain)
