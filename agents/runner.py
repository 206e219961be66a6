"""Run agents and dispatch on one SimPy clock: :func:`simulate_day` and its building blocks.

The coupler in :mod:`twin` uses the same pieces with hydraulics added::

    env = simpy.Environment()
    model, centre = build_agents(city, env, strategy="priority", seed=1, event_sink=log)
    env.process(agents_process(env, model, centre))       # Mesa step every tick_s
    # hydraulics process: every 300 s ->
    #     model.add_flood_incidents(new_flood_rows); centre.set_closures(closures)
    env.run(until=hours * 3600)
    result = collect_result(model, centre, horizon_s=hours * 3600, metadata={...})

Common random numbers: ``seed`` is split into a model stream (population,
plans, background issues, vendors) and a dispatch stream (service times,
referral delays), so every strategy faces the same incidents and citizens.
No hydraulics here: flood incidents and closures are handed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import simpy

from agents.catalog import ReportingConfig
from agents.citizen import CitizenConfig
from agents.dispatch import DispatchCentre, DispatchConfig
from agents.errors import AgentConfigError
from agents.incidents import BackgroundRates
from agents.kpis import compute_kpis
from agents.model import CityModel
from agents.vendor import VendorPolicy
from gisdata.limits import MAX_SCENARIO_HOURS


@dataclass(frozen=True)
class AgentRunResult:
    """Tables and KPIs of one agent run (never the live model).

    Attributes
    ----------
    kpis : dict
        Nested KPIs (:func:`agents.kpis.compute_kpis`).
    incidents : DataFrame
        True incidents, index ``incident_id``.
    reports : DataFrame
        Every report received, index ``report_id``; ``incident_id`` is the true one,
        ``case_id`` the case it opened or joined.
    cases : DataFrame
        Cases after merging, index ``case_id``.
    dispatches : DataFrame
        One row per job (department x case), index ``dispatch_id``; times in s.
    crews, vendors, citizens : DataFrame
        Agent tables (index ``crew_id``, ``vendor_id``, ``citizen_id``).
    timeline : DataFrame
        One row per tick: active incidents, travelling citizens, busy crews, ...
    metadata : dict
        Strategy, seed, sizes, horizon, package versions.
    """

    kpis: dict
    incidents: pd.DataFrame
    reports: pd.DataFrame
    cases: pd.DataFrame
    dispatches: pd.DataFrame
    crews: pd.DataFrame
    vendors: pd.DataFrame
    citizens: pd.DataFrame
    timeline: pd.DataFrame
    metadata: dict = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        """All tables by name (for the run store)."""
        return {k: getattr(self, k) for k in ("incidents", "reports", "cases", "dispatches", "crews",
                                               "vendors", "citizens", "timeline")}


def split_seed(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent model and dispatch generators from one seed."""
    model_ss, dispatch_ss = np.random.SeedSequence(int(seed)).spawn(2)
    return np.random.default_rng(model_ss), np.random.default_rng(dispatch_ss)


def build_agents(city, env: simpy.Environment, *, strategy: str = "priority", seed: int = 0,
                 event_sink: Callable[[Mapping[str, Any]], None] | None = None,
                 dispatch_config: DispatchConfig | None = None, strategy_params: Mapping[str, Any] | None = None,
                 **model_kwargs) -> tuple[CityModel, DispatchCentre]:
    """Create the Mesa model and the dispatch centre on ``env`` and wire them together.

    ``model_kwargs`` go to :class:`agents.model.CityModel` (``n_citizens``,
    ``n_vendors``, ``crews``, ``n_shifts``, ``tick_s``, ``hours``, ...).
    """
    model_rng, dispatch_rng = split_seed(seed)
    model = CityModel(city, rng=model_rng, event_sink=event_sink, start_s=float(env.now), **model_kwargs)
    centre = DispatchCentre(env, model.graph, model.crews, strategy=strategy, config=dispatch_config,
                            rng=dispatch_rng, event_sink=event_sink, strategy_params=strategy_params)
    centre.add_listener(model.on_dispatch_event)
    return model, centre


def agents_process(env: simpy.Environment, model: CityModel, centre: DispatchCentre):
    """SimPy process: ``model.step()`` every ``tick_s``, then hand its reports to the centre."""
    while True:
        if abs(model.time_s - env.now) > 1e-6:
            raise AgentConfigError(f"model time {model.time_s} s and clock {env.now} s disagree; "
                                   "start the model at env.now and step it only from this process")
        model.step()
        centre.submit(model.drain_reports())
        yield env.timeout(model.tick_s)


