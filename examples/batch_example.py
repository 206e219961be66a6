# %% [markdown]
# # Batch simulations with CityTwin scenarios
#
# A scenario is a TOML file validated by one schema; `run_scenario(spec)` is a
# plain function of it; a sweep is a scenario with `[sweep]`, run on local
# processes or on a Dask cluster, streaming every finished run into a run store.
#
# Run as a script from the repository root (`python examples/batch_example.py`)
# or cell by cell in Jupyter / VS Code.  Each cell is guarded by
# `if __name__ == "__main__":` because the local pool starts its workers with
# `spawn`, which re-imports this file in every worker.
#
# Set `CITYTWIN_SCHEDULER=tcp://HOST:8786` to run the sweep on a Dask cluster
# (start it with `dask scheduler` and `dask worker tcp://HOST:8786 --nthreads 1`).

# %%
import os
from pathlib import Path

import pandas as pd

from scenarios import (
    list_runs,
    load_scenario,
    run_batch,
    run_scenario,
    validate_scenario,
    write_run,
)

OUT = Path(os.environ.get("CITYTWIN_EXAMPLE_OUT", "runs/example"))

# %% [markdown]
# ## 1. One scenario, from data
#
# Quantities may carry units ("90 min", "0.3 m"); a typo gets the closest valid key.

# %%
if __name__ == "__main__":
    spec = validate_scenario({
        "scenario": {"name": "example_storm", "seed": 1},
        "city": {"source": "small"},
        "period": {"hours": 10},
        "rain": {"kind": "design", "method": "chicago", "idf": "beijing", "return_period_yr": 50,
                 "duration_min": "1 h", "start_h": 7.5},
        "population": {"citizens": 800, "vendors": 20},
        "crews": {"departments": {"city_management": 3, "drainage": 3, "police": 3, "emergency": 2}},
        "dispatch": {"strategy": "priority"},
    })
    try:
        validate_scenario({"scenario": {"name": "typo"}, "populaton": {"citizens": 10}})
    except Exception as exc:  # noqa: BLE001 - shown on purpose
        print("a typo is caught:", exc)

# %% [markdown]
# ## 2. Run it and store it: `runs/<run_id>/` with manifest.json, parquet tables, events.jsonl

# %%
if __name__ == "__main__":
    res = run_scenario(spec)
    path = write_run(res, OUT / "single")
    print(f"{res.run_id}: {res.kpis['counts.incidents']:.0f} incidents, "
          f"response p90 {res.kpis['response.all:all.response_s.p90'] / 60:.1f} min -> {path}")
    print(res.tables["dispatches"].head())

# %% [markdown]
# ## 3. A sweep: strategies x seeds (the shipped `scenarios/dispatch_compare.toml`, made smaller here)

# %%
if __name__ == "__main__":
    sweep = load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "dispatch_compare.toml"
                          if "__file__" in globals() else "scenarios/dispatch_compare.toml")
    small = sweep.model_copy(update={
        "scenario": sweep.scenario.model_copy(update={"name": "example_sweep"}),
        "sweep": sweep.sweep.model_copy(update={"seeds": [1, 2],
                                                "parameters": {"dispatch.strategy": ["siloed", "priority"]}}),
    })
    target = OUT / "example_sweep"
    scheduler = os.environ.get("CITYTWIN_SCHEDULER")
    if (target / "sweep.json").exists():
        batch = run_batch(resume=target, scheduler=scheduler, progress=True)   # skips complete runs
    else:
        batch = run_batch(small, OUT, workers=2, scheduler=scheduler, progress=True)
    print(batch.status, f"{batch.n_complete}/{batch.n_runs} runs in {batch.wall_time_s:.1f} s")

# %% [markdown]
# ## 4. Results: one row per run (parameters + KPIs), also in results.parquet / results.csv

# %%
if __name__ == "__main__":
    table = pd.read_parquet(target / "results.parquet")
    cols = ["counts.incidents", "response.all:all.response_s.p90", "duplicates.dispatches", "coordination.total_h"]
    cols = [c for c in cols if c in table.columns]
    print(table.groupby("dispatch.strategy")[cols].mean().round(2))
    print(list_runs(OUT)[["run_id", "status", "sweep"]])
