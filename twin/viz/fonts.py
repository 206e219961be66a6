"""Finding a font with Chinese glyphs, for pictures drawn in Simplified Chinese.

Browsers find one themselves; matplotlib and VTK need a file.  Debian:
``apt-get install fonts-wqy-microhei`` (5 MB) or ``fonts-noto-cjk``.
"""

from __future__ import annotations

import functools
import glob
import os

_CJK_PATTERNS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/*.tt[cf]",
    "/usr/share/fonts/opentype/noto/NotoSansCJK*.tt[cf]",
    "/usr/share/fonts/**/NotoSansCJK*.tt[cf]",
    "/usr/share/fonts/**/SourceHanSans*.[ot]t[cf]",
    "/usr/share/fonts/**/DroidSansFallback*.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
    "C:/Windows/Fonts/msyh.tt[cf]",
)


@functools.lru_cache(maxsize=1)
def cjk_font_path() -> str | None:
    """Path of a font file with CJK glyphs, or None if the system has none.

    ``$CITYTWIN_CJK_FONT`` overrides the search.
    """
    override = os.environ.get("CITYTWIN_CJK_FONT")
    if override and os.path.exists(override):
        return override
    for pattern in _CJK_PATTERNS:
        hits = sorted(glob.glob(pattern, recursive=True))
        if hits:
            return hits[0]
    return None
