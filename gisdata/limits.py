"""Sane ranges of every size, duration, count and physical value a user can give.

One place for the limits, so that a 30-byte file never costs gigabytes and a
value such as ``duration_min = 1e9`` or ``--members 1000000000`` is refused
before anything is allocated.  Readers, the scenario schema and the CLI
check their inputs with :func:`check_range` (or pydantic ``Field`` bounds set
from these constants); the error is one line naming the field, the value and
the limit.

Why these numbers
-----------------
The bounds are generous for real use and small enough that the largest
accepted input still fits in memory and time on one machine:

==================================  ================  ==========================================
constant                            value             reason
==================================  ================  ==========================================
``MAX_RAIN_INTENSITY_MM_H``         1,000 mm/h        above the 1-hour world record (~300 mm/h)
                                                      and any gauge's 5-min rate in practice
``MIN_RAIN_STEP_S``                 1 s               finer than any gauge or QPF
``MAX_RAIN_STEP_S``                 86,400 s          daily records
``MAX_RAIN_SPAN_DAYS``              36,525 d          a century of record
``MAX_RAIN_CELLS``                  20,000,000        steps x gauges of one series (160 MB)
``MAX_QPF_LEAD_H``                  384 h             16 days, the longest global NWP run
``MAX_FORECAST_HOURS``              384 h             the same, for ``--hours``
``MAX_MEMBERS``                     1,000             ensembles of real services hold 50 or so
``MAX_WORKERS``                     1,024             local processes
``MAX_STORM_DURATION_MIN``          4,320 min         3 days; design storms are 1 h - 24 h
``MIN/MAX_RETURN_PERIOD_YR``        0.25 - 10,000 yr  the IDF formula's lg P stays > -0.61
``MIN/MAX_TICK_S``                  1 - 3,600 s       agent tick
``MIN/MAX_COUPLING_STEP_S``         1 - 86,400 s      SWMM-surface exchange step
``MAX_SCENARIO_HOURS``              336 h             14 days of simulated time
``MAX_ROUTING_STEPS``               20,000,000        SWMM run length / ROUTING_STEP (a year at 2 s)
``MAX_CREWS``                       10,000            crews of one department or depot
``MAX_CITIZENS``, ``MAX_VENDORS``   1,000,000, 100k   agents of one run (memory: ~1 kB each)
``MAX_MERGE_RADIUS_M``              10,000 m          duplicate-report merge radius
``MAX_SWEEP_RUNS``                  100,000           runs of one sweep (points x seeds)
``MAX_NESTING``                     32                tables/lists in a TOML or JSON document
``MAX_RAIN_SCALE``                  100               factor on a rain record
``MIN/MAX_RECORD_TIME``            1980 - 2100       dates of imported records (311); ``0`` is not year 0
``MIN/MAX_ELEVATION_M``             -500 - 9,000 m    lowest and highest ground on Earth
``MIN/MAX_MANNING_N``               0 (excl.) - 1.0   s/m^(1/3); overland flow is below 0.8
``MAX_DEPTH_M``                     100 m             node depth, pipe diameter
``MAX_LENGTH_M``                    100,000 m         one conduit
``MAX_AREA_M2``                     1e9 m2            one subcatchment (1,000 km2)
``MAX_GRID_CELLS``                  50,000,000        one 2D surface grid (~4 GB of float64 state)
``MAX_SURFACE_HOURS``               720 h             one standalone 2D run (30 days)
==================================  ================  ==========================================
"""

from __future__ import annotations

import math
import numbers

from gisdata.errors import TwinError

__all__ = [
    "LimitError", "MAX_AREA_M2", "MAX_CITIZENS", "MAX_COUPLING_STEP_S", "MAX_CREWS", "MAX_DEPTH_M", "MAX_ELEVATION_M",
    "MAX_FORECAST_HOURS", "MAX_GRID_CELLS", "MAX_LENGTH_M", "MAX_MANNING_N", "MAX_MEMBERS", "MAX_MERGE_RADIUS_M", "MAX_NESTING",
    "MAX_QPF_LEAD_H", "MAX_RAIN_CELLS", "MAX_RAIN_INTENSITY_MM_H", "MAX_RAIN_SCALE", "MAX_RAIN_SPAN_DAYS",
    "MAX_RAIN_STEP_S", "MAX_RECORD_TIME", "MAX_RETURN_PERIOD_YR", "MAX_ROUTING_STEPS", "MAX_SCENARIO_HOURS",
    "MAX_STORM_DURATION_MIN", "MAX_SURFACE_HOURS", "MAX_SWEEP_RUNS", "MAX_TICK_S", "MAX_VENDORS", "MAX_WORKERS",
    "MIN_COUPLING_STEP_S", "MIN_ELEVATION_M", "MIN_MANNING_N", "MIN_RAIN_STEP_S", "MIN_RECORD_TIME",
    "MIN_RETURN_PERIOD_YR", "MIN_TICK_S", "check_finite", "check_rain_grid", "check_range", "nesting_depth",
]

