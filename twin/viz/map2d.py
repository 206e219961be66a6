"""The city in 2D: an interactive deck.gl map and a static overview picture.

* :func:`city_deck` - a :class:`pydeck.Deck` with no basemap tiles
  (``map_style=None``, so it works offline): DEM hillshade, roads, extruded
  buildings, sewer pipes by diameter, manholes, outfalls, depots, sensors and
  vendor sites, with tooltips.  Layers are reprojected to EPSG:4326 for deck.gl.
* :func:`write_city_png` - a matplotlib overview map with legend, scale bar and
  north arrow.
* :func:`write_city_html` - the interactive 3D page (:mod:`twin.viz.scene`).

Nothing here simulates.
"""

from __future__ import annotations

import base64
import io
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from gisdata.city import CityTwin
from gisdata.raster import Raster
from twin.i18n import t
from twin.viz import palette as pal

MAP_LAYERS = ("terrain", "roads", "buildings", "pipes", "manholes", "depots", "sensors", "vendor_sites")
"""Layers :func:`city_deck` can draw, bottom to top."""

ROAD_RGB = {cls: pal.rgb(c) for cls, c in pal.ROAD_CLASS.items()}
"""Road colour by class as deck.gl [r, g, b] (:data:`twin.viz.palette.ROAD_CLASS`)."""
DEPARTMENT_RGB = {d: pal.rgb(c) for d, c in pal.DEPARTMENT.items()}
USE_RGB = {u: pal.rgb(c) for u, c in pal.BUILDING_USE.items()}
SENSOR_RGB = {s: pal.rgb(c) for s, c in pal.SENSOR.items()}
VENDOR_RGB = pal.rgb(pal.VENDOR)
MANHOLE_RGB = pal.rgb(pal.MANHOLE)
OUTFALL_RGB = pal.rgb(pal.OUTFALL)
MANHOLE_RADIUS_M = 1.2
"""Drawn radius of a manhole, m: it scales with the zoom between :data:`MANHOLE_PX` pixels."""
MANHOLE_PX = (1.5, 5.0)
"""Smallest and largest drawn manhole radius, pixels (at city zoom a dot, never a disc over the street)."""


def offline_deck(layers, view_state, *, height_px: int = 600, tooltip: dict | None = None):
    """A :class:`pydeck.Deck` that asks for no basemap at all.

    ``map_provider=None`` with pydeck's default style leaves the style unset in the
    JSON (``"__MAP_STYLE__"``); Streamlit then draws no basemap.  ``map_style=None``
    would not do: Streamlit reads it as "pick a basemap for the theme" and fetches
    one from basemaps.cartocdn.com (console errors offline).
    """
    import pydeck as pdk

    return pdk.Deck(layers=list(layers), initial_view_state=view_state, map_provider=None, height=height_px,
                    tooltip=deck_tooltip() if tooltip is None else tooltip)


# ----------------------------------------------------------------------------- deck.gl


def rings_lonlat(geoms: gpd.GeoSeries) -> tuple[list, np.ndarray]:
    """Per polygon part: a list of rings of [lon, lat]; plus the source row of each part."""
    parts, src = shapely.get_parts(geoms.to_numpy(), return_index=True)
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    xy, ridx = shapely.get_coordinates(rings, return_index=True)
    xy = np.round(xy, 6)
    per_ring = np.split(xy, np.cumsum(np.bincount(ridx, minlength=len(rings)))[:-1])
    out: list[list] = [[] for _ in range(len(parts))]
    for k, coords in enumerate(per_ring):
        out[ring_part[k]].append(coords.tolist())
    return out, src


def paths_lonlat(geoms: gpd.GeoSeries) -> tuple[list, np.ndarray]:
    """Per line part: a list of [lon, lat]; plus the source row of each part."""
    parts, src = shapely.get_parts(geoms.to_numpy(), return_index=True)
    xy, pidx = shapely.get_coordinates(parts, return_index=True)
    xy = np.round(xy, 6)
    paths = np.split(xy, np.cumsum(np.bincount(pidx, minlength=len(parts)))[:-1])
    return [p.tolist() for p in paths], src


def _points_lonlat(gdf: gpd.GeoDataFrame) -> pd.DataFrame:
    return pd.DataFrame({"lon": np.round(gdf.geometry.x.to_numpy(), 6), "lat": np.round(gdf.geometry.y.to_numpy(), 6)},
                        index=gdf.index)


