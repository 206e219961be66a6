"""`twin forecast` (72 h waterlogging forecast) and `twin forecast verify`.

The commands only parse arguments and call library functions
(:mod:`hydraulics.forecast`, :mod:`hydraulics.risk`, :mod:`hydraulics.plan`,
:mod:`hydraulics.verify`).  Errors are :class:`~gisdata.errors.TwinError`,
which the top-level ``twin`` group prints as one line with exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from gisdata.errors import TwinError
from gisdata.limits import (
    MAX_DEPTH_M,
    MAX_FORECAST_HOURS,
    MAX_MEMBERS,
    MAX_QPF_LEAD_H,
    MAX_RETURN_PERIOD_YR,
    MAX_STORM_DURATION_MIN,
    MAX_WORKERS,
    MIN_RETURN_PERIOD_YR,
    check_range,
)
from twin.commands.swmm import Duration
from twin.i18n import LANGUAGES


class ForecastUsageError(TwinError, ValueError):
    """The forecast command line is inconsistent (missing or conflicting options)."""


def _storm_qpf(idf: str, return_period: float, duration_s: float, start_in_s: float, step_min: int = 5):
    """:func:`hydraulics.qpf.design_storm_qpf`, with the option name in the error."""
    from hydraulics.qpf import EnsembleError, design_storm_qpf

    try:
        return design_storm_qpf(idf, return_period, duration_s, start_in_s, step_min)
    except EnsembleError as exc:
        raise ForecastUsageError(f"--start-in: {exc}") from None


def _storm_options(f):
    for opt in reversed([
        click.option("--storm", type=click.Choice(["chicago"]), help="Design storm as the rain forecast."),
        click.option("--return-period", type=float, default=None, help="Storm return period, years."),
        click.option("--duration", "duration_s", type=Duration(), default=None, help="Storm duration (3h, 90min)."),
        click.option("--start-in", "start_in_s", type=Duration(), default=None,
                     help="Storm starts this long after issue (48h)."),
        click.option("--idf", default="beijing", show_default=True, help="IDF preset of the storm."),
    ]):
        f = opt(f)
    return f


def _check_storm(storm, return_period, duration_s, start_in_s):
    if storm is None:
        return
    missing = [n for n, v in (("--return-period", return_period), ("--duration", duration_s)) if v is None]
    if missing:
        raise ForecastUsageError(f"--storm chicago needs {' and '.join(missing)}")
    check_range("--return-period", return_period, MIN_RETURN_PERIOD_YR, MAX_RETURN_PERIOD_YR, "yr")
    check_range("--duration", duration_s / 60.0, 0, MAX_STORM_DURATION_MIN, "min", lo_inclusive=False)
    if start_in_s is not None:
        check_range("--start-in", start_in_s / 3600.0, 0, MAX_QPF_LEAD_H, "h")


def _check_run_sizes(hours, members, workers, threshold, prob_threshold) -> None:
    """Range checks of the forecast's sizes (gisdata.limits), before anything is read or allocated."""
    check_range("--hours", hours, 0, MAX_FORECAST_HOURS, "h", lo_inclusive=False)
    check_range("--members", members, 1, MAX_MEMBERS, integer=True)
    if workers is not None:
        check_range("--workers", workers, 1, MAX_WORKERS, integer=True)
    check_range("--threshold", threshold, 0, MAX_DEPTH_M, "m", lo_inclusive=False)
    check_range("--prob", prob_threshold, 0, 1, lo_inclusive=False)


@click.group("forecast", invoke_without_command=True)
@click.option("--city", default="demo", show_default=True, help="Preset name or city GeoPackage.")
@click.option("--qpf", type=click.Path(dir_okay=False), default=None,
              help="Deterministic QPF CSV (lead_h column, one column per gauge with a unit suffix).")
@click.option("--ensemble", "ensemble_dir", type=click.Path(), default=None,
              help="Directory of member QPF CSVs (one file per member) instead of the error model.")
@_storm_options
@click.option("--hours", type=float, default=72.0, show_default=True, help="Forecast horizon, h.")
@click.option("--members", type=int, default=20, show_default=True, help="Members made by the error model.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the error model.")
@click.option("--observed", type=click.Path(dir_okay=False), default=None,
              help="Observed rain CSV up to now; the issue time is its end. Default: a dry spin-up.")
@click.option("--hotstart", type=click.Path(dir_okay=False), default=None,
              help="Issue state saved earlier (with its .json model hash).")
