"""Field crews of the four departments: where they are, what they do, when they work.

A :class:`Crew` is a Mesa agent that holds state; the SimPy
:class:`~agents.dispatch.DispatchCentre` drives it (``begin_travel``,
``arrive``, ``finish``), because travel and service are events on the SimPy
clock, not ticks.  :meth:`Crew.step` only interpolates the position of a
travelling crew for the model's tick (straight line between the two
junctions, for maps) and books on-shift time.

Crews start at their depot and wait where they last finished (no return trip
is modelled); staging moves them ahead of a forecast flood.  Shifts repeat
daily: with ``n_shifts=1`` everybody works 24 h, with 2 the crews alternate
06-18 / 18-06, with 3 they rotate 06-14 / 14-22 / 22-06.
"""

from __future__ import annotations

from collections.abc import Mapping

import mesa
import numpy as np
import pandas as pd

from agents.errors import AgentConfigError
from gisdata.schema import DEPARTMENTS

SHIFT_PATTERNS = {
    1: ((0.0, 24.0),),
    2: ((6.0, 12.0), (18.0, 12.0)),
    3: ((6.0, 8.0), (14.0, 8.0), (22.0, 8.0)),
}
"""(start h, length h) of each shift, by number of shifts a day."""


class Crew(mesa.Agent):
    """One crew of one department.

    Parameters
    ----------
    model : CityModel
        Owner.
    crew_id : str
        Stable ID, e.g. ``"drainage-03"``.
    department : str
        One of :data:`gisdata.schema.DEPARTMENTS`.
    depot_id : str
        Depot it starts from.
    node : int
        Depot junction index.
    shift_start_h, shift_len_h : float
        Daily shift start and length (h).
    """

    def __init__(self, model, crew_id: str, department: str, depot_id: str, node: int,
                 shift_start_h: float = 0.0, shift_len_h: float = 24.0) -> None:
        super().__init__(model)
        if department not in DEPARTMENTS:
            raise AgentConfigError(f"department={department!r} must be one of {DEPARTMENTS}")
        if not 0 < shift_len_h <= 24:
            raise AgentConfigError(f"shift_len_h={shift_len_h} must be in (0, 24]")
        self.crew_id = crew_id
        self.department = department
        self.depot_id = depot_id
        self.depot_node = int(node)
        self.node = int(node)
        self.shift_start_h = float(shift_start_h)
        self.shift_len_h = float(shift_len_h)
        self.status = "idle"        # idle | travel | service | staging
        self.job_id = ""
        self.staged = False
        xy = model.graph.xy[self.node]
        self.x, self.y = float(xy[0]), float(xy[1])
        self._leg = None            # (x0, y0, x1, y1, t0, t1) while travelling
        self.destination = int(node)  # junction it is heading for (or at)
        self.busy_s = 0.0
        self.travel_s = 0.0
        self.on_shift_s = 0.0
        self.jobs_done = 0

    def on_shift(self, t: float) -> bool:
        """True if ``t`` (s) falls in this crew's daily shift."""
        if self.shift_len_h >= 24.0:
            return True
        h = ((t / 3600.0) - self.shift_start_h) % 24.0
        return h < self.shift_len_h

    def available(self, t: float) -> bool:
        """Idle and on shift at ``t`` (s): the dispatcher may assign it."""
        return self.status == "idle" and self.on_shift(t)

    def begin_travel(self, t: float, to_node: int, travel_s: float, *, status: str = "travel", job_id: str = "") -> None:
        """Leave the current junction at ``t`` (s) for ``to_node``, arriving after ``travel_s`` (s)."""
        x1, y1 = self.model.graph.xy[int(to_node)]
        self._leg = (self.x, self.y, float(x1), float(y1), t, t + travel_s)
        self.status, self.job_id = status, job_id
        self.staged = status == "staging"
        self.travel_s += travel_s
        self.busy_s += travel_s if status == "travel" else 0.0
        self.destination = int(to_node)

    def arrive(self, t: float, *, service: bool = True) -> None:
        """Reach the destination at ``t`` (s); start service or wait (staging)."""
        self.node = self.destination
        self.x, self.y = (float(v) for v in self.model.graph.xy[self.node])
        self._leg = None
        self.status = "service" if service else "idle"

    def finish(self, t: float, service_s: float) -> None:
        """Service done at ``t`` (s); the crew is idle where it stands."""
        self.busy_s += service_s
        self.jobs_done += 1
        self.status, self.job_id, self.staged = "idle", "", False

    def step(self) -> None:
        """Interpolate position while travelling and book on-shift time for the tick."""
        m = self.model
        if self.on_shift(m.time_s):
            self.on_shift_s += m.tick_s
        if self._leg is not None:
            x0, y0, x1, y1, t0, t1 = self._leg
            f = 1.0 if t1 <= t0 else min(1.0, max(0.0, (m.time_s - t0) / (t1 - t0)))
            self.x, self.y = x0 + f * (x1 - x0), y0 + f * (y1 - y0)

    def to_row(self) -> dict:
        """Counters for the crews table."""
        return {
            "department": self.department, "depot_id": self.depot_id, "shift_start_h": self.shift_start_h,
            "shift_len_h": self.shift_len_h, "status": self.status, "x": self.x, "y": self.y,
            "node": self.model.graph.node_ids[self.node], "jobs_done": self.jobs_done, "busy_s": self.busy_s,
            "travel_s": self.travel_s, "on_shift_s": self.on_shift_s,
            "utilisation": self.busy_s / self.on_shift_s if self.on_shift_s > 0 else np.nan,
        }


