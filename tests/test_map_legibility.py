"""Issue #13 item 4: maps that read at a glance.

* one palette: roads, closures, crews of each department, incidents, manholes and depots
  in colours that read apart (CIE L*a*b* distance), used by every map and scene;
* no online basemap: every deck the workbench builds, serialised, holds no http(s) URL
  (only ``data:`` pictures) and leaves the map style unset, so Streamlit fetches nothing;
* a legend for every 2D map, in English and Chinese, naming only what the map draws;
* tooltips: one template, values as plain fields (Streamlit escapes them; see
  ``tests/test_hardening_workbench.py`` for the real browser);
* manholes are small and scale with the zoom;
* export: GeoJSON of every layer (EPSG:4326, properties) and a PNG of the map;
* the replay player (play/pause over pictures) and the 3D page's foldable legend and kept camera.
"""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pandas as pd
import pytest
from conftest import make_tiny_city

from twin.viz import palette as pal

URL = re.compile(r"https?://", re.IGNORECASE)


@pytest.fixture(scope="module")
def tiny():
    return make_tiny_city()


@pytest.fixture(scope="module")
def event(tiny):
    """A real flood event on the tiny city (coupled SWMM + 2D streets)."""
    from twin import flood_event as fe

    return fe.run_flood_event(tiny, fe.StormSpec("chicago", return_period_yr=50, duration_min=60).build(),
                              drain_time_h=1.0)


@pytest.fixture(scope="module")
def state(tiny):
    """A hand-made replay state: two closures, incidents in every status, crews of every department."""
    from twin.replay import ReplayState

    x0, y0, x1, y1 = tiny.extent
    roads = list(tiny.roads.index[:2].astype(str))
    depts = list(pal.DEPARTMENT)
    crews = pd.DataFrame({"department": depts, "status": ["idle", "travel", "service", "idle"],
                          "x": np.linspace(x0 + 20, x1 - 20, 4), "y": [y0 + 30] * 4, "position_time_s": 0.0},
                         index=pd.Index([f"C{i}" for i in range(4)], name="crew_id"))
    inc = pd.DataFrame({"category": ["waterlogging", "litter", "pothole", "waterlogging"], "source": "sim",
                        "x": np.linspace(x0 + 30, x1 - 30, 4), "y": [y0 + 60] * 4, "onset_s": 0.0, "depth_m": 0.2,
                        "level": 1, "reports": [0, 1, 2, 1]},
                       index=pd.Index(["I0", "I1", "I2", "<b>I3</b>"], name="incident_id"))
    flood = pd.DataFrame({"node_id": [tiny.nodes.index[0]], "x": [tiny.nodes.geometry.x.iloc[0]],
                          "y": [tiny.nodes.geometry.y.iloc[0]], "depth_m": [1.0], "surface_depth_m": [0.2],
                          "surface_volume_m3": [12.0], "flooding_cms": [0.1]})
    closed = pd.DataFrame({"status": ["closed_to_cars", "closed"]}, index=pd.Index(roads, name="road_id"))
    return ReplayState(time_s=3600.0, crews=crews,
                       vendors=pd.DataFrame({"vendor_id": ["V1"], "x": [x0 + 50], "y": [y1 - 20]}),
                       incidents=inc, flood_nodes=flood, roads_closed=closed, kpis={})


STATUS = pd.Series(list(pal.INCIDENT), index=["I0", "I1", "I2", "<b>I3</b>"])


