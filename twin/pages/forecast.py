"""Flood forecast page: a 72 h ensemble waterlogging forecast, its risk map, ranked risk points and plan.

The rain forecast is a design storm, an uploaded QPF CSV (both perturbed into
an ensemble by the seeded error model) or uploaded member CSVs.  The run is
:func:`twin.forecast_job.run_forecast_job` -- the job ``twin forecast``
runs -- in its own process, while the page shows members finishing
on a progress bar.  The member runs are kept in the session, so changing the
depth or probability threshold afterwards only re-ranks the points
(:func:`twin.forecast_job.reduce_forecast`) without running SWMM again.

The functions above "the page" are plain tables, charts and map layers
(they call no Streamlit), tested on their own.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable

import numpy as np
import pandas as pd
import streamlit as st

from gisdata.city import CityTwin
from twin.app_support import error_text, persistent
from twin.i18n import t
from twin.pages.maps import map_downloads, map_legend
from twin.viz.risk_map import format_time, risk_deck

RAIN_KINDS = ("storm", "qpf", "ensemble")
"""Rain forecasts the page offers: a design storm, a QPF CSV, member CSVs."""
RETURN_PERIODS_YR = [1, 2, 3, 5, 10, 20, 50, 100]
DURATIONS_MIN = [30, 60, 90, 120, 180, 360]
START_IN_H = [0, 1, 2, 3, 6, 12, 24, 36, 48, 60]
HORIZONS_H = [6, 12, 24, 48, 72]
CSV_UNITS = ["mm_h", "mm", "in_h", "in"]
THRESHOLDS_M = [0.05, 0.10, 0.15, 0.20, 0.30, 0.50]
PROB_THRESHOLDS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
FORECASTS_KEPT = 3
"""Forecasts a session keeps (their member runs), so going back to one needs no new run."""
REDUCTIONS_KEPT = 6
"""Threshold pairs a forecast keeps reduced (risk table, plan, hydrograph PNG)."""


# ----------------------------------------------------------------------------- tables and charts


def ensemble_key(city_key: str, ensemble, **options) -> str:
    """A digest naming one forecast run: the city, every member's rain and weight, and the run options.

    Examples
    --------
    >>> from hydraulics.qpf import design_storm_qpf, perturb_qpf
    >>> ens = perturb_qpf(design_storm_qpf("beijing", 5, 3600, 0), 2, seed=1)
    >>> ensemble_key("tiny", ens, hours=6) == ensemble_key("tiny", ens, hours=6) != ensemble_key("tiny", ens, hours=12)
    True
    """
    from twin.flood_event import rain_key

    h = hashlib.sha1(city_key.encode("utf-8"))
    for name, weight, member in zip(ensemble.names, ensemble.weights, ensemble.members):
        h.update(f"{name}|{weight:.12g}|{rain_key(member)}\n".encode())
    h.update(repr(sorted(options.items())).encode())
    return h.hexdigest()[:16]


def ensemble_frame(ensemble, horizon_h: float) -> pd.DataFrame:
    """The members' rain (mean over gauges) within the horizon, long format.

    Returns
    -------
    DataFrame
        ``member``, ``lead_h`` (start of each step, h from issue), ``intensity_mm_h``.
    """
    rows = []
    for name, m in zip(ensemble.names, ensemble.members):
        lead_h = np.asarray(m.intensity_mm_h.index, dtype=float) / 3600.0
        keep = lead_h < horizon_h
        rows.append(pd.DataFrame({"member": name, "lead_h": lead_h[keep],
                                  "intensity_mm_h": m.intensity_mm_h.mean(axis=1).to_numpy()[keep]}))
    return pd.concat(rows, ignore_index=True)


def ensemble_summary(ensemble, horizon_h: float, lang: str = "en") -> str:
    """One line: how many members, and their rain depth within the horizon (min, mean, max, mm)."""
    df = ensemble_frame(ensemble, horizon_h)
    step_h = (ensemble.members[0].step_s or 3600) / 3600.0
    depth = df.groupby("member", sort=False)["intensity_mm_h"].sum() * step_h
    return t("forecast.ensemble_summary", lang, n=len(ensemble), lo=f"{depth.min():.1f}",
             mean=f"{depth.mean():.1f}", hi=f"{depth.max():.1f}", hours=f"{horizon_h:g}")


def ensemble_chart(ensemble, horizon_h: float, *, lang: str = "en", height_px: int = 280):
    """Every member's rain intensity over lead time (grey) and the weighted mean (blue), Altair."""
    import altair as alt

    df = ensemble_frame(ensemble, horizon_h)
    w = dict(zip(ensemble.names, ensemble.weights))
    mean = (df.assign(w=df["member"].map(w) * df["intensity_mm_h"]).groupby("lead_h", as_index=False)["w"].sum()
            .rename(columns={"w": "intensity_mm_h"}))
    x = alt.X("lead_h:Q", title=t("forecast.chart.lead_h", lang), scale=alt.Scale(domain=[0, horizon_h]))
    y = alt.Y("intensity_mm_h:Q", title=t("forecast.chart.intensity_mm_h", lang))
    members = alt.Chart(df).mark_line(color="#868e96", opacity=0.45, strokeWidth=1, interpolate="step-after").encode(
        x, y, detail="member:N", tooltip=[alt.Tooltip("member:N", title=t("forecast.chart.member", lang)),
                                          alt.Tooltip("lead_h:Q", format=".2f"),
                                          alt.Tooltip("intensity_mm_h:Q", format=".1f")])
    line = alt.Chart(mean).mark_line(color="#1c7ed6", strokeWidth=2.5, interpolate="step-after").encode(x, y)
    return (members + line).properties(height=height_px, title=t("forecast.chart.title", lang))


