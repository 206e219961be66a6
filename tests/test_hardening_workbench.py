"""Issue #12, class 9: the workbench on a network.

* ``.streamlit/config.toml`` beside ``app.py``: the real Streamlit server listens on
  127.0.0.1 only (even when started from another folder), shows no error details,
  and caps uploads.
* Folder fields (Replay, Batch) stay inside the workspace root (``CITYTWIN_WORKSPACE``):
  ``..``, absolute paths and symbolic links out are refused with a message, never a
  traceback, and nothing is created outside.
* Uploads are size-checked before they are read.
* Map tooltips render as formatted text (a bold title, one line per value) with every
  value from data shown as written: a road named ``<i>Main</i> & "St"`` shows those
  characters and makes no ``<i>`` element (real Chromium; screenshots in ``tmp_path``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_browser import CHROMIUM, CHROMIUM_ARGS, _free_port, _wait_healthy

from twin import app_support as support
from twin.i18n import t

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "app.py")
HOSTILE_NAME = '<i>Main</i> & "St" {tip_body}'
"""A road name with markup, an ampersand, quotes and a tooltip placeholder."""


# ----------------------------------------------------------------------------- the shipped configuration


def test_config_beside_app_binds_loopback_hides_errors_and_caps_uploads():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert cfg["server"]["address"] == "127.0.0.1"
    # "none": no exception type, message or traceback in the page (False would mean "stacktrace").
    assert cfg["client"]["showErrorDetails"] == "none"
    assert cfg["server"]["maxUploadSize"] == max(support.UPLOAD_LIMITS_MB.values())
    assert cfg["server"]["enableXsrfProtection"] is True and cfg["server"]["runOnSave"] is False


def _listening(pid: int) -> set[tuple[str, int]]:
    import psutil

    return {(c.laddr.ip, c.laddr.port) for c in psutil.Process(pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN}


def test_real_server_started_elsewhere_listens_on_127_0_0_1_only(tmp_path):
    """``streamlit run /path/to/app.py`` from another folder, with no address flag: loopback only."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CITYTWIN_APP_CITY": "small"}
    env.pop("STREAMLIT_SERVER_ADDRESS", None)
    with open(tmp_path / "streamlit.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", APP, "--server.headless", "true",
                                 "--server.port", str(port)], cwd=tmp_path, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        try:
            _wait_healthy(f"http://127.0.0.1:{port}", proc, 60)
            sockets = _listening(proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert (("127.0.0.1", port)) in sockets, sockets
    assert {ip for ip, p in sockets if p == port} == {"127.0.0.1"}, sockets  # not 0.0.0.0, not ::
    text = (tmp_path / "streamlit.log").read_text(encoding="utf-8", errors="replace")
    assert "Network URL" not in text and "External URL" not in text, text


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install -y chromium)")
def test_the_shipped_config_shows_a_crash_without_its_details(tmp_path):
    """An uncaught exception under the shipped config: the page says something went wrong, and
    shows no exception type, message, server path or traceback (a script beside a copy of it)."""
    import shutil

    from playwright.sync_api import sync_playwright

    (tmp_path / ".streamlit").mkdir()
    shutil.copy(ROOT / ".streamlit" / "config.toml", tmp_path / ".streamlit" / "config.toml")
    (tmp_path / "boom.py").write_text('import streamlit as st\nst.title("boom page")\n'
                                      'raise KeyError("secret-token /srv/private/path")\n', encoding="utf-8")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "streamlit.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(tmp_path / "boom.py"),
                                 "--server.headless", "true", "--server.port", str(port)], cwd=tmp_path,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(url, proc, 60)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1200, "height": 800})
                    page.goto(url, wait_until="domcontentloaded")
                    page.get_by_text("boom page").first.wait_for(timeout=60_000)
                    shown = page.locator("[data-testid=stException]")
                    shown.first.wait_for(timeout=30_000)
                    text = page.locator("body").inner_text()
                    page.screenshot(path=str(tmp_path / "crash.png"))
                finally:
                    browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    for secret in ("secret-token", "/srv/private", "KeyError", "Traceback", "boom.py", str(tmp_path)):
        assert secret not in text, (secret, text)
    assert "secret-token" in (tmp_path / "streamlit.log").read_text(encoding="utf-8", errors="replace")  # logged


# ----------------------------------------------------------------------------- the workspace helper


