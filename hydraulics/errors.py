"""Typed errors of the SWMM layer: engine errors and ``.inp`` parse errors.

Every error is a :class:`~gisdata.errors.TwinError`, so the CLI prints it as one
line and exits with code 2.  An engine error carries what the engine said (its
code and message) and where (file, section, line), parsed from the report file
or the exception text, e.g.::

    ERROR 209: undefined object C6 at line 94 of [DIVIDER] section:

The engine writes line numbers of the file it ran.  Our run copy keeps every
line of the user's file in place (only file-path tokens are rewritten), so the
line is also the line of the user's file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gisdata.errors import CorruptFileError, InputFileNotFoundError, TwinError

# "ERROR 209: undefined object C6 at line 94 of [DIVIDER] section:" (5.2) or
# "... at line 94 of input file:" (5.1); the offending line follows on the next line.
_ERROR_RE = re.compile(r"ERROR\s+(?P<code>\d+):\s*(?P<message>.*?)\s*$", re.MULTILINE)
_WHERE_RE = re.compile(r"\s+at line (?P<line>\d+) of (?:\[(?P<section>[^\]]+)\] section|input file):?\s*$")

# Engine codes that mean "a file the model names cannot be opened".
FILE_ERROR_CODES = frozenset({301, 302, 303, 304, 305, 306, 307, 308, 309, 311, 313, 315, 316, 317,
                              318, 319, 320, 321, 323, 325, 327, 329, 330, 331, 333, 335, 336, 337,
                              338, 361})


@dataclass(frozen=True)
class EngineMessage:
    """One ``ERROR nnn`` entry of an engine report.

    Parameters
    ----------
    code : int
        SWMM error code, e.g. 209.
    message : str
        Engine message without the ``at line`` suffix.
    section : str or None
        Section as the engine names it (it abbreviates: ``DIVIDER``, ``INFIL``).
    line : int or None
        1-based line of the file the engine read.
    text : str or None
        The offending input line, as the engine echoed it.
    """

    code: int
    message: str
    section: str | None = None
    line: int | None = None
    text: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.line is not None:
            where = f" at line {self.line}" + (f" of [{self.section}]" if self.section else "")
        return f"ERROR {self.code}: {self.message}{where}"


def parse_engine_errors(text: str) -> list[EngineMessage]:
    """Extract every ``ERROR nnn`` entry from report or exception text.

    Parameters
    ----------
    text : str
        Contents of a ``.rpt`` file or the text of an engine exception.

    Returns
    -------
    list of EngineMessage
        In the order the engine wrote them; the summary ``ERROR 200: one or
        more errors in input file`` is dropped when detailed entries exist.

    Examples
    --------
    >>> parse_engine_errors("  ERROR 209: undefined object C6 at line 94 of [DIVIDER] section:\\n  NODE5 3.0 C6")[0]
    EngineMessage(code=209, message='undefined object C6', section='DIVIDER', line=94, text='NODE5 3.0 C6')
    """
    lines = text.splitlines()
    found: list[EngineMessage] = []
    for i, raw in enumerate(lines):
        m = _ERROR_RE.search(raw)
        if not m:
            continue
        message = m.group("message")
        section = line = echoed = None
        w = _WHERE_RE.search(message)
        if w:
            message = message[: w.start()]
            line = int(w.group("line"))
            section = w.group("section")
            if i + 1 < len(lines) and lines[i + 1].strip():
                echoed = lines[i + 1].strip()
        found.append(EngineMessage(int(m.group("code")), message.rstrip(" .:") or message, section, line, echoed))
    detailed = [e for e in found if e.code != 200]
    return detailed if detailed else found


class SwmmError(TwinError, RuntimeError):
    """The SWMM engine refused the model or failed during the run.

    Attributes
    ----------
    code : int or None
        Engine error code of the first error (e.g. 209, 235, 317).
    engine_message : str
        The engine's message for that error.
    file : str or None
        The model file (the user's, not our temporary copy).
    section : str or None
        Input section as the engine names it, where known.
    line : int or None
        1-based line in ``file``, where known.
    errors : tuple of EngineMessage
        Every error the engine reported (it may report many).
    """

    def __init__(self, message: str, *, code: int | None = None, engine_message: str = "",
                 file: str | Path | None = None, section: str | None = None, line: int | None = None,
                 errors: tuple[EngineMessage, ...] = ()):
        super().__init__(message)
        self.code = code
        self.engine_message = engine_message
        self.file = None if file is None else str(file)
        self.section = section
        self.line = line
        self.errors = tuple(errors)

    @classmethod
    def from_engine(cls, text: str, *, file: str | Path | None = None, stage: str = "run") -> SwmmError:
        """Build the right error subclass from report or exception text.

        Parameters
        ----------
        text : str
            Report (``.rpt``) contents, or exception text when no report exists.
        file : str or Path, optional
            The user's model file, named in the message.
        stage : str
            What was being done (``"open"``, ``"run"``), for the message.
        """
        errors = parse_engine_errors(text)
        where = f"{file}: " if file else ""
        if not errors:
            snippet = " ".join(text.split())[:200] or "no message"
            return cls(f"{where}SWMM engine failed during {stage} ({snippet})", file=file)
        first = errors[0]
        kind = MissingModelFileError if first.code in FILE_ERROR_CODES else cls
        loc = ""
        if first.line is not None:
            loc = f" at line {first.line}" + (f" of [{first.section}]" if first.section else "")
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        return kind(
            f"{where}SWMM ERROR {first.code}: {first.message}{loc}{more}",
            code=first.code, engine_message=first.message, file=file, section=first.section,
            line=first.line, errors=tuple(errors),
        )


class MissingModelFileError(SwmmError, FileNotFoundError):
    """A file the model refers to (rain file, time-series file, hotstart) is missing."""


class InpParseError(CorruptFileError):
    """A file cannot be read as a SWMM ``.inp`` (empty, binary, no sections).

    Attributes
    ----------
    file : str or None
        The file.
    section : str or None
        Section being read, where known.
    line : int or None
        1-based line, where known.
    """

    def __init__(self, message: str, *, file: str | Path | None = None, section: str | None = None,
                 line: int | None = None):
        super().__init__(message)
        self.file = None if file is None else str(file)
        self.section = section
        self.line = line
        self.code = None


class InpFileNotFoundError(InputFileNotFoundError):
    """The ``.inp`` file itself does not exist."""


class EmptyInpError(InpParseError):
    """The file is empty or holds no ``[SECTION]`` at all."""


class BinaryInpError(InpParseError):
    """The file holds binary data (NUL bytes), not text."""


class HotstartError(TwinError, ValueError):
    """A hotstart request is inconsistent (time outside the run, file missing)."""


class ModelPathError(TwinError, PermissionError):
    """A file a model names would be read from or written to outside what the run may touch.

    A model may read only files in its own folder (or paths the user named
    explicitly) and writes only into its run folder.

    Attributes
    ----------
    file : str or None
        The model file.
    line : int or None
        1-based line of the model that names the path.
    path : str or None
        The path as written in the model.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None, path: str | None = None):
        super().__init__(message)
        self.file = file
        self.line = line
        self.path = path


class InpValueError(InpParseError):
    """A ``.inp`` holds a number the engine would misread or crash on (``inf``, ``nan``, ``1e400``,
    an elevation outside the sane range); the message names the file, the line and the token."""
