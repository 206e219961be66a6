"""The Dispatch lab and Replay pages: AppTest (both languages) and a real headless Chromium.

The app runs on the tiny city (CITYTWIN_APP_CITY) and lists runs from
CITYTWIN_RUNS_DIR, where a short coupled run with a storm is stored first.
Screenshots go to ``tmp_path``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gisdata.city import save_city
from hydraulics.rainfall import chicago_storm
from conftest import make_tiny_city
from twin.coupler import run_coupled
from twin.i18n import t
from twin.runstore import write_coupled_run

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(tiny city GeoPackage, runs folder with one stored storm run)."""
    root = tmp_path_factory.mktemp("store")
    gpkg = save_city(make_tiny_city(), root / "tiny.gpkg")
    runs = root / "runs"
    city = make_tiny_city()

    def run(event_sink, progress):
        return run_coupled(city, hours=4, strategy="priority", seed=1, rain=chicago_storm("beijing", 50, 60),
                           start_s=1800.0, event_sink=event_sink, progress=progress, n_citizens=150, n_vendors=3)

    write_coupled_run(runs / "storm1", run, params={"city": str(gpkg), "hours": 4, "strategy": "priority", "seed": 1,
                                                    "storm": {"return_period_yr": 50}}, city=city)
    return gpkg, runs


@pytest.fixture
def app(store, monkeypatch) -> AppTest:
    gpkg, runs = store
    monkeypatch.setenv("CITYTWIN_APP_CITY", str(gpkg))
    monkeypatch.setenv("CITYTWIN_RUNS_DIR", str(runs))
    return AppTest.from_file(APP, default_timeout=180).run()


def _goto(app: AppTest, page: str) -> None:
    app.sidebar.radio(key="page__en").set_value(page).run()
    assert not app.exception, [e.value for e in app.exception]


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_dispatch_lab_runs_seeds_and_shows_intervals(app, lang, tmp_path, monkeypatch):
    monkeypatch.setenv("CITYTWIN_RUNS_DIR", str(tmp_path / "runs"))  # the comparison is saved here
    _goto(app, "dispatch")
    if lang == "zh":
        app.sidebar.radio(key="lang").set_value("zh").run()
    assert app.subheader[0].value == t("lab.header", lang)
    app.slider(key="lab_hours").set_value(3)
    app.number_input(key="lab_citizens").set_value(100)
    app.button(key="lab_run").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    frames = [df.value for df in app.dataframe]
    summary = frames[0]
    assert t("lab.col.ci", lang) in summary.columns
    strategies = set(summary[t("lab.col.strategy", lang)])
    assert strategies == {t("strategy.siloed", lang), t("strategy.priority", lang)}
    per_seed = frames[1]
    assert sorted(per_seed[t("lab.col.seed", lang)].unique()) == [1, 2, 3, 4, 5]
    assert len(app.get("vega_lite_chart")) == 1
    (saved,) = (tmp_path / "runs").iterdir()  # the comparison is a stored run of kind "comparison"
    assert any(saved.name in c.value for c in app.caption)
    from twin.runstore import read_manifest, read_table, verify_run

    man = read_manifest(saved)
    assert man["kind"] == "comparison" and man["params"]["seeds"] == [1, 2, 3, 4, 5] and verify_run(saved).ok
    assert sorted(read_table(saved, "per_seed")["seed"].unique()) == [1, 2, 3, 4, 5]


def test_replay_page_map_and_kpis_move_with_the_slider(app):
    _goto(app, "replay")
    assert app.selectbox(key="replay_run").value.name == "storm1"
    assert len(app.get("deck_gl_json_chart")) == 1
    app.slider(key="replay_minutes").set_value(60).run()
    assert not app.exception, [e.value for e in app.exception]
    metrics = {m.label: m.value for m in app.metric}
    assert int(metrics[t("replay.metric.wet", "en")]) > 0  # the storm started at 00:30
    runs, kpis = (df.value for df in app.dataframe)  # the store's runs, then the KPIs up to t
    assert runs[t("replay.col.run_id", "en")].tolist() == ["storm1"]
    assert t("kpi.counts.reports", "en") in kpis.iloc[:, 0].tolist()
    import json

    deck = json.loads(app.get("deck_gl_json_chart")[0].proto.json)
    assert deck.get("mapStyle") == "__MAP_STYLE__"  # style left unset: Streamlit fetches no basemap, works offline
    layers = {layer["id"]: layer for layer in deck["layers"]}
    assert {"crews", "incidents", "vendors", "water", "road_status"} <= set(layers)
    assert len(layers["crews"]["data"]) > 0 and len(layers["water"]["data"]) > 0
    app.sidebar.radio(key="lang").set_value("zh").run()
    assert not app.exception and app.subheader[0].value == t("replay.header", "zh")


def test_replay_page_without_runs_says_how_to_make_one(app, tmp_path, monkeypatch):
    monkeypatch.setenv("CITYTWIN_WORKSPACE", str(tmp_path))  # a typed folder must lie in the workspace
    _goto(app, "replay")
    app.text_input(key="replay_root").set_value(str(tmp_path)).run()
    assert not app.exception
    assert any("twin simulate" in i.value for i in app.info)


# ----------------------------------------------------------------------------- real browser

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def runs_env(store, monkeypatch):
    monkeypatch.setenv("CITYTWIN_RUNS_DIR", str(store[1]))
    return store


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install -y chromium)")
def test_dispatch_lab_and_replay_in_a_real_browser(runs_env, server, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    from test_browser import CHROMIUM_ARGS

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(server, wait_until="domcontentloaded")
            page.get_by_text(t("app.title", "en")).first.wait_for(timeout=60_000)

            page.locator("[data-testid=stSidebar]").get_by_text(t("page.replay", "en"), exact=True).click()
            page.get_by_text(t("replay.header", "en")).first.wait_for(timeout=60_000)
            deck = page.locator("[data-testid=stDeckGlJsonChart]")
            deck.first.wait_for(timeout=60_000)
            assert deck.count() == 1
            page.get_by_text(t("replay.kpis", "en").strip("*")).first.wait_for(timeout=30_000)
            page.wait_for_timeout(2500)  # let deck.gl draw
            page.screenshot(path=str(tmp_path / "replay.png"))
            assert page.locator("[data-testid=stException]").count() == 0

            page.locator("[data-testid=stSidebar]").get_by_text(t("page.dispatch", "en"), exact=True).click()
            page.get_by_text(t("lab.header", "en")).first.wait_for(timeout=60_000)
            page.get_by_role("button", name=t("lab.run", "en")).click()
            chart = page.locator("[data-testid=stVegaLiteChart]")
            chart.first.wait_for(timeout=180_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(tmp_path / "dispatch-lab.png"), full_page=True)
            assert page.locator("[data-testid=stException]").count() == 0
            assert page.locator("[data-testid=stAlertContentError]").count() == 0
        finally:
            browser.close()
    for name in ("replay.png", "dispatch-lab.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name


from test_browser import server  # noqa: F401 - the Streamlit server fixture
