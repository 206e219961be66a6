"""`twin swmm run|import|export`: run any SWMM model, import one as a city, export a city.

The commands only parse arguments and call library functions
(:mod:`hydraulics.run`, :mod:`hydraulics.gis`, :mod:`hydraulics.build`).
Errors are :class:`~gisdata.errors.TwinError`, which the top-level ``twin``
group prints as one line with exit code 2.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import click

from gisdata.errors import TwinError
from gisdata.limits import (
    MAX_COUPLING_STEP_S,
    MAX_RETURN_PERIOD_YR,
    MAX_STORM_DURATION_MIN,
    MIN_COUPLING_STEP_S,
    MIN_RETURN_PERIOD_YR,
    check_range,
)

_UNITS_S = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hr": 3600, "d": 86400, "day": 86400}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_duration_s(text: str) -> float:
    """Seconds in a duration such as ``2h``, ``90min``, ``3600s``, ``1.5d``, ``01:30:00`` or ``600``.

    Examples
    --------
    >>> parse_duration_s("2h"), parse_duration_s("90min"), parse_duration_s("3600s"), parse_duration_s("0:30")
    (7200.0, 5400.0, 3600.0, 1800.0)
    """
    text = str(text).strip()
    if ":" in text:
        parts = text.split(":")
        if 2 <= len(parts) <= 3 and all(p.isdigit() for p in parts):
            h, m, s = (int(p) for p in (parts + ["0"])[:3])
            return float(h * 3600 + m * 60 + s)
    m = _DURATION_RE.match(text)
    if not m or m.group(2).lower() not in {"", *_UNITS_S}:
        raise ValueError(f"duration '{text}' not understood; expected e.g. 2h, 90min, 3600s, 1.5d or HH:MM[:SS]")
    value = float(m.group(1)) * _UNITS_S.get(m.group(2).lower(), 1)
    if value <= 0:
        raise ValueError(f"duration '{text}' must be > 0")
    return value


class Duration(click.ParamType):
    """A click parameter for durations (returns seconds)."""

    name = "duration"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return parse_duration_s(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def parse_datetime(option: str, text: str) -> datetime:
    """An ISO date-time given for ``option``; a one-line :class:`TwinError` if it is not one.

    Examples
    --------
    >>> parse_datetime("--start", "1998-01-01T06:00")
    datetime.datetime(1998, 1, 1, 6, 0)
    """
    try:
        return datetime.fromisoformat(str(text).strip())
    except ValueError:
        raise TwinError(f"{option} {text!r}: not a date-time; expected ISO form, e.g. 2024-07-01T12:00") from None


def _time_or_offset(text: str) -> datetime | float:
    """An ISO date-time, or a duration after the start (seconds)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    try:
        return parse_duration_s(text)
    except ValueError:
        raise TwinError(f"time '{text}' not understood; expected a duration after the start "
                        "(e.g. 1h, 90min) or an ISO date-time (2024-07-01T12:00)") from None


RAIN_UNITS = ("mm_h", "mm", "in_h", "in")


