"""Rain forecasts: a deterministic QPF read from CSV, and ensembles of rain members.

A *QPF* (quantitative precipitation forecast) is a :class:`RainSeries` whose
index is the lead time from the issue time, in seconds (``elapsed_s``): row
``k`` is the mean intensity over ``[k * step_s, (k + 1) * step_s)`` after issue.

An :class:`Ensemble` is N rain members with weights.  Members come from files
(:func:`read_ensemble`) or from a deterministic QPF through the seeded error
model of :func:`perturb_qpf`.

The error model
---------------
For member ``m`` (``m = 0`` is the unperturbed *control* when ``control=True``)
and gauge ``g``, with ``t`` the lead time in hours:

1. **Amount** -- a multiplicative log-normal factor that grows with lead time::

       f_m(t) = exp(sigma(t) * z_m(t) - sigma(t)**2 / 2),   sigma(t) = sigma0 + sigma_per_day * t / 24

   ``z_m`` is a standard-normal AR(1) process in time with correlation time
   ``tau_h`` (amount errors persist over a storm rather than flicker step to
   step).  The ``-sigma**2/2`` term keeps the expected amount equal to the QPF
   (``E[f] = 1``), so the ensemble is unbiased in volume.
2. **Timing** -- the whole member is shifted by ``dt_m ~ N(0, s(t_c))`` with
   ``s(t_c) = timing0_h + timing_per_day_h * t_c / 24`` and ``t_c`` the lead
   of the QPF's rain centroid (a storm forecast three days out is less sure
   of its hour than one due tonight).  Shifts are rounded to the step and
   never move rain before the issue time.
   The QPF is first padded with dry steps so that a late shift never pushes
   rain off the end of the record.
3. **Between gauges** -- each gauge gets an extra shift ``N(0, gauge_shift_h)``
   (the storm's track is uncertain as well as its hour).

Randomness comes only from ``numpy.random.default_rng(SeedSequence(seed).spawn(n))``:
member ``m`` depends on ``(seed, m)`` only, so a 10-member ensemble is the
first 10 members of a 50-member one with the same seed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gisdata.errors import EmptyDataError, InputFileNotFoundError, TwinError
from gisdata.limits import (
    MAX_MEMBERS,
    MAX_QPF_LEAD_H,
    MAX_RAIN_CELLS,
    MAX_RAIN_INTENSITY_MM_H,
    LimitError,
    check_rain_grid,
    check_range,
)
from hydraulics.rain_readers import UNIT_SUFFIXES, RainFileError
from hydraulics.rain_series import MM_PER_INCH, RainDataError, RainSeries

LEAD_COLUMNS = {"lead_s": 1.0, "lead_min": 60.0, "lead_h": 3600.0,
                "elapsed_s": 1.0, "elapsed_min": 60.0, "elapsed_h": 3600.0}
"""Time columns that give the lead from the issue time (interval start), with seconds per unit."""

KNOWN_UNITS = ("mm_h", "in_h", "mm", "in")
"""Units a QPF column may declare (suffix ``_mm_h`` etc., or ``units=``)."""


class QPFError(RainFileError):
    """A QPF file is malformed; the message names the file, the row (line) or the field."""


class EnsembleError(TwinError, ValueError):
    """An ensemble is inconsistent (no members, bad weights, mismatched gauges)."""


# ----------------------------------------------------------------------------- QPF reading


def read_qpf(path: str | Path, *, units: str | None = None, issue_time: pd.Timestamp | str | None = None,
             gauges: Sequence[str] | None = None) -> RainSeries:
    """Read a deterministic QPF from CSV, strictly.

    Layout: a header row; the first column is the time of each interval's
    start, either a lead from issue (``lead_h``, ``lead_min``, ``lead_s``; also
    ``elapsed_*``) or timestamps (then ``issue_time`` is required); then one
    column per gauge, its unit given by a name suffix (``RG1_mm_h``,
    ``RG2_mm``) or by ``units``.

    Unlike an observed record, a forecast with a hole in it is refused: a gap
    is not "no rain", it is a missing forecast.

    Parameters
    ----------
    path : str or Path
        The CSV file.
    units : {"mm_h", "in_h", "mm", "in"}, optional
        Unit of gauge columns without a suffix: intensity (mm/h, in/h) or depth
        per interval (mm, in).
    issue_time : Timestamp or str, optional
        Issue time, needed when the time column holds timestamps; rows before it are refused.
    gauges : sequence of str, optional
        Gauge IDs the city has; a column naming another gauge is refused.

    Returns
    -------
    RainSeries
        Intensity in mm/h, index ``elapsed_s`` = lead from issue, s.

    Raises
    ------
    InputFileNotFoundError
        The file does not exist.
    QPFError
        Gaps, negative or empty values, unsorted or duplicated times, an unknown
        unit or gauge; the message names the line (row) or the column (field).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "qpf.csv"
    >>> _ = p.write_text("lead_h,RG1_mm_h\\n0,0\\n1,4.5\\n2,0\\n")
    >>> q = read_qpf(p)
    >>> q.step_s, float(q.depth_mm["RG1"])
    (3600, 4.5)
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileNotFoundError(f"{path}: QPF file not found (expected a CSV with a time column and gauge columns)")
    if units is not None and units not in KNOWN_UNITS:
        raise QPFError(path, None, f"units={units!r} is unknown; expected one of {list(KNOWN_UNITS)}")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise QPFError(path, None, f"not a readable CSV ({exc})") from exc
    lines = np.arange(len(raw)) + 2  # header is line 1
    blank = (raw.apply(lambda c: c.str.strip()) == "").all(axis=1).to_numpy()
    raw, lines = raw[~blank].reset_index(drop=True), lines[~blank]
    if raw.empty:
        raise QPFError(path, None, "holds no data rows", key="err.rain.no_rows")
    tcol = raw.columns[0]
    value_cols = list(raw.columns[1:])
    if not value_cols:
        raise QPFError(path, 1, "no gauge columns after the time column", key="err.rain.no_gauges")
    for col in value_cols:
        _check_column_unit(path, col, units, gauges)

    lead_unit = LEAD_COLUMNS.get(str(tcol).strip().lower())
    if lead_unit is not None:
        t = pd.to_numeric(raw[tcol].str.strip(), errors="coerce").to_numpy(float) * lead_unit
        bad = ~np.isfinite(t)
    else:
        if issue_time is None:
            raise QPFError(path, 1, f"time column '{tcol}' holds timestamps; give the issue time, "
                                    f"or name the column one of {sorted(LEAD_COLUMNS)} (lead from issue)")
        ts = pd.to_datetime(raw[tcol].str.strip(), errors="coerce", format="mixed")
        bad = ts.isna().to_numpy()
        t = ((ts - pd.Timestamp(issue_time)).dt.total_seconds()).to_numpy(float)
    if bad.any():
        k = int(np.argmax(bad))
        raise QPFError(path, int(lines[k]), f"field '{tcol}': time {raw[tcol].iloc[k]!r} cannot be read")
    # Whole seconds: leads written as decimal hours (0.083333 h) are 5 min steps, not 0.0012 s gaps.
    t = np.round(t)
    if (t < 0).any():
        k = int(np.argmax(t < 0))
        raise QPFError(path, int(lines[k]), f"field '{tcol}': time {raw[tcol].iloc[k]!r} is before the issue time")
    if (t > MAX_QPF_LEAD_H * 3600.0).any():  # before any grid is allocated: a 29-byte file must stay small
        k = int(np.argmax(t > MAX_QPF_LEAD_H * 3600.0))
        raise QPFError(path, int(lines[k]), f"field '{tcol}': time {raw[tcol].iloc[k]!r} is {t[k] / 3600.0:,.6g} h "
                                            f"after issue; expected at most {MAX_QPF_LEAD_H:g} h (MAX_QPF_LEAD_H)")
    d = np.diff(t)
    if (d == 0).any():
        k = int(np.argmax(d == 0)) + 1
        raise QPFError(path, int(lines[k]), f"field '{tcol}': time {raw[tcol].iloc[k]!r} is duplicated "
                                            f"(same as line {int(lines[k - 1])})")
    if (d < 0).any():
        k = int(np.argmax(d < 0)) + 1
        raise QPFError(path, int(lines[k]), f"field '{tcol}': time {raw[tcol].iloc[k]!r} is not sorted "
                                            f"(earlier than line {int(lines[k - 1])})")
    if len(d):
        step = float(d.min())
        gap = d > step * (1 + 1e-9)
        if gap.any():
            k = int(np.argmax(gap)) + 1
            raise QPFError(path, int(lines[k]), f"field '{tcol}': gap of {d[k - 1]:g} s before time "
                                                f"{raw[tcol].iloc[k]!r}; expected rows every {step:g} s "
                                                "(a missing forecast is not 'no rain')")
    for col in value_cols:
        cells = raw[col].str.strip()
        num = pd.to_numeric(cells, errors="coerce").to_numpy(float)
        bad = ~np.isfinite(num)
        if bad.any():
            k = int(np.argmax(bad))
            empty = cells.iloc[k] == ""
            what = "is empty" if empty else f"{cells.iloc[k]!r} is not a number"
            raise QPFError(path, int(lines[k]), f"field '{col}': {what}",
                           key="err.qpf.empty" if empty else "err.qpf.not_a_number", column=col,
                           value=repr(cells.iloc[k]))
        if (num < 0).any():
            k = int(np.argmax(num < 0))
            raise QPFError(path, int(lines[k]), f"field '{col}': {num[k]:g} is negative; expected rain >= 0",
                           key="err.qpf.negative", column=col, value=f"{num[k]:g}")

    step = round(d.min()) if len(d) else 3600  # one row: an hourly forecast by convention
    try:
        check_rain_grid("QPF", float(t.max()), step, len(value_cols))
    except LimitError as exc:
        raise QPFError(path, None, str(exc).removeprefix("QPF: ")) from None
    off = t / step
    if (np.abs(off - np.round(off)) > 1e-6).any():
        k = int(np.argmax(np.abs(off - np.round(off)) > 1e-6))
        raise QPFError(path, int(lines[k]), f"field '{tcol}': time {raw[tcol].iloc[k]!r} is not a whole number "
                                            f"of {step} s steps after issue")
    values = {}
    for col in value_cols:
        gauge, unit = _gauge_and_unit(col, units)
        num = pd.to_numeric(raw[col].str.strip()).to_numpy(float)
        factor = {"mm_h": 1.0, "in_h": MM_PER_INCH, "mm": 3600.0 / step, "in": MM_PER_INCH * 3600.0 / step}[unit]
        if gauge in values:
            raise QPFError(path, 1, f"field '{col}': gauge '{gauge}' appears in more than one column")
        values[gauge] = num * factor
        if (values[gauge] > MAX_RAIN_INTENSITY_MM_H).any():
            k = int(np.argmax(values[gauge] > MAX_RAIN_INTENSITY_MM_H))
            raise QPFError(path, int(lines[k]), f"field '{col}': {raw[col].iloc[k].strip()} is "
                                                f"{values[gauge][k]:,.6g} mm/h; expected at most "
                                                f"{MAX_RAIN_INTENSITY_MM_H:g} mm/h (MAX_RAIN_INTENSITY_MM_H)")
    index = pd.Index(np.round(t).astype("int64"), name="elapsed_s")
    try:
        series = RainSeries(pd.DataFrame(values, index=index), step_s=step, label=path.stem)
    except RainDataError as exc:
        raise QPFError(path, None, str(exc)) from exc
    # Rows start at the first forecast time; a QPF that starts after issue is dry until then.
    series = _pad_to_issue(series)
    return dataclasses.replace(series, label=path.stem, source=str(path), meta={"format": "qpf-csv"})


