"""The replay of a stored run in 3D: flood water, crews and incidents at one time, or as an animation.

:class:`ReplayScene` draws the city once (:func:`twin.viz.scene.build_city_scene`)
and then, for each time, swaps only what moves: the water surface, the crews
(cones coloured by department), the open incidents (spheres coloured by
status), the closed roads, a time label and the legend.  Everything comes
from the stored run through :func:`twin.replay.state_at`; nothing here
simulates.

The water at ``t`` is the run's street water when its folder holds a depth
series (``depth_series.tif``, :mod:`hydraulics.depth_series`: the frame at or
before ``t``, in the fixed depth classes of :mod:`twin.viz.depth_map`);
otherwise the surface volume the coupler stored for each wet manhole at its
last coupling step (table ``flood_nodes``), spread over the DEM by
:func:`hydraulics.surface.spread_flood`, the coupler's own call.

With a depth series, :func:`render_animation` draws 2D top views of the
street water by default (:func:`twin.viz.depth_map.render_depth_frames`;
a folder with a depth series but no stored run, such as ``twin swmm run
--city``'s, animates too).

- :func:`build_replay_scene` -> a :class:`pyvista.Plotter` of one time (the
  Replay page exports it as HTML);
- :func:`render_frames` -> images (H x W x 3 ``uint8``) of many times;
- :func:`write_animation` -> a GIF (Pillow) or an MP4 (imageio + imageio-ffmpeg);
- :func:`render_animation` checks the inputs, renders and writes in one call
  (``twin render``).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from gisdata.errors import TwinError
from gisdata.raster import Raster
from twin.i18n import t
from twin.viz import palette as pal

ANIMATION_FORMATS = (".gif", ".mp4")
FRAME_SIZE = (960, 600)
"""Default frame size (width, height), pixels."""

DEPARTMENT_COLORS = dict(pal.DEPARTMENT)
"""Crew colour by department (:data:`twin.viz.palette.DEPARTMENT`, as on every map)."""
OTHER_DEPARTMENT_COLOR = pal.OTHER_DEPARTMENT
INCIDENT_STATUSES = tuple(pal.INCIDENT)
INCIDENT_COLORS = dict(pal.INCIDENT)
"""Open incident colour by status: nobody reported it yet; reported, no crew yet; a crew on its way; a crew there."""
ROAD_CLOSED_COLORS = dict(pal.CLOSURE)
MIN_WATER_DEPTH_M = 0.02
WATER_COLORS = pal.WATER_RAMP
"""Shallow to deep water: even 2 cm shows blue (matplotlib's Blues starts at white)."""
SHORT_LEGEND_KEYS = ("scene.legend.terrain", "scene.legend.buildings")
MAX_ANIMATION_FRAMES = 1000
"""Most frames of one animation (a 72 h run every 5 min is 865)."""
MAX_ANIMATION_BYTES = 2 * 1024 ** 3
"""Most raw image bytes (frames x width x height x 3) an animation may hold in memory."""
VIEWS = ("auto", "2d", "3d")
"""Animation views: 2D street water map, 3D scene, or ``auto`` (2D when the folder has a depth series)."""


class AnimationError(TwinError, ValueError):
    """Bad input for a replay animation: times outside the run, an empty range, an unknown file type."""


# ----------------------------------------------------------------------------- state -> drawables


def surface_depth(city, state) -> Raster | None:
    """Water depth on the ground at a replay state's time, m (None when no manhole holds water).

    Parameters
    ----------
    city : CityTwin
        The run's city (its DEM and manholes).
    state : twin.replay.ReplayState
        Its ``flood_nodes`` hold each wet manhole's ``surface_volume_m3``.
    """
    from hydraulics.surface import spread_flood

    fn = state.flood_nodes
    if fn is None or len(fn) == 0 or "surface_volume_m3" not in fn.columns:
        return None
    vols = fn.set_index(fn["node_id"].astype(str))["surface_volume_m3"].astype(float)
    vols = vols[(vols > 0) & vols.index.isin(city.nodes.index.astype(str))]
    if vols.empty:
        return None
    nodes = city.nodes.set_axis(city.nodes.index.astype(str)).loc[vols.index]
    return spread_flood(city.dem, nodes, vols).depth


def run_depth_series(run_dir: str | Path):
    """The folder's street depth series (``depth_series.tif``), or None if it has none.

    Raises
    ------
    DepthSeriesError
        The file is there but cannot be read.
    """
    from hydraulics.depth_series import FILE_NAME, read_depth_series

    path = Path(run_dir) / FILE_NAME
    return read_depth_series(path) if path.is_file() else None


def incident_status(run_dir: str | Path, state) -> pd.Series:
    """Status of each open incident of a replay state: one of :data:`INCIDENT_STATUSES`.

    ``on_site`` if a crew sent to one of its cases is there at ``t``; ``en_route``
    if one is on its way; ``reported`` if someone reported it (or a case covers
    it); else ``unreported``.  Index ``incident_id``.
    """
    from twin.replay import load_run

    inc = state.incidents
    if len(inc) == 0:
        return pd.Series([], dtype=object, index=pd.Index([], name="incident_id"), name="status")
    tt = float(state.time_s) + 1e-9
    tables = load_run(run_dir)["tables"]
    rank = pd.Series(0, index=inc.index)  # 0 unreported, 1 reported, 2 en route, 3 on site
    rank[inc["reports"].to_numpy() > 0] = 1
    cases = tables.get("cases")
    members: dict[str, list[str]] = {}
    if cases is not None and len(cases):
        open_c = cases[cases["t_open_s"] <= tt]
        for cid, ids, main in zip(open_c.index, open_c.get("incident_ids", pd.Series("", index=open_c.index)),
                                  open_c["incident_id"]):
            members[cid] = [i for i in str(ids or "").split(";") if i] or [str(main)]
        covered = {i for ids in members.values() for i in ids}
        rank[inc.index.isin(list(covered)) & (rank < 1)] = 1
    d = tables.get("dispatches")
    if d is not None and len(d):
        d = d[d["t_dispatch_s"] <= tt]
        done = d["t_done_s"].fillna(np.inf).to_numpy(float)
        arrive = d["t_arrive_s"].fillna(np.inf).to_numpy(float)
        level = np.where(done <= tt, 0, np.where(arrive <= tt, 3, 2))
        for cid, main, lv in zip(d["case_id"], d["incident_id"], level):
            if lv == 0:
                continue
            for i in members.get(cid, [str(main)]):
                if i in rank.index and rank[i] < lv:
                    rank[i] = lv
    return pd.Series(np.asarray(INCIDENT_STATUSES, dtype=object)[rank.to_numpy(int)], index=inc.index, name="status")


def _spread_duplicates(xy: np.ndarray, radius_m: float) -> np.ndarray:
    """Points at the same place (crews at one depot) moved onto a small ring, so each one shows."""
    if len(xy) < 2:
        return xy
    out = xy.astype(float).copy()
    key = pd.Series(range(len(xy))).groupby([np.round(xy[:, 0], 1), np.round(xy[:, 1], 1)]).apply(list)
    for idx in key:
        k = len(idx)
        if k < 2:
            continue
        ring = radius_m * max(1.6, 0.5 * k)
        ang = 2 * np.pi * np.arange(k) / k
        out[idx, 0] += ring * np.cos(ang)
        out[idx, 1] += ring * np.sin(ang)
    return out


def _set_legend(leg, entries: list[tuple[str, str]]) -> None:
    """Replace the entries of a legend box (as :func:`twin.viz.scene._add_legend` makes them) in place."""
    from twin.viz.scene import fill_legend_entries

    fill_legend_entries(leg, entries)
    h = 0.04 * len(entries)
    leg.GetPositionCoordinate().SetValue(0.01, 0.91 - h)
    leg.GetPosition2Coordinate().SetValue(0.27, h)


def _hhmm(t_s: float) -> str:
    return f"{int(t_s // 3600):02d}:{int(t_s % 3600 // 60):02d}"


# ----------------------------------------------------------------------------- the scene


class ReplayScene:
    """A city scene whose water, crews, incidents and closed roads follow a stored run.

    Parameters
    ----------
    city : CityTwin
        The run's city.
    depth_max_m : float
        Top of the water depth colour scale, m (fixed, so frames compare).
    departments : sequence of str
        Departments to list in the legend (in this order).
    lang : str
        ``"en"`` or ``"zh"``.
    window_size : (int, int)
        Pixels.
    vertical_exaggeration : float
        Factor on every elevation.
    short_legend : bool
        Leave the static layers other than terrain and buildings out of the picture's
        legend (roads, pipes, manholes), to keep it readable in small frames.
    street_water : bool
        The water will come from a depth series (``update(..., street=...)``): its fixed
        depth classes are in the legend, and the blue scale and its colour bar are left out.
    """

    def __init__(self, city, *, depth_max_m: float = 0.5, departments: Sequence[str] = tuple(DEPARTMENT_COLORS),
                 lang: str = "en", window_size: tuple[int, int] = FRAME_SIZE, vertical_exaggeration: float = 1.0,
                 short_legend: bool = False, street_water: bool = False):
        import pyvista as pv
        from matplotlib.colors import LinearSegmentedColormap

        from twin.viz import geometry as geo
        from twin.viz.fonts import cjk_font_path
        from twin.viz.scene import build_city_scene

        self.city = city
        self.lang = lang
        self.font = cjk_font_path() if lang != "en" else None
        self.vtk_lang = lang if (lang == "en" or self.font) else "en"
        self.pl = build_city_scene(city, off_screen=True, window_size=tuple(window_size), lang=lang,
                                   vertical_exaggeration=vertical_exaggeration)
        self.info = self.pl._citytwin_info
        self.base_legend = list(self.info.legend)
        self.short_base = [e for e in self.base_legend if e[0] in SHORT_LEGEND_KEYS] if short_legend else None
        self.legend = self.pl.actors["legend"]  # updated in place: adding an actor would render the scene
        xmin, ymin, xmax, ymax = city.extent
        self.frame = geo.Frame(xmin, ymin, float(vertical_exaggeration))
        diag = float(np.hypot(xmax - xmin, ymax - ymin))
        self.glyph_r = max(diag / 130.0, 2.5)
        self.lift = max(0.5, diag / 4000)
        self.depth_max_m = max(float(depth_max_m), 0.1)
        self.departments = list(departments)
        self._dynamic: list[str] = []
        self.water = None
        if street_water:
            return
        # The water keeps one actor (and so one colour bar); each time only its mesh changes.
        seed = pv.PolyData(np.zeros((3, 3)), faces=np.array([3, 0, 1, 2]))
        seed.point_data["depth_m"] = np.zeros(3)
        sbar = {"vertical": True, "height": 0.28, "width": 0.05, "title_font_size": 14, "label_font_size": 12,
                "fmt": "%.2f", "color": pal.TEXT_3D, "position_x": 0.90, "position_y": 0.02}
        cmap = LinearSegmentedColormap.from_list("citytwin_water", WATER_COLORS)
        self.water = self.pl.add_mesh(seed, scalars="depth_m", opacity=0.9, cmap=cmap, name="water",
                                      clim=(0.0, self.depth_max_m), reset_camera=False, render=False,
                                      scalar_bar_args=dict(title=t("scene.bar.depth", self.vtk_lang), **sbar))
        self.water.SetVisibility(False)
        if self.font:
            from twin.viz.scene import _use_font

            for bar in self.pl.scalar_bars.values():
                _use_font(bar.GetTitleTextProperty(), self.font)
                _use_font(bar.GetLabelTextProperty(), self.font)
        self.info.ranges["depth_m"] = (0.0, self.depth_max_m)

    # -- one time

    def update(self, state, *, depth: Raster | None = None, status: pd.Series | None = None,
               street=None) -> ReplayScene:
        """Show the run at ``state.time_s``: water, crews, incidents (``status``), closed roads.

        The water is ``street`` = (DepthSeries, frame index or None) when given (the street
        water in its fixed depth classes; None draws nothing), else ``depth`` (m, blue scale).
        """
        from twin.viz import geometry as geo

        pl, city, frame, r = self.pl, self.city, self.frame, self.glyph_r
        for name in self._dynamic:
            pl.remove_actor(name, render=False)
        self._dynamic = []
        legend = list(self.base_legend)

        # water
        if street is not None:
            from twin.viz.scene import SceneInfo, add_street_water

            series, k = street
            if self.water is not None:
                self.water.SetVisibility(False)
            if k is not None and add_street_water(pl, SceneInfo(), series, k, city.dem, frame,
                                                  lift_m=3 * self.lift, name="street_water",
                                                  reset_camera=False, render=False):
                self._dynamic.append("street_water")
            from twin.viz.depth_map import DEPTH_CLASS_COLORS, depth_legend_keys

            legend.append(("scene.legend.water", {}, DEPTH_CLASS_COLORS[1]))
            legend.extend(depth_legend_keys())
        else:
            water = geo.build_water_surface(depth, city.dem, frame, min_depth_m=MIN_WATER_DEPTH_M) \
                if depth is not None else None
            wet = water is not None and water.n_points > 0
            if wet:
                # Above the road lines (drawn lift_m over the ground), which would hide street-sized pools.
                water = water.translate((0.0, 0.0, 3 * self.lift), inplace=False)
                water.set_active_scalars("depth_m")
                self.water.mapper.SetInputData(water)
            self.water.SetVisibility(bool(wet))
            legend.append(("scene.legend.water", {}, WATER_COLORS[1]))

        # closed roads, drawn over the road network
        rc = state.roads_closed
        if len(rc):
            roads = city.roads.set_axis(city.roads.index.astype(str))
            for st_, color in ROAD_CLOSED_COLORS.items():
                ids = [i for i in rc.index[rc["status"] == st_].astype(str) if i in roads.index]
                if ids:
                    mesh = geo.build_lines_on_ground(roads.loc[ids], city.dem, frame, lift_m=2 * self.lift)
                    self._add(f"roads_{st_}", mesh, color, line_width=6.0)
                    legend.append((f"render.legend.road_{st_}", {"n": len(ids)}, color))

        # incidents: spheres by status
        inc = state.incidents
        status = status if status is not None else pd.Series("reported", index=inc.index)
        for st_ in INCIDENT_STATUSES:
            sel = inc[(status.reindex(inc.index) == st_).to_numpy()] if len(inc) else inc
            n = len(sel)
            if n:
                self._add(f"incidents_{st_}", self._glyphs(sel, 0.75 * r, "sphere", lift=0.75 * r),
                          INCIDENT_COLORS[st_])
            legend.append((f"render.legend.incident_{st_}", {"n": n}, INCIDENT_COLORS[st_]))

        # crews: cones (pointing down at the crew) by department
        crews = state.crews
        depts = list(self.departments) + [d for d in (crews["department"].unique() if len(crews) else [])
                                          if d not in self.departments]
        if len(crews):
            xy = _spread_duplicates(crews[["x", "y"]].to_numpy(float), r)
            crews = crews.assign(x=xy[:, 0], y=xy[:, 1])
        for dept in depts:
            sel = crews[crews["department"] == dept] if len(crews) else crews
            color = DEPARTMENT_COLORS.get(dept, OTHER_DEPARTMENT_COLOR)
            if len(sel):
                self._add(f"crews_{dept}", self._glyphs(sel, r, "cone", lift=0.0), color)
            busy = int((sel["status"] != "idle").sum()) if len(sel) else 0
            legend.append(("render.legend.crews", {"dept": (f"department.{dept}",), "n": len(sel), "busy": busy},
                           color))

        # time label and legend
        busy = int((state.crews["status"] != "idle").sum()) if len(state.crews) else 0
        label = t("render.time_label", self.vtk_lang, hhmm=_hhmm(state.time_s), incidents=len(inc), busy=busy,
                  crews=len(state.crews))
        size = max(7, round(12 * pl.window_size[1] / 600))  # in points: scale with the frame
        text = pl.add_text(label, position="upper_left", font_size=size, color=pal.TEXT, name="time_label",
                           render=False)
        if self.font:
            from twin.viz.scene import _use_font

            _use_font(text.GetTextProperty(), self.font)
        from twin.viz.scene import SceneInfo

        dynamic = legend[len(self.base_legend):]
        self.info.legend = legend  # the HTML overlay lists everything
        self.info.title = t("render.title", self.lang, name=city.name, hhmm=_hhmm(state.time_s))
        shown = (self.short_base if self.short_base is not None else self.base_legend) + dynamic
        _set_legend(self.legend, SceneInfo(legend=shown).labels(self.vtk_lang))
        self.time_s = float(state.time_s)
        return self

    def _glyphs(self, df: pd.DataFrame, radius_m: float, shape: str, *, lift: float):
        from twin.viz import geometry as geo

        x, y = df["x"].to_numpy(float), df["y"].to_numpy(float)
        z = self.city.dem.sample(x, y).astype(float) + lift / max(self.frame.vertical_exaggeration, 1e-9)
        return geo.build_points(self.frame.xyz(x, y, z) + [0, 0, self.lift], radius_m=radius_m, shape=shape)

    def _add(self, name: str, mesh, color: str, **kw) -> None:
        self.pl.add_mesh(mesh, color=color, name=name, reset_camera=False, render=False, **kw)
        self._dynamic.append(name)

    def screenshot(self) -> np.ndarray:
        """The current view as an (H, W, 3) ``uint8`` image."""
        img = self.pl.screenshot(None, return_img=True, window_size=list(self.pl.window_size))
        return np.ascontiguousarray(img[..., :3])

    def close(self) -> None:
        self.pl.close()


def build_replay_scene(city, run_dir: str | Path, t_s: float, *, lang: str = "en",
                       window_size: tuple[int, int] = (1600, 1000), vertical_exaggeration: float = 1.0):
    """The 3D scene of a stored run at ``t_s`` (s since midnight of day 0): a :class:`pyvista.Plotter`.

    The water is the folder's street depth series at ``t_s`` when it has one (fixed depth
    classes), else the manholes' stored volumes spread over the DEM, whose colour scale runs
    to the deepest water at ``t_s`` (at least 0.1 m).
    The plotter's ``_citytwin_info`` holds the legend for an HTML overlay
    (:func:`twin.viz.scene.write_scene_html`).

    Examples
    --------
    >>> pl = build_replay_scene(load_city("small"), "runs/r1", 7200)   # doctest: +SKIP
    >>> pl.screenshot("replay.png"); pl.close()                        # doctest: +SKIP
    """
    from twin.replay import load_run, state_at
    from twin.viz.depth_map import frame_index

    state = state_at(run_dir, t_s)
    series = run_depth_series(run_dir)
    departments = _run_departments(load_run(run_dir))
    if series is not None:
        scene = ReplayScene(city, departments=departments, lang=lang, window_size=window_size,
                            vertical_exaggeration=vertical_exaggeration, street_water=True)
        scene.update(state, status=incident_status(run_dir, state), street=(series, frame_index(series, t_s)))
        return scene.pl
    depth = surface_depth(city, state)
    vmax = float(np.nanmax(depth.values)) if depth is not None else 0.1
    scene = ReplayScene(city, depth_max_m=vmax, departments=departments, lang=lang,
                        window_size=window_size, vertical_exaggeration=vertical_exaggeration)
    scene.update(state, depth=depth, status=incident_status(run_dir, state))
    return scene.pl


def replay_scene_html(city, run_dir: str | Path, t_s: float, *, lang: str = "en",
                      vertical_exaggeration: float = 1.0) -> str:
    """The 3D scene of a run at ``t_s`` as the text of one self-contained HTML page (vtk.js, offline)."""
    from twin.viz.scene import write_scene_html

    pl = build_replay_scene(city, run_dir, t_s, lang=lang, vertical_exaggeration=vertical_exaggeration)
    with tempfile.TemporaryDirectory(prefix="citytwin-replay-") as tmp:
        return write_scene_html(pl, Path(tmp) / "replay.html").read_text(encoding="utf-8")


def _run_departments(run: dict) -> list[str]:
    pos = run["tables"].get("positions")
    found = set(pos.loc[pos["kind"] == "crew", "department"].astype(str)) if pos is not None and len(pos) else set()
    return [d for d in DEPARTMENT_COLORS if d in found] + sorted(found - set(DEPARTMENT_COLORS))


# ----------------------------------------------------------------------------- many times


def frame_times(run_dir: str | Path | None, t_from_s: float | None = None, t_to_s: float | None = None,
                step_s: float = 300.0, *, horizon_s: float | None = None,
                max_frames: int = MAX_ANIMATION_FRAMES) -> np.ndarray:
    """The times of an animation, s: ``t_from_s``, ``t_from_s + step_s``, ... up to ``t_to_s`` (included).

    Defaults are the start and the end of the run.

    Parameters
    ----------
    run_dir : path or None
        A complete run (its length is the horizon); may be None when ``horizon_s`` is given.
    horizon_s : float, optional
        Length of the run, s, instead of the stored run's (e.g. a depth series' last time).
    max_frames : int
        Most frames allowed (:data:`MAX_ANIMATION_FRAMES`).

    Raises
    ------
    AnimationError
        A time outside the run, ``t_from_s >= t_to_s``, ``step_s <= 0``, or more than ``max_frames`` frames.
    NotARunError, InputFileNotFoundError
        ``run_dir`` is not a complete run.
    """
    if horizon_s is None:
        from twin.replay import horizon_s as run_horizon_s

        hz = run_horizon_s(run_dir)
    else:
        hz = float(horizon_s)
    lo = 0.0 if t_from_s is None else float(t_from_s)
    hi = hz if t_to_s is None else float(t_to_s)
    for name, v in (("--from", lo), ("--to", hi)):
        if not (np.isfinite(v) and 0.0 <= v <= hz + 1e-9):
            raise AnimationError(f"{name} {_hhmm(v) if np.isfinite(v) else v} is outside the run "
                                 f"(00:00 .. {_hhmm(hz)}, {hz / 3600:g} h)")
    if not hi > lo:
        raise AnimationError(f"--from {_hhmm(lo)} must be before --to {_hhmm(hi)}")
    if not (np.isfinite(step_s) and step_s > 0):
        raise AnimationError(f"step {step_s} s must be > 0")
    n_float = np.ceil((hi - lo) / step_s) + 1.0  # counted before anything is allocated
    if not np.isfinite(n_float) or n_float > max_frames:
        raise AnimationError(f"--step {step_s:g} s from {_hhmm(lo)} to {_hhmm(hi)} gives "
                             f"{n_float:,.0f} frames; at most {max_frames:,} (use a longer --step or a "
                             f"shorter --from/--to)")
    n = int(np.floor((hi - lo) / step_s + 1e-9)) + 1
    times = lo + step_s * np.arange(n)
    if hi - times[-1] > 1e-6:
        times = np.append(times, hi)
    return np.minimum(times, hz)


def check_frame_budget(n_frames: int, size: tuple[int, int]) -> None:
    """Refuse an animation whose raw frames would take more than :data:`MAX_ANIMATION_BYTES` of memory.

    Raises
    ------
    AnimationError
        Naming the frame count, the size and the limit.
    """
    w, h = (int(v) for v in size)
    need = int(n_frames) * w * h * 3
    if need > MAX_ANIMATION_BYTES:
        raise AnimationError(f"{n_frames:,} frames of {w}x{h} px need {need / 1024 ** 3:.1f} GiB; at most "
                             f"{MAX_ANIMATION_BYTES / 1024 ** 3:g} GiB (use fewer frames or a smaller --size)")


def resolve_view(view: str, series) -> str:
    """``"2d"`` or ``"3d"`` for a requested view (:data:`VIEWS`) and the folder's depth series (or None)."""
    if view not in VIEWS:
        raise AnimationError(f"view {view!r} unknown; expected one of {list(VIEWS)}")
    if view == "auto":
        return "2d" if series is not None else "3d"
    if view == "2d" and series is None:
        raise AnimationError("the 2D view needs a depth series (depth_series.tif) in the run folder")
    return view


def render_frames(city, run_dir: str | Path, times: Sequence[float], *, lang: str = "en",
                  size: tuple[int, int] = FRAME_SIZE, vertical_exaggeration: float = 1.0,
                  progress: Callable[[float], None] | None = None, series=None) -> list[np.ndarray]:
    """Render a stored run at each of ``times`` (s since midnight of day 0) as 3D images.

    The water colour scale is the same in every frame (0 to the deepest water
    of all of them, or the fixed depth classes of a depth series), and so is the camera.

    Parameters
    ----------
    city : CityTwin
        The run's city.
    run_dir : path
        A complete run (:mod:`twin.runstore`).
    times : sequence of float
        Frame times, s; each within the run.
    lang : str
        Language of the labels.
    size : (int, int)
        Frame width and height, pixels.
    vertical_exaggeration : float
        Factor on every elevation.
    progress : callable, optional
        Called with the fraction done (0-1) after each frame.
    series : DepthSeries, optional
        The run's street water (:func:`run_depth_series`); drawn instead of the spread manhole volumes.

    Returns
    -------
    list of numpy.ndarray
        One (H, W, 3) ``uint8`` image per time.
    """
    from twin.replay import load_run, state_at
    from twin.viz.depth_map import frame_index

    times = [float(x) for x in times]
    if not times:
        raise AnimationError("no frame times")
    check_frame_budget(len(times), size)
    states = [state_at(run_dir, x) for x in times]
    if series is not None:
        depths = [None] * len(states)
        vmax = 0.1
    else:
        depths = [surface_depth(city, s) for s in states]
        vmax = max([float(np.nanmax(d.values)) for d in depths if d is not None] or [0.1])
    scene = ReplayScene(city, depth_max_m=vmax, departments=_run_departments(load_run(run_dir)), lang=lang,
                        window_size=tuple(size), vertical_exaggeration=vertical_exaggeration, short_legend=True,
                        street_water=series is not None)
    frames = []
    try:
        for i, (s, d, x) in enumerate(zip(states, depths, times)):
            street = (series, frame_index(series, x)) if series is not None else None
            scene.update(s, depth=d, status=incident_status(run_dir, s), street=street)
            frames.append(scene.screenshot())
            if progress is not None:
                progress((i + 1) / len(states))
    finally:
        scene.close()
    return frames


def check_animation_path(path: str | Path) -> Path:
    """``path`` if its suffix is a supported animation format (and MP4 can be written here).

    Raises
    ------
    AnimationError
        Unknown suffix, or ``.mp4`` without imageio-ffmpeg.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ANIMATION_FORMATS:
        raise AnimationError(f"{path}: unknown animation type {suffix or '(no extension)'!r}; "
                             f"use {' or '.join(ANIMATION_FORMATS)}")
    if suffix == ".mp4":
        try:
            import imageio.v2  # noqa: F401
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise AnimationError(f"{path}: writing MP4 needs imageio and imageio-ffmpeg "
                                 "(pip install imageio imageio-ffmpeg); write a .gif instead") from None
    return path


def write_animation(frames: Sequence[np.ndarray], path: str | Path, *, fps: float = 4.0) -> Path:
    """Write frames as a looping GIF (Pillow) or an H.264 MP4 (imageio-ffmpeg), atomically.

    Parameters
    ----------
    frames : sequence of (H, W, 3) uint8 arrays
        Images of the same size.
    path : str or Path
        ``.gif`` or ``.mp4``; written under a temporary name and renamed into place.
    fps : float
        Frames per second (> 0).
    """
    path = check_animation_path(path)
    if not len(frames):
        raise AnimationError("no frames to write")
    if not (np.isfinite(fps) and fps > 0):
        raise AnimationError(f"fps={fps} must be > 0")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=path.suffix, dir=path.parent, prefix=f".{path.stem}.")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if path.suffix.lower() == ".gif":
            from PIL import Image

            rgb = [Image.fromarray(np.ascontiguousarray(np.asarray(f, dtype=np.uint8)[..., :3])) for f in frames]
            # One palette for all frames (no flicker), from the first, middle and last; octree keeps
            # the few pixels of the small glyphs in their own colours (median cut greys them).
            picks = sorted({0, len(rgb) // 2, len(rgb) - 1})
            w, h = rgb[0].size
            sample = Image.new("RGB", (w, h * len(picks)))
            for k, i in enumerate(picks):
                sample.paste(rgb[i], (0, h * k))
            palette = sample.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
            images = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in rgb]
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], loop=0,
                           duration=max(20, round(1000.0 / fps)), disposal=1, optimize=False)
        else:
            import imageio.v2 as iio

            h, w = np.asarray(frames[0]).shape[:2]
            h2, w2 = h - h % 2, w - w % 2  # H.264 with yuv420p needs even sizes
            with iio.get_writer(tmp, format="FFMPEG", mode="I", fps=float(fps), codec="libx264",
                                pixelformat="yuv420p", macro_block_size=1, quality=7) as wr:
                for f in frames:
                    wr.append_data(np.ascontiguousarray(np.asarray(f, dtype=np.uint8)[:h2, :w2, :3]))
        tmp.chmod(0o644)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def is_stored_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a run store manifest (it may still be incomplete or damaged)."""
    return (Path(run_dir) / "manifest.json").is_file()


def render_animation(city, run_dir: str | Path, out: str | Path, *, t_from_s: float | None = None,
                     t_to_s: float | None = None, step_s: float = 300.0, fps: float = 4.0, lang: str = "en",
                     size: tuple[int, int] = FRAME_SIZE, vertical_exaggeration: float = 1.0,
                     progress: Callable[[float], None] | None = None, view: str = "auto") -> Path:
    """Check the inputs, render the frames of a run between two times and write the animation.

    Everything is checked (run, times, file type, fps, frame count) before anything is
    rendered; the file appears only when complete.  See :func:`frame_times`,
    :func:`render_frames`, :func:`twin.viz.depth_map.render_depth_frames` and :func:`write_animation`.

    Parameters
    ----------
    city : CityTwin or None
        The run's city (needed for the 3D view; the 2D view's backdrop when given).
    run_dir : path
        A stored run, or a folder holding ``depth_series.tif`` (2D view only).
    view : {"auto", "2d", "3d"}
        2D street water map, 3D scene, or 2D when the folder has a depth series.
    """
    check_animation_path(out)
    if not (np.isfinite(fps) and fps > 0):
        raise AnimationError(f"fps={fps} must be > 0")
    series = run_depth_series(run_dir)
    view = resolve_view(view, series)
    stored = is_stored_run(run_dir)
    if view == "3d" and city is None:
        raise AnimationError("the 3D view needs the run's city")
    hz = None if stored or series is None else float(series.times_s[-1]) if len(series.times_s) else 0.0
    if view == "3d" and not stored:
        from twin.replay import horizon_s

        horizon_s(run_dir)  # raises NotARunError: the 3D view replays a stored run
    times = frame_times(run_dir, t_from_s, t_to_s, step_s, horizon_s=hz)
    check_frame_budget(len(times), size)
    if view == "2d":
        from twin.viz.depth_map import render_depth_frames

        frames = render_depth_frames(series, times, city=city, lang=lang, size=size,
                                     title=getattr(city, "name", "") or Path(run_dir).name, progress=progress)
    else:
        frames = render_frames(city, run_dir, times, lang=lang, size=size,
                               vertical_exaggeration=vertical_exaggeration, progress=progress, series=series)
    return write_animation(frames, out, fps=fps)


_CLOCK_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(h|hr|min|m|s|sec)?\s*$", re.IGNORECASE)
_CLOCK_UNITS = {None: 3600.0, "h": 3600.0, "hr": 3600.0, "min": 60.0, "m": 60.0, "s": 1.0, "sec": 1.0}


def parse_clock_s(text: str) -> float:
    """A time of the run in s since midnight of day 0: ``HH:MM[:SS]``, ``2h``, ``90min``, ``3600s`` or hours.

    Examples
    --------
    >>> parse_clock_s("01:30"), parse_clock_s("2h"), parse_clock_s("90min"), parse_clock_s("0"), parse_clock_s("1.5")
    (5400.0, 7200.0, 5400.0, 0.0, 5400.0)
    """
    s = str(text).strip()
    if ":" in s:
        parts = s.split(":")
        if 2 <= len(parts) <= 3 and all(p.isdigit() for p in parts):
            h, m, sec = (int(p) for p in (parts + ["0"])[:3])
            if m < 60 and sec < 60:
                return float(h * 3600 + m * 60 + sec)
    m = _CLOCK_RE.match(s)
    if not m:
        raise AnimationError(f"time '{text}' not understood; expected HH:MM, 2h, 90min, 3600s or hours")
    return float(m.group(1)) * _CLOCK_UNITS[m.group(2).lower() if m.group(2) else None]
