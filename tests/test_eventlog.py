"""Hash-chained event log: writing, verification, tamper detection."""

from __future__ import annotations

import json

import numpy as np
import pytest

from twin.eventlog import GENESIS, EventLog, EventLogError, read_log, verify_log


def write_log(path, n=10):
    with EventLog(path) as log:
        for i in range(n):
            log.append(60.0 * i, "report" if i % 2 else "dispatch", f"citizen:{i}", x=500_000.0 + i, y=3_400_000.0,
                       payload={"report_id": f"R{i:07d}", "depth_m": np.float64(0.1 * i), "n": np.int64(i)})
        return log.n_records, log.head_sha256


def test_clean_log_verifies(tmp_path):
    p = tmp_path / "events.jsonl"
    n, head = write_log(p)
    res = verify_log(p, head_sha256=head, n_records=n)
    assert res.ok and res.n_records == 10 and res.head_sha256 == head
    first = json.loads(p.read_text().splitlines()[0])
    assert first["prev_sha256"] == GENESIS and first["seq"] == 0
    df = read_log(p)
    assert list(df.index) == list(range(10)) and df.loc[3, "payload"]["n"] == 3


def test_one_byte_edit_in_the_middle_names_that_record(tmp_path):
    p = tmp_path / "events.jsonl"
    write_log(p)
    lines = p.read_bytes().splitlines(keepends=True)
    line = bytearray(lines[5])
    i = line.index(b"R0000005") + 7
    line[i] = ord("9")  # R0000005 -> R0000009: still valid JSON
    lines[5] = bytes(line)
    p.write_bytes(b"".join(lines))
    res = verify_log(p)
    assert not res.ok and res.bad_line == 6 and res.bad_seq == 5 and "edited" in res.reason
    assert "line 6" in res.message


def test_edit_of_last_record_is_detected(tmp_path):
    p = tmp_path / "events.jsonl"
    write_log(p)
    text = p.read_text().replace('"actor":"citizen:9"', '"actor":"citizen:X"')
    p.write_text(text)
    res = verify_log(p)
    assert not res.ok and res.bad_line == 10


def test_deletion_is_detected(tmp_path):
    p = tmp_path / "events.jsonl"
    write_log(p)
    lines = p.read_text().splitlines(keepends=True)
    del lines[4]
    p.write_text("".join(lines))
    res = verify_log(p)
    assert not res.ok and res.bad_line == 5 and res.bad_seq == 4


def test_insertion_is_detected(tmp_path):
    p = tmp_path / "events.jsonl"
    write_log(p)
    lines = p.read_text().splitlines(keepends=True)
    lines.insert(3, lines[7])  # a genuine record copied elsewhere
    p.write_text("".join(lines))
    res = verify_log(p)
    assert not res.ok and res.bad_line == 4 and res.bad_seq == 3


def test_reordering_is_detected(tmp_path):
    p = tmp_path / "events.jsonl"
    write_log(p)
    lines = p.read_text().splitlines(keepends=True)
    lines[2], lines[3] = lines[3], lines[2]
    p.write_text("".join(lines))
    res = verify_log(p)
    assert not res.ok and res.bad_line == 3


def test_truncation_needs_the_manifest_head(tmp_path):
    p = tmp_path / "events.jsonl"
    n, head = write_log(p)
    lines = p.read_text().splitlines(keepends=True)
    p.write_text("".join(lines[:-2]))
    assert verify_log(p).ok  # a shorter chain is still a chain
    res = verify_log(p, head_sha256=head, n_records=n)
    assert not res.ok and "manifest" in res.reason


def test_append_continues_the_chain_and_refuses_a_broken_log(tmp_path):
    p = tmp_path / "events.jsonl"
    write_log(p, n=3)
    with EventLog(p) as log:
        assert log.n_records == 3
        log.append(999.0, "note", "test")
    assert verify_log(p).n_records == 4
    p.write_text(p.read_text().replace('"test"', '"tset"'))
    from gisdata.errors import CorruptFileError

    with pytest.raises(CorruptFileError, match="line 4"):
        EventLog(p)


def test_bad_events_are_rejected(tmp_path):
    with EventLog(tmp_path / "e.jsonl") as log:
        with pytest.raises(EventLogError, match="time_s"):
            log.append(float("nan"), "report", "x")
        with pytest.raises(EventLogError, match="not JSON"):
            log.append(0.0, "report", "x", payload={"obj": object()})
    assert verify_log(tmp_path / "e.jsonl").n_records == 0


def test_eventlog_does_not_import_agents():
    import ast
    import pathlib

    import twin.eventlog as mod

    tree = ast.parse(pathlib.Path(mod.__file__).read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(n.split(".")[0] in ("agents", "hydraulics") for n in names)


def test_simulation_events_form_a_valid_log(tmp_path):
    import pandas as pd

    from agents.gridcity import make_grid_city
    from agents.runner import simulate_day

    city = make_grid_city(6, 6)
    p = tmp_path / "run.jsonl"
    flood = pd.DataFrame({"x": [500_300.0], "y": [3_400_300.0], "time_s": [7 * 3600.0], "depth_m": [0.3],
                          "node": ["N002_002"]})
    closures = pd.DataFrame({"road_id": ["R00005"], "status": ["closed"], "time_s": [7 * 3600.0]})
    with EventLog(p) as log:
        simulate_day(city, hours=10, n_citizens=500, n_vendors=5, crews=8, seed=4, flood_incidents=flood,
                     closures=closures, event_sink=log)
        n = log.n_records
    res = verify_log(p, n_records=n)
    assert res.ok
    kinds = set(read_log(p)["kind"])
    assert {"report", "case", "dispatch", "arrival", "resolution", "closure", "flood_onset",
            "road_closure", "vendor_occupy"} <= kinds
    times = read_log(p)["time_s"].to_numpy()
    assert (np.diff(times) >= -1e-9).all()  # the log is in simulated-time order
