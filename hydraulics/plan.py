"""Response plans: who acts where, from which depot, by when -- built from the risk table.

:func:`build_plan` is a pure function of the risk table, the city and the
:class:`PlanRules`: the same forecast always gives the same plan (its
``forecast_id`` is a hash of the risk points it was built from).

Rules (defaults in :class:`PlanRules`; depths are the point's 90th-percentile
maximum, so the plan prepares for a bad but plausible case):

============== ============================================ =================================
department      action                                       when
============== ============================================ =================================
drainage        clear street inlets                          every risk point, ``inlets_h`` before onset
drainage        stage a mobile pump                          depth >= ``pump_m``, ``pump_h`` before onset
police          close road(s) to traffic / divert traffic    roads with depth >= ``close_m``, ``close_h`` before onset
emergency       sandbags at doors, evacuate basements        depth >= ``emergency_m``, ``emergency_h`` before onset
city_management clear street vendors from flooded streets    vendor sites within ``vendor_radius_m``, ``vendor_h`` before onset
============== ============================================ =================================

Deadlines count back from the point's *earliest* member onset
(``onset_basis="earliest"``; ``"median"`` uses the median onset), so crews
are in place before the first plausible flooding.

Each action gets a crew from the nearest depot of its department that still
has a free crew (straight-line distance; travel at ``travel_speed_kmh``); the
crew must leave by ``deadline - travel time``.  A deadline already past at
issue is marked ``immediate``.  If a department runs out of crews the action
is kept and marked ``unstaffed``.

Every risk point is numbered (its row in the HTML plan and its marker on the
map), and carries where it is: ``x``, ``y`` (m, the city's CRS), ``lon``,
``lat`` (WGS84) and an ``address`` (the street's name, the nearest named
street, or the district: :func:`hydraulics.risk.address_parts`).

Language
--------
The plan's words (actions, summary, addresses, depot and department names,
the HTML page) are message keys of :data:`PLAN_MESSAGES_EN`, each action
keeping its ``action_key`` and ``action_fields`` beside its text.
``hydraulics`` imports nothing above it, so the text comes from a
``translate(key, lang, **fields)`` callable: the twin layer passes
:func:`twin.i18n.t` with ``lang="zh"`` for Chinese; without one the plan is
in English from :data:`PLAN_MESSAGES_EN` (the same words as the English
catalogue, which a test checks).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

from gisdata.city import CityTwin
from gisdata.errors import TwinError
from gisdata.paths import atomic_path
from gisdata.schema import DEPARTMENTS


class PlanError(TwinError, ValueError):
    """A plan cannot be built (bad rules, risk table without the needed columns)."""


Translate = Callable[..., str]
"""``translate(key, lang, **fields) -> str``, as :func:`twin.i18n.t`."""

PLAN_MESSAGES_EN: dict[str, str] = {
    "plan.action.clear_inlets": "clear street inlets and gully pots upstream",
    "plan.action.pump": "stage a mobile pump and pump out the ponding",
    "plan.action.close_roads": "close {n} road segment(s) and divert traffic",
    "plan.action.sandbags": "sandbags at building entrances; evacuate basements and underpasses",
    "plan.action.clear_vendors": "clear street vendors from the flooded street",
    "plan.note.no_depot": "the city has no {dept} depot",
    "plan.summary.none": "0 risk points in the next {hours} h",
    "plan.summary": "{n} risk points in the next {hours} h; the first expected at {when} (lead {lead} h) "
                    "at point {number}, {where} [{parts}]",
    "plan.summary.sep": ", ",
    "plan.count.road": "{n} road segment(s)",
    "plan.count.sag": "{n} sag point(s)",
    "plan.count.entrance": "{n} building entrance(s)",
    "plan.count.district": "{n} district(s)",
    "plan.count.manhole": "{n} manhole(s)",
    "plan.where": "{kind} {element} ({address})",
    "plan.kind.road": "road segment",
    "plan.kind.sag": "sag point",
    "plan.kind.entrance": "building entrance",
    "plan.kind.district": "district",
    "plan.kind.manhole": "manhole",
    "plan.address.street": "{street}",
    "plan.address.near": "near {street}",
    "plan.address.district": "{district}",
    "plan.address.unnamed_near": "unnamed road near {street}",
    "plan.address.unnamed_at": "unnamed road near {lat}, {lon}",
    "plan.district.grid": "Grid {cell}",
    "plan.depot.city_management": "Urban Management Station {n}",
    "plan.depot.drainage": "Drainage Maintenance Depot {n}",
    "plan.depot.police": "Police Station {n}",
    "plan.depot.emergency": "Emergency Response Base {n}",
    "plan.depot.fallback": "{dept} depot (fallback)",
    "plan.department.city_management": "City management",
    "plan.department.drainage": "Drainage",
    "plan.department.police": "Police",
    "plan.department.emergency": "Emergency",
    "plan.status.assigned": "assigned",
    "plan.status.immediate": "leave now",
    "plan.status.unstaffed": "no free crew",
    "plan.road_status.closed": "closed",
    "plan.road_status.closed_to_cars": "closed to cars",
    "plan.html.title": "Response plan",
    "plan.html.heading": "Waterlogging response plan \u2014 {city}",
    "plan.html.issued": "Issued {issue}, horizon {hours} h, {members} members, depth threshold {threshold} m, "
                        "forecast id {fid}.",
    "plan.html.map": "Map of the risk points and staging depots",
    "plan.html.map_alt": "Map: numbered risk points (the rows of the table below) and the departments' depots",
    "plan.html.risk_points": "Risk points ({n})",
    "plan.html.col.number": "No.",
    "plan.html.col.point": "point",
    "plan.html.col.address": "street / address",
    "plan.html.col.lonlat": "lon, lat",
    "plan.html.col.xy": "x, y (m)",
    "plan.html.col.probability": "probability",
    "plan.html.col.depth": "E[max] / P90 depth (m)",
    "plan.html.col.onset": "onset",
    "plan.html.col.lead": "lead (h)",
    "plan.html.col.departments": "departments",
    "plan.html.roads": "Roads to close ({n})",
    "plan.html.col.road": "road",
    "plan.html.col.name": "name",
    "plan.html.col.status": "status",
    "plan.html.col.p90": "P90 depth (m)",
    "plan.html.col.close_by": "close by",
    "plan.html.tasks": "{dept} ({n} tasks)",
    "plan.html.no_tasks": "No tasks.",
    "plan.html.col.by": "by",
    "plan.html.col.action": "action",
    "plan.html.col.depot": "depot",
    "plan.html.col.leave_by": "leave by",
    "plan.html.col.travel": "travel (min)",
    "plan.html.hydrographs": "Hydrographs at the top points",
}
"""The plan's English words by message key (the English catalogue holds the same; Chinese is in the catalogue)."""

