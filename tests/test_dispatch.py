"""Dispatch centre and strategies: contract tests over every strategy, plus behaviour tests."""

from __future__ import annotations

import mesa
import numpy as np
import pandas as pd
import pytest
import simpy

from agents.catalog import ReportingConfig
from agents.crew import Crew
from agents.dispatch import DispatchCentre, DispatchConfig
from agents.errors import (
    AgentConfigError,
    MissingColumnError,
    StrategyConfigError,
    UnknownStrategyError,
)
from agents.gridcity import make_grid_city
from agents.routing import RoadGraph
from agents.runner import simulate_day
from agents.strategies import get_strategy, strategy_names

X0, Y0 = 500_000.0, 3_400_000.0


@pytest.fixture(scope="module")
def grid():
    return make_grid_city(8, 8)


def flood_table():
    # N003_003 and N005_001 carry water-level sensors in the grid city
    return pd.DataFrame({"x": [X0 + 450.0, X0 + 750.0], "y": [Y0 + 450.0, Y0 + 150.0],
                         "time_s": [8 * 3600.0, 9 * 3600.0], "depth_m": [0.35, 0.2], "node": ["N003_003", "N005_001"]})


def closure_table():
    return pd.DataFrame({"road_id": ["R00010", "R00011", "R00010"], "status": ["closed", "closed_to_cars", "open"],
                         "time_s": [8 * 3600.0, 8 * 3600.0, 11 * 3600.0]})


def params_for(name):
    return {"risk_points": [(X0 + 450.0, Y0 + 450.0, 8 * 3600.0)]} if name == "forecast_staging" else None


def run(city, strategy, seed=5, **kw):
    args = {"hours": 12, "n_citizens": 1500, "n_vendors": 8, "crews": 12, "seed": seed, "strategy": strategy,
            "flood_incidents": flood_table(), "closures": closure_table(), "strategy_params": params_for(strategy)}
    args.update(kw)
    return simulate_day(city, **args)


# ----------------------------------------------------------------------------- contract


@pytest.mark.parametrize("strategy", strategy_names())
def test_contract_inputs_not_mutated_ids_line_up_deterministic(grid, strategy):
    flood, closures = flood_table(), closure_table()
    roads_before = grid.roads.copy()
    res = run(grid, strategy, flood_incidents=flood, closures=closures)
    pd.testing.assert_frame_equal(flood, flood_table())
    pd.testing.assert_frame_equal(closures, closure_table())
    pd.testing.assert_frame_equal(grid.roads, roads_before)

    inc, rep, cases, disp = res.incidents, res.reports, res.cases, res.dispatches
    assert len(rep) > 0 and len(disp) > 0
    for df, idx in ((inc, "incident_id"), (rep, "report_id"), (cases, "case_id"), (disp, "dispatch_id"),
                    (res.crews, "crew_id"), (res.vendors, "vendor_id")):
        assert df.index.name == idx and df.index.is_unique
    assert rep["case_id"].isin(cases.index).all()
    assert rep.loc[rep["incident_id"] != "", "incident_id"].isin(inc.index).all()
    assert disp["case_id"].isin(cases.index).all()
    assert disp.loc[disp["crew_id"] != "", "crew_id"].isin(res.crews.index).all()
    assert cases.loc[cases["parent_case_id"] != "", "parent_case_id"].isin(cases.index).all()
    assert set(";".join(cases["incident_ids"]).split(";")) - {""} <= set(inc.index)
    assert {"FL-N003_003-28800", "FL-N005_001-32400"} <= set(inc.index)
    # times are seconds on one clock; response = dispatch delay + travel
    done = disp[disp["t_arrive_s"].notna()]
    np.testing.assert_allclose(done["response_s"], done["dispatch_delay_s"] + done["travel_s"], atol=1e-6)
    assert (done["t_dispatch_s"] >= done["t_open_s"] - 1e-9).all() and (done["travel_s"] >= 0).all()
    assert res.metadata["strategy"] == strategy and res.metadata["seed"] == 5

    again = run(grid, strategy)
    for name, df in res.tables().items():
        pd.testing.assert_frame_equal(df, again.tables()[name], obj=name)


