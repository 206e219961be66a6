"""`twin flood2d`: a standalone 2D surface-flow run on a DEM (as itzi or LISFLOOD-FP are run).

The command only parses arguments and calls :func:`hydraulics.flood2d.run_flood2d`.
Errors are :class:`~gisdata.errors.TwinError`, printed by the top-level group as
one line with exit code 2.
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from twin.commands.swmm import Duration

_FILE = click.Path(dir_okay=False, path_type=Path)


@click.command("flood2d")
@click.option("--dem", type=_FILE, required=True,
              help="Ground GeoTIFF in a projected CRS (m). Nodata at the edges is outside the domain.")
@click.option("--manning", type=float, default=0.03, show_default=True, help="Uniform Manning's n, s/m^(1/3).")
@click.option("--manning-raster", type=_FILE, default=None, help="Manning's n per cell (GeoTIFF on the DEM grid).")
@click.option("--initial-depth", type=_FILE, default=None, help="Water depth at t = 0, m (GeoTIFF on the DEM grid).")
@click.option("--rain", type=_FILE, default=None,
              help="CSV time_s,mm_h over the whole grid; each intensity holds until the next row.")
@click.option("--inflow", type=_FILE, default=None,
              help="CSV name,x,y,time_s,q_m3s of point inflows, linear in time.")
@click.option("--boundary", type=click.Choice(["closed", "open"]), default="closed", show_default=True,
              help="Grid edges: walls, or free outflow with the local water-surface slope.")
@click.option("--gauges", type=_FILE, default=None, help="CSV name,x,y of points to record depth and level at.")
@click.option("--hours", type=float, required=True, help="Simulated duration, h.")
@click.option("--report-step", "report_step_s", type=Duration(), default="5min", show_default=True,
              help="Interval of gauge and mass-balance rows (60s, 5min).")
@click.option("--cfl", type=float, default=0.7, show_default=True, help="Courant number of the adaptive step (<= 1).")
@click.option("--dt-max", "dt_max_s", type=float, default=5.0, show_default=True, help="Largest time step, s.")
@click.option("--theta", type=float, default=0.8, show_default=True,
              help="Momentum weighting (de Almeida et al. 2012), 0.5..1.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="New (or empty) folder for max_depth.tif/.png, final_depth.tif, gauges.csv, mass_balance.csv.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def flood2d_command(dem, manning, manning_raster, initial_depth, rain, inflow, boundary, gauges, hours,
                    report_step_s, cfl, dt_max_s, theta, out_dir, quiet):
    """Run street water over a DEM with the 2D local-inertial solver.

    \b
    Example:
      twin flood2d --dem examples/flood2d/dem.tif --inflow examples/flood2d/inflows.csv \\
                   --rain examples/flood2d/rain.csv --gauges examples/flood2d/gauges.csv --hours 2 --out f2d
    """
    from tqdm import tqdm

    from hydraulics.flood2d import Flood2DSpec, run_flood2d

    spec = Flood2DSpec(dem=dem, hours=hours, manning=manning, manning_raster=manning_raster,
                       initial_depth=initial_depth, rain=rain, inflow=inflow, gauges=gauges, boundary=boundary,
                       report_step_s=report_step_s, cfl=cfl, dt_max_s=dt_max_s, theta=theta)
    bar = None  # opened at the first report, so that an input error prints no bar

    def progress(fraction: float) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=1000, desc="flood2d", unit="‰", disable=quiet, leave=False,
                       bar_format="{l_bar}{bar}| {percentage:3.0f}% [{elapsed}<{remaining}]")
        bar.update(max(0, round(fraction * 1000) - bar.n))

    try:
        summary = run_flood2d(spec, out_dir, on_progress=progress)
    finally:
        if bar is not None:
            bar.close()
    _quicklook(out_dir, dem)
    click.echo("\n".join(summary.lines()))
    click.echo(f"map               {out_dir / 'max_depth.png'}")


def _quicklook(out_dir: Path, dem: Path) -> None:
    """max_depth.png beside the rasters: people would rather look than read."""
    from gisdata.raster import read_geotiff
    from hydraulics.surface2d_io import read_domain
    from twin.viz.flood_layers import write_depth_png

    domain = read_domain(dem)
    depth = read_geotiff(out_dir / "max_depth.tif").values
    depth = np.where(domain.outside, 0.0, depth)
    write_depth_png(depth, domain.dem, out_dir / "max_depth.png", outside=domain.outside,
                    title=f"Maximum depth, {dem.name}")


group = flood2d_command
