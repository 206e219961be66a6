"""A replay state on a 2D map, in the one palette, and the frames of a replay for the play/pause player.

* :func:`replay_deck` - roads by closure state, street water (a frame of the run's depth
  series, in the fixed depth classes), wet manholes, open incidents by status, vendors and
  crews by department, on an offline deck with formatted tooltips and a legend
  (:func:`twin.viz.legend.deck_legend_html`).
* :func:`replay_frame_decks` - the frame times of a run and one deck per time.
* :func:`replay_player_html` - those frames as pictures in one offline HTML page with a
  play/pause button, a time slider and a speed choice (:mod:`twin.viz.player`).

Everything comes from :func:`twin.replay.state_at`; nothing here simulates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from twin.i18n import t
from twin.viz import palette as pal

MAX_PLAYER_FRAMES = 120
"""Most frames of one play/pause player (each is a picture inlined in the page)."""


def _view(city, width_px: float = 450):
    import pydeck as pdk
    from pyproj import Transformer

    xmin, ymin, xmax, ymax = city.extent
    lon, lat = Transformer.from_crs(city.crs, "EPSG:4326", always_xy=True).transform((xmin + xmax) / 2,
                                                                                       (ymin + ymax) / 2)
    span = max(xmax - xmin, ymax - ymin, 50.0)
    zoom = float(np.log2(78271.52 * np.cos(np.radians(lat)) * width_px / span))
    return pdk.ViewState(longitude=lon, latitude=lat, zoom=round(min(max(zoom, 1), 20), 2), pitch=0, bearing=0)


def replay_deck(state, city, *, lang: str = "en", height_px: int = 560, status: pd.Series | None = None,
                street=None, terrain: bool = False):
    """A pydeck map of a replay state with no basemap at all (works offline).

    Parameters
    ----------
    state : twin.replay.ReplayState
        The run at one time.
    city : CityTwin
        The run's city.
    lang : str
        ``"en"`` or ``"zh"`` (tooltips; the legend comes from :func:`twin.viz.legend.deck_legend_html`).
    height_px : int
        Map height, pixels.
    status : Series, optional
        Status of each open incident (:func:`twin.viz.animation.incident_status`); default all "reported".
    street : (DepthSeries, int or None), optional
        The run's street water and the frame to draw (None: nothing wet yet), over the roads and under
        the points.
    terrain : bool
        Draw the city's hillshade at the bottom.

    Returns
    -------
    pydeck.Deck
        Layers ``terrain``, ``road_status``, ``street_depth``, ``water``, ``incidents``, ``vendors``,
        ``crews`` (those that apply), one tooltip template (:func:`twin.viz.map2d.deck_tooltip`).

    Examples
    --------
    >>> deck = replay_deck(state_at(run, 3600), city)      # doctest: +SKIP
    >>> st.pydeck_chart(deck); st.html(deck_legend_html(deck, "en"))   # doctest: +SKIP
    """
    import pydeck as pdk
    from pyproj import Transformer

    from twin.viz.flood_layers import road_status_layer
    from twin.viz.map2d import _terrain_layer, offline_deck, tooltip_columns

    to_ll = Transformer.from_crs(city.crs, "EPSG:4326", always_xy=True)

    def ll(df: pd.DataFrame) -> pd.DataFrame:
        out = df.copy()
        if len(out):
            lon, lat = to_ll.transform(out["x"].to_numpy(float), out["y"].to_numpy(float))
            out["lon"], out["lat"] = np.round(lon, 7), np.round(lat, 7)
        else:
            out["lon"], out["lat"] = [], []
        return out

    layers = []
    if terrain:
        layers.append(_terrain_layer(city))
    rc = state.roads_closed.assign(depth_m=np.nan)
    layers.append(road_status_layer(city.roads, rc, lang=lang))
    if street is not None:  # over the roads, so the water on a street shows at city zoom
        series, k = street
        if k is not None:
            from twin.viz.depth_map import depth_frame_layer

            layers.append(depth_frame_layer(series, k))

    fn = ll(state.flood_nodes) if len(state.flood_nodes) else ll(pd.DataFrame(columns=["x", "y"]))
    if len(fn):
        fn["radius"] = 2.0 + 30.0 * np.clip(fn["surface_depth_m"].to_numpy(float), 0, 0.5)
        fn = fn.assign(**tooltip_columns(
            (f"{t('replay.map.manhole', lang)} {n}", {t("replay.map.pool_depth", lang): f"{d:.2f} m",
                                                       t("replay.map.surface_volume", lang): f"{v:.1f} m³"})
            for n, d, v in zip(fn["node_id"], fn["surface_depth_m"], fn["surface_volume_m3"])))
    layers.append(pdk.Layer("ScatterplotLayer", id="water", data=fn, get_position=["lon", "lat"],
                            get_radius="radius" if len(fn) else 2, radius_units="'meters'", radius_min_pixels=2,
                            radius_max_pixels=10, get_fill_color=pal.rgba(pal.SPILL, 150), stroked=True,
                            get_line_color=pal.rgba(pal.CREW_RING, 200), line_width_min_pixels=1, pickable=True))

    inc = ll(state.incidents.reset_index())
    if len(inc):
        st_ = (status.reindex(inc["incident_id"]).fillna("reported").to_numpy() if status is not None
               else np.full(len(inc), "reported"))
        inc["color"] = [pal.rgb(pal.INCIDENT.get(str(s), pal.INCIDENT["reported"])) for s in st_]
        inc = inc.assign(**tooltip_columns(
            (f"{t('replay.map.incident', lang)} {i}", {t("replay.map.category", lang): t("category." + str(c), lang),
                                                        t("replay.map.status", lang):
                                                            t(f"map.incident_status.{s}", lang),
                                                        t("replay.map.reports", lang): r})
            for i, c, s, r in zip(inc["incident_id"], inc["category"], st_, inc["reports"])))
    layers.append(pdk.Layer("ScatterplotLayer", id="incidents", data=inc, get_position=["lon", "lat"], get_radius=6,
                            radius_units="'meters'", radius_min_pixels=3, radius_max_pixels=8,
                            get_fill_color="color" if len(inc) else pal.rgb(pal.INCIDENT["reported"]), stroked=True,
                            get_line_color=pal.rgb(pal.INCIDENT_RING), line_width_min_pixels=1, pickable=True))
    ven = ll(state.vendors)
    if len(ven):
        ven = ven.assign(**tooltip_columns((f"{t('replay.map.vendor', lang)} {v}", {}) for v in ven["vendor_id"]))
    layers.append(pdk.Layer("ScatterplotLayer", id="vendors", data=ven, get_position=["lon", "lat"], get_radius=4,
                            radius_units="'meters'", radius_min_pixels=2, radius_max_pixels=6,
                            get_fill_color=pal.rgb(pal.VENDOR), stroked=True, get_line_color=pal.rgb(pal.CREW_RING),
                            line_width_min_pixels=1, pickable=True))
    cr = ll(state.crews.reset_index())
    if len(cr):
        cr["color"] = [pal.rgb(pal.department_colour(d)) for d in cr["department"]]
        cr = cr.assign(**tooltip_columns(
            (f"{t('replay.map.crew', lang)} {c}", {t("map.department", lang): t("department." + str(d), lang),
                                                    t("replay.map.status", lang): t("replay.status." + str(s), lang)})
            for c, d, s in zip(cr["crew_id"], cr["department"], cr["status"])))
    layers.append(pdk.Layer("ScatterplotLayer", id="crews", data=cr, get_position=["lon", "lat"], get_radius=9,
                            radius_units="'meters'", radius_min_pixels=4, radius_max_pixels=9,
                            get_fill_color="color" if len(cr) else pal.rgb(pal.OTHER_DEPARTMENT), stroked=True,
                            get_line_color=pal.rgb(pal.CREW_RING), line_width_min_pixels=2, pickable=True))
    return offline_deck(layers, _view(city), height_px=height_px)


def replay_frame_decks(city, run_dir: str | Path, times: Sequence[float] | None = None, *, step_s: float = 600.0,
                       lang: str = "en", terrain: bool = True,
                       progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, list]:
    """The times of a replay animation and one :func:`replay_deck` per time.

    Parameters
    ----------
    city : CityTwin
    run_dir : path
        A stored run (:mod:`twin.runstore`).
    times : sequence of float, optional
        Frame times, s; default every ``step_s`` over the run (:func:`twin.viz.animation.frame_times`),
        at most :data:`MAX_PLAYER_FRAMES`.
    lang : str
    terrain : bool
        Hillshade under each frame.
    progress : callable, optional
        Called with the fraction done after each frame.

    Returns
    -------
    (ndarray, list of pydeck.Deck)
        Frame times, s, and their maps (incidents by status; the run's street water when it has a depth series).
    """
    from twin.replay import state_at
    from twin.viz.animation import frame_times, incident_status, run_depth_series
    from twin.viz.depth_map import frame_index

    if times is None:
        times = frame_times(run_dir, step_s=step_s, max_frames=MAX_PLAYER_FRAMES)
    times = np.asarray([float(x) for x in times], dtype=float)
    if not 0 < len(times) <= MAX_PLAYER_FRAMES:
        from twin.viz.animation import AnimationError

        raise AnimationError(f"{len(times)} frames; a player holds 1 to {MAX_PLAYER_FRAMES} (use a longer step)")
    series = run_depth_series(run_dir)
    decks = []
    for i, x in enumerate(times):
        state = state_at(run_dir, x)
        street = (series, frame_index(series, x)) if series is not None else None
        decks.append(replay_deck(state, city, lang=lang, status=incident_status(run_dir, state), street=street,
                                 terrain=terrain))
        if progress is not None:
            progress((i + 1) / len(times))
    return times, decks


def replay_player_html(city, run_dir: str | Path, times: Sequence[float] | None = None, *, step_s: float = 600.0,
                       lang: str = "en", size_px: tuple[int, int] = (900, 640), fps: float = 2.0,
                       progress: Callable[[float], None] | None = None) -> str:
    """A play/pause animation of a stored run as one offline HTML page (pictures of :func:`replay_deck`).

    Each frame is the replay map at one time rendered as a picture (:func:`twin.viz.export.deck_png_bytes`,
    legend included); the page plays them with a play/pause button, a time slider and a speed choice
    (:func:`twin.viz.player.player_html`).  It requests nothing from the network.

    Examples
    --------
    >>> html = replay_player_html(city, run_dir, step_s=900, lang="zh")   # doctest: +SKIP
    >>> st.iframe(html, height=720)                                        # doctest: +SKIP
    """
    from twin.viz.depth_map import hhmm
    from twin.viz.export import deck_png_bytes
    from twin.viz.player import player_html

    def part(lo, hi):
        return None if progress is None else (lambda f: progress(lo + (hi - lo) * f))

    times, decks = replay_frame_decks(city, run_dir, times, step_s=step_s, lang=lang, progress=part(0.0, 0.3))
    images = []
    for i, (x, deck) in enumerate(zip(times, decks)):
        images.append(deck_png_bytes(deck, lang=lang, size_px=size_px,
                                     title=t("render.title", lang, name=city.name, hhmm=hhmm(x))))
        if progress is not None:
            progress(0.3 + 0.7 * (i + 1) / len(times))
    return player_html(images, [hhmm(x) for x in times], lang=lang, fps=fps)
