"""Issue #12, class 5 (CLI part): every command ends with its result or one line and exit 2.

- an unexpected internal error is one line ``internal error: ...`` naming a
  log file that holds the traceback (exit 2), never a traceback on screen;
- a malformed ``sweep.json`` or ``manifest.json`` and a corrupt Parquet table
  in replay are one-line errors;
- ``twin log verify`` reports TAMPERED (exit 1) for a line with NaN, deep
  nesting, a huge number or bad UTF-8, and never crashes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from scenarios.batch import SWEEP_FORMAT
from twin import runstore
from twin.cli import cli


def _twin(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def _make_run(folder: Path) -> Path:
    with runstore.RunWriter(folder) as w:
        for i in range(3):
            w.log.append(60.0 * i, "report", f"citizen:{i}", payload={"i": i})
        return w.commit({"incidents": pd.DataFrame({"onset_s": [1.0, 2.0]})}, params={"seed": 1, "hours": 1},
                        kpis={"counts": {"incidents": 2}})


def test_an_internal_error_is_one_line_with_the_traceback_in_a_log_file(tmp_path, monkeypatch):
    run = _make_run(tmp_path / "r1")
    logs = tmp_path / "logs"
    monkeypatch.setenv("CITYTWIN_LOG_DIR", str(logs))

    def broken(run_dir):
        return {}["no such key"]  # a bug of ours, not the user's

    monkeypatch.setattr(runstore, "verify_run", broken)
    r = _twin("log", "verify", run)
    assert r.exit_code == 2
    line = _one_line(r.stderr)
    assert line.startswith("internal error: KeyError") and "details in" in line
    (log,) = list(logs.iterdir())
    assert str(log) in line
    text = log.read_text()
    assert "Traceback" in text and "broken" in text


SWEEP_PAYLOADS = {
    "not_json": b"{this is not json",
    "binary": bytes(range(256)) * 4,
    "array": b"[]",
    "nan": json.dumps({"format": SWEEP_FORMAT}).replace("}", ', "n": NaN}').encode(),
    "deep": b'{"format": "citytwin-sweep/1", "scenario": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
    "runs_not_list": json.dumps({"format": SWEEP_FORMAT, "scenario": {}, "runs": 5}).encode(),
    "run_not_object": json.dumps({"format": SWEEP_FORMAT, "scenario": {}, "runs": ["p0"]}).encode(),
    "seed_text": json.dumps({"format": SWEEP_FORMAT, "scenario": {},
                             "runs": [{"run_id": "p0", "params": {}, "seed": "x"}]}).encode(),
    "params_list": json.dumps({"format": SWEEP_FORMAT, "scenario": {},
                               "runs": [{"run_id": "p0", "params": [1], "seed": 1}]}).encode(),
    "scenario_text": json.dumps({"format": SWEEP_FORMAT, "scenario": "x",
                                 "runs": [{"run_id": "p0", "params": {}, "seed": 1}]}).encode(),
    "bad_scenario": json.dumps({"format": SWEEP_FORMAT, "scenario": {"scenario": {"name": "s"}, "period": {"hours": -4}},
                                "runs": [{"run_id": "p0", "params": {}, "seed": 1}]}).encode(),
    "failed_list": json.dumps({"format": SWEEP_FORMAT, "scenario": {}, "failed": [1],
                               "runs": [{"run_id": "p0", "params": {}, "seed": 1}]}).encode(),
}


@pytest.mark.parametrize("name", sorted(SWEEP_PAYLOADS))
def test_a_malformed_sweep_json_is_one_line_and_exit_2(tmp_path, name):
    sweep = tmp_path / "runs" / "s"
    sweep.mkdir(parents=True)
    (sweep / "sweep.json").write_bytes(SWEEP_PAYLOADS[name])
    r = _twin("batch", "--resume", sweep)
    assert r.exit_code == 2, r.output
    assert _one_line(r.stderr).startswith("error: ")
    r = _twin("runs", "list", tmp_path / "runs")  # listing never crashes on it either
    assert r.exit_code in (0, 2) and "Traceback" not in r.output and "internal error" not in r.output


MANIFEST_EDITS = {
    "not_json": lambda text: text[: len(text) // 2],
    "nan": lambda text: text.replace('"seed": 1', '"seed": NaN', 1),
    "deep": lambda text: text.replace('"seed": 1', '"seed": ' + "[" * 50_000 + "]" * 50_000, 1),
    "array": lambda text: "[1, 2, 3]",
    "events_text": lambda text: json.dumps({**json.loads(text), "events": "events.jsonl"}),
    "tables_list": lambda text: json.dumps({**json.loads(text), "tables": ["incidents"]}),
    "params_gone": lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "params"}),
}


@pytest.mark.parametrize("name", sorted(MANIFEST_EDITS))
def test_a_malformed_manifest_is_one_line_in_replay_and_compare_and_tampered_in_verify(tmp_path, name):
    run = _make_run(tmp_path / "r1")
    path = run / "manifest.json"
    path.write_text(MANIFEST_EDITS[name](path.read_text()))
    for args in (("replay", run, "--at", "0"), ("compare", run), ("render", run, "--out", tmp_path / "a.gif")):
        r = _twin(*args)
        assert r.exit_code == 2, (args, r.output)
        assert _one_line(r.stderr).startswith("error: "), args
    r = _twin("log", "verify", run)
    assert r.exit_code == 1
    assert _one_line(r.stderr).startswith("TAMPERED")


@pytest.mark.parametrize("payload", [b"", b"PAR1", b"PAR1" + b"\x00" * 64 + b"PAR1", b"not parquet at all"])
def test_a_corrupt_parquet_table_in_replay_is_one_line(tmp_path, payload):
    run = _make_run(tmp_path / "r1")
    (run / "incidents.parquet").write_bytes(payload)
    r = _twin("replay", run, "--at", "0")
    assert r.exit_code == 2
    line = _one_line(r.stderr)
    assert line.startswith("error: ") and "incidents.parquet" in line and "Parquet" in line


BAD_LINES = {
    "nan": b'{"actor":"a","kind":"note","payload":{"v":NaN},"prev_sha256":"' + b"0" * 64 + b'","seq":0,"sha256":"x"}',
    "infinity": b'{"seq":0,"time_s":Infinity,"sha256":"x"}',
    "huge_float": b'{"seq":0,"time_s":1e999,"sha256":"x"}',
    "huge_int": b'{"seq":' + b"9" * 10_000 + b',"sha256":"x"}',
    "deep": b'{"sha256":"x","payload":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "deep_objects": b'{"sha256":"x","payload":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}",
    "bad_utf8": b'{"sha256":"\xff\xfe"}',
    "not_object": b"[1,2,3]",
    "sha_not_text": b'{"sha256":[1]}',
}


@pytest.mark.parametrize("name", sorted(BAD_LINES))
@pytest.mark.parametrize("where", ["first", "middle"])
def test_log_verify_says_tampered_and_never_crashes(tmp_path, name, where):
    run = _make_run(tmp_path / "r1")
    log = run / "events.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    lines.insert(0 if where == "first" else 2, BAD_LINES[name] + b"\n")
    log.write_bytes(b"".join(lines))
    for target in (run, log):  # the run folder, and the bare log file
        r = _twin("log", "verify", target)
        assert r.exit_code == 1, r.output
        line = _one_line(r.stderr)
        assert line.startswith("TAMPERED") and ("line 1" in line if where == "first" else "line 3" in line)


def test_a_table_edited_to_lack_a_column_replays_as_one_line(tmp_path):
    run = _make_run(tmp_path / "r1")
    for name in ("reports", "cases", "dispatches", "positions"):  # what replay reads, as valid Parquet ...
        pd.DataFrame({"x": [1.0]}).to_parquet(run / f"{name}.parquet")
    man = json.loads((run / "manifest.json").read_text())
    man["tables"].update({n: {"rows": 1, "sha256": "0" * 64} for n in ("reports", "cases", "dispatches", "positions")})
    (run / "manifest.json").write_text(json.dumps(man))
    r = _twin("replay", run, "--at", "0")  # ... but without the columns replay needs
    assert r.exit_code == 2
    line = _one_line(r.stderr)
    assert line.startswith("error: ") and "cannot be replayed" in line and "changed since the run" in line


# ----------------------------------------------------------------------------- fuzzing the readers of this area

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)
_FIELDS = st.sampled_from(["format", "runs", "scenario", "failed", "events", "tables", "files", "params", "status",
                           "run_id", "file", "n_records", "head_sha256", "manifest_sha256", "seed", "sha256"])
_DOC = st.one_of(
    st.binary(max_size=600),
    _JSON.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(_FIELDS, _JSON, max_size=8).map(lambda v: json.dumps(v).encode()),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.sampled_from([b"NaN", b"[Infinity]", b'{"a": -Infinity}', b"1e999", b"9" * 5000, b"\xff\xfe"]),
)
_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(lines=st.lists(_DOC, max_size=4))
def test_fuzz_verify_log_always_gives_a_verdict(lines):
    import tempfile

    from twin.eventlog import verify_log

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "events.jsonl"
        p.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + (b"\n" if lines else b""))
        res = verify_log(p, head_sha256="0" * 64, n_records=1)
        assert isinstance(res.ok, bool) and "\n" not in res.message


@_FUZZ
@given(doc=_DOC)
def test_fuzz_manifest_readers_return_or_raise_a_twin_error(doc):
    import tempfile

    from gisdata.errors import TwinError

    with tempfile.TemporaryDirectory() as tmp:
        run = _make_run(Path(tmp) / "r1")
        (run / "manifest.json").write_bytes(doc)
        check = runstore.verify_run(run)  # a verdict, never an exception, for any manifest content
        assert not check.ok
        for read in (runstore.read_manifest, runstore.read_kpis, lambda r: runstore.read_table(r, "incidents")):
            try:
                read(run)
            except TwinError:
                pass


@_FUZZ
@given(doc=_DOC)
def test_fuzz_sweep_json_is_read_or_refused_with_a_twin_error(doc):
    import tempfile

    from gisdata.errors import TwinError
    from scenarios.batch import _read_sweep, sweep_state

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "sweep.json").write_bytes(doc)
        for read in (_read_sweep, sweep_state):
            try:
                read(d)
            except TwinError:
                pass


def test_runs_list_names_a_malformed_sweep_and_lists_the_rest(tmp_path):
    good = _make_run(tmp_path / "runs" / "r-good")
    bad = tmp_path / "runs" / "s-bad"
    _make_run(bad / "p000-x-s1")
    (bad / "sweep.json").write_text('{"format": "citytwin-sweep/1", "runs": "nope"}')
    r = _twin("runs", "list", tmp_path / "runs")
    assert r.exit_code == 0, r.output
    assert "sweep s-bad: " in r.output and "malformed" in r.output and good.name in r.output


def test_usage_errors_are_one_line_and_a_bare_group_still_shows_its_help():
    r = _twin("swmm", "run", "--return-period", "not-a-number")
    assert r.exit_code == 2
    line = _one_line(r.stderr)
    assert line.startswith("error: ") and "--return-period" in line and "swmm run --help" in line
    r = _twin("nosuch")
    assert r.exit_code == 2 and _one_line(r.stderr).startswith("error: No such command")
    r = _twin("swmm")
    assert "Commands:" in r.output and "run" in r.output  # help, not an error line


def test_compare_of_a_run_whose_kpis_were_edited_is_one_line(tmp_path):
    run = _make_run(tmp_path / "r1")
    (run / "kpis.json").write_text(json.dumps({"response": {"all:all": {"response_s": {"p50": "soon"}}}}))
    r = _twin("compare", run)
    assert r.exit_code == 2
    line = _one_line(r.stderr)
    assert line.startswith("error: ") and "cannot be compared" in line and "kpis.json" in line
