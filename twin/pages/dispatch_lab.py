"""Dispatch lab: run strategies over several seeds and compare their KPIs with confidence intervals.

Every strategy gets the same seeds (common random numbers: the same citizens,
background incidents and, with a storm, the same flood), so the paired
difference to the baseline strategy has a much narrower interval than the
strategies' own.  With a storm SWMM runs once, in a worker process
(:func:`twin.coupler.compute_flood_schedule`), and its incidents and closures
are handed to every run (:func:`twin.coupler.sweep_strategies`).
"""

from __future__ import annotations

import streamlit as st

from twin.app_support import error_text, persistent
from twin.i18n import t

MIN_SEEDS = 5
RESULTS_KEPT = 4
"""Comparisons a session keeps, so going back to earlier settings shows them again without a new run."""


@st.cache_resource(show_spinner=False, max_entries=2)
def _city(source: str):
    from gisdata.city import load_city

    return load_city(source)


def _progress_cb(bar, lang: str, label_key: str):
    def update(f: float) -> None:
        bar.progress(min(max(float(f), 0.0), 1.0), text=t(label_key, lang, pct=round(100 * f)))

    return update


def render(lang: str) -> None:
    """The Dispatch lab page."""
    from agents import strategy_names
    from twin import app_support as support
    from twin.coupler import HEADLINE_KPIS, compute_flood_schedule, sweep_strategies
    from twin.kpi_stats import summarise_sweep

    source = support.app_city_source()
    st.subheader(t("lab.header", lang))
    st.caption(t("lab.caption", lang))
    with st.spinner(t("city.loading", lang)):
        city = _city(source)
    names = strategy_names()
    c1, c2, c3 = st.columns(3)
    with c1:
        strategies = st.multiselect(t("lab.strategies", lang), names, default=["siloed", "priority"],
                                    format_func=lambda s: t(f"strategy.{s}", lang), **persistent("lab_strategies"))
        n_seeds = st.number_input(t("lab.n_seeds", lang), min_value=MIN_SEEDS, max_value=30, value=MIN_SEEDS,
                                  **persistent("lab_n_seeds"))
        first_seed = st.number_input(t("lab.first_seed", lang), min_value=0, value=1, **persistent("lab_first_seed"))
    with c2:
        hours = st.slider(t("lab.hours", lang), 1, 24, 12, **persistent("lab_hours"))
        citizens = st.number_input(t("lab.citizens", lang), min_value=0, max_value=20000, value=300, step=100,
                                   **persistent("lab_citizens"))
        vendors = st.number_input(t("lab.vendors", lang), min_value=0, max_value=500, value=10, **persistent("lab_vendors"))
    with c3:
        storm = st.checkbox(t("lab.storm", lang), value=False, **persistent("lab_storm"))
        rp = st.select_slider(t("lab.return_period", lang), [2, 5, 10, 20, 50, 100], value=50, **persistent("lab_rp"),
                              disabled=not storm)
        start_h = st.slider(t("lab.start_h", lang), 0, 23, 1, **persistent("lab_start_h"), disabled=not storm)
    if not strategies:
        st.info(t("lab.pick", lang))
        return
    seeds = tuple(range(int(first_seed), int(first_seed) + int(n_seeds)))
    key = (source, tuple(strategies), seeds, int(hours), int(citizens), int(vendors),
           (int(rp), int(start_h)) if storm else None)
    results = st.session_state.setdefault("lab_results", {})
    if st.button(t("lab.run", lang), type="primary", key="lab_run") and key not in results:
        flood = None
        if storm:
            if start_h >= hours:
                st.error(t("lab.storm_after_end", lang))
                return
            from hydraulics.rainfall import chicago_storm

            bar = st.progress(0.0, text=t("lab.progress_swmm", lang, pct=0))
            flood = compute_flood_schedule(city, chicago_storm("beijing", float(rp), 120.0), start_s=start_h * 3600.0,
                                           hours=float(hours), worker=True,
                                           progress=_progress_cb(bar, lang, "lab.progress_swmm"))
            bar.empty()
        bar = st.progress(0.0, text=t("lab.progress", lang, pct=0))
        df = sweep_strategies(city, list(strategies), seeds, hours=float(hours), flood=flood,
                              progress=_progress_cb(bar, lang, "lab.progress"), n_citizens=int(citizens),
                              n_vendors=int(vendors))
        bar.empty()
        from twin.app_support import keep_latest

        keep_latest(results, key, df, RESULTS_KEPT)
        _save(lang, df, summarise_sweep(df, HEADLINE_KPIS, baseline=strategies[0]), params={
            "city": source, "strategies": list(strategies), "seeds": list(seeds), "hours": int(hours),
            "n_citizens": int(citizens), "n_vendors": int(vendors), "baseline": strategies[0],
            "storm": {"kind": "chicago", "idf": "beijing", "return_period_yr": int(rp), "duration_min": 120,
                      "start_h": int(start_h)} if storm else None})
    key, df, stale = support.shown_result(results, key, st.session_state, "lab_shown")
    if df is None:
        st.info(t("lab.hint", lang))
        return
    if stale:
        st.warning(t("state.stale", lang))
    strategies, seeds = list(key[1]), key[2]
    summary = summarise_sweep(df, HEADLINE_KPIS, baseline=strategies[0])
    st.markdown(t("lab.ci_note", lang, n=len(seeds), base=t(f"strategy.{strategies[0]}", lang)))
    kpi = st.selectbox(t("lab.kpi", lang), [k for k in HEADLINE_KPIS if k in summary.index.get_level_values(0)],
                       format_func=lambda k: t(f"kpi.{k}", lang), **persistent("lab_kpi"))
    st.altair_chart(ci_chart(summary, kpi, lang=lang), width="stretch")
    st.caption(t(f"kpi_def.{kpi}", lang))
    st.dataframe(summary_display(summary, lang=lang), width="stretch")
    with st.expander(t("lab.per_seed", lang)):
        st.dataframe(per_seed_display(df, lang=lang), width="stretch")


