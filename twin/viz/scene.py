"""The city in 3D: terrain, buildings, roads, sewers below ground and flood water.

Flood water is either a coupled run's street water (a frame of its
:class:`~hydraulics.depth_series.DepthSeries`, in the fixed depth classes of
:mod:`twin.viz.depth_map`: :func:`add_street_water`) or, for older results,
a fill-and-spill depth raster on a continuous blue scale.

:func:`build_city_scene` returns a :class:`pyvista.Plotter`; :func:`write_scene_png`
renders it off-screen and :func:`write_scene_html` exports it as one self-contained
vtk.js page (no network needed to view it).  Nothing here simulates.

Scene coordinates are metres east and north of the DEM's south-west corner
(vtk.js renders in float32), and elevation in metres times the vertical
exaggeration.
"""

from __future__ import annotations

import html as _html
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyvista as pv

from gisdata.city import CityTwin
from gisdata.raster import Raster
from twin.i18n import t
from twin.viz import geometry as geo
from twin.viz import palette as pal
from twin.viz.fonts import cjk_font_path

ROAD_STYLE: dict[str, tuple[str, float]] = {cls: (c, pal.ROAD_WIDTH_PX[cls] + 0.5) for cls, c in pal.ROAD_CLASS.items()}
"""Colour and line width (px) of each road class (:data:`twin.viz.palette.ROAD_CLASS`)."""

BUILDING_COLOR = pal.BUILDING_3D
MANHOLE_COLOR = pal.MANHOLE_3D
OUTFALL_COLOR = pal.OUTFALL
TERRAIN_COLORS = pal.TERRAIN
"""Green lowlands to brown hills (no blue: low ground is not water)."""
PIPE_CMAP = pal.PIPE_CMAP
WATER_CMAP = pal.WATER_CMAP


@dataclass
class SceneInfo:
    """What a scene shows, for legends outside VTK (the HTML overlay).

    ``legend`` holds (message key, format fields, colour); a field given as a
    1-tuple ``(key,)`` is itself a message key, translated first.
    """

    legend: list[tuple[str, dict, str]] = field(default_factory=list)
    scale_bar_m: float = 0.0
    vertical_exaggeration: float = 1.0
    origin: tuple[float, float] = (0.0, 0.0)
    crs: str = ""
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    lang: str = "en"
    title: str = "CityTwin 3D"
    camera_key: str = ""
    """Scenes with the same key share the viewer's camera in the browser (:func:`write_scene_html`)."""

    def labels(self, lang: str | None = None) -> list[tuple[str, str]]:
        """(label, colour) of every legend entry, in ``lang`` (default the scene's)."""
        lang = lang or self.lang
        out = []
        for key, fields, colour in self.legend:
            fmt = {k: (t(v[0], lang) if isinstance(v, tuple) else v) for k, v in fields.items()}
            out.append((t(key, lang, **fmt), colour))
        return out


STREET_WATER_OPACITY = 0.85
"""Opacity of the street water surface (the ground shows through shallow water)."""


def build_street_water(series, k: int | None, dem: Raster, frame: geo.Frame, *, lift_m: float = 0.0) -> pv.PolyData:
    """The street water of one frame of a depth series as flat cells at ground + depth, in scene coordinates.

    One quad per grid cell at least :data:`~twin.viz.depth_map.MIN_WET_DEPTH_M`
    deep (and inside the street domain), level at the DEM's elevation at the
    cell centre plus the depth, so every cell shows its own depth class.  Cell
    data ``depth_m`` and ``depth_class`` (0-3, :func:`~twin.viz.depth_map.classify_depth`).

    Parameters
    ----------
    series : DepthSeries
        Street water of a coupled run.
    k : int or None
        Frame index; None for each cell's maximum over the run.
    dem : Raster
        Ground elevation, m (the city's DEM).
    frame : Frame
        Scene coordinates.
    lift_m : float
        Extra height of the surface, scene units (keeps it above lines draped on the ground).

    Returns
    -------
    pyvista.PolyData
        Empty when nothing is wet.
    """
    from twin.viz.depth_map import classify_depth, depth_frame_raster

    depth = depth_frame_raster(series, k).values
    cls = classify_depth(depth)
    rows, cols = np.nonzero(cls >= 0)
    if rows.size == 0:
        return pv.PolyData()
    tr = series.transform
    x0 = tr.c + cols * tr.a
    y0 = tr.f + rows * tr.e
    x1, y1 = x0 + tr.a, y0 + tr.e
    d = depth[rows, cols]
    z = dem.sample(x0 + tr.a / 2, y0 + tr.e / 2).astype(float) + d
    z = np.where(np.isfinite(z), z, d)
    corners = np.stack([frame.xyz(x0, y0, z), frame.xyz(x1, y0, z), frame.xyz(x1, y1, z), frame.xyz(x0, y1, z)],
                       axis=1).reshape(-1, 3)
    corners[:, 2] += lift_m
    n = rows.size
    faces = np.column_stack([np.full(n, 4), np.arange(4 * n).reshape(n, 4)]).ravel()
    mesh = pv.PolyData(corners, faces=faces)
    mesh.cell_data["depth_m"] = d.astype(float)
    mesh.cell_data["depth_class"] = cls[rows, cols].astype(np.int8)
    return mesh


