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

import streamlit as st

from gisdata.city import CityTwin, load_city
from gisdata.errors import TwinError
from twin import app_support as support
from twin.i18n import DEFAULT_LANG, LANGUAGES, t
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
    kind = choice(st.radio, t("city.source", lang), kinds, name="city_source", lang=lang, horizontal=True,
                  format_func=lambda k: t(f"city.source.{k}", lang, name=preset))
    try:
        if kind == "preset":
            with st.spinner(t("city.loading", lang)):
                return f"preset:{preset}", cached_city(preset)
        if kind == "gpkg":
            uploaded = st.file_uploader(t("city.upload.gpkg", lang), type=["gpkg", "tif", "tiff"],
                                        accept_multiple_files=True, key="upload_gpkg")
        else:
            one = st.file_uploader(t("city.upload.osm", lang), type=["osm", "bz2", "pbf"], key="upload_osm")
            uploaded = [one] if one is not None else []
        if not uploaded:
            st.info(t("city.upload.hint", lang))
            return None
        files = tuple((f.name, f.getvalue()) for f in uploaded)
        key = f"{kind}:{support.upload_key(files)}"
        with st.spinner(t("city.loading", lang)):
            return key, cached_upload(key, kind, files)
    except TwinError as exc:
        st.error(str(exc))
        return None


def page_city(lang: str) -> None:
    """The City page: choose a city, see it on a 2D map, in numbers and in 3D."""
    chosen = select_city(lang)
    if chosen is None:
        return
    key, city = chosen
    st.subheader(t("city.header", lang, name=city.name))
    tab_map, tab_stats, tab_scene = st.tabs([t("tab.map", lang), t("tab.stats", lang), t("tab.scene", lang)])

    with tab_map:
        layers = choice(st.multiselect, t("map.layers", lang), list(MAP_LAYERS), name="map_layers", lang=lang,
                        multi=True, format_func=lambda name: t(f"layers.{name}", lang))
        st.pydeck_chart(cached_deck(key, city, tuple(layers), lang), height=600)
        st.caption(t("map.hint", lang))

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
                              value=1.0, key="scene_ve")
        with st.spinner(t("scene.building", lang)):
            html = cached_scene_html(key, city, float(ve), lang)
        show_html(html, height=650)
        st.caption(t("scene.hint", lang))


def show_html(html: str, *, height: int) -> None:
    """Embed a whole HTML page in an iframe (st.iframe where it exists, else components.v1.html)."""
    if hasattr(st, "iframe"):
        st.iframe(html, height=height)
    else:  # streamlit < 1.52
        import streamlit.components.v1 as components

        components.html(html, height=height)


# Page key -> function(lang), in sidebar order.  (A comment, not a string: Streamlit
# "magic" would print a bare string literal on the page.)
PAGES = {"city": page_city}


# ----------------------------------------------------------------------------- frame


def main() -> None:
    st.set_page_config(page_title="CityTwin", layout="wide")
    current = st.session_state.get("lang", DEFAULT_LANG)
    lang = st.sidebar.radio(t("app.language", current), list(LANGUAGES), format_func=LANGUAGES.get,
                            horizontal=True, key="lang")
    page = choice(st.sidebar.radio, t("app.page", lang), list(PAGES), name="page", lang=lang,
                  format_func=lambda k: t(f"page.{k}", lang))
    st.title(t("app.title", lang))
    st.caption(t("app.caption", lang))
    PAGES[page](lang)


main()