def _gauge_and_unit(col: str, units: str | None) -> tuple[str | None, str | None]:
    for suffix in sorted(UNIT_SUFFIXES, key=len, reverse=True):
        if col.endswith(suffix) and len(col) > len(suffix):
            return col[: -len(suffix)], UNIT_SUFFIXES[suffix]
    return (col, units) if units is not None else (None, None)


def _check_column_unit(path: Path, col: str, units: str | None, gauges: Sequence[str] | None) -> None:
    gauge, _ = _gauge_and_unit(col, None)
    if gauge is None:
        if "_" in col and col.rsplit("_", 1)[1].lower() in {"cm", "m", "mmh", "inh", "cm_h", "m_s", "l"} \
                and units is None:
            raise QPFError(path, 1, f"field '{col}': unit '{col.rsplit('_', 1)[1]}' is unknown; "
                                    f"expected a suffix among {list(UNIT_SUFFIXES)}")
        if units is None:
            raise QPFError(path, 1, f"field '{col}' declares no unit; add a suffix {list(UNIT_SUFFIXES)} "
                                    "or pass units=")
        gauge = col
    if gauges is not None and gauge not in gauges and len(gauges) > 0:
        raise QPFError(path, 1, f"field '{col}': gauge '{gauge}' is not a rain gauge of the city {list(gauges)}")


