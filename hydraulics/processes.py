"""Process lifetimes: end a process tree, and make a worker end itself when its parent dies.

A pool worker (a ``spawn`` :class:`~concurrent.futures.ProcessPoolExecutor`
worker of an ensemble or a sweep, or the job process of
:mod:`twin.job_process`) blocks on its task queue; when its parent is killed
outright (SIGKILL: no ``finally`` runs) nothing tells it, and it can compute
or wait forever.  :func:`watch_parent`, called once in the worker (a pool's
``initializer``), starts a daemon thread that notices the worker has been
reparented and then ends the worker's own children and the worker itself.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

PARENT_POLL_S = 1.0
"""Seconds between looks at the parent pid, s."""


def end_process_tree(pid: int, *, include_self: bool = True, timeout_s: float = 5.0) -> None:
    """Terminate process ``pid`` and every process it started, killing any still alive after ``timeout_s``.

    The descendants are listed first, while ``pid`` still links them, so
    that none is left behind as an orphan.

    Parameters
    ----------
    pid : int
        The process.
    include_self : bool
        End ``pid`` too, not only its descendants.
    timeout_s : float
        Seconds each process gets to exit after SIGTERM, s.
    """
    import psutil

    try:
        parent = psutil.Process(pid)
        procs = [*parent.children(recursive=True), *([parent] if include_self else [])]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    # A zombie has ended: its parent (perhaps ended too, or busy) reaps it, not us.
    alive, deadline = procs, time.monotonic() + timeout_s
    while alive and time.monotonic() < deadline:
        _, alive = psutil.wait_procs(alive, timeout=0.1)
        alive = [proc for proc in alive if not _is_zombie(proc)]
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


def _is_zombie(proc) -> bool:
    import psutil

    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def watch_parent(parent_pid: int, every_s: float = PARENT_POLL_S, *,
                 on_orphan: Callable[[], None] | None = None) -> threading.Thread:
    """End this process and its descendants once its parent ``parent_pid`` has gone (it was reparented).

    Parameters
    ----------
    parent_pid : int
        The pid of the parent as the parent itself saw it (``os.getpid()`` in
        the parent, passed to the worker), so a parent that died before this
        call is noticed too.
    every_s : float
        Seconds between looks, s.
    on_orphan : callable, optional
        Called once the parent has gone, after the descendants are ended and
        before this process exits (e.g. to remove its temporary folder).

    Returns
    -------
    threading.Thread
        The daemon thread watching.
    """
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every_s)
        end_process_tree(os.getpid(), include_self=False, timeout_s=2.0)
        if on_orphan is not None:
            try:
                on_orphan()
            finally:
                os._exit(1)
        os._exit(1)

    thread = threading.Thread(target=watch, name="citytwin-parent-watch", daemon=True)
    thread.start()
    return thread


__all__ = ["end_process_tree", "watch_parent"]
