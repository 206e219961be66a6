"""SWMM model builder (hydraulics.build): .inp content, rain forms, real engine runs, flood behaviour."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gisdata.idf import DEFAULT_IDF
from gisdata.synth import generate_city
from hydraulics.build import ModelBuildError, build_swmm, write_swmm_inp


def chicago(return_period_yr: float, duration_min: int = 120, r: float = 0.4, step_min: int = 5) -> pd.Series:
    """Chicago (Keifer-Chu) hyetograph from the Beijing IDF, mm/h per 5-min step (index: elapsed time).

    Uses :func:`hydraulics.rainfall.chicago_storm` when it is there; the local
    formula is the same cumulative-curve construction.
    """
    try:
        from hydraulics.rainfall import chicago_storm
    except ImportError:
        chicago_storm = None
    if chicago_storm is not None:
        storm = chicago_storm(DEFAULT_IDF, return_period_yr, duration_min, r=r, step_min=step_min)
        s = storm.intensity_mm_h.iloc[:, 0]
        return pd.Series(s.to_numpy(), index=pd.to_timedelta(s.index.to_numpy(), unit="s"))
    t = np.arange(0, duration_min + step_min, step_min, dtype=float)
    tp = r * duration_min

    def depth(T):
        return np.array([DEFAULT_IDF.depth_mm(x, return_period_yr) if x > 0 else 0.0 for x in np.atleast_1d(T)])

    total = DEFAULT_IDF.depth_mm(duration_min, return_period_yr)
    cum = np.where(t < tp, r * (total - depth((tp - t) / r)), r * total + (1 - r) * depth((t - tp) / (1 - r)))
    return pd.Series(np.diff(cum) * 60 / step_min, index=pd.to_timedelta(t[:-1], unit="min"))


def run_engine(inp: Path) -> dict:
    """Run the real SWMM engine on ``inp`` in its own process; return flooding and continuity from the .rpt."""
    rpt, out = inp.with_suffix(".rpt"), inp.with_suffix(".out")
    code = f"from swmm.toolkit import solver; solver.swmm_run({str(inp)!r}, {str(rpt)!r}, {str(out)!r})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    text = rpt.read_text() if rpt.exists() else ""
    assert proc.returncode == 0 and "ERROR" not in text, proc.stderr[-2000:] + text[:2000]
    errors = [float(x) for x in re.findall(r"Continuity Error \(%\) \.+\s+(-?[\d.]+)", text)]
    flooding = text.split("Node Flooding Summary")[1].split("Outfall Loading Summary")[0]
    flooded = [line.split()[0] for line in flooding.splitlines() if re.match(r"\s+J\w+\s+\d", line)]
    return {"runoff_error_pct": errors[0], "routing_error_pct": errors[1], "flooded": flooded}


@pytest.fixture(scope="module")
def small_city():
    return generate_city("small")


def _section(text: str, name: str) -> list[str]:
    body = text.split(f"[{name}]\n")[1].split("\n\n")[0]
    return [line for line in body.splitlines() if line and not line.startswith(";")]


def test_inp_holds_every_element(small_city):
    text = build_swmm(small_city, rain_gauges=chicago(2))
    nodes = small_city.nodes
    assert len(_section(text, "JUNCTIONS")) == (nodes["node_type"] == "junction").sum()
    assert len(_section(text, "OUTFALLS")) == (nodes["node_type"] == "outfall").sum()
    assert len(_section(text, "CONDUITS")) == len(small_city.conduits) == len(_section(text, "XSECTIONS"))
    assert len(_section(text, "SUBCATCHMENTS")) == len(small_city.subcatchments) == len(_section(text, "INFILTRATION"))
    assert len(_section(text, "COORDINATES")) == len(nodes)
    gauges = small_city.sensors.index[small_city.sensors["sensor_type"] == "rain_gauge"]
    assert len(_section(text, "RAINGAGES")) == len(gauges)
    assert {row.split()[1] for row in _section(text, "SUBCATCHMENTS")} <= set(gauges)
    options = dict(row.split(None, 1) for row in _section(text, "OPTIONS"))
    assert options["FLOW_UNITS"].strip() == "CMS" and options["FLOW_ROUTING"].strip() == "DYNWAVE"
    assert options["ALLOW_PONDING"].strip() == "NO"
    # Area in hectares, junction depth = rim - invert.
    first = _section(text, "SUBCATCHMENTS")[0].split()
    assert float(first[3]) == pytest.approx(small_city.subcatchments.iloc[0]["area_m2"] / 1e4, rel=1e-4)
    j = _section(text, "JUNCTIONS")[0].split()
    assert float(j[2]) == pytest.approx(small_city.nodes.loc[j[0], "max_depth_m"], abs=1e-3)


def test_rain_forms_and_dates(tiny_city):
    rain = pd.Series([0.0, 30.0, 10.0], index=pd.to_timedelta([0, 5, 10], unit="min"))
    text = build_swmm(tiny_city, rain_gauges=rain, drain_time_h=1)
    options = dict(row.split(None, 1) for row in _section(text, "OPTIONS"))
    assert options["START_TIME"].strip() == "00:00:00" and options["END_TIME"].strip() == "01:15:00"
    assert _section(text, "RAINGAGES")[0].split()[:3] == ["RG1", "INTENSITY", "00:05:00"]
    assert _section(text, "TIMESERIES")[-1].split() == ["TS_RG1", "00:15:00", "0"]
    stamped = pd.Series([5.0, 6.0], index=pd.date_range("2023-07-31 08:00", periods=2, freq="10min"))
    options = dict(r.split(None, 1) for r in _section(build_swmm(tiny_city, rain_gauges=stamped), "OPTIONS"))
    assert options["START_DATE"].strip() == "07/31/2023" and options["START_TIME"].strip() == "08:00:00"
    per_gauge = pd.DataFrame({"RG1": [1.0, 2.0]}, index=[0, 300])
    assert "TS_RG1 00:05:00 2" in build_swmm(tiny_city, rain_gauges=per_gauge)
    assert "TS_RG1 00:00:00 0" in build_swmm(tiny_city)  # dry model


def test_bad_rain_and_bad_city_raise_typed_errors(tiny_city):
    with pytest.raises(ModelBuildError, match="evenly spaced"):
        build_swmm(tiny_city, rain_gauges=pd.Series([1.0, 2.0, 3.0], index=[0, 300, 900]))
    with pytest.raises(ModelBuildError, match="finite and >= 0"):
        build_swmm(tiny_city, rain_gauges=pd.Series([1.0, -2.0], index=[0, 300]))
    with pytest.raises(ModelBuildError, match="no series"):
        build_swmm(tiny_city, rain_gauges=pd.DataFrame({"X": [1.0], "Y": [2.0]}, index=[0]))
    with pytest.raises(ModelBuildError, match="expected None"):
        build_swmm(tiny_city, rain_gauges=[1, 2, 3])
    empty = tiny_city.replace(conduits=tiny_city.conduits.iloc[:0])
    with pytest.raises(ModelBuildError, match="no junctions or conduits"):
        build_swmm(empty)


def test_write_is_atomic_and_options_override(tiny_city, tmp_path):
    path = write_swmm_inp(tiny_city, tmp_path / "sub" / "tiny.inp", chicago(2), options={"routing_step": 5})
    assert path.exists() and not list(path.parent.glob("*.part"))
    assert re.search(r"^ROUTING_STEP\s+5$", path.read_text(), re.M)


def test_tiny_city_runs_in_the_engine(tiny_city, tmp_path):
    result = run_engine(write_swmm_inp(tiny_city, tmp_path / "tiny.inp", chicago(2)))
    assert abs(result["runoff_error_pct"]) < 1 and abs(result["routing_error_pct"]) < 1


def test_small_city_design_storm_behaviour(small_city, tmp_path):
    """The acceptance behaviour on the small preset: a 2-year storm floods almost nothing,
    a 20-year storm floods a handful of nodes but far from all; continuity within 1 %."""
    n_junctions = int((small_city.nodes["node_type"] == "junction").sum())
    two = run_engine(write_swmm_inp(small_city, tmp_path / "p2.inp", chicago(2)))
    twenty = run_engine(write_swmm_inp(small_city, tmp_path / "p20.inp", chicago(20)))
    print(f"\nsmall ({n_junctions} junctions): flooded 2-yr {len(two['flooded'])}, 20-yr {len(twenty['flooded'])}; "
          f"continuity 2-yr {two['runoff_error_pct']}/{two['routing_error_pct']} %, "
          f"20-yr {twenty['runoff_error_pct']}/{twenty['routing_error_pct']} % (runoff/routing)")
    for r in (two, twenty):
        assert abs(r["runoff_error_pct"]) < 1 and abs(r["routing_error_pct"]) < 1, r
    assert len(two["flooded"]) <= 3, two["flooded"]
    assert 5 < len(twenty["flooded"]) < n_junctions / 2, len(twenty["flooded"])
    assert set(two["flooded"]) <= set(twenty["flooded"])


@pytest.mark.slow
def test_demo_city_design_storm_behaviour(tmp_path):
    """Same on the bundled demo city (about 1,000 manholes; ~10-30 s per run)."""
    from gisdata.city import load_city

    demo = load_city("demo")
    n_junctions = int((demo.nodes["node_type"] == "junction").sum())
    two = run_engine(write_swmm_inp(demo, tmp_path / "p2.inp", chicago(2)))
    twenty = run_engine(write_swmm_inp(demo, tmp_path / "p20.inp", chicago(20)))
    print(f"\ndemo ({n_junctions} junctions): flooded 2-yr {len(two['flooded'])}, 20-yr {len(twenty['flooded'])}; "
          f"continuity 2-yr {two['runoff_error_pct']}/{two['routing_error_pct']} %, "
          f"20-yr {twenty['runoff_error_pct']}/{twenty['routing_error_pct']} % (runoff/routing)")
    for r in (two, twenty):
        assert abs(r["runoff_error_pct"]) < 1 and abs(r["routing_error_pct"]) < 1, r
    assert len(two["flooded"]) <= 3, two["flooded"]
    assert 20 <= len(twenty["flooded"]) < n_junctions / 2, len(twenty["flooded"])
