"""A planner's walk through the workbench in a real headless Chromium (issue #13 items 2 and 3).

On the tiny city, with the workspace in ``tmp_path``: run a flood event (100 yr,
60 min) from its page, open its hydrograph tab, switch to Chinese (the tab, the
sliders and the results stay), open Replay (the run is listed and opens without
the command line), come back in English (still there), open the shared link
``/?page=replay&run=<id>`` in a fresh browser tab, and run a three-hour strategy
comparison under a storm that Replay then opens as its KPI table.

Screenshots of every stop are kept under ``tmp_path/screens`` (or
``$CITYTWIN_TEST_ARTIFACTS`` when set) as the test's artefacts.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_browser import CHROMIUM, CHROMIUM_ARGS, server  # noqa: F401 - the fixture

from twin.i18n import LANGUAGES, t

pytestmark = pytest.mark.browser


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """The server's workspace (set before the ``server`` fixture starts it): runs go to ``<ws>/runs``."""
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.setenv("CITYTWIN_WORKSPACE", str(ws))
    monkeypatch.delenv("CITYTWIN_RUNS_DIR", raising=False)
    return ws


def _choose(page, widget_label: str, option: str) -> None:
    """Pick ``option`` in the slider labelled ``widget_label`` (keyboard: Home, then Right)."""
    slider = page.locator("[data-testid=stSlider]").filter(has_text=widget_label).get_by_role("slider")
    slider.focus()
    slider.press("Home")
    for _ in range(30):
        if slider.get_attribute("aria-valuetext") == option or slider.get_attribute("aria-valuenow") == option:
            return
        slider.press("ArrowRight")
        page.wait_for_timeout(120)
    raise AssertionError(f"{widget_label}: option {option!r} not reached")


def _slider_text(page, widget_label: str) -> str:
    slider = page.locator("[data-testid=stSlider]").filter(has_text=widget_label).get_by_role("slider")
    return slider.get_attribute("aria-valuetext") or slider.get_attribute("aria-valuenow")


def _sidebar(page, text: str) -> None:
    page.locator("[data-testid=stSidebar]").get_by_text(text, exact=True).click()


