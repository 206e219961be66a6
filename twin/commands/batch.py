"""`twin run`, `twin runs list` and `twin batch`: scenario files, the run store and sweeps.

These commands only parse arguments and call :mod:`scenarios`.  By the
architecture ``twin/cli.py`` is the only file of ``twin`` that may import
``scenarios``, so this module never does: :func:`build_commands` receives a
loader of the ``scenarios`` package from ``twin/cli.py`` and the commands call
through it (lazily, so ``twin --help`` stays fast).

Errors are :class:`~gisdata.errors.TwinError` (bad scenario, unreachable
scheduler, failed runs), which the top-level group prints as one line with
exit code 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import click

from gisdata.errors import TwinError

HEADLINE = (
    ("counts.incidents", "incidents", "{:.0f}"),
    ("counts.reports", "reports", "{:.0f}"),
    ("counts.dispatched", "dispatched", "{:.0f}"),
    ("response.all:all.response_s.p50", "response p50 (min)", "min"),
    ("response.all:all.response_s.p90", "response p90 (min)", "min"),
    ("within_target.all", "within target", "{:.1%}"),
    ("duplicates.dispatches", "duplicate dispatches", "{:.0f}"),
    ("utilisation.all", "crew utilisation", "{:.1%}"),
    ("exposure.person_hours_closed_roads", "person-hours on closed roads", "{:.1f}"),
)


class BatchUsageError(TwinError, ValueError):
    """The batch command line is inconsistent (missing or conflicting options)."""


def _fmt(v, fmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if fmt == "min":
        return f"{float(v) / 60:.1f}"
    return fmt.format(v)


def build_commands(load_scenarios: Callable[[], ModuleType]) -> list[click.Command]:
    """The click commands ``run``, ``runs`` and ``batch``, calling the package ``load_scenarios()`` returns."""

    @click.command("run")
    @click.argument("scenario", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"),
                  show_default=True, help="Run store directory; the run goes to OUT/<run_id>/.")
    @click.option("--force", is_flag=True, help="Run again and replace a run with the same ID.")
    @click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
    def run_command(scenario: Path, out: Path, force: bool, quiet: bool) -> None:
        """Run one SCENARIO.toml (city, rain, agents, dispatch) into the run store.

        The run ID is the scenario name, its seed and a hash of the scenario, so
        the same scenario and seed map to the same run; an existing complete run
        is kept unless --force.  Example: twin run scenarios/demo_storm_72h.toml
        """
        sc = load_scenarios()
        spec = sc.load_scenario(scenario)
        if spec.sweep is not None:
            raise BatchUsageError(f"{scenario} has a [sweep] section; run it with `twin batch {scenario}`")
        from gisdata.paths import check_out_dir, child_path

        check_out_dir(out, "--out")  # before the run, not after it
        run_id = sc.default_run_id(spec)
        target = child_path(out, run_id, "run id")
        if sc.is_complete(target) and not force:
            click.echo(f"{target}: already complete (same scenario and seed); --force runs it again")
            return
        from tqdm import tqdm

        bar = tqdm(total=1000, desc=spec.name, unit="‰", disable=quiet, leave=False,
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

        def progress(f: float) -> None:
            bar.update(max(0, int(f * 1000) - bar.n))

        try:
            res = sc.run_scenario(spec, run_id=run_id, progress=progress)
        finally:
            bar.close()
        path = sc.write_run(res, out, overwrite=force)
        click.echo(f"run {res.run_id}: complete in {res.manifest.get('wall_time_s', 0):.1f} s -> {path}")
        for key, label, fmt in HEADLINE:
            if key in res.kpis:
                click.echo(f"  {label:32s} {_fmt(res.kpis[key], fmt)}")

    @click.group("runs")
    def runs_group() -> None:
        """Look into a run store."""

    @runs_group.command("list")
    @click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"))
    def runs_list(directory: Path) -> None:
        """List the runs in DIRECTORY (default runs/) and in its sweeps, with their status."""
        import pandas as pd

        sc = load_scenarios()
        df = sc.list_runs(directory, include_missing=True)
        if df.empty:
            click.echo(f"{directory}: no runs")
            return
        for sweep, grp in df.groupby("sweep", sort=True):
            if sweep:
                folder = Path(grp["path"].iloc[0]).parent
                # counted against the sweep's plan, so a killed batch's sweep is never called complete
                try:
                    st = sc.sweep_state(folder)
                except TwinError as exc:  # one bad sweep.json does not hide the other runs
                    click.echo(f"sweep {sweep}: {' '.join(str(exc).split())[:200]}")
                    continue
                line = (f"sweep {sweep}: {st['status']}, {st['n_complete']} of {st['n_runs']} planned runs complete"
                        + (f", {st['n_failed']} failed" if st["n_failed"] else "")
                        + (f", {st['n_missing']} not run" if st["n_missing"] else ""))
                if st["status"] in ("interrupted", "incomplete"):
                    line += f"; resume with `twin batch --resume {folder}`"
                click.echo(line)
        cols = ["run_id", "status", "scenario", "seed", "sweep", "wall_time_s"]
        text = df[cols].assign(wall_time_s=df["wall_time_s"].map(lambda v: "-" if v is None or pd.isna(v) else f"{v:.1f}"))
        click.echo(text.to_string(index=False))

    @click.command("batch")
    @click.argument("sweep", required=False, type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"),
                  show_default=True, help="Parent directory; the sweep goes to OUT/<scenario name>/.")
    @click.option("--workers", type=click.IntRange(1, 1024), default=None,
                  help="Local worker processes (default: [batch] workers, else the cores).")
    @click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
                  help="Run on a Dask distributed cluster (workers with --nthreads 1).")
    @click.option("--resume", "resume", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="Resume the sweep in this directory: complete runs are skipped.")
    @click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
    def batch_command(sweep: Path | None, out: Path, workers: int | None, scheduler: str | None,
                      resume: Path | None, quiet: bool) -> None:
        """Run a SWEEP.toml (a scenario with [sweep]) on local processes or a Dask cluster.

        Each finished run streams into OUT/<name>/<run_id>/; results.parquet and
        results.csv hold one row per run (parameters and KPIs).  An interrupted
        sweep keeps its finished runs: `twin batch --resume OUT/<name>` runs the rest.
        """
        if (sweep is None) == (resume is None):
            raise BatchUsageError("give a SWEEP.toml or --resume DIR (not both)")
        if workers is not None and scheduler is not None:
            raise BatchUsageError("--workers is for local processes; with --scheduler the cluster's workers run")
        if sweep is not None:
            from gisdata.paths import check_out_dir

            check_out_dir(out, "--out")  # before the sweep is planned and run
        sc = load_scenarios()
        res = sc.run_batch(sweep, out, resume=resume, workers=workers, scheduler=scheduler, progress=not quiet)
        click.echo(f"sweep {res.directory.name}: {res.n_complete} of {res.n_runs} runs complete "
                   f"({res.n_skipped} already were, {res.n_run} run now, {res.n_failed} failed) "
                   f"in {res.wall_time_s:.1f} s -> {res.directory}")
        click.echo(f"  results: {res.directory / 'results.parquet'}, {res.directory / 'results.csv'}")
        if res.n_failed:
            rid, msg = next(iter(res.failed.items()))
            raise sc.BatchError(f"{res.n_failed} run(s) failed, e.g. {rid}: {msg[:300]}; fix the cause and "
                                f"resume with `twin batch --resume {res.directory}`")
        if res.status != "complete":
            raise sc.BatchError(f"sweep incomplete; resume with `twin batch --resume {res.directory}`")

    return [run_command, runs_group, batch_command]
