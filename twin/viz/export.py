"""Export any 2D map built here: its layers as GeoJSON, the map as a PNG picture.

Both read the :class:`pydeck.Deck` itself, so what is exported is what the map shows:

* :func:`deck_layers_geojson` - every layer as features of one GeoJSON FeatureCollection in
  EPSG:4326 (lon, lat): roads, buildings, pipes, manholes, closures, crews, incidents, risk
  points... with their tooltip fields as properties; the street water bitmap becomes one
  polygon per depth class region (the terrain picture only its outline).
* :func:`deck_png_bytes` / :func:`write_deck_png` - a static matplotlib rendering of the same
  layers in the same colours, with the map's legend (:mod:`twin.viz.legend`), a title, a
  scale bar and a north arrow.

Examples
--------
>>> deck = flood_deck(city, result, lang="zh")                                   # doctest: +SKIP
>>> st.download_button(t("map.export.geojson", lang), deck_layers_geojson(deck),
...                    "flood.geojson", "application/geo+json")                  # doctest: +SKIP
>>> st.download_button(t("map.export.png", lang), deck_png_bytes(deck, lang="zh"),
...                    "flood.png", "image/png")                                 # doctest: +SKIP
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np

from twin.viz import palette as pal

_BLACK = pal.rgb(pal.TEXT)
_WHITE = pal.rgb(pal.PANEL)
DEPTH_LAYER_IDS = ("flood_depth", "street_depth")
"""Bitmap layers that hold depth classes (exported as polygons per class)."""


# ----------------------------------------------------------------------------- reading layers


def _rows(layer) -> list[dict]:
    data = getattr(layer, "data", None)
    return data if isinstance(data, list) else []


def _accessor(layer, name: str, rows: list[dict], default=None) -> list:
    """Per-row values of a deck.gl accessor: a data column (``"@@=col"``) or a constant."""
    v = getattr(layer, name, None)
    if isinstance(v, str) and v.startswith("@@="):
        col = v[3:].strip()
        if col.startswith("[") and col.endswith("]"):
            cols = [c.strip() for c in col[1:-1].split(",")]
            return [[r.get(c) for c in cols] for r in rows]
        return [r.get(col, default) for r in rows]
    if v is None:
        v = default
    return [v] * len(rows)


def _tip_properties(row: dict) -> dict:
    """A feature's properties from its tooltip fields: ``title`` and one property per ``label: value`` line."""
    props: dict = {}
    if row.get("tip_title"):
        props["title"] = row["tip_title"]
    for line in str(row.get("tip_body") or "").split("\n"):
        label, sep, value = line.partition(": ")
        if sep and label:
            props[label.replace("\u2060", "")] = value.replace("\u2060", "")
    return props


def _image(layer) -> tuple[np.ndarray, np.ndarray] | None:
    """(RGBA uint8 image, 4 corners [lon, lat]) of a BitmapLayer with an inline PNG."""
    from PIL import Image

    url = str(getattr(layer, "image", "") or "")
    if "base64," not in url:
        return None
    raw = base64.b64decode(url.split("base64,", 1)[1])
    with Image.open(io.BytesIO(raw)) as im:
        rgba = np.asarray(im.convert("RGBA"))
    return rgba, np.asarray(getattr(layer, "bounds"), dtype=float)


def _pixel_transform(corners: np.ndarray, width: int, height: int):
    """Affine from (col, row) pixel corners to lon/lat; corners as a BitmapLayer takes them (bl, tl, tr, br)."""
    from affine import Affine

    bl, tl, tr, _ = corners
    return Affine((tr[0] - tl[0]) / width, (bl[0] - tl[0]) / height, tl[0],
                  (tr[1] - tl[1]) / width, (bl[1] - tl[1]) / height, tl[1])


# ----------------------------------------------------------------------------- GeoJSON


def _round(coords, nd: int = 7):
    if isinstance(coords, (list, tuple)) and coords and isinstance(coords[0], (int, float, np.floating)):
        return [round(float(c), nd) for c in coords]
    return [_round(c, nd) for c in coords]


