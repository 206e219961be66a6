"""What goes under every 2D map of the workbench: its legend and its exports (PNG picture, GeoJSON layers).

Every page that shows a :class:`pydeck.Deck` calls :func:`map_legend` and
:func:`map_downloads` right under its ``st.pydeck_chart``, so the legend and the
exports read the same deck the planner sees (:mod:`twin.viz.legend`,
:mod:`twin.viz.export`).  The export bytes are made only when a button is
pressed (Streamlit's deferred download: ``data`` is a callable) and cached by the
map's key, so a rerun costs nothing and a second download no new rendering.
"""

from __future__ import annotations

from collections.abc import Iterable

import streamlit as st

from twin.i18n import t


@st.cache_resource(show_spinner=False, max_entries=16)
def _png(cache_key: str, _deck, lang: str, title: str) -> bytes:
    from twin.viz.export import deck_png_bytes

    return deck_png_bytes(_deck, lang=lang, title=title)


@st.cache_resource(show_spinner=False, max_entries=16)
def _geojson(cache_key: str, _deck, lang: str) -> bytes:
    from twin.viz.export import deck_layers_geojson

    return deck_layers_geojson(_deck, lang=lang)


def legend_of(deck, lang: str, *, skip: Iterable[str] = (), note: str = "") -> str:
    """The legend of a deck as HTML (:func:`twin.viz.legend.deck_legend_entries`), leaving out layers ``skip``.

    ``skip`` names layers whose legend the page draws itself (the street water with its time and
    areas); ``note`` is a plain sentence after the entries.  Every text is escaped.
    """
    from twin.viz.legend import deck_legend_entries, legend_html

    skip = set(skip)
    layers = [layer for layer in getattr(deck, "layers", deck) or [] if str(getattr(layer, "id", "")) not in skip]
    entries = deck_legend_entries(layers, lang)
    return legend_html(entries, title=t("map.legend.title", lang) if entries else "", note=note)


def map_legend(deck, lang: str, *, skip: Iterable[str] = (), note: str = "") -> None:
    """Show :func:`legend_of` under a map (nothing if the deck draws nothing it can name)."""
    html = legend_of(deck, lang, skip=skip, note=note)
    if html:
        st.html(html)


def map_downloads(deck, *, name: str, cache_key: str, lang: str, title: str = "") -> None:
    """Two buttons under a map: the map as a PNG picture (legend, scale bar, north arrow) and its layers as GeoJSON.

    Parameters
    ----------
    deck : pydeck.Deck
        The map shown.
    name : str
        The spot on the page (widget keys ``<name>_png`` / ``<name>_geojson``) and the files' stem.
    cache_key : str
        Everything the deck depends on (city, run, time, settings); the language is added here.
    lang : str
    title : str
        Title printed on the picture.
    """
    with st.container(horizontal=True):
        st.download_button(t("map.export.png", lang), lambda: _png(cache_key, deck, lang, title),
                           file_name=f"{name}.png", mime="image/png", key=f"{name}_png", on_click="ignore",
                           icon=":material/image:")
        st.download_button(t("map.export.geojson", lang), lambda: _geojson(cache_key, deck, lang),
                           file_name=f"{name}.geojson", mime="application/geo+json", key=f"{name}_geojson",
                           on_click="ignore", icon=":material/download:")
