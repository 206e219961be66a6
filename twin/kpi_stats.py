"""What each headline KPI means, which way is better, and honest intervals over seeds.

:data:`KPI_INFO` is the one catalogue of the headline KPIs (:data:`twin.coupler.HEADLINE_KPIS`):
unit, bounds, and whether lower or higher is better.  The definitions a
person reads are in the i18n catalogue (``kpi_def.<key>``), in both languages.

:func:`summarise_sweep` summarises a strategy sweep (one row per strategy and
seed) with **percentile bootstrap** intervals of the mean over seeds (Efron &
Tibshirani 1993, ch. 13): a resampled mean always lies between the smallest
and the largest seed's value, so an interval never leaves the KPI's range (no
negative response times, no share above 1), which the t interval it replaces
did with 5 seeds and skewed KPIs.  The difference to the baseline is paired
seed by seed (common random numbers) and bootstrapped the same way.  A
strategy *wins* a KPI when its paired difference to every other strategy
points the better way with the whole interval on that side of 0.

The bootstrap is seeded, so the same sweep gives the same table.  With few
seeds it under-covers a little (about 0.90 at 5-10 seeds for a 95 % interval,
``tests/test_kpi_stats.py`` measures it); the table says how many seeds it rests on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gisdata.errors import TwinError


@dataclass(frozen=True)
class KpiInfo:
    """One KPI: ``unit`` (``s``, ``h``, ``count``, ``share``), its ``lo``/``hi`` bounds and ``better``
    (``"lower"``, ``"higher"`` or ``None`` for context figures such as counts)."""

    unit: str
    better: str | None
    lo: float = 0.0
    hi: float = np.inf


KPI_INFO: dict[str, KpiInfo] = {
    "response.all:all.response_s.p50": KpiInfo("s", "lower"),
    "response.all:all.response_s.p90": KpiInfo("s", "lower"),
    "incident_response_s.p50": KpiInfo("s", "lower"),
    "incident_response_s.p90": KpiInfo("s", "lower"),
    "within_target.all": KpiInfo("share", "higher", 0.0, 1.0),
    "duplicates.dispatches": KpiInfo("count", "lower"),
    "duplicates.share": KpiInfo("share", "lower", 0.0, 1.0),
    "coordination.total_h": KpiInfo("h", "lower"),
    "coordination.delay_mean": KpiInfo("s", "lower"),
    "resolution_s.p50": KpiInfo("s", "lower"),
    "utilisation.all": KpiInfo("share", None, 0.0, 1.0),
    "unresolved.cases": KpiInfo("count", "lower"),
    "exposure.person_hours_closed_roads": KpiInfo("h", "lower"),
    "counts.incidents": KpiInfo("count", None),
    "counts.reports": KpiInfo("count", None),
    "counts.dispatched": KpiInfo("count", None),
}
"""Unit, bounds and better direction of each headline KPI."""

LOWER_IS_BETTER = frozenset(k for k, v in KPI_INFO.items() if v.better == "lower")
HIGHER_IS_BETTER = frozenset(k for k, v in KPI_INFO.items() if v.better == "higher")


class SweepStatsError(TwinError, ValueError):
    """A sweep table or option that cannot be summarised (the message says which)."""


def bootstrap_mean_ci(values, *, level: float = 0.95, n_boot: int = 4000, seed: int = 0,
                      lo: float = -np.inf, hi: float = np.inf) -> tuple[int, float, float, float]:
    """(n, mean, low, high): percentile bootstrap interval of the mean of the finite ``values``.

    ``lo``/``hi`` are the quantity's bounds; the interval is clipped to them (a
    bootstrap mean cannot leave the data's range, so this only guards round-off).
    Fewer than 2 values give NaN bounds.

    Examples
    --------
    >>> n, m, a, b = bootstrap_mean_ci([0.9, 1.0, 1.0, 0.95, 1.0], lo=0, hi=1)
    >>> n, round(m, 2), 0.9 <= a <= m <= b <= 1.0
    (5, 0.97, True)
    """
    if not 0 < level < 1:
        raise SweepStatsError(f"level={level} must be in (0, 1)")
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return 0, np.nan, np.nan, np.nan
    m = float(v.mean())
    if len(v) < 2:
        return len(v), m, np.nan, np.nan
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_boot, len(v)))].mean(axis=1)
    a, b = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return len(v), m, float(np.clip(a, lo, hi)), float(np.clip(b, lo, hi))


def summarise_sweep(df: pd.DataFrame, kpis: Sequence[str], *, level: float = 0.95, baseline: str | None = None,
                    n_boot: int = 4000, seed: int = 0) -> pd.DataFrame:
    """Mean and bootstrap interval over seeds of each KPI per strategy, the paired difference, and the winner.

    Parameters
    ----------
    df : DataFrame
        One row per run: ``strategy``, ``seed`` and flat KPI columns (:func:`twin.coupler.sweep_strategies`).
    kpis : sequence of str
        Flat KPI keys (missing ones are skipped).
    level : float
        Interval level.
    baseline : str, optional
        Strategy to difference against, seed by seed; default the first strategy.
    n_boot, seed : int
        Bootstrap resamples and their seed.

    Returns
    -------
    DataFrame
        Index (``kpi``, ``strategy``); ``n``, ``mean``, ``ci_low``, ``ci_high``,
        ``diff_mean``, ``diff_ci_low``, ``diff_ci_high`` (NaN where undefined),
        ``unit``, ``better`` (``lower``/``higher``/empty) and ``winner`` (True
        for the strategy that beats every other on that KPI with its whole
        paired interval; False elsewhere, also when no strategy does).
    """
    if not {"strategy", "seed"} <= set(df.columns):
        raise SweepStatsError(f"sweep table columns {list(df.columns)[:8]}: expected 'strategy' and 'seed'")
    strategies = list(dict.fromkeys(df["strategy"]))
    base = baseline or strategies[0]
    if base not in strategies:
        raise SweepStatsError(f"baseline {base!r} is not among the strategies {strategies}")
    rows = []
    for k in kpis:
        if k not in df.columns:
            continue
        info = KPI_INFO.get(k, KpiInfo("", None, -np.inf, np.inf))
        by = {s: df[df["strategy"] == s].set_index("seed")[k].astype(float) for s in strategies}
        for s in strategies:
            v = by[s]
            n, m, a, b = bootstrap_mean_ci(v.to_numpy(), level=level, n_boot=n_boot, seed=seed, lo=info.lo,
                                           hi=info.hi)
            span = info.hi - info.lo
            _, dm, da, db = bootstrap_mean_ci((v - by[base].reindex(v.index)).to_numpy(), level=level,
                                              n_boot=n_boot, seed=seed, lo=-span, hi=span)
            rows.append({"kpi": k, "strategy": s, "n": n, "mean": m, "ci_low": a, "ci_high": b, "diff_mean": dm,
                         "diff_ci_low": da, "diff_ci_high": db, "unit": info.unit, "better": info.better or "",
                         "winner": _wins(s, by, info.better, level, n_boot, seed)})
    return pd.DataFrame(rows).set_index(["kpi", "strategy"])


def _wins(s: str, by: dict[str, pd.Series], better: str | None, level: float, n_boot: int, seed: int) -> bool:
    """Whether ``s`` beats every other strategy: each paired interval lies wholly on the better side of 0."""
    if better is None or len(by) < 2:
        return False
    for o, w in by.items():
        if o == s:
            continue
        d = (by[s] - w.reindex(by[s].index)).to_numpy()
        _, _, a, b = bootstrap_mean_ci(d, level=level, n_boot=n_boot, seed=seed)
        if not (b < 0 if better == "lower" else a > 0):
            return False
    return True
