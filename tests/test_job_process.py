"""twin.job_process: jobs in a fresh ``python -c`` process, with real subprocesses.

The jobs are functions of this module: the child imports it from the
caller's ``sys.path``, as it imports the library's own jobs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from gisdata.errors import TwinError
from twin.job_process import JobProcessError, end_process_tree, run_in_process

ROOT = Path(__file__).resolve().parents[1]


class Refused(TwinError, ValueError):
    """A job's own error, with an attribute the caller reads."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code

    def __reduce__(self):
        return type(self), (str(self), self.code)


class CallersError(TwinError, RuntimeError):
    """A caller's own error type for jobs that end badly."""


class Stop(Exception):
    """What Streamlit's stop looks like from inside a progress callback."""


# ----------------------------------------------------------------------------- jobs (run in the child)


def count_job(n, report):
    for i in range(n):
        report((i, os.getpid()))
        if i % 50 == 0:
            time.sleep(0.02)  # reports arrive across several polls
    main = sys.modules["__main__"]
    return {"n": n, "pid": os.getpid(), "main_file": getattr(main, "__file__", None)}


def refuse_job(message, report):
    report("checking")
    raise Refused(message, code=317)


def unpicklable_error_job(request, report):
    class Local(Exception):  # a local class cannot be pickled by reference
        pass

    raise Local("from a local class")


def crash_job(how, report):
    report("about to crash")
    print("the job's last words", file=sys.stderr, flush=True)
    if how == "exit":
        os._exit(3)
    os.kill(os.getpid(), signal.SIGKILL)


def grandchild_job(request, report):
    """Start a long-lived process of its own, report both pids, then keep quiet for a long time."""
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    report({"child": os.getpid(), "grandchild": grandchild.pid})
    time.sleep(120)


# ----------------------------------------------------------------------------- helpers


_BEFORE: set[int] = set()
"""Descendants alive when the current test started (e.g. the resource tracker an earlier test's pool left)."""


@pytest.fixture(autouse=True)
def _note_existing_children():
    _BEFORE.clear()
    _BEFORE.update(p.pid for p in _alive(psutil.Process().children(recursive=True)))
    yield


def _alive(procs) -> list[psutil.Process]:
    out = []
    for c in procs:
        try:
            if c.is_running() and c.status() != psutil.STATUS_ZOMBIE:
                out.append(c)
        except psutil.NoSuchProcess:
            pass
    return out


def _live_descendants() -> list[psutil.Process]:
    """Live, non-zombie descendants of this process started during the current test."""
    return [c for c in _alive(psutil.Process().children(recursive=True)) if c.pid not in _BEFORE]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# ----------------------------------------------------------------------------- tests


def test_result_and_reports_come_back_in_order_from_a_process_with_no_main_module():
    reports = []
    result = run_in_process(count_job, 300, on_report=reports.append, poll_s=0.01)
    assert result["n"] == 300
    assert result["pid"] != os.getpid()
    assert result["main_file"] is None  # ``python -c``: nothing like app.py was re-run before the job
    assert [i for i, _ in reports] == list(range(300))
    assert {pid for _, pid in reports} == {result["pid"]}
    assert not _live_descendants()


def test_a_twin_error_in_the_child_comes_back_typed_with_its_message():
    seen = []
    with pytest.raises(Refused) as info:
        run_in_process(refuse_job, "settings 'nope' unknown; expected one of ['skipdry']", on_report=seen.append)
    assert str(info.value) == "settings 'nope' unknown; expected one of ['skipdry']"
    assert info.value.code == 317 and isinstance(info.value, TwinError)
    assert seen == ["checking"]  # reports before the error still arrive


def test_an_error_that_does_not_pickle_comes_back_as_the_callers_error_type():
    with pytest.raises(CallersError, match=r"^Local: from a local class$"):
        run_in_process(unpicklable_error_job, None, error_type=CallersError)


@pytest.mark.parametrize(("how", "expected"), [("exit", "exit code 3"), ("kill", "killed by SIGKILL")])
def test_a_crash_gives_a_clear_error_with_the_childs_last_output(how, expected):
    seen = []
    with pytest.raises(JobProcessError) as info:
        run_in_process(crash_job, how, on_report=seen.append, what="test")
    message = str(info.value)
    assert message.startswith(f"the test process ended without a result ({expected})")
    assert "the job's last words" in message
    assert seen == ["about to crash"]


def test_a_job_that_cannot_be_sent_is_refused_before_any_process_starts():
    with pytest.raises(JobProcessError, match="cannot be sent to its process"):
        run_in_process(lambda request, report: None, None)
    with pytest.raises(JobProcessError, match="cannot be sent to its process"):
        run_in_process(count_job, (i for i in range(3)))  # a generator does not pickle
    assert not _live_descendants()


@pytest.mark.parametrize("where", ["on_report", "on_idle"])
def test_interruption_ends_the_child_and_its_descendants(where):
    pids = {}
    idle_calls = []

    def on_report(p):
        pids.update(p)
        if where == "on_report":
            raise Stop

    def on_idle():
        idle_calls.append(time.monotonic())
        if pids and len(idle_calls) >= 3:  # quiet for a while after the report: the user gives up
            raise Stop

    t0 = time.monotonic()
    try:
        with pytest.raises(Stop):
            run_in_process(grandchild_job, None, on_report=on_report, on_idle=on_idle, idle_s=0.2, poll_s=0.05)
        assert time.monotonic() - t0 < 30  # not waited for (the job sleeps 120 s)
        assert set(pids) == {"child", "grandchild"}
        assert _gone(pids["child"]) and _gone(pids["grandchild"])
        assert not _live_descendants(), [c.cmdline() for c in _live_descendants()]
        if where == "on_idle":
            assert len(idle_calls) >= 3
    finally:
        for pid in pids.values():  # whatever is left when the test fails
            end_process_tree(pid)


def test_the_child_ends_itself_and_its_descendants_when_its_parent_dies():
    """A parent killed outright (SIGKILL, no finally) leaves no job running on its own."""
    code = ("import json; from twin.job_process import run_in_process; from test_job_process import grandchild_job; "
            "run_in_process(grandchild_job, None, on_report=lambda p: print(json.dumps(p), flush=True))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    parent = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
    pids = {}
    try:
        line = parent.stdout.readline()  # the job's pids, once it runs (empty if the parent failed)
        pids = json.loads(line)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 15
        while not (_gone(pids["child"]) and _gone(pids["grandchild"])):
            assert time.monotonic() < deadline, "the orphaned job kept running"
            time.sleep(0.2)
    finally:
        for pid in [parent.pid, *pids.values()]:  # whatever is left when the test fails
            end_process_tree(pid)
        parent.stdout.close()


def test_end_process_tree_can_spare_the_process_itself():
    code = ("import subprocess, sys, time; "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); time.sleep(120)")
    sleeper = [sys.executable, "-c", code]
    proc = subprocess.Popen(sleeper)
    try:
        deadline = time.monotonic() + 30
        while not psutil.Process(proc.pid).children():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        (grandchild,) = psutil.Process(proc.pid).children()
        end_process_tree(proc.pid, include_self=False)
        assert _gone(grandchild.pid) and proc.poll() is None
    finally:
        end_process_tree(proc.pid)
        proc.wait()
    end_process_tree(proc.pid)  # a process that is gone is no error