# ----------------------------------------------------------------------------- rain
MAX_RAIN_INTENSITY_MM_H = 1000.0
"""Largest rain intensity accepted anywhere, mm/h."""
MIN_RAIN_STEP_S = 1
"""Shortest rain step, s."""
MAX_RAIN_STEP_S = 86_400
"""Longest rain step, s (daily records)."""
MAX_RAIN_SPAN_DAYS = 36_525.0
"""Longest span of one rain record, days (a century)."""
MAX_RAIN_CELLS = 20_000_000
"""Most intervals x gauges of one rain series (20 M float64 = 160 MB)."""
MAX_QPF_LEAD_H = 384.0
"""Longest QPF lead from the issue time, h (16 days)."""
MAX_FORECAST_HOURS = 384.0
"""Longest forecast horizon, h."""
MAX_MEMBERS = 1000
"""Most ensemble members of one forecast."""
MAX_WORKERS = 1024
"""Most local worker processes."""
MAX_RAIN_SCALE = 100.0
"""Largest factor a rain record may be scaled by, -."""
MAX_STORM_DURATION_MIN = 4320.0
"""Longest design storm, min (3 days)."""
MIN_RETURN_PERIOD_YR = 0.25
"""Shortest design-storm return period, years."""
MAX_RETURN_PERIOD_YR = 10_000.0
"""Longest design-storm return period, years."""

# ----------------------------------------------------------------------------- time stepping
MIN_TICK_S = 1.0
"""Shortest agent tick, s."""
MAX_TICK_S = 3600.0
"""Longest agent tick, s."""
MIN_COUPLING_STEP_S = 1.0
"""Shortest SWMM coupling step, s."""
MAX_COUPLING_STEP_S = 86_400.0
"""Longest SWMM coupling step, s."""
MAX_SCENARIO_HOURS = 24.0 * 14
"""Longest simulated period of a scenario, h."""
MAX_ROUTING_STEPS = 20_000_000
"""Most SWMM routing steps of one run (run length / ROUTING_STEP): a year at 2 s."""

# ----------------------------------------------------------------------------- counts and distances
MAX_CREWS = 10_000
"""Most crews of one department or depot."""
MAX_CITIZENS = 1_000_000
"""Most simulated citizens."""
MAX_VENDORS = 100_000
"""Most simulated street vendors."""
MAX_MERGE_RADIUS_M = 10_000.0
"""Largest duplicate-report merge radius, m."""
MAX_SWEEP_RUNS = 100_000
"""Most runs of one sweep (parameter points x seeds)."""
MAX_NESTING = 32
"""Deepest nesting of tables and lists in a document read from a user (TOML, JSON)."""

MIN_RECORD_TIME = "1980-01-01"
"""Earliest date-time of an imported record (service request), ISO."""
MAX_RECORD_TIME = "2100-01-01"
"""Date-times of imported records must be before this, ISO."""

# ----------------------------------------------------------------------------- network geometry
MIN_ELEVATION_M = -500.0
"""Lowest elevation accepted (ground or invert), m."""
MAX_ELEVATION_M = 9000.0
"""Highest elevation accepted, m."""
MIN_MANNING_N = 0.0
"""Manning's n must be above this (exclusive), s/m^(1/3)."""
MAX_MANNING_N = 1.0
"""Largest Manning's n, s/m^(1/3)."""
MAX_DEPTH_M = 100.0
"""Largest node depth or conduit height, m."""
MAX_LENGTH_M = 100_000.0
"""Longest conduit or road segment, and widest overland-flow width, m."""
MAX_AREA_M2 = 1e9
"""Largest subcatchment, m2 (1,000 km2)."""


MAX_GRID_CELLS = 50_000_000
"""Largest 2D surface grid, cells (its float64 state is about 80 bytes a cell)."""
MAX_SURFACE_HOURS = 720.0
"""Longest standalone 2D run, h (30 days)."""


class LimitError(TwinError, ValueError):
    """A size, duration, count or physical value is outside its documented range.

    The message names the field, the value and the limit, on one line.
    """


def _fmt(x: float) -> str:
    return f"{x:,g}" if isinstance(x, float) else f"{x:,}"


