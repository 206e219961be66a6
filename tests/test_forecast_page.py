"""The forecast job behind ``twin forecast`` and the Flood forecast page, and the page's tables and map.

One short forecast on the tiny city (a 60 min, 50-year storm starting 2 h
after issue, 3 members, 6 h horizon) runs in its own process once per
module; the other tests reduce it again or check the helpers around it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from gisdata.errors import TwinError
from hydraulics.forecast import ForecastError
from hydraulics.qpf import EnsembleError, QPFError, design_storm_qpf, perturb_qpf
from hydraulics.risk import compute_risk
from twin.forecast_job import (
    STAGES,
    ForecastJobError,
    make_ensemble,
    read_uploaded_ensemble,
    read_uploaded_qpf,
    reduce_forecast,
    run_forecast_job,
    run_forecast_job_in_process,
)
from twin.i18n import t
from twin.pages import forecast as page
from twin.viz import risk_map


def _storm():
    return design_storm_qpf("beijing", 50, 3600, 7200)


@pytest.fixture(scope="module")
def city():
    from conftest import make_tiny_city

    return make_tiny_city()


@pytest.fixture(scope="module")
def job(city, tmp_path_factory):
    """The forecast job in its own process, with every progress report it gave."""
    reports = []
    out = tmp_path_factory.mktemp("forecast")
    # the tiny city's streets take under 0.15 m in this storm (the 2D surface spreads it): risk from 0.05 m
    res = run_forecast_job_in_process(city, out, qpf=_storm(), members=3, seed=4, hours=6, workers=2,
                                      threshold_m=0.05, on_progress=reports.append)
    return res, reports


# ----------------------------------------------------------------------------- the job


def test_job_writes_the_cli_files_and_reports_members(job, city):
    res, reports = job
    out = res.out_dir
    for name in ("risk_points.csv", "risk_points.gpkg", "hydrographs.png", "plan.json", "plan.html",
                 "forecast.json", "state.hsf", "state.hsf.json", "members/members.csv"):
        assert (out / name).exists(), name
    assert not list(out.rglob("*.part"))  # every file renamed into place
    plan = json.loads((out / "plan.json").read_text())
    assert plan == json.loads(json.dumps(res.outputs.plan))
    assert plan["n_risk_points"] == int(res.outputs.risk["is_risk_point"].sum()) > 0
    meta = json.loads((out / "forecast.json").read_text())
    assert meta["summary"] == res.outputs.summary
    assert meta["members"] == 3 and meta["failed_members"] == 0
    table = pd.read_csv(out / "risk_points.csv", index_col="point_id")
    assert list(table.index) == list(res.outputs.risk.index)
    # The table is the forecast's own reduction at the job's thresholds.
    pd.testing.assert_frame_equal(res.outputs.risk, compute_risk(res.forecast, threshold_m=0.05, prob_threshold=0.5,
                                                                 city=city))

    stages = [p.stage for p in reports]
    assert stages[0] == "start" and stages[-1] == "done"
    assert [s for i, s in enumerate(stages) if i == 0 or s != stages[i - 1]] == list(STAGES)
    members = [(p.done, p.total) for p in reports if p.stage == "members"]
    assert members[0] == (0, 3) and members[-1] == (3, 3)
    fractions = [p.fraction for p in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    elapsed = [p.elapsed_s for p in reports]
    assert elapsed == sorted(elapsed)


def test_reduce_again_at_other_thresholds(job, city, tmp_path):
    res, _ = job
    higher = reduce_forecast(res.forecast, city, tmp_path, threshold_m=0.3, prob_threshold=0.5)
    base = res.outputs.risk
    assert (higher.risk["probability"].reindex(base.index).fillna(0) <= base["probability"] + 1e-12).all()
    assert higher.risk.attrs["threshold_m"] == 0.3
    for key in ("risk_points", "hydrographs", "plan_json", "plan_html"):
        assert Path(higher.files[key]).parent == tmp_path
    html = higher.standalone_plan_html()
    assert "data:image/png;base64," in html and "hydrographs.png" not in html


def test_job_refuses_inconsistent_rain_before_running(city, tmp_path):
    out = tmp_path / "never"
    with pytest.raises(ForecastJobError, match="exactly one rain forecast"):
        run_forecast_job(city, out, qpf=_storm(), ensemble=tmp_path)
    with pytest.raises(ForecastJobError, match="members=0"):
        run_forecast_job(city, out, qpf=_storm(), members=0)
    assert not out.exists()  # nothing half-written


def test_job_error_in_its_process_comes_back_typed(city, tmp_path):
    with pytest.raises(ForecastError, match="settings 'nope' unknown") as info:
        run_forecast_job_in_process(city, tmp_path, qpf=_storm(), members=1, hours=3, settings="nope")
    assert isinstance(info.value, TwinError)


def test_interrupted_job_ends_its_processes(city, tmp_path):
    import psutil

    class Stop(Exception):
        pass

    def stop_while_members_run(p):
        # Once the members' pool is up (job process + its workers), stop, as Streamlit
        # stops a script when the user changes a widget mid-run.
        if p.stage == "members" and len(psutil.Process().children(recursive=True)) >= 3:
            raise Stop

    with pytest.raises(Stop):
        run_forecast_job_in_process(city, tmp_path, qpf=_storm(), members=2, hours=72, settings="reference",
                                    workers=2, heartbeat_s=0.1, on_progress=stop_while_members_run)
    left = [c for c in psutil.Process().children(recursive=True) if c.is_running()
            and c.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(c.cmdline())]
    assert not left, [c.cmdline() for c in left]


# ----------------------------------------------------------------------------- rain


def test_make_ensemble_is_the_seeded_error_model(city):
    ens = make_ensemble(city, qpf=_storm(), members=3, seed=4)
    same = perturb_qpf(_storm(), 3, seed=4, gauges=["RG1"])
    assert ens.names == same.names
    for a, b in zip(ens.members, same.members):
        pd.testing.assert_frame_equal(a.intensity_mm_h, b.intensity_mm_h)
    with pytest.raises(ForecastJobError, match="exactly one"):
        make_ensemble(city)


def test_uploaded_qpf_error_names_the_file_and_row():
    data = b"lead_h,RG1_mm_h\n0,0\n1,x\n2,0\n"
    with pytest.raises(QPFError) as info:
        read_uploaded_qpf("my qpf.csv", data)
    msg = str(info.value)
    assert msg.startswith("my qpf.csv:3: ") and "field 'RG1_mm_h'" in msg and "not a number" in msg
    assert "citytwin-qpf-" not in msg  # the temporary folder is not named
    assert isinstance(info.value, TwinError) and info.value.line == 3
    q = read_uploaded_qpf("ok.csv", b"lead_h,RG1_mm_h\n0,0\n1,4.5\n2,0\n")
    assert q.step_s == 3600 and float(q.depth_mm["RG1"]) == pytest.approx(4.5)


def test_uploaded_ensemble_members_are_named_by_file():
    good = b"lead_h,RG1_mm_h\n0,0\n1,10\n2,0\n"
    ens = read_uploaded_ensemble([("wet.csv", good), ("dry.csv", b"lead_h,RG1_mm_h\n0,0\n1,0\n2,0\n")])
    assert ens.names == ("wet", "dry") and ens.weights == (0.5, 0.5)
    with pytest.raises(QPFError, match=r"^bad\.csv:2: field 'RG1_mm_h': -1 is negative"):
        read_uploaded_ensemble([("wet.csv", good), ("bad.csv", b"lead_h,RG1_mm_h\n0,-1\n")])
    with pytest.raises(EnsembleError):
        read_uploaded_ensemble([("a.csv", good), ("a.csv", good)])


# ----------------------------------------------------------------------------- page helpers


def test_risk_table_and_plan_tables_are_translated(job):
    res, _ = job
    risk, plan = res.outputs.risk, res.outputs.plan
    for lang in ("en", "zh"):
        df = page.risk_table_display(risk, lang)
        assert list(df.columns)[:4] == [t(f"forecast.col.{c}", lang) for c in ("rank", "kind", "element_id",
                                                                               "probability")]
        assert len(df) == len(risk)
        assert set(df[t("forecast.col.kind", lang)]) <= {t(f"forecast.kind.{k}", lang)
                                                          for k in ("road", "sag", "entrance", "district")}
        tasks = page.plan_tasks_display(plan, lang)
        assert len(tasks) == sum(len(v) for v in plan["departments"].values()) > 0
        assert t("forecast.plan.col.department", lang) in tasks.columns
        assert len(page.plan_roads_display(plan, lang)) == len(plan["roads_to_close"])
    assert t("forecast.col.kind", "zh") != t("forecast.col.kind", "en")


def test_metrics_summary_and_progress_text(job):
    from twin.forecast_job import JobProgress

    res, _ = job
    labels = [label for label, _ in page.forecast_metrics(res.forecast, res.outputs.risk, "en")]
    assert labels[0] == t("forecast.metric.risk_points", "en")
    values = dict(page.forecast_metrics(res.forecast, res.outputs.risk, "en"))
    assert values[t("forecast.metric.members", "en")] == "3 of 3"
    text = page.progress_text(JobProgress("members", 0.5, 1, 3, 12.0), "en")
    assert text == "Ensemble members: 1 of 3 finished (12 s)"
    assert "3" in page.progress_text(JobProgress("members", 0.5, 1, 3, 12.0), "zh")


def test_risk_map_colours_points_by_probability(job, city):
    res, _ = job
    risk = res.outputs.risk
    deck = risk_map.risk_deck(city, risk, lang="en")
    ids = [layer.id for layer in deck.layers]
    assert ids[0] == "terrain" and "roads_all" in ids and "buildings" in ids
    kinds = set(risk.loc[risk["probability"] > 0, "kind"])
    assert ("risk_districts" in ids) == ("district" in kinds)
    assert ("risk_roads" in ids) == ("road" in kinds)
    assert deck.to_json().count("__MAP_STYLE__") == 1  # style left unset: Streamlit draws no basemap
    rgb = risk_map.probability_rgb([0.0, 0.2, 1.0])
    assert rgb[0].tolist() == risk_map.NO_RISK_RGB
    assert rgb[2][1] < rgb[1][1]  # darker / redder at higher probability
    assert t("forecast.legend.probability", "zh") in risk_map.risk_legend_html("zh")


def test_ensemble_key_and_chart():
    ens = perturb_qpf(_storm(), 3, seed=1)
    assert page.ensemble_key("a", ens, hours=6.0) == page.ensemble_key("a", ens, hours=6.0)
    assert page.ensemble_key("a", ens, hours=6.0) != page.ensemble_key("a", perturb_qpf(_storm(), 3, seed=2),
                                                                        hours=6.0)
    df = page.ensemble_frame(ens, 6.0)
    assert set(df["member"]) == set(ens.names) and df["lead_h"].max() < 6.0
    assert page.ensemble_chart(ens, 6.0, lang="zh").to_dict()["title"] == t("forecast.chart.title", "zh")
    assert "3" in page.ensemble_summary(ens, 6.0, "en")


# ----------------------------------------------------------------------------- the page, headless


@pytest.fixture
def app(tmp_path, monkeypatch):
    from conftest import make_tiny_city
    from streamlit.testing.v1 import AppTest

    from gisdata.city import save_city

    monkeypatch.setenv("CITYTWIN_APP_CITY", str(save_city(make_tiny_city(), tmp_path / "tiny.gpkg")))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=120).run()
    at.sidebar.radio(key="page__en").set_value("forecast").run()
    return at


def test_page_shows_a_bad_qpf_upload_as_an_error_naming_the_row(app):
    assert not app.exception, [e.value for e in app.exception]
    assert [i.value for i in app.info] == [t("forecast.not_run", "en")]
    app.radio(key="fc_rain__en").set_value("qpf").run()
    assert [i.value for i in app.info] == [t("forecast.upload_hint", "en")]
    app.file_uploader(key="fc_qpf_file").set_value(("storm.csv", b"lead_h,RG1_mm_h\n0,0\n1,x\n", "text/csv")).run()
    assert not app.exception, [e.value for e in app.exception]
    errors = [e.value for e in app.error]
    assert errors == [t("forecast.qpf_error", "en", error="storm.csv:3: field 'RG1_mm_h': 'x' is not a number")]
    assert not app.button  # no run offered for a bad forecast
    app.file_uploader(key="fc_qpf_file").set_value(("storm.csv", b"lead_h,RG1_mm_h\n0,0\n1,20\n2,0\n",
                                                     "text/csv")).run()
    assert not app.error and app.button(key="fc_run").label == t("forecast.run", "en")


def test_page_runs_and_rethresholds_without_a_new_run(app):
    app.select_slider(key="fc_hours").set_value(6)
    app.select_slider(key="fc_start_h").set_value(2)
    app.select_slider(key="fc_duration").set_value(60)
    app.select_slider(key="fc_threshold").set_value(0.05)  # the tiny city's streets take under 0.15 m
    app.number_input(key="fc_members").set_value(3).run()
    app.button(key="fc_run").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert not app.error, [e.value for e in app.error]
    metrics = {m.label: m.value for m in app.metric}
    assert metrics[t("forecast.metric.members", "en")] == "3 of 3"
    assert int(metrics[t("forecast.metric.risk_points", "en")]) >= 1
    # 3 members: probabilities in steps of 0.33, and the page says so
    assert [w.value for w in app.warning] == [t("forecast.coarse_probability", "en", step="0.33", n=3, need="0.05",
                                                members=20)]
    assert len(app.get("deck_gl_json_chart")) == 1 and len(app.get("download_button")) == 4  # plan's, map's
    (run,) = app.session_state["fc_runs"].values()

    app.select_slider(key="fc_threshold").set_value(0.5).run()  # deeper water: fewer or no risk points
    assert not app.exception, [e.value for e in app.exception]
    (same,) = app.session_state["fc_runs"].values()
    assert same["forecast"] is run["forecast"] and len(same["bundles"]) == 2  # re-ranked, not re-run
    deeper = {m.label: m.value for m in app.metric}
    assert int(deeper[t("forecast.metric.risk_points", "en")]) <= int(metrics[t("forecast.metric.risk_points", "en")])


def test_page_reads_uploaded_members(app):
    app.radio(key="fc_rain__en").set_value("ensemble").run()
    assert app.number_input(key="fc_members").disabled
    good = b"lead_h,RG1_mm_h\n0,0\n1,30\n2,0\n"
    app.file_uploader(key="fc_member_files").set_value(
        [("a.csv", good, "text/csv"), ("b.csv", good.replace(b"30", b"10"), "text/csv")]).run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert any(c.value.startswith("2 members;") for c in app.caption)
