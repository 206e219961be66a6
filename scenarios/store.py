"""Scenario runs in the run store (:mod:`twin.runstore`): write, find, list.

A run is stored by :class:`twin.runstore.RunWriter` -- the same layout,
manifest and atomic rename as ``twin simulate`` -- so ``twin compare``,
``twin log verify`` and ``twin replay`` read scenario and sweep runs too::

    <dir>/<run_id>/manifest.json     # status "complete", params, seed, versions, inputs, events, tables
    <dir>/<run_id>/kpis.json         # nested KPIs
    <dir>/<run_id>/<table>.parquet
    <dir>/<run_id>/events.jsonl      # hash-chained event log

A folder named like a run is complete or absent.  A run that failed gets no
folder; a sweep records it in its ``sweep.json`` and results table instead.
Writing a run that is already complete keeps the first one (runs are
deterministic), so an interrupted and resumed sweep never holds a run twice.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from gisdata.errors import InputFileNotFoundError, TwinError
from gisdata.paths import InvalidIdError, check_id, child_path
from twin import runstore

MANIFEST = runstore.MANIFEST
TMP_MARK = ".tmp-"
PREV_MARK = ".prev-"


def write_json_atomic(path: str | Path, data: Mapping[str, Any]) -> Path:
    """Write JSON to ``path`` via a temporary file and ``os.replace`` (readers never see half a file)."""
    import tempfile

    path = Path(path)
    # an unpredictable name created exclusively: a planted symlink is never followed
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}{TMP_MARK}", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(runstore.to_jsonable(dict(data)), fh, indent=1, sort_keys=True, allow_nan=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_manifest(run_dir: str | Path) -> dict | None:
    """The manifest of a complete run, or None (no run, unfinished, unreadable)."""
    try:
        return runstore.read_manifest(run_dir)
    except TwinError:
        return None


def is_complete(run_dir: str | Path) -> bool:
    """True if ``run_dir`` holds a run whose manifest says it is complete."""
    return read_manifest(run_dir) is not None


def write_run(result, runs_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Store a complete :class:`~scenarios.runner.RunResult` as ``runs_dir/<run_id>/``.

    Parameters
    ----------
    result : RunResult
        A complete run (a failed one has nothing to store: raises TwinError).
    runs_dir : str or Path
        The run store directory (created if needed).
    overwrite : bool
        Replace an existing complete run (default: keep it, runs are deterministic).

    Returns
    -------
    Path
        The run folder.
    """
    if not result.ok:
        raise TwinError(f"run {result.run_id} failed ({result.error.splitlines()[0][:200] if result.error else '?'}); "
                        "a failed run is not stored")
    runs_dir = Path(runs_dir)
    final = child_path(runs_dir, result.run_id, "run id")  # never a path outside runs_dir
    old = None
    if final.is_symlink():  # never followed nor trusted: the link goes, whatever it points to stays
        final.unlink()
    if final.exists():
        if is_complete(final) and not overwrite:
            return final
        # an unfinished leftover or the run being replaced; a mark the run writer's cleanup leaves alone
        old = runs_dir / f".{result.run_id}{PREV_MARK}{secrets.token_hex(4)}"
        os.rename(final, old)
    try:
        with runstore.RunWriter(final) as w:
            _replay_log(w.log, result.events, result.manifest.get("metadata", {}).get("event_log", {}))
            m = result.manifest
            path = w.commit(result.tables, params=m.get("params", {}), kpis=result.nested_kpis or result.kpis,
                            inputs=m.get("inputs", {}), metadata=m.get("metadata", {}))
    except runstore.RunExistsError:
        if not is_complete(final):  # another writer got there first (a concurrent resume): keep theirs
            raise
        path = final
    except BaseException:
        if old is not None and not final.exists():
            os.rename(old, final)
            old = None
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return path


def _replay_log(log, events: bytes | None, expected: Mapping[str, Any]) -> None:
    """Append a worker's event log to the run's log; the records (and so the hash chain) come out identical."""
    from twin.eventlog import parse_json_strict

    for line in (events or b"").splitlines():
        r = parse_json_strict(line)
        log.append(r["time_s"], r["kind"], r["actor"], x=r.get("x"), y=r.get("y"), payload=r.get("payload"))
    if expected.get("head_sha256") and (log.head_sha256 != expected["head_sha256"]
                                        or log.n_records != expected.get("n_records")):
        raise TwinError(f"event log of the run does not replay to its own chain ({log.n_records} records, "
                        f"head {log.head_sha256[:12]} vs {expected['head_sha256'][:12]})")