_SYNTH_DEPOT = {
    "city_management": "Urban Management Station",
    "drainage": "Drainage Maintenance Depot",
    "police": "Police Station",
    "emergency": "Emergency Response Base",
}
# The generated names of gisdata.synth_services and gisdata.osm; any other depot name is the city's own.


def english(key: str, lang: str = "en", **fields) -> str:
    """The English text of a plan message (the default ``translate``: ``lang`` is ignored).

    Examples
    --------
    >>> english("plan.action.close_roads", n=2)
    'close 2 road segment(s) and divert traffic'
    """
    text = PLAN_MESSAGES_EN.get(key, key)
    return text.format(**fields) if fields else text


def _say(translate: Translate | None, lang: str) -> Callable[..., str]:
    tr = translate or english
    return lambda key, **fields: tr(key, lang, **fields)


def depot_label(name: str, department: str, say: Callable[..., str]) -> str:
    """A depot's name in the plan's language: generated names (``Police Station 2``) from the
    catalogue, the city's own names (from OSM) as they are."""
    m = re.fullmatch(r"(.+) (\d+)", str(name))
    if m and _SYNTH_DEPOT.get(department) == m.group(1):
        return say(f"plan.depot.{department}", n=int(m.group(2)))
    if str(name) == f"{department.replace('_', ' ')} depot (fallback)":
        return say("plan.depot.fallback", dept=say(f"plan.department.{department}"))
    return str(name)