def test_common_random_numbers_across_strategies(grid):
    a, b = run(grid, "siloed"), run(grid, "assignment")
    cols = ["category", "x", "y", "onset_s"]
    truth_a = a.incidents[a.incidents["source"] != "vendor"][cols]
    truth_b = b.incidents[b.incidents["source"] != "vendor"][cols]
    pd.testing.assert_frame_equal(truth_a, truth_b)
    pd.testing.assert_frame_equal(a.citizens.drop(columns="reports_sent"), b.citizens.drop(columns="reports_sent"))


def test_unknown_strategy_lists_valid_names(grid):
    with pytest.raises(UnknownStrategyError) as err:
        get_strategy("fastest")
    assert isinstance(err.value, KeyError)
    for name in strategy_names():
        assert name in str(err.value)
    with pytest.raises(UnknownStrategyError, match="fastest"):
        simulate_day(grid, hours=1, n_citizens=10, strategy="fastest")


def test_registry_has_the_five_strategies():
    assert set(strategy_names()) >= {"siloed", "nearest", "priority", "assignment", "forecast_staging"}


def test_forecast_staging_needs_risk_points():
    with pytest.raises(StrategyConfigError, match="risk_points"):
        get_strategy("forecast_staging")
    with pytest.raises(StrategyConfigError, match="risk"):
        get_strategy("forecast_staging", risk_map=pd.DataFrame({"x": [0.0], "y": [0.0]}))
    s = get_strategy("forecast_staging", risk_map=pd.DataFrame({"x": [1.0, 2.0], "y": [0.0, 0.0], "risk": [0.1, 0.9]}),
                     top_k=1)
    assert s.risk_points == [(2.0, 0.0, 0.0)]


# ----------------------------------------------------------------------------- duplicates and merging


def flood_only(city, strategy, merge=True, seed=11):
    return simulate_day(city, hours=12, n_citizens=4000, n_vendors=0, crews=12, seed=seed, strategy=strategy,
                        flood_incidents=flood_table(), background=False, patrol_detect_per_h=0.0,
                        reporting=ReportingConfig(misclassify_prob=0.0, location_error_m={
                            "app": 10.0, "voice": 10.0, "proxy": 10.0, "hotline": 10.0, "sensor": 0.0,
                            "patrol": 0.0, "import": 0.0}),
                        dispatch_config=DispatchConfig(merge=merge, merge_radius_m=250.0))


def test_siloed_duplicates_and_merging_removes_them(grid):
    siloed = flood_only(grid, "siloed")
    central = flood_only(grid, "nearest")
    unmerged = flood_only(grid, "nearest", merge=False)
    assert siloed.reports["channel"].nunique() >= 2  # reports reach several departments
    assert siloed.kpis["duplicates"]["dispatches"] > 0
    assert central.kpis["duplicates"]["dispatches"] == 0
    assert unmerged.kpis["duplicates"]["dispatches"] > 0
    # merging scored against true IDs: every true duplicate was merged into its own incident's case
    assert central.kpis["duplicates"]["reports_merged_correct"] == central.kpis["duplicates"]["reports_true_duplicates"]
    # siloed joint incidents wait for a referral between departments
    assert siloed.kpis["coordination"]["referrals"] > 0 and central.kpis["coordination"]["referrals"] == 0
    assert siloed.kpis["incident_response_s"]["mean"] >= central.kpis["incident_response_s"]["mean"]


# ----------------------------------------------------------------------------- unit tests on a line


class Holder(mesa.Model):
    """Minimal Mesa model that owns crews on a given graph."""

    def __init__(self, graph):
        super().__init__(rng=0)
        self.graph, self.time_s, self.tick_s = graph, 0.0, 300.0


def line_city(n=5, spacing=100.0, speed=36.0):
    ids = [f"n{i}" for i in range(n)]
    roads = pd.DataFrame({"from_node": ids[:-1], "to_node": ids[1:], "length_m": spacing, "speed_kmh": speed},
                         index=pd.Index([f"r{i}" for i in range(n - 1)], name="road_id"))
    return RoadGraph(roads, node_xy={k: (i * spacing, 0.0) for i, k in enumerate(ids)})


def centre_on(graph, crews_at, strategy="nearest", department="police", config=None, **kw):
    env = simpy.Environment()
    holder = Holder(graph)
    crews = [Crew(holder, f"{department}-{k + 1:02d}", department, "D", graph.node_index[n])
             for k, n in enumerate(crews_at)]
    events = []
    centre = DispatchCentre(env, graph, crews, strategy=strategy, rng=np.random.default_rng(0),
                            config=config or DispatchConfig(service_cv=0.0), event_sink=events.append, **kw)
    return env, centre, events


