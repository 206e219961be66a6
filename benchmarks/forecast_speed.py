"""Speed of the 72 h ensemble forecast on the demo city, and the accuracy cost of faster settings.

Runs N members (default 50) x 72 h on ``--cores`` processes (default 2) for
each of the settings in :data:`hydraulics.forecast.SETTINGS`, and prints:

- wall time of the ensemble (lead-in, members, reduction);
- the ratio of that wall time to ``members x bare / cores``, where ``bare`` is
  one bare-engine run (``swmm_run``, no stepping, no reads) of the control
  member over the full 72 h with the reference options, measured in the same
  run (the baseline);
- the CSI of each setting's risk points against the reference settings' risk
  points (same members, same thresholds); a faster setting is acceptable when
  CSI >= 0.95.

The CSI at the acceptance thresholds (0.15 m, probability 0.5) rests on few
points, so the script also prints the CSI over a grid of depth and probability
thresholds, with the number of reference risk points behind each figure.

The last line is the headline: the target settings (``--target``, default
``fastreduced``), their wall time against the 120 s target and their CSI.

Usage::

    .venv/bin/python benchmarks/forecast_speed.py        # fastreduced, then the reference (~10 min)
    .venv/bin/python benchmarks/forecast_speed.py --settings fastreduced,fast,skipdry,reference
    .venv/bin/python benchmarks/forecast_speed.py --members 10 --settings fast,reference
    .venv/bin/python benchmarks/forecast_speed.py --reference-dir /tmp/forecast-speed-XXXX/reference

The storm is the acceptance case: Chicago, 50-year, 3 h, starting 48 h after issue.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--city", default="demo")
    ap.add_argument("--members", type=int, default=50)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--hours", type=float, default=72.0)
    ap.add_argument("--settings", default="fastreduced,reference",
                    help="comma-separated; 'reference' is always run last and is the accuracy baseline")
    ap.add_argument("--target", default="fastreduced", help="settings whose figures make the headline")
    ap.add_argument("--threshold", type=float, default=0.15)
    ap.add_argument("--prob", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference-dir", default=None,
                    help="reuse the reference members streamed by an earlier run (<work>/reference) "
                         "instead of running the reference settings again")
    args = ap.parse_args()

    from gisdata.city import load_city
    from hydraulics.build import DEFAULT_START, write_swmm_inp
    from hydraulics.ensemble import build_surface_context
    from hydraulics.forecast import compute_issue_state, load_forecast, run_forecast
    from hydraulics.qpf import fit_horizon, perturb_qpf, spread_to_gauges
    from hydraulics.risk import compute_risk
    from hydraulics.run import run_swmm_bare
    from hydraulics.verify import contingency
    from hydraulics.qpf import design_storm_qpf

    work = Path(tempfile.mkdtemp(prefix="forecast-speed-"))
    city = load_city(args.city)
    ctx = build_surface_context(city)
    gauges = [str(g) for g in city.sensors.index[city.sensors["sensor_type"] == "rain_gauge"]] or ["RG1"]
    state = compute_issue_state(city, None, DEFAULT_START + pd.Timedelta(hours=1), work / "state.hsf", ctx=ctx)
    qpf = design_storm_qpf("beijing", 50, 3 * 3600, 48 * 3600)
    ens = perturb_qpf(qpf, args.members, seed=args.seed, gauges=gauges)

    # Baseline: one bare-engine run of the control member over the full horizon, reference options.
    control = fit_horizon(spread_to_gauges(ens.members[0], gauges), args.hours * 3600)
    frame = control.intensity_mm_h.copy()
    frame.index = pd.DatetimeIndex(state.issue_time + pd.to_timedelta(frame.index, unit="s"))
    inp = write_swmm_inp(city, work / "bare" / "control.inp", frame, drain_time_h=0)
    bare = run_swmm_bare(inp, inp.parent).wall_time_s
    ideal = args.members * bare / args.cores
    print(f"city {city.name}: {ctx.n_nodes} manholes, {len(ctx.points)} risk points candidates; "
          f"{args.members} members x {args.hours:g} h on {args.cores} cores")
    print(f"baseline: one bare-engine run (72 h, reference options) = {bare:.1f} s; "
          f"members x bare / cores = {ideal:.1f} s")

    names = [s for s in args.settings.split(",") if s and s != "reference"]
    if "reference" in args.settings.split(",") and not args.reference_dir:
        names.append("reference")
    risks, rows, by_depth = {}, [], {}
    for name in names:
        t0 = time.perf_counter()
        fc = run_forecast(city, state, ens, horizon_h=args.hours, settings=name, max_workers=args.cores, ctx=ctx,
                          threshold_m=args.threshold, out_dir=work / name)
        risk = compute_risk(fc, threshold_m=args.threshold, prob_threshold=args.prob, keep_all=True)
        wall = time.perf_counter() - t0
        risks[name] = risk.sort_index()
        by_depth[name] = exceedance_by_depth(fc)
        rows.append({"settings": name, "wall_s": wall, "ratio_to_ideal": wall / ideal,
                     "lead_in_s": fc.meta["lead_in_wall_s"], "members_s": fc.meta["members_wall_s"],
                     "mean_member_s": float(fc.members["wall_s"].mean()), "failed": fc.meta["n_failed"],
                     "risk_points": int(risk["is_risk_point"].sum())})
        print(f"  {name:<10} wall {wall:7.1f} s  ratio {wall / ideal:5.2f}  members {fc.meta['members_wall_s']:6.1f} s "
              f"(mean {rows[-1]['mean_member_s']:.1f} s/member)  risk points {rows[-1]['risk_points']}"
              f"  {'<= 120 s' if wall <= 120 else '> 120 s target'}", flush=True)
    if args.reference_dir:
        fc = load_forecast(args.reference_dir, city, issue_time=state.issue_time, horizon_h=args.hours)
        risks["reference"] = compute_risk(fc, threshold_m=args.threshold, prob_threshold=args.prob,
                                          keep_all=True).sort_index()
        by_depth["reference"] = exceedance_by_depth(fc)
        rows.append({"settings": "reference", "risk_points": int(risks["reference"]["is_risk_point"].sum()),
                     "note": f"loaded from {args.reference_dir}"})
        print(f"  reference  loaded from {args.reference_dir}: {len(fc.ok_members)} members")
    table = pd.DataFrame(rows).set_index("settings")
    if "reference" in risks:
        ref = risks["reference"]
        for name, risk in risks.items():
            risk = risk.reindex(ref.index)
            c = contingency(risk["is_risk_point"].fillna(False).to_numpy(bool), ref["is_risk_point"].to_numpy(bool))
            dp = np.nanmax(np.abs(risk["probability"].to_numpy() - ref["probability"].to_numpy()))
            table.loc[name, "CSI_vs_reference"] = c["CSI"]
            table.loc[name, "max_abs_dprob"] = dp
        print("accuracy cost against the reference settings (same members):")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    if "reference" in risks:
        for name in risks:
            if name != "reference":
                print(f"{name}: CSI vs reference over thresholds (n = reference risk points)")
                print(robustness_table(by_depth[name], by_depth["reference"]).to_string())
    for name in table.index:
        if "CSI_vs_reference" in table and name != "reference":
            csi = table.loc[name, "CSI_vs_reference"]
            verdict = "ok" if csi >= 0.95 else "TOO LOSSY"
            print(f"{name}: CSI vs reference {csi:.3f} ({verdict}, need >= 0.95)")
    print(f"work dir: {work}")
    if args.target in table.index and "wall_s" in table and np.isfinite(table.loc[args.target, "wall_s"]):
        row = table.loc[args.target]
        csi = row.get("CSI_vs_reference", float("nan"))
        print(f"HEADLINE {args.target}: wall {row['wall_s']:.1f} s (target <= 120 s: "
              f"{'met' if row['wall_s'] <= 120 else 'MISSED'}), ratio to members x bare / cores "
              f"{row['ratio_to_ideal']:.3f}, CSI vs reference {csi:.3f} "
              f"({'ok' if csi >= 0.95 else 'below 0.95' if np.isfinite(csi) else 'no reference run'})")


DEPTHS_M = (0.05, 0.10, 0.15, 0.30)
PROBS = (0.1, 0.3, 0.5, 0.7, 0.9)


def exceedance_by_depth(fc, depths=DEPTHS_M) -> dict:
    """Depth threshold (m) -> probability of exceedance per point (``compute_risk``, all points)."""
    from hydraulics.risk import compute_risk

    return {d: compute_risk(fc, threshold_m=d, keep_all=True)["probability"].sort_index() for d in depths}


def robustness_table(probs: dict, ref: dict, levels=PROBS) -> pd.DataFrame:
    """CSI of points with P(depth >= d) >= p against the reference's, per depth d (m) and probability p.

    Each cell reads ``CSI (n=reference points)``; ``-`` where neither has a point.
    """
    from hydraulics.verify import contingency

    rows = {}
    for d, ref_p in ref.items():
        cand = probs[d].reindex(ref_p.index).fillna(0.0).to_numpy()
        cells = {}
        for lv in levels:
            a, b = cand >= lv, ref_p.fillna(0.0).to_numpy() >= lv
            cells[f"p>={lv:g}"] = f"{contingency(a, b)['CSI']:.3f} (n={int(b.sum())})" if (a | b).any() else "- (n=0)"
        rows[f"depth>={d:.2f} m"] = cells
    return pd.DataFrame(rows).T

if __name__ == "__main__":
    main()
