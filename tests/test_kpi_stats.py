"""Honest statistics over seeds: bootstrap intervals stay inside a KPI's range, cover, and name a winner."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from twin.coupler import HEADLINE_KPIS
from twin.kpi_stats import KPI_INFO, SweepStatsError, bootstrap_mean_ci, summarise_sweep


def test_every_headline_kpi_has_a_unit_and_a_direction_entry():
    assert set(HEADLINE_KPIS) <= set(KPI_INFO)
    assert KPI_INFO["within_target.all"].better == "higher" and KPI_INFO["within_target.all"].hi == 1.0
    assert KPI_INFO["counts.incidents"].better is None


def test_intervals_respect_the_bounds_where_t_intervals_did_not():
    from scipy import stats

    share = np.array([1.0, 1.0, 0.81, 1.0, 1.0])  # a share within target, 5 seeds: skewed against its bound
    n, m, lo, hi = bootstrap_mean_ci(share, lo=0.0, hi=1.0)
    t_hi = m + stats.t.ppf(0.975, 4) * share.std(ddof=1) / np.sqrt(5)
    assert t_hi > 1.0  # the old interval left the range
    assert n == 5 and 0.81 <= lo <= m <= hi <= 1.0
    p90 = np.array([2.0, 3.0, 2.5, 70.0, 3.5])  # minutes, one slow seed: t gives a negative lower bound
    t_lo = p90.mean() - stats.t.ppf(0.975, 4) * p90.std(ddof=1) / np.sqrt(5)
    assert t_lo < 0
    _, _, lo, hi = bootstrap_mean_ci(p90, lo=0.0)
    assert 2.0 <= lo and hi <= 70.0


def test_coverage_on_a_simulated_case():
    """95 % intervals of the mean of 10 draws from a skewed (gamma) KPI cover the true mean most of the time."""
    rng = np.random.default_rng(7)
    true_mean = 3.0 * 2.0
    hits = 0
    reps = 400
    for r in range(reps):
        x = rng.gamma(3.0, 2.0, size=10)
        _, _, lo, hi = bootstrap_mean_ci(x, n_boot=1000, seed=r, lo=0.0)
        hits += lo <= true_mean <= hi
    coverage = hits / reps
    assert 0.85 <= coverage <= 0.99, coverage  # percentile bootstrap under-covers a little at n = 10


def test_summary_marks_the_winner_only_when_it_is_clear():
    seeds = range(1, 9)
    rng = np.random.default_rng(0)
    a = rng.normal(600, 20, 8)  # response p90, s
    rows = [{"strategy": "siloed", "seed": s, "response.all:all.response_s.p90": v, "counts.incidents": 40,
             "within_target.all": 0.8} for s, v in zip(seeds, a)]
    rows += [{"strategy": "unified", "seed": s, "response.all:all.response_s.p90": v - 120, "counts.incidents": 40,
              "within_target.all": 0.8} for s, v in zip(seeds, a)]
    s = summarise_sweep(pd.DataFrame(rows), HEADLINE_KPIS, baseline="siloed")
    r = s.loc[("response.all:all.response_s.p90", "unified")]
    assert r["winner"] and r["better"] == "lower" and r["unit"] == "s"
    assert r["diff_mean"] == pytest.approx(-120) and r["diff_ci_low"] == pytest.approx(-120)
    assert not s.loc[("response.all:all.response_s.p90", "siloed"), "winner"]
    assert not s.loc[("counts.incidents", "unified"), "winner"]  # context figures have no winner
    assert not s.xs("within_target.all", level="kpi")["winner"].any()  # a tie is no win
    with pytest.raises(SweepStatsError, match="baseline"):
        summarise_sweep(pd.DataFrame(rows), HEADLINE_KPIS, baseline="nope")
