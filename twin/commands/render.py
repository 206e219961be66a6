"""`twin render`: a stored run as a 3D animation (GIF or MP4) of water, crews and incidents.

The command only parses arguments and calls :func:`twin.viz.animation.render_animation`.
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
              help="Simulated time between frames.")
@click.option("--fps", type=click.FloatRange(0.1, 60.0), default=4.0, show_default=True,
              help="Frames per second of the animation.")
@click.option("--size", "size", default="960x600", show_default=True, help="Frame size in pixels, WIDTHxHEIGHT.")
@click.option("--city", "city_source", default=None,
              help="The run's city, if not the one its manifest names (preset, GeoPackage or OSM extract).")
@click.option("--lang", type=click.Choice(["en", "zh"]), default="en", show_default=True, help="Label language.")
@click.option("--vertical-exaggeration", "ve", type=click.FloatRange(0.1, 100.0), default=1.0, show_default=True,
              help="Factor on every elevation.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def group(run_dir: Path, t_from: str | None, t_to: str | None, out: Path, step_s: float, fps: float, size: str,
          city_source: str | None, lang: str, ve: float, progress: bool) -> None:
    """Render RUN_DIR (from `twin simulate`) as a 3D animation of flood water, crews and incidents.

    Each frame shows the water on the ground at that time (the manholes' stored
    flood volumes spread over the DEM), crews as cones coloured by department,
    open incidents as balls coloured by status, closed roads, a time label and
    a legend.  The camera and the depth colour scale are the same in every frame.

    Example: twin render runs/storm1 --from 01:00 --to 05:00 --step 10min --out flood.gif
    """
    from gisdata.city import load_city
    from twin.replay import load_run
    from twin.viz.animation import (
        check_animation_path,
        frame_times,
        render_frames,
        write_animation,
    )

    from gisdata.paths import check_out_file

    frame_size = _size(size)
    check_animation_path(out)
    check_out_file(out, "--out")  # before minutes of rendering, not after
    times = frame_times(run_dir, _clock(t_from, "--from"), _clock(t_to, "--to"), step_s)
    source = city_source or str(load_run(run_dir)["manifest"].get("params", {}).get("city") or "")
    if not source:
        raise TwinError(f"{run_dir}: the manifest names no city; give it with --city")
    city = load_city(source)

    from tqdm import tqdm

    bar = tqdm(total=len(times), desc="frames", unit="frame", disable=not progress, leave=False)

    def tick(fraction: float) -> None:
        bar.update(max(0, round(fraction * len(times)) - bar.n))

    try:
        frames = render_frames(city, run_dir, times, lang=lang, size=frame_size, vertical_exaggeration=ve,
                               progress=tick)
    except TwinError:
        raise
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        from twin.runstore import raise_if_tampered

        raise_if_tampered([run_dir], exc, "cannot be rendered")  # an edited run is the data's fault, not ours
        raise
    finally:
        bar.close()
    path = write_animation(frames, out, fps=fps)
    first, last = times[0], times[-1]
    click.echo(f"{path}: {len(frames)} frames, {int(first // 3600):02d}:{int(first % 3600 // 60):02d} to "
               f"{int(last // 3600):02d}:{int(last % 3600 // 60):02d} every {step_s / 60:g} min, "
               f"{frame_size[0]}x{frame_size[1]} px, {fps:g} fps")
