"""Process lifetimes: end a process tree, make a worker end itself when its parent dies, private temp roots.

A pool worker (a ``spawn`` :class:`~concurrent.futures.ProcessPoolExecutor`
worker of an ensemble or a sweep, or the job process of
:mod:`twin.job_process`) blocks on its task queue; when its parent is killed
outright (SIGKILL: no ``finally`` runs) nothing tells it, and it can compute
or wait forever.  :func:`watch_parent`, called once in the worker (a pool's
``initializer``), starts a daemon thread that notices the worker has been
reparented and then ends the worker's own children and the worker itself.

Temporary folders must not pile up when a process is killed (SIGKILL runs no
``finally``).  :func:`use_private_tempdir` gives a process a temp root of its
own (``citytwin-proc-<random>`` in the system temp folder, locked by the
process for its whole life) and points :mod:`tempfile` -- and so every
``TemporaryDirectory`` of the engine runs -- at it.  It is removed when the
process exits normally or is orphaned (:func:`watch_parent`); a root left by a
killed process is no longer locked, and the next call to
:func:`use_private_tempdir` (any ``twin`` command, any pool worker) removes it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path


from gisdata.paths import flock_held

PARENT_POLL_S = 1.0
"""Seconds between looks at the parent pid, s."""

PRIVATE_TMP_PREFIX = "citytwin-proc-"
"""Name prefix of the per-process temp roots in the system temp folder."""

_PRIVATE: dict[int, tuple[Path, int]] = {}  # pid -> (root, locked fd); keyed by pid so a fork does not inherit it


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
        _remove_private_tempdir()
        if on_orphan is not None:
            try:
                on_orphan()
            finally:
                os._exit(1)
        os._exit(1)

    thread = threading.Thread(target=watch, name="citytwin-parent-watch", daemon=True)
    thread.start()
    return thread


def _lock_held(folder: Path) -> bool:
    # a folder that cannot be opened (a file, a symlink, gone) is not ours to judge: leave it
    return flock_held(folder, if_unopenable=True)


def clean_stale_tempdirs(base: str | os.PathLike | None = None, *, min_age_s: float = 10.0) -> int:
    """Remove the private temp roots of processes that are gone (their lock is free); returns how many.

    Parameters
    ----------
    base : path, optional
        The folder holding them (default: the system temp folder).
    min_age_s : float
        Leave roots modified less than this long ago, s (one just made may
        not be locked yet).
    """
    folder = Path(base) if base is not None else Path(tempfile.gettempdir())
    mine = _PRIVATE.get(os.getpid(), (None, -1))[0]
    n = 0
    try:
        entries = [p for p in folder.iterdir() if p.name.startswith(PRIVATE_TMP_PREFIX)]
    except OSError:
        return 0
    for p in entries:
        try:
            young = time.time() - p.lstat().st_mtime < min_age_s
        except OSError:
            continue
        if p == mine or young or p.is_symlink() or not p.is_dir() or _lock_held(p):
            continue
        shutil.rmtree(p, ignore_errors=True)
        n += 1
    return n


def use_private_tempdir() -> Path:
    """Give this process a locked temp root of its own and make :mod:`tempfile` use it (idempotent).

    Stale roots of killed processes are removed first.  ``TMPDIR`` is set too,
    so processes started from here put their temporary files under it.

    Returns
    -------
    Path
        The root.
    """
    pid = os.getpid()
    if pid in _PRIVATE:
        return _PRIVATE[pid][0]
    base = Path(os.environ.get("CITYTWIN_TMP_BASE") or tempfile.gettempdir())
    clean_stale_tempdirs(base)
    root = Path(tempfile.mkdtemp(prefix=PRIVATE_TMP_PREFIX, dir=base))
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    fcntl.flock(fd, fcntl.LOCK_EX)  # held until this process ends, however it ends
    os.set_inheritable(fd, False)
    _PRIVATE[pid] = (root, fd)
    os.environ.setdefault("CITYTWIN_TMP_BASE", str(base))  # children clean and make theirs beside it
    os.environ["TMPDIR"] = str(root)
    tempfile.tempdir = str(root)
    atexit.register(_remove_private_tempdir)
    return root


def _remove_private_tempdir() -> None:
    entry = _PRIVATE.pop(os.getpid(), None)
    if entry is not None:
        root, fd = entry
        for _ in range(3):  # an orphan's main thread may still be writing into it
            shutil.rmtree(root, ignore_errors=True)
            if not root.exists():
                break
        with contextlib.suppress(OSError):
            os.close(fd)


__all__ = ["PRIVATE_TMP_PREFIX", "clean_stale_tempdirs", "end_process_tree", "use_private_tempdir", "watch_parent"]
