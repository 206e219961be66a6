"""The Batch page (AppTest, both languages) and its table helpers.

A sweep of 2 strategies x 2 seeds (3 h each, the tiny city, a 100-year storm
at 01:00) is made once in ``tmp_path`` with :func:`scenarios.run_batch`; the
page lists it, filters its results and plots a KPI.  One test launches the
page's "tiny" sweep (2 runs) through the button; another stops a sweep
mid-run, as Streamlit does when the user changes a widget.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pandas as pd
import pytest
from conftest import make_tiny_city
from streamlit.testing.v1 import AppTest

from gisdata.city import save_city
from scenarios import run_batch, validate_scenario
from twin.i18n import t
from twin.pages import batch as batch_page
from twin.pages.batch import (
    SIZES,
    filter_options,
    filter_results,
    kpi_columns,
    list_sweeps,
    read_sweep_file,
    reduced_sweep,
    run_sweep,
    sweep_parameters,
)

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
STRATEGY = "dispatch.strategy"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(tiny city GeoPackage, run store holding one finished sweep)."""
    base = tmp_path_factory.mktemp("batchpage")
    gpkg = save_city(make_tiny_city(), base / "tiny.gpkg")
    template = tomllib.loads((ROOT / "scenarios" / "dispatch_compare.toml").read_text(encoding="utf-8"))
    data = reduced_sweep(template, "small", city=str(gpkg), name="page_sweep")
    data["period"]["hours"] = 3
    data["population"].update(citizens=150, vendors=4)
    res = run_batch(validate_scenario(data), base / "runs", workers=2)
    assert res.status == "complete" and res.n_runs == 4
    return gpkg, base / "runs"


@pytest.fixture
def app(store, monkeypatch) -> AppTest:
    gpkg, runs = store
    monkeypatch.setenv("CITYTWIN_APP_CITY", str(gpkg))
    monkeypatch.setenv("CITYTWIN_RUNS_DIR", str(runs))
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.sidebar.radio(key="page__en").set_value("batch").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_page_lists_the_sweep_its_runs_and_results(app, lang):
    if lang == "zh":
        app.sidebar.radio(key="lang").set_value("zh").run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    assert app.subheader[0].value == t("batch.header", lang)
    sweeps, runs, results = (df.value for df in app.dataframe[:3])
    assert sweeps[t("batch.col.sweep", lang)].tolist() == ["page_sweep"]
    assert sweeps[t("batch.col.n_complete", lang)].tolist() == [4]
    assert len(runs) == 4 and set(runs[t("batch.col.status", lang)]) == {t("batch.status.complete", lang)}
    assert len(results) == 4
    strategies = set(results[t("batch.param.dispatch.strategy", lang)])
    assert strategies == {t("strategy.siloed", lang), t("strategy.priority", lang)}
    assert t("kpi.counts.incidents", lang) in results.columns
    assert len(app.get("vega_lite_chart")) == 1
    assert app.selectbox(key=f"batch_sweep_pick__{lang}").value.endswith("page_sweep")


def test_filters_cut_the_results_and_the_chart_follows(app):
    app.multiselect(key=f"batch_filter_{STRATEGY}__en").set_value(["priority"]).run()
    assert not app.exception, [e.value for e in app.exception]
    results = app.dataframe[2].value
    assert len(results) == 2 and set(results[t("batch.param.dispatch.strategy", "en")]) == {t("strategy.priority")}
    app.multiselect(key="batch_filter_seed__en").set_value([2]).run()
    results = app.dataframe[2].value
    assert len(results) == 1 and results[t("batch.param.seed", "en")].tolist() == ["2"]
    assert any("1 of 4" in c.value for c in app.caption)
    app.selectbox(key="batch_chart_x").set_value("seed").run()
    app.selectbox(key="batch_chart_kpi").set_value("counts.dispatched").run()
    assert not app.exception, [e.value for e in app.exception]
    spec = app.get("vega_lite_chart")[0].proto.spec
    assert t("kpi.counts.dispatched") in spec
    app.multiselect(key="batch_filter_seed__en").set_value([]).run()  # nothing left: the table, no chart
    assert not app.exception and len(app.dataframe[2].value) == 0 and len(app.get("vega_lite_chart")) == 0


def test_empty_folder_says_how_to_make_a_sweep(app, tmp_path, monkeypatch):
    monkeypatch.setenv("CITYTWIN_WORKSPACE", str(tmp_path))  # a typed folder must lie in the workspace
    app.text_input(key="batch_root").set_value(str(tmp_path)).run()
    assert not app.exception
    assert any("twin batch" in i.value for i in app.info)