def progress_text(progress, lang: str = "en") -> str:
    """The progress bar's text for a :class:`twin.forecast_job.JobProgress`."""
    text = (t("forecast.progress.members", lang, done=progress.done, total=progress.total)
            if progress.stage == "members" else t(f"forecast.progress.{progress.stage}", lang))
    return t("forecast.progress.elapsed", lang, text=text, s=f"{progress.elapsed_s:.0f}")


def risk_table_display(risk: pd.DataFrame, lang: str = "en") -> pd.DataFrame:
    """The ranked risk table with translated headers and kinds; times as text, numbers rounded."""
    return pd.DataFrame({
        t("forecast.col.rank", lang): risk["rank"].to_numpy(),
        t("forecast.col.kind", lang): [t(f"forecast.kind.{k}", lang) for k in risk["kind"].astype(str)],
        t("forecast.col.element_id", lang): risk["element_id"].astype(str).to_numpy(),
        t("forecast.col.probability", lang): risk["probability"].round(3).to_numpy(),
        t("forecast.col.expected_max_depth_m", lang): risk["expected_max_depth_m"].round(3).to_numpy(),
        t("forecast.col.p90_max_depth_m", lang): risk["p90_max_depth_m"].round(3).to_numpy(),
        t("forecast.col.onset", lang): [format_time(v) for v in risk["onset"]],
        t("forecast.col.lead_h", lang): risk["lead_h"].round(2).to_numpy(),
        t("forecast.col.duration_h", lang): risk["duration_h"].round(2).to_numpy(),
        t("forecast.col.is_risk_point", lang): risk["is_risk_point"].to_numpy(dtype=bool),
    })


PROBABILITY_STEP_NEEDED = 0.05
"""Coarsest probability step shown without a warning (20 equal members)."""


def probability_step(forecast) -> float:
    """The smallest probability one member adds (its weight): a point's probability moves in these steps."""
    w = [float(v) for v in forecast.weights.values()]
    return min(w) if w else 1.0


def forecast_metrics(forecast, risk: pd.DataFrame, lang: str = "en") -> list[tuple[str, str]]:
    """Headline figures as (label, value): risk points, lead of the first, members run, run time."""
    rp = risk[risk["is_risk_point"]]
    first = "-" if rp.empty or rp["lead_h"].isna().all() else f"{rp['lead_h'].min():.1f}"
    n = len(forecast.members)
    return [
        (t("forecast.metric.risk_points", lang), f"{len(rp):,}"),
        (t("forecast.metric.first_lead_h", lang), first),
        (t("forecast.metric.members", lang), t("forecast.metric.members_value", lang, ok=len(forecast.ok_members), n=n)),
        (t("forecast.metric.wall_s", lang), f"{forecast.meta.get('wall_s', float('nan')):.1f}"),
    ]


