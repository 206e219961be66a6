"""The main job of ``twin demo``: forecast, coupled storm (siloed vs staging) and the report.

On the embedded demo city, with the parameters of ``scenarios/demo_storm_72h.toml``
(population, crews, coupling, seed) and a heavy summer storm:

1. **Forecast** (:mod:`hydraulics.forecast`), issued at time 0 of a 72 h
   window: a dry issue state, the storm as a deterministic QPF perturbed into
   an ensemble, the members run with the ``fast`` settings, reduced to risk
   points (:func:`hydraulics.risk.compute_risk`) and a response plan.
2. **Storm** (:mod:`twin.flood_feed`): the sewer and the 2D streets run coupled once into a flood schedule
   that both dispatch runs replay, so both face the same flood, incidents
   and citizens (common random numbers): ``siloed`` (every department on its
   own) and ``forecast_staging`` (unified priority dispatch with crews staged
   at the forecast's risk points before the storm).
3. **Report** (:func:`twin.viz.report.write_report`): one self-contained
   ``report.html`` with the map, the 3D scene, the risk table, the KPI
   comparison and the hydrographs.

``twin`` may not import ``scenarios``: the scenario file is read with
:mod:`tomllib` for its parameters only.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gisdata.errors import TwinError

DEMO_SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "demo_storm_72h.toml"
"""Scenario whose population, crews, coupling and seed the demo uses (read as plain TOML)."""


class DemoJobError(TwinError, ValueError):
    """The demo job was given impossible settings."""


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs.

    Parameters
    ----------
    city : str
        City preset.
    hours : float
        Forecast horizon and length of the coupled run, h.
    storm_start_h : float
        Storm start after the forecast's issue (= time 0 of the coupled run), h.
    return_period_yr, duration_min : float
        The Chicago design storm.
    idf : str
        IDF preset.
    members : int
        Ensemble members.
    forecast_settings : str
        Key of :data:`hydraulics.forecast.SETTINGS`.
    n_citizens, n_vendors : int
        Population.
    seed : int
        Seed of the agents and of the ensemble.
    workers : int or None
        Forecast worker processes (None: cores).
    threshold_m, prob_threshold : float
        Waterlogging depth (m) and probability making a risk point.
    staging_points : int
        Risk points handed to ``forecast_staging``.
    """

    city: str = "demo"
    hours: float = 72.0
    storm_start_h: float = 53.0
    return_period_yr: float = 50.0
    duration_min: float = 180.0
    idf: str = "beijing"
    r: float = 0.4
    step_min: int = 5
    members: int = 8
    forecast_settings: str = "fast"
    n_citizens: int = 2000
    n_vendors: int = 50
    n_shifts: int = 3
    tick_s: float = 300.0
    seed: int = 2024
    workers: int | None = None
    threshold_m: float = 0.15
    prob_threshold: float = 0.5
    staging_points: int = 5
    coupling: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 <= self.storm_start_h < self.hours:
            raise DemoJobError(f"storm_start_h={self.storm_start_h} must be within the window (0 .. {self.hours} h)")
        if self.members < 1:
            raise DemoJobError(f"members={self.members} must be >= 1")


def demo_settings(*, quick: bool = False, scenario: str | Path | None = DEMO_SCENARIO, **overrides) -> DemoSettings:
    """Settings from the demo scenario's TOML (population, crews, coupling, seed), then ``overrides``.

    ``quick`` (for tests): the small city, 24 h with the storm at 14 h, 3
    members, 300 citizens.
    """
    kw: dict = {}
    if scenario is not None and Path(scenario).is_file():
        data = tomllib.loads(Path(scenario).read_text(encoding="utf-8"))
        pop = data.get("population", {})
        hyd = data.get("hydraulics", {})
        kw.update(seed=int(data.get("scenario", {}).get("seed", 2024)),
                  n_citizens=int(pop.get("citizens", 2000)), n_vendors=int(pop.get("vendors", 50)),
                  n_shifts=int(data.get("crews", {}).get("shifts", 3)),
                  tick_s=float(data.get("period", {}).get("tick_s", 300)),
                  idf=str(data.get("rain", {}).get("idf", "beijing")), r=float(data.get("rain", {}).get("r", 0.4)),
                  coupling={k: v for k, v in {
                      "coupling_step_s": hyd.get("coupling_step_s"), "incident_volume_m3": hyd.get("incident_volume_m3"),
                      "drain_back_cms": hyd.get("drain_back_cms"), "car_m": hyd.get("car_closed_m"),
                      "all_m": hyd.get("road_closed_m"), "drain_time_h": hyd.get("drain_time_h")}.items()
                      if v is not None})
    if quick:
        kw.update(city="small", hours=24.0, storm_start_h=14.0, members=3, n_citizens=300, n_vendors=10)
    kw.update(overrides)
    return DemoSettings(**kw)


