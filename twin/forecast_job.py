"""The 72 h waterlogging forecast as one job: issue state, rain ensemble, members, risk table, plan and files.

``twin forecast`` (:mod:`twin.commands.forecast`) and the workbench's Flood
forecast page (:mod:`twin.pages.forecast`) both call :func:`run_forecast_job`,
so the same inputs give the same files in ``out_dir``:

- ``state.hsf`` (+ ``state.hsf.json``): the issue state;
- ``members/``: each member's results as it finishes (:func:`hydraulics.forecast.run_forecast`);
- ``risk_points.csv`` (+ ``risk_points.gpkg`` when there are any), ``hydrographs.png``,
  ``plan_map.png``, ``plan.json``, ``plan.html`` (:func:`reduce_forecast`; the plan's words in
  the job's ``lang``, the HTML plan opening with the map inlined);
- ``forecast.json``: the summary line, issue time, settings and wall time.

Why a separate process
----------------------
The SWMM engine keeps its project in C globals: one simulation per process
(RECIPES).  :func:`hydraulics.forecast.compute_issue_state` and the shared dry
lead-in of :func:`~hydraulics.forecast.run_forecast` run the engine in the
calling process, and a Streamlit server runs every session's script in
threads of one process.  :func:`run_forecast_job_in_process` therefore runs
the whole job in a fresh Python process (:func:`twin.job_process.run_in_process`,
which says why that is not a ``multiprocessing`` process) and hands its
progress back to the calling thread; when the caller is interrupted the job
process and its member processes are ended.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gisdata.city import CityTwin
from gisdata.errors import TwinError
from gisdata.paths import StagedDir, check_id

FORECAST_FILE = "forecast.json"
"""Written last, with ``"status": "complete"``: a folder without it holds no finished forecast."""

STAGES = ("start", "state", "members", "reduce", "done")
"""Stages reported to the progress callback, in order."""

DRY_SPINUP_H = 1.0
"""Length of the dry spin-up that makes the issue state when no observed rain is given, h."""

# Shares of the progress bar: the members take nearly all the time.
_SHARE = {"start": 0.0, "state": 0.03, "members": 0.08, "reduce": 0.93, "done": 1.0}


class ForecastJobError(TwinError, ValueError):
    """The forecast job was given inconsistent inputs, or its worker process died."""


@dataclass(frozen=True)
class JobProgress:
    """Where a running forecast job is.

    Parameters
    ----------
    stage : str
        One of :data:`STAGES`.
    fraction : float
        Overall progress, 0-1.
    done, total : int
        Members finished and members in all (stage ``"members"``).
    elapsed_s : float
        Wall time since the job started, s (filled in by :func:`run_forecast_job_in_process`).
    """

    stage: str
    fraction: float
    done: int = 0
    total: int = 0
    elapsed_s: float = 0.0


@dataclass(frozen=True, eq=False)
class ForecastOutputs:
    """A forecast reduced at one pair of thresholds (:func:`reduce_forecast`).

    Parameters
    ----------
    risk : DataFrame
        :func:`hydraulics.risk.compute_risk` table (index ``point_id``).
    plan : dict
        :func:`hydraulics.plan.build_plan` (JSON-ready).
    summary : str
        The plan's summary line, in the plan's language (``plan["summary"]``).
    files : dict
        ``risk_points``, ``hydrographs``, ``plan_map``, ``plan_json``, ``plan_html`` (and
        ``risk_points_gpkg`` when any point gets water) -> path.
    """

    risk: pd.DataFrame
    plan: dict
    summary: str
    files: dict = field(default_factory=dict)

    def standalone_plan_html(self) -> str:
        """The plan page with the map and hydrograph PNGs inlined, so the one HTML file shows them anywhere."""
        from hydraulics.plan import plan_html
        from twin.i18n import t

        def uri(key: str) -> str:
            return "data:image/png;base64," + base64.b64encode(Path(self.files[key]).read_bytes()).decode("ascii")

        return plan_html(self.plan, summary=self.summary, hydrograph_png=uri("hydrographs"),
                         map_png=uri("plan_map") if "plan_map" in self.files else None, translate=t)


@dataclass(frozen=True, eq=False)
class ForecastJobResult:
    """What :func:`run_forecast_job` produced.

    Parameters
    ----------
    out_dir : Path
        Where the files are.
    forecast : Forecast
        Per-member surface depths (:class:`hydraulics.forecast.Forecast`).
    outputs : ForecastOutputs
        Risk table, plan, summary line and their files.
    meta : dict
        The content of ``forecast.json``.
    """

    out_dir: Path
    forecast: object
    outputs: ForecastOutputs
    meta: dict

    @property
    def failed_members(self) -> pd.DataFrame:
        """Members that did not run (index member name; ``error``)."""
        table = self.forecast.members
        return table[table["status"] != "ok"]


# ----------------------------------------------------------------------------- rain


def dry_issue_time() -> pd.Timestamp:
    """Issue time of a forecast from a dry spin-up: ``DEFAULT_START`` + :data:`DRY_SPINUP_H`."""
    from hydraulics.build import DEFAULT_START

    return DEFAULT_START + pd.Timedelta(hours=DRY_SPINUP_H)


def city_gauges(city: CityTwin) -> list[str] | None:
    """IDs of the city's rain gauges, or None when it has none (the rain then falls everywhere)."""
    gauges = [str(g) for g in city.sensors.index[city.sensors["sensor_type"] == "rain_gauge"]]
    return gauges or None


