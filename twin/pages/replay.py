"""Replay page: pick a stored run, move a time slider, see crews, vendors, incidents and water on the map and the KPIs at t.

When the run folder holds its street depth series (``depth_series.tif``), the map
shows the street water at t (the frame at or before t, in the fixed depth classes of
:mod:`twin.viz.depth_map`) over the roads and under the points, with its legend.
The map is :func:`twin.viz.replay_map.replay_deck` (incidents by status), with the
deck's legend and PNG / GeoJSON export under it (:mod:`twin.pages.maps`).

A toggle adds the 3D view at t (:func:`twin.viz.animation.replay_scene_html`):
the water on the ground, crews and incidents in the city scene.  Another plays the
run over time (:func:`twin.viz.replay_map.replay_player_html`: play / pause, a
slider and a speed, all in the page), drawn once per run, step and language.

Runs are listed from ``$CITYTWIN_RUNS_DIR`` (default ``runs``) or a folder typed in, which must lie
inside the workspace (:func:`twin.app_support.resolve_workspace_folder`).
Everything shown comes from :func:`twin.replay.state_at` (the event log and the stored series).
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from twin.app_support import persistent
from twin.i18n import t

KPI_KEYS = ("counts.reports", "counts.cases", "counts.dispatched", "response.all:all.response_s.p50",
            "response.all:all.response_s.p90", "duplicates.dispatches", "coordination.total_h", "unresolved.cases",
            "within_target.all")


@st.cache_resource(show_spinner=False, max_entries=2)
def _city(source: str):
    from gisdata.city import load_city

    return load_city(source)


@st.cache_data(show_spinner=False, max_entries=6)
def _scene_html(run: str, t_s: float, city_source: str, vertical_exaggeration: float, lang: str) -> str:
    """The run's 3D scene at ``t_s`` as one HTML page (:func:`twin.viz.animation.replay_scene_html`)."""
    from twin.viz.animation import replay_scene_html

    return replay_scene_html(_city(city_source), run, t_s, lang=lang, vertical_exaggeration=vertical_exaggeration)


@st.cache_resource(show_spinner=False, max_entries=2)
def _depth_series(run: str, mtime: float):
    """The run's street depth series, or None (``mtime`` keys the cache to the file's version)."""
    from twin.viz.animation import run_depth_series

    return run_depth_series(run)


PLAYER_STEP_S = 600.0
"""Time between two frames of the play/pause player, s."""
PLAYERS_KEPT = 4


@st.cache_resource(show_spinner=False)
def _players() -> dict:
    """Player pages already drawn, by (run, its version, step, language, city): shared by every session.

    A plain dict behind ``st.cache_resource`` rather than a cached function, because drawing
    one moves a progress bar made outside it (a cached function may not touch such elements).
    """
    return {}


def depth_series_of(run) -> tuple[object, float] | None:
    """(DepthSeries, file mtime) of a run folder that holds ``depth_series.tif``, else None.

    Raises
    ------
    TwinError
        The file is there but cannot be read.
    """
    from hydraulics.depth_series import FILE_NAME

    path = Path(run) / FILE_NAME
    if not path.is_file():
        return None
    mtime = path.stat().st_mtime
    return _depth_series(str(Path(run).resolve()), mtime), mtime


def _show_html(html: str, *, height: int) -> None:
    """Embed a whole HTML page in an iframe, as the City page does."""
    if hasattr(st, "iframe"):
        st.iframe(html, height=height)
    else:  # streamlit < 1.52
        import streamlit.components.v1 as components

        components.html(html, height=height)


def runs_root() -> Path:
    """Where the page looks for runs (as typed in its folder field by default)."""
    from twin.app_support import runs_dir_text

    return Path(runs_dir_text())


RUN_PARAM = "run"
"""The query parameter naming the run to open: ``/?page=replay&run=<run id>``."""


