"""Rainfall as data: :class:`RainSeries` (observed) and :class:`Storm` (design).

A series holds rain intensity in mm/h at a fixed step for one or more gauges.
Row ``k`` is the mean intensity over ``[t_k, t_k + step_s)``: the index gives the
*start* of each interval, either as elapsed seconds (``elapsed_s``, int) or as
timestamps (``time``, naive local time).  That is also how SWMM reads an
INTENSITY time series: each value holds until the next one.

Everything that changes a series (resampling, selecting gauges, combining
gauges) returns a new object; the frame inside is read-only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import numpy as np
import pandas as pd

from gisdata.errors import EmptyDataError, TwinError
from gisdata.limits import (
    MAX_RAIN_CELLS,
    MAX_RAIN_INTENSITY_MM_H,
    MAX_RAIN_STEP_S,
    MAX_RETURN_PERIOD_YR,
    check_rain_grid,
)

MM_PER_INCH = 25.4
"""Millimetres per inch."""


class RainDataError(TwinError, ValueError):
    """A rain series is malformed: irregular step, negative or missing intensity, bad gauge IDs."""


@dataclass(frozen=True, eq=False, repr=False)
class RainSeries:
    """Rain intensity in mm/h at a fixed step, one column per gauge.

    Parameters
    ----------
    intensity_mm_h : pandas.DataFrame
        Mean intensity of each interval, mm/h; finite and >= 0.  Index: interval
        start, either int elapsed seconds (name ``elapsed_s``) or a
        ``DatetimeIndex`` (name ``time``), evenly spaced by ``step_s``.
        Columns: gauge IDs (str).
    step_s : int
        Interval length, s.
    label : str
        Display name, e.g. ``"Chicago P=20 yr 120 min"``.
    return_period_yr : float or None
        Return period of a design storm, years; None where unknown (observed rain).
    source : str
        Provenance: a file path or the generator and its parameters.
    meta : Mapping[str, str]
        Extra facts as strings, e.g. ``missing_steps`` of an observed record.

    Examples
    --------
    >>> s = RainSeries(pd.DataFrame({"RG1": [0.0, 12.0, 6.0]}, index=[0, 300, 600]), step_s=300)
    >>> float(s.depth_mm["RG1"]), s.duration_s
    (1.5, 900)
    """

    intensity_mm_h: pd.DataFrame
    step_s: int
    label: str = ""
    return_period_yr: float | None = None
    source: str = ""
    meta: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        step = self.step_s
        if isinstance(step, (float, np.floating)) and float(step).is_integer():
            step = int(step)
        if not isinstance(step, (int, np.integer)) or isinstance(step, bool) or step <= 0:
            raise RainDataError(f"step_s={self.step_s!r} must be a positive whole number of seconds")
        if step > MAX_RAIN_STEP_S:
            raise RainDataError(f"step_s={step} is more than {MAX_RAIN_STEP_S} s (MAX_RAIN_STEP_S)")
        object.__setattr__(self, "step_s", int(step))
        df = self.intensity_mm_h
        if not isinstance(df, pd.DataFrame):
            raise RainDataError(f"intensity_mm_h must be a pandas DataFrame, got {type(df).__name__}")
        if df.shape[0] == 0 or df.shape[1] == 0:
            raise EmptyDataError(f"rain series '{self.label}': no intervals or no gauges ({df.shape})")
        df = df.copy()
        df.columns = [str(c) for c in df.columns]
        if len(set(df.columns)) != len(df.columns):
            raise RainDataError(f"rain series '{self.label}': duplicate gauge IDs {list(df.columns)}")
        df.index = _checked_index(df.index, int(step), self.label)
        try:
            df = df.astype("float64")
        except (TypeError, ValueError) as exc:
            raise RainDataError(f"rain series '{self.label}': intensities are not numeric ({exc})") from exc
        values = df.to_numpy()
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise RainDataError(
                f"rain series '{self.label}': gauge '{df.columns[c]}' at {df.index[r]!r} has intensity "
                f"{values[r, c]!r}; expected a finite value >= 0 mm/h"
            )
        high = values > MAX_RAIN_INTENSITY_MM_H
        if high.any():
            r, c = np.argwhere(high)[0]
            raise RainDataError(
                f"rain series '{self.label}': gauge '{df.columns[c]}' at {df.index[r]} has intensity "
                f"{values[r, c]:g} mm/h; expected at most {MAX_RAIN_INTENSITY_MM_H:g} mm/h (MAX_RAIN_INTENSITY_MM_H)"
            )
        if values.size > MAX_RAIN_CELLS:
            raise RainDataError(f"rain series '{self.label}': {df.shape[0]:,} intervals x {df.shape[1]} gauges is more "
                                f"than {MAX_RAIN_CELLS:,} values (MAX_RAIN_CELLS)")
        values.setflags(write=False)
        object.__setattr__(self, "intensity_mm_h", df)
        if self.return_period_yr is not None and not (0 < self.return_period_yr <= MAX_RETURN_PERIOD_YR):
            raise RainDataError(f"return_period_yr={self.return_period_yr!r} must be > 0 and <= "
                                f"{MAX_RETURN_PERIOD_YR:g} yr (finite), or None")
        object.__setattr__(self, "meta", MappingProxyType({str(k): str(v) for k, v in self.meta.items()}))

    def __repr__(self) -> str:
        start = self.intensity_mm_h.index[0]
        start = int(start) if not self.is_timestamped else start
        return (f"{type(self).__name__}(label={self.label!r}, gauges={self.gauges}, step_s={self.step_s}, "
                f"n_steps={self.n_steps}, start={start!r}, max_depth_mm={self.max_depth_mm:.3f}, "
                f"return_period_yr={self.return_period_yr})")

    def __reduce__(self):
        # Mapping proxies do not pickle; rebuild from plain dicts (series go to worker processes).
        state = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        state = {k: dict(v) if isinstance(v, MappingProxyType) else v for k, v in state.items()}
        return _rebuild, (type(self), state)

    # ------------------------------------------------------------------ facts
    @property
    def gauges(self) -> list[str]:
        """Gauge IDs, in column order."""
        return list(self.intensity_mm_h.columns)

    @property
    def n_steps(self) -> int:
        """Number of intervals."""
        return len(self.intensity_mm_h)

    @property
    def duration_s(self) -> int:
        """Length of the record, s (``n_steps * step_s``)."""
        return self.n_steps * self.step_s

    @property
    def is_timestamped(self) -> bool:
        """True if the index holds timestamps rather than elapsed seconds."""
        return isinstance(self.intensity_mm_h.index, pd.DatetimeIndex)

    @property
    def depth_mm(self) -> pd.Series:
        """Total rain depth per gauge, mm."""
        return (self.intensity_mm_h.sum() * (self.step_s / 3600.0)).rename("depth_mm")

    @property
    def max_depth_mm(self) -> float:
        """Largest total depth over the gauges, mm."""
        return float(self.depth_mm.max())

    @property
    def peak_mm_h(self) -> pd.Series:
        """Peak intensity per gauge, mm/h (at this series' step)."""
        return self.intensity_mm_h.max().rename("peak_mm_h")

    @property
    def max_peak_mm_h(self) -> float:
        """Largest peak intensity over the gauges, mm/h."""
        return float(self.peak_mm_h.max())

    @property
    def peak_time(self) -> pd.Series:
        """Start of the interval holding each gauge's peak (first one on ties)."""
        return self.intensity_mm_h.idxmax().rename("peak_time")

    @property
    def elapsed_s(self) -> np.ndarray:
        """Start of each interval in seconds from the start of the record."""
        return np.arange(self.n_steps, dtype="int64") * self.step_s

    def cumulative_depth_mm(self) -> pd.DataFrame:
        """Cumulative depth at the ``n_steps + 1`` interval boundaries, mm.

        Indexed by seconds from the start of the record (0 ... ``duration_s``).
        """
        c = np.vstack([np.zeros(len(self.gauges)),
                       np.cumsum(self.intensity_mm_h.to_numpy() * (self.step_s / 3600.0), axis=0)])
        idx = pd.Index(np.arange(self.n_steps + 1, dtype="int64") * self.step_s, name="elapsed_s")
        return pd.DataFrame(c, index=idx, columns=self.gauges)

    def depth_between_mm(self, t0_s: float, t1_s: float) -> pd.Series:
        """Depth that falls between ``t0_s`` and ``t1_s`` seconds from the start, mm per gauge."""
        cum = self.cumulative_depth_mm()
        t = cum.index.to_numpy(dtype=float)
        out = {g: np.interp(t1_s, t, cum[g].to_numpy()) - np.interp(t0_s, t, cum[g].to_numpy())
               for g in self.gauges}
        return pd.Series(out, name="depth_mm")

    # --------------------------------------------------------- transformations
    def resample(self, step_s: int) -> RainSeries:
        """Return the series at another step, conserving each gauge's depth.

        The cumulative depth curve is piecewise linear between boundaries; the new
        intensities are its increments over the new intervals.  The new grid starts
        at this record's start; the last interval is padded with no rain when
        ``step_s`` does not divide the duration.  Works for coarser and finer steps
        and for non-integer ratios.

        Parameters
        ----------
        step_s : int
            New step, s.

        Examples
        --------
        >>> s = RainSeries(pd.DataFrame({"RG1": [6.0, 0.0, 12.0]}, index=[0, 600, 1200]), step_s=600)
        >>> s.resample(900).intensity_mm_h["RG1"].tolist()
        [4.0, 8.0]
        """
        step_s = int(step_s)
        if step_s <= 0:
            raise RainDataError(f"step_s={step_s} must be > 0")
        check_rain_grid(f"rain series '{self.label}' resampled", self.duration_s, step_s, len(self.gauges))
        cum = self.cumulative_depth_mm()
        m = -(-self.duration_s // step_s)  # ceil
        t_new = np.arange(m + 1, dtype="int64") * step_s
        t_old = cum.index.to_numpy(dtype=float)
        cols = {}
        for g in self.gauges:
            c_new = np.interp(t_new.astype(float), t_old, cum[g].to_numpy())  # clamps past the end
            cols[g] = np.maximum(np.diff(c_new), 0.0) * (3600.0 / step_s)
        frame = pd.DataFrame(cols, index=self._index_for(t_new[:-1]))
        return dataclasses.replace(self, intensity_mm_h=frame, step_s=step_s)

    def select(self, gauges: Iterable[str]) -> RainSeries:
        """Return a series with only ``gauges`` (in that order)."""
        gauges = [str(g) for g in gauges]
        missing = [g for g in gauges if g not in self.gauges]
        if missing:
            raise RainDataError(f"rain series '{self.label}': unknown gauge(s) {missing}; has {self.gauges}")
        return dataclasses.replace(self, intensity_mm_h=self.intensity_mm_h[gauges])

    def with_start(self, start: pd.Timestamp | str) -> RainSeries:
        """Return the series indexed by timestamps beginning at ``start``."""
        t0 = pd.Timestamp(start)
        idx = pd.DatetimeIndex(t0 + pd.to_timedelta(self.elapsed_s, unit="s"), name="time")
        return dataclasses.replace(self, intensity_mm_h=self.intensity_mm_h.set_axis(idx))

    def to_elapsed(self) -> RainSeries:
        """Return the series indexed by elapsed seconds from its start."""
        idx = pd.Index(self.elapsed_s, name="elapsed_s")
        return dataclasses.replace(self, intensity_mm_h=self.intensity_mm_h.set_axis(idx))

    def window(self, start=None, end=None) -> RainSeries:
        """Return the intervals that start in ``[start, end)``.

        Parameters
        ----------
        start, end : pandas.Timestamp, str or float, optional
            A date-time (timestamped series only) or seconds from the start of
            the record; default the record's start and end.

        Raises
        ------
        RainDataError
            A date-time on an elapsed series, or no interval in the window (the
            message gives the record's span).

        Examples
        --------
        >>> s = RainSeries(pd.DataFrame({"RG1": [0.0, 12.0, 6.0, 0.0]}, index=[0, 300, 600, 900]), step_s=300)
        >>> s.window(300, 900).intensity_mm_h["RG1"].tolist()
        [12.0, 6.0]
        """
        index = self.intensity_mm_h.index
        first = index[0]

        def bound(value, default):
            if value is None:
                return default
            if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
                if not np.isfinite(value):
                    raise RainDataError(f"rain series '{self.label}': window bound {value!r} is not finite")
                return first + (pd.Timedelta(seconds=float(value)) if self.is_timestamped else float(value))
            if not self.is_timestamped:
                raise RainDataError(f"rain series '{self.label}' has no dates (time from the start only); give the "
                                    f"window in seconds from the start, not {value!r}")
            try:
                return pd.Timestamp(value)
            except (TypeError, ValueError) as exc:
                raise RainDataError(f"rain series '{self.label}': window bound {value!r} is not a date-time") from exc

        t0 = bound(start, first)
        t1 = bound(end, index[-1] + (pd.Timedelta(seconds=self.step_s) if self.is_timestamped else self.step_s))
        keep = (index >= t0) & (index < t1)
        if not keep.any():
            last = index[-1] + (pd.Timedelta(seconds=self.step_s) if self.is_timestamped else self.step_s)
            raise RainDataError(f"rain series '{self.label}': nothing recorded between {t0} and {t1}; the record "
                                f"runs from {first} to {last}")
        return dataclasses.replace(self, intensity_mm_h=self.intensity_mm_h[keep])

    def wettest_start(self, hours: float):
        """Start of the ``hours`` long window with the most rain (the gauges' mean), as an index label."""
        n = max(1, round(hours * 3600.0 / self.step_s))
        mean = self.intensity_mm_h.mean(axis=1)
        total = mean[::-1].rolling(n, min_periods=1).sum()[::-1]  # the window starting at each interval
        return total.idxmax()

    def _index_for(self, offsets_s: np.ndarray) -> pd.Index:
        first = self.intensity_mm_h.index[0]
        if self.is_timestamped:
            return pd.DatetimeIndex(first + pd.to_timedelta(offsets_s, unit="s"), name="time")
        return pd.Index(int(first) + offsets_s.astype("int64"), name="elapsed_s")

    # ------------------------------------------------------------------ SWMM
    @property
    def swmm_interval(self) -> str:
        """The step as SWMM's ``[RAINGAGES]`` interval, ``H:MM`` (``H:MM:SS`` if not whole minutes)."""
        return _hms(self.step_s)

    def to_swmm_timeseries(self, names: Mapping[str, str] | None = None, *,
                           units: Literal["mm", "in"] = "mm",
                           time_format: Literal["elapsed", "date"] | None = None,
                           skip_zeros: bool = False) -> list[str]:
        """Lines of a SWMM ``[TIMESERIES]`` section, one series per gauge (INTENSITY format).

        A rain gauge using it needs ``INTENSITY`` and the interval
        :attr:`swmm_interval`: SWMM applies each value for one recording
        interval from its time, and no rain until the next entry.  A final
        zero closes the record.

        Parameters
        ----------
        names : Mapping[str, str], optional
            Time-series name per gauge; default the gauge ID.
        units : {"mm", "in"}
            ``"mm"`` writes mm/h (SI models), ``"in"`` writes in/h (US models).
        time_format : {"elapsed", "date"}, optional
            ``"elapsed"`` writes ``H:MM`` from the start, ``"date"`` writes
            ``MM/DD/YYYY HH:MM``.  Default: dates if the series is timestamped.
        skip_zeros : bool
            Leave out dry intervals (same rain for SWMM, far fewer lines for a
            long observed record).

        Returns
        -------
        list of str
            Lines without a trailing newline; no section header.

        Examples
        --------
        >>> s = RainSeries(pd.DataFrame({"RG1": [12.0, 6.0]}, index=[0, 300]), step_s=300)
        >>> s.to_swmm_timeseries()
        ['RG1 0:00 12', 'RG1 0:05 6', 'RG1 0:10 0']
        """
        if units not in ("mm", "in"):
            raise RainDataError(f"units={units!r}; expected 'mm' (mm/h) or 'in' (in/h)")
        fmt = time_format or ("date" if self.is_timestamped else "elapsed")
        if fmt not in ("elapsed", "date"):
            raise RainDataError(f"time_format={time_format!r}; expected 'elapsed' or 'date'")
        if fmt == "date" and not self.is_timestamped:
            raise RainDataError("time_format='date' needs a timestamped series; use with_start() first")
        factor = 1.0 if units == "mm" else 1.0 / MM_PER_INCH
        names = dict(names or {})
        bounds = np.append(self.elapsed_s, self.duration_s)
        if fmt == "elapsed":
            stamps = [_hms(int(t)) for t in bounds]
        else:
            t0 = self.intensity_mm_h.index[0]
            times = t0 + pd.to_timedelta(bounds, unit="s")
            with_s = self.step_s % 60 != 0
            stamps = [t.strftime("%m/%d/%Y %H:%M:%S" if with_s else "%m/%d/%Y %H:%M") for t in times]
        lines: list[str] = []
        for g in self.gauges:
            name = names.get(g, g)
            if not name or any(ch.isspace() for ch in name):
                raise RainDataError(f"SWMM time-series name {name!r} for gauge '{g}' must be non-empty without spaces")
            vals = np.append(self.intensity_mm_h[g].to_numpy() * factor, 0.0)
            keep = (vals > 0) | (not skip_zeros)
            keep[-1] = True
            lines.extend(f"{name} {s} {v:.10g}" for s, v, k in zip(stamps, vals, keep, strict=True) if k)
        return lines


@dataclass(frozen=True, eq=False, repr=False)
class Storm(RainSeries):
    """A design storm: a :class:`RainSeries` that records how it was made.

    Parameters
    ----------
    method : str
        Generator, e.g. ``"chicago"``, ``"nrcs_II"``, ``"block"``, ``"idf_table"``.
    params : Mapping[str, object]
        The generator's parameters (for the run manifest).
    """

    method: str = ""
    params: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))


