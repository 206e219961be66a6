"""Issue #12, class 2: identifiers read from files never become paths outside what owns them.

Payloads: run ids in a crafted ``sweep.json`` (``../..``, an absolute path,
``x/../../Y``), an event-log pointer and table names in a manifest, member
names in a forecast's ``members.csv``, a scenario's run id.  Each is refused
with a :class:`~gisdata.errors.TwinError` before anything is written or
deleted, and a folder beside the sweep that a crafted id names survives.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from gisdata.errors import TwinError
from gisdata.paths import InvalidIdError, check_id, child_path
from scenarios.batch import SWEEP_FORMAT, run_batch
from scenarios.runner import RunResult
from scenarios.store import list_runs, write_run
from twin import runstore
from twin.cli import cli

CRAFTED = ["..", "../..", "../victim", "/tmp/abs", "x/../../victim", "a/b", ".hidden", "-flag", "", "a..b",
           "x" * 129, "ok\nnewline", "nul\x00byte", "space name", "ünïcode"]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"")
            for p in sorted(root.rglob("*"))}


def _make_run(folder: Path) -> Path:
    with runstore.RunWriter(folder) as w:
        w.log.append(0.0, "note", "test", payload={"i": 1})
        return w.commit({"incidents": pd.DataFrame({"a": [1.0, 2.0]})}, params={"seed": 1, "hours": 1},
                        kpis={"counts": {"incidents": 2}})


@pytest.mark.parametrize("bad", CRAFTED)
def test_the_one_validator_refuses_every_crafted_id(bad):
    with pytest.raises(InvalidIdError) as info:
        check_id(bad, "run id", source="sweep.json")
    assert isinstance(info.value, TwinError) and "sweep.json" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("good", ["p000-siloed-s1", "mini_sweep-s2-0a1b2c3d", "m000", "events.jsonl", "A", "x" * 128])
def test_plain_names_pass_and_stay_inside(good, tmp_path):
    assert check_id(good) == good
    assert child_path(tmp_path, good).parent == tmp_path


@pytest.mark.parametrize("bad_id", ["../victim", "/ABS", "x/../../victim", "..", "sub/../../victim"])
def test_resume_of_a_crafted_sweep_writes_and_deletes_nothing_outside(tmp_path, bad_id):
    sweep = tmp_path / "sweeps" / "s1"
    sweep.mkdir(parents=True)
    victim = tmp_path / "sweeps" / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    bad_id = bad_id.replace("/ABS", str(tmp_path / "abs"))
    data = {"format": SWEEP_FORMAT, "name": "s1", "status": "running", "scenario": {"scenario": {"name": "s1"}},
            "runs": [{"run_id": "p000-a-s1", "params": {}, "seed": 1}, {"run_id": bad_id, "params": {}, "seed": 2}]}
    (sweep / "sweep.json").write_text(json.dumps(data))
    before = _tree(tmp_path)
    with pytest.raises(InvalidIdError, match="run_id"):
        run_batch(resume=sweep)
    assert _tree(tmp_path) == before  # nothing written, nothing deleted
    assert (victim / "precious.txt").read_text() == "keep me"
    # the CLI: one line, exit 2, still nothing touched
    r = CliRunner().invoke(cli, ["batch", "--resume", str(sweep)], catch_exceptions=False)
    assert r.exit_code == 2 and r.output.startswith("error: ") and len(r.output.strip().splitlines()) == 1
    assert _tree(tmp_path) == before


def test_a_failed_run_id_in_sweep_json_is_refused_too(tmp_path):
    sweep = tmp_path / "s1"
    sweep.mkdir()
    data = {"format": SWEEP_FORMAT, "name": "s1", "scenario": {}, "runs": [{"run_id": "r1", "params": {}, "seed": 1}],
            "failed": {"../../etc": "boom"}}
    (sweep / "sweep.json").write_text(json.dumps(data))
    with pytest.raises(InvalidIdError, match="failed run id"):
        run_batch(resume=sweep)
    # listing skips ids that are not plain names rather than showing a path outside
    assert "../../etc" not in set(list_runs(tmp_path, include_missing=True)["run_id"])


@pytest.mark.parametrize("bad_id", ["../escaped", "/abs/run", "a/../../b"])
def test_write_run_refuses_a_run_id_that_leaves_the_store(tmp_path, bad_id):
    store = tmp_path / "store"
    res = RunResult(bad_id, "complete", manifest={"params": {}}, tables={"t": pd.DataFrame({"a": [1]})})
    with pytest.raises(InvalidIdError):
        write_run(res, store)
    assert not (tmp_path / "escaped").exists() and not store.exists()


@pytest.mark.parametrize("pointer", ["../outside.jsonl", "/etc/passwd", "sub/../../x.jsonl"])
def test_an_event_log_pointer_outside_the_run_is_refused(tmp_path, pointer):
    run = _make_run(tmp_path / "r1")
    outside = tmp_path / "outside.jsonl"
    (run / "events.jsonl").replace(outside)  # a genuine log, moved out of the run
    man = json.loads((run / "manifest.json").read_text())
    man["events"]["file"] = pointer
    (run / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(InvalidIdError, match="events.file"):
        runstore.read_manifest(run)
    check = runstore.verify_run(run)  # tampering is a verdict, not a crash
    assert not check.ok and "events.file" in check.message
    r = CliRunner().invoke(cli, ["replay", str(run), "--at", "0"], catch_exceptions=False)
    assert r.exit_code == 2 and "events.file" in r.output and len(r.output.strip().splitlines()) == 1


def test_a_table_name_that_climbs_is_refused(tmp_path):
    run = _make_run(tmp_path / "r1")
    man = json.loads((run / "manifest.json").read_text())
    man["tables"]["../../secret"] = {"rows": 1, "sha256": "0" * 64}
    (run / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(InvalidIdError, match="table name"):
        runstore.read_manifest(run)
    with pytest.raises(InvalidIdError):
        runstore.read_table(run, "../../secret")


def test_member_names_read_from_members_csv_are_checked(tmp_path, tiny_city):
    from hydraulics.forecast import load_forecast

    members = tmp_path / "fc" / "members"
    members.mkdir(parents=True)
    pd.DataFrame({"member": ["m000", "../../x"], "index": [0, 1], "status": ["ok", "ok"]}).to_csv(
        members / "members.csv", index=False)
    with pytest.raises(InvalidIdError, match="member name"):
        load_forecast(tmp_path / "fc", tiny_city, issue_time="2024-01-01")


def test_a_scenario_name_that_is_not_a_plain_name_never_becomes_a_sweep_folder(tmp_path):
    from scenarios.schema import validate_scenario

    # the schema refuses most; '..' inside a name passes it, and the batch still refuses it as a folder name
    spec = validate_scenario({"scenario": {"name": "a..b"}, "city": {"source": "small"},
                              "sweep": {"method": "grid", "seeds": [1]}})
    with pytest.raises(InvalidIdError, match="scenario name"):
        run_batch(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_uploaded_file_names_become_plain_member_names(tmp_path):
    from twin.forecast_job import read_uploaded_ensemble

    good = b"lead_h,RG1_mm_h\n0,0\n1,10\n2,0\n"
    ens = read_uploaded_ensemble([("../../evil.csv", good), ("member 1.csv", good), ("..", good)])
    assert ens.names == ("evil", "member_1", "upload2")
    for name in ens.names:
        check_id(name, "member name")


def test_a_planted_symlink_in_a_store_is_never_followed(tmp_path):
    elsewhere = _make_run(tmp_path / "elsewhere" / "r0")
    store = tmp_path / "store"
    store.mkdir()
    (store / "p000-a-s1").symlink_to(elsewhere, target_is_directory=True)  # a "complete" run, planted
    (store / ".lock").symlink_to(tmp_path / "victim.txt")
    res = RunResult("p000-a-s1", "complete", manifest={"params": {}}, tables={"t": pd.DataFrame({"a": [1]})})
    path = write_run(res, store)
    assert not path.is_symlink() and runstore.verify_run(path).ok and runstore.verify_run(elsewhere).ok
    from scenarios.batch import _locked

    with pytest.raises(OSError), _locked(store):  # the planted lock link is refused, not followed
        pass
    assert not (tmp_path / "victim.txt").exists()