def runs_display(runs, *, lang: str):
    """The stored runs (:func:`twin.runstore.list_stored_runs`) with translated headers and kinds."""
    out = runs.drop(columns=["path"]).copy()
    out["kind"] = [t(f"replay.kind.{k}", lang) for k in out["kind"]]
    out["strategy"] = [", ".join(t(f"strategy.{s.strip()}", lang) if s.strip() else "" for s in str(v).split(","))
                       if v else "" for v in out["strategy"]]
    out["created"] = [str(c).replace("T", " ")[:19] for c in out["created"]]
    if "storm" in out.columns:
        from twin.flood_event import localize_storm_text

        out["storm"] = [localize_storm_text(str(v), lang) for v in out["storm"]]
    return out.rename(columns={c: t(f"replay.col.{c}", lang) for c in out.columns})


def _choose_run(lang: str, runs) -> Path:
    """The run folder picked in the selector; a run named in the URL (``?run=<id>``) is picked when the page opens."""
    paths = [Path(p) for p in runs["path"]]
    by_id = {p.name: p for p in paths}
    wanted = st.query_params.get(RUN_PARAM)
    if wanted and wanted != st.session_state.get("_replay_url_run"):
        st.session_state["_replay_url_run"] = wanted  # once per link: the selector stays free afterwards
        if wanted in by_id:
            st.session_state["replay_run"] = by_id[wanted]
        else:
            st.warning(t("replay.url_missing", lang, run=wanted))
    if st.session_state.get("replay_run") not in paths:
        st.session_state["replay_run"] = paths[0]
    rows = runs.set_index("run_id")
    run = st.selectbox(t("replay.run", lang), paths, **persistent("replay_run"), format_func=lambda p: t(
        "replay.run_option", lang, created=str(rows.at[p.name, "created"]).replace("T", " ")[:16],
        kind=t(f"replay.kind.{rows.at[p.name, 'kind']}", lang), run=p.name))
    st.query_params[RUN_PARAM] = run.name
    st.session_state["_replay_url_run"] = run.name
    return run


def render(lang: str) -> None:
    """The Replay page: every stored run, newest first; the chosen one opened as its kind."""
    from gisdata.errors import TwinError
    from twin import app_support as support
    from twin.runstore import list_stored_runs

    st.subheader(t("replay.header", lang))
    typed = st.text_input(t("replay.root", lang), value=str(runs_root()), **persistent("replay_root"))
    try:
        root = support.resolve_workspace_folder(typed)
    except TwinError as exc:
        st.error(t("workspace.refused", lang, error=support.error_text(exc, lang)))
        return
    runs = list_stored_runs(root)
    inside = {str(p) for p in support.keep_inside_workspace(runs["path"].tolist())}
    runs = runs[runs["path"].isin(inside)].reset_index(drop=True)
    if runs.empty:
        st.info(t("replay.none_any", lang, root=typed.strip() or "."))
        return
    with st.expander(t("replay.runs_title", lang, n=len(runs)), expanded=False):
        st.dataframe(runs_display(runs, lang=lang), hide_index=True, width="stretch")
    run = _choose_run(lang, runs)
    run_id = run.name
    row = runs.set_index("run_id").loc[run_id]
    st.caption(t("replay.link", lang, url=f"?page=replay&{RUN_PARAM}={run_id}"))
    try:
        {"simulation": show_simulation, "flood_event": show_flood_event, "forecast": show_forecast,
         "comparison": show_comparison, "sweep": show_sweep}[row["kind"]](lang, run)
    except TwinError as exc:
        st.error(support.error_text(exc, lang).replace(str(run.parent) + os.sep, ""))  # no server folders shown


def _run_city(params: dict):
    """(the city's source as resolved, the city or None) of a run's ``params["city"]`` (a file pointer, checked)."""
    from gisdata.errors import TwinError
    from twin import app_support as support

    city_src = str(params.get("city") or "")
    try:
        # the manifest's city is a file pointer: read only a preset, the built-in city, a workspace file, or a
        # file in the folder that holds the server's configured run store (the operator's, not a visitor's)
        roots = list(support.workspace_roots())
        if os.environ.get("CITYTWIN_RUNS_DIR", "").strip():
            roots.append(support.runs_dir().parent)
        city_src = support.resolve_city_field(city_src, roots=roots)
        return city_src, _city(city_src)
    except (TwinError, OSError):
        return city_src, None


