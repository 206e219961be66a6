"""Pictures of the street water (#11 item 7): :mod:`twin.viz.depth_map`, the 3D street water, `twin render`
on a depth series, and the Flood event and Replay pages with the depth raster.

Two kinds of depth series are used: a hand-made one on the tiny city's grid
whose wet cells and depths are known (to assert colours, classes, extent and
heights), and real ones from coupled runs (the tiny city's flood event, and
the tiny city's 50-year storm written by :func:`write_city_flood`).
"""

from __future__ import annotations

import base64
import io
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_tiny_city
from PIL import Image, ImageSequence

from hydraulics.depth_series import DepthSeries, read_depth_series
from twin.viz import depth_map as dm

# Known cells of the hand-made series' last frame: (row, col) -> depth, m.
KNOWN = {(2, 3): 0.03, (2, 4): 0.05, (2, 5): 0.10, (3, 3): 0.15, (3, 4): 0.29, (3, 5): 0.30,
         (4, 3): 0.49, (4, 4): 0.50, (4, 5): 1.20}
EXPECTED_CLASS = {0.03: -1, 0.05: 0, 0.10: 0, 0.15: 1, 0.29: 1, 0.30: 2, 0.49: 2, 0.50: 3, 1.20: 3}
WALL = (2, 6)  # a building cell: outside the street domain


@pytest.fixture(scope="module")
def tiny():
    return make_tiny_city()


def _hand_series(city, *, patch: bool = False) -> DepthSeries:
    """Three frames on the city's DEM grid: dry at 0 s, the known cells at 600 s and 1200 s.

    With ``patch`` a 10 x 20 cell pond of 0.4 m is added (big enough to see in 3D).
    """
    rows, cols = city.dem.shape
    domain = np.ones((rows, cols), bool)
    domain[WALL] = False
    depth = np.zeros((3, rows, cols), np.float32)
    for (r, c), d in KNOWN.items():
        depth[1:, r, c] = d
    if patch:
        depth[2, 10:20, 14:34] = 0.4
    return DepthSeries(np.array([0.0, 600.0, 1200.0]), depth, city.dem.transform, city.crs, domain)


@pytest.fixture(scope="module")
def hand(tiny):
    return _hand_series(tiny)


@pytest.fixture(scope="module")
def city_flood(tiny, tmp_path_factory):
    """(tiny city, its GeoPackage, folder written by write_city_flood of a real coupled 50-year storm, its series)."""
    from gisdata.city import save_city
    from hydraulics.city_flood import run_city_flood, write_city_flood
    from hydraulics.rainfall import chicago_storm

    root = tmp_path_factory.mktemp("cityflood")
    gpkg = save_city(tiny, root / "tiny.gpkg")
    result = run_city_flood(tiny, chicago_storm("beijing", 50, 60), cell_size_m=5)
    out = write_city_flood(result, root / "flood")
    return tiny, gpkg, out, read_depth_series(out)


@pytest.fixture(scope="module")
def tiny_event(tiny):
    """A real flood event on the tiny city (coupled SWMM + 2D streets; five manholes spill)."""
    from twin import flood_event as fe

    return fe.run_flood_event(tiny, fe.StormSpec("chicago", return_period_yr=50, duration_min=60).build(),
                              drain_time_h=1.0)


def _png(layer) -> np.ndarray:
    url = str(layer.image.value if hasattr(layer.image, "value") else layer.image)
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGBA"))


# ----------------------------------------------------------------------------- the scale


def test_classes_follow_the_closure_thresholds():
    from hydraulics.street_flood import CLOSED_TO_ALL_M, CLOSED_TO_CARS_M

    assert dm.DEPTH_CLASS_EDGES_M == (0.05, CLOSED_TO_CARS_M, CLOSED_TO_ALL_M, 0.50) == (0.05, 0.15, 0.30, 0.50)
    got = dm.classify_depth(np.array(list(EXPECTED_CLASS), float))
    assert got.tolist() == list(EXPECTED_CLASS.values())
    assert dm.classify_depth([np.nan, -1.0, np.inf]).tolist() == [-1, -1, -1]


