"""The Streamlit workbench, driven headless with streamlit.testing (AppTest).

The app runs on a small city given by CITYTWIN_APP_CITY (a GeoPackage of the
tiny fixture city), so these tests do not wait for the demo city.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from gisdata.city import read_city_gpkg, save_city
from gisdata.errors import CorruptFileError, MissingLayerError, TwinError
from twin.app_support import (
    layer_column_stats,
    layer_counts_table,
    load_uploaded_city,
    summary_table,
)
from twin.i18n import t
from twin.viz.map2d import MAP_LAYERS

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture(scope="module")
def tiny_gpkg(tmp_path_factory) -> Path:
    from conftest import make_tiny_city

    return save_city(make_tiny_city(), tmp_path_factory.mktemp("app") / "tiny.gpkg")


@pytest.fixture
def app(tiny_gpkg, monkeypatch, tmp_path) -> AppTest:
    monkeypatch.setenv("CITYTWIN_APP_CITY", str(tiny_gpkg))
    monkeypatch.setenv("CITYTWIN_WORKSPACE", str(tmp_path))  # runs from the pages are saved in <tmp>/runs
    monkeypatch.delenv("CITYTWIN_RUNS_DIR", raising=False)
    return AppTest.from_file(APP, default_timeout=120).run()


def test_city_page_renders_map_stats_and_3d(app):
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    assert app.title[0].value == t("app.title", "en")
    assert len(app.get("deck_gl_json_chart")) == 1
    assert len(app.get("iframe")) == 1
    html = app.get("iframe")[0].proto.srcdoc
    assert "OfflineLocalView" in html
    frames = [df.value for df in app.dataframe]
    summary = frames[0]
    assert "EPSG:32650" in summary.iloc[:, 1].tolist()
    counts = frames[1]
    assert counts.iloc[:, 1].tolist()[:2] == [6, 2]  # roads, buildings of the tiny city
    # under the map: its legend (what the deck draws) and its exports, made only when pressed
    (legend,) = app.get("html")
    assert "citytwin-legend" in legend.proto.body and t("legend.buildings", "en", n=2) in legend.proto.body
    buttons = {b.proto.label: b.proto for b in app.get("download_button")}
    assert set(buttons) == {t("map.export.png", "en"), t("map.export.geojson", "en")}
    assert all(b.deferred_file_id for b in buttons.values())


def test_language_switch_changes_labels_and_keeps_choices(app):
    app.selectbox(key="stats_layer__en").set_value("conduits").run()
    app.sidebar.radio(key="lang").set_value("zh").run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.title[0].value == t("app.title", "zh") != t("app.title", "en")
    assert [r.label for r in app.sidebar.radio] == [t("app.language", "zh"), t("app.page", "zh")]
    assert app.radio(key="city_source__zh").label == t("city.source", "zh")
    assert app.selectbox(key="stats_layer__zh").label == t("stats.choose_layer", "zh")
    assert app.selectbox(key="stats_layer__zh").value == "conduits"  # the choice survives the switch
    assert app.multiselect(key="map_layers__zh").value == list(MAP_LAYERS)
    assert t("stats.max", "zh") in app.dataframe[2].value.columns
    (legend,) = app.get("html")  # the map's legend and its export buttons in Chinese too
    assert t("map.legend.title", "zh") in legend.proto.body and t("legend.buildings", "zh", n=2) in legend.proto.body
    assert {b.proto.label for b in app.get("download_button")} == {t("map.export.png", "zh"),
                                                                  t("map.export.geojson", "zh")}
    # and back
    app.sidebar.radio(key="lang").set_value("en").run()
    assert app.title[0].value == t("app.title", "en")


def test_uploaded_bad_geopackage_shows_the_readers_message(app, tmp_path):
    app.radio(key="city_source__en").set_value("gpkg").run()
    assert [i.value for i in app.info] == [t("city.upload.hint", "en")]
    app.file_uploader(key="upload_gpkg").set_value(("bad.gpkg", b"this is not a GeoPackage", "application/geopackage+sqlite3")).run()
    assert not app.exception, [e.value for e in app.exception]
    # The message the CLI prints for the same file (run from the file's folder).
    (tmp_path / "bad.gpkg").write_bytes(b"this is not a GeoPackage")
    with pytest.raises(CorruptFileError) as info:
        read_city_gpkg(tmp_path / "bad.gpkg")
    expected = str(info.value).replace(str(tmp_path) + "/", "")
    assert [e.value for e in app.error] == [expected]
    assert expected.startswith("bad.gpkg: not a readable GeoPackage")


def test_uploaded_good_geopackage_with_dem_loads(app, tiny_gpkg):
    app.radio(key="city_source__en").set_value("gpkg").run()
    files = [("city.gpkg", tiny_gpkg.read_bytes(), "application/octet-stream"),
             ("elevation.tif", tiny_gpkg.with_name("tiny.dem.tif").read_bytes(), "image/tiff")]
    app.file_uploader(key="upload_gpkg").set_value(files).run()
    assert not app.exception and not app.error
    assert app.subheader[0].value == t("city.header", "en", name="tiny")


def test_load_uploaded_city_round_trip(tiny_gpkg):
    files = [("x.gpkg", tiny_gpkg.read_bytes()), ("x.dem.tif", tiny_gpkg.with_name("tiny.dem.tif").read_bytes())]
    city = load_uploaded_city(files, "gpkg")
    assert city.equals(read_city_gpkg(tiny_gpkg))


def test_load_uploaded_city_errors_name_the_file(tiny_gpkg, tmp_path):
    import sqlite3

    broken = tmp_path / "nolayers.gpkg"
    broken.write_bytes(tiny_gpkg.read_bytes())
    with sqlite3.connect(broken) as con:  # drop a required layer
        con.execute("DELETE FROM gpkg_contents WHERE table_name = 'conduits'")
        con.execute("DELETE FROM gpkg_geometry_columns WHERE table_name = 'conduits'")
        con.execute("DROP TABLE conduits")
    with pytest.raises(MissingLayerError) as info:
        load_uploaded_city([("nolayers.gpkg", broken.read_bytes())], "gpkg")
    assert str(info.value).startswith("nolayers.gpkg: missing required layer(s) ['conduits']")
    with pytest.raises(TwinError, match="expected one city GeoPackage"):
        load_uploaded_city([("a.gpkg", b""), ("b.gpkg", b"")], "gpkg")
    with pytest.raises(TwinError, match="expected one OSM extract"):
        load_uploaded_city([("city.gpkg", b"")], "osm")


def test_statistics_tables(tiny_city):
    s = summary_table(tiny_city, "en")
    assert dict(zip(s.iloc[:, 0], s.iloc[:, 1]))["Residents"] == "40"
    c = layer_counts_table(tiny_city, "zh")
    assert list(c.columns) == [t("stats.layer", "zh"), t("stats.count", "zh")]
    cols = layer_column_stats(tiny_city, "conduits", "en").set_index("Column")
    assert cols.loc["diameter_m", "Max"] == pytest.approx(0.6)
    assert cols.loc["diameter_m", "Unit"] == "m"
    assert cols.loc["from_node", "Distinct values"] == 6


# ----------------------------------------------------------------------------- flood event page


def test_flood_event_page_runs_a_storm_and_shows_the_results(app):
    """A short storm on the tiny city: SWMM runs in its own process, the page shows summary, map,
    hydrograph and 3D flood, and the result survives a language switch without a new run."""
    from twin.flood_event import FloodEventResult

    app.sidebar.radio(key="page__en").set_value("flood_event").run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.subheader[0].value == t("flood.header", "en", name="tiny")
    assert [i.value for i in app.info] == [t("flood.not_run", "en")]
    app.select_slider(key="flood_period").set_value(50).run()
    app.select_slider(key="flood_duration").set_value(60).run()
    app.select_slider(key="flood_drain").set_value(1.0).run()
    app.button(key="flood_run").click().run(timeout=180)
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]

    (result,) = app.session_state["flood_events"].values()
    assert isinstance(result, FloodEventResult) and result.city_name == "tiny"
    metrics = {m.label: m.value for m in app.metric}
    assert metrics[t("flood.summary.flooded_nodes", "en")] == "5"
    assert metrics[t("flood.summary.flood_volume_m3", "en")] == f"{result.summary['flood_volume_m3']:,.1f}"
    assert float(metrics[t("flood.summary.max_surface_depth_m", "en")]) > 0.05
    assert t("flood.summary.continuity", "en") in metrics
    assert len(app.get("deck_gl_json_chart")) == 1
    legend = " ".join(h.proto.body for h in app.get("html"))  # the other layers' legend, with counts
    assert t("flood.legend.nodes", "en", n=5) in legend and "citytwin-legend" in legend
    assert {b.proto.label for b in app.get("download_button")} >= {t("map.export.png", "en"),
                                                                 t("map.export.geojson", "en")}
    assert len(app.get("iframe")) == 1
    html = app.get("iframe")[0].proto.srcdoc
    assert "OfflineLocalView" in html and t("scene.legend.water", "en") in html  # water in the 3D scene
    node = app.selectbox(key="flood_node__en")
    assert node.value == result.worst_node == "J5"
    table = app.dataframe[0].value
    assert table.iloc[:, 0].tolist()[0] == t("flood.summary.flooded_nodes", "en")

    app.sidebar.radio(key="lang").set_value("zh").run()
    assert not app.exception, [e.value for e in app.exception]
    assert len(app.session_state["flood_events"]) == 1  # no new run
    metrics = {m.label: m.value for m in app.metric}
    assert metrics[t("flood.summary.flooded_nodes", "zh")] == "5"
    assert app.selectbox(key="flood_node__zh").value == "J5"
    assert app.select_slider(key="flood_duration").value == 60  # the storm is kept across languages


def test_flood_event_page_rain_choices_and_a_bad_rain_file(app):
    from twin.app_support import rain_description
    from twin.flood_event import StormSpec

    app.sidebar.radio(key="page__en").set_value("flood_event").run()
    app.radio(key="flood_rain__en").set_value("block").run()
    app.number_input(key="flood_intensity").set_value(40.0).run()
    block = StormSpec("block", intensity_mm_h=40.0, duration_min=60).build()
    assert rain_description(block, "en") in [c.value for c in app.caption]
    app.radio(key="flood_rain__en").set_value("nrcs").run()
    nrcs = StormSpec("nrcs", depth_mm=150.0, nrcs_type="II", step_min=6).build()
    assert rain_description(nrcs, "en") in [c.value for c in app.caption]
    assert not app.exception, [e.value for e in app.exception]
    app.radio(key="flood_rain__en").set_value("csv").run()
    assert [i.value for i in app.info] == [t("flood.upload_hint", "en")]
    app.file_uploader(key="flood_csv").set_value(("obs.csv", b"time,RG1\n2024-07-01 00:00,0\n2024-07-01 00:05,x\n",
                                                   "text/csv")).run()
    assert not app.exception, [e.value for e in app.exception]
    assert [e.value for e in app.error] == ["obs.csv:3: column 'RG1': 'x' is not a number"]


def test_keep_latest_keeps_the_newest_entries():
    from twin.app_support import keep_latest

    store: dict = {}
    for k in "abc":
        keep_latest(store, k, k.upper(), 2)
    keep_latest(store, "b", "B2", 2)  # seen again: becomes the newest
    keep_latest(store, "d", "D", 2)
    assert list(store.items()) == [("b", "B2"), ("d", "D")]