def _time_slider(lang: str, label: str, run: Path, hours: float, default_min: int, key: str) -> int:
    """Minutes since the run's start, in 5-minute steps; kept while the same run is open."""
    top = max(int(hours * 60), 5)
    if st.session_state.get(f"{key}__run") != str(run) or key not in st.session_state:  # another run: its default
        st.session_state[f"{key}__run"] = str(run)
        st.session_state[key] = min(top, max(0, default_min - default_min % 5))
    return st.slider(label, 0, top, step=5, format=t("fmt.slider_min", lang), **persistent(key))


def show_simulation(lang: str, run: Path) -> None:
    """A coupled simulation: crews, incidents, vendors, closures and street water at a time, and KPIs up to it."""
    from twin.replay import format_state, horizon_s, kpi_table, load_run, state_at

    man = load_run(run)["manifest"]
    hz = horizon_s(run)
    p = man["params"]
    storm = p.get("storm")
    st.caption(t("replay.run_caption", lang, strategy=t(f"strategy.{p.get('strategy')}", lang), seed=p.get("seed"),
                 hours=p.get("hours"), city=Path(str(p.get("city") or "")).name,  # no server folders shown
                 storm=t("replay.no_storm", lang) if not storm else t("replay.storm", lang,
                                                                     rp=storm.get("return_period_yr"))))
    start = (storm or {}).get("start_s")
    default = int(start // 60) + 60 if start is not None else 8 * 60  # an hour into the storm, or 08:00
    minutes = _time_slider(lang, t("replay.time", lang), run, hz / 3600.0, default, "replay_minutes")
    state = state_at(run, minutes * 60.0)
    if state.missing:
        notes = [t(f"replay.missing.{k}", lang) for k, hit in (
            ("positions", "positions" in state.missing), ("crews", "crew_series" in state.missing),
            ("incidents", "incidents" in state.missing),
            ("cases", any(n in state.missing for n in ("reports", "cases", "dispatches")))) if hit]
        st.info(t("replay.missing", lang, tables=", ".join(state.missing), note="; ".join(notes)))
    st.markdown(t("replay.clock", lang, hhmm=f"{minutes // 60:02d}:{minutes % 60:02d}"))
    m1, m2, m3, m4, m5 = st.columns(5)
    busy = int((state.crews["status"] != "idle").sum()) if len(state.crews) else 0
    m1.metric(t("replay.metric.crews_busy", lang), f"{busy} / {len(state.crews)}")
    m2.metric(t("replay.metric.incidents", lang), len(state.incidents))
    m3.metric(t("replay.metric.vendors", lang), len(state.vendors))
    m4.metric(t("replay.metric.wet", lang), len(state.flood_nodes))
    m5.metric(t("replay.metric.closed", lang), len(state.roads_closed))
    city_src, city = _run_city(p)
    col_map, col_kpi = st.columns([3, 2])
    with col_map:
        if city is None:
            st.warning(t("replay.no_city", lang, city=Path(city_src).name))  # no server folders shown
        else:
            _show_state_map(lang, run, state, city, minutes, name="replay-map")
    with col_kpi:
        st.markdown(t("replay.kpis", lang))
        st.dataframe(kpi_table(state.kpis, KPI_KEYS, lang=lang), hide_index=True, width="stretch")
    if city is not None and st.toggle(t("replay.scene.show", lang), value=False,
                                     **persistent("replay_scene")):
        ve = st.select_slider(t("scene.vertical_exaggeration", lang), options=[1.0, 2.0, 3.0, 5.0, 10.0],
                              value=1.0, **persistent("replay_scene_ve"))
        with st.spinner(t("scene.building", lang)):
            html = _scene_html(str(Path(run).resolve()), minutes * 60.0, city_src, float(ve), lang)
        _show_html(html, height=650)
        st.caption(t("replay.scene.hint", lang))
    if city is not None:
        _player(lang, run, city, city_src)
    with st.expander(t("replay.text", lang)):
        st.code(format_state(state), language=None)


def show_flood_event(lang: str, run: Path) -> None:
    """A flood event: its street water over time on the map, the roads it closed and its summary."""
    import dataclasses
    import json

    import pandas as pd

    from twin.flood_event import localize_storm_text
    from twin.replay import load_run, read_run_file, run_tables, state_at
    from twin.runstore import storm_text

    man = load_run(run)["manifest"]
    p = man["params"]
    hours = float(p["hours"])
    st.caption(t("replay.flood.caption", lang, city=Path(str(p.get("city") or "")).name,
                 storm=localize_storm_text(storm_text(p.get("storm")), lang) or "-", hours=f"{hours:.1f}"))
    summary = json.loads(read_run_file(run, "summary.json")).get("summary", {})
    tables = run_tables(run)
    cols = st.columns(4)
    for col, key, fmt in zip(cols, ("flooded_nodes", "flood_volume_m3", "max_surface_depth_m", "roads_closed"),
                             ("{:,.0f}", "{:,.1f}", "{:.2f}", "{:,.0f}")):
        v = summary.get(key)
        col.metric(t(f"flood.summary.{key}", lang), "-" if v is None else fmt.format(v))
    minutes = _time_slider(lang, t("replay.flood.time", lang), run, hours, 60, "replay_flood_minutes")
    st.markdown(t("replay.clock", lang, hhmm=f"{minutes // 60:02d}:{minutes % 60:02d}"))
    roads = tables.get("roads", pd.DataFrame(columns=["depth_m", "status"]))
    closed = roads[roads["status"].astype(str) != "open"]
    city_src, city = _run_city(p)
    col_map, col_tab = st.columns([3, 2])
    with col_map:
        if city is None:
            st.warning(t("replay.no_city", lang, city=Path(city_src).name))
        else:
            state = dataclasses.replace(state_at(run, minutes * 60.0),
                                        roads_closed=closed[["status"]].rename_axis("road_id"))
            _show_state_map(lang, run, state, city, minutes, name="replay-flood-map")
            st.caption(t("replay.flood.legend", lang))
    with col_tab:
        st.markdown(t("replay.flood.closures", lang))
        if len(closed):
            st.dataframe(pd.DataFrame({
                t("map.id", lang): closed.index.astype(str),
                t("flood.road_depth_m", lang): closed["depth_m"].astype(float).round(3).to_numpy(),
                t("flood.road_status", lang): [t(f"flood.status.{s}", lang) for s in closed["status"].astype(str)],
            }).sort_values(t("flood.road_depth_m", lang), ascending=False), hide_index=True, width="stretch")
        else:
            st.caption(t("flood.table.empty", lang))
        st.markdown(t("replay.flood.summary", lang))
        from twin.app_support import _SUMMARY_ROWS  # the Flood event page's order

        order = [k for k, _ in _SUMMARY_ROWS]
        keys = [k for k in order if k in summary] + sorted(k for k in summary if k not in order)
        keys = [k for k in keys if f"flood.summary.{k}" in _catalogue()]
        st.dataframe(pd.DataFrame({t("stats.item", lang): [t(f"flood.summary.{k}", lang) for k in keys],
                                   t("stats.value", lang): [_num(summary[k]) for k in keys]}),
                     hide_index=True, width="stretch")
    risk = tables.get("risk_points")
    if risk is not None and len(risk):
        st.markdown(t("replay.flood.risk_points", lang))
        st.dataframe(risk, hide_index=True, width="stretch")


def show_forecast(lang: str, run: Path) -> None:
    """A forecast: its risk points on the map and in a table, and its response plan."""
    import json

    from twin.flood_event import localize_storm_text
    from twin.pages.forecast import (
        plan_roads_display,
        plan_tasks_display,
        risk_table_display,
    )
    from twin.pages.maps import map_downloads, map_legend
    from twin.replay import load_run, read_run_file, run_tables
    from twin.runstore import storm_text
    from twin.viz.risk_map import risk_deck

    man = load_run(run)["manifest"]
    p = man["params"]
    st.caption(t("replay.forecast.caption", lang, city=Path(str(p.get("city") or "")).name,
                 storm=localize_storm_text(storm_text(p.get("storm")), lang) or "-", members=p.get("members", "-"),
                 hours=p.get("hours"), threshold=p.get("threshold_m"), prob=p.get("prob_threshold")))
    tables = run_tables(run)
    risk = tables.get("risk")
    plan = json.loads(read_run_file(run, "plan.json"))
    if "summary.txt" in man.get("files", {}):
        st.info(read_run_file(run, "summary.txt").decode("utf-8"))
    city_src, city = _run_city(p)
    if city is None:
        st.warning(t("replay.no_city", lang, city=Path(city_src).name))
    if risk is None:
        st.caption(t("replay.no_table", lang, name="risk"))
        return
    risk.attrs.update(threshold_m=p.get("threshold_m"), prob_threshold=p.get("prob_threshold"))
    if city is not None:
        deck = risk_deck(city, risk, lang=lang)
        st.pydeck_chart(deck, height=520)
        map_legend(deck, lang, note=t("forecast.legend.shapes", lang))
        map_downloads(deck, name="replay-forecast-map", cache_key=f"replay-forecast:{_run_version(run)}", lang=lang,
                      title=t("forecast.map_title", lang, name=city.name, threshold=f"{p.get('threshold_m', '-')}"))
    st.dataframe(risk_table_display(risk, lang), hide_index=True, width="stretch")
    st.markdown(t("replay.forecast.plan", lang))
    roads = plan_roads_display(plan, lang)
    if len(roads):
        st.dataframe(roads, hide_index=True, width="stretch")
    st.dataframe(plan_tasks_display(plan, lang), hide_index=True, width="stretch")
    with st.container(horizontal=True):
        for name, mime in (("plan.json", "application/json"), ("plan.html", "text/html")):
            if name in man.get("files", {}):
                st.download_button(name, read_run_file(run, name), file_name=name, mime=mime, on_click="ignore",
                                   key=f"replay_dl_{name}", icon=":material/download:")


def show_comparison(lang: str, run: Path) -> None:
    """A strategy comparison (Dispatch lab): its KPI table with intervals, and the per-seed KPIs."""
    from twin.flood_event import localize_storm_text
    from twin.pages.dispatch_lab import ci_chart, per_seed_display, summary_display
    from twin.replay import load_run, run_tables
    from twin.runstore import storm_text

    man = load_run(run)["manifest"]
    p = man["params"]
    seeds = p.get("seeds") or []
    st.caption(t("replay.comparison.caption", lang, city=Path(str(p.get("city") or "")).name,
                 strategies=", ".join(t(f"strategy.{s}", lang) for s in p.get("strategies") or []),
                 seeds=f"{seeds[0]}..{seeds[-1]}" if seeds else "-", hours=p.get("hours"),
                 storm=localize_storm_text(storm_text(p.get("storm")), lang) or t("replay.no_storm", lang)))
    tables = run_tables(run)
    summary = tables.get("summary")
    if summary is None:
        st.caption(t("replay.no_table", lang, name="summary"))
        return
    kpis = list(dict.fromkeys(summary.index.get_level_values(0)))
    kpi = st.selectbox(t("lab.kpi", lang), kpis, format_func=lambda k: t(f"kpi.{k}", lang),
                       key="replay_cmp_kpi")
    st.altair_chart(ci_chart(summary, kpi, lang=lang), width="stretch")
    st.dataframe(summary_display(summary, lang=lang), width="stretch", hide_index=True)
    if "per_seed" in tables:
        with st.expander(t("lab.per_seed", lang)):
            st.dataframe(per_seed_display(tables["per_seed"], lang=lang), width="stretch")


def show_sweep(lang: str, run: Path) -> None:
    """A sweep: one row per run, its swept parameters and KPIs."""
    from twin.pages.batch import (
        HEADLINE_KPIS,
        kpi_columns,
        read_sweep_file,
        results_display,
        sweep_parameters,
    )
    from twin.replay import sweep_results

    data = read_sweep_file(run) or {}
    results = sweep_results(run)
    sc = data.get("scenario") or {}
    swept = (data.get("sweep") or {}).get("parameters") or {}
    st.caption(t("replay.sweep.caption", lang, city=Path(str((sc.get("city") or {}).get("source", ""))).name,
                 runs=len(data.get("runs", [])),
                 strategies=", ".join(t(f"strategy.{s}", lang) for s in swept.get("dispatch.strategy", [])) or "-",
                 seeds=", ".join(map(str, (data.get("sweep") or {}).get("seeds", []))) or "-"))
    if results.empty:
        st.info(t("replay.sweep.none", lang))
        return
    params = sweep_parameters(run, results)
    kpis = kpi_columns(results, params)
    shown = [k for k in HEADLINE_KPIS if k in kpis] or kpis  # the Batch page has every column and the charts
    st.dataframe(results_display(results, params, shown, lang=lang), hide_index=True, width="stretch")


def _catalogue() -> dict:
    from twin.i18n import catalogue

    return catalogue("en")


def _num(v) -> str:
    if isinstance(v, bool) or v is None:
        return "-" if v is None else str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.1f}"
    return str(v)


