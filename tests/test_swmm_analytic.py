"""Analytic checks of the engine path: Manning's equation in one conduit, hotstart continuity."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pytest
from swmm_helpers import copy_model

from hydraulics.run import RunOptions, run_swmm

N, D, L, DZ, Q = 0.013, 1.0, 500.0, 1.0, 0.5  # Manning n, diameter m, length m, drop m, inflow m3/s

SINGLE_CONDUIT = f"""\
[TITLE]
One circular conduit at steady flow (analytic test)

[OPTIONS]
FLOW_UNITS           CMS
INFILTRATION         HORTON
FLOW_ROUTING         KINWAVE
START_DATE           01/01/2020
START_TIME           00:00:00
REPORT_START_DATE    01/01/2020
REPORT_START_TIME    00:00:00
END_DATE             01/01/2020
END_TIME             03:00:00
REPORT_STEP          00:05:00
WET_STEP             00:05:00
DRY_STEP             00:05:00
ROUTING_STEP         0:00:10

[JUNCTIONS]
J1   10.0   3.0   0   0   0

[OUTFALLS]
O1   {10.0 - DZ}   FREE   NO

[CONDUITS]
C1   J1   O1   {L}   {N}   0   0   0   0

[XSECTIONS]
C1   CIRCULAR   {D}   0   0   0   1

[INFLOWS]
J1   FLOW   ""   FLOW   1.0   1.0   {Q}

[REPORT]
NODES ALL
LINKS ALL
"""


def manning_flow_cms(depth_m: float) -> float:
    """Manning's equation for a part-full circular pipe, m3/s."""
    theta = 2.0 * math.acos(1.0 - 2.0 * depth_m / D)
    area = D * D / 8.0 * (theta - math.sin(theta))
    radius = area / (D * theta / 2.0)
    return area * radius ** (2.0 / 3.0) * math.sqrt(DZ / L) / N


def test_single_conduit_at_steady_flow_matches_manning(tmp_path):
    res = run_swmm(SINGLE_CONDUIT, options=RunOptions(base_dir=tmp_path))
    flow = float(res.link["flow_cms"]["C1"].iloc[-1])
    depth = float(res.link["depth_m"]["C1"].iloc[-1])
    assert flow == pytest.approx(Q, rel=1e-3)  # steady: what goes in comes out
    assert 0.2 * D < depth < 0.8 * D  # part full, where Manning applies
    assert manning_flow_cms(depth) == pytest.approx(flow, rel=0.02)
    assert res.flood_summary.empty


def test_manning_check_can_fail():
    # The same depth with twice the roughness must not pass: the check has teeth.
    y = 0.48
    assert abs(manning_flow_cms(y) * N / (2 * N) - manning_flow_cms(y)) / manning_flow_cms(y) > 0.02


def test_hotstart_split_run_continues_the_full_run(shared_data, tmp_path):
    # Site_Drainage_Model is the model of the engine's own hotstart tests (dynamic wave).
    inp = copy_model(shared_data, "epa_examples/Site_Drainage_Model.inp", tmp_path)
    start = datetime(1998, 1, 1)
    total_s, half_s = 6 * 3600.0, 3 * 3600.0  # rain is falling at the split
    hsf = tmp_path / "half.hsf"
    full_states, second_states = [], []
    run_swmm(inp, options=RunOptions(duration_s=total_s, save_hotstart_at=half_s, save_hotstart_to=hsf),
             on_step=full_states.append)
    second = run_swmm(inp, options=RunOptions(start=start + timedelta(seconds=half_s), duration_s=total_s - half_s,
                                              hotstart=hsf), on_step=second_states.append)
    assert second.metadata["hotstart_used"] == str(hsf)
    assert full_states[-1].time == second_states[-1].time == start + timedelta(seconds=total_s)
    np.testing.assert_allclose(second_states[-1].depth_m, full_states[-1].depth_m, atol=1e-3)
    at_split = next(s for s in full_states if s.elapsed_s >= half_s)
    assert at_split.depth_m.max() > 0.01  # water is in the pipes at the split: the check is not trivial


def test_cold_start_at_half_time_differs(shared_data, tmp_path):
    # Without the hotstart the second half starts from empty pipes: the check above has teeth.
    inp = copy_model(shared_data, "epa_examples/Site_Drainage_Model.inp", tmp_path)
    start = datetime(1998, 1, 1)
    full, cold = [], []
    run_swmm(inp, options=RunOptions(duration_s=3.5 * 3600), on_step=full.append)
    run_swmm(inp, options=RunOptions(start=start + timedelta(hours=3), duration_s=1800), on_step=cold.append)
    assert np.abs(full[-1].depth_m - cold[-1].depth_m).max() > 1e-3


def test_run_shorter_than_a_report_step_has_empty_series(shared_data, tmp_path):
    inp = copy_model(shared_data, "epa_examples/Example1.inp", tmp_path)  # report step 1 h
    res = run_swmm(inp, options=RunOptions(duration_s=1800))
    assert res.status == "complete" and res.node == {} and res.metadata["end"] == "1998-01-01T00:30:00"