def add_street_water(pl: pv.Plotter, info: SceneInfo, series, k: int | None, dem: Raster, frame: geo.Frame, *,
                     lift_m: float = 0.0, name: str = "street_water", **add_kw) -> int:
    """Draw :func:`build_street_water` on a plotter in the fixed depth-class colours; returns the wet cell count.

    "Flood water" and the four depth classes go into ``info.legend`` (whether or not any cell is wet, so
    frames compare).
    ``add_kw`` go to ``Plotter.add_mesh`` (e.g. ``render=False``).
    """
    from twin.viz.depth_map import (
        DEPTH_CLASS_COLORS,
        depth_class_cmap,
        depth_legend_keys,
    )

    water = build_street_water(series, k, dem, frame, lift_m=lift_m)
    if water.n_cells:
        cmap = depth_class_cmap()
        # coloured by class number, so a depth on a class edge cannot fall either side
        pl.add_mesh(water, scalars="depth_class", cmap=cmap, n_colors=cmap.N, clim=(-0.5, cmap.N - 0.5),
                    opacity=STREET_WATER_OPACITY, show_scalar_bar=False, name=name, ambient=0.25,
                    preference="cell", **add_kw)
        info.ranges["depth_m"] = water.get_data_range("depth_m")
    info.legend.append(("scene.legend.water", {}, DEPTH_CLASS_COLORS[1]))  # "Flood water", then its classes
    info.legend.extend(depth_legend_keys())
    return int(water.n_cells)


