"""Issue #12, class 8: output folders are checked first, kept when empty, replaced whole, and never followed.

- an existing empty ``--out`` is filled in place and keeps its permissions;
- ``forecast --out`` into an old forecast leaves no stale member file, and a
  folder holding something else is refused before any work;
- temporary names are unpredictable, created exclusively and private, and a
  planted symlink is never followed;
- ``swmm run`` and ``render`` (and ``forecast``) refuse an unusable ``--out``
  before doing the work.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from conftest import SHARED_DATA, make_tiny_city
from gisdata.city import save_city
from gisdata.paths import OutputDirError, StagedDir, atomic_path, check_out_dir, clean_stale_staging
from twin import runstore
from twin.cli import cli

EXAMPLE1 = SHARED_DATA / "swmm" / "epa_examples" / "Example1.inp"


def _twin(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture(scope="module")
def tiny_gpkg(tmp_path_factory) -> Path:
    return save_city(make_tiny_city(), tmp_path_factory.mktemp("city") / "tiny.gpkg")


def _forecast(city: Path, out: Path):
    return _twin("forecast", "--city", city, "--storm", "chicago", "--return-period", "20", "--duration", "1h",
                 "--start-in", "1h", "--hours", "4", "--members", "2", "--workers", "1", "--out", out,
                 "--no-progress")


def test_an_empty_run_folder_is_filled_in_place_and_keeps_its_permissions(tmp_path):
    out = tmp_path / "r1"
    out.mkdir(mode=0o751)
    os.chmod(out, 0o751)
    inode = out.stat().st_ino
    with runstore.RunWriter(out) as w:
        w.log.append(0.0, "note", "x")
        w.commit({"t": pd.DataFrame({"a": [1]})}, params={"seed": 1})
    assert out.stat().st_ino == inode and _mode(out) == 0o751  # the same folder, not deleted and recreated
    assert runstore.verify_run(out).ok
    assert [p.name for p in tmp_path.iterdir()] == ["r1"]  # no staging folder left beside it


def test_a_forecast_into_an_old_forecast_keeps_no_stale_member_and_into_a_foreign_folder_is_refused(tmp_path,
                                                                                                    tiny_gpkg):
    out = tmp_path / "fc"
    (out / "members").mkdir(parents=True)
    os.chmod(out, 0o750)
    (out / "forecast.json").write_text(json.dumps({"summary": "old", "status": "complete"}))
    (out / "members" / "members.csv").write_text("member,index,status\nzz_old,0,ok\n")
    (out / "members" / "member_zz_old.parquet").write_bytes(b"stale")
    r = _forecast(tiny_gpkg, out)
    assert r.exit_code == 0, r.output
    assert not (out / "members" / "member_zz_old.parquet").exists()
    assert "zz_old" not in (out / "members" / "members.csv").read_text()
    assert json.loads((out / "forecast.json").read_text())["status"] == "complete"
    assert _mode(out) == 0o750  # the replaced folder keeps the old one's permissions
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fc"]  # no staging or old folder left
    assert _forecast(tiny_gpkg, out).exit_code == 0  # a forecast it wrote itself is replaced again

    foreign = tmp_path / "thesis"
    foreign.mkdir()
    (foreign / "chapter1.docx").write_text("years of work")
    mixed = tmp_path / "home"  # an old forecast's marker beside the user's own files: still not ours
    shutil.copytree(out, mixed)
    (mixed / "notes.txt").write_text("mine")
    for folder in (foreign, mixed):
        before = sorted(p.name for p in folder.iterdir())
        r = _forecast(tiny_gpkg, folder)
        assert r.exit_code == 2 and "not empty" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert sorted(p.name for p in folder.iterdir()) == before
    assert (foreign / "chapter1.docx").read_text() == "years of work" and (mixed / "notes.txt").read_text() == "mine"


def test_an_empty_forecast_folder_keeps_its_permissions(tmp_path, tiny_gpkg):
    out = tmp_path / "fc"
    out.mkdir()
    os.chmod(out, 0o705)
    r = _forecast(tiny_gpkg, out)
    assert r.exit_code == 0, r.output
    assert _mode(out) == 0o705 and (out / "forecast.json").is_file()


def test_staging_names_are_unpredictable_private_and_planted_symlinks_are_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    parent = tmp_path / "out"
    parent.mkdir()
    # what an attacker would plant: the old predictable names, and a guess of the new ones
    for name in (".r1.tmp-0000", ".r1.tmp-guess", ".r1.old-0000"):
        (parent / name).symlink_to(victim, target_is_directory=True)
    names = set()
    for _ in range(5):
        with StagedDir(parent / "r1") as stage:
            assert not stage.path.is_symlink() and _mode(stage.path) == 0o700
            names.add(stage.path.name)
    assert len(names) == 5  # a fresh random name each time
    assert (victim / "keep.txt").read_text() == "keep" and [p.name for p in victim.iterdir()] == ["keep.txt"]
    assert [p for p in parent.iterdir() if p.is_symlink()] == []  # the planted links were unlinked, not followed

    target = parent / "plan.json"
    (parent / "plan.json.part").symlink_to(victim / "keep.txt")  # the old fixed temp name
    with atomic_path(target) as tmp:
        assert tmp.name.startswith(".plan.json.tmp-") and not tmp.is_symlink()
        tmp.write_text("{}")
    assert target.read_text() == "{}" and (victim / "keep.txt").read_text() == "keep"


def test_a_writer_removes_only_its_own_leftovers_in_a_folder_it_does_not_own(tmp_path):
    other = tmp_path / ".someone-else.tmp-abc"  # another program's hidden temp folder, same naming style
    other.mkdir()
    (other / "data").write_text("theirs")
    mine = tmp_path / ".r1.tmp-dead"  # what a killed writer of r1 left
    mine.mkdir()
    with StagedDir(tmp_path / "r1") as stage:
        stage.commit()
    assert (other / "data").read_text() == "theirs" and not mine.exists()


def test_a_live_staging_folder_is_never_cleaned_away(tmp_path):
    with StagedDir(tmp_path / "r1") as live:
        (live.path / "x").write_text("1")
        assert clean_stale_staging(tmp_path) == 0 and live.path.is_dir()
        live.commit()
    assert (tmp_path / "r1" / "x").read_text() == "1"


def _blocked(tmp_path: Path) -> Path:
    blocker = tmp_path / "a_file"
    blocker.write_text("I am a file, not a folder")
    return blocker / "out"


def test_swmm_run_refuses_an_unusable_out_before_the_run(tmp_path, monkeypatch):
    import hydraulics.run

    def no_work(*args, **kwargs):
        raise AssertionError("the run started although --out cannot be written")

    monkeypatch.setattr(hydraulics.run, "run_swmm", no_work)
    for out in (_blocked(tmp_path), tmp_path / "a_file"):
        r = _twin("swmm", "run", EXAMPLE1, "--out", out, "--no-progress")
        assert r.exit_code == 2 and "--out" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.output
    r = _twin("swmm", "run", EXAMPLE1, "--save-hotstart", "1h", "--hotstart-out", tmp_path, "--no-progress")
    assert r.exit_code == 2 and "--hotstart-out" in r.stderr


def test_render_refuses_an_unusable_out_before_rendering(tmp_path, monkeypatch):
    import twin.viz.animation

    def no_work(*args, **kwargs):
        raise AssertionError("rendering started although --out cannot be written")

    for name in ("frame_times", "render_frames"):
        monkeypatch.setattr(twin.viz.animation, name, no_work)
    run = tmp_path / "r1"
    with runstore.RunWriter(run) as w:
        w.commit({"t": pd.DataFrame({"a": [1]})}, params={"seed": 1, "hours": 1, "city": "demo"})
    for out in (_blocked(tmp_path) / "a.gif", tmp_path / "folder.gif"):
        if out.name == "folder.gif":
            out.mkdir()
        r = _twin("render", run, "--out", out, "--no-progress")
        assert r.exit_code == 2 and "--out" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.output


def test_forecast_refuses_an_unusable_out_before_loading_the_city(tmp_path, monkeypatch):
    import gisdata.city

    def no_work(*args, **kwargs):
        raise AssertionError("the city was loaded although --out cannot be written")

    monkeypatch.setattr(gisdata.city, "load_city", no_work)
    r = _forecast(Path("demo"), _blocked(tmp_path))
    assert r.exit_code == 2 and "--out" in r.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_out_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        with pytest.raises(OutputDirError):
            check_out_dir(ro / "new")
        with pytest.raises(OutputDirError):
            check_out_dir(ro)
    finally:
        os.chmod(ro, 0o700)


def test_a_failed_replacement_of_a_stored_run_restores_the_old_one(tmp_path):
    from gisdata.paths import InvalidIdError
    from scenarios.runner import RunResult
    from scenarios.store import write_run

    good = RunResult("r1", "complete", manifest={"params": {"v": 1}}, tables={"t": pd.DataFrame({"a": [1]})})
    path = write_run(good, tmp_path)
    bad = RunResult("r1", "complete", manifest={"params": {"v": 2}}, tables={"../t": pd.DataFrame({"a": [2]})})
    with pytest.raises(InvalidIdError):
        write_run(bad, tmp_path, overwrite=True)
    assert runstore.verify_run(path).ok and runstore.read_manifest(path)["params"] == {"v": 1, "kind": "simulation"}
    assert [p.name for p in tmp_path.iterdir()] == ["r1"]
