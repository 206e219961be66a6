"""Verification: scores by hand, and the perfect-QPF proof of the state handling (CSI = 1)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gisdata.city import load_city
from hydraulics.rain_series import RainSeries
from hydraulics.rainfall import chicago_storm
from hydraulics.verify import (
    VerificationError,
    brier_score,
    contingency,
    reliability_table,
    verify_forecasts,
)


def test_contingency_scores():
    f = np.array([1, 1, 1, 0, 0, 0], bool)
    o = np.array([1, 1, 0, 1, 0, 0], bool)
    c = contingency(f, o)
    assert (c["hits"], c["false_alarms"], c["misses"], c["correct_negatives"]) == (2, 1, 1, 2)
    assert c["POD"] == pytest.approx(2 / 3) and c["FAR"] == pytest.approx(1 / 3) and c["CSI"] == pytest.approx(0.5)
    empty = contingency(np.zeros(3, bool), np.zeros(3, bool))
    assert np.isnan(empty["CSI"]) and np.isnan(empty["POD"])


def test_brier_and_reliability():
    p = np.array([0.0, 0.1, 0.9, 1.0, 0.95])
    o = np.array([0, 0, 1, 1, 0], bool)
    assert brier_score(p, o) == pytest.approx(np.mean((p - o) ** 2))
    rel = reliability_table(p, o, n_bins=10)
    assert rel["n"].sum() == 5 and len(rel) == 10
    top = rel.iloc[-1]
    assert top["n"] == 3 and top["observed_frequency"] == pytest.approx(2 / 3)
    assert top["mean_forecast"] == pytest.approx((0.9 + 1.0 + 0.95) / 3)


def _observed(dry_h: float, p: float = 50, duration_min: int = 180) -> RainSeries:
    storm = chicago_storm("beijing", p, duration_min)
    v = np.concatenate([np.zeros(int(dry_h * 12)), storm.intensity_mm_h["RG1"].to_numpy()])
    return RainSeries(pd.DataFrame({"RG1": v}, index=np.arange(len(v)) * 300), step_s=300, label="observed")


def test_perfect_qpf_reproduces_the_observed_run():
    ver = verify_forecasts(load_city("small"), _observed(7), leads_h=(6, 3), hours=4, settings="reference",
                           threshold_m=0.1, scheduler="inline")
    t = ver.table
    assert (t["observed_points"] > 0).all(), "the storm must flood something for the test to mean anything"
    assert (t["CSI"] == 1.0).all() and (t["POD"] == 1.0).all() and (t["FAR"] == 0.0).all()
    assert (t["brier"] == 0.0).all()
    assert (t["onset_error_mean_h"].abs() < 1e-9).all()
    d = ver.detail[ver.detail["observed"]]
    # Not only the flags: the depths of the restarted runs match the continuous run.
    assert np.allclose(d["forecast_max_depth_m"], d["observed_max_depth_m"], atol=0.01)


def test_imperfect_qpf_scores_below_one():
    obs = _observed(7)
    weak = RainSeries(obs.intensity_mm_h * 0.3, step_s=300, label="too dry")
    ver = verify_forecasts(load_city("small"), obs, leads_h=(3,), hours=4, qpf=weak, threshold_m=0.1,
                           scheduler="inline")
    row = ver.table.iloc[0]
    assert row["misses"] > 0 and row["CSI"] < 1.0


def test_leads_must_fit_the_record():
    with pytest.raises(VerificationError, match="lead 12 h"):
        verify_forecasts(load_city("small"), _observed(3), leads_h=(12,), scheduler="inline")