def clean_temporaries(runs_dir: str | Path) -> int:
    """Remove leftovers of interrupted writes (``.<run>.tmp-*``, ``.<run>.old-*``, ``.<run>.prev-*``); returns how many.

    Call it only while holding the folder's lock (a batch does): temporary files are removed too.
    """
    d = Path(runs_dir)
    if not d.is_dir():
        return 0
    from gisdata.paths import clean_stale_staging

    # writers killed mid-run (their staging lock is no longer held); a live writer's folder is kept.
    # Temporary files too: the caller (a batch) holds the sweep's lock, so none of them is live.
    return clean_stale_staging(d, files=True, extra_marks=(PREV_MARK, ".old-"))


def read_flat_kpis(run_dir: str | Path) -> dict:
    """The run's KPIs as one flat level (``response.all:all.response_s.p90``), NaN where undefined."""
    from agents import flatten_kpis

    try:
        return flatten_kpis(runstore.read_kpis(run_dir))
    except FileNotFoundError:
        return {}


def list_runs(directory: str | Path, *, include_missing: bool = False) -> pd.DataFrame:
    """One row per run in ``directory`` and in sweep folders one level down.

    Columns: ``run_id``, ``status``, ``scenario``, ``seed``, ``sweep``, ``wall_time_s``,
    ``created``, ``path``.  Failed sweep runs (no folder) appear with status ``failed``;
    unfinished writes are ignored.  With ``include_missing``, a sweep's planned
    runs that are neither stored complete nor failed (the batch was
    interrupted or killed) appear with status ``missing``.  Run ids read from
    ``sweep.json`` that are not plain names are skipped.
    """
    d = Path(directory)
    if not d.is_dir():
        raise InputFileNotFoundError(f"{d}: run directory not found")
    rows = []

    def row(p: Path, m: dict, sweep: str) -> dict:
        meta = m.get("metadata", {})
        return {"run_id": m.get("run_id", p.name), "status": m.get("status", "?"),
                "scenario": (m.get("params") or {}).get("scenario", ""), "seed": m.get("seed"), "sweep": sweep,
                "wall_time_s": meta.get("wall_time_s"), "created": m.get("created_utc", ""), "path": str(p)}

    def visit(folder: Path, sweep: str) -> None:
        failed, planned = {}, []
        if sweep:
            from twin.eventlog import parse_json_strict

            try:
                data = parse_json_strict((folder / "sweep.json").read_bytes())
                failed = data.get("failed", {}) if isinstance(data, dict) else {}
                planned = [r.get("run_id") for r in data.get("runs", []) if isinstance(r, dict)]
            except (OSError, ValueError, AttributeError, TypeError):
                failed, planned = {}, []
            failed = {rid: v for rid, v in failed.items() if _plain_id(rid)} if isinstance(failed, dict) else {}
            planned = [rid for rid in planned if _plain_id(rid)]
        stored = set()
        for p in sorted(folder.iterdir()):
            if not p.is_dir() or p.name.startswith("."):
                continue
            m = read_manifest(p)
            if m is not None:
                rows.append(row(p, m, sweep))
                stored.add(p.name)
            elif (p / "sweep.json").exists() and not sweep:
                visit(p, p.name)
        for rid in failed:
            rows.append({"run_id": rid, "status": "failed", "scenario": "", "seed": None, "sweep": sweep,
                         "wall_time_s": None, "created": "", "path": str(folder / rid)})
        if include_missing:
            for rid in planned:
                if rid not in stored and rid not in failed:
                    rows.append({"run_id": rid, "status": "missing", "scenario": "", "seed": None, "sweep": sweep,
                                 "wall_time_s": None, "created": "", "path": str(folder / rid)})

    is_sweep = (d / "sweep.json").exists()
    visit(d, d.name if is_sweep else "")
    cols = ["run_id", "status", "scenario", "seed", "sweep", "wall_time_s", "created", "path"]
    return pd.DataFrame(rows, columns=cols)


def _plain_id(value) -> bool:
    try:
        check_id(value)
    except InvalidIdError:
        return False
    return True


def read_run_table(run_dir: str | Path, name: str) -> pd.DataFrame:
    """One table of a stored run."""
    return runstore.read_table(run_dir, name)


def nan_to_none(v):
    return None if isinstance(v, float) and math.isnan(v) else v