def _no_exception(page) -> None:
    assert page.locator("[data-testid=stException]").count() == 0


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install -y chromium)")
def test_a_planner_runs_switches_and_replays(workspace, server, tmp_path):  # noqa: F811 - pytest fixture
    from playwright.sync_api import sync_playwright

    from twin.runstore import list_stored_runs

    shots = Path(os.environ.get("CITYTWIN_TEST_ARTIFACTS", "") or tmp_path / "screens")
    shots.mkdir(parents=True, exist_ok=True)
    flooded_label = t("flood.summary.flooded_nodes", "en")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server, wait_until="domcontentloaded")
            page.get_by_text(t("app.title", "en")).first.wait_for(timeout=60_000)

            # 1. a flood event from its page: 100-year storm of 60 minutes
            _sidebar(page, t("page.flood_event", "en"))
            page.get_by_text(t("flood.not_run", "en")).first.wait_for(timeout=60_000)
            _choose(page, t("flood.duration_min", "en"), "60")
            _choose(page, t("flood.return_period_yr", "en"), "100")
            page.wait_for_timeout(500)
            page.get_by_role("button", name=t("flood.run", "en")).click()
            metric = page.locator("[data-testid=stMetric]").filter(has_text=flooded_label)
            metric.first.wait_for(timeout=120_000)
            flooded = metric.first.inner_text().replace(flooded_label, "").strip()
            page.get_by_text(t("run.saved", "en", run="").split("**")[0].strip()).first.wait_for(timeout=30_000)
            (run_id,) = list_stored_runs(workspace / "runs")["run_id"]  # saved in the workspace run store
            _no_exception(page)

            # 2. the hydrograph tab, then Chinese: the tab, the sliders and the results stay
            page.get_by_role("tab", name=t("flood.tab.hydrograph", "en")).click()
            page.wait_for_timeout(1500)
            _sidebar(page, LANGUAGES["zh"])
            page.get_by_text(t("flood.header", "zh", name="tiny")).first.wait_for(timeout=60_000)
            tab = page.get_by_role("tab", name=t("flood.tab.hydrograph", "zh"))
            tab.wait_for(timeout=30_000)
            page.wait_for_timeout(1500)
            assert tab.get_attribute("aria-selected") == "true"
            assert _slider_text(page, t("flood.return_period_yr", "zh")) == "100"
            assert _slider_text(page, t("flood.duration_min", "zh")) == "60"
            zh_metric = page.locator("[data-testid=stMetric]").filter(has_text=t("flood.summary.flooded_nodes", "zh"))
            assert zh_metric.first.inner_text().endswith(flooded)
            page.screenshot(path=str(shots / "1-flood-event-zh-hydrograph.png"), full_page=True)
            _no_exception(page)

            # 3. Replay (in Chinese): the run is listed and opens as a flood event, street water on the map
            _sidebar(page, t("page.replay", "zh"))
            page.get_by_text(t("replay.header", "zh")).first.wait_for(timeout=60_000)
            page.locator("[data-testid=stDeckGlJsonChart]").first.wait_for(timeout=60_000)
            page.get_by_text(t("replay.flood.closures", "zh").replace("*", "").split("（")[0]).first.wait_for(timeout=30_000)
            page.get_by_text(f"?page=replay&run={run_id}").first.wait_for(timeout=10_000)  # the run shown
            assert f"run={run_id}" in page.url  # the address bar is the link to share
            page.wait_for_timeout(2500)  # let deck.gl draw
            page.screenshot(path=str(shots / "2-replay-flood-event-zh.png"), full_page=True)
            _no_exception(page)

            # 4. back in English on the flood page: the inputs and the results are still there
            _sidebar(page, LANGUAGES["en"])
            page.get_by_text(t("replay.header", "en")).first.wait_for(timeout=60_000)
            _sidebar(page, t("page.flood_event", "en"))
            metric.first.wait_for(timeout=60_000)
            assert metric.first.inner_text().endswith(flooded)
            assert _slider_text(page, t("flood.return_period_yr", "en")) == "100"
            page.get_by_role("tab", name=t("flood.tab.map", "en")).click()
            deck = page.locator("[data-testid=stDeckGlJsonChart]").first
            deck.wait_for(timeout=30_000)
            metric.first.evaluate("e => e.scrollIntoView({block: 'start'})")  # the figures on top, the map below
            page.wait_for_timeout(2500)
            page.screenshot(path=str(shots / "3-flood-event-en-back.png"), full_page=True)
            _no_exception(page)

            # 5. a shared link opens the run in a fresh tab (a new session)
            other = browser.new_page(viewport={"width": 1400, "height": 1000})
            other.goto(f"{server}/?page=replay&run={run_id}", wait_until="domcontentloaded")
            other.get_by_text(t("replay.header", "en")).first.wait_for(timeout=60_000)
            other.locator("[data-testid=stDeckGlJsonChart]").first.wait_for(timeout=60_000)
            other.get_by_text(f"?page=replay&run={run_id}").first.wait_for(timeout=10_000)  # that run is shown
            other.wait_for_timeout(2500)
            other.screenshot(path=str(shots / "4-replay-from-link.png"), full_page=True)
            _no_exception(other)
            other.close()

            # 6. a three-hour strategy comparison under a storm: saved, and opened on Replay as its KPI table
            _sidebar(page, t("page.dispatch", "en"))
            page.get_by_text(t("lab.header", "en")).first.wait_for(timeout=60_000)
            _choose(page, t("lab.hours", "en"), "3")
            page.get_by_text(t("lab.storm", "en"), exact=True).click()  # a storm at 01:00: flood incidents
            page.wait_for_timeout(1000)
            page.get_by_role("button", name=t("lab.run", "en")).click()
            page.locator("[data-testid=stVegaLiteChart]").first.wait_for(timeout=120_000)
            runs = list_stored_runs(workspace / "runs")
            assert runs["kind"].tolist() == ["comparison", "flood_event"]  # newest first
            _sidebar(page, t("page.replay", "en"))
            page.get_by_text(t("replay.header", "en")).first.wait_for(timeout=60_000)
            page.get_by_text(t("replay.comparison.caption", "en", city="", strategies="", seeds="", hours="",
                                 storm="").split(":")[0]).first.wait_for(timeout=60_000)
            chart = page.locator("[data-testid=stVegaLiteChart]").first
            chart.wait_for(timeout=30_000)
            chart.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(shots / "5-replay-comparison.png"), full_page=True)
            _no_exception(page)
        finally:
            browser.close()
    for png in shots.glob("*.png"):
        assert png.stat().st_size > 10_000, png
    assert len(list(shots.glob("*.png"))) == 5
