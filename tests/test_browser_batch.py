"""The Batch page and the Replay page's 3D view in a real headless Chromium against a real Streamlit server.

The run store (CITYTWIN_RUNS_DIR) holds one short storm run on the tiny city,
for Replay, and one finished 2-run sweep, for Batch.  Screenshots go to
``tmp_path``; each is checked to hold a drawn picture, not a blank page.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
from test_browser import CHROMIUM, CHROMIUM_ARGS, server  # noqa: F401 - `server` is the Streamlit server fixture

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A run store: ``storm1`` (3 h, storm at 00:30) and the sweep ``browser_sweep`` (2 runs)."""
    from conftest import make_tiny_city

    from gisdata.city import save_city
    from hydraulics.rainfall import chicago_storm
    from scenarios import run_batch, validate_scenario
    from twin.coupler import run_coupled
    from twin.pages.batch import reduced_sweep
    from twin.runstore import write_coupled_run

    base = tmp_path_factory.mktemp("browser_batch")
    city = make_tiny_city()
    gpkg = save_city(city, base / "tiny.gpkg")
    runs = base / "runs"

    def go(event_sink, progress):
        return run_coupled(city, hours=3, strategy="priority", seed=1, rain=chicago_storm("beijing", 50, 60),
                           start_s=1800.0, event_sink=event_sink, progress=progress, n_citizens=100, n_vendors=3)

    write_coupled_run(runs / "storm1", go, params={"city": str(gpkg), "hours": 3, "strategy": "priority", "seed": 1,
                                                   "storm": {"return_period_yr": 50}}, city=city)
    template = tomllib.loads((ROOT / "scenarios" / "dispatch_compare.toml").read_text(encoding="utf-8"))
    data = reduced_sweep(template, "tiny", city=str(gpkg), name="browser_sweep")
    data["population"].update(citizens=150, vendors=4)
    assert run_batch(validate_scenario(data), runs, workers=2).status == "complete"
    return gpkg, runs


@pytest.fixture
def runs_env(store, monkeypatch):
    monkeypatch.setenv("CITYTWIN_RUNS_DIR", str(store[1]))
    return store


def _drawn(path: Path) -> bool:
    from PIL import Image

    img = np.asarray(Image.open(path).convert("RGB"))
    return path.stat().st_size > 5_000 and len(np.unique(img.reshape(-1, 3), axis=0)) > 100


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install -y chromium)")
def test_batch_page_and_replay_3d_in_a_real_browser(runs_env, server, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    from twin.i18n import t

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(server, wait_until="domcontentloaded")
            page.get_by_text(t("app.title", "en")).first.wait_for(timeout=60_000)

            # Batch: the sweep listed, its results and the KPI chart
            page.locator("[data-testid=stSidebar]").get_by_text(t("page.batch", "en"), exact=True).click()
            page.get_by_text(t("batch.header", "en")).first.wait_for(timeout=60_000)
            chart = page.locator("[data-testid=stVegaLiteChart]")
            chart.first.wait_for(timeout=60_000)
            assert chart.count() == 1
            assert page.locator("[data-testid=stDataFrame]").count() >= 2
            page.get_by_text(t("batch.shown", "en", n=2, total=2)).first.wait_for(timeout=30_000)
            page.wait_for_timeout(1500)  # let vega draw
            page.screenshot(path=str(tmp_path / "batch.png"), full_page=True)
            chart.first.scroll_into_view_if_needed()
            chart.first.screenshot(path=str(tmp_path / "batch-chart.png"))
            assert page.locator("[data-testid=stException]").count() == 0
            assert page.locator("[data-testid=stAlertContentError]").count() == 0

            # Replay: switch the 3D view on; the vtk.js scene draws in its iframe
            page.locator("[data-testid=stSidebar]").get_by_text(t("page.replay", "en"), exact=True).click()
            page.get_by_text(t("replay.header", "en")).first.wait_for(timeout=60_000)
            page.locator("[data-testid=stDeckGlJsonChart]").first.wait_for(timeout=60_000)
            page.get_by_text(t("replay.scene.show", "en")).first.click()
            frame = page.locator("iframe")
            frame.first.wait_for(state="visible", timeout=120_000)
            inner = page.frame_locator("iframe").first
            inner.locator("#citytwin-legend").wait_for(timeout=60_000)
            inner.locator("canvas").first.wait_for(timeout=60_000)
            legend = inner.locator("#citytwin-legend").inner_text()
            assert "Crews:" in legend and "Flood water" in legend
            frame.first.scroll_into_view_if_needed()
            page.wait_for_timeout(2500)  # let vtk.js draw
            page.screenshot(path=str(tmp_path / "replay-3d.png"), full_page=True)
            frame.first.screenshot(path=str(tmp_path / "replay-3d-frame.png"))
            assert page.locator("[data-testid=stException]").count() == 0
            assert page.locator("[data-testid=stAlertContentError]").count() == 0
        finally:
            browser.close()
    for name in ("batch.png", "batch-chart.png", "replay-3d.png", "replay-3d-frame.png"):
        assert _drawn(tmp_path / name), name
