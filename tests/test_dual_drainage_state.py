"""Coupled runs that start from a saved state, stop when the storm is over, and feel the river at the outfalls.

A street 30 x 20 cells of 5 m with a river along its east side; one manhole J1
(a 0.3 m pipe to the outfall O1 in the river bed) gets an inflow hydrograph that
surcharges it onto the street.
"""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from gisdata.raster import Raster
from hydraulics.dual_drainage import DualDrainageOptions, QuietStop, run_dual_drainage
from hydraulics.urban_surface import UrbanSurface

CELL = 5.0
X0, Y0 = 1000.0, 2000.0  # north-west corner

_INP = """[OPTIONS]
FLOW_UNITS CMS
FLOW_ROUTING DYNWAVE
START_DATE 01/01/2020
START_TIME 00:00:00
REPORT_START_DATE 01/01/2020
REPORT_START_TIME 00:00:00
END_DATE 01/01/2020
END_TIME {end}
REPORT_STEP 00:05:00
ROUTING_STEP 5

[JUNCTIONS]
J1 {j_inv} {j_depth} 0 0 0

[OUTFALLS]
O1 {o_inv} FREE NO

[CONDUITS]
C1 J1 O1 60 0.013 0 0 0

[XSECTIONS]
C1 CIRCULAR {diam} 0 0 0 1

[INFLOWS]
J1 FLOW inq

[TIMESERIES]
{series}

[COORDINATES]
J1 {jx} {jy}
O1 {ox} {oy}
"""


def _surface(river: bool = True) -> UrbanSurface:
    rows, cols = 20, 30
    ground = np.full((rows, cols), 10.0) - 0.002 * np.arange(cols)[None, :] * CELL  # gentle fall to the east
    riv = np.zeros((rows, cols), bool)
    if river:
        riv[:, -3:] = True
        ground[:, -3:] = 5.0  # river bed
    outside = np.zeros((rows, cols), bool)
    outside[:, 0] = outside[0, :] = outside[-1, :] = True  # walls around the street
    outside &= ~riv
    carriageway = np.zeros((rows, cols), bool)
    carriageway[8:12, 1:-3] = True
    manning = np.where(carriageway, 0.015, 0.035)
    return UrbanSurface(Raster(ground, Affine(CELL, 0, X0, 0, -CELL, Y0), "EPSG:32632"), outside, riv,
                        carriageway, manning)


def _model(*, end="03:00:00", j_inv=8.0, o_inv=7.6, diam=0.3, q0=0.0, qpeak=0.4, series=None) -> str:
    series = series or f"inq 0 {q0}\ninq 0.5 {qpeak}\ninq 1.0 {q0}\ninq 24 {q0}"
    jx, jy = X0 + 10.5 * CELL, Y0 - 10.5 * CELL
    ox, oy = X0 + 28.5 * CELL, Y0 - 10.5 * CELL
    return _INP.format(end=end, j_inv=j_inv, j_depth=10.0 - 0.002 * 10 * CELL - j_inv, o_inv=o_inv, diam=diam,
                       series=series, jx=jx, jy=jy, ox=ox, oy=oy)


def test_river_stage_backs_up_into_the_outfall():
    """The engine honours a stage set on a FREE outfall (``outfall_set_stage``, in the model's length unit):
    with the river's level at O1 (bed 5 m + normal depth of the base flow, about 6.1 m) above the pipe,
    J1's head rises to the river level; without it, J1 drains freely to its invert."""
    model = _model(end="01:00:00", j_inv=4.5, o_inv=4.0, q0=0.01, qpeak=0.01)
    heads = {}
    for backed in (True, False):
        res = run_dual_drainage(model, _surface(), options=DualDrainageOptions(
            report_step_s=300, river_backs_outfalls=backed))
        heads[backed] = 4.5 + float(res.node_depth_m["J1"].iloc[-1])
        assert res.summary["outfall_stage_from_river"] is backed
        assert abs(res.summary["coupling_error_rel"]) < 1e-6
        # whatever error there is, is the engine's own (with the stage, the river fills the empty pipe from
        # the outfall at once and SWMM's own routing continuity misses that water: -6.9 % here)
        assert res.summary["mass_balance_error_m3"] == pytest.approx(res.summary["swmm_error_m3"], abs=1e-6)
        assert res.summary["mass_balance_error_rel"] * 100 == pytest.approx(
            -res.summary["swmm_routing_error_pct"], rel=0.05)
    assert heads[False] < 4.8                       # a free outfall: J1 holds a few cm of flow
    assert heads[True] == pytest.approx(6.1, abs=0.2)  # the river's level, felt 60 m up the pipe
    assert heads[True] - heads[False] > 1.0