@dataclass(frozen=True)
class DemoResult:
    """What the demo job produced.

    Attributes
    ----------
    out_dir : Path
    files : dict
        Name -> path (``report``, ``city_png``, ``city_html``, ``map_png``, ``hydrographs_png``,
        ``risk_points``, ``plan``).
    summary : dict
        The city summary (:meth:`CityTwin.summary`).
    risk : DataFrame
        The forecast's risk table.
    forecast_line : str
        :func:`hydraulics.risk.summary_line`.
    kpis : dict
        Strategy -> flat KPIs.
    headline : list of str
        The lines ``twin demo`` prints.
    timings_s : dict
        Wall time of each stage, s.
    """

    out_dir: Path
    files: dict
    summary: dict
    risk: pd.DataFrame
    forecast_line: str
    kpis: dict
    headline: list
    timings_s: dict
    settings: DemoSettings


def _storm(s: DemoSettings):
    from hydraulics.rainfall import chicago_storm

    return chicago_storm(s.idf, s.return_period_yr, s.duration_min, r=s.r, step_min=s.step_min)


def _forecast(city, s: DemoSettings, out: Path, ctx):
    """The ensemble forecast issued at time 0; returns (forecast, risk table, plan)."""
    from hydraulics.build import DEFAULT_START
    from hydraulics.forecast import compute_issue_state, run_forecast
    from hydraulics.plan import PlanRules, build_plan, write_plan_json
    from hydraulics.qpf import perturb_qpf
    from hydraulics.risk import compute_risk
    from hydraulics.qpf import design_storm_qpf

    out.mkdir(parents=True, exist_ok=True)
    gauges = [str(g) for g in city.sensors.index[city.sensors["sensor_type"] == "rain_gauge"]]
    state = compute_issue_state(city, None, DEFAULT_START + pd.Timedelta(hours=1), out / "state.hsf", ctx=ctx)
    base = design_storm_qpf(s.idf, s.return_period_yr, s.duration_min * 60.0, s.storm_start_h * 3600.0, s.step_min)
    ens = perturb_qpf(base, s.members, seed=s.seed, gauges=gauges or None)
    fc = run_forecast(city, state, ens, horizon_h=s.hours, out_dir=out, settings=s.forecast_settings,
                      max_workers=s.workers, threshold_m=s.threshold_m, ctx=ctx)
    risk = compute_risk(fc, threshold_m=s.threshold_m, prob_threshold=s.prob_threshold, city=city)
    tmp = out / "risk_points.csv.part"
    risk.to_csv(tmp)
    tmp.replace(out / "risk_points.csv")
    plan = build_plan(risk, city, rules=PlanRules(prob_threshold=s.prob_threshold))
    write_plan_json(plan, out / "plan.json")
    return fc, risk, plan


def staging_table(risk: pd.DataFrame) -> pd.DataFrame:
    """The forecast's risk table on the coupled run's clock (issue time = 0 s).

    ``onset_s`` is the lead time, so :func:`twin.staging.read_risk_points`
    needs no calendar day.
    """
    t = risk.reset_index()
    t["onset_s"] = pd.to_numeric(t["lead_h"], errors="coerce") * 3600.0
    cols = ["kind", "element_id", "probability", "expected_max_depth_m", "onset_s", "is_risk_point"]
    return t[cols + [c for c in ("x", "y") if c in t.columns]]  # where a crew goes (sag points have no layer)


@contextlib.contextmanager
def _watch_members(folder: Path, n: int, progress: Callable[[float], None], poll_s: float = 1.0):
    """Report the share of members finished (their files stream to ``folder``) while the forecast runs.

    :func:`hydraulics.forecast.run_forecast` only offers its own tqdm bar; the
    demo has one bar for the whole job, so it watches the member files instead.
    """
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(poll_s):
            done = len(list(folder.glob("member_*_series.parquet"))) if folder.is_dir() else 0
            progress(0.1 + 0.9 * done / max(n, 1))

    th = threading.Thread(target=watch, name="demo-forecast-progress", daemon=True)
    th.start()
    try:
        yield
    finally:
        stop.set()
        th.join()


def _fmt_min(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v / 60:.1f} min"


