"""The coupler: SWMM, the Mesa agents and the SimPy dispatch centre on one clock.

One :class:`simpy.Environment` owns simulated time (s since midnight of day 0).
The agents (:func:`agents.agents_process`) and the dispatch centre run on it as
SimPy processes.  The hydraulics is the SWMM engine stepped by
:func:`hydraulics.run.run_swmm`, which calls back with a
:class:`~hydraulics.run.FloodState` every coupling step (300 s by default).
Each callback

1. advances the SimPy clock to the time of that state (``env.run(until=t)``):
   the agents and crews catch up, seeing the flood state of the previous step;
2. publishes the new state as plain tables (:class:`FloodPublisher`): manholes
   whose overflow passed a threshold become waterlogging incidents (with the
   water-level sensor alarms the model raises for them), incidents whose water
   has drained end, and the surface depth along every road gives the road
   closures that the routing uses from then on.

That is the same as a hydraulics SimPy process that yields ``timeout(300)``
and publishes, with the engine's own loop driving it: SWMM is not
re-entrant and cannot be paused from inside a generator without a stepping
API.  Before the storm starts and after SWMM ends the clock runs on without
hydraulics.  Hydraulics and agents never see each other: they meet here,
through tables of incidents and closures.

Surface water between steps
---------------------------
The generated models run with ``ALLOW_PONDING NO``: water that overflows a
manhole leaves the engine.  The coupler keeps it on the street: each node's
*surface volume* grows by its overflow since the last step, and, while the
node no longer overflows, drains back at ``drain_back_cms`` (gully inlets).
The surface volumes are spread over the DEM by fill-and-spill
(:func:`hydraulics.surface.spread_flood`) to get the depth along each road
(:func:`~hydraulics.surface.road_max_depth`) and the closures
(:func:`~hydraulics.surface.road_closures`, 0.15 m closed to cars, 0.30 m closed).

One simulation per process
--------------------------
:func:`run_coupled` runs SWMM in the calling process (the CLI does this once per
process).  :func:`run_coupled_in_worker` and :func:`compute_flood_schedule`
(``worker=True``) run it in a fresh process, as the workbench must
(:func:`twin.job_process.run_in_process`: not a ``multiprocessing`` one, whose
child would first re-run the workbench's ``app.py``).

Many seeds and strategies
-------------------------
The flood does not depend on dispatch (coupling is one way: water -> city), so
a sweep runs SWMM once per storm (:func:`compute_flood_schedule`) and hands
the same incidents and timed closures to every strategy and seed
(:func:`sweep_strategies`); with the agents' split seeds (common random
numbers) every strategy faces the same flood, incidents and citizens.
:func:`summarise_sweep` gives means and t confidence intervals over seeds and
the paired differences to a baseline.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import simpy

from gisdata.errors import TwinError
from gisdata.limits import MAX_COUPLING_STEP_S, MIN_COUPLING_STEP_S
from hydraulics.surface import INLET_RETURN_CMS

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


class CouplerError(TwinError, ValueError):
    """A coupled run was asked for something impossible (storm after the horizon, bad option)."""


# ----------------------------------------------------------------------------- options


@dataclass(frozen=True)
class CouplingOptions:
    """How hydraulics state becomes incidents and closures.

    Parameters
    ----------
    coupling_step_s : float
        Interval of flood-state exchange, s.
    incident_volume_m3 : float
        Overflow volume at a manhole (since it last drained) that makes it a
        waterlogging incident, m3.
    drain_back_cms : float
        Rate at which surface water at a manhole that no longer overflows
        drains back into the network, m3/s per manhole (default the forecast's,
        :data:`hydraulics.surface.INLET_RETURN_CMS`).
    car_m, all_m : float
        Road depths closing a road to cars and to everyone (crews too), m.
    drain_time_h : float
        Simulated time after the rain ends, h (SWMM keeps running).
    min_depth_m : float
        Surface depth recorded as wet in the node series, m.
    street_radius_m : float
        A manhole's surface depth is that of the nearest pool within this distance, m
        (fill-and-spill moves water off the manhole to the low point of its street).
    """

    coupling_step_s: float = 300.0
    incident_volume_m3: float = 1.0
    drain_back_cms: float = INLET_RETURN_CMS
    car_m: float = 0.15
    all_m: float = 0.30
    drain_time_h: float = 2.0
    min_depth_m: float = 0.01
    street_radius_m: float = 200.0

    def __post_init__(self) -> None:
        for name in ("coupling_step_s", "incident_volume_m3", "drain_back_cms", "car_m", "all_m", "drain_time_h",
                     "min_depth_m", "street_radius_m"):
            if not math.isfinite(getattr(self, name)):  # inf passes every comparison below
                raise CouplerError(f"{name}={getattr(self, name)} must be a finite number")
        if not MIN_COUPLING_STEP_S <= self.coupling_step_s <= MAX_COUPLING_STEP_S:
            raise CouplerError(f"coupling_step_s={self.coupling_step_s:g} is out of range; expected "
                               f"{MIN_COUPLING_STEP_S:g} <= coupling_step_s <= {MAX_COUPLING_STEP_S:g} s")
        for name in ("incident_volume_m3", "drain_back_cms", "drain_time_h", "min_depth_m", "street_radius_m"):
            if not getattr(self, name) >= 0:
                raise CouplerError(f"{name}={getattr(self, name)} must be >= 0")
        if not 0 <= self.car_m <= self.all_m:
            raise CouplerError(f"car_m={self.car_m}, all_m={self.all_m}: need 0 <= car_m <= all_m (m)")


# ----------------------------------------------------------------------------- flood state -> plain state


@dataclass(frozen=True)
class FloodUpdate:
    """What changed in the flood at one coupling step (plain tables for the agents).

    Attributes
    ----------
    time_s : float
        Simulated time (s since the scenario start).
    new_incidents : DataFrame
        ``incident_id``, ``x``, ``y`` (m), ``time_s``, ``depth_m``, ``node``: manholes that passed the threshold.
    ended : list of str
        Incident IDs whose water drained away.
    closures : DataFrame or None
        The whole closure state (index ``road_id``; ``depth_m``, ``status``) if any road changed, else None.
    nodes : DataFrame
        Wet nodes at this step: ``node_id``, ``depth_m``, ``flooding_cms``, ``surface_volume_m3``, ``surface_depth_m``.
    """

    time_s: float
    new_incidents: pd.DataFrame
    ended: list[str]
    closures: pd.DataFrame | None
    nodes: pd.DataFrame


def _pool_depth(depth, xy: np.ndarray, *, search_m: float, wet_m: float) -> np.ndarray:
    """Greatest depth of the pool each point's water ran to, m.

    Fill-and-spill moves overflow downhill, off the manhole, to the low point of
    its street: the nearest cell with at least ``wet_m`` of water within
    ``search_m`` finds the pool (a connected wet area), whose deepest cell gives
    the depth (0 when there is none: thin sheet flow).
    """
    from scipy import ndimage
    from scipy.spatial import cKDTree

    out = np.zeros(len(xy))
    vals = np.nan_to_num(np.asarray(depth.values, dtype=float))
    wet = vals >= wet_m
    if not wet.any() or len(xy) == 0:
        return out
    labels, n = ndimage.label(wet)
    lake_max = np.asarray(ndimage.maximum(vals, labels, index=np.arange(1, n + 1)), dtype=float)
    rows, cols = np.nonzero(wet)
    t = depth.transform
    cx = t.c + (cols + 0.5) * t.a
    cy = t.f + (rows + 0.5) * t.e
    dist, k = cKDTree(np.column_stack([cx, cy])).query(xy, distance_upper_bound=search_m)
    hit = np.isfinite(dist)
    out[hit] = lake_max[labels[rows[k[hit]], cols[k[hit]]] - 1]
    return out


class FloodPublisher:
    """Turns successive :class:`~hydraulics.run.FloodState` snapshots into incidents and closures.

    Parameters
    ----------
    city : gisdata.CityTwin
        Nodes (positions), roads and the DEM are used.
    options : CouplingOptions
        Thresholds.
    offset_s : float
        Simulated time of the SWMM start on the twin's clock, s.
    """

    def __init__(self, city, options: CouplingOptions, *, offset_s: float = 0.0) -> None:
        self.city = city
        self.options = options
        self.offset_s = float(offset_s)
        nodes = city.nodes
        self.node_ids = nodes.index.astype(str)
        self.xy = np.column_stack([nodes.geometry.x.to_numpy(float), nodes.geometry.y.to_numpy(float)])
        n = len(nodes)
        self.surface_m3 = np.zeros(n)
        self.since_drained_m3 = np.zeros(n)
        self.last_flood_m3 = np.zeros(n)
        self.open: dict[int, str] = {}
        self.status = pd.Series("open", index=pd.Index(city.roads.index.astype(str), name="road_id"))
        self.last_time_s = self.offset_s
        self._surface_key = b""
        self._surface_depth = np.zeros(n)
        self.spreads = 0
        self.n_incidents = 0

    def update(self, state) -> FloodUpdate:
        """Publish one flood state; returns the changes (see :class:`FloodUpdate`)."""
        from hydraulics.surface import road_closures, road_max_depth, spread_flood

        opts = self.options
        t = self.offset_s + float(state.elapsed_s)
        dt = max(t - self.last_time_s, 0.0)
        self.last_time_s = t
        idx = pd.Index(state.node_ids.astype(str)).get_indexer(self.node_ids)
        have = idx >= 0
        vol = np.zeros(len(self.node_ids))
        rate = np.zeros(len(self.node_ids))
        depth = np.zeros(len(self.node_ids))
        vol[have] = np.asarray(state.flood_volume_m3)[idx[have]]
        rate[have] = np.asarray(state.flooding_rate_cms)[idx[have]]
        depth[have] = np.asarray(state.depth_m)[idx[have]]
        inflow = np.clip(vol - self.last_flood_m3, 0.0, None)
        self.last_flood_m3 = vol
        self.surface_m3 += inflow
        self.since_drained_m3 += inflow
        draining = rate <= 0
        self.surface_m3[draining] = np.clip(self.surface_m3[draining] - opts.drain_back_cms * dt, 0.0, None)
        self.since_drained_m3[self.surface_m3 <= 0] = 0.0

        closures = None
        key = np.round(self.surface_m3, 3).tobytes()
        if key != self._surface_key:
            self._surface_key = key
            wet = self.surface_m3 > 0
            if wet.any():
                vols = pd.Series(self.surface_m3[wet], index=self.node_ids[wet])
                flood = spread_flood(self.city.dem, self.city.nodes.loc[vols.index], vols)
                self.spreads += 1
                self._surface_depth = _pool_depth(flood.depth, self.xy, search_m=opts.street_radius_m,
                                                  wet_m=opts.min_depth_m)
                road = road_closures(road_max_depth(self.city.roads, flood), car_m=opts.car_m, all_m=opts.all_m)
            else:
                self._surface_depth = np.zeros(len(self.node_ids))
                road = road_closures(pd.Series(0.0, index=self.status.index), car_m=opts.car_m, all_m=opts.all_m)
            road.index = road.index.astype(str)
            status = road["status"].astype(str)
            if not status.reindex(self.status.index).fillna("open").equals(self.status):
                self.status = status.reindex(self.status.index).fillna("open")
                closures = road

        new_rows = []
        for i in np.flatnonzero((self.since_drained_m3 >= opts.incident_volume_m3) & (self.surface_m3 > 0)):
            if int(i) in self.open:
                continue
            iid = f"FL-{self.node_ids[i]}-{round(t)}"
            self.open[int(i)] = iid
            self.n_incidents += 1
            new_rows.append({"incident_id": iid, "x": self.xy[i, 0], "y": self.xy[i, 1], "time_s": t,
                             "depth_m": float(max(self._surface_depth[i], 0.0)), "node": self.node_ids[i],
                             "volume_m3": float(self.surface_m3[i])})
        ended = []
        for i in [k for k in self.open if self.surface_m3[k] <= 0]:
            ended.append(self.open.pop(i))
        wet = (self.surface_m3 > 0) | (rate > 0) | (self._surface_depth >= opts.min_depth_m)
        nodes = pd.DataFrame({"time_s": t, "node_id": self.node_ids[wet], "depth_m": depth[wet],
                              "flooding_cms": rate[wet], "flood_volume_m3": vol[wet],
                              "surface_volume_m3": self.surface_m3[wet], "surface_depth_m": self._surface_depth[wet],
                              "x": self.xy[wet, 0], "y": self.xy[wet, 1]})
        inc = pd.DataFrame(new_rows, columns=["incident_id", "x", "y", "time_s", "depth_m", "node", "volume_m3"])
        return FloodUpdate(t, inc, ended, closures, nodes)


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
        SWMM metadata (input hash, versions, continuity, wall time), empty without a storm.
    metadata : dict
        Scenario parameters of the run.
    """

    agents: Any
    flood_nodes: pd.DataFrame
    closures: pd.DataFrame
    positions: pd.DataFrame
    crew_series: pd.DataFrame
    vendor_series: pd.DataFrame
    hydraulics: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

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


