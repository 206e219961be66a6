"""The Mesa model of the city's people: citizens, vendors and crews on one tick.

:class:`CityModel` follows Mesa's layout: it is created with an ``rng``, owns
the agents, and :meth:`CityModel.step` advances them by ``tick_s`` seconds
(default 300 s).  It knows nothing of SWMM or of the twin: flood incidents and
road closures are handed in as plain tables at any time
(:meth:`add_flood_incidents`; closures are applied to the shared
:class:`~agents.routing.RoadGraph`, normally by
:meth:`agents.dispatch.DispatchCentre.set_closures`).  Reports it produces are
collected with :meth:`drain_reports` and handed to the dispatch centre; the
centre's events come back through :meth:`on_dispatch_event` (enforcement on
vendors, incidents resolved).

Common random numbers: the model ``rng`` is split into three streams at
construction -- ``world`` (background issues), ``citizens``, ``vendors`` -- so
the same seed gives the same incidents, population and plans whatever the
dispatch strategy; results differ only where the strategy changes the world
(a resolved incident is no longer noticed, vendors react to enforcement).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import mesa
import numpy as np
import pandas as pd

from agents.catalog import ReportingConfig, waterlogging_level
from agents.citizen import CitizenConfig, Citizens, choose_hubs
from agents.crew import Crew, build_crews
from agents.errors import AgentConfigError
from agents.incidents import BackgroundRates, IncidentBook, generate_background
from agents.routing import RoadGraph
from agents.vendor import Vendor, VendorPolicy


class CityModel(mesa.Model):
    """Citizens, vendors and crews of one city.

    Parameters
    ----------
    city : gisdata.CityTwin
        Roads, buildings (residents, use), depots, sensors and vendor sites are read.
    n_citizens : int
        People simulated; the city's residents are scaled down (or up) to this.
    n_vendors : int
        Street vendors.
    crews : int, Mapping[str, int] or None
        Crews in total (split evenly over departments), per department, or
        ``None`` for the depots' ``n_crews``.
    n_shifts : int
        Crew shifts a day (1, 2 or 3).
    tick_s : float
        Length of one :meth:`step` (s).
    start_s : float
        Simulated time at construction (s since the scenario start; day 0 starts at 0).
    hours : float
        Horizon for drawing background issues (h).
    citizen_config, reporting, vendor_policy, background : optional
        Behaviour parameters (:class:`CitizenConfig`, :class:`ReportingConfig`,
        :class:`VendorPolicy`, :class:`BackgroundRates`); ``background=False`` disables them.
    sensor_delay_s : float
        Delay of a water-level sensor alarm after a flood onset (s).
    sensor_radius_m : float
        A water-level sensor within this distance of a flood incident raises an alarm (m).
    patrol_radius_m, patrol_detect_per_h : float
        Idle city-management and police crews find incidents within this radius (m)
        at this rate (1/h).
    notice_radius_m : float
        Citizens see incidents within this distance of their route (m).
    graph : RoadGraph, optional
        Reuse a graph (must be built from ``city.roads``).
    rng : numpy.random.Generator or int, optional
        Passed to :class:`mesa.Model`.
    event_sink : callable, optional
        Receives model events (flood onsets, vendor moves, enforcement).
    """

    def __init__(self, city, *, n_citizens: int = 2000, n_vendors: int = 50, crews=None, n_shifts: int = 1,
                 tick_s: float = 300.0, start_s: float = 0.0, hours: float = 24.0,
                 citizen_config: CitizenConfig | None = None, reporting: ReportingConfig | None = None,
                 vendor_policy: VendorPolicy | None = None, background: BackgroundRates | bool | None = None,
                 sensor_delay_s: float = 60.0, sensor_radius_m: float = 100.0, patrol_radius_m: float = 200.0,
                 patrol_detect_per_h: float = 1.0, notice_radius_m: float = 60.0, graph: RoadGraph | None = None,
                 rng=None, event_sink: Callable[[Mapping[str, Any]], None] | None = None) -> None:
        super().__init__(rng=rng)
        for name, v in (("n_citizens", n_citizens), ("n_vendors", n_vendors)):
            if int(v) < 0:
                raise AgentConfigError(f"{name}={v} must be >= 0")
        if tick_s <= 0:
            raise AgentConfigError(f"tick_s={tick_s} must be > 0")
        if hours <= 0:
            raise AgentConfigError(f"hours={hours} must be > 0")
        self.streams = dict(zip(("world", "citizens", "vendors"), self.rng.spawn(3)))
        self.city_name = city.name
        self.graph = graph if graph is not None else RoadGraph.from_city(city)
        self.tick_s = float(tick_s)
        self.time_s = float(start_s)
        self.start_s = float(start_s)
        self.event_sink = event_sink
        self.reporting = reporting or ReportingConfig()
        self.vendor_policy = vendor_policy or VendorPolicy()
        self.sensor_delay_s = float(sensor_delay_s)
        self.sensor_radius_m = float(sensor_radius_m)
        self.patrol_radius_m = float(patrol_radius_m)
        self.patrol_detect_per_h = float(patrol_detect_per_h)
        self.incidents = IncidentBook(self.graph, notice_radius_m=notice_radius_m)
        if background is not False:
            bg = generate_background(self.graph, self.streams["world"], hours=hours,
                                     rates=background if isinstance(background, BackgroundRates) else None,
                                     start_s=start_s)
            self.incidents.add(bg, source="background")
        self._outbox: list[pd.DataFrame] = []
        self._no_reports = pd.DataFrame({c: pd.Series(dtype=float if c in ("time_s", "x", "y") else object)
                                         for c in ("report_id", "time_s", "x", "y", "category", "channel")})
        self._n_reports = 0
        self._onset_emitted = np.zeros(0, dtype=bool)
        self._patrol_found: set[int] = set()
        self.timeline: list[dict] = []
        self._build_sensors(city)
        self._build_sites(city)
        self._build_citizens(city, int(n_citizens), citizen_config or CitizenConfig())
        self.vendors = [Vendor(self, f"V{i + 1:04d}", float(self.streams["vendors"].beta(5.0, 2.0)))
                        for i in range(int(n_vendors))]
        self._vendor_by_incident: dict[str, Vendor] = {}
        self.crews: list[Crew] = build_crews(self, city.depots, crews, n_shifts=n_shifts)
        self.agent_steps = 0

    # ------------------------------------------------------------------ construction
    def _build_sensors(self, city) -> None:
        s = city.sensors
        s = s[s["sensor_type"] == "water_level"] if len(s) else s
        self.sensor_ids = s.index.astype(str).to_numpy() if len(s) else np.zeros(0, dtype=object)
        self.sensor_node = s["node_id"].astype(str).to_numpy() if len(s) else np.zeros(0, dtype=object)
        self.sensor_xy = np.column_stack([s.geometry.x, s.geometry.y]) if len(s) else np.zeros((0, 2))

    def _build_sites(self, city) -> None:
        vs = city.vendor_sites
        if len(vs):
            xy = np.column_stack([vs.geometry.x.to_numpy(), vs.geometry.y.to_numpy()])
            attr = vs["attractiveness"].to_numpy(float)
            ids = vs.index.astype(str).to_numpy()
        else:  # no sites layer: the busiest-looking junctions (highest degree) stand in
            deg = np.bincount(np.concatenate([self.graph.u, self.graph.v]), minlength=self.graph.n_nodes)
            top = np.argsort(-deg, kind="stable")[: max(1, min(20, self.graph.n_nodes))]
            xy, attr = self.graph.xy[top], np.full(len(top), 0.5)
            ids = np.array([f"S{i + 1:03d}" for i in range(len(top))], dtype=object)
        from scipy.spatial import cKDTree

        self.site_ids, self.site_xy, self.site_attr = ids, xy, attr
        self.site_node = self.graph.nearest_node(xy[:, 0], xy[:, 1])
        _, self.site_road = cKDTree(self.graph.road_midpoints()).query(xy)
        self.site_occupancy = np.zeros(len(ids), dtype=np.int64)
        self.site_footfall = np.zeros(len(ids))
        self.site_risk = np.zeros(len(ids))

    def _build_citizens(self, city, n: int, cfg: CitizenConfig) -> None:
        g, rng = self.graph, self.streams["citizens"]
        hubs, work_w, act_w = choose_hubs(g, city.buildings, city.vendor_sites, cfg.n_hubs)
        self.hub_trees = g.free_flow_trees(hubs)
        b = city.buildings
        res = b[b["residents"] > 0] if len(b) else b
        if len(res):
            c = res.geometry.centroid
            bnode = g.nearest_node(c.x.to_numpy(), c.y.to_numpy())
            w = res["residents"].to_numpy(float)
            homes = bnode[rng.choice(len(res), size=n, p=w / w.sum())] if n else np.zeros(0, dtype=np.int64)
            residents = float(w.sum())
        else:
            homes = rng.integers(0, g.n_nodes, size=n)
            residents = float(n)
        self.citizens = Citizens(self, n, homes, self.hub_trees, work_w, act_w, config=cfg,
                                 reporting=self.reporting, people_per_agent=residents / n if n else 0.0)
        self.citizens.footfall_nodes = self.site_node

    # ------------------------------------------------------------------ events
    def emit(self, kind: str, actor: str, x: float | None, y: float | None, time_s: float | None = None, **payload) -> None:
        """Send a model event to the sink."""
        if self.event_sink is not None:
            self.event_sink({"time_s": float(self.time_s if time_s is None else time_s), "kind": kind, "actor": actor,
                             "x": None if x is None else float(x), "y": None if y is None else float(y),
                             "payload": payload})

    # ------------------------------------------------------------------ inputs
    def add_flood_incidents(self, flood: pd.DataFrame) -> list[str]:
        """Add waterlogging incidents (from the hydraulic state) and their sensor alarms.

        Parameters
        ----------
        flood : pandas.DataFrame
            Columns ``x``, ``y`` (m), ``time_s`` (onset, s) and ``depth_m`` (m);
            optional ``incident_id``, ``node`` (sewer node ID), ``road_id``, ``end_s`` (s).

        Returns
        -------
        list of str
            IDs of the incidents added (already known IDs are skipped).
        """
        if flood is None or len(flood) == 0:
            return []
        flood = flood.rename(columns={"time": "time_s", "node_id": "node"})
        if "incident_id" not in flood.columns and flood.index.name != "incident_id":
            t = flood["time_s"].astype(float).round().astype(int).astype(str)
            where = flood["node"].astype(str) if "node" in flood.columns else (
                flood["road_id"].astype(str) if "road_id" in flood.columns else pd.Series(
                    [f"{x:.0f}_{y:.0f}" for x, y in zip(flood["x"], flood["y"])], index=flood.index))
            flood = flood.assign(incident_id=("FL-" + where + "-" + t).to_numpy())
        ids = self.incidents.add(flood.drop(columns=["node"], errors="ignore"), source="flood")
        if not ids:
            return []
        sewer = flood.set_index("incident_id")["node"].astype(str) if "node" in flood.columns else None
        rows = []
        for iid in ids:
            i = self.incidents.index_of(iid)
            near = np.hypot(self.sensor_xy[:, 0] - self.incidents.x[i], self.sensor_xy[:, 1] - self.incidents.y[i]) \
                <= self.sensor_radius_m if len(self.sensor_ids) else np.zeros(0, dtype=bool)
            if sewer is not None:
                near |= self.sensor_node == sewer.get(iid, "")
            for k in np.flatnonzero(near):
                rows.append({"time_s": max(self.incidents.onset_s[i] + self.sensor_delay_s, self.time_s),
                             "x": self.sensor_xy[k, 0], "y": self.sensor_xy[k, 1], "category": "waterlogging",
                             "channel": "sensor", "age_group": "", "reporter": f"sensor:{self.sensor_ids[k]}",
                             "incident_id": iid, "level": waterlogging_level(self.incidents.depth_m[i])})
        if rows:
            self.add_reports(pd.DataFrame(rows))
        return ids

    def end_incidents(self, incident_ids, time_s: float | None = None) -> None:
        """Incidents that went away by themselves (water receded) at ``time_s`` (s; default now)."""
        t = self.time_s if time_s is None else float(time_s)
        for iid in incident_ids:
            self.incidents.end(str(iid), t)

    def crew_positions(self) -> pd.DataFrame:
        """Where the crews are now: index ``crew_id``; department, status, x, y (m), staged."""
        return pd.DataFrame([{"crew_id": c.crew_id, "department": c.department, "status": c.status, "x": c.x,
                              "y": c.y, "staged": c.staged} for c in self.crews],
                            columns=["crew_id", "department", "status", "x", "y", "staged"]).set_index("crew_id")

    def add_reports(self, reports: pd.DataFrame) -> None:
        """Queue reports for the dispatch centre (IDs assigned in arrival order)."""
        if len(reports) == 0:
            return
        n = len(reports)
        reports = reports.copy()
        reports.insert(0, "report_id", [f"R{self._n_reports + i + 1:07d}" for i in range(n)])
        self._n_reports += n
        self._outbox.append(reports)

    def drain_reports(self) -> pd.DataFrame:
        """Reports produced since the last call (hand them to ``DispatchCentre.submit``)."""
        if not self._outbox:
            return self._no_reports
        out = pd.concat(self._outbox, ignore_index=True)
        self._outbox = []
        return out

    def on_dispatch_event(self, event: Mapping[str, Any]) -> None:
        """Listener for the dispatch centre: enforcement on arrival, resolution on case closure
        (or on a late report merged into a closed case)."""
        kind, p = event["kind"], event["payload"]
        if kind == "arrival" and p.get("category") == "vendor":
            for iid in p.get("incident_ids", []):
                v = self._vendor_by_incident.get(iid)
                if v is not None and v.incident_id == iid:
                    outcome = v.enforce(event["time_s"], p.get("crew_id", ""))
                    self.emit("enforcement", f"crew:{p.get('crew_id', '')}", event["x"], event["y"],
                              time_s=event["time_s"], vendor_id=v.vendor_id, incident_id=iid, outcome=outcome,
                              policy="first_violation_free" if self.vendor_policy.first_violation_free else "penalty")
        elif kind == "closure":
            for iid in p.get("incident_ids", []):
                self.incidents.resolve(iid, event["time_s"])
        elif kind == "merge" and p.get("case_closed") and p.get("incident_id"):
            self.incidents.resolve(p["incident_id"], event["time_s"])

    # ------------------------------------------------------------------ vendors
    def choose_vendor_site(self, vendor: Vendor, exclude: int = -1) -> int:
        """Logit site choice on footfall, attractiveness and enforcement risk; -1 if all are full."""
        pol = self.vendor_policy
        u = (pol.w_footfall * np.log1p(self.site_footfall) + pol.w_attr * self.site_attr
             - pol.w_risk * self.site_risk + vendor.rng.gumbel(size=len(self.site_ids)))
        u[self.site_occupancy >= pol.site_capacity] = -np.inf
        if 0 <= exclude < len(u):
            u[exclude] = -np.inf
        k = int(np.argmax(u))
        return k if np.isfinite(u[k]) else -1

    def open_vendor_incident(self, vendor: Vendor, site: int, t: float, *, kind: str) -> str:
        """Vendor starts occupying the road by ``site`` at ``t`` (s); returns the incident ID."""
        iid = f"VO{len(self._vendor_by_incident) + 1:06d}"
        x, y = self.site_xy[site] + vendor.rng.normal(0.0, 8.0, 2)
        self.incidents.add(pd.DataFrame({"incident_id": [iid], "category": ["vendor"], "x": [x], "y": [y],
                                         "time_s": [t], "road_id": [self.graph.road_ids[self.site_road[site]]]}),
                           source="vendor")
        self._vendor_by_incident[iid] = vendor
        self.site_occupancy[site] += 1
        self.emit(kind, f"vendor:{vendor.vendor_id}", x, y, time_s=t, vendor_id=vendor.vendor_id, incident_id=iid,
                  site_id=str(self.site_ids[site]), road_id=str(self.graph.road_ids[self.site_road[site]]))
        return iid

    def close_vendor_incident(self, vendor: Vendor, t: float, *, reason: str) -> None:
        """Vendor leaves at ``t`` (s)."""
        self.incidents.end(vendor.incident_id, t)
        self.site_occupancy[vendor.site] -= 1
        x, y = self.site_xy[vendor.site]
        self.emit("vendor_leave", f"vendor:{vendor.vendor_id}", x, y, time_s=t, vendor_id=vendor.vendor_id,
                  incident_id=vendor.incident_id, reason=reason)

    # ------------------------------------------------------------------ step
    def step(self) -> None:
        """Advance citizens, vendors and crews over ``[time_s, time_s + tick_s)``, then the clock."""
        t0, t1 = self.time_s, self.time_s + self.tick_s
        self._emit_onsets(t0, t1)
        self.citizens.step()
        alpha = 0.3  # footfall memory of about three ticks
        self.site_footfall = (1 - alpha) * self.site_footfall + alpha * self.citizens.footfall
        self._update_risk()
        for v in self.vendors:
            v.step()
        for c in self.crews:
            c.step()
        self._patrol(t0, t1)
        self.agent_steps += self.citizens.n + len(self.vendors) + len(self.crews)
        self.timeline.append({
            "time_s": t0, "active_incidents": len(self.incidents.active(t0, t1)),
            "citizens_travelling": self.citizens.travelling_now, "trips": self.citizens.trips,
            "reports": self._n_reports, "vendors_occupying": int(sum(v.occupying for v in self.vendors)),
            "crews_busy": int(sum(c.status != "idle" for c in self.crews)),
        })
        self.time_s = t1

    def _emit_onsets(self, t0: float, t1: float) -> None:
        b = self.incidents
        if len(self._onset_emitted) < len(b):
            self._onset_emitted = np.concatenate([self._onset_emitted, np.zeros(len(b) - len(self._onset_emitted), bool)])
        due = np.flatnonzero(~self._onset_emitted & (b.onset_s < t1))
        for i in due:
            self._onset_emitted[i] = True
            if b.source[i] == "flood":
                # logged at the tick that sees it, so the log stays in time order
                self.emit("flood_onset", "hydraulics", b.x[i], b.y[i], time_s=t0, onset_s=float(b.onset_s[i]),
                          incident_id=b.ids[i], depth_m=float(b.depth_m[i]), road_id=b.road_id[i],
                          level=int(b.level[i]))
            elif b.source[i] == "background":
                self.emit("incident", "world", b.x[i], b.y[i], time_s=t0, onset_s=float(b.onset_s[i]),
                          incident_id=b.ids[i], category=b.category[i])

    def _update_risk(self) -> None:
        pol = self.vendor_policy
        self.site_risk *= np.exp(-self.tick_s / pol.risk_tau_s)
        enforcers = [c for c in self.crews if c.department in ("city_management", "police") and c.on_shift(self.time_s)]
        if enforcers and len(self.site_ids):
            cx = np.array([[c.x, c.y] for c in enforcers])
            d = np.hypot(self.site_xy[:, None, 0] - cx[None, :, 0], self.site_xy[:, None, 1] - cx[None, :, 1])
            self.site_risk += (d <= pol.risk_radius_m).sum(axis=1) * (self.tick_s / 3600.0)

    def _patrol(self, t0: float, t1: float) -> None:
        crews = [c for c in self.crews if c.department in ("city_management", "police")
                 and c.status == "idle" and c.on_shift(t0)]
        active = self.incidents.active(t0, t1)
        active = np.array([i for i in active if int(i) not in self._patrol_found], dtype=np.int64)
        if not crews or len(active) == 0:
            return
        b, rng = self.incidents, self.streams["world"]
        cx = np.array([[c.x, c.y] for c in crews])
        d = np.hypot(b.x[active][:, None] - cx[None, :, 0], b.y[active][:, None] - cx[None, :, 1])
        p = 1.0 - np.exp(-self.patrol_detect_per_h * self.tick_s / 3600.0)
        hit = (d <= self.patrol_radius_m) & (rng.random(d.shape) < p)
        rows = []
        for r in np.flatnonzero(hit.any(axis=1)):
            i, c = int(active[r]), crews[int(np.argmax(hit[r]))]
            self._patrol_found.add(i)
            rows.append({"time_s": max(t0 + float(rng.uniform(0, self.tick_s)), float(b.onset_s[i])), "x": b.x[i] + rng.normal(0, 5.0),
                         "y": b.y[i] + rng.normal(0, 5.0), "category": b.category[i], "channel": "patrol",
                         "age_group": "", "reporter": f"crew:{c.crew_id}", "incident_id": b.ids[i],
                         "level": int(b.level[i]), "department": c.department})
        if rows:
            self.add_reports(pd.DataFrame(rows))

    # ------------------------------------------------------------------ output
    def tables(self) -> dict[str, pd.DataFrame]:
        """``incidents``, ``citizens``, ``vendors``, ``crews`` and ``timeline`` as DataFrames."""
        vendors = pd.DataFrame([{"vendor_id": v.vendor_id, **v.to_row(self.time_s)} for v in self.vendors],
                               columns=["vendor_id", "credit", "credit_level", "occupations", "occupied_s",
                                        "violations", "enforcements", "warnings", "penalties", "complied",
                                        "moved", "returned", "reoffences"]).set_index("vendor_id")
        crews = pd.DataFrame([{"crew_id": c.crew_id, **c.to_row()} for c in self.crews]).set_index("crew_id") \
            if self.crews else pd.DataFrame(index=pd.Index([], name="crew_id"))
        return {
            "incidents": self.incidents.to_frame(), "citizens": self.citizens.to_frame(), "vendors": vendors,
            "crews": crews, "timeline": pd.DataFrame(self.timeline),
        }

    def exposure(self) -> dict[str, float]:
        """Flood exposure so far: person-hours on closed roads, trips through them."""
        c = self.citizens
        return {"person_hours_closed_roads": c.exposure_person_s / 3600.0,
                "person_hours_closed_roads_scaled": c.exposure_person_s / 3600.0 * c.people_per_agent,
                "person_trips_closed_roads": c.person_trips_closed,
                "vehicle_trips_closed_roads": c.vehicle_trips_closed, "trips_cancelled": c.trips_cancelled,
                "trips": c.trips}
