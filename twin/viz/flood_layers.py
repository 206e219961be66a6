"""A flood event in 2D: deck.gl layers, a static map and charts.

* :func:`depth_layer` - maximum surface depth as a transparent-where-dry bitmap (the street
  water of a coupled run, in fixed depth classes, is :mod:`twin.viz.depth_map`);
* :func:`road_status_layer` - roads coloured open / closed to cars / closed;
* :func:`flooded_nodes_layer` - manholes that overflowed, sized by volume;
* :func:`flood_deck` - those over the city's terrain and buildings, with no
  basemap tiles (``map_style=None``: works offline);
* :func:`flood_legend_html` - the legend deck.gl does not draw;
* :func:`hydrograph_chart`, :func:`rain_chart` - Altair charts of one manhole
  and of the rain;
* :func:`write_flood_png` - a static matplotlib map of depth and closures.

They take a city and a :class:`~twin.flood_event.FloodEventResult`; nothing here simulates.
"""

from __future__ import annotations

import html as _html
from pathlib import Path

import numpy as np
import pandas as pd

from gisdata.city import CityTwin
from gisdata.raster import Raster
from twin.i18n import t
from twin.viz import palette as pal
from twin.viz.map2d import tooltip_columns

STATUS_RGB = {"open": pal.rgb(pal.OPEN_ROAD), "wet": pal.rgb(pal.WET_ROAD),
              **{k: pal.rgb(c) for k, c in pal.CLOSURE.items()}}
"""Road colour by state: open, wet but open (0.05 m or more), closed to cars, closed (:data:`twin.viz.palette.CLOSURE`)."""
STATUS_WIDTH_M = {"open": 3.0, "wet": 8.0, "closed_to_cars": 10.0, "closed": 12.0}
WET_ROAD_M = 0.05
"""An open road this deep or more is drawn as wet, m (the lowest depth class)."""
FLOODED_NODE_RGB = pal.rgb(pal.SPILL)
WATER_CMAP = pal.WATER_CMAP
MIN_DEPTH_M = 0.02
"""Water shallower than this is not drawn, m (matches the 3D scene)."""