def build_city_scene(city: CityTwin, *, flood_depth: Raster | None = None, depth_series=None,
                     depth_frame: int | None = None, vertical_exaggeration: float = 1.0,
                     off_screen: bool = True, window_size: tuple[int, int] = (1600, 1000),
                     pipe_min_radius_m: float | None = None, terrain_opacity: float = 0.5,
                     lang: str = "en") -> pv.Plotter:
    """Build the 3D scene of a city.

    Parameters
    ----------
    city : CityTwin
        The city to draw.
    flood_depth : Raster, optional
        Water depth above ground in m (e.g. the maximum of a flood run), drawn as a
        blue water surface where deeper than 2 cm.  Ignored when ``depth_series`` is given.
    depth_series : DepthSeries, optional
        Street water of a coupled run (:mod:`hydraulics.depth_series`): drawn in the
        fixed depth classes of :mod:`twin.viz.depth_map` (:func:`add_street_water`).
    depth_frame : int, optional
        Frame of ``depth_series`` to draw; default each cell's maximum over the run.
    vertical_exaggeration : float
        Factor on every elevation (1 = true scale); must be > 0.
    off_screen : bool
        Render without a window (the default; needed on servers).
    window_size : (int, int)
        Render size in pixels.
    pipe_min_radius_m : float, optional
        Smallest display radius of a pipe tube in m; default 1/1,000 of the city's
        diagonal, so a 0.3 m pipe is still visible on a 3 km city.
    terrain_opacity : float
        Opacity of the ground, 0-1; below 1 the pipes below ground show through.
    lang : str
        Language of the legend and titles (``"en"`` or ``"zh"``).  Chinese text
        inside the picture needs a CJK font (:func:`twin.viz.fonts.cjk_font_path`);
        without one the picture's own labels stay English (the HTML overlay does not).

    Returns
    -------
    pyvista.Plotter
        Its legend, for overlays outside VTK, is ``plotter._citytwin_info`` (:class:`SceneInfo`).

    Examples
    --------
    >>> from conftest import make_tiny_city  # doctest: +SKIP
    >>> p = build_city_scene(make_tiny_city())      # doctest: +SKIP
    >>> p.screenshot("city.png"); p.close()         # doctest: +SKIP
    """
    if not vertical_exaggeration > 0:
        raise ValueError(f"vertical_exaggeration={vertical_exaggeration} must be > 0")
    xmin, ymin, xmax, ymax = city.extent
    frame = geo.Frame(xmin, ymin, float(vertical_exaggeration))
    diag = float(np.hypot(xmax - xmin, ymax - ymin))
    min_r = pipe_min_radius_m if pipe_min_radius_m is not None else max(0.15, diag / 1000)
    info = SceneInfo(vertical_exaggeration=float(vertical_exaggeration), origin=(xmin, ymin), crs=city.crs,
                     lang=lang, title=t("scene.title", lang, name=city.name),
                     camera_key=scene_camera_key(city, vertical_exaggeration))
    font = cjk_font_path() if lang != "en" else None
    vtk_lang = lang if (lang == "en" or font) else "en"  # VTK's own font has no CJK glyphs

    pl = pv.Plotter(off_screen=off_screen, window_size=list(window_size))
    pl.set_background(pal.SKY[0], top=pal.SKY[1])
    sbar = {"vertical": True, "height": 0.28, "width": 0.05, "title_font_size": 14, "label_font_size": 12,
                "fmt": "%.1f", "color": pal.TEXT_3D}

    terrain = geo.build_terrain(city.dem, frame)
    zr = terrain.get_data_range("elevation_m")
    info.ranges["elevation_m"] = zr
    from matplotlib.colors import LinearSegmentedColormap

    cmap = LinearSegmentedColormap.from_list("citytwin_terrain", TERRAIN_COLORS)
    pl.add_mesh(terrain, scalars="elevation_m", cmap=cmap, n_colors=256, opacity=terrain_opacity,
                clim=zr if zr[1] > zr[0] else (zr[0] - 1, zr[1] + 1), name="terrain", smooth_shading=True,
                scalar_bar_args=dict(title=t("scene.bar.elevation", vtk_lang), position_x=0.90, position_y=0.62, **sbar))
    info.legend.append(("scene.legend.terrain", {}, pal.TERRAIN_SWATCH))

    if len(city.buildings):
        bmesh = geo.build_buildings(city.buildings, city.dem, frame)
        pl.add_mesh(bmesh, color=BUILDING_COLOR, name="buildings", specular=0.2)
        info.legend.append(("scene.legend.buildings", {"n": f"{len(city.buildings):,}"}, BUILDING_COLOR))

    roads = city.roads
    lift = max(0.5, diag / 4000)
    for cls, (color, width) in ROAD_STYLE.items():
        sel = roads[roads["road_class"] == cls]
        if len(sel):
            mesh = geo.build_lines_on_ground(sel, city.dem, frame, lift_m=lift)
            pl.add_mesh(mesh, color=color, line_width=width, name=f"roads_{cls}")
            info.legend.append(("legend.road", {"cls": ("road_class." + cls,)}, color))

    if len(city.conduits):
        pipes = geo.build_pipes(city.conduits, city.nodes, city.dem, frame, min_radius_m=min_r)
        dr = pipes.get_data_range("diameter_m")
        info.ranges["diameter_m"] = dr
        pl.add_mesh(pipes, scalars="diameter_m", cmap=PIPE_CMAP, name="pipes", ambient=0.3,
                    clim=dr if dr[1] > dr[0] else (dr[0] * 0.9, dr[1] * 1.1 + 1e-3),
                    scalar_bar_args=dict(title=t("scene.bar.diameter", vtk_lang), position_x=0.90, position_y=0.30,
                                         n_labels=4, **{**sbar, "fmt": "%.2f"}))
        info.legend.append(("scene.legend.pipes", {"w": f"{2 * min_r:.1f}"}, pal.PIPE_SWATCH))
    manholes = geo.build_manholes(city.nodes, frame, radius_m=1.2 * min_r)
    if manholes.n_points:
        pl.add_mesh(manholes, color=MANHOLE_COLOR, name="manholes")
        info.legend.append(("scene.legend.manholes", {}, MANHOLE_COLOR))
    outfalls = city.nodes[city.nodes["node_type"] == "outfall"]
    if len(outfalls):
        xyz = frame.xyz(outfalls.geometry.x, outfalls.geometry.y, outfalls["rim_elev_m"])
        pl.add_mesh(geo.build_points(xyz, radius_m=3 * min_r), color=OUTFALL_COLOR, name="outfalls")
        info.legend.append(("legend.outfalls", {}, OUTFALL_COLOR))

    if depth_series is not None:
        add_street_water(pl, info, depth_series, depth_frame, city.dem, frame, lift_m=3 * lift)  # as the replay scene: over the pipe tubes
    elif flood_depth is not None:
        water = geo.build_water_surface(flood_depth, city.dem, frame)
        if water.n_points:
            wr = water.get_data_range("depth_m")
            info.ranges["depth_m"] = wr
            pl.add_mesh(water, scalars="depth_m", cmap=WATER_CMAP, opacity=0.8, name="water",
                        clim=(0.0, max(wr[1], 0.1)),
                        scalar_bar_args=dict(title=t("scene.bar.depth", vtk_lang), position_x=0.90, position_y=0.02,
                                             **{**sbar, "fmt": "%.2f"}))
            info.legend.append(("scene.legend.water", {}, pal.WATER_SWATCH))

    # Scale bar and north arrow as real geometry, so they survive the vtk.js export.
    w, h = xmax - xmin, ymax - ymin
    bar = geo.nice_length(w / 4)
    info.scale_bar_m = bar
    ztop = float(zr[1]) * frame.vertical_exaggeration + lift * 2
    dark, light = geo.build_scale_bar((0.05 * w, -0.06 * h), bar, ztop)
    pl.add_mesh(dark, color=pal.TEXT, name="scale_dark")
    pl.add_mesh(light, color=pal.PANEL, name="scale_light")
    pl.add_mesh(geo.build_north_arrow((-0.06 * w, 0.02 * h), 0.12 * min(w, h), ztop), color=pal.TEXT,
                name="north_arrow")
    pl.add_point_labels(np.array([[0.05 * w + bar / 2, -0.06 * h - 0.05 * h, ztop]]), [f"{bar:g} m"],
                        font_size=16, shape=None, show_points=False, always_visible=True, name="scale_label")
    pl.add_point_labels(np.array([[-0.06 * w, 0.02 * h + 0.14 * min(w, h), ztop]]), ["N"],
                        font_size=18, bold=True, shape=None, show_points=False, always_visible=True,
                        name="north_label")
    _add_legend(pl, info.labels(vtk_lang), font)
    ve = t("scene.ve", vtk_lang, ve=f"{vertical_exaggeration:g}") if vertical_exaggeration != 1 else ""
    caption = pl.add_text(f"{city.name} - {city.crs}{ve}", position="lower_left", font_size=10, color=pal.TEXT_3D)
    if font:
        _use_font(caption.GetTextProperty(), font)
        for bar in pl.scalar_bars.values():
            _use_font(bar.GetTitleTextProperty(), font)
            _use_font(bar.GetLabelTextProperty(), font)
    # No depth peeling: off-screen it drops the translucent terrain entirely.
    _set_camera(pl, w, h, zr, frame.vertical_exaggeration)
    pl._citytwin_info = info  # private names are allowed on pyvista objects
    return pl


