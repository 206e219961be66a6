"""The dispatch centre as SimPy processes: intake, merge, triage, assign, travel, serve, close.

Flow of one report::

    submit() --(at time_s)--> receive: unit = command centre, or (siloed) the
    department whose channel took it -> merge into an open case of that unit
    (same category, within merge_radius_m of its first report, within
    merge_window_s of its latest) or open a new case -> triage (category ->
    departments, response level, handling mode) -> one job per department
    -> the strategy pairs pending jobs with idle crews -> crew travels (road
    network, current closures) -> arrives -> serves (lognormal, mean by
    category) -> job resolved -> case closed when all its jobs and referrals are.

One command centre, three response levels (:mod:`agents.catalog`), two handling
modes (``field``, ``remote``).  In the ``siloed`` baseline there is no command
centre: each department merges only what it received itself, and a joint
incident reaches the other department by a referral that costs a coordination
delay (exponential, mean ``coordination_mean_s`` = 42 min) and is not matched
against that department's own cases -- hence duplicate dispatches.

Every step is emitted as an event (``report``, ``merge``, ``case``,
``referral``, ``dispatch``, ``arrival``, ``resolution``, ``closure``,
``staging``, ``road_closure``) to the ``event_sink`` callable and to any
listener (the Mesa model listens for arrivals to enforce on vendors).  The
centre never writes files; the coupler passes a :class:`twin.eventlog.EventLog`
as the sink.

External input at any time: :meth:`DispatchCentre.submit` (reports, sensor
alarms, patrol findings, imported records) and
:meth:`DispatchCentre.set_closures` (road closures).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import simpy

from agents.catalog import CATEGORIES, CHANNELS, LEVELS, CategorySpec, silo_intake
from agents.errors import AgentConfigError, MissingColumnError
from agents.merge import MergeIndex
from agents.routing import RoadGraph
from agents.strategies import Strategy, get_strategy
from gisdata.limits import MAX_MERGE_RADIUS_M
from gisdata.schema import DEPARTMENTS

REPORT_COLUMNS = ("time_s", "x", "y", "category", "channel")
"""Columns :meth:`DispatchCentre.submit` needs; optional: report_id, incident_id,
age_group, reporter, level, department (of a patrol)."""


@dataclass(frozen=True)
class DispatchConfig:
    """Parameters of the dispatch centre.

    Parameters
    ----------
    merge : bool
        Merge duplicate reports into one case.
    merge_radius_m, merge_window_s : float
        The merge window (m, s): distance from the case's first report; time after
        its latest report or its closure (open cases always match).
    merge_radius_by_category : Mapping[str, float]
        Radius overrides (m): waterlogging spreads over a street and is reported from
        afar, with spoken addresses ~100 m off, so it gets 300 m.
    coordination_mean_s : float
        Mean referral delay between departments in the siloed baseline (s; default 42 min).
    central_coordination_s : float
        Delay before the second department's job under the command centre (s).
    service_cv : float
        Coefficient of variation of service times (lognormal).
    batch_dt_s : float
        Period of batch strategies such as ``assignment`` (s).
    rekick_s : float
        Period of the watchdog that retries pending jobs (new shifts, reopened roads) (s).
    crews_per_level : Mapping[int, int]
        Crews per department sent to a case of each response level.
    speed_factor : Mapping[str, float]
        Crew speed relative to the road's free-flow speed, per department.
    categories : Mapping[str, CategorySpec]
        The category table (:data:`agents.catalog.CATEGORIES`).
    """

    merge: bool = True
    merge_radius_m: float = 150.0
    merge_window_s: float = 3600.0
    merge_radius_by_category: Mapping[str, float] = field(default_factory=lambda: {"waterlogging": 300.0})
    coordination_mean_s: float = 42 * 60.0
    central_coordination_s: float = 0.0
    service_cv: float = 0.5
    batch_dt_s: float = 300.0
    rekick_s: float = 600.0
    crews_per_level: Mapping[int, int] = field(default_factory=lambda: {1: 1, 2: 1, 3: 1})
    speed_factor: Mapping[str, float] = field(default_factory=lambda: {
        "city_management": 1.0, "drainage": 1.0, "police": 1.15, "emergency": 1.25})
    categories: Mapping[str, CategorySpec] = field(default_factory=lambda: dict(CATEGORIES))

    def __post_init__(self) -> None:
        for name in ("merge_radius_m", "merge_window_s", "coordination_mean_s", "central_coordination_s",
                     "service_cv", "batch_dt_s", "rekick_s"):
            if not math.isfinite(getattr(self, name)):  # inf would pass every comparison below
                raise AgentConfigError(f"{name}={getattr(self, name)} must be a finite number")
        if self.merge_radius_m > MAX_MERGE_RADIUS_M:
            raise AgentConfigError(f"merge_radius_m={self.merge_radius_m:g} must be <= {MAX_MERGE_RADIUS_M:g} m "
                                   "(MAX_MERGE_RADIUS_M)")
        for name in ("merge_radius_m", "merge_window_s", "coordination_mean_s", "central_coordination_s",
                     "service_cv"):
            if getattr(self, name) < 0:
                raise AgentConfigError(f"{name}={getattr(self, name)} must be >= 0")
        for name in ("batch_dt_s", "rekick_s"):
            if getattr(self, name) <= 0:
                raise AgentConfigError(f"{name}={getattr(self, name)} must be > 0")
        if set(self.crews_per_level) != set(LEVELS) or any(v < 1 for v in self.crews_per_level.values()):
            raise AgentConfigError(f"crews_per_level={dict(self.crews_per_level)} must give >= 1 crew for levels {LEVELS}")
        bad = {d: v for d, v in self.speed_factor.items() if d not in DEPARTMENTS or v <= 0}
        if bad or set(self.speed_factor) != set(DEPARTMENTS):
            raise AgentConfigError(f"speed_factor={dict(self.speed_factor)} must give a factor > 0 for each of {DEPARTMENTS}")
        bad_r = {c: r for c, r in self.merge_radius_by_category.items()
                 if not 0 <= r <= MAX_MERGE_RADIUS_M or c not in self.categories}
        if bad_r:
            raise AgentConfigError(f"merge_radius_by_category={bad_r}: radii must be 0 - {MAX_MERGE_RADIUS_M:g} m and categories known")
        if "other" not in self.categories:
            raise AgentConfigError("categories must include 'other' (the fallback category)")


@dataclass(eq=False)
class Case:
    """A group of merged reports handled as one incident by one unit."""

    case_id: str
    unit: str
    category: str
    level: int
    mode: str
    x: float
    y: float
    node: int
    t_open_s: float
    t_root_s: float
    origin: str = "report"
    parent: Case | None = None
    report_ids: list = field(default_factory=list)
    incident_ids: list = field(default_factory=list)
    t_last_s: float = 0.0
    t_closed_s: float = np.nan
    open_items: int = 0
    merge_key: tuple | None = None


@dataclass(eq=False)
class Job:
    """One department's task at a case: waits, gets a crew, travels, serves."""

    job_id: str
    case: Case
    department: str
    node: int
    level: int
    t_request_s: float
    coordination_s: float = 0.0
    crew_id: str = ""
    t_dispatch_s: float = np.nan
    t_arrive_s: float = np.nan
    t_done_s: float = np.nan
    travel_s: float = np.nan
    service_s: float = np.nan
    status: str = "pending"