def _save(lang: str, per_seed, summary, *, params: dict) -> None:
    """Store the comparison in the workspace run store (kind ``comparison``): per-seed KPIs and the summary."""
    from gisdata.errors import TwinError
    from twin import app_support as support
    from twin.runstore import new_run_id, write_result_run

    try:
        root = support.runs_dir()
        root.mkdir(parents=True, exist_ok=True)
        out = write_result_run(root / new_run_id("compare"), kind="comparison",
                               tables={"per_seed": per_seed, "summary": summary}, params=params)
    except (TwinError, OSError) as exc:
        st.warning(t("run.save_error", lang, error=error_text(exc, lang).replace(str(support.workspace_root()), ".")))
        return
    st.caption(t("run.saved", lang, run=out.name))


def _scale(kpi: str, unit: str) -> tuple[float, str]:
    """Display factor and unit label: seconds are shown in minutes."""
    if unit == "s":
        return 1 / 60.0, "min"
    return 1.0, {"h": "h", "share": "0-1", "count": "n"}.get(unit, unit)


def per_seed_display(per_seed, *, lang: str):
    """The per-seed KPI table with its strategy and seed headers, strategies and known KPI names translated.

    Other KPI columns keep their keys (``response.level:2.travel_s.p90``): identifiers of the full table.
    """
    from twin.i18n import catalogue

    out = per_seed.copy()
    if "strategy" in out.columns:
        out["strategy"] = [t(f"strategy.{s}", lang) if f"strategy.{s}" in catalogue("en") else str(s)
                           for s in out["strategy"]]
    names = {"strategy": t("lab.col.strategy", lang), "seed": t("lab.col.seed", lang)}
    names.update({c: t(f"kpi.{c}", lang) for c in out.columns if f"kpi.{c}" in catalogue("en")})
    return out.rename(columns=names)


def summary_display(summary, *, lang: str):
    """The sweep summary with translated labels, units, the better direction and the winner (display only)."""
    import numpy as np
    import pandas as pd

    rows = []
    for (kpi, strategy), r in summary.iterrows():
        f, unit = _scale(kpi, r["unit"])

        def fmt(v, f=f):
            return "-" if not np.isfinite(v) else f"{v * f:.2f}"

        better = t(f"lab.better.{r['better']}", lang) if r["better"] else t("lab.better.none", lang)
        rows.append({t("kpi.name", lang): f"{t(f'kpi.{kpi}', lang)} ({unit})",
                     t("lab.col.better", lang): better,
                     t("lab.col.strategy", lang): t(f"strategy.{strategy}", lang),
                     t("lab.col.mean", lang): fmt(r["mean"]),
                     t("lab.col.ci", lang): f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]",
                     t("lab.col.diff", lang): fmt(r["diff_mean"]),
                     t("lab.col.diff_ci", lang): f"[{fmt(r['diff_ci_low'])}, {fmt(r['diff_ci_high'])}]",
                     t("lab.col.winner", lang): "★" if r["winner"] else ""})
    return pd.DataFrame(rows)


def ci_chart(summary, kpi: str, *, lang: str):
    """Mean and confidence interval of one KPI per strategy (altair)."""
    import altair as alt

    d = summary.loc[kpi].reset_index()
    f, unit = _scale(kpi, str(d["unit"].iloc[0]) if len(d) else "")
    d = d.assign(label=[t(f"strategy.{s}", lang) for s in d["strategy"]], mean=d["mean"] * f,
                 lo=d["ci_low"].fillna(d["mean"]) * f, hi=d["ci_high"].fillna(d["mean"]) * f)
    y = alt.Y("label:N", title=t("lab.col.strategy", lang))
    x_title = f"{t(f'kpi.{kpi}', lang)} ({unit})"
    bars = alt.Chart(d).mark_bar(opacity=0.6).encode(x=alt.X("mean:Q", title=x_title), y=y)
    err = alt.Chart(d).mark_errorbar(ticks=True).encode(x=alt.X("lo:Q", title=x_title), x2="hi:Q", y=y)
    return (bars + err).properties(height=60 + 40 * len(d))