def _check(hours: float, rain, start_s: float, seed) -> float:
    if not hours > 0:
        raise CouplerError(f"hours={hours} must be > 0")
    if int(seed) < 0:
        raise CouplerError(f"seed={seed} must be >= 0")
    horizon = float(hours) * 3600.0
    if rain is not None and not 0 <= start_s < horizon:
        raise CouplerError(f"storm start {start_s / 3600:g} h must be within the run (0 .. {hours:g} h)")
    return horizon


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
        hyd = {**flood.hydraulics, "replayed_schedule": flood.key,
               "flood_incidents": int(sum(len(u.new_incidents) for u in flood.updates if u.time_s <= horizon))}
        if prerun:
            hyd["schedule_for_staging"] = True  # SWMM ran once, before the agents, for the risk map
    if rain is not None:
        from hydraulics.build import build_swmm
        from hydraulics.run import RunOptions, run_swmm

        _advance(env, start_s, progress, horizon)
        pub = FloodPublisher(city, opts, offset_s=start_s)
        text = build_swmm(city, rain_gauges=rain, drain_time_h=opts.drain_time_h, report="none")  # state comes via on_step
        total = float(rain.duration_s) + opts.drain_time_h * 3600.0
        run_s = min(total, horizon - start_s)

        def on_step(state) -> None:
            t = start_s + float(state.elapsed_s)
            if t > env.now + 1e-9:
                env.run(until=t)  # agents catch up under the previous flood state
            apply(pub.update(state))
            if progress is not None:
                progress(min(t / horizon, 1.0))

        res = run_swmm(text, options=RunOptions(coupling_step_s=opts.coupling_step_s, duration_s=run_s),
                       on_step=on_step)
        hyd = {**dict(res.metadata), **{f"continuity_{k}": v for k, v in res.continuity.items()},
               "flooded_nodes": len(res.flood_summary), "flood_volume_m3": res.total_flood_volume_m3,
               "surface_spreads": pub.spreads, "flood_incidents": pub.n_incidents, "storm": getattr(rain, "label", ""), "start_s": start_s,
               "swmm_duration_s": run_s}
    _advance(env, horizon, progress, horizon)
    agents_res = collect_result(model, centre, horizon_s=horizon, metadata={
        "seed": int(seed), "hours": float(hours), "city": city.name,
        "hydraulics": f"SWMM coupled every {opts.coupling_step_s:g} s" if rain is not None
        else f"SWMM schedule {flood.key} replayed" if flood is not None else "off (no storm)"})
    closures = _closure_changes(closure_rows)
    return CoupledResult(
        agents=agents_res,
        flood_nodes=pd.concat(flood_rows, ignore_index=True) if flood_rows else _empty_nodes(),
        closures=closures,
        positions=pd.DataFrame(rows["positions"], columns=["time_s", "kind", "agent_id", "x", "y", "status",
                                                            "department"]),
        crew_series=pd.DataFrame(rows["crews"]), vendor_series=pd.DataFrame(rows["vendors"]),
        hydraulics=hyd,
        metadata={"city": city.name, "hours": float(hours), "strategy": strategy, "seed": int(seed),
                  "storm_start_s": float(start_s) if stormy else None,
                  "coupling": {k: getattr(opts, k) for k in opts.__dataclass_fields__},
                  "strategy_params": _plain(params or {}), "staging": _plain(staging)},
    )


