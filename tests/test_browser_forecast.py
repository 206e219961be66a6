"""The Flood forecast page in a real headless Chromium against a real Streamlit server.

A short design storm on the tiny city (CITYTWIN_APP_CITY): 60 min, 50 years,
starting 2 h after issue, a 6 h horizon and 3 members, run from the page (the
forecast job in its own process, members on the progress bar), then the risk
map, the ranked table, the hydrographs, the plan downloads (the JSON one is
downloaded and parsed), and the page in Chinese.  Screenshots go to
``tmp_path`` (map, table, hydrographs, plan, Chinese).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_browser import CHROMIUM, CHROMIUM_ARGS, server  # noqa: F401 - the fixture
from test_browser_flood import _choose

pytestmark = pytest.mark.browser


def _set_number(page, label: str, value: int) -> None:
    """Type ``value`` into the number input labelled ``label`` and commit it."""
    box = page.locator("[data-testid=stNumberInput]").filter(has_text=label).locator("input")
    box.fill(str(value))
    box.press("Enter")
    page.wait_for_timeout(300)


def _scroll_to(page, locator) -> None:
    """Scroll so that ``locator`` sits just below the page's top bar."""
    locator.first.evaluate("e => { e.style.scrollMarginTop = '70px'; e.scrollIntoView({block: 'start'}); }")


def _no_errors(page) -> None:
    assert page.locator("[data-testid=stException]").count() == 0
    assert page.locator("[data-testid=stAlertContentError]").count() == 0


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install -y chromium)")
def test_forecast_page_in_a_real_browser(server, tmp_path):  # noqa: F811 - pytest fixture
    from playwright.sync_api import sync_playwright

    from twin.i18n import t

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
            page.goto(server, wait_until="domcontentloaded")
            page.get_by_text(t("app.title", "en")).first.wait_for(timeout=60_000)
            page.locator("[data-testid=stSidebar]").get_by_text(t("page.forecast", "en"), exact=True).click()
            page.get_by_text(t("forecast.header", "en", name="tiny")).first.wait_for(timeout=60_000)
            page.get_by_text(t("forecast.not_run", "en")).first.wait_for(timeout=30_000)
            _choose(page, t("forecast.hours", "en"), "6")
            _choose(page, t("flood.duration_min", "en"), "60")
            _choose(page, t("flood.return_period_yr", "en"), "50")
            _choose(page, t("forecast.start_in_h", "en"), "2")
            _choose(page, t("forecast.threshold_m", "en"), "0.05")  # the tiny city's streets take under 0.15 m
            _set_number(page, t("forecast.members", "en"), 3)
            page.get_by_text("3 members;", exact=False).first.wait_for(timeout=15_000)  # the ensemble summary
            _no_errors(page)

            page.get_by_role("button", name=t("forecast.run", "en")).click()
            page.locator("[data-testid=stProgress]").first.wait_for(timeout=15_000)
            metric = page.locator("[data-testid=stMetric]").filter(has_text=t("forecast.metric.risk_points", "en"))
            metric.first.wait_for(timeout=90_000)
            assert page.locator("[data-testid=stProgress]").count() == 0  # the bar is gone when done
            _no_errors(page)
            members = page.locator("[data-testid=stMetric]").filter(has_text=t("forecast.metric.members", "en"))
            assert "3 of 3" in members.first.inner_text()
            assert int(metric.first.locator("[data-testid=stMetricValue]").inner_text()) >= 1
            page.get_by_text("risk points in the next 6 h", exact=False).first.wait_for(timeout=10_000)

            deck = page.locator("[data-testid=stDeckGlJsonChart]")
            deck.first.wait_for(timeout=30_000)
            assert deck.count() == 1
            page.get_by_text(t("forecast.legend.probability", "en"), exact=False).first.wait_for(timeout=10_000)
            _scroll_to(page, page.get_by_role("button", name=t("forecast.run", "en")))
            page.wait_for_timeout(2000)  # let deck.gl draw before the picture
            page.screenshot(path=str(tmp_path / "forecast-map.png"))

            # The plan downloads: both buttons, and the JSON one parses.
            json_button = page.get_by_role("button", name=t("forecast.download.json", "en"))
            html_button = page.get_by_role("button", name=t("forecast.download.html", "en"))
            assert json_button.count() == 1 and html_button.count() == 1
            with page.expect_download(timeout=30_000) as info:
                json_button.click()
            download = info.value
            assert download.suggested_filename == "plan.json"
            plan = json.loads(Path(download.path()).read_text(encoding="utf-8"))
            assert plan["format"] == "citytwin-response-plan/1" and plan["city"] == "tiny"
            assert plan["n_risk_points"] >= 1 and plan["horizon_h"] == 6.0
            with page.expect_download(timeout=30_000) as info:
                html_button.click()
            html = Path(info.value.path()).read_text(encoding="utf-8")
            assert "Waterlogging response plan" in html and "data:image/png;base64," in html

            page.get_by_role("tab", name=t("forecast.tab.table", "en")).click()
            table = page.locator("[data-testid=stDataFrame]").filter(visible=True)
            table.first.wait_for(timeout=30_000)
            table.first.evaluate("e => e.scrollIntoView({block: 'center'})")
            page.wait_for_timeout(1000)
            page.screenshot(path=str(tmp_path / "forecast-table.png"))

            page.get_by_role("tab", name=t("forecast.tab.hydrographs", "en")).click()
            image = page.locator("[data-testid=stImage] img").filter(visible=True)
            image.first.wait_for(timeout=30_000)
            assert image.first.evaluate("e => e.complete && e.naturalWidth") > 300
            image.first.evaluate("e => e.scrollIntoView({block: 'center'})")
            page.wait_for_timeout(1000)
            page.screenshot(path=str(tmp_path / "forecast-hydrographs.png"))

            page.get_by_role("tab", name=t("forecast.tab.plan", "en")).click()
            page.get_by_text(t("forecast.plan.tasks", "en")).first.wait_for(timeout=30_000)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(tmp_path / "forecast-plan.png"))
            _no_errors(page)

            # Chinese: the labels change and the forecast stays (no new run).
            page.locator("[data-testid=stSidebar]").get_by_text("简体中文", exact=True).click()
            page.get_by_text(t("forecast.header", "zh", name="tiny")).first.wait_for(timeout=30_000)
            page.get_by_role("button", name=t("forecast.run", "zh")).wait_for(timeout=30_000)
            zh_metric = page.locator("[data-testid=stMetric]").filter(has_text=t("forecast.metric.risk_points", "zh"))
            zh_metric.first.wait_for(timeout=30_000)
            _scroll_to(page, page.get_by_role("button", name=t("forecast.run", "zh")))
            page.wait_for_timeout(1500)
            page.screenshot(path=str(tmp_path / "forecast-zh.png"))
            _no_errors(page)
        finally:
            browser.close()
    for name in ("forecast-map.png", "forecast-table.png", "forecast-hydrographs.png", "forecast-plan.png",
                 "forecast-zh.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
