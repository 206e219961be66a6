"""The demo report: one self-contained HTML page (no network) and its static map.

:func:`write_report` takes results and writes a page; it never runs anything.
Pictures are inlined as base64 ``data:`` URIs; the 3D scene (itself
self-contained vtk.js) is embedded from a file beside the report with an
``<iframe>`` and a link, so the report stays readable and opens offline.
"""

from __future__ import annotations

import base64
import html
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from gisdata.city import CityTwin
from twin.kpi_stats import HIGHER_IS_BETTER, LOWER_IS_BETTER
from twin.viz import palette as pal

KPI_ROWS: tuple[tuple[str, str, str], ...] = (
    ("response p50", "response.all:all.response_s.p50", "min"),
    ("response p90", "response.all:all.response_s.p90", "min"),
    ("incident response p50", "incident_response_s.p50", "min"),
    ("incident response p90", "incident_response_s.p90", "min"),
    ("within target", "within_target.all", "share"),
    ("duplicate dispatches", "duplicates.dispatches", "count"),
    ("duplicate share", "duplicates.share", "share"),
    ("coordination time", "coordination.total_h", "h"),
    ("flood exposure (person-h on closed roads)", "exposure.person_hours_closed_roads", "h"),
    ("unresolved cases", "unresolved.cases", "count"),
    ("incidents", "counts.incidents", "count"),
    ("flood incidents", "flood_incidents", "count"),
    ("dispatches", "counts.dispatched", "count"),
)
"""(label, flat KPI key, unit) of the KPI comparison table."""



def _png_uri(path: str | Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _atomic_write(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=path.suffix, dir=path.parent, prefix=f".{path.stem}.")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        tmp.chmod(0o644)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _risk_xy(risk: pd.DataFrame, city: CityTwin) -> np.ndarray:
    from twin.staging import risk_point_xy

    return risk_point_xy(risk, city, "risk table")


def write_demo_map_png(city: CityTwin, risk: pd.DataFrame, depths, path: str | Path, *,
                       title: str = "", dpi: int = 110) -> Path:
    """Static map: hillshade, roads, the storm's maximum street depth (2D surface) and the forecast's risk points.

    Parameters
    ----------
    city : CityTwin
    risk : DataFrame
        :func:`hydraulics.risk.compute_risk` table (``kind``, ``element_id``, ``probability``,
        ``is_risk_point``; ``x``, ``y`` where the forecast placed a point).
    depths : DepthSeries or None
        The storm's street depth over time (:attr:`twin.flood_feed.FloodSchedule.depths`); each cell's
        maximum is drawn in the fixed depth classes (:mod:`twin.viz.depth_map`).
    path : str or Path
        Output ``.png`` (written under a temporary name and renamed).
    """
    import matplotlib
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from twin.viz.depth_map import depth_class_rgba, depth_legend_entries
    from twin.viz.map2d import _lines_xy, hillshade_rgb

    path = Path(path)
    xmin, ymin, xmax, ymax = city.extent
    fig = Figure(figsize=(11, 9), dpi=dpi)
    ax = fig.subplots()
    ax.imshow(hillshade_rgb(city), extent=(xmin, xmax, ymin, ymax), origin="upper", zorder=0)
    if len(city.roads):
        ax.add_collection(LineCollection(_lines_xy(city.roads.geometry), colors=pal.ROAD_BACKDROP, linewidths=0.6, zorder=2))
    if depths is not None and len(depths.times_s):
        bx0, by0, bx1, by1 = depths.bounds()
        ax.imshow(depth_class_rgba(depths.max_depth_m(), domain=depths.domain), extent=(bx0, bx1, by0, by1),
                  origin="upper", interpolation="nearest", zorder=3)
        handles = [Patch(facecolor=c, edgecolor=pal.LEGEND_EDGE, label=label) for label, c in depth_legend_entries("en")]
        ax.legend(handles=handles, title="storm: max street depth (2D surface)", loc="lower right", fontsize=8,
                  title_fontsize=8, framealpha=0.9)
    risk = risk[pd.to_numeric(risk["probability"], errors="coerce") > 0] if len(risk) else risk  # the dry stay off
    if len(risk):
        xy = _risk_xy(risk, city)
        ok = np.isfinite(xy[:, 0])
        sc2 = ax.scatter(xy[ok, 0], xy[ok, 1], c=risk["probability"].to_numpy(float)[ok],
                         cmap=matplotlib.colormaps["OrRd"], vmin=0, vmax=1, marker="D", s=28,
                         edgecolors="black", linewidths=0.5, zorder=5)
        fig.colorbar(sc2, ax=ax, shrink=0.5, pad=0.02).set_label("forecast flood probability")
        top = risk.head(10)
        for (x, y), rank in zip(xy[:len(top)], top["rank"]):
            if np.isfinite(x):
                ax.annotate(str(int(rank)), (x, y), xytext=(4, 4), textcoords="offset points", fontsize=8,
                            fontweight="bold", zorder=6)
    ax.set_xlim(xmin, xmax)
    ax.set_ylim(ymin, ymax)
    ax.set_aspect("equal")
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.set_xlabel(f"easting (m, {city.crs})")
    ax.set_ylabel("northing (m)")
    ax.set_title(title or f"{city.name}: flood depth and risk", fontsize=11)
    fig.tight_layout()
    return _atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))