def _run_version(run) -> str:
    """The run folder and the time its manifest was written: a cache key that changes when the run does."""
    path = Path(run).resolve()
    try:
        return f"{path}@{(path / 'manifest.json').stat().st_mtime_ns}"
    except OSError:
        return str(path)


def _street_water(run, t_s: float, lang: str):
    """(street, legend HTML) of the run's street water at ``t_s``: ``street`` for :func:`twin.replay.state_deck`
    (None without a depth series), the legend with the frame's time and each class's area ("" if none)."""
    from gisdata.errors import TwinError
    from twin.viz.depth_map import depth_legend_html, frame_index, hhmm

    try:
        found = depth_series_of(run)
    except TwinError as exc:
        reason = str(exc).split(": ", 1)[-1]  # the message starts with the file's path: no server folders shown
        st.warning(t("replay.depth.error", lang, error=reason))
        return None, ""
    if found is None:
        return None, ""
    series, _ = found
    k = frame_index(series, t_s)
    if k is None:
        if len(series.times_s):
            st.caption(t("replay.depth.none_yet", lang, hhmm=hhmm(series.times_s[0])))
        return None, ""
    st.caption(t("replay.depth.caption", lang, frame=hhmm(series.times_s[k])))
    return (series, k), depth_legend_html(lang, series=series, k=k)


