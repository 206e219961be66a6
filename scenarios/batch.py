"""Batch sweeps: run every run of a sweep on local processes or a Dask cluster, streaming into a run store.

Layout of a sweep directory ``<out>/<sweep name>/``::

    sweep.json            # the sweep (resolved scenario, planned runs), status, counts; written atomically
    results.parquet       # one row per finished run: run_id, status, seed, parameters, KPIs
    results.csv           # the same table as CSV
    <run_id>/             # one run each (scenarios.store): manifest.json, *.parquet, events.jsonl

How it stays consistent:

- the scenario and every run of the sweep are validated before the directory
  is created, so bad input leaves nothing behind;
- runs execute in workers (a ``spawn`` process pool, one engine per process,
  or Dask workers with one thread each) and come back as data; this process
  alone writes them, each under a temporary name renamed into place, so a run
  directory is whole or absent;
- ``sweep.json`` says ``"status": "complete"`` only when every planned run's
  manifest says complete.  A failed run is stored with ``"status": "failed"``
  and its error, and is run again on resume;
- an interrupted sweep (Ctrl-C, a killed batch process, a lost cluster) keeps
  every run that finished; ``run_batch(resume=DIR)`` (``twin batch --resume
  DIR``) skips complete runs and runs the rest, so no run is ever held twice;
- a worker process that dies takes only its run with it: the pool is
  restarted and the unfinished runs retried (``max_attempts``); Dask
  reschedules a dead worker's task on another worker by itself.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from gisdata.errors import InputFileNotFoundError, TwinError
from gisdata.paths import check_id
from scenarios.runner import RunResult, result_row, run_spec_data
from scenarios.schema import (
    ScenarioError,
    ScenarioSpec,
    load_scenario,
    set_parameter,
    validate_scenario,
)
from scenarios.store import (
    clean_temporaries,
    is_complete,
    write_json_atomic,
    write_run,
)
from scenarios.sweep import PlannedRun, plan_sweep

__all__ = ["BatchError", "BatchResult", "SchedulerUnreachableError", "connect_scheduler", "run_batch", "sweep_state"]

SWEEP_FILE = "sweep.json"
SWEEP_FORMAT = "citytwin-sweep/1"


class BatchError(TwinError, RuntimeError):
    """A sweep cannot start or go on (directory taken, locked, not a sweep, runs failed)."""


class SchedulerUnreachableError(BatchError, ConnectionError):
    """The Dask scheduler does not answer, has no workers, or its workers have more than one thread."""


@dataclass(frozen=True)
class BatchResult:
    """What a batch did.

    Attributes
    ----------
    directory : Path
        The sweep directory.
    status : str
        ``"complete"`` when every run is complete, else ``"incomplete"``.
    n_runs, n_complete, n_failed, n_skipped, n_run : int
        Planned runs; complete and failed at the end; complete before this call (skipped); run by this call.
    results : DataFrame
        One row per finished run (also in ``results.parquet`` and ``results.csv``).
    wall_time_s : float
        Wall time of this call, s.
    failed : dict
        Run ID -> error message.
    """

    directory: Path
    status: str
    n_runs: int
    n_complete: int
    n_failed: int
    n_skipped: int
    n_run: int
    results: pd.DataFrame
    wall_time_s: float
    failed: dict


# ----------------------------------------------------------------------------- sweep directory


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _read_sweep(directory: Path) -> dict:
    """``sweep.json`` of ``directory``, checked: every run id is a plain name inside the sweep.

    Raises
    ------
    BatchError
        Not a sweep directory, unreadable, or malformed (a field of the wrong type).
    InvalidIdError
        A run id that could leave the sweep directory (``../x``, ``/abs``, ``a/b``).
    """
    p = directory / SWEEP_FILE
    if not directory.is_dir():
        raise InputFileNotFoundError(f"{directory}: sweep directory not found")
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise BatchError(f"{directory}: not a sweep directory (no {SWEEP_FILE}); "
                         "start a sweep with `twin batch SWEEP.toml`") from None
    from twin.eventlog import parse_json_strict

    try:
        data = parse_json_strict(raw)
    except ValueError as exc:
        raise BatchError(f"{p}: unreadable ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(data, dict):
        raise BatchError(f"{p}: malformed (a JSON object was expected)")
    if data.get("format") != SWEEP_FORMAT:
        raise BatchError(f"{p}: format {data.get('format')!r}, expected {SWEEP_FORMAT!r}")
    _check_sweep_data(data, p)
    return data


def _check_sweep_data(data: dict, p: Path) -> None:
    """Raise BatchError / InvalidIdError unless ``data`` has the shape ``sweep.json`` is written with."""
    def bad(what: str) -> BatchError:
        return BatchError(f"{p}: malformed: {what}")

    if not isinstance(data.get("scenario"), dict):
        raise bad("'scenario' must be an object")
    runs = data.get("runs")
    if not isinstance(runs, list):
        raise bad("'runs' must be a list")
    seen = set()
    for i, r in enumerate(runs):
        if not isinstance(r, dict):
            raise bad(f"runs[{i}] must be an object")
        rid = check_id(r.get("run_id"), f"runs[{i}].run_id", source=p)
        if rid in seen:
            raise bad(f"run id {rid!r} appears twice")
        seen.add(rid)
        if not isinstance(r.get("params", {}), dict):
            raise bad(f"runs[{i}].params must be an object")
        seed = r.get("seed")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise bad(f"runs[{i}].seed {seed!r} must be a whole number >= 0")
    failed = data.get("failed", {})
    if not isinstance(failed, dict):
        raise bad("'failed' must be an object")
    for rid in failed:
        check_id(rid, "failed run id", source=p)
    if not isinstance(data.get("batch") or {}, dict):
        raise bad("'batch' must be an object")


def _plan_from_file(data: dict) -> list[PlannedRun]:
    """Rebuild the planned runs from ``sweep.json`` (stored parameters, not a re-sampled plan)."""
    base = data["scenario"]
    runs = []
    for i, r in enumerate(data["runs"]):
        d = base
        for name, value in r.get("params", {}).items():
            d = set_parameter(d, name, value)
        d = set_parameter(d, "scenario.seed", int(r["seed"]))
        spec = validate_scenario(d, source=f"sweep run {r['run_id']}")
        runs.append(PlannedRun(r["run_id"], i, dict(r.get("params", {})), int(r["seed"]), spec.to_data()))
    return runs


@contextlib.contextmanager
def _locked(directory: Path):
    import fcntl

    # O_NOFOLLOW: a planted .lock symlink is refused, never followed
    fh = os.fdopen(os.open(directory / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644), "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BatchError(f"{directory}: another batch is running on this sweep; wait for it or stop it") from None
        yield
    finally:
        fh.close()


def _lock_is_held(directory: Path) -> bool:
    """True while a batch holds the sweep's lock (it is running)."""
    from gisdata.paths import flock_held

    return flock_held(directory / ".lock", directory=False)


