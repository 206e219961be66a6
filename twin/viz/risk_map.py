"""The forecast's flood probability on a deck.gl map (no basemap tiles), its colours and legend.

Used by the workbench's Flood forecast page (:mod:`twin.pages.forecast`);
the layers of the city itself come from :func:`twin.viz.map2d.city_deck`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gisdata.city import CityTwin
from twin.i18n import t
from twin.viz import palette as pal

NO_RISK_RGB = pal.rgb(pal.NO_RISK)
"""Grey of roads and points with no forecast water."""

PROB_CMAP = "YlOrRd"
"""Matplotlib colour map of probabilities (yellow, low, to dark red, 1)."""


def format_time(v) -> str:
    """A time (Timestamp, ISO text, or empty / NaT) as ``YYYY-MM-DD HH:MM``, or ``-`` for none."""
    ts = pd.to_datetime(v, errors="coerce")
    return "-" if pd.isna(ts) else ts.strftime("%Y-%m-%d %H:%M")


def probability_rgb(p) -> np.ndarray:
    """Colour of flood probabilities 0-1 as (n, 3) ints: yellow (low) to dark red (1); grey where 0."""
    from matplotlib import colormaps

    p = np.clip(np.nan_to_num(np.asarray(p, dtype=float)), 0.0, 1.0)
    rgb = (colormaps[PROB_CMAP](0.2 + 0.8 * p)[:, :3] * 255).round().astype(int)
    rgb[p <= 0] = NO_RISK_RGB
    return rgb


def _risk_tip(row, lang: str) -> tuple[str, dict]:
    """The tooltip (title, rows) of one risk point (:func:`twin.viz.map2d.tooltip_columns`)."""
    return (t(f"forecast.kind.{row['kind']}", lang), {
        t("map.id", lang): row["element_id"],
        t("forecast.col.probability", lang): f"{row['probability']:.2f}",
        t("forecast.col.expected_max_depth_m", lang): f"{row['expected_max_depth_m']:.2f}",
        t("forecast.col.p90_max_depth_m", lang): f"{row['p90_max_depth_m']:.2f}",
        t("forecast.col.onset", lang): format_time(row["onset"]),
        t("forecast.col.lead_h", lang): "-" if pd.isna(row["lead_h"]) else f"{row['lead_h']:.1f}",
    })


def risk_deck(city: CityTwin, risk: pd.DataFrame, *, lang: str = "en", height_px: int = 600):
    """The forecast's flood probability on a deck.gl map with no basemap tiles.

    Terrain and buildings (:func:`twin.viz.map2d.city_deck`), every road in
    grey, and the risk table's points coloured by probability: district cells
    as translucent polygons, roads as wide lines, manholes as dots, with a
    tooltip each.

    Parameters
    ----------
    city : CityTwin
        The forecast's city.
    risk : DataFrame
        :func:`hydraulics.risk.compute_risk` table.
    lang : str
        Language of the tooltips.

    Returns
    -------
    pydeck.Deck
    """
    import pydeck as pdk

    from hydraulics.risk import risk_layer
    from twin.viz.map2d import city_deck, paths_lonlat, rings_lonlat, tooltip_columns

    deck = city_deck(city, ("terrain", "buildings"), lang=lang, height_px=height_px)
    layers = list(deck.layers)
    shown = risk[risk["probability"] > 0]  # the rest stay grey, like every other road
    gdf = risk_layer(shown, city).to_crs("EPSG:4326") if len(shown) else None
    roads = city.roads.to_crs("EPSG:4326")
    paths, _ = paths_lonlat(roads.geometry)
    under = [pdk.Layer("PathLayer", id="roads_all", data=pd.DataFrame({"path": paths}), get_path="path",
                       get_color=NO_RISK_RGB, get_width=3, width_min_pixels=1)]
    over = []
    if gdf is not None:
        rgb = probability_rgb(gdf["probability"].to_numpy())
        tips = [_risk_tip(row, lang) for _, row in gdf.iterrows()]
        for kind in ("district", "road", "manhole"):
            sel = np.flatnonzero(gdf["kind"].to_numpy() == kind)
            if not len(sel):
                continue
            part = gdf.iloc[sel]
            if kind == "district":
                rings, src = rings_lonlat(part.geometry)
                df = pd.DataFrame({"polygon": rings, "color": [rgb[sel[k]].tolist() + [80] for k in src],
                                   **tooltip_columns(tips[sel[k]] for k in src)})
                under.insert(0, pdk.Layer("PolygonLayer", id="risk_districts", data=df, get_polygon="polygon",
                                          get_fill_color="color", get_line_color=pal.rgb(pal.RISK_EDGE), line_width_min_pixels=1,
                                          pickable=True))
            elif kind == "road":
                rp, src = paths_lonlat(part.geometry)
                df = pd.DataFrame({"path": rp, "color": [rgb[sel[k]].tolist() for k in src],
                                   **tooltip_columns(tips[sel[k]] for k in src)})
                over.append(pdk.Layer("PathLayer", id="risk_roads", data=df, get_path="path", get_color="color",
                                      get_width=10.0, width_min_pixels=4, width_max_pixels=12, cap_rounded=True,
                                      pickable=True))
            else:
                df = pd.DataFrame({"lon": part.geometry.x.round(6).to_numpy(), "lat": part.geometry.y.round(6).to_numpy(),
                                   "color": [rgb[k].tolist() for k in sel], **tooltip_columns(tips[k] for k in sel)})
                over.append(pdk.Layer("ScatterplotLayer", id="risk_manholes", data=df, get_position=["lon", "lat"],
                                      get_fill_color="color", get_radius=6.0, radius_units="'meters'", radius_min_pixels=4,
                                      radius_max_pixels=10, stroked=True,
                                      get_line_color=pal.rgb(pal.CREW_RING), line_width_min_pixels=1, pickable=True))
    # Terrain at the bottom, then district shading and grey roads, buildings, then the risky roads and manholes.
    deck.layers = layers[:1] + under + layers[1:] + over
    return deck


def risk_legend_html(lang: str = "en") -> str:
    """An HTML legend for :func:`risk_deck`: the probability colour scale and the shapes."""
    stops = probability_rgb(np.linspace(0.001, 1, 6))
    grad = ",".join("rgb({},{},{})".format(*c) for c in stops)
    grey = "rgb({},{},{})".format(*NO_RISK_RGB)
    return ('<div style="font-size:0.85rem;line-height:1.8">'
            f'<span style="display:inline-flex;align-items:center;margin-right:16px">'
            f'{t("forecast.legend.probability", lang)}&nbsp;0'
            f'<span style="display:inline-block;width:110px;height:10px;margin:0 5px;'
            f'background:linear-gradient(to right,{grad})"></span>1</span>'
            f'<span style="display:inline-flex;align-items:center;margin-right:16px">'
            f'<span style="display:inline-block;width:22px;height:5px;background:{grey};margin-right:5px"></span>'
            f'{t("forecast.legend.no_risk", lang)}</span>'
            f'<span>{t("forecast.legend.shapes", lang)}</span></div>')