def _pad_to_issue(series: RainSeries) -> RainSeries:
    first = int(series.intensity_mm_h.index[0])
    if first == 0:
        return series
    if first % series.step_s:
        raise RainDataError(f"QPF starts {first} s after issue, not a whole number of {series.step_s} s steps")
    pad = pd.DataFrame(0.0, index=np.arange(0, first, series.step_s), columns=series.gauges)
    frame = pd.concat([pad, series.intensity_mm_h.set_axis(series.intensity_mm_h.index.astype("int64"))])
    frame.index = pd.Index(frame.index.astype("int64"), name="elapsed_s")
    return dataclasses.replace(series, intensity_mm_h=frame)


def fit_horizon(rain: RainSeries, horizon_s: float, *, step_s: int | None = None) -> RainSeries:
    """Return ``rain`` (lead-indexed) on ``step_s`` covering exactly ``[0, horizon_s)``: padded dry or cut.

    Parameters
    ----------
    rain : RainSeries
        Lead-indexed rain, index ``elapsed_s`` starting at 0.
    horizon_s : float
        Forecast horizon, s.
    step_s : int, optional
        Step of the result, s (default: ``rain.step_s``; must divide ``horizon_s``).

    Examples
    --------
    >>> r = RainSeries(pd.DataFrame({"RG1": [6.0, 6.0]}, index=[0, 3600]), step_s=3600)
    >>> fit_horizon(r, 4 * 3600).intensity_mm_h["RG1"].tolist()
    [6.0, 6.0, 0.0, 0.0]
    """
    step = int(step_s or rain.step_s)
    check_range("horizon_s", horizon_s, 0, MAX_QPF_LEAD_H * 3600.0, "s", lo_inclusive=False)
    check_rain_grid("forecast horizon", float(horizon_s), step, len(rain.gauges))
    r = rain.to_elapsed() if rain.is_timestamped else rain
    if int(r.intensity_mm_h.index[0]) != 0:
        r = r.to_elapsed()
    if r.step_s != step:
        r = r.resample(step)
    n = math.ceil(float(horizon_s) / step)
    vals = r.intensity_mm_h.to_numpy()
    out = np.zeros((n, vals.shape[1]))
    k = min(n, len(vals))
    out[:k] = vals[:k]
    frame = pd.DataFrame(out, index=pd.Index(np.arange(n, dtype="int64") * step, name="elapsed_s"),
                         columns=r.gauges)
    return dataclasses.replace(r, intensity_mm_h=frame, step_s=step)


