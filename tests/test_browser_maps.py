"""Every 2D map of the workbench reads at a glance and can be taken away, in a real headless Chromium (issue #13 item 4).

On the tiny city, with a stored storm run in the workspace: the City map, the Flood
event map and the Replay map each show their legend under them; the City map's PNG
and GeoJSON downloads give a real picture and a FeatureCollection with features;
Replay's player plays (its frame moves after Play) and pauses; and no request
leaves the machine the whole time.

Screenshots of every page are kept under ``tmp_path/screens`` (or
``$CITYTWIN_TEST_ARTIFACTS`` when set).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlparse

import pytest
from test_browser import CHROMIUM, CHROMIUM_ARGS, server  # noqa: F401 - the fixture

from twin.i18n import t

pytestmark = pytest.mark.browser

RUN_HOURS = 1.5


@pytest.fixture
def stored_run(tmp_path, monkeypatch) -> Path:
    """A 1.5 h storm run of the tiny city in ``<tmp>/ws/runs`` (made before the ``server`` fixture starts)."""
    from conftest import make_tiny_city

    from hydraulics.rainfall import chicago_storm
    from twin.coupler import run_coupled
    from twin.runstore import write_coupled_run

    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.setenv("CITYTWIN_WORKSPACE", str(ws))
    monkeypatch.delenv("CITYTWIN_RUNS_DIR", raising=False)
    city = make_tiny_city()
    # the server fixture saves the same city at <tmp>/tiny.gpkg, the built-in city that Replay may read
    return write_coupled_run(
        ws / "runs" / "storm1",
        lambda event_sink, progress: run_coupled(city, hours=RUN_HOURS, strategy="priority", seed=3,
                                                 rain=chicago_storm("beijing", 50, 60), start_s=600.0,
                                                 event_sink=event_sink, progress=progress, n_citizens=60,
                                                 n_vendors=2),
        params={"city": str(tmp_path / "tiny.gpkg"), "hours": RUN_HOURS, "strategy": "priority", "seed": 3},
        city=city)


def _sidebar(page, text: str) -> None:
    page.locator("[data-testid=stSidebar]").get_by_text(text, exact=True).click()


def _no_exception(page) -> None:
    assert page.locator("[data-testid=stException]").count() == 0


def _legend_under_map(page, *, expect: str) -> None:
    """The deck's legend is shown (visible, with its title and ``expect`` among its entries)."""
    legend = page.locator(".citytwin-legend").filter(has_text=t("map.legend.title", "en")).first
    legend.wait_for(state="visible", timeout=30_000)
    text = legend.inner_text()
    assert expect in text, text
    assert legend.locator(".citytwin-legend-entry").count() >= 2


def _show(page, locator) -> None:
    """Scroll the page (Streamlit's own scrolling block) so that ``locator`` is at the bottom of the view (what is
    above it, the map, shows under Streamlit's header), and let deck.gl draw."""
    locator.evaluate("e => e.scrollIntoView({block: 'end'})")
    page.wait_for_timeout(1500)


