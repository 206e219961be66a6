"""Dual drainage (#11): exchange equations with numbers, the EA 8B model coupled on a small street DEM
(mass balance, CLI outputs), ponding agreement with SWMM's own ALLOW_PONDING, and bad input."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from affine import Affine
from click.testing import CliRunner

from gisdata.errors import TwinError
from gisdata.raster import Raster, write_geotiff
from hydraulics.dual_drainage import (
    DatumWarning,
    DualDrainageInputError,
    DualDrainageOptions,
    UncoupledNodesWarning,
    run_dual_drainage,
)
from hydraulics.exchange import (
    FREE_WEIR,
    NO_FLOW,
    ORIFICE_DOWN,
    ORIFICE_UP,
    SUBMERGED_WEIR,
    ExchangeInputError,
    ExchangeParams,
    Exchanger,
    exchange_flow,
    inlet_capacity_m3s,
)
from hydraulics.run import run_swmm
from twin.cli import cli

EA8B = Path(__file__).resolve().parents[2] / "shared" / "data" / "swmm" / "ea_test8b" / "test8b_drainage_ponding.inp"
J1 = (264895.0, 664747.0)


def _twin(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.output


# ----------------------------------------------------------------------------- the equations


def test_exchange_regimes_with_numbers():
    # A = 1 m2, W = 2 sqrt(pi) = 3.5449 m, A/W = 0.2821 m; ground 10 m
    head = np.array([10.5, 9.0, 10.05, 10.1, 10.2])
    depth = np.array([0.0, 0.1, 0.1, 0.5, 0.2])
    q, regime = exchange_flow(head, np.full(5, 10.0), depth, np.ones(5))
    assert list(regime) == [ORIFICE_UP, FREE_WEIR, SUBMERGED_WEIR, ORIFICE_DOWN, NO_FLOW]
    # 0.167 sqrt(2 g 0.5); -(2/3) 0.54 W 0.1^1.5 sqrt(2g); -0.056 W 0.1 sqrt(2 g 0.1); -0.167 sqrt(2 g 0.4); 0
    np.testing.assert_allclose(q, [0.52306, -0.178754, -0.0278063, -0.467839, 0.0], rtol=1e-4, atol=1e-12)


def test_coefficients_are_configurable():
    q1, _ = exchange_flow([10.5], [10.0], [0.0], [1.0])
    q2, _ = exchange_flow([10.5], [10.0], [0.0], [1.0], ExchangeParams(orifice_coeff=0.334))
    assert q2[0] == pytest.approx(2 * q1[0])
    with pytest.raises(ExchangeInputError, match="orifice_coeff=-1"):
        ExchangeParams(orifice_coeff=-1)


def test_relaxation_damping_and_limits():
    ex = Exchanger([1.0], cell_area_m2=4.0)
    q = ex.step([10.5], [10.0], [0.0], 5.0)
    assert q[0] == pytest.approx(0.8 * 0.52306, rel=1e-4)                 # relaxed against the start (0)
    q = ex.step([9.0], [10.0], [0.1], 5.0)                                 # reverses: relaxed, then halved
    assert q[0] == pytest.approx(0.5 * (0.8 * -0.178754 + 0.2 * 0.8 * 0.52306), rel=1e-4)
    thin = Exchanger([1.0], cell_area_m2=1.0)
    assert thin.step([9.0], [10.0], [0.01], 5.0)[0] == pytest.approx(-0.01 * 1.0 / 5.0)  # what the cell holds
    capped = Exchanger([1.0], cell_area_m2=100.0, capacity_m3s=inlet_capacity_m3s(2, 0.02, 1))
    assert capped.step([9.0], [10.0], [0.3], 5.0)[0] == pytest.approx(-0.04)              # 2 inlets x 20 L/s
    node = Exchanger([1.0], cell_area_m2=4.0)
    assert node.step([12.0], [10.0], [0.0], 5.0, spill_max_m3s=[0.1])[0] == pytest.approx(0.1)  # what the node gives


@pytest.mark.parametrize("n, cap, word", [(1, 0.0, "inlet capacity = 0"), (2, -0.01, "inlet capacity = -0.01"),
                                          (1, float("nan"), "inlet capacity = nan"), (0, 0.02, "inlets per node = 0")])
def test_inlet_capacity_refused(n, cap, word):
    with pytest.raises(ExchangeInputError, match=word) as err:
        inlet_capacity_m3s(n, cap, 3)
    assert isinstance(err.value, TwinError) and "\n" not in str(err.value)
    with pytest.raises(ExchangeInputError, match=word):
        DualDrainageOptions(inlets_per_node=n, inlet_capacity_m3s=cap)


# ----------------------------------------------------------------------------- EA 8B on a small street


def _street_dem(path: Path, cell: float = 6.0, offset_m: float = 0.0) -> Path:
    """A street falling 0.5 % east, 12 m carriageway below 0.12 m kerbs, blocks of raised buildings; J1 on it."""
    rows, cols = 16, 70
    r1, c1 = rows // 2, 15
    yy, xx = np.mgrid[0:rows, 0:cols].astype(float)
    base = 31.46 - 0.005 * (xx - c1) * cell
    off = np.abs(yy - r1) * cell
    z = np.where(off <= 6.0, base, base + 0.12)
    building = (off > 12.0) & ((xx * cell) % 60.0 > 12.0) & (xx < cols - 10)
    z = np.where(building, base + 10.0, z) + offset_m
    transform = Affine(cell, 0, J1[0] - (c1 + 0.5) * cell, 0, -cell, J1[1] + (r1 + 0.5) * cell)
    write_geotiff(Raster(z, transform, "EPSG:27700"), path)
    return path


def test_ea8b_coupled_cli_outputs_and_mass_balance(tmp_path):
    dem = _street_dem(tmp_path / "street.tif")
    out = tmp_path / "dual"
    code, output = _twin("swmm", "run", EA8B, "--surface", "2d", "--dem", dem, "--manning", 0.03, "--out", out,
                         "--no-progress")
    assert code == 0, output
    assert "mass balance" in output and "coupled nodes     1" in output
    assert "J0, J2, J3, J4, J5, J6" in output                      # the uncoupled junctions are named
    summary = json.loads((out / "summary.json").read_text())
    for key in ("coupled_nodes", "mass_balance_error_rel", "to_surface_m3", "to_network_m3", "max_depth_m",
                "rows", "cols", "cell_size_m", "crs", "dem", "bounds"):
        assert key in summary
    assert summary["coupled_nodes"] == 1
    assert 1000 < summary["to_surface_m3"] < 10000                 # J1 surcharges onto the street
    # SWMM alone loses 0.16-0.44 % on this model (its .rpt continuity), so the global error is its error
    # plus the coupling's; the coupling's own share (2D + interface) is round-off
    assert abs(summary["coupling_error_rel"]) <= 1e-6
    assert abs(summary["mass_balance_error_rel"]) <= abs(summary["swmm_routing_error_pct"]) / 100 + 1e-3
    exchange = pd.read_csv(out / "exchange.csv", index_col="time_s")
    assert list(exchange.columns) == ["J1"]
    assert exchange["J1"].max() > 0.5
    spill = exchange.loc[3000:, "J1"]
    assert spill.autocorr(lag=1) > 0.9                              # smooth: no step-to-step flip-flop
    assert (np.diff(np.sign(spill[spill.abs() > 0.05])) == 0).all()   # never reverses while it really flows
    assert exchange["J1"].sum() * 60.0 == pytest.approx(summary["to_surface_m3"] - summary["to_network_m3"],
                                                        rel=1e-6)
    balance = pd.read_csv(out / "mass_balance.csv")
    assert {"time_s", "swmm_storage_m3", "surface_m3", "outfall_m3", "boundary_out_m3", "error_m3",
            "error_rel"} <= set(balance.columns)
    assert balance["time_s"].iloc[-1] == 5 * 3600
    for name in ("max_depth.tif", "final_depth.tif", "nodes.csv"):
        assert (out / name).is_file()
    assert not list(tmp_path.glob(".dual.*"))


def test_uncoupled_junctions_warn(tmp_path):
    dem = _street_dem(tmp_path / "street.tif")
    opts = DualDrainageOptions(exchange_step_s=30, report_step_s=600)
    with pytest.warns(UncoupledNodesWarning, match="6 of 7 junctions"):
        res = run_dual_drainage(EA8B, dem, options=opts)
    assert res.uncoupled == ["J0", "J2", "J3", "J4", "J5", "J6"]
    assert res.nodes.loc["J1", "rim_m"] == pytest.approx(31.46)


@pytest.mark.filterwarnings("ignore::hydraulics.dual_drainage.UncoupledNodesWarning")
def test_datum_mismatch_warns(tmp_path):
    dem = _street_dem(tmp_path / "street.tif", offset_m=5.0)
    with pytest.warns(DatumWarning, match=r"J1: rim 31.46 m, ground 36.46 m"):
        run_dual_drainage(EA8B, dem, options=DualDrainageOptions(exchange_step_s=30, report_step_s=600))


# ----------------------------------------------------------------------------- ponding agreement

_POND_INP = """[OPTIONS]
FLOW_UNITS CMS
FLOW_ROUTING DYNWAVE
START_DATE 01/01/2020
START_TIME 00:00:00
REPORT_START_DATE 01/01/2020
REPORT_START_TIME 00:00:00
END_DATE 01/01/2020
END_TIME 03:00:00
REPORT_STEP 00:00:30
ROUTING_STEP 1
ALLOW_PONDING YES

