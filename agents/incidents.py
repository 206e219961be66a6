"""The true incidents of a run (ground truth), and the background-issue generator.

Every incident a citizen, sensor or patrol can report lives here with a stable
``incident_id``; reports carry it so merging and dispatch can be scored.  Sources:

- ``flood``: handed in by the coupler (from the hydraulic state) or by a test;
- ``background``: litter, potholes, ... drawn up front for the whole horizon from
  a seeded stream, so every strategy sees the same ones (common random numbers);
- ``vendor``: a street vendor occupying a road segment (opened and closed by
  :mod:`agents.vendor`);
- ``import``: real 311/12345 records (:mod:`agents.incident_import`).

State is held in numpy arrays so the per-tick "which incidents are active?" is
one vectorised comparison.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from agents.catalog import CATEGORIES, waterlogging_level
from agents.errors import AgentConfigError
from agents.routing import RoadGraph

INCIDENT_COLUMNS = ("category", "source", "x", "y", "node", "road_id", "onset_s", "end_s",
                    "resolved_s", "depth_m", "level")


@dataclass(frozen=True)
class BackgroundRates:
    """Background issues per road-kilometre per day, by category (1/km/day)."""

    per_km_day: Mapping[str, float] = field(default_factory=lambda: {
        "litter": 0.30, "pothole": 0.05, "drain_blocked": 0.03, "traffic": 0.10,
        "public_order": 0.05, "noise": 0.05, "medical": 0.01})

    def __post_init__(self) -> None:
        bad = [c for c in self.per_km_day if c not in CATEGORIES]
        if bad:
            raise AgentConfigError(f"background categories {bad} unknown; expected some of {list(CATEGORIES)}")
        neg = {c: r for c, r in self.per_km_day.items() if r < 0}
        if neg:
            raise AgentConfigError(f"background rates {neg} must be >= 0")


class IncidentBook:
    """Append-only table of true incidents with vectorised activity queries.

    Parameters
    ----------
    graph : RoadGraph
        Used to snap incidents to the nearest junction and to find junctions
        within ``notice_radius_m`` (what a passer-by can see).
    notice_radius_m : float
        Radius around an incident within which passers-by may notice it (m).
    """

    def __init__(self, graph: RoadGraph, *, notice_radius_m: float = 60.0) -> None:
        if notice_radius_m <= 0:
            raise AgentConfigError(f"notice_radius_m={notice_radius_m} must be > 0")
        self.graph = graph
        self.notice_radius_m = float(notice_radius_m)
        self.ids: list[str] = []
        self._index: dict[str, int] = {}
        self.category: list[str] = []
        self.source: list[str] = []
        self.road_id: list[str] = []
        self.near_nodes: list[np.ndarray] = []
        self.x = np.zeros(0)
        self.y = np.zeros(0)
        self.node = np.zeros(0, dtype=np.int64)
        self.onset_s = np.zeros(0)
        self.end_s = np.zeros(0)
        self.resolved_s = np.zeros(0)
        self.depth_m = np.zeros(0)
        self.level = np.zeros(0, dtype=np.int64)
        self.notice_prob = np.zeros(0)
        self._auto = 0

    def __len__(self) -> int:
        return len(self.ids)

    def index_of(self, incident_id: str) -> int:
        """Row of ``incident_id``."""
        return self._index[incident_id]

    def add(self, df: pd.DataFrame, *, source: str) -> list[str]:
        """Add incidents; returns their IDs (duplicates of known IDs are skipped).

        Parameters
        ----------
        df : pandas.DataFrame
            Columns ``x``, ``y`` (m), ``time_s`` (or ``onset_s``, s); optional
            ``incident_id`` (or index), ``category`` (default ``waterlogging`` for
            floods, else ``other``), ``depth_m`` (m), ``end_s`` (s), ``road_id``,
            ``node``/``node_id``, ``level``.
        source : str
            ``"flood"``, ``"background"``, ``"vendor"`` or ``"import"``.
        """
        if len(df) == 0:
            return []
        t_col = "time_s" if "time_s" in df.columns else "onset_s" if "onset_s" in df.columns else None
        missing = [c for c in ("x", "y") if c not in df.columns] + ([] if t_col else ["time_s"])
        if missing:
            raise AgentConfigError(f"incidents table lacks column(s) {missing}; has {list(df.columns)}")
        x = df["x"].to_numpy(float)
        y = df["y"].to_numpy(float)
        t = df[t_col].to_numpy(float)
        ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(t)
        if not ok.all():
            raise AgentConfigError(f"{int((~ok).sum())} incident(s) without finite x, y or time; "
                                   "drop or locate them first (the importer reports them)")
        if "incident_id" in df.columns:
            ids = df["incident_id"].astype(str).tolist()
        elif df.index.name in ("incident_id", "id"):
            ids = df.index.astype(str).tolist()
        else:
            ids = []
            for _ in range(len(df)):
                self._auto += 1
                ids.append(f"{source[:2].upper()}{self._auto:06d}")
        default_cat = "waterlogging" if source == "flood" else "other"
        cats = df["category"].astype(str).tolist() if "category" in df.columns else [default_cat] * len(df)
        unknown = sorted({c for c in cats if c not in CATEGORIES})
        if unknown:
            raise AgentConfigError(f"incident categories {unknown} unknown; expected one of {list(CATEGORIES)}")
        depth = df["depth_m"].to_numpy(float) if "depth_m" in df.columns else np.zeros(len(df))
        end = df["end_s"].to_numpy(float) if "end_s" in df.columns else np.full(len(df), np.inf)
        roads = df["road_id"].fillna("").astype(str).tolist() if "road_id" in df.columns else [""] * len(df)
        node = self.graph.nearest_node(x, y)
        seen: set[str] = set()
        keep = []
        for i, k in enumerate(ids):
            if k not in self._index and k not in seen:
                keep.append(i)
                seen.add(k)
        if not keep:
            return []
        new_ids = []
        for i in keep:
            cat = cats[i]
            lvl = int(df["level"].iloc[i]) if "level" in df.columns else (
                waterlogging_level(depth[i]) if cat == "waterlogging" else CATEGORIES[cat].level)
            self._index[ids[i]] = len(self.ids)
            self.ids.append(ids[i])
            self.category.append(cat)
            self.source.append(source)
            self.road_id.append(roads[i])
            near = self.graph.nodes_within(x[i], y[i], CATEGORIES[cat].visible_m or self.notice_radius_m)
            if roads[i] and roads[i] in self.graph.road_index:
                r = self.graph.road_index[roads[i]]
                near = np.union1d(near, [self.graph.u[r], self.graph.v[r]])
            self.near_nodes.append(near)
            self.level = np.append(self.level, lvl)
            self.notice_prob = np.append(self.notice_prob, CATEGORIES[cat].notice_prob)
            new_ids.append(ids[i])
        k = np.asarray(keep)
        self.x = np.append(self.x, x[k])
        self.y = np.append(self.y, y[k])
        self.node = np.append(self.node, node[k])
        self.onset_s = np.append(self.onset_s, t[k])
        self.end_s = np.append(self.end_s, end[k])
        self.resolved_s = np.append(self.resolved_s, np.full(len(k), np.nan))
        self.depth_m = np.append(self.depth_m, depth[k])
        return new_ids

    def active(self, t0_s: float, t1_s: float | None = None) -> np.ndarray:
        """Rows active at some time in ``[t0_s, t1_s)`` (onset before t1, not ended or resolved by t0)."""
        t1 = t0_s if t1_s is None else t1_s
        stop = np.fmin(self.end_s, np.where(np.isnan(self.resolved_s), np.inf, self.resolved_s))
        return np.flatnonzero((self.onset_s <= t1) & (stop > t0_s))

    def end(self, incident_id: str, time_s: float) -> None:
        """The incident goes away by itself at ``time_s`` (vendor leaves, water recedes)."""
        i = self._index[incident_id]
        self.end_s[i] = min(self.end_s[i], time_s)

    def resolve(self, incident_id: str, time_s: float) -> None:
        """Crews resolved the incident at ``time_s`` (first resolution wins)."""
        i = self._index.get(incident_id)
        if i is not None and np.isnan(self.resolved_s[i]):
            self.resolved_s[i] = time_s

    def to_frame(self) -> pd.DataFrame:
        """The truth table, index ``incident_id`` (times in s, positions in m)."""
        return pd.DataFrame({
            "category": self.category, "source": self.source, "x": self.x, "y": self.y,
            "node": self.graph.node_ids[self.node] if len(self) else [], "road_id": self.road_id,
            "onset_s": self.onset_s, "end_s": self.end_s, "resolved_s": self.resolved_s,
            "depth_m": self.depth_m, "level": self.level,
        }, index=pd.Index(self.ids, name="incident_id"))


def generate_background(graph: RoadGraph, rng: np.random.Generator, *, hours: float,
                        rates: BackgroundRates | None = None, start_s: float = 0.0) -> pd.DataFrame:
    """Draw background issues (litter, potholes, ...) for a whole horizon.

    Counts are Poisson with mean ``rate * road_km * days``; positions are on road
    segments chosen by length; onset times uniform.  Drawn up front so each
    strategy sees the same issues.

    Parameters
    ----------
    graph : RoadGraph
        The road network (positions are road midpoints plus a small offset).
    rng : numpy.random.Generator
        The model's world stream.
    hours : float
        Horizon (h).
    rates : BackgroundRates, optional
        Per-km per-day rates by category.
    start_s : float
        Start of the horizon (s).

    Returns
    -------
    pandas.DataFrame
        Columns ``incident_id``, ``category``, ``x``, ``y``, ``road_id``, ``time_s``.
    """
    rates = rates or BackgroundRates()
    km = graph.length_m.sum() / 1000.0
    days = hours / 24.0
    p_road = graph.length_m / graph.length_m.sum()
    mid = graph.road_midpoints()
    rows = []
    for cat in sorted(rates.per_km_day):
        n = int(rng.poisson(rates.per_km_day[cat] * km * days))
        if n == 0:
            continue
        road = rng.choice(len(p_road), size=n, p=p_road)
        off = rng.normal(0.0, 10.0, size=(n, 2))
        t = start_s + np.sort(rng.uniform(0.0, hours * 3600.0, size=n))
        rows.append(pd.DataFrame({"category": cat, "x": mid[road, 0] + off[:, 0], "y": mid[road, 1] + off[:, 1],
                                  "road_id": graph.road_ids[road], "time_s": t}))
    if not rows:
        return pd.DataFrame(columns=["incident_id", "category", "x", "y", "road_id", "time_s"])
    df = pd.concat(rows, ignore_index=True).sort_values(["time_s", "category"], kind="stable").reset_index(drop=True)
    df.insert(0, "incident_id", [f"BG{i + 1:06d}" for i in range(len(df))])
    return df
