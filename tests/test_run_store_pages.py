"""Every run from a page is saved and replayable, and page state survives (issue #13 items 2 and 3).

The real app (AppTest) on the tiny city, with its workspace in ``tmp_path``: a
flood event run from its page lands in the workspace run store, Replay lists it
with its parameters and opens it, a link (``?page=replay&run=<id>``) opens it,
the storm sliders keep 100 yr / 60 min across page and language switches, and
the results stay (marked "from other settings") when the storm changes.  A
``twin run`` of a scenario whose ``[outputs]`` leaves out what replay reads
still replays (CLI and page), saying what is missing.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from twin.i18n import t

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")


@pytest.fixture(scope="module")
def tiny_gpkg(tmp_path_factory) -> Path:
    from conftest import make_tiny_city

    from gisdata.city import save_city

    return save_city(make_tiny_city(), tmp_path_factory.mktemp("ws") / "tiny.gpkg")


@pytest.fixture
def workspace(tiny_gpkg, tmp_path, monkeypatch) -> Path:
    """A workspace folder (the run store is its ``runs``) and the tiny city as the app's city."""
    monkeypatch.setenv("CITYTWIN_APP_CITY", str(tiny_gpkg))
    monkeypatch.setenv("CITYTWIN_WORKSPACE", str(tmp_path))
    monkeypatch.delenv("CITYTWIN_RUNS_DIR", raising=False)
    return tmp_path


def _ok(app: AppTest) -> None:
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]


def _page(app: AppTest, page: str, lang: str = "en") -> None:
    app.sidebar.radio(key=f"page__{lang}").set_value(page).run()
    _ok(app)


def test_a_flood_event_is_saved_opens_on_replay_and_the_page_keeps_its_state(workspace):
    from twin.runstore import list_stored_runs, read_manifest, verify_run

    app = AppTest.from_file(APP, default_timeout=180).run()
    _page(app, "flood_event")
    app.select_slider(key="flood_period").set_value(100)
    app.select_slider(key="flood_duration").set_value(60)
    app.select_slider(key="flood_drain").set_value(1.0).run()
    app.button(key="flood_run").click().run(timeout=180)
    _ok(app)
    flooded = {m.label: m.value for m in app.metric}[t("flood.summary.flooded_nodes", "en")]

    # saved in <workspace>/runs, complete and intact, with its kind and parameters
    runs = list_stored_runs(workspace / "runs")
    assert runs["kind"].tolist() == ["flood_event"]
    run_id = runs["run_id"][0]
    assert any(run_id in c.value for c in app.caption)  # the page says where it went
    run = workspace / "runs" / run_id
    man = read_manifest(run)
    assert man["kind"] == "flood_event" and verify_run(run).ok
    assert man["params"]["storm"] == {"kind": "chicago", "idf": "beijing", "return_period_yr": 100.0,
                                      "duration_min": 60.0, "r": 0.4, "step_min": 5.0}
    assert man["params"]["hours"] == pytest.approx(2.0) and man["params"]["drain_time_h"] == 1.0
    assert {"depth_series.tif", "summary.json"} <= set(man["files"]) and {"roads", "risk_points"} <= set(man["tables"])
    assert runs["storm"][0] == "chicago 100 yr 60 min" and runs["city"][0] == "tiny.gpkg"

    # Replay lists it (no command line) and opens it as a flood event: summary, map with the street water
    _page(app, "replay")
    listed = app.dataframe[0].value
    assert listed[t("replay.col.kind", "en")].tolist() == [t("replay.kind.flood_event", "en")]
    assert listed[t("replay.col.storm", "en")].tolist() == ["chicago 100 yr 60 min"]
    assert app.selectbox(key="replay_run").value.name == run_id
    assert {m.label: m.value for m in app.metric}[t("flood.summary.flooded_nodes", "en")] == flooded
    assert len(app.get("deck_gl_json_chart")) == 1
    app.slider(key="replay_flood_minutes").set_value(45).run()
    _ok(app)
    deck = json.loads(app.get("deck_gl_json_chart")[0].proto.json)
    from twin.viz.depth_map import LAYER_ID

    layers = {layer["id"]: layer for layer in deck["layers"]}
    ids = [layer["id"] for layer in deck["layers"]]  # the street water at 00:45, over the roads, under the points
    assert ids.index("road_status") < ids.index(LAYER_ID) < ids.index("water")
    assert len(layers["road_status"]["data"]) == 6  # every road, coloured by its closure
    assert app.query_params["page"] == "replay" and app.query_params["run"] == run_id  # the link to share

    # language switch, then back to the flood page: inputs and results are still there
    app.sidebar.radio(key="lang").set_value("zh").run()
    _ok(app)
    assert app.slider(key="replay_flood_minutes").value == 45
    _page(app, "flood_event", "zh")
    assert app.select_slider(key="flood_period").value == 100
    assert app.select_slider(key="flood_duration").value == 60
    assert app.select_slider(key="flood_drain").value == 1.0
    assert {m.label: m.value for m in app.metric}[t("flood.summary.flooded_nodes", "zh")] == flooded
    assert not app.warning

    # other settings: the old results stay, marked as such (en and zh)
    app.select_slider(key="flood_period").set_value(50).run()
    _ok(app)
    assert [w.value for w in app.warning] == [t("state.stale", "zh")]
    assert {m.label: m.value for m in app.metric}[t("flood.summary.flooded_nodes", "zh")] == flooded
    app.select_slider(key="flood_period").set_value(100).run()  # back to the settings run: no note
    assert not app.warning