def make_ensemble(city: CityTwin, *, qpf=None, ensemble=None, members: int = 20, seed: int = 0,
                  issue_time=None):
    """The rain ensemble of a forecast: members read from files, or a QPF through the seeded error model.

    Parameters
    ----------
    city : CityTwin
        Its rain gauges name the columns a QPF may have.
    qpf : str, Path or RainSeries, optional
        A deterministic QPF (CSV file, or a lead-indexed series such as
        :func:`hydraulics.qpf.design_storm_qpf`), perturbed into ``members``
        members by :func:`hydraulics.qpf.perturb_qpf`.
    ensemble : str, Path, sequence of paths or Ensemble, optional
        Member QPF CSVs (a directory means its ``*.csv``), or an ensemble.
    members : int
        Members made from ``qpf``, >= 1.
    seed : int
        Seed of the error model.
    issue_time : Timestamp, optional
        Issue time, for CSVs whose time column holds timestamps.

    Returns
    -------
    Ensemble

    Raises
    ------
    ForecastJobError
        Not exactly one of ``qpf`` and ``ensemble``, or ``members`` < 1.
    QPFError, EnsembleError, InputFileNotFoundError
        From the readers and the error model.
    """
    from hydraulics.qpf import Ensemble, perturb_qpf, read_ensemble, read_qpf
    from hydraulics.rain_series import RainSeries

    _check_rain(qpf, ensemble, members)
    gauges = city_gauges(city)
    if ensemble is not None:
        if isinstance(ensemble, Ensemble):
            return ensemble
        return read_ensemble(ensemble, issue_time=issue_time, gauges=gauges)
    base = qpf if isinstance(qpf, RainSeries) else read_qpf(qpf, issue_time=issue_time, gauges=gauges)
    return perturb_qpf(base, members, seed=seed, gauges=gauges)


def _check_rain(qpf, ensemble, members: int) -> None:
    if (qpf is None) == (ensemble is None):
        raise ForecastJobError("give exactly one rain forecast: a QPF or an ensemble")
    if qpf is not None and members < 1:
        raise ForecastJobError(f"members={members} must be >= 1")


def read_uploaded_qpf(name: str, data: bytes, **read_options):
    """Read an uploaded QPF CSV with :func:`hydraulics.qpf.read_qpf`, naming the file as uploaded in errors.

    Parameters
    ----------
    name : str
        The file's name as uploaded.
    data : bytes
        Its content.
    **read_options
        Passed to ``read_qpf`` (``units``, ``issue_time``, ``gauges``).

    Raises
    ------
    QPFError
        As ``read_qpf``, e.g. ``"qpf.csv:4: field 'RG1_mm_h': 'x' is not a number"``.
    """
    from hydraulics.qpf import read_qpf

    (series,) = _read_uploads([(name, data)], lambda paths: [read_qpf(paths[0], **read_options)])
    return series


