"""A play/pause player for a list of pictures: one self-contained HTML page, no network.

:func:`player_html` inlines the frames (PNG or JPEG bytes, as ``data:`` URIs) and
plays them client-side: a play/pause button, a slider over the frame times, step
buttons and a speed choice.  Embed it with ``st.iframe(html, height=...)`` (or
``st.components.v1.html``); the page re-runs nothing while it plays.

Examples
--------
>>> html = player_html([png0, png1], ["00:00", "00:10"], lang="en")   # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html as _html
import json
from collections.abc import Sequence

from twin.i18n import t

MAX_PLAYER_BYTES = 64 * 1024 ** 2
"""Most picture bytes one player page may inline."""


def _mime(data: bytes) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    raise ValueError("a frame is neither PNG nor JPEG")


def player_html(images: Sequence[bytes], labels: Sequence[str], *, lang: str = "en", fps: float = 2.0,
                loop: bool = True, autoplay: bool = False) -> str:
    """One offline HTML page that plays ``images`` with a play/pause button, a slider and a speed choice.

    Parameters
    ----------
    images : sequence of bytes
        PNG or JPEG pictures, one per frame (same size).
    labels : sequence of str
        The time of each frame, shown beside the slider (escaped).
    lang : str
        Language of the buttons.
    fps : float
        Frames per second at start (> 0; the viewer can change it).
    loop : bool
        Start again after the last frame.
    autoplay : bool
        Start playing when the page opens.

    Returns
    -------
    str
        The page; element ids ``citytwin-play`` (button), ``citytwin-slider``, ``citytwin-frame`` (img),
        ``citytwin-time``.

    Raises
    ------
    ValueError
        No frames, labels not one per frame, a frame that is not a picture, ``fps`` not > 0, or more than
        :data:`MAX_PLAYER_BYTES` of pictures.
    """
    images = list(images)
    labels = [str(x) for x in labels]
    if not images:
        raise ValueError("no frames to play")
    if len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} frames")
    if not (fps == fps and 0 < float(fps) <= 60):
        raise ValueError(f"fps={fps} must be in (0, 60]")
    total = sum(len(b) for b in images)
    if total > MAX_PLAYER_BYTES:
        raise ValueError(f"frames take {total / 1024 ** 2:.0f} MiB; at most {MAX_PLAYER_BYTES / 1024 ** 2:.0f} MiB "
                         "(fewer or smaller frames)")
    urls = [f"data:{_mime(b)};base64," + base64.b64encode(b).decode("ascii") for b in images]
    esc = _html.escape
    play, pause = t("map.play", lang), t("map.pause", lang)
    speeds = sorted({0.5, 1.0, 2.0, 4.0, 8.0, float(fps)})
    options = "".join(f'<option value="{v:g}"{" selected" if v == float(fps) else ""}>{v:g}</option>' for v in speeds)
    data = json.dumps({"urls": urls, "labels": labels, "play": play, "pause": pause, "loop": bool(loop),
                       "autoplay": bool(autoplay)}).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="{esc(lang)}"><head><meta charset="utf-8"><title>CityTwin</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<style>
body{{margin:0;font:13px system-ui,sans-serif;color:#212529;background:#fff}}
.bar{{display:flex;align-items:center;gap:8px;padding:6px 4px;flex-wrap:wrap}}
button{{font:inherit;padding:3px 10px;border:1px solid #adb5bd;border-radius:4px;background:#f8f9fa;cursor:pointer}}
button:hover{{background:#e9ecef}} #citytwin-slider{{flex:1;min-width:120px}}
#citytwin-time{{font-variant-numeric:tabular-nums;min-width:3.5em;font-weight:600}}
img{{max-width:100%;height:auto;display:block}}
</style></head><body>
<div class="bar">
<button id="citytwin-play" type="button">{esc(play)}</button>
<button id="citytwin-prev" type="button" title="{esc(t('map.animation.step', lang))}">&#9664;</button>
<button id="citytwin-next" type="button" title="{esc(t('map.animation.step', lang))}">&#9654;</button>
<input id="citytwin-slider" type="range" min="0" max="{len(images) - 1}" step="1" value="0">
<span id="citytwin-time"></span>
<label>{esc(t('map.animation.speed', lang))} <select id="citytwin-fps">{options}</select></label>
</div>
<img id="citytwin-frame" alt="">
<script>(function(){{
var D={data};
var img=document.getElementById("citytwin-frame"),sl=document.getElementById("citytwin-slider"),
    tm=document.getElementById("citytwin-time"),btn=document.getElementById("citytwin-play"),
    sp=document.getElementById("citytwin-fps"),k=0,timer=null;
function show(i){{k=(i+D.urls.length)%D.urls.length;img.src=D.urls[k];sl.value=k;tm.textContent=D.labels[k];}}
function stop(){{if(timer){{clearInterval(timer);timer=null;}}btn.textContent=D.play;btn.dataset.playing="0";}}
function tick(){{if(k>=D.urls.length-1&&!D.loop){{stop();return;}}show(k+1);}}
function start(){{stop();if(k>=D.urls.length-1&&!D.loop){{show(0);}}
  timer=setInterval(tick,1000/parseFloat(sp.value||"2"));btn.textContent=D.pause;btn.dataset.playing="1";}}
btn.addEventListener("click",function(){{timer?stop():start();}});
document.getElementById("citytwin-prev").addEventListener("click",function(){{stop();show(k-1);}});
document.getElementById("citytwin-next").addEventListener("click",function(){{stop();show(k+1);}});
sl.addEventListener("input",function(){{stop();show(parseInt(sl.value,10));}});
sp.addEventListener("change",function(){{if(timer){{start();}}}});
show(0);if(D.autoplay){{start();}}
}})();</script>
</body></html>"""