def check_range(name: str, value, lo: float | None = None, hi: float | None = None, unit: str = "", *,
                lo_inclusive: bool = True, hi_inclusive: bool = True, integer: bool = False):
    """Return ``value`` if it is a finite number within ``[lo, hi]``; raise :class:`LimitError` otherwise.

    Parameters
    ----------
    name : str
        The field as the user wrote it (``"--members"``, ``"rain.duration_min"``).
    value : int or float
        The value to check (a string or bool is refused, not converted).
    lo, hi : float, optional
        Bounds, in ``unit``; None for no bound.
    unit : str
        Unit of ``value`` and the bounds, for the message (``"h"``, ``"mm/h"``).
    lo_inclusive, hi_inclusive : bool
        Whether the bounds themselves are allowed.
    integer : bool
        Require a whole number (an int, or a float with no fraction).

    Returns
    -------
    int or float
        ``value`` unchanged (an int when ``integer``).

    Raises
    ------
    LimitError
        Not a number, not finite, not whole, or out of range.

    Examples
    --------
    >>> check_range("--members", 20, 1, MAX_MEMBERS, integer=True)
    20
    >>> check_range("--hours", 1e9, 0, MAX_FORECAST_HOURS, "h", lo_inclusive=False)
    Traceback (most recent call last):
    ...
    gisdata.limits.LimitError: --hours=1e+09 h is out of range; expected 0 < --hours <= 384 h
    """
    u = f" {unit}" if unit else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise LimitError(f"{name}={value!r} is not a number; expected {_bounds(name, lo, hi, u, lo_inclusive, hi_inclusive)}")
    if not math.isfinite(float(value)):
        raise LimitError(f"{name}={value!r} is not a finite number; expected {_bounds(name, lo, hi, u, lo_inclusive, hi_inclusive)}")
    if integer:
        if not float(value).is_integer():
            raise LimitError(f"{name}={value!r} must be a whole number")
        value = int(value)
    too_low = lo is not None and (value < lo or (value == lo and not lo_inclusive))
    too_high = hi is not None and (value > hi or (value == hi and not hi_inclusive))
    if too_low or too_high:
        raise LimitError(f"{name}={_fmt(value)}{u} is out of range; expected "
                         f"{_bounds(name, lo, hi, u, lo_inclusive, hi_inclusive)}")
    return value


def _bounds(name, lo, hi, u, lo_inc, hi_inc) -> str:
    if lo is None and hi is None:
        return "a finite number"
    left = "" if lo is None else f"{_fmt(lo)} {'<=' if lo_inc else '<'} "
    right = "" if hi is None else f" {'<=' if hi_inc else '<'} {_fmt(hi)}"
    if lo is not None and hi is None:
        return f"{name} {'>=' if lo_inc else '>'} {_fmt(lo)}{u}"
    return f"{left}{name}{right}{u}"


def check_finite(name: str, value, unit: str = "") -> float:
    """Return ``float(value)`` if it is a finite number; raise :class:`LimitError` otherwise.

    Examples
    --------
    >>> check_finite("coupling_step_s", float("inf"), "s")
    Traceback (most recent call last):
    ...
    gisdata.limits.LimitError: coupling_step_s=inf is not a finite number; expected a finite number
    """
    return float(check_range(name, value, None, None, unit))


def check_rain_grid(name: str, span_s: float, step_s: float, n_gauges: int = 1) -> int:
    """Check a rain grid before it is allocated; return its number of intervals.

    Parameters
    ----------
    name : str
        What is being built, for the message (a file name and field).
    span_s : float
        Time from the first interval's start to the last one's, s.
    step_s : float
        Interval length, s.
    n_gauges : int
        Number of gauge columns.

    Raises
    ------
    LimitError
        The step or span is out of range, or the grid would hold more than
        :data:`MAX_RAIN_CELLS` values.

    Examples
    --------
    >>> check_rain_grid("qpf.csv", 3600 * 1e8, 3600)
    Traceback (most recent call last):
    ...
    gisdata.limits.LimitError: qpf.csv: the record spans 4,166,667 d; expected 0 - 36,525 d (MAX_RAIN_SPAN_DAYS)
    """
    check_range("step_s", step_s, MIN_RAIN_STEP_S, MAX_RAIN_STEP_S, "s")
    check_finite("span_s", span_s, "s")
    if not 0 <= span_s <= MAX_RAIN_SPAN_DAYS * 86400.0:
        raise LimitError(f"{name}: the record spans {span_s / 86400.0:,.0f} d; expected 0 - {MAX_RAIN_SPAN_DAYS:,g} d "
                         "(MAX_RAIN_SPAN_DAYS)")
    n = int(span_s // step_s) + 1
    if n * max(int(n_gauges), 1) > MAX_RAIN_CELLS:
        raise LimitError(f"{name}: {n:,} intervals x {n_gauges} gauge(s) is more than {MAX_RAIN_CELLS:,} values "
                         f"(step {step_s:g} s); use a coarser step or a shorter record")
    return n


def nesting_depth(data, limit: int = MAX_NESTING) -> int:
    """Depth of nested dicts and lists in ``data`` (a scalar is 0), counted without recursion.

    Stops counting at ``limit + 1``, so a hostile document costs no more than
    its size.

    Examples
    --------
    >>> nesting_depth({"a": [1, {"b": 2}]}), nesting_depth(5)
    (3, 0)
    """
    deepest = 0
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            items = node.values()
        elif isinstance(node, (list, tuple)):
            items = node
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in items)
    return deepest
