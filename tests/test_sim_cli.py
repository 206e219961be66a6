"""`twin simulate | compare | replay | log verify | reports import` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from gisdata.city import save_city
from conftest import SHARED_DATA, make_tiny_city
from twin.cli import cli

NYC = SHARED_DATA / "reports" / "nyc311_sample_2024-05-27" / "311_Service_Requests.csv"


def _twin(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return save_city(make_tiny_city(), tmp_path_factory.mktemp("city") / "tiny.gpkg")


@pytest.fixture(scope="module")
def two_runs(tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = []
    for strategy in ("siloed", "forecast_staging"):
        r = _twin("simulate", "--city", tiny, "--hours", 12, "--strategy", strategy, "--seed", 1, "--citizens", 300,
                  "--vendors", 4, "--no-progress", "--out", root / strategy)
        assert r.exit_code == 0, r.output
        assert f"wrote {root / strategy}" in r.output
        out.append(root / strategy)
    return out


def test_simulate_writes_a_complete_run(two_runs):
    r1 = two_runs[0]
    man = json.loads((r1 / "manifest.json").read_text())
    assert man["status"] == "complete" and man["params"]["strategy"] == "siloed" and man["seed"] == 1
    assert {"incidents", "reports", "cases", "dispatches", "crews", "positions"} <= set(man["tables"])
    assert (r1 / "events.jsonl").stat().st_size > 0 and (r1 / "kpis.json").exists()
    assert pd.read_parquet(r1 / "dispatches.parquet").shape[0] == man["tables"]["dispatches"]["rows"]


def test_compare_prints_kpis_side_by_side(two_runs):
    r = _twin("compare", *two_runs)
    assert r.exit_code == 0, r.output
    lines = {ln.split("  ")[0]: ln for ln in r.output.splitlines()}
    for label in ("response p50 (min)", "response p90 (min)", "duplicate dispatches", "coordination time (h)"):
        assert label in lines, label
        assert len(lines[label].split()) >= len(label.split()) + 2  # a value for each run
    assert "siloed" in r.output and "forecast_staging" in r.output


def test_log_verify_intact_then_one_byte_changed(two_runs, tmp_path):
    import shutil

    r = _twin("log", "verify", two_runs[0])
    assert r.exit_code == 0 and "intact" in r.output
    copy = tmp_path / "copy"
    shutil.copytree(two_runs[0], copy)
    log = copy / "events.jsonl"
    lines = log.read_bytes().split(b"\n")
    mid = len(lines) // 2
    i = lines[mid].index(b'"time_s":') + len(b'"time_s":')
    b = bytearray(lines[mid])
    b[i] = ord("7") if b[i] != ord("7") else ord("6")
    lines[mid] = bytes(b)
    log.write_bytes(b"\n".join(lines))
    r = _twin("log", "verify", copy)
    assert r.exit_code == 1
    assert f"record at line {mid + 1} (seq {mid})" in r.output and "edited" in r.output


def test_log_verify_catches_a_cut_end_and_a_changed_table(two_runs, tmp_path):
    import shutil

    cut = tmp_path / "cut"
    shutil.copytree(two_runs[0], cut)
    log = cut / "events.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-1]))
    r = _twin("log", "verify", cut)
    assert r.exit_code == 1 and "truncated" in r.output
    tab = tmp_path / "tab"
    shutil.copytree(two_runs[0], tab)
    pd.read_parquet(tab / "dispatches.parquet").iloc[:-1].to_parquet(tab / "dispatches.parquet")
    r = _twin("log", "verify", tab)
    assert r.exit_code == 1 and "dispatches" in r.output


def test_simulate_with_a_storm_couples_swmm(tiny, tmp_path):
    out = tmp_path / "storm"
    r = _twin("simulate", "--city", tiny, "--hours", 3, "--strategy", "priority", "--storm", "chicago",
              "--return-period", 50, "--duration", "1h", "--start-at", "0.5", "--citizens", 100, "--vendors", 2,
              "--no-progress", "--out", out)
    assert r.exit_code == 0, r.output
    kinds = pd.Series([json.loads(ln)["kind"] for ln in (out / "events.jsonl").read_text().splitlines()])
    assert (kinds == "flood_onset").sum() >= 1
    # closures (none at the default 0.15 m on the tiny city's streets in this storm) are logged as they change
    changes = pd.read_parquet(out / "road_closures.parquet")
    assert (kinds == "road_closure").sum() == changes["time_s"].nunique()
    man = json.loads((out / "manifest.json").read_text())
    assert man["metadata"]["hydraulics"]["flood_incidents"] >= 1 and "swmm_inp_sha256" in man["inputs"]
    r = _twin("replay", out, "--at", "1h")
    assert r.exit_code == 0, r.output
    assert "open incidents" in r.output and "roads closed" in r.output
    assert "P=50 yr" in _twin("compare", out).output


@pytest.mark.parametrize("args, message", [
    (["--strategy", "fastest"], "unknown strategy 'fastest'"),
    (["--crews", "pirates=2"], "unknown department 'pirates'"),
    (["--crews", "drainage=-1"], "--crews drainage=-1 is out of range; expected 0 <= --crews drainage <= 10,000"),
    (["--citizens", "-5"], "--citizens=-5 is out of range; expected 0 <= --citizens <= 1,000,000"),
    (["--hours", "-1"], "--hours=-1 h is out of range; expected 0 < --hours <= 336 h"),
    (["--hours", "1e9"], "--hours=1e+09 h is out of range"),
    (["--hours", "inf"], "--hours=inf is not a finite number"),
    (["--storm", "chicago", "--return-period", "-5"], "--return-period=-5 yr is out of range"),
    (["--storm", "chicago", "--start-at", "30", "--hours", "2"], "--start-at"),
])
def test_bad_arguments_exit_2_with_one_line(tiny, tmp_path, args, message):
    r = CliRunner().invoke(cli, ["simulate", "--city", str(tiny), "--no-progress", "--out", str(tmp_path / "x"),
                                 *args])
    assert r.exit_code == 2, r.output
    assert message in r.output and r.output.count("\n") == 1
    assert not (tmp_path / "x").exists() and list(tmp_path.iterdir()) == []


def test_existing_run_is_never_overwritten(two_runs):
    r = CliRunner().invoke(cli, ["simulate", "--out", str(two_runs[0])])
    assert r.exit_code == 2 and "already exists" in r.output


def test_replay_and_compare_errors(two_runs, tmp_path):
    assert _twin("replay", two_runs[0], "--at", "99h").exit_code == 2
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(cli, ["compare", str(tmp_path / "empty")])
    assert r.exit_code == 2 and "manifest" in r.output


def test_reports_import_of_the_real_nyc_sample(tmp_path):
    out = tmp_path / "x.parquet"
    r = _twin("reports", "import", NYC, "--out", out)
    assert r.exit_code == 0, r.output
    assert "records                 1000" in r.output
    assert "without coordinates     12" in r.output
    assert "duplicates" in r.output and "Noise - Residential" in r.output
    df = pd.read_parquet(out)
    assert len(df) == 1000 and int((~df["has_location"]).sum()) == 12
    r = CliRunner().invoke(cli, ["reports", "import", str(tmp_path / "nope.csv"), "--out", str(out)])
    assert r.exit_code == 2 and "not found" in r.output