def _num(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.0f}" if float(v) == int(v) else f"{v:.1f}"


def run_demo_job(out_dir: str | Path = "twin-demo", *, settings: DemoSettings | None = None, quick: bool = False,
                 progress: Callable[[str, float], None] | None = None) -> DemoResult:
    """Run the demo's main job and write its files to ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Output directory: created, or an empty folder (kept), or an earlier
        demo's folder (replaced whole); anything else is refused before any work.
    settings : DemoSettings, optional
        Default :func:`demo_settings` (``quick`` as given).
    quick : bool
        Small, fast settings (tests).
    progress : callable, optional
        Called with (stage label, fraction of the whole job done 0-1).

    Returns
    -------
    DemoResult
    """
    import dataclasses

    from gisdata.paths import StagedDir

    # Checked first and written through a staging folder: an earlier demo is replaced whole, a killed one
    # leaves nothing that looks complete, a folder holding anything else is refused.
    final = Path(out_dir)
    with StagedDir(final, "--out", replace=True, is_ours=_is_demo_dir) as stage:
        res = _run_demo_in(stage.path, settings=settings, quick=quick, progress=progress)
        stage.commit(last=("demo.json",))
    files = {k: final / Path(v).relative_to(stage.path) for k, v in res.files.items()}
    return dataclasses.replace(res, out_dir=final, files=files)


DEMO_PATTERNS = ("demo.json", "report.html", "city.png", "city.html", "flood_risk.png", "depth_series.tif", "forecast",
                 "forecast/*", ".*")
"""What a demo folder may hold: an earlier one is replaced only if it holds nothing else."""


def _is_demo_dir(path: Path) -> bool:
    from gisdata.paths import holds_only

    return holds_only(path, DEMO_PATTERNS, marker="demo.json")


