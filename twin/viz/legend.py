"""The legend of any 2D map, read from the layers the deck has.

deck.gl draws no legend.  :func:`deck_legend_entries` looks at each layer of a
:class:`pydeck.Deck` built here (by its id, and by the colours its data holds)
and lists what a planner sees: road classes, closures with their counts, the
depth classes, crews by department, incidents by status and so on; only what
the map actually draws.  :func:`deck_legend_html` renders them as a compact
HTML block (English or Simplified Chinese), and the PNG export
(:func:`twin.viz.export.write_deck_png`) draws the same entries.

Examples
--------
>>> deck = city_deck(city)                              # doctest: +SKIP
>>> st.pydeck_chart(deck)                               # doctest: +SKIP
>>> st.html(deck_legend_html(deck, lang="zh"))          # doctest: +SKIP
"""

from __future__ import annotations

import html as _html
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from twin.i18n import t
from twin.viz import palette as pal

SHAPES = ("line", "dot", "ring", "depot", "swatch", "gradient")


@dataclass(frozen=True)
class LegendEntry:
    """One line of a legend.

    Attributes
    ----------
    label : str
        Translated text.
    colour : str
        ``#rrggbb`` (the first stop of a gradient).
    shape : str
        One of :data:`SHAPES`: a line (roads), a dot with a ring (``ring`` colour), a depot
        (ring around a white centre), a square swatch (areas, rasters) or a colour ramp.
    ring : str
        Ring colour of dots.
    stops : tuple of str
        Colours of a gradient, low to high.
    low, high : str
        Text at the ends of a gradient.
    width_px : float
        Line thickness for ``line`` entries.
    """

    label: str
    colour: str
    shape: str = "dot"
    ring: str = ""
    stops: tuple[str, ...] = ()
    low: str = ""
    high: str = ""
    width_px: float = 4.0


# ----------------------------------------------------------------------------- reading a layer


def _data(layer) -> list[dict]:
    data = getattr(layer, "data", None)
    return data if isinstance(data, list) else []


def _colours(layer, column: str = "color", constant: str = "get_color") -> Counter:
    """Count of rows per ``#rrggbb`` colour of a layer (its data column, else its constant colour)."""
    rows = _data(layer)
    if rows and column in rows[0]:
        return Counter(pal.hex_of(r[column]) for r in rows if r.get(column) is not None)
    const = getattr(layer, constant, None)
    if isinstance(const, (list, tuple)) and len(const) >= 3:
        return Counter({pal.hex_of(const): len(rows)})
    return Counter()


def _reverse(mapping: dict[str, str]) -> dict[str, str]:
    return {v.lower(): k for k, v in mapping.items()}


# ----------------------------------------------------------------------------- per layer id


def _terrain(layer, lang):
    return [LegendEntry(t("legend.terrain", lang), pal.TERRAIN_SWATCH, "swatch")]


def _roads(layer, lang):
    seen = _colours(layer)
    back = _reverse(pal.ROAD_CLASS)
    out = []
    for cls, colour in pal.ROAD_CLASS.items():  # in class order, only those drawn
        if colour.lower() in seen:
            out.append(LegendEntry(t("legend.road", lang, cls=t(f"road_class.{cls}", lang)), colour, "line",
                                   width_px=pal.ROAD_WIDTH_PX[cls]))
    if any(c not in back for c in seen):
        out.append(LegendEntry(t("map.legend.roads", lang), pal.ROAD_OTHER, "line", width_px=1.5))
    return out


def _roads_all(layer, lang):
    return [LegendEntry(t("map.legend.roads", lang), pal.NO_RISK, "line", width_px=2)]


def _buildings(layer, lang):
    return [LegendEntry(t("legend.buildings", lang, n=f"{len(_data(layer)):,}"), pal.BUILDING_USE["residential"],
                        "swatch")]


def _pipes(layer, lang):
    from matplotlib import colormaps

    cmap = colormaps[pal.PIPE_CMAP]
    stops = tuple(pal.hex_of([round(255 * v) for v in cmap(f)[:3]]) for f in (0.0, 0.25, 0.5, 0.75, 1.0))
    return [LegendEntry(t("map.legend.pipes", lang), stops[2], "gradient", stops=stops,
                        low=t("map.legend.small", lang), high=t("map.legend.large", lang))]