def combine_gauges(series: Iterable[RainSeries], *, step_s: int | None = None,
                   label: str = "") -> RainSeries:
    """Put several gauges' records side by side on one step and one time axis.

    Each record is first resampled (volume-conserving) to ``step_s``; outside a
    gauge's own record its intensity is zero.

    Parameters
    ----------
    series : iterable of RainSeries
        All timestamped or all elapsed; gauge IDs must be unique across them.
    step_s : int, optional
        Common step, s; default the finest step among the inputs.
    label : str
        Label of the result.

    Raises
    ------
    RainDataError
        On duplicate gauge IDs, a mix of timestamped and elapsed series, or
        starts that are not on the common step grid.
    """
    series = list(series)
    if not series:
        raise EmptyDataError("combine_gauges: no series given")
    kinds = {s.is_timestamped for s in series}
    if len(kinds) > 1:
        raise RainDataError("combine_gauges: mix of timestamped and elapsed series; use with_start() first")
    ids = [g for s in series for g in s.gauges]
    dup = sorted({g for g in ids if ids.count(g) > 1})
    if dup:
        raise RainDataError(f"combine_gauges: gauge IDs {dup} appear in more than one series")
    step = int(step_s or min(s.step_s for s in series))
    parts = [s if s.step_s == step else s.resample(step) for s in series]
    t0 = min(p.intensity_mm_h.index[0] for p in parts)
    for p in parts:
        off = p.intensity_mm_h.index[0] - t0
        off_s = off.total_seconds() if isinstance(off, pd.Timedelta) else float(off)
        if off_s % step:
            raise RainDataError(
                f"combine_gauges: series '{p.label}' starts {off_s:g} s after the earliest; "
                f"expected a multiple of step_s={step}"
            )
    end = max(p.intensity_mm_h.index[-1] for p in parts)
    span = end - t0
    check_rain_grid("combine_gauges", span.total_seconds() if isinstance(span, pd.Timedelta) else float(span),
                    step, len(ids))
    frame = pd.concat([p.intensity_mm_h for p in parts], axis=1).sort_index()
    if kinds == {True}:
        full = pd.date_range(t0, end, freq=pd.Timedelta(seconds=step), name="time")
    else:
        full = pd.Index(np.arange(int(t0), int(end) + 1, step, dtype="int64"), name="elapsed_s")
    frame = frame.reindex(full).fillna(0.0)
    return RainSeries(frame, step_s=step, label=label or "+".join(s.label or "?" for s in series),
                      source="; ".join(s.source for s in series if s.source))