def plan_tasks_display(plan: dict, lang: str = "en") -> pd.DataFrame:
    """Every task of the plan, department by department, in deadline order (translated headers)."""
    cols = ["department", "by", "action", "point", "depot", "leave_by", "travel_min", "status"]
    rows = [{"department": t(f"department.{dept}", lang), "by": format_time(a["by"]), "action": a["action"],
             "point": a["point_id"], "depot": a.get("depot_name") or a.get("depot_id") or "-",
             "leave_by": format_time(a.get("leave_by")), "travel_min": a.get("travel_min"),
             "status": t(f"forecast.plan.status.{a.get('status', 'assigned')}", lang)}
            for dept, tasks in plan["departments"].items() for a in tasks]
    df = pd.DataFrame(rows, columns=cols)
    return df.rename(columns={c: t(f"forecast.plan.col.{c}", lang) for c in cols})


def plan_roads_display(plan: dict, lang: str = "en") -> pd.DataFrame:
    """The roads the plan closes: road, name, closure state, P90 depth (m), close-by time."""
    cols = ["road", "name", "status", "depth", "close_by"]
    rows = [{"road": c["road_id"], "name": c["name"], "status": t(f"flood.status.{c['status']}", lang),
             "depth": c["p90_depth_m"], "close_by": format_time(c["close_by"])} for c in plan["roads_to_close"]]
    df = pd.DataFrame(rows, columns=cols)
    return df.rename(columns={c: t(f"forecast.plan.col.{c}", lang) for c in cols})


# ----------------------------------------------------------------------------- the page


def _outputs_bundle(outputs) -> dict:
    """What the page shows and offers for download from one reduction (plain data, files read)."""
    from pathlib import Path

    return {"risk": outputs.risk, "plan": outputs.plan, "summary": outputs.summary,
            "png": Path(outputs.files["hydrographs"]).read_bytes(),
            "plan_json": json.dumps(outputs.plan, indent=1, ensure_ascii=False),
            "plan_html": outputs.standalone_plan_html()}


def reduce_bundle(forecast, city: CityTwin, threshold_m: float, prob_threshold: float, lang: str = "en") -> dict:
    """:func:`twin.forecast_job.reduce_forecast` in a scratch folder, returned as a bundle (no files left)."""
    from twin.forecast_job import reduce_forecast

    with tempfile.TemporaryDirectory(prefix="citytwin-forecast-") as tmp:
        return _outputs_bundle(reduce_forecast(forecast, city, tmp, threshold_m=threshold_m,
                                               prob_threshold=prob_threshold, lang=lang))


@st.cache_resource(show_spinner=False, max_entries=2)
def _cached_city(source: str) -> CityTwin:
    from gisdata.city import load_city

    return load_city(source)


@st.cache_data(show_spinner=False, max_entries=8)
def _cached_ensemble(key: tuple, _qpf_or_files, kind: str, members: int, seed: int, _city: CityTwin):
    """The ensemble of the chosen rain (``key`` names it; the underscored arguments are not hashed)."""
    from twin import forecast_job as job

    if kind == "ensemble":
        return job.read_uploaded_ensemble(_qpf_or_files, issue_time=job.dry_issue_time(),
                                          gauges=job.city_gauges(_city))
    return job.make_ensemble(_city, qpf=_qpf_or_files, members=members, seed=seed)


@st.cache_data(show_spinner=False, max_entries=8)
def _cached_qpf_upload(key: str, name: str, _data: bytes, units: str, gauges: tuple | None):
    from twin import forecast_job as job

    return job.read_uploaded_qpf(name, _data, units=units, issue_time=job.dry_issue_time(),
                                 gauges=list(gauges) if gauges else None)


@st.cache_resource(show_spinner=False, max_entries=8)
def _cached_deck(key: str, _city: CityTwin, _risk: pd.DataFrame, lang: str):
    return risk_deck(_city, _risk, lang=lang)