def _manholes(layer, lang):
    seen = _colours(layer, constant="get_fill_color")
    out = []
    if pal.MANHOLE.lower() in seen:
        out.append(LegendEntry(t("map.legend.manholes", lang), pal.MANHOLE, "dot", ring=pal.MANHOLE_RING))
    if pal.OUTFALL.lower() in seen:
        out.append(LegendEntry(t("legend.outfalls", lang), pal.OUTFALL, "dot", ring=pal.CREW_RING))
    return out


def _depots(layer, lang):
    seen = _colours(layer, constant="get_line_color")
    return [LegendEntry(t("legend.depot", lang, dept=t(f"department.{d}", lang)), c, "depot")
            for d, c in pal.DEPARTMENT.items() if c.lower() in seen]


def _sensors(layer, lang):
    return [LegendEntry(t("map.legend.sensors", lang), pal.SENSOR["rain_gauge"], "dot", ring=pal.CREW_RING)]


def _vendor_sites(layer, lang):
    return [LegendEntry(t("map.legend.vendor_sites", lang), pal.VENDOR, "dot", ring=pal.CREW_RING)]


def _depth(layer, lang):
    from twin.viz.depth_map import depth_legend_entries

    return [LegendEntry(label, colour, "swatch") for label, colour in depth_legend_entries(lang)]


def _road_status(layer, lang):
    seen = _colours(layer)
    out = [LegendEntry(t("flood.legend.road", lang, status=t("flood.status.open", lang),
                         n=seen.get(pal.OPEN_ROAD.lower(), 0)), pal.OPEN_ROAD, "line", width_px=1.5)]
    if seen.get(pal.WET_ROAD.lower()):
        out.append(LegendEntry(t("flood.legend.road", lang, status=t("flood.status.wet", lang),
                                 n=seen[pal.WET_ROAD.lower()]), pal.WET_ROAD, "line", width_px=3))
    for status, colour in pal.CLOSURE.items():  # always listed, so a planner knows what to look for
        out.append(LegendEntry(t(f"render.legend.road_{status}", lang, n=seen.get(colour.lower(), 0)), colour,
                               "line", width_px=5))
    return out


def _flooded_nodes(layer, lang):
    return [LegendEntry(t("flood.legend.nodes", lang, n=len(_data(layer))), pal.SPILL, "ring")]


def _wet_manholes(layer, lang):
    if not _data(layer):
        return []
    return [LegendEntry(t("map.legend.wet_manholes", lang, n=len(_data(layer))), pal.SPILL, "dot",
                        ring=pal.CREW_RING)]


def _incidents(layer, lang):
    seen = _colours(layer, constant="get_fill_color")
    return [LegendEntry(t(f"render.legend.incident_{s}", lang, n=seen.get(c.lower(), 0)), c, "dot",
                        ring=pal.INCIDENT_RING) for s, c in pal.INCIDENT.items()]


def _vendors(layer, lang):
    n = len(_data(layer))
    return [LegendEntry(t("map.legend.vendors", lang, n=n), pal.VENDOR, "dot", ring=pal.CREW_RING)] if n else []


def _crews(layer, lang):
    seen = _colours(layer, constant="get_fill_color")
    out = [LegendEntry(t("map.legend.crews", lang, dept=t(f"department.{d}", lang), n=seen.get(c.lower(), 0)), c,
                       "dot", ring=pal.CREW_RING) for d, c in pal.DEPARTMENT.items() if c.lower() in seen]
    other = sum(n for c, n in seen.items() if c not in _reverse(pal.DEPARTMENT))
    if other:
        out.append(LegendEntry(t("map.legend.crews_other", lang, n=other), pal.OTHER_DEPARTMENT, "dot",
                               ring=pal.CREW_RING))
    return out


def _risk(layer, lang):
    from twin.viz.risk_map import probability_rgb

    stops = tuple(pal.hex_of(c) for c in probability_rgb([0.001, 0.25, 0.5, 0.75, 1.0]))
    return [LegendEntry(t("forecast.legend.probability", lang), stops[2], "gradient", stops=stops, low="0", high="1"),
            LegendEntry(t("forecast.legend.no_risk", lang), pal.NO_RISK, "line", width_px=3)]


