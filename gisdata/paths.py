"""Identifiers that become paths, and output folders: one validator, one folder helper.

Every identifier read from a file, a manifest or a form (run ids, member
names, scenario names, file pointers in a manifest) goes through
:func:`check_id` before it becomes part of a path, and :func:`child_path`
joins it under the folder that owns it.  A valid identifier is one path
component that cannot climb out: ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}`` with no
``..`` anywhere, so it is never absolute, never empty, never a separator.

Output folders go through :func:`check_out_dir` (before any work: the folder
or its nearest existing parent must be writable) and :class:`StagedDir`,
which every command uses to write a folder of results:

- the work goes into a hidden sibling ``.<name>.tmp-<random>`` made with
  :func:`tempfile.mkdtemp` (an unpredictable name, created with ``O_EXCL``, so
  no symlink planted beforehand is followed) and locked while it is in use;
- :meth:`StagedDir.commit` moves it into place: renamed when the target does
  not exist; moved entry by entry (the last-named entries last) into an
  existing empty folder, which keeps its permissions; and, when the target
  holds an earlier output of the same kind (``replace=True``), swapped so the
  old files are gone at once, never mixed with new ones;
- on any error the staging folder is removed; after a SIGKILL it stays
  behind, hidden, and the next :class:`StagedDir` for the same target removes
  it (its lock is no longer held); a batch, which owns its sweep folder,
  removes every such leftover in it.

Nothing outside the target and its own staging folders is ever deleted.

Examples
--------
>>> check_id("p001-priority-s2", "run id")
'p001-priority-s2'
>>> for bad in ("../etc", "/abs", "x/../../y", ".hidden", ""):
...     try:
...         check_id(bad, "run id")
...     except InvalidIdError:
...         print("refused", repr(bad))
refused '../etc'
refused '/abs'
refused 'x/../../y'
refused '.hidden'
refused ''
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Self

from gisdata.errors import TwinError

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""A valid identifier (matched in full), besides containing no ``..``."""

TMP_MARK = ".tmp-"
OLD_MARK = ".old-"


class InvalidIdError(TwinError, ValueError):
    """An identifier read from a file, a manifest or a form cannot safely become a path."""


class OutputDirError(TwinError, OSError):
    """An output folder cannot be used: not writable, not a folder, or it holds something else."""


def check_id(value: object, what: str = "identifier", *, source: str | os.PathLike | None = None) -> str:
    """Return ``value`` if it is a safe identifier, else raise :class:`InvalidIdError`.

    Parameters
    ----------
    value : object
        The identifier (must be a ``str``).
    what : str
        What it is, for the message (``"run id"``, ``"member name"``).
    source : str or path, optional
        Where it was read (a file), for the message.

    Returns
    -------
    str
        ``value`` unchanged.

    Raises
    ------
    InvalidIdError
        Not a string, empty, longer than 128 characters, or it holds a
        character outside ``A-Z a-z 0-9 . _ -``, starts with ``.``, ``_``
        or ``-``, or contains ``..``.
    """
    where = f"{source}: " if source is not None else ""
    if not isinstance(value, str):
        raise InvalidIdError(f"{where}{what} {value!r} must be a string")
    if not ID_PATTERN.fullmatch(value) or ".." in value:
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise InvalidIdError(f"{where}{what} {shown!r} is not a valid identifier: expected 1-128 characters "
                             "of A-Z a-z 0-9 . _ -, starting with a letter or digit, without '..'")
    return value


def child_path(root: str | os.PathLike, name: object, what: str = "identifier", *,
               source: str | os.PathLike | None = None, suffix: str = "") -> Path:
    """``root / (name + suffix)`` after :func:`check_id`; the result is always directly inside ``root``.

    Parameters
    ----------
    root : path
        The folder that owns the identifier.
    name : object
        The identifier (checked).
    what, source
        As in :func:`check_id`.
    suffix : str
        Appended to the name (``".parquet"``).

    Examples
    --------
    >>> child_path("runs", "r1", "run id")
    PosixPath('runs/r1')
    """
    return Path(root) / f"{check_id(name, what, source=source)}{suffix}"