TOOLTIP_HTML = "<b>{tip_title}</b><br/>{tip_body}"
"""The one tooltip template of every map: the markup is here, the data only fill ``{tip_title}`` and
``{tip_body}`` (see :func:`tooltip_fields`)."""

TOOLTIP_STYLE = {"backgroundColor": "#212529", "color": "white", "fontSize": "12px", "whiteSpace": "pre-line"}
"""Tooltip box style; ``pre-line`` turns the newlines of ``tip_body`` into line breaks."""

# A word joiner after "{" keeps a value such as "{tip_body}" from being read as a placeholder
# (Streamlit fills the placeholders one after another in the growing text); it is invisible.
_NO_PLACEHOLDER = str.maketrans({"{": "{\u2060", "\n": " ", "\r": " ", "\t": " "})


def tooltip_fields(title, rows: Mapping) -> dict[str, str]:
    """The two text fields of a feature's tooltip: its title and its ``key: value`` lines.

    The values stay plain text.  The template (:data:`TOOLTIP_HTML`) holds the markup,
    and Streamlit's ``st.pydeck_chart`` HTML-escapes every value it puts into an
    ``html`` tooltip (``&``, ``<``, ``>``, quotes), so a name such as
    ``<img onerror=...>`` from an OSM file or an event log shows as written and
    runs nothing.  Escaping here as well would show ``&lt;`` literally.

    Parameters
    ----------
    title : object
        The bold first line (e.g. "Road").
    rows : Mapping
        Label -> value, one line each, in order.

    Returns
    -------
    dict
        ``{"tip_title": str, "tip_body": str}``; line breaks inside a value become spaces.

    Examples
    --------
    >>> tooltip_fields("Road", {"ID": "<R1>", "name": "A & B"})
    {'tip_title': 'Road', 'tip_body': 'ID: <R1>\\nname: A & B'}
    """
    return {"tip_title": str(title).translate(_NO_PLACEHOLDER),
            "tip_body": "\n".join(f"{str(k).translate(_NO_PLACEHOLDER)}: {str(v).translate(_NO_PLACEHOLDER)}"
                                   for k, v in rows.items())}


def tooltip_columns(tips: Iterable[tuple[object, Mapping]]) -> dict[str, list[str]]:
    """:func:`tooltip_fields` of many features as two columns (``tip_title``, ``tip_body``) for a layer's data.

    Examples
    --------
    >>> tooltip_columns([("Crew", {"ID": "C1"}), ("Crew", {"ID": "C2"})])
    {'tip_title': ['Crew', 'Crew'], 'tip_body': ['ID: C1', 'ID: C2']}
    """
    fields = [tooltip_fields(title, rows) for title, rows in tips]
    return {"tip_title": [f["tip_title"] for f in fields], "tip_body": [f["tip_body"] for f in fields]}


def deck_tooltip(**style) -> dict:
    """The ``tooltip`` argument of every ``pydeck.Deck`` here: :data:`TOOLTIP_HTML`, with ``style`` over the default."""
    return {"html": TOOLTIP_HTML, "style": {**TOOLTIP_STYLE, **style}}


def _view(city: CityTwin):
    import pydeck as pdk
    from pyproj import Transformer

    xmin, ymin, xmax, ymax = city.extent
    tr = Transformer.from_crs(city.crs, "EPSG:4326", always_xy=True)
    lon, lat = tr.transform((xmin + xmax) / 2, (ymin + ymax) / 2)
    span = max(xmax - xmin, ymax - ymin, 50.0)
    # deck.gl's world is 512 px wide at zoom 0: metres per pixel = 78271.5 * cos(lat) / 2^zoom.
    # Fit the city in ~600 px.
    zoom = float(np.log2(78271.52 * np.cos(np.radians(lat)) * 600 / span))
    return pdk.ViewState(longitude=lon, latitude=lat, zoom=round(min(max(zoom, 1), 20), 2), pitch=40, bearing=0)