def district_label(name: str, say: Callable[..., str]) -> str:
    """A district's name in the plan's language (generated ``Grid A1`` names from the catalogue)."""
    m = re.fullmatch(r"Grid ([A-Z]+\d+)", str(name))
    return say("plan.district.grid", cell=m.group(1)) if m else str(name)


def address_text(kind: str, fields: dict, say: Callable[..., str]) -> str:
    """One :func:`hydraulics.risk.address_parts` entry in the plan's language."""
    if kind == "district":
        fields = {"district": district_label(fields["district"], say)}
    return say(f"plan.address.{kind}", **fields)


@dataclass(frozen=True)
class PlanRules:
    """Thresholds (m), lead times before onset (h), distances (m) and speeds (km/h) of the plan."""

    prob_threshold: float = 0.5
    pump_m: float = 0.15
    close_m: float = 0.15
    emergency_m: float = 0.30
    vendor_radius_m: float = 150.0
    inlets_h: float = 6.0
    pump_h: float = 2.0
    close_h: float = 0.5
    emergency_h: float = 3.0
    vendor_h: float = 1.0
    travel_speed_kmh: float = 30.0
    road_radius_m: float = 60.0
    onset_basis: str = "earliest"

    def __post_init__(self) -> None:
        if not 0 < self.prob_threshold <= 1:
            raise PlanError(f"prob_threshold={self.prob_threshold} must be in (0, 1]")
        if self.onset_basis not in ("earliest", "median"):
            raise PlanError(f"onset_basis={self.onset_basis!r}; expected 'earliest' or 'median'")
        if not self.travel_speed_kmh > 0:
            raise PlanError(f"travel_speed_kmh={self.travel_speed_kmh} must be > 0")


def _anchor(row, city: CityTwin):
    from hydraulics.risk import point_geometries

    geom = point_geometries(pd.DataFrame([row]), city)[0]
    return geom, shapely.point_on_surface(geom)


