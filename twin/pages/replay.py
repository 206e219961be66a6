"""Replay page: pick a stored run, move a time slider, see crews, vendors, incidents and water on the map and the KPIs at t.

When the run folder holds its street depth series (``depth_series.tif``), the map
shows the street water at t (the frame at or before t, in the fixed depth classes of
:mod:`twin.viz.depth_map`) under the other layers, with its legend.

A toggle adds the 3D view at t (:func:`twin.viz.animation.replay_scene_html`):
the water on the ground, crews and incidents in the city scene.

Runs are listed from ``$CITYTWIN_RUNS_DIR`` (default ``runs``) or a folder typed in, which must lie
inside the workspace (:func:`twin.app_support.resolve_workspace_folder`).
Everything shown comes from :func:`twin.replay.state_at` (the event log and the stored series).
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

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


@st.cache_resource(show_spinner=False, max_entries=16)
def _depth_layer(run: str, mtime: float, k: int):
    from twin.viz.depth_map import depth_frame_layer

    return depth_frame_layer(_depth_series(run, mtime), k)


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
    """Where the page looks for runs."""
    return Path(os.environ.get("CITYTWIN_RUNS_DIR", "runs"))


def render(lang: str) -> None:
    """The Replay page."""
    from gisdata.errors import TwinError
    from twin import app_support as support
    from twin.replay import (
        format_state,
        horizon_s,
        kpi_table,
        load_run,
        state_at,
        state_deck,
    )
    from twin.runstore import list_runs

    st.subheader(t("replay.header", lang))
    typed = st.text_input(t("replay.root", lang), value=str(runs_root()), key="replay_root")
    try:
        root = support.resolve_workspace_folder(typed)
    except TwinError as exc:
        st.error(t("workspace.refused", lang, error=str(exc)))
        return
    runs = support.keep_inside_workspace(list_runs(root))
    if not runs:
        st.info(t("replay.none", lang, root=typed.strip() or "."))
        return
    run = st.selectbox(t("replay.run", lang), runs, format_func=lambda p: p.name, key="replay_run")
    try:
        man = load_run(run)["manifest"]
        hz = horizon_s(run)
    except TwinError as exc:
        st.error(str(exc))
        return
    p = man["params"]
    storm = p.get("storm")
    st.caption(t("replay.run_caption", lang, strategy=t(f"strategy.{p.get('strategy')}", lang), seed=p.get("seed"),
                 hours=p.get("hours"), city=Path(str(p.get("city") or "")).name,  # no server folders shown
                 storm=t("replay.no_storm", lang) if not storm else t("replay.storm", lang,
                                                                     rp=storm.get("return_period_yr"))))
    start = (storm or {}).get("start_s")
    default = int(start // 60) + 60 if start is not None else 8 * 60  # an hour into the storm, or 08:00
    minutes = st.slider(t("replay.time", lang), 0, int(hz // 60), min(int(hz // 60), default - default % 5), step=5,
                        format="%d min", key="replay_minutes")
    state = state_at(run, minutes * 60.0)
    st.markdown(t("replay.clock", lang, hhmm=f"{minutes // 60:02d}:{minutes % 60:02d}"))
    m1, m2, m3, m4, m5 = st.columns(5)
    busy = int((state.crews["status"] != "idle").sum()) if len(state.crews) else 0
    m1.metric(t("replay.metric.crews_busy", lang), f"{busy} / {len(state.crews)}")
    m2.metric(t("replay.metric.incidents", lang), len(state.incidents))
    m3.metric(t("replay.metric.vendors", lang), len(state.vendors))
    m4.metric(t("replay.metric.wet", lang), len(state.flood_nodes))
    m5.metric(t("replay.metric.closed", lang), len(state.roads_closed))
    city_src = str(p.get("city") or "")
    try:
        # the manifest's city is a file pointer: read only a preset, the built-in city, a workspace file, or a
        # file in the folder that holds the server's configured run store (the operator's, not a visitor's)
        roots = list(support.workspace_roots())
        if os.environ.get("CITYTWIN_RUNS_DIR", "").strip():
            roots.append(runs_root().resolve().parent)
        city_src = support.resolve_city_field(city_src, roots=roots)
        city = _city(city_src)
    except (TwinError, OSError):
        city = None
    col_map, col_kpi = st.columns([3, 2])
    with col_map:
        if city is None:
            st.warning(t("replay.no_city", lang, city=Path(city_src).name))  # no server folders shown
        else:
            deck = state_deck(state, city, lang=lang)
            depth_legend = _add_street_water(deck, run, minutes * 60.0, lang)
            st.pydeck_chart(deck, height=560)
            if depth_legend:
                st.markdown(depth_legend, unsafe_allow_html=True)
            st.caption(t("replay.legend", lang))
    with col_kpi:
        st.markdown(t("replay.kpis", lang))
        st.dataframe(kpi_table(state.kpis, KPI_KEYS, lang=lang), hide_index=True, width="stretch")
    if city is not None and st.toggle(t("replay.scene.show", lang), value=False, key="replay_scene"):
        ve = st.select_slider(t("scene.vertical_exaggeration", lang), options=[1.0, 2.0, 3.0, 5.0, 10.0],
                              value=1.0, key="replay_scene_ve")
        with st.spinner(t("scene.building", lang)):
            html = _scene_html(str(Path(run).resolve()), minutes * 60.0, city_src, float(ve), lang)
        _show_html(html, height=650)
        st.caption(t("replay.scene.hint", lang))
    with st.expander(t("replay.text", lang)):
        st.code(format_state(state), language=None)


def _add_street_water(deck, run, t_s: float, lang: str) -> str:
    """Put the run's street water at ``t_s`` under the deck's other layers; returns its legend (HTML) or ""."""
    from gisdata.errors import TwinError
    from twin.viz.depth_map import depth_legend_html, frame_index, hhmm

    try:
        found = depth_series_of(run)
    except TwinError as exc:
        reason = str(exc).split(": ", 1)[-1]  # the message starts with the file's path: no server folders shown
        st.warning(t("replay.depth.error", lang, error=reason))
        return ""
    if found is None:
        return ""
    series, mtime = found
    k = frame_index(series, t_s)
    if k is None:
        if len(series.times_s):
            st.caption(t("replay.depth.none_yet", lang, hhmm=hhmm(series.times_s[0])))
        return ""
    deck.layers = [_depth_layer(str(Path(run).resolve()), mtime, k), *deck.layers]
    st.caption(t("replay.depth.caption", lang, frame=hhmm(series.times_s[k])))
    return depth_legend_html(lang, series=series, k=k)