def hillshade_rgb(city: CityTwin | Raster) -> np.ndarray:
    """Hillshade of a city's DEM (or of a ground raster) coloured by elevation, (rows, cols, 3) floats in 0-1."""
    from matplotlib.colors import LightSource, LinearSegmentedColormap

    dem = city if isinstance(city, Raster) else city.dem
    z = np.asarray(dem.values, dtype=float)
    z = np.where(np.isfinite(z), z, np.nanmin(z) if np.isfinite(z).any() else 0.0)
    cmap = LinearSegmentedColormap.from_list("citytwin_terrain", pal.TERRAIN)
    ls = LightSource(azdeg=315, altdeg=45)
    lo, hi = float(z.min()), float(z.max())
    return ls.shade(z, cmap=cmap, blend_mode="soft", vert_exag=3.0, dx=dem.cell_size_m,
                    dy=dem.cell_size_m, vmin=lo, vmax=hi if hi > lo else lo + 1)[..., :3]


def _terrain_layer(city: CityTwin):
    import pydeck as pdk
    from matplotlib.image import imsave
    from pyproj import Transformer

    buf = io.BytesIO()
    imsave(buf, hillshade_rgb(city), format="png")
    # pdk.types.String: a bare str would be sent as a deck.gl accessor expression ("@@=...").
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    xmin, ymin, xmax, ymax = city.extent
    tr = Transformer.from_crs(city.crs, "EPSG:4326", always_xy=True)
    corners = [tr.transform(x, y) for x, y in ((xmin, ymin), (xmin, ymax), (xmax, ymax), (xmax, ymin))]
    return pdk.Layer("BitmapLayer", id="terrain", image=pdk.types.String(url), bounds=[list(c) for c in corners], opacity=0.9)


