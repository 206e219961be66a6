"""Scenarios: TOML scenario files, their schema, the scenario runner and batch sweeps.

==========================  ==============================================================
module                      content
==========================  ==============================================================
:mod:`scenarios.schema`     the one pydantic schema of scenario files; :func:`load_scenario`
:mod:`scenarios.runner`     :func:`run_scenario` ``(spec) -> RunResult``, a plain function
:mod:`scenarios.store`      runs/<run_id>/: manifest.json, parquet tables, events.jsonl
:mod:`scenarios.sweep`      ``[sweep]``: grid or Latin hypercube x seeds -> planned runs
:mod:`scenarios.batch`      :func:`run_batch`: local spawn pool or Dask, streaming, resume
==========================  ==============================================================

Names are imported lazily, so ``import scenarios`` is cheap (the CLI imports it).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ScenarioSpec": "schema", "ScenarioError": "schema", "ScenarioFileNotFoundError": "schema",
    "load_scenario": "schema", "validate_scenario": "schema", "scenario_hash": "schema",
    "RunResult": "runner", "run_scenario": "runner", "default_run_id": "runner", "load_scenario_city": "runner",
    "write_run": "store", "read_manifest": "store", "is_complete": "store", "list_runs": "store",
    "read_run_table": "store",
    "plan_sweep": "sweep", "PlannedRun": "sweep",
    "run_batch": "batch", "BatchResult": "batch", "BatchError": "batch", "SchedulerUnreachableError": "batch",
    "results_table": "batch", "connect_scheduler": "batch", "sweep_state": "batch",
}

__all__ = [
    "BatchError", "BatchResult", "PlannedRun", "RunResult", "ScenarioError", "ScenarioFileNotFoundError",
    "ScenarioSpec", "SchedulerUnreachableError", "connect_scheduler", "default_run_id", "is_complete", "list_runs",
    "load_scenario", "load_scenario_city", "plan_sweep", "read_manifest", "read_run_table", "results_table",
    "run_batch", "run_scenario", "scenario_hash", "sweep_state", "validate_scenario", "write_run",
]


def __getattr__(name: str):
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'scenarios' has no attribute {name!r}")
    return getattr(importlib.import_module(f"scenarios.{mod}"), name)
