"""The Flood event page in a real headless Chromium against a real Streamlit server.

A short storm on the tiny city (CITYTWIN_APP_CITY), run from the page: SWMM in
its own process, the progress bar, then the map, the hydrograph and the 3D
flood.  Screenshots go to ``tmp_path`` (map, hydrograph, 3D).
"""

from __future__ import annotations

import pytest

from test_browser import CHROMIUM, CHROMIUM_ARGS, server  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser


def _choose(page, widget_label: str, option: str) -> None:
    """Pick ``option`` in the select slider labelled ``widget_label`` (keyboard: Home, then Right)."""
    slider = page.locator("[data-testid=stSlider]").filter(has_text=widget_label).get_by_role("slider")
    slider.focus()
    slider.press("Home")
    for _ in range(12):
        if slider.get_attribute("aria-valuetext") == option:
            return
        slider.press("ArrowRight")
        page.wait_for_timeout(150)
    raise AssertionError(f"{widget_label}: option {option!r} not reached")


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install -y chromium)")
def test_flood_event_page_in_a_real_browser(server, tmp_path):  # noqa: F811 - pytest fixture
    import numpy as np
    from PIL import Image
    from playwright.sync_api import sync_playwright

    from twin.i18n import t

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1050})
            page.goto(server, wait_until="domcontentloaded")
            page.get_by_text(t("app.title", "en")).first.wait_for(timeout=60_000)
            page.locator("[data-testid=stSidebar]").get_by_text(t("page.flood_event", "en"), exact=True).click()
            page.get_by_text(t("flood.header", "en", name="tiny")).first.wait_for(timeout=60_000)
            page.get_by_text(t("flood.not_run", "en")).first.wait_for(timeout=30_000)
            _choose(page, t("flood.duration_min", "en"), "60")
            _choose(page, t("flood.return_period_yr", "en"), "50")
            page.wait_for_timeout(500)

            page.get_by_role("button", name=t("flood.run", "en")).click()
            summary = page.locator("[data-testid=stMetric]").filter(has_text=t("flood.summary.flooded_nodes", "en"))
            summary.first.wait_for(timeout=120_000)
            assert page.locator("[data-testid=stException]").count() == 0
            assert "5" in summary.first.inner_text()
            deck = page.locator("[data-testid=stDeckGlJsonChart]")
            deck.first.wait_for(timeout=30_000)
            assert deck.count() == 1
            page.get_by_text(t("flood.status.closed_to_cars", "en"), exact=False).first.wait_for(timeout=10_000)
            summary.first.evaluate("e => e.scrollIntoView({block: 'start'})")  # metrics on top, map below
            page.wait_for_timeout(2000)  # let deck.gl draw before the picture
            page.screenshot(path=str(tmp_path / "flood-map.png"))
            deck.first.screenshot(path=str(tmp_path / "flood-map-only.png"))

            page.get_by_role("tab", name=t("flood.tab.hydrograph", "en")).click()
            chart = page.locator("[data-testid=stVegaLiteChart]").nth(1)
            chart.wait_for(state="visible", timeout=30_000)
            chart.evaluate("e => e.scrollIntoView({block: 'center'})")
            page.wait_for_timeout(1500)
            page.screenshot(path=str(tmp_path / "flood-hydrograph.png"))

            page.get_by_role("tab", name=t("flood.tab.scene", "en")).click()
            frame = page.locator("iframe")
            frame.first.wait_for(state="visible", timeout=60_000)
            inner = page.frame_locator("iframe").first
            inner.locator("#citytwin-legend").wait_for(timeout=30_000)
            assert t("scene.legend.water", "en") in inner.locator("#citytwin-legend").text_content()  # folded or not
            inner.locator("canvas").first.wait_for(timeout=30_000)
            frame.first.evaluate("e => e.scrollIntoView({block: 'center'})")
            page.wait_for_timeout(2000)
            page.screenshot(path=str(tmp_path / "flood-3d.png"))

            assert page.locator("[data-testid=stException]").count() == 0
            assert page.locator("[data-testid=stAlertContentError]").count() == 0
        finally:
            browser.close()
    for name in ("flood-map.png", "flood-hydrograph.png", "flood-3d.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name
    # The map has water on it: clearly blue pixels (deck.gl drew the depth bitmap).
    img = np.asarray(Image.open(tmp_path / "flood-map-only.png").convert("RGB")).astype(int)
    assert ((img[..., 2] - img[..., 0]) > 60).sum() > 500