def closures_process(env: simpy.Environment, centre: DispatchCentre, closures: pd.DataFrame):
    """SimPy process applying a closures table; with a ``time_s`` column each row is a change at that time."""
    if "time_s" not in closures.columns:
        centre.set_closures(closures)
        return
        yield  # pragma: no cover  (makes this a generator)
    df = closures.reset_index() if "road_id" not in closures.columns else closures
    state: dict[str, str] = {}
    for t, grp in df.sort_values("time_s", kind="stable").groupby("time_s", sort=True):
        if t > env.now:
            yield env.timeout(float(t) - env.now)
        state.update(zip(grp["road_id"].astype(str), grp["status"].astype(str)))
        centre.set_closures(state)


def collect_result(model: CityModel, centre: DispatchCentre, *, horizon_s: float,
                   metadata: Mapping[str, Any] | None = None) -> AgentRunResult:
    """Gather the tables of a finished run and compute its KPIs."""
    mt = model.tables()
    dt = centre.tables()
    tables = {**mt, **dt}
    kpis = compute_kpis(tables, horizon_s=horizon_s, exposure=model.exposure())
    import mesa
    import scipy
    import simpy as _simpy

    meta = {"strategy": centre.strategy.name, "n_citizens": model.citizens.n, "n_vendors": len(model.vendors),
            "n_crews": len(model.crews), "tick_s": model.tick_s, "horizon_s": float(horizon_s),
            "people_per_agent": model.citizens.people_per_agent, "agent_steps": model.agent_steps,
            "versions": {"mesa": mesa.__version__, "simpy": _simpy.__version__, "numpy": np.__version__,
                         "scipy": scipy.__version__, "pandas": pd.__version__},
            "hydraulics": "off (incidents and closures handed in)", **dict(metadata or {})}
    return AgentRunResult(kpis=kpis, incidents=mt["incidents"], reports=dt["reports"], cases=dt["cases"],
                          dispatches=dt["dispatches"], crews=mt["crews"], vendors=mt["vendors"],
                          citizens=mt["citizens"], timeline=mt["timeline"], metadata=meta)


def simulate_day(city, *, hours: float = 24.0, strategy: str = "priority", seed: int = 0, n_citizens: int = 2000,
                 n_vendors: int = 50, crews=None, n_shifts: int = 1, tick_s: float = 300.0,
                 flood_incidents: pd.DataFrame | None = None, closures: pd.DataFrame | None = None,
                 reports: pd.DataFrame | None = None, event_sink: Callable[[Mapping[str, Any]], None] | None = None,
                 strategy_params: Mapping[str, Any] | None = None, dispatch_config: DispatchConfig | None = None,
                 reporting: ReportingConfig | None = None, vendor_policy: VendorPolicy | None = None,
                 citizen_config: CitizenConfig | None = None, background: BackgroundRates | bool | None = None,
                 **model_kwargs) -> AgentRunResult:
    """Simulate citizens, vendors, crews and dispatch for ``hours`` (no hydraulics).

    Parameters
    ----------
    city : gisdata.CityTwin
        The city (roads, buildings, depots, sensors, vendor sites).
    hours : float
        Simulated duration (h), from time 0 (midnight).
    strategy : str
        Dispatch strategy (:func:`agents.strategies.strategy_names`).
    seed : int
        Seed of every random stream (common random numbers across strategies).
    n_citizens, n_vendors : int
        Population sizes.
    crews : int, Mapping[str, int] or None
        Crews in total, per department, or from the depots.
    n_shifts : int
        Crew shifts a day.
    tick_s : float
        Mesa tick (s).
    flood_incidents : DataFrame, optional
        Waterlogging: ``x``, ``y`` (m), ``time_s`` (s), ``depth_m`` (m), optional
        ``incident_id``, ``node``, ``road_id``, ``end_s``.
    closures : DataFrame, optional
        ``road_id`` -> ``status``; with a ``time_s`` column, each row is a change at that time (s).
    reports : DataFrame, optional
        Extra reports (e.g. imported 311 records: ``time_s``, ``x``, ``y``, ``category``,
        ``channel``, ``incident_id``); unknown incident IDs become incidents of source ``import``.
    event_sink : callable, optional
        Receives every event (e.g. a :class:`twin.eventlog.EventLog`).
    strategy_params : Mapping, optional
        Strategy keywords, e.g. ``{"risk_points": [(x, y, onset_s)]}`` for ``forecast_staging``.
    dispatch_config, reporting, vendor_policy, citizen_config, background : optional
        Behaviour parameters; ``background=False`` switches background issues off.
    **model_kwargs
        Other :class:`agents.model.CityModel` parameters (``patrol_detect_per_h``, ``sensor_delay_s``, ...).

    Returns
    -------
    AgentRunResult

    Examples
    --------
    >>> from agents.gridcity import make_grid_city
    >>> res = simulate_day(make_grid_city(6, 6), hours=2, n_citizens=200, n_vendors=5, crews=8, seed=1)
    >>> sorted(res.tables())[:3]
    ['cases', 'citizens', 'crews']
    """
    if not 0 < hours <= MAX_SCENARIO_HOURS:  # also refuses NaN and inf
        raise AgentConfigError(f"hours={hours} is out of range; expected 0 < hours <= {MAX_SCENARIO_HOURS:g} h "
                               "(MAX_SCENARIO_HOURS)")
    env = simpy.Environment()
    model, centre = build_agents(city, env, strategy=strategy, seed=seed, event_sink=event_sink,
                                 dispatch_config=dispatch_config, strategy_params=strategy_params,
                                 n_citizens=n_citizens, n_vendors=n_vendors, crews=crews, n_shifts=n_shifts,
                                 tick_s=tick_s, hours=hours, reporting=reporting, vendor_policy=vendor_policy,
                                 citizen_config=citizen_config, background=background, **model_kwargs)
    if flood_incidents is not None and len(flood_incidents):
        model.add_flood_incidents(flood_incidents)
    if reports is not None and len(reports):
        _add_external_reports(model, reports)
    if closures is not None and len(closures):
        env.process(closures_process(env, centre, closures))
    env.process(agents_process(env, model, centre))
    horizon = hours * 3600.0
    env.run(until=horizon)
    return collect_result(model, centre, horizon_s=horizon,
                          metadata={"seed": int(seed), "hours": float(hours), "city": city.name})