def _empty_nodes() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object if c == "node_id" else float) for c in (
        "time_s", "node_id", "depth_m", "flooding_cms", "flood_volume_m3", "surface_volume_m3", "surface_depth_m",
        "x", "y")})


def _closure_changes(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Only the roads whose status changed at each step (a road reopening included)."""
    cols = ["time_s", "road_id", "status", "depth_m"]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("road_id", "status") else float) for c in cols})
    prev: dict[str, str] = {}
    out = []
    for f in frames:
        f = f.assign(status=f["status"].astype(str))
        changed = [p != prev.get(r, "open") for r, p in zip(f["road_id"], f["status"])]
        sel = f.loc[changed, cols]
        out.append(sel)
        prev = dict(zip(f["road_id"], f["status"]))
    return pd.concat(out, ignore_index=True)


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


@dataclass(frozen=True)
class FloodSchedule:
    """The hydraulics side of a coupled run, reduced to timed plain state.

    Attributes
    ----------
    incidents : DataFrame
        ``incident_id``, ``x``, ``y``, ``time_s``, ``depth_m``, ``node``, ``end_s`` (inf if still wet).
    closures : DataFrame
        ``time_s``, ``road_id``, ``status``, ``depth_m``: status changes.
    nodes : DataFrame
        Wet manholes per coupling step (as :attr:`CoupledResult.flood_nodes`).
    hydraulics : dict
        SWMM metadata.
    key : str
        Digest of the SWMM input and the coupling options.
    updates : tuple of FloodUpdate
        Every coupling step's update, in time order (what :func:`run_coupled` replays with ``flood=``).
    """

    incidents: pd.DataFrame
    closures: pd.DataFrame
    nodes: pd.DataFrame
    hydraulics: dict
    key: str
    updates: tuple = ()


def compute_flood_schedule(city, rain, *, start_s: float = 0.0, hours: float = 24.0,
                           options: CouplingOptions | None = None, worker: bool = False,
                           progress: Callable[[float], None] | None = None) -> FloodSchedule:
    """Run SWMM once and keep the incidents and closures it publishes, with their times.

    With ``worker=True`` the engine runs in a fresh process.
    """
    if worker:
        return _in_worker(compute_flood_schedule, {"city": city, "rain": rain, "start_s": start_s,
                                                     "hours": hours, "options": options}, progress)
    from hydraulics.build import build_swmm
    from hydraulics.run import RunOptions, run_swmm

    opts = options or CouplingOptions()
    horizon = _check(hours, rain, start_s, 0)
    pub = FloodPublisher(city, opts, offset_s=start_s)
    text = build_swmm(city, rain_gauges=rain, drain_time_h=opts.drain_time_h, report="none")
    run_s = min(float(rain.duration_s) + opts.drain_time_h * 3600.0, horizon - start_s)
    incs, ends, closures, nodes, updates = [], {}, [], [], []

    def on_step(state) -> None:
        upd = pub.update(state)
        updates.append(upd)
        if len(upd.new_incidents):
            incs.append(upd.new_incidents)
        for iid in upd.ended:
            ends[iid] = upd.time_s
        if upd.closures is not None:
            closures.append(upd.closures.assign(time_s=upd.time_s).reset_index())
        if len(upd.nodes):
            nodes.append(upd.nodes)
        if progress is not None:
            progress(min(float(state.elapsed_s) / run_s, 1.0))

    res = run_swmm(text, options=RunOptions(coupling_step_s=opts.coupling_step_s, duration_s=run_s), on_step=on_step)
    inc = pd.concat(incs, ignore_index=True) if incs else pd.DataFrame(
        columns=["incident_id", "x", "y", "time_s", "depth_m", "node", "volume_m3"])
    inc = inc.assign(end_s=inc["incident_id"].map(ends).astype(float).fillna(np.inf))
    key = hashlib.sha256((res.metadata.get("input_sha256", "") + repr(opts) + repr(start_s)).encode()).hexdigest()[:16]
    hyd = {**dict(res.metadata), **{f"continuity_{k}": v for k, v in res.continuity.items()},
           "flooded_nodes": len(res.flood_summary), "flood_volume_m3": res.total_flood_volume_m3,
           "surface_spreads": pub.spreads, "storm": getattr(rain, "label", ""), "start_s": start_s,
           "swmm_duration_s": run_s}
    return FloodSchedule(inc.drop(columns=["volume_m3"]), _closure_changes(closures),
                         pd.concat(nodes, ignore_index=True) if nodes else _empty_nodes(), hyd, key, tuple(updates))


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


def summarise_sweep(df: pd.DataFrame, kpis: Sequence[str] = HEADLINE_KPIS, *, level: float = 0.95,
                    baseline: str | None = None) -> pd.DataFrame:
    """Mean and t confidence interval over seeds of each KPI per strategy, and the paired difference.

    Parameters
    ----------
    df : DataFrame
        From :func:`sweep_strategies`.
    kpis : sequence of str
        Flat KPI keys.
    level : float
        Confidence level.
    baseline : str, optional
        Strategy to difference against, seed by seed (common random numbers make
        the paired interval much narrower); default the first strategy.

    Returns
    -------
    DataFrame
        Index (``kpi``, ``strategy``); ``n``, ``mean``, ``ci_low``, ``ci_high``, ``diff_mean``,
        ``diff_ci_low``, ``diff_ci_high`` (NaN where undefined).
    """
    from scipy import stats

    if not 0 < level < 1:
        raise CouplerError(f"level={level} must be in (0, 1)")
    strategies = list(dict.fromkeys(df["strategy"]))
    base = baseline or strategies[0]
    rows = []

    def ci(v: np.ndarray) -> tuple[int, float, float, float]:
        v = v[np.isfinite(v)]
        if len(v) == 0:
            return 0, np.nan, np.nan, np.nan
        m = float(v.mean())
        if len(v) < 2:
            return len(v), m, np.nan, np.nan
        h = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
        return len(v), m, m - h, m + h

    for k in kpis:
        if k not in df.columns:
            continue
        b = df[df["strategy"] == base].set_index("seed")[k].astype(float)
        for s in strategies:
            v = df[df["strategy"] == s].set_index("seed")[k].astype(float)
            n, m, lo, hi = ci(v.to_numpy())
            d = (v - b.reindex(v.index)).to_numpy()
            _, dm, dlo, dhi = ci(d)
            rows.append({"kpi": k, "strategy": s, "n": n, "mean": m, "ci_low": lo, "ci_high": hi,
                         "diff_mean": dm, "diff_ci_low": dlo, "diff_ci_high": dhi})
    return pd.DataFrame(rows).set_index(["kpi", "strategy"])


__all__ = [
    "HEADLINE_KPIS", "CoupledResult", "CouplerError", "CouplingOptions", "FloodPublisher", "FloodSchedule",
    "FloodUpdate", "compute_flood_schedule", "hot_spot_risk_points", "run_coupled", "run_coupled_in_worker",
    "strategy_params_for", "summarise_sweep", "sweep_strategies",
]
