"""Sweeps: a grid or a Latin hypercube over named scenario parameters, crossed with seeds.

``[sweep]`` in a scenario file names the parameters by their dotted key::

    [sweep]
    method = "grid"                          # every combination
    seeds = [1, 2]
    [sweep.parameters]
    "dispatch.strategy" = ["siloed", "priority"]
    "population.citizens" = [500, 1000]

    [sweep]
    method = "lhs"                           # Latin hypercube (scipy.stats.qmc), sample_seed fixes it
    samples = 8
    [sweep.parameters]
    "rain.return_period_yr" = { min = 2, max = 50 }
    "population.vendors" = { min = 10, max = 80, integer = true }
    "dispatch.strategy" = ["nearest", "priority"]   # a list is a category, stratified too

:func:`plan_sweep` expands it into runs (one per parameter point and seed),
each a complete scenario validated up front, so a bad value fails before any
run starts and before any directory is created.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from gisdata.paths import check_id
from scenarios.schema import (
    ParamRange,
    ScenarioError,
    ScenarioSpec,
    check_parameter,
    set_parameter,
    validate_scenario,
)

__all__ = ["PlannedRun", "plan_sweep", "sample_points"]


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: its ID, the parameter values, the seed and the full scenario data."""

    run_id: str
    index: int
    params: dict
    seed: int
    scenario: dict

    def task(self) -> dict:
        """The plain-data task a worker runs (:func:`scenarios.runner.run_spec_data`)."""
        return {"run_id": self.run_id, "scenario": self.scenario, "params": {**self.params, "seed": self.seed}}


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def sample_points(sweep) -> list[dict[str, Any]]:
    """Parameter points of a ``[sweep]`` (without seeds), in a fixed order.

    Examples
    --------
    >>> from scenarios.schema import SweepSpec
    >>> sample_points(SweepSpec(parameters={"dispatch.strategy": ["a", "b"], "population.vendors": [1, 2]}))
    [{'dispatch.strategy': 'a', 'population.vendors': 1}, {'dispatch.strategy': 'a', 'population.vendors': 2}, {'dispatch.strategy': 'b', 'population.vendors': 1}, {'dispatch.strategy': 'b', 'population.vendors': 2}]
    """
    names = list(sweep.parameters)
    if not names:
        return [{}]
    if sweep.method == "grid":
        return [dict(zip(names, combo)) for combo in itertools.product(*(sweep.parameters[n] for n in names))]
    from scipy.stats import qmc

    n = int(sweep.samples)
    u = qmc.LatinHypercube(d=len(names), seed=np.random.default_rng(sweep.sample_seed)).random(n)
    points = []
    for i in range(n):
        p = {}
        for j, name in enumerate(names):
            spec = sweep.parameters[name]
            if isinstance(spec, ParamRange):
                v = spec.min + u[i, j] * (spec.max - spec.min)
                p[name] = round(v) if spec.integer else float(v)
            else:  # categories: LHS strata map onto the list
                p[name] = spec[min(int(u[i, j] * len(spec)), len(spec) - 1)]
        points.append({k: _plain(v) for k, v in p.items()})
    return points


def _point_tag(point: Mapping[str, Any]) -> str:
    """A short readable tag of a parameter point: its values, e.g. ``siloed-500``."""
    parts = []
    for v in point.values():
        text = f"{v:.4g}" if isinstance(v, float) else str(v)
        parts.append(re.sub(r"[^A-Za-z0-9._]+", "_", text)[:16])
    tag = "-".join(parts)[:40].strip("-_")
    return tag or hashlib.sha256(json.dumps(point, sort_keys=True, default=str).encode()).hexdigest()[:6]


def plan_sweep(spec: ScenarioSpec) -> list[PlannedRun]:
    """Every run of the sweep: parameter points x seeds, each a validated scenario.

    Run IDs are ``p<point index>-<parameter values>-s<seed>`` (``p001-priority-s2``); they are stored in the
    sweep's ``sweep.json`` so a resumed sweep uses the same ones.

    Raises
    ------
    ScenarioError
        An unknown parameter name (with the closest valid one), or a value that
        makes an invalid scenario (naming the run, the key and the value).
    """
    sweep = spec.sweep
    if sweep is None:
        raise ScenarioError(f"scenario '{spec.name}' has no [sweep] section; run it with `twin run`")
    for name in sweep.parameters:
        if name in ("scenario.seed", "seed"):
            raise ScenarioError(f"sweep parameter '{name}': vary seeds with [sweep] seeds = [...]")
        check_parameter(name)
    base = spec.without_sweep().to_data()
    seeds = list(sweep.seeds) if sweep.seeds is not None else [spec.seed]
    runs = []
    for p, point in enumerate(sample_points(sweep)):
        data = base
        for name, value in point.items():
            data = set_parameter(data, name, value)
        for seed in seeds:
            d = set_parameter(data, "scenario.seed", int(seed))
            tag = _point_tag(point) if point else "base"
            rid = check_id(f"p{p:03d}-{tag}-s{seed}", "run id")  # it becomes a folder name
            try:
                checked = validate_scenario(d, source=f"sweep run {rid} {point}")
            except ScenarioError as exc:
                raise ScenarioError(str(exc)) from None
            runs.append(PlannedRun(rid, len(runs), dict(point), int(seed), checked.to_data()))
    return runs