def sweep_state(directory: str | Path) -> dict:
    """The state of a sweep as it is on disk now, whatever ``sweep.json`` last said.

    A batch killed outright (SIGKILL) cannot update ``sweep.json``, which then
    still says ``"running"``; here a sweep is ``running`` only while a batch
    holds its lock, ``complete`` only when every planned run is stored
    complete, and otherwise ``interrupted`` (or ``incomplete`` when its
    batch ended with runs failed or missing).

    Returns
    -------
    dict
        ``status``, ``n_runs`` (planned), ``n_complete``, ``n_failed``,
        ``n_missing`` (neither stored nor failed) and ``recorded_status`` (what
        ``sweep.json`` says).

    Raises
    ------
    BatchError, InvalidIdError
        Not a sweep directory, or a malformed ``sweep.json``.
    """
    directory = Path(directory)
    data = _read_sweep(directory)
    run_ids = [r["run_id"] for r in data["runs"]]
    complete = {rid for rid in run_ids if is_complete(directory / rid)}
    failed = {rid for rid in data.get("failed", {}) if rid in run_ids and rid not in complete}
    recorded = data.get("status", "?")
    if _lock_is_held(directory):
        status = "running"
    elif len(complete) == len(run_ids):
        status = "complete"
    elif recorded in ("incomplete", "interrupted"):
        status = recorded
    else:  # "running" (or "complete") on file, no batch running and runs missing: killed
        status = "interrupted"
    return {"status": status, "n_runs": len(run_ids), "n_complete": len(complete), "n_failed": len(failed),
            "n_missing": len(run_ids) - len(complete) - len(failed), "recorded_status": recorded}


