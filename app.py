"""CityTwin workbench: ``streamlit run app.py``.

UI only: widgets, caching and layout.  Loading, tables and figures come from
``twin.app_support`` and ``twin.viz``; nothing here simulates.  Each page is a
function registered in ``PAGES``; later pages (flood event, forecast, dispatch,
replay, batch) add an entry there and a ``page.<key>`` message in
``twin/i18n/*.json``.

Set ``CITYTWIN_APP_CITY`` to a preset (``small``) or a ``.gpkg`` path to change
the built-in city (the tests use a small one).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import streamlit as st

from gisdata.city import CityTwin, load_city
from gisdata.errors import TwinError
from twin import app_support as support
from twin import flood_event as fe
from twin.i18n import DEFAULT_LANG, LANGUAGES, t
from twin.pages import batch as batch_page
from twin.pages import dispatch_lab
from twin.pages import forecast as forecast_page
from twin.pages import replay as replay_page
from twin.pages.maps import map_downloads, map_legend
from twin.runstore import write_flood_event_run
from twin.viz import flood_layers
from twin.viz.map2d import MAP_LAYERS, city_deck

# ----------------------------------------------------------------------------- cached data


@st.cache_resource(show_spinner=False, max_entries=4)
def cached_city(source: str) -> CityTwin:
    return load_city(source)


@st.cache_resource(show_spinner=False, max_entries=4)
def cached_upload(key: str, kind: str, _files: tuple[tuple[str, bytes], ...]) -> CityTwin:
    return support.load_uploaded_city(_files, kind)


@st.cache_resource(show_spinner=False, max_entries=16)
def cached_deck(key: str, _city: CityTwin, layers: tuple[str, ...], lang: str):
    return city_deck(_city, layers, lang=lang)


@st.cache_data(show_spinner=False, max_entries=8)
def cached_scene_html(key: str, _city: CityTwin, vertical_exaggeration: float, lang: str) -> str:
    return support.city_scene_html(_city, vertical_exaggeration=vertical_exaggeration, lang=lang)


@st.cache_data(show_spinner=False, max_entries=32)
def cached_storm(spec: fe.StormSpec):
    return spec.build()


@st.cache_data(show_spinner=False, max_entries=8)
def cached_rain_upload(key: str, name: str, _data: bytes, units: str):
    return fe.read_rain_upload(name, _data, units=units)


@st.cache_resource(show_spinner=False, max_entries=8)
def cached_flood_deck(event_key: str, _city: CityTwin, _result, lang: str):
    return flood_layers.flood_deck(_city, _result, lang=lang)


@st.cache_resource(show_spinner=False, max_entries=32)
def cached_flood_deck_at(event_key: str, _city: CityTwin, _result, lang: str, frame: int | None):
    """The event's map with its street water at ``frame`` (None: the maximum); the base map is cached apart."""
    return flood_layers.with_depth_frame(cached_flood_deck(event_key, _city, _result, lang), _result.depths, frame)


@st.cache_data(show_spinner=False, max_entries=8)
def cached_flood_scene_html(event_key: str, _city: CityTwin, _result, vertical_exaggeration: float, lang: str,
                            frame: int | None = None) -> str:
    if getattr(_result, "depths", None) is not None:  # the street water in its depth classes
        from twin.viz.scene import scene_html

        return scene_html(_city, depth_series=_result.depths, depth_frame=frame,
                          vertical_exaggeration=vertical_exaggeration, lang=lang)
    return support.flood_scene_html(_city, _result, vertical_exaggeration=vertical_exaggeration, lang=lang)


# ----------------------------------------------------------------------------- widgets


def choice(widget, label: str, options: list, *, name: str, lang: str, format_func, default=None, **kw):
    """A selection widget with translated option labels that keeps its choice across languages.

    Streamlit's front end matches a selection by its displayed label, so when the
    labels change language the old selection no longer shows.  The widget therefore
    gets one key per language (``<name>__<lang>``), and the language-independent
    choice is kept in ``st.session_state[name]``.
    """
    multi = kw.pop("multi", False)
    current = st.session_state.get(name, default if default is not None else (list(options) if multi else options[0]))
    if multi:
        kw["default"] = [o for o in current if o in options]
    else:
        kw["index"] = options.index(current) if current in options else 0
    value = widget(label, options, format_func=format_func, key=f"{name}__{lang}", **kw)
    st.session_state[name] = value
    return value


# ----------------------------------------------------------------------------- pages


