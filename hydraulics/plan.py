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
"""

from __future__ import annotations

import hashlib
import html
import json
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


def build_plan(risk: pd.DataFrame, city: CityTwin, *, rules: PlanRules | None = None) -> dict:
    """The response plan for every risk point with probability >= ``rules.prob_threshold``.

    Parameters
    ----------
    risk : pandas.DataFrame
        From :func:`hydraulics.risk.compute_risk`.
    city : CityTwin
        Depots, roads and vendor sites.
    rules : PlanRules, optional

    Returns
    -------
    dict
        JSON-ready: ``forecast_id``, ``issue_time``, ``risk_points`` (each with
        onset, lead time, depths and its ``actions``), ``roads_to_close``,
        ``departments`` (tasks per department) and ``rules``.
    """
    rules = rules or PlanRules()
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

    def assign(dept: str, where, deadline: pd.Timestamp) -> dict:
        cand = np.flatnonzero(depots["department"].to_numpy() == dept)
        if len(cand) == 0:
            return {"depot_id": None, "status": "unstaffed", "note": f"the city has no {dept} depot"}
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
        return {"depot_id": str(depots.index[chosen]), "depot_name": str(depots["name"].iloc[chosen]),
                "distance_m": round(d_m, 1), "travel_min": round(travel.total_seconds() / 60, 1),
                "leave_by": _iso(leave), "status": status}

    out_points, closures = [], {}
    for pid, row in pts.iterrows():
        geom, where = _anchor(row, city)
        onset = pd.Timestamp(row["onset"])
        early = row.get("onset_earliest", pd.NaT)
        # Deadlines count back from the earliest member's onset by default: be ready for the first flood.
        basis = pd.Timestamp(early) if rules.onset_basis == "earliest" and not pd.isna(early) else onset
        depth = float(row["p90_max_depth_m"])
        actions = []

        def act(dept, action, hours_before, onset=basis, where=where, actions=actions, **extra):
            deadline = onset - pd.Timedelta(hours=hours_before)
            a = {"department": dept, "action": action, "by": _iso(deadline),
                 "hours_before_onset": hours_before,
                 "stage_at": {"x": round(where.x, 1), "y": round(where.y, 1)}, **extra}
            a.update(assign(dept, where, deadline))
            actions.append(a)

        act("drainage", "clear street inlets and gully pots upstream", rules.inlets_h)
        if depth >= rules.pump_m:
            act("drainage", "stage a mobile pump and pump out the ponding", rules.pump_h)
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
                closures.setdefault(r, {"road_id": r, "name": str(roads.loc[r, "name"]),
                                        "status": "closed" if d_r >= 0.30 else "closed_to_cars",
                                        "p90_depth_m": round(d_r, 3), "close_by": _iso(basis - pd.Timedelta(
                                            hours=rules.close_h)), "risk_points": []})["risk_points"].append(pid)
            act("police", f"close {len(near_roads)} road segment(s) and divert traffic", rules.close_h,
                roads=near_roads)
        if depth >= rules.emergency_m:
            act("emergency", "sandbags at building entrances; evacuate basements and underpasses",
                rules.emergency_h)
        if len(vendors):
            dv = vendors.geometry.distance(geom)
            near = [str(v) for v in vendors.index[dv.to_numpy() <= rules.vendor_radius_m]]
            if near:
                act("city_management", "clear street vendors from the flooded street", rules.vendor_h,
                    vendor_sites=near)
        out_points.append({
            "point_id": pid, "kind": row["kind"], "element_id": row["element_id"],
            "probability": round(float(row["probability"]), 3),
            "expected_max_depth_m": round(float(row["expected_max_depth_m"]), 3),
            "p90_max_depth_m": round(depth, 3), "onset": _iso(onset), "onset_earliest": _iso(early), "deadline_basis": rules.onset_basis,
            "lead_h": round(float(row["lead_h"]), 2),
            "location": {"x": round(where.x, 1), "y": round(where.y, 1)},
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
    return {
        "format": "citytwin-response-plan/1", "forecast_id": fid[:16], "city": city.name,
        "issue_time": _iso(issue) if issue is not None else None,
        "horizon_h": risk.attrs.get("horizon_h"), "threshold_m": risk.attrs.get("threshold_m"),
        "n_members": risk.attrs.get("n_members"), "n_risk_points": len(out_points),
        "risk_points": out_points, "roads_to_close": sorted(closures.values(), key=lambda c: c["close_by"]),
        "departments": by_dept, "rules": asdict(rules),
    }


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
padding:.6em;border-left:4px solid #369}"""


