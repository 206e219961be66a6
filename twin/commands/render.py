"""`twin render`: a stored run as an animation (GIF or MP4) of its water, crews and incidents.

A folder holding the run's street depth series (``depth_series.tif``) is drawn
by default as a 2D map of the street water in fixed depth classes
(:func:`twin.viz.depth_map.render_depth_frames`), also when it is not a stored run
(``twin swmm run --city``'s output); otherwise, or with ``--view 3d``, as the 3D
replay scene (:func:`twin.viz.animation.render_frames`).

The command only parses arguments and calls the library's functions.
Bad input (no run folder, times outside the run, an unknown file type) is a
:class:`~gisdata.errors.TwinError`, which the top-level group prints as one
line with exit code 2; nothing is rendered or written then.
"""

from __future__ import annotations

from pathlib import Path

import click

from gisdata.errors import TwinError
from twin.commands.swmm import Duration


def _clock(value: str | None, option: str) -> float | None:
    from twin.viz.animation import parse_clock_s

    if value is None:
        return None
    try:
        return parse_clock_s(value)
    except TwinError as exc:
        raise TwinError(f"{option}: {exc}") from None


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise TwinError(f"--size '{text}' not understood; expected WIDTHxHEIGHT, e.g. 960x600") from None
    if not (64 <= w <= 4096 and 64 <= h <= 4096):
        raise TwinError(f"--size {w}x{h} must be between 64 and 4096 pixels each way")
    return w, h


@click.command("render")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--from", "t_from", default=None, metavar="TIME",
              help="First frame: HH:MM, 2h, 90min or hours since midnight of day 0.  [default: the run's start]")
@click.option("--to", "t_to", default=None, metavar="TIME", help="Last frame (as --from).  [default: the run's end]")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Animation file: .gif, or .mp4 (needs imageio-ffmpeg).")
@click.option("--step", "step_s", type=Duration(), default="5min", show_default=True,
              help="Simulated time between frames (at most 1,000 frames in all).")
@click.option("--fps", type=click.FloatRange(0.1, 60.0), default=4.0, show_default=True,
              help="Frames per second of the animation.")
@click.option("--size", "size", default="960x600", show_default=True, help="Frame size in pixels, WIDTHxHEIGHT.")
@click.option("--view", type=click.Choice(["auto", "2d", "3d"]), default="auto", show_default=True,
              help="2d: map of the street water depth (needs depth_series.tif in RUN_DIR); 3d: the 3D scene "
                   "with crews and incidents; auto: 2d when RUN_DIR has depth_series.tif.")
@click.option("--city", "city_source", default=None,
              help="The run's city, if not the one its manifest names (preset, GeoPackage or OSM extract); "
                   "optional backdrop of the 2D view.")
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True, help="Label language.")
@click.option("--vertical-exaggeration", "ve", type=click.FloatRange(0.1, 100.0), default=1.0, show_default=True,
              help="Factor on every elevation (3D view).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def group(run_dir: Path, t_from: str | None, t_to: str | None, out: Path, step_s: float, fps: float, size: str,
          view: str, city_source: str | None, lang: str, ve: float, progress: bool) -> None:
    """Render RUN_DIR as an animation of its flood water (and crews and incidents, in 3D).

    When RUN_DIR holds the run's street depth series (depth_series.tif, written by
    coupled runs and `twin swmm run --city`), each frame is a map of the street
    water at that time in fixed depth classes (0.05 / 0.15 / 0.30 / 0.50 m), with a
    legend and the time.  Otherwise (or with --view 3d) each frame is the 3D scene:
    the water on the ground, crews as cones coloured by department, open incidents
    as balls coloured by status, closed roads, a time label and a legend.  The view
    and the colour scale are the same in every frame.

    Example: twin render runs/storm1 --from 01:00 --to 05:00 --step 10min --out flood.gif
    """
    from gisdata.city import load_city
    from gisdata.paths import check_out_file
    from twin.viz.animation import (
        check_animation_path,
        check_frame_budget,
        frame_times,
        is_stored_run,
        render_frames,
        resolve_view,
        run_depth_series,
        write_animation,
    )

    frame_size = _size(size)
    check_animation_path(out)
    check_out_file(out, "--out")  # before minutes of rendering, not after
    series = run_depth_series(run_dir)
    view = resolve_view(view, series)
    stored = is_stored_run(run_dir)
    # A folder with a depth series but no stored run (twin swmm run --city) lasts as long as its series.
    horizon = float(series.times_s[-1]) if (series is not None and len(series.times_s) and not stored
                                            and view == "2d") else None
    times = frame_times(run_dir, _clock(t_from, "--from"), _clock(t_to, "--to"), step_s, horizon_s=horizon)
    check_frame_budget(len(times), frame_size)
    source = city_source
    if source is None and stored:
        from twin.replay import load_run

        source = str(load_run(run_dir)["manifest"].get("params", {}).get("city") or "")
    if not source and view == "3d":
        raise TwinError(f"{run_dir}: the manifest names no city; give it with --city")
    city = load_city(source) if source else None

    from tqdm import tqdm

    bar = tqdm(total=len(times), desc="frames", unit="frame", disable=not progress, leave=False)

    def tick(fraction: float) -> None:
        bar.update(max(0, round(fraction * len(times)) - bar.n))

    try:
        if view == "2d":
            from twin.viz.depth_map import render_depth_frames

            frames = render_depth_frames(series, times, city=city, lang=lang, size=frame_size,
                                         title=city.name if city is not None else run_dir.name, progress=tick)
        else:
            frames = render_frames(city, run_dir, times, lang=lang, size=frame_size, vertical_exaggeration=ve,
                                   progress=tick, series=series)
    except TwinError:
        raise
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        if stored:
            from twin.runstore import raise_if_tampered

            raise_if_tampered([run_dir], exc, "cannot be rendered")  # an edited run is the data's fault, not ours
        raise
    finally:
        bar.close()
    path = write_animation(frames, out, fps=fps)
    first, last = times[0], times[-1]
    click.echo(f"{path}: {len(frames)} frames ({'2D street water' if view == '2d' else '3D'}), "
               f"{int(first // 3600):02d}:{int(first % 3600 // 60):02d} to "
               f"{int(last // 3600):02d}:{int(last % 3600 // 60):02d} every {step_s / 60:g} min, "
               f"{frame_size[0]}x{frame_size[1]} px, {fps:g} fps")