def spread_to_gauges(rain: RainSeries, gauges: Sequence[str]) -> RainSeries:
    """Give every city gauge a column: a one-column series is copied to all of ``gauges``.

    Raises
    ------
    RainDataError
        If a multi-column series lacks one of ``gauges``.
    """
    gauges = [str(g) for g in gauges]
    if list(rain.gauges) == gauges:
        return rain
    if len(rain.gauges) == 1:
        col = rain.intensity_mm_h.iloc[:, 0].to_numpy()
        frame = pd.DataFrame({g: col for g in gauges}, index=rain.intensity_mm_h.index)
        return dataclasses.replace(rain, intensity_mm_h=frame)
    return rain.select(gauges)


# ----------------------------------------------------------------------------- ensembles


@dataclass(frozen=True, eq=False)
class Ensemble:
    """N rain members (lead-indexed :class:`RainSeries`) and their weights.

    Parameters
    ----------
    members : tuple of RainSeries
        Member rain, each indexed by lead from issue (s), same step and gauges.
    weights : tuple of float
        Non-negative weights summing to 1 (default equal).
    names : tuple of str
        Member names (``m000`` ...).
    source : str
        How the ensemble was made (files, or the error model and its seed).
    """

    members: tuple[RainSeries, ...]
    weights: tuple[float, ...] = ()
    names: tuple[str, ...] = ()
    source: str = ""
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        members = tuple(self.members)
        if not members:
            raise EnsembleError("an ensemble needs at least one member")
        steps = {m.step_s for m in members}
        if len(steps) > 1:
            raise EnsembleError(f"ensemble members have different steps {sorted(steps)} s; resample them first")
        w = np.asarray(self.weights if self.weights else [1.0] * len(members), dtype=float)
        if len(w) != len(members) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise EnsembleError(f"weights {list(w)} must be {len(members)} finite values >= 0 with a positive sum")
        names = tuple(self.names) if self.names else tuple(f"m{k:03d}" for k in range(len(members)))
        if len(names) != len(members) or len(set(names)) != len(names):
            raise EnsembleError(f"member names {list(names)[:5]}... must be unique, one per member")
        object.__setattr__(self, "members", members)
        object.__setattr__(self, "weights", tuple(float(v) for v in w / w.sum()))
        object.__setattr__(self, "names", names)

    def __len__(self) -> int:
        return len(self.members)

    def depth_mm(self) -> pd.DataFrame:
        """Total depth per member (rows) and gauge (columns), mm."""
        return pd.DataFrame([m.depth_mm for m in self.members], index=list(self.names))


