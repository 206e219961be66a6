"""Issue #12, defect class 1: a model file must not make the engine write (or read) anywhere.

Each payload is first run through the bare engine (swmm-toolkit) to prove the
engine really honours it (it writes outside the folder); then through
:func:`hydraulics.run.run_swmm`, which must keep every write inside its run
folder and refuse reads outside the model's folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from gisdata.errors import TwinError
from hydraulics.errors import ModelPathError
from hydraulics.inp import parse_inp
from hydraulics.run import RunOptions, run_swmm

EX1 = Path(__file__).resolve().parents[2] / "shared/data/swmm/epa_examples/Example1.inp"
GAGE_TS = "RG1             \tINTENSITY\t1:00    \t1.0     \tTIMESERIES\tTS1"

# Spellings the SWMM 5.2 engine reads as [FILES]: keywords match by prefix, any case,
# and a line is a header when its first token (quotes removed) starts with "[".
FILES_HEADERS = ["[FILE]", "[files]", "[FILESXYZ]", "[Filez]", "[FILES", '"[FILES]"', "[FILES];x", "  [FILE S]",
                 "\t[files]"]


def _bare_engine(inp: Path) -> None:
    """Run the plain engine in a child process (the engine prints to C stdout and keeps globals)."""
    from swmm.toolkit import solver

    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            fd = os.open(os.devnull, os.O_WRONLY)
            os.dup2(fd, 1)
            solver.swmm_run(str(inp), str(inp.with_suffix(".rpt")), str(inp.with_suffix(".out")))
            os._exit(0)
        except BaseException:  # noqa: BLE001 - child must never return into pytest
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def _model(tmp_path: Path, extra: str, *, gage: str | None = None) -> Path:
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    text = EX1.read_text()
    if gage is not None:
        assert GAGE_TS in text
        text = text.replace(GAGE_TS, gage)
    path = folder / "m.inp"
    path.write_text(text + "\n" + extra + "\n")
    return path


def _files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("header", FILES_HEADERS)
def test_every_files_header_spelling_is_confined(tmp_path, header):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "stolen.hsf"
    inp = _model(tmp_path, f'{header}\nSAVE HOTSTART "{target}"\nSAVE OUTFLOWS "{outside / "of.txt"}"')

    # The engine itself honours this spelling: it writes outside.
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(inp, bare / "m.inp")
    _bare_engine(bare / "m.inp")
    assert target.exists(), f"engine did not read {header!r} as [FILES]; the payload proves nothing"
    target.unlink()
    (outside / "of.txt").unlink()

    # Our parser sees it as [FILES] ...
    model = parse_inp(inp.read_text(), source=inp)
    assert [r.kind for r in model.file_refs() if r.section == "FILES"] == ["output", "output"]

    # ... and the run writes only into its own folder (kept with keep_dir).
    before = _files_under(tmp_path)
    keep = tmp_path / "keep"
    res = run_swmm(inp, options=RunOptions(keep_dir=keep))
    assert res.status == "complete"
    assert not target.exists() and not (outside / "of.txt").exists()
    new = _files_under(tmp_path) - before
    assert new and all(keep in p.parents for p in new), sorted(map(str, new))
    assert (keep / "stolen.hsf").exists() and (keep / "of.txt").exists()


@pytest.mark.parametrize("name", ["..", "../../escape.txt", "/abs/../escape.txt", "a\\..\\..\\escape.txt", "."])
def test_output_names_cannot_climb_out_of_the_run_folder(tmp_path, name):
    inp = _model(tmp_path, f'[FILES]\nSAVE OUTFLOWS "{name}"')
    before = _files_under(tmp_path)
    keep = tmp_path / "keep"
    run_swmm(inp, options=RunOptions(keep_dir=keep))
    new = _files_under(tmp_path) - before
    assert all(keep in p.parents for p in new), sorted(map(str, new))
    assert not list(tmp_path.parent.glob("escape.txt"))


def _rain_file(path: Path) -> Path:
    path.write_text("".join(f"STA1 1998 01 01 {h:02d} 00 0.5\n" for h in range(6)))
    return path


@pytest.mark.parametrize("keyword", ["FILE", "FILEXX", "file"])
def test_rain_gage_file_outside_the_model_folder_is_refused(tmp_path, keyword):
    secret = _rain_file(tmp_path / "elsewhere.dat")
    inp = _model(tmp_path, "", gage=f'RG1 INTENSITY 1:00 1.0 {keyword} "{secret}" STA1 IN')
    line = next(i for i, ln in enumerate(inp.read_text().splitlines(), 1) if str(secret) in ln)
    with pytest.raises(ModelPathError) as info:
        run_swmm(inp)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"{inp}:{line}" in msg and str(secret) in msg and "outside the model's folder" in msg
    assert info.value.line == line and isinstance(info.value, TwinError)


def test_relative_climb_and_symlink_out_of_the_model_folder_are_refused(tmp_path):
    _rain_file(tmp_path / "elsewhere.dat")
    inp = _model(tmp_path, "", gage='RG1 INTENSITY 1:00 1.0 FILE "../elsewhere.dat" STA1 IN')
    with pytest.raises(ModelPathError, match=r"\.\./elsewhere\.dat"):
        run_swmm(inp)
    (inp.parent / "link.dat").symlink_to(tmp_path / "elsewhere.dat")
    inp.write_text(inp.read_text().replace("../elsewhere.dat", "link.dat"))
    with pytest.raises(ModelPathError, match="link.dat"):
        run_swmm(inp)


def test_a_path_the_user_named_explicitly_may_be_read(tmp_path):
    secret = _rain_file(tmp_path / "elsewhere.dat")
    inp = _model(tmp_path, "", gage=f'RG1 INTENSITY 1:00 1.0 FILE "{secret}" STA1 IN')
    res = run_swmm(inp, options=RunOptions(allowed_inputs=(secret,)))
    assert res.status == "complete" and res.continuity["runoff_error_pct"] == pytest.approx(0, abs=5)
    # and a rain file beside the model needs no permission
    _rain_file(inp.parent / "beside.dat")
    inp.write_text(inp.read_text().replace(str(secret), "beside.dat"))
    assert run_swmm(inp).status == "complete"


def test_use_hotstart_under_another_files_spelling_is_refused(tmp_path):
    hs = tmp_path / "other.hsf"
    hs.write_bytes(b"\0" * 16)
    inp = _model(tmp_path, f'[file]\nUSEFUL HOTSTART "{hs}"')
    with pytest.raises(ModelPathError, match=r"\[FILES\].*other\.hsf"):
        run_swmm(inp)


def test_tempdir_option_is_redirected_into_the_run_folder(tmp_path):
    # With a rain FILE gage the engine writes a scratch rainfall file into TEMPDIR;
    # a missing TEMPDIR fails the bare engine (ERROR 313).  Ours runs in its own folder.
    folder = tmp_path / "model"
    folder.mkdir()
    _rain_file(folder / "rain.dat")
    scratch = tmp_path / "scratch_outside"
    text = EX1.read_text().replace(GAGE_TS, 'RG1 INTENSITY 1:00 1.0 FILE "rain.dat" STA1 IN')
    text = text.replace("THREADS", f'TEMPDIR "{scratch}"\nTHREADS')
    inp = folder / "m.inp"
    inp.write_text(text)
    res = run_swmm(inp)
    assert res.status == "complete"
    assert not scratch.exists()


def test_cli_refuses_an_outside_rain_file_in_one_line_and_allows_it_explicitly(tmp_path):
    from twin.cli import cli

    secret = _rain_file(tmp_path / "elsewhere.dat")
    inp = _model(tmp_path, "", gage=f'RG1 INTENSITY 1:00 1.0 FILE "{secret}" STA1 IN')
    runner = CliRunner()
    res = runner.invoke(cli, ["swmm", "run", str(inp), "--no-progress"])
    assert res.exit_code == 2, res.output
    err = res.output.strip().splitlines()
    assert len(err) == 1 and "outside the model's folder" in err[0] and str(secret) in err[0]
    res = runner.invoke(cli, ["swmm", "run", str(inp), "--no-progress", "--allow-read", str(secret)])
    assert res.exit_code == 0, res.output
    assert "flooded nodes" in res.output
