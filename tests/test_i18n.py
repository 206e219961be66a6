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