_BUILDERS = {
    "terrain": _terrain, "roads": _roads, "roads_all": _roads_all, "buildings": _buildings, "pipes": _pipes,
    "manholes": _manholes, "depots": _depots, "sensors": _sensors, "vendor_sites": _vendor_sites,
    "flood_depth": _depth, "street_depth": _depth, "road_status": _road_status, "flooded_nodes": _flooded_nodes,
    "water": _wet_manholes, "incidents": _incidents, "vendors": _vendors, "crews": _crews,
    "risk_districts": _risk, "risk_roads": _risk, "risk_manholes": _risk,
}
"""Layer id -> its legend lines (layers of :mod:`twin.viz.map2d`, :mod:`~twin.viz.flood_layers`,
:mod:`~twin.viz.depth_map`, :mod:`~twin.viz.risk_map` and :mod:`~twin.viz.replay_map`)."""


def layer_legend_entries(layer, lang: str = "en") -> list[LegendEntry]:
    """The legend lines of one deck.gl layer built here (none for a layer id it does not know)."""
    build = _BUILDERS.get(str(getattr(layer, "id", "")))
    return build(layer, lang) if build else []


def deck_legend_entries(deck_or_layers, lang: str = "en") -> list[LegendEntry]:
    """The legend of a deck (or a list of layers): each layer's lines, top layer first, without repeats.

    Parameters
    ----------
    deck_or_layers : pydeck.Deck or iterable of pydeck.Layer
    lang : str
        ``"en"`` or ``"zh"``.
    """
    layers = getattr(deck_or_layers, "layers", deck_or_layers)
    out: list[LegendEntry] = []
    seen: set[tuple] = set()
    for layer in reversed(list(layers or [])):  # what is drawn on top reads first
        for entry in layer_legend_entries(layer, lang):
            key = (entry.label, entry.colour, entry.shape)
            if key not in seen:
                seen.add(key)
                out.append(entry)
    return out


# ----------------------------------------------------------------------------- HTML


def _icon_html(e: LegendEntry) -> str:
    c = _html.escape(e.colour)
    if e.shape == "line":
        h = max(2, min(8, round(e.width_px)))
        return f'<span style="display:inline-block;width:22px;height:{h}px;background:{c};border-radius:1px"></span>'
    if e.shape == "swatch":
        return f'<span style="display:inline-block;width:14px;height:14px;background:{c};border:1px solid #868e96"></span>'
    if e.shape == "depot":
        return (f'<span style="display:inline-block;width:8px;height:8px;background:#fff;border:4px solid {c};'
                f'border-radius:50%;box-shadow:0 0 0 1px #212529"></span>')
    if e.shape == "gradient":
        grad = ",".join(_html.escape(s) for s in e.stops)
        return (f'{_html.escape(e.low)}<span style="display:inline-block;width:70px;height:10px;margin:0 4px;'
                f'background:linear-gradient(to right,{grad})"></span>{_html.escape(e.high)}')
    if e.shape == "ring":
        return f'<span style="display:inline-block;width:10px;height:10px;border:2px solid {c};border-radius:50%"></span>'
    ring = _html.escape(e.ring or pal.CREW_RING)
    return (f'<span style="display:inline-block;width:10px;height:10px;background:{c};border:2px solid {ring};'
            f'border-radius:50%;box-shadow:0 0 0 1px #adb5bd"></span>')


def legend_html(entries: Iterable[LegendEntry], *, title: str = "", note: str = "") -> str:
    """Legend lines as one compact HTML block (every text escaped); empty string when there are none."""
    entries = list(entries)
    if not entries and not note:
        return ""
    parts = []
    if title:
        parts.append(f'<span style="font-weight:600;margin-right:12px">{_html.escape(title)}</span>')
    for e in entries:
        parts.append(f'<span class="citytwin-legend-entry" style="display:inline-flex;align-items:center;gap:5px;'
                     f'margin-right:14px;white-space:nowrap">{_icon_html(e)}<span>{_html.escape(e.label)}</span></span>')
    if note:
        parts.append(f'<span style="color:#495057">{_html.escape(note)}</span>')
    return ('<div class="citytwin-legend" style="font-size:0.85rem;line-height:1.9;display:flex;flex-wrap:wrap;'
            'align-items:center">' + "".join(parts) + "</div>")


def deck_legend_html(deck_or_layers, lang: str = "en", *, title: bool = True) -> str:
    """The legend of a deck as HTML (:func:`deck_legend_entries`, :func:`legend_html`).

    Show it under the map: ``st.html(deck_legend_html(deck, lang))`` (or
    ``st.markdown(..., unsafe_allow_html=True)``).  Every text is escaped.

    Examples
    --------
    >>> deck_legend_html([], "en")
    ''
    """
    entries = deck_legend_entries(deck_or_layers, lang)
    return legend_html(entries, title=t("map.legend.title", lang) if (title and entries) else "")