def render(lang: str, *, choice: Callable) -> None:
    """The Flood forecast page.

    Parameters
    ----------
    lang : str
        ``"en"`` or ``"zh"``.
    choice : callable
        The app's translated selection widget (``app.choice``), which keeps a
        choice when the language changes.
    """
    from gisdata.errors import TwinError
    from twin import app_support as support

    source = support.app_city_source()
    with st.spinner(t("city.loading", lang)):
        try:
            city = _cached_city(source)
        except TwinError as exc:
            st.error(error_text(exc, lang))
            return
    st.subheader(t("forecast.header", lang, name=city.name))
    st.caption(t("forecast.caption", lang))
    kind = choice(st.radio, t("forecast.rain_source", lang), list(RAIN_KINDS), name="fc_rain", lang=lang,
                  horizontal=True, format_func=lambda k: t(f"forecast.rain.{k}", lang))
    options = _choose_options(lang, choice, from_files=kind == "ensemble")
    ens = _choose_ensemble(lang, choice, kind, city, source, options)
    if ens is None:
        return
    st.caption(ensemble_summary(ens, options["hours"], lang))
    st.altair_chart(ensemble_chart(ens, options["hours"], lang=lang), width="stretch", height=280)

    r1, r2 = st.columns(2)
    with r1:
        threshold = st.select_slider(t("forecast.threshold_m", lang), THRESHOLDS_M, value=0.15,
                                     **persistent("fc_threshold"))
    with r2:
        prob = st.select_slider(t("forecast.prob_threshold", lang), PROB_THRESHOLDS, value=0.5,
                                **persistent("fc_prob"))
    thresholds = (float(threshold), float(prob), lang)  # the plan is written in the page's language
    run_key = ensemble_key(source, ens, hours=options["hours"], settings=options["settings"])
    runs = st.session_state.setdefault("fc_runs", {})
    if st.button(t("forecast.run", lang), type="primary", key="fc_run"):
        run = _run(lang, city, ens, options, thresholds)
        if run is None:
            return
        support.keep_latest(runs, run_key, run, FORECASTS_KEPT)
        _save(lang, run, source, options, thresholds,
              st.session_state.get("fc_storm_params") if kind == "storm" else {"kind": kind})
    run_key, run, stale = support.shown_result(runs, run_key, st.session_state, "fc_shown")
    if run is None:
        st.info(t("forecast.not_run", lang))
        return
    if stale:
        st.warning(t("state.stale", lang))
        thresholds = next(iter(run["bundles"]))  # the old results as they were shown
    # New thresholds only re-rank the points of the runs already made (no SWMM).
    bundles = run["bundles"]
    if thresholds not in bundles:
        with st.spinner(t("forecast.rethreshold", lang)):
            support.keep_latest(bundles, thresholds, reduce_bundle(run["forecast"], city, *thresholds),
                                REDUCTIONS_KEPT)
    show_forecast(lang, run_key, city, run["forecast"], bundles[thresholds])


def _choose_options(lang: str, choice: Callable, *, from_files: bool) -> dict:
    """The run options row: horizon (h), members, seed and run settings (members and seed off for files)."""
    from hydraulics.forecast import SETTINGS

    c1, c2, c3, c4 = st.columns(4)
    with c1:
        hours = st.select_slider(t("forecast.hours", lang), HORIZONS_H, value=72, **persistent("fc_hours"))
    with c2:
        members = st.number_input(t("forecast.members", lang), min_value=1, max_value=50, value=10, step=1,
                                  disabled=from_files, **persistent("fc_members"))
    with c3:
        seed = st.number_input(t("forecast.seed", lang), min_value=0, value=0, step=1, disabled=from_files,
                               **persistent("fc_seed"))
    with c4:
        settings = choice(st.selectbox, t("forecast.settings", lang), list(SETTINGS), name="fc_settings", lang=lang,
                          default="skipdry", format_func=lambda k: t(f"forecast.settings.{k}", lang))
    return {"hours": float(hours), "members": int(members), "seed": int(seed), "settings": settings}


