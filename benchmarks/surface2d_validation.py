"""Analytic validation figures of the 2D surface, with landlab on the same cases when it is installed.

Writes ``docs/surface2d_validation.png`` (dam break against Ritter, planar wave
against Hunter et al. 2005) and prints the errors the tests assert:

    python benchmarks/surface2d_validation.py [--out docs/surface2d_validation.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hydraulics.surface2d import Surface2D, TimeSeries  # noqa: E402
from hydraulics.surface2d_analytic import planar_wave_depth, planar_wave_inflow_depth, ritter_depth  # noqa: E402

DAM = dict(length=400, dam=200, h0=1.0, dx=1.0, t=20.0, theta=0.8)
WAVE = dict(n=0.01, dx=25.0, t=3600.0, length=2000.0)


def dam_break_ours():
    c = DAM
    z = np.zeros((3, c["length"]))
    h0 = np.where(np.arange(c["length"]) < c["dam"], c["h0"], 0.0)[None, :].repeat(3, axis=0)
    s = Surface2D(z, cell_size_m=c["dx"], manning=1e-6, initial_depth_m=h0, theta=c["theta"], h_min_m=1e-4)
    s.run_until(c["t"])
    x = (np.arange(c["length"]) + 0.5) * c["dx"] - c["dam"]
    return x, s.depth_m[1].copy()


def dam_break_landlab():
    from landlab import RasterModelGrid
    from landlab.components import OverlandFlow

    c = DAM
    grid = RasterModelGrid((5, c["length"] + 2), xy_spacing=c["dx"])
    grid.add_zeros("topographic__elevation", at="node")
    h = grid.add_zeros("surface_water__depth", at="node")
    col = np.arange(c["length"] + 2) - 1  # our cell index of each node column
    h[:] = np.tile(np.where(col < c["dam"], c["h0"], 0.0), 5)
    grid.set_closed_boundaries_at_grid_edges(True, True, True, True)
    of = OverlandFlow(grid, mannings_n=1e-6, theta=c["theta"], alpha=0.7, h_init=1e-6, steep_slopes=True)
    t = 0.0
    while t < c["t"] - 1e-9:
        dt = min(of.calc_time_step(), c["t"] - t)
        of.overland_flow(dt=dt)
        t += dt
    row = h.reshape(5, -1)[2, 1:-1]
    x = (np.arange(c["length"]) + 0.5) * c["dx"] - c["dam"]
    return x, row.copy()


def planar_wave_ours(u: float):
    c = WAVE
    cols = int(c["length"] / c["dx"]) if u < 0.6 else int(5000 / c["dx"])
    times = np.arange(0.0, c["t"] + 1.0, 10.0)
    stage = TimeSeries(times, planar_wave_inflow_depth(times, u_ms=u, manning=c["n"]))
    s = Surface2D(np.zeros((3, cols)), cell_size_m=c["dx"], manning=c["n"], boundary={"west": ("stage", stage)},
                  dt_max_s=10.0)
    s.run_until(c["t"])
    return (np.arange(cols) + 0.5) * c["dx"], s.depth_m[1].copy()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "surface2d_validation.png")
    args = parser.parse_args(argv)

    x, h = dam_break_ours()
    exact = ritter_depth(x, DAM["t"], DAM["h0"])
    c0 = np.sqrt(9.81 * DAM["h0"])
    rare = (x > -c0 * DAM["t"]) & (x < 2 * c0 * DAM["t"])
    l1 = float(np.mean(np.abs(h - exact)[rare]))
    print(f"dam break, t = {DAM['t']:g} s: L1 depth error over the rarefaction, ours {l1:.3f} m")
    try:
        xl, hl = dam_break_landlab()
        l1_ll = float(np.mean(np.abs(hl - exact)[rare]))
        print(f"                              landlab OverlandFlow {l1_ll:.3f} m")
    except ImportError:
        hl = None
        print("  (landlab not installed: pip install -e '.[bench]')")

    waves = {}
    for u in (0.4, 1.0):
        xw, hw = planar_wave_ours(u)
        ew = planar_wave_depth(xw, WAVE["t"], u_ms=u, manning=WAVE["n"])
        front = float(xw[hw > 0.01].max())
        rear = xw <= 0.55 * u * WAVE["t"]
        worst = float(np.max(np.abs(hw[rear] / ew[rear] - 1)))
        fr2 = u * u / (9.81 * float(ew[0]))
        waves[u] = (xw, hw, ew, front, worst)
        print(f"planar wave u = {u} m/s, n = {WAVE['n']}, t = 1 h: front {front:.0f} m vs {u * WAVE['t']:.0f} m "
              f"({front / (u * WAVE['t']) - 1:+.1%}), depth error over the rear 55 % <= {worst:.1%} "
              f"(Fr^2 at the inflow {fr2:.2f})")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), constrained_layout=True)
    ax = axes[0]
    ax.plot(x, exact, "k-", lw=2, label="Ritter (analytic)")
    ax.plot(x, h, "C0-", label=f"CityTwin 2D (L1 {l1:.3f} m)")
    if hl is not None:
        ax.plot(x, hl, "C1--", label=f"landlab OverlandFlow (L1 {l1_ll:.3f} m)")
    ax.set(xlabel="x from the dam (m)", ylabel="depth (m)",
           title="Dam break, flat frictionless bed, h0 = 1 m, t = 20 s")
    ax.legend(fontsize=8)
    ax = axes[1]
    for u, colour in ((0.4, "C0"), (1.0, "C2")):
        xw, hw, ew, front, worst = waves[u]
        ax.plot(xw, ew, "k-", lw=1.5)
        ax.plot(xw, hw, f"{colour}--", label=f"CityTwin 2D, u = {u} m/s (front {front / (u * 3600) - 1:+.1%})")
    ax.plot([], [], "k-", label="Hunter et al. (2005), analytic")
    ax.set(xlabel="x (m)", ylabel="depth (m)", title="Planar wave, n = 0.01, 25 m cells, t = 1 h", xlim=(0, 4000))
    ax.legend(fontsize=8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"figure: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
