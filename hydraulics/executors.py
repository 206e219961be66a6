"""Run ensemble members in parallel: a local ``spawn`` process pool, Dask distributed, or inline.

SWMM keeps its project in C globals, so each member needs a process of its own
(RECIPES: one simulation per process, THREADS 1).  Three executors share one
interface, :func:`run_tasks`:

- ``scheduler=None``: a :class:`concurrent.futures.ProcessPoolExecutor` with the
  ``spawn`` context and ``max_workers`` = cores (never more than the members);
- ``scheduler="tcp://HOST:PORT"``: a Dask distributed cluster whose workers have
  one thread each (checked: a multi-threaded worker would run two engines in
  one process); the scheduler must answer within :data:`CONNECT_TIMEOUT_S`;
- ``scheduler="inline"``: one after another in this process (tests, debugging).

Results are handed to ``on_result`` as they finish (the caller streams them to
disk).  A member that fails -- engine error, or its worker process dying --
comes back as a ``failed`` :class:`~hydraulics.ensemble.MemberResult`; it never
stops the others.
"""

from __future__ import annotations

import multiprocessing
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from gisdata.errors import TwinError
from hydraulics.ensemble import MemberResult, MemberTask, SurfaceContext, run_member

CONNECT_TIMEOUT_S = 10.0
"""Seconds to wait for a Dask scheduler before giving up."""

_ADDRESS_RE = re.compile(r"^(tcp|tls|inproc)://[^\s:/]+(:\d+)?$")


class SchedulerError(TwinError, ConnectionError):
    """The Dask scheduler is unreachable, malformed, or its workers are unsuitable."""


_WORKER_CTX: SurfaceContext | None = None


def _init_worker(ctx: SurfaceContext, parent_pid: int | None = None) -> None:
    # Sent once per worker process instead of once per member.
    global _WORKER_CTX
    _WORKER_CTX = ctx
    if parent_pid is not None:  # a parent killed outright (SIGKILL) must not leave this worker running
        from hydraulics.processes import use_private_tempdir, watch_parent

        use_private_tempdir()  # the engine's work folders go under it: removed however the worker ends
        watch_parent(parent_pid)


def _run_in_worker(task: MemberTask) -> MemberResult:
    return run_member(task, _WORKER_CTX)


def default_workers() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def run_tasks(tasks: Sequence[MemberTask], ctx: SurfaceContext, *, scheduler: str | None = None,
              max_workers: int | None = None, on_result: Callable[[MemberResult], None] | None = None,
              progress: bool = False, desc: str = "members") -> list[MemberResult]:
    """Run ``tasks`` and return their results in task order.

    Parameters
    ----------
    tasks : sequence of MemberTask
    ctx : SurfaceContext
        Shared by all tasks; sent once per worker.
    scheduler : str, optional
        ``None`` (local process pool), ``"inline"``, or a Dask address ``tcp://HOST:PORT``.
    max_workers : int, optional
        Local pool size (default: cores, at most ``len(tasks)``).
    on_result : callable, optional
        Called in this process with each result as it finishes.
    progress : bool
        Show a tqdm progress bar.
    desc : str
        Progress-bar label.

    Raises
    ------
    SchedulerError
        The scheduler address is malformed, does not answer within
        :data:`CONNECT_TIMEOUT_S` seconds, has no workers, or has a worker with more than one thread.
    """
    from tqdm import tqdm

    tasks = list(tasks)
    results: dict[int, MemberResult] = {}
    bar = tqdm(total=len(tasks), desc=desc, unit="member", disable=not progress, leave=False)

    def done(res: MemberResult) -> None:
        results[res.index] = res
        if on_result is not None:
            on_result(res)
        bar.update(1)
        if res.status != "ok":
            bar.write(f"member {res.name} failed: {res.error[:200]}")

    try:
        if not tasks:
            return []
        if scheduler == "inline":
            for t in tasks:
                done(run_member(t, ctx))
        elif scheduler is None:
            _run_local(tasks, ctx, max_workers, done)
        else:
            _run_dask(tasks, ctx, scheduler, done)
    finally:
        bar.close()
    return [results[t.index] for t in tasks]


