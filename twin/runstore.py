"""The run store: ``runs/<run_id>/`` with ``manifest.json``, Parquet tables and ``events.jsonl``.

A run is written into a staging folder beside its target
(:class:`gisdata.paths.StagedDir`: ``.<run_id>.tmp-<random>``) and moved into
place when everything is written, so a folder named like a run is either
complete or absent (an existing empty folder is filled, manifest last, and
keeps its permissions); its manifest says ``"status": "complete"``.  The
manifest holds the scenario parameters, the seed, package versions, input
hashes, the SHA-256 of every file of the run (tables, ``kpis.json``, the event
log) and the event log's record count and last hash (so a log cut short at the
end is caught, see :func:`twin.eventlog.verify_log`), and ``manifest_sha256``,
the digest of its own canonical JSON without that field: the run's *head*,
which :mod:`twin.evidence` signs or anchors.

Every name a manifest holds (run id, table names, the event-log pointer) is
checked with :func:`gisdata.paths.check_id` before it becomes a path, and
:func:`verify_run` checks every file in the run folder.

Examples
--------
>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "r1"
>>> with RunWriter(out) as w:
...     _ = w.log.append(0.0, "note", "test")
...     _ = w.commit({"t": pd.DataFrame({"a": [1.0]})}, params={"seed": 1})
>>> read_manifest(out)["status"], verify_run(out).ok
('complete', True)
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from gisdata.errors import CorruptFileError, InputFileNotFoundError, TwinError
from gisdata.paths import InvalidIdError, StagedDir, check_id, child_path
from twin.eventlog import EventLog, VerifyResult, canonical_json, parse_json_strict, verify_log

MANIFEST = "manifest.json"
EVENTS = "events.jsonl"
KPIS = "kpis.json"
FORMAT = "citytwin-run/1"
SIGNATURE = "manifest.sig"
"""Detached signature of the run head (:mod:`twin.evidence`); the one file the manifest cannot list."""

VERSION_PACKAGES = ("citytwin", "numpy", "pandas", "pyarrow", "simpy", "mesa", "scipy", "geopandas",
                    "swmm-toolkit", "shapely")


class RunExistsError(TwinError, FileExistsError):
    """The run folder already exists (runs are never overwritten)."""


class NotARunError(TwinError, FileNotFoundError):
    """A folder is not a complete run (no manifest, or its status is not ``complete``)."""


def to_jsonable(value: Any) -> Any:
    """Strict-JSON value: NaN and infinities become None, numpy types Python ones.

    Examples
    --------
    >>> to_jsonable({"a": float("nan"), "b": np.int64(3), "c": [np.float32(1.5)]})
    {'a': None, 'b': 3, 'c': [1.5]}
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages a run depends on."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in VERSION_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def city_sha256(city) -> str:
    """A digest of a city's content: every layer's IDs, attributes and geometry (WKB), and the DEM."""
    h = hashlib.sha256(str(getattr(city, "crs", "")).encode())
    for name in ("nodes", "conduits", "subcatchments", "roads", "buildings", "depots", "sensors", "vendor_sites"):
        layer = getattr(city, name, None)
        if layer is None:
            continue
        h.update(name.encode())
        h.update("\x1f".join(map(str, layer.index)).encode())
        attrs = layer.drop(columns=[layer.geometry.name], errors="ignore") if hasattr(layer, "geometry") else layer
        h.update(pd.util.hash_pandas_object(attrs.astype(str), index=False).to_numpy().tobytes())
        if hasattr(layer, "geometry"):
            for wkb in layer.geometry.to_wkb():
                h.update(wkb)
    dem = getattr(city, "dem", None)
    if dem is not None and hasattr(dem, "values"):
        h.update(np.ascontiguousarray(dem.values).tobytes())
    return h.hexdigest()


