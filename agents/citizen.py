"""Citizens: daily trips on the road network, noticing incidents, reporting them.

Design (why one Mesa agent holds everyone)
------------------------------------------
20,000 citizens stepped as 20,000 Python objects would cost ~20,000 method calls
per tick.  Instead :class:`Citizens` is *one* Mesa agent that stands for the
whole population and keeps every person's state in numpy arrays (home junction,
age group, car or on foot, today's trip legs, current place).  Its
:meth:`Citizens.step` does the work for everybody with array operations, so a
tick costs a few hundred numpy calls whatever the population.  Each simulated
person still has an ID (its row), reports name it, and
:meth:`Citizens.to_frame` returns one row per person.  Agent-step counts in the
benchmark count people, not Mesa objects.

Movement
--------
Trips go between home and a few *hubs* (work places and activity places such as
markets, snapped to junctions).  Each hub has a free-flow shortest-path tree
(:meth:`agents.routing.RoadGraph.free_flow_trees`), so the route from any home
to a hub is known without per-trip Dijkstra, and "does this trip pass junction
n?" is an Euler-interval test vectorised over all trips of the tick.  A trip
is handled at its departure tick: the person is placed at the destination
and notices what lies along the whole route (documented simplification; trips
in a city take 5-40 min, a tick is 5 min).  Citizens plan on the free-flow
network and do not re-route around closures: a share (``closure_awareness``)
cancels a trip whose route crosses a closed road, the rest drive or walk
through it, which is what the flood-exposure KPI counts.

Reporting
---------
A person notices an active incident near the route (or near where they stay)
with the category's ``notice_prob``; having noticed, they report with their
age group's propensity (:meth:`agents.catalog.ReportingConfig.propensity`), on a
channel drawn from the group's channel mix, with a position error by channel
and sometimes the wrong category.  Each person reports an incident at most
once, so duplicates arise naturally from many witnesses; every report keeps the
true ``incident_id``.

Randomness: the agent draws only from ``self.rng``, which is the model's
``citizens`` stream (split from the model ``rng``), so the same seed gives the
same population and plans whatever the dispatch strategy.
"""

from __future__ import annotations

from dataclasses import dataclass

import mesa
import numpy as np
import pandas as pd

from agents.catalog import AGE_GROUPS, CHANNELS, ReportingConfig
from agents.errors import AgentConfigError
from agents.routing import RoadGraph, ShortestPathTrees

DAY_S = 86_400.0
WALK_SPEED_MS = 1.3
_NONRES = ("commercial", "mixed", "public", "industrial")


@dataclass(frozen=True)
class CitizenConfig:
    """Population and schedule parameters.

    Parameters
    ----------
    employment : tuple of float
        Share with a job to go to, per age group (young, adult, elderly).
    activity : tuple of float
        Chance of one activity trip a day (shopping, market, park), per age group.
    car_share : tuple of float
        Share travelling by car, per age group (others walk at 1.3 m/s).
    work_start_h, work_start_sd_h, work_hours, work_hours_sd : float
        Commute departure mean and spread (h), and time at work (h).
    n_hubs : int
        Work and activity hubs (junctions) with a shortest-path tree each.
    stay_notice_per_h : float
        Rate at which a person staying within sight of an incident notices it (1/h),
        multiplied by the category's ``notice_prob``.
    closure_awareness : float
        Chance a person cancels a trip whose route crosses a closed road (0-1).
    """

    employment: tuple[float, float, float] = (0.75, 0.80, 0.10)
    activity: tuple[float, float, float] = (0.45, 0.35, 0.60)
    car_share: tuple[float, float, float] = (0.35, 0.55, 0.15)
    work_start_h: float = 8.0
    work_start_sd_h: float = 0.75
    work_hours: float = 9.0
    work_hours_sd: float = 1.0
    n_hubs: int = 48
    stay_notice_per_h: float = 0.25
    closure_awareness: float = 0.5

    def __post_init__(self) -> None:
        for name in ("employment", "activity", "car_share"):
            v = getattr(self, name)
            if len(v) != 3 or any(not 0 <= p <= 1 for p in v):
                raise AgentConfigError(f"{name}={v} must be 3 probabilities in [0, 1] (young, adult, elderly)")
        if self.n_hubs < 1:
            raise AgentConfigError(f"n_hubs={self.n_hubs} must be >= 1")
        if not 0 <= self.closure_awareness <= 1:
            raise AgentConfigError(f"closure_awareness={self.closure_awareness} must be in [0, 1]")