def select_city(lang: str) -> tuple[str, CityTwin] | None:
    """The city chosen in the page's selector, or None (with a message shown) if there is none."""
    preset = support.app_city_source()
    kinds = ["preset", "gpkg", "osm"]
    shown = Path(preset).name  # a visitor sees the built-in city's file name, not the server's folders
    kind = choice(st.radio, t("city.source", lang), kinds, name="city_source", lang=lang, horizontal=True,
                  format_func=lambda k: t(f"city.source.{k}", lang, name=shown))
    try:
        if kind == "preset":
            with st.spinner(t("city.loading", lang)):
                return f"preset:{preset}", cached_city(preset)
        if kind == "gpkg":
            uploaded = st.file_uploader(t("city.upload.gpkg", lang), type=["gpkg", "tif", "tiff"],
                                        accept_multiple_files=True, key="upload_gpkg",
                                        max_upload_size=support.upload_limit_mb("gpkg"))
        else:
            one = st.file_uploader(t("city.upload.osm", lang), type=["osm", "bz2", "pbf"], key="upload_osm",
                                   max_upload_size=support.upload_limit_mb("osm"))
            uploaded = [one] if one is not None else []
        if not uploaded:
            st.info(t("city.upload.hint", lang))
            return None
        files = support.read_uploads(uploaded, kind, max_files=2)  # size-checked before it is read
        key = f"{kind}:{support.upload_key(files)}"
        with st.spinner(t("city.loading", lang)):
            return key, cached_upload(key, kind, files)
    except TwinError as exc:
        show_upload_error(exc, lang)
        return None


def show_upload_error(exc: TwinError, lang: str) -> None:
    """A refused input in plain words, with the library's own words folded away below it."""
    plain, detail = support.upload_error_parts(exc, lang=lang)
    st.error(plain)
    if detail:
        with st.expander(t("upload.error.detail", lang)):
            st.code(detail, language=None)


def page_city(lang: str) -> None:
    """The City page: choose a city, see it on a 2D map, in numbers and in 3D."""
    chosen = select_city(lang)
    if chosen is None:
        return
    key, city = chosen
    st.subheader(t("city.header", lang, name=city.name))
    if "geometry_repairs" in city.metadata:  # an OSM import: say what was done to its invalid polygons
        st.caption(t("city.osm_repairs", lang, repairs=city.metadata["geometry_repairs"],
                     skipped=city.metadata.get("skipped_buildings", "0")))
    tab_map, tab_stats, tab_scene = support.kept_tabs(["map", "stats", "scene"], [t("tab.map", lang), t(
        "tab.stats", lang), t("tab.scene", lang)], key="city_tab", lang=lang)

    with tab_map:
        layers = choice(st.multiselect, t("map.layers", lang), list(MAP_LAYERS), name="map_layers", lang=lang,
                        multi=True, format_func=lambda name: t(f"layers.{name}", lang))
        deck = cached_deck(key, city, tuple(layers), lang)
        st.pydeck_chart(deck, height=600)
        map_legend(deck, lang)
        st.caption(t("map.hint", lang))
        map_downloads(deck, name="city-map", cache_key=f"city:{key}:{','.join(layers)}", lang=lang,
                      title=t("map.title", lang, name=city.name))

    with tab_stats:
        left, right = st.columns([3, 2])
        with left:
            st.markdown(f"**{t('stats.summary', lang)}**")
            st.dataframe(support.summary_table(city, lang), hide_index=True)
        with right:
            st.markdown(f"**{t('stats.layer_counts', lang)}**")
            st.dataframe(support.layer_counts_table(city, lang), hide_index=True)
        st.markdown(f"**{t('stats.columns', lang)}**")
        layer = choice(st.selectbox, t("stats.choose_layer", lang), list(support.LAYER_NAMES), name="stats_layer",
                       lang=lang, format_func=lambda name: t(f"layers.{name}", lang))
        if len(city.layer(layer)):
            st.dataframe(support.layer_column_stats(city, layer, lang), hide_index=True)
        else:
            st.info(t("stats.empty", lang))

    with tab_scene:
        ve = st.select_slider(t("scene.vertical_exaggeration", lang), options=[1.0, 2.0, 3.0, 5.0, 10.0],
                              value=1.0, **support.persistent("scene_ve"))
        with st.spinner(t("scene.building", lang)):
            html = cached_scene_html(key, city, float(ve), lang)
        show_html(html, height=650)
        st.caption(t("scene.hint", lang))


# Flood events a session keeps, so switching back to an earlier rain needs no new SWMM run.
FLOOD_EVENTS_KEPT = 4