def scene_camera_key(city: CityTwin, vertical_exaggeration: float = 1.0) -> str:
    """The key under which the browser keeps the camera of a city's 3D scenes (same city, same exaggeration).

    Examples
    --------
    >>> scene_camera_key(make_tiny_city())   # doctest: +SKIP
    'tiny|500000,3400000,500200,3400090|ve1'
    """
    xmin, ymin, xmax, ymax = city.extent
    return f"{city.name}|{xmin:.0f},{ymin:.0f},{xmax:.0f},{ymax:.0f}|ve{float(vertical_exaggeration):g}"


def _set_camera(pl: pv.Plotter, w: float, h: float, zr, ve: float) -> None:
    """An oblique view from the south-south-west, the whole city in frame."""
    cx, cy = w / 2, h / 2
    cz = float(np.mean(zr)) * ve
    size = max(w, h)
    pl.camera.focal_point = (cx, cy + 0.04 * h, cz)
    pl.camera.position = (cx - 0.35 * size, cy - 1.25 * size, cz + 0.95 * size)
    pl.camera.up = (0, 0, 1)
    pl.camera.view_angle = 30.0
    pl.reset_camera()
    pl.camera.zoom(1.35)


def _use_font(prop, font_file: str) -> None:
    import vtk

    prop.SetFontFamily(vtk.VTK_FONT_FILE)
    prop.SetFontFile(font_file)


