"""Our 2D surface side by side with itzi and landlab, on the same inputs, in one run.

Prints, against each peer:

- agreement on a street case (the ``examples/flood2d`` DEM: 150 x 250 cells of
  2 m with kerbs, buildings and an underpass; two surcharging manholes and a
  2 h storm; closed edges; n = 0.03; theta 0.8; CFL 0.7): the RMSE of the
  maximum depth over the cells that either model wets to >= 0.01 m, and the
  CSI of the flooded area (max depth >= 0.05 m);
- speed: cell-updates per second (cells x steps / wall s), single thread, on a
  1000 x 1000 grid (1 M cells) wet over half its area, each solver with its
  own adaptive step; the solvers alternate over a few chunks of simulated
  time and each keeps its best chunk (the machine is shared and noisy); and
  our figure as a ratio to each peer's.

The peers are installed by the ``bench`` extra (``pip install -e ".[bench]"``);
CityTwin itself never imports them.  itzi runs its own compiled solver
(``itzi.flow``, float32 as it ships, OpenMP pinned to one thread) through its
``RasterDomain`` and ``SurfaceFlowSimulation``; landlab runs ``OverlandFlow``.

    python benchmarks/surface2d_compare.py              # agreement + speed table
    python benchmarks/surface2d_compare.py --quick      # smaller speed grid (300 x 300)
    python benchmarks/surface2d_compare.py --figure out.png   # also draw the max-depth maps
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before itzi's OpenMP runtime loads: single thread
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hydraulics.surface2d import G, Surface2D  # noqa: E402
from hydraulics.surface2d_io import read_domain, read_inflows_csv, read_rain_csv  # noqa: E402

THETA, CFL, HMIN, MANNING, DT_MAX = 0.8, 0.7, 0.001, 0.03, 5.0
EXAMPLE = ROOT / "examples" / "flood2d"


# ----------------------------------------------------------------------------- the cases

def street_case():
    """The example street DEM with its inflows and rain (2 h)."""
    domain = read_domain(EXAMPLE / "dem.tif")
    sources = read_inflows_csv(EXAMPLE / "inflows.csv", domain)
    rain = read_rain_csv(EXAMPLE / "rain.csv")
    return dict(z=domain.dem.values.copy(), dx=domain.dem.cell_size_m, sources=sources, rain=rain,
                h0=np.zeros(domain.dem.shape), end_s=7200.0)


def speed_case(size: int, end_s: float):
    """A gently tilted, rippled plane, 1 m cells, 0.3 m of water over its western half."""
    yy, xx = np.mgrid[0:size, 0:size].astype("float64")
    z = 0.002 * xx + 0.05 * np.sin(yy / 13.0) * np.cos(xx / 17.0)
    h0 = np.where(xx < size / 2, 0.3, 0.0)
    return dict(z=z, dx=1.0, sources=[], rain=None, h0=h0, end_s=end_s)


def _breaks(case) -> np.ndarray:
    times = [s.flow_m3s.time_s for s in case["sources"]]
    if case["rain"] is not None:
        times.append(case["rain"].time_s)
    return np.unique(np.concatenate(times)) if times else np.zeros(0)


def _rain_ms(case, t: float) -> float:
    return 0.0 if case["rain"] is None else case["rain"].at(t) / 3.6e6


# ----------------------------------------------------------------------------- the three solvers
# Each make_* returns (advance, max_depth): advance(t_end_s) steps the solver to t_end_s with its own
# adaptive steps and returns how many it took; max_depth() is the largest depth per cell so far.

def make_ours(case):
    s = Surface2D(case["z"], cell_size_m=case["dx"], manning=MANNING, initial_depth_m=case["h0"],
                  rain_mm_h=case["rain"], sources=case["sources"], cfl=CFL, dt_max_s=DT_MAX, theta=THETA,
                  h_min_m=HMIN)

    def advance(t_end):
        n0 = s.steps
        s.run_until(t_end)
        return s.steps - n0

    advance.surface = s
    return advance, lambda: s.max_depth_m.copy()


def make_itzi(case):
    from itzi.rasterdomain import RasterDomain
    from itzi.surfaceflow import SurfaceFlowSimulation

    z, dx = case["z"], case["dx"]
    dtype = np.float32
    dom = RasterDomain(dtype=dtype, arr_mask=np.zeros(z.shape, dtype=bool), cell_shape=(dx, dx))
    dom.update_array("dem", z.astype(dtype))
    dom.update_array("friction", np.full(z.shape, MANNING, dtype=dtype))
    dom.update_array("water_depth", case["h0"].astype(dtype))
    sf = SurfaceFlowSimulation(dom, {"dtmax": DT_MAX, "cfl": CFL, "g": G, "theta": THETA, "hmin": HMIN,
                                     "slmax": 1e9, "vrouting": 0.0})  # no rain routing: the same physics as ours
    sf.update_flow_dir()
    inflow = dom.get_array("inflow")
    eff = dom.get_array("eff_precip")
    h = dom.get_array("water_depth")
    hmax = h.astype("float64")
    breaks = _breaks(case)
    area = dx * dx
    clock = [0.0]

    def advance(t_end):
        steps, t = 0, clock[0]
        while t < t_end - 1e-9:
            sf.solve_dt()
            dt = min(sf._dt, t_end - t)
            k = np.searchsorted(breaks, t + 1e-9, side="right")
            if k < breaks.size:
                dt = min(dt, breaks[k] - t)
            sf._dt = dt
            if case["sources"]:
                inflow[:] = 0.0
                for s in case["sources"]:
                    inflow[s.row, s.col] += s.flow_m3s.at(t + 0.5 * dt) / area
            eff[:] = _rain_ms(case, t)
            dom.update_ext_array()
            sf.step()
            np.maximum(hmax, h, out=hmax)
            t += dt
            steps += 1
        clock[0] = t
        return steps

    return advance, lambda: hmax.copy()


def make_landlab(case):
    from landlab import RasterModelGrid
    from landlab.components import OverlandFlow

    z, dx = case["z"], case["dx"]
    rows, cols = z.shape
    grid = RasterModelGrid((rows + 2, cols + 2), xy_spacing=dx)  # a ring of closed nodes around our cells
    zz = grid.add_zeros("topographic__elevation", at="node")
    hh = grid.add_zeros("surface_water__depth", at="node")
    # landlab's node rows run south to north; ours north to south
    core = lambda a: a.reshape(rows + 2, cols + 2)[1:-1, 1:-1][::-1]  # noqa: E731
    core(zz)[:] = z
    core(hh)[:] = case["h0"]
    grid.set_closed_boundaries_at_grid_edges(True, True, True, True)
    of = OverlandFlow(grid, mannings_n=MANNING, theta=THETA, alpha=CFL, h_init=1e-6, steep_slopes=True)
    nodes = [int(np.ravel_multi_index((rows - s.row, s.col + 1), (rows + 2, cols + 2))) for s in case["sources"]]
    hmax = core(hh).copy()
    breaks = _breaks(case)
    area = dx * dx
    clock = [0.0]

    def advance(t_end):
        steps, t = 0, clock[0]
        while t < t_end - 1e-9:
            try:
                dt = min(of.calc_time_step(), DT_MAX, t_end - t)
            except Exception:  # landlab raises NoWaterError on a dry grid; the rain may start later
                dt = min(DT_MAX, t_end - t)
            k = np.searchsorted(breaks, t + 1e-9, side="right")
            if k < breaks.size:
                dt = min(dt, breaks[k] - t)
            of.rainfall_intensity = _rain_ms(case, t)
            of.overland_flow(dt=dt)  # dt <= landlab's own stable step: one internal step
            for node, s in zip(nodes, case["sources"]):
                hh[node] += s.flow_m3s.at(t + 0.5 * dt) * dt / area
            np.maximum(hmax, core(hh), out=hmax)
            t += dt
            steps += 1
        clock[0] = t
        return steps

    return advance, lambda: hmax.copy()


SOLVERS = {"ours": make_ours, "itzi": make_itzi, "landlab": make_landlab}


# ----------------------------------------------------------------------------- metrics

def agreement(ours: np.ndarray, peer: np.ndarray, wet_m: float = 0.01, flooded_m: float = 0.05):
    """(RMSE of max depth over cells either wets >= wet_m, CSI of max depth >= flooded_m)."""
    either = (ours >= wet_m) | (peer >= wet_m)
    rmse = float(np.sqrt(np.mean((ours[either] - peer[either]) ** 2))) if either.any() else 0.0
    a, b = ours >= flooded_m, peer >= flooded_m
    hits, misses, false = (a & b).sum(), (~a & b).sum(), (a & ~b).sum()
    csi = float(hits / (hits + misses + false)) if hits + misses + false else 1.0
    return rmse, csi


def speed_round_robin(case, rounds: int, chunk_s: float) -> dict[str, float]:
    """Best cell-updates/s of each solver over ``rounds`` alternating chunks of ``chunk_s`` simulated s.

    Alternating the solvers and keeping each one's best chunk makes the ratios robust to the bursts of
    other load on this shared machine.
    """
    cells = case["z"].size
    runners = {name: make(case)[0] for name, make in SOLVERS.items()}
    for advance in runners.values():
        advance(1.0)  # warm up (numba compiles, caches fill)
    best = {name: 0.0 for name in runners}
    t = 1.0
    for _ in range(rounds):
        t += chunk_s
        for name, advance in runners.items():
            t0 = time.perf_counter()
            steps = advance(t)
            best[name] = max(best[name], steps * cells / (time.perf_counter() - t0))
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="300 x 300 speed grid instead of 1000 x 1000")
    parser.add_argument("--figure", type=Path, default=None, help="PNG of the three max-depth maps")
    parser.add_argument("--rounds", type=int, default=3, help="alternating speed rounds (best one counts)")
    parser.add_argument("--chunk", type=float, default=5.0, help="simulated seconds per speed round")
    args = parser.parse_args(argv)

    print("street case: examples/flood2d DEM, 2 inflows + rain, 2 h, closed edges", flush=True)
    case = street_case()
    maxima = {}
    for name, make in SOLVERS.items():
        advance, max_depth = make(case)
        advance(case["end_s"])
        maxima[name] = max_depth()
        if name == "ours":
            mb = advance.surface.mass_balance()
            print(f"  ours: max depth {maxima[name].max():.3f} m, mass balance error {mb.error_rel:.1e}", flush=True)
    rows = []
    for peer in ("itzi", "landlab"):
        rmse, csi = agreement(maxima["ours"], maxima[peer])
        rows.append((peer, rmse, csi, maxima[peer].max()))
    size = 300 if args.quick else 1000
    print(f"speed case: {size} x {size} cells, half wet, one thread, {args.rounds} alternating rounds of "
          f"{args.chunk:g} s simulated, best round each", flush=True)
    speed = speed_round_robin(speed_case(size, 0.0), args.rounds, args.chunk)
    print()
    print(f"{'peer':<9}{'max-depth RMSE m':>18}{'CSI >=0.05 m':>14}{'peer max m':>12}"
          f"{'peer Mcell-upd/s':>18}{'ours / peer':>13}")
    for peer, rmse, csi, pmax in rows:
        print(f"{peer:<9}{rmse:>18.4f}{csi:>14.3f}{pmax:>12.3f}{speed[peer] / 1e6:>18.2f}"
              f"{speed['ours'] / speed[peer]:>13.2f}")
    print(f"{'ours':<9}{'':>18}{'':>14}{maxima['ours'].max():>12.3f}{speed['ours'] / 1e6:>18.2f}")
    print()
    print("targets: RMSE <= 0.05 m, CSI >= 0.90; speed >= 3x landlab, >= 1.0x itzi")

    if args.figure:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), constrained_layout=True)
        vmax = max(m.max() for m in maxima.values())
        for ax, name in zip(axes, ("ours", "itzi", "landlab")):
            im = ax.imshow(np.where(maxima[name] >= 0.01, maxima[name], np.nan),
                           cmap="Blues", vmin=0, vmax=vmax)
            buildings = case["z"] - np.minimum.accumulate(case["z"], axis=0)[-1] > 3.5  # the raised blocks
            ax.imshow(np.where(buildings, 1.0, np.nan), cmap="Greys", vmin=0, vmax=3, alpha=0.5)
            ax.set_title(f"{name}: max depth (m)")
            ax.set_axis_off()
        fig.colorbar(im, ax=axes, shrink=0.8, label="max depth (m)")
        fig.savefig(args.figure, dpi=90)
        print(f"figure: {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