def read_uploaded_ensemble(files: Sequence[tuple[str, bytes]], **read_options):
    """Read uploaded member CSVs (one per member, named by file) with :func:`hydraulics.qpf.read_ensemble`.

    Raises
    ------
    QPFError
        Naming the member file as uploaded and its row or field.
    EnsembleError
        Members that do not fit together (steps, names).
    """
    from hydraulics.qpf import read_ensemble

    return _read_uploads(files, lambda paths: read_ensemble(paths, **read_options))


def _upload_name(name: str, k: int) -> str:
    """A plain file name for an uploaded file (its stem becomes a member name): unsafe characters become ``_``.

    Examples
    --------
    >>> _upload_name("../../etc/member 1.csv", 0), _upload_name("..", 1), _upload_name("a..b.csv", 2)
    ('member_1.csv', 'upload1.csv', 'a_b.csv')
    """
    import re

    from gisdata.paths import InvalidIdError, check_id

    text = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(name)).name)
    text = re.sub(r"\.{2,}", "_", text).lstrip("._-")[:120]
    try:
        return check_id(text, "uploaded file name")
    except InvalidIdError:
        return f"upload{k}.csv"


def _read_uploads(files: Sequence[tuple[str, bytes]], read: Callable):
    """Write uploads to a temporary folder under their own names and ``read`` them from there."""
    from hydraulics.rain_readers import RainFileError

    if not files:
        raise ForecastJobError("no rain file uploaded")
    with tempfile.TemporaryDirectory(prefix="citytwin-qpf-") as tmp:
        paths, shown = [], {}
        for k, (name, data) in enumerate(files):
            path = Path(tmp) / _upload_name(name, k)  # two with one name: the reader refuses duplicate members
            path.write_bytes(data)
            paths.append(path)
            shown[path.name] = Path(str(name)).name or path.name
        try:
            return read(paths)
        except RainFileError as exc:
            # The temporary folder means nothing to the user: name the file as uploaded.
            label = shown.get(exc.path.name, exc.path.name)
            text = str(exc).replace(str(exc.path), label, 1)
            where = f"{label}:{exc.line}" if exc.line is not None else label
            params = {k: v for k, v in exc.params.items() if k != "where"}  # the catalogue key goes along
            raise type(exc)(label, exc.line, text.removeprefix(where + ": "), key=exc.key or None, **params) from None


# ----------------------------------------------------------------------------- reduction