def _depth_features(layer, lang: str) -> list[dict]:
    import shapely
    from rasterio.features import shapes

    from twin.viz.depth_map import DEPTH_CLASS_EDGES_M, DEPTH_CLASS_KEYS, DEPTH_CLASS_RGB, depth_class_labels

    got = _image(layer)
    if got is None:
        return []
    rgba, corners = got
    cls = np.full(rgba.shape[:2], -1, np.int16)
    for i, c in enumerate(DEPTH_CLASS_RGB):
        cls[(rgba[..., 3] > 0) & np.all(rgba[..., :3] == c, axis=-1)] = i
    if not (cls >= 0).any():
        return []
    tr = _pixel_transform(corners, rgba.shape[1], rgba.shape[0])
    labels = depth_class_labels(lang)
    parts: dict[int, list] = {}
    for geom, value in shapes(cls, mask=cls >= 0, transform=tr, connectivity=4):
        parts.setdefault(int(value), []).append(shapely.geometry.shape(geom))
    out = []
    for i in sorted(parts):
        merged = shapely.union_all(parts[i])
        edges = list(DEPTH_CLASS_EDGES_M) + [None]
        out.append({"type": "Feature", "geometry": json.loads(shapely.to_geojson(shapely.set_precision(merged, 1e-7))),
                    "properties": {"layer": layer.id, "depth_class": DEPTH_CLASS_KEYS[i], "title": labels[i],
                                   "min_depth_m": edges[i], "max_depth_m": edges[i + 1],
                                   "colour": pal.DEPTH_CLASS[i]}})
    return out


def deck_layers_features(deck_or_layers, *, lang: str = "en") -> list[dict]:
    """The GeoJSON features (dicts) of every layer of a deck, in drawing order; see :func:`deck_layers_geojson`."""
    layers = getattr(deck_or_layers, "layers", deck_or_layers)
    feats: list[dict] = []
    for layer in layers or []:
        kind, lid = getattr(layer, "type", ""), str(getattr(layer, "id", ""))
        rows = _rows(layer)
        if kind == "BitmapLayer":
            if lid in DEPTH_LAYER_IDS:
                feats.extend(_depth_features(layer, lang))
            else:
                ring = [list(map(float, c)) for c in getattr(layer, "bounds", [])]
                if len(ring) == 4:
                    feats.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [_round(ring + ring[:1])]},
                                  "properties": {"layer": lid, "title": "raster outline"}})
            continue
        if kind == "PathLayer":
            geoms = [{"type": "LineString", "coordinates": _round(p)} for p in _accessor(layer, "get_path", rows)]
            colours = _accessor(layer, "get_color", rows, _BLACK)
        elif kind == "PolygonLayer":
            geoms = [{"type": "Polygon", "coordinates": _round(p)} for p in _accessor(layer, "get_polygon", rows)]
            colours = _accessor(layer, "get_fill_color", rows, _BLACK)
        elif kind == "ScatterplotLayer":
            geoms = [{"type": "Point", "coordinates": _round(p)} for p in _accessor(layer, "get_position", rows)]
            colours = _accessor(layer, "get_fill_color", rows, _BLACK)
            if lid == "depots":
                colours = _accessor(layer, "get_line_color", rows, _BLACK)
        else:
            continue
        for row, geom, colour in zip(rows, geoms, colours):
            props = {"layer": lid, **_tip_properties(row)}
            if isinstance(colour, (list, tuple)) and len(colour) >= 3:
                props["colour"] = pal.hex_of(colour)
            feats.append({"type": "Feature", "geometry": geom, "properties": props})
    return feats