@click.option("--scheduler", default=None, help="Dask scheduler tcp://HOST:PORT (default: local processes).")
@click.option("--workers", type=int, default=None, help="Local processes (default: cores).")
@click.option("--settings", "settings_name", type=click.Choice(["reference", "skipdry", "fast", "fastreduced"]),
              default="skipdry", show_default=True, help="Run settings (see benchmarks/forecast_speed.py).")
@click.option("--threshold", type=float, default=0.15, show_default=True, help="Waterlogging depth, m.")
@click.option("--prob", "prob_threshold", type=float, default=0.5, show_default=True,
              help="Probability that makes a risk point.")
@click.option("--time-limit", "time_limit_s", type=Duration(), default=None, help="Refuse ensembles estimated to take longer.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None, help="Output directory.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bar on stderr.")
@click.option("--lang", type=click.Choice(list(LANGUAGES)), default="en", show_default=True,
              help="Language of the response plan (plan.json, plan.html) and the summary line.")
@click.pass_context
def group(ctx, city, qpf, ensemble_dir, storm, return_period, duration_s, start_in_s, idf, hours, members, seed,
          observed, hotstart, scheduler, workers, settings_name, threshold, prob_threshold, time_limit_s,
          out_dir, progress, lang) -> None:
    """72-hour waterlogging forecast: ensemble from the current state, risk points and response plans.

    Writes risk_points.csv/.gpkg, hydrographs.png, plan_map.png, plan.json,
    plan.html (opening with the map) and members/ to --out, and prints the
    summary line; --lang zh writes the plan in Chinese.

    \b
    twin forecast --city demo --storm chicago --return-period 50 --duration 3h --start-in 48h \\
        --hours 72 --members 20 --out fc
    twin forecast verify --city small --storm chicago --return-period 50 --duration 3h --start-in 48h --perfect --out v
    """
    if ctx.invoked_subcommand is not None:
        return
    sources = [n for n, v in (("--qpf", qpf), ("--ensemble", ensemble_dir), ("--storm", storm)) if v]
    if len(sources) != 1:
        raise ForecastUsageError(f"give exactly one rain forecast: --qpf FILE, --ensemble DIR or --storm chicago "
                                 f"(got {sources or 'none'})")
    if out_dir is None:
        raise ForecastUsageError("--out DIR is required")
    if observed and hotstart:
        raise ForecastUsageError("give --observed or --hotstart, not both")
    _check_storm(storm, return_period, duration_s, start_in_s)
    run_forecast_command(city=city, qpf=qpf, ensemble_dir=ensemble_dir, storm=storm, return_period=return_period,
                         duration_s=duration_s, start_in_s=start_in_s or 0.0, idf=idf, hours=hours,
                         members=members, seed=seed, observed=observed, hotstart=hotstart, scheduler=scheduler,
                         workers=workers, settings_name=settings_name, threshold=threshold,
                         prob_threshold=prob_threshold, time_limit_s=time_limit_s, out_dir=Path(out_dir),
                         progress=progress, lang=lang)


def run_forecast_command(*, city, qpf, ensemble_dir, storm, return_period, duration_s, start_in_s, idf, hours,
                         members, seed, observed, hotstart, scheduler, workers, settings_name, threshold,
                         prob_threshold, time_limit_s, out_dir: Path, progress, lang: str = "en") -> str:
    """The body of ``twin forecast`` (also callable from Python); returns the summary line.

    The work is :func:`twin.forecast_job.run_forecast_job`, which the
    workbench's Flood forecast page calls too.
    """
    from twin.forecast_job import run_forecast_job

    _check_run_sizes(hours, members, workers, threshold, prob_threshold)
    rain = {"ensemble": ensemble_dir} if ensemble_dir else \
        {"qpf": qpf if qpf else _storm_qpf(idf, return_period, duration_s, start_in_s)}
    res = run_forecast_job(city, out_dir, **rain, members=members, seed=seed, hours=hours, observed=observed,
                           hotstart=hotstart, scheduler=scheduler, workers=workers, settings=settings_name,
                           threshold_m=threshold, prob_threshold=prob_threshold, time_limit_s=time_limit_s,
                           progress=progress, lang=lang)
    for name, row in res.failed_members.iterrows():
        click.echo(f"warning: member {name} failed: {row['error'][:300]}", err=True)
    line = res.outputs.summary
    click.echo(line)
    return line


def _write_csv(df, path: Path) -> None:
    tmp = path.with_name(path.name + ".part")
    df.to_csv(tmp)
    tmp.replace(path)


@group.command("verify")
@click.option("--city", default="small", show_default=True, help="Preset name or city GeoPackage.")
@click.option("--observed", type=click.Path(dir_okay=False), default=None, help="Observed rain CSV.")
@_storm_options
@click.option("--qpf", type=click.Path(dir_okay=False), default=None,
              help="QPF CSV on the observed record's axis (lead_h from the record start).")
@click.option("--perfect", is_flag=True, help="Use the observed rain as the forecast (tests the state handling).")
@click.option("--leads", default="72,48,24,12,6", show_default=True, help="Leads before the event, h.")
@click.option("--hours", type=float, default=72.0, show_default=True, help="Minimum forecast horizon, h.")
@click.option("--members", type=int, default=1, show_default=True, help="Members (error model) per forecast.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--scheduler", default=None, help="Dask scheduler tcp://HOST:PORT.")
@click.option("--workers", type=int, default=None, help="Local processes (default: cores).")
@click.option("--settings", "settings_name", type=click.Choice(["reference", "skipdry", "fast", "fastreduced"]),
              default="skipdry", show_default=True)
@click.option("--threshold", type=float, default=0.15, show_default=True, help="Waterlogging depth, m.")
@click.option("--prob", "prob_threshold", type=float, default=0.5, show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output directory.")
def verify_command(city, observed, storm, return_period, duration_s, start_in_s, idf, qpf, perfect, leads, hours,
                   members, seed, scheduler, workers, settings_name, threshold, prob_threshold, out_dir) -> None:
    """Verify forecasts issued at several leads against the observed run (POD, FAR, CSI, Brier)."""
    import numpy as np
    import pandas as pd

    from gisdata.city import load_city
    from hydraulics.qpf import read_qpf
    from hydraulics.rainfall import RainSeries, read_rain_csv
    from hydraulics.verify import verify_forecasts

    if bool(observed) == bool(storm):
        raise ForecastUsageError("give the observed rain: --observed FILE or --storm chicago (exactly one)")
    if bool(qpf) == bool(perfect):
        raise ForecastUsageError("give the forecast rain: --qpf FILE or --perfect (exactly one)")
    _check_storm(storm, return_period, duration_s, start_in_s)
    try:
        lead_list = [float(x) for x in str(leads).split(",") if x.strip()]
    except ValueError:
        raise ForecastUsageError(f"--leads {leads!r}: expected hours separated by commas, e.g. 72,48,24") from None
    if not lead_list or min(lead_list) <= 0:
        raise ForecastUsageError(f"--leads {leads!r}: expected positive hours")
    if len(lead_list) > 100:
        raise ForecastUsageError(f"--leads: {len(lead_list)} leads; expected at most 100")
    for lead in lead_list:
        check_range("--leads", lead, 0, MAX_QPF_LEAD_H, "h", lo_inclusive=False)
    _check_run_sizes(hours, members, workers, threshold, prob_threshold)
    if storm:
        lead_in = max(max(lead_list) * 3600.0, start_in_s or 0.0) + 3600.0
        storm_rain = _storm_qpf(idf, return_period, duration_s, 0.0)
        k = round(lead_in / storm_rain.step_s)
        vals = np.concatenate([np.zeros(k), storm_rain.intensity_mm_h.iloc[:, 0].to_numpy()])
        obs = RainSeries(pd.DataFrame({"RG1": vals}, index=np.arange(len(vals), dtype="int64") * storm_rain.step_s),
                         step_s=storm_rain.step_s, label="observed " + storm_rain.label)
    else:
        obs = read_rain_csv(observed, missing="raise")
    forecast_rain = "perfect" if perfect else read_qpf(qpf)
    # checked before the runs, written through a staging folder (an earlier verification is replaced whole)
    from gisdata.paths import StagedDir, holds_only

    mine = ("verification.json", "verification.csv", "verification_detail.csv", "reliability.csv", "states",
            "states/*", "lead*h", "lead*h/*", ".*", "*.part")
    with StagedDir(Path(out_dir), "--out", replace=True,
                   is_ours=lambda p: holds_only(p, mine, marker="verification.json")) as stage:
        out = stage.path
        ver = verify_forecasts(load_city(city), obs, leads_h=lead_list, qpf=forecast_rain, members=members,
                               seed=seed, hours=hours, settings=settings_name, threshold_m=threshold,
                               prob_threshold=prob_threshold, scheduler=scheduler, max_workers=workers, out_dir=out)
        _write_csv(ver.table, out / "verification.csv")
        _write_csv(ver.reliability, out / "reliability.csv")
        _write_csv(ver.detail, out / "verification_detail.csv")
        (out / "verification.json").write_text(json.dumps(ver.meta, indent=1, default=str))
        stage.commit(last=("verification.json",))
    click.echo(ver.format_table())