def test_launching_a_tiny_sweep_shows_progress_and_lists_it(app, store, tmp_path, monkeypatch):
    gpkg, _ = store
    progress, page_run_sweep = [], batch_page.run_sweep

    def recording_run_sweep(*args, on_progress, **kwargs):
        def record(done):
            progress.append(done)
            on_progress(done)

        return page_run_sweep(*args, on_progress=record, **kwargs)

    monkeypatch.setattr(batch_page, "run_sweep", recording_run_sweep)
    monkeypatch.setenv("CITYTWIN_WORKSPACE", str(tmp_path))  # a typed folder must lie in the workspace
    app.text_input(key="batch_root").set_value(str(tmp_path / "new")).run()
    app.radio(key="batch_size").set_value("tiny")
    app.text_input(key="batch_city").set_value(str(gpkg))
    app.button(key="batch_run").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    n = len(SIZES["tiny"]["strategies"]) * len(SIZES["tiny"]["seeds"])
    assert any(f"{n} of {n} runs complete" in s.value for s in app.success)
    sweeps = list_sweeps(tmp_path / "new")
    assert len(sweeps) == 1 and sweeps["status"].tolist() == ["complete"] and sweeps["sweep"][0].startswith("ui_tiny_")
    assert len(app.dataframe[2].value) == n  # the new sweep is the one shown
    assert progress[-1] == n and progress == sorted(progress)  # every finished run reached the progress bar


def test_an_interrupted_sweep_ends_its_processes_and_says_interrupted(store, tmp_path):
    """Streamlit's stop comes out of ``on_progress``: the job process and its pool end, the sweep is marked."""
    import psutil

    gpkg, _ = store
    template = tomllib.loads((ROOT / "scenarios" / "dispatch_compare.toml").read_text(encoding="utf-8"))
    data = reduced_sweep(template, "tiny", city=str(gpkg), name="stopped")
    before = {p.pid for p in psutil.Process().children(recursive=True)}

    class Stop(Exception):
        pass

    def on_progress(done):
        if "executor" in (read_sweep_file(tmp_path / "stopped") or {}):  # the batch has begun its runs
            raise Stop

    with pytest.raises(Stop):
        run_sweep(run_batch, validate_scenario(data), tmp_path, 2, on_progress=on_progress)
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before]
    assert not left, left
    assert list_sweeps(tmp_path)["status"].tolist() == ["interrupted"]


def test_helpers(store, tmp_path):
    _, runs = store
    sweep = runs / "page_sweep"
    assert list_sweeps(tmp_path).empty and list_sweeps(tmp_path / "missing").empty
    assert list_sweeps(sweep)["sweep"].tolist() == ["page_sweep"]  # a sweep folder itself
    from scenarios import results_table

    res = results_table(sweep)
    params = sweep_parameters(sweep, res)
    assert params == [STRATEGY, "seed"]
    kpis = kpi_columns(res, params)
    assert kpis[0] == "counts.incidents" and "seed" not in kpis and "wall_time_s" not in kpis
    assert filter_options(res, STRATEGY) == ("pick", ["priority", "siloed"])
    many = pd.DataFrame({"x": [float(i) for i in range(12)]})
    kind, (lo, hi) = filter_options(many, "x")
    assert (kind, lo, hi) == ("range", 0.0, 11.0)
    assert len(filter_results(many, {"x": (2.0, 4.0)})) == 3
    assert len(filter_results(res, {STRATEGY: ["siloed"], "seed": [1, 2]})) == 2
    with pytest.raises(ValueError, match="size='huge'"):
        reduced_sweep({}, "huge", city="small", name="x")


def test_a_killed_sweep_is_not_listed_as_running(store, tmp_path):
    """sweep.json of a batch killed outright still says running; the page tells what is on disk."""
    import json
    import shutil

    _, runs = store
    copy = tmp_path / "page_sweep"
    shutil.copytree(runs / "page_sweep", copy)
    shutil.rmtree(copy / sorted(p.name for p in copy.iterdir() if (p / "manifest.json").exists())[0])
    data = json.loads((copy / "sweep.json").read_text())
    data["status"] = "running"
    (copy / "sweep.json").write_text(json.dumps(data))
    row = list_sweeps(tmp_path).iloc[0]
    assert row["status"] == "interrupted" and row["n_complete"] == 3 and row["n_runs"] == 4
