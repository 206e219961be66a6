"""The response plan's map: numbered risk points and the departments' staging depots on the city's own layers.

The HTML plan (:func:`hydraulics.plan.plan_html`) opens with this picture, inlined
as a PNG ``data:`` URI so the page stays one file that needs nothing online: a
faded hillshade of the DEM, water, roads in the palette's greys, the roads and
districts at risk in their probability colour, one numbered disc per risk point
(the number is the point's row in the plan's tables) and one square per depot in
its department's colour, with a legend, a scale bar and a north arrow.

Draws, never simulates: the plan comes from :func:`hydraulics.plan.build_plan`.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

from gisdata.city import CityTwin
from twin.i18n import t
from twin.viz import palette as pal

MAX_LABELS = 99
"""Most risk points numbered on the map (the plan's first ones; the others are drawn unnumbered)."""


def _extent(plan: dict, city: CityTwin, pad_frac: float = 0.08, min_span_m: float = 400.0):
    """The points' and depots' box, padded, at least ``min_span_m`` wide, inside the city's extent."""
    cx0, cy0, cx1, cy1 = city.extent
    xs = [p["location"]["x"] for p in plan["risk_points"]] + [d["x"] for d in plan.get("depots", [])]
    ys = [p["location"]["y"] for p in plan["risk_points"]] + [d["y"] for d in plan.get("depots", [])]
    if not xs:
        return cx0, cy0, cx1, cy1
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    span = max(x1 - x0, y1 - y0, min_span_m)
    pad = pad_frac * span
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    half = span / 2 + pad
    x0, x1 = max(cx0, mx - half), min(cx1, mx + half)
    y0, y1 = max(cy0, my - half), min(cy1, my + half)
    return x0, y0, x1, y1


def plot_plan_map(plan: dict, city: CityTwin, *, lang: str | None = None, max_labels: int = MAX_LABELS):
    """The plan's map as a matplotlib figure.

    Parameters
    ----------
    plan : dict
        From :func:`hydraulics.plan.build_plan` (``risk_points`` with ``number`` and
        ``location``; ``depots``).
    city : CityTwin
        The plan's city (DEM, water, roads, districts).
    lang : str, optional
        ``"en"`` or ``"zh"``; default the plan's ``lang``.
    max_labels : int
        Most points numbered.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection, PolyCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    from twin.viz.geometry import nice_length
    from twin.viz.map2d import _lines_xy, _rings_xy, _sans_fonts, hillshade_rgb
    from twin.viz.risk_map import probability_rgb

    lang = lang or str(plan.get("lang") or "en")
    x0, y0, x1, y1 = _extent(plan, city)
    # concrete family names: a generic "sans-serif" would be resolved only when the figure is saved
    with plt.rc_context({"font.family": _sans_fonts(lang)}):
        fig, ax = plt.subplots(figsize=(9.0, 9.0 * (y1 - y0) / max(x1 - x0, 1.0) + 1.6))
        cx0, cy0, cx1, cy1 = city.extent
        shade = 0.45 + 0.55 * hillshade_rgb(city)  # faded: the markers are what the eye must find
        ax.imshow(shade, extent=(cx0, cx1, cy0, cy1), origin="upper", zorder=0, interpolation="bilinear")
        handles = []
        water = getattr(city, "water", None)
        if water is not None and len(water):
            polys = water[water.geom_type.isin(["Polygon", "MultiPolygon"])]
            lines = water[water.geom_type.isin(["LineString", "MultiLineString"])]
            if len(polys):
                rings, _ = _rings_xy(polys.geometry)
                ax.add_collection(PolyCollection(rings, facecolors=pal.WATER_SWATCH, edgecolors="none", alpha=0.55,
                                                 zorder=1))
            if len(lines):
                ax.add_collection(LineCollection(_lines_xy(lines.geometry), colors=pal.WATER_SWATCH, linewidths=2.5,
                                                 zorder=1))
            handles.append(Patch(facecolor=pal.WATER_SWATCH, alpha=0.55, label=t("plan.map.water", lang)))
        roads = city.roads
        for cls, colour in pal.ROAD_CLASS.items():
            sel = roads[roads["road_class"] == cls]
            if len(sel):
                ax.add_collection(LineCollection(_lines_xy(sel.geometry), colors=colour,
                                                 linewidths=pal.ROAD_WIDTH_PX.get(cls, 1.0), zorder=2))
        handles.append(Line2D([], [], color=pal.ROAD_CLASS["collector"], lw=2, label=t("plan.map.road", lang)))

        points = plan["risk_points"]
        prob = np.array([p["probability"] for p in points], dtype=float)
        colours = probability_rgb(prob) / 255.0 if len(points) else np.zeros((0, 3))
        for p, c in zip(points, colours):  # the element itself, in its probability colour
            if p["kind"] == "road" and p["element_id"] in roads.index:
                ax.add_collection(LineCollection(_lines_xy(roads.geometry.loc[[p["element_id"]]]), colors=[c],
                                                 linewidths=5.0, zorder=3, alpha=0.9))
            elif p["kind"] == "district" and p["element_id"] in city.districts.index:
                rings, _ = _rings_xy(city.districts.geometry.loc[[p["element_id"]]])
                ax.add_collection(PolyCollection(rings, facecolors=[(*c, 0.18)], edgecolors=[c], linewidths=1.5,
                                                 zorder=1.5))
        if len(points):
            handles.append(Line2D([], [], marker="o", color="none", markerfacecolor=probability_rgb([0.8])[0] / 255,
                                  markeredgecolor="black", markersize=11, label=t("plan.map.risk_point", lang)))
        for dept, colour in pal.DEPARTMENT.items():
            sel = [d for d in plan.get("depots", []) if d["department"] == dept]
            if not sel:
                continue
            ax.scatter([d["x"] for d in sel], [d["y"] for d in sel], marker="s", s=150, color=colour,
                       edgecolors="white", linewidths=1.5, zorder=8)
            for d in sel:
                ax.annotate(d["depot_id"], (d["x"], d["y"]), xytext=(7, 5), textcoords="offset points", fontsize=7,
                            color=colour, fontweight="bold", fontfamily="DejaVu Sans", zorder=8,
                            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
            handles.append(Line2D([], [], marker="s", color="none", markerfacecolor=colour, markeredgecolor="white",
                                  markersize=10, label=t("legend.depot", lang, dept=t(f"department.{dept}", lang))))

        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(t("plan.map.title", lang, city=plan.get("city", city.name), n=len(points)), fontsize=11)
        if len(points) > max_labels:
            ax.text(0.01, 0.01, t("plan.map.unnumbered", lang, n=len(points) - max_labels), transform=ax.transAxes,
                    fontsize=8, va="bottom", bbox={"fc": "white", "ec": "none", "alpha": 0.8})
        if len(points):
            sm = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(0, 1),
                                              cmap=matplotlib.colors.ListedColormap(probability_rgb(
                                                  np.linspace(0.01, 1, 64)) / 255.0))
            cb = fig.colorbar(sm, ax=ax, shrink=0.45, pad=0.02)
            cb.set_label(t("plan.map.probability", lang))
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=3, fontsize=8, frameon=False)
        bar = nice_length((x1 - x0) / 5)
        ax.add_artist(AnchoredSizeBar(ax.transData, bar, t("plan.map.metres", lang, m=f"{bar:g}"), "lower right",
                                      pad=0.5, sep=3, color="black", frameon=True, size_vertical=(y1 - y0) / 200))
        ax.annotate("N", xy=(0.96, 0.96), xytext=(0.96, 0.88), xycoords="axes fraction", ha="center", va="center",
                    fontsize=13, arrowprops={"facecolor": "black", "width": 4, "headwidth": 11, "headlength": 9})
        fig.tight_layout()
        if len(points):
            _draw_markers(fig, ax, points, colours, max_labels)
    return fig


MARKER_PT2 = 210.0
"""Area of a risk point's disc, points^2 (about 14.5 pt across: room for two digits)."""


def spread_markers(xy: np.ndarray, min_sep: float) -> np.ndarray:
    """Marker positions that keep ``min_sep`` apart: points closer than that share a ring around their centre.

    Parameters
    ----------
    xy : numpy.ndarray
        (n, 2) true positions, in the map's units.
    min_sep : float
        Smallest distance between two markers, same units.

    Returns
    -------
    numpy.ndarray
        (n, 2) marker positions (a lone point keeps its place).

    Examples
    --------
    >>> spread_markers(np.array([[0.0, 0.0], [1.0, 0.0], [100.0, 0.0]]), 10.0).round(1).tolist()
    [[0.5, 10.0], [0.5, -10.0], [100.0, 0.0]]
    """
    xy = np.asarray(xy, dtype=float)
    n = len(xy)
    label = np.arange(n)  # cluster of each point (single linkage, merged until no two markers overlap)

    def merge(i: int, j: int) -> None:
        a, b = label[i], label[j]
        if a != b:
            label[label == max(a, b)] = min(a, b)

    def close_pairs(pos: np.ndarray):
        d = np.hypot(pos[:, None, 0] - pos[None, :, 0], pos[:, None, 1] - pos[None, :, 1])
        return zip(*np.nonzero(np.triu(d < min_sep - 1e-9, 1)))

    for i, j in close_pairs(xy):
        merge(i, j)
    out = xy.copy()
    for _ in range(n):
        out = xy.copy()
        for c in np.unique(label):
            g = np.flatnonzero(label == c)
            if len(g) < 2:
                continue
            centre = xy[g].mean(axis=0)
            radius = max(min_sep, len(g) * min_sep / (2 * np.pi))
            angle = np.pi / 2 - 2 * np.pi * np.arange(len(g)) / len(g)  # clockwise from the top, in plan order
            out[g] = centre + radius * np.column_stack([np.cos(angle), np.sin(angle)])
        pairs = [(i, j) for i, j in close_pairs(out) if label[i] != label[j]]
        if not pairs:
            break
        for i, j in pairs:
            merge(i, j)
    return out


def _draw_markers(fig, ax, points: list[dict], colours: np.ndarray, max_labels: int) -> None:
    """Numbered discs; points that would overlap at the map's scale fan out, with a line to where each is."""
    ax.apply_aspect()
    box = ax.get_window_extent()
    x0, x1 = ax.get_xlim()
    m_per_pt = (x1 - x0) / (box.width * 72.0 / fig.dpi)
    xy = np.array([[p["location"]["x"], p["location"]["y"]] for p in points])
    at = spread_markers(xy, 1.15 * np.sqrt(MARKER_PT2) * m_per_pt)
    moved = np.flatnonzero(np.hypot(*(at - xy).T) > 1e-9)
    for k in moved:
        ax.plot([xy[k, 0], at[k, 0]], [xy[k, 1], at[k, 1]], color="black", lw=0.8, zorder=5)
    if len(moved):
        ax.scatter(xy[moved, 0], xy[moved, 1], s=12, c="black", zorder=5)
    ax.scatter(at[:, 0], at[:, 1], s=MARKER_PT2, c=colours, edgecolors="black", linewidths=0.9, zorder=6)
    for (px, py), p, c in zip(at, points, colours):
        if p["number"] > max_labels:
            continue
        dark = float(np.dot(c, [0.299, 0.587, 0.114])) < 0.5
        ax.text(px, py, str(p["number"]), ha="center", va="center", fontsize=7, fontweight="bold",
                fontfamily="DejaVu Sans",  # digits: a CJK font here has no bold
                color="white" if dark else "black", zorder=7)


def plan_map_png(plan: dict, city: CityTwin, *, lang: str | None = None, dpi: int = 96) -> bytes:
    """:func:`plot_plan_map` as PNG bytes."""
    import matplotlib.pyplot as plt

    fig = plot_plan_map(plan, city, lang=lang)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})  # no URL inside
    finally:
        plt.close(fig)
    return buf.getvalue()


def png_uri(png: bytes) -> str:
    """PNG bytes as a ``data:image/png;base64,...`` URI (an image inside the HTML page itself)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def plan_map_uri(plan: dict, city: CityTwin, **kw) -> str:
    """:func:`plan_map_png` as a ``data:`` URI, for :func:`hydraulics.plan.plan_html` ``map_png``."""
    return png_uri(plan_map_png(plan, city, **kw))


def write_plan_map_png(plan: dict, city: CityTwin, path: str | Path, **kw) -> Path:
    """Write :func:`plan_map_png` to ``path`` (renamed into place when complete)."""
    from gisdata.paths import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(plan_map_png(plan, city, **kw))
    return path