def results_table(directory: str | Path, runs: list[str] | None = None,
                  failed: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per finished run of a sweep, in plan order: complete runs from the store, failed ones from sweep.json."""
    directory = Path(directory)
    data = _read_sweep(directory)
    plan = {r["run_id"]: r for r in data["runs"]}
    runs = list(plan) if runs is None else runs
    failed = data.get("failed", {}) if failed is None else failed
    rows = []
    for rid in runs:
        if is_complete(directory / rid):
            rows.append(result_row(directory / rid))
        elif rid in failed:
            r = plan.get(rid, {})
            rows.append({"run_id": rid, "status": "failed", "seed": r.get("seed"),
                         **{k: (json.dumps(v) if isinstance(v, (list, dict)) else v)
                            for k, v in r.get("params", {}).items()},
                         "wall_time_s": None, "error": failed[rid]})
    df = pd.DataFrame(rows)
    if len(df):
        df = df.set_index("run_id")
    return df


def _write_results(directory: Path, runs: list[str], failed: dict[str, str]) -> pd.DataFrame:
    df = results_table(directory, runs, failed)
    import tempfile

    out = df.copy()
    for c in out.columns:  # mixed parameter types (e.g. strategies next to numbers) -> text for parquet
        if out[c].dtype == object:
            out[c] = out[c].map(lambda v: v if v is None or isinstance(v, str) else json.dumps(v))
    tmps = []
    try:
        for name, write in (("results.parquet", out.to_parquet), ("results.csv", df.to_csv)):
            # unpredictable names created exclusively (a planted symlink is never followed)
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.tmp-", dir=directory)
            tmps.append(tmp)
            with os.fdopen(fd, "wb") as fh:
                write(fh)
            os.chmod(tmp, 0o644)
            os.replace(tmp, directory / name)
    finally:
        for tmp in tmps:
            Path(tmp).unlink(missing_ok=True)
    return df


# ----------------------------------------------------------------------------- executors


def connect_scheduler(address: str):
    """A :class:`distributed.Client` for ``address``, checked to have workers with one thread each.

    The checks are :func:`hydraulics.executors.connect_scheduler`'s (the forecast uses
    the same); here they surface as the batch's own error type.

    Raises
    ------
    SchedulerUnreachableError
        Malformed address; no answer within 10 s; no worker; a worker with more
        than one thread (SWMM is not re-entrant).
    """
    from hydraulics.executors import SchedulerError
    from hydraulics.executors import connect_scheduler as connect_checked

    try:
        return connect_checked(address)
    except SchedulerError as exc:
        raise SchedulerUnreachableError(str(exc)) from None


def _failed(run: PlannedRun, msg: str) -> RunResult:
    return RunResult(run.run_id, "failed", manifest={"run_id": run.run_id, "status": "failed", "error": msg,
                                                     "seed": run.seed, "params": {**run.params, "seed": run.seed},
                                                     "scenario": run.scenario}, error=msg)


_SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_STARTED = None  # in a local worker: queue on which each run announces that it started


def _init_local_worker(started, parent_pid: int | None = None) -> None:
    global _STARTED
    _STARTED = started
    if parent_pid is not None:  # a batch killed outright (SIGKILL) must not leave this worker running
        from hydraulics.processes import use_private_tempdir, watch_parent

        use_private_tempdir()  # the engine's work folders go under it: removed however the worker ends
        watch_parent(parent_pid)


def _run_local_task(task: dict) -> RunResult:
    if _STARTED is not None:
        _STARTED.put(task["run_id"])  # so a pool that breaks blames only the runs in flight
    return run_spec_data(task)


def _run_local(runs: list[PlannedRun], workers: int, record: Callable[[RunResult], None],
               max_attempts: int) -> None:
    ctx = multiprocessing.get_context("spawn")  # fork would copy a live engine's globals
    attempts: dict[str, int] = {}
    blind_breaks = 0
    pending = list(runs)
    saved = {k: os.environ.get(k) for k in _SINGLE_THREAD_ENV}
    os.environ.update(_SINGLE_THREAD_ENV)  # inherited by the spawned workers: one thread each
    try:
        while pending:
            n = max(1, min(workers, len(pending)))
            done: set[str] = set()
            started_q = ctx.SimpleQueue()
            pool = ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_init_local_worker,
                                       initargs=(started_q, os.getpid()))
            broken = False
            try:
                futs = {pool.submit(_run_local_task, r.task()): r for r in pending}
                for fut in as_completed(futs):
                    r = futs[fut]
                    try:
                        res = fut.result()
                    except BrokenProcessPool:
                        broken = True  # a worker died: retried below, in a new pool
                        continue
                    except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result: report the run
                        res = _failed(r, f"{type(exc).__name__}: {exc}")
                    done.add(r.run_id)
                    record(res)
            except BaseException:
                _kill_pool(pool)
                raise
            pool.shutdown(wait=True, cancel_futures=True)
            pending = [r for r in pending if r.run_id not in done]
            if broken:
                started = set()
                while not started_q.empty():
                    started.add(started_q.get())
                for r in pending:
                    if r.run_id in started:  # in flight when the pool broke
                        attempts[r.run_id] = attempts.get(r.run_id, 0) + 1
                blind_breaks = 0 if started & {r.run_id for r in pending} else blind_breaks + 1
                if blind_breaks >= max_attempts:  # workers die before any run starts: do not loop forever
                    for r in pending:
                        record(_failed(r, "the worker processes died before starting a run (an import error, or a "
                                          "script that starts a batch without `if __name__ == '__main__':`)"))
                    return
            for r in [r for r in pending if attempts.get(r.run_id, 0) >= max_attempts]:
                record(_failed(r, f"its worker process died {attempts[r.run_id]} times (killed, or out of memory)"))
            pending = [r for r in pending if attempts.get(r.run_id, 0) < max_attempts]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _kill_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now (Ctrl-C): cancel what has not started and end the workers."""
    procs = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        with contextlib.suppress(Exception):
            p.terminate()
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(timeout=5)