[REPORT]
NODES ALL

[JUNCTIONS]
J1 10.0 2.0 0 0 {pond}

[OUTFALLS]
O1 9.0 FREE

[CONDUITS]
C1 J1 O1 50 0.013 0 0 0

[XSECTIONS]
C1 CIRCULAR 0.3 0 0 0 1

[INFLOWS]
J1 FLOW inq

[TIMESERIES]
inq 0 0
inq 0.5 0.6
inq 1.0 0

[COORDINATES]
J1 1001 2001
O1 1060 2001
"""


_FT = 0.3048


def _in_cfs(model: str) -> str:
    """The same model in US units (ft, ft2, cfs): checks the unit conversions of the coupling."""
    ft, cfs = 1 / _FT, 1 / 0.028316846592
    out = []
    for line in model.splitlines():
        t = line.split()
        if t[:1] == ["FLOW_UNITS"]:
            line = "FLOW_UNITS CFS"
        elif t[:1] == ["J1"] and len(t) == 6:
            line = f"J1 {10 * ft} {2 * ft} 0 0 {float(t[5]) * ft * ft}"
        elif t[:1] == ["O1"] and len(t) == 3:
            line = f"O1 {9 * ft} FREE"
        elif t[:1] == ["C1"] and t[1] == "J1":
            line = f"C1 J1 O1 {50 * ft} 0.013 0 0 0"
        elif t[:1] == ["C1"] and t[1] == "CIRCULAR":
            line = f"C1 CIRCULAR {0.3 * ft} 0 0 0 1"
        elif t[:2] == ["inq", "0.5"]:
            line = f"inq 0.5 {0.6 * cfs}"
        out.append(line)
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("units", ["CMS", "CFS"])
def test_ponding_agreement_walled_basin(tmp_path, units):
    """A 20 m x 20 m walled basin at rim level around J1: the peak ponded depth of the coupled run (stored
    volume / basin area) matches SWMM's own ponding with that area within 5 %, in SI and in US units."""
    cell, inner = 2.0, 10
    n = inner + 4
    z = np.full((n, n), 17.0)                                       # 5 m walls
    z[2:-2, 2:-2] = 12.0                                            # basin floor = J1's rim
    r1 = n // 2
    dem = tmp_path / "basin.tif"
    write_geotiff(Raster(z, Affine(cell, 0, 1001 - (r1 + 0.5) * cell, 0, -cell, 2001 + (r1 + 0.5) * cell),
                         "EPSG:32632"), dem)
    area = inner * inner * cell * cell
    model = _POND_INP.format(pond=area)
    if units == "CFS":
        model = _in_cfs(model)
    swmm_peak = run_swmm(model).node["depth_m"]["J1"].max() - 2.0
    res = run_dual_drainage(model, dem, options=DualDrainageOptions(report_step_s=30))
    ours_peak = res.mass_balance["surface_m3"].max() / area
    assert swmm_peak > 0.5                                          # the test ponds for real
    assert ours_peak == pytest.approx(swmm_peak, rel=0.05)
    assert res.summary["to_network_m3"] > 0.9 * res.summary["to_surface_m3"]   # the basin drains back
    assert abs(res.summary["coupling_error_rel"]) <= 1e-6
    assert abs(res.summary["mass_balance_error_rel"]) <= 1e-3      # global, SWMM's own error included


