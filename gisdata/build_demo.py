"""Regenerate the bundled demo city: ``python -m gisdata.build_demo``.

Generates the ``demo`` preset with its default seed and writes
``gisdata/data/demo.gpkg`` with ``demo.dem.tif`` beside it, which
:func:`gisdata.presets.load_preset` then reads instead of regenerating.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from gisdata.city import dem_path_for, save_city
from gisdata.presets import DEFAULT_SEEDS, bundled_demo_path
from gisdata.synth import generate_city


def build_demo(path: str | Path | None = None) -> Path:
    """Generate the demo city and save it to ``path`` (default: the bundled location).

    Parameters
    ----------
    path : str or Path, optional
        Target ``.gpkg``; the DEM goes beside it as ``<stem>.dem.tif``.

    Returns
    -------
    Path
        The GeoPackage written.
    """
    target = Path(path) if path is not None else bundled_demo_path()
    city = generate_city("demo", seed=DEFAULT_SEEDS["demo"])
    return save_city(city, target)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; prints the city summary and the file sizes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="target .gpkg (default: the bundled demo)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    out = build_demo(args.out)
    from gisdata.city import read_city_gpkg

    summary = read_city_gpkg(out).summary()
    sizes = {p.name: round(p.stat().st_size / 1e6, 2) for p in (out, dem_path_for(out))}
    print(json.dumps({"written": str(out), "size_mb": sizes, "seconds": round(time.perf_counter() - t0, 1),
                      "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
