"""Verify forecasts against the observed run: POD, FAR, CSI, Brier score, reliability, onset error.

Set-up (:func:`verify_forecasts`)
---------------------------------
- The **observed run** is one continuous SWMM run of the observed rain from
  the start of the record to ``drain_h`` after its end, reduced to surface
  depth per point exactly as a forecast member is (:mod:`hydraulics.ensemble`).
- The **event time** is the first observed rain.  For each lead ``L`` a
  forecast is issued at ``event - L`` from the state the observed run had
  then (a hotstart, :func:`hydraulics.forecast.compute_issue_states`).
- Every forecast covers the same **verification window**, from its issue time
  to the end of the observed run (at least ``hours``), so the 72 h forecast
  sees the event it is verified on.
- A point is **observed** flooded when its observed depth exceeds the
  threshold in the window, and **forecast** flooded when its probability
  reaches ``prob_threshold``.

With a perfect rain forecast (the QPF is the observed rain), each forecast
is the observed run restarted from its own state, so the risk points must be
the observed ones: CSI = 1 at every lead.  This is the test of the state
handling.

Scores (standard contingency-table definitions, hits ``a``, false alarms
``b``, misses ``c``): ``POD = a/(a+c)``, ``FAR = b/(a+b)``, ``CSI = a/(a+b+c)``;
NaN when the denominator is 0.  ``Brier = mean((p - o)^2)`` over all points.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gisdata.city import CityTwin
from gisdata.errors import TwinError
from hydraulics.ensemble import MemberTask, build_surface_context, summarize_series
from hydraulics.forecast import (
    ForecastSettings,
    compute_issue_states,
    observed_model,
    observed_start,
    run_forecast,
)
from hydraulics.qpf import Ensemble, deterministic, perturb_qpf
from hydraulics.rain_series import RainSeries
from hydraulics.risk import compute_risk

DEFAULT_LEADS_H = (72, 48, 24, 12, 6)
"""Lead times at which verification forecasts are issued, h."""


class VerificationError(TwinError, ValueError):
    """A verification request is inconsistent (no rain, leads outside the record, bad inputs)."""


def contingency(forecast_yes: np.ndarray, observed_yes: np.ndarray) -> dict:
    """Hits, false alarms, misses, correct negatives and POD, FAR, CSI.

    Examples
    --------
    >>> c = contingency(np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool))
    >>> c["hits"], c["false_alarms"], c["misses"], round(c["CSI"], 3)
    (1, 1, 1, 0.333)
    """
    f = np.asarray(forecast_yes, bool)
    o = np.asarray(observed_yes, bool)
    a, b, c, d = int((f & o).sum()), int((f & ~o).sum()), int((~f & o).sum()), int((~f & ~o).sum())

    def ratio(n, m):
        return n / m if m else float("nan")

    return {"hits": a, "false_alarms": b, "misses": c, "correct_negatives": d,
            "POD": ratio(a, a + c), "FAR": ratio(b, a + b), "CSI": ratio(a, a + b + c)}


def brier_score(prob: np.ndarray, observed_yes: np.ndarray) -> float:
    """Mean squared difference between forecast probability and outcome (0 best, 1 worst).

    Examples
    --------
    >>> brier_score(np.array([1.0, 0.0, 0.5]), np.array([1, 0, 1], bool))
    0.08333333333333333
    """
    p = np.asarray(prob, float)
    o = np.asarray(observed_yes, bool).astype(float)
    return float(np.mean((p - o) ** 2)) if len(p) else float("nan")


def reliability_table(prob: np.ndarray, observed_yes: np.ndarray, *, n_bins: int = 10) -> pd.DataFrame:
    """Observed frequency against forecast probability, in ``n_bins`` equal bins of [0, 1].

    Returns
    -------
    pandas.DataFrame
        ``bin_low``, ``bin_high``, ``n``, ``mean_forecast``, ``observed_frequency`` (NaN for empty bins).
    """
    p = np.asarray(prob, float)
    o = np.asarray(observed_yes, bool).astype(float)
    edges = np.linspace(0, 1, n_bins + 1)
    k = np.clip(np.digitize(p, edges[1:-1], right=False), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        m = k == b
        rows.append({"bin_low": edges[b], "bin_high": edges[b + 1], "n": int(m.sum()),
                     "mean_forecast": float(p[m].mean()) if m.any() else float("nan"),
                     "observed_frequency": float(o[m].mean()) if m.any() else float("nan")})
    return pd.DataFrame(rows)


@dataclass
class Verification:
    """Scores per lead, the pooled reliability table and the per-point detail.

    Parameters
    ----------
    table : pandas.DataFrame
        Index ``lead_h``: issue time, window, members, hits, false alarms,
        misses, POD, FAR, CSI, Brier, onset error (mean and mean absolute, h).
    reliability : pandas.DataFrame
        Pooled over the leads.
    detail : pandas.DataFrame
        One row per (lead, point) with probability, forecast/observed flags, onsets.
    observed : pandas.DataFrame
        The observed run's per-point summary (max depth, onset) over the whole record.
    meta : dict
    """

    table: pd.DataFrame
    reliability: pd.DataFrame
    detail: pd.DataFrame
    observed: pd.DataFrame
    meta: dict = field(default_factory=dict)

    def format_table(self) -> str:
        """The verification table, one row per lead, for printing."""
        cols = ["issue_time", "members", "hits", "false_alarms", "misses", "POD", "FAR", "CSI", "brier",
                "onset_error_mean_h"]
        t = self.table[cols].copy()
        t["issue_time"] = t["issue_time"].map(lambda x: pd.Timestamp(x).strftime("%Y-%m-%d %H:%M"))
        return t.to_string(float_format=lambda v: f"{v:.3f}")


def verify_forecasts(city: CityTwin, observed: RainSeries, *, leads_h: Sequence[float] = DEFAULT_LEADS_H,
                     qpf: str | RainSeries | Callable[[pd.Timestamp, float], Ensemble] = "perfect",
                     members: int = 1, seed: int = 0, hours: float = 72.0, drain_h: float = 6.0,
                     settings: ForecastSettings | str = "reference", threshold_m: float = 0.15,
                     prob_threshold: float = 0.5, scheduler: str | None = None, max_workers: int | None = None,
                     out_dir: str | Path | None = None, progress: bool = False) -> Verification:
    """Issue forecasts at several leads before the observed event and score them.

    Parameters
    ----------
    city : CityTwin
    observed : RainSeries
        The observed rain (timestamped, or elapsed from ``hydraulics.build.DEFAULT_START``).
    leads_h : sequence of float
        Leads before the first observed rain at which forecasts are issued, h.
    qpf : "perfect", RainSeries or callable
        ``"perfect"``: the forecast rain is the observed rain; a RainSeries: a
        QPF on the observed record's time axis, sliced at each issue time; a
        callable ``(issue_time, horizon_s) -> Ensemble`` for anything else.
    members : int
        With ``members > 1`` the QPF is perturbed by :func:`hydraulics.qpf.perturb_qpf` (``seed``).
    hours : float
        Minimum forecast horizon, h.
    drain_h : float
        Observed run continues this long after the record, h.
    settings, threshold_m, prob_threshold, scheduler, max_workers, progress
        As in :func:`hydraulics.forecast.run_forecast` and :func:`hydraulics.risk.compute_risk`.
    out_dir : str or Path, optional
        Where issue states and member files go (a temporary folder if None).

    Returns
    -------
    Verification
    """
    import tempfile

    from hydraulics.executors import run_tasks

    if isinstance(settings, str):
        from hydraulics.forecast import SETTINGS

        settings = SETTINGS[settings]
    sstep = settings.surface_step_s
    ctx = build_surface_context(city)
    t0 = observed_start(observed)
    vals = observed.intensity_mm_h.to_numpy().sum(axis=1)
    if not (vals > 0).any():
        raise VerificationError("the observed rain is dry throughout; nothing to verify")
    event_s = float(np.argmax(vals > 0) * observed.step_s)
    record_end_s = observed.duration_s + drain_h * 3600.0
    leads = sorted({float(v) for v in leads_h}, reverse=True)
    issue_s = {}
    for L in leads:
        off = math.floor((event_s - L * 3600.0) / sstep) * sstep
        if off < sstep:
            raise VerificationError(
                f"lead {L:g} h: the issue time would be {(event_s - L * 3600) / 3600:g} h after the start of the "
                f"observed record; the record needs at least {L:g} h of data before the first rain")
        issue_s[L] = off
    end_s = max(record_end_s, max(off + hours * 3600.0 for off in issue_s.values()))
    end_s = math.ceil(end_s / sstep) * sstep

    # The observed run, continuous, from the record start.
    text = observed_model(city, observed, end_s)
    obs_task = MemberTask(0, "observed", text, None, 0.0, end_s, settings.coupling_step_s, sstep)
    work = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="citytwin-verify-"))
    work.mkdir(parents=True, exist_ok=True)
    obs_res = run_tasks([obs_task], ctx, scheduler=scheduler, max_workers=1)[0]
    if obs_res.status != "ok":
        raise VerificationError(f"the observed run failed: {obs_res.error}")
    truth = obs_res.series
    states = compute_issue_states(city, observed, [t0 + pd.Timedelta(seconds=issue_s[L]) for L in leads],
                                  [work / "states" / f"lead{L:g}h.hsf" for L in leads],
                                  coupling_step_s=settings.coupling_step_s, surface_step_s=sstep, ctx=ctx,
                                  scheduler=scheduler, max_workers=max_workers)
    rows, details = [], []
    n_p = len(ctx.points)
    for L, state in zip(leads, states):
        off = issue_s[L]
        horizon_s = end_s - off
        ens = _ensemble_for(qpf, observed, off, horizon_s, members, seed, L)
        fc = run_forecast(city, state, ens, horizon_h=horizon_s / 3600.0, out_dir=work / f"lead{L:g}h",
                          settings=settings, scheduler=scheduler, max_workers=max_workers, progress=progress,
                          threshold_m=threshold_m, ctx=ctx)
        risk = compute_risk(fc, threshold_m=threshold_m, prob_threshold=prob_threshold, keep_all=True)
        risk = risk.reindex(fc.points.index)
        win = truth[(truth["t_s"] > off + 1e-6) & (truth["t_s"] <= end_s + 1e-6)].copy()
        win["t_s"] -= off
        obs = summarize_series(win, n_p, threshold_m, sstep)
        o_yes = (obs["max_depth_m"] > threshold_m).to_numpy()
        prob = risk["probability"].to_numpy()
        f_yes = prob >= prob_threshold - 1e-12
        c = contingency(f_yes, o_yes)
        both = f_yes & o_yes
        err = (risk["lead_h"].to_numpy() - obs["onset_s"].to_numpy() / 3600.0)[both]
        err = err[np.isfinite(err)]
        rows.append({"lead_h": L, "issue_time": state.issue_time, "horizon_h": horizon_s / 3600.0,
                     "members": len(fc.ok_members), "failed": int(fc.meta["n_failed"]),
                     "observed_points": int(o_yes.sum()), "forecast_points": int(f_yes.sum()), **c,
                     "brier": brier_score(prob, o_yes),
                     "onset_error_mean_h": float(err.mean()) if len(err) else float("nan"),
                     "onset_error_mae_h": float(np.abs(err).mean()) if len(err) else float("nan")})
        details.append(pd.DataFrame({"lead_h": L, "point_id": fc.points.index, "probability": prob,
                                     "forecast": f_yes, "observed": o_yes,
                                     "forecast_onset_lead_h": risk["lead_h"].to_numpy(),
                                     "observed_onset_lead_h": obs["onset_s"].to_numpy() / 3600.0,
                                     "forecast_max_depth_m": risk["expected_max_depth_m"].to_numpy(),
                                     "observed_max_depth_m": obs["max_depth_m"].to_numpy()}))
    table = pd.DataFrame(rows).set_index("lead_h")
    detail = pd.concat(details, ignore_index=True)
    rel = reliability_table(detail["probability"].to_numpy(), detail["observed"].to_numpy())
    obs_all = summarize_series(truth[truth["t_s"] > 0], n_p, threshold_m, sstep)
    obs_all.index = pd.Index(list(ctx.points), name="point_id")
    meta = {"event_time": (t0 + pd.Timedelta(seconds=event_s)).isoformat(), "record_start": t0.isoformat(),
            "window_end": (t0 + pd.Timedelta(seconds=end_s)).isoformat(), "threshold_m": threshold_m,
            "prob_threshold": prob_threshold, "settings": settings.name,
            "qpf": qpf if isinstance(qpf, str) else getattr(qpf, "label", "callable"), "members": members,
            "seed": seed}
    return Verification(table, rel, detail, obs_all, meta)


def _ensemble_for(qpf, observed: RainSeries, off_s: float, horizon_s: float, members: int, seed: int,
                  lead_h: float) -> Ensemble:
    if callable(qpf) and not isinstance(qpf, RainSeries):
        t0 = observed_start(observed)
        return qpf(t0 + pd.Timedelta(seconds=off_s), horizon_s)
    if isinstance(qpf, str):
        if qpf != "perfect":
            raise VerificationError(f"qpf={qpf!r}; expected 'perfect', a RainSeries or a callable")
        source = observed
    else:
        source = qpf
    sliced = _slice_lead(source, observed_start(observed), off_s)
    if members > 1:
        return perturb_qpf(sliced, members, seed=seed + int(lead_h))
    return deterministic(sliced, name="qpf")


def _slice_lead(rain: RainSeries, t0: pd.Timestamp, off_s: float) -> RainSeries:
    """``rain`` from ``t0 + off_s`` on, indexed by lead seconds (dry where the record has ended)."""
    import dataclasses

    start = observed_start(rain)
    k = (t0 + pd.Timedelta(seconds=off_s) - start).total_seconds() / rain.step_s
    if abs(k - round(k)) > 1e-9:
        raise VerificationError(f"issue time is not on the rain's {rain.step_s} s step grid")
    k = round(k)
    frame = rain.intensity_mm_h.iloc[max(k, 0):]
    if len(frame) == 0:
        frame = pd.DataFrame(0.0, index=[0], columns=rain.gauges)
    frame = frame.set_axis(pd.Index(np.arange(len(frame), dtype="int64") * rain.step_s, name="elapsed_s"))
    return dataclasses.replace(rain, intensity_mm_h=frame, label=f"{rain.label} from issue")