# ----------------------------------------------------------------------------- bad input


def test_dem_covering_no_node_is_one_line(tmp_path):
    dem = tmp_path / "far.tif"
    write_geotiff(Raster(np.full((10, 10), 30.0), Affine(2.0, 0, 100.0, 0, -2.0, 200.0), "EPSG:27700"), dem)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DualDrainageInputError, match=r"covers none of the 7 junctions") as err:
            run_dual_drainage(EA8B, dem)
    assert str(dem) in str(err.value) and "\n" not in str(err.value)
    out = tmp_path / "o"
    code, output = _twin("swmm", "run", EA8B, "--surface", "2d", "--dem", dem, "--out", out, "--no-progress")
    assert code == 2 and output.strip().count("\n") == 0 and "covers none" in output
    assert not out.exists() and not list(tmp_path.glob(".o.*"))


@pytest.mark.parametrize("args, word", [
    (["--inlets", 2, "--inlet-capacity", 0], "inlet capacity = 0"),
    (["--inlets", 2, "--inlet-capacity", -1], "inlet capacity = -1"),
    (["--manning", 0], "--manning 0"),
    (["--exchange-step", 60], "exchange step 60 s"),
])
def test_cli_refuses_bad_options_in_one_line(tmp_path, args, word):
    dem = _street_dem(tmp_path / "street.tif")
    out = tmp_path / "o"
    code, output = _twin("swmm", "run", EA8B, "--surface", "2d", "--dem", dem, *args, "--out", out, "--no-progress")
    assert code == 2 and word in output and output.strip().count("\n") == 0
    assert not out.exists()


def test_cli_needs_dem_and_out(tmp_path):
    code, output = _twin("swmm", "run", EA8B, "--surface", "2d", "--out", tmp_path / "o")
    assert code == 2 and "--dem" in output
    code, output = _twin("swmm", "run", EA8B, "--dem", tmp_path / "x.tif")
    assert code == 2 and "--surface 2d" in output
