"""KPIs of an agent run, computed from its tables only (so a stored run can be rescored).

Definitions (times in s, from the tables of :class:`agents.runner.AgentRunResult`):

- *dispatch delay* = crew dispatched - first report of the (root) case; it
  includes queueing and, in the siloed baseline, the referral (coordination) delay;
- *travel* = arrival - dispatch; *response* = arrival - first report;
- *within target*: response <= target of the level (:data:`agents.catalog.TARGET_RESPONSE_S`),
  over all field jobs requested (jobs with no arrival by the end count as misses);
- *incident response*: first crew arrival at a true incident - its first report;
- *resolution*: case closed - first report, for root cases;
- *duplicate dispatch*: a dispatch to a true incident and department that a
  dispatch from another case already covered (what merging prevents);
- *merge scoring*: a report is a true duplicate if its true incident was reported
  before; it is merged correctly if it joined a case that already held a report of
  the same true incident, merged with another incident if the case held only
  others (co-located incidents, e.g. vendors at one market), missed if it opened a
  new case;
- *utilisation* = (travel + service) / on-shift time per crew;
- *unresolved*: cases not closed, jobs not done, true incidents not resolved at the end;
- vendor *compliance* = complied / enforcements, *recidivism* = share of enforced
  vendors who occupied again after an enforcement;
- *flood exposure*: person-hours on closed roads and car trips through them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from agents.catalog import AGE_GROUPS, TARGET_RESPONSE_S
from gisdata.schema import DEPARTMENTS

STATS = ("n", "mean", "p50", "p90", "p95")


def describe_s(values) -> dict[str, float]:
    """``n``, ``mean``, ``p50``, ``p90``, ``p95`` of finite values (NaN when empty)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return {"n": 0, "mean": np.nan, "p50": np.nan, "p90": np.nan, "p95": np.nan}
    p50, p90, p95 = np.percentile(v, [50, 90, 95])
    return {"n": len(v), "mean": float(v.mean()), "p50": float(p50), "p90": float(p90), "p95": float(p95)}


def response_table(dispatches: pd.DataFrame) -> pd.DataFrame:
    """Long table of response statistics by group (``all``, each department, each level).

    Columns: ``group``, ``key``, ``measure`` (dispatch_delay_s, travel_s, response_s),
    then :data:`STATS`.
    """
    rows = []
    field = dispatches
    groups = [("all", "all", field)]
    groups += [("department", d, field[field["department"] == d]) for d in DEPARTMENTS]
    groups += [("level", str(lv), field[field["level"] == lv]) for lv in (1, 2, 3)]
    for group, key, df in groups:
        for m in ("dispatch_delay_s", "travel_s", "response_s"):
            rows.append({"group": group, "key": key, "measure": m, **describe_s(df[m] if len(df) else [])})
    return pd.DataFrame(rows)


def duplicate_flags(dispatches: pd.DataFrame, cases: pd.DataFrame) -> pd.Series:
    """True for each dispatch whose (true incident, department) another case already covered."""
    d = dispatches[dispatches["t_dispatch_s"].notna() & (dispatches["incident_id"] != "")]
    d = d.sort_values(["t_dispatch_s"], kind="stable")
    first_case: dict[tuple[str, str], str] = {}
    flags = pd.Series(False, index=dispatches.index)
    for did, inc, dept, case in zip(d.index, d["incident_id"], d["department"], d["case_id"]):
        k = (inc, dept)
        if k not in first_case:
            first_case[k] = case
        elif first_case[k] != case:
            flags[did] = True
    return flags


def merge_scores(reports: pd.DataFrame, cases: pd.DataFrame) -> dict[str, float]:
    """Merging scored against true incident IDs (see the module docstring)."""
    r = reports[reports["incident_id"] != ""].sort_values("t_received_s", kind="stable")
    true_dup = r["incident_id"].duplicated()
    merged = r["merged"].astype(bool)
    correct = merged & (r.groupby(["case_id", "incident_id"]).cumcount() > 0)
    n_dup, n_merged = int(true_dup.sum()), int(merged.sum())
    return {
        "true_duplicates": n_dup, "merged": n_merged, "merged_correct": int(correct.sum()),
        "merged_other_incident": int((merged & ~correct).sum()), "missed": int((true_dup & ~merged).sum()),
        "precision": float(correct.sum() / n_merged) if n_merged else np.nan,
        "recall": float((true_dup & correct).sum() / n_dup) if n_dup else np.nan,
    }


