"""Issue #12, defect class 3 (and the tracebacks of class 5 in these readers): tiny inputs must not
exhaust memory or time.  Every size, duration, count and physical value is range-checked before
anything is allocated, with a one-line error naming the field and the limit (gisdata.limits).
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from gisdata.errors import TwinError
from gisdata.limits import (
    MAX_FORECAST_HOURS,
    MAX_MEMBERS,
    MAX_QPF_LEAD_H,
    MAX_RAIN_INTENSITY_MM_H,
    LimitError,
    check_range,
)

BUDGET_BYTES = 50_000_000  # a refused 30-byte file may cost a few MB of parsing, never gigabytes


def _peak(fn):
    """Run ``fn`` and return (exception raised, peak Python allocation in bytes)."""
    tracemalloc.start()
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the test inspects it
        err = exc
    else:
        err = None
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return err, peak


def _one_line(err: BaseException) -> str:
    msg = str(err)
    assert "\n" not in msg
    return msg


# ----------------------------------------------------------------------------- the helper


def test_check_range_names_field_value_and_limit():
    with pytest.raises(LimitError, match=r"^--members=1,000,000,000 is out of range; expected 1 <= --members <= 1,000$"):
        check_range("--members", 1_000_000_000, 1, MAX_MEMBERS, integer=True)
    with pytest.raises(LimitError, match=r"tick_s=1e-06 s is out of range; expected 1 <= tick_s <= 3,600 s"):
        check_range("tick_s", 1e-6, 1, 3600, "s")
    for bad in (float("inf"), float("nan"), True, "5", None):
        with pytest.raises(LimitError):
            check_range("x", bad, 0, 1)
    assert isinstance(LimitError("x"), TwinError) and isinstance(LimitError("x"), ValueError)
    assert check_range("n", 3.0, 1, 5, integer=True) == 3


# ----------------------------------------------------------------------------- QPF and rain files


def test_29_byte_qpf_with_a_huge_lead_is_refused_before_allocation(tmp_path):
    from hydraulics.qpf import QPFError, read_qpf

    for lead in ("1e8", "1e9", "1e300", f"{MAX_QPF_LEAD_H + 1:g}"):
        p = tmp_path / "q.csv"
        p.write_text(f"lead_h,RG1_mm_h\n{lead},5\n")
        assert p.stat().st_size < 40
        err, peak = _peak(lambda: read_qpf(p))
        assert isinstance(err, QPFError), err
        assert f"{p}:2" in _one_line(err) and "MAX_QPF_LEAD_H" in str(err) and "384 h" in str(err)
        assert peak < BUDGET_BYTES
    # the limit itself is accepted
    p.write_text("lead_h,RG1_mm_h\n" + "".join(f"{h},1\n" for h in range(int(MAX_QPF_LEAD_H) + 1)))
    assert read_qpf(p).n_steps == MAX_QPF_LEAD_H + 1


def test_three_row_rain_csv_spanning_centuries_is_refused(tmp_path):
    from hydraulics.rainfall import RainFileError, read_rain_csv

    p = tmp_path / "r.csv"
    p.write_text("time,RG1_mm_h\n1700-01-01 00:00,1\n1700-01-01 00:01,1\n2200-01-01 00:00,1\n")
    err, peak = _peak(lambda: read_rain_csv(p))
    assert isinstance(err, RainFileError), err
    assert "spans" in _one_line(err) and "MAX_RAIN_SPAN_DAYS" in str(err)
    assert peak < BUDGET_BYTES
    p.write_text("elapsed_s,RG1_mm_h\n0,1\n1,1\n3000000000,1\n")
    err, peak = _peak(lambda: read_rain_csv(p))
    assert isinstance(err, RainFileError) and peak < BUDGET_BYTES
    p.write_text("elapsed_s,RG1_mm_h\n0,1\ninf,1\n")
    with pytest.raises(RainFileError, match=":3: time 'inf'"):
        read_rain_csv(p)


@pytest.mark.parametrize("value", ["1e308", "1001", "5e3"])
def test_rain_intensity_above_1000_mm_h_is_refused_everywhere(tmp_path, value):
    from hydraulics.build import ModelBuildError, build_swmm
    from hydraulics.qpf import QPFError, read_qpf
    from hydraulics.rainfall import RainDataError, RainFileError, RainSeries, read_rain_csv

    p = tmp_path / "r.csv"
    p.write_text(f"elapsed_s,RG1_mm_h\n0,1\n300,{value}\n")
    with pytest.raises(RainFileError, match=r"r\.csv:3: column 'RG1_mm_h'.*at most 1000 mm/h"):
        read_rain_csv(p)
    q = tmp_path / "q.csv"
    q.write_text(f"lead_s,RG1_mm_h\n0,1\n300,{value}\n")
    with pytest.raises(QPFError, match=r"q\.csv:3: field 'RG1_mm_h'.*MAX_RAIN_INTENSITY_MM_H"):
        read_qpf(q)
    with pytest.raises(RainDataError, match="at most 1000 mm/h"):
        RainSeries(pd.DataFrame({"RG1": [0.0, float(value)]}, index=[0, 300]), step_s=300)
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import make_tiny_city

    with pytest.raises(ModelBuildError, match="MAX_RAIN_INTENSITY_MM_H"):
        build_swmm(make_tiny_city(), rain_gauges=pd.Series([1.0, float(value)], index=[0, 300]))
    assert MAX_RAIN_INTENSITY_MM_H == 1000.0


def test_resampling_or_padding_cannot_blow_up():
    from hydraulics.qpf import fit_horizon
    from hydraulics.rainfall import RainSeries

    s = RainSeries(pd.DataFrame({"RG1": [1.0, 2.0]}, index=[0, 86400]), step_s=86400)
    err, peak = _peak(lambda: fit_horizon(s, 1e12, step_s=1))
    assert isinstance(err, LimitError) and "horizon_s" in str(err) and peak < BUDGET_BYTES
    decades = RainSeries(pd.DataFrame({"RG1": np.ones(20 * 365)}, index=np.arange(20 * 365) * 86400), step_s=86400)
    err, peak = _peak(lambda: decades.resample(1))
    assert isinstance(err, LimitError) and "MAX_RAIN_CELLS" not in str(err) and "values" in str(err)
    assert peak < BUDGET_BYTES


# ----------------------------------------------------------------------------- scenario TOML


@pytest.mark.parametrize("section, body, key", [
    ("rain", 'kind = "design"\nduration_min = 1e9', "rain.duration_min"),
    ("crews", "departments = { drainage = 1e8 }", "crews.departments"),
    ("crews", "departments = { drainage = 100000000 }", "MAX_CREWS"),
    ("period", "tick_s = 1e-6", "period.tick_s"),
    ("period", "hours = 1e9", "period.hours"),
    ("rain", 'kind = "design"\nreturn_period_yr = -5', "rain.return_period_yr"),
    ("rain", 'kind = "design"\nmethod = "block"\nintensity_mm_h = 1e308', "rain.intensity_mm_h"),
    ("hydraulics", "coupling_step_s = 1e-9", "hydraulics.coupling_step_s"),
    ("dispatch", "merge_radius_m = 1e12", "dispatch.merge_radius_m"),
    ("sweep", "parameters = { \"population.citizens\" = [1,2,3,4,5,6,7,8,9,10] }\nseeds = "
              + str(list(range(20000))), "MAX_SWEEP_RUNS"),
])
def test_scenario_values_out_of_range_are_refused_in_one_line(tmp_path, section, body, key):
    from scenarios.schema import ScenarioError, load_scenario

    p = tmp_path / "s.toml"
    p.write_text(f'[scenario]\nname = "x"\n[{section}]\n{body}\n')
    err, peak = _peak(lambda: load_scenario(p))
    assert isinstance(err, ScenarioError), err
    msg = _one_line(err)
    assert msg.startswith(str(p)) and key in msg
    assert peak < BUDGET_BYTES


@pytest.mark.parametrize("payload", [
    "x = " + "[" * 5000 + "]" * 5000,
    "x = " + "{a = " * 3000 + "1" + "}" * 3000,
    "[dispatch.params" + ".a" * 200 + "]\nb = 1",
])
def test_deeply_nested_toml_is_refused_in_one_line(tmp_path, payload):
    from scenarios.schema import ScenarioError, load_scenario

    p = tmp_path / "deep.toml"
    p.write_text('[scenario]\nname = "x"\n' + payload + "\n")
    with pytest.raises(ScenarioError, match="nested") as info:
        load_scenario(p)
    _one_line(info.value)


# ----------------------------------------------------------------------------- command line


def _cli(*args):
    from twin.cli import cli

    res = CliRunner().invoke(cli, [str(a) for a in args])
    return res.exit_code, res.output.strip()


@pytest.mark.parametrize("args, expect", [
    (["--members", "1000000000"], "--members=1,000,000,000 is out of range; expected 1 <= --members <= 1,000"),
    (["--hours", "1e9"], f"--hours=1e+09 h is out of range; expected 0 < --hours <= {MAX_FORECAST_HOURS:g} h"),
    (["--hours", "inf"], "--hours=inf is not a finite number"),
    (["--workers", "0"], "--workers=0 is out of range"),
    (["--return-period", "-5"], "--return-period=-5 yr is out of range"),
    (["--start-in", "100000h"], "--start-in=100,000 h is out of range"),
])
def test_forecast_options_are_range_checked_before_any_work(tmp_path, args, expect):
    base = {"--storm": "chicago", "--return-period": "20", "--duration": "2h", "--out": tmp_path / "fc",
            "--city": "demo"}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = v
    flat = [x for kv in base.items() for x in kv]
    code, out = _cli("forecast", *flat, "--no-progress")
    assert code == 2, out
    assert out.count("\n") == 0 and expect in out
    assert not (tmp_path / "fc").exists()


@pytest.mark.parametrize("args, expect", [
    (["--start", "garbage"], "--start 'garbage': not a date-time"),
    (["--return-period", "-5"], "--return-period=-5 yr is out of range"),
    (["--return-period", "nan"], "--return-period=nan is not a finite number"),
    (["--coupling-step", "0.0001s"], "--coupling-step=0.0001 s is out of range"),
])
def test_swmm_run_options_give_one_line_errors(tmp_path, args, expect):
    model = Path(__file__).resolve().parents[2] / "shared/data/swmm/epa_examples/Example1.inp"
    code, out = _cli("swmm", "run", model, "--no-progress", *args)
    assert code == 2, out
    assert out.count("\n") == 0 and expect in out


def test_run_options_step_lengths_are_bounded():
    from hydraulics.run import RunOptions

    for bad in (1e-6, float("inf"), float("nan"), 1e9):
        with pytest.raises(LimitError, match="coupling_step_s"):
            RunOptions(coupling_step_s=bad)
    with pytest.raises(LimitError, match="duration_s"):
        RunOptions(duration_s=float("inf"))


def test_design_storm_inputs_are_bounded():
    from hydraulics.rainfall import chicago_storm

    with pytest.raises(LimitError, match="duration_min=1e\\+09 min is out of range"):
        chicago_storm("beijing", 20, 1e9)
    with pytest.raises(LimitError, match="return_period_yr=-5 yr"):
        chicago_storm("beijing", -5, 60)
    assert np.isfinite(chicago_storm("beijing", 20, 60).max_depth_mm)


@pytest.mark.parametrize("body", ["[rain]\nkind = {}", "[rain]\nkind = [1]", "[crews]\ndepartments = { drainage = inf }",
                                  "[sweep]\nparameters = { \"period.hours\" = { min = 0, max = inf } }\nmethod = \"lhs\"\n"
                                  "samples = 2"])
def test_odd_scenario_values_are_one_line_errors_not_tracebacks(tmp_path, body):
    from scenarios.schema import ScenarioError, load_scenario

    p = tmp_path / "s.toml"
    p.write_text(f'[scenario]\nname = "x"\n{body}\n')
    with pytest.raises(ScenarioError) as info:
        load_scenario(p)
    _one_line(info.value)


def test_ncdc_record_off_the_hourly_grid_is_a_one_line_error(tmp_path):
    from hydraulics.rainfall import RainFileError, read_ncdc

    src = Path(__file__).resolve().parents[2] / "shared/data/rain/ncdc_hourly/sta310301.dat"
    lines = src.read_text().splitlines()[:6]
    lines[2] = lines[2].replace("0300  00000", "0310  00000", 1)  # 03:10 in an hourly record
    p = tmp_path / "r.dat"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(RainFileError, match=r"r\.dat:3: .*not on the 3600 s grid") as info:
        read_ncdc(p)
    _one_line(info.value)


@pytest.mark.parametrize("text, expect", [
    ("Time\n0\n", "no value columns"),
    ("Time,A\n", "no data rows"),
    ("Hour,2,10\n1,inf,2\n", "'inf' is not a finite number"),
    ("Hour,2,1e99\n1,1,2\n", "return periods"),
])
def test_idf_and_curve_tables_never_crash(tmp_path, text, expect):
    from hydraulics.rainfall import RainFileError, read_design_storm_curves, read_idf_table

    p = tmp_path / "t.csv"
    p.write_text(text)
    reader = read_idf_table if text.startswith("Hour") else read_design_storm_curves
    with pytest.raises(RainFileError, match=expect) as info:
        reader(p)
    _one_line(info.value)


def test_a_swmm_run_of_a_thousand_years_at_one_second_is_refused_before_stepping(tmp_path):
    from hydraulics.run import run_swmm

    src = Path(__file__).resolve().parents[2] / "shared/data/swmm/epa_examples/Example1.inp"
    text = src.read_text().replace("END_DATE            \t01/02/1998", "END_DATE            \t01/02/2998")
    text = text.replace("ROUTING_STEP        \t0:01:00", "ROUTING_STEP        \t0:00:01")
    assert "2998" in text and "0:00:01" in text
    inp = tmp_path / "m.inp"
    inp.write_text(text)
    err, _ = _peak(lambda: run_swmm(inp))
    assert isinstance(err, LimitError), err
    assert "MAX_ROUTING_STEPS" in _one_line(err) and str(inp) in str(err)
