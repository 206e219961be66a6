"""Complete Chinese (#13 item 7): every page of the workbench, walked in zh, shows no English.

One AppTest session on the tiny city, in zh from its first rerun, walks the pages:

- City: the map tab's layers, the statistics tables (summary, layer counts, the
  columns of every layer with their categorical values), the 3D tab;
- Flood event: a 100-year storm run on the tiny city (summary metrics, map legend,
  node choice, hydrograph chart, tables), then the block and NRCS storms and a bad
  rain file (the error message);
- Flood forecast: a 3-member forecast of 6 h (metrics, summary line, risk table,
  plan, charts);
- Dispatch lab: a 3 h comparison of two strategies (table, chart, notes);
- Replay: every run the walk stored (flood event, forecast, comparison) and a
  stored coupled run with its time slider;
- Batch: a stored sweep of 2 runs, its filter chips and chart.

On each stop every visible text is collected (:func:`visible_texts`: titles,
markdown, captions, alerts, widget labels and options, metric labels and values,
table headers and text cells, expander and tab labels, Vega-Lite titles, axis
and legend titles, slider formats, map tooltips, the text of 3D scenes and players) and checked by :func:`english_words`: any
ASCII word that is not an identifier, a unit, a number, a proper name or one of
the allowed product names fails the test, naming where it was seen.
Streamlit's own labels (its menus, the file uploader's "Browse files") are not
part of the app's element tree and so are out of scope, as the issue says.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

APP = str(Path(__file__).resolve().parents[1] / "app.py")

# Words allowed in a zh page: product and engine names, units, file formats, and proper names of the tiny city.
ALLOWED_WORDS = {
    # product, engines and formats
    "citytwin", "swmm", "epa", "mesa", "simpy", "osm", "openstreetmap", "geopackage", "gpkg", "geotiff", "tif", "tiff",
    "csv", "txt", "dat", "json", "html", "png", "geojson", "pbf", "bz", "parquet", "ncdc", "nws", "idf", "nrcs",
    "qpf", "crs", "epsg", "utc", "dem", "id", "ids", "url", "twin", "dask", "scs", "ii", "iii", "ia",
    "pdf", "svg", "kpi", "kpis", "p50", "p90", "ci", "n",
    # units
    "m", "mm", "cm", "km", "h", "s", "min", "ha", "yr", "cms", "kmh", "in", "ft", "mb", "kb", "gb", "x",
    # the language switch names each language in its own words; a key on the keyboard
    "english", "shift",
    # column names a rain CSV must hold (the upload's label names them as they are typed)
    "time", "timestamp", "datetime", "hours", "elapsed",
}
IDENTIFIER_HEADERS = {"stats.column"}
"""Table columns (catalogue keys of their headers) that hold identifiers: a layer's column names."""
WORD = re.compile(r"[A-Za-z][A-Za-z']*")


def _is_identifier(token: str) -> bool:
    """An id, a column name or a file name: it holds a digit, an underscore, a dot, a slash or a colon."""
    return bool(re.search(r"[\d_./:\\=]", token))


def english_words(text: str) -> list[str]:
    """The English words in ``text`` that a zh page should not show.

    Identifiers (``J5``, ``depth_m``, ``storm1.csv``, ``EPSG:32650``), numbers, units and
    :data:`ALLOWED_WORDS` are not counted.

    Examples
    --------
    >>> english_words("最大水深 0.42 m（J5）")
    []
    >>> english_words("<b>芝加哥雨型</b>&nbsp;100 年一遇")
    []
    >>> english_words("Chicago beijing P=100 yr, 60 min")
    ['Chicago', 'beijing']
    >>> english_words("与 `twin replay` 输出相同")
    []
    >>> english_words("Flood volume 12 m³")
    ['Flood', 'volume']
    """
    found = []
    text = re.sub(r"<[^>]*>", " ", str(text))  # an HTML legend: its text, not its markup
    text = re.sub(r"&[a-z]+;|&#\d+;", " ", text)
    text = re.sub(r"`[^`]*`", " ", text)  # code: a command or a file as typed (`twin replay`)
    for token in text.split():
        if _is_identifier(token.strip("()（），,。:;；[]{}<>\"'`*")):
            continue
        for word in WORD.findall(token):
            if word.lower().strip("'") in ALLOWED_WORDS or len(word) == 1:
                continue
            found.append(word)
    return found


# ----------------------------------------------------------------------------- what a page shows


