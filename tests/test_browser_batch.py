"""The Batch page and the Replay page's 3D view in a real headless Chromium against a real Streamlit server.

The run store (CITYTWIN_RUNS_DIR) holds one short storm run on the tiny city,
for Replay, and one finished 2-run sweep, for Batch.  A second test launches
the page's "tiny" sweep into an empty store and checks the server log: no
pool worker re-ran ``app.py`` in bare mode.  Screenshots go to ``tmp_path``;
each is checked to hold a drawn picture, not a blank page.
"""

from __future__ import annotations

import tomllib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from test_browser import CHROMIUM, CHROMIUM_ARGS, server  # noqa: F401 - `server` is the Streamlit server fixture

from twin.pages.batch import SIZES

pytestmark = pytest.mark.browser
BARE_MODE_MARKS = ("missing ScriptRunContext", "bare mode", "No runtime found", "without `streamlit run`")
"""What Streamlit logs when a process runs ``app.py`` outside the server (as a re-run ``__main__``)."""

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


@contextmanager
def _workbench(url: str):
    """A Chromium page showing the workbench at ``url``; the browser closes afterwards."""
    from playwright.sync_api import sync_playwright

    from twin.i18n import t

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(url, wait_until="domcontentloaded")
            page.get_by_text(t("app.title", "en")).first.wait_for(timeout=60_000)
            yield page
        finally:
            browser.close()


def _open(page, name: str) -> None:
    """Pick page ``name`` (``batch``, ``replay``) in the sidebar and wait for its header."""
    from twin.i18n import t

    page.locator("[data-testid=stSidebar]").get_by_text(t(f"page.{name}", "en"), exact=True).click()
    page.get_by_text(t(f"{name}.header", "en")).first.wait_for(timeout=60_000)


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install -y chromium)")
def test_batch_page_and_replay_3d_in_a_real_browser(runs_env, server, tmp_path):  # noqa: F811
    from twin.i18n import t

    with _workbench(server) as page:
        # Batch: the sweep listed, its results and the KPI chart
        _open(page, "batch")
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
        _open(page, "replay")
        page.locator("[data-testid=stDeckGlJsonChart]").first.wait_for(timeout=60_000)
        page.get_by_text(t("replay.scene.show", "en")).first.click()
        frame = page.locator("iframe")
        frame.first.wait_for(state="visible", timeout=120_000)
        inner = page.frame_locator("iframe").first
        inner.locator("#citytwin-legend").wait_for(timeout=60_000)
        inner.locator("canvas").first.wait_for(timeout=60_000)
        legend = inner.locator("#citytwin-legend").text_content()  # the legend folds: read it folded or open
        assert "Crews:" in legend and "Flood water" in legend
        frame.first.scroll_into_view_if_needed()
        page.wait_for_timeout(2500)  # let vtk.js draw
        page.screenshot(path=str(tmp_path / "replay-3d.png"), full_page=True)
        frame.first.screenshot(path=str(tmp_path / "replay-3d-frame.png"))
        assert page.locator("[data-testid=stException]").count() == 0
        assert page.locator("[data-testid=stAlertContentError]").count() == 0
    for name in ("batch.png", "batch-chart.png", "replay-3d.png", "replay-3d-frame.png"):
        assert _drawn(tmp_path / name), name


@pytest.fixture
def empty_store(tmp_path, monkeypatch):
    """An empty run store for the server (listed before ``server`` so the server sees it)."""
    monkeypatch.setenv("CITYTWIN_RUNS_DIR", str(tmp_path / "launched"))
    return tmp_path / "launched"


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install -y chromium)")
def test_sweep_launched_from_the_page_runs_outside_the_server(empty_store, server, tmp_path):  # noqa: F811
    """The page's "tiny" sweep runs, its progress shows, its results list; no worker re-ran app.py (bare mode)."""
    from twin.i18n import t

    n = len(SIZES["tiny"]["strategies"]) * len(SIZES["tiny"]["seeds"])
    with _workbench(server) as page:
        _open(page, "batch")
        page.get_by_text(t("batch.launch.title", "en")).first.click()
        page.get_by_role("button", name=t("batch.launch.run", "en")).click()
        page.get_by_text(t("batch.launch.progress", "en", done=0, n=n)).first.wait_for(timeout=30_000)
        success = page.locator("[data-testid=stAlertContentSuccess]").first
        success.wait_for(timeout=240_000)
        assert f"{n} of {n} runs complete" in success.inner_text(), success.inner_text()
        page.locator("[data-testid=stVegaLiteChart]").first.wait_for(timeout=60_000)
        page.get_by_text(t("batch.shown", "en", n=n, total=n)).first.wait_for(timeout=30_000)
        page.wait_for_timeout(1500)  # let vega draw
        page.screenshot(path=str(tmp_path / "batch-launched.png"), full_page=True)
        assert page.locator("[data-testid=stException]").count() == 0
        assert page.locator("[data-testid=stAlertContentError]").count() == 0
    assert _drawn(tmp_path / "batch-launched.png")
    sweeps = [p for p in empty_store.iterdir() if (p / "sweep.json").exists()]
    assert len(sweeps) == 1 and sweeps[0].name.startswith("ui_tiny_")
    log = (tmp_path / "streamlit.log").read_text(encoding="utf-8", errors="replace")
    bare = [line for line in log.splitlines() if any(m in line for m in BARE_MODE_MARKS)]
    assert not bare, f"{len(bare)} bare-mode lines in the server log (a worker re-ran app.py): {bare[:3]}"