@pytest.fixture
def ws(tmp_path, monkeypatch):
    """A workspace root with ``runs/``, and an ``outside/`` folder beside it."""
    root = tmp_path / "ws"
    (root / "runs").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    monkeypatch.setenv("CITYTWIN_WORKSPACE", str(root))
    monkeypatch.delenv("CITYTWIN_RUNS_DIR", raising=False)
    return root.resolve()


def test_folders_inside_the_workspace_resolve(ws):
    assert support.workspace_roots() == [ws]
    assert support.resolve_workspace_folder("runs") == ws / "runs"
    assert support.resolve_workspace_folder("  runs/a/../b ") == ws / "runs" / "b"  # need not exist yet
    assert support.resolve_workspace_folder(str(ws / "runs")) == ws / "runs"
    assert support.resolve_workspace_folder("") == ws


@pytest.mark.parametrize("typed", ["..", "../outside", "runs/../../outside", "/", "/etc", "/tmp",
                                   "runs/../../ws-sibling"])
def test_folders_outside_the_workspace_are_refused(ws, typed):
    with pytest.raises(support.WorkspaceFolderError, match="outside the workspace"):
        support.resolve_workspace_folder(typed)
    with pytest.raises(PermissionError):  # the builtin still catches it
        support.resolve_workspace_folder(typed)


def test_symbolic_links_out_of_the_workspace_are_refused(ws):
    outside = ws.parent / "outside"
    (ws / "link").symlink_to(outside, target_is_directory=True)
    (ws / "runs" / "evil").symlink_to(outside, target_is_directory=True)
    (ws / "runs" / "ok").mkdir()
    for typed in ("link", "link/new", "runs/evil", str(ws / "link")):
        with pytest.raises(support.WorkspaceFolderError, match="outside the workspace"):
            support.resolve_workspace_folder(typed)
    # A listing of a folder inside keeps what resolves inside and drops links out.
    kept = support.keep_inside_workspace(sorted((ws / "runs").iterdir()))
    assert [p.name for p in kept] == ["ok"]
    (ws / "loop").symlink_to(ws / "loop")
    with pytest.raises(support.WorkspaceFolderError):
        support.resolve_workspace_folder("loop/x")
    with pytest.raises(support.WorkspaceFolderError, match="NUL"):
        support.resolve_workspace_folder("runs\0x")


def test_the_servers_runs_dir_is_allowed_beside_the_workspace(ws, monkeypatch):
    store = ws.parent / "store"
    store.mkdir()
    monkeypatch.setenv("CITYTWIN_RUNS_DIR", str(store))
    assert support.workspace_roots() == [ws, store.resolve()]
    assert support.resolve_workspace_folder(str(store / "r1")) == store.resolve() / "r1"
    with pytest.raises(support.WorkspaceFolderError):
        support.resolve_workspace_folder(str(ws.parent / "outside"))


def test_a_city_typed_in_a_page_is_a_preset_the_built_in_city_or_a_file_in_the_workspace(ws, monkeypatch):
    monkeypatch.setenv("CITYTWIN_APP_CITY", "/srv/elsewhere/city.gpkg")
    assert support.resolve_city_field(" small ") == "small"
    assert support.resolve_city_field("/srv/elsewhere/city.gpkg") == "/srv/elsewhere/city.gpkg"
    assert support.resolve_city_field("cities/k.gpkg") == str(ws / "cities" / "k.gpkg")
    for typed in ("/etc/passwd", "../outside/x.gpkg", "/srv/elsewhere/other.gpkg"):
        with pytest.raises(support.WorkspaceFolderError, match="outside the workspace"):
            support.resolve_city_field(typed)