class DispatchCentre:
    """The SimPy dispatch centre.

    Parameters
    ----------
    env : simpy.Environment
        The shared clock (s).
    graph : RoadGraph
        Road network; closures set through :meth:`set_closures` apply to it.
    crews : list of Crew
        The crews (Mesa agents of :mod:`agents.crew`); the centre drives them.
    strategy : str or Strategy
        A name from :func:`agents.strategies.strategy_names` or an instance.
    config : DispatchConfig, optional
    rng : numpy.random.Generator
        Dispatch stream (service times, referral delays); required for reproducibility.
    event_sink : callable, optional
        Receives every event as a mapping (``time_s, kind, actor, x, y, payload``).
    strategy_params : Mapping, optional
        Keyword arguments for the strategy (e.g. ``risk_points``).

    Raises
    ------
    AgentConfigError
        If ``crews`` is empty or ``rng`` is missing.
    UnknownStrategyError
        If the strategy name is not registered.
    """

    def __init__(self, env: simpy.Environment, graph: RoadGraph, crews: list, *, strategy: str | Strategy = "priority",
                 config: DispatchConfig | None = None, rng: np.random.Generator | None = None,
                 event_sink: Callable[[Mapping[str, Any]], None] | None = None,
                 strategy_params: Mapping[str, Any] | None = None) -> None:
        if len(crews) == 0:
            raise AgentConfigError(f"n_crews={len(crews)} must be > 0")
        if rng is None:
            raise AgentConfigError("rng=None: pass a numpy Generator (the dispatch stream) for reproducible runs")
        self.env = env
        self.graph = graph
        self.crews = list(crews)
        self.crew_by_id = {c.crew_id: c for c in self.crews}
        self.config = config or DispatchConfig()
        self.rng = rng
        self.event_sink = event_sink
        self.listeners: list[Callable[[Mapping[str, Any]], None]] = []
        self.strategy = strategy if isinstance(strategy, Strategy) else get_strategy(strategy, **dict(strategy_params or {}))
        self._merge = MergeIndex(self.config.merge_radius_m, self.config.merge_window_s)
        self.reports: list[dict] = []
        self.cases: list[Case] = []
        self.jobs: list[Job] = []
        self.pending: list[Job] = []
        self._n_reports = 0
        graph.precompute(sorted({c.node for c in self.crews}))
        self.strategy.setup(self)
        env.process(self._watchdog())
        if self.strategy.batch:
            env.process(self._batch_loop())

    # ------------------------------------------------------------------ events
    def add_listener(self, fn: Callable[[Mapping[str, Any]], None]) -> None:
        """Call ``fn(event)`` for every event (after the sink)."""
        self.listeners.append(fn)

    def emit(self, kind: str, actor: str, x: float | None, y: float | None, **payload) -> None:
        """Send one event to the sink and the listeners."""
        event = {"time_s": float(self.env.now), "kind": kind, "actor": actor,
                 "x": None if x is None else float(x), "y": None if y is None else float(y), "payload": payload}
        if self.event_sink is not None:
            self.event_sink(event)
        for fn in self.listeners:
            fn(event)

    # ------------------------------------------------------------------ inputs
    def submit(self, reports: pd.DataFrame) -> None:
        """Queue reports; each is received at its ``time_s`` (or now, if that is past).

        Raises
        ------
        MissingColumnError
            If a column of :data:`REPORT_COLUMNS` is missing.
        AgentConfigError
            If a category or channel is unknown.
        """
        if reports is None or len(reports) == 0:
            return
        missing = [c for c in REPORT_COLUMNS if c not in reports.columns]
        if missing:
            raise MissingColumnError(f"reports lack column(s) {missing}; expected {list(REPORT_COLUMNS)}")
        cats = set(reports["category"].astype(str))
        unknown = sorted(cats - set(self.config.categories))
        if unknown:
            raise AgentConfigError(f"report categories {unknown} unknown; expected one of {sorted(self.config.categories)}")
        bad_ch = sorted(set(reports["channel"].astype(str)) - set(CHANNELS))
        if bad_ch:
            raise AgentConfigError(f"report channels {bad_ch} unknown; expected one of {list(CHANNELS)}")
        rows = reports.sort_values("time_s", kind="stable").to_dict("records")
        for r in rows:
            if not r.get("report_id"):
                self._n_reports += 1
                r["report_id"] = f"X{self._n_reports:07d}"
        self.env.process(self._intake(rows))

    def set_closures(self, closures) -> None:
        """Apply a road-closure state now (see :meth:`RoadGraph.apply_closures`) and retry pending jobs."""
        before = self.graph.version
        self.graph.apply_closures(closures)
        if self.graph.version != before:
            shut = self.graph.closures()
            self.emit("road_closure", "dispatch", None, None, n_closed=int((shut["status"] == "closed").sum()),
                      n_closed_to_cars=int((shut["status"] == "closed_to_cars").sum()),
                      roads={k: v for k, v in shut["status"].items()})
            self._kick()

    # ------------------------------------------------------------------ intake
    def _intake(self, rows: list[dict]):
        for r in rows:
            wait = float(r["time_s"]) - self.env.now
            if wait > 0:
                yield self.env.timeout(wait)
            self._receive(r)

    def _receive(self, r: dict) -> None:
        cfg = self.config
        now = float(self.env.now)
        cat, channel = str(r["category"]), str(r["channel"])
        unit = "command" if self.strategy.central else silo_intake(channel, cat, str(r.get("department") or ""))
        rec = {
            "report_id": str(r["report_id"]), "time_s": float(r["time_s"]), "t_received_s": now,
            "x": float(r["x"]), "y": float(r["y"]), "category": cat, "channel": channel,
            "age_group": str(r.get("age_group") or ""), "reporter": str(r.get("reporter") or channel),
            "incident_id": str(r.get("incident_id") or ""), "unit": unit, "case_id": "", "merged": False,
        }
        self.reports.append(rec)
        self.emit("report", rec["reporter"], rec["x"], rec["y"], report_id=rec["report_id"], category=cat,
                  channel=channel, unit=unit, incident_id=rec["incident_id"])
        case = None
        if cfg.merge:
            gid = self._merge.match((unit, cat), now, rec["x"], rec["y"],
                                    radius_m=cfg.merge_radius_by_category.get(cat, cfg.merge_radius_m))
            case = self.cases[gid] if gid is not None else None
        if case is not None:
            rec["case_id"], rec["merged"] = case.case_id, True
            case.report_ids.append(rec["report_id"])
            if rec["incident_id"] and rec["incident_id"] not in case.incident_ids:
                case.incident_ids.append(rec["incident_id"])
            case.t_last_s = now
            self._merge.touch((unit, cat), gid, now)
            lvl = r.get("level")
            if np.isnan(case.t_closed_s) and lvl is not None and not pd.isna(lvl) and int(lvl) > case.level:
                # a later report (e.g. a sensor reading deeper water) escalates the open case
                case.level = int(min(lvl, 3))
                for job in self.pending:
                    if job.case is case:
                        job.level = case.level
            # a report joining a closed case is a late duplicate: it is closed with it
            self.emit("merge", "dispatch", rec["x"], rec["y"], report_id=rec["report_id"], case_id=case.case_id,
                      incident_id=rec["incident_id"], case_closed=bool(np.isfinite(case.t_closed_s)))
            return
        spec = cfg.categories[cat]
        level = int(r["level"]) if r.get("level") is not None and not pd.isna(r.get("level")) else spec.level
        level = max(level, spec.level) if cat != "waterlogging" else level
        case = self._open_case(unit, cat, level, rec["x"], rec["y"], now, now, [rec["incident_id"]] if rec["incident_id"] else [])
        case.report_ids.append(rec["report_id"])
        rec["case_id"] = case.case_id

    def _open_case(self, unit: str, cat: str, level: int, x: float, y: float, t: float, t_root_s: float,
                   incident_ids: list, *, origin: str = "report", parent: Case | None = None,
                   only: str | None = None, coordination_s: float = 0.0) -> Case:
        cfg = self.config
        spec = cfg.categories[cat]
        level = int(min(max(level, 1), 3))
        case = Case(f"C{len(self.cases) + 1:06d}", unit, cat, level, spec.mode, x, y,
                    int(self.graph.nearest_node(x, y)[0]), t, t_root_s, origin, parent, [], list(incident_ids), t)
        idx = len(self.cases)
        self.cases.append(case)
        if cfg.merge and origin == "report":
            self._merge.add((unit, cat), idx, t, x, y, is_open=True)
            case.merge_key = (unit, cat, idx)
        self.emit("case", "dispatch" if unit == "command" else f"dept:{unit}", x, y, case_id=case.case_id,
                  unit=unit, category=cat, level=level, mode=spec.mode, origin=origin,
                  parent_case_id=parent.case_id if parent else "", incident_ids=list(case.incident_ids))
        if spec.mode == "remote":
            case.open_items += 1
            self.env.process(self._remote(case, spec.remote_s))
            return case
        depts = (only,) if only else spec.departments
        if unit == "command":
            for i, d in enumerate(depts):
                delay = cfg.central_coordination_s if i > 0 else 0.0
                self._add_jobs(case, d, delay=delay, coordination_s=coordination_s + delay)
        else:
            if unit in depts:
                self._add_jobs(case, unit, coordination_s=coordination_s)
            for d in depts:
                if d != unit:
                    case.open_items += 1
                    self.env.process(self._refer(case, d))
        if case.open_items == 0:  # nothing to do (e.g. no department can act)
            self._close(case)
        return case

    def _add_jobs(self, case: Case, dept: str, *, delay: float = 0.0, coordination_s: float = 0.0) -> None:
        n = int(self.config.crews_per_level[case.level])
        case.open_items += n
        if delay > 0:
            self.env.process(self._delayed_jobs(case, dept, n, delay, coordination_s))
            return
        for _ in range(n):
            self._new_job(case, dept, coordination_s)
        self._kick()

    def _delayed_jobs(self, case: Case, dept: str, n: int, delay: float, coordination_s: float):
        yield self.env.timeout(delay)
        for _ in range(n):
            self._new_job(case, dept, coordination_s)
        self._kick()

    def _new_job(self, case: Case, dept: str, coordination_s: float) -> Job:
        job = Job(f"D{len(self.jobs) + 1:06d}", case, dept, case.node, case.level, float(self.env.now),
                  coordination_s=coordination_s)
        self.jobs.append(job)
        self.pending.append(job)
        return job

    def _refer(self, case: Case, dept: str):
        delay = float(self.rng.exponential(self.config.coordination_mean_s)) if self.config.coordination_mean_s > 0 else 0.0
        yield self.env.timeout(delay)
        self.emit("referral", f"dept:{case.unit}", case.x, case.y, case_id=case.case_id, to_department=dept,
                  coordination_s=delay)
        self._open_case(dept, case.category, case.level, case.x, case.y, float(self.env.now), case.t_root_s,
                        case.incident_ids, origin="referral", parent=case, only=dept,
                        coordination_s=float(self.env.now) - case.t_root_s)

    def _remote(self, case: Case, handling_s: float):
        yield self.env.timeout(handling_s)
        self._item_done(case)

    # ------------------------------------------------------------------ assignment
    def idle_crews(self, department: str | None = None) -> list:
        """Crews that are idle and on shift now (optionally of one department)."""
        now = float(self.env.now)
        return [c for c in self.crews if c.available(now) and (department is None or c.department == department)]

    def travel_times(self, node: int, crews: list) -> np.ndarray:
        """Travel time (s) of each crew to junction ``node`` under current closures."""
        if not crews:
            return np.zeros(0)
        row = self.graph.travel_times_from(int(node))
        nodes = np.fromiter((c.node for c in crews), dtype=np.int64, count=len(crews))
        speed = np.fromiter((self.config.speed_factor[c.department] for c in crews), dtype=float, count=len(crews))
        return row[nodes] / speed

    def _kick(self) -> None:
        if not self.strategy.batch:
            self._assign()

    def _assign(self) -> None:
        if not self.pending:
            return
        idle = self.idle_crews()
        if not idle:
            return
        for job, crew in self.strategy.select(self, list(self.pending), idle):
            self.dispatch(job, crew)

    def dispatch(self, job: Job, crew) -> None:
        """Send ``crew`` to ``job`` now (strategies call this through :meth:`_assign`)."""
        travel = float(self.travel_times(job.node, [crew])[0])
        if not np.isfinite(travel):
            return  # cut off by closures: the job stays pending
        self.pending.remove(job)
        job.status, job.crew_id, job.t_dispatch_s, job.travel_s = "en_route", crew.crew_id, float(self.env.now), travel
        crew.begin_travel(float(self.env.now), job.node, travel, job_id=job.job_id)
        self.env.process(self._run(job, crew))

    def _run(self, job: Job, crew):
        case = job.case
        self.emit("dispatch", f"crew:{crew.crew_id}", crew.x, crew.y, dispatch_id=job.job_id, case_id=case.case_id,
                  department=job.department, level=job.level, travel_s=job.travel_s, strategy=self.strategy.name,
                  incident_ids=list(case.incident_ids))
        yield self.env.timeout(job.travel_s)
        crew.arrive(float(self.env.now))
        job.status, job.t_arrive_s = "on_site", float(self.env.now)
        self.emit("arrival", f"crew:{crew.crew_id}", crew.x, crew.y, dispatch_id=job.job_id, case_id=case.case_id,
                  department=job.department, category=case.category, incident_ids=list(case.incident_ids),
                  crew_id=crew.crew_id)
        spec = self.config.categories[case.category]
        job.service_s = self._service_time(spec.service_mean_s)
        yield self.env.timeout(job.service_s)
        crew.finish(float(self.env.now), job.service_s)
        job.status, job.t_done_s = "done", float(self.env.now)
        self.emit("resolution", f"crew:{crew.crew_id}", crew.x, crew.y, dispatch_id=job.job_id,
                  case_id=case.case_id, department=job.department, category=case.category,
                  incident_ids=list(case.incident_ids), service_s=job.service_s)
        self._item_done(case)
        self._kick()

    def _service_time(self, mean_s: float) -> float:
        cv = self.config.service_cv
        if cv <= 0:
            return float(mean_s)
        sigma2 = np.log1p(cv * cv)
        return float(self.rng.lognormal(np.log(mean_s) - sigma2 / 2, np.sqrt(sigma2)))

    def _item_done(self, case: Case) -> None:
        case.open_items -= 1
        if case.open_items <= 0:
            self._close(case)

    def _close(self, case: Case) -> None:
        if not np.isnan(case.t_closed_s):
            return
        case.t_closed_s = float(self.env.now)
        if case.merge_key is not None:
            unit, cat, idx = case.merge_key
            self._merge.close((unit, cat), idx, case.t_closed_s)
        self.emit("closure", "dispatch" if case.unit == "command" else f"dept:{case.unit}", case.x, case.y,
                  case_id=case.case_id, category=case.category, incident_ids=list(case.incident_ids),
                  n_reports=len(case.report_ids))
        if case.parent is not None:
            self._item_done(case.parent)

    def stage(self, crew, node: int, *, reason: str = "forecast") -> bool:
        """Move an idle crew to junction ``node`` ahead of time (staging); False if unreachable."""
        travel = float(self.travel_times(node, [crew])[0])
        if not np.isfinite(travel) or crew.status != "idle":
            return False
        crew.begin_travel(float(self.env.now), int(node), travel, status="staging")
        self.env.process(self._stage_run(crew, travel, reason))
        return True

    def _stage_run(self, crew, travel: float, reason: str):
        self.emit("staging", f"crew:{crew.crew_id}", crew.x, crew.y, crew_id=crew.crew_id, travel_s=travel,
                  to_node=str(self.graph.node_ids[crew.destination]), reason=reason)
        yield self.env.timeout(travel)
        crew.arrive(float(self.env.now), service=False)
        crew.staged = True
        self._kick()

    def _watchdog(self):
        while True:
            yield self.env.timeout(self.config.rekick_s)
            self._kick()

    def _batch_loop(self):
        while True:
            yield self.env.timeout(self.config.batch_dt_s)
            self._assign()

    # ------------------------------------------------------------------ output
    def tables(self) -> dict[str, pd.DataFrame]:
        """``reports``, ``cases`` and ``dispatches`` as DataFrames (times in s)."""
        reports = pd.DataFrame(self.reports, columns=[
            "report_id", "time_s", "t_received_s", "x", "y", "category", "channel", "age_group", "reporter",
            "incident_id", "unit", "case_id", "merged"]).set_index("report_id")
        cases = pd.DataFrame([{
            "case_id": c.case_id, "unit": c.unit, "category": c.category, "level": c.level, "mode": c.mode,
            "x": c.x, "y": c.y, "node": str(self.graph.node_ids[c.node]), "t_open_s": c.t_open_s, "t_root_s": c.t_root_s,
            "t_last_s": c.t_last_s, "t_closed_s": c.t_closed_s, "origin": c.origin,
            "parent_case_id": c.parent.case_id if c.parent else "", "n_reports": len(c.report_ids),
            "incident_id": c.incident_ids[0] if c.incident_ids else "", "incident_ids": ";".join(c.incident_ids),
        } for c in self.cases], columns=[
            "case_id", "unit", "category", "level", "mode", "x", "y", "node", "t_open_s", "t_root_s", "t_last_s",
            "t_closed_s", "origin", "parent_case_id", "n_reports", "incident_id", "incident_ids"]).set_index("case_id")
        disp = pd.DataFrame([{
            "dispatch_id": j.job_id, "case_id": j.case.case_id, "incident_id": j.case.incident_ids[0] if j.case.incident_ids else "",
            "category": j.case.category, "department": j.department, "level": j.level, "crew_id": j.crew_id,
            "status": j.status, "t_open_s": j.case.t_root_s, "t_request_s": j.t_request_s, "t_dispatch_s": j.t_dispatch_s,
            "t_arrive_s": j.t_arrive_s, "t_done_s": j.t_done_s, "coordination_s": j.coordination_s,
            "dispatch_delay_s": j.t_dispatch_s - j.case.t_root_s, "travel_s": j.travel_s, "service_s": j.service_s,
            "response_s": j.t_arrive_s - j.case.t_root_s,
        } for j in self.jobs], columns=[
            "dispatch_id", "case_id", "incident_id", "category", "department", "level", "crew_id", "status",
            "t_open_s", "t_request_s", "t_dispatch_s", "t_arrive_s", "t_done_s", "coordination_s", "dispatch_delay_s",
            "travel_s", "service_s", "response_s"]).set_index("dispatch_id")
        return {"reports": reports, "cases": cases, "dispatches": disp}
