"""Batch sweeps: local spawn pool, a real Dask cluster, streaming, resume, interruption, killed workers.

Every sweep here is 2 strategies x 2 seeds on the small city (8 h, a 30 min
storm at 06:30): each run takes a few seconds.  The Dask test starts a real
``dask scheduler`` and ``dask worker --nthreads 1`` on free 127.0.0.1 ports as
subprocesses and always tears them down.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from scenarios.batch import run_batch
from scenarios.store import is_complete
from twin import runstore

REPO = Path(__file__).resolve().parents[1]

SWEEP_TOML = """
[scenario]
name = "mini_sweep"
seed = 1

[city]
source = "small"

[period]
hours = 8

[rain]
kind = "design"
method = "block"
intensity_mm_h = 200
duration_min = 30
start_h = 6.5

[population]
citizens = 300
vendors = 8

[crews]
departments = { city_management = 2, drainage = 2, police = 2, emergency = 1 }

[sweep]
method = "grid"
seeds = [1, 2]
[sweep.parameters]
"dispatch.strategy" = ["siloed", "priority"]

[batch]
workers = 2
"""

KPI_COLS = ["counts.incidents", "counts.reports", "counts.dispatched", "response.all:all.response_s.p50",
            "response.all:all.response_s.p90", "duplicates.dispatches", "utilisation.all"]


def write_sweep(folder: Path, name: str = "mini_sweep") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"{name}.toml"
    p.write_text(SWEEP_TOML.replace('name = "mini_sweep"', f'name = "{name}"'), encoding="utf-8")
    return p


def complete_runs(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_dir() and is_complete(p))


def kpis(df: pd.DataFrame) -> pd.DataFrame:
    return df.loc[sorted(df.index), KPI_COLS].astype(float)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The sweep run once, uninterrupted, on the local pool (2 workers)."""
    folder = tmp_path_factory.mktemp("reference")
    streamed = []

    def on_result(res):
        # streaming: each run is in the store, complete, when the batch reports it
        streamed.append((res.run_id, is_complete(folder / "out" / "mini_sweep" / res.run_id)))

    res = run_batch(write_sweep(folder), folder / "out", workers=2, on_result=on_result)
    return res, streamed


def test_local_sweep_writes_every_run_and_one_row_each(reference):
    res, streamed = reference
    d = res.directory
    assert res.status == "complete" and (res.n_runs, res.n_complete, res.n_failed) == (4, 4, 0)
    assert len(streamed) == 4 and all(ok for _, ok in streamed)
    sweep = json.loads((d / "sweep.json").read_text())
    assert sweep["status"] == "complete" and sweep["n_complete"] == 4
    assert complete_runs(d) == sorted(r["run_id"] for r in sweep["runs"])
    table = pd.read_parquet(d / "results.parquet")
    csv = pd.read_csv(d / "results.csv", index_col="run_id")
    assert len(table) == 4 and table.index.is_unique and list(csv.index) == list(table.index)
    assert set(table["dispatch.strategy"]) == {"siloed", "priority"} and set(table["seed"]) == {1, 2}
    assert (table["counts.incidents"] > 0).all()
    pd.testing.assert_series_equal(csv["counts.dispatched"], table["counts.dispatched"], check_dtype=False)
    for rid in table.index:
        assert runstore.verify_run(d / rid).ok
        assert runstore.read_manifest(d / rid)["params"]["strategy"] == table.loc[rid, "dispatch.strategy"]
    # common random numbers: both strategies face the same flood
    by_seed = table.groupby("seed")["counts.incidents"].nunique()
    assert (by_seed >= 1).all()


def test_resume_of_a_complete_sweep_runs_nothing(reference):
    res, _ = reference
    mtimes = {p.name: (p / "manifest.json").stat().st_mtime_ns for p in res.directory.iterdir() if p.is_dir()}
    again = run_batch(resume=res.directory, workers=2)
    assert again.status == "complete" and again.n_run == 0 and again.n_skipped == 4
    assert mtimes == {p.name: (p / "manifest.json").stat().st_mtime_ns for p in res.directory.iterdir() if p.is_dir()}
    pd.testing.assert_frame_equal(kpis(again.results), kpis(res.results))


def test_starting_a_sweep_twice_points_to_resume(reference):
    from scenarios.batch import BatchError

    res, _ = reference
    with pytest.raises(BatchError, match="--resume"):
        run_batch(write_sweep(res.directory.parent.parent), res.directory.parent)