def reports(rows):
    return pd.DataFrame([{"time_s": t, "x": x, "y": 0.0, "category": c, "channel": "app",
                          "incident_id": i, "level": lv} for t, x, c, i, lv in rows])


def test_priority_serves_red_before_older_green():
    for strategy, first in (("nearest", "I2"), ("priority", "I3")):
        env, centre, _ = centre_on(line_city(), ["n0"], strategy=strategy)
        centre.submit(reports([(0.0, 0.0, "traffic", "I1", 2), (10.0, 400.0, "public_order", "I2", 1),
                               (20.0, 200.0, "traffic", "I3", 3)]))
        env.run(until=20_000)
        d = centre.tables()["dispatches"].sort_values("t_dispatch_s")
        assert d["incident_id"].tolist()[1] == first


def test_assignment_beats_greedy_on_a_line():
    # crews at n1 and n3; job A at n2 arrives first, job B at n0: greedy sends n1->n2 then n3->n0
    rows = [(0.0, 200.0, "traffic", "A", 2), (1.0, 0.0, "traffic", "B", 2)]
    travel = {}
    for strategy in ("nearest", "assignment"):
        env, centre, _ = centre_on(line_city(), ["n1", "n3"], strategy=strategy,
                                   config=DispatchConfig(service_cv=0.0, batch_dt_s=60.0))
        centre.submit(reports(rows))
        env.run(until=5000)
        d = centre.tables()["dispatches"]
        travel[strategy] = d["travel_s"].sum()
        if strategy == "assignment":
            assert (d["t_dispatch_s"] % 60.0 == 0).all()  # batch instants
    assert travel["assignment"] == pytest.approx(20.0 / 1.15) and travel["nearest"] == pytest.approx(40.0 / 1.15)


def test_closure_blocks_then_reopening_releases_the_job():
    g = line_city()
    env, centre, events = centre_on(g, ["n0"])
    centre.set_closures({"r1": "closed"})
    centre.submit(reports([(0.0, 400.0, "traffic", "A", 2)]))
    env.run(until=3000)
    assert centre.tables()["dispatches"]["status"].tolist() == ["pending"]
    centre.set_closures(None)
    env.run(until=6000)
    d = centre.tables()["dispatches"]
    assert d["status"].tolist() == ["done"] and d["t_dispatch_s"].iloc[0] == pytest.approx(3000.0)
    assert d["travel_s"].iloc[0] == pytest.approx(40.0 / 1.15)  # police drive 15 % above road speed
    assert [e["kind"] for e in events].count("road_closure") == 2


def test_crews_route_around_closed_roads_and_crawl_on_closed_to_cars():
    g = line_city()
    env, centre, _ = centre_on(g, ["n0"])
    centre.set_closures({"r1": "closed_to_cars"})
    centre.submit(reports([(0.0, 400.0, "traffic", "A", 2)]))
    env.run(until=3000)
    d = centre.tables()["dispatches"]
    # r1 at 10 km/h (36 s) + 3 x 10 s, police speed factor 1.15
    assert d["travel_s"].iloc[0] == pytest.approx((100 / (10 / 3.6) + 30.0) / 1.15)


def test_siloed_coordination_delay_has_the_configured_mean():
    g = line_city(3)
    env = simpy.Environment()
    holder = Holder(g)
    crews = [Crew(holder, f"{d}-{k}", d, "D", 0) for d in ("drainage", "police") for k in range(3)]
    centre = DispatchCentre(env, g, crews, strategy="siloed", rng=np.random.default_rng(1),
                            config=DispatchConfig(merge=False, coordination_mean_s=1800.0, service_cv=0.0))
    rows = pd.DataFrame({"time_s": np.arange(300) * 20_000.0, "x": 0.0, "y": 0.0, "category": "waterlogging",
                         "channel": "sensor", "incident_id": [f"F{i}" for i in range(300)], "level": 2})
    centre.submit(rows)
    env.run(until=300 * 20_000.0)
    d = centre.tables()["dispatches"]
    police = d[d["department"] == "police"]
    assert len(police) == 300 and (d.loc[d["department"] == "drainage", "coordination_s"] == 0).all()
    assert police["coordination_s"].mean() == pytest.approx(1800.0, rel=0.15)