def fill_legend_entries(leg, entries: list[tuple[str, str]]) -> None:
    """Set a ``vtkLegendBoxActor``'s entries: a framed colour icon and dark text per (label, colour)."""
    leg.SetNumberOfEntries(len(entries))
    for i, (label, color) in enumerate(entries):
        icon = pv.ImageData(dimensions=(16, 16, 1))
        rgb = np.tile(np.array(pv.Color(color).int_rgb, dtype=np.uint8), (256, 1))
        edge = np.zeros((16, 16), dtype=bool)
        edge[[0, -1], :] = edge[:, [0, -1]] = True
        rgb[edge.ravel()] = 90
        icon.point_data["rgb"] = rgb
        icon.point_data.active_scalars_name = "rgb"
        leg.SetEntryIcon(i, icon)
        leg.SetEntryString(i, label)
        leg.SetEntryColor(i, 0.13, 0.13, 0.13)


def _add_legend(pl: pv.Plotter, entries: list[tuple[str, str]], font_file: str | None = None) -> None:
    """A legend with coloured icons and dark text (pyvista's colours the text, hiding white entries)."""
    import vtk

    leg = vtk.vtkLegendBoxActor()
    fill_legend_entries(leg, entries)
    leg.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
    leg.GetPositionCoordinate().SetValue(0.01, 0.97 - 0.035 * len(entries))
    leg.GetPosition2Coordinate().SetValue(0.2, 0.035 * len(entries))
    leg.UseBackgroundOn()
    leg.SetBackgroundColor(1.0, 1.0, 1.0)
    leg.SetBackgroundOpacity(0.85)
    leg.BorderOn()
    if font_file:
        _use_font(leg.GetEntryTextProperty(), font_file)
    pl.add_actor(leg, name="legend")


def write_scene_png(plotter_or_city, path: str | Path, size: tuple[int, int] = (1600, 1000), **scene_kw) -> Path:
    """Render a scene off-screen to a PNG file.

    Parameters
    ----------
    plotter_or_city : pyvista.Plotter or CityTwin
        A plotter from :func:`build_city_scene` (closed afterwards) or a city to draw.
    path : str or Path
        Output ``.png``.
    size : (int, int)
        Image size in pixels.
    **scene_kw
        Passed to :func:`build_city_scene` when a city is given.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(plotter_or_city, CityTwin):
        pl = build_city_scene(plotter_or_city, off_screen=True, window_size=size, **scene_kw)
    else:
        pl = plotter_or_city
        pl.window_size = list(size)
    try:
        tmp = path.with_name(f".{path.name}.part.png")
        pl.screenshot(str(tmp), window_size=list(size))
        tmp.replace(path)
    finally:
        pl.close()
    return path


def scene_html(city: CityTwin, **scene_kw) -> str:
    """The interactive 3D scene of ``city`` as the text of one self-contained HTML page."""
    with tempfile.TemporaryDirectory(prefix="citytwin-scene-") as tmp:
        out = write_scene_html(city, Path(tmp) / "scene.html", **scene_kw)
        return out.read_text(encoding="utf-8")


def write_scene_html(city_or_plotter, path: str | Path, *, title: str | None = None, **scene_kw) -> Path:
    """Export the 3D scene as one self-contained HTML page (vtk.js; opens offline).

    The legend, scale and colour ranges are added as an HTML overlay, since
    vtk.js does not carry VTK's 2D annotations.

    Parameters
    ----------
    city_or_plotter : CityTwin or pyvista.Plotter
        A city (a scene is built with ``scene_kw``) or a plotter from :func:`build_city_scene`.
    path : str or Path
        Output ``.html``; written under a temporary name and renamed into place.
    title : str, optional
        Page title; default the city name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(city_or_plotter, CityTwin):
        pl = build_city_scene(city_or_plotter, off_screen=True, **scene_kw)
    else:
        pl = city_or_plotter
    info: SceneInfo | None = getattr(pl, "_citytwin_info", None)
    title = title or (info.title if info is not None else "CityTwin 3D")
    fd, tmp_name = tempfile.mkstemp(suffix=".html", dir=path.parent, prefix=f".{path.stem}.")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # vtk.js draws every scalar bar in the same corner, on top of each other;
        # the overlay lists the colour ranges instead.
        for bar_title in list(pl.scalar_bars.keys()):
            pl.remove_scalar_bar(bar_title, render=False)
        # the foldable HTML legend replaces VTK's legend box (it would cover the view, unfoldable)
        if "legend" in pl.actors:
            pl.remove_actor("legend", render=False)
        _export_html(pl, tmp)
        text = tmp.read_text(encoding="utf-8")
        text = _inject_overlay(text, title, info)
        # The viewer adds favicons from kitware.github.io at run time; point them at
        # inline data instead so that opening the page makes no network request at all.
        text = text.replace("https://kitware.github.io/vtk-js/icon/favicon-", "data:,favicon-")
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o644)  # mkstemp makes it private; a page is meant to be shared
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
        pl.close()
    return path