def test_interrupted_sweep_loses_nothing_and_resumes_without_duplicates(reference, tmp_path):
    ref, _ = reference
    sweep = write_sweep(tmp_path)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "twin.cli", "batch", str(sweep), "--out", str(out),
                             "--workers", "1", "-q"], cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    d = out / "mini_sweep"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if d.is_dir() and complete_runs(d):
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the batch ended before it could be interrupted"
        os.killpg(proc.pid, signal.SIGKILL)  # the batch and its workers, mid-sweep
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    done_before = complete_runs(d)
    assert 1 <= len(done_before) < 4
    sweep_json = json.loads((d / "sweep.json").read_text())
    assert sweep_json["status"] != "complete"  # an interrupted sweep never claims to be complete
    res = run_batch(resume=d, workers=2)
    assert res.status == "complete" and res.n_skipped == len(done_before) and res.n_run == 4 - len(done_before)
    assert complete_runs(d) == sorted(ref.results.index)  # each run once, no leftovers
    assert not [p for p in d.iterdir() if p.name.startswith(".tmp-")]
    pd.testing.assert_frame_equal(kpis(res.results), kpis(ref.results))  # same scenario + seed => same KPIs


def test_a_killed_worker_process_loses_nothing(reference, tmp_path):
    ref, _ = reference
    box = {}

    def target():
        try:
            box["res"] = run_batch(write_sweep(tmp_path), tmp_path / "out", workers=2)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            box["exc"] = exc

    me = psutil.Process()
    t = threading.Thread(target=target)
    t.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and t.is_alive():
        workers = [c for c in me.children(recursive=True) if "spawn_main" in " ".join(c.cmdline())]
        if len(workers) >= 2:
            time.sleep(3.0)  # let the runs get going
            workers[0].send_signal(signal.SIGKILL)
            killed = workers[0].pid
        time.sleep(0.2)
    t.join(timeout=300)
    assert killed is not None, "no worker process to kill"
    assert "exc" not in box, box.get("exc")
    res = box["res"]
    assert res.status == "complete" and res.n_complete == 4 and res.n_failed == 0, res.failed
    pd.testing.assert_frame_equal(kpis(res.results), kpis(ref.results))


# ----------------------------------------------------------------------------- Dask


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


@pytest.fixture
def dask_cluster(tmp_path):
    """A real scheduler and two one-thread workers on 127.0.0.1, torn down always."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = []
    logs = []
    try:
        log = open(tmp_path / "scheduler.log", "w")  # noqa: SIM115
        logs.append(log)
        procs.append(subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port",
                                       str(port), "--no-dashboard"], cwd=REPO, env=env, stdout=log, stderr=log,
                                      start_new_session=True))
        wait_port(port, 60)
        log = open(tmp_path / "workers.log", "w")  # noqa: SIM115
        logs.append(log)
        procs.append(subprocess.Popen([sys.executable, "-m", "dask", "worker", address, "--nthreads", "1",
                                       "--nworkers", "2", "--no-dashboard", "--host", "127.0.0.1",
                                       "--local-directory", str(tmp_path / "dask-worker")],
                                      cwd=REPO, env=env, stdout=log, stderr=log, start_new_session=True))
        yield address, procs[-1].pid
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=15)
        for log in logs:
            log.close()


def test_dask_cluster_runs_the_sweep_with_the_same_kpis_despite_a_killed_worker(reference, dask_cluster, tmp_path):
    ref, _ = reference
    address, worker_group = dask_cluster
    box = {}

    def target():
        try:
            box["res"] = run_batch(write_sweep(tmp_path), tmp_path / "out", scheduler=address)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            box["exc"] = exc

    t = threading.Thread(target=target)
    t.start()
    time.sleep(6.0)  # the workers have their first runs
    victims = [c for c in psutil.Process(worker_group).children(recursive=True)
               if "spawn_main" in " ".join(c.cmdline())]
    assert victims, "no Dask worker process found"
    victims[0].send_signal(signal.SIGKILL)  # the nanny restarts it; the scheduler reschedules its run
    t.join(timeout=300)
    assert "exc" not in box, box.get("exc")
    res = box["res"]
    assert res.status == "complete" and res.n_complete == 4 and res.n_failed == 0, res.failed
    pd.testing.assert_frame_equal(kpis(res.results), kpis(ref.results))  # same KPIs as the local pool
    sweep = json.loads((res.directory / "sweep.json").read_text())
    assert sweep["executor"] == {"scheduler": address}
    again = run_batch(resume=res.directory, scheduler=address)  # resume through the cluster: nothing left
    assert again.n_run == 0 and again.status == "complete"