def test_forecast_staging_moves_crews_before_onset(grid):
    onset = 8 * 3600.0
    flood = pd.DataFrame({"x": [X0 + 1050.0], "y": [Y0 + 1050.0], "time_s": [onset], "depth_m": [0.4],
                          "node": ["N007_007"]})
    kw = {"hours": 12, "n_citizens": 0, "n_vendors": 0, "crews": 8, "seed": 3, "flood_incidents": flood,
          "background": False}
    staged = simulate_day(grid, strategy="forecast_staging",
                          strategy_params={"risk_points": [(X0 + 1050.0, Y0 + 1050.0, onset)], "lead_s": 1800.0}, **kw)
    plain = simulate_day(grid, strategy="priority", **kw)
    s = staged.dispatches[staged.dispatches["category"] == "waterlogging"]
    p = plain.dispatches[plain.dispatches["category"] == "waterlogging"]
    assert s["travel_s"].max() < 1.0 < p["travel_s"].min()
    assert staged.kpis["incident_response_s"]["mean"] < plain.kpis["incident_response_s"]["mean"]


def test_remote_mode_needs_no_crew():
    env, centre, _ = centre_on(line_city(), ["n0"])
    centre.submit(reports([(0.0, 100.0, "noise", "N1", 1)]))
    env.run(until=2000)
    t = centre.tables()
    assert len(t["dispatches"]) == 0 and t["cases"]["t_closed_s"].iloc[0] == pytest.approx(300.0)


def test_constructor_and_submit_validation():
    g = line_city()
    env = simpy.Environment()
    with pytest.raises(AgentConfigError, match="n_crews=0"):
        DispatchCentre(env, g, [], rng=np.random.default_rng(0))
    with pytest.raises(AgentConfigError, match="merge_radius_m=-1"):
        DispatchConfig(merge_radius_m=-1)
    with pytest.raises(AgentConfigError, match="batch_dt_s=0"):
        DispatchConfig(batch_dt_s=0)
    env, centre, _ = centre_on(g, ["n0"])
    with pytest.raises(MissingColumnError, match="channel"):
        centre.submit(pd.DataFrame({"time_s": [0.0], "x": [0.0], "y": [0.0], "category": ["traffic"]}))
    with pytest.raises(AgentConfigError, match="flood"):
        centre.submit(reports([(0.0, 0.0, "flood", "A", 1)]))


# ----------------------------------------------------------------------------- KPIs


def test_kpis_are_sane(grid):
    res = run(grid, "priority")
    k = res.kpis
    assert k["counts"]["dispatched"] <= k["counts"]["dispatches"]
    assert k["counts"]["cases"] <= k["counts"]["reports"]
    for key, block in k["response"].items():
        for measure, st in block.items():
            if st["n"]:
                assert st["p50"] <= st["p90"] <= st["p95"] + 1e-9, (key, measure)
                assert st["mean"] >= 0
    assert 0 <= k["within_target"]["all"] <= 1
    assert all(0 <= v <= 1 for v in k["utilisation"].values() if np.isfinite(v))
    assert sum(k["reports_by_age"].values()) + k["reports_by_channel"].get("sensor", 0) \
        + k["reports_by_channel"].get("patrol", 0) == k["counts"]["reports"]
    assert k["vendors"]["occupation_hours"] > 0
    assert k["exposure"]["trips"] > 0 and k["exposure"]["person_trips_closed_roads"] >= k["exposure"]["vehicle_trips_closed_roads"]
    assert k["duplicates"]["reports_true_duplicates"] >= k["duplicates"]["reports_merged_correct"]
    # departments and levels all appear as groups
    assert {"department:drainage", "level:3", "all:all"} <= set(k["response"])


def test_runs_on_the_generated_small_city():
    pytest.importorskip("gisdata.synth", reason="the synthetic city generator is not in this tree yet")
    from gisdata import load_city

    city = load_city("small")
    res = simulate_day(city, hours=10, n_citizens=3000, n_vendors=20, crews=12, seed=2, strategy="priority")
    assert res.kpis["counts"]["dispatched"] > 0
    assert res.reports["case_id"].isin(res.cases.index).all()
    assert res.metadata["city"] == city.name


