"""3D scene, static map and deck.gl map: the pictures are not blank, the HTML needs no network."""

from __future__ import annotations

import json
import re
import threading

import numpy as np
import pytest
import shapely
from PIL import Image
from shapely.geometry import box

from gisdata.raster import Raster
from twin.viz import geometry as geo
from twin.viz.map2d import MAP_LAYERS, city_deck, write_city_html, write_city_png
from twin.viz.scene import build_city_scene, write_scene_html, write_scene_png


def _image_stats(path) -> tuple[int, float]:
    """(distinct colours, share of pixels that differ from their row's background)."""
    img = np.asarray(Image.open(path).convert("RGB")).astype(int)
    colours = len(np.unique(img.reshape(-1, 3), axis=0))
    # Backgrounds here are a vertical gradient or white: compare each pixel with its row's first pixel.
    differs = np.abs(img - img[:, :1, :]).sum(axis=2) > 30
    return colours, float(differs.mean())


def test_buildings_are_extruded_to_their_height(tiny_city):
    frame = geo.Frame(*tiny_city.extent[:2])
    mesh = geo.build_buildings(tiny_city.buildings, tiny_city.dem, frame)
    assert mesh.n_cells == 2 * 2 + 2 * 4  # two roofs of two triangles, four walls each
    ground = tiny_city.dem.values.min()
    top = mesh.points[:, 2].max()
    assert ground + 30.0 - 1.5 < top <= tiny_city.dem.values.max() + 30.0
    assert sorted(np.unique(mesh.cell_data["height_m"])) == [12.0, 30.0]


def test_building_with_a_courtyard_keeps_its_hole(tiny_city):
    x0, y0 = tiny_city.extent[:2]
    ring = box(x0 + 20, y0 + 20, x0 + 80, y0 + 80).difference(box(x0 + 40, y0 + 40, x0 + 60, y0 + 60))
    b = tiny_city.buildings.iloc[:1].copy()
    b["geometry"] = [ring]
    mesh = geo.build_buildings(b, tiny_city.dem, geo.Frame(x0, y0))
    roof = mesh.extract_cells(np.where(mesh.cell_data["height_m"] > 0)[0][: mesh.n_cells - 8])
    roof_area = mesh.compute_cell_sizes()["Area"][: mesh.n_cells - 8].sum()
    assert roof_area == pytest.approx(60 * 60 - 20 * 20, rel=1e-6)
    assert roof.n_cells > 0


def test_pipes_lie_below_ground_at_their_inverts(tiny_city):
    frame = geo.Frame(*tiny_city.extent[:2])
    pipes = geo.build_pipes(tiny_city.conduits, tiny_city.nodes, tiny_city.dem, frame, min_radius_m=0.0)
    x = pipes.points[:, 0] + frame.x0
    y = pipes.points[:, 1] + frame.y0
    ground = tiny_city.dem.sample(x, y)
    assert (pipes.points[:, 2] < ground - 1.0).all()  # inverts are 2 m down, pipes <= 0.6 m wide
    za, zb = geo.pipe_end_elevations(tiny_city.conduits, tiny_city.nodes, tiny_city.dem)
    inv = tiny_city.nodes["invert_elev_m"]
    assert za == pytest.approx(tiny_city.conduits["from_node"].map(inv) + tiny_city.conduits["diameter_m"] / 2)
    assert zb == pytest.approx(tiny_city.conduits["to_node"].map(inv) + tiny_city.conduits["diameter_m"] / 2)


def test_scene_png_is_not_blank(tiny_city, tmp_path):
    out = write_scene_png(tiny_city, tmp_path / "scene.png", size=(800, 500))
    assert Image.open(out).size == (800, 500)
    colours, busy = _image_stats(out)
    assert colours > 1000
    assert busy > 0.15


def test_scene_has_every_layer_and_a_water_surface(tiny_city):
    depth = np.zeros(tiny_city.dem.shape)
    depth[5:10, 30:40] = 0.4
    flood = Raster(depth, tiny_city.dem.transform, tiny_city.dem.crs)
    pl = build_city_scene(tiny_city, flood_depth=flood, vertical_exaggeration=2.0)
    try:
        names = set(pl.actors)
        for name in ("terrain", "buildings", "roads_arterial", "roads_local", "pipes", "manholes", "outfalls",
                     "water", "scale_dark", "north_arrow", "legend"):
            assert name in names, name
        water = pl.actors["water"].mapper.dataset
        assert 4 * 9 <= water.n_cells <= 6 * 11  # the 5 x 10 wet cells, give or take the edge
        assert water.get_data_range("depth_m")[1] == pytest.approx(0.4)
    finally:
        pl.close()


def test_vertical_exaggeration_must_be_positive(tiny_city):
    with pytest.raises(ValueError, match="vertical_exaggeration=0"):
        build_city_scene(tiny_city, vertical_exaggeration=0)