def test_default_workspace_is_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.delenv("CITYTWIN_WORKSPACE", raising=False)
    monkeypatch.delenv("CITYTWIN_RUNS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert support.workspace_root() == tmp_path.resolve()
    assert support.resolve_workspace_folder("runs") == tmp_path.resolve() / "runs"
    with pytest.raises(support.WorkspaceFolderError):
        support.resolve_workspace_folder("..")


# ----------------------------------------------------------------------------- uploads


class _Upload:
    """A stand-in for Streamlit's UploadedFile that fails if it is read."""

    def __init__(self, name: str, size: int):
        self.name, self.size = name, size

    def getvalue(self) -> bytes:
        raise AssertionError(f"{self.name} was read before its size was checked")


@pytest.mark.parametrize("kind, name", [("rain_csv", "rain.csv"), ("qpf", "qpf.csv"), ("members", "m1.csv"),
                                        ("osm", "city.osm.bz2"), ("gpkg", "city.gpkg"), ("gpkg", "city.dem.tif")])
def test_an_upload_over_its_limit_is_refused_before_it_is_read(kind, name):
    limit = support.UPLOAD_LIMITS_MB["dem" if name.endswith(".tif") else kind]
    with pytest.raises(support.UploadTooLargeError, match=rf"{name}: .* MB is larger than the {limit} MB"):
        support.read_uploads([_Upload(name, limit * support.MB + 1)], kind)


def test_uploads_within_their_limits_are_read_and_counted():
    class Small(_Upload):
        def getvalue(self) -> bytes:
            return b"x" * self.size

    assert support.read_uploads([Small("a.csv", 3)], "qpf") == (("a.csv", b"xxx"),)
    with pytest.raises(support.UploadTooLargeError, match="3 files uploaded; at most 2"):
        support.read_uploads([_Upload(f"m{i}.csv", 1) for i in range(3)], "members", max_files=2)
    # The per-field limits never exceed the server-wide one in the shipped config.
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert max(support.UPLOAD_LIMITS_MB.values()) <= cfg["server"]["maxUploadSize"]


@pytest.mark.parametrize("kind, relpath", [
    ("osm", "gis/monaco/monaco-latest.osm.pbf"), ("osm", "gis/pyrosm/test.osm.pbf"),
    ("gpkg", "gis/momepy/bubenec.gpkg"), ("rain_csv", "rain/ncdc_hourly"), ("qpf", "rain/design_storms_9cities"),
])
def test_the_limits_fit_the_real_inputs_with_room(shared_data, kind, relpath):
    path = shared_data / relpath
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    assert files
    for f in files:
        support.check_upload_size(f.name, f.stat().st_size * 10, kind)  # ten times the real file still passes


# ----------------------------------------------------------------------------- a workspace with a run


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A workspace: a tiny city whose roads carry :data:`HOSTILE_NAME`, one stored storm run in ``runs/``."""
    from conftest import make_tiny_city

    from gisdata.city import save_city
    from hydraulics.rainfall import chicago_storm
    from twin.coupler import run_coupled
    from twin.runstore import write_coupled_run

    root = tmp_path_factory.mktemp("workspace").resolve()
    city = make_tiny_city()
    roads = city.roads.copy()
    roads["name"] = HOSTILE_NAME
    city = city.replace(roads=roads)
    gpkg = save_city(city, root / "tiny.gpkg")

    def go(event_sink, progress):
        return run_coupled(city, hours=2, strategy="priority", seed=1, rain=chicago_storm("beijing", 50, 60),
                           start_s=1800.0, event_sink=event_sink, progress=progress, n_citizens=80, n_vendors=3)

    write_coupled_run(root / "runs" / "storm1", go, params={"city": str(gpkg), "hours": 2, "strategy": "priority",
                                                            "seed": 1, "storm": {"return_period_yr": 50}}, city=city)
    outside = tmp_path_factory.mktemp("outside").resolve()
    return root, gpkg, outside


def test_replay_map_tooltips_are_plain_fields_under_one_template(workspace):
    from gisdata.city import load_city
    from twin.replay import state_at, state_deck

    root, gpkg, _ = workspace
    deck = state_deck(state_at(root / "runs" / "storm1", 3600.0), load_city(gpkg))
    assert deck._tooltip["html"] == "<b>{tip_title}</b><br/>{tip_body}"
    spec = json.loads(deck.to_json())
    rows = [row for layer in spec["layers"] if layer.get("pickable") for row in layer["data"]]
    assert rows
    assert all("<b>" not in row["tip_title"] + row["tip_body"] for row in rows)  # no markup from the code
    assert any("<i>Main</i>" in row["tip_body"] for row in rows)  # data kept as written (Streamlit escapes it)


@pytest.fixture
def app(workspace, monkeypatch) -> AppTest:
    root, gpkg, _ = workspace
    monkeypatch.setenv("CITYTWIN_APP_CITY", str(gpkg))
    monkeypatch.setenv("CITYTWIN_WORKSPACE", str(root))
    monkeypatch.delenv("CITYTWIN_RUNS_DIR", raising=False)
    return AppTest.from_file(APP, default_timeout=180).run()


@pytest.mark.parametrize("page, key", [("replay", "replay_root"), ("batch", "batch_root")])
def test_pages_refuse_folders_outside_the_workspace(app, workspace, page, key):
    _, _, outside = workspace
    app.sidebar.radio(key="page__en").set_value(page).run()
    assert not app.exception and not app.error, [e.value for e in app.exception or app.error]
    if page == "replay":
        assert app.selectbox(key="replay_run").value.name == "storm1"  # "runs" is found in the workspace
    for typed in (str(outside), str(outside / "new"), "../" + outside.name, "/"):
        app.text_input(key=key).set_value(typed).run()
        assert not app.exception, [e.value for e in app.exception]
        assert [e.value for e in app.error] == [
            t("workspace.refused", "en", error=f"{typed}: outside the workspace; type a path inside it")]
    assert not (outside / "new").exists()
    app.text_input(key=key).set_value("runs").run()
    assert not app.exception and not app.error


def test_batch_launch_refuses_a_city_file_outside_the_workspace(app, workspace):
    root, _, outside = workspace
    (outside / "city.gpkg").write_bytes(b"not read")
    app.sidebar.radio(key="page__en").set_value("batch").run()
    app.text_input(key="batch_root").set_value("launched").run()
    app.text_input(key="batch_city").set_value(str(outside / "city.gpkg"))
    app.button(key="batch_run").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert [e.value for e in app.error] == [t("batch.launch.error", "en", error=(
        f"{outside / 'city.gpkg'}: outside the workspace; type a path inside it"))]
    assert not (root / "launched").exists()


def test_replay_reads_no_city_file_outside_the_workspace(app, workspace):
    """A manifest's city pointer is a path from a file: outside the workspace it is not read."""
    import shutil

    from conftest import make_tiny_city

    from hydraulics.rainfall import chicago_storm
    from twin.coupler import run_coupled
    from twin.runstore import write_coupled_run

    root, gpkg, outside = workspace
    far_city = outside / "far.gpkg"
    shutil.copy(gpkg, far_city)
    city = make_tiny_city()

    def go(event_sink, progress):
        return run_coupled(city, hours=1, strategy="priority", seed=2, rain=chicago_storm("beijing", 50, 60),
                           event_sink=event_sink, progress=progress, n_citizens=20, n_vendors=1)

    # a store of its own: the module's workspace (runs/) is shared with the browser test
    write_coupled_run(root / "far_runs" / "far_city", go, params={"city": str(far_city), "hours": 1,
                                                                  "strategy": "priority", "seed": 2}, city=city)
    app.sidebar.radio(key="page__en").set_value("replay").run()
    app.text_input(key="replay_root").set_value("far_runs").run()
    app.selectbox(key="replay_run").set_value(root / "far_runs" / "far_city").run()
    assert not app.exception, [e.value for e in app.exception]
    warnings = [w.value for w in app.warning]
    assert t("replay.no_city", "en", city="far.gpkg") in warnings      # the file name only, never its folder
    assert not any(str(outside) in w for w in warnings)


# ----------------------------------------------------------------------------- real browser


@pytest.fixture
def workbench_server(workspace, tmp_path):
    """A real Streamlit server on the workspace (``CITYTWIN_WORKSPACE``), started without an address flag."""
    root, gpkg, _ = workspace
    port = _free_port()
    env = {**os.environ, "CITYTWIN_APP_CITY": str(gpkg), "CITYTWIN_WORKSPACE": str(root), "PYTHONPATH": str(ROOT)}
    env.pop("CITYTWIN_RUNS_DIR", None)
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "streamlit.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", APP, "--server.headless", "true",
                                 "--server.port", str(port)], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
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