# ----------------------------------------------------------------------------- output folders


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_out_dir(path: str | os.PathLike, what: str = "--out") -> Path:
    """Check, before any work, that a folder can be created or written at ``path``.

    Parameters
    ----------
    path : path
        The output folder.
    what : str
        Its name for the message (the option).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OutputDirError
        ``path`` is a file or a symlink, or it (or its nearest existing
        parent, when it does not exist yet) is not a writable folder.
    """
    p = Path(path)
    if p.is_symlink():
        raise OutputDirError(f"{what} {p}: is a symbolic link; give the real folder")
    if p.exists() and not p.is_dir():
        raise OutputDirError(f"{what} {p}: exists and is not a folder")
    base = p if p.exists() else _nearest_existing(p.absolute())
    if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
        raise OutputDirError(f"{what} {p}: {base} is not a writable folder")
    return p


def check_out_file(path: str | os.PathLike, what: str = "--out") -> Path:
    """Check, before any work, that the file ``path`` can be written (its folder writable, not a folder itself).

    Raises
    ------
    OutputDirError
        ``path`` is a folder, or its folder (or nearest existing parent) is not writable.
    """
    p = Path(path)
    if p.is_dir():
        raise OutputDirError(f"{what} {p}: is a folder; give a file name")
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputDirError(f"{what} {p}: exists and is not writable")
    check_out_dir(p.absolute().parent, what)
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, mode: int = 0o644):
    """Yield a fresh temporary path beside ``path``; on success it is renamed onto ``path``.

    The temporary file gets an unpredictable name and is created exclusively
    (:func:`tempfile.mkstemp`), so a symlink planted beside the target is never
    followed; it is removed if the block raises.  Whatever the block writes at
    the yielded path (``df.to_parquet(tmp)``, ``tmp.write_text(...)``) replaces
    ``path`` in one step.

    Parameters
    ----------
    path : path
        The file to write.
    mode : int
        Permission bits of the written file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("hello")
    >>> target.read_text()
    'hello'
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}{TMP_MARK}", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def holds_only(path: str | os.PathLike, patterns: Iterable[str], *, marker: str, max_entries: int = 20_000) -> bool:
    """True if folder ``path`` holds ``marker`` and nothing but entries matching ``patterns``.

    This is how a command recognises a folder it wrote earlier, which it may
    replace: one stray file of the user's (or a symlink, or more than
    ``max_entries`` entries) and the folder is not the command's.

    Parameters
    ----------
    path : path
        The folder.
    patterns : iterable of str
        :func:`fnmatch.fnmatch` patterns of the entries' paths relative to
        ``path``, with ``/`` separators (``*`` crosses them).
    marker : str
        A file the command always writes (``forecast.json``).
    max_entries : int
        Give up (False) beyond this many entries.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "forecast.json").write_text("{}")
    >>> holds_only(d, ["forecast.json", "plan.*"], marker="forecast.json")
    True
    >>> _ = (d / "thesis.docx").write_text("years of work")
    >>> holds_only(d, ["forecast.json", "plan.*"], marker="forecast.json")
    False
    """
    import fnmatch

    root = Path(path)
    pats = list(patterns)
    if not (root / marker).is_file() or (root / marker).is_symlink():
        return False
    n = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            n += 1
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if n > max_entries or p.is_symlink() or not any(fnmatch.fnmatchcase(rel, pat) for pat in pats):
                return False
    return True


def clean_stale_staging(parent: str | os.PathLike, *, name: str | None = None, files: bool = False,
                        extra_marks: Iterable[str] = ()) -> int:
    """Remove staging folders left in ``parent`` by killed writers (their lock no longer held).

    Only hidden entries named ``.<name>.tmp-*`` or ``.<name>.old-*`` are
    considered -- with ``name`` given, only those of that target, so a
    command touches nothing in a folder it does not own but its own
    leftovers -- and a symlink is unlinked, never followed.  Temporary *files*
    of that name (:func:`atomic_path`) carry no lock, so they are removed only
    with ``files=True``, by a caller that knows no writer is live (it holds a
    lock of its own over ``parent``).  ``extra_marks`` names more markers
    (``".prev-"``) to treat like ``.tmp-``, for such a caller.

    Returns
    -------
    int
        How many were removed.
    """
    d = Path(parent)
    if not d.is_dir():
        return 0
    marks = (TMP_MARK, OLD_MARK, *extra_marks)
    n = 0
    for p in d.iterdir():
        if name is not None:
            if not any(p.name.startswith(f".{name}{m}") for m in marks):
                continue
        elif not (p.name.startswith(".") and any(m in p.name for m in marks)):
            continue
        if p.is_symlink() or not p.is_dir():
            if files or p.is_symlink():
                with contextlib.suppress(OSError):
                    p.unlink()
                    n += 1
            continue
        if flock_held(p):
            continue  # a live writer
        shutil.rmtree(p, ignore_errors=True)
        n += 1
    return n


def _lock_dir(folder: Path) -> int:
    """An open descriptor of ``folder`` holding an exclusive lock (on the folder itself, so it survives a rename)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def flock_held(path: str | os.PathLike, *, directory: bool = True, if_unopenable: bool = False) -> bool:
    """True while another process holds an exclusive ``flock`` on ``path`` (a live writer or batch).

    Parameters
    ----------
    path : path
        A folder (``directory=True``) or a lock file; never followed through a symlink.
    directory : bool
        Whether ``path`` is a folder.
    if_unopenable : bool
        The answer when ``path`` cannot be opened (gone, a symlink, the wrong kind).
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | (os.O_DIRECTORY if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return if_unopenable
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _default_dir_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o777 & ~mask


class StagedDir:
    """Write an output folder in a hidden staging sibling and move it into place when complete.

    Parameters
    ----------
    out : path
        The output folder.
    what : str
        Its name for messages (``"--out"``, ``"run folder"``).
    replace : bool
        If ``out`` is not empty, replace it -- but only when ``is_ours(out)``
        says it holds an earlier output of the same kind.  Without it a
        non-empty ``out`` is refused.
    is_ours : callable, optional
        ``is_ours(path) -> bool`` (e.g. "holds a forecast.json").

    Attributes
    ----------
    path : Path
        The staging folder to write into.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "result"
    >>> with StagedDir(out) as work:
    ...     _ = (work.path / "a.txt").write_text("1")
    ...     _ = work.commit()
    >>> sorted(p.name for p in out.iterdir())
    ['a.txt']
    """

    def __init__(self, out: str | os.PathLike, what: str = "--out", *, replace: bool = False,
                 is_ours=None) -> None:
        self.out = Path(out)
        self.what = what
        check_out_dir(self.out, what)
        self.replace = bool(replace) and self._holds_ours(is_ours)
        if self.out.exists() and any(self.out.iterdir()) and not self.replace:
            hint = " (it holds files that are not an earlier output of this command)" if replace else ""
            raise OutputDirError(f"{what} {self.out}: exists and is not empty{hint}; choose another folder")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_staging(self.out.parent, name=self.out.name)  # its own leftovers only: the parent is not ours
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.out.name}{TMP_MARK}", dir=self.out.parent))
        self._lock_fd: int | None = _lock_dir(self.path)
        self.done = False

    def _holds_ours(self, is_ours) -> bool:
        return self.out.is_dir() and any(self.out.iterdir()) and is_ours is not None and bool(is_ours(self.out))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.done:
            self.abort()

    def abort(self) -> None:
        """Remove the staging folder (idempotent)."""
        shutil.rmtree(self.path, ignore_errors=True)
        self._unlock()
        self.done = True

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def commit(self, last: Iterable[str] = ()) -> Path:
        """Move the staging folder's content into ``out``; entries named in ``last`` move last.

        Parameters
        ----------
        last : iterable of str
            Names moved after every other entry (a manifest that says the
            folder is complete), when ``out`` is an existing empty folder.

        Returns
        -------
        Path
            ``out``.

        Raises
        ------
        OutputDirError
            ``out`` was filled by someone else meanwhile.
        """
        last = list(last)
        try:
            if not self.out.exists():
                os.chmod(self.path, _default_dir_mode())  # mkdtemp made it 0700
                os.rename(self.path, self.out)
            elif not any(self.out.iterdir()):  # an empty folder the user made: keep it (and its permissions)
                names = sorted(p.name for p in self.path.iterdir())
                for name in [n for n in names if n not in last] + [n for n in last if n in names]:
                    os.replace(self.path / name, self.out / name)
                self.path.rmdir()
            elif self.replace:
                mode = stat.S_IMODE(self.out.stat().st_mode)
                old = Path(tempfile.mkdtemp(prefix=f".{self.out.name}{OLD_MARK}", dir=self.out.parent))
                old_fd = _lock_dir(old)
                try:
                    os.rename(self.out, old / "old")
                    os.chmod(self.path, mode)
                    os.rename(self.path, self.out)
                    shutil.rmtree(old, ignore_errors=True)
                finally:
                    os.close(old_fd)
            else:
                raise OutputDirError(f"{self.what} {self.out}: was filled by another writer meanwhile; "
                                     "nothing was replaced")
        finally:
            self._unlock()
        self.done = True
        return self.out


__all__ = ["ID_PATTERN", "InvalidIdError", "OutputDirError", "StagedDir", "atomic_path", "check_id", "holds_only", "check_out_dir",
           "check_out_file", "child_path", "clean_stale_staging"]