def storm_params(spec: fe.StormSpec) -> dict:
    """What a stored flood event records of its design storm (only the parameters of its kind)."""
    keep = {"chicago": ("idf", "return_period_yr", "duration_min", "r"), "block": ("intensity_mm_h", "duration_min"),
            "nrcs": ("depth_mm", "nrcs_type")}[spec.kind]
    return {"kind": spec.kind, **{k: getattr(spec, k) for k in keep}, "step_min": spec.step_min}


def choose_rain(lang: str):
    """The rain chosen in the storm form and its parameters: (RainSeries, dict), or (None, None) with a message shown."""
    from hydraulics.rainfall import IDF_PRESETS, NRCS_TYPES

    kind = choice(st.radio, t("flood.rain_source", lang), [*fe.STORM_KINDS, "csv"], name="flood_rain", lang=lang,
                  horizontal=True, format_func=lambda k: t(f"flood.rain.{k}", lang))
    cols = st.columns(3)
    try:
        if kind == "chicago":
            with cols[0]:
                idf = choice(st.selectbox, t("flood.idf", lang), list(IDF_PRESETS), name="flood_idf", lang=lang,
                             format_func=lambda k: t(f"flood.idf.{k}", lang))
            with cols[1]:
                period = st.select_slider(t("flood.return_period_yr", lang), [1, 2, 3, 5, 10, 20, 50, 100],
                                          value=20, **support.persistent("flood_period"))
            with cols[2]:
                duration = st.select_slider(t("flood.duration_min", lang), [30, 60, 90, 120, 180, 360],
                                            value=120, **support.persistent("flood_duration"))
            r = st.slider(t("flood.peak_ratio", lang), 0.1, 0.9, 0.4, 0.05, **support.persistent("flood_r"))
            spec = fe.StormSpec("chicago", idf=idf, return_period_yr=float(period), duration_min=float(duration),
                                r=float(r))
            return cached_storm(spec), storm_params(spec)
        if kind == "block":
            with cols[0]:
                intensity = st.number_input(t("flood.intensity_mm_h", lang), 1.0, 500.0, 60.0, 5.0,
                                            **support.persistent("flood_intensity"))
            with cols[1]:
                duration = st.select_slider(t("flood.duration_min", lang), [30, 60, 90, 120, 180, 360],
                                            value=60, **support.persistent("flood_block_duration"))
            spec = fe.StormSpec("block", intensity_mm_h=float(intensity), duration_min=float(duration))
            return cached_storm(spec), storm_params(spec)
        if kind == "nrcs":
            with cols[0]:
                depth = st.number_input(t("flood.depth_mm", lang), 1.0, 1000.0, 150.0, 10.0,
                                        **support.persistent("flood_depth_mm"))
            with cols[1]:
                ntype = st.selectbox(t("flood.nrcs_type", lang), list(NRCS_TYPES), index=2,
                                     **support.persistent("flood_nrcs"))
            spec = fe.StormSpec("nrcs", depth_mm=float(depth), nrcs_type=ntype, step_min=6.0)
            return cached_storm(spec), storm_params(spec)
        with cols[0]:
            units = choice(st.selectbox, t("flood.csv_units", lang), ["mm_h", "mm", "in_h", "in"],
                           name="flood_csv_units", lang=lang, format_func=lambda u: t(f"flood.csv_unit.{u}", lang))
        upload = st.file_uploader(t("flood.upload_rain", lang), type=["csv", "txt", "dat"], key="flood_csv",
                                  max_upload_size=support.upload_limit_mb("rain_csv"))
        if upload is None:
            st.info(t("flood.upload_hint", lang))
            return None, None
        ((name, data),) = support.read_uploads([upload], "rain_csv")  # size-checked before it is read
        rain = cached_rain_upload(support.upload_key([(name, data)]), name, data, units)
        st.caption(support.rain_time_note(rain, lang))  # which time column the reader used
        return rain, {"kind": "csv", "file": Path(name).name, "units": units}
    except TwinError as exc:
        show_upload_error(exc, lang)
        return None, None


