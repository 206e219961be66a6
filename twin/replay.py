"""Replay a stored run: the state of the city at any time ``t`` from its event log and stored series.

:func:`state_at` rebuilds, for a run folder written by :mod:`twin.runstore`,

- **crews**: position and department from the tick series (``positions``,
  every Mesa tick, 300 s by default), status from the event log (the last
  ``dispatch`` / ``arrival`` / ``resolution`` / ``staging`` event of each crew
  at or before ``t``);
- **vendors**: those occupying a site at the last tick at or before ``t``;
- **incidents** open at ``t`` (onset at or before ``t``, not ended by itself
  and not resolved by then), with how many reports they had by ``t``
  (``report`` events in the log);
- **the flood**: wet manholes at the last coupling step at or before ``t``
  (``flood_nodes``) and the roads closed at ``t`` (the last ``road_closure``
  event of the log, which carries the whole closure state);
- **KPIs up to t**: :func:`agents.compute_kpis` on the tables cut at ``t``
  (events after ``t`` removed, times after ``t`` unknown; crews and vendors
  from their tick series), so at the run's end they equal the stored KPIs.

Times are s since the scenario start (midnight of day 0).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gisdata.errors import TwinError
from twin.eventlog import read_log
from twin.runstore import events_path, read_manifest, read_table

CREW_EVENTS = {"dispatch": "travel", "arrival": "service", "resolution": "idle", "staging": "staging"}


class ReplayError(TwinError, ValueError):
    """A replay time is outside the run, or the run lacks what replay needs."""


REPLAY_TABLES = ("incidents", "reports", "cases", "dispatches", "positions")
"""Tables replay reads; a run without some of them replays what it has (:attr:`ReplayState.missing`)."""


@dataclass(frozen=True)
class ReplayState:
    """The city at one time of a run.

    Attributes
    ----------
    time_s : float
        The time asked for, s.
    crews : DataFrame
        Index ``crew_id``: ``department``, ``status``, ``x``, ``y`` (m), ``position_time_s``.
    vendors : DataFrame
        Occupying vendors: ``vendor_id``, ``x``, ``y``.
    incidents : DataFrame
        Open incidents, index ``incident_id``: ``category``, ``source``, ``x``, ``y``, ``onset_s``,
        ``depth_m``, ``level``, ``reports``.
    flood_nodes : DataFrame
        Wet manholes at the last coupling step: ``node_id``, ``x``, ``y``, ``depth_m``,
        ``surface_depth_m``, ``surface_volume_m3``, ``flooding_cms``.
    roads_closed : DataFrame
        Index ``road_id``: ``status`` (``closed`` or ``closed_to_cars``).
    kpis : dict
        Nested KPIs up to ``t``.
    counts : dict
        Events by kind up to ``t``.
    """

    time_s: float
    crews: pd.DataFrame
    vendors: pd.DataFrame
    incidents: pd.DataFrame
    flood_nodes: pd.DataFrame
    roads_closed: pd.DataFrame
    kpis: dict
    counts: dict = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    """Tables replay reads that the run did not store (its scenario's ``[outputs]`` left them out):
    ``positions`` (crews and vendors over time; crews then come from ``crew_series`` if stored),
    ``incidents``, ``reports``, ``cases``, ``dispatches`` (incidents and KPIs up to t)."""


@functools.lru_cache(maxsize=8)
def _load(run_dir: str, mtime: float) -> dict:
    man = read_manifest(run_dir)
    names = ("incidents", "reports", "cases", "dispatches", "crews", "vendors", "positions", "crew_series",
             "vendor_series", "flood_nodes")
    tables = {n: read_table(run_dir, n) for n in names if n in man.get("tables", {})}
    log = read_log(events_path(run_dir, man))  # a plain file name inside the run (checked)
    try:
        float(man["params"]["hours"])
    except (KeyError, TypeError, ValueError):
        raise ReplayError(f"{run_dir}: the manifest gives no run length (params.hours)") from None
    return {"manifest": man, "tables": tables, "log": log}


def load_run(run_dir: str | Path) -> dict:
    """Manifest, tables and log of a run (cached while the manifest is unchanged)."""
    p = Path(run_dir).resolve()
    man = p / "manifest.json"
    return _load(str(p), man.stat().st_mtime if man.exists() else 0.0)


def horizon_s(run_dir: str | Path) -> float:
    """Simulated duration of a run, s."""
    return float(load_run(run_dir)["manifest"]["params"]["hours"]) * 3600.0


def _last_at(df: pd.DataFrame, t: float) -> pd.DataFrame:
    """Rows of the last ``time_s`` at or before ``t``."""
    if df.empty:
        return df
    times = df["time_s"].to_numpy(float)
    ok = times <= t + 1e-9
    if not ok.any():
        return df.iloc[0:0]
    last = times[ok].max()
    return df[times == last]


def cut_tables(tables: dict[str, pd.DataFrame], t: float) -> dict[str, pd.DataFrame]:
    """The run's tables as they stood at ``t``: later rows dropped, later times unknown (NaN).

    ``crews`` and ``vendors`` come from their tick series (the last tick at or before ``t``).
    """
    nan = np.nan
    rep = tables["reports"]
    rep = rep[rep["t_received_s"] <= t]
    cases = tables["cases"]
    cases = cases[cases["t_open_s"] <= t].copy()
    cases.loc[cases["t_closed_s"] > t, "t_closed_s"] = nan
    d = tables["dispatches"]
    d = d[d["t_request_s"] <= t].copy()
    for col in ("t_dispatch_s", "t_arrive_s", "t_done_s"):
        d.loc[d[col] > t, col] = nan
    d.loc[d["t_dispatch_s"].isna(), ["crew_id"]] = ""
    d.loc[d["t_dispatch_s"].isna(), "travel_s"] = nan
    d.loc[d["t_done_s"].isna(), "service_s"] = nan
    d["dispatch_delay_s"] = d["t_dispatch_s"] - d["t_open_s"]
    d["response_s"] = d["t_arrive_s"] - d["t_open_s"]
    d["status"] = np.where(d["t_done_s"].notna(), "done", np.where(d["t_arrive_s"].notna(), "on_site",
                           np.where(d["t_dispatch_s"].notna(), "en_route", "pending")))
    inc = tables["incidents"]
    inc = inc[inc["onset_s"] <= t].copy()
    inc.loc[inc["resolved_s"] > t, "resolved_s"] = nan
    inc.loc[inc["end_s"] > t, "end_s"] = np.inf
    crews = _last_at(tables["crew_series"], t).drop(columns="time_s").set_index("crew_id") \
        if "crew_series" in tables and len(tables["crew_series"]) else tables["crews"]
    vendors = _last_at(tables["vendor_series"], t).drop(columns="time_s").set_index("vendor_id") \
        if "vendor_series" in tables and len(tables["vendor_series"]) else tables["vendors"]
    return {"incidents": inc, "reports": rep, "cases": cases, "dispatches": d, "crews": crews, "vendors": vendors}


def state_at(run_dir: str | Path, t: float) -> ReplayState:
    """Rebuild the state of a stored run at time ``t`` (s since the scenario start).

    Raises
    ------
    ReplayError
        If ``t`` is outside ``[0, horizon]``.
    NotARunError
        If ``run_dir`` is not a complete run.
    CorruptFileError
        A table or the event log cannot be read at all, or the run's files
        were changed since it was written and no longer hold what replay
        reads (a table without a column, text where numbers belong).
    """
    try:
        return _state_at(run_dir, t)
    except TwinError:
        raise
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        # The data's fault only if the run no longer matches its manifest; otherwise it is a bug of ours.
        from twin.runstore import raise_if_tampered

        raise_if_tampered([run_dir], exc, "cannot be replayed")
        raise


def _state_at(run_dir: str | Path, t: float) -> ReplayState:
    from agents import compute_kpis

    run = load_run(run_dir)
    man, tables, log = run["manifest"], run["tables"], run["log"]
    hz = float(man["params"]["hours"]) * 3600.0
    t = float(t)
    if not 0 <= t <= hz:
        raise ReplayError(f"time {t / 3600:g} h is outside the run (0 .. {hz / 3600:g} h)")
    missing = tuple(n for n in REPLAY_TABLES if n not in tables)
    if "positions" in missing and "crew_series" not in tables:
        missing += ("crew_series",)
    upto = log[log["time_s"] <= t]

    # crews: position from the tick series, status from the log
    if "positions" in tables:
        pos = _last_at(tables["positions"], t)
        crews = pos[pos["kind"] == "crew"].set_index("agent_id")[["department", "x", "y", "time_s"]]
        vendors = pos[pos["kind"] == "vendor"].rename(columns={"agent_id": "vendor_id"})[["vendor_id", "x", "y"]]
    else:  # crews from their counters' tick series if stored; vendors' places are only in positions
        cs = tables.get("crew_series", pd.DataFrame())
        have = {"crew_id", "department", "x", "y", "time_s"} <= set(cs.columns)
        crews = _last_at(cs, t).set_index("crew_id")[["department", "x", "y", "time_s"]] if have else \
            pd.DataFrame({c: pd.Series(dtype=float if c != "department" else object)
                          for c in ("department", "x", "y", "time_s")}, index=pd.Index([], name="crew_id"))
        vendors = pd.DataFrame({"vendor_id": pd.Series(dtype=object), "x": pd.Series(dtype=float),
                                "y": pd.Series(dtype=float)})
    crews = crews.rename(columns={"time_s": "position_time_s"}).rename_axis("crew_id")
    ev = upto[upto["kind"].isin(list(CREW_EVENTS)) & upto["actor"].astype(str).str.startswith("crew:")]
    last = ev.groupby("actor").tail(1)
    status = pd.Series(last["kind"].map(CREW_EVENTS).to_numpy(), index=last["actor"].str[5:].to_numpy())
    crews["status"] = status.reindex(crews.index).fillna("idle").to_numpy()

    # incidents open at t, with their reports so far
    cols = ["category", "source", "x", "y", "onset_s", "depth_m", "level", "reports"]
    if "incidents" in tables:
        inc = tables["incidents"]
        stop = np.fmin(inc["end_s"].to_numpy(float), inc["resolved_s"].fillna(np.inf).to_numpy(float))
        open_ = inc[(inc["onset_s"].to_numpy(float) <= t) & (stop > t)].copy()
        rep = upto[upto["kind"] == "report"]
        by_inc = rep["payload"].map(lambda p: p.get("incident_id", "")).value_counts()
        open_["reports"] = by_inc.reindex(open_.index).fillna(0).astype(int).to_numpy()
        open_ = open_[cols]
    else:
        open_ = pd.DataFrame({c: pd.Series(dtype=object if c in ("category", "source") else float) for c in cols},
                             index=pd.Index([], name="incident_id"))

    # the flood
    fn = tables.get("flood_nodes", pd.DataFrame())
    flood = _last_at(fn, t) if len(fn) else fn
    rc = upto[upto["kind"] == "road_closure"]
    if len(rc):
        roads = rc.iloc[-1]["payload"].get("roads", {})
        closed = pd.DataFrame({"status": pd.Series(roads, dtype=object)}).rename_axis("road_id")
        closed = closed[closed["status"] != "open"]
    else:
        closed = pd.DataFrame({"status": pd.Series(dtype=object)}).rename_axis("road_id")

    if t >= hz or any(n in missing for n in ("incidents", "reports", "cases", "dispatches")):
        # the end: the stored final tables (crews and vendors are exact there, not a tick behind); without the
        # case tables the KPIs are known only at the end
        from twin.runstore import KPIS, read_kpis

        kpis = read_kpis(run_dir) if t >= hz and (Path(run_dir) / KPIS).is_file() else {}
    else:
        kpis = compute_kpis(cut_tables(tables, t), horizon_s=t, exposure=None)
    return ReplayState(time_s=t, crews=crews, vendors=vendors.reset_index(drop=True), incidents=open_,
                       flood_nodes=flood.reset_index(drop=True) if len(flood) else flood,
                       roads_closed=closed, kpis=kpis, counts=upto["kind"].value_counts().sort_index().to_dict(),
                       missing=missing)


def format_state(state: ReplayState) -> str:
    """The replay state as text lines for the CLI."""
    from agents import flatten_kpis

    t = state.time_s
    lines = [f"time              {int(t // 3600):02d}:{int(t % 3600 // 60):02d}:{int(t % 60):02d} ({t:g} s)"]
    c = state.crews
    by = c.groupby("status").size().to_dict() if len(c) else {}
    lines.append(f"crews             {len(c)}: " + ", ".join(f"{k} {v}" for k, v in sorted(by.items())))
    lines.append(f"vendors           {len(state.vendors)} occupying a site")
    inc = state.incidents
    cats = inc["category"].value_counts().to_dict() if len(inc) else {}
    lines.append(f"open incidents    {len(inc)}" + (": " + ", ".join(f"{k} {v}" for k, v in sorted(cats.items()))
                                                  if cats else ""))
    fn = state.flood_nodes
    if len(fn):
        lines.append(f"flood             {len(fn)} wet manholes, surface {fn['surface_volume_m3'].sum():.1f} m3, "
                     f"max pool depth {fn['surface_depth_m'].max():.2f} m")
    else:
        lines.append("flood             dry")
    rc = state.roads_closed
    lines.append(f"roads closed      {int((rc['status'] == 'closed').sum())} closed, "
                 f"{int((rc['status'] == 'closed_to_cars').sum())} to cars")
    if state.missing:
        lines.append(f"not stored        {', '.join(state.missing)} ({missing_note(state.missing)})")
    flat = flatten_kpis(state.kpis)
    lines.append("kpis up to t")
    for k in ("counts.reports", "counts.cases", "counts.dispatched", "response.all:all.response_s.p50",
              "response.all:all.response_s.p90", "duplicates.dispatches", "unresolved.cases"):
        v = flat.get(k, np.nan)
        lines.append(f"  {k:<36}{_fmt(v)}")
    if len(c):
        lines.append("crews (id, department, status, x, y)")
        for cid, r in c.iterrows():
            lines.append(f"  {cid:<24}{r['department']:<17}{r['status']:<9}{r['x']:.1f}, {r['y']:.1f}")
    return "\n".join(lines)


def missing_note(missing) -> str:
    """What a replay of a run without ``missing`` tables cannot show, in words (English, for the CLI)."""
    parts = []
    if "positions" in missing:
        parts.append("no vendor places, " + ("no crew places" if "crew_series" in missing
                                              else "crews from crew_series"))
    if "incidents" in missing:
        parts.append("no incidents")
    if any(n in missing for n in ("reports", "cases", "dispatches")):
        parts.append("KPIs only at the end")
    return "; ".join(parts)


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) >= 10 else f"{v:.3f}"
    return str(v)


# ----------------------------------------------------------------------------- map


def state_deck(state: ReplayState, city, *, lang: str = "en", height_px: int = 560, status: pd.Series | None = None,
               street=None):
    """A pydeck map of a replay state (no basemap: works offline), in the workbench's one palette.

    :func:`twin.viz.replay_map.replay_deck`: roads by closure state, the street water (``street``),
    wet manholes, open incidents by status (``status``), vendors and crews by department, with
    formatted tooltips; its legend is :func:`twin.viz.legend.deck_legend_html`.

    Parameters
    ----------
    state : ReplayState
    city : CityTwin
        The run's city.
    lang : str
    height_px : int
    status : Series, optional
        Status of each open incident (:func:`twin.viz.animation.incident_status`); default "reported".
    street : (DepthSeries, int or None), optional
        The run's street water and the frame to draw.
    """
    from twin.viz.replay_map import replay_deck

    return replay_deck(state, city, lang=lang, height_px=height_px, status=status, street=street)


def kpi_table(kpis: dict, keys, *, lang: str = "en") -> pd.DataFrame:
    """KPIs as a two-column display table (label, value), times in minutes."""
    from agents import flatten_kpis
    from twin.i18n import t as tr

    flat = flatten_kpis(kpis)
    rows = []
    for k in keys:
        v = flat.get(k, np.nan)
        if isinstance(v, (int, float)) and (k.endswith(("_s.p50", "_s.p90")) or k == "coordination.delay_mean"):
            v = v / 60.0
        rows.append({tr("kpi.name", lang): tr(f"kpi.{k}", lang), tr("kpi.value", lang): _fmt(v)})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- runs of other kinds


def read_run_file(run_dir: str | Path, name: str) -> bytes:
    """A file the run's manifest lists (``summary.json``, ``plan.html``), by plain name.

    Raises
    ------
    InvalidIdError
        ``name`` is not a plain name.
    InputFileNotFoundError
        The manifest lists no such file, or it is gone.
    """
    from gisdata.errors import InputFileNotFoundError
    from gisdata.paths import child_path

    man = load_run(run_dir)["manifest"]
    path = child_path(run_dir, name, "file name")
    if name not in man.get("files", {}) or path.is_symlink() or not path.is_file():
        raise InputFileNotFoundError(f"{Path(run_dir).name}: the run holds no file '{name}'")
    return path.read_bytes()


def run_tables(run_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Every table of a run (a flood event's roads and risk points, a forecast's risk table, ...)."""
    man = load_run(run_dir)["manifest"]
    return {n: read_table(run_dir, n) for n in man.get("tables", {})}


def sweep_results(sweep_dir: str | Path) -> pd.DataFrame:
    """A sweep's results table (``results.parquet``: one row per run, swept parameters and KPIs); empty if none yet."""
    from gisdata.errors import CorruptFileError

    path = Path(sweep_dir) / "results.parquet"
    if path.is_symlink() or not path.is_file():
        return pd.DataFrame()
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise CorruptFileError(f"{Path(sweep_dir).name}/results.parquet: not a readable table ({type(exc).__name__})") \
            from None
