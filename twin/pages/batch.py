"""Batch page: the sweeps and runs of a run store, a sweep's results with filters, a KPI against a parameter, and a small sweep to launch.

The architecture lets only ``twin/cli.py`` and ``app.py`` import ``scenarios``,
so this page never does: ``app.py`` registers ``make_render(loader)``, where
``loader()`` returns the ``scenarios`` package (as :mod:`twin.commands.batch`
gets it from ``twin/cli.py``).  A sweep launched here runs
:func:`scenarios.run_batch` (its own spawn process pool) in a job process
(:func:`run_sweep`), while the page shows a progress bar fed by ``run_batch``'s
``on_result``.

The functions above :func:`make_render` are plain table and chart helpers
(no Streamlit), so they are tested on their own.
"""

from __future__ import annotations

import json
import os
import signal
import tomllib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pandas as pd

from twin.i18n import catalogue, t

SWEEP_FILE = "sweep.json"
TEMPLATE = "dispatch_compare.toml"
"""The sweep the page launches, reduced to the chosen size."""
SIZES: dict[str, dict] = {
    "tiny": {"strategies": ["siloed", "priority"], "seeds": [1], "hours": 3, "start_h": 1.0, "citizens": 300,
             "vendors": 8},
    "small": {"strategies": ["siloed", "priority"], "seeds": [1, 2], "hours": 6, "start_h": 1.0, "citizens": 500,
              "vendors": 10},
    "medium": {"strategies": ["siloed", "nearest", "priority", "assignment"], "seeds": [1, 2], "hours": 12,
               "start_h": 7.5, "citizens": 1000, "vendors": 20},
}
"""Launchable sweep sizes: strategies x seeds runs of ``hours`` with the template's 100-year storm at ``start_h``."""
HEADLINE_KPIS = ("counts.incidents", "counts.reports", "counts.dispatched", "response.all:all.response_s.p50",
                 "response.all:all.response_s.p90", "within_target.all", "duplicates.dispatches", "utilisation.all")
DEFAULT_CHART_KPI = "response.all:all.response_s.p50"
STRATEGY_COLUMN = "dispatch.strategy"
NOT_KPIS = {"status", "seed", "error", "wall_time_s", "run_id"}
RANGE_FILTER_MIN_VALUES = 9
"""A numeric parameter with this many distinct values or more is filtered by a range, not a pick list."""


# ----------------------------------------------------------------------------- tables