def _download(page, label: str, target: Path) -> bytes:
    with page.expect_download(timeout=60_000) as info:
        page.get_by_role("button", name=label).first.click()
    info.value.save_as(str(target))
    return target.read_bytes()


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install -y chromium)")
def test_maps_have_legends_exports_and_a_player_offline(stored_run, server, tmp_path):  # noqa: F811 - fixture
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("CITYTWIN_TEST_ARTIFACTS", "") or tmp_path / "screens")
    shots.mkdir(parents=True, exist_ok=True)
    local = urlparse(server).netloc
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            context.on("request", lambda r: requests.append(r.url))  # every request, frames included
            page = context.new_page()
            page.goto(server, wait_until="domcontentloaded")
            page.get_by_text(t("city.header", "en", name="tiny")).first.wait_for(timeout=60_000)

            # 1. City: legend under the map; the map as a PNG and its layers as GeoJSON
            page.locator("[data-testid=stDeckGlJsonChart]").first.wait_for(timeout=30_000)
            _legend_under_map(page, expect=t("legend.buildings", "en", n=2))
            png = _download(page, t("map.export.png", "en"), shots / "maps-1-city-download.png")
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
            fc = json.loads(_download(page, t("map.export.geojson", "en"), tmp_path / "city-map.geojson"))
            assert fc["type"] == "FeatureCollection" and len(fc["features"]) > 10
            assert {"roads", "buildings", "manholes"} <= {f["properties"]["layer"] for f in fc["features"]}
            _show(page, page.get_by_role("button", name=t("map.export.geojson", "en")).first)
            page.screenshot(path=str(shots / "maps-1-city.png"))
            _no_exception(page)

            # 2. Flood event: a short storm, its map with the street water legend and the deck's legend
            _sidebar(page, t("page.flood_event", "en"))
            page.get_by_text(t("flood.not_run", "en")).first.wait_for(timeout=60_000)
            page.get_by_role("button", name=t("flood.run", "en")).click()
            page.locator("[data-testid=stMetric]").first.wait_for(timeout=120_000)
            page.locator("[data-testid=stDeckGlJsonChart]").first.wait_for(timeout=30_000)
            _legend_under_map(page, expect=t("flood.status.open", "en"))
            page.get_by_role("button", name=t("map.export.geojson", "en")).first.wait_for(timeout=10_000)
            _show(page, page.get_by_role("button", name=t("map.export.geojson", "en")).first)
            page.screenshot(path=str(shots / "maps-2-flood-event.png"))
            _no_exception(page)

            # 3. Replay: the stored storm run (newest first: the flood event just saved; pick the storm)
            page.goto(f"{server}/?page=replay&run=storm1", wait_until="domcontentloaded")
            page.get_by_text(t("replay.header", "en")).first.wait_for(timeout=60_000)
            page.get_by_text("?page=replay&run=storm1").first.wait_for(timeout=30_000)
            page.locator("[data-testid=stDeckGlJsonChart]").first.wait_for(timeout=30_000)
            _legend_under_map(page, expect=t("map.legend.title", "en"))
            assert page.get_by_text(t("replay.legend", "en")[:30]).count() == 0  # the caption of the old colours
            _show(page, page.get_by_role("button", name=t("map.export.geojson", "en")).first)
            page.screenshot(path=str(shots / "maps-3-replay.png"))
            page.get_by_text(t("replay.player.show", "en")).first.click()
            player = page.frame_locator("iframe").first
            play = player.locator("#citytwin-play")
            play.wait_for(timeout=60_000)
            clock = player.locator("#citytwin-time")
            first = clock.inner_text()
            src = player.locator("#citytwin-frame").get_attribute("src")
            assert first == "00:00" and src.startswith("data:image/png;base64,")
            play.click()
            page.wait_for_timeout(1600)  # 2 frames a second
            assert play.inner_text() == t("map.pause", "en")
            play.click()  # pause: the frame stays
            stopped = clock.inner_text()
            assert stopped != first and player.locator("#citytwin-frame").get_attribute("src") != src
            page.wait_for_timeout(1200)
            assert clock.inner_text() == stopped and play.inner_text() == t("map.play", "en")
            _show(page, page.get_by_text(t("replay.player.hint", "en", step="10")[:30]).first)
            page.screenshot(path=str(shots / "maps-4-replay-player.png"))
            _no_exception(page)
        finally:
            browser.close()

    outside = [u for u in requests if urlparse(u).scheme in ("http", "https", "ws", "wss")
               and urlparse(u).netloc != local]
    assert outside == [], outside[:5]
    assert all((shots / f).stat().st_size > 20_000 for f in ("maps-1-city.png", "maps-2-flood-event.png",
                                                              "maps-3-replay.png", "maps-4-replay-player.png"))