def _show_state_map(lang: str, run, state, city, minutes: int, *, name: str) -> None:
    """The replay map at a time, its legend (street water with its time and areas, then the other layers)
    and its exports."""
    from twin.pages.maps import map_downloads, map_legend
    from twin.replay import state_deck
    from twin.viz.animation import incident_status
    from twin.viz.depth_map import hhmm

    street, depth_legend = _street_water(run, minutes * 60.0, lang)
    deck = state_deck(state, city, lang=lang, status=incident_status(run, state), street=street)
    st.pydeck_chart(deck, height=560)
    if depth_legend:
        st.markdown(depth_legend, unsafe_allow_html=True)
    map_legend(deck, lang, skip=("street_depth",) if depth_legend else ())
    map_downloads(deck, name=name, cache_key=f"{name}:{_run_version(run)}:{len(state.roads_closed)}:{minutes}",
                  lang=lang, title=t("render.title", lang, name=city.name, hhmm=hhmm(minutes * 60.0)))


def _player(lang: str, run, city, city_src: str) -> None:
    """The run played over time (play / pause, slider, speed), behind a toggle: drawn once per run, step and
    language, with a progress bar the first time."""
    from gisdata.errors import TwinError
    from twin.viz.replay_map import replay_player_html

    if not st.toggle(t("replay.player.show", lang), value=False, **persistent("replay_player")):
        return
    key = (_run_version(run), PLAYER_STEP_S, lang, city_src)
    players = _players()
    html = players.get(key)
    if html is None:
        bar = st.progress(0.0, text=t("replay.player.building", lang))
        try:
            html = replay_player_html(city, run, step_s=PLAYER_STEP_S, lang=lang, size_px=(900, 640),
                                      progress=lambda f: bar.progress(min(max(f, 0.0), 1.0),
                                                                      text=t("replay.player.building", lang)))
        except (TwinError, ValueError) as exc:
            bar.empty()
            st.warning(t("replay.player.error", lang, error=str(exc).replace(str(Path(run).parent) + os.sep, "")))
            return
        bar.empty()
        while len(players) >= PLAYERS_KEPT:
            players.pop(next(iter(players)))
        players[key] = html
    _show_html(html, height=740)
    st.caption(t("replay.player.hint", lang, step=f"{PLAYER_STEP_S / 60:g}"))