def _run_local(tasks, ctx, max_workers, done) -> None:
    n = max(1, min(int(max_workers or default_workers()), len(tasks)))
    spawn = multiprocessing.get_context("spawn")  # fork would copy a live engine's globals
    with ProcessPoolExecutor(max_workers=n, mp_context=spawn, initializer=_init_worker,
                             initargs=(ctx, os.getpid())) as pool:
        futures = {pool.submit(_run_in_worker, t): t for t in tasks}
        for fut in as_completed(futures):
            t = futures[fut]
            try:
                res = fut.result()
            except BrokenProcessPool as exc:
                res = MemberResult(t.index, t.name, "failed", error=f"worker process died ({exc})")
            except Exception as exc:  # noqa: BLE001 - pickling or pool errors: report the member, go on
                res = MemberResult(t.index, t.name, "failed", error=f"{type(exc).__name__}: {exc}")
            done(res)


def connect_scheduler(address: str):
    """Connect to a Dask scheduler, checking its workers run one thread each.

    Raises
    ------
    SchedulerError
        Malformed address; no answer within :data:`CONNECT_TIMEOUT_S` s; no
        workers; a worker with more than one thread.
    """
    if not isinstance(address, str) or not _ADDRESS_RE.match(address.strip()):
        raise SchedulerError(f"scheduler address {address!r} is malformed; expected tcp://HOST:PORT")
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - dask[distributed] is a dependency
        raise SchedulerError(f"dask.distributed is not installed ({exc})") from exc
    import socket
    import time

    t0 = time.monotonic()
    host_port = address.strip().split("://", 1)[1]
    host, _, port = host_port.rpartition(":")
    if address.startswith("tcp://") and port.isdigit():
        # A closed port or unknown host fails in milliseconds; do not wait for Dask's retries.
        try:
            socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S / 2).close()
        except OSError as exc:
            raise SchedulerError(f"Dask scheduler {address} is unreachable ({exc}); start it with "
                                 "`dask scheduler` or run without --scheduler") from None
    try:
        remaining = max(1.0, CONNECT_TIMEOUT_S - (time.monotonic() - t0) - 1.0)
        client = Client(address.strip(), timeout=remaining, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise SchedulerError(f"Dask scheduler {address} is unreachable within {CONNECT_TIMEOUT_S:g} s "
                             f"({' '.join(str(exc).split())[:160]}); start it with `dask scheduler` "
                             "or run without --scheduler") from None
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError):
        client.close()
        raise SchedulerError(f"Dask scheduler {address} has no workers after {CONNECT_TIMEOUT_S:g} s; "
                             "start some with `dask worker ADDRESS --nthreads 1`") from None
    workers = client.scheduler_info(n_workers=-1)["workers"] if _accepts_n_workers(client) \
        else client.scheduler_info()["workers"]
    multi = {w: info.get("nthreads") for w, info in workers.items() if info.get("nthreads", 1) > 1}
    if multi:
        client.close()
        raise SchedulerError(f"Dask workers {sorted(multi)[:3]} have {sorted(set(multi.values()))} threads; SWMM "
                             "is not re-entrant: start workers with `dask worker ADDRESS --nthreads 1`")
    return client


def _accepts_n_workers(client) -> bool:
    import inspect

    return "n_workers" in inspect.signature(client.scheduler_info).parameters


def _run_dask(tasks, ctx, address, done) -> None:
    from distributed import as_completed as dask_completed

    client = connect_scheduler(address)
    try:
        ctx_future = client.scatter(ctx, broadcast=True)
        futures = {}
        for t in tasks:
            f = client.submit(run_member, t, ctx_future, pure=False, retries=0)
            futures[f.key] = (f, t)
        with client.as_current():  # as_completed looks the client up; ours is not the global default
            finished = dask_completed([f for f, _ in futures.values()])
        for fut in finished:
            t = futures[fut.key][1]
            try:
                res = fut.result()
            except Exception as exc:  # noqa: BLE001 - worker death (KilledWorker) or transport errors
                res = MemberResult(t.index, t.name, "failed", error=f"{type(exc).__name__}: {exc}")
            done(res)
    finally:
        client.close()