@contextmanager
def _browser_page(url: str):
    from playwright.sync_api import sync_playwright

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
    page.locator("[data-testid=stSidebar]").get_by_text(t(f"page.{name}", "en"), exact=True).click()
    page.get_by_text(t(f"{name}.header", "en")).first.wait_for(timeout=60_000)


def _open_page(page, name: str) -> None:
    """Pick page ``name`` in the sidebar (for pages without a ``<name>.header`` message)."""
    page.locator("[data-testid=stSidebar]").get_by_text(t(f"page.{name}", "en"), exact=True).click()
    page.wait_for_timeout(1500)


def _hover_tooltips(page, *, want: set[str], step_px: int = 30) -> dict[str, tuple[str, str]]:
    """Move the mouse over the map on a grid; the first tooltip of each title: (text, inner HTML)."""
    from playwright.sync_api import Error as PlaywrightError

    for attempt in range(5):  # after a page switch the old page's map can still be there, then detach
        deck = page.locator("[data-testid=stDeckGlJsonChart]").first
        try:
            deck.scroll_into_view_if_needed(timeout=10_000)
            page.wait_for_timeout(2000)  # let deck.gl draw
            box = deck.bounding_box()
        except PlaywrightError:
            if attempt == 4:
                raise
            page.wait_for_timeout(1500)
            continue
        if box is not None:
            break
    seen: dict[str, tuple[str, str]] = {}
    tip = page.locator(".deck-tooltip").first
    for y in range(int(box["y"]) + 10, int(box["y"] + box["height"]) - 5, step_px):
        for x in range(int(box["x"]) + 10, int(box["x"] + box["width"]) - 5, step_px):
            page.mouse.move(x, y)
            page.wait_for_timeout(25)
            if tip.count() and tip.is_visible():
                text = tip.inner_text()
                title = text.split("\n")[0]
                if title not in seen:
                    seen[title] = (text, tip.inner_html())
                    if want <= set(seen):  # an empty ``want``: the first tooltip
                        return seen
    return seen


