"""Design storms: Chicago (Keifer-Chu), NRCS 24 h types, IDF-table storms and block storms.

Every generator builds the *cumulative* depth curve first and takes its
increments over the steps, so the depth of the discrete storm equals the
intended depth to rounding, whatever the step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gisdata.errors import UnknownPresetError
from gisdata.idf import IDF_PRESETS, ChineseIDF
from gisdata.limits import (
    MAX_RAIN_STEP_S,
    MAX_RETURN_PERIOD_YR,
    MAX_STORM_DURATION_MIN,
    MIN_RAIN_STEP_S,
    MIN_RETURN_PERIOD_YR,
    check_range,
)
from hydraulics.nrcs_tables import NRCS_24H, NRCS_STEP_H
from hydraulics.rain_series import RainDataError, Storm

NRCS_TYPES = tuple(NRCS_24H)
"""NRCS 24 h distribution types: ``"I"``, ``"IA"``, ``"II"``, ``"III"``."""


def resolve_idf(idf: ChineseIDF | str | Mapping[str, float]) -> ChineseIDF:
    """Return an IDF formula from a :class:`ChineseIDF`, a preset name or user numbers.

    Parameters
    ----------
    idf : ChineseIDF, str or Mapping
        The formula itself; a preset name (``"shanghai"``); or the parameters as
        a mapping, e.g. from a scenario file: ``{"A": 2001, "C": 0.811, "b": 8,
        "n": 0.711}`` (optional ``"name"``).

    Raises
    ------
    UnknownPresetError
        If a name is not in :data:`gisdata.idf.IDF_PRESETS`.
    RainDataError
        If a mapping lacks A, C, b or n, or holds other keys.

    Examples
    --------
    >>> resolve_idf({"A": 1500, "C": 0.7, "b": 10, "n": 0.7}).name
    'user'
    """
    if isinstance(idf, ChineseIDF):
        return idf
    if isinstance(idf, Mapping):
        params = dict(idf)
        name = str(params.pop("name", "user"))
        missing = [k for k in ("A", "C", "b", "n") if k not in params]
        extra = sorted(set(params) - {"A", "C", "b", "n"})
        if missing or extra:
            raise RainDataError(f"IDF parameters: missing {missing}, unexpected {extra}; "
                                "expected A (L/(s*ha)), C (-), b (min), n (-)")
        try:
            return ChineseIDF(name, **{k: float(v) for k, v in params.items()})
        except (TypeError, ValueError) as exc:
            raise RainDataError(f"IDF parameters {params}: {exc}") from exc
    key = str(idf).lower()
    if key not in IDF_PRESETS:
        raise UnknownPresetError(f"IDF preset '{idf}' is unknown; expected one of {sorted(IDF_PRESETS)} "
                                 "or ChineseIDF(name, A, C, b, n)")
    return IDF_PRESETS[key]


def _steps(duration_min: float, step_min: float, what: str) -> int:
    check_range("step_min", step_min, MIN_RAIN_STEP_S / 60.0, MAX_RAIN_STEP_S / 60.0, "min")
    check_range("duration_min", duration_min, 0, MAX_STORM_DURATION_MIN, "min", lo_inclusive=False)
    n = duration_min / step_min
    if abs(n - round(n)) > 1e-9 or abs(step_min * 60 - round(step_min * 60)) > 1e-9:
        raise RainDataError(
            f"{what}: duration_min={duration_min} must be a whole number of steps of "
            f"step_min={step_min} (and the step whole seconds)"
        )
    return int(round(n))


def _storm_from_cumulative(cum_mm: np.ndarray, step_s: int, gauge: str, **kw) -> Storm:
    inc = np.maximum(np.diff(cum_mm), 0.0)
    frame = pd.DataFrame({gauge: inc * (3600.0 / step_s)},
                         index=pd.Index(np.arange(len(inc), dtype="int64") * step_s, name="elapsed_s"))
    return Storm(frame, step_s=step_s, **kw)


def chicago_storm(idf: ChineseIDF | str | Mapping[str, float], return_period_yr: float, duration_min: float, *,
                  r: float = 0.4, step_min: float = 5, gauge: str = "RG1") -> Storm:
    """Chicago design storm (Keifer and Chu, 1957) from a Chinese-form IDF formula.

    With ``D(T)`` the IDF depth over ``T`` minutes and the peak at ``t_p = r * td``,
    the depth over any window that starts ``r*T`` before the peak and ends
    ``(1-r)*T`` after it is exactly ``D(T)``.  The cumulative curve is therefore
    ``r (D(td) - D((t_p - t)/r))`` before the peak and
    ``r D(td) + (1-r) D((t - t_p)/(1-r))`` after it, and each step's intensity is
    its increment: the total equals ``D(td)`` and every window whose ends fall
    on step boundaries matches the IDF exactly.

    Parameters
    ----------
    idf : ChineseIDF, str or Mapping
        IDF formula, the name of a preset (``"beijing"``, ``"shanghai"``, ...),
        or user parameters: ``ChineseIDF("mycity", A=..., C=..., b=..., n=...)``
        or ``{"A": ..., "C": ..., "b": ..., "n": ...}`` (see :func:`resolve_idf`).
    return_period_yr : float
        Return period, years.
    duration_min : float
        Storm duration, minutes; a whole number of steps.
    r : float
        Peak position as a fraction of the duration, 0-1.
    step_min : float
        Time step, minutes.
    gauge : str
        Column name (gauge ID) of the storm.

    Returns
    -------
    Storm
        Intensity in mm/h indexed by elapsed seconds.

    Examples
    --------
    >>> s = chicago_storm("beijing", 20, 120)
    >>> round(s.max_depth_mm, 6) == round(IDF_PRESETS["beijing"].depth_mm(120, 20), 6)
    True
    """
    idf = resolve_idf(idf)
    check_range("return_period_yr", return_period_yr, MIN_RETURN_PERIOD_YR, MAX_RETURN_PERIOD_YR, "yr")
    if not 0.0 <= r <= 1.0:
        raise RainDataError(f"r={r} must be between 0 and 1 (peak position as a fraction of the duration)")
    n = _steps(duration_min, step_min, "chicago_storm")
    td = float(duration_min)
    tp = r * td

    def depth(T: np.ndarray) -> np.ndarray:
        T = np.asarray(T, dtype=float)
        out = np.zeros_like(T)
        pos = T > 0
        out[pos] = [idf.depth_mm(t, return_period_yr) for t in T[pos]]
        return out

    t = np.linspace(0.0, td, n + 1)
    d_total = idf.depth_mm(td, return_period_yr)
    before = t < tp
    cum = np.empty_like(t)
    if before.any():
        cum[before] = r * (d_total - depth((tp - t[before]) / r))
    after = ~before
    if r < 1.0:
        cum[after] = r * d_total + (1.0 - r) * depth((t[after] - tp) / (1.0 - r))
    else:
        cum[after] = d_total
    cum[0], cum[-1] = 0.0, d_total
    return _storm_from_cumulative(
        cum, int(round(step_min * 60)), gauge,
        label=f"Chicago {idf.name} P={return_period_yr:g} yr {duration_min:g} min r={r:g}",
        return_period_yr=float(return_period_yr),
        source=f"chicago_storm({idf!r}, P={return_period_yr}, td={duration_min} min, r={r}, step={step_min} min)",
        method="chicago",
        params=dict(idf=idf.name, A=idf.A, C=idf.C, b=idf.b, n=idf.n, return_period_yr=return_period_yr,
                    duration_min=duration_min, r=r, step_min=step_min),
    )


def cumulative_curve_storm(depth_mm: float, curve: pd.Series, *, step_min: float = 6,
                           gauge: str = "RG1", return_period_yr: float | None = None,
                           label: str = "", method: str = "curve") -> Storm:
    """Distribute ``depth_mm`` over time following a dimensionless cumulative curve.

    Parameters
    ----------
    depth_mm : float
        Total depth, mm.
    curve : pandas.Series
        Cumulative fraction (0 ... 1, non-decreasing) indexed by hours from the
        start (0 ... duration).  Interpolated linearly between its points.
    step_min : float
        Output step, minutes; a whole number of steps must fill the duration.
    gauge, return_period_yr, label, method
        Stored on the :class:`Storm`.
    """
    if not depth_mm >= 0:
        raise RainDataError(f"depth_mm={depth_mm} must be >= 0")
    t_h = np.asarray(curve.index, dtype=float)
    frac = np.asarray(curve.to_numpy(), dtype=float)
    if len(t_h) < 2 or t_h[0] != 0 or np.any(np.diff(t_h) <= 0):
        raise RainDataError("cumulative curve: index must be hours increasing from 0")
    if np.any(np.diff(frac) < 0) or abs(frac[0]) > 1e-12 or abs(frac[-1] - 1.0) > 1e-9:
        raise RainDataError(
            f"cumulative curve: must rise from 0 to 1 without falling (got {frac[0]:g} ... {frac[-1]:g})"
        )
    duration_min = t_h[-1] * 60.0
    n = _steps(duration_min, step_min, method)
    t_new = np.linspace(0.0, t_h[-1], n + 1)
    cum = np.interp(t_new, t_h, frac) * depth_mm
    cum[-1] = depth_mm
    return _storm_from_cumulative(
        cum, int(round(step_min * 60)), gauge, label=label, return_period_yr=return_period_yr,
        source=f"{method}: depth={depth_mm} mm over {t_h[-1]:g} h, step={step_min} min",
        method=method, params=dict(depth_mm=depth_mm, duration_h=float(t_h[-1]), step_min=step_min),
    )


def nrcs_curve(storm_type: str = "II") -> pd.Series:
    """The NRCS 24 h cumulative fraction for ``storm_type`` (I, IA, II, III), indexed by hours."""
    key = str(storm_type).upper().removeprefix("TYPE").strip()
    if key not in NRCS_24H:
        raise RainDataError(f"NRCS storm type '{storm_type}' is unknown; expected one of {list(NRCS_TYPES)}")
    vals = NRCS_24H[key]
    return pd.Series(vals, index=pd.Index(np.arange(len(vals)) * NRCS_STEP_H, name="time_h"),
                     name=f"nrcs_{key}")


def nrcs_storm(depth_mm: float, storm_type: str = "II", *, step_min: float = 6, gauge: str = "RG1",
               return_period_yr: float | None = None) -> Storm:
    """NRCS (SCS) 24 h design storm of type I, IA, II or III scaled to ``depth_mm``.

    Parameters
    ----------
    depth_mm : float
        24 h rain depth, mm.
    storm_type : {"I", "IA", "II", "III"}
        NRCS distribution.
    step_min : float
        Step, minutes; it must divide 24 h.  Multiples of 6 min reproduce the
        table exactly; other steps interpolate the cumulative curve linearly.

    Examples
    --------
    >>> s = nrcs_storm(100.0, "II")
    >>> round(s.max_depth_mm, 9), s.duration_s
    (100.0, 86400)
    """
    curve = nrcs_curve(storm_type)
    key = curve.name.removeprefix("nrcs_")
    return cumulative_curve_storm(depth_mm, curve, step_min=step_min, gauge=gauge,
                                  return_period_yr=return_period_yr,
                                  label=f"NRCS type {key} 24 h {depth_mm:g} mm", method=f"nrcs_{key}")


def block_storm(intensity_mm_h: float, duration_min: float, *, step_min: float = 5,
                lead_min: float = 0, tail_min: float = 0, gauge: str = "RG1") -> Storm:
    """Constant-intensity storm, optionally with dry time before and after.

    Parameters
    ----------
    intensity_mm_h : float
        Intensity during the block, mm/h.
    duration_min, lead_min, tail_min : float
        Length of the block and of the dry lead and tail, minutes (whole steps).
    step_min : float
        Step, minutes.

    Examples
    --------
    >>> block_storm(30.0, 60, step_min=10).max_depth_mm
    30.0
    """
    if not intensity_mm_h >= 0:
        raise RainDataError(f"intensity_mm_h={intensity_mm_h} must be >= 0")
    n_rain = _steps(duration_min, step_min, "block_storm")
    n_lead = _steps(lead_min, step_min, "block_storm lead") if lead_min else 0
    n_tail = _steps(tail_min, step_min, "block_storm tail") if tail_min else 0
    vals = np.r_[np.zeros(n_lead), np.full(n_rain, float(intensity_mm_h)), np.zeros(n_tail)]
    step_s = int(round(step_min * 60))
    frame = pd.DataFrame({gauge: vals}, index=pd.Index(np.arange(len(vals), dtype="int64") * step_s,
                                                       name="elapsed_s"))
    return Storm(frame, step_s=step_s, label=f"block {intensity_mm_h:g} mm/h x {duration_min:g} min",
                 source=f"block_storm({intensity_mm_h} mm/h, {duration_min} min)", method="block",
                 params=dict(intensity_mm_h=intensity_mm_h, duration_min=duration_min,
                             lead_min=lead_min, tail_min=tail_min, step_min=step_min))


# ----------------------------------------------------------------------------- IDF tables


@dataclass(frozen=True, eq=False)
class IDFTable:
    """Depth-duration-frequency table: rain depth by duration and return period.

    Parameters
    ----------
    depth_mm : pandas.DataFrame
        Depth in mm; index ``duration_h`` (float, increasing), columns return
        periods in years (float, increasing).
    name : str
        Label, e.g. the city.
    """

    depth_mm: pd.DataFrame
    name: str = ""

    def depth_for(self, duration_h: float, return_period_yr: float) -> float:
        """Depth for a tabulated duration, mm; return periods interpolate linearly in log P.

        Raises
        ------
        RainDataError
            If the duration is not a row, or the return period is outside the table.
        """
        durations = self.depth_mm.index.to_numpy(dtype=float)
        hit = np.isclose(durations, duration_h, rtol=0, atol=1e-6)
        if not hit.any():
            raise RainDataError(f"IDF table '{self.name}': no row for duration {duration_h:g} h; "
                                f"has {durations.tolist()}")
        row = self.depth_mm.iloc[int(np.argmax(hit))]
        periods = row.index.to_numpy(dtype=float)
        if not periods[0] - 1e-9 <= return_period_yr <= periods[-1] + 1e-9:
            raise RainDataError(f"IDF table '{self.name}': return period {return_period_yr:g} yr is outside "
                                f"{periods[0]:g} ... {periods[-1]:g} yr")
        return float(np.interp(np.log(return_period_yr), np.log(periods), row.to_numpy(dtype=float)))


def idf_table_storm(table: IDFTable, return_period_yr: float, *, curve: str | pd.Series = "II",
                    step_min: float = 6, gauge: str = "RG1") -> Storm:
    """Design storm whose depth comes from an IDF table and whose shape from a cumulative curve.

    Parameters
    ----------
    table : IDFTable
        E.g. from :func:`hydraulics.rain_readers.read_idf_table`.
    return_period_yr : float
        Return period, years (log-interpolated between columns).
    curve : str or pandas.Series
        An NRCS type (``"I"``, ``"IA"``, ``"II"``, ``"III"``) or a cumulative fraction
        indexed by hours (e.g. a column of
        :func:`hydraulics.rain_readers.read_design_storm_curves`).  Its duration
        selects the table row (24 h for the NRCS curves).
    step_min : float
        Step, minutes.
    """
    shape = nrcs_curve(curve) if isinstance(curve, str) else curve
    duration_h = float(shape.index[-1])
    depth = table.depth_for(duration_h, return_period_yr)
    storm = cumulative_curve_storm(
        depth, shape, step_min=step_min, gauge=gauge, return_period_yr=float(return_period_yr),
        label=f"{table.name} P={return_period_yr:g} yr {duration_h:g} h ({shape.name})", method="idf_table",
    )
    params = dict(storm.params, table=table.name, curve=str(shape.name), return_period_yr=return_period_yr)
    return dataclasses.replace(storm, params=params)
