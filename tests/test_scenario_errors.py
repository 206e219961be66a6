"""Bad scenario input: the message names the key, the value and what was expected; nothing half-written."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from scenarios.batch import BatchError, SchedulerUnreachableError, run_batch
from scenarios.schema import (
    ScenarioError,
    ScenarioFileNotFoundError,
    load_scenario,
    validate_scenario,
)
from scenarios.sweep import plan_sweep
from twin.cli import cli

BASE = {"scenario": {"name": "bad"}}


@pytest.mark.parametrize("data, expected", [
    ({"scenario": {"name": "x"}, "populaton": {}}, "unknown section [populaton]; did you mean 'population'?"),
    ({"scenario": {"name": "x"}, "population": {"citizen": 10}}, "unknown key 'citizen' in [population]; did you mean 'citizens'?"),
    ({"scenario": {"name": "x"}, "dispatch": {"stratgy": "priority"}}, "did you mean 'strategy'?"),
    ({"scenario": {"name": "x"}, "period": {"hour": 3}}, "did you mean 'hours'?"),
    ({"scenario": {"name": "x"}, "rain": {"kind": "design", "retrun_period_yr": 5}}, "did you mean 'return_period_yr'?"),
    ({"scenario": {"name": "x"}, "rain": {"kind": "design", "file": "a.csv"}}, "'file' belongs to rain kind ['observed', 'forecast']"),
    ({"scenario": {"name": "x"}, "rain": {"kind": "desing"}}, "rain.kind = 'desing': unknown kind; did you mean 'design'?"),
    ({"scenario": {"name": "x"}, "sweep": {"methd": "grid"}}, "did you mean 'method'?"),
    ({"scenario": {"name": "x"}, "policies": {"elderly_frendly": True}}, "did you mean 'elderly_friendly'?"),
    ({"scenario": {"name": "x"}, "crews": {"departments": {"drainge": 3}}}, "unknown department 'drainge'; did you mean 'drainage'?"),
    ({"scenario": {"name": "x"}, "dispatch": {"strategy": "nearst"}}, "dispatch.strategy = 'nearst': unknown strategy; did you mean 'nearest'?"),
    ({"scenario": {"name": "x"}, "outputs": {"tables": ["incident"]}}, "did you mean 'incidents'?"),
    ({"scenario": {"name": "x"}, "city": {"source": "demoo"}}, "city.source = 'demoo'"),
    ({"scenario": {"name": "x"}, "rain": {"kind": "design", "idf": "bejing"}}, "did you mean 'beijing'?"),
    ({"scenario": {"nam": "x"}}, "unknown key 'nam' in [scenario]; did you mean 'name'?"),
])
def test_unknown_keys_and_names_suggest_the_closest(data, expected):
    with pytest.raises(ScenarioError) as e:
        validate_scenario(data)
    assert expected in str(e.value)


@pytest.mark.parametrize("section, key, value, expected", [
    ("population", "citizens", "many", "population.citizens = 'many'"),
    ("population", "citizens", -5, "population.citizens = -5"),
    ("period", "hours", "3 m", "period.hours = '3 m': 'm' is a length unit; expected a duration"),
    ("period", "hours", "3 parsecs", "unknown unit 'parsecs'"),
    ("period", "hours", True, "period.hours = True"),
    ("period", "tick_s", 0, "period.tick_s = 0"),
    ("hydraulics", "coupling_step_s", "5 m", "hydraulics.coupling_step_s = '5 m'"),
    ("hydraulics", "car_closed_m", "2 h", "hydraulics.car_closed_m = '2 h': 'h' is a duration unit; expected a length"),
    ("crews", "shifts", 4, "crews.shifts = 4"),
    ("policies", "staging_max_share", 1.5, "policies.staging_max_share = 1.5"),
    ("dispatch", "merge", "yes please", "dispatch.merge = 'yes please'"),
])
def test_wrong_types_values_and_units_name_key_and_value(section, key, value, expected):
    with pytest.raises(ScenarioError) as e:
        validate_scenario({**BASE, section: {key: value}})
    assert expected in str(e.value)


def test_missing_files_name_the_key_and_the_path(tmp_path):
    with pytest.raises(ScenarioFileNotFoundError) as e:
        validate_scenario({**BASE, "rain": {"kind": "observed", "file": "no_such_rain.dat"}}, base_dir=tmp_path)
    assert "rain.file = 'no_such_rain.dat': file not found" in str(e.value)
    assert str(tmp_path / "no_such_rain.dat") in str(e.value)
    with pytest.raises(ScenarioFileNotFoundError, match=r"city.source = 'nowhere.gpkg'"):
        validate_scenario({**BASE, "city": {"source": "nowhere.gpkg"}}, base_dir=tmp_path)
    with pytest.raises(ScenarioFileNotFoundError, match="scenario file not found"):
        load_scenario(tmp_path / "absent.toml")


def test_inconsistent_sections():
    with pytest.raises(ScenarioError, match="needs its CRS"):
        inp = Path(__file__).resolve().parents[2] / "shared/data/swmm/epa_examples"
        files = sorted(inp.glob("*.inp"))
        if not files:
            pytest.skip("../shared/data not present")
        validate_scenario({**BASE, "city": {"source": str(files[0])}})
    with pytest.raises(ScenarioError, match="rain.start_h=30 must be before the end"):
        validate_scenario({**BASE, "period": {"hours": 24}, "rain": {"kind": "design", "start_h": 30}})
    with pytest.raises(ScenarioError, match="method = 'nrcs' needs depth_mm"):
        validate_scenario({**BASE, "rain": {"kind": "design", "method": "nrcs"}})
    with pytest.raises(ScenarioError, match="cannot stage"):
        validate_scenario({**BASE, "dispatch": {"strategy": "siloed"}, "policies": {"staging": True}})
    with pytest.raises(ScenarioError, match="missing section"):
        validate_scenario({"city": {"source": "demo"}})


def test_bad_toml_and_bad_sweep_parameters(tmp_path):
    p = tmp_path / "broken.toml"
    p.write_text('[scenario]\nname = "x"\nseed = \n', encoding="utf-8")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(p)
    spec = validate_scenario({**BASE, "sweep": {"parameters": {"dispatch.stratgy": ["a"]}}})
    with pytest.raises(ScenarioError, match="unknown sweep parameter 'dispatch.stratgy'; did you mean 'dispatch.strategy'"):
        plan_sweep(spec)
    spec = validate_scenario({**BASE, "sweep": {"parameters": {"dispatch.strategy": ["priority", "fastest"]}}})
    with pytest.raises(ScenarioError, match="dispatch.strategy = 'fastest'"):
        plan_sweep(spec)
    with pytest.raises(ScenarioError, match="a grid needs a list"):
        validate_scenario({**BASE, "sweep": {"parameters": {"population.citizens": {"min": 1, "max": 2}}}})


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_cli_prints_one_line_and_exits_2(tmp_path):
    bad = write(tmp_path, '[scenario]\nname = "x"\n[population]\ncitizen = 3\n')
    res = CliRunner().invoke(cli, ["run", str(bad), "--out", str(tmp_path / "runs")])
    assert res.exit_code == 2
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "did you mean 'citizens'?" in lines[0]
    assert not (tmp_path / "runs").exists()
    res = CliRunner().invoke(cli, ["batch", str(bad), "--out", str(tmp_path / "runs")])
    assert res.exit_code == 2 and not (tmp_path / "runs").exists()
    res = CliRunner().invoke(cli, ["batch"])
    assert res.exit_code == 2 and "SWEEP.toml or --resume" in res.output
    res = CliRunner().invoke(cli, ["batch", "--resume", str(tmp_path)])
    assert res.exit_code == 2 and "not a sweep directory" in res.output


def test_invalid_sweep_value_creates_no_directory(tmp_path):
    sweep = write(tmp_path, """