def test_a_later_report_escalates_an_open_case():
    env, centre, _ = centre_on(line_city(), ["n0"])
    centre.submit(reports([(0.0, 0.0, "traffic", "A", 2), (10.0, 400.0, "public_order", "B", 1),
                           (20.0, 410.0, "public_order", "B", 3)]))
    env.run(until=60)
    t = centre.tables()
    case_b = t["reports"].loc[t["reports"]["incident_id"] == "B", "case_id"].unique()
    assert len(case_b) == 1 and t["cases"].loc[case_b[0], "level"] == 3
    assert t["dispatches"].set_index("case_id").loc[case_b[0], "level"] == 3


def test_kpis_on_hand_made_tables():
    from agents.kpis import compute_kpis, duplicate_flags, merge_scores

    nan = np.nan
    cases = pd.DataFrame({"unit": ["police", "drainage", "police"], "category": "waterlogging", "level": 3,
                          "t_root_s": [0.0, 60.0, 0.0], "t_closed_s": [1000.0, 2000.0, nan],
                          "origin": ["report", "report", "referral"], "incident_id": ["F1", "F1", "F1"],
                          "parent_case_id": ["", "", "C1"]}, index=pd.Index(["C1", "C2", "C3"], name="case_id"))
    disp = pd.DataFrame({
        "case_id": ["C1", "C2", "C3"], "incident_id": "F1", "department": ["police", "drainage", "police"],
        "level": 3, "crew_id": ["p1", "d1", "p2"], "status": ["done", "done", "en_route"],
        "t_open_s": [0.0, 60.0, 0.0], "t_dispatch_s": [100.0, 160.0, 2600.0], "t_arrive_s": [700.0, 1060.0, nan],
        "t_done_s": [1000.0, 2000.0, nan], "coordination_s": [0.0, 0.0, 2520.0],
        "dispatch_delay_s": [100.0, 100.0, 2600.0], "travel_s": [600.0, 900.0, nan],
        "service_s": [300.0, 940.0, nan], "response_s": [700.0, 1000.0, nan],
    }, index=pd.Index(["D1", "D2", "D3"], name="dispatch_id"))
    reports = pd.DataFrame({"time_s": [0.0, 60.0, 90.0], "t_received_s": [0.0, 60.0, 90.0],
                            "incident_id": ["F1", "F1", "F1"], "case_id": ["C1", "C2", "C1"],
                            "merged": [False, False, True], "channel": ["hotline", "sensor", "app"],
                            "age_group": ["adult", "", "young"]}, index=pd.Index(["R1", "R2", "R3"], name="report_id"))
    assert duplicate_flags(disp, cases).tolist() == [False, False, True]  # C3 sends police again
    ms = merge_scores(reports, cases)
    assert ms["true_duplicates"] == 2 and ms["merged_correct"] == 1 and ms["missed"] == 1 and ms["precision"] == 1.0
    crews = pd.DataFrame({"department": ["police", "drainage"], "busy_s": [900.0, 1840.0],
                          "on_shift_s": [3600.0, 3600.0]}, index=pd.Index(["p1", "d1"], name="crew_id"))
    incidents = pd.DataFrame({"resolved_s": [nan]}, index=pd.Index(["F1"], name="incident_id"))
    vendors = pd.DataFrame(columns=["occupied_s"])
    k = compute_kpis({"incidents": incidents, "reports": reports, "cases": cases, "dispatches": disp,
                      "crews": crews, "vendors": vendors}, horizon_s=3600.0)
    assert k["response"]["all:all"]["response_s"]["mean"] == pytest.approx(850.0)
    assert k["response"]["department:police"]["travel_s"]["n"] == 1
    assert k["within_target"]["level:3"] == pytest.approx(1 / 3)  # 700 s in, 1000 s late, D3 never arrived
    assert k["incident_response_s"]["mean"] == pytest.approx(700.0)  # first arrival - first report
    assert k["resolution_s"]["n"] == 2 and k["resolution_s"]["mean"] == pytest.approx((1000.0 + 1940.0) / 2)
    assert k["duplicates"]["dispatches"] == 1 and k["coordination"]["referrals"] == 1
    assert k["coordination"]["delay_mean"] == pytest.approx(2520.0)
    assert k["utilisation"]["police"] == pytest.approx(0.25)
    assert k["unresolved"] == {"cases": 1, "jobs": 1, "jobs_never_dispatched": 0, "incidents_reported_unresolved": 1,
                               "incidents_never_reported": 0}
    assert k["reports_by_age"] == {"young": 1, "adult": 1, "elderly": 0} and k["report_share_young"] == 0.5
