"""Pictures of the street water of a coupled run: its :class:`~hydraulics.depth_series.DepthSeries`.

One fixed depth scale for every picture of street water, so that two maps,
two frames or two runs compare at a glance:

========================  =======================  ==========================
class                     depth, m                 meaning
========================  =======================  ==========================
0  wet street             0.05 - 0.15              passable with care
1  closed to cars         0.15 - 0.30              :data:`~hydraulics.street_flood.CLOSED_TO_CARS_M`
2  closed to everyone     0.30 - 0.50              :data:`~hydraulics.street_flood.CLOSED_TO_ALL_M`
3  deep water             0.50 and more            dangerous
========================  =======================  ==========================

Water shallower than :data:`MIN_WET_DEPTH_M` is not drawn (transparent).

* :func:`classify_depth`, :func:`depth_class_rgba`, :func:`depth_class_cmap` - the scale on an array;
* :func:`depth_frame_layer` - one frame as a deck.gl ``BitmapLayer`` in the grid's lon/lat bounds;
* :func:`depth_legend_html`, :func:`depth_legend_entries` - the legend (HTML; label and colour pairs);
* :func:`depth_frame_raster` - one frame (or the maximum) as a :class:`~gisdata.raster.Raster`
  for the 3D scene (:func:`twin.viz.scene.build_street_water`);
* :func:`render_depth_frames` - top-view images of many times for ``twin render``.

Nothing here simulates.
"""

from __future__ import annotations

import base64
import html as _html
import io
from collections.abc import Callable, Sequence

import numpy as np

from gisdata.raster import Raster
from hydraulics.depth_series import DepthSeries
from hydraulics.street_flood import CLOSED_TO_ALL_M, CLOSED_TO_CARS_M
from twin.i18n import t
from twin.viz import palette as pal

MIN_WET_DEPTH_M = 0.05
"""Street water shallower than this is not drawn, m."""
DEEP_WATER_M = 0.50
"""Depth from which street water is shown as dangerous, m."""
DEPTH_CLASS_EDGES_M = (MIN_WET_DEPTH_M, CLOSED_TO_CARS_M, CLOSED_TO_ALL_M, DEEP_WATER_M)
"""Lower edge of each depth class, m (the last class has no upper edge)."""
DEPTH_CLASS_KEYS = ("wet", "closed_to_cars", "closed", "deep")
"""Message key suffix of each class (``depth.class.<key>``)."""
DEPTH_CLASS_COLORS = pal.DEPTH_CLASS
"""Colour of each class: light to dark blue, then purple for deep water (fixed, never rescaled)."""
DEPTH_ALPHA = 0.85
"""Opacity of wet cells in 2D pictures (dry cells are fully transparent)."""
MAX_BITMAP_PX = 2048
"""Largest side of a map layer's image, pixels (cells are repeated up to this, to keep class edges sharp)."""
LAYER_ID = "street_depth"
SHARP_TEXTURE = {"minFilter": "nearest", "magFilter": "nearest"}
"""deck.gl ``textureParameters`` of depth bitmaps: no smoothing, so a wet street a few pixels wide at city
zoom keeps its class colour instead of fading into the transparent cells beside it."""


def _rgb(hex_colour: str) -> list[int]:
    h = hex_colour.lstrip("#")
    return [int(h[k:k + 2], 16) for k in (0, 2, 4)]


DEPTH_CLASS_RGB = tuple(_rgb(c) for c in DEPTH_CLASS_COLORS)
""":data:`DEPTH_CLASS_COLORS` as [r, g, b] (0-255)."""


def classify_depth(depth_m) -> np.ndarray:
    """Depth class of each value: -1 below :data:`MIN_WET_DEPTH_M` (or not a number), else 0-3.

    Examples
    --------
    >>> classify_depth([0.0, 0.049, 0.05, 0.2, 0.3, 0.49, 0.5, 3.0, float("nan")]).tolist()
    [-1, -1, 0, 1, 2, 2, 3, 3, -1]
    """
    d = np.nan_to_num(np.asarray(depth_m, dtype=float), nan=0.0, posinf=0.0, neginf=0.0)
    return (np.searchsorted(np.asarray(DEPTH_CLASS_EDGES_M), d, side="right") - 1).astype(np.int8)


def depth_class_rgba(depth_m, *, domain: np.ndarray | None = None, alpha: float = DEPTH_ALPHA) -> np.ndarray:
    """Depth as an (rows, cols, 4) ``uint8`` image in the fixed class colours, transparent where dry.

    Parameters
    ----------
    depth_m : array (rows, cols)
        Water depth, m.
    domain : array of bool, optional
        Cells where street water can be; the others are transparent whatever their value.
    alpha : float
        Opacity of wet cells, 0-1.
    """
    cls = classify_depth(depth_m)
    if domain is not None:
        cls = np.where(np.asarray(domain, bool), cls, -1)
    lut = np.zeros((len(DEPTH_CLASS_RGB) + 1, 4), np.uint8)  # row 0: dry
    lut[1:, :3] = DEPTH_CLASS_RGB
    lut[1:, 3] = round(255 * float(alpha))
    return lut[cls.astype(np.int16) + 1]


