"""The run store: ``runs/<run_id>/`` with ``manifest.json``, Parquet tables and ``events.jsonl``.

A run is written into a temporary folder beside its target
(``.<run_id>.tmp-<random>``) and renamed into place when everything is
written, so a folder named like a run is either complete or absent; its
manifest says ``"status": "complete"``.  The manifest holds the scenario
parameters, the seed, package versions, input hashes, the KPIs, the SHA-256 of
every table file, and the event log's record count and last hash (so a log cut
short at the end is caught, see :func:`twin.eventlog.verify_log`).

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
import os
import platform
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd

from gisdata.errors import CorruptFileError, InputFileNotFoundError, TwinError
from twin.eventlog import EventLog, VerifyResult, verify_log

MANIFEST = "manifest.json"
EVENTS = "events.jsonl"
KPIS = "kpis.json"
FORMAT = "citytwin-run/1"

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
        if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise RunExistsError(f"{self.out}: already exists; runs are never overwritten (choose another --out)")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.out.parent / f".{self.out.name}.tmp-{secrets.token_hex(4)}"
        self.tmp.mkdir()
        self.log = EventLog(self.tmp / EVENTS)
        self.done = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.log.close()
        if not self.done:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def commit(self, tables: Mapping[str, pd.DataFrame], *, params: Mapping[str, Any],
               kpis: Mapping[str, Any] | None = None, inputs: Mapping[str, str] | None = None,
               metadata: Mapping[str, Any] | None = None) -> Path:
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

        Returns
        -------
        Path
            The run folder.
        """
        self.log.close()
        table_info = {}
        for name, df in tables.items():
            path = self.tmp / f"{name}.parquet"
            _prepare(df).to_parquet(path)
            table_info[name] = {"rows": len(df), "sha256": file_sha256(path)}
        if kpis is not None:
            (self.tmp / KPIS).write_text(json.dumps(to_jsonable(kpis), indent=1, sort_keys=True, allow_nan=False))
        manifest = {
            "format": FORMAT, "run_id": self.out.name, "status": "complete",
            "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
            "params": to_jsonable(dict(params)), "seed": to_jsonable(params.get("seed")),
            "versions": package_versions(), "inputs": to_jsonable(dict(inputs or {})),
            "events": {"file": EVENTS, "n_records": self.log.n_records, "head_sha256": self.log.head_sha256,
                       "file_sha256": file_sha256(self.tmp / EVENTS) if (self.tmp / EVENTS).exists() else None},
            "tables": table_info, "metadata": to_jsonable(dict(metadata or {})),
        }
        text = json.dumps(manifest, indent=1, sort_keys=True, allow_nan=False, ensure_ascii=False)
        (self.tmp / MANIFEST).write_text(text, encoding="utf-8")
        if self.out.exists():  # an empty folder the user made for it
            self.out.rmdir()
        os.replace(self.tmp, self.out)
        self.done = True
        return self.out


def read_manifest(run_dir: str | Path) -> dict:
    """The manifest of a complete run.

    Raises
    ------
    NotARunError
        No manifest, unreadable, or not complete.
    """
    run_dir = Path(run_dir)
    path = run_dir / MANIFEST
    if not run_dir.is_dir():
        raise InputFileNotFoundError(f"{run_dir}: run folder not found")
    if not path.is_file():
        raise NotARunError(f"{run_dir}: no {MANIFEST}; not a run folder (or the run did not finish)")
    try:
        man = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFileError(f"{path}: not valid JSON ({exc})") from None
    if man.get("status") != "complete":
        raise NotARunError(f"{run_dir}: status {man.get('status')!r}, not 'complete'")
    return man


def read_table(run_dir: str | Path, name: str) -> pd.DataFrame:
    """One table of a run (``incidents``, ``dispatches``, ``positions``, ...)."""
    path = Path(run_dir) / f"{name}.parquet"
    if not path.is_file():
        raise InputFileNotFoundError(f"{path}: table '{name}' not in this run")
    return pd.read_parquet(path)


def read_kpis(run_dir: str | Path) -> dict:
    """The run's nested KPIs (nulls back to NaN)."""
    def nan(v):
        if isinstance(v, dict):
            return {k: nan(x) for k, x in v.items()}
        return float("nan") if v is None else v

    return nan(json.loads((Path(run_dir) / KPIS).read_text(encoding="utf-8")))


@dataclass(frozen=True)
class RunCheck:
    """Outcome of :func:`verify_run`: the log's verdict plus any table whose file changed."""

    log: VerifyResult
    bad_tables: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.log.ok and not self.bad_tables

    @property
    def message(self) -> str:
        parts = [f"events.jsonl: {self.log.message}"]
        if self.bad_tables:
            parts.append(f"tables changed since the run: {', '.join(self.bad_tables)}")
        return "; ".join(parts)


def verify_run(run_dir: str | Path) -> RunCheck:
    """Verify a run's event log against its manifest (count and last hash) and its table files."""
    run_dir = Path(run_dir)
    man = read_manifest(run_dir)
    ev = man.get("events", {})
    res = verify_log(run_dir / ev.get("file", EVENTS), head_sha256=ev.get("head_sha256"),
                     n_records=ev.get("n_records"))
    bad = tuple(name for name, info in sorted(man.get("tables", {}).items())
                if not (run_dir / f"{name}.parquet").is_file()
                or file_sha256(run_dir / f"{name}.parquet") != info.get("sha256"))
    return RunCheck(res, bad)


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
                                  "coupler": res.metadata})
