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

KINDS = ("simulation", "flood_event", "forecast", "comparison", "sweep")
"""What a stored run is (the manifest's ``kind``): a coupled simulation (``twin simulate``, ``twin run``, a
sweep's run), a flood event, a forecast, a strategy comparison (Dispatch lab), or a sweep (a folder with
``sweep.json``).  A manifest without ``kind`` was written before runs carried one: a simulation."""

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
               metadata: Mapping[str, Any] | None = None, depths=None, kind: str | None = None,
               files: Mapping[str, bytes | str] | None = None) -> Path:
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
        kind : str, optional
            What the run is (:data:`KINDS`); default ``params["kind"]``, else ``"simulation"``.
        files : Mapping[str, bytes or str], optional
            Other files of the run by plain name (``summary.json``, ``plan.html``), hashed like the tables.

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
        kind = kind or params.get("kind") or "simulation"
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r} unknown; expected one of {list(KINDS)}")
        extra, files = dict(files or {}), {}
        for name, content in extra.items():
            path = child_path(self.tmp, name, "file name")
            if name in (MANIFEST, EVENTS, KPIS, SIGNATURE) or name.endswith(".parquet"):
                raise ValueError(f"file name {name!r} is reserved in a run folder")
            path.write_bytes(content.encode("utf-8") if isinstance(content, str) else bytes(content))
            files[name] = {"sha256": file_sha256(path)}
        if kpis is not None:
            (self.tmp / KPIS).write_text(json.dumps(to_jsonable(kpis), indent=1, sort_keys=True, allow_nan=False))
            files[KPIS] = {"sha256": file_sha256(self.tmp / KPIS)}
        if depths is not None:
            from hydraulics.depth_series import FILE_NAME

            files[FILE_NAME] = {"sha256": file_sha256(depths.write(self.tmp / FILE_NAME))}
        manifest = {
            "format": FORMAT, "run_id": self.out.name, "status": "complete", "kind": kind,
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "params": to_jsonable({**dict(params), "kind": kind}), "seed": to_jsonable(params.get("seed")),
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


# ----------------------------------------------------------------------------- runs the workbench stores


def new_run_id(prefix: str, *, now: datetime | None = None) -> str:
    """A fresh run id: ``<prefix>-<UTC yyyymmdd-hhmmss>-<4 hex>`` (sortable by time, unique in practice).

    Examples
    --------
    >>> new_run_id("flood", now=datetime(2025, 7, 1, 8, 30, tzinfo=UTC))[:21]
    'flood-20250701-083000'
    """
    import secrets

    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return check_id(f"{prefix}-{stamp}-{secrets.token_hex(2)}", "run id")


def write_result_run(out: str | Path, *, kind: str, tables: Mapping[str, pd.DataFrame], params: Mapping[str, Any],
                     files: Mapping[str, bytes | str] | None = None, kpis: Mapping[str, Any] | None = None,
                     inputs: Mapping[str, str] | None = None, metadata: Mapping[str, Any] | None = None,
                     depths=None, events: list[tuple] = ()) -> Path:
    """Store a run the workbench made (flood event, forecast, comparison) atomically, like every run.

    Parameters
    ----------
    out : path
        The run folder (its name is the run id; see :func:`new_run_id`).
    kind : str
        One of :data:`KINDS`.
    tables, params, files, kpis, inputs, metadata, depths
        As :meth:`RunWriter.commit`.
    events : list of (time_s, kind, actor, payload)
        Events for the run's log (e.g. the road closures of a flood event).
    """
    with RunWriter(out) as w:
        for t_s, ev_kind, actor, payload in events:
            w.log.append(t_s, ev_kind, actor, payload=payload)
        return w.commit(tables, params=params, kpis=kpis, inputs=inputs, metadata=metadata, depths=depths,
                        kind=kind, files=files)


def write_flood_event_run(out: str | Path, result, *, params: Mapping[str, Any], city=None) -> Path:
    """Store a :class:`twin.flood_event.FloodEventResult` as a run of kind ``flood_event``.

    The folder holds what ``twin swmm run --city --out`` writes, as run-store files:
    ``depth_series.tif`` (the street water over time, which Replay and ``twin render``
    draw), ``summary.json`` (headline figures, mass balance, run metadata) and the
    tables ``roads`` (effective carriageway depth and closure state), ``risk_points``,
    ``nodes``, ``flood_summary``, ``buildings``, ``node_depth`` (every node's depth at
    the report times), ``mass_balance`` and ``rain``.  The log holds the event's
    closures (one ``road_closure`` at the end, the state Replay shows).

    Parameters
    ----------
    out : path
        The run folder.
    result : FloodEventResult
        The event.
    params : Mapping
        What was asked: ``city``, ``storm`` (its parameters), ``drain_time_h``; ``hours``
        (the simulated length) is added.
    city : CityTwin, optional
        Hashed into the manifest's inputs.
    """
    drain_h = float(result.metadata.get("drain_time_h", params.get("drain_time_h", 0.0)) or 0.0)
    hours = float(result.rain.duration_s) / 3600.0 + drain_h
    if result.depths is not None and len(result.depths.times_s):
        hours = max(hours, float(result.depths.times_s[-1]) / 3600.0)
    roads = result.roads
    closed = {str(r): str(s) for r, s in roads["status"].astype(str).items() if s != "open"}
    tables = {"roads": roads, "nodes": result.nodes, "flood_summary": result.flood_summary,
              "buildings": result.buildings, "node_depth": result.node_depth_m,
              "rain": result.rain.intensity_mm_h}
    if result.risk_points is not None:
        tables["risk_points"] = result.risk_points
    if result.mass_balance is not None:
        tables["mass_balance"] = result.mass_balance
    summary = {"city": result.city_name, "summary": dict(result.summary), "continuity": dict(result.continuity),
               "metadata": dict(result.metadata)}
    inputs = {"city_sha256": city_sha256(city)} if city is not None else {}
    if result.metadata.get("input_sha256"):
        inputs["swmm_inp_sha256"] = str(result.metadata["input_sha256"])
    return write_result_run(
        out, kind="flood_event", tables=tables, params={**dict(params), "hours": hours, "seed": None},
        files={"summary.json": json.dumps(to_jsonable(summary), indent=1, sort_keys=True, ensure_ascii=False)},
        kpis=dict(result.summary), inputs=inputs, metadata={"city_name": result.city_name}, depths=result.depths,
        events=[(0.0, "note", "flood_event", {"rain": str(getattr(result.rain, "label", ""))}),
                (hours * 3600.0, "road_closure", "flood_event", {"roads": closed, "at": "event maximum"})])


def run_kind(manifest: Mapping[str, Any]) -> str:
    """The manifest's ``kind``; a manifest written before runs carried one is a simulation."""
    kind = manifest.get("kind") or (manifest.get("params") or {}).get("kind") or "simulation"
    return kind if kind in KINDS else "simulation"


STORED_RUN_COLUMNS = ["run_id", "kind", "city", "storm", "strategy", "seed", "created", "path"]


def list_stored_runs(root: str | Path) -> pd.DataFrame:
    """Every run and sweep directly under ``root``, newest first, with what it was run with.

    Runs are folders with a complete manifest (any :data:`KINDS`); sweeps are folders
    with a ``sweep.json`` (their runs are inside them).  Unfinished or unreadable
    folders are skipped.

    Returns
    -------
    DataFrame
        Columns :data:`STORED_RUN_COLUMNS`: ``storm`` and ``strategy`` as short text
        (empty when none), ``created`` as ISO UTC text.
    """
    root = Path(root)
    rows = []
    if root.is_dir():
        for p in root.iterdir():
            if not p.is_dir() or p.name.startswith(".") or p.is_symlink():
                continue
            try:
                check_id(p.name, "run id")
            except InvalidIdError:
                continue
            row = _sweep_row(p) if (p / "sweep.json").is_file() else _run_row(p)
            if row is not None:
                rows.append(row)
    df = pd.DataFrame(rows, columns=STORED_RUN_COLUMNS)
    return df.sort_values(["created", "run_id"], ascending=False, kind="stable").reset_index(drop=True)


def find_stored_run(root: str | Path, run_id: str) -> Path:
    """The run or sweep ``run_id`` under ``root`` (the id is checked before it becomes a path).

    Raises
    ------
    InvalidIdError
        ``run_id`` is not a plain name.
    NotARunError
        No complete run or sweep of that id.
    """
    path = child_path(root, run_id, "run id")
    if path.is_symlink() or not ((path / "sweep.json").is_file() or (path / MANIFEST).is_file()):
        raise NotARunError(f"run '{run_id}' not found in the run store")
    if (path / MANIFEST).is_file():
        read_manifest(path)  # complete, or NotARunError
    return path


def storm_text(storm: Any) -> str:
    """A short description of a run's rain parameters (``chicago 100 yr 180 min``), ``""`` for none.

    Examples
    --------
    >>> storm_text({"kind": "chicago", "return_period_yr": 100, "duration_min": 180})
    'chicago 100 yr 180 min'
    >>> storm_text(None)
    ''
    """
    if not isinstance(storm, Mapping) or not storm:
        return ""
    parts = [str(storm.get("kind") or storm.get("method") or "")]
    rp = storm.get("return_period_yr")
    if rp not in (None, ""):
        parts.append(f"{float(rp):g} yr")
    if storm.get("intensity_mm_h") not in (None, ""):
        parts.append(f"{float(storm['intensity_mm_h']):g} mm/h")
    if storm.get("depth_mm") not in (None, "") and rp in (None, ""):
        parts.append(f"{float(storm['depth_mm']):g} mm")
    minutes = storm.get("duration_min")
    if minutes in (None, "") and storm.get("duration_s") not in (None, ""):
        minutes = float(storm["duration_s"]) / 60.0
    if minutes not in (None, ""):
        parts.append(f"{float(minutes):g} min")
    if storm.get("file"):
        parts.append(str(storm["file"]))
    return " ".join(p for p in parts if p)


def _city_text(city: Any) -> str:
    return Path(str(city)).name if city else ""  # a file's name, never the server's folders


def _run_row(p: Path) -> dict | None:
    try:
        man = read_manifest(p)
    except (TwinError, OSError):
        return None
    params = man.get("params") or {}
    strategy = params.get("strategy") or params.get("strategies") or ""
    if isinstance(strategy, (list, tuple)):
        strategy = ", ".join(map(str, strategy))
    seed = params.get("seed")
    if seed is None and params.get("seeds"):
        seeds = list(params["seeds"])
        seed = f"{seeds[0]}..{seeds[-1]}" if len(seeds) > 1 else seeds[0]
    return {"run_id": p.name, "kind": run_kind(man), "city": _city_text(params.get("city")),
            "storm": storm_text(params.get("storm")), "strategy": str(strategy),
            "seed": "" if seed is None else str(seed), "created": str(man.get("created_utc", "")), "path": str(p)}


def _sweep_row(p: Path) -> dict | None:
    try:
        data = parse_json_strict((p / "sweep.json").read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    sc = data.get("scenario") if isinstance(data.get("scenario"), Mapping) else {}
    rain = sc.get("rain") if isinstance(sc.get("rain"), Mapping) else {}
    storm = None if rain.get("kind") in (None, "none") else {
        "kind": rain.get("method") or rain.get("kind"), "return_period_yr": rain.get("return_period_yr"),
        "duration_min": rain.get("duration_min")}
    swept = (data.get("sweep") or {}).get("parameters") if isinstance(data.get("sweep"), Mapping) else None
    strategies = (swept or {}).get("dispatch.strategy") if isinstance(swept, Mapping) else None
    strategy = ", ".join(map(str, strategies)) if isinstance(strategies, list) else \
        str((sc.get("dispatch") or {}).get("strategy", "")) if isinstance(sc.get("dispatch"), Mapping) else ""
    seeds = (data.get("sweep") or {}).get("seeds") if isinstance(data.get("sweep"), Mapping) else None
    seed = ""
    if isinstance(seeds, list) and seeds:
        seed = f"{seeds[0]}..{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
    city = (sc.get("city") or {}).get("source") if isinstance(sc.get("city"), Mapping) else ""
    return {"run_id": p.name, "kind": "sweep", "city": _city_text(city), "storm": storm_text(storm),
            "strategy": strategy, "seed": seed, "created": str(data.get("created", "")), "path": str(p)}