def test_a_link_with_the_run_id_opens_that_run(workspace, tiny_gpkg):
    from conftest import make_tiny_city

    from twin.coupler import run_coupled
    from twin.runstore import write_coupled_run

    city = make_tiny_city()
    for name in ("older", "newer"):  # two dry runs: the link names the older, not the default newest
        write_coupled_run(workspace / "runs" / name,
                          lambda event_sink, progress: run_coupled(city, hours=1.0, strategy="priority", seed=1,
                                                                   event_sink=event_sink, progress=progress,
                                                                   n_citizens=30, n_vendors=1),
                          params={"city": str(tiny_gpkg), "hours": 1.0, "strategy": "priority", "seed": 1})
    app = AppTest.from_file(APP, default_timeout=120)
    app.query_params["page"] = "replay"
    app.query_params["run"] = "older"
    app.run()
    _ok(app)
    assert app.sidebar.radio(key="page__en").value == "replay"
    assert app.selectbox(key="replay_run").value.name == "older"
    assert len(app.get("deck_gl_json_chart")) == 1

    bad = AppTest.from_file(APP, default_timeout=120)  # a link to a run that is not there (or not a name)
    bad.query_params["page"] = "replay"
    bad.query_params["run"] = "../../etc"
    bad.run()
    assert not bad.exception
    assert [w.value for w in bad.warning] == [t("replay.url_missing", "en", run="../../etc")]