def class_areas_m2(series: DepthSeries, k: int | None) -> np.ndarray:
    """Area of each depth class in frame ``k`` (None: each cell's maximum over the run), m2 (4 values)."""
    cls = classify_depth(depth_frame_raster(series, k).values)[series.domain]
    return np.bincount(cls[cls >= 0], minlength=len(DEPTH_CLASS_EDGES_M)).astype(float) * series.cell_size_m ** 2


def frame_index(series: DepthSeries, t_s: float) -> int | None:
    """The frame to show at ``t_s`` (s from the run start): the last one at or before it.

    None if the series is empty or ``t_s`` is before its first frame (nothing recorded yet).
    """
    if len(series.times_s) == 0 or not np.isfinite(t_s) or t_s < series.times_s[0] - 1e-6:
        return None
    return series.frame_at(t_s)


def hhmm(t_s: float) -> str:
    """``HH:MM`` of a time in s (hours go past 24)."""
    t_s = max(float(t_s), 0.0)
    return f"{int(t_s // 3600):02d}:{int(t_s % 3600 // 60):02d}"


def depth_frame_raster(series: DepthSeries, k: int | None) -> Raster:
    """Frame ``k`` of a series (or, with ``k=None``, each cell's maximum over the frames) as a depth Raster, m."""
    if k is None:
        values = series.max_depth_m()
    else:
        _check_frame(series, k)
        values = series.depth_m[k]
    return Raster(np.where(series.domain, values, 0.0).astype(float), series.transform, series.crs)


def _check_frame(series: DepthSeries, k: int) -> None:
    n = len(series.times_s)
    if not (isinstance(k, (int, np.integer)) and 0 <= k < n):
        raise IndexError(f"frame {k} is not in the depth series ({n} frames)")


# ----------------------------------------------------------------------------- deck.gl