def _assert_self_contained_page(path):
    text = path.read_text(encoding="utf-8")
    assert 300_000 < path.stat().st_size < 30_000_000
    assert not re.search(r"<script[^>]+src=[\"']?(https?:)?//", text, re.IGNORECASE)
    assert not re.search(r"<link[^>]+href=[\"']?(https?:)?//", text, re.IGNORECASE)
    assert "OfflineLocalView" in text and "citytwin-legend" in text
    return text


def test_scene_html_is_self_contained(tiny_city, tmp_path):
    out = write_scene_html(tiny_city, tmp_path / "scene.html")
    text = _assert_self_contained_page(out)
    assert "Sewer pipes" in text
    assert not list(tmp_path.glob(".*"))  # no temporary leftovers


def test_scene_html_exports_from_a_worker_thread(tiny_city, tmp_path):
    # Streamlit runs scripts in worker threads; the export must not need the main thread.
    errors = []

    def work():
        try:
            write_city_html(tiny_city, tmp_path / "city.html")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    th = threading.Thread(target=work)
    th.start()
    th.join(timeout=120)
    assert not errors, errors
    _assert_self_contained_page(tmp_path / "city.html")


def test_city_png_is_not_blank(tiny_city, tmp_path):
    out = write_city_png(tiny_city, tmp_path / "city.png", dpi=80)
    colours, busy = _image_stats(out)
    assert colours > 500
    assert busy > 0.2


def test_city_deck_is_offline_and_in_lon_lat(tiny_city):
    deck = city_deck(tiny_city)
    spec = json.loads(deck.to_json())
    assert spec.get("mapStyle") == "__MAP_STYLE__"  # unset: Streamlit draws no basemap (None fetches CARTO's)
    ids = [layer["id"] for layer in spec["layers"]]
    assert ids == list(MAP_LAYERS)
    roads = next(layer for layer in spec["layers"] if layer["id"] == "roads")
    lon, lat = roads["data"][0]["path"][0]
    assert 116.0 < lon < 118.0 and 30.0 < lat < 31.5  # EPSG:32650, 500 km E / 3,400 km N
    assert spec["initialViewState"]["zoom"] > 12
    assert deck._tooltip["html"] == "<b>{tip_title}</b><br/>{tip_body}"  # the markup is in the template only
    rows = [row for layer in spec["layers"] if layer["id"] != "terrain" for row in layer["data"]]
    assert rows and all(row["tip_title"] and "<" not in row["tip_title"] for row in rows)
    assert spec["layers"][0]["image"].startswith("data:image/png;base64,")


def test_city_deck_layer_choice_and_language(tiny_city):
    deck = city_deck(tiny_city, layers=("buildings",), lang="zh")
    spec = json.loads(deck.to_json())
    assert [layer["id"] for layer in spec["layers"]] == ["buildings"]
    assert "建筑" in spec["layers"][0]["data"][0]["tip_title"]
    with pytest.raises(ValueError, match="unknown"):
        city_deck(tiny_city, layers=("roads", "rivers"))


def test_vectorised_buildings_are_fast():
    # 5,000 footprints must become one mesh quickly (the demo and large cities).
    from conftest import make_tiny_city

    city = make_tiny_city()
    x0, y0 = city.extent[:2]
    rng = np.random.default_rng(3)
    xs, ys = x0 + rng.random(5000) * 200, y0 + rng.random(5000) * 90
    b = city.buildings.iloc[[0] * 5000].copy()
    b.index = [f"B{i}" for i in range(5000)]
    b["geometry"] = shapely.box(xs, ys, xs + 3, ys + 3)
    import time

    start = time.perf_counter()
    mesh = geo.build_buildings(b, city.dem, geo.Frame(x0, y0))
    assert time.perf_counter() - start < 5.0
    assert mesh.n_cells == 5000 * (2 + 4)


def test_scene_legend_follows_the_language(tiny_city, tmp_path):
    out = write_scene_html(tiny_city, tmp_path / "zh.html", lang="zh")
    text = out.read_text(encoding="utf-8")
    # The overlay is JSON-escaped inside a script; decode it before looking for the words.
    overlay = json.loads(re.search(r"var html=(\".*?\");var KEY", text).group(1).replace("<\\/", "</"))
    assert "地下排水管道" in overlay and "检查井" in overlay
    assert "CityTwin 三维场景 - tiny" in overlay


def test_map_tooltips_keep_names_from_data_as_plain_text():
    # Streamlit HTML-escapes the values it fills into the template; escaping here too would show "&lt;".
    from twin.viz.map2d import tooltip_fields

    tip = tooltip_fields("Road <R1>", {"name": "A & B <script>\n{tip_body}", "depth (m)": 0.25})
    assert tip == {"tip_title": "Road <R1>", "tip_body": "name: A & B <script> {\u2060tip_body}\ndepth (m): 0.25"}
