"""`twin info`, `twin city generate|import-osm` and `twin demo`."""

from __future__ import annotations

import json
from pathlib import Path

import click

CITY_HELP = "A preset (demo, small, large), a city GeoPackage, or an OSM extract."


def format_summary(summary: dict) -> str:
    """Render :meth:`CityTwin.summary` as aligned text lines."""
    xmin, ymin, xmax, ymax = summary["extent_m"]
    lines = [
        f"city            {summary['name']}",
        f"crs             {summary['crs']} (metres)",
        f"extent          {xmin:.1f}, {ymin:.1f} .. {xmax:.1f}, {ymax:.1f} m "
        f"({summary['size_km'][0]} x {summary['size_km'][1]} km)",
        f"manholes        {summary['manholes']}",
        f"outfalls        {summary['outfalls']}",
        f"pipe length     {summary['pipe_length_km']:.2f} km",
        f"road length     {summary['road_length_km']:.2f} km",
        f"residents       {summary['residents']}",
        f"dem             {summary['dem_shape'][0]} x {summary['dem_shape'][1]} cells of {summary['dem_cell_m']:g} m",
        "layers",
    ]
    lines += [f"  {name:<14}{count}" for name, count in summary["layers"].items()]
    return "\n".join(lines)


@click.command("info")
@click.argument("city", default="demo", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def info_command(city: str, as_json: bool) -> None:
    """Summarise CITY: layer counts, CRS, extent, pipe length (km) and residents.

    CITY is a preset (demo, small, large), a GeoPackage or an OSM extract; default demo.

    Example: twin info small
    """
    from gisdata import load_city

    summary = load_city(city).summary()
    click.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))


@click.group("city")
def city_group() -> None:
    """Make city GeoPackages: generate a synthetic city or import an OSM extract."""


@city_group.command("generate")
@click.option("--preset", type=click.Choice(["small", "demo", "large"]), default="small", show_default=True,
              help="City size: small ~200, demo ~1,000, large ~5,000 manholes.")
@click.option("--seed", type=int, default=None, help="Generator seed (default: the preset's own).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output GeoPackage (.gpkg); the DEM goes beside it as <stem>.dem.tif.")
def generate_command(preset: str, seed: int | None, out: Path) -> None:
    """Generate a synthetic city, deterministic for PRESET and SEED.

    Example: twin city generate --preset small --seed 7 --out small.gpkg
    """
    from gisdata import save_city
    from gisdata.presets import DEFAULT_SEEDS
    from gisdata.synth import generate_city

    from gisdata.paths import check_out_file

    check_out_file(out, "--out")  # before the city is generated
    seed = DEFAULT_SEEDS[preset] if seed is None else seed
    city = generate_city(preset, seed=seed)
    path = save_city(city, out)
    click.echo(f"wrote {path} ({city.summary()['manholes']} manholes, seed {seed})")


@city_group.command("import-osm")
@click.argument("osm_file", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Output GeoPackage (.gpkg).")
@click.option("--dem", type=click.Path(path_type=Path), default=None,
              help="GeoTIFF of ground elevation (m); default: a documented flat fallback.")
@click.option("--crs", default=None, help="Projected CRS in metres (default: the local UTM zone).")
def import_osm_command(osm_file: Path, out: Path, dem: Path | None, crs: str | None) -> None:
    """Build a city from an OSM extract (.osm, .osm.bz2, .osm.pbf), with a sewer designed along its roads.

    Example: twin city import-osm ../shared/data/gis/pyrosm/test.osm.pbf --out k.gpkg
    """
    from gisdata import save_city
    from gisdata.osm import import_osm

    from gisdata.paths import check_out_file

    check_out_file(out, "--out")  # before the import
    city = import_osm(osm_file, dem=dem, crs=crs)
    path = save_city(city, out)
    s = city.summary()
    click.echo(f"wrote {path} ({s['layers']['buildings']} buildings, {s['layers']['roads']} road segments, "
               f"{s['manholes']} manholes, {s['crs']})")


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("twin-demo"),
              show_default=True, help="Directory for the demo outputs.")
@click.option("--quick", is_flag=True, help="Small city, 24 h, 3 members: a fast run for tests.")
def demo_command(out: Path, quick: bool) -> None:
    """Run the main job on the embedded demo city: 72 h forecast, storm, dispatch, report.

    The forecast is issued 72 h ahead of a 50-year 3 h Chicago storm; the
    coupled storm then runs with siloed dispatch and with unified dispatch
    staging crews at the forecast's risk points.  Writes OUT/city.png (an
    overview map), OUT/city.html (an interactive 3D scene that needs no
    network), OUT/report.html (self-contained report), OUT/forecast/
    (risk_points.csv, plan.json, hydrographs.png) and prints the headline.

    Example: twin demo
    """
    from tqdm import tqdm

    from twin.demo_job import run_demo_job

    with tqdm(total=100, desc="twin demo", unit="%", bar_format="{l_bar}{bar}| {n:.0f}/{total} [{elapsed}<{remaining}{postfix}]") as bar:
        def progress(label: str, fraction: float) -> None:
            bar.set_postfix_str(label, refresh=False)
            bar.update(max(100 * fraction - bar.n, 0))

        res = run_demo_job(out, quick=quick, progress=progress)
    click.echo(format_summary(res.summary))
    click.echo("")
    for line in res.headline:
        click.echo(line)
    f = res.files
    click.echo(f"wrote {f['city_png']}\nwrote {f['city_html']}\nwrote {f['report']}")
