"""Append-only, hash-chained event log (JSON Lines).

Every event of a run -- reports, merges, dispatches, arrivals, resolutions,
closures, flood onsets, vendor moves, enforcement actions -- becomes one line::

    {"actor":"crew:drainage-01","kind":"arrival","payload":{...},"prev_sha256":"…",
     "seq":17,"sha256":"…","time_s":3600.0,"x":500120.0,"y":3400080.0}

Lines are *canonical* JSON: keys sorted, no spaces, UTF-8, no NaN.  ``sha256`` is
the digest of the record's canonical JSON without its own ``sha256`` field, and
``prev_sha256`` is the ``sha256`` of the previous record (64 zeros for the
first).  So :func:`verify_log` detects an edit anywhere (the record's own digest
breaks), a deletion, an insertion or a reordering (``seq`` and the chain break),
and names the first bad record by line number and sequence number.  Removing
records *from the end* leaves a valid shorter chain; pass the ``head_sha256`` and
``n_records`` a run manifest stored to :func:`verify_log` to catch that too.

This module does not import :mod:`agents`.  Producers emit events through the
sink protocol (:class:`EventSink`: a callable taking one mapping); an
:class:`EventLog` is such a sink, and the coupler wires it in.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Self

from gisdata.errors import CorruptFileError, InputFileNotFoundError, TwinError

GENESIS = "0" * 64
"""``prev_sha256`` of the first record."""

EVENT_KINDS = (
    "report", "merge", "case", "referral", "dispatch", "arrival", "resolution", "closure",
    "road_closure", "flood_onset", "incident", "vendor_occupy", "vendor_move", "vendor_leave",
    "enforcement", "staging", "shift", "note",
)
"""Kinds in use; other kinds are accepted (the log is schema-light on purpose)."""


class EventSink(Protocol):
    """Anything that takes events: ``sink({"time_s", "kind", "actor", "x", "y", "payload"})``."""

    def __call__(self, event: Mapping[str, Any]) -> None: ...


class EventLogError(TwinError, ValueError):
    """An event cannot be written (bad field, non-finite number) or the log is closed."""


def _jsonable(value: Any) -> Any:
    """Plain JSON types only; numpy scalars and arrays become Python ones, NaN becomes None."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        seq = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [_jsonable(v) for v in seq]
    if hasattr(value, "tolist"):  # numpy scalar or array
        return _jsonable(value.tolist())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise EventLogError(f"event value {value!r} of type {type(value).__name__} is not JSON-serialisable")


MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a log line or manifest may have (a record has 3 or 4)."""


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def parse_json_strict(data: bytes | str) -> Any:
    """Parse strict JSON: UTF-8, no ``NaN``/``Infinity``, no number too large, nesting at most :data:`MAX_JSON_DEPTH`.

    Parameters
    ----------
    data : bytes or str
        The JSON text.

    Returns
    -------
    object
        The parsed value.

    Raises
    ------
    ValueError
        For anything that is not strict JSON (a ``json.JSONDecodeError`` or a
        ``UnicodeDecodeError`` is a ``ValueError`` too), instead of a
        ``RecursionError`` on deep nesting or a NaN that breaks hashing later.

    Examples
    --------
    >>> parse_json_strict(b'{"a": [1, 2.5]}')
    {'a': [1, 2.5]}
    >>> parse_json_strict("[" * 100 + "]" * 100)
    Traceback (most recent call last):
    ...
    ValueError: JSON nested deeper than 64 levels
    """
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else str(data)
    depth = deepest = 0
    in_str = esc = False
    brackets = text.count("[") + text.count("{")
    for ch in text if brackets > MAX_JSON_DEPTH else ():  # the parser itself would recurse once per level
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        elif ch in "]}":
            depth -= 1

    def finite(text: str) -> float:
        v = float(text)
        if not math.isfinite(v):
            raise ValueError(f"number {text[:20]} is out of range")
        return v

    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=finite)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None
    if "\\u" in text:  # an escaped lone surrogate ("\ud800") parses, then breaks hashing and Parquet as UTF-8
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("JSON holds a lone surrogate escape (\\ud800-\\udfff); not valid Unicode") from None
    return value


def canonical_json(record: Mapping[str, Any]) -> str:
    """Canonical JSON text of ``record``: sorted keys, compact separators, UTF-8, no NaN."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def record_digest(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``record`` without its ``sha256`` field."""
    body = {k: v for k, v in record.items() if k != "sha256"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


class EventLog:
    """Writer of a hash-chained JSON Lines event log.

    Parameters
    ----------
    path : str or Path
        The ``.jsonl`` file.  A new file is created; an existing log is verified
        and appended to (its chain continues).
    fsync : bool
        Flush to disk after every record (slow; for crash-safe production logs).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "events.jsonl"
    >>> with EventLog(p) as log:
    ...     _ = log.append(0.0, "flood_onset", "hydraulics", x=1.0, y=2.0, payload={"depth_m": 0.3})
    ...     log({"time_s": 60.0, "kind": "report", "actor": "citizen", "payload": {}})
    >>> verify_log(p).ok
    True
    """

    def __init__(self, path: str | Path, *, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = bool(fsync)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._seq = 0
        self._prev = GENESIS
        if self.path.exists() and self.path.stat().st_size > 0:
            res = verify_log(self.path)
            if not res.ok:
                raise CorruptFileError(f"{self.path}: cannot append to a broken log: {res.message}")
            self._seq, self._prev = res.n_records, res.head_sha256
        # kept open for the run: records are appended one by one; close() or `with` ends it
        self._fh = open(self.path, "a", encoding="utf-8", newline="\n")  # noqa: SIM115

    @property
    def n_records(self) -> int:
        """Records written so far (including those found in an existing file)."""
        return self._seq

    @property
    def head_sha256(self) -> str:
        """Digest of the last record (store it in the run manifest)."""
        return self._prev

    def append(self, time_s: float, kind: str, actor: str, *, x: float | None = None,
               y: float | None = None, payload: Mapping[str, Any] | None = None) -> dict:
        """Append one event and return the record written.

        Parameters
        ----------
        time_s : float
            Simulated time of the event in s since the scenario start.
        kind : str
            Event kind, e.g. ``"dispatch"`` (see :data:`EVENT_KINDS`).
        actor : str
            Who acted, e.g. ``"crew:police-03"``, ``"citizen:123"``, ``"dispatch"``.
        x, y : float, optional
            Location in the city CRS (m).
        payload : Mapping, optional
            Anything else, JSON-serialisable (IDs, depth_m, strategy, ...).
        """
        if self._fh.closed:
            raise EventLogError(f"{self.path}: log is closed")
        t = float(time_s)
        if not math.isfinite(t):
            raise EventLogError(f"time_s={time_s} must be finite")
        if not kind or not isinstance(kind, str):
            raise EventLogError(f"kind={kind!r} must be a non-empty string")
        record = {
            "seq": self._seq, "time_s": t, "kind": kind, "actor": str(actor),
            "x": _jsonable(None if x is None else float(x)), "y": _jsonable(None if y is None else float(y)),
            "payload": _jsonable(dict(payload or {})), "prev_sha256": self._prev,
        }
        record["sha256"] = record_digest(record)
        self._fh.write(canonical_json(record) + "\n")
        if self.fsync:
            self._fh.flush()
            os.fsync(self._fh.fileno())
        self._seq += 1
        self._prev = record["sha256"]
        return record

    def __call__(self, event: Mapping[str, Any]) -> None:
        """Sink protocol: ``log({"time_s", "kind", "actor", "x", "y", "payload"})``."""
        self.append(event["time_s"], event["kind"], event.get("actor", ""), x=event.get("x"),
                    y=event.get("y"), payload=event.get("payload"))

    def flush(self) -> None:
        """Flush buffered records to the file."""
        self._fh.flush()

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify_log`.

    Attributes
    ----------
    ok : bool
        True if every record is intact and in order.
    n_records : int
        Records read before the first bad one (all of them when ``ok``).
    head_sha256 : str
        Digest of the last good record.
    bad_line : int or None
        1-based line number of the first bad record.
    bad_seq : int or None
        Sequence number the first bad line *should* have had (its position).
    reason : str
        What is wrong with it ("" when ok).
    """

    ok: bool
    n_records: int
    head_sha256: str
    bad_line: int | None = None
    bad_seq: int | None = None
    reason: str = ""

    @property
    def message(self) -> str:
        """One line for logs and the CLI."""
        if self.ok:
            return f"ok: {self.n_records} records, head {self.head_sha256[:12]}"
        return f"record at line {self.bad_line} (seq {self.bad_seq}): {self.reason}"

    def __bool__(self) -> bool:
        return self.ok


def verify_log(path: str | Path, *, head_sha256: str | None = None,
               n_records: int | None = None) -> VerifyResult:
    """Check a log's chain and name the first bad record.

    Parameters
    ----------
    path : str or Path
        The ``.jsonl`` log.
    head_sha256, n_records : optional
        Expected last digest and record count (from the run manifest); a log
        truncated at the end is only detectable with them.

    Returns
    -------
    VerifyResult
    """
    path = Path(path)
    if not path.exists():
        raise InputFileNotFoundError(f"{path}: event log not found")
    prev, n = GENESIS, 0
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            reason = _check_line(raw, n, prev)
            if reason:
                return VerifyResult(False, n, prev, lineno, n, reason)
            rec = parse_json_strict(raw[:-1])
            prev, n = rec["sha256"], n + 1
    if n_records is not None and n != n_records:
        return VerifyResult(False, n, prev, n + 1, n, f"log has {n} records; manifest says {n_records} (truncated?)")
    if head_sha256 is not None and prev != head_sha256:
        return VerifyResult(False, n, prev, n, n - 1, "last record's sha256 differs from the manifest's head")
    return VerifyResult(True, n, prev)


def _check_line(raw: bytes, seq: int, prev: str) -> str:
    """Why line ``raw`` is not record ``seq`` chained to ``prev`` ("" if it is)."""
    if not raw.endswith(b"\n"):
        return "last line is not terminated (truncated write?)"
    text = raw[:-1]
    try:
        rec = parse_json_strict(text)
    except ValueError as exc:  # also bad UTF-8, NaN, deep nesting, huge numbers
        return f"not valid JSON ({exc.__class__.__name__}: {' '.join(str(exc).split())[:80]})"
    if not isinstance(rec, dict) or "sha256" not in rec:
        return "not an event record (no sha256)"
    try:
        if record_digest(rec) != rec["sha256"]:
            return "content does not match its sha256 (edited)"
        if canonical_json(rec).encode("utf-8") != text:
            return "not in canonical form (edited)"
    except (ValueError, TypeError) as exc:
        return f"cannot be hashed ({exc.__class__.__name__})"
    if rec.get("seq") != seq:
        return f"seq {rec.get('seq')} out of order; expected {seq} (inserted, deleted or reordered)"
    if rec.get("prev_sha256") != prev:
        return "prev_sha256 does not match the previous record (inserted, deleted or reordered)"
    return ""


def iter_log(path: str | Path) -> Iterator[dict]:
    """Yield the records of a log in order (no verification; call :func:`verify_log` first)."""
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    rec = parse_json_strict(line)
                except ValueError as exc:
                    raise CorruptFileError(f"{path}:{lineno}: not a valid event record ({exc})") from None
                if not isinstance(rec, dict):
                    raise CorruptFileError(f"{path}:{lineno}: not a valid event record (not an object)")
                yield rec


def read_log(path: str | Path):
    """The log as a DataFrame (``seq`` index; payload kept as dicts)."""
    import pandas as pd

    cols = ["time_s", "kind", "actor", "x", "y", "payload"]
    rows = list(iter_log(path))
    if not rows:
        return pd.DataFrame(columns=cols).rename_axis("seq")
    df = pd.DataFrame(rows)
    missing = [c for c in ["seq", *cols] if c not in df.columns]
    if missing:
        raise CorruptFileError(f"{path}: event records lack field(s) {missing}")
    return df.set_index("seq")[cols]
