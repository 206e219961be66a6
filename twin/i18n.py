"""One message catalogue in English and Simplified Chinese: :func:`t`.

The catalogues are ``twin/i18n/en.json`` and ``twin/i18n/zh.json`` (flat
key -> message maps with ``str.format`` fields).  Both hold the same keys; a
test checks it.  A key missing from a language falls back to English, and a
key missing from English is returned as is, so a typo shows up on screen
instead of crashing a page.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

LANGUAGES: dict[str, str] = {"en": "English", "zh": "简体中文"}
"""Language code -> the language's own name (for the switch)."""

DEFAULT_LANG = "en"


@functools.cache
def catalogue(lang: str) -> dict[str, str]:
    """The messages of ``lang`` as a dict (read once from the package data).

    Raises
    ------
    ValueError
        If ``lang`` is not one of :data:`LANGUAGES`.
    """
    if lang not in LANGUAGES:
        raise ValueError(f"lang={lang!r} unknown; expected one of {list(LANGUAGES)}")
    text = (resources.files("twin") / "i18n" / f"{lang}.json").read_text(encoding="utf-8")
    return json.loads(text)


def t(key: str, lang: str = DEFAULT_LANG, **fmt) -> str:
    """Translate ``key`` into ``lang`` and fill its ``{fields}`` from ``fmt``.

    Parameters
    ----------
    key : str
        Message key, e.g. ``"page.city.title"``.
    lang : str
        ``"en"`` or ``"zh"``.
    **fmt
        Values of the message's ``{fields}``.

    Examples
    --------
    >>> t("layers.buildings", "zh")
    '建筑'
    >>> t("legend.buildings", "en", n=3)
    'Buildings (3)'
    """
    messages = catalogue(lang)
    text = messages.get(key)
    if text is None:
        text = catalogue(DEFAULT_LANG).get(key, key)
    return text.format(**fmt) if fmt else text
