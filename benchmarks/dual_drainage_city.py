"""Cost of the 2D street surface on a city: the coupled 1D-2D run against SWMM alone, in one run.

The demo city, the 100-year 3 h Chicago storm, 6 h simulated (3 h of rain,
3 h of draining), the street surface at the default resolution
(:data:`hydraulics.urban_surface.DEFAULT_CELL_M`):

- coupled: :func:`hydraulics.city_flood.run_city_flood` (SWMM and the 2D
  surface exchanging water both ways, the street reduction, the depth frames);
- SWMM alone: the same city model, the same rain and window, run by the bare
  engine (``swmm_run``: no stepping, no reads), the fastest SWMM there is.

Each run is a fresh subprocess (one engine per process, and numba's compiled
kernels come from its on-disk cache as in any later run); the two alternate
``--repeat`` times and each keeps its fastest run (other load on the shared
machine only ever adds time).  The last line is the ratio coupled / SWMM alone
(target <= 3).

Usage::

    .venv/bin/python benchmarks/dual_drainage_city.py [--repeat 3] [--cell-size 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _storm():
    from hydraulics.rainfall import chicago_storm

    return chicago_storm("beijing", 100, 180)


def child(mode: str, cell_size_m: float) -> None:
    """One run in this process; prints its wall time and figures as JSON."""
    sys.path.insert(0, str(ROOT))
    from gisdata import load_city

    city = load_city("demo")
    if mode == "coupled":
        from hydraulics.city_flood import run_city_flood

        t0 = time.perf_counter()
        r = run_city_flood(city, _storm(), cell_size_m=cell_size_m, drain_time_h=3.0)
        wall = time.perf_counter() - t0
        s = r.summary
        print(json.dumps({"wall_s": wall, "mass_balance_error_rel": s["mass_balance_error_rel"],
                          "surface_steps": s["surface_steps"], "cells": s["domain_cells"],
                          "roads_closed_cars": s["roads_closed_cars"], "to_surface_m3": s["to_surface_m3"]}))
    else:
        from hydraulics.build import build_swmm
        from hydraulics.run import run_swmm_bare

        text = build_swmm(city, rain_gauges=_storm(), drain_time_h=3.0, report="none")
        with tempfile.TemporaryDirectory() as d:
            inp = Path(d) / "demo.inp"
            inp.write_text(text)
            t0 = time.perf_counter()
            run_swmm_bare(inp, d)
            print(json.dumps({"wall_s": time.perf_counter() - t0}))


def run_child(mode: str, cell_size_m: float) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", mode, "--cell-size", str(cell_size_m)],
                          capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cell-size", type=float, default=None, help="surface cell size, m (default: the default)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from hydraulics.urban_surface import DEFAULT_CELL_M

    cell = args.cell_size or DEFAULT_CELL_M
    if args.child:
        child(args.child, cell)
        return
    print(f"demo city, Chicago 100-yr 3 h storm, 6 h simulated, surface cells {cell:g} m")
    run_child("coupled", cell)  # warm numba's on-disk cache so no run pays the compile
    coupled, alone = [], []
    for i in range(args.repeat):
        pair = ("coupled", "alone") if i % 2 == 0 else ("alone", "coupled")
        got = {m: run_child(m, cell) for m in pair}
        c, a = got["coupled"], got["alone"]
        coupled.append(c["wall_s"])
        alone.append(a["wall_s"])
        print(f"run {i + 1}: coupled {c['wall_s']:.2f} s ({c['surface_steps']} surface steps over {c['cells']} "
              f"cells, mass balance {c['mass_balance_error_rel']:+.4%}, {c['roads_closed_cars']} roads closed to "
              f"cars), SWMM alone {a['wall_s']:.2f} s")
    lo_c, lo_a = min(coupled), min(alone)
    print(f"fastest: coupled {lo_c:.2f} s, SWMM alone {lo_a:.2f} s; ratio coupled / SWMM alone (target <= 3):")
    print(f"{lo_c / lo_a:.2f}")


if __name__ == "__main__":
    main()