def _run_demo_in(out: Path, *, settings: DemoSettings | None, quick: bool,
                 progress: Callable[[str, float], None] | None) -> DemoResult:
    """The demo written into ``out`` (a staging folder); ``demo.json`` last."""
    from agents import DispatchConfig, ReportingConfig, VendorPolicy, flatten_kpis
    from gisdata import load_city
    from hydraulics.ensemble import build_surface_context
    from hydraulics.risk import plot_hydrographs, summary_line
    from twin.coupler import CouplingOptions, compute_flood_schedule, run_coupled
    from twin.staging import read_risk_points
    from twin.viz.map2d import write_city_html, write_city_png
    from twin.viz.report import write_demo_map_png, write_report

    s = settings or demo_settings(quick=quick)
    # Shares of the wall time measured on 2 cores (the forecast dominates: ~70 of ~100 s).
    stages = [("loading the city", 0.01), ("drawing the map", 0.02), ("building the 3D scene", 0.03),
              ("forecast (ensemble)", 0.68), ("storm hydraulics", 0.13), ("dispatch: siloed", 0.06),
              ("dispatch: staging", 0.06), ("writing the report", 0.01)]
    done = [0.0]
    timings: dict[str, float] = {}

    def stage(k: int):
        label, share = stages[k]
        base = done[0]
        if progress is not None:
            progress(label, base)

        def sub(f: float) -> None:
            if progress is not None:
                progress(label, base + share * min(max(f, 0.0), 1.0))
        return label, share, sub

    def finish(label: str, share: float, t0: float) -> None:
        timings[label] = round(time.perf_counter() - t0, 2)
        done[0] += share
        if progress is not None:
            progress(label, done[0])

    t0 = time.perf_counter()
    label, share, _ = stage(0)
    city = load_city(s.city)
    finish(label, share, t0)

    t0 = time.perf_counter()
    label, share, _ = stage(1)
    city_png = write_city_png(city, out / "city.png")
    finish(label, share, t0)

    t0 = time.perf_counter()
    label, share, _ = stage(2)
    city_html = write_city_html(city, out / "city.html")
    finish(label, share, t0)

    t0 = time.perf_counter()
    label, share, sub = stage(3)
    ctx = build_surface_context(city)
    with _watch_members(out / "forecast" / "members", s.members, sub):
        fc, risk, plan = _forecast(city, s, out / "forecast", ctx)
    fc_line = summary_line(risk)
    hydro_png = plot_hydrographs(fc, risk, out / "forecast" / "hydrographs.png")
    finish(label, share, t0)

    t0 = time.perf_counter()
    label, share, sub = stage(4)
    opts = CouplingOptions(**s.coupling)
    rain = _storm(s)
    flood = compute_flood_schedule(city, rain, start_s=s.storm_start_h * 3600.0, hours=s.hours, options=opts,
                                   progress=sub)
    finish(label, share, t0)

    agent_kw = {"dispatch_config": DispatchConfig(), "reporting": ReportingConfig(),
                "vendor_policy": VendorPolicy(), "n_shifts": s.n_shifts, "tick_s": s.tick_s,
                "n_citizens": s.n_citizens, "n_vendors": s.n_vendors}
    points = read_risk_points(staging_table(risk), city, top_k=s.staging_points)
    runs = {}
    for k, strategy in ((5, "siloed"), (6, "forecast_staging")):
        t0 = time.perf_counter()
        label, share, sub = stage(k)
        runs[strategy] = run_coupled(city, hours=s.hours, strategy=strategy, seed=s.seed, flood=flood,
                                     options=opts, progress=sub,
                                     risk_points=points if strategy == "forecast_staging" else None, **agent_kw)
        finish(label, share, t0)

    t0 = time.perf_counter()
    label, share, _ = stage(7)
    kpis = {name: flatten_kpis(r.kpis) for name, r in runs.items()}
    for name, r in runs.items():
        kpis[name]["flood_incidents"] = r.hydraulics.get("flood_incidents")
    map_png = write_demo_map_png(city, risk, flood.depths, out / "flood_risk.png",
                                 title=f"{city.name}: maximum street depth (2D surface) and forecast risk")
    if flood.depths is not None:
        from hydraulics.depth_series import FILE_NAME

        flood.depths.write(out / FILE_NAME)
    base, stag = kpis["siloed"], kpis["forecast_staging"]
    rp = risk[risk["is_risk_point"]]
    if len(rp):
        first = rp.sort_values("lead_h", kind="stable").iloc[0]
        first_txt = f"first expected at {pd.Timestamp(first['onset']):%Y-%m-%d %H:%M} (lead {first['lead_h']:.1f} h)"
    else:
        first_txt = "none expected"
    headline = [
        (f"forecast: {len(rp)} risk points in the next {s.hours:g} h; {first_txt}; "
        f"{len(fc.ok_members)} members, issued {pd.Timestamp(fc.issue_time):%Y-%m-%d %H:%M}"),
        (f"storm: {rain.label}, from {s.storm_start_h:g} h; {flood.hydraulics.get('flood_volume_m3', 0):,.0f} m3 "
         f"spilled onto the streets, {len(flood.incidents)} flood incidents; mass balance "
         f"{100 * flood.hydraulics.get('mass_balance_error_rel', float('nan')):+.3f} %"),
        (f"response p90: siloed {_fmt_min(base.get('response.all:all.response_s.p90'))} vs staging "
        f"{_fmt_min(stag.get('response.all:all.response_s.p90'))} (p50 "
        f"{_fmt_min(base.get('response.all:all.response_s.p50'))} vs {_fmt_min(stag.get('response.all:all.response_s.p50'))})"),
        (f"duplicate dispatches: siloed {_num(base.get('duplicates.dispatches'))} vs staging "
        f"{_num(stag.get('duplicates.dispatches'))}; coordination time {_num(base.get('coordination.total_h'))} h vs "
        f"{_num(stag.get('coordination.total_h'))} h"),
    ]
    staging_info = runs["forecast_staging"].metadata.get("staging", {})
    timings_so_far = dict(timings)
    report = write_report(out / "report.html", city=city, summary=city.summary(), risk=risk,
                          forecast_line=fc_line, kpis=kpis, headline=headline,
                          images={"map": map_png, "hydrographs": hydro_png, "city": city_png},
                          scene_html=city_html, plan=plan, staging=staging_info,
                          settings=s.__dict__, timings=timings_so_far)
    finish(label, share, t0)
    (out / "demo.json").write_text(json.dumps({"headline": headline, "forecast": fc_line, "kpis": kpis,
                                               "timings_s": timings, "settings": s.__dict__}, indent=1,
                                              default=str))
    files = {"report": report, "city_png": city_png, "city_html": city_html, "map_png": map_png,
             "hydrographs_png": hydro_png, "risk_points": out / "forecast" / "risk_points.csv",
             "plan": out / "forecast" / "plan.json"}
    return DemoResult(out, files, city.summary(), risk, fc_line, kpis, headline, timings, s)


__all__ = ["DEMO_SCENARIO", "DemoJobError", "DemoResult", "DemoSettings", "demo_settings", "run_demo_job",
           "staging_table"]
