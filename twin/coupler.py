"""The coupler: the flood, the Mesa agents and the SimPy dispatch centre on one clock.

One :class:`simpy.Environment` owns simulated time (s since midnight of day 0).
The agents (:func:`agents.agents_process`) and the dispatch centre run on it as
SimPy processes.  The flood comes from one source, :mod:`twin.flood_feed`:
the city's sewer coupled both ways with its 2D street surface, which hands a
:class:`~twin.flood_feed.FloodUpdate` to the coupler at every report time
(300 s by default), live or replayed from a recorded
:class:`~twin.flood_feed.FloodSchedule`.  For each update the coupler

1. advances the SimPy clock to its time (``env.run(until=t)``): the agents and
   crews catch up, seeing the flood state of the previous step;
2. hands it to the agents: new waterlogging incidents (with the water-level
   sensor alarms the model raises for them), incidents whose street dried,
   and road closures that the routing uses from then on;
3. writes the hydraulics' events to the event log.

Live, that happens inside the engine's loop (SWMM is not re-entrant and cannot
be paused from inside a generator); replayed, the same updates are applied at
the same times, so the two runs are identical.  Before the storm starts and
after the hydraulics end the clock runs on without them.  Hydraulics and
agents never see each other: they meet here, through tables of incidents and
closures.  What street water counts as an incident or a closure is the flood
feed's business (:class:`~twin.flood_feed.FloodPublisher`), not the coupler's.

One simulation per process
--------------------------
:func:`run_coupled` runs the engine in the calling process (the CLI does this once per
process).  :func:`run_coupled_in_worker` and :func:`compute_flood_schedule`
(``worker=True``) run it in a fresh process, as the workbench must
(:func:`twin.job_process.run_in_process`: not a ``multiprocessing`` one, whose
child would first re-run the workbench's ``app.py``).

Many seeds and strategies
-------------------------
The flood does not depend on dispatch (coupling is one way: water -> city), so
a sweep runs the hydraulics once per storm (:func:`compute_flood_schedule`) and hands
the same incidents and timed closures to every strategy and seed
(:func:`sweep_strategies`); with the agents' split seeds (common random
numbers) every strategy faces the same flood, incidents and citizens.
:func:`twin.kpi_stats.summarise_sweep` gives means and bootstrap intervals over
seeds, the paired differences to a baseline and the winner of each KPI.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import simpy

from twin.flood_feed import (
    CouplerError,
    CouplingOptions,
    FloodSchedule,
    FloodUpdate,
    closure_changes,
    compute_flood_schedule,
    empty_nodes,
    live_flood,
)
from twin.flood_feed import check_run as _check

HEADLINE_KPIS: tuple[str, ...] = (
    "response.all:all.response_s.p50",
    "response.all:all.response_s.p90",
    "incident_response_s.p50",
    "incident_response_s.p90",
    "within_target.all",
    "duplicates.dispatches",
    "duplicates.share",
    "coordination.total_h",
    "coordination.delay_mean",
    "resolution_s.p50",
    "utilisation.all",
    "unresolved.cases",
    "exposure.person_hours_closed_roads",
    "counts.incidents",
    "counts.reports",
    "counts.dispatched",
)
"""The flat KPI keys (:func:`agents.flatten_kpis`) shown side by side by ``twin compare`` and the Dispatch lab."""


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CoupledResult:
    """A coupled run: the agents' tables and KPIs plus the flood's plain state over time.

    Attributes
    ----------
    agents : agents.AgentRunResult
        KPIs and tables of the agents and the dispatch centre.
    flood_nodes : DataFrame
        Wet manholes at each coupling step: ``time_s``, ``node_id``, ``depth_m`` (in the shaft),
        ``flooding_cms``, ``flood_volume_m3``, ``surface_volume_m3``, ``surface_depth_m``, ``x``, ``y``.
    closures : DataFrame
        Road state changes: ``time_s``, ``road_id``, ``status``, ``depth_m`` (every road whose status changed).
    positions : DataFrame
        Crews and vendors at every tick: ``time_s``, ``kind`` (crew/vendor), ``agent_id``, ``x``, ``y``,
        ``status``, ``department``.
    crew_series, vendor_series : DataFrame
        The crews' and vendors' table rows at every tick (``time_s`` column), to rescore KPIs at any time.
    hydraulics : dict
        The flood's metadata (input hash, coupled mass balance, exchange, wall time), empty without a storm.
    metadata : dict
        Scenario parameters of the run.
    depths : DepthSeries or None
        The street water depth at every coupling step (twin's clock), None without a storm.
    """

    agents: Any
    flood_nodes: pd.DataFrame
    closures: pd.DataFrame
    positions: pd.DataFrame
    crew_series: pd.DataFrame
    vendor_series: pd.DataFrame
    hydraulics: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    depths: Any = None

    @property
    def kpis(self) -> dict:
        """The agents' nested KPIs."""
        return self.agents.kpis

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table by name (for the run store)."""
        return {**self.agents.tables(), "flood_nodes": self.flood_nodes, "road_closures": self.closures,
                "positions": self.positions, "crew_series": self.crew_series, "vendor_series": self.vendor_series}


def _recorder(env: simpy.Environment, model, rows: dict[str, list]):
    """SimPy process: snapshot crews and vendors after every Mesa tick."""
    while True:
        t = float(env.now)
        for c in model.crews:
            rows["positions"].append((t, "crew", c.crew_id, c.x, c.y, c.status, c.department))
            rows["crews"].append({"time_s": t, "crew_id": c.crew_id, **c.to_row()})
        for v in model.vendors:
            if v.occupying:
                x, y = model.site_xy[v.site]
                rows["positions"].append((t, "vendor", v.vendor_id, float(x), float(y), "occupying", ""))
            rows["vendors"].append({"time_s": t, "vendor_id": v.vendor_id, **v.to_row(t)})
        yield env.timeout(model.tick_s)


def _advance(env: simpy.Environment, until: float, progress, horizon: float, chunk_s: float = 3600.0) -> None:
    while env.now < until - 1e-9:
        nxt = min(until, (math.floor(env.now / chunk_s + 1e-9) + 1) * chunk_s)
        env.run(until=nxt)
        if progress is not None:
            progress(min(env.now / horizon, 1.0))


def hot_spot_risk_points(city, *, onset_s: float = 0.0, top_k: int = 5) -> list[tuple[float, float, float]]:
    """Risk points without a forecast: the manholes the city watches with water-level sensors.

    The city puts water-level sensors on the manholes it knows flood (lowest
    first); the ``top_k`` lowest of them, with onset ``onset_s`` (s), are what
    ``forecast_staging`` falls back to without a forecast table and without a
    storm's hydraulic risk map (:func:`twin.staging.plan_staging`).
    """
    s = city.sensors
    nodes = city.nodes
    if len(s) and "sensor_type" in s.columns:
        watched = s.loc[s["sensor_type"] == "water_level", "node_id"].astype(str)
        cand = nodes.loc[nodes.index.astype(str).isin(set(watched))]
    else:
        cand = nodes.iloc[0:0]
    if not len(cand):
        cand = nodes
    if "node_type" in cand.columns:
        cand = cand[cand["node_type"].astype(str) != "outfall"] if (cand["node_type"].astype(str) != "outfall").any() else cand
    elev = cand["rim_elev_m"] if "rim_elev_m" in cand.columns else pd.Series(0.0, index=cand.index)
    top = cand.loc[elev.sort_values(kind="stable").index[:top_k]]
    return [(float(p.x), float(p.y), float(onset_s)) for p in top.geometry]


def strategy_params_for(city, strategy: str, *, storm_start_s: float | None = None,
                        params: Mapping[str, Any] | None = None, risk_points=None,
                        flood: FloodSchedule | None = None) -> dict | None:
    """Strategy keywords; ``forecast_staging`` gets risk points (:func:`twin.staging.plan_staging`).

    In order: ``params``' own points, the ``risk_points`` table (a forecast),
    the hydraulic risk map of ``flood``, else :func:`hot_spot_risk_points`.
    """
    from twin.staging import plan_staging

    out, _ = plan_staging(city, strategy, params=params, risk_points=risk_points, flood=flood,
                          storm=storm_start_s is not None, storm_start_s=storm_start_s)
    return out


def run_coupled(city, *, hours: float = 24.0, strategy: str = "priority", seed: int = 0, rain=None,
                start_s: float = 0.0, options: CouplingOptions | None = None, flood: FloodSchedule | None = None,
                event_sink: Callable[[Mapping[str, Any]], None] | None = None,
                progress: Callable[[float], None] | None = None, strategy_params: Mapping[str, Any] | None = None,
                risk_points=None, n_citizens: int = 2000, n_vendors: int = 50, crews=None,
                **agent_kwargs) -> CoupledResult:
    """Run SWMM, the agents and the dispatch centre on one SimPy clock.

    Parameters
    ----------
    city : gisdata.CityTwin
        The city.
    hours : float
        Simulated duration from midnight, h.
    strategy : str
        Dispatch strategy (:func:`agents.strategy_names`).
    seed : int
        Seed of every random stream (common random numbers).
    rain : RainSeries, optional
        The storm (mm/h); None runs without hydraulics.
    start_s : float
        When the storm starts on the twin's clock, s since midnight.
    options : CouplingOptions, optional
        Coupling step and flood thresholds.
    flood : FloodSchedule, optional
        Instead of ``rain``: the flood updates of an earlier SWMM run
        (:func:`compute_flood_schedule`), applied at the same times and in the
        same way as live, so the run is identical to the live coupled one.
    event_sink : callable, optional
        Receives every event (a :class:`twin.eventlog.EventLog`).
    progress : callable, optional
        Called with the fraction of simulated time done (0-1).
    strategy_params : Mapping, optional
        Strategy keywords.  ``forecast_staging`` without its own ``risk_points``
        gets them from :func:`twin.staging.plan_staging`: the ``risk_points``
        table if given, else the storm's hydraulic risk map (with ``rain``, SWMM
        runs first into a :class:`FloodSchedule` that the run then replays, so
        the engine still runs once), else the sensor manholes (with a warning in
        ``metadata["staging"]``).
    risk_points : DataFrame, str or Path, optional
        A forecast risk-points table (``risk_points.csv`` of ``twin forecast``;
        :func:`twin.staging.read_risk_points`), used by ``forecast_staging`` in
        preference to the hydraulic risk map.
    n_citizens, n_vendors, crews, **agent_kwargs
        Passed to :func:`agents.build_agents`.

    Returns
    -------
    CoupledResult

    Examples
    --------
    >>> from agents.gridcity import make_grid_city
    >>> res = run_coupled(make_grid_city(5, 5), hours=1, n_citizens=50, n_vendors=2, crews=4, seed=1)
    >>> res.flood_nodes.empty, "positions" in res.tables()
    (True, True)
    """
    from agents import agents_process, build_agents, collect_result
    from twin.staging import plan_staging

    opts = options or CouplingOptions()
    horizon = _check(hours, rain, start_s, seed)
    if rain is not None and flood is not None:
        raise CouplerError("give either rain (run SWMM) or flood (a stored schedule), not both")
    prerun = False
    own_points = strategy_params is not None and ("risk_points" in strategy_params or "risk_map" in strategy_params)
    if strategy == "forecast_staging" and rain is not None and risk_points is None and not own_points:
        # The hydraulic risk map needs the flood before the run: run SWMM once into a
        # schedule and replay it (identical to the live coupling, tests/test_coupler.py).
        pre = None if progress is None else (lambda f: progress(0.5 * f))
        flood = compute_flood_schedule(city, rain, start_s=start_s, hours=hours, options=opts, progress=pre)
        rain, prerun = None, True
        if progress is not None:
            outer = progress
            progress = lambda f: outer(0.5 + 0.5 * f)
    if flood is not None:
        start_s = float(flood.hydraulics.get("start_s", 0.0))
    stormy = rain is not None or flood is not None
    params, staging = plan_staging(city, strategy, params=strategy_params, risk_points=risk_points, flood=flood,
                                   storm=stormy, storm_start_s=start_s if stormy else None, horizon_s=horizon)
    env = simpy.Environment()
    model, centre = build_agents(city, env, strategy=strategy, seed=int(seed), event_sink=event_sink,
                                 strategy_params=params, n_citizens=n_citizens, n_vendors=n_vendors, crews=crews,
                                 hours=hours, **agent_kwargs)
    env.process(agents_process(env, model, centre))
    rows: dict[str, list] = {"positions": [], "crews": [], "vendors": []}
    env.process(_recorder(env, model, rows))
    flood_rows: list[pd.DataFrame] = []
    closure_rows: list[pd.DataFrame] = []
    hyd: dict = {}
    depths = None

    def emit(kind: str, t: float, x=None, y=None, **payload) -> None:
        if event_sink is not None:
            event_sink({"time_s": t, "kind": kind, "actor": "hydraulics", "x": x, "y": y, "payload": payload})


    def apply(upd: FloodUpdate) -> None:
        """Hand one flood update to the agents (the clock is at its time)."""
        t = upd.time_s
        if len(upd.new_incidents):
            for r in upd.new_incidents.itertuples(index=False):
                emit("flood_threshold", t, r.x, r.y, incident_id=r.incident_id, node=r.node,
                     volume_m3=r.volume_m3, depth_m=r.depth_m, threshold_m3=opts.incident_volume_m3)
            model.add_flood_incidents(upd.new_incidents.drop(columns=["volume_m3"]))
        if upd.ended:
            model.end_incidents(upd.ended, t)
            for iid in upd.ended:
                emit("flood_end", t, incident_id=iid)
        if upd.closures is not None:
            centre.set_closures(upd.closures)
            closure_rows.append(upd.closures.assign(time_s=t).reset_index())
        if len(upd.nodes):
            flood_rows.append(upd.nodes)

    if flood is not None:
        for upd in flood.updates:
            if upd.time_s > horizon:
                break
            if upd.time_s > env.now + 1e-9:
                _advance(env, upd.time_s, progress, horizon)
            apply(upd)
        depths = flood.depths
        hyd = {**flood.hydraulics, "replayed_schedule": flood.key,
               "flood_incidents": int(sum(len(u.new_incidents) for u in flood.updates if u.time_s <= horizon))}
        if prerun:
            hyd["schedule_for_staging"] = True  # SWMM ran once, before the agents, for the risk map
    if rain is not None:
        _advance(env, start_s, progress, horizon)
        n_inc = [0]

        def on_update(upd: FloodUpdate) -> None:
            if upd.time_s > horizon + 1e-9:
                return
            if upd.time_s > env.now + 1e-9:
                env.run(until=upd.time_s)  # agents catch up under the previous flood state
            n_inc[0] += len(upd.new_incidents)
            apply(upd)

        run_share = None if progress is None else (
            lambda f: progress(min((start_s + f * (horizon - start_s)) / horizon, 1.0)))
        hyd, depths = live_flood(city, rain, start_s=start_s, horizon_s=horizon, options=opts,
                                 on_update=on_update, progress=run_share)
    _advance(env, horizon, progress, horizon)
    agents_res = collect_result(model, centre, horizon_s=horizon, metadata={
        "seed": int(seed), "hours": float(hours), "city": city.name,
        "hydraulics": f"SWMM + 2D streets coupled, state every {opts.coupling_step_s:g} s" if rain is not None
        else f"SWMM schedule {flood.key} replayed" if flood is not None else "off (no storm)"})
    closures = closure_changes(closure_rows)
    return CoupledResult(
        agents=agents_res,
        flood_nodes=pd.concat(flood_rows, ignore_index=True) if flood_rows else empty_nodes(),
        closures=closures,
        positions=pd.DataFrame(rows["positions"], columns=["time_s", "kind", "agent_id", "x", "y", "status",
                                                            "department"]),
        crew_series=pd.DataFrame(rows["crews"]), vendor_series=pd.DataFrame(rows["vendors"]),
        hydraulics=hyd, depths=depths,
        metadata={"city": city.name, "hours": float(hours), "strategy": strategy, "seed": int(seed),
                  "storm_start_s": float(start_s) if stormy else None,
                  "coupling": {k: getattr(opts, k) for k in opts.__dataclass_fields__},
                  "strategy_params": _plain(params or {}), "staging": _plain(staging)},
    )


def _plain(value):
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, pd.DataFrame):
        return value.to_dict("records")
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


# ----------------------------------------------------------------------------- worker process


def _call_with_progress(request: tuple[Callable, dict], report: Callable[[float], None]):
    """The worker process's work (:func:`twin.job_process.run_in_process`): ``fn(progress=report, **kwargs)``."""
    fn, kwargs = request
    return fn(progress=report, **kwargs)


