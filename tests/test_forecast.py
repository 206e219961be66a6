"""The forecast pipeline: issue state and model hash, splicing rain, risk reduction, plans, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from gisdata.city import load_city
from hydraulics.build import DEFAULT_START, build_swmm
from hydraulics.ensemble import build_surface_context
from hydraulics.forecast import (
    Forecast,
    ForecastError,
    ForecastSettings,
    HotstartMismatchError,
    check_resources,
    compute_issue_state,
    estimate_resources,
    load_issue_state,
    model_hash,
    points_table,
    run_forecast,
    sidecar_path,
    splice_rain,
)
from hydraulics.plan import PlanRules, build_plan, plan_html
from hydraulics.qpf import deterministic, perturb_qpf
from hydraulics.rain_series import RainSeries
from hydraulics.rainfall import chicago_storm
from hydraulics.risk import compute_risk, risk_layer, summary_line


@pytest.fixture(scope="module")
def small():
    return load_city("small")


def _lead_qpf(hours=8, start_h=2, duration_min=180, p=50):
    storm = chicago_storm("beijing", p, duration_min)
    v = np.zeros(hours * 12)
    k = start_h * 12
    v[k:k + len(storm.intensity_mm_h)] = storm.intensity_mm_h["RG1"].to_numpy()
    return RainSeries(pd.DataFrame({"RG1": v}, index=np.arange(len(v)) * 300), step_s=300, label="qpf")


@pytest.fixture(scope="module")
def small_state(small, tmp_path_factory):
    path = tmp_path_factory.mktemp("state") / "state.hsf"
    return compute_issue_state(small, None, DEFAULT_START + pd.Timedelta(hours=1), path)


@pytest.fixture(scope="module")
def small_forecast(small, small_state):
    ens = perturb_qpf(_lead_qpf(), 3, seed=3)
    return run_forecast(small, small_state, ens, horizon_h=8, scheduler="inline")


# ----------------------------------------------------------------------------- state


def test_issue_state_carries_model_hash(small, small_state):
    side = json.loads(sidecar_path(small_state.hotstart).read_text())
    assert side["model_sha256"] == model_hash(build_swmm(small)) == small_state.model_sha256
    again = load_issue_state(small_state.hotstart, city=small)
    assert again.issue_time == DEFAULT_START + pd.Timedelta(hours=1)


def test_hotstart_from_another_model_is_refused(small, small_state, tiny_city, tmp_path):
    other = compute_issue_state(tiny_city, None, DEFAULT_START + pd.Timedelta(hours=1), tmp_path / "tiny.hsf")
    with pytest.raises(HotstartMismatchError, match="another model"):
        load_issue_state(other.hotstart, city=small)
    with pytest.raises(HotstartMismatchError, match="another model"):
        run_forecast(small, other, deterministic(_lead_qpf()), horizon_h=2, scheduler="inline")
    bare = tmp_path / "bare.hsf"
    bare.write_bytes(small_state.hotstart.read_bytes())
    with pytest.raises(HotstartMismatchError, match="no model hash"):
        load_issue_state(bare, city=small)


def test_model_hash_ignores_rain_and_options(small):
    a = build_swmm(small, rain_gauges=_lead_qpf(), options={"ROUTING_STEP": "30"})
    assert model_hash(a) == model_hash(build_swmm(small))


def test_splice_rain_equals_building(small):
    from hydraulics.qpf import spread_to_gauges

    q1, q2 = (spread_to_gauges(q, ["RG01"]) for q in (_lead_qpf(p=5), _lead_qpf(p=100, start_h=3)))
    start = pd.Timestamp("2024-07-02 03:00")

    def frame(q):
        f = q.intensity_mm_h.copy()
        f.index = pd.DatetimeIndex(start + pd.to_timedelta(f.index, unit="s"))
        return f

    base = build_swmm(small, rain_gauges=frame(q1), drain_time_h=0)
    assert splice_rain(base, q2) == build_swmm(small, rain_gauges=frame(q2), drain_time_h=0)
    with pytest.raises(ForecastError, match="gauges"):
        splice_rain(base, _lead_qpf())


# ----------------------------------------------------------------------------- risk


def _fake_forecast(series_by_member, weights, n_points=4, step=300.0):
    pts = pd.DataFrame({"kind": ["road"] * n_points, "element_id": [f"R{k}" for k in range(n_points)]},
                       index=pd.Index([f"road:R{k}" for k in range(n_points)], name="point_id"))
    members = pd.DataFrame({"status": ["ok"] * len(weights)}, index=list(weights))
    return Forecast("fake", pd.Timestamp("2024-07-01"), 6 * 3600.0, pts, series_by_member, weights, members, step,
                    ForecastSettings())


def test_risk_probabilities_bounded_and_monotone_in_threshold():
    rng = np.random.default_rng(0)
    series, weights = {}, {}
    for m in range(8):
        n = 30
        series[f"m{m}"] = pd.DataFrame({"point": rng.integers(0, 4, n), "t_s": rng.integers(1, 72, n) * 300.0,
                                        "depth_m": rng.uniform(0.01, 0.6, n).astype("float32")})
        weights[f"m{m}"] = 1 / 8
    fc = _fake_forecast(series, weights)
    prev = None
    for thr in (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7):
        r = compute_risk(fc, threshold_m=thr, keep_all=True).sort_index()
        p = r["probability"].to_numpy()
        assert ((p >= 0) & (p <= 1)).all()
        if prev is not None:
            assert (p <= prev + 1e-12).all()
        prev = p
    assert prev.max() == 0.0  # nothing exceeds 0.7 m


def test_risk_statistics_by_hand():
    # Two members (weights 0.75 / 0.25) at point 0: depths 0.3 m from 1 h, and 0.1 m.
    s1 = pd.DataFrame({"point": [0, 0], "t_s": [3600.0, 3900.0], "depth_m": np.float32([0.2, 0.3])})
    s2 = pd.DataFrame({"point": [0], "t_s": [7200.0], "depth_m": np.float32([0.1])})
    r = compute_risk(_fake_forecast({"a": s1, "b": s2}, {"a": 0.75, "b": 0.25}), threshold_m=0.15)
    row = r.loc["road:R0"]
    assert row["probability"] == pytest.approx(0.75)
    assert row["expected_max_depth_m"] == pytest.approx(0.75 * 0.3 + 0.25 * 0.1, abs=1e-6)
    assert row["p90_max_depth_m"] == pytest.approx(0.3, abs=1e-6)
    assert row["lead_h"] == pytest.approx(1.0) and row["duration_h"] == pytest.approx(10 / 60)
    assert bool(row["is_risk_point"]) and row["rank"] == 1
    assert summary_line(r).startswith("1 risk points in the next 6 h")


def test_small_forecast_risk_layer_and_plan(small, small_forecast):
    fc = small_forecast
    assert list(fc.members["status"]) == ["ok"] * 3
    assert sum(fc.weights.values()) == pytest.approx(1.0)
    risk = compute_risk(fc, threshold_m=0.1)
    assert risk["is_risk_point"].any(), "a 50-year storm on the small city makes risk points"
    rp = risk[risk["is_risk_point"]]
    assert (rp["lead_h"] >= 2.0 - 1e-9).all()  # the storm starts 2 h after issue
    layer = risk_layer(risk, small)
    assert layer.crs == small.crs and len(layer) == len(risk)
    plan = build_plan(risk, small, rules=PlanRules(prob_threshold=0.5))
    assert plan["n_risk_points"] == len(rp)
    for p in plan["risk_points"]:
        assert p["onset"] and p["lead_h"] >= 2.0 - 1e-9 and p["departments"]
        for a in p["actions"]:
            assert a["depot_id"] in small.depots.index
            assert small.depots.loc[a["depot_id"], "department"] == a["department"]
            assert a["by"] <= p["onset"]
    assert build_plan(risk, small) == plan  # reproducible from the forecast
    json.dumps(plan)
    page = plan_html(plan, summary=summary_line(risk))
    assert "Roads to close" in page and "Drainage" in page


def test_plan_on_tiny_city_closes_roads_and_assigns_crews(tiny_city):
    risk = pd.DataFrame({
        "kind": ["road", "district", "manhole"], "element_id": ["C5", "D1", "J1"],
        "probability": [0.9, 0.6, 0.2], "expected_max_depth_m": [0.4, 0.2, 0.1],
        "p90_max_depth_m": [0.5, 0.25, 0.15],
        "onset": pd.to_datetime(["2024-07-03 01:00", "2024-07-03 02:00", "2024-07-03 03:00"]),
        "lead_h": [49.0, 50.0, 51.0]}, index=["road:C5", "district:D1", "manhole:J1"])
    risk.attrs.update(issue_time="2024-07-01T00:00", horizon_h=72, threshold_m=0.15, n_members=10)
    plan = build_plan(risk, tiny_city)
    assert [p["point_id"] for p in plan["risk_points"]] == ["road:C5", "district:D1"]
    assert [c["road_id"] for c in plan["roads_to_close"]] == ["C5"]
    assert plan["roads_to_close"][0]["status"] == "closed"
    depts = set(plan["risk_points"][0]["departments"])
    assert {"drainage", "police", "emergency", "city_management"} <= depts  # V1 market is 80 m away
    # Two drainage crews at DP2: the third drainage task is unstaffed, not dropped.
    statuses = [a["status"] for a in plan["departments"]["drainage"]]
    assert statuses.count("unstaffed") == len(statuses) - 2


def test_resource_checks_refuse_big_ensembles():
    est = estimate_resources(100000, 1000, 2000, 72 * 3600, 300, 2)
    with pytest.raises(ForecastError, match="too large for this machine"):
        check_resources(est, time_limit_s=None, available_mb=16000)
    est = estimate_resources(50, 1000, 2000, 72 * 3600, 300, 2)
    with pytest.raises(ForecastError, match="time limit"):
        check_resources(est, time_limit_s=10, available_mb=16000)
    check_resources(est, time_limit_s=None, available_mb=16000)


def test_time_limit_refused_before_running(small, small_state):
    with pytest.raises(ForecastError, match="time limit"):
        run_forecast(small, small_state, perturb_qpf(_lead_qpf(), 50, seed=1), horizon_h=6,
                     scheduler="inline", time_limit_s=0.01)


def test_points_are_places_crews_go_never_manholes_or_the_river(small):
    ctx = build_surface_context(small)
    pts = points_table(ctx)
    assert set(pts["kind"]) <= {"road", "sag", "entrance", "district"}
    assert (pts["kind"] == "road").sum() == len(small.roads)
    marked = small.roads["sag"].fillna("").astype(str) != "" if "sag" in small.roads.columns else []
    assert (pts["kind"] == "sag").sum() == int(sum(marked))  # one per underpass or low crossing
    assert (pts["kind"] == "district").sum() == len(small.districts)
    ent = pts[pts["kind"] == "entrance"]
    assert 0 < len(ent) <= len(small.buildings) and set(ent["element_id"]) <= set(small.buildings.index)
    # every point has a place to go, and none of them lies in the river
    assert np.isfinite(pts[["x", "y"]].to_numpy()).all()
    r, c = ctx.surface.cell_of(pts["x"].to_numpy(), pts["y"].to_numpy())
    on_river = ctx.surface.river[np.asarray(r), np.asarray(c)]
    assert not on_river[(pts["kind"] != "road").to_numpy()].any()
    # a road's depth is read on its carriageway cells only, never on river cells (a bridge deck is river)
    assert not (ctx.road_labels[ctx.surface.river] >= 0).any()


# ----------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_cli_forecast_writes_outputs(tmp_path):
    from twin.cli import cli

    out = tmp_path / "fc"
    res = CliRunner().invoke(cli, ["forecast", "--city", "small", "--storm", "chicago", "--return-period", "50",
                                   "--duration", "3h", "--start-in", "2h", "--hours", "8", "--members", "2",
                                   "--workers", "2", "--threshold", "0.1", "--no-progress", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "risk points in the next 8 h" in res.output
    for f in ("risk_points.csv", "plan.json", "plan.html", "hydrographs.png", "members/members.csv",
              "members/member_m000.parquet", "members/member_m001_series.parquet", "state.hsf.json"):
        assert (out / f).exists(), f
    plan = json.loads((out / "plan.json").read_text())
    for p in plan["risk_points"]:
        assert p["onset"] and p["lead_h"] >= 2 - 1e-9 and p["departments"]


@pytest.mark.parametrize("args, text", [
    (["--city", "small", "--qpf", "missing.csv", "--out", "x"], "not found"),
    (["--city", "small", "--out", "x"], "exactly one rain forecast"),
    (["--city", "small", "--storm", "chicago", "--duration", "1h", "--out", "x"], "--return-period"),
    (["verify", "--city", "small", "--storm", "chicago", "--return-period", "5", "--duration", "1h", "--out", "x"],
     "--perfect"),
])
def test_cli_errors_are_one_line_exit_2(tmp_path, args, text, monkeypatch):
    from twin.cli import cli

    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["forecast", *args])
    assert res.exit_code == 2, res.output
    assert text in res.output and len(res.output.strip().splitlines()) == 1