def _png_data_url(rgba: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba), mode="RGBA").save(buf, format="PNG", compress_level=6)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def depth_frame_layer(series: DepthSeries, k: int | None, *, layer_id: str = LAYER_ID, opacity: float = 1.0):
    """Frame ``k`` of a depth series as a deck.gl ``BitmapLayer`` in the grid's lon/lat bounds.

    The fixed class colours (:data:`DEPTH_CLASS_COLORS`), transparent where the
    water is shallower than :data:`MIN_WET_DEPTH_M` and outside the street
    domain.  Each cell is repeated over a few pixels so that the map's
    texture smoothing blurs only the outer pixel of a class edge.

    Parameters
    ----------
    series : DepthSeries
        The run's street water.
    k : int or None
        Frame index (:meth:`DepthSeries.frame_at` turns a time into one); None draws
        each cell's maximum over the run.
    layer_id : str
        deck.gl layer id.
    opacity : float
        Layer opacity, 0-1 (on top of the wet cells' own :data:`DEPTH_ALPHA`).

    Returns
    -------
    pydeck.Layer

    Examples
    --------
    >>> deck.layers.insert(1, depth_frame_layer(series, series.frame_at(3600)))  # doctest: +SKIP
    """
    import pydeck as pdk

    from twin.viz.flood_layers import corners_lonlat

    raster = depth_frame_raster(series, k)
    rgba = depth_class_rgba(raster.values, domain=series.domain)
    rows, cols = rgba.shape[:2]
    rep = max(1, min(4, MAX_BITMAP_PX // max(rows, cols, 1)))
    if rep > 1:
        rgba = np.repeat(np.repeat(rgba, rep, axis=0), rep, axis=1)
    return pdk.Layer("BitmapLayer", id=layer_id, image=pdk.types.String(_png_data_url(rgba)),
                     bounds=corners_lonlat(series.bounds(), series.crs), opacity=float(opacity),
                     texture_parameters=SHARP_TEXTURE)


# ----------------------------------------------------------------------------- legend


def depth_legend_keys() -> list[tuple[str, dict, str]]:
    """(message key, format fields, hex colour) of each depth class, as :class:`twin.viz.scene.SceneInfo` keeps them."""
    edges = list(DEPTH_CLASS_EDGES_M)
    out = []
    for i, (key, colour) in enumerate(zip(DEPTH_CLASS_KEYS, DEPTH_CLASS_COLORS)):
        rng = (f"{edges[i]:.2f}–{edges[i + 1]:.2f} m" if i + 1 < len(edges) else f"≥ {edges[i]:.2f} m")
        out.append((f"depth.class.{key}", {"range": rng}, colour))
    return out


def depth_class_labels(lang: str = "en") -> list[str]:
    """The label of each depth class, e.g. ``"0.15–0.30 m: closed to cars"``."""
    return [t(key, lang, **fields) for key, fields, _ in depth_legend_keys()]


def depth_legend_entries(lang: str = "en") -> list[tuple[str, str]]:
    """(label, hex colour) of each depth class, for the 3D and matplotlib legends."""
    return list(zip(depth_class_labels(lang), DEPTH_CLASS_COLORS))


def depth_legend_html(lang: str = "en", *, series: DepthSeries | None = None, k: int | None = None,
                      maximum: bool = False, wrap: bool = True) -> str:
    """The legend of :func:`depth_frame_layer` as HTML: the four class swatches and what is not drawn.

    Parameters
    ----------
    lang : str
    series : DepthSeries, optional
        With a frame ``k`` (or ``maximum``), the title gives the frame's time and each
        class's area in it follows its label.
    k : int, optional
        The frame shown.
    maximum : bool
        The picture shows each cell's maximum over the run.
    wrap : bool
        Return the whole ``<div>``; False returns only its inline parts (to go inside another legend).
    """
    areas = None
    if series is not None and (k is not None or maximum):
        areas = class_areas_m2(series, None if maximum else k)
    if maximum:
        title = t("depth.legend.title_max", lang)
    elif series is not None and k is not None:
        title = t("depth.legend.title_at", lang, hhmm=hhmm(series.times_s[k]))
    else:
        title = t("depth.legend.title", lang)
    parts = [f'<span style="font-weight:600;margin-right:14px">{_html.escape(title)}</span>']
    for i, (label, colour) in enumerate(depth_legend_entries(lang)):
        if areas is not None:
            label = f"{label} ({t('depth.legend.area_ha', lang, ha=f'{areas[i] / 1e4:.2f}')})"
        parts.append(
            f'<span style="display:inline-flex;align-items:center;margin-right:14px">'
            f'<span style="display:inline-block;width:14px;height:14px;background:{colour};opacity:{DEPTH_ALPHA};'
            f'border:1px solid {pal.LEGEND_EDGE};margin-right:5px"></span>{_html.escape(label)}</span>')
    parts.append(f'<span style="color:{pal.LEGEND_EDGE};margin-right:14px">'
                 f'{_html.escape(t("depth.legend.dry", lang, min=f"{MIN_WET_DEPTH_M:.2f}"))}</span>')
    if not wrap:
        return "".join(parts)
    return '<div style="font-size:0.85rem;line-height:1.8">' + "".join(parts) + "</div>"


def depth_class_cmap():
    """The four class colours as a matplotlib colour map, for renderers that colour by class number.

    Use with ``clim=(-0.5, 3.5)`` and 4 colours, e.g. the 3D street water's ``depth_class``.
    """
    from matplotlib.colors import ListedColormap

    return ListedColormap(list(DEPTH_CLASS_COLORS), name="citytwin_depth_classes")


# ----------------------------------------------------------------------------- frames (twin render)


def render_depth_frames(series: DepthSeries, times: Sequence[float], *, city=None, lang: str = "en",
                        size: tuple[int, int] = (960, 600), title: str = "",
                        progress: Callable[[float], None] | None = None) -> list[np.ndarray]:
    """Top-view pictures of the street water at each of ``times``: one (H, W, 3) ``uint8`` image per time.

    Each frame shows the backdrop (the city's hillshade, buildings and roads if
    ``city`` is given; the cells where street water cannot be - buildings,
    walls, river - in grey always), the depth classes of the frame at or
    before that time, the legend, a scale bar and the time stamp.  The scale
    and the view are the same in every frame.

    Parameters
    ----------
    series : DepthSeries
        The run's street water.
    times : sequence of float
        Frame times, s from the run start.
    city : CityTwin, optional
        The run's city (backdrop only).
    lang : str
    size : (int, int)
        Width and height, pixels.
    title : str
        First line of the title (the time follows it).
    progress : callable, optional
        Called with the fraction done after each frame.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    from twin.viz.geometry import nice_length
    from twin.viz.map2d import _lines_xy, _rings_xy, _sans_fonts, hillshade_rgb

    times = [float(x) for x in times]
    if not times:
        raise ValueError("no frame times")
    w_px, h_px = (int(v) for v in size)
    dpi = 100.0
    xmin, ymin, xmax, ymax = series.bounds()
    extent = (xmin, xmax, ymin, ymax)
    frames: list[np.ndarray] = []
    with matplotlib.rc_context({"font.family": "sans-serif", "font.sans-serif": _sans_fonts(lang)}):
        fig = Figure(figsize=(w_px / dpi, h_px / dpi), dpi=dpi)
        canvas = FigureCanvasAgg(fig)
        scale = min(w_px / 960, h_px / 600)
        fs = max(5.0, 9.0 * scale)
        # map on the left, legend on the right
        ax = fig.add_axes((0.01, 0.02, 0.58, 0.86))
        ax.set_axis_off()
        ax.set_facecolor(pal.BACKDROP)
        ax.imshow(np.ma.masked_where(~np.asarray(series.domain, bool), np.ones(series.shape)), extent=extent,
                  origin="upper", cmap=ListedColormap([pal.STREET_DOMAIN]), vmin=0, vmax=1, zorder=0, interpolation="nearest")
        if city is not None:
            cx0, cy0, cx1, cy1 = city.extent
            ax.imshow(hillshade_rgb(city), extent=(cx0, cx1, cy0, cy1), origin="upper", zorder=0, alpha=0.6)
        walls = ~np.asarray(series.domain, bool)
        if walls.any():
            ax.imshow(np.ma.masked_where(~walls, np.ones(walls.shape)), extent=extent, origin="upper",
                      cmap=ListedColormap([pal.WALLS_LIGHT]), vmin=0, vmax=1, zorder=1, interpolation="nearest")
        if city is not None and len(city.roads):
            ax.add_collection(LineCollection(_lines_xy(city.roads.geometry), colors=pal.ROAD_BACKDROP,
                                             linewidths=0.4 * scale, zorder=2))
        if city is not None and len(city.buildings):
            rings, _ = _rings_xy(city.buildings.geometry)
            ax.add_collection(PolyCollection(rings, facecolors=pal.BUILDING_BACKDROP, edgecolors="none", zorder=2))
        im = ax.imshow(np.zeros((*series.shape, 4), np.uint8), extent=extent, origin="upper", zorder=3,
                       interpolation="nearest")
        ax.set_xlim(xmin, xmax)
        ax.set_ylim(ymin, ymax)
        ax.set_aspect("equal")
        bar = nice_length((xmax - xmin) / 5)
        ax.add_artist(AnchoredSizeBar(ax.transData, bar, f"{bar:g} m", "lower left", pad=0.4, sep=3,
                                      color="black", frameon=True, size_vertical=(ymax - ymin) / 150,
                                      fontproperties={"size": fs}))
        ax.annotate("N", xy=(0.95, 0.96), xytext=(0.95, 0.86), xycoords="axes fraction", ha="center",
                    va="center", fontsize=fs * 1.5,
                    arrowprops={"facecolor": "black", "width": 3 * scale, "headwidth": 9 * scale,
                                "headlength": 8 * scale})
        handles = [Patch(facecolor=c, edgecolor=pal.LEGEND_EDGE, alpha=DEPTH_ALPHA, label=label)
                   for label, c in depth_legend_entries(lang)]
        handles.append(Patch(facecolor=pal.WALLS_LIGHT, edgecolor="none", label=t("depth.legend.walls", lang)))
        handles.append(Patch(facecolor="none", edgecolor=pal.WALLS_LIGHT, linestyle=":",
                             label=t("depth.legend.dry", lang, min=f"{MIN_WET_DEPTH_M:.2f}")))
        legend = fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.60, 0.88), fontsize=fs,
                            frameon=False, title=t("depth.legend.title", lang), title_fontsize=fs * 1.1,
                            alignment="left")
        stamp = fig.text(0.01, 0.965, "", fontsize=fs * 1.5, weight="bold" if lang == "en" else "normal", va="top")
        canvas.draw()  # the frame's figures go below the legend, wherever its text ends
        below = fig.transFigure.inverted().transform(legend.get_window_extent(canvas.get_renderer()))[0, 1]
        info = fig.text(0.605, below - 0.04, "", fontsize=fs, va="top", linespacing=1.5)
        for i, t_s in enumerate(times):
            k = frame_index(series, t_s)
            if k is None:
                im.set_data(np.zeros((*series.shape, 4), np.uint8))
                frame_t, areas, top = t_s, np.zeros(len(DEPTH_CLASS_EDGES_M)), 0.0
            else:
                im.set_data(depth_class_rgba(series.depth_m[k], domain=series.domain))
                frame_t, areas = float(series.times_s[k]), class_areas_m2(series, k)
                top = float(series.depth_m[k][series.domain].max()) if series.domain.any() else 0.0
            stamp.set_text((f"{title}   " if title else "") + t("depth.frame.time", lang, hhmm=hhmm(t_s)))
            info.set_text(t("depth.frame.info", lang, frame=hhmm(frame_t), ha=f"{areas.sum() / 1e4:.2f}",
                            closed=f"{areas[1:].sum() / 1e4:.2f}", top=f"{top:.2f}"))
            canvas.draw()
            frames.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
            if progress is not None:
                progress((i + 1) / len(times))
    return frames