def reduce_forecast(forecast, city: CityTwin, out_dir: str | Path, *, threshold_m: float = 0.15,
                    prob_threshold: float = 0.5, lang: str = "en") -> ForecastOutputs:
    """Rank the forecast's risk points, build the response plan and write them to ``out_dir``.

    Writes ``risk_points.csv`` (and ``risk_points.gpkg`` when any point gets
    water; both with ``lon``, ``lat`` and ``address``), ``hydrographs.png``,
    ``plan_map.png``, ``plan.json`` and ``plan.html`` (opening with the map,
    inlined), each renamed into place when complete.

    Parameters
    ----------
    forecast : Forecast
        From :func:`hydraulics.forecast.run_forecast`.
    city : CityTwin
        The forecast's city (geometry, depots, vendor sites).
    out_dir : str or Path
        Output folder (created).
    threshold_m : float
        Waterlogging depth, m.
    prob_threshold : float
        Probability that makes a risk point, 0-1.
    lang : str
        Language of the plan and its summary (``"en"``, ``"zh"``: :data:`twin.i18n.LANGUAGES`).

    Returns
    -------
    ForecastOutputs
    """
    from hydraulics.plan import PlanRules, build_plan, write_plan_html, write_plan_json
    from hydraulics.risk import compute_risk, plot_hydrographs, risk_layer
    from twin.i18n import t
    from twin.viz.plan_map import png_uri, write_plan_map_png

    _check_lang(lang)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    risk = compute_risk(forecast, threshold_m=threshold_m, prob_threshold=prob_threshold, city=city)
    files = {"risk_points": _write_csv(risk, out / "risk_points.csv")}
    layer = risk_layer(risk, city)
    if len(layer):
        tmp = out / ".risk_points.gpkg"
        tmp.unlink(missing_ok=True)
        layer.reset_index().to_file(tmp, layer="risk_points", driver="GPKG")
        files["risk_points_gpkg"] = tmp.replace(out / "risk_points.gpkg")
    import matplotlib.pyplot as plt

    from twin.viz.map2d import _sans_fonts

    with plt.rc_context({"font.family": _sans_fonts(lang)}):  # a font with Chinese glyphs for zh labels
        files["hydrographs"] = plot_hydrographs(forecast, risk, out / "hydrographs.png",
                                                translate=lambda key, **f: t(key, lang, **f))
    plan = build_plan(risk, city, rules=PlanRules(prob_threshold=prob_threshold), lang=lang, translate=t)
    line = plan["summary"]
    files["plan_map"] = write_plan_map_png(plan, city, out / "plan_map.png")
    files["plan_json"] = write_plan_json(plan, out / "plan.json")
    files["plan_html"] = write_plan_html(plan, out / "plan.html", summary=line, hydrograph_png="hydrographs.png",
                                         map_png=png_uri(files["plan_map"].read_bytes()), translate=t)
    return ForecastOutputs(risk, plan, line, files)


def _check_lang(lang: str) -> None:
    from twin.i18n import LANGUAGES

    if lang not in LANGUAGES:
        raise ForecastJobError(f"lang={lang!r}; expected one of {list(LANGUAGES)}")


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    tmp = path.with_name(path.name + ".part")
    df.to_csv(tmp)
    return tmp.replace(path)


# ----------------------------------------------------------------------------- the job


def run_forecast_job(city: str | CityTwin, out_dir: str | Path, *, qpf=None, ensemble=None, members: int = 20,
                     seed: int = 0, hours: float = 72.0, observed: str | Path | None = None,
                     hotstart: str | Path | None = None, scheduler: str | None = None, workers: int | None = None,
                     settings: str = "skipdry", threshold_m: float = 0.15, prob_threshold: float = 0.5,
                     time_limit_s: float | None = None, progress: bool = False, lang: str = "en",
                     on_progress: Callable[[JobProgress], None] | None = None) -> ForecastJobResult:
    """Issue a forecast: state at issue time, rain ensemble, members, risk points, plan and files.

    Parameters
    ----------
    city : str or CityTwin
        A city, or its preset name or GeoPackage path.
    out_dir : str or Path
        Output folder (created); see the module docstring for its files.
    qpf, ensemble, members, seed
        The rain forecast, as in :func:`make_ensemble`.
    hours : float
        Forecast horizon, h.
    observed : str or Path, optional
        Observed rain CSV up to now; the issue time is its end.  Default: a
        dry spin-up of :data:`DRY_SPINUP_H` ending at :func:`dry_issue_time`.
    hotstart : str or Path, optional
        An issue state saved earlier (with its ``.json`` model hash).
    scheduler : str, optional
        ``None`` (local processes), ``"inline"`` or ``tcp://HOST:PORT``.
    workers : int, optional
        Local processes (default cores).
    settings : str
        Key of :data:`hydraulics.forecast.SETTINGS`.
    threshold_m : float
        Waterlogging depth, m.
    prob_threshold : float
        Probability that makes a risk point, 0-1.
    time_limit_s : float, optional
        Refuse an ensemble estimated to take longer, s.
    progress : bool
        tqdm progress bar on stderr.
    lang : str
        Language of the plan and the summary line (``"en"``, ``"zh"``).
    on_progress : callable, optional
        Called in this process with a :class:`JobProgress` at each stage and
        as each member finishes.

    Returns
    -------
    ForecastJobResult

    Raises
    ------
    ForecastJobError
        Inconsistent inputs (``observed`` and ``hotstart`` both given, no rain).
    TwinError
        From the readers, the scheduler check, the issue state and the runs.
    """
    from gisdata.city import load_city

    report = on_progress or (lambda p: None)
    if observed is not None and hotstart is not None:
        raise ForecastJobError("give an observed rain record or a hotstart, not both")
    _check_rain(qpf, ensemble, members)  # before minutes of engine runs, not after
    _check_lang(lang)
    if scheduler and scheduler != "inline":
        from hydraulics.executors import connect_scheduler

        connect_scheduler(scheduler).close()  # fail in seconds, before any run
    # The folder is checked first, and written through a staging folder: a killed forecast leaves nothing
    # that looks complete, and an earlier forecast in --out is replaced whole (no stale member files).
    final = Path(out_dir)
    with StagedDir(final, "--out", replace=True, is_ours=is_forecast_dir) as stage:
        twin_city = city if isinstance(city, CityTwin) else load_city(city)
        res = _run_job_in(stage.path, twin_city, report, qpf=qpf, ensemble=ensemble, members=members, seed=seed,
                          hours=hours, observed=observed, hotstart=hotstart, scheduler=scheduler, workers=workers,
                          settings=settings, threshold_m=threshold_m, prob_threshold=prob_threshold,
                          time_limit_s=time_limit_s, progress=progress, lang=lang)
        stage.commit(last=(FORECAST_FILE,))
    files = {k: final / Path(v).relative_to(stage.path) for k, v in res.outputs.files.items()}
    outputs = dataclasses.replace(res.outputs, files=files)
    report(JobProgress("done", _SHARE["done"], res.meta["members"], res.meta["members"]))
    return ForecastJobResult(final, res.forecast, outputs, res.meta)