def _in_worker(fn: Callable, kwargs: dict, progress: Callable[[float], None] | None, poll_s: float = 0.1):
    """Run ``fn(**kwargs)`` of this module in a fresh process (one SWMM per process); progress comes back here."""
    from twin.job_process import run_in_process

    return run_in_process(_call_with_progress, (fn, kwargs), on_report=progress, poll_s=poll_s, what="coupler",
                          error_type=CouplerError)


def run_coupled_in_worker(city, *, progress: Callable[[float], None] | None = None, **kwargs) -> CoupledResult:
    """:func:`run_coupled` in a fresh process (no event sink: the log is rebuilt by the caller)."""
    if "event_sink" in kwargs:
        raise CouplerError("event_sink cannot cross into the worker process; write the log from the result")
    return _in_worker(run_coupled, {"city": city, **kwargs}, progress)


# ----------------------------------------------------------------------------- flood schedule and sweeps


def sweep_strategies(city, strategies: Sequence[str], seeds: Iterable[int], *, hours: float = 24.0,
                     flood: FloodSchedule | None = None, progress: Callable[[float], None] | None = None,
                     **kwargs) -> pd.DataFrame:
    """Every strategy with every seed (common random numbers); one row of flat KPIs per run.

    Parameters
    ----------
    city : gisdata.CityTwin
        The city.
    strategies : sequence of str
        Strategy names.
    seeds : iterable of int
        Seeds (the same for every strategy).
    hours : float
        Simulated duration, h.
    flood : FloodSchedule, optional
        The storm's incidents and closures (:func:`compute_flood_schedule`), the same for every run.
    progress : callable, optional
        Called with the fraction of runs done.
    **kwargs
        Passed to :func:`run_coupled` (``n_citizens``, ``crews``, ...).

    Returns
    -------
    DataFrame
        Columns ``strategy``, ``seed`` and the flat KPI keys.

    Examples
    --------
    >>> from agents.gridcity import make_grid_city
    >>> df = sweep_strategies(make_grid_city(5, 5), ["siloed", "priority"], [1, 2], hours=1, n_citizens=50, crews=4)
    >>> df[["strategy", "seed"]].values.tolist()
    [['siloed', 1], ['siloed', 2], ['priority', 1], ['priority', 2]]
    """
    from agents import flatten_kpis, get_strategy

    seeds = [int(s) for s in seeds]
    for s in strategies:
        get_strategy(s, **(strategy_params_for(city, s, flood=flood) or {}))  # unknown names fail before any run
    if not seeds or not strategies:
        raise CouplerError("give at least one strategy and one seed")
    if any(s < 0 for s in seeds):
        raise CouplerError(f"seeds {seeds} must be >= 0")
    rows = []
    n = len(seeds) * len(strategies)
    for name in strategies:
        for seed in seeds:
            res = run_coupled(city, hours=hours, strategy=name, seed=seed, flood=flood, **kwargs)
            rows.append({"strategy": name, "seed": seed, **flatten_kpis(res.kpis)})
            if progress is not None:
                progress(len(rows) / n)
    return pd.DataFrame(rows)


__all__ = [
    "HEADLINE_KPIS", "CoupledResult", "CouplerError", "CouplingOptions", "FloodSchedule",
    "FloodUpdate", "compute_flood_schedule", "hot_spot_risk_points", "run_coupled", "run_coupled_in_worker",
    "strategy_params_for", "sweep_strategies",
]
