"""Bad SWMM inputs give typed errors (code, message, file, section, line), never results.

Also the CLI: `twin swmm run` exits 0 on a good model and 2 with one line on a bad one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from swmm_helpers import copy_model

from gisdata.errors import TwinError
from hydraulics.errors import (
    BinaryInpError,
    EmptyInpError,
    InpFileNotFoundError,
    MissingModelFileError,
    SwmmError,
    parse_engine_errors,
)
from hydraulics.inp import read_inp
from hydraulics.run import EngineBusyError, RunOptions, run_swmm
from twin.cli import cli


def test_undefined_object_is_error_209_with_section_and_line(shared_data, tmp_path):
    inp = copy_model(shared_data, "swmmio_tests/model_full_features_network.inp", tmp_path)
    with pytest.raises(SwmmError) as info:
        run_swmm(inp)
    err = info.value
    assert (err.code, err.section, err.line, err.file) == (209, "DIVIDERS", 94, str(inp))
    assert "undefined object C6" in err.engine_message and "C6" in inp.read_text().splitlines()[err.line - 1]
    assert isinstance(err, TwinError) and isinstance(err, RuntimeError)


def test_invalid_infiltration_is_error_235_and_every_error_is_kept(shared_data, tmp_path):
    inp = copy_model(shared_data, "pystorms/delta.inp", tmp_path)
    with pytest.raises(SwmmError) as info:
        run_swmm(inp)
    err = info.value
    assert err.code == 235 and err.section == "INFILTRATION" and err.line == 85
    assert len(err.errors) == 7 and {e.code for e in err.errors} == {235}
    assert "ERROR 235" in str(err) and "\n" not in str(err)


def test_missing_rain_file_is_a_file_error_pointing_at_the_gauge(shared_data, tmp_path):
    src = shared_data / "swmm" / "bellinge_small" / "bellinge_small.inp"
    inp = tmp_path / "alone.inp"
    inp.write_text(src.read_text())  # without storm.dat beside it
    with pytest.raises(MissingModelFileError) as info:
        run_swmm(inp)
    err = info.value
    assert isinstance(err, FileNotFoundError) and isinstance(err, SwmmError)
    assert err.code == 317 and err.section == "RAINGAGES" and err.line == 51
    assert "storm.dat" in str(err)


def test_rain_file_next_to_the_original_is_found_from_a_temp_copy(shared_data, tmp_path):
    # Relative file names resolve against the model's own folder, not the run folder.
    inp = copy_model(shared_data, "bellinge_small/bellinge_small.inp", tmp_path)
    res = run_swmm(inp)
    assert res.status == "complete" and res.subcatchment["runoff_cms"].to_numpy().max() > 0


@pytest.mark.parametrize("content, error", [
    (b"", EmptyInpError),
    (b"   \n\n ;; only a comment\n", EmptyInpError),
    (bytes(range(256)) * 8, BinaryInpError),
])
def test_empty_or_binary_files_are_refused_before_the_engine(tmp_path, content, error):
    inp = tmp_path / "bad.inp"
    inp.write_bytes(content)
    with pytest.raises(error) as info:
        run_swmm(inp)
    assert info.value.file == str(inp) and isinstance(info.value, ValueError)


def test_truncated_file_is_an_engine_error_with_a_line(shared_data, tmp_path):
    text = (shared_data / "swmm" / "epa_examples" / "Example1.inp").read_text()
    inp = tmp_path / "truncated.inp"
    inp.write_text(text[: text.index("[CONDUITS]") + 300])  # cut inside a conduit row
    with pytest.raises(SwmmError) as info:
        run_swmm(inp)
    assert info.value.code in (203, 209) and info.value.line is not None
    assert {e.code for e in info.value.errors} >= {203}


def test_missing_model_file(tmp_path):
    with pytest.raises(InpFileNotFoundError):
        run_swmm(tmp_path / "nope.inp")
    with pytest.raises(InpFileNotFoundError):
        read_inp(tmp_path / "nope.inp")


def test_missing_hotstart_file(shared_data, tmp_path):
    inp = copy_model(shared_data, "epa_examples/Example1.inp", tmp_path)
    with pytest.raises(MissingModelFileError):
        run_swmm(inp, options=RunOptions(hotstart=tmp_path / "none.hsf"))


def test_on_error_warn_returns_a_failed_result_not_a_complete_one(shared_data, tmp_path):
    inp = copy_model(shared_data, "pystorms/delta.inp", tmp_path)
    res = run_swmm(inp, options=RunOptions(on_error="warn"))
    assert res.status == "failed" and res.error.code == 235 and res.node == {}


def test_a_second_simulation_in_the_same_process_is_refused(shared_data, tmp_path):
    inp = copy_model(shared_data, "epa_examples/Example1.inp", tmp_path)
    seen = []

    def reenter(state):
        if not seen:
            with pytest.raises(EngineBusyError):
                run_swmm(inp)
            seen.append(state.time)

    run_swmm(inp, on_step=reenter)
    assert seen
    assert run_swmm(inp).status == "complete"  # the engine is free again afterwards


def test_callback_errors_come_back_unchanged(shared_data, tmp_path):
    inp = copy_model(shared_data, "epa_examples/Example1.inp", tmp_path)

    def broken(state):
        raise KeyError("my bug")

    with pytest.raises(KeyError, match="my bug"):
        run_swmm(inp, on_step=broken)
    assert run_swmm(inp).status == "complete"  # the engine was closed and released


def test_hotstart_time_outside_the_run_is_refused(shared_data, tmp_path):
    inp = copy_model(shared_data, "epa_examples/Example1.inp", tmp_path)
    with pytest.raises(TwinError, match="outside the run"):
        run_swmm(inp, options=RunOptions(save_hotstart_at=10 * 86400.0, save_hotstart_to=tmp_path / "h.hsf"))


def test_bad_options_are_refused():
    with pytest.raises(TwinError, match="coupling_step_s"):
        RunOptions(coupling_step_s=0)
    with pytest.raises(TwinError, match="save_hotstart_to"):
        RunOptions(save_hotstart_at=3600.0)


def test_parse_engine_errors_reads_51_style_messages():
    msgs = parse_engine_errors("  ERROR 205: invalid keyword at line 12 of input file:\n  FOO BAR\n")
    assert (msgs[0].code, msgs[0].line, msgs[0].section, msgs[0].text) == (205, 12, None, "FOO BAR")


# ----------------------------------------------------------------------------- CLI


def test_cli_run_example1_reports_one_flooded_node(shared_data, tmp_path):
    inp = copy_model(shared_data, "epa_examples/Example1.inp", tmp_path)
    result = CliRunner().invoke(cli, ["swmm", "run", str(inp), "--no-progress", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "flooded nodes     1" in result.output and "continuity" in result.output
    assert (tmp_path / "out" / "model.rpt").exists() and (tmp_path / "out" / "flood_summary.csv").exists()


@pytest.mark.parametrize("rel, code", [("pystorms/delta.inp", 235), ("swmmio_tests/model_full_features_network.inp", 209)])
def test_cli_invalid_models_exit_2_with_one_line(shared_data, tmp_path, rel, code):
    inp = copy_model(shared_data, rel, tmp_path)
    result = CliRunner().invoke(cli, ["swmm", "run", str(inp), "--no-progress"])
    assert result.exit_code == 2
    assert f"ERROR {code}" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_subprocess_prints_no_traceback(shared_data, tmp_path):
    inp = copy_model(shared_data, "pystorms/delta.inp", tmp_path)
    proc = subprocess.run([sys.executable, "-m", "twin.cli", "swmm", "run", str(inp), "--no-progress"],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=120,
                          check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1 and "ERROR 235" in proc.stderr


def test_cli_empty_file_exits_2(tmp_path):
    inp = tmp_path / "empty.inp"
    inp.write_text("")
    result = CliRunner().invoke(cli, ["swmm", "run", str(inp), "--no-progress"])
    assert result.exit_code == 2 and "is empty" in result.output


def test_cli_hotstart_save_then_use(shared_data, tmp_path):
    inp = copy_model(shared_data, "epa_examples/Site_Drainage_Model.inp", tmp_path)
    hsf = tmp_path / "h.hsf"
    r1 = CliRunner().invoke(cli, ["swmm", "run", str(inp), "--no-progress", "--save-hotstart", "2h",
                                  "--hotstart-out", str(hsf)])
    assert r1.exit_code == 0, r1.output
    assert hsf.exists() and "saved at 1998-01-01T02:00" in r1.output
    r2 = CliRunner().invoke(cli, ["swmm", "run", str(inp), "--no-progress", "--hotstart", str(hsf),
                                  "--start", "1998-01-01T02:00"])
    assert r2.exit_code == 0, r2.output
    assert "period            1998-01-01T02:00:00" in r2.output


def test_cli_bad_duration_is_a_usage_error():
    result = CliRunner().invoke(cli, ["swmm", "run", "--city", "small", "--duration", "two hours"])
    assert result.exit_code == 2 and "duration" in result.output


def test_cli_import_bellinge(shared_data, tmp_path):
    inp = copy_model(shared_data, "bellinge_small/bellinge_small.inp", tmp_path)
    out = tmp_path / "b.gpkg"
    result = CliRunner().invoke(cli, ["swmm", "import", str(inp), "--crs", "EPSG:32632", "--out", str(out)])
    assert result.exit_code == 0, result.output
    from gisdata.city import load_city

    city = load_city(out)
    assert city.crs == "EPSG:32632" and len(city.nodes) == 16 and len(city.subcatchments) == 13


def test_cli_import_geographic_crs_exits_2(shared_data, tmp_path):
    inp = copy_model(shared_data, "bellinge_small/bellinge_small.inp", tmp_path)
    result = CliRunner().invoke(cli, ["swmm", "import", str(inp), "--crs", "EPSG:4326", "--out", str(tmp_path / "x.gpkg")])
    assert result.exit_code == 2 and "geographic" in result.output