def _fmt(v, unit: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "&ndash;"
    v = float(v)
    if unit == "min":
        return f"{v / 60:.1f}"
    if unit == "share":
        return f"{100 * v:.0f}%"
    if unit == "count":
        return f"{v:.0f}"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"


def kpi_table_html(kpis: Mapping[str, Mapping], *, baseline: str | None = None) -> str:
    """The KPI comparison as an HTML table (one column per strategy, then the change from ``baseline``)."""
    names = list(kpis)
    base = baseline or names[0]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = []
    for label, key, unit in KPI_ROWS:
        vals = [kpis[n].get(key) for n in names]
        cells = "".join(f"<td>{_fmt(v, unit)}</td>" for v in vals)
        b = kpis[base].get(key)
        delta = ""
        if len(names) > 1:
            o = kpis[names[-1]].get(key)
            if b is not None and o is not None and not any(isinstance(x, float) and math.isnan(x) for x in (b, o)):
                d = float(o) - float(b)
                better = (d < 0) if key in LOWER_IS_BETTER else (d > 0)
                judged = key in LOWER_IS_BETTER or key in HIGHER_IS_BETTER  # counts are context, not scores
                cls = "" if d == 0 or not judged else (" class='better'" if better else " class='worse'")
                shown = d / 60 if unit == "min" else (100 * d if unit == "share" else d)
                suffix = " pp" if unit == "share" else ""
                delta = f"<td{cls}>{shown:+.1f}{suffix}</td>"
            else:
                delta = "<td>&ndash;</td>"
        unit_txt = {"min": "min", "h": "h", "share": "%", "count": ""}[unit]
        rows.append(f"<tr><th scope='row'>{html.escape(label)}</th><td class='unit'>{unit_txt}</td>{cells}{delta}</tr>")
    dh = f"<th>{html.escape(names[-1])} &minus; {html.escape(base)}</th>" if len(names) > 1 else ""
    return (f"<table class='kpi' id='kpi-table'><thead><tr><th>KPI</th><th>unit</th>{head}{dh}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def risk_table_html(risk: pd.DataFrame, *, top: int = 15) -> str:
    """The top rows of the forecast's risk table as HTML."""
    rows = []
    for pid, r in risk.head(top).iterrows():
        onset = "" if pd.isna(r.get("onset")) else f"{pd.Timestamp(r['onset']):%Y-%m-%d %H:%M}"
        lead = "" if pd.isna(r.get("lead_h")) else f"{float(r['lead_h']):.1f}"
        flag = "yes" if bool(r.get("is_risk_point")) else ""
        rows.append(f"<tr><td>{int(r['rank'])}</td><td>{html.escape(str(r['kind']))}</td>"
                    f"<td>{html.escape(str(r['element_id']))}</td><td>{float(r['probability']):.2f}</td>"
                    f"<td>{float(r['expected_max_depth_m']):.2f}</td><td>{float(r['p90_max_depth_m']):.2f}</td>"
                    f"<td>{onset}</td><td>{lead}</td><td>{float(r['duration_h']):.1f}</td><td>{flag}</td></tr>")
    if not rows:
        rows.append("<tr><td colspan='10'>no point reached the waterlogging depth in any member</td></tr>")
    return ("<table class='risk' id='risk-table'><thead><tr><th>rank</th><th>kind</th><th>element</th>"
            "<th>probability</th><th>E[max depth] (m)</th><th>p90 depth (m)</th><th>onset</th><th>lead (h)</th>"
            f"<th>duration (h)</th><th>risk point</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:0;color:#212529;background:#f8f9fa}
header{background:#1c3d5a;color:#fff;padding:18px 32px}
header h1{margin:0 0 6px;font-size:24px} header p{margin:2px 0;opacity:.9}
main{padding:16px 32px;max-width:1320px}
section{background:#fff;border:1px solid #dee2e6;border-radius:6px;padding:14px 20px;margin:14px 0}
h2{font-size:18px;margin:4px 0 10px}
ul.headline li{margin:4px 0;font-size:15px}
table{border-collapse:collapse;font-size:13px} th,td{border-bottom:1px solid #e9ecef;padding:4px 10px;text-align:right}
thead th{background:#f1f3f5;border-bottom:2px solid #adb5bd} tbody th{text-align:left;font-weight:500}
td.unit{color:#868e96} td.better{color:#2b8a3e;font-weight:600} td.worse{color:#c92a2a;font-weight:600}
table.risk td:nth-child(2),table.risk td:nth-child(3){text-align:left}
img{max-width:100%;height:auto;border:1px solid #dee2e6}
iframe{width:100%;height:640px;border:1px solid #dee2e6}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px} .note{color:#6c757d;font-size:12px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:13px;margin:0} dt{color:#6c757d}
"""


def report_html(*, city_name: str, summary: Mapping, risk: pd.DataFrame, forecast_line: str,
                kpis: Mapping[str, Mapping], headline: Sequence[str], images: Mapping[str, str | Path],
                scene_href: str | None = None, staging: Mapping | None = None,
                settings: Mapping | None = None, timings: Mapping | None = None, top_risk: int = 15) -> str:
    """The report as the text of one HTML page (images inlined; the 3D scene is a relative link).

    Parameters
    ----------
    city_name : str
    summary : Mapping
        :meth:`CityTwin.summary`.
    risk : DataFrame
        Forecast risk table.
    forecast_line : str
        :func:`hydraulics.risk.summary_line`.
    kpis : Mapping
        Strategy -> flat KPIs; the first is the baseline.
    headline : sequence of str
        Lines shown at the top.
    images : Mapping
        ``map``, ``hydrographs`` and optionally ``city``: PNG paths, inlined.
    scene_href : str, optional
        Relative link to the 3D scene page (embedded in an iframe).
    """
    e = html.escape
    imgs = {k: _png_uri(v) for k, v in images.items() if v is not None and Path(v).is_file()}
    s = dict(settings or {})
    storm = (f"Chicago {s.get('idf', '')} {s.get('return_period_yr', '?'):g}-yr {s.get('duration_min', 0):g} min storm "
             f"starting {s.get('storm_start_h', 0):g} h after issue") if s else ""
    parts = [(f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>CityTwin demo: {e(city_name)}</title>"
             f"<style>{_CSS}</style></head><body>"),
             (f"<header><h1>CityTwin demo report: {e(city_name)}</h1><p>{e(storm)}</p>"
             f"<p>{summary.get('manholes', '?')} manholes, {summary.get('pipe_length_km', 0):.1f} km of pipes, "
             f"{summary.get('residents', '?')} residents, {e(str(summary.get('crs', '')))}</p></header><main>"),
             "<section><h2>Headline</h2><ul class='headline'>"
             + "".join(f"<li>{e(h)}</li>" for h in headline) + "</ul></section>"]
    parts.append("<section><h2>Map: storm maximum depth and forecast risk</h2>"
                 + (f"<img alt='flood and risk map' src='{imgs['map']}'>" if "map" in imgs else "")
                 + "<p class='note'>Blue circles: maximum surface depth at each manhole that overflowed in the coupled "
                   "storm run (size by volume). Diamonds: forecast risk points, coloured by flood probability; "
                   "numbers are risk ranks.</p></section>")
    if scene_href:
        parts.append(f"<section><h2>3D scene</h2><p><a href='{e(scene_href)}'>open the 3D scene full page</a> "
                     "(self-contained, works offline)</p>"
                     f"<iframe title='3D scene' src='{e(scene_href)}' loading='lazy'></iframe></section>")
    parts.append(f"<section><h2>72 h forecast: risk table</h2><p>{e(forecast_line)}</p>"
                 f"{risk_table_html(risk, top=top_risk)}"
                 f"<p class='note'>Top {min(top_risk, len(risk))} of {len(risk)} points with any flood depth; "
                 f"threshold {risk.attrs.get('threshold_m', 0.15):g} m, risk point at probability &ge; "
                 f"{risk.attrs.get('prob_threshold', 0.5):g}, {risk.attrs.get('n_members', '?')} members.</p></section>")
    st = dict(staging or {})
    st_txt = (f"Staging used {st.get('n_points', 0)} risk points from the {e(str(st.get('source', '')))} table."
              + (f" Warning: {e(str(st['warning']))}" if st.get("warning") else "")) if st else ""
    parts.append("<section><h2>Dispatch: siloed departments vs unified dispatch with staging</h2>"
                 f"{kpi_table_html(kpis)}<p class='note'>Both runs replay the same SWMM flood with the same seed "
                 f"(common random numbers). {st_txt}</p></section>")
    parts.append("<section><h2>Hydrographs at the top risk points</h2>"
                 + (f"<img alt='hydrographs' src='{imgs['hydrographs']}'>" if "hydrographs" in imgs else "")
                 + "</section>")
    if "city" in imgs:
        parts.append(f"<section><h2>The city</h2><img alt='city overview' src='{imgs['city']}'></section>")
    if s or timings:
        dl = "".join(f"<dt>{e(str(k))}</dt><dd>{e(str(v))}</dd>" for k, v in s.items())
        tl = "".join(f"<dt>{e(str(k))}</dt><dd>{float(v):.1f} s</dd>" for k, v in (timings or {}).items())
        parts.append(f"<section><h2>Run settings</h2><div class='grid'><dl>{dl}</dl><dl>{tl}</dl></div></section>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def write_report(path: str | Path, *, city: CityTwin, summary: Mapping, risk: pd.DataFrame, forecast_line: str,
                 kpis: Mapping[str, Mapping], headline: Sequence[str], images: Mapping[str, str | Path],
                 scene_html: str | Path | None = None, plan: Mapping | None = None, staging: Mapping | None = None,
                 settings: Mapping | None = None, timings: Mapping | None = None) -> Path:
    """Write :func:`report_html` to ``path`` (temporary name, then renamed).

    ``scene_html`` (a page beside the report, or anywhere) is linked relative to the report.
    """
    path = Path(path)
    href = None
    if scene_html is not None:
        href = os.path.relpath(Path(scene_html).resolve(), path.resolve().parent).replace(os.sep, "/")
    text = report_html(city_name=city.name, summary=summary, risk=risk, forecast_line=forecast_line, kpis=kpis,
                       headline=headline, images=images, scene_href=href, staging=staging, settings=settings,
                       timings=timings)
    return _atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


__all__ = ["KPI_ROWS", "kpi_table_html", "report_html", "risk_table_html", "write_demo_map_png", "write_report"]