def _choose_ensemble(lang: str, choice: Callable, kind: str, city: CityTwin, source: str, options: dict):
    """The rain ensemble of ``kind`` (:data:`RAIN_KINDS`), or None (with a hint or the reader's error shown)."""
    from gisdata.errors import TwinError
    from twin import app_support as support
    from twin.forecast_job import city_gauges

    gauges = tuple(city_gauges(city) or ())
    members, seed = options["members"], options["seed"]
    try:
        if kind == "storm":
            base, key = _choose_storm(lang, choice, options["hours"])
            return _cached_ensemble((source, *key, gauges), base, kind, members, seed, city)
        if kind == "qpf":
            units = choice(st.selectbox, t("flood.csv_units", lang), CSV_UNITS, name="fc_units", lang=lang,
                           format_func=lambda u: t(f"flood.csv_unit.{u}", lang))
            upload = st.file_uploader(t("forecast.upload_qpf", lang), type=["csv", "txt"], key="fc_qpf_file",
                                      max_upload_size=support.upload_limit_mb("qpf"))
            if upload is None:
                st.info(t("forecast.upload_hint", lang))
                return None
            ((name, data),) = support.read_uploads([upload], "qpf")  # size-checked before it is read
            ukey = support.upload_key([(name, data)])
            base = _cached_qpf_upload(ukey, name, data, units, gauges or None)
            return _cached_ensemble((source, "qpf", ukey, units, gauges), base, kind, members, seed, city)
        uploads = st.file_uploader(t("forecast.upload_members", lang), type=["csv", "txt"],
                                   accept_multiple_files=True, key="fc_member_files",
                                   max_upload_size=support.upload_limit_mb("members"))
        if not uploads:
            st.info(t("forecast.upload_hint", lang))
            return None
        files = support.read_uploads(uploads, "members", max_files=support.MAX_MEMBER_FILES)
        return _cached_ensemble((source, "ensemble", support.upload_key(files), gauges), files, kind, 0, 0, city)
    except TwinError as exc:
        st.error(t("forecast.qpf_error", lang, error=error_text(exc, lang)))
        return None


def _choose_storm(lang: str, choice: Callable, hours: float):
    """The design storm's widgets; returns its lead-indexed QPF and a hashable key naming it."""
    from hydraulics.qpf import design_storm_qpf
    from hydraulics.rainfall import IDF_PRESETS

    s1, s2, s3, s4 = st.columns(4)
    with s1:
        idf = choice(st.selectbox, t("flood.idf", lang), list(IDF_PRESETS), name="fc_idf", lang=lang,
                     format_func=lambda k: t(f"flood.idf.{k}", lang))
    with s2:
        period = st.select_slider(t("flood.return_period_yr", lang), RETURN_PERIODS_YR, value=50,
                                   **persistent("fc_period"))
    with s3:
        duration = st.select_slider(t("flood.duration_min", lang), DURATIONS_MIN, value=180,
                                     **persistent("fc_duration"))
    with s4:
        start_h = st.select_slider(t("forecast.start_in_h", lang), START_IN_H, value=48, **persistent("fc_start_h"))
    if start_h >= hours:
        st.warning(t("forecast.storm_after_horizon", lang, start=start_h, hours=f"{hours:g}"))
    st.session_state["fc_storm_params"] = {"kind": "chicago", "idf": idf, "return_period_yr": period,
                                           "duration_min": duration, "start_h": start_h}
    qpf = design_storm_qpf(idf, float(period), duration * 60.0, start_h * 3600.0)
    return qpf, ("storm", idf, period, duration, start_h)


def _run(lang: str, city: CityTwin, ens, options: dict, thresholds: tuple[float, float]) -> dict | None:
    """Run the forecast in its own process behind a progress bar; the run to keep, or None (error shown)."""
    from gisdata.errors import TwinError
    from twin.forecast_job import run_forecast_job_in_process

    bar = st.progress(0.0, text=t("forecast.progress.start", lang))
    try:
        with tempfile.TemporaryDirectory(prefix="citytwin-forecast-") as tmp:
            res = run_forecast_job_in_process(
                city, tmp, ensemble=ens, hours=options["hours"], settings=options["settings"],
                threshold_m=thresholds[0], prob_threshold=thresholds[1], lang=lang,
                on_progress=lambda p: bar.progress(min(p.fraction, 1.0), text=progress_text(p, lang)))
            bundle = _outputs_bundle(res.outputs)  # read the files before the folder goes
    except TwinError as exc:
        st.error(t("forecast.error", lang, error=error_text(exc, lang)))
        return None
    finally:
        bar.empty()
    return {"forecast": res.forecast, "bundles": {thresholds: bundle}}


def _save(lang: str, run: dict, source: str, options: dict, thresholds: tuple, storm: dict | None) -> None:
    """Store a forecast in the workspace run store (kind ``forecast``): risk table, members, plan and summary."""
    from gisdata.errors import TwinError
    from twin import app_support as support
    from twin.runstore import new_run_id, write_result_run

    bundle = next(iter(run["bundles"].values()))
    members = run["forecast"].members
    try:
        root = support.runs_dir()
        root.mkdir(parents=True, exist_ok=True)
        out = write_result_run(
            root / new_run_id("forecast"), kind="forecast", tables={"risk": bundle["risk"], "members": members},
            params={"city": source, "hours": options["hours"], "members": len(members), "seed": options["seed"],
                    "settings": options["settings"], "storm": storm, "threshold_m": thresholds[0],
                    "prob_threshold": thresholds[1]},
            files={"plan.json": bundle["plan_json"], "plan.html": bundle["plan_html"],
                   "summary.txt": str(bundle["summary"]), "hydrographs.png": bundle["png"]})
    except (TwinError, OSError) as exc:
        st.warning(t("run.save_error", lang, error=error_text(exc, lang).replace(str(support.workspace_root()), ".")))
        return
    st.caption(t("run.saved", lang, run=out.name))