FORECAST_PATTERNS = ("forecast.json", "state.hsf", "state.hsf.json", "risk_points.csv", "risk_points.gpkg",
                     "hydrographs.png", "plan_map.png", "plan.json", "plan.html", "members", "members/members.csv",
                     "members/member_*.parquet", ".*", "*.part", "members/*.part")
"""What a forecast folder may hold: an earlier one is replaced only if it holds nothing else."""


def is_forecast_dir(path: str | Path) -> bool:
    """True if ``path`` holds an earlier forecast and nothing else (so replacing it loses nothing of the user's)."""
    from gisdata.paths import holds_only

    return holds_only(path, FORECAST_PATTERNS, marker=FORECAST_FILE)


def _run_job_in(out: Path, twin_city: CityTwin, report, *, qpf, ensemble, members, seed, hours, observed,
                hotstart, scheduler, workers, settings, threshold_m, prob_threshold, time_limit_s,
                progress, lang="en") -> ForecastJobResult:
    """The forecast written into ``out`` (the staging folder); ``forecast.json`` is written last."""
    from hydraulics.ensemble import build_surface_context
    from hydraulics.forecast import (
        compute_issue_state,
        load_issue_state,
        observed_start,
        run_forecast,
    )
    from hydraulics.rainfall import read_rain_csv

    report(JobProgress("state", _SHARE["state"]))
    ctx = build_surface_context(twin_city)
    if hotstart:
        state = load_issue_state(hotstart, city=twin_city)
    elif observed:
        obs = read_rain_csv(observed, missing="raise")
        issue = observed_start(obs) + pd.Timedelta(seconds=obs.duration_s)
        state = compute_issue_state(twin_city, obs, issue, out / "state.hsf", ctx=ctx)
    else:
        state = compute_issue_state(twin_city, None, dry_issue_time(), out / "state.hsf", ctx=ctx,
                                    spinup_h=DRY_SPINUP_H)
    ens = make_ensemble(twin_city, qpf=qpf, ensemble=ensemble, members=members, seed=seed,
                        issue_time=state.issue_time)
    for name in ens.names:  # member names (file stems of an ensemble folder) become file names
        check_id(name, "member name", source=ensemble if isinstance(ensemble, (str, Path)) else None)

    def member_done(done: int, total: int) -> None:
        report(JobProgress("members", _SHARE["members"] + (_SHARE["reduce"] - _SHARE["members"]) * done / total,
                           done, total))

    member_done(0, len(ens))
    fc = run_forecast(twin_city, state, ens, horizon_h=hours, out_dir=out, settings=settings, scheduler=scheduler,
                      max_workers=workers, progress=progress, time_limit_s=time_limit_s, threshold_m=threshold_m,
                      ctx=ctx, on_member=member_done)
    report(JobProgress("reduce", _SHARE["reduce"], len(ens), len(ens)))
    outputs = reduce_forecast(fc, twin_city, out, threshold_m=threshold_m, prob_threshold=prob_threshold, lang=lang)
    meta = {"summary": outputs.summary, "lang": lang, "city": twin_city.name, "issue_time": state.issue_time.isoformat(),
            "settings": fc.settings.name, "members": len(ens), "failed_members": fc.meta["n_failed"],
            "wall_s": round(fc.meta["wall_s"], 2), "scheduler": fc.meta["scheduler"],
            "ensemble": ens.source, "ensemble_params": ens.params, "status": "complete"}
    (out / FORECAST_FILE).write_text(json.dumps(meta, indent=1, default=str))
    return ForecastJobResult(out, fc, outputs, meta)


