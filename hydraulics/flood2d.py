"""A standalone 2D flood run: DEM + sources in, rasters, gauges and a mass balance out.

:func:`run_flood2d` is the library side of ``twin flood2d`` (the command
only parses arguments).  It validates every input before it creates any
output, runs :class:`~hydraulics.surface2d.Surface2D`, and writes into a
temporary folder that is moved to ``out`` only when the run succeeded:

- ``max_depth.tif``, ``final_depth.tif``: depth (m), the DEM's CRS and transform;
- ``gauges.csv``: ``time_s,name,depth_m,wse_m`` at every report step;
- ``mass_balance.csv``: cumulative volumes (m3) and the error at every report step;
- ``summary.json``: the figures the command prints.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gisdata.limits import MAX_MANNING_N, MAX_SURFACE_HOURS, check_range
from gisdata.paths import StagedDir
from hydraulics.surface2d import Surface2D, Surface2DInputError
from hydraulics.surface2d_io import (read_cell_raster, read_domain, read_gauges_csv,
                                     read_inflows_csv, read_rain_csv, write_depth_tif)

MAX_REPORTS = 100_000
"""Most report steps of one run (rows of mass_balance.csv)."""
FLOODED_M = 0.05
"""Depth from which a cell counts as flooded in the summary, m."""


@dataclass(frozen=True)
class Flood2DSpec:
    """What to run.  Paths are files; numbers carry their units.

    Parameters
    ----------
    dem : Path
        Ground GeoTIFF (projected CRS, m).
    hours : float
        Simulated duration, h (0 < hours <= ``gisdata.limits.MAX_SURFACE_HOURS``).
    manning : float
        Uniform Manning's n, s/m^(1/3), used when ``manning_raster`` is None.
    manning_raster, initial_depth, rain, inflow, gauges : Path or None
        Optional inputs (see :mod:`hydraulics.surface2d_io`).
    boundary : {"closed", "open"}
        Kind of all four grid edges.
    report_step_s : float
        Interval of gauge and mass-balance rows, s.
    cfl, dt_max_s, theta, h_min_m : float
        Solver settings (see :class:`~hydraulics.surface2d.Surface2D`).
    """

    dem: Path
    hours: float
    manning: float = 0.03
    manning_raster: Path | None = None
    initial_depth: Path | None = None
    rain: Path | None = None
    inflow: Path | None = None
    gauges: Path | None = None
    boundary: str = "closed"
    report_step_s: float = 300.0
    cfl: float = 0.7
    dt_max_s: float = 5.0
    theta: float = 0.8
    h_min_m: float = 0.001

    def check(self) -> None:
        """Range-check the numbers before anything is read or allocated."""
        check_range("--hours", self.hours, 0.0, MAX_SURFACE_HOURS, "h", lo_inclusive=False)
        check_range("--report-step", self.report_step_s, 1.0, None, "s")
        n_reports = self.hours * 3600.0 / self.report_step_s
        if n_reports > MAX_REPORTS:
            raise Surface2DInputError(f"--report-step {self.report_step_s:g} s gives {n_reports:,.0f} reports over "
                                      f"{self.hours:g} h; the limit is {MAX_REPORTS:,}")
        check_range("--cfl", self.cfl, 0.0, 1.0, lo_inclusive=False)
        check_range("--dt-max", self.dt_max_s, 0.0, 3600.0, "s", lo_inclusive=False)
        check_range("--theta", self.theta, 0.5, 1.0)
        if self.boundary not in ("closed", "open"):
            raise Surface2DInputError(f"--boundary {self.boundary!r}: expected closed or open")
        if self.manning_raster is None:
            check_range("--manning", self.manning, 0.0, MAX_MANNING_N, "s/m^(1/3)", lo_inclusive=False)


@dataclass(frozen=True)
class Flood2DSummary:
    """Figures of a finished run (also written to ``summary.json``)."""

    out: str
    dem: str
    rows: int
    cols: int
    cell_size_m: float
    domain_cells: int
    hours: float
    steps: int
    wall_time_s: float
    cell_updates_per_s: float
    max_depth_m: float
    flooded_area_m2: float
    initial_m3: float
    rain_m3: float
    inflow_m3: float
    boundary_out_m3: float
    stored_m3: float
    mass_balance_error_m3: float
    mass_balance_error_rel: float

    def lines(self) -> list[str]:
        """The printed summary."""
        return [
            f"output            {self.out}",
            f"grid              {self.rows} x {self.cols} cells of {self.cell_size_m:g} m "
            f"({self.domain_cells:,} in the domain)",
            f"simulated         {self.hours:g} h in {self.steps:,} steps, {self.wall_time_s:.1f} s wall "
            f"({self.cell_updates_per_s / 1e6:.1f} M cell-updates/s)",
            f"max depth         {self.max_depth_m:.3f} m",
            f"flooded area      {self.flooded_area_m2:,.0f} m2 (depth >= {FLOODED_M} m at any time)",
            f"volumes (m3)      initial {self.initial_m3:,.1f}, rain {self.rain_m3:,.1f}, "
            f"inflow {self.inflow_m3:,.1f}, out through edges {self.boundary_out_m3:,.1f}, "
            f"stored {self.stored_m3:,.1f}",
            f"mass balance      error {self.mass_balance_error_m3:.3e} m3, "
            f"relative {self.mass_balance_error_rel:.2e}",
        ]


def run_flood2d(spec: Flood2DSpec, out: str | Path, *,
                on_progress: Callable[[float], None] | None = None) -> Flood2DSummary:
    """Run a standalone 2D flood and write its results to ``out``.

    Parameters
    ----------
    spec : Flood2DSpec
        Inputs and settings.
    out : str or Path
        Output folder (new, or empty).
    on_progress : callable, optional
        Called with the fraction of simulated time done (0..1).

    Returns
    -------
    Flood2DSummary

    Raises
    ------
    Surface2DInputError, InputFileNotFoundError, CRSError
        Bad input, before any output exists.
    Surface2DInstabilityError
        The run became unstable; nothing is left at ``out``.
    """
    spec.check()
    domain = read_domain(spec.dem)
    manning = (read_cell_raster(spec.manning_raster, domain, what="Manning raster", unit="s/m^(1/3)")
               if spec.manning_raster is not None else spec.manning)
    if spec.manning_raster is not None:
        bad = ~domain.outside & ~(np.asarray(manning) > 0)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise Surface2DInputError(f"{spec.manning_raster}: Manning's n must be > 0; "
                                      f"got {manning[r, c]} at row {r}, col {c}")
    h0 = (read_cell_raster(spec.initial_depth, domain, what="initial depth raster", unit="m")
          if spec.initial_depth is not None else 0.0)
    rain = read_rain_csv(spec.rain) if spec.rain is not None else None
    sources = read_inflows_csv(spec.inflow, domain) if spec.inflow is not None else []
    gauges = read_gauges_csv(spec.gauges, domain) if spec.gauges is not None else None
    surface = Surface2D(domain.dem.values, cell_size_m=domain.dem.cell_size_m, manning=manning,
                        initial_depth_m=h0, outside=domain.outside, boundary=spec.boundary, rain_mm_h=rain,
                        sources=sources, cfl=spec.cfl, dt_max_s=spec.dt_max_s, theta=spec.theta,
                        h_min_m=spec.h_min_m)
    folder = StagedDir(out)
    try:
        summary = _run(spec, surface, domain, gauges, folder, on_progress)
    except BaseException:
        folder.abort()
        raise
    folder.commit()
    return summary


def _run(spec, surface: Surface2D, domain, gauges, folder: StagedDir, on_progress) -> Flood2DSummary:
    end_s = spec.hours * 3600.0
    n_reports = max(1, math.ceil(end_s / spec.report_step_s - 1e-9))
    report_times = np.minimum(np.arange(1, n_reports + 1) * spec.report_step_s, end_s)
    balance_rows = [surface.mass_balance().as_row()]
    gauge_rows = []

    def sample(t: float) -> None:
        if gauges is None:
            return
        depth = surface.depth_m[gauges["row"].to_numpy(), gauges["col"].to_numpy()]
        ground = domain.dem.values[gauges["row"].to_numpy(), gauges["col"].to_numpy()]
        gauge_rows.extend({"time_s": t, "name": n, "depth_m": d, "wse_m": g + d}
                          for n, d, g in zip(gauges.index, depth, ground))

    sample(0.0)
    last_tick = [0.0]

    def tick(t: float) -> None:  # progress during long report intervals, at most ~5 times a second
        now = time.perf_counter()
        if on_progress is not None and now - last_tick[0] > 0.2:
            last_tick[0] = now
            on_progress(t / end_s)

    t0 = time.perf_counter()
    for t in report_times:
        surface.run_until(float(t), on_step=tick)
        balance_rows.append(surface.mass_balance().as_row())
        sample(float(t))
        if on_progress is not None:
            on_progress(float(t) / end_s)
    wall = time.perf_counter() - t0

    write_depth_tif(surface.max_depth_m, domain, folder.path / "max_depth.tif")
    write_depth_tif(surface.depth_m, domain, folder.path / "final_depth.tif")
    pd.DataFrame(balance_rows).to_csv(folder.path / "mass_balance.csv", index=False, float_format="%.9g")
    if gauges is not None:
        pd.DataFrame(gauge_rows, columns=["time_s", "name", "depth_m", "wse_m"]).to_csv(
            folder.path / "gauges.csv", index=False, float_format="%.6f")
    mb = surface.mass_balance()
    domain_cells = int((~domain.outside).sum())
    summary = Flood2DSummary(
        out=str(folder.out), dem=str(spec.dem), rows=surface.shape[0], cols=surface.shape[1],
        cell_size_m=surface.cell_size_m, domain_cells=domain_cells, hours=spec.hours, steps=surface.steps,
        wall_time_s=wall, cell_updates_per_s=surface.steps * surface.shape[0] * surface.shape[1] / max(wall, 1e-9),
        max_depth_m=float(surface.max_depth_m.max()),
        flooded_area_m2=float((surface.max_depth_m >= FLOODED_M).sum() * surface.cell_area_m2),
        initial_m3=mb.initial_m3, rain_m3=mb.rain_m3, inflow_m3=mb.inflow_m3, boundary_out_m3=mb.boundary_out_m3,
        stored_m3=mb.stored_m3, mass_balance_error_m3=mb.error_m3, mass_balance_error_rel=mb.error_rel)
    (folder.path / "summary.json").write_text(json.dumps(asdict(summary), indent=2))
    return summary
