"""Issue #12, class 7: a parent killed outright leaves no orphans and nothing that looks complete.

- SIGKILL of a ``twin batch`` process and of a ``twin forecast`` process while
  their pool workers run: no worker (nor any other descendant) is alive 10 s later;
- the killed sweep is reported ``interrupted`` against its plan (never as
  complete), and a sweep with 5 of 6 planned runs stored is 5 of 6;
- the killed forecast leaves no ``--out`` that looks complete, and its
  staging folder is removed by the next writer in the same folder;
- the workers' temp folders are gone with them, and the killed parent's temp
  root is removed by the next command (its lock died with it): killed runs do
  not accumulate in the temp folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from click.testing import CliRunner

from conftest import make_tiny_city
from gisdata.city import save_city
from gisdata.paths import clean_stale_staging
from hydraulics.processes import PRIVATE_TMP_PREFIX, clean_stale_tempdirs, end_process_tree
from scenarios.batch import SWEEP_FORMAT, sweep_state
from twin import runstore
from twin.cli import cli

ROOT = Path(__file__).resolve().parents[1]
GRACE_S = 10.0

SWEEP_TOML = """
[scenario]
name = "kill_sweep"
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
seeds = [1, 2, 3]
[sweep.parameters]
"dispatch.strategy" = ["siloed", "priority"]
[batch]
workers = 2
"""


def _env(tmp_base: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "TMPDIR": str(tmp_base)}
    env.pop("CITYTWIN_TMP_BASE", None)
    return env


def _pool_workers(pid: int) -> list[psutil.Process]:
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for k in kids:
        try:
            if "--multiprocessing-fork" in " ".join(k.cmdline()):
                out.append(k)
        except psutil.NoSuchProcess:
            pass
    return out


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _kill_parent_when_pool_runs(cmd: list[str], cwd: Path, busy_s: float = 2.0) -> list[psutil.Process]:
    """Start ``cmd`` (temp folder ``cwd/tmpbase``), wait for two pool workers, let them work ``busy_s``, SIGKILL it.

    Returns every descendant the parent had when it was killed.
    """
    (cwd / "tmpbase").mkdir()
    parent = subprocess.Popen(cmd, cwd=cwd, env=_env(cwd / "tmpbase"), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    descendants: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 40
        while len(_pool_workers(parent.pid)) < 2:
            assert parent.poll() is None, "the parent ended before its pool started"
            assert time.monotonic() < deadline, "no pool workers within 40 s"
            time.sleep(0.1)
        time.sleep(busy_s)
        assert len(_alive(_pool_workers(parent.pid))) >= 1, "the pool finished before the kill; make it longer"
        descendants = psutil.Process(parent.pid).children(recursive=True)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        return descendants
    except BaseException:
        for p in descendants or []:
            end_process_tree(p.pid)
        end_process_tree(parent.pid)
        raise


def _assert_all_gone(procs: list[psutil.Process]) -> None:
    try:
        deadline = time.monotonic() + GRACE_S
        while _alive(procs) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = _alive(procs)
        assert not left, f"still alive {GRACE_S:g} s after the parent was killed: {[p.pid for p in left]}"
    finally:
        for p in _alive(procs):
            end_process_tree(p.pid)


def _assert_no_temp_left(base: Path) -> None:
    left = sorted(p.name for p in base.iterdir())
    # the killed parent's root is left (its lock died with it; the workers removed theirs as they went),
    # and the next command removes it: nothing else was written outside them
    assert left and all(n.startswith(PRIVATE_TMP_PREFIX) for n in left), left
    assert clean_stale_tempdirs(base, min_age_s=0) == len(left)
    assert list(base.iterdir()) == []


def test_killing_a_batch_leaves_no_worker_and_an_interrupted_sweep(tmp_path):
    (tmp_path / "sweep.toml").write_text(SWEEP_TOML)
    cmd = [sys.executable, "-m", "twin.cli", "batch", "sweep.toml", "--out", "out", "--workers", "2", "-q"]
    procs = _kill_parent_when_pool_runs(cmd, tmp_path)
    _assert_all_gone(procs)
    _assert_no_temp_left(tmp_path / "tmpbase")
    sweep = tmp_path / "out" / "kill_sweep"
    assert json.loads((sweep / "sweep.json").read_text())["status"] == "running"  # what the killed batch left
    state = sweep_state(sweep)
    assert state["status"] == "interrupted" and state["n_runs"] == 6 and state["n_complete"] < 6
    r = CliRunner().invoke(cli, ["runs", "list", str(tmp_path / "out")], catch_exceptions=False)
    assert r.exit_code == 0
    assert f"sweep kill_sweep: interrupted, {state['n_complete']} of 6 planned runs complete" in r.output
    assert "--resume" in r.output


def test_killing_a_forecast_leaves_no_worker_and_no_complete_looking_folder(tmp_path):
    city = save_city(make_tiny_city(), tmp_path / "tiny.gpkg")
    out = tmp_path / "fc"
    cmd = [sys.executable, "-m", "twin.cli", "forecast", "--city", str(city), "--storm", "chicago",
           "--return-period", "50", "--duration", "3h", "--start-in", "1h", "--hours", "72", "--settings",
           "reference", "--members", "8", "--workers", "2", "--out", str(out), "--no-progress"]
    procs = _kill_parent_when_pool_runs(cmd, tmp_path, busy_s=1.0)
    _assert_all_gone(procs)
    _assert_no_temp_left(tmp_path / "tmpbase")
    assert not out.exists() or not (out / "forecast.json").exists()
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(".fc.tmp-")]
    assert stale, "the killed forecast's staging folder should be the only trace"
    assert clean_stale_staging(tmp_path, name="fc") == len(stale)  # its lock died: the next writer of fc removes it
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".fc.")]


def test_a_sweep_with_5_of_6_runs_stored_is_never_called_complete(tmp_path):
    sweep = tmp_path / "runs" / "s6"
    sweep.mkdir(parents=True)
    ids = [f"p{i:03d}-x-s1" for i in range(6)]
    for rid in ids[:5]:
        with runstore.RunWriter(sweep / rid) as w:
            w.commit({"t": pd.DataFrame({"a": [1]})}, params={"seed": 1})
    data = {"format": SWEEP_FORMAT, "name": "s6", "status": "running", "scenario": {},
            "runs": [{"run_id": rid, "params": {}, "seed": 1} for rid in ids]}
    (sweep / "sweep.json").write_text(json.dumps(data))
    state = sweep_state(sweep)
    assert (state["status"], state["n_complete"], state["n_runs"], state["n_missing"]) == ("interrupted", 5, 6, 1)
    r = CliRunner().invoke(cli, ["runs", "list", str(tmp_path / "runs")], catch_exceptions=False)
    assert r.exit_code == 0
    assert "sweep s6: interrupted, 5 of 6 planned runs complete, 1 not run" in r.output
    assert "p005-x-s1  missing" in r.output


@pytest.mark.parametrize("how", ["error", "interrupt"])
def test_a_run_writer_removes_its_staging_folder_on_every_exit_path(tmp_path, how):
    exc = KeyboardInterrupt if how == "interrupt" else RuntimeError
    with pytest.raises(exc), runstore.RunWriter(tmp_path / "r1") as w:
        w.log.append(0.0, "note", "x")
        raise exc("stop")
    assert list(tmp_path.iterdir()) == []