def city_deck(city: CityTwin, layers=MAP_LAYERS, *, lang: str = "en", height_px: int = 600):
    """An interactive deck.gl map of the city, with no basemap tiles.

    Parameters
    ----------
    city : CityTwin
        The city to draw.
    layers : sequence of str
        Which of :data:`MAP_LAYERS` to draw.
    lang : str
        Language of the tooltips (``"en"`` or ``"zh"``).
    height_px : int
        Map height in pixels (for pages that show the Deck directly).

    Returns
    -------
    pydeck.Deck
        With ``map_style=None`` (no internet needed) and a tooltip per feature.

    Examples
    --------
    >>> deck = city_deck(load_city("small"), layers=("roads", "pipes"))  # doctest: +SKIP
    >>> st.pydeck_chart(deck)                                            # doctest: +SKIP
    """
    import pydeck as pdk

    unknown = sorted(set(layers) - set(MAP_LAYERS))
    if unknown:
        raise ValueError(f"layers={unknown} unknown; expected a subset of {list(MAP_LAYERS)}")
    wgs = {name: city.layer(name).to_crs("EPSG:4326") for name in
           ("roads", "buildings", "conduits", "nodes", "depots", "sensors", "vendor_sites")}
    xmin, ymin, xmax, ymax = city.extent
    span = max(xmax - xmin, ymax - ymin)  # point symbols scale with the city, in m
    out = []
    if "terrain" in layers:
        out.append(_terrain_layer(city))

    if "roads" in layers and len(wgs["roads"]):
        roads = wgs["roads"]
        paths, src = paths_lonlat(roads.geometry)
        cls = roads["road_class"].to_numpy()[src]
        df = pd.DataFrame({
            "path": paths,
            "color": [ROAD_RGB.get(c, pal.rgb(pal.ROAD_OTHER)) for c in cls],
            "width_m": np.clip(roads["lanes"].to_numpy()[src], 1, 8) * 3.0,
            **tooltip_columns((t("map.road", lang), {t("map.id", lang): i, t("map.class", lang): t(f"road_class.{c}", lang),
                                               t("map.name", lang): n or "-", t("map.length_m", lang): f"{ln:.0f}"})
                    for i, c, n, ln in zip(roads.index[src], cls, roads["name"].to_numpy()[src],
                                           roads["length_m"].to_numpy()[src])),
        })
        out.append(pdk.Layer("PathLayer", id="roads", data=df, get_path="path", get_color="color",
                             get_width="width_m", width_min_pixels=1, pickable=True))

    if "buildings" in layers and len(wgs["buildings"]):
        b = wgs["buildings"]
        rings, src = rings_lonlat(b.geometry)
        use = b["use"].to_numpy()[src]
        df = pd.DataFrame({
            "polygon": rings,
            "height_m": b["height_m"].to_numpy()[src],
            "color": [USE_RGB.get(u, USE_RGB["other"]) for u in use],
            **tooltip_columns((t("map.building", lang), {t("map.id", lang): i, t("map.height_m", lang): f"{h:.1f}",
                                                   t("map.use", lang): t(f"use.{u}", lang), t("map.residents", lang): r})
                    for i, h, u, r in zip(b.index[src], b["height_m"].to_numpy()[src], use,
                                          b["residents"].to_numpy()[src])),
        })
        out.append(pdk.Layer("PolygonLayer", id="buildings", data=df, get_polygon="polygon", extruded=True,
                             get_elevation="height_m", get_fill_color="color", get_line_color=pal.rgb(pal.BUILDING_EDGE),
                             opacity=0.9, pickable=True, auto_highlight=True))

    if "pipes" in layers and len(wgs["conduits"]):
        from matplotlib import colormaps

        c = wgs["conduits"]
        paths, src = paths_lonlat(c.geometry)
        d = c["diameter_m"].to_numpy()[src]
        lo, hi = float(d.min()), float(d.max())
        rgba = colormaps["plasma"]((d - lo) / (hi - lo) if hi > lo else np.full(len(d), 0.5))
        df = pd.DataFrame({
            "path": paths,
            "color": (rgba[:, :3] * 255).round().astype(int).tolist(),
            "width_m": np.maximum(d * 6, 2.0),
            **tooltip_columns((t("map.pipe", lang), {t("map.id", lang): i, t("map.diameter_m", lang): f"{dd:.2f}",
                                               t("map.length_m", lang): f"{ln:.0f}", t("map.from_to", lang): f"{a} -> {z}"})
                    for i, dd, ln, a, z in zip(c.index[src], d, c["length_m"].to_numpy()[src],
                                               c["from_node"].to_numpy()[src], c["to_node"].to_numpy()[src])),
        })
        out.append(pdk.Layer("PathLayer", id="pipes", data=df, get_path="path", get_color="color",
                             get_width="width_m", width_min_pixels=2, pickable=True))

    if "manholes" in layers and len(wgs["nodes"]):
        n = wgs["nodes"]
        df = _points_lonlat(n)
        out_mask = (n["node_type"] == "outfall").to_numpy()
        df["color"] = [OUTFALL_RGB if o else MANHOLE_RGB for o in out_mask]
        df["radius_m"] = np.where(out_mask, 3 * MANHOLE_RADIUS_M, MANHOLE_RADIUS_M)
        df = df.assign(**tooltip_columns((t("map.outfall" if o else "map.manhole", lang),
                          {t("map.id", lang): i, t("map.rim_elev_m", lang): f"{r:.2f}",
                           t("map.invert_elev_m", lang): f"{v:.2f}", t("map.max_depth_m", lang): f"{m:.2f}"})
                     for i, o, r, v, m in zip(n.index, out_mask, n["rim_elev_m"], n["invert_elev_m"], n["max_depth_m"])))
        # outfalls last, on top of the manholes
        df = df.iloc[np.argsort(out_mask, kind="stable")]
        out.append(pdk.Layer("ScatterplotLayer", id="manholes", data=df.reset_index(drop=True),
                             get_position=["lon", "lat"], get_fill_color="color", get_radius="radius_m",
                             radius_units="'meters'", radius_min_pixels=MANHOLE_PX[0], radius_max_pixels=MANHOLE_PX[1],
                             stroked=True, get_line_color=pal.rgb(pal.MANHOLE_RING), line_width_min_pixels=1,
                             pickable=True))

    for name, key in (("depots", "depots"), ("sensors", "sensors"), ("vendor_sites", "vendor_sites")):
        if name not in layers or not len(wgs[key]):
            continue
        g = wgs[key]
        df = _points_lonlat(g)
        if name == "depots":
            df["color"] = [DEPARTMENT_RGB.get(d, pal.rgb(pal.OTHER_DEPARTMENT)) for d in g["department"]]
            df = df.assign(**tooltip_columns((t("map.depot", lang), {t("map.id", lang): i, t("map.name", lang): nm,
                                                     t("map.department", lang): t(f"department.{d}", lang),
                                                     t("map.n_crews", lang): k})
                         for i, nm, d, k in zip(g.index, g["name"], g["department"], g["n_crews"])))
            # a ring in the department's colour around a white centre: not a crew's solid dot
            out.append(pdk.Layer("ScatterplotLayer", id=name, data=df.reset_index(drop=True),
                                 get_position=["lon", "lat"], get_fill_color=pal.rgb(pal.DEPOT_CENTRE),
                                 get_line_color="color", get_radius=span / 120, radius_units="'meters'",
                                 radius_min_pixels=6, radius_max_pixels=14, stroked=True, line_width_units="'pixels'",
                                 get_line_width=4, pickable=True))
            continue
        if name == "sensors":
            df["color"] = [SENSOR_RGB.get(s, pal.rgb(pal.SENSOR["rain_gauge"])) for s in g["sensor_type"]]
            df = df.assign(**tooltip_columns((t("map.sensor", lang), {t("map.id", lang): i, t("map.type", lang): t(f"sensor_type.{s}", lang),
                                                      t("map.node", lang): nd or "-"})
                         for i, s, nd in zip(g.index, g["sensor_type"], g["node_id"])))
        else:
            df["color"] = [VENDOR_RGB] * len(g)
            df = df.assign(**tooltip_columns((t("map.vendor_site", lang), {t("map.id", lang): i, t("map.type", lang): t(f"site_type.{s}", lang),
                                                           t("map.attractiveness", lang): f"{a:.2f}"})
                         for i, s, a in zip(g.index, g["site_type"], g["attractiveness"])))
        out.append(pdk.Layer("ScatterplotLayer", id=name, data=df.reset_index(drop=True), get_position=["lon", "lat"],
                             get_fill_color="color", get_radius=span / 250, radius_units="'meters'", radius_min_pixels=3,
                             radius_max_pixels=8, stroked=True, get_line_color=pal.rgb(pal.CREW_RING),
                             line_width_min_pixels=1, pickable=True))

    return offline_deck(out, _view(city), height_px=height_px)


