"""`twin render` and :mod:`twin.viz.animation`: 3D frames of a stored run as a GIF (or MP4), and bad input.

One short storm run on the tiny city is stored once for the module (the storm
starts at 00:30, so 00:00 is dry and 01:00 is wet).  Frames are rendered small
(480 x 300) to keep the tests quick.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_tiny_city
from PIL import Image, ImageSequence

from gisdata.city import save_city
from hydraulics.rainfall import chicago_storm
from twin.cli import cli
from twin.coupler import run_coupled
from twin.replay import state_at
from twin.runstore import write_coupled_run
from twin.viz.animation import (
    INCIDENT_STATUSES,
    AnimationError,
    check_animation_path,
    frame_times,
    incident_status,
    parse_clock_s,
    render_animation,
    replay_scene_html,
    surface_depth,
    write_animation,
)

SIZE = (480, 300)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(tiny city, stored 3 h run with a 50-year storm from 00:30; manholes overflow from about 00:55)."""
    root = tmp_path_factory.mktemp("render")
    city = make_tiny_city()
    gpkg = save_city(city, root / "tiny.gpkg")

    def go(event_sink, progress):
        return run_coupled(city, hours=3, strategy="priority", seed=1, rain=chicago_storm("beijing", 50, 60),
                           start_s=1800.0, event_sink=event_sink, progress=progress, n_citizens=100, n_vendors=3)

    out = write_coupled_run(root / "storm1", go, params={"city": str(gpkg), "hours": 3, "strategy": "priority",
                                                         "seed": 1, "storm": {"return_period_yr": 50}}, city=city)
    return city, out


def _gif_frames(path) -> list[np.ndarray]:
    with Image.open(path) as im:
        return [np.asarray(f.convert("RGB")).astype(int) for f in ImageSequence.Iterator(im)]


def _water_pixels(img: np.ndarray) -> int:
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return int(((b - r > 90) & (g > 100) & (b > 150)).sum())  # water blues; not the pale sky nor the blue crews


def test_gif_has_distinct_non_blank_frames_with_water_appearing(run, tmp_path):
    city, run_dir = run
    progress = []
    out = render_animation(city, run_dir, tmp_path / "flood.gif", t_from_s=0.0, t_to_s=5400.0, step_s=3600.0,
                           fps=2, size=SIZE, progress=progress.append)
    assert out.exists() and not list(tmp_path.glob(".flood*"))  # written in place, no temporary left
    frames = _gif_frames(out)
    assert len(frames) == 3  # 00:00 (dry), 01:00 (flooding), 01:30 (the last time: --to)
    assert progress[-1] == pytest.approx(1.0) and len(progress) == 3
    for f in frames:
        assert f.shape == (SIZE[1], SIZE[0], 3)
        assert f.std() > 20 and len(np.unique(f.reshape(-1, 3), axis=0)) > 50  # a drawn scene, not a blank
    body = [f[int(0.12 * SIZE[1]):] for f in frames]  # below the time label: the scene itself changes
    assert all(np.abs(body[i + 1] - body[i]).sum() > 0 for i in range(len(body) - 1))
    assert surface_depth(city, state_at(run_dir, 0.0)) is None
    wet = surface_depth(city, state_at(run_dir, 3600.0))
    assert wet is not None and wet.values.max() > 0.02
    assert _water_pixels(frames[1]) > _water_pixels(frames[0]) + 5  # blue water where it was dry


def test_mp4_or_a_clear_error(run, tmp_path, monkeypatch):
    frames = [np.full((SIZE[1], SIZE[0], 3), v, dtype=np.uint8) for v in (0, 120, 240)]
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        with pytest.raises(AnimationError, match="imageio-ffmpeg"):
            write_animation(frames, tmp_path / "a.mp4")
    else:
        out = write_animation(frames, tmp_path / "a.mp4", fps=2)
        assert out.stat().st_size > 1000
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if it were not installed
    with pytest.raises(AnimationError, match="imageio-ffmpeg.*gif"):
        check_animation_path(tmp_path / "b.mp4")