def _decks(tiny, event, state):
    from twin.viz.flood_layers import flood_deck, with_depth_frame
    from twin.viz.map2d import city_deck
    from twin.viz.replay_map import replay_deck
    from twin.viz.risk_map import risk_deck

    risk = pd.DataFrame({"kind": ["road"], "element_id": [tiny.roads.index[0]], "probability": [0.6],
                         "expected_max_depth_m": [0.2], "p90_max_depth_m": [0.3], "onset": [pd.NaT],
                         "onset_earliest": [pd.NaT], "lead_h": [np.nan]})
    decks = {"city": city_deck(tiny), "flood": flood_deck(tiny, event),
             "replay": replay_deck(state, tiny, status=STATUS, terrain=True)}
    if getattr(event, "depths", None) is not None:
        decks["flood_frame"] = with_depth_frame(decks["flood"], event.depths, len(event.depths.times_s) - 1)
    decks["risk"] = risk_deck(tiny, risk)
    return decks


# ----------------------------------------------------------------------------- palette


def test_colours_of_different_things_read_apart():
    groups = {
        "road": {f"road.{k}": v for k, v in pal.ROAD_CLASS.items()},
        "closure": {f"closure.{k}": v for k, v in pal.CLOSURE.items()},
        "crew": {f"crew.{k}": v for k, v in pal.DEPARTMENT.items()},
        "incident": {f"incident.{k}": v for k, v in pal.INCIDENT.items()},
        "point": {"outfall": pal.OUTFALL, "vendor": pal.VENDOR},
    }
    flat = {k: (g, v) for g, d in groups.items() for k, v in d.items()}
    too_close = []
    for (a, (ga, ca)), (b, (gb, cb)) in itertools.combinations(flat.items(), 2):
        if ga == gb == "road":
            continue  # one family of greys, told apart by width too
        if pal.colour_distance(ca, cb) < 20:
            too_close.append((a, b, round(pal.colour_distance(ca, cb), 1)))
    assert not too_close, too_close
    # no orange (the old arterial / closure / crew / incident colour) outside closures and outfalls
    assert len({c.lower() for _, c in flat.values()}) == len(flat)


def test_every_map_and_scene_uses_the_palette():
    from twin.viz import animation, flood_layers, map2d, scene

    assert map2d.ROAD_RGB["arterial"] == pal.rgb(pal.ROAD_CLASS["arterial"])
    assert flood_layers.STATUS_RGB["closed_to_cars"] == pal.rgb(pal.CLOSURE["closed_to_cars"])
    assert animation.DEPARTMENT_COLORS == pal.DEPARTMENT and animation.INCIDENT_COLORS == pal.INCIDENT
    assert animation.ROAD_CLOSED_COLORS == pal.CLOSURE
    assert scene.ROAD_STYLE["arterial"][0] == pal.ROAD_CLASS["arterial"]


def test_no_colour_literals_left_in_the_map_code():
    """Colours of map things come from the palette: no deck.gl [r, g, b] lists in the viz modules."""
    from pathlib import Path

    import twin.viz as viz

    found = []
    for path in Path(viz.__file__).parent.glob("*.py"):
        if path.name == "palette.py":
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            colourish = re.search(r"colou?r|rgb", line, re.IGNORECASE)
            if colourish and re.search(r"\[\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*(,\s*\d{1,3}\s*)?\]", line):
                found.append(f"{path.name}:{i}: {line.strip()}")
    assert not found, found


# ----------------------------------------------------------------------------- no basemap, legend, tooltips


def test_no_deck_requests_anything_from_the_internet(tiny, event, state):
    for name, deck in _decks(tiny, event, state).items():
        text = deck.to_json()
        spec = json.loads(text)
        assert spec.get("mapStyle") == "__MAP_STYLE__", name  # Streamlit: no basemap (None would fetch CARTO)
        assert "mapProvider" not in spec or spec["mapProvider"] in (None, ""), name
        assert not URL.search(text), (name, URL.search(text).group(0))
        for layer in spec["layers"]:
            if "image" in layer:
                assert str(layer["image"]).startswith("data:image/png;base64,"), (name, layer["id"])


