"""The coupler: the coupled sewer + street flood, Mesa agents and SimPy dispatch on one clock (tiny city, short storm)."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from agents import flatten_kpis, simulate_day
from agents.errors import UnknownStrategyError
from agents.gridcity import make_grid_city
from hydraulics.rainfall import chicago_storm
from conftest import make_tiny_city
from twin.coupler import (
    HEADLINE_KPIS,
    CouplerError,
    CouplingOptions,
    compute_flood_schedule,
    hot_spot_risk_points,
    run_coupled,
    run_coupled_in_worker,
    sweep_strategies,
)
from twin.kpi_stats import summarise_sweep

KW = {"hours": 3.0, "n_citizens": 100, "n_vendors": 3, "seed": 1}
START_S = 1800.0
# The tiny city's streets take 10 cm at most in this storm: lower closure depths so the test sees closures.
OPTS = CouplingOptions(car_m=0.05, all_m=0.10, cell_size_m=5.0)


@pytest.fixture(scope="module")
def storm():
    return chicago_storm("beijing", 50, 60)


@pytest.fixture(scope="module")
def coupled(storm):
    events: list[dict] = []
    res = run_coupled(make_tiny_city(), strategy="priority", rain=storm, start_s=START_S, event_sink=events.append,
                      options=OPTS, **KW)
    return res, events


def test_storm_gives_flood_incidents_closures_and_log_events(coupled):
    res, events = coupled
    kinds = pd.Series([e["kind"] for e in events]).value_counts()
    n_flood = res.hydraulics["flood_incidents"]
    assert n_flood > 0 and res.hydraulics["to_surface_m3"] > 100
    assert abs(res.hydraulics["mass_balance_error_rel"]) < 0.02  # the tiny city's own SWMM continuity is ~1 %
    assert kinds["flood_threshold"] == kinds["flood_onset"] == n_flood
    inc = res.agents.incidents
    flood = inc[inc["source"] == "flood"]
    assert len(flood) == n_flood and (flood["category"] == "waterlogging").all()
    # onsets lie on coupling steps after the storm started, not before
    assert (flood["onset_s"] >= START_S + 300 - 1).all()
    # the flood was reported and crews were sent to it
    assert (res.agents.reports["incident_id"].isin(flood.index)).any()
    assert res.agents.dispatches["incident_id"].isin(flood.index).any()
    # road closures: applied to routing at the coupling time they were published, and logged then
    assert len(res.closures) >= 1 and set(res.closures["status"]) <= {"open", "closed_to_cars", "closed"}
    logged = [e["time_s"] for e in events if e["kind"] == "road_closure"]
    assert logged == pytest.approx(sorted(res.closures["time_s"].unique().tolist()))
    assert kinds.get("flood_end", 0) == int(np.isfinite(flood["end_s"]).sum())


def test_positions_series_tracks_crews_every_tick(coupled):
    res, _ = coupled
    pos = res.positions
    ticks = np.arange(0, KW["hours"] * 3600, 300.0)
    crews = pos[pos["kind"] == "crew"]
    assert sorted(crews["time_s"].unique()) == pytest.approx(ticks)
    assert crews.groupby("time_s").size().eq(len(res.agents.crews)).all()
    last = crews[crews["time_s"] == ticks[-1]].set_index("agent_id")
    assert set(last.index) == set(res.agents.crews.index)


def test_without_storm_the_coupler_adds_nothing_to_the_agents():
    city = make_grid_city(6, 6)
    a = run_coupled(city, strategy="siloed", **KW)
    b = simulate_day(city, strategy="siloed", **KW)
    fa, fb = flatten_kpis(a.kpis), flatten_kpis(b.kpis)
    assert fa.keys() == fb.keys()
    for k in fa:
        assert fa[k] == pytest.approx(fb[k], nan_ok=True), k
    assert a.flood_nodes.empty and a.closures.empty and a.hydraulics == {}


def test_flood_schedule_replays_exactly_the_live_coupling(coupled, storm):
    res, events = coupled
    sched = compute_flood_schedule(make_tiny_city(), storm, start_s=START_S, hours=KW["hours"], options=OPTS)
    live = res.agents.incidents
    live = live[live["source"] == "flood"].sort_index()
    s = sched.incidents.set_index("incident_id").sort_index()
    assert list(s.index) == list(live.index)
    assert s["time_s"].to_numpy() == pytest.approx(live["onset_s"].to_numpy())
    assert s["end_s"].to_numpy() == pytest.approx(live["end_s"].to_numpy())
    pd.testing.assert_frame_equal(sched.closures.reset_index(drop=True), res.closures.reset_index(drop=True))
    # the same agents driven by the stored schedule: the same run, event for event
    replayed_events: list[dict] = []
    again = run_coupled(make_tiny_city(), strategy="priority", flood=sched, event_sink=replayed_events.append,
                        options=OPTS, **KW)
    assert replayed_events == events
    fa, fb = flatten_kpis(again.kpis), flatten_kpis(res.kpis)
    for k in fa:
        assert fa[k] == pytest.approx(fb[k], nan_ok=True), k
    pd.testing.assert_frame_equal(again.flood_nodes, res.flood_nodes)
    with pytest.raises(CouplerError, match="not both"):
        run_coupled(make_tiny_city(), rain=storm, flood=sched, **KW)


def test_publisher_threshold_dry_end_and_closures():
    from hydraulics.urban_surface import build_urban_surface
    from twin.flood_feed import FloodPublisher

    city = make_tiny_city()
    surface = build_urban_surface(city, cell_size_m=5.0)
    opts = CouplingOptions(incident_volume_m3=5.0, car_m=0.15, all_m=0.30)
    pub = FloodPublisher(city, surface, opts, offset_s=1000.0)
    j1 = city.nodes.loc["J1"].geometry
    r, c = surface.cell_of(j1.x, j1.y)
    r, c = int(r), int(c)
    depth = np.zeros(surface.shape)
    depth[r, c] = 0.1  # 2.5 m3 on one 5 m cell next to J1
    u1 = pub.update(300, depth)
    assert u1.new_incidents.empty  # 2.5 m3 < 5 m3
    assert u1.nodes["node_id"].tolist() == ["J1"] and u1.nodes["surface_volume_m3"].iloc[0] == pytest.approx(2.5)
    # a pond of 0.5 m over the carriageway around J1: an incident, and the roads under it close
    from hydraulics.street_flood import road_depth_reader

    carriage = surface.carriageway & (np.hypot(*np.meshgrid(np.arange(surface.shape[1]) - c,
                                                           np.arange(surface.shape[0]) - r)) <= 6)
    depth[carriage] = 0.5
    u2 = pub.update(600, depth)
    assert u2.new_incidents["incident_id"].tolist() == ["FL-J1-1600"]
    assert u2.new_incidents["time_s"].iloc[0] == 1600.0 and u2.new_incidents["depth_m"].iloc[0] == 0.5
    eff = pd.Series(road_depth_reader(surface, city)(depth), index=city.roads.index.astype(str))
    assert u2.closures is not None and (eff >= 0.3).any()
    assert (u2.closures["status"].astype(str) == np.where(eff >= 0.3, "closed", "open")).all()
    # the water stays: nothing new; then the street dries: the incident ends and the road reopens
    u3 = pub.update(900, depth)
    assert u3.new_incidents.empty and u3.ended == [] and u3.closures is None
    u4 = pub.update(1200, np.zeros(surface.shape))
    assert u4.ended == ["FL-J1-1600"] and u4.nodes.empty
    assert u4.closures is not None and (u4.closures["status"] == "open").all()


def test_bad_inputs_are_clear_errors(storm):
    city = make_tiny_city()
    with pytest.raises(CouplerError, match="storm start"):
        run_coupled(city, hours=1, rain=storm, start_s=3600.0, n_citizens=10)
    with pytest.raises(CouplerError, match="seed"):
        run_coupled(city, hours=1, seed=-1, n_citizens=10)
    with pytest.raises(UnknownStrategyError, match="fastest"):
        run_coupled(city, hours=1, strategy="fastest", n_citizens=10)
    with pytest.raises(CouplerError, match="car_m"):
        CouplingOptions(car_m=0.5, all_m=0.3)


def test_forecast_staging_gets_hot_spots_without_hindsight():
    city = make_tiny_city()
    pts = hot_spot_risk_points(city, onset_s=7200.0, top_k=2)
    j2 = city.nodes.geometry["J2"]  # the one manhole with a water-level sensor
    assert pts == [(j2.x, j2.y, 7200.0)]
    res = run_coupled(city, hours=1, strategy="forecast_staging", n_citizens=20, n_vendors=0, seed=2)
    assert res.metadata["strategy_params"]["risk_points"]


def test_sweep_over_seeds_and_confidence_intervals():
    city = make_grid_city(6, 6)
    df = sweep_strategies(city, ["siloed", "priority"], range(1, 6), hours=2, n_citizens=150, n_vendors=3, crews=6)
    assert len(df) == 10 and df.groupby("strategy").size().eq(5).all()
    again = sweep_strategies(city, ["priority"], [3], hours=2, n_citizens=150, n_vendors=3, crews=6)
    row3 = df[(df["strategy"] == "priority") & (df["seed"] == 3)].iloc[0]
    for k in again.columns:
        assert again[k].iloc[0] == pytest.approx(row3[k], nan_ok=True), k  # a run is a function of its seed
    assert df.groupby("seed")["counts.reports"].nunique().max() <= 2
    s = summarise_sweep(df, HEADLINE_KPIS, baseline="siloed")
    row = s.loc[("duplicates.dispatches", "priority")]
    assert row["n"] == 5 and row["ci_low"] <= row["mean"] <= row["ci_high"]
    base = s.loc[("counts.reports", "siloed")]
    assert base["diff_mean"] == 0.0
    with pytest.raises(UnknownStrategyError):
        sweep_strategies(city, ["nope"], [1], hours=1)
    with pytest.raises(CouplerError, match="seeds"):
        sweep_strategies(city, ["siloed"], [-1], hours=1)


@pytest.mark.slow
def test_worker_process_gives_the_same_run(storm):
    city = make_tiny_city()
    seen = []
    a = run_coupled_in_worker(city, strategy="priority", rain=storm, start_s=START_S, progress=seen.append, **KW)
    b = run_coupled(city, strategy="priority", rain=storm, start_s=START_S, **KW)
    assert seen and seen[-1] == pytest.approx(1.0)
    fa, fb = flatten_kpis(a.kpis), flatten_kpis(b.kpis)
    for k in fa:
        assert fa[k] == pytest.approx(fb[k], nan_ok=True), k
    pd.testing.assert_frame_equal(a.closures, b.closures)