def _prepare(df: pd.DataFrame) -> pd.DataFrame:
    """A table Parquet can hold: categoricals as strings, mixed object columns as strings."""
    out = df.copy()
    for c in out.columns:
        s = out[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            out[c] = s.astype(str)
        elif s.dtype == object:
            kinds = {type(v) for v in s.dropna()}
            if kinds - {str}:
                out[c] = s.map(lambda v: v if v is None or isinstance(v, str) else json.dumps(to_jsonable(v)))
    return out


class RunWriter:
    """Write one run atomically: ``with RunWriter(out) as w: ...; w.commit(tables, ...)``.

    Parameters
    ----------
    out : str or Path
        The run folder to create (its name is the run ID).  It must not exist,
        or be an empty folder.

    Attributes
    ----------
    log : EventLog
        The run's event log (an event sink), written inside the temporary folder.
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        check_id(self.out.name, "run id (the run folder's name)")
        if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise RunExistsError(f"{self.out}: already exists; runs are never overwritten (choose another --out)")
        self._stage = StagedDir(self.out, "run folder")
        self.tmp = self._stage.path
        self.log = EventLog(self.tmp / EVENTS)
        self.done = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.log.close()
        if not self.done:
            self._stage.abort()

    def commit(self, tables: Mapping[str, pd.DataFrame], *, params: Mapping[str, Any],
               kpis: Mapping[str, Any] | None = None, inputs: Mapping[str, str] | None = None,
               metadata: Mapping[str, Any] | None = None, depths=None) -> Path:
        """Write the tables, KPIs and manifest, then rename the folder into place.

        Parameters
        ----------
        tables : Mapping[str, DataFrame]
            Written as ``<name>.parquet``.
        params : Mapping
            Scenario parameters (city, hours, strategy, seed, storm, ...).
        kpis : Mapping, optional
            Nested KPIs (NaN stored as null).
        inputs : Mapping[str, str], optional
            Input hashes (city, SWMM input, rain).
        metadata : Mapping, optional
            Anything else (hydraulics metadata, agent sizes).
        depths : DepthSeries, optional
            The street water depth over time, written as ``depth_series.tif`` (hashed like the tables).

        Returns
        -------
        Path
            The run folder.
        """
        self.log.close()
        table_info = {}
        for name, df in tables.items():
            path = child_path(self.tmp, name, "table name", suffix=".parquet")
            _prepare(df).to_parquet(path)
            table_info[name] = {"rows": len(df), "sha256": file_sha256(path)}
        files = {}
        if kpis is not None:
            (self.tmp / KPIS).write_text(json.dumps(to_jsonable(kpis), indent=1, sort_keys=True, allow_nan=False))
            files[KPIS] = {"sha256": file_sha256(self.tmp / KPIS)}
        if depths is not None:
            from hydraulics.depth_series import FILE_NAME

            files[FILE_NAME] = {"sha256": file_sha256(depths.write(self.tmp / FILE_NAME))}
        manifest = {
            "format": FORMAT, "run_id": self.out.name, "status": "complete",
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "params": to_jsonable(dict(params)), "seed": to_jsonable(params.get("seed")),
            "versions": package_versions(), "inputs": to_jsonable(dict(inputs or {})),
            "events": {"file": EVENTS, "n_records": self.log.n_records, "head_sha256": self.log.head_sha256,
                       "file_sha256": file_sha256(self.tmp / EVENTS) if (self.tmp / EVENTS).exists() else None},
            "tables": table_info, "files": files, "metadata": to_jsonable(dict(metadata or {})),
        }
        manifest["manifest_sha256"] = manifest_digest(manifest)
        text = json.dumps(manifest, indent=1, sort_keys=True, allow_nan=False, ensure_ascii=False)
        (self.tmp / MANIFEST).write_text(text, encoding="utf-8")
        self._stage.commit(last=(MANIFEST,))  # the manifest, which says "complete", arrives last
        self.done = True
        return self.out


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """The run head: SHA-256 of the manifest's canonical JSON without its ``manifest_sha256`` field."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def _load_manifest(run_dir: Path) -> dict:
    """The parsed manifest of ``run_dir``, whatever its status; a malformed one raises CorruptFileError."""
    path = run_dir / MANIFEST
    if not run_dir.is_dir():
        raise InputFileNotFoundError(f"{run_dir}: run folder not found")
    if path.is_symlink() or not path.is_file():
        raise NotARunError(f"{run_dir}: no {MANIFEST}; not a run folder (or the run did not finish)")
    try:
        man = parse_json_strict(path.read_bytes())
    except ValueError as exc:
        raise CorruptFileError(f"{path}: not a valid manifest ({exc})") from None
    if not isinstance(man, dict):
        raise CorruptFileError(f"{path}: not a valid manifest (a JSON object was expected)")
    for key, kind in (("params", dict), ("events", dict), ("tables", dict), ("files", dict), ("metadata", dict)):
        if key in man and not isinstance(man[key], kind):
            raise CorruptFileError(f"{path}: field '{key}' must be a JSON object")
    for name, info in man.get("tables", {}).items():
        check_id(name, "table name", source=path)
        if not isinstance(info, dict):
            raise CorruptFileError(f"{path}: tables.{name} must be a JSON object")
    for name in man.get("files", {}):
        check_id(name, "file name", source=path)
    if "file" in man.get("events", {}):
        check_id(man["events"]["file"], "events.file", source=path)
    return man


def read_manifest(run_dir: str | Path) -> dict:
    """The manifest of a complete run.

    Raises
    ------
    NotARunError
        No manifest, or not complete.
    CorruptFileError
        Not valid JSON (NaN, nested too deep), not an object, a field of the
        wrong type, or no ``params``, ``events`` or ``tables``.
    InvalidIdError
        A table name or the event-log pointer is not a plain name inside the run.
    """
    run_dir = Path(run_dir)
    man = _load_manifest(run_dir)
    if man.get("status") != "complete":
        raise NotARunError(f"{run_dir}: status {man.get('status')!r}, not 'complete'")
    missing = [k for k in ("params", "events", "tables") if k not in man]
    if missing:
        raise CorruptFileError(f"{run_dir / MANIFEST}: not a valid manifest (no {', '.join(missing)})")
    return man


def events_path(run_dir: str | Path, manifest: Mapping[str, Any]) -> Path:
    """The event log a manifest points to: a plain file name inside the run (checked)."""
    ev = manifest.get("events") if isinstance(manifest.get("events"), Mapping) else {}
    return child_path(run_dir, ev.get("file", EVENTS), "events.file", source=Path(run_dir) / MANIFEST)


def read_table(run_dir: str | Path, name: str) -> pd.DataFrame:
    """One table of a run (``incidents``, ``dispatches``, ``positions``, ...).

    Raises
    ------
    InvalidIdError
        ``name`` is not a plain table name.
    InputFileNotFoundError
        The run has no such table.
    CorruptFileError
        The file is not a readable Parquet table.
    """
    path = child_path(run_dir, name, "table name", suffix=".parquet")
    if not path.is_file():
        raise InputFileNotFoundError(f"{path}: table '{name}' not in this run")
    from pyarrow import ArrowException

    try:
        return pd.read_parquet(path)
    except (ArrowException, OSError, ValueError, TypeError, KeyError, IndexError, NotImplementedError) as exc:
        # every pyarrow error is an ArrowException (ArrowInvalid is also a ValueError, a truncated file an OSError)
        raise CorruptFileError(f"{path}: not a readable Parquet table ({type(exc).__name__}: "
                               f"{' '.join(str(exc).split())[:200]})") from None


def read_kpis(run_dir: str | Path) -> dict:
    """The run's nested KPIs (nulls back to NaN).

    Raises
    ------
    CorruptFileError
        ``kpis.json`` is not a JSON object.
    """
    def nan(v):
        if isinstance(v, dict):
            return {k: nan(x) for k, x in v.items()}
        return float("nan") if v is None else v

    path = Path(run_dir) / KPIS
    try:
        data = parse_json_strict(path.read_bytes())
    except ValueError as exc:
        raise CorruptFileError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CorruptFileError(f"{path}: a JSON object was expected")
    return nan(data)


@dataclass(frozen=True)
class RunCheck:
    """Outcome of :func:`verify_run`.

    Attributes
    ----------
    log : VerifyResult or None
        The event log's verdict (None when the log could not be checked at all).
    bad_tables : tuple of str
        Tables whose file is missing or changed.
    problems : tuple of str
        Everything else that is wrong: the manifest edited, a file changed,
        missing or not listed, a pointer outside the run.
    head_sha256 : str or None
        The run head (the manifest's digest) when the manifest is intact.
    """

    log: VerifyResult | None
    bad_tables: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    head_sha256: str | None = None

    @property
    def ok(self) -> bool:
        return self.log is not None and self.log.ok and not self.bad_tables and not self.problems

    @property
    def message(self) -> str:
        parts = []
        if self.log is not None:
            parts.append(f"events.jsonl: {self.log.message}")
        if self.bad_tables:
            parts.append(f"tables changed since the run: {', '.join(self.bad_tables)}")
        parts.extend(self.problems)
        if self.ok and self.head_sha256:
            parts.append(f"run head {self.head_sha256[:12]}")
        return "; ".join(parts)


def _file_problem(run_dir: Path, name: str, want: object) -> str:
    """Why file ``name`` of the run does not match digest ``want`` ("" if it does)."""
    path = run_dir / name
    if path.is_symlink():
        return f"{name}: is a symbolic link (points outside the run?)"
    if not path.is_file():
        return f"{name}: missing"
    if file_sha256(path) != want:
        return f"{name}: changed since the run"
    return ""


def verify_run(run_dir: str | Path) -> RunCheck:
    """Check every file of a run against its manifest, and the manifest against its own digest.

    Checked: the manifest parses and its ``manifest_sha256`` matches its
    content; the event log (chain, record count, last hash, file digest); each
    table's and each listed file's digest (``kpis.json``); that every pointer
    is a plain name inside the run; and that the folder holds no file the
    manifest does not list (besides ``manifest.json`` and ``manifest.sig``).
    A tampered run gives a result with ``ok`` False and the reasons, never an
    exception.

    Raises
    ------
    InputFileNotFoundError
        ``run_dir`` is not a folder.
    NotARunError
        It has no manifest.
    """
    run_dir = Path(run_dir)
    try:
        man = _load_manifest(run_dir)
    except (CorruptFileError, InvalidIdError) as exc:
        return RunCheck(None, problems=(f"{MANIFEST}: {exc}",))
    problems: list[str] = []
    if man.get("status") != "complete":
        problems.append(f"{MANIFEST}: status {man.get('status')!r}, not 'complete'")
    want = man.get("manifest_sha256")
    head = manifest_digest(man)
    if not isinstance(want, str):
        problems.append(f"{MANIFEST}: has no manifest_sha256 (edited, or written before runs carried one); "
                        "its parameters cannot be checked")
        head = None
    elif want != head:
        problems.append(f"{MANIFEST}: content does not match its manifest_sha256 (edited since the run)")
        head = None
    ev = man.get("events")
    log = None
    covered = {MANIFEST, SIGNATURE}
    if not isinstance(ev, dict) or not {"file", "n_records", "head_sha256", "file_sha256"} <= set(ev):
        problems.append(f"{MANIFEST}: no complete 'events' entry (file, n_records, head_sha256, file_sha256)")
    else:
        name = ev["file"]
        covered.add(name)
        path = run_dir / name
        if path.is_symlink() or not path.is_file():
            problems.append(f"{name}: missing or not a regular file inside the run")
        else:
            n = ev["n_records"] if isinstance(ev["n_records"], int) else -1
            log = verify_log(path, head_sha256=str(ev["head_sha256"]), n_records=n)
            why = _file_problem(run_dir, name, ev["file_sha256"])
            if why and log.ok:
                problems.append(why)
    bad = []
    for name, info in sorted(man.get("tables", {}).items()):
        covered.add(f"{name}.parquet")
        if _file_problem(run_dir, f"{name}.parquet", info.get("sha256")):
            bad.append(name)
    for name, info in sorted(man.get("files", {}).items()):
        covered.add(name)
        why = _file_problem(run_dir, name, info.get("sha256") if isinstance(info, dict) else None)
        if why:
            problems.append(why)
    extra = sorted(p.name for p in run_dir.iterdir() if p.name not in covered)
    if extra:
        problems.append(f"not in the manifest (added since the run, or not covered): {', '.join(extra[:5])}"
                        + (f" and {len(extra) - 5} more" if len(extra) > 5 else ""))
    return RunCheck(log, tuple(bad), tuple(problems), head)


def raise_if_tampered(run_dirs, exc: BaseException, what: str = "cannot be read") -> None:
    """After ``exc`` while reading runs: raise a one-line :class:`CorruptFileError` if a run changed since it was written.

    A run whose files no longer match its manifest is the data's fault (a
    user error); when every run is intact, ``exc`` is a bug of ours and the
    caller re-raises it.

    Parameters
    ----------
    run_dirs : iterable of path
        The runs read.
    exc : BaseException
        What went wrong.
    what : str
        What could not be done, for the message.
    """
    for run_dir in run_dirs:
        try:
            check = verify_run(run_dir)
        except TwinError:
            continue
        if not check.ok:
            raise CorruptFileError(f"{run_dir}: {what} ({type(exc).__name__}: {' '.join(str(exc).split())[:120]}); "
                                   f"its files changed since the run: {check.message}") from None


def list_runs(root: str | Path) -> list[Path]:
    """Complete runs directly under ``root`` (newest first)."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST).is_file()]
    return sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)


def write_coupled_run(out: str | Path, run, *, params: Mapping[str, Any], city=None,
                      progress=None) -> Path:
    """Run ``run(event_sink, progress)`` -> :class:`twin.coupler.CoupledResult` and store it atomically.

    Parameters
    ----------
    out : path
        The run folder.
    run : callable
        ``run(event_sink=..., progress=...)`` returning a CoupledResult.
    params : Mapping
        Scenario parameters for the manifest.
    city : CityTwin, optional
        Hashed into the manifest's inputs.
    """
    with RunWriter(out) as w:
        res = run(event_sink=w.log, progress=progress)
        inputs = {}
        if city is not None:
            inputs["city_sha256"] = city_sha256(city)
        if res.hydraulics.get("input_sha256"):
            inputs["swmm_inp_sha256"] = res.hydraulics["input_sha256"]
        return w.commit(res.tables(), params=params, kpis=res.kpis, inputs=inputs,
                        metadata={"agents": res.agents.metadata, "hydraulics": res.hydraulics,
                                  "coupler": res.metadata}, depths=getattr(res, "depths", None))
