"""Actionable plans (#13 item 6): where each risk point is (lon/lat, street), a map first, and the plan in Chinese.

The real-engine tests run ``twin forecast`` on the small city (3 members, 8 h)
in English and in Chinese and read what a crew would read: plan.json,
risk_points.csv and plan.html.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from pyproj import Transformer

from gisdata.city import load_city
from hydraulics.plan import (
    PLAN_MESSAGES_EN,
    build_plan,
    depot_label,
    english,
    plan_html,
)
from hydraulics.risk import (
    ADDRESS_EN,
    RISK_COLUMNS,
    address_parts,
    locate_points,
    to_lonlat,
)
from twin.i18n import catalogue, t
from twin.viz.plan_map import plan_map_png, spread_markers

FIELD = re.compile(r"\{(\w+)")


@pytest.fixture(scope="module")
def small():
    return load_city("small")


# ----------------------------------------------------------------------------- words


def test_plan_words_are_the_catalogue_in_both_languages():
    en, zh = catalogue("en"), catalogue("zh")
    for key, text in PLAN_MESSAGES_EN.items():
        assert en.get(key) == text, key  # the hydraulics default is the English catalogue, word for word
        assert key in zh and set(FIELD.findall(zh[key])) == set(FIELD.findall(text)), key
    for key in [k for k in PLAN_MESSAGES_EN if k.startswith(("plan.action.", "plan.html.", "plan.department."))]:
        assert re.search(r"[\u4e00-\u9fff]", zh[key]), f"{key} is not translated: {zh[key]!r}"
    assert set(ADDRESS_EN) == {k.removeprefix("plan.address.") for k in PLAN_MESSAGES_EN
                               if k.startswith("plan.address.")}


def test_generated_depot_names_come_from_the_catalogue_and_real_names_stay():
    say_zh = lambda key, **f: t(key, "zh", **f)
    assert depot_label("Drainage Maintenance Depot 2", "drainage", say_zh) == "排水养护站 2"
    assert depot_label("police depot (fallback)", "police", say_zh) == "公安驻点（备用）"
    assert depot_label("Police Station 1", "police", english) == "Police Station 1"
    assert depot_label("Commissariat de Monaco", "police", say_zh) == "Commissariat de Monaco"  # an OSM name


# ----------------------------------------------------------------------------- where


def test_lonlat_goes_back_to_the_same_metres(small):
    x0, y0, x1, y1 = small.extent
    x = np.array([x0, (x0 + x1) / 2, x1])
    y = np.array([y0, (y0 + y1) / 2, y1])
    lon, lat = to_lonlat(x, y, small.crs)
    back = Transformer.from_crs("EPSG:4326", small.crs, always_xy=True).transform(lon, lat)
    assert np.hypot(back[0] - x, back[1] - y).max() < 0.01
    assert (100 < lon).all() and (lon < 130).all() and (20 < lat).all() and (lat < 50).all()  # EPSG:32650: China


def test_addresses_name_the_road_the_nearest_street_or_the_district(small):
    roads = small.roads
    named = roads.index[roads["name"] != ""][0]
    unnamed = roads.index[roads["name"] == ""][0]
    b = small.buildings.index[0]
    d = small.districts.index[0]
    mid = lambda g: g.interpolate(0.5, normalized=True)
    pts = [("road", named, mid(roads.geometry[named])), ("sag", named, mid(roads.geometry[named])),
           ("road", unnamed, mid(roads.geometry[unnamed])),
           ("entrance", b, small.buildings.geometry[b].representative_point()),
           ("district", d, small.districts.geometry[d].representative_point())]
    risk = pd.DataFrame({"kind": [k for k, _, _ in pts], "element_id": [e for _, e, _ in pts],
                         "x": [p.x for _, _, p in pts], "y": [p.y for _, _, p in pts]})
    parts = address_parts(risk, small)
    assert parts[0] == parts[1] == ("street", {"street": roads.loc[named, "name"]})
    assert parts[2][0] in ("unnamed_near", "unnamed_at")
    if parts[2][0] == "unnamed_near":
        assert parts[2][1]["street"] in set(roads["name"]) - {""}
    assert parts[3][0] == "near" and parts[3][1]["street"] in set(roads["name"])
    assert parts[4] == ("district", {"district": small.districts.loc[d, "name"]})
    located = locate_points(risk, small)
    assert located["address"].iloc[4] == small.districts.loc[d, "name"]
    # A city without street names: the place itself, in degrees a phone can find.
    bare = dataclasses.replace(small, roads=roads.assign(name=""))
    kind, fields = address_parts(risk.iloc[[2]], bare)[0]
    lon, lat = to_lonlat(risk["x"].iloc[[2]], risk["y"].iloc[[2]], small.crs)
    assert kind == "unnamed_at" and fields == {"lat": f"{lat[0]:.5f}", "lon": f"{lon[0]:.5f}"}
    assert locate_points(risk.iloc[[2]], bare)["address"].iloc[0].startswith("unnamed road near ")


def test_markers_that_would_overlap_fan_out_and_lone_ones_stay():
    xy = np.array([[0.0, 0.0], [5.0, 0.0], [3.0, 4.0], [40.0, 0.0], [500.0, 500.0]])
    at = spread_markers(xy, 30.0)
    d = np.hypot(at[:, None, 0] - at[None, :, 0], at[:, None, 1] - at[None, :, 1])
    assert d[np.triu_indices(len(at), 1)].min() >= 30.0 - 1e-6
    assert np.allclose(at[4], xy[4])


# ----------------------------------------------------------------------------- real forecasts, CLI


def _forecast(out, *extra):
    from twin.cli import cli

    res = CliRunner().invoke(cli, ["forecast", "--city", "small", "--storm", "chicago", "--return-period", "50",
                                   "--duration", "3h", "--start-in", "2h", "--hours", "8", "--members", "3",
                                   "--workers", "2", "--no-progress", "--out", str(out), *extra])
    assert res.exit_code == 0, res.output
    return res.output


@pytest.fixture(scope="module")
def fc_en(tmp_path_factory):
    out = tmp_path_factory.mktemp("plan") / "fc"
    return out, _forecast(out)


@pytest.fixture(scope="module")
def fc_zh(tmp_path_factory):
    out = tmp_path_factory.mktemp("plan") / "fczh"
    return out, _forecast(out, "--lang", "zh")


@pytest.mark.slow
def test_every_risk_point_has_lonlat_inside_the_city_and_an_address(fc_en, small):
    out, _ = fc_en
    plan = json.loads((out / "plan.json").read_text())
    assert plan["lang"] == "en" and plan["n_risk_points"] > 0
    back = Transformer.from_crs("EPSG:4326", small.crs, always_xy=True)
    x0, y0, x1, y1 = small.extent
    for k, p in enumerate(plan["risk_points"], start=1):
        loc = p["location"]
        assert p["number"] == k
        assert np.isfinite([loc["lon"], loc["lat"], loc["x"], loc["y"]]).all()
        assert x0 <= loc["x"] <= x1 and y0 <= loc["y"] <= y1
        bx, by = back.transform(loc["lon"], loc["lat"])
        assert abs(bx - loc["x"]) < 1.0 and abs(by - loc["y"]) < 1.0  # 6 decimals of a degree: ~0.1 m
        assert isinstance(p["address"], str) and p["address"].strip()
        if p["kind"] in ("road", "sag") and small.roads.loc[p["element_id"], "name"]:
            assert p["address"] == small.roads.loc[p["element_id"], "name"]  # the road's own name
        for a in p["actions"]:
            assert {"lon", "lat"} <= set(a["stage_at"])
    assert {d["depot_id"] for d in plan["depots"]} == set(small.depots.index)
    table = pd.read_csv(out / "risk_points.csv", index_col="point_id")
    assert list(table.columns) == list(RISK_COLUMNS)
    assert table[["lon", "lat"]].notna().all().all() and table["address"].notna().all()
    assert list(RISK_COLUMNS[-3:]) == ["lon", "lat", "address"]  # appended: earlier readers keep their columns


@pytest.mark.slow
def test_html_plan_opens_with_an_inline_map_and_needs_nothing_online(fc_en):
    out, _ = fc_en
    page = (out / "plan.html").read_text(encoding="utf-8")
    first_img = re.search(r"<img src='([^']*)'", page)
    assert first_img and first_img.group(1).startswith("data:image/png;base64,")
    assert page.index("<img") < page.index("<table")  # the map comes before any table
    assert not re.search(r"https?://", page)
    png = base64.b64decode(first_img.group(1).split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png == (out / "plan_map.png").read_bytes()
    assert not re.search(rb"https?://", png)  # not even in the PNG's own text chunks
    plan = json.loads((out / "plan.json").read_text())
    for p in plan["risk_points"]:  # numbered rows, which the map's numbers refer to
        assert f"<tr id='p{p['number']}'><td class='p'><b>{p['number']}</b></td>" in page


@pytest.mark.slow
def test_lang_zh_writes_the_plan_in_chinese(fc_en, fc_zh):
    out_en, line_en = fc_en
    out_zh, line_zh = fc_zh
    en = json.loads((out_en / "plan.json").read_text())
    zh = json.loads((out_zh / "plan.json").read_text())
    assert zh["lang"] == "zh" and zh["n_risk_points"] == en["n_risk_points"] > 0
    actions = [a for p in zh["risk_points"] for a in p["actions"]]
    english_actions = {english(key, **f) for key, f in ((a["action_key"], a["action_fields"]) for a in actions)}
    page = (out_zh / "plan.html").read_text(encoding="utf-8")
    text = json.dumps(zh, ensure_ascii=False)
    for sentence in english_actions:
        assert sentence not in text and sentence not in page, sentence
    said = {a["action"] for a in actions}
    assert "清掏上游雨水口和雨水篦子" in said  # every point gets its inlets cleared
    assert all(re.search(r"[\u4e00-\u9fff]", s) for s in said)
    assert {a["department_name"] for a in actions} <= {"城市管理", "排水", "公安", "应急"}
    assert "排水养护站 1" in {a.get("depot_name") for a in actions}
    assert zh["summary"].startswith("未来 8 小时内有") and zh["summary"] in line_zh
    assert "risk points in the next" in line_en and "risk points in the next" not in line_zh
    assert "内涝应急响应预案" in page and "<html lang='zh'>" in page
    assert "Waterlogging response plan" not in page and "Roads to close" not in page
    meta = json.loads((out_zh / "forecast.json").read_text())
    assert meta["lang"] == "zh" and meta["summary"] == zh["summary"]


@pytest.mark.slow
def test_plan_map_draws_in_chinese_with_its_glyphs(fc_zh, small, recwarn):
    out, _ = fc_zh
    plan = json.loads((out / "plan.json").read_text())
    png = plan_map_png(plan, small)
    assert png[:4] == b"\x89PNG"
    from twin.viz.fonts import cjk_font_path

    if cjk_font_path():
        assert not [w for w in recwarn if "missing from font" in str(w.message)]


def test_plan_without_translate_is_english_and_keeps_its_keys(tiny_city):
    risk = pd.DataFrame({
        "kind": ["road"], "element_id": ["C5"], "probability": [0.9], "expected_max_depth_m": [0.4],
        "p90_max_depth_m": [0.5], "onset": pd.to_datetime(["2024-07-03 01:00"]), "lead_h": [49.0]},
        index=["road:C5"])
    risk.attrs.update(issue_time="2024-07-01T00:00", horizon_h=72, threshold_m=0.15, n_members=10)
    plan = build_plan(risk, tiny_city)
    zh = build_plan(risk, tiny_city, lang="zh", translate=t)
    a_en, a_zh = plan["risk_points"][0]["actions"], zh["risk_points"][0]["actions"]
    assert [a["action_key"] for a in a_en] == [a["action_key"] for a in a_zh]
    assert a_en[0]["action"] == "clear street inlets and gully pots upstream"
    assert a_zh[0]["action"] == t("plan.action.clear_inlets", "zh")
    police = next(a for a in a_zh if a["department"] == "police")
    assert police["action"] == "封闭 1 个路段并疏导交通" and police["action_fields"] == {"n": 1}
    assert plan["summary"].startswith("1 risk points in the next 72 h")
    assert "x" in plan["risk_points"][0]["location"] and "lon" in plan["risk_points"][0]["location"]
    page = plan_html(zh, translate=t)
    assert "风险点（1）" in page and "clear street inlets" not in page