def rain_options(func):
    """The observed-rain options ``--rain FILE`` (repeatable), ``--rain-units``, ``--rain-start``, ``--rain-hours``."""
    options = [
        click.option("--rain", "rain_files", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
                     help="Observed rain instead of a design storm: a CSV (a time column such as time, "
                          "elapsed_min or hours, then one column per rain gauge) or an NCDC precipitation file; "
                          "repeatable for gauges in several files. One column feeds every rain gauge of the city; "
                          "several must be named after the city's gauges."),
        click.option("--rain-units", type=click.Choice(RAIN_UNITS), default=None,
                     help="Unit of CSV gauge columns whose name has no unit suffix (RG1_mm_h, RG1_mm, RG1_in_h, "
                          "RG1_in declare their own): mm_h, in_h intensity; mm, in depth per interval."),
        click.option("--rain-start", default=None,
                     help="Start of the event in the --rain record: a date-time (2013-04-17T05:00) or a duration "
                          "after the record's start (36h)."),
        click.option("--rain-hours", type=float, default=None,
                     help="Length of the event in the --rain record, h (default: to the record's end)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _given(ctx: click.Context, name: str) -> bool:
    from click.core import ParameterSource

    return ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def observed_rain(rain_files, rain_units, rain_start, rain_hours, *, design: dict[str, str]):
    """The ``--rain`` record (read, put together, cut to ``--rain-start``/``--rain-hours``), or None without ``--rain``.

    Parameters
    ----------
    design : dict
        Parameter name -> option of the design-storm options; giving any of
        them with ``--rain`` is an error.

    Raises
    ------
    TwinError
        One line: a clash with a design-storm option, a window option without
        ``--rain``, a file the reader refuses, a record longer than 72 h.
    """
    from twin.flood_event import check_rain_event, read_rain_inputs

    ctx = click.get_current_context()
    if not rain_files:
        extra = [opt for name, opt in (("rain_units", "--rain-units"), ("rain_start", "--rain-start"),
                                       ("rain_hours", "--rain-hours")) if _given(ctx, name)]
        if extra:
            raise TwinError(f"{'/'.join(extra)}: used only with --rain FILE; give the observed rain file too")
        return None
    clash = [opt for name, opt in design.items() if _given(ctx, name)
             and not (name == "storm" and ctx.params.get("storm") == "none")]
    if clash:
        raise TwinError(f"--rain and {'/'.join(clash)} cannot be combined: give observed rain (--rain FILE) "
                        "or a design storm, not both")
    start = None
    if rain_start is not None:
        try:
            start = datetime.fromisoformat(rain_start.strip())
        except ValueError:
            try:
                start = parse_duration_s(rain_start)
            except ValueError:
                raise TwinError(f"--rain-start {rain_start!r}: not understood; expected a date-time "
                                "(2013-04-17T05:00) or a duration after the record's start (36h)") from None
    rain = read_rain_inputs(rain_files, units=rain_units, start=start, hours=rain_hours)
    check_rain_event(rain)
    return rain


@click.group("swmm")
def group() -> None:
    """Run SWMM models, import a model as a city, export a city as a model."""


def _format_results(res, label: str, surface_depth: tuple[float, str] | None) -> str:
    s = res.summary()
    meta = res.metadata
    lines = [
        f"model             {label}",
        f"period            {meta.get('start', '?')} .. {meta.get('end', '?')}",
        f"flooded nodes     {s['flooded_nodes']}",
        f"total flood vol   {s['total_flood_volume_m3']:.1f} m3",
    ]
    if surface_depth is not None:
        lines.append(f"max surface depth {surface_depth[0]:.3f} m ({surface_depth[1]})")
    else:
        depth = res.node.get("depth_m")
        if depth is not None and depth.size:
            peak = depth.max()
            lines.append(f"max node depth    {peak.max():.3f} m (node {peak.idxmax()})")
    lines.append(f"continuity        runoff {s['runoff_error_pct']:.3f} %, flow routing {s['flow_routing_error_pct']:.3f} %")
    lines.append(f"wall time         {meta.get('wall_time_s', '?')} s")
    if len(res.flood_summary):
        top = res.flood_summary.sort_values("volume_m3", ascending=False).head(10)
        lines.append("flooding (largest volumes first)")
        lines.append(f"  {'node':<16}{'hours':>8}{'peak m3/s':>12}{'volume m3':>12}")
        for node_id, row in top.iterrows():
            lines.append(f"  {node_id!s:<16}{row.hours_flooded:>8.2f}{row.peak_rate_cms:>12.4f}{row.volume_m3:>12.1f}")
        if len(res.flood_summary) > 10:
            lines.append(f"  ... and {len(res.flood_summary) - 10} more")
    return "\n".join(lines)


@group.command("run")
@click.argument("model", required=False, type=click.Path(path_type=Path))
@click.option("--city", default=None, help="Build the model from a city (preset, GeoPackage or OSM extract) instead of MODEL.")
@click.option("--storm", type=click.Choice(["chicago"]), default="chicago", show_default=True,
              help="Design storm for --city.")
@click.option("--return-period", "return_period", type=float, default=20.0, show_default=True,
              help="Return period of the design storm, years.")
@click.option("--duration", "duration_s", type=Duration(), default="2h", show_default=True,
              help="Storm duration: 2h, 90min, 3600s.")
@click.option("--idf", default="beijing", show_default=True, help="IDF formula preset of the design storm.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to keep the run's .inp copy, .rpt, .out and the flood summary CSV.")
@click.option("--coupling-step", "coupling_s", type=Duration(), default="300s", show_default=True,
              help="Interval of flood-state snapshots.")
@click.option("--save-hotstart", "save_at", default=None,
              help="Save a hotstart at this time: a duration after the start (1h) or an ISO date-time.")
@click.option("--hotstart-out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Hotstart file to write (default: <out>/model.hsf, or ./<model>.hsf).")
@click.option("--hotstart", "hotstart", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Start from this hotstart file (give --start: the time it was saved).")
@click.option("--start", "start", default=None, help="Override the start date-time (ISO, e.g. 1998-01-01T06:00).")
@click.option("--allow-read", "allow_read", multiple=True, type=click.Path(path_type=Path),
              help="A file or folder outside the model's folder that the model may read (rain or "
                   "time-series file); repeatable. Other paths outside the model's folder are refused.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
@click.option("--surface", type=click.Choice(["2d", "screening"]), default=None,
              help="2d: the sewer coupled both ways with the 2D street surface (the default with --city; "
                   "MODEL.inp needs --dem). screening: --city only, a quick screening that spreads each "
                   "manhole's overflow volume over the DEM by fill-and-spill (no flow, no drain-back).")
@click.option("--dem", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --surface 2d: ground GeoTIFF in the model's CRS (m).")
@click.option("--manning", type=float, default=0.03, show_default=True,
              help="With --surface 2d: Manning's n of the surface, s/m^(1/3).")
@click.option("--exchange-step", "exchange_step_s", type=int, default=5, show_default=True,
              help="With --surface 2d: sewer/surface exchange step, whole seconds (1..30).")
@click.option("--inlets", "inlets", type=int, default=None,
              help="With --surface 2d: gully inlets per coupled node (with --inlet-capacity).")
@click.option("--inlet-capacity", "inlet_capacity", type=float, default=None,
              help="With --surface 2d: capacity of one inlet, m3/s (> 0); default no limit.")
@click.option("--boundary", type=click.Choice(["closed", "open"]), default="closed", show_default=True,
              help="With --surface 2d: the grid edges.")
@click.option("--cell-size", "cell_size_m", type=float, default=None,
              help="With --city: cell size of the city's street surface, m (default 10; 5 or 2 for detailed "
                   "studies, slower).")
@rain_options
def run_command(model, city, storm, return_period, duration_s, idf, out_dir, coupling_s, save_at,
                hotstart_out, hotstart, start, allow_read, progress, surface=None, dem=None, manning=0.03,
                exchange_step_s=5, inlets=None, inlet_capacity=None, boundary="closed", cell_size_m=None,
                rain_files=(), rain_units=None, rain_start=None, rain_hours=None) -> None:
    """Run MODEL.inp (or a city with a design storm or observed rain) and print the flood summary.

    A city runs on its sewer coupled both ways with its 2D street surface and
    prints the coupled mass balance, the road segments closed and the water
    that reached the river.  MODEL.inp runs in SWMM alone, or coupled with
    --surface 2d --dem.  The model runs as a copy in a temporary folder;
    nothing is written beside it.

    \b
    Examples:
      twin swmm run Example1.inp --out runs/ex1
      twin swmm run --city demo --storm chicago --return-period 100 --duration 3h --out runs/city
      twin swmm run --city demo --rain gauges.csv --out runs/observed
      twin swmm run --city demo --rain ncdc.dat --rain-start 2013-04-17T05:00 --rain-hours 24
      twin swmm run --city demo --surface screening --return-period 20 --duration 2h
      twin swmm run Example1.inp --save-hotstart 12h --hotstart-out ex1.hsf
      twin swmm run Example1.inp --hotstart ex1.hsf --start 1998-01-01T12:00
      twin swmm run model.inp --surface 2d --dem dem.tif --manning 0.03 --out runs/dual
    """
    import tempfile

    if surface is None and city is not None and model is None:
        surface = "2d"  # a city always has its street surface
    if surface is None and dem is not None:
        raise TwinError("--dem is used with --surface 2d; add --surface 2d to couple the model with the 2D surface")
    if surface == "screening" and city is None:
        raise TwinError("--surface screening spreads a city's overflow over its DEM; it needs --city")
    if surface != "2d" and cell_size_m is not None:
        raise TwinError("--cell-size sets the 2D street surface of --city; it has no use here")
    if rain_files and city is None:
        raise TwinError("--rain feeds the rain gauges of --city; MODEL.inp runs with its own rain")
    rain = observed_rain(rain_files, rain_units, rain_start, rain_hours,
                         design={"storm": "--storm", "return_period": "--return-period", "duration_s": "--duration",
                                 "idf": "--idf"})
    if surface == "2d" and city is not None:
        _run_city_2d(city, model, dem, idf, return_period, duration_s, out_dir, exchange_step_s, inlets,
                     inlet_capacity, cell_size_m, progress, bool(save_at or hotstart or hotstart_out or start),
                     rain=rain)
        return
    if surface == "2d":
        _run_surface_2d(model, city, dem, out_dir, manning, exchange_step_s, inlets, inlet_capacity, boundary,
                        allow_read, progress, bool(save_at or hotstart or hotstart_out or start))
        return

    from hydraulics.run import RunOptions, run_swmm

    if (model is None) == (city is None):
        raise TwinError("give either MODEL.inp or --city, not both and not neither")
    from gisdata.paths import check_out_dir, check_out_file

    if out_dir is not None:  # before the run, not after it
        check_out_dir(out_dir, "--out")
    if hotstart_out is not None:
        check_out_file(hotstart_out, "--hotstart-out")
    check_range("--return-period", return_period, MIN_RETURN_PERIOD_YR, MAX_RETURN_PERIOD_YR, "yr")
    check_range("--duration", duration_s / 60.0, 0, MAX_STORM_DURATION_MIN, "min", lo_inclusive=False)
    check_range("--coupling-step", coupling_s, MIN_COUPLING_STEP_S, MAX_COUPLING_STEP_S, "s")
    start_dt = parse_datetime("--start", start) if start else None
    city_obj = None
    tmp = None
    rain_lines: list[str] = []
    if city is not None:
        from gisdata.city import load_city
        from hydraulics.build import write_swmm_inp
        from hydraulics.rainfall import chicago_storm
        from twin.flood_event import match_rain_gauges, rain_summary_lines

        city_obj = load_city(city)
        if rain is None:
            rain = chicago_storm(idf, return_period, duration_s / 60.0)
            label = f"city {city_obj.name}, {storm} storm P={return_period:g} yr, {duration_s / 3600:g} h"
        else:
            label = f"city {city_obj.name}, observed rain {rain.label}"
            rain_lines = rain_summary_lines(rain, match_rain_gauges(city_obj, rain))
        tmp = tempfile.TemporaryDirectory(prefix="citytwin-build-")
        # the city's name comes from its file: used as a file name only when it is a plain name
        from gisdata.paths import InvalidIdError, check_id

        try:
            stem = check_id(city_obj.name, "city name")
        except InvalidIdError:
            stem = "city"
        model = write_swmm_inp(city_obj, Path(tmp.name) / f"{stem}.inp", rain=rain)
    else:
        label = str(model)
    try:
        save_hotstart_at = _time_or_offset(save_at) if save_at else None
        hs_target = None
        if save_hotstart_at is not None:
            hs_target = hotstart_out or ((out_dir / "model.hsf") if out_dir else Path(f"{Path(model).stem}.hsf"))
        opts = RunOptions(
            coupling_step_s=coupling_s, save_hotstart_at=save_hotstart_at, save_hotstart_to=hs_target,
            hotstart=hotstart, start=start_dt, progress=progress, keep_dir=out_dir, allowed_inputs=tuple(allow_read),
        )
        res = run_swmm(model, options=opts)
    finally:
        if tmp is not None:
            tmp.cleanup()
    surface = None
    if city_obj is not None and len(res.flood_summary):
        try:
            from hydraulics.surface import max_surface_depth
        except ImportError:
            max_surface_depth = None
        if max_surface_depth is not None:
            flood = max_surface_depth(city_obj.dem, city_obj.nodes, res.flood_summary["volume_m3"])
            surface = (flood.max_depth_m, "quick screening: overflow volumes spread over the DEM by "
                                          "fill-and-spill, no street flow")
    click.echo("\n".join([*rain_lines, _format_results(res, label, surface)]))
    if out_dir is not None:
        res.flood_summary.to_csv(Path(out_dir) / "flood_summary.csv")
        click.echo(f"kept              {out_dir}")
    if "hotstart" in res.files:
        click.echo(f"hotstart          {res.files['hotstart']} (saved at {res.metadata.get('hotstart_saved_at')})")


def _run_surface_2d(model, city, dem, out_dir, manning, exchange_step_s, inlets, inlet_capacity, boundary,
                    allow_read, progress, hotstart_options) -> None:
    """``--surface 2d``: the coupled run of :func:`hydraulics.dual_drainage.run_dual_drainage_to`."""
    import warnings

    from gisdata.paths import check_out_dir
    from hydraulics.dual_drainage import DualDrainageOptions, run_dual_drainage_to

    if city is not None or model is None:
        raise TwinError("--surface 2d couples MODEL.inp with --dem; --city is not coupled this way yet")
    if dem is None:
        raise TwinError("--surface 2d needs --dem DEM.tif (ground in the model's CRS, m)")
    if out_dir is None:
        raise TwinError("--surface 2d needs --out DIR (depth rasters, exchange series, mass balance, summary)")
    if hotstart_options:
        raise TwinError("--surface 2d does not take --save-hotstart, --hotstart, --hotstart-out or --start")
    check_out_dir(out_dir, "--out")
    opts = DualDrainageOptions(manning=manning, exchange_step_s=exchange_step_s, inlets_per_node=inlets,
                               inlet_capacity_m3s=inlet_capacity, boundary=boundary,
                               allowed_inputs=tuple(allow_read))
    on_progress, close = _progress_bar(progress, "SWMM + 2D")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = run_dual_drainage_to(model, dem, out_dir, options=opts, on_progress=on_progress)
        finally:
            close()
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    click.echo("\n".join(res.lines()))
    click.echo(f"kept              {out_dir}")


def _progress_bar(progress: bool, desc: str):
    """(callback(fraction), close()) for a bar opened at the first report."""
    bar = None

    def on_progress(fraction: float) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=1000, desc=desc, unit="‰", disable=not progress, leave=False,
                       bar_format="{l_bar}{bar}| {percentage:3.0f}% [{elapsed}<{remaining}]")
        bar.update(max(0, round(fraction * 1000) - bar.n))

    def close() -> None:
        if bar is not None:
            bar.close()

    return on_progress, close


def _run_city_2d(city, model, dem, idf, return_period, duration_s, out_dir, exchange_step_s, inlets,
                 inlet_capacity, cell_size_m, progress, hotstart_options, *, rain=None) -> None:
    """``--city ... --surface 2d``: the city's flood event on its sewer and street surface, coupled.

    ``rain`` is the observed rain of ``--rain`` (None: the Chicago design storm of the options).
    """
    import warnings

    import numpy as np

    from gisdata.city import load_city
    from gisdata.limits import check_range
    from gisdata.paths import check_out_dir
    from hydraulics.city_flood import city_options, run_city_flood, write_city_flood
    from hydraulics.rainfall import chicago_storm
    from twin.viz.flood_layers import write_depth_png

    if model is not None or dem is not None:
        raise TwinError("--city with --surface 2d builds the model and the street surface from the city; "
                        "give no MODEL.inp and no --dem")
    if hotstart_options:
        raise TwinError("--surface 2d does not take --save-hotstart, --hotstart, --hotstart-out or --start")
    from hydraulics.urban_surface import DEFAULT_CELL_M

    cell_size_m = DEFAULT_CELL_M if cell_size_m is None else cell_size_m
    check_range("--cell-size", cell_size_m, 0.5, 100.0, "m")
    check_range("--return-period", return_period, MIN_RETURN_PERIOD_YR, MAX_RETURN_PERIOD_YR, "yr")
    check_range("--duration", duration_s / 60.0, 0, MAX_STORM_DURATION_MIN, "min", lo_inclusive=False)
    if out_dir is not None:
        check_out_dir(out_dir, "--out")
    city_obj = load_city(city)
    rain_lines: list[str] = []
    if rain is None:
        rain = chicago_storm(idf, return_period, duration_s / 60.0)
        title = storm_label(return_period, duration_s)
    else:
        from twin.flood_event import match_rain_gauges, rain_summary_lines

        rain_lines = rain_summary_lines(rain, match_rain_gauges(city_obj, rain))  # a mismatch stops here, not in the run
        title = f"observed rain {rain.label}"
    limits = {} if inlets is None and inlet_capacity is None else {"inlets_per_node": inlets,
                                                                     "inlet_capacity_m3s": inlet_capacity}
    opts = city_options(exchange_step_s=exchange_step_s, **limits)
    on_progress, close = _progress_bar(progress, "SWMM + 2D")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res = run_city_flood(city_obj, rain, cell_size_m=cell_size_m, options=opts, on_progress=on_progress)
        finally:
            close()
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    click.echo("\n".join([*rain_lines, *res.lines()]))
    if out_dir is None:
        return
    write_city_flood(res, out_dir)
    surf = res.surface
    write_depth_png(np.where(surf.outside | surf.river, 0.0, res.coupled.max_depth_m), surf.ground,
                    Path(out_dir) / "max_depth.png", outside=surf.outside, river=surf.river,
                    title=f"{city_obj.name}: maximum street depth, {title}")
    click.echo(f"kept              {out_dir}")


def storm_label(return_period: float, duration_s: float) -> str:
    """'Chicago storm, 100-yr, 3 h'."""
    return f"Chicago storm, {return_period:g}-yr, {duration_s / 3600:g} h"


@group.command("import")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--crs", required=True, help="CRS of the model's map coordinates, e.g. EPSG:32632.")
@click.option("--to-crs", default=None, help="Reproject to this CRS (needed if --crs is not in metres).")
@click.option("--dem", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="GeoTIFF of ground elevation (m); default: interpolated from manhole rims.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output city GeoPackage (.gpkg).")
def import_command(model: Path, crs: str, to_crs: str | None, dem: Path | None, out: Path) -> None:
    """Import MODEL.inp as a city GeoPackage (nodes, conduits, subcatchments; SI units).

    \b
    Example:
      twin swmm import bellinge_small.inp --crs EPSG:32632 --out bellinge.gpkg
    """
    from gisdata.city import save_city
    from gisdata.paths import check_out_file
    from hydraulics.gis import import_swmm_city

    check_out_file(out, "--out")
    city = import_swmm_city(model, crs, to_crs=to_crs, dem=dem)
    path = save_city(city, out)
    n = city.summary()["layers"]
    click.echo(f"wrote {path}: {n['nodes']} nodes, {n['conduits']} conduits, {n['subcatchments']} subcatchments "
               f"in {city.crs}")
    skipped = city.metadata.get("skipped", "")
    if skipped:
        click.echo(f"skipped: {skipped}")


@group.command("export")
@click.option("--city", required=True, help="City: preset (demo, small, large), GeoPackage or OSM extract.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Output .inp file.")
@click.option("--return-period", "return_period", type=float, default=None,
              help="Add a Chicago design storm of this return period, years (default: dry model).")
@click.option("--duration", "duration_s", type=Duration(), default="2h", show_default=True,
              help="Storm duration with --return-period.")
@click.option("--idf", default="beijing", show_default=True, help="IDF formula preset of the design storm.")
def export_command(city: str, out: Path, return_period: float | None, duration_s: float, idf: str) -> None:
    """Export a city as a SWMM model (.inp) that runs in SWMM 5.2.

    \b
    Example:
      twin swmm export --city demo --out demo.inp --return-period 20 --duration 2h
    """
    from gisdata.city import load_city
    from gisdata.paths import check_out_file
    from hydraulics.build import write_swmm_inp

    check_out_file(out, "--out")
    city_obj = load_city(city)
    rain = None
    if return_period is not None:
        from hydraulics.rainfall import chicago_storm

        check_range("--return-period", return_period, MIN_RETURN_PERIOD_YR, MAX_RETURN_PERIOD_YR, "yr")
        check_range("--duration", duration_s / 60.0, 0, MAX_STORM_DURATION_MIN, "min", lo_inclusive=False)

        rain = chicago_storm(idf, return_period, duration_s / 60.0)
    path = write_swmm_inp(city_obj, out, rain=rain)
    click.echo(f"wrote {path}")