def water_cmap():
    """The water colour map: the upper 65 % of matplotlib's Blues, so shallow water still shows."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    return ListedColormap(colormaps[WATER_CMAP](np.linspace(0.35, 1.0, 256)), name="citytwin_water")


def _vmax(depth: Raster, vmax_m: float | None) -> float:
    if vmax_m is not None:
        return float(vmax_m)
    top = float(np.nanmax(depth.values)) if depth.values.size else 0.0
    return max(top, 0.1)


def depth_rgba(depth: Raster, *, min_depth_m: float = MIN_DEPTH_M, vmax_m: float | None = None) -> np.ndarray:
    """Depth as an (rows, cols, 4) uint8 image: blue by depth, transparent where dry.

    Parameters
    ----------
    depth : Raster
        Water depth, m.
    min_depth_m : float
        Cells shallower than this are transparent, m.
    vmax_m : float, optional
        Depth of the darkest blue, m; default the raster's maximum (at least 0.1 m).
    """
    d = np.nan_to_num(np.asarray(depth.values, dtype=float), nan=0.0)
    vmax = _vmax(depth, vmax_m)
    rgba = water_cmap()(np.clip(d / vmax, 0, 1))
    rgba[..., 3] = np.where(d >= min_depth_m, 0.85, 0.0)
    return (rgba * 255).round().astype(np.uint8)


def corners_lonlat(bounds, crs: str) -> list[list[float]]:
    """The four corners of ``bounds`` (xmin, ymin, xmax, ymax in ``crs``) in [lon, lat], as a ``BitmapLayer`` takes them."""
    from pyproj import Transformer

    xmin, ymin, xmax, ymax = bounds
    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    return [list(tr.transform(x, y)) for x, y in ((xmin, ymin), (xmin, ymax), (xmax, ymax), (xmax, ymin))]


def depth_layer(depth: Raster, *, min_depth_m: float = MIN_DEPTH_M, vmax_m: float | None = None,
                layer_id: str = "flood_depth"):
    """A deck.gl ``BitmapLayer`` of a water depth raster in the fixed depth classes of :mod:`twin.viz.depth_map`.

    The same scale as every other picture of street water (0.05 / 0.15 / 0.30 / 0.50 m),
    transparent where shallower than 0.05 m, cells kept sharp (no texture smoothing, so a
    street a few pixels wide at city zoom keeps its full colour).  ``min_depth_m`` and
    ``vmax_m`` are kept for callers of the old continuous scale and no longer change the picture.
    """
    import pydeck as pdk

    from twin.viz.depth_map import SHARP_TEXTURE, depth_class_rgba
    from twin.viz.depth_map import _png_data_url as png_url

    rgba = depth_class_rgba(np.nan_to_num(np.asarray(depth.values, dtype=float), nan=0.0))
    return pdk.Layer("BitmapLayer", id=layer_id, image=pdk.types.String(png_url(rgba)),
                     bounds=corners_lonlat(depth.bounds, depth.crs), opacity=1.0, texture_parameters=SHARP_TEXTURE)


def road_status_layer(roads, closures: pd.DataFrame, *, lang: str = "en"):
    """Roads as a deck.gl ``PathLayer`` coloured by closure state, with depth in the tooltip.

    Parameters
    ----------
    roads : GeoDataFrame
        The city's roads, indexed by ``road_id`` (any CRS; drawn in EPSG:4326).
    closures : DataFrame
        ``depth_m`` and ``status`` per ``road_id`` (:func:`hydraulics.surface.road_closures`).
    """
    import pydeck as pdk
    import shapely

    wgs = roads.to_crs("EPSG:4326")
    status = closures["status"].astype(str).reindex(wgs.index).fillna("open").to_numpy()
    depth = closures["depth_m"].reindex(wgs.index).to_numpy(dtype=float)
    status = np.where((status == "open") & (np.nan_to_num(depth, nan=0.0) >= WET_ROAD_M), "wet", status)
    parts, src = shapely.get_parts(wgs.geometry.to_numpy(), return_index=True)
    xy, pidx = shapely.get_coordinates(parts, return_index=True)
    paths = np.split(np.round(xy, 6), np.cumsum(np.bincount(pidx, minlength=len(parts)))[:-1])
    st = status[src]
    # Closed roads last, so they draw on top of open ones.
    order = np.argsort(pd.Categorical(st, categories=list(STATUS_RGB)).codes, kind="stable")
    names = wgs["name"].to_numpy() if "name" in wgs.columns else np.full(len(wgs), "")
    df = pd.DataFrame({
        "path": [paths[k].tolist() for k in order],
        "color": [STATUS_RGB.get(st[k], STATUS_RGB["open"]) for k in order],
        "width_m": [STATUS_WIDTH_M.get(st[k], 3.0) for k in order],
        **tooltip_columns((t("map.road", lang), {
            t("map.id", lang): wgs.index[src[k]], t("map.name", lang): names[src[k]] or "-",
            t("flood.road_status", lang): t(f"flood.status.{st[k]}", lang),
            t("flood.road_depth_m", lang): "-" if np.isnan(depth[src[k]]) else f"{depth[src[k]]:.2f}"})
            for k in order),
    })
    return pdk.Layer("PathLayer", id="road_status", data=df, get_path="path", get_color="color",
                     get_width="width_m", width_min_pixels=2, cap_rounded=True, pickable=True)


def flooded_nodes_layer(nodes, event_nodes: pd.DataFrame, *, lang: str = "en", max_radius_m: float = 25.0):
    """Manholes that overflowed as a deck.gl ``ScatterplotLayer`` of rings (the water shows through), area
    proportional to flood volume.

    Parameters
    ----------
    nodes : GeoDataFrame
        The city's nodes (Points, indexed by ``node_id``).
    event_nodes : DataFrame
        :attr:`FloodEventResult.nodes` (``flood_volume_m3``, ``peak_depth_m``, ``max_depth_m``).
    max_radius_m : float
        Radius of the largest overflow, m (the others scale by the square root of their volume).
    """
    import pydeck as pdk

    sel = event_nodes[event_nodes["flood_volume_m3"] > 0]
    pts = nodes.loc[sel.index].to_crs("EPSG:4326")
    vol = sel["flood_volume_m3"].to_numpy(dtype=float)
    df = pd.DataFrame({
        "lon": np.round(pts.geometry.x.to_numpy(), 6), "lat": np.round(pts.geometry.y.to_numpy(), 6),
        "radius_m": max_radius_m * np.sqrt(vol / vol.max()) if len(vol) else [],
        **tooltip_columns((t("map.manhole", lang), {
            t("map.id", lang): nid, t("flood.volume_m3", lang): f"{v:.1f}",
            t("flood.peak_flooding_cms", lang): f"{q:.3f}",
            t("flood.peak_depth_m", lang): f"{d:.2f} / {m:.2f}"})
            for nid, v, q, d, m in zip(sel.index, vol, sel["peak_flooding_cms"], sel["peak_depth_m"],
                                       sel["max_depth_m"])),
    })
    return pdk.Layer("ScatterplotLayer", id="flooded_nodes", data=df, get_position=["lon", "lat"],
                     get_fill_color=FLOODED_NODE_RGB + [40], get_radius="radius_m", radius_units="'meters'",
                     radius_min_pixels=2, radius_max_pixels=12, stroked=True, get_line_color=FLOODED_NODE_RGB,
                     line_width_min_pixels=1.5, pickable=True)


def flood_deck(city: CityTwin, result, *, lang: str = "en", height_px: int = 600, terrain: bool = True,
               buildings: bool = True, depth_frame: int | None = None):
    """The flood event on a deck.gl map with no basemap tiles.

    Terrain hillshade and buildings (from :func:`twin.viz.map2d.city_deck`),
    roads by state (open, wet, closed to cars, closed), the water depth over
    them and the manholes that overflowed (rings), with tooltips.  When the result keeps its street water over
    time (``result.depths``, a :class:`~hydraulics.depth_series.DepthSeries`),
    the water is drawn in the fixed depth classes of :mod:`twin.viz.depth_map`
    at frame ``depth_frame`` (default each cell's maximum); otherwise the
    maximum depth on a blue scale.  Either way the water layer's id is
    ``flood_depth`` (:func:`with_depth_frame` swaps it).

    Parameters
    ----------
    city : CityTwin
        The city that was run.
    result : FloodEventResult
        Its flood event.
    lang : str
        Language of the tooltips.

    Returns
    -------
    pydeck.Deck
        With ``map_style=None``.

    Examples
    --------
    >>> st.pydeck_chart(flood_deck(city, run_flood_event(city, rain)))  # doctest: +SKIP
    """
    from twin.viz.map2d import city_deck

    base = [name for name, on in (("terrain", terrain), ("buildings", buildings)) if on]
    deck = city_deck(city, tuple(base), lang=lang, height_px=height_px)
    layers = list(deck.layers)
    series = getattr(result, "depths", None)
    if series is not None:
        from twin.viz.depth_map import depth_frame_layer

        water = depth_frame_layer(series, depth_frame, layer_id="flood_depth")
    else:
        water = depth_layer(result.depth)
    # the water over the roads: at city zoom a street is a few pixels wide, and a road line drawn
    # on top hid the water on it (flood depth "nearly invisible")
    layers.append(road_status_layer(city.roads, result.roads, lang=lang))
    layers.append(water)
    if (result.nodes["flood_volume_m3"] > 0).any():
        xmin, ymin, xmax, ymax = city.extent
        layers.append(flooded_nodes_layer(city.nodes, result.nodes, lang=lang,
                                          max_radius_m=max(xmax - xmin, ymax - ymin) / 100))
    deck.layers = layers
    return deck


def with_depth_frame(deck, series, k: int | None):
    """A copy of a :func:`flood_deck` whose water layer shows frame ``k`` of ``series`` (None: the maximum).

    The deck itself is not changed (it may be cached); only the water layer is rebuilt.
    """
    import copy

    from twin.viz.depth_map import depth_frame_layer

    out = copy.copy(deck)
    out.layers = [depth_frame_layer(series, k, layer_id="flood_depth") if getattr(layer, "id", None) == "flood_depth"
                  else layer for layer in deck.layers]
    return out


def _swatch(rgb, label: str, *, line: bool = False) -> str:
    colour = "rgb({},{},{})".format(*rgb[:3])
    shape = (f"width:22px;height:5px;background:{colour};" if line
             else f"width:12px;height:12px;background:{colour};border-radius:6px;")
    return (f'<span style="display:inline-flex;align-items:center;margin-right:14px">'
            f'<span style="display:inline-block;{shape}margin-right:5px"></span>{_html.escape(label)}</span>')


def flood_legend_html(result, *, lang: str = "en", depth_frame: int | None = None) -> str:
    """An HTML legend for :func:`flood_deck`: depth scale, road states with counts, flooded manholes.

    With ``result.depths`` the depth part is the fixed depth classes at ``depth_frame``
    (default the maximum over the event), with each class's area.
    """
    series = getattr(result, "depths", None)
    status = result.roads["status"].astype(str)
    wet = (status == "open") & (result.roads["depth_m"].fillna(0.0).to_numpy(dtype=float) >= WET_ROAD_M)
    counts = status.where(~wet, "wet").value_counts()
    if series is not None:
        from twin.viz.depth_map import depth_legend_html

        parts = [depth_legend_html(lang, series=series, k=depth_frame, maximum=depth_frame is None, wrap=False),
                 "<br/>"]
    else:  # the maximum depth raster, in the same fixed classes
        from twin.viz.depth_map import depth_legend_html

        parts = [depth_legend_html(lang, wrap=False), "<br/>"]
    for status, rgb in STATUS_RGB.items():
        parts.append(_swatch(rgb, t("flood.legend.road", lang, status=t(f"flood.status.{status}", lang),
                                    n=int(counts.get(status, 0))), line=True))
    n_flooded = int((result.nodes["flood_volume_m3"] > 0).sum())
    parts.append(_swatch(FLOODED_NODE_RGB, t("flood.legend.nodes", lang, n=n_flooded)))
    return '<div style="font-size:0.85rem;line-height:1.8">' + "".join(parts) + "</div>"


# ----------------------------------------------------------------------------- charts


def hydrograph_chart(result, node_id: str, *, lang: str = "en", height_px: int = 300):
    """Depth and overflow rate over time at one manhole (Altair; two y axes, rim depth dashed).

    Parameters
    ----------
    result : FloodEventResult
    node_id : str
        A node of the city.
    """
    import altair as alt

    h = result.hydrograph(node_id).reset_index()
    x_title, depth_title = t("flood.chart.time_min", lang), t("flood.chart.depth_m", lang)
    flow_title = t("flood.chart.flooding_cms", lang)
    x = alt.X("elapsed_min:Q", title=x_title)
    depth = alt.Chart(h).mark_line(color=pal.CHART["depth"]).encode(
        x, alt.Y("depth_m:Q", title=depth_title, axis=alt.Axis(titleColor=pal.CHART["depth"])),
        tooltip=[alt.Tooltip("elapsed_min:Q", title=x_title, format=".1f"),
                 alt.Tooltip("depth_m:Q", title=depth_title, format=".3f"),
                 alt.Tooltip("flooding_cms:Q", title=flow_title, format=".4f")])
    flow = alt.Chart(h).mark_area(color=pal.CHART["overflow"], opacity=0.35, line={"color": pal.CHART["overflow"]}).encode(
        x, alt.Y("flooding_cms:Q", title=flow_title, axis=alt.Axis(titleColor=pal.CHART["overflow"], orient="right")))
    depth_side = depth
    if node_id in result.nodes.index and np.isfinite(result.nodes.loc[node_id, "max_depth_m"]):
        rim = pd.DataFrame({"rim": [float(result.nodes.loc[node_id, "max_depth_m"])],
                            "label": [t("flood.chart.rim", lang)]})
        rule = alt.Chart(rim).mark_rule(color=pal.CHART["rim"], strokeDash=[6, 4]).encode(
            y="rim:Q", tooltip=[alt.Tooltip("label:N", title=" ")])
        depth_side = alt.layer(depth, rule)
    return (alt.layer(flow, depth_side).resolve_scale(y="independent")
            .properties(height=height_px, title=t("flood.chart.title", lang, node=node_id)))


def rain_chart(rain, *, lang: str = "en", height_px: int = 180):
    """Rain intensity over time (mean over gauges) as an Altair bar chart."""
    import altair as alt

    frame = rain.intensity_mm_h
    mins = (np.asarray(rain.elapsed_s, dtype=float) / 60.0) if hasattr(rain, "elapsed_s") else \
        np.arange(len(frame)) * rain.step_s / 60.0
    df = pd.DataFrame({"start_min": mins, "end_min": mins + rain.step_s / 60.0,
                       "intensity_mm_h": frame.mean(axis=1).to_numpy()})
    x_title, y_title = t("flood.chart.time_min", lang), t("flood.chart.intensity_mm_h", lang)
    return alt.Chart(df).mark_rect(color=pal.CHART["rain"]).encode(
        x=alt.X("start_min:Q", title=x_title), x2="end_min:Q",
        y=alt.Y("intensity_mm_h:Q", title=y_title), y2=alt.datum(0),
        tooltip=[alt.Tooltip("start_min:Q", title=x_title, format=".0f"),
                 alt.Tooltip("intensity_mm_h:Q", title=y_title, format=".1f")],
    ).properties(height=height_px)


# ----------------------------------------------------------------------------- static map


def write_flood_png(city: CityTwin, result, path: str | Path, *, dpi: int = 120, lang: str = "en") -> Path:
    """Write a static map of the flood event to a PNG file.

    Hillshade, buildings, maximum water depth (the fixed depth classes), roads
    by closure state, manholes that overflowed (size by volume), legend, scale
    bar and north arrow.  Axes in metres of the city's CRS.

    Parameters
    ----------
    city : CityTwin
    result : FloodEventResult
    path : str or Path
        Output ``.png``; written under a temporary name and renamed into place.
    dpi : int
    lang : str
    """
    import matplotlib
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    from twin.viz.geometry import nice_length
    from twin.viz.map2d import (
        _lines_xy,
        _rings_xy,
        _sans_fonts,
        hillshade_rgb,
        save_figure_png,
    )

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    xmin, ymin, xmax, ymax = city.extent
    with matplotlib.rc_context({"font.family": "sans-serif", "font.sans-serif": _sans_fonts(lang)}):
        fig = Figure(figsize=(11, 9), dpi=dpi)
        ax = fig.subplots()
        ax.imshow(hillshade_rgb(city), extent=(xmin, xmax, ymin, ymax), origin="upper", zorder=0)
        if len(city.buildings):
            rings, _ = _rings_xy(city.buildings.geometry)
            ax.add_collection(PolyCollection(rings, facecolors=pal.BUILDING_FLAT, edgecolors="none", alpha=0.6,
                                             zorder=2))
        from twin.viz.depth_map import DEPTH_ALPHA, depth_class_rgba, depth_legend_entries

        d = np.nan_to_num(np.asarray(result.depth.values, dtype=float), nan=0.0)
        bx0, by0, bx1, by1 = result.depth.bounds
        ax.imshow(depth_class_rgba(d), extent=(bx0, bx1, by0, by1), origin="upper", zorder=3,
                  interpolation="nearest")
        handles = [Patch(facecolor=c, edgecolor=pal.LEGEND_EDGE, alpha=DEPTH_ALPHA, label=label)
                   for label, c in depth_legend_entries(lang)]
        status = result.roads["status"].astype(str).reindex(city.roads.index).fillna("open")
        counts = status.value_counts()
        depth = result.roads["depth_m"].reindex(city.roads.index).to_numpy(dtype=float)
        status = status.where(~((status == "open") & (np.nan_to_num(depth, nan=0.0) >= WET_ROAD_M)), "wet")
        counts = status.value_counts()
        for st, rgb in STATUS_RGB.items():
            sel = city.roads[status.to_numpy() == st]
            lw = {"open": 1.0, "wet": 2.0, "closed_to_cars": 3.0, "closed": 3.5}[st]
            colour = np.array(rgb) / 255
            if len(sel):
                ax.add_collection(LineCollection(_lines_xy(sel.geometry), colors=[colour], linewidths=lw,
                                                 zorder=4 if st == "open" else 5))
            handles.append(Line2D([], [], color=colour, lw=lw, label=t(
                "flood.legend.road", lang, status=t(f"flood.status.{st}", lang), n=int(counts.get(st, 0)))))
        fl = result.nodes[result.nodes["flood_volume_m3"] > 0]
        if len(fl):
            pts = city.nodes.loc[fl.index]
            ax.scatter(pts.geometry.x, pts.geometry.y, s=12 + 4 * np.sqrt(fl["flood_volume_m3"].to_numpy()),
                       color=np.array(FLOODED_NODE_RGB) / 255, edgecolors="white", linewidths=0.8, zorder=6)
        handles.append(Line2D([], [], marker="o", color="none", markerfacecolor=np.array(FLOODED_NODE_RGB) / 255,
                              markeredgecolor="white", markersize=8,
                              label=t("flood.legend.nodes", lang, n=len(fl))))
        s = result.summary
        ax.set_title(t("flood.map_title", lang, name=city.name, rain=getattr(result.rain, "label", ""),
                       depth=f"{s['max_surface_depth_m']:.2f}", volume=f"{s['flood_volume_m3']:.0f}"))
        ax.set_xlim(xmin, xmax)
        ax.set_ylim(ymin, ymax)
        ax.set_aspect("equal")
        ax.set_xlabel(t("map.easting", lang, crs=city.crs))
        ax.set_ylabel(t("map.northing", lang, crs=city.crs))
        ax.ticklabel_format(useOffset=False, style="plain")
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=3, fontsize=8,
                  frameon=False)
        bar = nice_length((xmax - xmin) / 5)
        ax.add_artist(AnchoredSizeBar(ax.transData, bar, f"{bar:g} m", "lower left", pad=0.6, sep=4,
                                      color="black", frameon=True, size_vertical=(ymax - ymin) / 150))
        ax.annotate("N", xy=(0.95, 0.95), xytext=(0.95, 0.86), xycoords="axes fraction", ha="center",
                    va="center", fontsize=16,
                    arrowprops={"facecolor": "black", "width": 5, "headwidth": 14, "headlength": 12})
        save_figure_png(fig, path, dpi=dpi)
    return path


def write_depth_png(depth: np.ndarray, ground: Raster, path: str | Path, *, outside: np.ndarray | None = None,
                    river: np.ndarray | None = None, title: str = "", dpi: int = 110, lang: str = "en") -> Path:
    """Write a depth grid over its ground as a PNG: hillshade, walls, water bodies, depth with a colour bar.

    For a 2D surface run without a city (``twin flood2d``): the DEM is all there is to draw on.

    Parameters
    ----------
    depth : ndarray
        Water depth per cell, m (on ``ground``'s grid).
    ground : Raster
        Ground elevation, m.
    path : str or Path
        Output ``.png`` (written under a temporary name and renamed into place).
    outside, river : ndarray of bool, optional
        Walls (buildings, nodata) and water bodies, drawn grey and dark blue.
    title : str
        Figure title.
    dpi : int
    lang : str
    """
    import matplotlib
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    from twin.viz.geometry import nice_length
    from twin.viz.map2d import _sans_fonts, hillshade_rgb, save_figure_png

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    xmin, ymin, xmax, ymax = ground.bounds
    extent = (xmin, xmax, ymin, ymax)
    d = np.asarray(depth, dtype=float)
    aspect = (ymax - ymin) / max(xmax - xmin, 1e-9)
    with matplotlib.rc_context({"font.family": "sans-serif", "font.sans-serif": _sans_fonts(lang)}):
        fig = Figure(figsize=(10, max(3.0, min(10.0, 8.5 * aspect + 1.0))), dpi=dpi)
        ax = fig.subplots()
        ax.imshow(hillshade_rgb(ground), extent=extent, origin="upper", zorder=0)
        for mask, colour in ((outside, pal.WALLS), (river, pal.RIVER)):
            if mask is not None and np.any(mask):
                ax.imshow(np.ma.masked_where(~np.asarray(mask, bool), np.ones(d.shape)), extent=extent,
                          origin="upper", cmap=ListedColormap([colour]), vmin=0, vmax=1, zorder=1,
                          interpolation="nearest")
        vmax = max(float(np.nanmax(d)) if d.size else 0.0, 0.1)
        im = ax.imshow(np.ma.masked_less(d, MIN_DEPTH_M), extent=extent, origin="upper", cmap=water_cmap(),
                       vmin=0.0, vmax=vmax, alpha=0.9, zorder=2, interpolation="nearest")
        cb = fig.colorbar(im, ax=ax, shrink=0.7, pad=0.02)
        cb.set_label(t("flood.legend.depth", lang) + " (m)")
        ax.set_title(title)
        ax.set_xlim(xmin, xmax)
        ax.set_ylim(ymin, ymax)
        ax.set_aspect("equal")
        ax.set_xlabel(t("map.easting", lang, crs=ground.crs))
        ax.set_ylabel(t("map.northing", lang, crs=ground.crs))
        ax.ticklabel_format(useOffset=False, style="plain")
        bar = nice_length((xmax - xmin) / 5)
        ax.add_artist(AnchoredSizeBar(ax.transData, bar, f"{bar:g} m", "lower left", pad=0.6, sep=4,
                                      color="black", frameon=True, size_vertical=(ymax - ymin) / 150))
        save_figure_png(fig, path, dpi=dpi)
    return path