def test_every_map_has_a_legend_in_both_languages(tiny, event, state):
    from twin.viz.legend import deck_legend_entries, deck_legend_html

    for name, deck in _decks(tiny, event, state).items():
        en, zh = deck_legend_html(deck, "en"), deck_legend_html(deck, "zh")
        assert "Legend" in en and "图例" in zh, name
        assert len(deck_legend_entries(deck, "en")) >= 3, name
    decks = _decks(tiny, event, state)
    labels = [e.label for e in deck_legend_entries(decks["replay"], "en")]
    for dept in ("city management", "drainage", "police", "emergency"):
        assert any(dept in x for x in labels), labels
    assert any("Roads closed to cars (1)" == x for x in labels), labels
    assert any("Incidents with a crew on site (1)" == x for x in labels), labels
    flood = [e.label for e in deck_legend_entries(decks["flood"], "zh")]
    assert any("禁止机动车" in x for x in flood) and any("0.15–0.30 m" in x for x in flood), flood
    city = deck_legend_entries(decks["city"], "en")
    colours = {e.colour for e in city}
    assert pal.ROAD_CLASS["arterial"] in colours and pal.CLOSURE["closed_to_cars"] not in colours


def test_tooltips_one_template_and_plain_values(tiny, event, state):
    from twin.viz.map2d import TOOLTIP_HTML

    for name, deck in _decks(tiny, event, state).items():
        assert deck._tooltip["html"] == TOOLTIP_HTML, name
        spec = json.loads(deck.to_json())
        rows = [r for layer in spec["layers"] if layer.get("pickable") for r in layer["data"]]
        assert rows, name
        assert all(set(r) >= {"tip_title", "tip_body"} for r in rows), name
    spec = json.loads(_decks(tiny, event, state)["replay"].to_json())
    titles = [r["tip_title"] for layer in spec["layers"] if layer["id"] == "incidents" for r in layer["data"]]
    assert "Incident <b>I3</b>" in titles  # as written: Streamlit escapes values into the template


def test_manholes_are_small_and_scale_with_zoom(tiny):
    from twin.viz.map2d import MANHOLE_PX, city_deck

    spec = json.loads(city_deck(tiny, ("manholes",)).to_json())
    layer = spec["layers"][0]
    assert layer.get("radiusUnits", "meters") == "meters"
    assert layer["radiusMaxPixels"] <= 6 and layer["radiusMinPixels"] == MANHOLE_PX[0]
    radii = {r["radius_m"] for r in layer["data"]}
    assert min(radii) <= 1.5  # a manhole is a dot of about its own size, not a disc over the street


# ----------------------------------------------------------------------------- export


def test_geojson_of_every_layer(tiny, event, state):
    from twin.viz.export import deck_layers_geojson

    decks = _decks(tiny, event, state)
    fc = json.loads(deck_layers_geojson(decks["city"]))
    assert fc["type"] == "FeatureCollection"
    layers = {f["properties"]["layer"] for f in fc["features"]}
    assert {"roads", "buildings", "pipes", "manholes", "depots"} <= layers
    lon, lat = fc["features"][1]["geometry"]["coordinates"][0]
    assert 116 < lon < 118 and 30 < lat < 31.5
    road = next(f for f in fc["features"] if f["properties"]["layer"] == "roads")
    assert road["geometry"]["type"] == "LineString" and road["properties"]["ID"] in set(tiny.roads.index)
    assert road["properties"]["colour"].startswith("#")
    rp = json.loads(deck_layers_geojson(decks["replay"]))
    crews = [f for f in rp["features"] if f["properties"]["layer"] == "crews"]
    assert len(crews) == 4 and crews[0]["geometry"]["type"] == "Point"
    assert {f["properties"]["title"] for f in rp["features"] if f["properties"]["layer"] == "incidents"} >= {
        "Incident <b>I3</b>"}
    if "flood_frame" in decks:
        fl = json.loads(deck_layers_geojson(decks["flood"]))
        depth = [f for f in fl["features"] if f["properties"]["layer"] == "flood_depth"]
        for f in depth:
            assert f["geometry"]["type"] in ("Polygon", "MultiPolygon")
            assert f["properties"]["depth_class"] in ("wet", "closed_to_cars", "closed", "deep")