def read_sweep_file(directory: str | Path) -> dict | None:
    """The ``sweep.json`` of a sweep directory, or None if there is none (or it is unreadable)."""
    try:
        return json.loads((Path(directory) / SWEEP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def list_sweeps(root: str | Path, *, roots: list[Path] | None = None) -> pd.DataFrame:
    """The sweeps in ``root`` (its sub-folders with a ``sweep.json``, or ``root`` itself).

    With ``roots`` (the workspace, :func:`twin.app_support.workspace_roots`), only
    sweep folders that resolve inside one of them are listed.  Columns: ``sweep``, ``status``, ``n_runs``, ``n_complete``, ``n_failed``, ``parameters``,
    ``updated``, ``path``; newest first.
    """
    from twin.app_support import keep_inside_workspace

    root = Path(root)
    cols = ["sweep", "status", "n_runs", "n_complete", "n_failed", "parameters", "updated", "path"]
    if not root.is_dir():
        return pd.DataFrame(columns=cols)
    folders = [root] if (root / SWEEP_FILE).exists() else sorted(p for p in root.iterdir() if p.is_dir()
                                                                 and not p.name.startswith("."))
    if roots is not None:  # a sweep folder that is a symbolic link out of the workspace is not listed
        folders = keep_inside_workspace(folders, roots=roots)
    from gisdata.errors import TwinError
    from scenarios.batch import sweep_state

    rows = []
    for p in folders:
        data = read_sweep_file(p)
        if data is None:
            continue
        runs = data.get("runs", [])
        try:  # what is on disk, not what sweep.json last said: a killed batch leaves "running" there
            state = sweep_state(p)
        except TwinError:
            state = {}
        rows.append({"sweep": data.get("name", p.name), "status": state.get("status", data.get("status", "?")),
                     "n_runs": int(state.get("n_runs", data.get("n_runs", len(runs)))),
                     "n_complete": int(state.get("n_complete", data.get("n_complete", 0))),
                     "n_failed": int(state.get("n_failed", data.get("n_failed", 0))),
                     "parameters": ", ".join(data.get("parameters", [])),
                     "updated": data.get("updated", data.get("created", "")), "path": str(p)})
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values("updated", ascending=False, kind="stable").reset_index(drop=True)


def sweep_parameters(directory: str | Path, results: pd.DataFrame | None = None) -> list[str]:
    """The swept parameters of a sweep (from ``sweep.json``), then ``seed``; only those in ``results`` if given."""
    data = read_sweep_file(directory) or {}
    params = [p for p in data.get("parameters", []) if p != "seed"] + ["seed"]
    return [p for p in params if results is None or p in results.columns]


def kpi_columns(results: pd.DataFrame, params: list[str]) -> list[str]:
    """Numeric KPI columns of a results table: the headline ones first, then the rest in table order."""
    num = [c for c in results.columns if c not in NOT_KPIS and c not in params
           and pd.api.types.is_numeric_dtype(results[c]) and results[c].notna().any()]
    return [k for k in HEADLINE_KPIS if k in num] + [k for k in num if k not in HEADLINE_KPIS]


def filter_options(results: pd.DataFrame, column: str) -> tuple[str, list | tuple]:
    """How to filter ``column``: ``("range", (lo, hi))`` for many numeric values, else ``("pick", values)``."""
    s = results[column].dropna()
    if pd.api.types.is_numeric_dtype(s) and s.nunique() >= RANGE_FILTER_MIN_VALUES:
        return "range", (float(s.min()), float(s.max()))
    values = s.unique().tolist()
    try:
        values = sorted(values)
    except TypeError:
        values = sorted(values, key=str)
    return "pick", values


def filter_results(results: pd.DataFrame, selections: Mapping[str, list | tuple]) -> pd.DataFrame:
    """Rows of ``results`` matching every selection: a list keeps those values, a ``(lo, hi)`` tuple a range."""
    keep = pd.Series(True, index=results.index)
    for col, sel in selections.items():
        if col not in results.columns:
            continue
        if isinstance(sel, tuple):
            lo, hi = sel
            v = pd.to_numeric(results[col], errors="coerce")
            keep &= (v >= lo - 1e-9) & (v <= hi + 1e-9)
        else:
            keep &= results[col].isin(list(sel))
    return results[keep]


def kpi_factor(key: str) -> float:
    """Display factor of a KPI: times in s are shown in minutes (as the KPI labels say)."""
    return 1 / 60.0 if key.endswith(("_s.p50", "_s.p90")) or key == "coordination.delay_mean" else 1.0


def kpi_label(key: str, lang: str) -> str:
    """The translated name of a KPI, or its key when the catalogue has none."""
    return t(f"kpi.{key}", lang) if f"kpi.{key}" in catalogue("en") else key


def param_label(key: str, lang: str) -> str:
    """The translated name of a swept parameter, or its key."""
    return t(f"batch.param.{key}", lang) if f"batch.param.{key}" in catalogue("en") else key


def value_label(column: str, value, lang: str) -> str:
    """A parameter value for display (strategies translated)."""
    if column == STRATEGY_COLUMN and f"strategy.{value}" in catalogue("en"):
        return t(f"strategy.{value}", lang)
    return str(value)


def results_display(results: pd.DataFrame, params: list[str], kpis: list[str], *, lang: str) -> pd.DataFrame:
    """The results table for display: run, status, parameters and ``kpis`` (minutes for times), labels translated."""
    cols = {"status": t("batch.col.status", lang)}
    out = pd.DataFrame({t("batch.col.run_id", lang): results.index.astype(str)}, index=results.index)
    out[cols["status"]] = [t(f"batch.status.{s}", lang) for s in results["status"].astype(str)] \
        if "status" in results.columns else ""
    for p in params:
        out[param_label(p, lang)] = [value_label(p, v, lang) for v in results[p]]
    for k in kpis:
        out[kpi_label(k, lang)] = pd.to_numeric(results[k], errors="coerce") * kpi_factor(k)
    return out.reset_index(drop=True)


def sweeps_display(sweeps: pd.DataFrame, *, lang: str) -> pd.DataFrame:
    """The sweeps table with translated headers and statuses."""
    out = sweeps.drop(columns=["path"]).copy()
    out["status"] = [t(f"batch.status.{s}", lang) for s in out["status"].astype(str)]
    return out.rename(columns={c: t(f"batch.col.{c}", lang) for c in out.columns})


def runs_display(runs: pd.DataFrame, *, lang: str) -> pd.DataFrame:
    """The runs table (``scenarios.list_runs``) with translated headers and statuses."""
    out = runs.drop(columns=["path"], errors="ignore").copy()
    out["status"] = [t(f"batch.status.{s}", lang) for s in out["status"].astype(str)]
    return out.rename(columns={c: t(f"batch.col.{c}", lang) for c in out.columns})


def kpi_chart(results: pd.DataFrame, x: str, kpi: str, *, color: str | None = None, lang: str = "en"):
    """One KPI against one parameter: a point per run and a tick at the mean of each value (altair)."""
    import altair as alt

    f = kpi_factor(kpi)
    d = pd.DataFrame({"x": [value_label(x, v, lang) for v in results[x]] if not _is_numeric(results[x])
                      else pd.to_numeric(results[x]),
                      "y": pd.to_numeric(results[kpi], errors="coerce") * f,
                      "run": results.index.astype(str)})
    d["c"] = [value_label(color, v, lang) for v in results[color]] if color else ""
    d = d.dropna(subset=["y"])
    numeric = _is_numeric(results[x])
    x_enc = alt.X("x:Q" if numeric else "x:N", title=param_label(x, lang),
                  scale=alt.Scale(zero=False) if numeric else alt.Undefined,
                  axis=alt.Undefined if numeric else alt.Axis(labelAngle=0, labelLimit=240))
    y_enc = alt.Y("y:Q", title=kpi_label(kpi, lang))
    tip = [alt.Tooltip("run:N", title=t("batch.col.run_id", lang)), alt.Tooltip("y:Q", title=kpi_label(kpi, lang),
                                                                               format=".2f")]
    c_enc = alt.Color("c:N", title=param_label(color, lang)) if color else alt.Undefined
    pts = alt.Chart(d).mark_circle(size=70, opacity=0.75).encode(x=x_enc, y=y_enc, color=c_enc, tooltip=tip)
    group = ["x", "c"] if color else ["x"]
    mean = alt.Chart(d).transform_aggregate(y="mean(y)", groupby=group).mark_tick(
        thickness=3, size=28, color=None if color else "#222222").encode(x=x_enc, y=y_enc, color=c_enc)
    return (pts + mean).properties(height=320, title=t("batch.chart.title", lang, kpi=kpi_label(kpi, lang),
                                                        param=param_label(x, lang)))


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


# ----------------------------------------------------------------------------- launching a sweep


def reduced_sweep(template: Mapping, size: str, *, city: str, name: str) -> dict:
    """The template sweep (parsed TOML) cut down to ``SIZES[size]`` on ``city``, named ``name``."""
    if size not in SIZES:
        raise ValueError(f"size={size!r} unknown; expected one of {list(SIZES)}")
    s = SIZES[size]
    d = json.loads(json.dumps(template))  # a deep copy of plain TOML data
    d["scenario"]["name"] = name
    d["scenario"]["description"] = f"{d['scenario'].get('description', '')} (reduced to '{size}' in the workbench)"
    d["city"]["source"] = city
    d["period"]["hours"] = s["hours"]
    d.setdefault("rain", {})["start_h"] = s["start_h"]
    d["population"] = {**d.get("population", {}), "citizens": s["citizens"], "vendors": s["vendors"]}
    d["sweep"]["seeds"] = list(s["seeds"])
    d["sweep"]["parameters"] = {STRATEGY_COLUMN: list(s["strategies"])}
    d.setdefault("batch", {})["workers"] = min(2, len(s["strategies"]) * len(s["seeds"]))
    return d


def sweep_job(request: tuple, report: Callable) -> object:
    """In the job process: ``run_batch(spec, out, workers=workers)``, reporting each finished run's id.

    ``request`` is ``(run_batch, spec, out, workers)``; ``run_batch`` travels
    by reference, so this module never imports ``scenarios``.  The SIGTERM
    that ends the job when the page is interrupted stops the batch as Ctrl-C
    does, so its ``sweep.json`` says ``interrupted``, not ``running``.
    """
    signal.signal(signal.SIGTERM, _interrupt)
    run_batch, spec, out, workers = request
    return run_batch(spec, out, workers=workers, progress=False, on_result=lambda res: report(res.run_id))


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_sweep(run_batch: Callable, spec, out: Path, workers: int, *, on_progress: Callable[[int], None]):
    """``run_batch`` of one sweep in a job process (:func:`twin.job_process.run_in_process`).

    Its process pool then starts from a ``python -c`` process, not from the
    Streamlit server whose main module is ``app.py`` (which every spawned
    worker would re-run first).  ``on_progress(done)`` is called with the
    number of finished runs after each one and every second in between, so
    Streamlit can stop the script; an exception out of it ends the job
    process and its workers.  Returns ``run_batch``'s ``BatchResult``;
    ``run_batch``'s errors are raised here.
    """
    from twin.job_process import run_in_process

    done = 0

    def on_report(_run_id: str) -> None:
        nonlocal done
        done += 1
        on_progress(done)

    return run_in_process(sweep_job, (run_batch, spec, Path(out), workers), on_report=on_report,
                          on_idle=lambda: on_progress(done), what="batch")


# ----------------------------------------------------------------------------- the page


def runs_root() -> Path:
    """Where the page looks first and launches into: the workspace run store (``$CITYTWIN_RUNS_DIR`` or ``runs``)."""
    from twin.app_support import runs_dir_text

    return Path(runs_dir_text())


def make_render(load_scenarios: Callable[[], ModuleType]) -> Callable[[str], None]:
    """The Batch page's ``render(lang)``, calling the ``scenarios`` package that ``load_scenarios()`` returns."""
    import streamlit as st

    from twin.app_support import error_text, persistent

    @st.cache_data(show_spinner=False, max_entries=8)
    def cached_results(path: str, stamp: float) -> pd.DataFrame:
        return load_scenarios().results_table(path)

    def launch(lang: str, root: Path) -> None:
        sc = load_scenarios()
        st.caption(t("batch.launch.caption", lang))
        c1, c2 = st.columns([2, 3])
        with c1:
            size = st.radio(t("batch.launch.size", lang), list(SIZES), horizontal=False, **persistent("batch_size"),
                            format_func=lambda k: t(f"batch.size.{k}", lang, n=len(SIZES[k]["strategies"])
                                                    * len(SIZES[k]["seeds"]), hours=SIZES[k]["hours"]))
        with c2:
            default_city = os.environ.get("CITYTWIN_APP_CITY", "").strip() or "small"
            city = st.text_input(t("batch.launch.city", lang), value=default_city, **persistent("batch_city"))
        if not st.button(t("batch.launch.run", lang), type="primary", key="batch_run"):
            return
        from gisdata.errors import TwinError

        name = f"ui_{size}_{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
        try:
            from twin.app_support import resolve_city_field

            city_source = resolve_city_field(city.strip() or "small")  # a preset or a file in the workspace
            template = tomllib.loads((Path(sc.__file__).parent / TEMPLATE).read_text(encoding="utf-8"))
            data = reduced_sweep(template, size, city=city_source, name=name)
            spec = sc.validate_scenario(data, source=f"{TEMPLATE} ({size})")
            root.mkdir(parents=True, exist_ok=True)
        except (TwinError, OSError) as exc:
            st.error(t("batch.launch.error", lang, error=error_text(exc, lang)))
            return
        n = len(SIZES[size]["strategies"]) * len(SIZES[size]["seeds"])
        bar = st.progress(0.0, text=t("batch.launch.progress", lang, done=0, n=n))
        try:
            res = run_sweep(sc.run_batch, spec, root, data["batch"]["workers"],
                            on_progress=lambda done: bar.progress(min(done / n, 1.0), text=t(
                                "batch.launch.progress", lang, done=done, n=n)))
        except Exception as exc:  # noqa: BLE001 - any failure of the batch is shown (Streamlit's stop is no Exception)
            bar.empty()
            st.error(t("batch.launch.error", lang, error=" ".join(error_text(exc, lang).split())))
            return
        bar.empty()
        st.session_state["batch_sweep"] = str(res.directory)
        st.success(t("batch.launch.done", lang, name=res.directory.name, done=res.n_complete, n=res.n_runs,
                     s=f"{res.wall_time_s:.0f}"))

    def render(lang: str) -> None:
        """The Batch page."""
        from gisdata.errors import TwinError
        from twin import app_support as support

        sc = load_scenarios()
        st.subheader(t("batch.header", lang))
        typed = st.text_input(t("batch.root", lang), value=str(runs_root()), **persistent("batch_root"))
        try:
            root = support.resolve_workspace_folder(typed)
        except TwinError as exc:
            st.error(t("workspace.refused", lang, error=error_text(exc, lang)))
            return
        with st.expander(t("batch.launch.title", lang)):
            launch(lang, root)
        sweeps = list_sweeps(root, roots=support.workspace_roots())
        try:
            runs = sc.list_runs(root) if root.is_dir() else pd.DataFrame()
        except TwinError as exc:
            st.error(error_text(exc, lang))
            return
        if sweeps.empty and runs.empty:
            st.info(t("batch.none", lang, root=typed.strip() or "."))
            return
        from twin.app_support import kept_tabs

        tab_sweeps, tab_runs = kept_tabs(["sweeps", "runs"], [t("batch.tab.sweeps", lang, n=len(sweeps)),
                                                              t("batch.tab.runs", lang, n=len(runs))],
                                         key="batch_tab", lang=lang)
        with tab_sweeps:
            if len(sweeps):
                st.dataframe(sweeps_display(sweeps, lang=lang), hide_index=True, width="stretch")
            else:
                st.caption(t("batch.no_sweeps", lang))
        with tab_runs:
            if len(runs):
                st.dataframe(runs_display(runs, lang=lang), hide_index=True, width="stretch")
        if sweeps.empty:
            return

        paths = sweeps["path"].tolist()
        chosen = st.session_state.get("batch_sweep")
        sweep_dir = st.selectbox(t("batch.sweep", lang), paths, index=paths.index(chosen) if chosen in paths else 0,
                                 format_func=lambda p: Path(p).name, key=f"batch_sweep_pick__{lang}")
        st.session_state["batch_sweep"] = sweep_dir
        stamp = (Path(sweep_dir) / SWEEP_FILE).stat().st_mtime
        try:
            results = cached_results(sweep_dir, stamp)
        except TwinError as exc:
            st.error(error_text(exc, lang))
            return
        if results.empty:
            st.info(t("batch.no_results", lang))
            return
        params = sweep_parameters(sweep_dir, results)
        kpis = kpi_columns(results, params)

        st.markdown(t("batch.filters", lang))
        selections: dict[str, list | tuple] = {}
        for col, box in zip(params, st.columns(max(len(params), 1))):
            kind, opts = filter_options(results, col)
            with box:
                if kind == "range":
                    lo, hi = opts
                    selections[col] = tuple(st.slider(param_label(col, lang), lo, hi, (lo, hi),
                                                      key=f"batch_filter_{col}"))
                else:  # one widget per language (the front end matches chips by their label), one choice kept
                    name = f"batch_filter_{col}"
                    kept_opts, kept = st.session_state.get(name, ((), ()))
                    selections[col] = st.multiselect(param_label(col, lang), opts,
                                                     default=list(kept) if list(kept_opts) == list(opts) else opts,
                                                     format_func=lambda v, c=col: value_label(c, v, lang),
                                                     key=f"{name}__{lang}")
                    st.session_state[name] = (tuple(opts), tuple(selections[col]))  # kept for these options
        shown = filter_results(results, selections)
        st.caption(t("batch.shown", lang, n=len(shown), total=len(results)))
        show_kpis = st.multiselect(t("batch.columns", lang), kpis, default=[k for k in HEADLINE_KPIS if k in kpis],
                                   format_func=lambda k: kpi_label(k, lang),
                                   **persistent("batch_kpi_cols"))
        st.dataframe(results_display(shown, params, show_kpis, lang=lang), hide_index=True, width="stretch")
        if shown.empty or not kpis:
            return

        c1, c2, c3 = st.columns(3)
        with c1:
            first = DEFAULT_CHART_KPI if DEFAULT_CHART_KPI in kpis else kpis[0]
            kpi = st.selectbox(t("batch.chart.kpi", lang), kpis, index=kpis.index(first),
                               format_func=lambda k: kpi_label(k, lang), **persistent("batch_chart_kpi"))
        with c2:
            x = st.selectbox(t("batch.chart.x", lang), params, format_func=lambda p: param_label(p, lang),
                             **persistent("batch_chart_x"))
        with c3:
            others = [p for p in params if p != x]
            color = st.selectbox(t("batch.chart.color", lang), ["", *others],
                                 format_func=lambda p: param_label(p, lang) if p else t("batch.chart.no_color", lang),
                                 **persistent("batch_chart_color"))
        st.altair_chart(kpi_chart(shown, x, kpi, color=color or None, lang=lang), width="stretch")
        st.caption(t("batch.chart.hint", lang))

    return render

