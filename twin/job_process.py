"""Run one job in a fresh Python process, with its progress handed back to the calling thread.

The workbench's long runs -- a flood event (:func:`twin.flood_event.run_flood_event`),
the Dispatch lab's storm (:func:`twin.coupler.compute_flood_schedule` with
``worker=True``) and the flood forecast
(:func:`twin.forecast_job.run_forecast_job_in_process`) -- each go through
:func:`run_in_process`.

Why a separate process
----------------------
The SWMM engine keeps its project in C globals: one simulation per process
(RECIPES).  A Streamlit server runs every session's script in threads of one
process, so two users (or one impatient user) would otherwise meet in the
engine.  Each job therefore gets a process of its own.

Why not ``multiprocessing``
---------------------------
A ``multiprocessing`` ``spawn`` child (``fork`` would copy a live engine's
globals) first re-runs the parent's main module, and under Streamlit that is
``app.py``: the child -- and each pool worker it starts after it -- renders
the whole workbench in bare mode (loads the city, builds its 3D scene, logs
some 80 "missing ScriptRunContext" warnings) before it does any work.  On the
tiny test city that cost 3-5 s of CPU per run, several times the run itself.
:func:`run_in_process` starts the child with :mod:`subprocess` (``python
-c``), which has no main module to re-run, for the job or for any spawned
workers of its own.  The request, the progress reports and the outcome pass
through files in a temporary folder:

- ``request.pkl``: the parent's pid and ``sys.path``, and the pickled ``(fn, request)``;
- ``reports``: one base64 pickle a line, appended and flushed by the child;
- ``result.pkl``: ``("result", value)`` or ``("error", exception)``, renamed
  into place when complete;
- ``log.txt``: the child's stdout and stderr (its tail explains a crash).

When the caller is interrupted (Streamlit stops a script when the user changes
a widget mid-run: the exception comes out of the progress callback) the child
and every process it started are ended by their pids instead of being waited
for.  A child whose parent dies ends itself.
"""

from __future__ import annotations

import base64
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gisdata.errors import TwinError
from hydraulics.processes import end_process_tree, use_private_tempdir, watch_parent

# ``-c``: the child has no main module, so neither it nor its own spawned workers re-run the caller's.
_CHILD_CODE = "from twin.job_process import _child_main; _child_main()"


class JobProcessError(TwinError, RuntimeError):
    """The job process ended without a result (crash, kill), or the job cannot be sent to it."""