def _add_external_reports(model: CityModel, reports: pd.DataFrame) -> None:
    reports = reports.copy()
    if "incident_id" not in reports.columns:
        reports["incident_id"] = [f"EXT{i + 1:06d}" for i in range(len(reports))]
    reports["incident_id"] = reports["incident_id"].astype(str)
    known = set(model.incidents.ids)
    new = reports[~reports["incident_id"].isin(known)].drop_duplicates("incident_id")
    if len(new):
        model.incidents.add(new[["incident_id", "category", "x", "y", "time_s"]], source="import")
    if "channel" not in reports.columns:
        reports["channel"] = "import"
    if "reporter" not in reports.columns:
        reports["reporter"] = "import"
    model.add_reports(reports)


def compare_strategies(city, strategies=None, *, params_by_strategy: Mapping[str, Mapping[str, Any]] | None = None,
                       **kwargs) -> pd.DataFrame:
    """Run :func:`simulate_day` once per strategy with the same seed and inputs; one row of KPIs each.

    Parameters
    ----------
    city : gisdata.CityTwin
        The city.
    strategies : iterable of str, optional
        Default: every registered strategy, except ``forecast_staging`` unless
        ``params_by_strategy`` gives it risk points.
    params_by_strategy : Mapping[str, Mapping], optional
        Strategy keywords per strategy name.
    **kwargs
        Passed to :func:`simulate_day` (``seed``, ``hours``, ``n_citizens``, ...).

    Returns
    -------
    pandas.DataFrame
        Index ``strategy``; columns are the flattened KPI keys (:func:`agents.kpis.flatten_kpis`).

    Examples
    --------
    >>> from agents.gridcity import make_grid_city
    >>> df = compare_strategies(make_grid_city(5, 5), ["siloed", "nearest"], hours=2, n_citizens=100, seed=1)
    >>> list(df.index)
    ['siloed', 'nearest']
    """
    from agents.kpis import flatten_kpis
    from agents.strategies import strategy_names

    params = dict(params_by_strategy or {})
    if strategies is None:
        strategies = [s for s in strategy_names() if s != "forecast_staging" or s in params]
    rows = {}
    for name in strategies:
        res = simulate_day(city, strategy=name, strategy_params=params.get(name), **kwargs)
        rows[name] = flatten_kpis(res.kpis)
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("strategy")
