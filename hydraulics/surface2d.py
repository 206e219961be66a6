"""The 2D street surface: local-inertial shallow water on a raster grid.

:class:`Surface2D` is the one street-water component of CityTwin.  It moves
water over a DEM with the local-inertial scheme of Bates et al. (2010), with
the θ-weighted momentum of de Almeida et al. (2012) and the refinements of
de Almeida & Bates (2013), as LISFLOOD-FP, itzi and landlab's
``OverlandFlow`` do.  The compiled loops are in
:mod:`hydraulics.surface2d_kernel`.

What it guarantees
------------------
- **No negative depth.**  Each cell's outflow during a step is limited to
  the water it holds (every outgoing face of the cell is scaled by one
  factor), so the update never drains a cell below zero.
- **Mass balance at every step.**  Stored volume, rain, point inflows,
  exchange with the sewer and flow through the grid edges are accumulated in
  float64; :meth:`Surface2D.mass_balance` returns them with the error.
- **Adaptive time step** ``dt = cfl * dx / sqrt(g * h_max)`` (de Almeida
  et al. 2012, eq. 15), capped at ``dt_max_s``, and shortened so that a step
  never crosses a breakpoint of a rain or inflow series or a requested time.
- **Instability stops the run**: a NaN or a depth above ``depth_limit_m``
  raises :class:`Surface2DInstabilityError` with the time and the cell.

Inputs and outputs are declared in :attr:`Surface2D._info` with units, in
the manner of a landlab component.

Examples
--------
A 1 m3/s source on a flat closed 20 x 20 grid of 1 m cells, for 10 s:

>>> import numpy as np
>>> from hydraulics.surface2d import Surface2D, PointSource, TimeSeries
>>> s = Surface2D(np.zeros((20, 20)), cell_size_m=1.0, manning=0.03,
...               sources=[PointSource("p", 10, 10, TimeSeries([0, 3600], [1.0, 1.0]))])
>>> s.run_until(10.0)
>>> round(s.mass_balance().stored_m3, 6), abs(s.mass_balance().error_rel) < 1e-12
(10.0, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from gisdata.errors import TwinError
from gisdata.limits import MAX_MANNING_N, MAX_RAIN_INTENSITY_MM_H, check_range
from hydraulics import surface2d_kernel as kernel

G = 9.81
"""Gravity, m/s2."""

EDGES = ("north", "south", "west", "east")
BOUNDARY_KINDS = {"closed": kernel.BC_CLOSED, "open": kernel.BC_OPEN, "stage": kernel.BC_STAGE}


class Surface2DInputError(TwinError, ValueError):
    """An input of the 2D surface is out of range or inconsistent (the message names it)."""


class Surface2DInstabilityError(TwinError, ArithmeticError):
    """The 2D run became unstable (NaN or an implausible depth).

    Attributes
    ----------
    time_s : float
        Simulated time of the step that failed, s.
    row, col : int
        The first cell that failed.
    """

    def __init__(self, message: str, *, time_s: float, row: int, col: int):
        super().__init__(message)
        self.time_s = time_s
        self.row = row
        self.col = col


@dataclass(frozen=True)
class TimeSeries:
    """A value over time.

    Parameters
    ----------
    time_s : sequence of float
        Strictly increasing times, s from the start of the run.
    value : sequence of float
        Values at those times (unit of the quantity it describes).
    hold : bool
        ``False`` (default): linear between points, the end values held
        outside.  ``True``: each value holds from its time until the next one
        (a rain hyetograph); it is 0 before the first time and from the last
        time on, so the last row closes the series.
    """

    time_s: np.ndarray
    value: np.ndarray
    hold: bool = False

    def __post_init__(self) -> None:
        t = np.asarray(self.time_s, dtype="float64").ravel()
        v = np.asarray(self.value, dtype="float64").ravel()
        if t.size == 0 or t.size != v.size:
            raise Surface2DInputError(f"time series needs as many times as values and at least one "
                                      f"(got {t.size} times, {v.size} values)")
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(v))):
            raise Surface2DInputError("time series holds a NaN or infinite time or value")
        if t.size > 1 and np.any(np.diff(t) <= 0):
            k = int(np.argmax(np.diff(t) <= 0)) + 1
            raise Surface2DInputError(f"time series times must increase strictly (time {t[k]} s "
                                      f"at position {k} follows {t[k - 1]} s)")
        object.__setattr__(self, "time_s", t)
        object.__setattr__(self, "value", v)

    def at(self, t_s: float) -> float:
        """Value at time ``t_s`` (s)."""
        if self.hold:
            k = int(np.searchsorted(self.time_s, t_s, side="right")) - 1
            if k < 0 or k >= self.time_s.size - 1:  # before the first time or from the last one on
                return 0.0
            return float(self.value[k])
        return float(np.interp(t_s, self.time_s, self.value))

    def breakpoints(self) -> np.ndarray:
        """Times (s) where the series changes slope or value."""
        return self.time_s


@dataclass(frozen=True)
class PointSource:
    """A point inflow onto the surface.

    Parameters
    ----------
    name : str
        Label used in reports.
    row, col : int
        Cell of the source (row 0 is the northern edge).
    flow_m3s : TimeSeries
        Inflow, m3/s (>= 0), linear between its points.
    """

    name: str
    row: int
    col: int
    flow_m3s: TimeSeries


@dataclass(frozen=True)
class MassBalance:
    """Volumes of the surface since the start, m3 (cumulative).

    ``error_m3 = stored - initial - (rain + inflow + exchange - boundary_out - to_river)``,
    where ``exchange`` is the net volume received from the sewer (negative
    when the surface drained into it) and ``to_river`` the net volume that
    spilled into river cells.  ``error_rel`` divides it by the volume that
    came in (initial + rain + inflow + exchange received + water that
    entered through a stage edge).
    """

    time_s: float
    initial_m3: float
    stored_m3: float
    rain_m3: float
    inflow_m3: float
    exchange_m3: float
    boundary_out_m3: float
    volume_in_m3: float
    to_river_m3: float = 0.0

    @property
    def error_m3(self) -> float:
        """Unexplained volume, m3."""
        return self.stored_m3 - self.initial_m3 - (
            self.rain_m3 + self.inflow_m3 + self.exchange_m3 - self.boundary_out_m3 - self.to_river_m3)

    @property
    def error_rel(self) -> float:
        """``error_m3`` over the volume that came in (0 when nothing did)."""
        return self.error_m3 / self.volume_in_m3 if self.volume_in_m3 > 0 else 0.0

    def as_row(self) -> dict:
        """One row of ``mass_balance.csv``."""
        return {"time_s": self.time_s, "stored_m3": self.stored_m3, "initial_m3": self.initial_m3,
                "rain_m3": self.rain_m3, "inflow_m3": self.inflow_m3, "exchange_m3": self.exchange_m3,
                "boundary_out_m3": self.boundary_out_m3, "to_river_m3": self.to_river_m3, "error_m3": self.error_m3,
                "error_rel": self.error_rel}


@dataclass
class _Accumulators:
    rain_m3: float = 0.0
    inflow_m3: float = 0.0
    exchange_in_m3: float = 0.0
    exchange_out_m3: float = 0.0
    boundary_out_m3: float = 0.0
    boundary_in_m3: float = 0.0
    to_river_m3: float = 0.0
    clipped_m3: float = 0.0
    steps: int = 0
    dt_min_s: float = math.inf


def _as_grid(name: str, value, shape: tuple[int, int], *, unit: str) -> np.ndarray:
    arr = np.asarray(value, dtype="float64")
    if arr.ndim == 0:
        arr = np.full(shape, float(arr))
    if arr.shape != shape:
        raise Surface2DInputError(f"{name}: expected a number or a {shape[0]} x {shape[1]} grid, "
                                  f"got shape {arr.shape}")
    return np.ascontiguousarray(arr)


class Surface2D:
    """Local-inertial 2D surface flow on a raster (the street-water component).

    Parameters
    ----------
    elevation_m : ndarray (rows, cols)
        Ground elevation, m (row 0 is the northern edge).  Cells outside the
        domain may hold anything finite; mark them in ``outside``.
    cell_size_m : float
        Square cell size, m (> 0).
    manning : float or ndarray
        Manning's n per cell, s/m^(1/3) (> 0, finite).
    initial_depth_m : float or ndarray, optional
        Water depth at t = 0, m (>= 0).  Default 0.
    outside : ndarray of bool, optional
        True for cells outside the domain: they stay dry and act as walls.
    river : ndarray of bool, optional
        True for cells of a river or lake: a boundary with a water level.
        Street water spills into it over the bank (a free broad-crested weir
        while the level is below the bank; an ordinary face above it, so a
        high river floods its banks); the volume is reported as ``to_river_m3``,
        never stored.  A river cell may not also be ``outside``.
    river_level_m : float, ndarray or TimeSeries, optional
        Water level of the river cells, m: one level, one per cell (a
        (rows, cols) grid read at river cells), or a level over time.
        Default: each river cell's own ground (an empty channel).  Change it
        during a run with :meth:`set_river_level`.
    boundary : str or mapping, default "closed"
        One kind for all four grid edges, or a mapping ``{edge: kind}`` for
        ``north``, ``south``, ``west``, ``east`` (missing edges are closed).
        A kind is ``"closed"`` (wall), ``"open"`` (free outflow with the
        water-surface slope of the adjacent interior face: on a slope, about
        normal-depth outflow; flat still water stays put) or
        ``("stage", level)`` with the level in m as a number or a
        :class:`TimeSeries` (water flows out or in).
    rain_mm_h : TimeSeries or float, optional
        Rain on every domain cell, mm/h.  A :class:`TimeSeries` should be
        built with ``hold=True`` (intensity held until the next time).
    sources : sequence of PointSource, optional
        Point inflows, m3/s.
    cfl : float, default 0.7
        Courant number of the adaptive step, in (0, 1].
    dt_max_s : float, default 5.0
        Upper limit of the step, s.
    theta : float, default 0.8
        Momentum weighting of de Almeida et al. (2012), in [0.5, 1]; 1 is the
        plain scheme of Bates et al. (2010).
    h_min_m : float, default 0.001
        Flow depth at a face below which no water moves through it, m.
    depth_limit_m : float, default 50.0
        A depth above this is treated as instability, m.

    Attributes
    ----------
    time_s : float
        Simulated time, s.
    depth_m : ndarray
        Current water depth (a read-only view), m.
    max_depth_m : ndarray
        Largest depth seen in each cell since the start (read-only view), m.
    """

    _info = {
        "topographic__elevation": {"mapping": "cell", "intent": "in", "units": "m", "dtype": float,
                                   "doc": "ground elevation"},
        "mannings_n": {"mapping": "cell", "intent": "in", "units": "s m-1/3", "dtype": float,
                       "doc": "Manning roughness"},
        "outside_domain": {"mapping": "cell", "intent": "in", "units": "-", "dtype": bool,
                           "doc": "cells outside the domain (walls)"},
        "rainfall__rate": {"mapping": "grid", "intent": "in", "units": "mm h-1", "dtype": float,
                           "doc": "rain on every domain cell"},
        "point_inflow": {"mapping": "point", "intent": "in", "units": "m3 s-1", "dtype": float,
                         "doc": "inflow at a cell"},
        "exchange__flow": {"mapping": "point", "intent": "in", "units": "m3 s-1", "dtype": float,
                           "doc": "flow from the sewer onto the surface (negative: into the sewer)"},
        "surface_water__depth": {"mapping": "cell", "intent": "inout", "units": "m", "dtype": float,
                                 "doc": "water depth"},
        "water_surface__elevation": {"mapping": "cell", "intent": "out", "units": "m", "dtype": float,
                                     "doc": "ground elevation + depth"},
        "surface_water__max_depth": {"mapping": "cell", "intent": "out", "units": "m", "dtype": float,
                                     "doc": "largest depth since the start"},
        "surface_water__discharge_x": {"mapping": "face", "intent": "out", "units": "m2 s-1",
                                       "dtype": float, "doc": "discharge per width, positive east"},
        "surface_water__discharge_y": {"mapping": "face", "intent": "out", "units": "m2 s-1",
                                       "dtype": float, "doc": "discharge per width, positive south"},
        "exchange__volume": {"mapping": "point", "intent": "out", "units": "m3", "dtype": float,
                             "doc": "volume each exchange point moved since the last reset"},
    }

    def __init__(self, elevation_m, *, cell_size_m: float, manning=0.03, initial_depth_m=0.0,
                 outside=None, river=None, river_level_m=None, boundary="closed", rain_mm_h=None,
                 sources: Sequence[PointSource] = (), cfl: float = 0.7, dt_max_s: float = 5.0,
                 theta: float = 0.8, h_min_m: float = 0.001, depth_limit_m: float = 50.0):
        z = np.asarray(elevation_m, dtype="float64")
        if z.ndim != 2 or z.size == 0:
            raise Surface2DInputError(f"elevation: expected a non-empty 2-D grid, got shape {z.shape}")
        shape = z.shape
        check_range("cell_size_m", cell_size_m, 0.0, 1e5, "m", lo_inclusive=False)
        check_range("cfl", cfl, 0.0, 1.0, lo_inclusive=False)
        check_range("dt_max_s", dt_max_s, 0.0, 3600.0, "s", lo_inclusive=False)
        check_range("theta", theta, 0.5, 1.0)
        check_range("h_min_m", h_min_m, 0.0, 1.0, "m")
        check_range("depth_limit_m", depth_limit_m, 0.0, 1e4, "m", lo_inclusive=False)
        if outside is None:
            outside = np.zeros(shape, dtype=bool)
        outside = np.asarray(outside, dtype=bool)
        if outside.shape != shape:
            raise Surface2DInputError(f"outside: expected a {shape} mask, got shape {outside.shape}")
        if not np.all(np.isfinite(z[~outside])):
            r, c = np.argwhere(~np.isfinite(z) & ~outside)[0]
            raise Surface2DInputError(f"elevation: NaN or infinite value inside the domain at row {r}, col {c}")
        n = _as_grid("manning", manning, shape, unit="s/m^(1/3)")
        bad_n = ~outside & ~(np.isfinite(n) & (n > 0) & (n <= MAX_MANNING_N))
        if bad_n.any():
            r, c = np.argwhere(bad_n)[0]
            raise Surface2DInputError(f"manning: n must be finite, > 0 and <= {MAX_MANNING_N:g} s/m^(1/3); "
                                      f"got {n[r, c]} at row {r}, col {c}")
        h0 = _as_grid("initial_depth_m", initial_depth_m, shape, unit="m")
        bad_h = ~outside & ~(np.isfinite(h0) & (h0 >= 0))
        if bad_h.any():
            r, c = np.argwhere(bad_h)[0]
            raise Surface2DInputError(f"initial_depth_m: depth must be finite and >= 0; got {h0[r, c]} "
                                      f"at row {r}, col {c}")
        self.shape = shape
        self.cell_size_m = float(cell_size_m)
        self.cell_area_m2 = self.cell_size_m ** 2
        self.cfl, self.dt_max_s, self.theta = float(cfl), float(dt_max_s), float(theta)
        self.h_min_m, self.depth_limit_m = float(h_min_m), float(depth_limit_m)
        river = np.zeros(shape, dtype=bool) if river is None else np.asarray(river, dtype=bool)
        if river.shape != shape:
            raise Surface2DInputError(f"river: expected a {shape} mask, got shape {river.shape}")
        if (river & outside).any():
            r, c = np.argwhere(river & outside)[0]
            raise Surface2DInputError(f"river: cell (row {r}, col {c}) is both river and outside the domain")
        if not np.all(np.isfinite(z[river])):
            raise Surface2DInputError("elevation: NaN or infinite value in a river cell")
        self._has_river = bool(river.any())
        self._river_series = river_level_m if isinstance(river_level_m, TimeSeries) else None
        self._level = np.ascontiguousarray(np.where(river, z, 0.0))
        if river_level_m is not None and self._river_series is None:
            self.set_river_level(river_level_m, _river=river)
        outside = outside | river  # no street water is stored there
        self._z = np.ascontiguousarray(np.where(outside, 0.0, z))
        self._n = np.ascontiguousarray(np.where(outside, 1.0, n))
        self._active = np.ascontiguousarray(np.where(river, kernel.RIVER, np.where(outside, kernel.OUTSIDE,
                                                                                     kernel.LAND)).astype(np.uint8))
        self._h = np.ascontiguousarray(np.where(outside, 0.0, h0))
        self._h_max = self._h.copy()
        rows, cols = shape
        # face discharges in float32: half the memory traffic; water is still conserved exactly, since
        # both cells of a face move the same (rounded) value, and the depths stay float64
        self._qx = np.zeros((rows, cols + 1), dtype=np.float32)
        self._qy = np.zeros((rows + 1, cols), dtype=np.float32)
        self._qx_new = np.zeros_like(self._qx)
        self._qy_new = np.zeros_like(self._qy)
        self._limiter = np.zeros(shape)
        self._n_active = int((self._active == kernel.LAND).sum())
        self._bank_land, self._bank_river = self._bank_pairs()
        self._river_head = 0.0
        self._bc_type, self._bc_stage = self._parse_boundary(boundary)
        self._rain = self._parse_rain(rain_mm_h)
        self._sources = list(sources)
        for s in self._sources:
            self._check_cell(f"source {s.name}", s.row, s.col)
            if np.any(s.flow_m3s.value < 0):
                raise Surface2DInputError(f"source {s.name}: inflow must be >= 0 m3/s "
                                          f"(min {s.flow_m3s.value.min()})")
        self._src_rows = np.array([s.row for s in self._sources], dtype=np.int64)
        self._src_cols = np.array([s.col for s in self._sources], dtype=np.int64)
        self._src_applied = np.zeros(len(self._sources))
        self._ex_rows = np.zeros(0, dtype=np.int64)
        self._ex_cols = np.zeros(0, dtype=np.int64)
        self._ex_q = np.zeros(0)
        self._ex_applied = np.zeros(0)
        self._ex_volume = np.zeros(0)
        self._breaks = self._collect_breakpoints()
        self._step_acc = np.zeros(5)
        n_blocks = -(-cols // kernel.BLOCK)
        self._wet_blk = np.zeros((rows, n_blocks), dtype=np.uint8)
        max_segs = n_blocks // 2 + 1
        self._seg_lo = np.zeros((rows, max_segs), dtype=np.int64)
        self._seg_hi = np.zeros((rows, max_segs), dtype=np.int64)
        self._n_seg = np.zeros(rows, dtype=np.int64)
        # river cells count as wet: the banks next to them are always computed
        kernel.mark_wet_blocks(np.where(self._active == kernel.RIVER, 1.0, self._h), self._wet_blk)
        # a stage edge can push water onto dry cells anywhere along it: no skipping of dry cells then
        self._always_full = bool((self._bc_type == kernel.BC_STAGE).any())
        self.time_s = 0.0
        self._update_river_head()
        self._dt_next = self._stable_dt(float(self._h.max()) if self._h.size else 0.0)
        self._acc = _Accumulators()
        self._initial_m3 = self.stored_volume_m3()

    # ------------------------------------------------------------------ setup helpers

    def _check_cell(self, what: str, row: int, col: int) -> None:
        rows, cols = self.shape
        if not (0 <= row < rows and 0 <= col < cols):
            raise Surface2DInputError(f"{what}: cell (row {row}, col {col}) is outside the "
                                      f"{rows} x {cols} grid")
        if self._active[row, col] != kernel.LAND:
            raise Surface2DInputError(f"{what}: cell (row {row}, col {col}) is outside the domain or in the river")

    def _parse_boundary(self, boundary):
        kinds = {e: "closed" for e in EDGES}
        if isinstance(boundary, str) or isinstance(boundary, tuple):
            kinds = {e: boundary for e in EDGES}
        elif isinstance(boundary, Mapping):
            unknown = set(boundary) - set(EDGES)
            if unknown:
                raise Surface2DInputError(f"boundary: unknown edge(s) {sorted(unknown)}; expected {list(EDGES)}")
            kinds.update(boundary)
        else:
            raise Surface2DInputError(f"boundary: expected 'closed', 'open', ('stage', level) or a mapping "
                                      f"of edges, got {boundary!r}")
        bc_type = np.zeros(4, dtype=np.int64)
        self._stage_series: list[TimeSeries | None] = [None] * 4
        for k, edge in enumerate(EDGES):
            kind = kinds[edge]
            if isinstance(kind, tuple):
                if len(kind) != 2 or kind[0] != "stage":
                    raise Surface2DInputError(f"boundary {edge}: expected ('stage', level), got {kind!r}")
                level = kind[1]
                series = level if isinstance(level, TimeSeries) else TimeSeries([0.0], [float(level)])
                self._stage_series[k] = series
                bc_type[k] = kernel.BC_STAGE
            elif kind in ("closed", "open"):
                bc_type[k] = BOUNDARY_KINDS[kind]
            else:
                raise Surface2DInputError(f"boundary {edge}: unknown kind {kind!r}; expected closed, open "
                                          f"or ('stage', level)")
        return bc_type, np.zeros(4)

    def _parse_rain(self, rain):
        if rain is None:
            return None
        if isinstance(rain, TimeSeries):
            series = rain
        else:
            series = TimeSeries([0.0], [float(rain)])
        if np.any(series.value < 0) or np.any(series.value > MAX_RAIN_INTENSITY_MM_H):
            raise Surface2DInputError(f"rain: intensity must be within 0..{MAX_RAIN_INTENSITY_MM_H:g} mm/h "
                                      f"(got {series.value.min()}..{series.value.max()})")
        return series

    def _collect_breakpoints(self) -> np.ndarray:
        times = [s.flow_m3s.breakpoints() for s in self._sources]
        if self._rain is not None:
            times.append(self._rain.breakpoints())
        times += [s.breakpoints() for s in self._stage_series if s is not None]
        if not times:
            return np.zeros(0)
        return np.unique(np.concatenate(times))

    def _bank_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Flat indices of (land, river) cells that share a face."""
        land = self._active == kernel.LAND
        river = self._active == kernel.RIVER
        pairs_l, pairs_r = [], []
        cols = self.shape[1]
        for a_land, a_river, step in ((land[:, :-1], river[:, 1:], 1), (river[:, :-1], land[:, 1:], -1),
                                      (land[:-1, :], river[1:, :], cols), (river[:-1, :], land[1:, :], -cols)):
            r, c = np.nonzero(a_land & a_river)
            first = r * cols + c  # the west/north cell of each pair
            if step in (1, cols):
                pairs_l.append(first)
                pairs_r.append(first + step)
            else:
                pairs_l.append(first - step)
                pairs_r.append(first)
        return np.concatenate(pairs_l).astype(np.int64), np.concatenate(pairs_r).astype(np.int64)

    def _update_river_head(self) -> None:
        # a river above its bank drives the bank faces with this head: the CFL step must see it
        if self._bank_land.size:
            head = self._level.ravel()[self._bank_river] - self._z.ravel()[self._bank_land]
            self._river_head = max(0.0, float(head.max()))

    def _stable_dt(self, h_max: float) -> float:
        h_max = max(h_max, self._river_head)
        if h_max <= 0:
            return self.dt_max_s
        return min(self.dt_max_s, self.cfl * self.cell_size_m / math.sqrt(G * h_max))

    # ------------------------------------------------------------------ state

    @property
    def depth_m(self) -> np.ndarray:
        """Water depth, m (read-only view)."""
        v = self._h.view()
        v.setflags(write=False)
        return v

    @property
    def max_depth_m(self) -> np.ndarray:
        """Largest depth seen in each cell since the start, m (read-only view)."""
        v = self._h_max.view()
        v.setflags(write=False)
        return v

    @property
    def water_surface_m(self) -> np.ndarray:
        """Ground elevation + depth, m; NaN outside the domain."""
        return np.where(self._active == kernel.LAND, self._z + self._h, np.nan)

    @property
    def discharge_m2s(self) -> tuple[np.ndarray, np.ndarray]:
        """Face discharges per unit width (qx east-positive, qy south-positive), m2/s (copies)."""
        return self._qx.astype("float64"), self._qy.astype("float64")

    @property
    def steps(self) -> int:
        """Number of time steps taken."""
        return self._acc.steps

    def stored_volume_m3(self) -> float:
        """Water on the grid now, m3."""
        return float(self._h.sum()) * self.cell_area_m2

    def mass_balance(self) -> MassBalance:
        """Cumulative volumes since the start, and the error (see :class:`MassBalance`)."""
        a = self._acc
        exchange = a.exchange_in_m3 - a.exchange_out_m3
        volume_in = (self._initial_m3 + a.rain_m3 + a.inflow_m3 + a.exchange_in_m3 + a.boundary_in_m3
                     + max(0.0, -a.to_river_m3))
        # clipped round-off is part of the error, so it is not credited anywhere
        return MassBalance(self.time_s, self._initial_m3, self.stored_volume_m3(), a.rain_m3, a.inflow_m3,
                           exchange, a.boundary_out_m3, volume_in, a.to_river_m3)

    def set_river_level(self, level_m, *, _river=None) -> None:
        """Set the water level of the river cells, m: one number, or a (rows, cols) grid read at river cells.

        The level holds until set again (a coupler sets it from the routed outfall flows).
        """
        river = self._active == kernel.RIVER if _river is None else _river
        level = np.asarray(level_m, dtype="float64")
        if level.ndim == 0:
            level = np.full(self.shape, float(level))
        if level.shape != self.shape or not np.all(np.isfinite(level[river])):
            raise Surface2DInputError(f"river level: expected a finite number or a finite {self.shape} grid at "
                                      f"the river cells, got shape {level.shape}")
        self._level[river] = level[river]
        if _river is None:  # (during construction the bank pairs do not exist yet)
            self._update_river_head()
            self._dt_next = min(self._dt_next, self._stable_dt(0.0))

    # ------------------------------------------------------------------ exchange (sewer coupling)

    def set_exchange(self, rows, cols, flow_m3s) -> None:
        """Set the flow between the sewer and the surface at some cells, m3/s.

        Positive flows put water onto the surface, negative ones take it away
        (never more than the cell holds; the volume actually moved is in
        :meth:`exchange_volume_m3`).  The rates hold until set again.
        """
        rows = np.asarray(rows, dtype=np.int64).ravel()
        cols = np.asarray(cols, dtype=np.int64).ravel()
        q = np.asarray(flow_m3s, dtype="float64").ravel()
        if not (rows.size == cols.size == q.size):
            raise Surface2DInputError("set_exchange: rows, cols and flows must have the same length")
        if not np.all(np.isfinite(q)):
            raise Surface2DInputError("set_exchange: an exchange flow is NaN or infinite")
        same = rows.size == self._ex_rows.size and np.array_equal(rows, self._ex_rows) and np.array_equal(
            cols, self._ex_cols)
        if not same:  # the coupler sets the same points every exchange step: check them once
            for r, c in zip(rows, cols):
                self._check_cell("exchange point", int(r), int(c))
            self._ex_rows, self._ex_cols = rows, cols
            self._ex_volume = np.zeros(rows.size)
            self._ex_applied = np.zeros(rows.size)
        self._ex_q = q

    def exchange_volume_m3(self, *, reset: bool = True) -> np.ndarray:
        """Signed volume each exchange point moved since the last reset, m3 (onto the surface > 0)."""
        out = self._ex_volume.copy()
        if reset:
            self._ex_volume[:] = 0.0
        return out

    # ------------------------------------------------------------------ time stepping

    def run_until(self, t_s: float, *, on_step: Callable[[float], None] | None = None) -> None:
        """Advance to simulated time ``t_s`` (s), with adaptive steps that end exactly there.

        Parameters
        ----------
        t_s : float
            Target time, s (>= the current time).
        on_step : callable, optional
            Called with the simulated time after each step (for progress).
        """
        if not math.isfinite(t_s):
            raise Surface2DInputError(f"run_until: time must be finite, got {t_s}")
        while self.time_s < t_s - 1e-9:
            dt = min(self._dt_next, t_s - self.time_s)
            if self._breaks.size:
                k = np.searchsorted(self._breaks, self.time_s + 1e-9, side="right")
                if k < self._breaks.size:
                    dt = min(dt, self._breaks[k] - self.time_s)
            self._step(dt)
            if on_step is not None:
                on_step(self.time_s)

    def run_one_step(self, dt_s: float) -> None:
        """Advance by ``dt_s`` seconds (taken in as many stable sub-steps as needed)."""
        self.run_until(self.time_s + float(dt_s))

    def _step(self, dt: float) -> None:
        t_mid = self.time_s + 0.5 * dt
        for k, series in enumerate(self._stage_series):
            if series is not None:
                self._bc_stage[k] = series.at(t_mid)
        rain_ms = 0.0
        if self._rain is not None:
            rain_ms = self._rain.at(self.time_s) / 3.6e6  # held over the step: steps end at breakpoints
        # only cells near water are computed; rain wets everything
        kernel.active_segments(self._wet_blk, self.shape[1], self._always_full or rain_ms > 0, self._seg_lo,
                               self._seg_hi, self._n_seg)
        if self._river_series is not None:
            self._level[self._active == kernel.RIVER] = self._river_series.at(t_mid)
            self._update_river_head()
        kernel.step(self._z, self._h, self._n, self._active, self._level, self._has_river, self._qx, self._qy,
                    self._qx_new, self._qy_new,
                    self._limiter, self._h_max, dt, self.cell_size_m, G, self.theta, self.h_min_m, self._bc_type,
                    self._bc_stage, self._seg_lo, self._seg_hi, self._n_seg, rain_ms, self.depth_limit_m,
                    self._wet_blk, self._step_acc)
        h_max, boundary_out, clipped, bad = (float(self._step_acc[0]), float(self._step_acc[1]),
                                             float(self._step_acc[2]), int(self._step_acc[3]))
        self._qx, self._qx_new = self._qx_new, self._qx
        self._qy, self._qy_new = self._qy_new, self._qy
        a = self._acc
        a.rain_m3 += rain_ms * dt * self.cell_area_m2 * self._n_active
        a.boundary_out_m3 += boundary_out
        a.boundary_in_m3 += max(0.0, -boundary_out)  # a stage edge can push water in
        a.clipped_m3 += clipped
        a.to_river_m3 += float(self._step_acc[4])
        if self._sources:
            q = np.array([s.flow_m3s.at(t_mid) for s in self._sources])
            kernel.apply_point_sources(self._h, self._src_rows, self._src_cols, q, dt, self.cell_area_m2,
                                       self._src_applied)
            a.inflow_m3 += float(self._src_applied.sum())
        if self._ex_rows.size:
            kernel.apply_point_sources(self._h, self._ex_rows, self._ex_cols, self._ex_q, dt,
                                       self.cell_area_m2, self._ex_applied)
            self._ex_volume += self._ex_applied
            a.exchange_in_m3 += float(self._ex_applied[self._ex_applied > 0].sum())
            a.exchange_out_m3 -= float(self._ex_applied[self._ex_applied < 0].sum())
        if self._sources or self._ex_rows.size:
            pts_r = np.concatenate([self._src_rows, self._ex_rows])
            pts_c = np.concatenate([self._src_cols, self._ex_cols])
            h_pts = self._h[pts_r, pts_c]
            np.maximum.at(self._h_max, (pts_r, pts_c), h_pts)
            h_max = max(h_max, float(h_pts.max()))
            wet = h_pts > self.h_min_m  # an idle manhole must not keep its block computed
            kernel.mark_cells_wet(pts_r[wet], pts_c[wet], self._wet_blk)
        self.time_s += dt
        a.steps += 1
        a.dt_min_s = min(a.dt_min_s, dt)
        if bad >= 0:
            r, c = divmod(int(bad), self.shape[1])
            value = self._h[r, c]
            raise Surface2DInstabilityError(
                f"2D surface unstable at t={self.time_s:.2f} s: depth {value} m at row {r}, col {c} "
                f"(limit {self.depth_limit_m} m); try a smaller --cfl or --dt-max",
                time_s=self.time_s, row=r, col=c)
        self._dt_next = self._stable_dt(h_max)