def _check_tooltip(text: str, inner: str, page, shot: Path) -> None:
    page.screenshot(path=str(shot))
    assert "<b>" not in text and "</b>" not in text and "<br" not in text, text  # no literal markup
    assert inner.startswith("<b>"), inner  # the title is bold: the template was rendered as HTML
    assert "\n" in text.strip(), text  # one line per value


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install -y chromium)")
def test_folders_refused_and_tooltips_formatted_in_a_real_browser(workspace, workbench_server, tmp_path):
    _, _, outside = workspace
    road, building = t("map.road", "en"), t("map.building", "en")
    with _browser_page(workbench_server) as page:
        # City map: formatted tooltips; the hostile road name shows as written and makes no element.
        page.locator("[data-testid=stDeckGlJsonChart]").first.wait_for(timeout=60_000)
        seen = _hover_tooltips(page, want={road, building})
        assert {road, building} <= set(seen), seen
        for title in (road, building):
            _check_tooltip(*seen[title], page, tmp_path / f"city-tooltip-{title}.png")
        page.mouse.move(0, 0)
        text, inner = seen[road]
        assert HOSTILE_NAME.replace("{", "{\u2060") in text, text
        assert "<i>" not in inner and "&lt;i&gt;Main&lt;/i&gt; &amp;" in inner, inner
        assert page.locator(".deck-tooltip i").count() == 0

        # Replay: the run in the workspace's runs/ shows, and its map's tooltips are formatted too.
        _open(page, "replay")
        page.locator("[data-testid=stDeckGlJsonChart]").first.wait_for(timeout=60_000)
        seen = _hover_tooltips(page, want=set())  # the first feature found: a crew, a wet manhole, a road...
        assert seen, "no tooltip on the Replay map"
        (text, inner), = seen.values()
        _check_tooltip(text, inner, page, tmp_path / "replay-tooltip.png")
        page.mouse.move(0, 0)

        # Flood event: a rain CSV over its field's limit is refused by the page before it is sent.
        _open_page(page, "flood_event")
        page.get_by_text(t("flood.rain.csv", "en")).first.click()
        upload = page.locator(".st-key-flood_csv input[type=file]")
        upload.wait_for(state="attached", timeout=30_000)
        big = support.UPLOAD_LIMITS_MB["rain_csv"] * support.MB + 1024
        upload.set_input_files(files=[{"name": "big.csv", "mimeType": "text/csv", "buffer": b"0" * big}])
        page.get_by_text(f"File must be {support.UPLOAD_LIMITS_MB['rain_csv']}.0MB or smaller").first.wait_for(
            timeout=30_000)
        page.screenshot(path=str(tmp_path / "upload-refused.png"), full_page=True)
        assert page.locator("[data-testid=stException]").count() == 0

        # Replay and Batch: a folder outside the workspace is refused in the page, with no traceback.
        for name, key in (("replay", "replay_root"), ("batch", "batch_root")):
            _open(page, name)
            field = page.locator(f".st-key-{key} input")  # both fields are labelled "Run store folder"
            for typed in (str(outside / "new"), "../.."):
                field.fill(typed)
                field.press("Enter")
                alert = page.locator("[data-testid=stAlertContentError]").first
                alert.wait_for(timeout=30_000)
                page.get_by_text(f"{typed}: outside the workspace").first.wait_for(timeout=30_000)
                assert "Folder refused" in alert.inner_text()
                assert page.locator("[data-testid=stException]").count() == 0
            page.screenshot(path=str(tmp_path / f"{name}-refused.png"), full_page=True)
            field.fill("runs")
            field.press("Enter")
            page.wait_for_timeout(1500)
    assert not (outside / "new").exists()
    for shot in ("replay-refused.png", "batch-refused.png", "replay-tooltip.png"):
        from PIL import Image

        img = np.asarray(Image.open(tmp_path / shot).convert("RGB"))
        assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50, shot