def _export_html(pl: pv.Plotter, path: Path) -> None:
    from trame_vtk.tools.vtksz2html import write_html

    data = export_vtksz(pl)
    with open(path, "w", encoding="utf-8") as fh:
        write_html(data, fh)


def export_vtksz(pl: pv.Plotter) -> bytes:
    """Serialise the plotter's scene for vtk.js's OfflineLocalView (a zip holding ``index.json``).

    This is what ``plotter.trame.export_html`` does, minus the trame web server it
    starts first: that server binds a port and installs signal handlers, which
    fails outside the main thread (Streamlit runs scripts in worker threads).
    The serialisers are trame-vtk's own.
    """
    import io
    import zipfile

    from trame_vtk.modules.vtk.serializers import (
        SynchronizationContext,
        extract_array_hash,
        initialize_serializers,
        reference_id,
        serialize,
    )

    initialize_serializers()
    context = SynchronizationContext()
    window = pl.render_window
    window.Render()
    camera = window.GetRenderers().GetFirstRenderer().GetActiveCamera()
    context.set_ignore_last_dependencies(True)
    scene = serialize(None, window, reference_id(window), context, 1)
    scene["extra"] = {"vtkRefId": reference_id(window), "centerOfRotation": camera.GetFocalPoint(),
                      "camera": reference_id(camera)}
    context.set_ignore_last_dependencies(False)
    hashes = {}
    for entry in extract_array_hash(scene):
        key = entry.get("hash")
        hashes[key] = dict(**entry, content=context.get_cached_data_array(key, False))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("index.json", json.dumps({"hashes": hashes, "scene": scene}), compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


LEGEND_FOLD_ROWS = 12
"""A 3D legend with more lines than this starts folded (the viewer's choice is then kept)."""


def _inject_overlay(text: str, title: str, info: SceneInfo | None) -> str:
    """Add the foldable legend (an HTML ``<details>``) and the camera keeper to an exported vtk.js page."""
    esc = _html.escape
    rows = []
    if info is not None:
        lang = info.lang
        rows = [f'<div style="white-space:nowrap"><span style="display:inline-block;width:11px;height:11px;'
                f'background:{esc(c)};border:1px solid #555;margin-right:6px;vertical-align:middle"></span>'
                f'{esc(label)}</div>' for label, c in info.labels()]
        names = {"elevation_m": "scene.bar.elevation", "diameter_m": "scene.bar.diameter", "depth_m": "scene.bar.depth"}
        for key, (lo, hi) in info.ranges.items():
            rows.append(f"<div>{esc(t(names.get(key, key), lang))}: {lo:.2f} - {hi:.2f}</div>")
        rows.append(f'<div style="margin-top:4px">{esc(t("scene.overlay.scale", lang, m=f"{info.scale_bar_m:g}"))}</div>')
        ve = t("scene.ve", lang, ve=f"{info.vertical_exaggeration:g}") if info.vertical_exaggeration != 1 else ""
        rows.append("<div>" + esc(t("scene.overlay.origin", lang, x=f"{info.origin[0]:.0f}", y=f"{info.origin[1]:.0f}",
                                    crs=info.crs) + ve) + "</div>")
        rows.append(f"<div>{esc(t('scene.overlay.help', lang))}</div>")
    fold = len(rows) > LEGEND_FOLD_ROWS + 4
    hint = t("scene.legend.fold", info.lang if info is not None else "en")
    overlay = (
        f'<details id="citytwin-legend"{"" if fold else " open"} style="position:fixed;top:8px;left:8px;'
        'z-index:1000;background:rgba(255,255,255,0.9);border:1px solid #999;border-radius:4px;padding:4px 8px;'
        'font:11px/1.45 sans-serif;color:#222;max-width:min(300px,42vw);max-height:calc(100vh - 24px);'
        'overflow:auto;box-sizing:border-box">'
        f'<summary title="{esc(hint)}" style="cursor:pointer;font-weight:bold;font-size:12px;outline:none">'
        f'{esc(title)}</summary>' + "".join(rows) + "</details>"
    )
    if "<title>" in text:
        start, end = text.index("<title>") + 7, text.index("</title>")
        text = text[:start] + esc(title) + text[end:]
    key = json.dumps(info.camera_key if info is not None and info.camera_key else title).replace("</", "<\\/")
    # vtk.js replaces the page body when it mounts, so the overlay is (re)attached by a script.
    # The viewer keeps its render window in ``window.global.renderWindow``.  The camera: restored from sessionStorage once the scene is there, saved after each move; so a
    # page re-rendered for another time step (Replay) opens where the viewer left it.
    script = (
        "<script>(function(){var html=" + json.dumps(overlay).replace("</", "<\\/") + ";var KEY=" + key + ";"
        'function store(){try{return window.sessionStorage;}catch(e){return null;}}'
        'function attach(){if(!document.getElementById("citytwin-legend")&&document.body){'
        'var d=document.createElement("div");d.innerHTML=html;var el=d.firstChild;document.body.appendChild(el);'
        'var s=store();try{var o=s&&s.getItem("citytwin-legend-open");if(o!==null&&o!==undefined&&s){el.open=o==="1";}}catch(e){}'
        'el.addEventListener("toggle",function(){try{s&&s.setItem("citytwin-legend-open",el.open?"1":"0");}catch(e){}});}}'
        'var n=0;var h=setInterval(function(){attach();if(++n>60)clearInterval(h);},250);'
        'window.addEventListener("load",attach);'
        'var CK="citytwin-camera:"+KEY,tries=0,seen=0;'
        'var c=setInterval(function(){if(++tries>600){clearInterval(c);return;}'
        'var rw=(window.global&&window.global.renderWindow)||window.renderWindow;'
        'var r=null;if(rw&&rw.getRenderers){rw.getRenderers().forEach(function(x){'
        'if(x.getActors().length&&(!r||x.getActors().length>r.getActors().length)){r=x;}});}'
        'if(!r){return;}if(++seen<4){return;}clearInterval(c);'
        'var cam=r.getActiveCamera(),s=store(),saved=null;'
        'try{saved=s&&JSON.parse(s.getItem(CK)||"null");}catch(e){saved=null;}'
        'if(saved&&saved.position&&saved.focalPoint&&saved.viewUp){cam.setPosition.apply(cam,saved.position);'
        'cam.setFocalPoint.apply(cam,saved.focalPoint);cam.setViewUp.apply(cam,saved.viewUp);'
        'if(saved.viewAngle){cam.setViewAngle(saved.viewAngle);}r.resetCameraClippingRange();rw.render();}'
        'window.citytwinRenderer=r;window.citytwinCameraRestored=!!saved;var t=null;'
        'cam.onModified(function(){if(t){return;}t=setTimeout(function(){t=null;try{s&&s.setItem(CK,JSON.stringify('
        '{position:cam.getPosition(),focalPoint:cam.getFocalPoint(),viewUp:cam.getViewUp(),'
        'viewAngle:cam.getViewAngle()}));}catch(e){}},250);});},100);'
        "})();</script>"
    )
    idx = text.rfind("</html>")
    return text[:idx] + script + text[idx:] if idx >= 0 else text + script