def design_storm_qpf(idf: str, return_period_yr: float, duration_s: float, start_in_s: float,
                     step_min: int = 5) -> RainSeries:
    """A Chicago design storm starting ``start_in_s`` after issue, as a lead-indexed QPF.

    Parameters
    ----------
    idf : str
        IDF preset (see :data:`gisdata.idf.IDF_PRESETS`).
    return_period_yr : float
        Return period, years.
    duration_s : float
        Storm duration, s.
    start_in_s : float
        Lead of the storm's start from the issue time, s; a whole number of steps.
    step_min : int
        Rain step, min.

    Raises
    ------
    EnsembleError
        ``start_in_s`` is not a whole number of steps.
    """
    from hydraulics.design_storms import chicago_storm

    check_range("start_in_s", start_in_s, 0, MAX_QPF_LEAD_H * 3600.0, "s")
    storm = chicago_storm(idf, return_period_yr=return_period_yr, duration_min=duration_s / 60.0, step_min=step_min)
    step = storm.step_s
    k0 = round(start_in_s / step)
    if abs(k0 * step - start_in_s) > 1e-6:
        raise EnsembleError(f"storm start {start_in_s:g} s after issue must be a whole number of {step} s steps")
    vals = np.concatenate([np.zeros(k0), storm.intensity_mm_h.iloc[:, 0].to_numpy()])
    return RainSeries(pd.DataFrame({"RG1": vals}, index=np.arange(len(vals), dtype="int64") * step),
                      step_s=step, label=f"{storm.label}, starting in {start_in_s / 3600:g} h",
                      source=f"chicago {idf} P={return_period_yr} yr {duration_s / 60:g} min",
                      return_period_yr=return_period_yr)


