"""The message catalogue: both languages hold the same keys and the same format fields."""

from __future__ import annotations

import string

import pytest

from twin.i18n import LANGUAGES, catalogue, t


def _fields(message: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(message) if name}


def test_catalogues_have_the_same_keys():
    en, zh = catalogue("en"), catalogue("zh")
    assert set(en) == set(zh), {"only_en": sorted(set(en) - set(zh)), "only_zh": sorted(set(zh) - set(en))}
    assert len(en) > 50


@pytest.mark.parametrize("lang", list(LANGUAGES))
def test_messages_are_non_empty_and_fields_match_english(lang):
    en = catalogue("en")
    for key, message in catalogue(lang).items():
        assert message.strip(), key
        assert _fields(message) == _fields(en[key]), key


def test_translate_formats_and_falls_back():
    assert t("legend.buildings", "en", n=3) == "Buildings (3)"
    assert t("layers.buildings", "zh") == "建筑"
    assert t("no.such.key", "zh") == "no.such.key"
    with pytest.raises(ValueError, match="lang='fr'"):
        t("layers.buildings", "fr")


def test_chinese_differs_from_english_for_page_labels():
    for key in ("app.title", "page.city", "tab.map", "tab.scene", "stats.layer_counts"):
        assert t(key, "zh") != t(key, "en"), key


# ----------------------------------------------------------------------------- error keys (#13 item 7)

_SOURCES = ("gisdata", "hydraulics", "agents", "scenarios", "twin")


def test_every_error_key_in_the_code_is_in_both_catalogues():
    """Every ``key="err...."`` an error is raised with names a message of both languages."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    keys = set()
    for package in _SOURCES:
        for path in (root / package).rglob("*.py"):
            keys.update(re.findall(r'key="(err\.[a-z0-9_.]+)"', path.read_text(encoding="utf-8")))
            keys.update(re.findall(r'"(err\.[a-z0-9_.]+)" if', path.read_text(encoding="utf-8")))
    assert len(keys) >= 20, sorted(keys)
    en, zh = catalogue("en"), catalogue("zh")
    assert not [k for k in keys if k not in en or k not in zh], sorted(keys)


def test_error_text_shows_the_key_in_the_language_else_the_english_message(tmp_path):
    import pickle

    from gisdata.errors import TwinError
    from hydraulics.rain_readers import RainFileError, read_rain_csv
    from twin.app_support import error_text

    bad = tmp_path / "obs.csv"
    bad.write_text("time,RG1\n2024-07-01 00:00,0\n2024-07-01 00:05,x\n", encoding="utf-8")
    with pytest.raises(RainFileError) as info:
        read_rain_csv(bad, units="mm_h")
    err = info.value
    assert err.message_key == ("err.rain.not_a_number", {"where": "obs.csv:3", "column": "RG1", "value": "'x'"})
    assert error_text(err, "en") == str(err)  # English: the error's own words, as the CLI prints them
    assert t("err.rain.not_a_number", "en", **err.params) == "obs.csv:3: column 'RG1': 'x' is not a number"
    assert error_text(err, "zh") == "obs.csv:3：列“RG1”中的 'x' 不是数字"
    again = pickle.loads(pickle.dumps(err))  # a job process hands it back with its key
    assert again.message_key == err.message_key and str(again) == str(err)
    plain = TwinError("something else went wrong")
    assert plain.message_key is None and error_text(plain, "zh") == "something else went wrong"
    broken = TwinError("x", key="err.rain.not_a_number")  # fields missing: the English words, no crash
    assert error_text(broken, "zh") == "x"


def test_storm_captions_in_chinese_name_no_english():
    from twin.flood_event import localize_storm_text, storm_caption

    chicago = {"kind": "chicago", "idf": "shanghai", "return_period_yr": 50.0, "duration_min": 120.0, "r": 0.4}
    assert storm_caption(chicago, "zh") == "芝加哥雨型（上海公式）50 年一遇，历时 120 分钟，r=0.4"
    assert storm_caption({"kind": "nrcs", "depth_mm": 150.0, "nrcs_type": "II"}, "zh") == "NRCS II 型 24 小时暴雨 150 mm"
    assert storm_caption({"kind": "csv", "file": "obs.csv"}, "zh") == "降雨记录 obs.csv"
    assert storm_caption({"return_period_yr": 50}, "zh") == "50 年一遇"  # a coupled run's manifest: what it has
    assert storm_caption(None, "zh") == ""
    assert localize_storm_text("block 40 mm/h 60 min", "zh") == "恒定雨强 40 mm/h 60 分钟"
