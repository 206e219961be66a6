"""The workbench in a real headless Chromium against a real Streamlit server.

Needs the system browser at /usr/bin/chromium (CI installs it with apt); the
test is skipped, saying so, only when that browser is absent.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--use-gl=swiftshader", "--enable-unsafe-swiftshader",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout_s} s")


@pytest.fixture
def server(tmp_path):
    from gisdata.city import save_city
    from conftest import make_tiny_city

    gpkg = save_city(make_tiny_city(), tmp_path / "tiny.gpkg")
    port = _free_port()
    # runs made from the pages go to the workspace's run store: the test's folder unless a test chose one
    env = {"CITYTWIN_WORKSPACE": str(tmp_path), **os.environ, "CITYTWIN_APP_CITY": str(gpkg), "PYTHONPATH": str(ROOT)}
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "streamlit.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            _wait_healthy(url, proc, 60)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install -y chromium)")
def test_city_page_in_a_real_browser(server, tmp_path):
    from playwright.sync_api import sync_playwright

    from twin.i18n import t

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(server, wait_until="domcontentloaded")
            page.get_by_text(t("app.title", "en")).first.wait_for(timeout=60_000)
            page.get_by_text(t("city.header", "en", name="tiny")).first.wait_for(timeout=60_000)
            deck = page.locator("[data-testid=stDeckGlJsonChart]")
            deck.first.wait_for(timeout=30_000)
            assert deck.count() == 1
            page.wait_for_timeout(1500)  # let deck.gl draw before the picture
            page.screenshot(path=str(tmp_path / "city-map.png"), full_page=True)

            page.get_by_role("tab", name=t("tab.scene", "en")).click()
            frame = page.locator("iframe")
            frame.first.wait_for(state="visible", timeout=30_000)
            assert frame.count() >= 1
            inner = page.frame_locator("iframe").first
            inner.locator("#citytwin-legend").wait_for(timeout=30_000)
            inner.locator("canvas").first.wait_for(timeout=30_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(tmp_path / "city-3d.png"), full_page=True)

            assert page.locator("[data-testid=stException]").count() == 0
            assert page.locator("[data-testid=stAlertContentError]").count() == 0
        finally:
            browser.close()
    assert (tmp_path / "city-map.png").stat().st_size > 10_000
    assert (tmp_path / "city-3d.png").stat().st_size > 10_000


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install -y chromium)")
def test_exported_3d_page_renders_offline(tmp_path):
    from playwright.sync_api import sync_playwright

    from conftest import make_tiny_city
    from twin.viz.map2d import write_city_html

    page_file = write_city_html(make_tiny_city(), tmp_path / "city.html")
    requests = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 700})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.resolve().as_uri())
            page.locator("#citytwin-legend").wait_for(timeout=30_000)
            page.locator("canvas").first.wait_for(timeout=30_000)
            page.wait_for_timeout(1500)
            shot = tmp_path / "city-html.png"
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert [u for u in requests if u.startswith(("http:", "https:"))] == []
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("RGB"))
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 200  # the scene was drawn, not a blank page