def test_rgba_is_the_fixed_colours_and_transparent_where_dry(hand):
    img = dm.depth_class_rgba(hand.depth_m[2], domain=hand.domain)
    assert img.shape == (*hand.shape, 4) and img.dtype == np.uint8
    for (r, c), d in KNOWN.items():
        k = EXPECTED_CLASS[d]
        if k < 0:
            assert img[r, c, 3] == 0
        else:
            assert img[r, c, :3].tolist() == dm.DEPTH_CLASS_RGB[k] and img[r, c, 3] == round(255 * dm.DEPTH_ALPHA)
    wet = np.zeros(hand.shape, bool)
    wet[tuple(np.array([rc for rc, d in KNOWN.items() if d >= 0.05]).T)] = True
    assert (img[..., 3] > 0).sum() == wet.sum() and (img[~wet, 3] == 0).all()
    # a wall cell stays transparent even if a value were there
    deep = hand.depth_m[2].copy()
    deep[WALL] = 2.0
    assert dm.depth_class_rgba(deep, domain=hand.domain)[WALL][3] == 0
    # the scale is fixed: the same depth has the same colour whatever else is in the frame
    assert (dm.depth_class_rgba(hand.depth_m[2] * 0 + 0.2)[0, 0] == img[3, 3]).all()


def test_frame_index_and_areas(hand):
    assert dm.frame_index(hand, -1.0) is None
    assert dm.frame_index(hand, 0.0) == 0 and dm.frame_index(hand, 899.0) == 1 and dm.frame_index(hand, 1e6) == 2
    areas = dm.class_areas_m2(hand, 2)
    cell = hand.cell_size_m ** 2
    assert areas.tolist() == [2 * cell, 2 * cell, 2 * cell, 2 * cell]
    assert dm.class_areas_m2(hand, 0).sum() == 0
    assert np.allclose(dm.class_areas_m2(hand, None), areas)  # maximum over the run
    with pytest.raises(IndexError, match="frame 3"):
        dm.depth_frame_raster(hand, 3)


# ----------------------------------------------------------------------------- the map layer and legend