def crew_counts(depots: pd.DataFrame, crews: int | Mapping[str, int] | None) -> dict[str, int]:
    """Crews per department: from the depots' ``n_crews``, a total split evenly, or a mapping.

    Raises
    ------
    AgentConfigError
        If a count is negative, a department is unknown, or a department with
        crews has no depot.
    """
    if crews is None:
        counts = depots.groupby("department")["n_crews"].sum().to_dict()
    elif isinstance(crews, Mapping):
        bad = [d for d in crews if d not in DEPARTMENTS]
        if bad:
            raise AgentConfigError(f"crews names unknown department(s) {bad}; expected {DEPARTMENTS}")
        counts = dict(crews)
    else:
        n = int(crews)
        if n < 0:
            raise AgentConfigError(f"crews={n} must be >= 0")
        base, extra = divmod(n, len(DEPARTMENTS))
        counts = {d: base + (i < extra) for i, d in enumerate(DEPARTMENTS)}
    counts = {d: int(counts.get(d, 0)) for d in DEPARTMENTS}
    neg = {d: c for d, c in counts.items() if c < 0}
    if neg:
        raise AgentConfigError(f"crew counts {neg} must be >= 0")
    have = set(depots["department"]) if len(depots) else set()
    lacking = [d for d, c in counts.items() if c > 0 and d not in have]
    if lacking:
        raise AgentConfigError(f"department(s) {lacking} have crews but no depot in the city's depots layer")
    return counts


def build_crews(model, depots: pd.DataFrame, crews=None, *, n_shifts: int = 1) -> list[Crew]:
    """Create the crews, spread round-robin over each department's depots.

    Parameters
    ----------
    model : CityModel
        Owner (its graph snaps depots to junctions).
    depots : geopandas.GeoDataFrame
        The city's ``depots`` layer.
    crews : int, Mapping[str, int] or None
        Total (split evenly over the four departments), per department, or
        ``None`` to use the depots' ``n_crews``.
    n_shifts : int
        1, 2 or 3 shifts a day (:data:`SHIFT_PATTERNS`).
    """
    if n_shifts not in SHIFT_PATTERNS:
        raise AgentConfigError(f"n_shifts={n_shifts} must be one of {sorted(SHIFT_PATTERNS)}")
    counts = crew_counts(depots, crews)
    out: list[Crew] = []
    if not len(depots):
        return out
    nodes = model.graph.nearest_node(depots.geometry.x.to_numpy(), depots.geometry.y.to_numpy())
    depot_node = dict(zip(depots.index.astype(str), nodes))
    pattern = SHIFT_PATTERNS[n_shifts]
    for dept in DEPARTMENTS:
        ids = sorted(depots.index[depots["department"] == dept].astype(str))
        for k in range(counts[dept]):
            depot = ids[k % len(ids)]
            start, length = pattern[k % len(pattern)]
            out.append(Crew(model, f"{dept}-{k + 1:02d}", dept, depot, depot_node[depot], start, length))
    return out