def choose_hubs(graph: RoadGraph, buildings, vendor_sites, n_hubs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick hub junctions and their work and activity weights.

    Work hubs come from non-residential buildings (weight: footprint area x
    height), activity hubs from vendor sites (weight: attractiveness) and public
    buildings.  Without such data, evenly spread junctions are used.

    Returns
    -------
    nodes, work_w, act_w : numpy.ndarray
        Hub junction indices and the (unnormalised) weights, shape ``(K,)``.
    """
    nodes, work, act = [], [], []
    if buildings is not None and len(buildings):
        b = buildings[buildings["use"].isin(_NONRES)]
        if len(b):
            c = b.geometry.centroid
            nodes.append(graph.nearest_node(c.x.to_numpy(), c.y.to_numpy()))
            w = (b.geometry.area * b["height_m"].clip(lower=3.0)).to_numpy(float)
            work.append(w)
            act.append(np.where(b["use"].isin(("public", "mixed")).to_numpy(), w * 0.3, 0.0))
    if vendor_sites is not None and len(vendor_sites):
        g = vendor_sites.geometry
        nodes.append(graph.nearest_node(g.x.to_numpy(), g.y.to_numpy()))
        work.append(np.zeros(len(vendor_sites)))
        a = vendor_sites["attractiveness"].to_numpy(float)
        act.append(a / max(a.sum(), 1e-9) * max(sum(x.sum() for x in work), 1.0))
    if not nodes:
        nodes = [np.arange(graph.n_nodes)]
        work = [np.ones(graph.n_nodes)]
        act = [np.ones(graph.n_nodes)]
    node, w, a = np.concatenate(nodes), np.concatenate(work), np.concatenate(act)
    df = pd.DataFrame({"node": node, "w": w, "a": a}).groupby("node").sum()
    if (df["w"] <= 0).all():
        df["w"] = 1.0
    if (df["a"] <= 0).all():
        df["a"] = 1.0
    # keep the heaviest hubs by combined normalised weight
    score = df["w"] / df["w"].sum() + df["a"] / df["a"].sum()
    df = df.loc[score.sort_values(ascending=False, kind="stable").index[:n_hubs]].sort_index()
    return df.index.to_numpy(np.int64), df["w"].to_numpy(float), df["a"].to_numpy(float)


class Citizens(mesa.Agent):
    """The whole citizen population as one vectorised Mesa agent (see module docstring).

    Parameters
    ----------
    model : CityModel
        Owner; gives the graph, hub trees, incident book, closures and clock.
    n : int
        People simulated (the city's residents scaled down to ``n``).
    homes : numpy.ndarray
        Home junction of each person, shape ``(n,)``.
    trees : ShortestPathTrees
        Free-flow trees rooted at the hubs.
    work_w, act_w : numpy.ndarray
        Hub weights for work and activity trips.
    config : CitizenConfig
    reporting : ReportingConfig
    people_per_agent : float
        Residents each simulated person stands for (for scaled KPIs).
    """

    def __init__(self, model, n: int, homes: np.ndarray, trees: ShortestPathTrees, work_w: np.ndarray,
                 act_w: np.ndarray, *, config: CitizenConfig, reporting: ReportingConfig,
                 people_per_agent: float = 1.0) -> None:
        super().__init__(model)
        if n < 0:
            raise AgentConfigError(f"n_citizens={n} must be >= 0")
        self.n = int(n)
        self.config = config
        self.reporting = reporting
        self.trees = trees
        self.people_per_agent = float(people_per_agent)
        rng = self.rng
        self.home = np.asarray(homes, dtype=np.int64)
        shares = np.array([reporting.age_shares[g] for g in AGE_GROUPS])
        self.age = rng.choice(3, size=n, p=shares / shares.sum()).astype(np.int8)
        self.car = rng.random(n) < np.asarray(config.car_share)[self.age]
        self.employed = rng.random(n) < np.asarray(config.employment)[self.age]
        reach_w = np.isfinite(trees.time_s).mean(axis=1)  # avoid hubs cut off from most homes
        self.work_p = work_w * reach_w / max((work_w * reach_w).sum(), 1e-12)
        self.act_p = act_w * reach_w / max((act_w * reach_w).sum(), 1e-12)
        self.work_hub = rng.choice(len(work_w), size=n, p=self.work_p) if n else np.zeros(0, dtype=np.int64)
        prop = reporting.propensity()
        self.propensity = np.array([prop[g] for g in AGE_GROUPS])[self.age]
        self._channel_p = [self._channel_table(g) for g in AGE_GROUPS]
        self.loc = self.home.copy()          # junction where the person is now
        self.at_hub = np.full(n, -1, dtype=np.int64)  # hub index if away from home
        self.legs_dep = np.full((n, 4), np.nan)       # departure times of today's legs (s)
        self.legs_hub = np.zeros((n, 4), dtype=np.int64)
        self.plan_day = -1
        self.noticed: dict[int, np.ndarray] = {}  # incident row -> who has noticed it
        # counters
        self.trips = 0
        self.trips_cancelled = 0
        self.travelling_now = 0
        self.arrive_s = np.full(n, -np.inf)   # arrival time of the current/last trip (s)
        self.exposure_person_s = 0.0
        self.vehicle_trips_closed = 0
        self.person_trips_closed = 0
        self.reports_sent = np.zeros(n, dtype=np.int64)
        self.footfall_nodes = np.zeros(0, dtype=np.int64)
        self.footfall = np.zeros(0)

    @property
    def rng(self) -> np.random.Generator:
        """The model's citizens stream (common random numbers across strategies)."""
        return self.model.streams["citizens"]

    def _channel_table(self, group: str) -> tuple[np.ndarray, np.ndarray]:
        mix = self.reporting.channels(group)
        names = np.array([c for c in CHANNELS if c in mix])
        p = np.array([mix[c] for c in names])
        return names, p / p.sum()

    # ------------------------------------------------------------------ plans
    def plan(self, day: int) -> None:
        """Draw today's legs: home->work->home and one activity trip (times in s)."""
        rng, cfg, n = self.rng, self.config, self.n
        t0 = day * DAY_S
        dep = np.full((n, 4), np.nan)
        hub = np.zeros((n, 4), dtype=np.int64)
        go = np.clip(rng.normal(cfg.work_start_h, cfg.work_start_sd_h, n), 5.0, 11.0) * 3600
        stay = np.clip(rng.normal(cfg.work_hours, cfg.work_hours_sd, n), 4.0, 11.0) * 3600
        w = self.employed
        dep[w, 0], dep[w, 1] = t0 + go[w], t0 + go[w] + stay[w]
        hub[:, 0] = hub[:, 1] = self.work_hub
        act = rng.random(n) < np.asarray(cfg.activity)[self.age]
        ahub = rng.choice(len(self.act_p), size=n, p=self.act_p) if n else np.zeros(0, dtype=np.int64)
        morning = np.clip(rng.normal(10.0, 1.5, n), 7.0, 13.0) * 3600
        evening = np.clip(rng.normal(19.0, 1.5, n), 13.0, 22.0) * 3600
        start = np.where(w, np.maximum(dep[:, 1] - t0 + 1800.0, evening), np.where(self.age == 2, morning, evening))
        dur = rng.uniform(0.75, 2.0, n) * 3600
        dep[act, 2], dep[act, 3] = t0 + start[act], t0 + start[act] + dur[act]
        hub[:, 2] = hub[:, 3] = ahub
        dep[dep >= t0 + DAY_S] = np.nan  # legs past midnight are dropped
        self.legs_dep, self.legs_hub, self.plan_day = dep, hub, day
        self.loc, self.at_hub = self.home.copy(), np.full(n, -1, dtype=np.int64)  # everyone sleeps at home

    # ------------------------------------------------------------------ step
    def step(self) -> None:
        """Advance everyone over the model's current tick ``[t0, t0 + tick_s)``."""
        m = self.model
        t0, t1 = m.time_s, m.time_s + m.tick_s
        day = int(t0 // DAY_S)
        if day != self.plan_day:
            self.plan(day)
        if self.n == 0:
            self.footfall = np.zeros(len(self.footfall_nodes))
            return
        trips_c, trips_k, _ = self._start_trips(t0, t1)
        self._update_footfall(trips_c, trips_k)
        self._notice_and_report(t0, t1, trips_c, trips_k)
        self.travelling_now = int((self.arrive_s > t0).sum())  # on the road at some point of this tick

    def _start_trips(self, t0: float, t1: float):
        rng, trees = self.rng, self.trees
        c, leg = np.nonzero((self.legs_dep >= t0) & (self.legs_dep < t1))
        if len(c) == 0:
            return c, c, np.zeros(0)
        k = self.legs_hub[c, leg]
        dep = self.legs_dep[c, leg]
        outbound = leg % 2 == 0
        # an outbound leg needs the person at home, a return leg at that hub
        ok = np.where(outbound, self.at_hub[c] < 0, self.at_hub[c] == k)
        ok &= np.isfinite(trees.time_s[k, self.home[c]])
        c, k, outbound, dep = c[ok], k[ok], outbound[ok], dep[ok]
        h = self.home[c]
        car = self.car[c]
        dur = np.where(car, trees.time_s[k, h], trees.length_m[k, h] / WALK_SPEED_MS)
        closed_s, crosses = self._closed_on_route(k, h, car)
        if crosses.any():
            cancel = crosses & (rng.random(len(c)) < self.config.closure_awareness)
            self.trips_cancelled += int(cancel.sum())
            go = ~cancel
            c, k, outbound, dur, closed_s, crosses, car, dep = (
                a[go] for a in (c, k, outbound, dur, closed_s, crosses, car, dep))
            self.exposure_person_s += float(closed_s.sum())
            self.person_trips_closed += int(crosses.sum())
            self.vehicle_trips_closed += int((crosses & car).sum())
        self.trips += len(c)
        self.arrive_s[c] = dep + dur
        hub_nodes = trees.roots[k]
        self.loc[c] = np.where(outbound, hub_nodes, self.home[c])
        self.at_hub[c] = np.where(outbound, k, -1)
        return c, k, dur

    def _closed_on_route(self, k: np.ndarray, h: np.ndarray, car: np.ndarray):
        """Seconds spent on closed roads, and whether the route crosses one, per trip."""
        g, trees = self.model.graph, self.trees
        closed_s = np.zeros(len(k))
        for r in np.flatnonzero(g.status > 0):
            a, b = g.u[r], g.v[r]
            # road (a, b) is on the tree route iff it is a tree edge below which h hangs
            low = np.where(trees.parent[k, a] == b, a, np.where(trees.parent[k, b] == a, b, -1))
            on = low >= 0
            if not on.any():
                continue
            on[on] = trees.passes(k[on], h[on], low[on])
            closed_s += on * np.where(car, g.free_time_s[r], g.length_m[r] / WALK_SPEED_MS)
        return closed_s, closed_s > 0

    def _update_footfall(self, c: np.ndarray, k: np.ndarray) -> None:
        """Passers-by per watched junction in this tick (vendors read it)."""
        nodes = self.footfall_nodes
        counts = np.zeros(len(nodes))
        if len(c):
            h = self.home[c]
            for j, n in enumerate(nodes):
                counts[j] = self.trees.passes(k, h, int(n)).sum()
        self.footfall = counts

    def _notice_and_report(self, t0: float, t1: float, c: np.ndarray, k: np.ndarray) -> None:
        m, rng = self.model, self.rng
        book = m.incidents
        active = book.active(t0, t1)
        if len(active) == 0:
            return
        h = self.home[c]
        order = np.argsort(self.loc, kind="stable")
        loc_sorted = self.loc[order]
        moving = np.zeros(self.n, dtype=bool)
        moving[c] = True
        p_stay = 1.0 - np.exp(-self.config.stay_notice_per_h * (t1 - t0) / 3600.0)
        rep_c, rep_i = [], []
        for i in active:
            near = book.near_nodes[i]
            seen = np.zeros(len(c), dtype=bool)
            for n in near:
                seen |= self.trees.passes(k, h, int(n))
            who = c[seen]
            lo, hi = np.searchsorted(loc_sorted, near), np.searchsorted(loc_sorted, near, side="right")
            stay = np.concatenate([order[a:b] for a, b in zip(lo, hi)]) if len(near) else np.zeros(0, np.int64)
            stay = stay[~moving[stay]]
            stay = stay[rng.random(len(stay)) < p_stay]
            cand = np.union1d(who, stay)
            if len(cand) == 0:
                continue
            noticed = self.noticed.get(int(i))
            if noticed is None:
                noticed = self.noticed[int(i)] = np.zeros(self.n, dtype=bool)
            cand = cand[~noticed[cand]]
            cand = cand[rng.random(len(cand)) < book.notice_prob[i]]
            noticed[cand] = True
            cand = cand[rng.random(len(cand)) < self.propensity[cand]]
            rep_c.append(cand)
            rep_i.append(np.full(len(cand), i))
        if rep_c:
            self._emit_reports(np.concatenate(rep_c), np.concatenate(rep_i), t0, t1)

    def _emit_reports(self, who: np.ndarray, inc: np.ndarray, t0: float, t1: float) -> None:
        if len(who) == 0:
            return
        rng, m, book, cfg = self.rng, self.model, self.model.incidents, self.reporting
        ch = np.empty(len(who), dtype=object)
        for g in range(3):
            sel = self.age[who] == g
            names, p = self._channel_p[g]
            ch[sel] = rng.choice(names, size=int(sel.sum()), p=p)
        sd = np.array([cfg.location_error_m.get(x, 50.0) for x in ch])
        x = book.x[inc] + rng.normal(0.0, 1.0, len(who)) * sd
        y = book.y[inc] + rng.normal(0.0, 1.0, len(who)) * sd
        cats = np.array(book.category, dtype=object)[inc]
        wrong = rng.random(len(who)) < cfg.misclassify_prob
        cats = np.where(wrong, "other", cats)
        t = np.maximum(t0 + rng.uniform(0.0, t1 - t0, len(who)) + rng.exponential(cfg.delay_mean_s, len(who)),
                       book.onset_s[inc])
        self.reports_sent[who] += 1
        m.add_reports(pd.DataFrame({
            "time_s": t, "x": x, "y": y, "category": cats, "channel": ch,
            "age_group": np.array(AGE_GROUPS)[self.age[who]], "reporter": [f"citizen:{w}" for w in who],
            "incident_id": np.array(book.ids, dtype=object)[inc], "level": book.level[inc],
        }))

    # ------------------------------------------------------------------ output
    def to_frame(self) -> pd.DataFrame:
        """One row per simulated person: age group, mode, home junction, reports sent."""
        return pd.DataFrame({
            "age_group": np.array(AGE_GROUPS)[self.age], "car": self.car, "employed": self.employed,
            "home_node": self.model.graph.node_ids[self.home], "reports_sent": self.reports_sent,
        }, index=pd.RangeIndex(self.n, name="citizen_id"))
