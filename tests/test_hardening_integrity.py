"""Issue #12, class 6: `twin log verify` checks every file of a run, and the run head can be signed or anchored.

Each tampering the review found said "intact"; here each says TAMPERED
(exit 1): ``kpis.json`` edited, the manifest's parameters edited, a table and
its manifest entry deleted, ``manifest.events`` removed, ``events.file``
pointing outside the run -- plus a file added, a table swapped for a
symlink, and the event log replaced by another valid log.  An attacker who
also recomputes ``manifest_sha256`` is caught by the Ed25519 signature
(``--key``) and by the anchor file (``--anchor``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from twin import runstore
from twin.cli import cli
from twin.eventlog import EventLog, canonical_json


def _twin(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("pristine") / "r1"
    with runstore.RunWriter(folder) as w:
        for i in range(5):
            w.log.append(60.0 * i, "dispatch", f"crew:{i}", x=1.0, y=2.0, payload={"incident_id": f"I{i}"})
        w.commit({"incidents": pd.DataFrame({"onset_s": [1.0, 2.0]}), "dispatches": pd.DataFrame({"d": [3]})},
                 params={"seed": 7, "hours": 2, "strategy": "priority"}, kpis={"response": {"p90": 600.0}})
    return folder


@pytest.fixture
def run(pristine, tmp_path) -> Path:
    out = tmp_path / "r1"
    shutil.copytree(pristine, out)
    return out


def _manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def _write_manifest(run: Path, man: dict, *, rehash: bool = False) -> None:
    if rehash:  # what a careful attacker does: recompute the manifest's own digest
        man["manifest_sha256"] = runstore.manifest_digest(man)
    (run / "manifest.json").write_text(json.dumps(man, indent=1))


def _verify(run: Path, *extra):
    r = _twin("log", "verify", run, *extra)
    text = (r.stdout + r.stderr).strip()
    assert len(text.splitlines()) == 1 and "Traceback" not in text, text
    return r.exit_code, text


def test_a_fresh_run_is_intact_and_every_file_is_covered(run):
    code, text = _verify(run)
    assert code == 0 and text.startswith("intact") and "head " in text
    man = _manifest(run)
    covered = {"manifest.json", man["events"]["file"], *(f"{t}.parquet" for t in man["tables"]), *man["files"]}
    assert covered == {p.name for p in run.iterdir()}
    assert man["manifest_sha256"] == runstore.manifest_digest(man)


def _edit_kpis(run):
    p = run / "kpis.json"
    p.write_text(p.read_text().replace("600.0", "60.0"))


def _edit_params(run):
    man = _manifest(run)
    man["params"]["strategy"] = "siloed"
    _write_manifest(run, man)


def _delete_table_and_entry(run):
    man = _manifest(run)
    del man["tables"]["dispatches"]
    (run / "dispatches.parquet").unlink()
    _write_manifest(run, man)


def _remove_events_entry(run):
    man = _manifest(run)
    del man["events"]
    _write_manifest(run, man)


def _events_outside(run):
    outside = run.parent / "elsewhere.jsonl"
    shutil.copy(run / "events.jsonl", outside)
    man = _manifest(run)
    man["events"]["file"] = "../elsewhere.jsonl"
    _write_manifest(run, man)


def _extra_file(run):
    (run / "notes.parquet").write_bytes(b"added later")


def _table_symlink(run):
    target = run.parent / "copy.parquet"
    shutil.copy(run / "incidents.parquet", target)
    (run / "incidents.parquet").unlink()
    (run / "incidents.parquet").symlink_to(target)


def _other_valid_log(run):
    p = run / "events.jsonl"
    p.unlink()
    with EventLog(p) as log:
        log.append(0.0, "note", "forger")


def _kpis_entry_dropped(run):
    man = _manifest(run)
    man["files"] = {}
    _write_manifest(run, man)


def _edit_kpis_and_entry(run):
    _edit_kpis(run)
    man = _manifest(run)
    man["files"]["kpis.json"]["sha256"] = runstore.file_sha256(run / "kpis.json")
    _write_manifest(run, man)


TAMPERS = {f.__name__.lstrip("_"): f for f in (_edit_kpis, _edit_params, _delete_table_and_entry, _remove_events_entry,
                                               _events_outside, _extra_file, _table_symlink, _other_valid_log,
                                               _kpis_entry_dropped, _edit_kpis_and_entry)}


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_every_tampering_is_reported(run, name):
    TAMPERS[name](run)
    check = runstore.verify_run(run)
    assert not check.ok
    code, text = _verify(run)
    assert code == 1 and text.startswith("TAMPERED"), text


@pytest.mark.parametrize("name", ["edit_params", "delete_table_and_entry", "kpis_entry_dropped", "edit_kpis_and_entry"])
def test_a_rehashed_manifest_passes_the_digest_but_not_the_signature_or_the_anchor(pristine, tmp_path, name):
    run = tmp_path / "r1"
    shutil.copytree(pristine, run)
    key = tmp_path / "keys" / "me.key"
    key.parent.mkdir()
    r = _twin("log", "keygen", key)
    assert r.exit_code == 0 and (key.stat().st_mode & 0o777) == 0o600
    pub = key.with_name("me.key.pub")
    anchors = tmp_path / "anchors.jsonl"
    assert _twin("log", "sign", run, "--key", key).exit_code == 0
    assert _twin("log", "anchor", run, "--to", anchors).exit_code == 0
    code, text = _verify(run, "--key", pub, "--anchor", anchors)
    assert code == 0 and "signature ok" in text and "anchored" in text

    TAMPERS[name](run)
    man = _manifest(run)
    _write_manifest(run, man, rehash=True)
    if name == "kpis_entry_dropped":
        (run / "kpis.json").unlink()
    assert _verify(run)[0] == 0  # the digest alone cannot tell: the attacker recomputed it
    code, text = _verify(run, "--key", pub)
    assert code == 1 and "signs head" in text
    code, text = _verify(run, "--anchor", anchors)
    assert code == 1 and "does not hold" in text


def test_a_signature_with_another_key_or_a_forged_one_is_refused(run, tmp_path):
    (tmp_path / "k").mkdir()
    for name in ("a", "b"):
        assert _twin("log", "keygen", tmp_path / "k" / name).exit_code == 0
    assert _twin("log", "sign", run, "--key", tmp_path / "k" / "a").exit_code == 0
    code, text = _verify(run, "--key", tmp_path / "k" / "b.pub")
    assert code == 1 and "another key" in text
    sig = json.loads((run / "manifest.sig").read_text())
    forged = bytes.fromhex(sig["signature"])
    sig["signature"] = bytes([forged[0] ^ 1]).hex() + forged[1:].hex()
    (run / "manifest.sig").write_text(json.dumps(sig))
    code, text = _verify(run, "--key", tmp_path / "k" / "a.pub")
    assert code == 1 and "does not verify" in text
    # keys are never overwritten, a private key is not a public key
    assert _twin("log", "keygen", tmp_path / "k" / "a").exit_code == 2
    r = _twin("log", "verify", run, "--key", tmp_path / "k" / "a")
    assert r.exit_code == 2 and r.stderr.startswith("error: ")


def test_a_tampered_run_is_never_signed_or_anchored(run, tmp_path):
    _twin("log", "keygen", tmp_path / "k")
    _edit_kpis(run)
    for args in (("sign", run, "--key", tmp_path / "k"), ("anchor", run, "--to", tmp_path / "a.jsonl")):
        r = _twin("log", *args)
        assert r.exit_code == 2 and "not intact" in r.stderr
    assert not (run / "manifest.sig").exists() and not (tmp_path / "a.jsonl").exists()


def test_the_anchor_file_is_itself_append_only(run, tmp_path):
    anchors = tmp_path / "anchors.jsonl"
    assert _twin("log", "anchor", run, "--to", anchors).exit_code == 0
    rec = json.loads(anchors.read_text().splitlines()[0])
    rec["payload"]["head_sha256"] = "f" * 64  # rewrite the anchored head
    body = {k: v for k, v in rec.items() if k != "sha256"}
    rec["sha256"] = hashlib.sha256(canonical_json(body).encode()).hexdigest()
    anchors.write_text(canonical_json(rec) + "\n")
    code, text = _verify(run, "--anchor", anchors)
    assert code == 1 and "does not hold" in text
    anchors.write_text(anchors.read_text().replace('"seq":0', '"seq":1'))
    code, text = _verify(run, "--anchor", anchors)
    assert code == 1 and "broken chain" in text
