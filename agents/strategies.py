"""Dispatch strategies: a registry of classes with one interface.

A strategy decides which pending job gets which idle crew::

    select(centre, jobs, crews) -> [(job, crew), ...]

and may act once at the start (``setup``, e.g. staging).  Two class flags
shape the centre around it: ``central`` (one command centre merges reports
across departments; ``False`` = the siloed baseline) and ``batch`` (the centre
calls ``select`` every ``batch_dt_s`` instead of on every event).

=====================  ==========================================================
name                   rule
=====================  ==========================================================
``siloed``             each department takes its own reports, first come first
                       served, nearest own crew; joint incidents go by referral
``nearest``            command centre; first come first served, nearest idle
                       crew of the department by travel time
``priority``           command centre; highest response level first, then
                       oldest, nearest crew
``assignment``         command centre; every ``batch_dt_s`` an optimal batch
                       assignment on travel time per department
                       (``scipy.optimize.linear_sum_assignment``), level first
``forecast_staging``   ``priority``, plus crews staged at risk points before the
                       forecast onset
=====================  ==========================================================

Register a new one with :func:`register_strategy`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from agents.errors import StrategyConfigError, UnknownStrategyError

STRATEGIES: dict[str, type[Strategy]] = {}
"""Registered strategy classes by name."""


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: add ``cls`` to :data:`STRATEGIES` under ``cls.name``."""
    STRATEGIES[cls.name] = cls
    return cls


def strategy_names() -> list[str]:
    """Names of the registered strategies, sorted."""
    return sorted(STRATEGIES)


def get_strategy(name: str, **params: Any) -> Strategy:
    """Instantiate the strategy called ``name`` with ``params``.

    Raises
    ------
    UnknownStrategyError
        If ``name`` is not registered (the message lists the valid names).

    Examples
    --------
    >>> get_strategy("nearest").name
    'nearest'
    >>> get_strategy("fastest")
    Traceback (most recent call last):
    ...
    agents.errors.UnknownStrategyError: unknown strategy 'fastest'; expected one of ['assignment', 'forecast_staging', 'nearest', 'priority', 'siloed']
    """
    cls = STRATEGIES.get(str(name))
    if cls is None:
        raise UnknownStrategyError(f"unknown strategy '{name}'; expected one of {strategy_names()}")
    return cls(**params)


class Strategy:
    """Base class: first come first served, nearest idle crew of the job's department."""

    name = "base"
    central = True
    batch = False

    def __init__(self, **params: Any) -> None:
        if params:
            raise StrategyConfigError(f"strategy '{self.name}' takes no parameters; got {sorted(params)}")

    def setup(self, centre) -> None:
        """Called once when the centre starts (default: nothing)."""

    def order(self, jobs: list) -> list:
        """Order in which pending jobs are served (default: oldest request first)."""
        return sorted(jobs, key=lambda j: (j.t_request_s, j.job_id))

    def select(self, centre, jobs: list, crews: list) -> list[tuple]:
        """Greedy: for each job in :meth:`order`, the nearest free crew of its department."""
        free = {id(c): c for c in crews}
        out = []
        for job in self.order(jobs):
            cands = [c for c in free.values() if c.department == job.department]
            if not cands:
                continue
            t = centre.travel_times(job.node, cands)
            k = int(np.argmin(t))
            if np.isfinite(t[k]):
                out.append((job, cands[k]))
                del free[id(cands[k])]
            if not free:
                break
        return out


@register_strategy
class Siloed(Strategy):
    """Each department dispatches its own reports; no merging across departments."""

    name = "siloed"
    central = False


@register_strategy
class Nearest(Strategy):
    """Command centre; nearest idle crew by travel time, first come first served."""

    name = "nearest"


@register_strategy
class Priority(Strategy):
    """Command centre; highest response level first, then oldest; nearest crew."""

    name = "priority"

    def order(self, jobs: list) -> list:
        return sorted(jobs, key=lambda j: (-j.level, j.t_request_s, j.job_id))