def test_bitmap_layer_covers_the_grid_in_lon_lat_with_sharp_cells(hand):
    from pyproj import Transformer

    layer = dm.depth_frame_layer(hand, 2)
    assert layer.type == "BitmapLayer" and layer.id == dm.LAYER_ID
    xmin, ymin, xmax, ymax = hand.bounds()
    tr = Transformer.from_crs(hand.crs, "EPSG:4326", always_xy=True)
    want = [tr.transform(x, y) for x, y in ((xmin, ymin), (xmin, ymax), (xmax, ymax), (xmax, ymin))]
    assert np.allclose(np.array(layer.bounds), np.array(want), atol=1e-9)
    img = _png(layer)
    rows, cols = hand.shape
    rep = img.shape[0] // rows
    assert rep >= 2 and img.shape[:2] == (rows * rep, cols * rep)  # cells repeated: class edges stay sharp
    for (r, c), d in KNOWN.items():
        px = img[r * rep + rep // 2, c * rep + rep // 2]
        k = EXPECTED_CLASS[d]
        assert (px[3] == 0) if k < 0 else (px[:3].tolist() == dm.DEPTH_CLASS_RGB[k]), (r, c, d)
    assert _png(dm.depth_frame_layer(hand, 0))[..., 3].max() == 0  # a dry frame is all transparent


def test_legend_in_both_languages(hand):
    en = dm.depth_legend_html("en", series=hand, k=2)
    for colour in dm.DEPTH_CLASS_COLORS:
        assert colour in en
    assert "0.15–0.30 m: closed to cars" in en and "≥ 0.50 m" in en and "Street water depth at 00:20" in en
    for area in dm.class_areas_m2(hand, 2):
        assert f"({area / 1e4:.2f} ha)" in en
    zh = dm.depth_legend_html("zh", series=hand, maximum=True)
    assert "禁止机动车通行" in zh and "全过程最大值" in zh and "公顷" in zh
    plain = dm.depth_legend_html("en")
    assert "Street water depth" in plain and "not drawn" in plain


# ----------------------------------------------------------------------------- 3D


def test_street_water_mesh_sits_on_the_ground_by_class(tiny, hand):
    from twin.viz import geometry as geo
    from twin.viz.scene import build_street_water

    xmin, ymin, _, _ = tiny.extent
    frame = geo.Frame(xmin, ymin, 2.0)
    mesh = build_street_water(hand, 2, tiny.dem, frame, lift_m=0.5)
    wet = {rc: d for rc, d in KNOWN.items() if d >= 0.05}
    assert mesh.n_cells == len(wet) and mesh.n_points == 4 * len(wet)
    assert sorted(mesh.cell_data["depth_class"].tolist()) == sorted(EXPECTED_CLASS[d] for d in wet.values())
    tr = hand.transform
    for i, ((r, c), d) in enumerate(sorted(wet.items())):
        x, y = tr.c + (c + 0.5) * tr.a, tr.f + (r + 0.5) * tr.e
        j = int(np.argmin(np.abs(mesh.cell_data["depth_m"] - d)))
        pts = mesh.get_cell(j).points
        assert np.allclose(pts[:, :2].mean(axis=0), [x - xmin, y - ymin])
        ground = float(tiny.dem.sample(np.array([x]), np.array([y]))[0])
        assert np.allclose(pts[:, 2], 2.0 * (ground + d) + 0.5, atol=1e-4)
    assert build_street_water(hand, 0, tiny.dem, frame).n_cells == 0


def _n_cells(actor) -> int:
    mapper = actor.GetMapper()
    mapper.Update()  # a mesh added with render=False is not through the pipeline yet
    return int(mapper.GetInput().GetNumberOfCells())


def _class_pixels(img: np.ndarray, k: int, tol: int = 40) -> int:
    return int((np.abs(img[..., :3].astype(int) - dm.DEPTH_CLASS_RGB[k]).sum(axis=-1) < tol).sum())


def test_scene_draws_the_street_water_off_screen(tiny, tmp_path):
    from twin.viz.scene import build_city_scene, write_scene_png

    series = _hand_series(tiny, patch=True)
    pl = build_city_scene(tiny, depth_series=series, depth_frame=2, window_size=(800, 500))
    assert "street_water" in pl.actors and "water" not in pl.actors
    info = pl._citytwin_info
    assert [k for k, _, _ in info.legend[-4:]] == [f"depth.class.{c}" for c in dm.DEPTH_CLASS_KEYS]
    assert info.ranges["depth_m"][1] == pytest.approx(1.2)
    wet_png = write_scene_png(pl, tmp_path / "wet.png", size=(800, 500))
    dry_png = write_scene_png(build_city_scene(tiny, depth_series=series, depth_frame=0, window_size=(800, 500)),
                              tmp_path / "dry.png", size=(800, 500))
    wet, dry = (np.asarray(Image.open(p).convert("RGB")) for p in (wet_png, dry_png))
    # the 0.4 m pond (class 2, dark blue) shows; a dry frame has none of it
    assert _class_pixels(wet, 2) > 500 and _class_pixels(dry, 2) < 20
    # the fill-and-spill raster gives way to the series when both are given
    from gisdata.raster import Raster

    flat = Raster(np.full(tiny.dem.shape, 0.3), tiny.dem.transform, tiny.crs)
    pl = build_city_scene(tiny, flood_depth=flat, depth_series=series, depth_frame=0)
    assert "water" not in pl.actors and "street_water" not in pl.actors
    pl.close()


def test_flood_scene_of_a_real_city_run(city_flood, tmp_path):
    from twin.viz.scene import build_city_scene, write_scene_png

    city, _, _, series = city_flood
    k = int(np.argmax([(f >= 0.05).sum() for f in series.depth_m]))
    assert (series.depth_m[k] >= 0.05).sum() > 50
    pl = build_city_scene(city, depth_series=series, depth_frame=k, window_size=(1000, 700))
    n = _n_cells(pl.actors["street_water"])
    assert n == int(((series.depth_m[k] >= 0.05) & series.domain).sum())
    out = write_scene_png(pl, tmp_path / "city_flood.png", size=(1000, 700))
    assert _class_pixels(np.asarray(Image.open(out).convert("RGB")), 0) > 30


# ----------------------------------------------------------------------------- flood event (map, legend, page)


def test_flood_deck_draws_the_event_frames_in_classes(tiny, tiny_event):
    from twin.viz import flood_layers as fl

    series = tiny_event.depths
    assert series is not None and len(series.times_s) > 3
    deck = fl.flood_deck(tiny, tiny_event)
    ids = [layer.id for layer in deck.layers]
    assert ids.index("flood_depth") > ids.index("road_status")  # water over the roads: it shows at city zoom
    top = _png(deck.layers[ids.index("flood_depth")])
    k = int(np.argmax([(f >= 0.05).sum() for f in series.depth_m]))
    at_k = fl.with_depth_frame(deck, series, k)
    assert [layer.id for layer in at_k.layers] == ids and at_k.layers[ids.index("flood_depth")] is not \
        deck.layers[ids.index("flood_depth")]
    again = fl.flood_deck(tiny, tiny_event).layers[ids.index("flood_depth")]
    assert deck.layers[ids.index("flood_depth")].image == again.image  # unchanged
    frame_png = _png(at_k.layers[ids.index("flood_depth")])
    n_wet = int(((series.depth_m[k] >= 0.05) & series.domain).sum())
    rep = frame_png.shape[0] // series.shape[0]
    assert (frame_png[..., 3] > 0).sum() == n_wet * rep * rep > 0
    assert (top[..., 3] > 0).sum() >= (frame_png[..., 3] > 0).sum()  # the maximum covers every frame
    legend = fl.flood_legend_html(tiny_event, lang="en", depth_frame=k)
    assert "Street water depth at" in legend and "Road" in legend and dm.DEPTH_CLASS_COLORS[0] in legend


def test_flood_event_page_has_a_time_slider_for_the_street_water(tiny, tmp_path, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from gisdata.city import save_city
    from twin.i18n import t

    gpkg = save_city(tiny, tmp_path / "tiny.gpkg")
    monkeypatch.setenv("CITYTWIN_APP_CITY", str(gpkg))
    app = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=180).run()
    app.sidebar.radio(key="page__en").set_value("flood_event").run()
    app.select_slider(key="flood_period").set_value(50).run()
    app.select_slider(key="flood_duration").set_value(60).run()
    app.select_slider(key="flood_drain").set_value(1.0).run()
    app.button(key="flood_run").click().run(timeout=180)
    assert not app.exception, [e.value for e in app.exception]
    slider = app.select_slider(key="flood_depth_frame")
    assert slider.value == "max" and slider.label == t("flood.depth.time", "en")
    assert any(t("depth.legend.title_max", "en") in m.value for m in app.markdown)

    series = next(iter(app.session_state["flood_events"].values())).depths
    k = int(np.argmax([(f >= 0.05).sum() for f in series.depth_m]))
    app.select_slider(key="flood_depth_frame").set_value(k).run()
    assert not app.exception, [e.value for e in app.exception]
    when = dm.hhmm(series.times_s[k])
    assert any(t("depth.legend.title_at", "en", hhmm=when) in m.value for m in app.markdown)
    charts = app.get("deck_gl_json_chart")
    assert charts and "BitmapLayer" in charts[0].proto.json
    assert any(t("flood.depth.hint", "en")[:40] in c.value for c in app.caption)

    app.sidebar.radio(key="lang").set_value("zh").run()
    assert not app.exception, [e.value for e in app.exception]
    assert any(t("depth.legend.title_at", "zh", hhmm=when) in m.value for m in app.markdown)


# ----------------------------------------------------------------------------- twin render


def _gif(path) -> list[np.ndarray]:
    with Image.open(path) as im:
        return [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]


def test_render_frames_show_the_water_appearing(city_flood, tmp_path):
    city, _, _, series = city_flood
    k = int(np.argmax([(f >= 0.05).sum() for f in series.depth_m]))
    frames = dm.render_depth_frames(series, [0.0, float(series.times_s[k])], city=city, size=(640, 400),
                                    title=city.name)
    assert [f.shape for f in frames] == [(400, 640, 3)] * 2
    assert _class_pixels(frames[0], 0, tol=30) < _class_pixels(frames[1], 0, tol=30)
    Image.fromarray(frames[1]).save(tmp_path / "frame.png")


def test_cli_renders_a_depth_series_folder(city_flood, tmp_path):
    from twin.cli import cli

    _, gpkg, folder, series = city_flood
    out = tmp_path / "flood.gif"
    res = CliRunner().invoke(cli, ["render", str(folder), "--city", str(gpkg), "--step", "30min", "--size", "480x300",
                                   "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "2D street water" in res.output
    frames = _gif(out)
    hz = float(series.times_s[-1])
    assert len(frames) == int(hz // 1800) + 1 and frames[0].shape == (300, 480, 3)
    assert len({f.tobytes() for f in frames}) > 2  # the time stamp and the water change
    # without --city: no backdrop, the same frames count
    res = CliRunner().invoke(cli, ["render", str(folder), "--to", "1h", "--step", "30min", "--size", "320x200",
                                   "--out", str(tmp_path / "bare.gif"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert len(_gif(tmp_path / "bare.gif")) == 3


@pytest.mark.parametrize("args, message", [
    (["--step", "1s"], "at most 1,000"),
    (["--size", "4000x4000", "--step", "5min"], "GiB"),
    (["--view", "3d"], "no manifest.json"),
    (["--to", "99h"], "outside the run"),
])
def test_cli_bad_input_on_a_depth_series_folder(city_flood, tmp_path, args, message):
    from twin.cli import cli

    _, _, folder, _ = city_flood
    out = tmp_path / "x.gif"
    res = CliRunner().invoke(cli, ["render", str(folder), "--out", str(out), "--no-progress", *args])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.strip().splitlines() if ln]
    assert len(lines) == 1 and message in lines[0], res.output
    assert not out.exists()


def test_a_broken_depth_series_is_one_line(tmp_path):
    from twin.cli import cli

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "depth_series.tif").write_bytes(b"not a tiff")
    res = CliRunner().invoke(cli, ["render", str(tmp_path / "run"), "--out", str(tmp_path / "x.gif")])
    assert res.exit_code == 2 and "depth_series.tif" in res.output and len(res.output.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- a stored run with a depth series


@pytest.fixture(scope="module")
def stored_run(tiny, tmp_path_factory):
    """A stored coupled run of the tiny city (3 h, storm from 00:30) with a hand-made depth series in its folder."""
    from gisdata.city import save_city
    from hydraulics.rainfall import chicago_storm
    from twin.coupler import run_coupled
    from twin.runstore import write_coupled_run

    root = tmp_path_factory.mktemp("stored")
    gpkg = save_city(tiny, root / "tiny.gpkg")

    def go(event_sink, progress):
        return run_coupled(tiny, hours=3, strategy="priority", seed=1, rain=chicago_storm("beijing", 50, 60),
                           start_s=1800.0, event_sink=event_sink, progress=progress, n_citizens=50, n_vendors=2)

    out = write_coupled_run(root / "storm1", go, params={"city": str(gpkg), "hours": 3, "strategy": "priority",
                                                         "seed": 1, "storm": {"return_period_yr": 50}}, city=tiny)
    with_series = root / "with_series"
    shutil.copytree(out, with_series)
    series = _hand_series(tiny, patch=True)
    series = DepthSeries(series.times_s + 3000.0, series.depth_m, series.transform, series.crs, series.domain)
    series.write(with_series / "depth_series.tif")
    return with_series, series


def test_render_of_a_stored_run_with_a_series_2d_and_3d(tiny, stored_run, tmp_path):
    from twin.viz.animation import build_replay_scene, render_animation

    run, _ = stored_run
    out = render_animation(tiny, run, tmp_path / "a.gif", t_from_s=3000.0, t_to_s=4800.0, step_s=600.0,
                           size=(320, 200))
    frames = _gif(out)
    assert len(frames) == 4 and frames[0].shape == (200, 320, 3)
    assert _class_pixels(frames[0], 2) < _class_pixels(frames[2], 2)  # the pond appears at 3000 + 1200 s
    out3 = render_animation(tiny, run, tmp_path / "b.gif", t_from_s=4200.0, t_to_s=4800.0, step_s=600.0,
                            size=(320, 200), view="3d")
    assert len(_gif(out3)) == 2
    pl = build_replay_scene(tiny, run, 4300.0, window_size=(400, 300))
    try:
        assert "street_water" in pl.actors and _n_cells(pl.actors["street_water"]) >= 200
        assert any(k == "depth.class.closed" for k, _, _ in pl._citytwin_info.legend)
    finally:
        pl.close()


def test_replay_page_shows_the_depth_raster_at_the_slider_time(stored_run, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from twin.i18n import t

    run, _ = stored_run
    monkeypatch.setenv("CITYTWIN_APP_CITY", str(Path(run).parent / "tiny.gpkg"))
    monkeypatch.setenv("CITYTWIN_RUNS_DIR", str(Path(run).parent))
    app = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=180).run()
    app.sidebar.radio(key="page__en").set_value("replay").run()
    app.selectbox(key="replay_run").set_value(Path(run)).run()
    app.slider(key="replay_minutes").set_value(30).run()  # before the series starts (50 min)
    assert not app.exception, [e.value for e in app.exception]
    assert any(t("replay.depth.none_yet", "en", hhmm="00:50") in c.value for c in app.caption)
    assert "BitmapLayer" not in app.get("deck_gl_json_chart")[0].proto.json
    app.slider(key="replay_minutes").set_value(75).run()  # frame of 01:10
    assert not app.exception, [e.value for e in app.exception]
    chart = app.get("deck_gl_json_chart")[0].proto.json
    assert "BitmapLayer" in chart and chart.index("BitmapLayer") < chart.index("ScatterplotLayer")
    assert any(t("depth.legend.title_at", "en", hhmm="01:10") in m.value for m in app.markdown)
    assert any(t("replay.depth.caption", "en", frame="01:10")[:60] in c.value for c in app.caption)