def show_forecast(lang: str, run_key: str, city: CityTwin, forecast, bundle: dict) -> None:
    """The results of one forecast: headline figures, downloads, map, risk table, hydrographs and plan."""
    risk, plan = bundle["risk"], bundle["plan"]
    for column, (label, value) in zip(st.columns(4), forecast_metrics(forecast, risk, lang)):
        column.metric(label, value)
    st.info(t("forecast.summary_line", lang, line=bundle["summary"]))
    step = probability_step(forecast)
    if step > PROBABILITY_STEP_NEEDED + 1e-9:
        st.warning(t("forecast.coarse_probability", lang, step=f"{step:.2f}", n=len(forecast.weights),
                     need=f"{PROBABILITY_STEP_NEEDED:.2f}", members=round(1 / PROBABILITY_STEP_NEEDED)))
    failed = forecast.members[forecast.members["status"] != "ok"]
    if len(failed):
        st.warning(t("forecast.failed_members", lang, n=len(failed), names=", ".join(map(str, failed.index[:5]))))
    with st.container(horizontal=True):
        st.download_button(t("forecast.download.json", lang), bundle["plan_json"], file_name="plan.json",
                           mime="application/json", key="fc_dl_json", on_click="ignore", icon=":material/download:")
        st.download_button(t("forecast.download.html", lang), bundle["plan_html"], file_name="plan.html",
                           mime="text/html", key="fc_dl_html", on_click="ignore", icon=":material/download:")
    from twin.app_support import kept_tabs

    tab_map, tab_table, tab_hydro, tab_plan = kept_tabs(
        ["map", "table", "hydrographs", "plan"],
        [t("forecast.tab.map", lang), t("forecast.tab.table", lang), t("forecast.tab.hydrographs", lang),
         t("forecast.tab.plan", lang)], key="fc_tab", lang=lang)
    thr = risk.attrs.get("threshold_m", 0.15)
    p = risk.attrs.get("prob_threshold", 0.5)
    with tab_map:
        deck_key = f"{run_key}:{thr}:{p}"
        deck = _cached_deck(deck_key, city, risk, lang)
        st.pydeck_chart(deck, height=600)
        map_legend(deck, lang, note=t("forecast.legend.shapes", lang))
        st.caption(t("forecast.map_hint", lang))
        map_downloads(deck, name="forecast-map", cache_key=f"forecast:{deck_key}", lang=lang,
                      title=t("forecast.map_title", lang, name=city.name, threshold=f"{thr:g}"))
    with tab_table:
        if len(risk):
            prob_col = t("forecast.col.probability", lang)
            st.dataframe(risk_table_display(risk, lang), hide_index=True, width="stretch", column_config={
                prob_col: st.column_config.ProgressColumn(prob_col, format="%.2f", min_value=0.0, max_value=1.0)})
            st.caption(t("forecast.table_hint", lang, threshold=f"{thr:g}", prob=f"{p:g}", n=len(forecast.ok_members)))
        else:
            st.info(t("forecast.no_depth", lang))
    with tab_hydro:
        st.image(bundle["png"], caption=t("forecast.hydrographs_caption", lang))
    with tab_plan:
        if not plan["n_risk_points"]:
            st.info(t("forecast.plan.none", lang))
        else:
            st.markdown(f"**{t('forecast.plan.roads', lang)}**")
            roads = plan_roads_display(plan, lang)
            if len(roads):
                st.dataframe(roads, hide_index=True, width="stretch")
            else:
                st.caption(t("flood.table.empty", lang))
            st.markdown(f"**{t('forecast.plan.tasks', lang)}**")
            st.dataframe(plan_tasks_display(plan, lang), hide_index=True, width="stretch")
            st.caption(t("forecast.plan.caption_translated", lang))
