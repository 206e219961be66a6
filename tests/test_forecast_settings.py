"""Faster forecast settings that must not change the answer: the shared dry lead-in and the quiet stop.

Both keep the answer (a hotstart holds the engine's whole state and the
saved street water its surface; after the quiet stop the street water only
drains into the inlets, which the 2D surface does alone), so these compare
them with the plain coupled run on the small city.
The accuracy cost of the settings that are *not* exact (longer routing step,
member reduction) is measured by ``benchmarks/forecast_speed.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gisdata.city import load_city
from hydraulics.build import DEFAULT_START, build_swmm
from hydraulics.forecast import ForecastError, ForecastSettings, compute_issue_state, run_forecast
from hydraulics.qpf import deterministic, perturb_qpf
from hydraulics.rain_series import RainSeries
from hydraulics.rainfall import chicago_storm
from hydraulics.run import RunOptions, StopRun, run_swmm

THRESHOLD_M = 0.05


@pytest.fixture(scope="module")
def small():
    return load_city("small")


@pytest.fixture(scope="module")
def state(small, tmp_path_factory):
    return compute_issue_state(small, None, DEFAULT_START + pd.Timedelta(hours=1),
                               tmp_path_factory.mktemp("state") / "s.hsf")


def _qpf(hours: int, start_h: float, duration_min: int = 120, p: float = 50) -> RainSeries:
    storm = chicago_storm("beijing", p, duration_min)
    v = np.zeros(hours * 12)
    k = round(start_h * 12)
    v[k:k + len(storm.intensity_mm_h)] = storm.intensity_mm_h["RG1"].to_numpy()
    return RainSeries(pd.DataFrame({"RG1": v}, index=np.arange(len(v)) * 300), step_s=300, label="qpf")


def _summaries(fc) -> dict[str, pd.DataFrame]:
    return {m: fc.member_summary(m, THRESHOLD_M) for m in fc.ok_members}


def test_stop_run_ends_the_engine_early(small):
    storm = chicago_storm("beijing", 5, 60)
    text = build_swmm(small, rain_gauges=storm, report="none")
    seen = []

    def on_step(s):
        seen.append(s.elapsed_s)
        if s.elapsed_s >= 1200:
            raise StopRun

    res = run_swmm(text, options=RunOptions(coupling_step_s=300, duration_s=3600), on_step=on_step)
    assert res.status == "complete"
    assert max(seen) == pytest.approx(1200, abs=60)
    assert "stopped_early_at" in res.metadata


def test_quiet_stop_gives_the_full_run_risk(small, state):
    """After the quiet stop the street drains into the inlets on the 2D surface alone: the peaks, onsets and
    exceedances are the full coupled run's (the peaks come before the stop), and the depths after it stay close."""
    ens = perturb_qpf(_qpf(hours=9, start_h=1.0), 3, seed=5)
    full = ForecastSettings(name="full", tail_cut=True, drain_h=6.0)
    quiet = ForecastSettings(name="quiet", tail_cut=True, drain_h=6.0, quiet_stop_h=0.5)
    a = run_forecast(small, state, ens, horizon_h=9, settings=full, scheduler="inline")
    b = run_forecast(small, state, ens, horizon_h=9, settings=quiet, scheduler="inline")
    stopped = b.members["engine_stopped_h"]
    assert stopped.notna().all(), "the engine should stop once the spill has ended"
    assert (stopped < 9.0).all()
    assert a.members["engine_stopped_h"].isna().all()
    flooded = 0
    for m in a.ok_members:
        sa, sb = a.member_summary(m, THRESHOLD_M), b.member_summary(m, THRESHOLD_M)
        assert np.array_equal(sa["max_depth_m"] > THRESHOLD_M, sb["max_depth_m"] > THRESHOLD_M), m
        assert np.allclose(sa["max_depth_m"], sb["max_depth_m"], rtol=0, atol=1e-6), m
        assert np.array_equal(sa["onset_s"].fillna(-1), sb["onset_s"].fillna(-1)), m
        assert np.abs(sa["duration_s"] - sb["duration_s"]).max() <= 1800, m
        flooded += int((sa["max_depth_m"] > THRESHOLD_M).sum())
    assert flooded > 0, "the test storm must flood some points"


def test_dry_lead_in_run_once_gives_the_same_risk(small, state):
    ens = perturb_qpf(_qpf(hours=9, start_h=3.0), 3, seed=7)
    plain = ForecastSettings(name="plain", tail_cut=True, drain_h=4.0)
    shared = ForecastSettings(name="shared", skip_dry=True, tail_cut=True, drain_h=4.0)
    a = run_forecast(small, state, ens, horizon_h=9, settings=plain, scheduler="inline")
    b = run_forecast(small, state, ens, horizon_h=9, settings=shared, scheduler="inline")
    assert a.meta["lead_in_s"] == 0 and b.meta["lead_in_s"] >= 3600, "the shared lead-in must have run"
    for m, sa in _summaries(a).items():
        sb = b.member_summary(m, THRESHOLD_M)
        assert (sa["max_depth_m"] >= THRESHOLD_M).sum() > 0, m
        assert np.array_equal(sa["max_depth_m"] >= THRESHOLD_M, sb["max_depth_m"] >= THRESHOLD_M), m
        # the coupled restart is not bit-exact (the exchange's relaxation and the inflows the engine holds
        # start again from zero at the hotstart): the exceedances agree exactly, the depths within 2 cm
        # (measured: 1.1 cm at most on this storm)
        diff = np.abs(sa["max_depth_m"] - sb["max_depth_m"]).max()
        assert diff <= 0.02, (m, diff)
        on_a, on_b = sa["onset_s"].to_numpy(), sb["onset_s"].to_numpy()
        assert np.array_equal(np.isnan(on_a), np.isnan(on_b))
        assert np.nanmax(np.abs(on_a - on_b), initial=0) <= 600, m


def test_bad_quiet_stop_is_refused():
    with pytest.raises(ForecastError, match="quiet_stop_h"):
        ForecastSettings(quiet_stop_h=0)


def test_reduced_ensemble_weights_stand_for_all_members(small, state):
    ens = perturb_qpf(_qpf(hours=6, start_h=1.0, duration_min=60, p=5), 6, seed=2)
    fc = run_forecast(small, state, ens, horizon_h=6, scheduler="inline",
                      settings=ForecastSettings(name="red", tail_cut=True, drain_h=1.0, reduce_to=2))
    assert len(fc.ok_members) == 2
    assert set(fc.ok_members) <= set(ens.names)
    assert sum(fc.weights.values()) == pytest.approx(1.0)
    # each representative stands for a whole number of the 6 equally weighted members
    assert all(w * 6 == pytest.approx(round(w * 6)) and w * 6 >= 1 for w in fc.weights.values())


def test_deterministic_forecast_needs_no_reduction(small, state):
    fc = run_forecast(small, state, deterministic(_qpf(hours=4, start_h=1.0, duration_min=60, p=5)), horizon_h=4,
                      scheduler="inline", settings=ForecastSettings(name="red", reduce_to=3))
    assert fc.ok_members == ["qpf"] and fc.weights == {"qpf": 1.0}
