"""Running members: failures are reported, local pool == inline == Dask, scheduler errors are clear."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gisdata.city import load_city
from hydraulics import forecast as fc_mod
from hydraulics.build import DEFAULT_START
from hydraulics.ensemble import build_surface_context
from hydraulics.executors import SchedulerError, connect_scheduler, run_tasks
from hydraulics.forecast import (
    ForecastError,
    ForecastSettings,
    compute_issue_state,
    run_forecast,
)
from hydraulics.qpf import perturb_qpf
from hydraulics.rain_series import RainSeries
from hydraulics.rainfall import chicago_storm
from hydraulics.risk import compute_risk


@pytest.fixture(scope="module")
def small():
    return load_city("small")


@pytest.fixture(scope="module")
def setup(small, tmp_path_factory):
    state = compute_issue_state(small, None, DEFAULT_START + pd.Timedelta(hours=1),
                                tmp_path_factory.mktemp("st") / "s.hsf")
    storm = chicago_storm("beijing", 50, 120)
    v = np.zeros(6 * 12)
    v[12:12 + 24] = storm.intensity_mm_h["RG1"].to_numpy()
    qpf = RainSeries(pd.DataFrame({"RG1": v}, index=np.arange(len(v)) * 300), step_s=300, label="q")
    return state, perturb_qpf(qpf, 3, seed=11)


def _risk_points(fc):
    r = compute_risk(fc, threshold_m=0.05, keep_all=True).sort_index()
    return r[["probability", "expected_max_depth_m", "lead_h"]]


def test_failed_member_is_reported_not_fatal(small, setup, monkeypatch, tmp_path):
    state, ens = setup
    real = fc_mod.splice_rain

    def corrupt_second(base, rain):
        text = real(base, rain)
        if "m001" in rain.label:  # an engine error in one member only
            text = text.replace("FLOW_ROUTING          DYNWAVE", "FLOW_ROUTING          BOGUS")
        return text

    monkeypatch.setattr(fc_mod, "splice_rain", corrupt_second)
    fc = run_forecast(small, state, ens, horizon_h=6, scheduler="inline", out_dir=tmp_path)
    status = fc.members["status"].to_dict()
    assert status == {"m000": "ok", "m001": "failed", "m002": "ok"}
    assert "SwmmError" in fc.members.loc["m001", "error"]
    assert set(fc.weights) == {"m000", "m002"} and sum(fc.weights.values()) == pytest.approx(1.0)
    table = pd.read_csv(tmp_path / "members" / "members.csv")
    assert table.set_index("member").loc["m001", "status"] == "failed"
    assert not (tmp_path / "members" / "member_m001.parquet").exists()
    assert (tmp_path / "members" / "member_m002.parquet").exists()


def test_every_member_failing_is_an_error(small, setup):
    state, ens = setup
    bad = ForecastSettings(name="bad", options={"FLOW_ROUTING": "BOGUS"})
    with pytest.raises(ForecastError, match="every forecast member failed"):
        run_forecast(small, state, ens, horizon_h=2, scheduler="inline", settings=bad)


def test_local_pool_reports_failures_and_matches_inline(small, setup):
    state, ens = setup
    ctx = build_surface_context(small)
    text = fc_mod.observed_model(small, ens.members[1], 3 * 3600)
    good = fc_mod.MemberTask(0, "good", text, state.hotstart.read_bytes(), 0.0, 3 * 3600.0)
    bad = fc_mod.MemberTask(1, "bad", text.replace("[CONDUITS]", "[CONDUITS]\nCX nowhere J00000 10 0.013 0 0 0 0"),
                            None, 0.0, 3600.0)
    pooled = run_tasks([good, bad], ctx, max_workers=2)
    inline = run_tasks([good], ctx, scheduler="inline")
    assert [r.status for r in pooled] == ["ok", "failed"]
    assert "ERROR" in pooled[1].error
    pd.testing.assert_frame_equal(pooled[0].series, inline[0].series)


def test_malformed_scheduler_address():
    with pytest.raises(SchedulerError, match="malformed"):
        connect_scheduler("localhost")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_fails_within_10_s():
    t0 = time.perf_counter()
    with pytest.raises(SchedulerError, match="unreachable"):
        connect_scheduler(f"tcp://127.0.0.1:{_free_port()}")
    assert time.perf_counter() - t0 < 12.0


def _dask_bin() -> str:
    exe = Path(sys.executable).with_name("dask")
    return str(exe) if exe.exists() else "dask"


@pytest.mark.slow
def test_dask_cluster_gives_the_local_risk_points(small, setup, tmp_path):
    state, ens = setup
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    logs = [open(tmp_path / f"{n}.log", "w") for n in ("scheduler", "worker")]  # noqa: SIM115 - closed in finally
    procs = [subprocess.Popen([_dask_bin(), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], stdout=logs[0], stderr=subprocess.STDOUT, env=env)]
    try:
        procs.append(subprocess.Popen([_dask_bin(), "worker", addr, "--nthreads", "1", "--nworkers", "2",
                                       "--no-dashboard", "--host", "127.0.0.1", "--memory-limit", "0"],
                                      stdout=logs[1], stderr=subprocess.STDOUT, env=env))
        deadline = time.time() + 60
        client = None
        while client is None:
            try:
                client = connect_scheduler(addr)
            except SchedulerError:
                if time.time() > deadline:
                    raise
                time.sleep(1)
        client.wait_for_workers(2, timeout=60)
        client.close()
        on_dask = run_forecast(small, state, ens, horizon_h=6, scheduler=addr)
        local = run_forecast(small, state, ens, horizon_h=6, max_workers=2)
        assert (on_dask.members["status"] == "ok").all()
        assert on_dask.meta["scheduler"] == addr
        pd.testing.assert_frame_equal(_risk_points(on_dask), _risk_points(local))
        assert compute_risk(local, threshold_m=0.05)["is_risk_point"].any()
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in logs:
            f.close()