def test_saved_state_continues_the_run():
    """Run 0-3 h (a walled street, no river) saving the state at 45 min; a run from that state (engine
    hotstart + street depths) gives the same street water and exchange, and its mass balance counts the state as initial storage."""
    full = run_dual_drainage(_model(), _surface(river=False), options=DualDrainageOptions(report_step_s=300),
                             save_state_at_s=2700.0)
    st = full.saved
    assert st is not None and st.time_s == pytest.approx(2700.0)
    assert st.depth_m.sum() * CELL ** 2 > 50.0          # the state carries street water
    later = "inq 0 0.2\ninq 0.25 0\ninq 24 0"  # the same hydrograph from 45 min on
    rest = run_dual_drainage(_model(series=later), _surface(river=False), options=DualDrainageOptions(report_step_s=300),
                             hotstart=st.hotstart, initial_depth_m=st.depth_m)
    # the second run's window is the model's own (0-3 h) from the saved state: compare by elapsed time
    late = full.mass_balance.set_index("time_s")["surface_m3"].loc[2700.0 + 1800.0]
    again = rest.mass_balance.set_index("time_s")["surface_m3"].loc[1800.0]
    assert again == pytest.approx(late, rel=0.05, abs=1.0)
    mb0 = rest.mass_balance.iloc[0]
    assert mb0["initial_m3"] == pytest.approx(mb0["swmm_storage_m3"] + mb0["surface_m3"])
    assert mb0["surface_m3"] == pytest.approx(st.depth_m.sum() * CELL ** 2)
    assert abs(rest.summary["coupling_error_rel"]) < 1e-9    # the exchange and the street: exact
    assert abs(rest.summary["mass_balance_error_rel"]) < 0.01  # the rest is the engine's own continuity
    assert rest.summary["hotstart_used"]


def test_quiet_stop_ends_the_engine_and_the_street_drains():
    """After the last inflow, once J1 has not spilled for 30 min, the engine stops; the street water then
    drains into J1's inlet alone, and the mass balance still closes."""
    opts = DualDrainageOptions(report_step_s=300, inlets_per_node=1, inlet_capacity_m3s=0.05)
    full = run_dual_drainage(_model(end="04:00:00"), _surface(river=False), options=opts)
    quiet = run_dual_drainage(_model(end="04:00:00"), _surface(river=False), options=opts,
                              stop_when=QuietStop(after_s=3600.0, quiet_s=1800.0))
    assert full.stopped_at_s is None
    assert quiet.stopped_at_s is not None and 3600.0 <= quiet.stopped_at_s < 4 * 3600.0
    assert quiet.summary["to_surface_m3"] == pytest.approx(full.summary["to_surface_m3"], rel=1e-6)
    assert quiet.summary["to_network_m3"] == pytest.approx(full.summary["to_network_m3"], rel=0.02, abs=0.5)
    assert np.abs(quiet.max_depth_m - full.max_depth_m).max() < 1e-9   # the peak came before the stop
    assert np.abs(quiet.final_depth_m - full.final_depth_m).max() < 0.01
    assert abs(quiet.summary["mass_balance_error_rel"]) < 0.005
    assert quiet.mass_balance["time_s"].iloc[-1] == pytest.approx(4 * 3600.0)