def run_in_process(fn: Callable[[Any, Callable[[Any], None]], Any], request: Any, *,
                   on_report: Callable[[Any], None] | None = None, on_idle: Callable[[], None] | None = None,
                   idle_s: float = 1.0, poll_s: float = 0.1, what: str = "job",
                   error_type: type[TwinError] = JobProcessError) -> Any:
    """``fn(request, report)`` in a fresh Python process; its reports go to ``on_report`` in this thread.

    Parameters
    ----------
    fn : callable
        A function defined at the top level of an importable module (it is
        pickled by reference, so not a lambda, a closure or a function of
        ``__main__``).  It is called in the child as ``fn(request, report)``
        and returns the result; ``report(obj)`` sends any picklable ``obj``
        back to the caller.
    request : object
        The job's input (pickled).
    on_report : callable, optional
        Called in this thread with each object the job reported, in order.
        If it raises, the child and its descendants are ended and the
        exception propagates.
    on_idle : callable, optional
        Called in this thread every ``idle_s`` s in which no report came, so a
        caller can show time passing (and Streamlit gets a chance to stop the
        script) while the job is quiet.  Raising from it works as from ``on_report``.
    idle_s : float
        Seconds without a report between ``on_idle`` calls.
    poll_s : float
        Seconds between looks at the child's reports.
    what : str
        What the job is, for error messages (``"the SWMM process ended ..."``).
    error_type : type
        The :class:`~gisdata.errors.TwinError` subclass raised when the
        child ends without a result, or when ``fn`` cannot be sent; a child's
        exception that does not survive pickling comes back as one too.

    Returns
    -------
    object
        What ``fn`` returned (unpickled).

    Raises
    ------
    Exception
        The job's own exception (a :class:`~gisdata.errors.TwinError` such as
        ``SwmmError``), re-raised here with its type, message and attributes.
    error_type
        The child ended without a result (its exit code or signal and the
        tail of its output are in the message), or ``fn`` is not importable.

    Examples
    --------
    In a module of its own (``mymodule.py``)::

        def count(n, report):
            for i in range(n):
                report(i)
            return n

    then

    >>> seen = []
    >>> run_in_process(mymodule.count, 3, on_report=seen.append, what="counting")  # doctest: +SKIP
    3
    >>> seen  # doctest: +SKIP
    [0, 1, 2]
    """
    if getattr(fn, "__module__", None) == "__main__":
        raise error_type(f"{getattr(fn, '__qualname__', fn)!r} is defined in __main__; the {what} process "
                         "cannot import it: define it in a module")
    try:
        payload = pickle.dumps((fn, request, error_type))
    except Exception as exc:  # any pickling failure (a lambda, a lock): say what could not be sent
        raise error_type(f"the {what} cannot be sent to its process: {type(exc).__name__}: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="citytwin-job-") as tmp:
        folder = Path(tmp)
        (folder / "request.pkl").write_bytes(pickle.dumps((os.getpid(), list(sys.path), payload)))
        with open(folder / "log.txt", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-c", _CHILD_CODE, str(folder)], stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=_child_env())
        finished = False
        try:
            offset, quiet_since = 0, time.monotonic()
            while True:
                ended = proc.poll() is not None  # before reading, so no report written before the end is missed
                reports, offset = _read_reports(folder / "reports", offset)
                for obj in reports:
                    quiet_since = time.monotonic()
                    if on_report is not None:
                        on_report(obj)
                if ended:
                    break
                if on_idle is not None and time.monotonic() - quiet_since >= idle_s:
                    quiet_since = time.monotonic()
                    on_idle()
                time.sleep(poll_s)
            finished = True
        finally:
            if not finished:  # interrupted (e.g. a Streamlit rerun): do not wait for the engines
                end_process_tree(proc.pid)
            proc.wait()
        return _outcome(folder, proc.returncode, what, error_type)


# ----------------------------------------------------------------------------- the child


def _child_main(argv: list[str] | None = None) -> None:
    """Entry point of the job process: run the request in folder ``argv[1]`` (see the module docstring)."""
    folder = Path((argv if argv is not None else sys.argv)[1])
    parent_pid, path, payload = pickle.loads((folder / "request.pkl").read_bytes())
    # a child whose parent dies ends itself and its own workers, and removes the parent's temporary folder
    # and its own temp root (where the engine's work folders go)
    use_private_tempdir()
    watch_parent(parent_pid, on_orphan=lambda: shutil.rmtree(folder, ignore_errors=True))
    sys.path.extend(p for p in path if p not in sys.path)  # the caller's modules import here too
    error_type: type[TwinError] = JobProcessError
    with open(folder / "reports", "ab") as out:
        def report(obj) -> None:
            out.write(base64.b64encode(pickle.dumps(obj)) + b"\n")
            out.flush()

        try:
            fn, request, error_type = pickle.loads(payload)
            outcome = ("result", fn(request, report))
        except BaseException as exc:  # noqa: BLE001 - everything must reach the parent
            outcome = ("error", _picklable(exc, error_type))
    try:
        data = pickle.dumps(outcome)
    except Exception as exc:  # noqa: BLE001 - a result that does not pickle: say so
        data = pickle.dumps(("error", error_type(f"the job's result cannot be pickled: {type(exc).__name__}: {exc}")))
    tmp = folder / "result.pkl.part"
    tmp.write_bytes(data)
    tmp.replace(folder / "result.pkl")


def _picklable(exc: BaseException, error_type: type[TwinError]) -> BaseException:
    """``exc`` if it survives pickling, else an ``error_type`` with its type and text."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any exception that does not round-trip: keep its text
        return error_type(f"{type(exc).__name__}: {exc}")


# ----------------------------------------------------------------------------- the parent


def _child_env() -> dict:
    """The child's environment: this one, with the package root first on ``PYTHONPATH``."""
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return env


def _read_reports(path: Path, offset: int) -> tuple[list, int]:
    """Complete reports appended to ``path`` after byte ``offset``, and the new offset."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    complete = data[: data.rfind(b"\n") + 1]
    return [pickle.loads(base64.b64decode(line)) for line in complete.splitlines() if line], offset + len(complete)


def _outcome(folder: Path, returncode: int | None, what: str, error_type: type[TwinError]):
    """The job's result from ``folder``, or its error raised here."""
    path = folder / "result.pkl"
    if not path.is_file():
        log = (folder / "log.txt").read_text(encoding="utf-8", errors="replace")
        tail = " ".join(log.strip().splitlines()[-3:])[-400:]
        how = f"exit code {returncode}"
        if returncode is not None and returncode < 0:
            try:
                how = f"killed by {signal.Signals(-returncode).name}"
            except ValueError:  # a real-time signal has no name
                how = f"killed by signal {-returncode}"
        raise error_type(f"the {what} process ended without a result ({how})" + (f": {tail}" if tail else ""))
    kind, payload = pickle.loads(path.read_bytes())
    if kind == "error":
        raise payload
    return payload


__all__ = ["JobProcessError", "end_process_tree", "run_in_process"]