def test_geojson_depth_classes_from_a_known_grid(tiny):
    from gisdata.raster import Raster
    from twin.viz.export import deck_layers_geojson
    from twin.viz.flood_layers import depth_layer

    d = np.zeros(tiny.dem.shape)
    d[2:5, 3:8] = 0.2  # 15 cells closed to cars
    d[10, 10] = 0.7
    layer = depth_layer(Raster(d, tiny.dem.transform, tiny.crs))
    fc = json.loads(deck_layers_geojson([layer]))
    by = {f["properties"]["depth_class"]: f for f in fc["features"]}
    assert set(by) == {"closed_to_cars", "deep"}
    import shapely
    from pyproj import Geod

    area = abs(Geod(ellps="WGS84").geometry_area_perimeter(shapely.geometry.shape(by["closed_to_cars"]["geometry"]))[0])
    cell = abs(tiny.dem.transform.a * tiny.dem.transform.e)
    assert area == pytest.approx(15 * cell, rel=0.05)


def test_png_of_a_map_with_its_legend(tiny, event, state, tmp_path):
    from PIL import Image

    from twin.viz.export import deck_png_bytes, write_deck_png

    decks = _decks(tiny, event, state)
    data = deck_png_bytes(decks["replay"], lang="zh", title="回放", size_px=(900, 600))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out = write_deck_png(decks["flood"], tmp_path / "flood.png", lang="en", title="Flood", size_px=(900, 600))
    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert img.shape == (600, 900, 3)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 200
    # the closed-road colours are drawn (legend swatches at least)
    for hex_colour in pal.CLOSURE.values():
        assert (np.abs(img - pal.rgb(hex_colour)).sum(axis=-1) < 30).sum() > 20, hex_colour


# ----------------------------------------------------------------------------- player, 3D page


def test_player_page_plays_offline():
    from io import BytesIO

    from PIL import Image

    from twin.viz.player import player_html

    frames = []
    for v in (0, 128, 255):
        buf = BytesIO()
        Image.new("RGB", (8, 6), (v, 0, 0)).save(buf, format="PNG")
        frames.append(buf.getvalue())
    page = player_html(frames, ["00:00", "00:10", "<b>00:20</b>"], lang="zh", fps=2)
    assert page.count("data:image/png;base64,") == 3 and not URL.search(page)
    assert "播放" in page and 'id="citytwin-play"' in page and 'max="2"' in page
    assert "<b>00:20</b>" not in page.replace("\\u003c", "<").split("<script>")[0]
    with pytest.raises(ValueError, match="labels"):
        player_html(frames, ["a"])
    with pytest.raises(ValueError, match="no frames"):
        player_html([], [])
    with pytest.raises(ValueError, match="PNG nor JPEG"):
        player_html([b"GIF89a"], ["a"])


def test_scene_page_has_a_foldable_legend_and_keeps_its_camera(tiny, tmp_path):
    from twin.viz.scene import build_city_scene, scene_camera_key, write_scene_html

    pl = build_city_scene(tiny)
    assert "legend" in pl.actors  # the picture keeps VTK's legend ...
    out = write_scene_html(pl, tmp_path / "s.html")
    text = out.read_text(encoding="utf-8")
    overlay = json.loads(re.search(r"var html=(\".*?\");var KEY", text).group(1).replace("<\\/", "</"))
    assert overlay.startswith('<details id="citytwin-legend"') and "<summary" in overlay  # ... the page folds it
    key = json.loads(re.search(r";var KEY=(\".*?\");", text).group(1))
    assert key == scene_camera_key(tiny) and "sessionStorage" in text and "citytwin-camera:" in text
    assert "pointer-events:none" not in overlay