def deterministic(qpf: RainSeries, name: str = "qpf") -> Ensemble:
    """A one-member ensemble: the QPF itself, weight 1."""
    return Ensemble((qpf,), names=(name,), source=f"deterministic: {qpf.source or qpf.label}")


@dataclass(frozen=True)
class ErrorModel:
    """Parameters of the QPF error model (see the module docstring).

    Parameters
    ----------
    sigma0 : float
        Log-standard deviation of the amount factor at lead 0, -.
    sigma_per_day : float
        Growth of that log-standard deviation per day of lead, 1/day.
    tau_h : float
        Correlation time of the amount error, h.
    timing0_h : float
        Standard deviation of the timing shift at lead 0, h.
    timing_per_day_h : float
        Growth of the timing standard deviation per day of lead, h/day.
    gauge_shift_h : float
        Standard deviation of each gauge's extra shift, h.
    control : bool
        Member 0 is the unperturbed QPF.
    """

    sigma0: float = 0.15
    sigma_per_day: float = 0.10
    tau_h: float = 6.0
    timing0_h: float = 0.25
    timing_per_day_h: float = 1.0
    gauge_shift_h: float = 0.25
    control: bool = True

    def __post_init__(self) -> None:
        for name in ("sigma0", "sigma_per_day", "timing0_h", "timing_per_day_h", "gauge_shift_h"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise EnsembleError(f"{name}={v!r} must be a finite number >= 0")
        if not self.tau_h > 0:
            raise EnsembleError(f"tau_h={self.tau_h!r} must be > 0 h")


def perturb_qpf(qpf: RainSeries, n_members: int, *, seed: int, model: ErrorModel | None = None,
                gauges: Sequence[str] | None = None) -> Ensemble:
    """Generate an ensemble from a deterministic QPF with the seeded error model.

    Parameters
    ----------
    qpf : RainSeries
        Lead-indexed forecast, mm/h (index ``elapsed_s`` from issue).
    n_members : int
        Number of members, >= 1.
    seed : int
        Seed; member ``m`` depends only on ``(seed, m)``.
    model : ErrorModel, optional
        Error-model parameters (default :class:`ErrorModel()`).
    gauges : sequence of str, optional
        City gauges; a one-column QPF is first copied to each so that the
        between-gauge shift applies.

    Returns
    -------
    Ensemble

    Examples
    --------
    >>> q = RainSeries(pd.DataFrame({"RG1": [0.0] * 10 + [20.0] * 6 + [0.0] * 20},
    ...                             index=np.arange(36) * 600), step_s=600)
    >>> a = perturb_qpf(q, 5, seed=1); b = perturb_qpf(q, 5, seed=1)
    >>> all(np.array_equal(x.intensity_mm_h, y.intensity_mm_h) for x, y in zip(a.members, b.members))
    True
    """
    if not (isinstance(n_members, (int, np.integer)) and n_members >= 1):
        raise EnsembleError(f"n_members={n_members!r} must be an integer >= 1")
    check_range("n_members", n_members, 1, MAX_MEMBERS, integer=True)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise EnsembleError(f"seed={seed!r} must be an integer (the error model is seeded, never global)")
    model = model or ErrorModel()
    base = spread_to_gauges(qpf, gauges) if gauges else qpf
    step = base.step_s
    base = _pad_end(base, model)
    vals = base.intensity_mm_h.to_numpy()
    n_t, n_g = vals.shape
    if n_members * vals.size > MAX_RAIN_CELLS:
        raise EnsembleError(f"{n_members} members x {n_t:,} steps x {n_g} gauges is more than {MAX_RAIN_CELLS:,} rain "
                            "values (MAX_RAIN_CELLS); use fewer members or a coarser step")
    lead_h = np.arange(n_t) * step / 3600.0
    total = vals.sum(axis=1)
    t_c = float((lead_h * total).sum() / total.sum()) if total.sum() > 0 else 0.0
    first_wet = int(np.argmax(total > 0)) if (total > 0).any() else 0
    sigma = model.sigma0 + model.sigma_per_day * lead_h / 24.0
    phi = math.exp(-step / 3600.0 / model.tau_h)
    s_time = model.timing0_h + model.timing_per_day_h * t_c / 24.0
    children = np.random.SeedSequence(int(seed)).spawn(int(n_members))
    members = []
    for m in range(int(n_members)):
        if m == 0 and model.control:
            members.append(dataclasses.replace(base, label=f"{base.label} control", source=base.source))
            continue
        rng = np.random.default_rng(children[m])
        eps = rng.standard_normal(n_t)
        z = np.empty(n_t)
        z[0] = eps[0]
        for k in range(1, n_t):  # AR(1) with unit variance
            z[k] = phi * z[k - 1] + math.sqrt(1 - phi * phi) * eps[k]
        factor = np.exp(sigma * z - sigma ** 2 / 2.0)
        shift = rng.normal(0.0, s_time) if s_time > 0 else 0.0
        g_shift = rng.normal(0.0, model.gauge_shift_h, n_g) if model.gauge_shift_h > 0 else np.zeros(n_g)
        out = np.zeros_like(vals)
        for g in range(n_g):
            k_shift = round((shift + g_shift[g]) * 3600.0 / step)
            k_shift = max(k_shift, -first_wet)  # never move rain before the issue time
            col = vals[:, g] * factor
            if k_shift >= 0:
                out[k_shift:, g] = col[: n_t - k_shift]
            else:
                out[: n_t + k_shift, g] = col[-k_shift:]
        frame = pd.DataFrame(out, index=base.intensity_mm_h.index, columns=base.gauges)
        members.append(dataclasses.replace(base, intensity_mm_h=frame, label=f"{base.label} m{m:03d}"))
    params = {**dataclasses.asdict(model), "seed": int(seed), "n_members": int(n_members)}
    return Ensemble(tuple(members), source=f"error model on {qpf.source or qpf.label} (seed {seed})", params=params)


def reduce_members(ensemble: Ensemble, k: int, *, seed: int = 0) -> Ensemble:
    """Replace an ensemble by ``k`` representative members, each weighted by the members it stands for.

    Members are described by three features per member -- log total depth
    (mm, mean over gauges), rain centroid lead (h) and log peak intensity
    (mm/h) -- standardised, and clustered by k-means (``scipy``, seeded).  Each
    cluster is represented by its member nearest the centroid, weighted by the
    cluster's total weight.  The cost is an approximation of the ensemble's
    distribution; ``benchmarks/forecast_speed.py`` measures it as CSI against
    the full ensemble.

    Parameters
    ----------
    ensemble : Ensemble
    k : int
        Number of representatives (>= 1); the ensemble is returned unchanged if ``k >= len``.
    seed : int
        Seed of the k-means initialisation.
    """
    from scipy.cluster.vq import kmeans2

    if k < 1:
        raise EnsembleError(f"k={k} representatives must be >= 1")
    n = len(ensemble)
    if k >= n:
        return ensemble
    feats = []
    for m in ensemble.members:
        v = m.intensity_mm_h.to_numpy()
        tot = v.sum(axis=1)
        depth = float(tot.sum()) * m.step_s / 3600.0 / v.shape[1]
        lead = np.arange(len(tot)) * m.step_s / 3600.0
        centroid = float((lead * tot).sum() / tot.sum()) if tot.sum() > 0 else 0.0
        feats.append([math.log1p(depth), centroid, math.log1p(float(v.max()))])
    x = np.asarray(feats)
    sd = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    centroids, labels = kmeans2(z, k, minit="++", seed=np.random.default_rng(seed))
    w = np.asarray(ensemble.weights)
    reps, weights = [], []
    for c in range(k):
        idx = np.flatnonzero(labels == c)
        if len(idx) == 0:
            continue
        best = idx[np.argmin(((z[idx] - centroids[c]) ** 2).sum(axis=1))]
        reps.append(int(best))
        weights.append(float(w[idx].sum()))
    order = np.argsort(reps)
    reps = [reps[i] for i in order]
    weights = [weights[i] for i in order]
    return Ensemble(tuple(ensemble.members[i] for i in reps), weights=tuple(weights),
                    names=tuple(ensemble.names[i] for i in reps),
                    source=f"{ensemble.source}; reduced to {len(reps)} representatives (k-means, seed {seed})",
                    params={**ensemble.params, "reduced_to": len(reps), "reduce_seed": seed})


def _pad_end(series: RainSeries, model: ErrorModel) -> RainSeries:
    """Add dry steps at the end so that a late shift never pushes rain off the record."""
    lead_end_h = series.duration_s / 3600.0
    reach_h = 6.0 * (model.timing0_h + model.timing_per_day_h * lead_end_h / 24.0 + model.gauge_shift_h)
    check_rain_grid("ensemble padding", series.duration_s + reach_h * 3600.0, series.step_s, len(series.gauges))
    n_pad = math.ceil(reach_h * 3600.0 / series.step_s)
    if n_pad == 0:
        return series
    frame = series.intensity_mm_h
    idx0 = int(frame.index[-1]) + series.step_s
    pad = pd.DataFrame(0.0, columns=frame.columns,
                       index=pd.Index(idx0 + np.arange(n_pad, dtype="int64") * series.step_s, name=frame.index.name))
    return dataclasses.replace(series, intensity_mm_h=pd.concat([frame, pad]))


def read_ensemble(paths: Iterable[str | Path] | str | Path, *, units: str | None = None,
                  issue_time=None, gauges: Sequence[str] | None = None) -> Ensemble:
    """Read ensemble members, one QPF CSV per member (a directory means its ``*.csv`` files, sorted).

    Raises
    ------
    InputFileNotFoundError, QPFError, EnsembleError
    """
    if isinstance(paths, (str, Path)):
        p = Path(paths)
        if p.is_dir():
            files = sorted(p.glob("*.csv"))
            if not files:
                raise EmptyDataError(f"{p}: no member files (*.csv) in the directory")
        else:
            files = [p]
    else:
        files = [Path(x) for x in paths]
    if len(files) > MAX_MEMBERS:
        raise EnsembleError(f"{len(files):,} member files; expected at most {MAX_MEMBERS:,} (MAX_MEMBERS)")
    members, cells = [], 0
    for f in files:
        members.append(read_qpf(f, units=units, issue_time=issue_time, gauges=gauges))
        cells += members[-1].intensity_mm_h.size
        if cells > MAX_RAIN_CELLS:
            raise EnsembleError(f"{f}: the members read so far hold {cells:,} rain values; expected at most "
                                f"{MAX_RAIN_CELLS:,} in all (MAX_RAIN_CELLS)")
    steps = {m.step_s for m in members}
    if len(steps) > 1:
        fine = min(steps)
        members = [m if m.step_s == fine else m.resample(fine) for m in members]
    return Ensemble(tuple(members), names=tuple(f.stem for f in files), source=f"files: {', '.join(map(str, files))}")