def test_times_and_paths_are_checked(run, tmp_path):
    _, run_dir = run
    assert frame_times(run_dir, 0, 3600, 1800).tolist() == [0.0, 1800.0, 3600.0]
    assert frame_times(run_dir, 0, 4000, 1800).tolist() == [0.0, 1800.0, 3600.0, 4000.0]
    assert frame_times(run_dir).tolist()[-1] == 3 * 3600
    with pytest.raises(AnimationError, match="outside the run"):
        frame_times(run_dir, 0, 4 * 3600, 300)
    with pytest.raises(AnimationError, match="before"):
        frame_times(run_dir, 3600, 1800, 300)
    with pytest.raises(AnimationError, match="unknown animation type"):
        check_animation_path(tmp_path / "a.avi")
    assert parse_clock_s("01:30") == parse_clock_s("1.5") == parse_clock_s("90min") == 5400.0
    with pytest.raises(AnimationError, match="not understood"):
        parse_clock_s("noon")


def test_incident_status_is_one_of_the_legend_states(run):
    _, run_dir = run
    state = state_at(run_dir, 3600.0)
    status = incident_status(run_dir, state)
    assert list(status.index) == list(state.incidents.index)
    assert set(status) <= set(INCIDENT_STATUSES)


def test_replay_scene_html_is_one_offline_page(run):
    city, run_dir = run
    html = replay_scene_html(city, run_dir, 3600.0, lang="zh")
    assert "OfflineLocalView" in html and "citytwin-legend" in html
    assert "CityTwin 回放 - tiny，01:00" in html  # the overlay's title carries the time
    assert json.dumps("队伍：")[1:-1] in html  # crews in the Chinese legend (the overlay is a JSON string)


def test_cli_renders_a_gif(run, tmp_path):
    _, run_dir = run
    out = tmp_path / "cli.gif"
    res = CliRunner().invoke(cli, ["render", str(run_dir), "--from", "00:30", "--to", "1h", "--step", "15min",
                                   "--size", "480x300", "--fps", "3", "--no-progress", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "3 frames" in res.output
    assert len(_gif_frames(out)) == 3


@pytest.mark.parametrize(("args", "message"), [
    (["--from", "5h"], "outside the run"),
    (["--from", "2h", "--to", "1h"], "before"),
    (["--to", "soon"], "not understood"),
    (["--out-ext", ".avi"], "unknown animation type"),
    (["--run", "missing"], "not found"),
])
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(run, tmp_path, args, message):
    _, run_dir = run
    out = tmp_path / ("x" + (args[1] if args[0] == "--out-ext" else ".gif"))
    target = tmp_path / "no_such_run" if args[0] == "--run" else run_dir
    extra = [] if args[0] in ("--out-ext", "--run") else args
    res = CliRunner().invoke(cli, ["render", str(target), *extra, "--no-progress", "--out", str(out)])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], res.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_replay_page_shows_the_3d_view_when_asked(run, monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from twin.i18n import t

    _, run_dir = run
    monkeypatch.setenv("CITYTWIN_APP_CITY", str(Path(run_dir).parent / "tiny.gpkg"))
    monkeypatch.setenv("CITYTWIN_RUNS_DIR", str(Path(run_dir).parent))
    app = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=180).run()
    app.sidebar.radio(key="page__en").set_value("replay").run()
    assert not app.exception, [e.value for e in app.exception]
    assert len(app.get("iframe")) == 0  # off by default: moving the slider stays quick
    app.slider(key="replay_minutes").set_value(60)
    app.toggle(key="replay_scene").set_value(True).run()
    assert not app.exception, [e.value for e in app.exception]
    frames = app.get("iframe")
    assert len(frames) == 1
    html = frames[0].proto.srcdoc
    assert "OfflineLocalView" in html and "CityTwin replay - tiny at 01:00" in html
    assert any(t("replay.scene.hint", "en")[:30] in c.value for c in app.caption)


def test_replay_player_plays_the_run_offline(run, tmp_path):
    """Issue #13 item 4: a play/pause animation of the replay (pictures of the replay map, legend included)."""
    import base64
    import io
    import re

    from twin.viz.replay_map import replay_frame_decks, replay_player_html

    city, out = run
    times, decks = replay_frame_decks(city, out, [0.0, 3600.0, 7200.0])
    assert list(times) == [0.0, 3600.0, 7200.0] and len(decks) == 3
    assert all(json.loads(d.to_json())["mapStyle"] == "__MAP_STYLE__" for d in decks)
    page = replay_player_html(city, out, [0.0, 3600.0], size_px=(600, 400), lang="zh")
    assert "http://" not in page and "https://" not in page and "播放" in page
    urls = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(urls) == 2
    img = Image.open(io.BytesIO(base64.b64decode(urls[1])))
    assert img.size == (600, 400)
    img.save(tmp_path / "frame.png")