def _run_dask(runs: list[PlannedRun], client, record: Callable[[RunResult], None], sweep_name: str) -> None:
    from distributed import as_completed as dask_completed

    futures = []
    try:
        by_key = {}
        for r in runs:
            f = client.submit(run_spec_data, r.task(), key=f"citytwin-{sweep_name}-{r.run_id}-{uuid.uuid4().hex[:8]}",
                              pure=False, retries=1)
            by_key[f.key] = r
            futures.append(f)
        for fut in dask_completed(futures, loop=client.loop):
            r = by_key[fut.key]
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - KilledWorker after retries, lost connection
                res = _failed(r, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
            record(res)
            fut.release()
    except BaseException:
        with contextlib.suppress(Exception):
            client.cancel(futures)
        raise


# ----------------------------------------------------------------------------- the batch


def run_batch(sweep: ScenarioSpec | str | Path | None = None, out: str | Path = "runs", *,
              resume: str | Path | None = None, workers: int | None = None, scheduler: str | None = None,
              progress: bool = False, max_attempts: int = 3,
              on_result: Callable[[RunResult], None] | None = None) -> BatchResult:
    """Run a sweep (or resume one), streaming each finished run into the sweep directory.

    Parameters
    ----------
    sweep : ScenarioSpec, str or Path, optional
        A scenario with ``[sweep]`` (or its TOML file).  Not with ``resume``.
    out : str or Path
        Parent directory; the sweep goes to ``out/<scenario name>/``, which must not hold a sweep yet.
    resume : str or Path, optional
        A sweep directory to resume: complete runs are skipped, the others run.
    workers : int, optional
        Local worker processes (default: the sweep's ``[batch] workers``, else the cores).
    scheduler : str, optional
        Dask scheduler ``tcp://HOST:PORT`` (default: the sweep's ``[batch] scheduler`` unless ``workers`` is
        given; None: local processes).
    progress : bool
        Show a progress bar.
    max_attempts : int
        Times a run is tried when a local worker process dies while it runs.
    on_result : callable, optional
        Called with each :class:`~scenarios.runner.RunResult` after it is stored.

    Returns
    -------
    BatchResult

    Raises
    ------
    ScenarioError
        Invalid sweep (nothing is created).
    BatchError
        The directory already holds a sweep (use ``resume``), or is locked by another batch.
    SchedulerUnreachableError
        The Dask scheduler does not answer within 10 s.
    """
    t0 = time.perf_counter()
    if (sweep is None) == (resume is None):
        raise BatchError("give either a sweep file or resume=DIR")
    if resume is not None:
        directory = Path(resume)
        data = _read_sweep(directory)
        plan = _plan_from_file(data)
        spec = validate_scenario(data["scenario"], source=str(directory / SWEEP_FILE))
        batch = data.get("batch") or {}
    else:
        spec = load_scenario(sweep) if isinstance(sweep, (str, Path)) else sweep
        if spec.sweep is None:
            raise ScenarioError(f"scenario '{spec.name}' has no [sweep] section; run it with `twin run`")
        plan = plan_sweep(spec)  # validates every run before anything is created
        batch = spec.batch.model_dump() if spec.batch else {}
        directory = Path(out) / check_id(spec.name, "scenario name")
        from gisdata.paths import check_out_dir

        check_out_dir(directory, "sweep folder")  # writable, not a symlink: before anything runs
        data = None
        if (directory / SWEEP_FILE).exists():
            d = _read_sweep(directory)
            done = sum(is_complete(directory / r["run_id"]) for r in d["runs"])
            raise BatchError(f"{directory} already holds sweep '{d.get('name')}' ({done} of {len(d['runs'])} runs "
                             f"complete); resume it with `twin batch --resume {directory}` or choose another --out")
        if directory.exists() and any(p for p in directory.iterdir() if not p.name.startswith(".")):
            raise BatchError(f"{directory} exists and is not a sweep directory; choose another --out")
    if scheduler is None and workers is None:  # an explicit --workers means local processes
        scheduler = batch.get("scheduler")
    workers = int(workers or batch.get("workers") or _default_workers())
    client = connect_scheduler(scheduler) if scheduler else None  # unreachable: fail before any directory exists
    try:
        return _execute(spec, plan, directory, data, batch, workers, scheduler, client, progress, max_attempts,
                        on_result, t0)
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()


def _execute(spec, plan, directory, data, batch, workers, scheduler, client, progress, max_attempts, on_result,
             t0) -> BatchResult:
    if data is None:
        directory.mkdir(parents=True, exist_ok=True)
        data = {"format": SWEEP_FORMAT, "name": spec.name, "created": _now(), "status": "running",
                "method": spec.sweep.method, "parameters": list(spec.sweep.parameters),
                "scenario": spec.without_sweep().to_data(), "sweep": spec.sweep.model_dump(mode="json"),
                "batch": batch, "runs": [{"run_id": r.run_id, "params": r.params, "seed": r.seed} for r in plan]}
        write_json_atomic(directory / SWEEP_FILE, data)
    run_ids = [r.run_id for r in plan]

    with _locked(directory):
        clean_temporaries(directory)
        complete_before = {r.run_id for r in plan if is_complete(directory / r.run_id)}
        todo = [r for r in plan if r.run_id not in complete_before]
        failed: dict[str, str] = {}
        counts = {"run": 0}
        lock = threading.Lock()
        last_write = [0.0]
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(plan), initial=len(complete_before), desc=spec.name, unit="run")

        def update_sweep(status: str) -> None:
            n_complete = sum(is_complete(directory / rid) for rid in run_ids)
            data.update({"status": status, "updated": _now(), "n_runs": len(plan), "n_complete": n_complete,
                         "n_failed": len(failed), "failed": failed,
                         "executor": {"scheduler": scheduler} if scheduler else {"workers": workers}})
            write_json_atomic(directory / SWEEP_FILE, data)

        def record(res: RunResult) -> None:
            with lock:
                if res.ok:
                    write_run(res, directory)  # a complete run is never replaced
                counts["run"] += 1
                if res.ok:
                    failed.pop(res.run_id, None)
                else:
                    failed[res.run_id] = res.error.splitlines()[0][:500] if res.error else "failed"
                if bar is not None:
                    bar.update(1)
                    if not res.ok:
                        bar.write(f"run {res.run_id} failed: {failed[res.run_id][:200]}")
                if time.monotonic() - last_write[0] > 2.0:
                    _write_results(directory, run_ids, failed)
                    update_sweep("running")
                    last_write[0] = time.monotonic()
            if on_result is not None:
                on_result(res)

        update_sweep("running")
        status = "interrupted"
        try:
            if todo:
                if scheduler:
                    _run_dask(todo, client, record, spec.name)
                else:
                    _run_local(todo, workers, record, max_attempts)
            n_complete = sum(is_complete(directory / rid) for rid in run_ids)
            status = "complete" if n_complete == len(plan) else "incomplete"
        finally:
            if bar is not None:
                bar.close()
            results = _write_results(directory, run_ids, failed)
            update_sweep(status)
    n_complete = int(data["n_complete"])
    return BatchResult(directory=directory, status=status, n_runs=len(plan), n_complete=n_complete,
                       n_failed=len(failed), n_skipped=len(complete_before), n_run=counts["run"], results=results,
                       wall_time_s=time.perf_counter() - t0, failed=dict(failed))


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
