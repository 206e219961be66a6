"""Reference tests: our stepping path against the bare EPA engine on every real model.

For each ``*.inp`` in ``../shared/data/swmm`` (discovered, not listed):

- models the engine must refuse raise :class:`SwmmError` with their code;
- every other model is run through :func:`run_swmm` (stepping, publishing a
  flood state every 300 s) and through ``swmm.toolkit.solver.swmm_run``; both
  must give the same flooded nodes, flood volumes, outfall totals and time
  series to 1e-6 relative;
- read -> write -> run gives the same results as the original to 1e-6.

Runs are sequential in this process: the engine forbids *concurrent* runs
(see :mod:`hydraulics.run`), not consecutive ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from swmm_helpers import EXPECTED_INVALID, SLOW_MODELS, copy_model, discover_models

from hydraulics.errors import SwmmError
from hydraulics.inp import read_inp, write_inp
from hydraulics.run import RunOptions, parse_report, run_swmm, run_swmm_bare

RTOL = 1e-6
MODELS = discover_models()
RUNNABLE = [m for m in MODELS if m not in EXPECTED_INVALID]


def _param(m: str):
    return pytest.param(m, id=m, marks=[pytest.mark.slow] if m in SLOW_MODELS else [])


def test_discovery_finds_the_shared_models():
    assert len(MODELS) >= 30
    assert set(EXPECTED_INVALID) <= set(MODELS)


def _assert_frames_close(ours: dict, ref: dict, what: str) -> None:
    assert set(ours) == set(ref), what
    for key, b in ref.items():
        a = ours[key]
        assert list(a.columns) == list(b.columns), f"{what}[{key}] columns"
        assert a.index.equals(b.index), f"{what}[{key}] times"
        np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=RTOL, atol=1e-12, err_msg=f"{what}[{key}]")


def _report_tolerance(flow_units: str) -> float:
    # The .rpt prints volumes as 10^6 gal or 10^6 l with 3 decimals: half a last digit.
    return 0.0005 * (3785.411784 if flow_units in ("CFS", "GPM", "MGD") else 1000.0)


# The engine's report converts with its own rounded constants (7.48 gal/ft3, 28.317 l/ft3),
# which differ from its API's (exact ft3 -> m3; 0.02832 m3/ft3 for SI models) by up to
# 1.1e-4: our engine-statistics values meet the bare report within this, and our own
# report meets the bare report to 1e-6.
REPORT_RTOL = 3e-4


@pytest.mark.parametrize("rel", [pytest.param(m, id=m) for m in EXPECTED_INVALID])
def test_invalid_models_raise_with_their_engine_code(rel, shared_data, tmp_path):
    inp = copy_model(shared_data, rel, tmp_path)
    with pytest.raises(SwmmError) as ours:
        run_swmm(inp)
    with pytest.raises(SwmmError) as bare:
        run_swmm_bare(inp, tmp_path)
    assert ours.value.code == bare.value.code == EXPECTED_INVALID[rel]
    assert ours.value.line is not None and ours.value.file == str(inp)


@pytest.mark.parametrize("rel", [_param(m) for m in RUNNABLE])
def test_stepping_path_matches_bare_engine(rel, shared_data, tmp_path):
    inp = copy_model(shared_data, rel, tmp_path)
    before = sorted(p.name for p in inp.parent.iterdir())
    states = []
    ours = run_swmm(inp, options=RunOptions(keep_dir=tmp_path / "ours"), on_step=states.append)
    assert sorted(p.name for p in inp.parent.iterdir()) == before, "the run wrote beside the input"
    bare_run = run_swmm_bare(inp, tmp_path)
    bare = bare_run.results()

    # Same flooded nodes; flood volumes and outfall totals: ours (engine statistics) against
    # the bare report (print precision), and our report against the bare report (identical).
    assert list(ours.flood_summary.index) == list(bare.flood_summary.index)
    tol = _report_tolerance(ours.metadata["flow_units"])
    np.testing.assert_allclose(ours.flood_summary["volume_m3"], bare.flood_summary["volume_m3"],
                               rtol=REPORT_RTOL, atol=tol)
    # The report prints at least 0.01 h for any flooding at all.
    np.testing.assert_allclose(np.maximum(ours.flood_summary["hours_flooded"], 0.01),
                               bare.flood_summary["hours_flooded"], atol=0.0051)
    our_rpt = parse_report(ours.files["rpt"])
    pd.testing.assert_frame_equal(our_rpt["flood_summary"], bare.flood_summary, rtol=RTOL)
    pd.testing.assert_frame_equal(our_rpt["outfalls"], bare.outfalls, rtol=RTOL)
    assert set(bare.outfalls.index) <= set(ours.outfalls.index)  # the report omits outfalls of unrouted models
    np.testing.assert_allclose(ours.outfalls.loc[bare.outfalls.index, "volume_m3"], bare.outfalls["volume_m3"],
                               rtol=REPORT_RTOL, atol=tol)
    assert our_rpt["continuity"] == bare.continuity
    for key in ("runoff_error_pct", "flow_routing_error_pct"):
        if key in bare.continuity:  # printed with 3 decimals
            assert abs(ours.continuity[key] - bare.continuity[key]) <= 0.0005 + 1e-9

    # Every reported time series (nodes, links, subcatchments, system) to 1e-6 relative.
    _assert_frames_close(dict(ours.node), dict(bare.node), "node")
    _assert_frames_close(dict(ours.link), dict(bare.link), "link")
    _assert_frames_close(dict(ours.subcatchment), dict(bare.subcatchment), "subcatchment")
    _assert_frames_close({"s": ours.system}, {"s": bare.system}, "system")

    # The published flood state ends with the engine's own flood totals.
    assert states, "no flood state was published"
    assert states[-1].time.isoformat() == ours.metadata["end"]
    last = states[-1].to_frame()
    flooded = ours.flood_summary["volume_m3"]
    np.testing.assert_allclose(last.loc[flooded.index, "flood_volume_m3"], flooded, rtol=RTOL)
    assert np.isclose(last["flood_volume_m3"].sum(), flooded.sum(), rtol=RTOL, atol=1e-9)


@pytest.mark.parametrize("rel", [_param(m) for m in RUNNABLE])
def test_round_trip_runs_like_the_original(rel, shared_data, tmp_path):
    inp = copy_model(shared_data, rel, tmp_path)
    rt = write_inp(read_inp(inp), inp.with_name("roundtrip_" + inp.name))
    a = run_swmm(inp)
    b = run_swmm(rt)
    assert list(a.flood_summary.index) == list(b.flood_summary.index)
    pd.testing.assert_frame_equal(a.flood_summary, b.flood_summary, rtol=RTOL)
    pd.testing.assert_frame_equal(a.outfalls, b.outfalls, rtol=RTOL)
    _assert_frames_close(dict(a.node), dict(b.node), "node")
    _assert_frames_close(dict(a.link), dict(b.link), "link")
    _assert_frames_close(dict(a.subcatchment), dict(b.subcatchment), "subcatchment")
    for key in ("runoff_error_pct", "flow_routing_error_pct"):
        assert np.isclose(a.continuity[key], b.continuity[key], rtol=RTOL, atol=1e-12)