def compute_kpis(tables: Mapping[str, pd.DataFrame], *, horizon_s: float,
                 exposure: Mapping[str, float] | None = None,
                 targets_s: Mapping[int, float] = TARGET_RESPONSE_S) -> dict:
    """All KPIs of a run as a nested dict of plain numbers (NaN where undefined).

    Parameters
    ----------
    tables : Mapping[str, DataFrame]
        ``incidents``, ``reports``, ``cases``, ``dispatches``, ``crews``, ``vendors``.
    horizon_s : float
        Simulated duration (s).
    exposure : Mapping[str, float], optional
        Flood exposure counters from :meth:`agents.model.CityModel.exposure`.
    targets_s : Mapping[int, float]
        Target response time per level (s).
    """
    inc, rep, cases, disp = (tables[k] for k in ("incidents", "reports", "cases", "dispatches"))
    crews, vendors = tables["crews"], tables["vendors"]
    out: dict = {"horizon_s": float(horizon_s)}
    out["counts"] = {"incidents": len(inc), "reports": len(rep), "cases": len(cases), "dispatches": len(disp),
                     "dispatched": int(disp["t_dispatch_s"].notna().sum()) if len(disp) else 0,
                     "incidents_reported": int(rep.loc[rep["incident_id"] != "", "incident_id"].nunique()) if len(rep) else 0}
    # response
    rt = response_table(disp)
    out["response"] = {}
    for row in rt.to_dict("records"):
        stats = {s: (int(row[s]) if s == "n" else float(row[s])) for s in STATS}
        out["response"].setdefault(f"{row['group']}:{row['key']}", {})[row["measure"]] = stats
    target = disp["level"].map(dict(targets_s)) if len(disp) else pd.Series(dtype=float)
    within = (disp["response_s"] <= target) if len(disp) else pd.Series(dtype=bool)
    out["within_target"] = {"all": float(within.mean()) if len(disp) else np.nan}
    for lv in (1, 2, 3):
        sel = disp["level"] == lv if len(disp) else pd.Series(dtype=bool)
        out["within_target"][f"level:{lv}"] = float(within[sel].mean()) if len(disp) and sel.any() else np.nan
    # incident-level response and resolution
    if len(disp):
        arr = disp[disp["t_arrive_s"].notna() & (disp["incident_id"] != "")]
        first_arrival = arr.groupby("incident_id")["t_arrive_s"].min()
        first_report = rep[rep["incident_id"] != ""].groupby("incident_id")["time_s"].min()
        out["incident_response_s"] = describe_s((first_arrival - first_report.reindex(first_arrival.index)).to_numpy())
    else:
        out["incident_response_s"] = describe_s([])
    root = cases[cases["origin"] == "report"] if len(cases) else cases
    out["resolution_s"] = describe_s((root["t_closed_s"] - root["t_root_s"]).to_numpy() if len(root) else [])
    # duplicates and coordination
    dup = duplicate_flags(disp, cases) if len(disp) else pd.Series(dtype=bool)
    out["duplicates"] = {"dispatches": int(dup.sum()),
                         "share": float(dup.sum() / max(int(disp["t_dispatch_s"].notna().sum()), 1)) if len(disp) else 0.0,
                         **{f"reports_{k}": v for k, v in merge_scores(rep, cases).items()}} if len(rep) else {
        "dispatches": int(dup.sum()), "share": 0.0}
    coord = disp.loc[disp["coordination_s"] > 0, "coordination_s"] if len(disp) else pd.Series(dtype=float)
    out["coordination"] = {"referrals": int((cases["origin"] == "referral").sum()) if len(cases) else 0,
                           "jobs_delayed": len(coord), "total_h": float(coord.sum() / 3600.0),
                           **{f"delay_{k}": v for k, v in describe_s(coord).items() if k != "n"}}
    # crews
    if len(crews):
        util = crews["busy_s"] / crews["on_shift_s"].where(crews["on_shift_s"] > 0)
        out["utilisation"] = {"all": float(util.mean()),
                              **{d: float(util[crews["department"] == d].mean()) for d in DEPARTMENTS
                                 if (crews["department"] == d).any()}}
    else:
        out["utilisation"] = {"all": np.nan}
    # unresolved at the end
    out["unresolved"] = {
        "cases": int(cases["t_closed_s"].isna().sum()) if len(cases) else 0,
        "jobs": int((disp["status"] != "done").sum()) if len(disp) else 0,
        "jobs_never_dispatched": int(disp["t_dispatch_s"].isna().sum()) if len(disp) else 0,
        "incidents_reported_unresolved": int(inc.loc[inc.index.isin(rep["incident_id"]), "resolved_s"].isna().sum())
        if len(inc) and len(rep) else 0,
        "incidents_never_reported": int((~inc.index.isin(rep["incident_id"])).sum()) if len(inc) else 0,
    }
    # reports by age group and channel
    cit = rep[rep["age_group"] != ""] if len(rep) else rep
    out["reports_by_age"] = {g: int((cit["age_group"] == g).sum()) for g in AGE_GROUPS} if len(rep) else {}
    out["reports_by_channel"] = rep["channel"].value_counts().sort_index().to_dict() if len(rep) else {}
    out["report_share_young"] = float((cit["age_group"] == "young").mean()) if len(cit) else np.nan
    elderly = cit[cit["age_group"] == "elderly"] if len(cit) else cit
    out["elderly_app_share"] = float((elderly["channel"] == "app").mean()) if len(elderly) else np.nan
    out["reports_by_age_channel"] = (pd.crosstab(cit["age_group"], cit["channel"]).stack().to_dict()
                                     if len(cit) else {})
    out["reports_by_age_channel"] = {f"{a}:{c}": int(v) for (a, c), v in out["reports_by_age_channel"].items()}
    # vendors
    if len(vendors):
        enf = vendors["enforcements"].sum()
        enforced = vendors[vendors["enforcements"] > 0]
        out["vendors"] = {
            "occupation_hours": float(vendors["occupied_s"].sum() / 3600.0),
            "occupations": int(vendors["occupations"].sum()), "enforcements": int(enf),
            "warnings": int(vendors["warnings"].sum()), "penalties": int(vendors["penalties"].sum()),
            "compliance": float(vendors["complied"].sum() / enf) if enf else np.nan,
            "recidivism": float((enforced["reoffences"] > 0).mean()) if len(enforced) else np.nan,
            "reoffences": int(vendors["reoffences"].sum()),
        }
    else:
        out["vendors"] = {"occupation_hours": 0.0, "occupations": 0, "enforcements": 0}
    out["exposure"] = dict(exposure or {})
    return out


def flatten_kpis(kpis: Mapping, prefix: str = "") -> dict[str, float]:
    """``{"response.all:all.response_s.p90": ...}``: one flat level, for tables and comparisons."""
    flat: dict[str, float] = {}
    for k, v in kpis.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            flat.update(flatten_kpis(v, key + "."))
        else:
            flat[key] = v
    return flat