def _frame_texts(df: pd.DataFrame) -> Iterator[str]:
    for col in df.columns:
        yield str(col)
    for col in df.columns:
        series = df[col]
        if series.dtype == object or isinstance(series.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(
                series.dtype):
            yield from series.dropna().astype(str).unique()[:200]


def _vega_texts(spec: dict) -> Iterator[str]:
    """Titles of a Vega-Lite spec: its own, its encodings' (axes and legends) and of its layers."""
    if not isinstance(spec, dict):
        return
    title = spec.get("title")
    if isinstance(title, dict):
        title = title.get("text")
    if isinstance(title, str | list):
        yield from ([title] if isinstance(title, str) else [str(x) for x in title])
    for channel in (spec.get("encoding") or {}).values():
        for ch in channel if isinstance(channel, list) else [channel]:
            if not isinstance(ch, dict):
                continue
            for where in (ch, ch.get("axis") or {}, ch.get("legend") or {}):
                if isinstance(where, dict) and isinstance(where.get("title"), str):
                    yield where["title"]
    for part in ("layer", "hconcat", "vconcat", "concat"):
        for sub in spec.get(part) or []:
            yield from _vega_texts(sub)


def visible_texts(at) -> list[tuple[str, str]]:
    """(element type, text) of everything the app shows in the AppTest ``at``."""
    from twin.i18n import LANGUAGES, t

    out: list[tuple[str, str]] = []
    id_headers = {t(key, lang) for key in IDENTIFIER_HEADERS for lang in LANGUAGES}

    def walk(node) -> None:
        kind = getattr(node, "type", "")
        proto = getattr(node, "proto", None)
        if kind in ("tab", "expander") and proto is not None:
            out.append((kind, getattr(node, "label", "") or ""))
        if kind in ("markdown", "caption", "title", "header", "subheader", "error", "warning", "info", "success",
                    "text", "latex"):
            out.append((kind, str(node.value)))
        elif kind == "metric":
            out.append(("metric", node.label))
            out.append(("metric value", str(node.value)))
            if getattr(node, "delta", None):
                out.append(("metric delta", str(node.delta)))
        elif kind in ("radio", "selectbox", "multiselect", "select_slider", "button_group"):
            out.append((kind, node.label))
            out.extend((f"{kind} option", str(o)) for o in node.proto.options)
        elif kind in ("slider", "number_input", "text_input", "checkbox", "toggle", "button", "download_button",
                      "file_uploader", "text_area", "date_input", "time_input", "color_picker"):
            out.append((kind, getattr(node, "label", "") or ""))
            fmt = getattr(proto, "format", "") if proto is not None else ""
            if fmt:
                out.append((f"{kind} format", re.sub(r"%[-+0-9.]*[dfsie]", "", fmt)))
            hlp = getattr(proto, "help", "") if proto is not None else ""
            if hlp:
                out.append((f"{kind} help", hlp))
        elif kind in ("dataframe", "table"):
            df = node.value
            skip = [c for c in df.columns if c in id_headers]
            out.extend(("table", s) for s in _frame_texts(df.drop(columns=skip)))
            out.extend(("table", str(c)) for c in skip)
        elif kind == "progress":
            out.append(("progress", getattr(proto, "text", "")))
        elif kind == "deck_gl_json_chart":  # the map's tooltips: each feature's title and lines
            for layer in json.loads(node.proto.json).get("layers", []):
                data = layer.get("data")
                for record in (data if isinstance(data, list) else [])[:500]:
                    if isinstance(record, dict):
                        out.extend(("map tooltip", str(record[f])) for f in ("tip_title", "tip_body") if record.get(f))
        elif kind == "iframe":  # a 3D scene or a player: its text outside scripts and styles (legends, buttons)
            body = re.sub(r"<(script|style)\b.*?</\1>", " ", getattr(node.proto, "srcdoc", "") or "", flags=re.S)
            out.append(("iframe", body))
        elif kind == "arrow_vega_lite_chart" or kind == "vega_lite_chart":
            out.extend(("chart", s) for s in _vega_texts(json.loads(node.proto.spec)))
        for child in (getattr(node, "children", None) or {}).values():
            walk(child)

    walk(at._tree)
    return [(k, s) for k, s in out if s]


def untranslated(at, names: set[str] = frozenset()) -> list[tuple[str, str]]:
    """(element type, text) of every visible text that holds an English word not in ``names`` (lower case).

    ``names`` are proper names read from the city's data (its name, road, district and
    depot names): data, shown as given.
    """
    out = []
    for kind, text in visible_texts(at):
        if text in names:
            continue
        if [w for w in english_words(text) if w.lower() not in names]:
            out.append((kind, text))
    return out


def city_names(city) -> set[str]:
    """The proper names of a city's data (its name; the words and whole names of its name columns), lower case."""
    names = {str(city.name).lower()}
    for layer in ("roads", "districts", "depots", "water"):
        gdf = city.layer(layer)
        if "name" in gdf.columns:
            for value in gdf["name"].astype(str):
                names.add(value)
                names.update(w.lower() for w in WORD.findall(value))
    return names


# ----------------------------------------------------------------------------- the walk

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """(tiny city GeoPackage, workspace) whose run store holds a coupled run with a storm and a 2-run sweep."""
    import tomllib

    from conftest import make_tiny_city

    from gisdata.city import save_city
    from hydraulics.rainfall import chicago_storm
    from scenarios import run_batch, validate_scenario
    from twin.coupler import run_coupled
    from twin.pages.batch import reduced_sweep
    from twin.runstore import write_coupled_run

    root = tmp_path_factory.mktemp("zh")
    gpkg = save_city(make_tiny_city(), root / "tiny.gpkg")
    runs = root / "runs"
    city = make_tiny_city()

    def run(event_sink, progress):
        return run_coupled(city, hours=2, strategy="priority", seed=1, rain=chicago_storm("beijing", 50, 60),
                           start_s=1800.0, event_sink=event_sink, progress=progress, n_citizens=100, n_vendors=3)

    write_coupled_run(runs / "sim_storm1", run, params={"city": str(gpkg), "hours": 2, "strategy": "priority",
                                                        "seed": 1, "storm": {"return_period_yr": 50}}, city=city)
    template = tomllib.loads((ROOT / "scenarios" / "dispatch_compare.toml").read_text(encoding="utf-8"))
    data = reduced_sweep(template, "tiny", city=str(gpkg), name="zh_sweep")
    data["period"]["hours"] = 2
    data["population"].update(citizens=100, vendors=3)
    res = run_batch(validate_scenario(data), runs, workers=1)
    assert res.status == "complete" and res.n_runs == 2
    return gpkg, root


def _check(at, where: str, names: set[str], problems: list[str]) -> None:
    assert not at.exception, (where, [e.value for e in at.exception])
    problems.extend(f"{where}: [{kind}] {text[:160]!r}" for kind, text in untranslated(at, names))


def test_every_page_in_chinese_shows_no_english(workspace, monkeypatch):
    """The whole workbench in zh, pages, runs, results and errors: no English words left."""
    from conftest import make_tiny_city
    from streamlit.testing.v1 import AppTest

    from twin.i18n import t

    gpkg, root = workspace
    monkeypatch.setenv("CITYTWIN_APP_CITY", str(gpkg))
    monkeypatch.setenv("CITYTWIN_WORKSPACE", str(root))  # runs from the pages go to <root>/runs, beside the others
    monkeypatch.delenv("CITYTWIN_RUNS_DIR", raising=False)
    names = city_names(make_tiny_city())
    problems: list[str] = []
    at = AppTest.from_file(APP, default_timeout=240)
    at.session_state["lang"] = "zh"
    at.run()
    assert at.title[0].value == t("app.title", "zh")

    # City: map, statistics of every layer, 3D
    _check(at, "city", names, problems)
    for layer in ("roads", "buildings", "nodes", "depots", "districts", "sensors", "vendor_sites"):
        at.selectbox(key="stats_layer__zh").set_value(layer).run()
        _check(at, f"city stats {layer}", names, problems)
    at.radio(key="city_source__zh").set_value("gpkg").run()
    at.file_uploader(key="upload_gpkg").set_value(("bad.gpkg", b"not a GeoPackage", "application/octet-stream")).run()
    assert [e.value for e in at.error] == [t("err.gpkg.unreadable", "zh", file="bad.gpkg")]
    _check(at, "city bad upload", names, problems)
    at.radio(key="city_source__zh").set_value("preset").run()

    # Flood event: a storm run, then the other rains and a bad rain file
    at.sidebar.radio(key="page__zh").set_value("flood_event").run()
    at.select_slider(key="flood_period").set_value(100).run()
    at.select_slider(key="flood_duration").set_value(60).run()
    _check(at, "flood event", names, problems)
    at.button(key="flood_run").click().run()
    assert not at.error, [e.value for e in at.error]
    _check(at, "flood event results", names, problems)
    for kind in ("block", "nrcs", "csv"):
        at.radio(key="flood_rain__zh").set_value(kind).run()
        _check(at, f"flood event {kind}", names, problems)
    at.file_uploader(key="flood_csv").set_value(("obs.csv", b"time,RG1\n2024-07-01 00:00,0\n2024-07-01 00:05,x\n",
                                                 "text/csv")).run()
    assert [e.value for e in at.error] == [t("err.rain.not_a_number", "zh", where="obs.csv:3", column="RG1",
                                             value="'x'")]
    _check(at, "flood event bad rain", names, problems)
    at.radio(key="flood_rain__zh").set_value("chicago").run()

    # Flood forecast: a bad QPF file, then 3 members over 6 h, with risk points and a plan
    at.sidebar.radio(key="page__zh").set_value("forecast").run()
    at.radio(key="fc_rain__zh").set_value("qpf").run()
    at.file_uploader(key="fc_qpf_file").set_value(("storm.csv", b"lead_h,RG1_mm_h\n0,0\n1,x\n", "text/csv")).run()
    assert [e.value for e in at.error] == [t("forecast.qpf_error", "zh", error=t(
        "err.qpf.not_a_number", "zh", where="storm.csv:3", column="RG1_mm_h", value="'x'"))]
    _check(at, "forecast bad QPF", names, problems)
    at.radio(key="fc_rain__zh").set_value("storm").run()
    at.select_slider(key="fc_hours").set_value(6)
    at.select_slider(key="fc_start_h").set_value(1)
    at.select_slider(key="fc_duration").set_value(60)
    at.select_slider(key="fc_period").set_value(100)
    at.number_input(key="fc_members").set_value(3).run()
    _check(at, "forecast", names, problems)
    at.button(key="fc_run").click().run()
    assert not at.error, [e.value for e in at.error]
    at.select_slider(key="fc_threshold").set_value(0.05).run()
    at.select_slider(key="fc_prob").set_value(0.1).run()
    assert int({m.label: m.value for m in at.metric}[t("forecast.metric.risk_points", "zh")]) >= 1  # a plan to read
    _check(at, "forecast results", names, problems)

    # Dispatch lab: a 2 h comparison
    at.sidebar.radio(key="page__zh").set_value("dispatch").run()
    at.slider(key="lab_hours").set_value(2)
    at.number_input(key="lab_citizens").set_value(100)
    at.button(key="lab_run").click().run()
    assert not at.error, [e.value for e in at.error]
    _check(at, "dispatch lab", names, problems)

    # Replay: every stored run (flood event, forecast, comparison from the pages; a simulation; a sweep)
    at.sidebar.radio(key="page__zh").set_value("replay").run()
    stored = sorted(p for p in (root / "runs").iterdir() if p.is_dir())
    kinds = set()
    for run in stored:
        at.selectbox(key="replay_run").set_value(run).run()
        _check(at, f"replay {run.name}", names, problems)
        kinds.add(run.name.split("-")[0])
        if run.name == "sim_storm1":
            assert at.slider(key="replay_minutes").proto.format == t("fmt.slider_min", "zh")
    assert {"flood", "forecast", "compare", "sim_storm1", "zh_sweep"} <= kinds, kinds
    typed = at.text_input(key="replay_root").value
    at.text_input(key="replay_root").set_value("/etc").run()  # a folder outside the workspace
    assert [e.value for e in at.error] == [t("workspace.refused", "zh", error=t("err.workspace.outside", "zh",
                                                                              folder="/etc"))]
    _check(at, "replay refused folder", names, problems)
    at.text_input(key="replay_root").set_value(typed).run()

    # Batch: the sweep, its filter chips (chosen in English, kept and shown in Chinese) and chart
    at.sidebar.radio(key="page__zh").set_value("batch").run()
    _check(at, "batch", names, problems)
    at.sidebar.radio(key="lang").set_value("en").run()
    at.multiselect(key="batch_filter_dispatch.strategy__en").set_value(["priority"]).run()
    at.sidebar.radio(key="lang").set_value("zh").run()
    chips = at.multiselect(key="batch_filter_dispatch.strategy__zh")
    assert chips.value == ["priority"] and t("strategy.priority", "zh") in chips.proto.options
    _check(at, "batch filtered", names, problems)

    assert not problems, "untranslated in zh:\n" + "\n".join(dict.fromkeys(problems))