def test_a_scenario_run_without_positions_replays_and_says_what_is_missing(workspace, tiny_gpkg):
    """``twin run`` of scenarios/vendor_enforcement.toml (its [outputs] leave out positions), cut down in size."""
    from twin.cli import cli

    data = tomllib.loads((ROOT / "scenarios" / "vendor_enforcement.toml").read_text(encoding="utf-8"))
    assert "positions" not in data["outputs"]["tables"]
    scenario = (ROOT / "scenarios" / "vendor_enforcement.toml").read_text(encoding="utf-8")
    scenario = (scenario.replace('source = "demo"', f'source = "{tiny_gpkg}"').replace("hours = 24", "hours = 2")
                .replace("citizens = 3000", "citizens = 100").replace("vendors = 120", "vendors = 3"))
    (workspace / "ve.toml").write_text(scenario, encoding="utf-8")
    runner = CliRunner()
    r = runner.invoke(cli, ["run", str(workspace / "ve.toml"), "--out", str(workspace / "runs"), "-q"])
    assert r.exit_code == 0, r.output
    (run,) = (workspace / "runs").iterdir()

    r = runner.invoke(cli, ["replay", str(run), "--at", "1h"])
    assert r.exit_code == 0, r.output
    assert "not stored        positions, crew_series" in r.output and "open incidents" in r.output
    r = runner.invoke(cli, ["render", str(run), "--out", str(workspace / "ve.gif"), "--step", "1h", "--size",
                            "320x200", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert (workspace / "ve.gif").stat().st_size > 1000

    app = AppTest.from_file(APP, default_timeout=120).run()
    _page(app, "replay")
    assert app.selectbox(key="replay_run").value.name == run.name
    listed = app.dataframe[0].value
    assert listed[t("replay.col.kind", "en")].tolist() == [t("replay.kind.simulation", "en")]
    assert any("positions" in i.value and t("replay.missing.positions", "en") in i.value for i in app.info)
    assert len(app.get("deck_gl_json_chart")) == 1


def test_a_forecast_from_its_page_is_saved_and_opens_on_replay_with_its_plan(workspace):
    from twin.runstore import list_stored_runs, read_manifest, verify_run

    app = AppTest.from_file(APP, default_timeout=180).run()
    _page(app, "forecast")
    app.select_slider(key="fc_hours").set_value(6)
    app.select_slider(key="fc_start_h").set_value(2)
    app.select_slider(key="fc_duration").set_value(60)
    app.number_input(key="fc_members").set_value(2).run()
    app.button(key="fc_run").click().run()
    _ok(app)
    (run_id,) = list_stored_runs(workspace / "runs")["run_id"]
    man = read_manifest(workspace / "runs" / run_id)
    assert man["kind"] == "forecast" and verify_run(workspace / "runs" / run_id).ok
    assert man["params"]["members"] == 2 and man["params"]["hours"] == 6.0
    assert man["params"]["storm"] == {"kind": "chicago", "idf": "beijing", "return_period_yr": 50, "duration_min": 60,
                                      "start_h": 2}
    assert {"plan.json", "plan.html", "summary.txt", "hydrographs.png"} <= set(man["files"])

    _page(app, "dispatch")  # leave the page: the members stay 2 when coming back
    _page(app, "forecast")
    assert app.number_input(key="fc_members").value == 2 and app.select_slider(key="fc_hours").value == 6

    _page(app, "replay")
    assert app.selectbox(key="replay_run").value.name == run_id
    assert any(t("replay.forecast.caption", "en", city="tiny.gpkg", storm="chicago 50 yr 60 min", members=2,
                 hours=6.0, threshold=0.15, prob=0.5) == c.value for c in app.caption)
    summary = (workspace / "runs" / run_id / "summary.txt").read_text(encoding="utf-8")
    assert summary in [i.value for i in app.info]
    risk = app.dataframe[1].value  # after the list of runs: the risk table, then the plan's tasks
    assert t("forecast.col.probability", "en") in risk.columns
    assert len(app.get("deck_gl_json_chart")) == 1
    assert sorted(b.proto.label for b in app.get("download_button")) == sorted(  # the plan's two, the map's two
        ["plan.json", "plan.html", t("map.export.png", "en"), t("map.export.geojson", "en")])


def test_a_sweep_in_the_store_opens_on_replay_as_its_kpi_table(workspace, tiny_gpkg):
    from scenarios import run_batch, validate_scenario
    from twin.pages.batch import reduced_sweep

    template = tomllib.loads((ROOT / "scenarios" / "dispatch_compare.toml").read_text(encoding="utf-8"))
    data = reduced_sweep(template, "tiny", city=str(tiny_gpkg), name="replay_sweep")
    data["period"]["hours"] = 2
    data["population"].update(citizens=100, vendors=2)
    assert run_batch(validate_scenario(data), workspace / "runs", workers=1, progress=False).status == "complete"

    app = AppTest.from_file(APP, default_timeout=120).run()
    _page(app, "replay")
    listed = app.dataframe[0].value
    assert listed[t("replay.col.kind", "en")].tolist() == [t("replay.kind.sweep", "en")]
    assert listed[t("replay.col.run_id", "en")].tolist() == ["replay_sweep"]
    assert listed[t("replay.col.seed", "en")].tolist() == ["1"]
    results = app.dataframe[1].value
    assert len(results) == 2  # a row per strategy (one seed)
    assert set(results[t("batch.param.dispatch.strategy", "en")]) == {t("strategy.siloed", "en"),
                                                                       t("strategy.priority", "en")}
    assert t("kpi.counts.incidents", "en") in results.columns
