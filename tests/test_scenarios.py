"""Scenario schema, sweeps, the scenario runner and the run store (small city, a few hours)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scenarios.runner import default_run_id, run_scenario
from scenarios.schema import (
    SweepSpec,
    load_scenario,
    parameter_paths,
    scenario_hash,
    validate_scenario,
)
from scenarios.store import (
    clean_temporaries,
    is_complete,
    list_runs,
    read_flat_kpis,
    read_run_table,
    write_run,
)
from scenarios.sweep import plan_sweep, sample_points

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SCENARIO_FILES = sorted((REPO / "scenarios").glob("*.toml"))


def tiny(**over) -> dict:
    """A small scenario: small city, 8 h, a short heavy block storm at 06:30 (market and commute)."""
    data = {
        "scenario": {"name": "tiny", "seed": 5},
        "city": {"source": "small"},
        "period": {"hours": 8},
        "rain": {"kind": "design", "method": "block", "intensity_mm_h": 200, "duration_min": 30, "start_h": 6.5},
        "population": {"citizens": 300, "vendors": 8},
        "crews": {"departments": {"city_management": 2, "drainage": 2, "police": 2, "emergency": 1}},
    }
    for k, v in over.items():
        merge = isinstance(v, dict) and k not in ("rain", "crews")  # a new rain kind replaces the old one
        data[k] = {**data.get(k, {}), **v} if merge else v
    return data


def same(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k, x in a.items():
        y = b[k]
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            continue
        if x != y:
            return False
    return True


# ----------------------------------------------------------------------------- schema


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=lambda p: p.name)
def test_shipped_scenarios_validate(path, monkeypatch):
    if path.name == "osm_city.toml" and not (SHARED / "gis/pyrosm/test.osm.pbf").exists():
        pytest.skip("../shared/data not present")
    monkeypatch.chdir(REPO)  # osm_city.toml names its extract relative to the repository
    spec = load_scenario(path)
    assert spec.name == path.stem
    assert validate_scenario(spec.to_data()) == spec  # resolved data round-trips


def test_shipped_files_cover_the_brief():
    names = {p.stem for p in SCENARIO_FILES}
    assert {"demo_storm_72h", "vendor_enforcement", "dispatch_compare", "osm_city"} <= names
    assert load_scenario(REPO / "scenarios/dispatch_compare.toml").sweep is not None
    demo = load_scenario(REPO / "scenarios/demo_storm_72h.toml")
    assert demo.period.hours == 72 and demo.rain.kind == "design"


def test_osm_path_is_resolved_relative_to_the_repository(monkeypatch, tmp_path):
    if not (SHARED / "gis/pyrosm/test.osm.pbf").exists():
        pytest.skip("../shared/data not present")
    monkeypatch.chdir(REPO)
    spec = load_scenario(REPO / "scenarios/osm_city.toml")
    assert Path(spec.city.source) == (SHARED / "gis/pyrosm/test.osm.pbf").resolve()


@pytest.mark.parametrize("given, key, expected", [
    ({"period": {"hours": "90 min"}}, ("period", "hours"), 1.5),
    ({"period": {"hours": "1 d"}}, ("period", "hours"), 24.0),
    ({"period": {"tick_s": "2 min"}}, ("period", "tick_s"), 120.0),
    ({"hydraulics": {"car_closed_m": "10 cm"}}, ("hydraulics", "car_closed_m"), 0.1),
    ({"dispatch": {"merge_window_s": "0.5 h"}}, ("dispatch", "merge_window_s"), 1800.0),
    ({"rain": {"kind": "design", "method": "block", "intensity_mm_h": "2 in/h"}}, ("rain", "intensity_mm_h"), 50.8),
])
def test_quantities_with_units_are_converted(given, key, expected):
    spec = validate_scenario({"scenario": {"name": "u"}, **given})
    assert getattr(getattr(spec, key[0]), key[1]) == pytest.approx(expected)


def test_scenario_hash_and_run_id():
    a = validate_scenario(tiny())
    b = validate_scenario(tiny())
    c = validate_scenario(tiny(population={"citizens": 301}))
    assert scenario_hash(a) == scenario_hash(b) != scenario_hash(c)
    assert default_run_id(a) == default_run_id(b)
    assert default_run_id(a).startswith("tiny-s5-")


# ----------------------------------------------------------------------------- sweeps


def test_grid_sweep_crosses_parameters_with_seeds():
    spec = validate_scenario(tiny(sweep={"method": "grid", "seeds": [1, 2, 3], "parameters": {
        "dispatch.strategy": ["siloed", "priority"], "population.vendors": [5, 10]}}))
    runs = plan_sweep(spec)
    assert len(runs) == 2 * 2 * 3
    assert len({r.run_id for r in runs}) == len(runs)
    assert {(r.params["dispatch.strategy"], r.params["population.vendors"], r.seed) for r in runs} == {
        (s, v, k) for s in ("siloed", "priority") for v in (5, 10) for k in (1, 2, 3)}
    r = runs[-1]
    assert r.scenario["dispatch"]["strategy"] == r.params["dispatch.strategy"]
    assert r.scenario["scenario"]["seed"] == r.seed
    assert [x.run_id for x in plan_sweep(spec)] == [x.run_id for x in runs]  # stable


def test_latin_hypercube_is_stratified_and_seeded():
    sw = SweepSpec(method="lhs", samples=8, sample_seed=3, parameters={
        "rain.return_period_yr": {"min": 2, "max": 50}, "population.vendors": {"min": 10, "max": 80, "integer": True},
        "dispatch.strategy": ["nearest", "priority"]})
    pts = sample_points(sw)
    assert len(pts) == 8
    rp = np.array([p["rain.return_period_yr"] for p in pts])
    assert ((rp >= 2) & (rp <= 50)).all()
    strata = np.floor((rp - 2) / 48 * 8).astype(int)
    assert sorted(strata) == list(range(8))  # one sample per stratum
    assert all(isinstance(p["population.vendors"], int) for p in pts)
    assert sorted(p["dispatch.strategy"] for p in pts) == ["nearest"] * 4 + ["priority"] * 4
    assert sample_points(sw) == pts
    assert sample_points(sw.model_copy(update={"sample_seed": 4})) != pts


def test_parameter_paths_cover_sections():
    paths = parameter_paths()
    for p in ("dispatch.strategy", "population.citizens", "rain.return_period_yr", "hydraulics.coupling_step_s",
              "policies.elderly_friendly", "crews.departments.drainage"):
        assert p in paths


# ----------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def tiny_run():
    return run_scenario(validate_scenario(tiny()))


def test_run_scenario_couples_storm_agents_and_dispatch(tiny_run):
    res = tiny_run
    assert res.status == "complete"
    assert res.kpis["counts.incidents"] > 0 and res.kpis["counts.dispatched"] > 0
    meta = res.manifest["metadata"]
    assert meta["hydraulics"]["flood_volume_m3"] > 0  # the storm floods manholes
    assert len(res.tables["flood_nodes"]) > 0
    assert res.manifest["inputs"]["scenario_sha256"] == scenario_hash(validate_scenario(tiny()))
    assert res.manifest["seed"] == 5 and res.manifest["params"]["strategy"] == "priority"
    assert "pyswmm" in meta["all_versions"] and meta["scenario"]["scenario"]["name"] == "tiny"


def test_same_scenario_and_seed_give_the_same_kpis_and_log(tiny_run):
    again = run_scenario(validate_scenario(tiny()))
    assert same(again.kpis, tiny_run.kpis)
    assert again.events == tiny_run.events  # the event log, byte for byte
    other = run_scenario(validate_scenario(tiny(scenario={"name": "tiny", "seed": 6})))
    assert not same(other.kpis, tiny_run.kpis)


def test_write_run_uses_the_run_store_and_never_duplicates(tiny_run, tmp_path):
    from twin import runstore

    path = write_run(tiny_run, tmp_path)
    assert path == tmp_path / tiny_run.run_id and is_complete(path)
    m = runstore.read_manifest(path)
    assert m["status"] == "complete" and m["format"] == "citytwin-run/1"
    assert set(m["tables"]) == set(tiny_run.tables)
    assert runstore.verify_run(path).ok  # log chain, count, head and table digests
    assert m["events"]["head_sha256"] == tiny_run.manifest["metadata"]["event_log"]["head_sha256"]
    assert m["events"]["n_records"] > 100
    pd.testing.assert_frame_equal(read_run_table(path, "dispatches"), tiny_run.tables["dispatches"],
                                  check_dtype=False)
    assert same(read_flat_kpis(path), tiny_run.kpis)
    mtime = (path / "manifest.json").stat().st_mtime_ns
    write_run(tiny_run, tmp_path)  # a complete run is kept, not written twice
    assert (path / "manifest.json").stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [tiny_run.run_id]
    runs = list_runs(tmp_path)
    assert list(runs["run_id"]) == [tiny_run.run_id] and list(runs["status"]) == ["complete"]
    write_run(tiny_run, tmp_path, overwrite=True)  # --force: replaced in place, still one folder
    assert [p.name for p in tmp_path.iterdir()] == [tiny_run.run_id] and runstore.verify_run(path).ok


def test_an_unfinished_write_is_not_a_run(tiny_run, tmp_path):
    leftover = tmp_path / f".{tiny_run.run_id}.tmp-abcd1234"
    leftover.mkdir()
    (leftover / "incidents.parquet").write_bytes(b"half")
    assert list_runs(tmp_path).empty
    assert clean_temporaries(tmp_path) == 1 and not leftover.exists()


def test_outputs_select_tables_and_log():
    res = run_scenario(validate_scenario(tiny(rain={"kind": "none"}, period={"hours": 2},
                                              outputs={"tables": ["dispatches", "crews"], "event_log": False})))
    assert set(res.tables) == {"dispatches", "crews"} and res.events is None


def test_policies_reach_the_agents():
    base = tiny(rain={"kind": "none"}, period={"hours": 10},
                population={"citizens": 2000, "vendors": 30, "report_prob": 0.6})
    on = run_scenario(validate_scenario({**base, "policies": {"elderly_friendly": True, "staging": True}}))
    off = run_scenario(validate_scenario(base))
    rep_on, rep_off = on.tables["reports"], off.tables["reports"]
    assert {"voice", "proxy"} & set(rep_on["channel"])  # the elderly-friendly channels are used
    assert not {"voice", "proxy"} & set(rep_off["channel"])
    assert (rep_on["age_group"] == "elderly").sum() > (rep_off["age_group"] == "elderly").sum()
    assert on.manifest["params"]["strategy"] == "forecast_staging" and off.manifest["params"]["strategy"] == "priority"


def test_crews_per_depot():
    from gisdata import load_city

    depots = list(load_city("small").depots.index.astype(str))
    data = {**tiny(rain={"kind": "none"}, period={"hours": 1}), "crews": {"depots": {depots[0]: 3}}}
    res = run_scenario(validate_scenario(data))
    assert len(res.tables["crews"]) == 3


def test_observed_rain_window_drives_the_run():
    dat = SHARED / "rain/ncdc_hourly/sta310301.dat"
    if not dat.exists():
        pytest.skip("../shared/data not present")
    from scenarios.runner import build_rain

    spec = validate_scenario(tiny(rain={"kind": "observed", "file": str(dat), "window_start": "1998-01-07T00:00",
                                        "window_hours": 24, "start_h": 0}, period={"hours": 6}))
    rain = build_rain(spec)
    assert rain.n_steps == 24 and rain.max_depth_mm == pytest.approx(78.74, abs=0.01)  # the wettest day of 1998
    res = run_scenario(spec)
    assert res.ok and res.manifest["params"]["storm"]["kind"] == "observed"


def test_swmm_model_city_gets_streets_along_the_sewer():
    inp = SHARED / "swmm/bellinge_small/bellinge_small.inp"
    if not inp.exists():
        pytest.skip("../shared/data not present")
    spec = validate_scenario(tiny(city={"source": str(inp), "crs": "EPSG:32632"}, crews={"shifts": 1}))
    res = run_scenario(spec)
    assert res.ok and "roads: one local street along each conduit" in res.manifest["metadata"]["derived"]
    assert res.manifest["metadata"]["hydraulics"]["flood_volume_m3"] > 0
    assert res.kpis["counts.dispatched"] > 0


def test_cli_run_and_runs_list(tmp_path):
    from click.testing import CliRunner

    from twin.cli import cli

    scen = tmp_path / "quick.toml"
    scen.write_text('[scenario]\nname = "quick"\nseed = 2\n[city]\nsource = "small"\n[period]\nhours = 2\n'
                    '[population]\ncitizens = 100\nvendors = 2\n', encoding="utf-8")
    out = tmp_path / "runs"
    res = CliRunner().invoke(cli, ["run", str(scen), "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert "run quick-s2-" in res.output and "incidents" in res.output
    (run_dir,) = [p for p in out.iterdir() if not p.name.startswith(".")]
    assert is_complete(run_dir)
    again = CliRunner().invoke(cli, ["run", str(scen), "--out", str(out), "-q"])
    assert again.exit_code == 0 and "already complete" in again.output
    listing = CliRunner().invoke(cli, ["runs", "list", str(out)])
    assert listing.exit_code == 0 and run_dir.name in listing.output and "complete" in listing.output
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(scen.read_text() + "[sweep]\nseeds = [1, 2]\n", encoding="utf-8")
    res = CliRunner().invoke(cli, ["run", str(sweep), "--out", str(out)])
    assert res.exit_code == 2 and "twin batch" in res.output


def test_forecast_rain_reads_a_qpf(tmp_path):
    from scenarios.runner import build_rain

    qpf = tmp_path / "qpf.csv"
    qpf.write_text("lead_h,RG1_mm_h\n0,0\n1,0\n2,30\n3,60\n4,0\n", encoding="utf-8")
    spec = validate_scenario(tiny(rain={"kind": "forecast", "file": "qpf.csv", "scale": 2.0}), base_dir=tmp_path)
    rain = build_rain(spec)
    assert rain.step_s == 3600 and rain.max_depth_mm == pytest.approx(180.0)  # (30 + 60) mm x 2
