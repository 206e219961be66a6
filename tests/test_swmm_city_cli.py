"""`twin swmm run --city`: the coupled sewer + street model by default, fill-and-spill only as labelled screening."""

from __future__ import annotations

import json

from click.testing import CliRunner

from twin.cli import cli


def _run(*args):
    return CliRunner().invoke(cli, ["swmm", "run", *map(str, args)])


def test_a_city_runs_coupled_by_default(tmp_path):
    out = tmp_path / "ev"
    r = _run("--city", "small", "--return-period", "20", "--duration", "30min", "--no-progress", "--out", out)
    assert r.exit_code == 0, r.output
    for what in ("mass balance", "roads closed", "to the river", "of them bridges", "coupled nodes"):
        assert what in r.output, what
    summary = json.loads((out / "summary.json").read_text())
    from hydraulics.urban_surface import DEFAULT_CELL_M

    assert summary["cell_size_m"] == DEFAULT_CELL_M and summary["coupled_nodes"] > 100
    assert abs(summary["mass_balance_error_rel"]) < 0.01
    assert (out / "depth_series.tif").exists() and (out / "node_depth.csv").exists()


def test_without_out_the_run_prints_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = _run("--city", "small", "--return-period", "2", "--duration", "20min", "--no-progress",
             "--cell-size", "20")
    assert r.exit_code == 0, r.output
    assert "mass balance" in r.output and "20 m" in r.output
    assert list(tmp_path.iterdir()) == []


def test_screening_is_labelled_as_such():
    r = _run("--city", "small", "--surface", "screening", "--return-period", "100", "--duration", "1h",
             "--no-progress")
    assert r.exit_code == 0, r.output
    assert "quick screening" in r.output and "fill-and-spill" in r.output


def test_wrong_combinations_are_one_line(tmp_path):
    model = tmp_path / "m.inp"
    model.write_text("[TITLE]\n")
    for args, words in (((model, "--surface", "screening"), "needs --city"),
                        ((model, "--cell-size", "5"), "--cell-size"),
                        (("--city", "small", "--cell-size", "0.01"), "--cell-size")):
        r = _run(*args)
        assert r.exit_code == 2, r.output
        assert r.output.strip().count("\n") == 0 and words in r.output, r.output