# ----------------------------------------------------------------------------- static overview


def write_city_png(city: CityTwin, path: str | Path, *, dpi: int = 150, lang: str = "en") -> Path:
    """Write a static overview map of the city to a PNG file.

    DEM hillshade, buildings, roads by class, sewer pipes coloured and sized by
    diameter, outfalls and depots, with a legend, a colour bar, a scale bar and a
    north arrow.  Axes are in metres of the city's CRS.

    Parameters
    ----------
    city : CityTwin
        The city to draw.
    path : str or Path
        Output ``.png``; written under a temporary name and renamed into place.
    dpi : int
        Resolution (the figure is 12 x 10 inches).
    lang : str
        Language of the labels (``"en"`` or ``"zh"``; Chinese needs a CJK font).

    Returns
    -------
    Path
        The PNG path.
    """
    import matplotlib
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    # A bare Figure, not pyplot: no global state, safe in Streamlit's threads.
    with matplotlib.rc_context({"font.family": "sans-serif", "font.sans-serif": _sans_fonts(lang)}):
        fig = Figure(figsize=(12, 10), dpi=dpi)
        _draw_city_map(fig, city, lang)
        save_figure_png(fig, path, dpi=dpi)
    return path


def save_figure_png(fig, path: Path, *, dpi: int) -> Path:
    """Write a matplotlib figure as PNG under a temporary name and rename it into place."""
    fd, tmp_name = tempfile.mkstemp(suffix=".png", dir=path.parent, prefix=f".{path.stem}.")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
        tmp.chmod(0o644)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _sans_fonts(lang: str) -> list[str]:
    """Sans-serif fonts to try: for Chinese a CJK font first, when the system has one."""
    from matplotlib import font_manager

    from twin.viz.fonts import cjk_font_path

    names = ["DejaVu Sans"]
    path = cjk_font_path() if lang != "en" else None
    if path:
        font_manager.fontManager.addfont(path)  # idempotent; matplotlib's cache may predate the font
        names.insert(0, font_manager.FontProperties(fname=path).get_name())
    return names


