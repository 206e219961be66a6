"""Replay of a stored coupled run: state at t from the event log and the stored series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from agents import compute_kpis, flatten_kpis
from hydraulics.rainfall import chicago_storm
from conftest import make_tiny_city
from twin.coupler import CouplingOptions, run_coupled
from twin.eventlog import read_log
from twin.replay import ReplayError, cut_tables, format_state, load_run, state_at
from twin.runstore import (
    NotARunError,
    RunExistsError,
    RunWriter,
    read_kpis,
    read_manifest,
    write_coupled_run,
)

HOURS = 3.0


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    city = make_tiny_city()
    rain = chicago_storm("beijing", 50, 60)
    out = tmp_path_factory.mktemp("runs") / "storm1"

    def run(event_sink, progress):
        # the tiny city's streets take ~10 cm in this storm: lower closure depths so that roads close
        return run_coupled(city, hours=HOURS, strategy="priority", seed=3, rain=rain, start_s=1800.0,
                           event_sink=event_sink, progress=progress, n_citizens=120, n_vendors=3,
                           options=CouplingOptions(car_m=0.05, all_m=0.10, cell_size_m=5.0))

    return write_coupled_run(out, run, params={"city": "tiny", "hours": HOURS, "strategy": "priority", "seed": 3},
                             city=city)


def test_manifest_is_complete_and_names_its_inputs(run_dir):
    man = read_manifest(run_dir)
    assert man["status"] == "complete" and man["run_id"] == "storm1" and man["seed"] == 3
    assert man["events"]["n_records"] == len(read_log(run_dir / "events.jsonl"))
    assert len(man["inputs"]["city_sha256"]) == 64 and len(man["inputs"]["swmm_inp_sha256"]) == 64
    assert {"pandas", "simpy", "mesa", "swmm-toolkit", "python"} <= set(man["versions"])
    assert man["tables"]["road_closures"]["rows"] >= 1
    assert not [p for p in run_dir.parent.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_kpis_at_the_end_are_the_stored_ones_and_cutting_is_identity_there(run_dir):
    tables = load_run(run_dir)["tables"]
    stored = flatten_kpis(read_kpis(run_dir))
    assert flatten_kpis(state_at(run_dir, HOURS * 3600).kpis) == pytest.approx(stored, nan_ok=True)
    cut = flatten_kpis(compute_kpis(cut_tables(tables, HOURS * 3600), horizon_s=HOURS * 3600))
    for k in ("response.all:all.response_s.p90", "duplicates.dispatches", "counts.reports", "counts.dispatched",
              "resolution_s.p50", "unresolved.cases", "incident_response_s.p50"):
        assert cut[k] == pytest.approx(stored[k], nan_ok=True), k


def test_state_grows_with_time_and_matches_the_log(run_dir):
    log = read_log(run_dir / "events.jsonl")
    before = state_at(run_dir, 0.0)
    assert before.kpis["counts"]["dispatched"] == 0 and before.flood_nodes.empty
    prev = -1
    for t in (1800.0, 3600.0, 5400.0, 7200.0, 10800.0):
        s = state_at(run_dir, t)
        n = s.kpis["counts"]["reports"]
        assert n >= prev
        prev = n
        assert n == int(((log["kind"] == "report") & (log["time_s"] <= t)).sum())
        assert s.counts.get("dispatch", 0) == int(((log["kind"] == "dispatch") & (log["time_s"] <= t)).sum())
        assert (s.incidents["onset_s"] <= t).all()


def test_flood_and_closures_at_t(run_dir):
    closures = load_run(run_dir)["tables"].get("flood_nodes")
    assert closures is not None and len(closures)
    rc = pd.read_parquet(run_dir / "road_closures.parquet")
    first = rc.iloc[0]
    during = state_at(run_dir, float(first["time_s"]) + 1.0)
    assert during.roads_closed.loc[first["road_id"], "status"] == first["status"]
    assert len(during.flood_nodes) and (during.flood_nodes["time_s"] <= first["time_s"] + 1.0).all()
    assert state_at(run_dir, float(first["time_s"]) - 1.0).roads_closed.empty
    flood_open = during.incidents[during.incidents["source"] == "flood"]
    assert len(flood_open) >= 1


def test_crews_at_t_are_the_tick_positions(run_dir):
    pos = load_run(run_dir)["tables"]["positions"]
    t = 5400.0
    s = state_at(run_dir, t + 100.0)  # between ticks: the last tick
    ticks = pos[(pos["kind"] == "crew") & (pos["time_s"] == t)].set_index("agent_id")
    assert np.allclose(s.crews.loc[ticks.index, ["x", "y"]].to_numpy(), ticks[["x", "y"]].to_numpy())
    assert set(s.crews["status"]) <= {"idle", "travel", "service", "staging"}
    text = format_state(s)
    assert "open incidents" in text and "crews" in text


def test_bad_replays_are_clear(run_dir, tmp_path):
    with pytest.raises(ReplayError, match="outside the run"):
        state_at(run_dir, HOURS * 3600 + 1)
    (tmp_path / "half").mkdir()
    with pytest.raises(NotARunError):
        state_at(tmp_path / "half", 0.0)


def test_run_writer_is_atomic(tmp_path):
    out = tmp_path / "r"
    with pytest.raises(RuntimeError, match="boom"), RunWriter(out) as w:
        w.log.append(0.0, "note", "test")
        raise RuntimeError("boom")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with RunWriter(out) as w:
        w.commit({"t": pd.DataFrame({"a": [1.0, np.nan]})}, params={"seed": 1}, kpis={"x": float("nan")})
    assert read_manifest(out)["status"] == "complete"
    assert np.isnan(read_kpis(out)["x"])
    with pytest.raises(RunExistsError):
        RunWriter(out)


# ----------------------------------------------------------------------------- the map (issue #13 item 4)


def test_state_deck_is_the_replay_map_in_the_one_palette(run_dir):
    import json

    from twin.replay import state_deck
    from twin.viz import palette as pal
    from twin.viz.animation import incident_status
    from twin.viz.export import deck_layers_geojson
    from twin.viz.legend import deck_legend_html

    city = make_tiny_city()
    state = state_at(run_dir, 5400.0)
    assert len(state.crews) and len(state.incidents)
    status = incident_status(run_dir, state)
    deck = state_deck(state, city, status=status)
    spec = json.loads(deck.to_json())
    layers = {layer["id"]: layer for layer in spec["layers"]}
    assert {"road_status", "water", "incidents", "vendors", "crews"} <= set(layers)
    assert spec["mapStyle"] == "__MAP_STYLE__"  # no basemap
    crews = {pal.hex_of(r["color"]) for r in layers["crews"]["data"]}
    assert crews <= {c.lower() for c in pal.DEPARTMENT.values()}
    incidents = [pal.hex_of(r["color"]) for r in layers["incidents"]["data"]]
    assert incidents == [pal.INCIDENT[s].lower() for s in status.reindex(
        [r["incident_id"] for r in layers["incidents"]["data"]])]  # coloured by status, not by category
    legend = deck_legend_html(deck, "zh")
    assert "图例" in legend and "队伍" in legend
    fc = json.loads(deck_layers_geojson(deck))
    assert fc["type"] == "FeatureCollection" and {f["properties"]["layer"] for f in fc["features"]} >= {
        "road_status", "crews", "incidents"}


@pytest.fixture
def replay_app(tmp_path, monkeypatch):
    """The workbench on a stored 1.5 h storm run of the tiny city (its GeoPackage in the run store's folder)."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from gisdata.city import save_city

    city = make_tiny_city()
    gpkg = save_city(city, tmp_path / "tiny.gpkg")
    write_coupled_run(tmp_path / "runs" / "storm1",
                      lambda event_sink, progress: run_coupled(
                          city, hours=1.5, strategy="priority", seed=3, rain=chicago_storm("beijing", 50, 60),
                          start_s=600.0, event_sink=event_sink, progress=progress, n_citizens=60, n_vendors=2),
                      params={"city": str(gpkg), "hours": 1.5, "strategy": "priority", "seed": 3}, city=city)
    monkeypatch.setenv("CITYTWIN_APP_CITY", str(gpkg))
    monkeypatch.setenv("CITYTWIN_WORKSPACE", str(tmp_path))
    monkeypatch.delenv("CITYTWIN_RUNS_DIR", raising=False)
    app = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=180).run()
    app.sidebar.radio(key="page__en").set_value("replay").run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_replay_page_map_has_its_legend_exports_and_a_player(replay_app):
    from twin.i18n import t
    from twin.pages import replay as page

    app = replay_app
    app.slider(key="replay_minutes").set_value(60).run()
    assert not app.exception, [e.value for e in app.exception]
    legend = " ".join(h.proto.body for h in app.get("html"))
    assert "citytwin-legend" in legend and t("map.legend.title", "en") in legend
    assert t("replay.legend", "en") not in [c.value for c in app.caption]  # the old caption naming old colours
    assert {b.proto.label for b in app.get("download_button")} == {t("map.export.png", "en"),
                                                                  t("map.export.geojson", "en")}
    assert len(app.get("iframe")) == 0  # the player is drawn only when asked

    page._players().clear()
    app.toggle(key="replay_player").set_value(True).run()
    assert not app.exception, [e.value for e in app.exception]
    (frame,) = app.get("iframe")
    html = frame.proto.srcdoc
    assert 'id="citytwin-play"' in html and html.count("data:image/png;base64,") == 10  # 00:00 .. 01:30
    assert "http://" not in html and "https://" not in html
    assert any(t("replay.player.hint", "en", step="10")[:40] in c.value for c in app.caption)
    app.slider(key="replay_minutes").set_value(30).run()  # another time: the same player, not drawn again
    assert len(page._players()) == 1 and app.get("iframe")[0].proto.srcdoc == html
