"""Scaling of a batch sweep from 1 to 2 Dask workers: wall times, per-run times, parallel efficiency.

What it runs: the same sweep of ``--runs`` scenario runs (default 8), generated into a temporary
directory from ``scenarios/dispatch_compare.toml`` (12 h, 100-year 2 h Chicago storm at 07:30,
1000 citizens, 20 vendors; the sweep is dispatch strategies x seeds) but on the full ``demo`` city
instead of the ``small`` one, so that every run is long enough for a fair measurement: on the
``small`` city a run takes 2-5 s (a shorter tick barely changes that), on ``demo`` about 20 s alone
on the 2-core benchmark machine (21.3 s measured for one cold run).  The per-run times are printed,
and a warning if any run took under 10 s alone.

How: :func:`scenarios.batch.run_batch` with ``scheduler=`` a local Dask cluster
(``LocalCluster(n_workers=N, threads_per_worker=1, processes=True)``, one thread per worker because
SWMM is not re-entrant), first with N = 1, then with N = 2.  Each cluster is started and warmed
(every worker imports the twin) before the clock starts and is always torn down afterwards; the
timed figure is ``BatchResult.wall_time_s`` of the whole sweep (runs + streaming into the run store).

Baseline: the 1-worker sweep measured in the same invocation (T1).  The headline figure, printed
as the last line, is the parallel efficiency T1 / (2 * T2) (target >= 0.85; 1.0 is perfect).  Both
sweeps must give the same results table (every KPI of every run; same scenario + seed => same
KPIs), which is checked and printed.  The machine's load average is printed before and after,
since a shared, loaded machine cannot give a second core's worth of speed-up.

Usage::

    .venv/bin/python benchmarks/batch_scaling.py [--runs 8] [--quick]

``--quick`` is a smoke run: short runs (small city, 8 h, 300 citizens) of a few seconds each; its
efficiency is dominated by overhead and means little.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE_TOML = ROOT / "scenarios" / "dispatch_compare.toml"
STRATEGIES = ["siloed", "nearest", "priority", "assignment"]
NOT_KPIS = {"wall_time_s", "error", "status"}  # per-run bookkeeping, not results


def sweep_toml(n_runs: int, quick: bool) -> str:
    """The sweep file: ``dispatch_compare`` with ``n_runs`` runs (strategies x seeds) and the benchmark's sizes."""
    base = tomllib.loads(BASE_TOML.read_text(encoding="utf-8"))
    k = next(k for k in (4, 2, 1) if n_runs % k == 0)  # strategies per seed
    strategies, seeds = STRATEGIES[:k], list(range(1, n_runs // k + 1))
    rain = base["rain"]
    period = {"hours": 8, "tick_s": 300} if quick else {"hours": base["period"]["hours"], "tick_s": 300}
    city = "small" if quick else "demo"
    citizens = 300 if quick else base["population"]["citizens"]
    vendors = 8 if quick else base["population"]["vendors"]
    rain_start = 6.5 if quick else rain["start_h"]
    deps = ", ".join(f"{d} = {n}" for d, n in base["crews"]["departments"].items())
    return f"""
[scenario]
name = "batch_scaling"
seed = 1

[city]
source = "{city}"

[period]
hours = {period['hours']}
tick_s = {period['tick_s']}

[rain]
kind = "design"
method = "{rain['method']}"
idf = "{rain['idf']}"
return_period_yr = {rain['return_period_yr']}
duration_min = {rain['duration_min']}
start_h = {rain_start}

[population]
citizens = {citizens}
vendors = {vendors}

[crews]
departments = {{ {deps} }}

[sweep]
method = "grid"
seeds = {seeds}
[sweep.parameters]
"dispatch.strategy" = {strategies!r}
""".replace("'", '"')


def _warm() -> bool:
    import scenarios.runner  # noqa: F401 - the imports a run needs, paid before the clock starts

    return True


def run_on_cluster(n_workers: int, sweep: Path, out: Path):
    """The sweep on a fresh local Dask cluster of ``n_workers`` one-thread worker processes, torn down after."""
    from distributed import Client, LocalCluster

    from scenarios.batch import run_batch

    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1", silence_logs=40) as cluster:
        with Client(cluster, set_as_default=False) as client:
            client.wait_for_workers(n_workers, timeout=120)
            client.run(_warm)
        res = run_batch(sweep, out, scheduler=cluster.scheduler_address)
    if res.status != "complete":
        raise SystemExit(f"{n_workers}-worker sweep is {res.status}: {res.failed}")
    return res


def kpi_table(df):
    """The results table without per-run bookkeeping, in run order, numbers as floats."""
    cols = [c for c in df.columns if c not in NOT_KPIS]
    out = df.loc[sorted(df.index), cols].copy()
    for c in cols:
        try:
            out[c] = out[c].astype(float)
        except (TypeError, ValueError):  # text: e.g. the strategy
            pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=8, help="runs in the sweep (default 8)")
    ap.add_argument("--quick", action="store_true", help="smoke run: short runs, figures mean little")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    sys.path.insert(0, str(ROOT))
    # the worker processes import the twin from the repository too
    os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH")
                                            else "")
    import pandas as pd

    load0 = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} (1/5/15 min)")
    with tempfile.TemporaryDirectory(prefix="citytwin-batch-scaling-") as d:
        sweep = Path(d) / "batch_scaling.toml"
        sweep.write_text(sweep_toml(args.runs, args.quick), encoding="utf-8")
        size = "quick: small city, 8 h, 300 citizens" if args.quick else \
            "dispatch_compare on the demo city: 12 h, 100-yr storm, 1000 citizens"
        print(f"sweep: {args.runs} runs ({size}); Dask LocalCluster, one thread per worker process")
        t0 = time.perf_counter()
        r1 = run_on_cluster(1, sweep, Path(d) / "w1")
        r2 = run_on_cluster(2, sweep, Path(d) / "w2")
        total = time.perf_counter() - t0
        t1, t2 = r1.wall_time_s, r2.wall_time_s
        per1, per2 = r1.results["wall_time_s"].astype(float), r2.results["wall_time_s"].astype(float)
        print(f"{'run':<24}{'1 worker s':>12}{'2 workers s':>13}")
        for rid in r1.results.index:
            print(f"{rid:<24}{per1[rid]:>12.2f}{per2[rid]:>13.2f}")
        print(f"per run: 1 worker mean {per1.mean():.2f} s (min {per1.min():.2f}, max {per1.max():.2f}); "
              f"2 workers mean {per2.mean():.2f} s (min {per2.min():.2f}, max {per2.max():.2f}); "
              f"ratio 2w/1w {per2.mean() / per1.mean():.3f}")
        if not args.quick and per1.min() < 10.0:
            print(f"WARNING: the shortest run took {per1.min():.2f} s alone, under the 10 s this benchmark wants")
        print(f"wall: T1 (1 worker) {t1:.2f} s = {per1.sum() / t1:.0%} busy; T2 (2 workers) {t2:.2f} s = "
              f"{per2.sum() / (2 * t2):.0%} busy per worker; speed-up T1/T2 {t1 / t2:.3f} "
              f"(benchmark total incl. cluster start/stop {total:.1f} s)")
        k1, k2 = kpi_table(r1.results), kpi_table(r2.results)
        try:
            pd.testing.assert_frame_equal(k1, k2, check_dtype=False)
            same = True
        except AssertionError as exc:
            same = False
            print(f"results differ: {' '.join(str(exc).split())[:400]}")
        print(f"same results table on 1 and 2 workers: {'yes' if same else 'NO'} "
              f"({len(k1)} runs x {k1.shape[1]} columns: seed, parameters, KPIs)")
    load1 = os.getloadavg()
    print(f"load average after: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} (1/5/15 min)")
    print("parallel efficiency T1 / (2 * T2) (target >= 0.85):")
    print(f"{t1 / (2 * t2):.3f}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