def page_flood_event(lang: str) -> None:
    """The Flood event page: a storm on the chosen city, run in SWMM, seen as a map, hydrographs and in 3D."""
    chosen = select_city(lang)
    if chosen is None:
        return
    city_key, city = chosen
    st.subheader(t("flood.header", lang, name=city.name))
    rain, storm = choose_rain(lang)
    if rain is None:
        return
    drain_h = st.select_slider(t("flood.drain_time_h", lang), [0.5, 1.0, 2.0, 4.0, 6.0], value=2.0,
                               **support.persistent("flood_drain"))
    st.caption(support.rain_description(rain, lang, storm=storm))
    st.altair_chart(flood_layers.rain_chart(rain, lang=lang), width="stretch")

    event_key = fe.flood_event_key(city_key, rain, drain_time_h=float(drain_h))
    events = st.session_state.setdefault("flood_events", {})
    if st.button(t("flood.run", lang), type="primary", key="flood_run"):
        bar = st.progress(0.0, text=t("flood.progress.build", lang))
        try:
            result = fe.run_flood_event(
                city, rain, drain_time_h=float(drain_h),
                progress=lambda p: bar.progress(p.fraction, text=support.flood_progress_text(p, lang)))
        except TwinError as exc:
            bar.empty()
            st.error(t("flood.error", lang, error=support.error_text(exc, lang)))
            return
        bar.empty()
        support.keep_latest(events, event_key, result, FLOOD_EVENTS_KEPT)
        st.session_state.setdefault("flood_event_cities", {})[event_key] = city
        save_run(lang, "flood", lambda out: write_flood_event_run(
            out, result, city=city, params={"city": city_key.split(":", 1)[1] if city_key.startswith("preset:")
                                            else f"upload {city.name}", "storm": storm,
                                            "drain_time_h": float(drain_h)}))
    shown_key, result, stale = support.shown_result(events, event_key, st.session_state, "flood_shown")
    if result is None:
        st.info(t("flood.not_run", lang))
        return
    if stale:
        st.warning(t("state.stale", lang))
        city = st.session_state.get("flood_event_cities", {}).get(shown_key, city)
    show_flood_event(lang, shown_key, city, result)


def save_run(lang: str, prefix: str, write) -> None:
    """Store a run the page made in the workspace run store (``write(out)``); say where, or why not.

    The run id is new (:func:`twin.runstore.new_run_id`); the Replay page lists the run at once.
    """
    from twin.runstore import new_run_id

    try:
        root = support.runs_dir()
        root.mkdir(parents=True, exist_ok=True)
        out = write(root / new_run_id(prefix))
    except (TwinError, OSError) as exc:
        st.warning(t("run.save_error", lang, error=support.error_text(exc, lang).replace(str(support.workspace_root()), ".")))
        return
    st.session_state["last_saved_run"] = out.name
    st.caption(t("run.saved", lang, run=out.name))


def show_flood_event(lang: str, event_key: str, city: CityTwin, result) -> None:
    """The results of one flood event: summary, map, hydrographs, 3D and tables."""
    st.markdown(f"**{t('flood.summary.title', lang)}**")
    for column, (label, value) in zip(st.columns(4), support.flood_metrics(result, lang)):
        column.metric(label, value)
    if result.summary["flooded_nodes"] == 0:
        st.info(t("flood.no_flooding", lang))
    tab_map, tab_hydro, tab_scene, tab_tables = support.kept_tabs(
        ["map", "hydrograph", "scene", "tables"],
        [t("flood.tab.map", lang), t("flood.tab.hydrograph", lang), t("flood.tab.scene", lang),
         t("flood.tab.tables", lang)], key="flood_tab", lang=lang)

    series = getattr(result, "depths", None)
    if series is not None and len(series.times_s) == 0:
        series = None
    with tab_map:
        from twin.viz.depth_map import depth_legend_html

        s = result.summary
        title = t("flood.map_title", lang, name=city.name, rain=getattr(result.rain, "label", ""),
                  depth=f"{s['max_surface_depth_m']:.2f}", volume=f"{s['flood_volume_m3']:.0f}")
        if series is None:
            deck = cached_flood_deck(event_key, city, result, lang)
            st.pydeck_chart(deck, height=600)
            st.markdown(depth_legend_html(lang), unsafe_allow_html=True)
            map_legend(deck, lang, skip=("flood_depth",))  # roads by state with counts, manholes that spilled...
            st.caption(t("flood.map_hint", lang, car=result.roads.attrs.get("car_m", ""),
                         all=result.roads.attrs.get("all_m", "")))
            frame = None
        else:
            frame = depth_frame_slider(lang, series, key="flood_depth_frame", event_key=event_key,
                                       label=t("flood.depth.time", lang))
            deck = cached_flood_deck_at(event_key, city, result, lang, frame)
            st.pydeck_chart(deck, height=600)
            # the street water with its time and each class's area, then the other layers
            st.markdown(depth_legend_html(lang, series=series, k=frame, maximum=frame is None),
                        unsafe_allow_html=True)
            map_legend(deck, lang, skip=("flood_depth",))
            st.caption(t("flood.depth.hint", lang))
        map_downloads(deck, name="flood-map", cache_key=f"flood:{event_key}:{frame}", lang=lang, title=title)

    with tab_hydro:
        node_ids = list(result.nodes.index)
        if st.session_state.get("flood_node_event") != event_key:  # a new event: start at its worst node
            st.session_state["flood_node_event"] = event_key
            st.session_state["flood_node"] = result.worst_node
        node = choice(st.selectbox, t("flood.node", lang), node_ids, name="flood_node", lang=lang,
                      format_func=lambda n: support.flood_node_label(result, n, lang))
        st.altair_chart(flood_layers.hydrograph_chart(result, node, lang=lang), width="stretch")

    with tab_scene:
        ve = st.select_slider(t("scene.vertical_exaggeration", lang), options=[1.0, 2.0, 3.0, 5.0, 10.0],
                              value=1.0, **support.persistent("flood_scene_ve"))
        scene_frame = None if series is None else depth_frame_slider(
            lang, series, key="flood_scene_frame", event_key=event_key, label=t("flood.depth.scene_time", lang))
        with st.spinner(t("scene.building", lang)):
            html = cached_flood_scene_html(event_key, city, result, float(ve), lang, scene_frame)
        show_html(html, height=650)
        st.caption(t("flood.scene_hint", lang))

    with tab_tables:
        st.markdown(f"**{t('flood.summary.title', lang)}**")
        st.dataframe(support.flood_summary_table(result, lang), hide_index=True)
        for title, table in ((t("flood.table.nodes", lang), support.flooded_nodes_table(result, lang)),
                             (t("flood.table.roads", lang), support.flooded_roads_table(city, result, lang)),
                             (t("flood.table.buildings", lang), support.exposed_buildings_table(result, lang))):
            st.markdown(f"**{title}**")
            if len(table):
                st.dataframe(table, hide_index=True)
            else:
                st.caption(t("flood.table.empty", lang))