[scenario]
name = "badsweep"
[sweep]
seeds = [1, 2]
[sweep.parameters]
"population.citizens" = [100, -1]
""")
    with pytest.raises(ScenarioError, match="population.citizens = -1"):
        run_batch(sweep, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unreachable_scheduler_fails_fast_and_leaves_nothing(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sweep = write(tmp_path, """
[scenario]
name = "nowhere"
[period]
hours = 1
[sweep]
seeds = [1, 2]
""")
    t0 = time.monotonic()
    with pytest.raises(SchedulerUnreachableError, match="unreachable"):
        run_batch(sweep, tmp_path / "out", scheduler=f"tcp://127.0.0.1:{port}")
    assert time.monotonic() - t0 < 10
    assert not (tmp_path / "out").exists()
    res = CliRunner().invoke(cli, ["batch", str(sweep), "--out", str(tmp_path / "out"),
                                   "--scheduler", f"tcp://127.0.0.1:{port}"])
    assert res.exit_code == 2 and "unreachable" in res.output
    with pytest.raises(SchedulerUnreachableError, match="malformed"):
        run_batch(sweep, tmp_path / "out", scheduler="http://x")


def test_runs_that_fail_at_run_time_leave_an_incomplete_sweep(tmp_path):
    sweep = write(tmp_path, """
[scenario]
name = "baddepot"
[city]
source = "small"
[period]
hours = 1
[population]
citizens = 50
vendors = 2
[crews]
depots = { NO_SUCH_DEPOT = 2 }
[sweep]
seeds = [1, 2]
[batch]
workers = 1
""")
    res = run_batch(sweep, tmp_path / "out")
    assert res.status == "incomplete" and res.n_failed == 2 and res.n_complete == 0
    assert "crews.depots.NO_SUCH_DEPOT" in next(iter(res.failed.values()))
    d = tmp_path / "out" / "baddepot"
    sweep_json = json.loads((d / "sweep.json").read_text())
    assert sweep_json["status"] == "incomplete" and sweep_json["n_failed"] == 2
    assert not [p for p in d.iterdir() if p.is_dir()]  # a failed run gets no run folder
    assert list(res.results["status"]) == ["failed", "failed"]
    assert res.results["error"].str.contains("NO_SUCH_DEPOT").all()
    assert (d / "results.csv").exists()
    with pytest.raises(BatchError, match="--resume"):
        run_batch(sweep, tmp_path / "out")
    cli_res = CliRunner().invoke(cli, ["batch", "--resume", str(d), "-q"])
    assert cli_res.exit_code == 2 and "2 run(s) failed" in cli_res.output


def test_a_sweep_directory_is_locked_while_a_batch_runs(tmp_path):
    from scenarios.batch import _locked

    sweep = write(tmp_path, '[scenario]\nname = "locked"\n[period]\nhours = 1\n[sweep]\nseeds = [1]\n')
    d = tmp_path / "out" / "locked"
    d.mkdir(parents=True)
    (d / "sweep.json").write_text(json.dumps({"format": "citytwin-sweep/1", "name": "locked", "scenario": {
        "scenario": {"name": "locked"}}, "runs": []}), encoding="utf-8")
    with _locked(d), pytest.raises(BatchError, match="another batch is running"):
        run_batch(resume=d)
    with pytest.raises(BatchError, match="already holds sweep"):
        run_batch(sweep, tmp_path / "out")
