"""Agents of the city and the dispatch centre: Mesa model, SimPy dispatch, strategies, KPIs.

Layout (Mesa's: the model in :mod:`agents.model`, one file per agent kind):

==========================  ============================================================
module                      content
==========================  ============================================================
:mod:`agents.model`         :class:`CityModel` (``mesa.Model``): citizens, vendors, crews
:mod:`agents.citizen`       :class:`~agents.citizen.Citizens`: the vectorised population
:mod:`agents.vendor`        :class:`~agents.vendor.Vendor` and :class:`VendorPolicy`
:mod:`agents.crew`          :class:`~agents.crew.Crew`, shifts, :func:`~agents.crew.build_crews`
:mod:`agents.routing`       :class:`RoadGraph`: sparse graph, closures, cached Dijkstra
:mod:`agents.incidents`     true incidents (:class:`~agents.incidents.IncidentBook`), background issues
:mod:`agents.dispatch`      :class:`DispatchCentre` (SimPy) and :class:`DispatchConfig`
:mod:`agents.strategies`    strategy registry: siloed, nearest, priority, assignment, forecast_staging
:mod:`agents.merge`         duplicate-merging rule shared by dispatch and the importer
:mod:`agents.kpis`          :func:`compute_kpis` from a run's tables
:mod:`agents.catalog`       categories, response levels, channels, :class:`ReportingConfig`
:mod:`agents.incident_import`  NYC 311 / 12345 import and replay
:mod:`agents.runner`        :func:`simulate_day`, :func:`build_agents`, :func:`agents_process`
:mod:`agents.gridcity`      a synthetic grid city for tests and benchmarks
==========================  ============================================================

The package imports :mod:`gisdata` for types only, never :mod:`hydraulics` or
:mod:`twin`; flood state and closures are handed in as plain tables.
"""

from agents.catalog import CATEGORIES, ReportingConfig
from agents.dispatch import DispatchCentre, DispatchConfig
from agents.errors import StrategyConfigError, UnknownStrategyError
from agents.incident_import import (
    NYC311,
    ColumnMapping,
    read_service_requests,
    replay_incidents,
)
from agents.kpis import compute_kpis, flatten_kpis
from agents.model import CityModel
from agents.routing import RoadGraph
from agents.runner import (
    AgentRunResult,
    agents_process,
    build_agents,
    collect_result,
    simulate_day,
)
from agents.strategies import get_strategy, register_strategy, strategy_names
from agents.vendor import VendorPolicy

__all__ = [
    "CATEGORIES", "NYC311", "AgentRunResult", "CityModel", "ColumnMapping", "DispatchCentre", "DispatchConfig",
    "ReportingConfig", "RoadGraph", "StrategyConfigError", "UnknownStrategyError", "VendorPolicy",
    "agents_process", "build_agents", "collect_result", "compare_strategies", "compute_kpis", "flatten_kpis", "get_strategy",
    "read_service_requests", "register_strategy", "replay_incidents", "simulate_day", "strategy_names",
]