MAX_FRAME = "max"  # the slider's first stop: each cell's maximum over the event


def depth_frame_slider(lang: str, series, *, key: str, event_key: str, label: str) -> int | None:
    """A slider over a depth series' frame times (first stop: the maximum); the chosen frame index or None.

    The choice is kept per event: a new event starts at the maximum.
    """
    from twin.viz.depth_map import hhmm

    options = [MAX_FRAME, *range(len(series.times_s))]
    if st.session_state.get(f"{key}__event") != event_key:
        st.session_state[f"{key}__event"] = event_key
        st.session_state[key] = MAX_FRAME

    def label_of(k):
        if k == MAX_FRAME:
            return t("depth.max_option", lang)
        t_s = float(series.times_s[k])
        return t("depth.time_option", lang, hhmm=hhmm(t_s), min=f"{t_s / 60:.0f}")

    k = st.select_slider(label, options=options, format_func=label_of, key=key)
    return None if k == MAX_FRAME else int(k)


def show_html(html: str, *, height: int) -> None:
    """Embed a whole HTML page in an iframe (st.iframe where it exists, else components.v1.html)."""
    if hasattr(st, "iframe"):
        st.iframe(html, height=height)
    else:  # streamlit < 1.52
        import streamlit.components.v1 as components

        components.html(html, height=height)


# Page key -> function(lang), in sidebar order.  (A comment, not a string: Streamlit
# "magic" would print a bare string literal on the page.)
PAGES = {"city": page_city, "flood_event": page_flood_event,
         "forecast": lambda lang: forecast_page.render(lang, choice=choice),
         "dispatch": dispatch_lab.render, "replay": replay_page.render,
         "batch": batch_page.make_render(lambda: importlib.import_module("scenarios"))}


# ----------------------------------------------------------------------------- frame


def main() -> None:
    st.set_page_config(page_title="CityTwin", layout="wide")
    current = st.session_state.get("lang", DEFAULT_LANG)
    lang = st.sidebar.radio(t("app.language", current), list(LANGUAGES), format_func=LANGUAGES.get,
                            horizontal=True, key="lang")
    asked = st.query_params.get("page")
    if asked in PAGES and asked != st.session_state.get("_url_page"):  # a shared link: /?page=replay&run=<id>
        st.session_state["_url_page"] = st.session_state["page"] = asked
    page = choice(st.sidebar.radio, t("app.page", lang), list(PAGES), name="page", lang=lang,
                  format_func=lambda k: t(f"page.{k}", lang))
    st.session_state["_url_page"] = page
    st.query_params["page"] = page  # the address bar names the page (and Replay's run): a link to share
    if page != "replay" and "run" in st.query_params:
        del st.query_params["run"]
    st.title(t("app.title", lang))
    st.caption(t("app.caption", lang))
    PAGES[page](lang)


main()