def deck_layers_geojson(deck_or_layers, *, lang: str = "en") -> bytes:
    """Every layer of a 2D map as one GeoJSON FeatureCollection (UTF-8 bytes), in EPSG:4326.

    Each feature has ``properties``: ``layer`` (the deck layer id, e.g. ``roads``, ``road_status``,
    ``crews``), ``title`` and the fields its tooltip shows (labels in ``lang``, values as
    shown), and ``colour`` (``#rrggbb``, as drawn).  The depth bitmap becomes one
    (multi)polygon per depth class (``depth_class``, ``min_depth_m``, ``max_depth_m``); a
    picture layer such as the terrain only its outline.  Coordinates are lon, lat
    (RFC 7946), 7 decimals.

    Parameters
    ----------
    deck_or_layers : pydeck.Deck or list of pydeck.Layer
        A map from :func:`twin.viz.map2d.city_deck`, :func:`~twin.viz.flood_layers.flood_deck`,
        :func:`~twin.viz.risk_map.risk_deck` or :func:`~twin.viz.replay_map.replay_deck`.
    lang : str
        Language of the depth class titles.

    Examples
    --------
    >>> fc = json.loads(deck_layers_geojson(city_deck(city)))   # doctest: +SKIP
    >>> {f["properties"]["layer"] for f in fc["features"]}      # doctest: +SKIP
    {'terrain', 'roads', 'buildings', 'pipes', 'manholes', 'depots', 'sensors', 'vendor_sites'}
    """
    fc = {"type": "FeatureCollection", "features": deck_layers_features(deck_or_layers, lang=lang)}
    return json.dumps(fc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# ----------------------------------------------------------------------------- PNG


def _rgba01(colour, default=(0.5, 0.5, 0.5, 1.0), opacity: float = 1.0):
    if not isinstance(colour, (list, tuple)) or len(colour) < 3:
        return default
    a = (colour[3] / 255.0) if len(colour) > 3 else 1.0
    return (colour[0] / 255.0, colour[1] / 255.0, colour[2] / 255.0, a * opacity)


def _legend_handles(entries):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = []
    for e in entries:
        if e.shape == "line":
            handles.append(Line2D([], [], color=e.colour, lw=max(1.5, min(e.width_px, 6)), label=e.label))
        elif e.shape == "ring":
            handles.append(Line2D([], [], marker="o", color="none", markerfacecolor="none", markeredgecolor=e.colour,
                                  markeredgewidth=1.8, markersize=9, label=e.label))
        elif e.shape in ("dot", "depot"):
            face, edge = (pal.DEPOT_CENTRE, e.colour) if e.shape == "depot" else (e.colour, e.ring or pal.CREW_RING)
            handles.append(Line2D([], [], marker="o", color="none", markerfacecolor=face,
                                  markeredgecolor=edge if e.shape == "depot" or edge != pal.CREW_RING else "#868e96",
                                  markeredgewidth=3 if e.shape == "depot" else 1.2, markersize=9, label=e.label))
        else:
            label = f"{e.label} ({e.low} → {e.high})" if e.shape == "gradient" and e.low else e.label
            handles.append(Patch(facecolor=e.colour, edgecolor=pal.LEGEND_EDGE, label=label))
    return handles


def _draw_layers(ax, layers, m_per_unit: float, pt_per_unit: float) -> None:
    """Draw deck.gl layers on a matplotlib axis in lon/lat (x stretched by 1/cos(lat) via the aspect)."""
    from matplotlib.collections import LineCollection, PolyCollection

    pt_per_m = pt_per_unit / m_per_unit
    for z, layer in enumerate(layers or []):
        kind, rows = getattr(layer, "type", ""), _rows(layer)
        opacity = float(getattr(layer, "opacity", 1.0) or 1.0)
        if kind == "BitmapLayer":
            got = _image(layer)
            if got is None:
                continue
            rgba, corners = got
            ax.imshow(rgba, extent=(corners[:, 0].min(), corners[:, 0].max(), corners[:, 1].min(), corners[:, 1].max()),
                      origin="upper", interpolation="nearest", alpha=opacity, zorder=z, aspect="auto")
        elif kind == "PathLayer" and rows:
            paths = [np.asarray(p, dtype=float) for p in _accessor(layer, "get_path", rows)]
            colours = [_rgba01(c, opacity=opacity) for c in _accessor(layer, "get_color", rows, _BLACK)]
            widths_m = np.asarray(_accessor(layer, "get_width", rows, 1.0), dtype=float)
            lo = 0.75 * float(getattr(layer, "width_min_pixels", 0) or 0)
            hi = 0.75 * float(getattr(layer, "width_max_pixels", 0) or 0) or 12.0
            lw = np.clip(widths_m * pt_per_m, max(lo, 0.3), hi)
            ax.add_collection(LineCollection(paths, colors=colours, linewidths=lw, zorder=z, capstyle="round"))
        elif kind == "PolygonLayer" and rows:
            rings = [np.asarray(p[0], dtype=float) for p in _accessor(layer, "get_polygon", rows) if p]
            fill = [_rgba01(c, opacity=opacity) for c in _accessor(layer, "get_fill_color", rows, _BLACK)]
            edge = _rgba01(getattr(layer, "get_line_color", None), default=(0, 0, 0, 0))
            ax.add_collection(PolyCollection(rings, facecolors=fill, edgecolors=[edge], linewidths=0.3, zorder=z))
        elif kind == "ScatterplotLayer" and rows:
            xy = np.asarray(_accessor(layer, "get_position", rows), dtype=float)
            radius = np.asarray(_accessor(layer, "get_radius", rows, 1.0), dtype=float)
            lo = 0.75 * float(getattr(layer, "radius_min_pixels", 0) or 0)
            hi = 0.75 * float(getattr(layer, "radius_max_pixels", 0) or 0) or 30.0
            r_pt = np.clip(radius * pt_per_m, max(lo, 0.8), hi)
            fill = [_rgba01(c, opacity=opacity) for c in _accessor(layer, "get_fill_color", rows, _BLACK)]
            if getattr(layer, "filled", True) is False:
                fill = "none"
            stroked = bool(getattr(layer, "stroked", False))
            edges = [_rgba01(c) for c in _accessor(layer, "get_line_color", rows, _WHITE)] if stroked \
                else "none"
            lwidth = 0.75 * max(float(getattr(layer, "line_width_min_pixels", 1) or 1),
                                float(getattr(layer, "get_line_width", 1) or 1)
                                if getattr(layer, "line_width_units", "") == "pixels" else 1.0)
            ax.scatter(xy[:, 0], xy[:, 1], s=(2 * r_pt) ** 2, c=fill, edgecolors=edges,
                       linewidths=lwidth if stroked else 0, zorder=z)


def deck_png_bytes(deck, *, lang: str = "en", title: str = "", size_px: tuple[int, int] = (1200, 900),
                   dpi: int = 100, legend: bool = True) -> bytes:
    """A static picture of a 2D map (the same layers and colours) with its legend, as PNG bytes.

    Parameters
    ----------
    deck : pydeck.Deck
        A map built by :mod:`twin.viz` (:func:`~twin.viz.map2d.city_deck`, :func:`~twin.viz.flood_layers.flood_deck`,
        :func:`~twin.viz.risk_map.risk_deck`, :func:`~twin.viz.replay_map.replay_deck`).
    lang : str
        Language of the legend (Chinese uses a CJK font when the system has one).
    title : str
        Title above the map.
    size_px : (int, int)
        Picture width and height, pixels.
    dpi : int
    legend : bool
        Draw the legend (:func:`twin.viz.legend.deck_legend_entries`) beside the map.

    Returns
    -------
    bytes
        A PNG.  The view is the extent of the layers (not the deck's camera), north up.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    from twin.viz.geometry import nice_length
    from twin.viz.legend import deck_legend_entries
    from twin.viz.map2d import _sans_fonts

    layers = list(getattr(deck, "layers", deck) or [])
    x0, y0, x1, y1 = _extent(layers)
    lat0 = (y0 + y1) / 2
    m_per_deg_x = 111_320.0 * np.cos(np.radians(lat0))
    w_px, h_px = (int(v) for v in size_px)
    entries = deck_legend_entries(layers, lang) if legend else []
    with matplotlib.rc_context({"font.family": "sans-serif", "font.sans-serif": _sans_fonts(lang)}):
        fig = Figure(figsize=(w_px / dpi, h_px / dpi), dpi=dpi)
        FigureCanvasAgg(fig)
        map_w = (0.66 if w_px >= 1000 else 0.55) if entries else 0.98  # narrow pictures: room for the labels
        ax = fig.add_axes((0.01, 0.02, map_w, 0.9 if title else 0.96))
        ax.set_axis_off()
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect(1.0 / np.cos(np.radians(lat0)), adjustable="box")
        # points per degree of longitude, once the aspect has fixed the scale
        fig.canvas.draw()
        bbox = ax.get_window_extent()
        xl = ax.get_xlim()
        pt_per_deg = bbox.width * 72.0 / dpi / max(xl[1] - xl[0], 1e-12)
        _draw_layers(ax, layers, m_per_deg_x, pt_per_deg)
        span_m = (xl[1] - xl[0]) * m_per_deg_x
        bar = nice_length(span_m / 5)
        ax.add_artist(AnchoredSizeBar(ax.transData, bar / m_per_deg_x, f"{bar:g} m", "lower left", pad=0.5, sep=3,
                                      color="black", frameon=True, size_vertical=(y1 - y0) / 200))
        ax.annotate("N", xy=(0.96, 0.97), xytext=(0.96, 0.88), xycoords="axes fraction", ha="center", va="center",
                    fontsize=13, arrowprops={"facecolor": "black", "width": 3, "headwidth": 10, "headlength": 8})
        if title:
            fig.text(0.01, 0.975, title, fontsize=13, va="top", weight="bold" if lang == "en" else "normal")
        if entries:
            from twin.i18n import t

            fig.legend(handles=_legend_handles(entries), loc="upper left", bbox_to_anchor=(map_w + 0.015, 0.93),
                       fontsize=8.5 if w_px >= 1000 else 7, frameon=False, title=t("map.legend.title", lang), title_fontsize=10,
                       alignment="left", labelspacing=0.7)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _extent(layers) -> tuple[float, float, float, float]:
    """lon/lat box of everything the layers draw (a small box around a single point)."""
    xs, ys = [], []
    for layer in layers:
        kind, rows = getattr(layer, "type", ""), _rows(layer)
        if kind == "BitmapLayer":
            b = np.asarray(getattr(layer, "bounds", []), dtype=float).reshape(-1, 2)
            xs.extend(b[:, 0])
            ys.extend(b[:, 1])
        elif kind == "PathLayer":
            for p in _accessor(layer, "get_path", rows):
                a = np.asarray(p, dtype=float).reshape(-1, 2)
                xs.extend(a[:, 0]); ys.extend(a[:, 1])  # noqa: E702
        elif kind == "PolygonLayer":
            for p in _accessor(layer, "get_polygon", rows):
                if p:
                    a = np.asarray(p[0], dtype=float).reshape(-1, 2)
                    xs.extend(a[:, 0]); ys.extend(a[:, 1])  # noqa: E702
        elif kind == "ScatterplotLayer":
            for p in _accessor(layer, "get_position", rows):
                xs.append(float(p[0])); ys.append(float(p[1]))  # noqa: E702
    if not xs:
        return (-0.01, -0.01, 0.01, 0.01)
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    pad_x, pad_y = max((x1 - x0) * 0.02, 1e-4), max((y1 - y0) * 0.02, 1e-4)
    return x0 - pad_x, y0 - pad_y, x1 + pad_x, y1 + pad_y


def write_deck_png(deck, path: str | Path, **kw) -> Path:
    """Write :func:`deck_png_bytes` to ``path`` (under a temporary name, renamed into place)."""
    import os
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = deck_png_bytes(deck, **kw)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent, prefix=f".{path.stem}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