def build_plan(risk: pd.DataFrame, city: CityTwin, *, rules: PlanRules | None = None, lang: str = "en",
               translate: Translate | None = None) -> dict:
    """The response plan for every risk point with probability >= ``rules.prob_threshold``.

    Parameters
    ----------
    risk : pandas.DataFrame
        From :func:`hydraulics.risk.compute_risk`.
    city : CityTwin
        Depots, roads and vendor sites.
    rules : PlanRules, optional
    lang : str
        Language of the plan's words (``"en"``, ``"zh"``), handed to ``translate``.
    translate : callable, optional
        ``translate(key, lang, **fields)`` (:func:`twin.i18n.t`); default English
        (:func:`english`).

    Returns
    -------
    dict
        JSON-ready: ``forecast_id``, ``issue_time``, ``lang``, ``summary``,
        ``risk_points`` (each numbered, with x/y, lon/lat, address, onset, lead
        time, depths and its ``actions``), ``roads_to_close``, ``departments``
        (tasks per department), ``depots`` and ``rules``.
    """
    from hydraulics.risk import address_parts, to_lonlat

    rules = rules or PlanRules()
    say = _say(translate, lang)
    need = {"kind", "element_id", "probability", "p90_max_depth_m", "expected_max_depth_m", "onset", "lead_h"}
    missing = sorted(need - set(risk.columns))
    if missing:
        raise PlanError(f"risk table lacks columns {missing}")
    issue = pd.Timestamp(risk.attrs.get("issue_time")) if risk.attrs.get("issue_time") else None
    pts = risk[(risk["probability"] >= rules.prob_threshold - 1e-12) & risk["onset"].notna()]
    pts = pts.sort_values(["onset", "probability"], ascending=[True, False], kind="stable")
    depots = city.depots
    free = {d: int(n) for d, n in zip(depots.index, depots["n_crews"])}
    dxy = np.column_stack([depots.geometry.x.to_numpy(), depots.geometry.y.to_numpy()]) if len(depots) \
        else np.zeros((0, 2))
    speed = rules.travel_speed_kmh / 3.6
    vendors = city.vendor_sites
    roads = city.roads
    road_tree = shapely.STRtree(roads.geometry.values) if len(roads) else None
    road_risk = risk[risk["kind"] == "road"].set_index("element_id")
    depot_names = [depot_label(n, d, say) for n, d in zip(depots["name"], depots["department"])]
    # Where a crew goes: the forecast's point (a sag's lowest cell, a road's middle) when the table has it.
    anchors = [_anchor(row, city) for _, row in pts.iterrows()]
    wxy = np.array([[w.x, w.y] for _, w in anchors]).reshape(-1, 2)
    if {"x", "y"} <= set(pts.columns):
        given = pts[["x", "y"]].to_numpy(float)
        ok = np.isfinite(given).all(axis=1)
        wxy[ok] = given[ok]
    wlon, wlat = to_lonlat(wxy[:, 0], wxy[:, 1], city.crs) if len(pts) else (np.zeros(0), np.zeros(0))
    located = pd.DataFrame({"kind": pts["kind"].to_numpy(), "element_id": pts["element_id"].to_numpy(),
                            "x": wxy[:, 0], "y": wxy[:, 1]})
    addresses = [address_text(k, f, say) for k, f in address_parts(located, city)] if len(pts) else []

    def assign(dept: str, where, deadline: pd.Timestamp) -> dict:
        cand = np.flatnonzero(depots["department"].to_numpy() == dept)
        if len(cand) == 0:
            return {"depot_id": None, "status": "unstaffed",
                    "note": say("plan.note.no_depot", dept=say(f"plan.department.{dept}"))}
        dist = np.hypot(dxy[cand, 0] - where.x, dxy[cand, 1] - where.y)
        order = cand[np.argsort(dist, kind="stable")]
        chosen = next((k for k in order if free[depots.index[k]] > 0), None)
        status = "assigned"
        if chosen is None:
            chosen, status = order[0], "unstaffed"
        else:
            free[depots.index[chosen]] -= 1
        d_m = float(np.hypot(dxy[chosen, 0] - where.x, dxy[chosen, 1] - where.y))
        travel = pd.Timedelta(seconds=d_m / speed)
        leave = deadline - travel
        if issue is not None and leave < issue:
            status = "immediate" if status == "assigned" else status
        return {"depot_id": str(depots.index[chosen]), "depot_name": depot_names[chosen],
                "distance_m": round(d_m, 1), "travel_min": round(travel.total_seconds() / 60, 1),
                "leave_by": _iso(leave), "status": status}

    out_points, closures = [], {}
    for number, (pid, row) in enumerate(pts.iterrows(), start=1):
        geom, _ = anchors[number - 1]
        where = shapely.Point(wxy[number - 1])
        lonlat = {"lon": round(float(wlon[number - 1]), 6), "lat": round(float(wlat[number - 1]), 6)}
        onset = pd.Timestamp(row["onset"])
        early = row.get("onset_earliest", pd.NaT)
        # Deadlines count back from the earliest member's onset by default: be ready for the first flood.
        basis = pd.Timestamp(early) if rules.onset_basis == "earliest" and not pd.isna(early) else onset
        depth = float(row["p90_max_depth_m"])
        actions = []

        def act(dept, key, hours_before, onset=basis, where=where, lonlat=lonlat, actions=actions, fields=None,
                **extra):
            deadline = onset - pd.Timedelta(hours=hours_before)
            a = {"department": dept, "department_name": say(f"plan.department.{dept}"),
                 "action": say(f"plan.action.{key}", **(fields or {})), "action_key": f"plan.action.{key}",
                 "action_fields": fields or {}, "by": _iso(deadline), "hours_before_onset": hours_before,
                 "stage_at": {"x": round(where.x, 1), "y": round(where.y, 1), **lonlat}, **extra}
            a.update(assign(dept, where, deadline))
            actions.append(a)

        act("drainage", "clear_inlets", rules.inlets_h)
        if depth >= rules.pump_m:
            act("drainage", "pump", rules.pump_h)
        near_roads = []
        if road_tree is not None:
            if row["kind"] == "road":
                near_roads = [row["element_id"]]
            else:
                point_like = row["kind"] in ("manhole", "sag", "entrance")  # the roads that lead to it
                hit = road_tree.query(geom.buffer(rules.road_radius_m if point_like else 0.0),
                                      predicate="intersects")
                near_roads = [str(roads.index[k]) for k in hit
                              if str(roads.index[k]) in road_risk.index
                              and road_risk.loc[str(roads.index[k]), "p90_max_depth_m"] >= rules.close_m]
        if depth >= rules.close_m and near_roads:
            for r in near_roads:
                rr = road_risk.loc[r] if r in road_risk.index else row
                d_r = float(rr["p90_max_depth_m"])
                status = "closed" if d_r >= 0.30 else "closed_to_cars"
                closures.setdefault(r, {"road_id": r, "name": str(roads.loc[r, "name"]),
                                        "status": status, "status_name": say(f"plan.road_status.{status}"),
                                        "p90_depth_m": round(d_r, 3), "close_by": _iso(basis - pd.Timedelta(
                                            hours=rules.close_h)), "risk_points": []})["risk_points"].append(pid)
            act("police", "close_roads", rules.close_h, fields={"n": len(near_roads)}, roads=near_roads)
        if depth >= rules.emergency_m:
            act("emergency", "sandbags", rules.emergency_h)
        if len(vendors):
            dv = vendors.geometry.distance(geom)
            near = [str(v) for v in vendors.index[dv.to_numpy() <= rules.vendor_radius_m]]
            if near:
                act("city_management", "clear_vendors", rules.vendor_h, vendor_sites=near)
        out_points.append({
            "number": number, "point_id": pid, "kind": row["kind"], "element_id": row["element_id"],
            "kind_name": say(f"plan.kind.{row['kind']}"), "address": addresses[number - 1],
            "probability": round(float(row["probability"]), 3),
            "expected_max_depth_m": round(float(row["expected_max_depth_m"]), 3),
            "p90_max_depth_m": round(depth, 3), "onset": _iso(onset), "onset_earliest": _iso(early), "deadline_basis": rules.onset_basis,
            "lead_h": round(float(row["lead_h"]), 2),
            "location": {"x": round(where.x, 1), "y": round(where.y, 1), **lonlat},
            "departments": sorted({a["department"] for a in actions}), "actions": actions,
        })
    by_dept = {d: [] for d in DEPARTMENTS}
    for p in out_points:
        for a in p["actions"]:
            by_dept[a["department"]].append({"point_id": p["point_id"], **{k: v for k, v in a.items()
                                                                           if k != "department"}})
    for tasks in by_dept.values():
        tasks.sort(key=lambda a: a["by"])
    fid = hashlib.sha256(pts[["probability", "p90_max_depth_m", "lead_h"]].round(6).to_csv().encode()).hexdigest()
    dlon, dlat = to_lonlat(dxy[:, 0], dxy[:, 1], city.crs) if len(depots) else (np.zeros(0), np.zeros(0))
    depot_list = [{"depot_id": str(i), "department": str(d), "department_name": say(f"plan.department.{d}"),
                   "name": depot_names[k], "n_crews": int(n), "x": round(float(dxy[k, 0]), 1),
                   "y": round(float(dxy[k, 1]), 1), "lon": round(float(dlon[k]), 6), "lat": round(float(dlat[k]), 6)}
                  for k, (i, d, n) in enumerate(zip(depots.index, depots["department"], depots["n_crews"]))]
    horizon = risk.attrs.get("horizon_h")
    return {
        "format": "citytwin-response-plan/1", "forecast_id": fid[:16], "city": city.name, "lang": lang,
        "issue_time": _iso(issue) if issue is not None else None,
        "horizon_h": horizon, "threshold_m": risk.attrs.get("threshold_m"),
        "n_members": risk.attrs.get("n_members"), "n_risk_points": len(out_points),
        "summary": _summary(out_points, 72.0 if horizon is None else float(horizon), say),
        "risk_points": out_points, "roads_to_close": sorted(closures.values(), key=lambda c: c["close_by"]),
        "departments": by_dept, "depots": depot_list, "rules": asdict(rules),
    }