def _draw_city_map(fig, city: CityTwin, lang: str) -> None:
    import matplotlib
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    from twin.viz.geometry import nice_length

    xmin, ymin, xmax, ymax = city.extent
    ax = fig.subplots()
    ax.imshow(hillshade_rgb(city), extent=(xmin, xmax, ymin, ymax), origin="upper", zorder=0)
    handles = [Patch(facecolor=pal.TERRAIN_SWATCH, edgecolor="none", label=t("legend.terrain", lang))]

    if len(city.buildings):
        rings, _ = _rings_xy(city.buildings.geometry)
        ax.add_collection(PolyCollection(rings, facecolors=pal.BUILDING_FLAT, edgecolors="none", alpha=0.85, zorder=2))
        handles.append(Patch(facecolor=pal.BUILDING_FLAT, label=t("legend.buildings", lang, n=len(city.buildings))))

    for cls, rgb in ROAD_RGB.items():
        sel = city.roads[city.roads["road_class"] == cls]
        if len(sel):
            lw = pal.ROAD_WIDTH_PX.get(cls, 1.0)
            color = np.array(rgb) / 255
            ax.add_collection(LineCollection(_lines_xy(sel.geometry), colors=[color], linewidths=lw, zorder=3))
            handles.append(Line2D([], [], color=color, lw=lw, label=t("legend.road", lang, cls=t(f"road_class.{cls}", lang))))

    if len(city.conduits):
        d = city.conduits["diameter_m"].to_numpy(dtype=float)
        segs = _lines_xy(city.conduits.geometry, per_feature=True)
        lc = LineCollection(segs, array=d, cmap="plasma", linewidths=0.5 + 2.0 * d / max(d.max(), 1e-9), zorder=4)
        ax.add_collection(lc)
        cb = fig.colorbar(lc, ax=ax, shrink=0.5, pad=0.02)
        cb.set_label(t("legend.pipe_diameter", lang))
        handles.append(Line2D([], [], color=matplotlib.colormaps["plasma"](0.6), lw=2,
                              label=t("legend.pipes", lang)))

    outf = city.nodes[city.nodes["node_type"] == "outfall"]
    if len(outf):
        ax.scatter(outf.geometry.x, outf.geometry.y, marker="v", s=90, c=pal.OUTFALL, edgecolors="white", zorder=6)
        handles.append(Line2D([], [], marker="v", color="none", markerfacecolor=pal.OUTFALL,
                              markeredgecolor="white", markersize=10, label=t("legend.outfalls", lang)))
    for dept, rgb in DEPARTMENT_RGB.items():
        sel = city.depots[city.depots["department"] == dept]
        if len(sel):
            color = np.array(rgb) / 255
            ax.scatter(sel.geometry.x, sel.geometry.y, marker="s", s=80, color=color, edgecolors="white", zorder=7)
            handles.append(Line2D([], [], marker="s", color="none", markerfacecolor=color, markeredgecolor="white",
                                  markersize=9, label=t("legend.depot", lang, dept=t(f"department.{dept}", lang))))

    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    ax.set_aspect("equal")
    ax.set_xlabel(t("map.easting", lang, crs=city.crs))
    ax.set_ylabel(t("map.northing", lang, crs=city.crs))
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.set_title(t("map.title", lang, name=city.name))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=3, fontsize=8,
              frameon=False)

    bar = nice_length((xmax - xmin) / 5)
    ax.add_artist(AnchoredSizeBar(ax.transData, bar, f"{bar:g} m", "lower left", pad=0.6, sep=4,
                                  color="black", frameon=True, size_vertical=(ymax - ymin) / 150))
    ax.annotate("N", xy=(0.95, 0.95), xytext=(0.95, 0.86), xycoords="axes fraction", ha="center", va="center",
                fontsize=16,
                arrowprops={"facecolor": "black", "width": 5, "headwidth": 14, "headlength": 12})


def _rings_xy(geoms: gpd.GeoSeries):
    """Exterior rings of every polygon part as (n, 2) arrays (holes are small at map scale)."""
    parts, src = shapely.get_parts(geoms.to_numpy(), return_index=True)
    xy, idx = shapely.get_coordinates(shapely.get_exterior_ring(parts), return_index=True)
    return np.split(xy, np.cumsum(np.bincount(idx, minlength=len(parts)))[:-1]), src


def _lines_xy(geoms: gpd.GeoSeries, *, per_feature: bool = False):
    """Line parts as (n, 2) arrays; with ``per_feature`` one array per feature (multi-parts joined)."""
    if per_feature:
        xy, idx = shapely.get_coordinates(geoms.to_numpy(), return_index=True)
        return np.split(xy, np.cumsum(np.bincount(idx, minlength=len(geoms)))[:-1])
    parts = shapely.get_parts(geoms.to_numpy())
    xy, idx = shapely.get_coordinates(parts, return_index=True)
    return np.split(xy, np.cumsum(np.bincount(idx, minlength=len(parts)))[:-1])


def write_city_html(city: CityTwin, path: str | Path, **scene_kw) -> Path:
    """Write the interactive 3D scene of the city as one self-contained HTML page.

    See :func:`twin.viz.scene.write_scene_html`; it opens offline in a browser.
    """
    from twin.viz.scene import write_scene_html

    return write_scene_html(city, path, **scene_kw)