def plan_html(plan: dict, *, summary: str = "", hydrograph_png: str | None = None) -> str:
    """The plan as a self-contained HTML page (for people): summary, risk points, closures, department tasks."""
    e = html.escape
    dept_names = {"drainage": "Drainage", "police": "Police", "emergency": "Emergency",
                  "city_management": "City management"}
    out = ["<!doctype html><html><head><meta charset='utf-8'><title>Response plan</title>",
           f"<style>{_CSS}</style></head><body>",
           f"<h1>Waterlogging response plan &mdash; {e(str(plan['city']))}</h1>",
           (f"<p>Issued {e(str(plan['issue_time']))}, horizon {e(str(plan['horizon_h']))} h, "
            f"{e(str(plan['n_members']))} members, depth threshold {e(str(plan['threshold_m']))} m, "
            f"forecast id <code>{e(plan['forecast_id'])}</code>.</p>")]
    if summary:
        out.append(f"<p class='sum'>{e(summary)}</p>")
    out.append(f"<h2>Risk points ({plan['n_risk_points']})</h2><table><tr><th>point</th><th>probability</th>"
               "<th>E[max] / P90 depth (m)</th><th>onset</th><th>lead (h)</th><th>departments</th></tr>")
    for p in plan["risk_points"]:
        out.append(f"<tr><td>{e(p['kind'])} {e(p['element_id'])}</td><td class='p'>{p['probability']:.2f}</td>"
                   f"<td class='p'>{p['expected_max_depth_m']:.2f} / {p['p90_max_depth_m']:.2f}</td>"
                   f"<td>{e(p['onset'])}</td><td class='p'>{p['lead_h']:.1f}</td>"
                   f"<td>{e(', '.join(dept_names[d] for d in p['departments']))}</td></tr>")
    out.append("</table>")
    out.append(f"<h2>Roads to close ({len(plan['roads_to_close'])})</h2><table><tr><th>road</th><th>name</th>"
               "<th>status</th><th>P90 depth (m)</th><th>close by</th></tr>")
    for c in plan["roads_to_close"]:
        out.append(f"<tr><td>{e(c['road_id'])}</td><td>{e(c['name'])}</td><td>{e(c['status'])}</td>"
                   f"<td class='p'>{c['p90_depth_m']:.2f}</td><td>{e(c['close_by'])}</td></tr>")
    out.append("</table>")
    for d, tasks in plan["departments"].items():
        out.append(f"<h2>{e(dept_names.get(d, d))} ({len(tasks)} tasks)</h2>")
        if not tasks:
            out.append("<p>No tasks.</p>")
            continue
        out.append("<table><tr><th>by</th><th>action</th><th>point</th><th>depot</th><th>leave by</th>"
                   "<th>travel (min)</th><th>status</th></tr>")
        for a in tasks:
            cls = a.get("status", "")
            out.append(f"<tr><td>{e(a['by'])}</td><td>{e(a['action'])}</td><td>{e(a['point_id'])}</td>"
                       f"<td>{e(str(a.get('depot_name') or a.get('depot_id') or '-'))}</td>"
                       f"<td>{e(str(a.get('leave_by', '-')))}</td><td class='p'>{a.get('travel_min', '-')}</td>"
                       f"<td class='{e(cls)}'>{e(cls)}</td></tr>")
        out.append("</table>")
    if hydrograph_png:
        out.append(f"<h2>Hydrographs at the top points</h2><img src='{e(hydrograph_png)}' style='max-width:100%'>")
    out.append("</body></html>")
    return "\n".join(out)


def write_plan_html(plan: dict, path: str | Path, **kw) -> Path:
    """Write :func:`plan_html` to ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(plan_html(plan, **kw), encoding="utf-8")
    return path