# ----------------------------------------------------------------------------- helpers


def _rebuild(cls, state: dict):
    return cls(**state)


def _hms(seconds: int) -> str:
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}" if s == 0 else f"{h}:{m:02d}:{s:02d}"


def _checked_index(index: pd.Index, step: int, label: str) -> pd.Index:
    """Return ``index`` as elapsed int seconds or timestamps, checked to be evenly spaced."""
    if isinstance(index, pd.DatetimeIndex):
        if index.tz is not None:
            raise RainDataError(f"rain series '{label}': timestamps must be naive local time, got tz={index.tz}")
        secs = (index - index[0]).total_seconds().to_numpy()
        out = index.rename("time")
    else:
        try:
            arr = np.asarray(index, dtype="float64")
        except (TypeError, ValueError) as exc:
            raise RainDataError(
                f"rain series '{label}': index must be elapsed seconds or timestamps ({exc})"
            ) from exc
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise RainDataError(f"rain series '{label}': elapsed-seconds index must hold whole seconds")
        secs = arr - arr[0]
        out = pd.Index(arr.astype("int64"), name="elapsed_s")
    expected = np.arange(len(secs), dtype="float64") * step
    if not np.array_equal(secs, expected):
        k = int(np.argmax(secs != expected))
        raise RainDataError(
            f"rain series '{label}': interval {k} starts {secs[k]:g} s after the first; "
            f"expected {expected[k]:g} s (a fixed step of {step} s with no gaps)"
        )
    return out