def _summary(points: list[dict], horizon_h: float, say: Callable[..., str]) -> str:
    """``"N risk points in the next 72 h; the first expected at ... at point k, road ... (street) [counts]"``."""
    if not points:
        return say("plan.summary.none", hours=f"{horizon_h:g}")
    counts = {}
    for p in points:
        counts[p["kind"]] = counts.get(p["kind"], 0) + 1
    parts = say("plan.summary.sep").join(say(f"plan.count.{k}", n=counts[k])
                                         for k in ("road", "sag", "entrance", "district", "manhole") if k in counts)
    first = min(points, key=lambda p: (p["lead_h"], p["number"]))
    when = pd.Timestamp(first["onset"]).strftime("%Y-%m-%d %H:%M")
    where = say("plan.where", kind=first["kind_name"], element=first["element_id"], address=first["address"])
    return say("plan.summary", n=len(points), hours=f"{horizon_h:g}", when=when, lead=f"{first['lead_h']:.1f}",
               number=first["number"], where=where, parts=parts)


def _iso(t) -> str | None:
    return None if t is None or pd.isna(t) else pd.Timestamp(t).isoformat(timespec="minutes")


def write_plan_json(plan: dict, path: str | Path) -> Path:
    """Write the plan as JSON (for department systems), renamed into place when complete."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(plan, indent=1, ensure_ascii=False))
    return path


_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em}
table{border-collapse:collapse;margin:.6em 0 1.4em;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .5em;
text-align:left;vertical-align:top}th{background:#f0f3f7}.immediate{color:#b00;font-weight:600}
.unstaffed{color:#a60;font-weight:600}.p{font-variant-numeric:tabular-nums}.sum{font-size:1.1em;background:#eef6ff;
padding:.6em;border-left:4px solid #369}figure.map{margin:0 0 1em}figure.map img{max-width:100%;height:auto;
border:1px solid #ccc}figcaption{font-size:.85em;color:#555}"""