@register_strategy
class Assignment(Strategy):
    """Batch optimal assignment on travel time every ``batch_dt_s``.

    Parameters
    ----------
    level_weight_s : float
        Seconds of travel one response level is worth; makes red jobs win when
        jobs outnumber crews.
    """

    name = "assignment"
    batch = True

    def __init__(self, level_weight_s: float = 3600.0) -> None:
        if level_weight_s < 0:
            raise StrategyConfigError(f"level_weight_s={level_weight_s} must be >= 0")
        self.level_weight_s = float(level_weight_s)

    def select(self, centre, jobs: list, crews: list) -> list[tuple]:
        out = []
        for dept in sorted({j.department for j in jobs}):
            dj = sorted((j for j in jobs if j.department == dept), key=lambda j: j.job_id)
            dc = [c for c in crews if c.department == dept]
            if not dj or not dc:
                continue
            cost = np.empty((len(dj), len(dc)))
            for i, job in enumerate(dj):
                cost[i] = centre.travel_times(job.node, dc)
            feasible = np.isfinite(cost)
            big = (np.nanmax(np.where(feasible, cost, np.nan)) if feasible.any() else 0.0) + 1e9
            level = np.array([j.level for j in dj], dtype=float)[:, None]
            c = np.where(feasible, cost - self.level_weight_s * level, big)
            rows, cols = linear_sum_assignment(c)
            out.extend((dj[r], dc[k]) for r, k in zip(rows, cols) if feasible[r, k])
        return out


@register_strategy
class ForecastStaging(Priority):
    """``priority`` plus staging of crews at forecast risk points before onset.

    Parameters
    ----------
    risk_points : iterable of (x, y, onset_s) or (x, y, onset_s, weight), optional
        Points (m) and forecast onset times (s) handed in by the forecast; the
        optional weight (any score, higher first) orders points of the same
        onset, so the riskiest get the crews when the share runs out.
    risk_map : pandas.DataFrame, optional
        Used when ``risk_points`` is not given: columns ``x``, ``y`` (m), ``risk``
        (any positive score), optional ``onset_s``; the ``top_k`` riskiest are staged.
    departments : tuple of str
        Departments whose crews are staged (default drainage and police).
    lead_s : float
        How long before onset to send the crews (s).
    max_share : float
        Greatest share of a department's crews that may be staged (0-1).
    top_k : int
        Risk-map points to use.
    """

    name = "forecast_staging"

    def __init__(self, risk_points: Iterable | None = None, risk_map: pd.DataFrame | None = None,
                 departments: tuple[str, ...] = ("drainage", "police"), lead_s: float = 3600.0,
                 max_share: float = 0.5, top_k: int = 5) -> None:
        if risk_points is None and risk_map is None:
            raise StrategyConfigError("strategy 'forecast_staging' needs risk_points=[(x_m, y_m, onset_s), ...] "
                                      "or risk_map=DataFrame(x, y, risk[, onset_s])")
        if not 0 <= max_share <= 1:
            raise StrategyConfigError(f"max_share={max_share} must be in [0, 1]")
        if lead_s < 0:
            raise StrategyConfigError(f"lead_s={lead_s} must be >= 0")
        if risk_points is not None:
            pts = [tuple(float(v) for v in p) for p in risk_points]
            bad = [p for p in pts if len(p) not in (3, 4)]
            if bad:
                raise StrategyConfigError(f"risk_points {bad[:3]} must be (x_m, y_m, onset_s[, weight]) tuples")
            weight = [p[3] if len(p) == 4 else 0.0 for p in pts]
            order = sorted(range(len(pts)), key=lambda i: (pts[i][2], -weight[i]))
            pts = [pts[i][:3] for i in order]
        else:
            missing = [c for c in ("x", "y", "risk") if c not in risk_map.columns]
            if missing:
                raise StrategyConfigError(f"risk_map lacks column(s) {missing}; expected x, y, risk[, onset_s]")
            top = risk_map.sort_values("risk", ascending=False, kind="stable").head(int(top_k))
            onset = top["onset_s"] if "onset_s" in top.columns else pd.Series(0.0, index=top.index)
            pts = list(zip(top["x"].astype(float), top["y"].astype(float), onset.astype(float)))
        self.risk_points = sorted(pts, key=lambda p: p[2])  # stable: equal onsets keep the weight order
        self.departments = tuple(departments)
        self.lead_s = float(lead_s)
        self.max_share = float(max_share)

    def setup(self, centre) -> None:
        centre.env.process(self._stage(centre))

    def _stage(self, centre):
        env = centre.env
        cap = {d: int(self.max_share * sum(c.department == d for c in centre.crews)) for d in self.departments}
        used = dict.fromkeys(self.departments, 0)
        for x, y, onset in self.risk_points:
            wait = onset - self.lead_s - env.now
            if wait > 0:
                yield env.timeout(wait)
            node = int(centre.graph.nearest_node(x, y)[0])
            for d in self.departments:
                if used[d] >= cap[d]:
                    continue
                idle = [c for c in centre.idle_crews(d) if not c.staged]
                if not idle:
                    continue
                t = centre.travel_times(node, idle)
                k = int(np.argmin(t))
                if np.isfinite(t[k]) and centre.stage(idle[k], node):
                    used[d] += 1