# ----------------------------------------------------------------------------- in its own process


def _run_job(kwargs: dict, report: Callable[[JobProgress], None]) -> ForecastJobResult:
    """The job process's work (:func:`twin.job_process.run_in_process`): the job, its progress reported."""
    return run_forecast_job(**kwargs, on_progress=report)


def run_forecast_job_in_process(city: CityTwin, out_dir: str | Path, *,
                                on_progress: Callable[[JobProgress], None] | None = None,
                                heartbeat_s: float = 1.0, poll_s: float = 0.2, **job_kwargs) -> ForecastJobResult:
    """:func:`run_forecast_job` in a fresh Python process, with its progress handed back in this thread.

    Parameters
    ----------
    city : CityTwin
        The city (sent to the process by pickling).
    out_dir : str or Path
        Output folder.
    on_progress : callable, optional
        Called in this thread with each :class:`JobProgress` (``elapsed_s``
        filled in), and again every ``heartbeat_s`` with the last one, so a
        caller sees time pass while a long member runs (and Streamlit gets a
        chance to stop the script).  If it raises, the job process and its
        member processes are ended and the exception propagates.
    heartbeat_s, poll_s : float
        Seconds between repeated progress calls, and between looks at the job's progress.
    **job_kwargs
        The other arguments of :func:`run_forecast_job` (``progress`` is forced off).

    Returns
    -------
    ForecastJobResult

    Raises
    ------
    ForecastJobError
        The job process ended without a result.
    TwinError
        The job's own errors, re-raised here with their type.
    """
    from twin.job_process import run_in_process

    report = on_progress or (lambda p: None)
    t0 = time.monotonic()
    last = [JobProgress("start", _SHARE["start"])]

    def emit(p: JobProgress) -> None:
        last[0] = p
        report(JobProgress(p.stage, p.fraction, p.done, p.total, round(time.monotonic() - t0, 1)))

    emit(last[0])
    kwargs = {**job_kwargs, "city": city, "out_dir": Path(out_dir).resolve(), "progress": False}
    return run_in_process(_run_job, kwargs, on_report=emit, on_idle=lambda: emit(last[0]), idle_s=heartbeat_s,
                          poll_s=poll_s, what="forecast", error_type=ForecastJobError)


__all__ = [
    "DRY_SPINUP_H",
    "STAGES",
    "ForecastJobError",
    "ForecastJobResult",
    "ForecastOutputs",
    "JobProgress",
    "city_gauges",
    "dry_issue_time",
    "is_forecast_dir",
    "make_ensemble",
    "read_uploaded_ensemble",
    "read_uploaded_qpf",
    "reduce_forecast",
    "run_forecast_job",
    "run_forecast_job_in_process",
]