def plan_html(plan: dict, *, summary: str | None = None, hydrograph_png: str | None = None,
              map_png: str | None = None, translate: Translate | None = None) -> str:
    """The plan as a self-contained HTML page (for people): map, summary, risk points, closures, department tasks.

    Parameters
    ----------
    plan : dict
        From :func:`build_plan`; the page is in the plan's ``lang``.
    summary : str, optional
        The summary line (default the plan's own ``summary``).
    hydrograph_png : str, optional
        ``src`` of the hydrograph image (a file name beside the page or a ``data:`` URI).
    map_png : str, optional
        ``src`` of the map of the numbered points and the depots, shown first
        (a ``data:`` URI keeps the page one file: :func:`twin.viz.plan_map.plan_map_uri`).
    translate : callable, optional
        ``translate(key, lang, **fields)``; default English (:func:`english`).
    """
    e = html.escape
    lang = str(plan.get("lang") or "en")
    say = _say(translate, lang)
    summary = plan.get("summary", "") if summary is None else summary
    dept_names = {d: say(f"plan.department.{d}") for d in DEPARTMENTS}
    out = [(f"<!doctype html><html lang='{e(lang)}'><head><meta charset='utf-8'><title>{e(say('plan.html.title'))}"
            f"</title><style>{_CSS}</style></head><body>"),
           f"<h1>{e(say('plan.html.heading', city=plan['city']))}</h1>"]
    if map_png:
        out.append(f"<figure class='map'><img src='{e(map_png)}' alt='{e(say('plan.html.map_alt'))}'>"
                   f"<figcaption>{e(say('plan.html.map'))}</figcaption></figure>")
    out.append("<p>" + e(say("plan.html.issued", issue=plan["issue_time"], hours=plan["horizon_h"],
                              members=plan["n_members"], threshold=plan["threshold_m"], fid=plan["forecast_id"]))
               + "</p>")
    if summary:
        out.append(f"<p class='sum'>{e(summary)}</p>")
    cols = ("number", "point", "address", "lonlat", "xy", "probability", "depth", "onset", "lead", "departments")
    out.append(f"<h2>{e(say('plan.html.risk_points', n=plan['n_risk_points']))}</h2><table><tr>"
               + "".join(f"<th>{e(say(f'plan.html.col.{c}'))}</th>" for c in cols) + "</tr>")
    for k, p in enumerate(plan["risk_points"], start=1):
        loc = p.get("location", {})
        lonlat = f"{loc['lon']:.6f}, {loc['lat']:.6f}" if "lon" in loc else "-"
        kind = p.get("kind_name") or say(f"plan.kind.{p['kind']}")
        out.append(f"<tr id='p{p.get('number', k)}'><td class='p'><b>{p.get('number', k)}</b></td>"
                   f"<td>{e(kind)} {e(str(p['element_id']))}</td><td>{e(str(p.get('address', '')))}</td>"
                   f"<td class='p'>{lonlat}</td><td class='p'>{loc.get('x', 0):.1f}, {loc.get('y', 0):.1f}</td>"
                   f"<td class='p'>{p['probability']:.2f}</td>"
                   f"<td class='p'>{p['expected_max_depth_m']:.2f} / {p['p90_max_depth_m']:.2f}</td>"
                   f"<td>{e(p['onset'])}</td><td class='p'>{p['lead_h']:.1f}</td>"
                   f"<td>{e(say('plan.summary.sep').join(dept_names.get(d, d) for d in p['departments']))}</td></tr>")
    out.append("</table>")
    cols = ("road", "name", "status", "p90", "close_by")
    out.append(f"<h2>{e(say('plan.html.roads', n=len(plan['roads_to_close'])))}</h2><table><tr>"
               + "".join(f"<th>{e(say(f'plan.html.col.{c}'))}</th>" for c in cols) + "</tr>")
    for c in plan["roads_to_close"]:
        status = c.get("status_name") or say(f"plan.road_status.{c['status']}")
        out.append(f"<tr><td>{e(c['road_id'])}</td><td>{e(c['name'])}</td><td>{e(status)}</td>"
                   f"<td class='p'>{c['p90_depth_m']:.2f}</td><td>{e(c['close_by'])}</td></tr>")
    out.append("</table>")
    numbers = {p["point_id"]: p.get("number", k) for k, p in enumerate(plan["risk_points"], start=1)}
    cols = ("by", "action", "number", "point", "depot", "leave_by", "travel", "status")
    for d, tasks in plan["departments"].items():
        out.append(f"<h2>{e(say('plan.html.tasks', dept=dept_names.get(d, d), n=len(tasks)))}</h2>")
        if not tasks:
            out.append(f"<p>{e(say('plan.html.no_tasks'))}</p>")
            continue
        out.append("<table><tr>" + "".join(f"<th>{e(say(f'plan.html.col.{c}'))}</th>" for c in cols) + "</tr>")
        for a in tasks:
            cls = a.get("status", "")
            status = say(f"plan.status.{cls}") if cls else ""
            out.append(f"<tr><td>{e(a['by'])}</td><td>{e(a['action'])}</td>"
                       f"<td class='p'><a href='#p{numbers.get(a['point_id'], '')}'>"
                       f"{numbers.get(a['point_id'], '')}</a></td><td>{e(a['point_id'])}</td>"
                       f"<td>{e(str(a.get('depot_name') or a.get('depot_id') or a.get('note') or '-'))}</td>"
                       f"<td>{e(str(a.get('leave_by', '-')))}</td><td class='p'>{a.get('travel_min', '-')}</td>"
                       f"<td class='{e(cls)}'>{e(status)}</td></tr>")
        out.append("</table>")
    if hydrograph_png:
        out.append(f"<h2>{e(say('plan.html.hydrographs'))}</h2><img src='{e(hydrograph_png)}' style='max-width:100%'>")
    out.append("</body></html>")
    return "\n".join(out)


def write_plan_html(plan: dict, path: str | Path, **kw) -> Path:
    """Write :func:`plan_html` to ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(plan_html(plan, **kw), encoding="utf-8")
    return path
