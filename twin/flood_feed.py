"""The flood side of the coupled simulation: street water in, incidents and closures out, over time.

One source of flood state: :func:`live_flood` runs the city's sewer coupled
both ways with its 2D street surface (:func:`hydraulics.city_flood.run_city_flood`'s
model: :func:`~hydraulics.dual_drainage.run_dual_drainage` on
:func:`~hydraulics.urban_surface.build_urban_surface`) and, at every report
time, hands the street depth grid to a :class:`FloodPublisher`, which turns it
into a :class:`FloodUpdate` for the agents:

- **closures**: the effective depth on each road segment's carriageway (the
  rule of :mod:`hydraulics.street_flood`: water over at least 20 m of its
  length) against ``car_m`` (closed to cars) and ``all_m`` (closed to everyone);
- **incidents**: every junction watches the street cells nearer to it than to
  any other junction (within ``street_radius_m``); when the water standing
  there (cells at least ``min_depth_m`` deep) has grown by
  ``incident_volume_m3`` since it was last dry, that manhole's street becomes
  a waterlogging incident, placed at its deepest cell; it ends when the area
  is dry again.  The water counted is the water on the street, wherever it came
  from: a manhole that spills, or water that ran there from uphill;
- **nodes**: the wet junctions with their street water (``surface_volume_m3``,
  ``surface_depth_m``: deepest cell) and the rate it rose (``flooding_cms``).

A :class:`FloodSchedule` is a recorded live run: :func:`compute_flood_schedule`
runs :func:`live_flood` once and keeps every update; the coupler replays them
at their times, so a replayed run is the live one (``tests/test_coupler.py``).
The river is a boundary of the street surface: water that reaches it is never
an incident or a closure.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gisdata.errors import TwinError
from gisdata.limits import MAX_COUPLING_STEP_S, MIN_COUPLING_STEP_S
from hydraulics.depth_series import DepthSeries, DepthSeriesRecorder
from hydraulics.street_flood import CLOSED_TO_ALL_M, CLOSED_TO_CARS_M
from hydraulics.surface import INLET_RETURN_CMS

NODE_COLUMNS = ("time_s", "node_id", "depth_m", "flooding_cms", "flood_volume_m3", "surface_volume_m3",
                "surface_depth_m", "x", "y")
"""Columns of the wet-node table of each update (:attr:`FloodUpdate.nodes`)."""


class CouplerError(TwinError, ValueError):
    """A coupled run was asked for something impossible (storm after the horizon, bad option)."""


@dataclass(frozen=True)
class CouplingOptions:
    """How the flood becomes incidents and closures.

    Parameters
    ----------
    coupling_step_s : float
        Interval of flood-state exchange with the agents (the coupled run's report step), s.
    incident_volume_m3 : float
        Street water that must gather around a manhole since its street was last
        dry to make a waterlogging incident, m3.
    drain_back_cms : float
        Capacity of each manhole's gully inlets, m3/s (default
        :data:`hydraulics.surface.INLET_RETURN_CMS`).
    car_m, all_m : float
        Effective carriageway depths closing a road to cars and to everyone (crews too), m.
    drain_time_h : float
        Simulated time after the rain ends, h (the sewer and the streets keep running).
    min_depth_m : float
        Street depth counted as wet, m.
    street_radius_m : float
        A manhole watches the street cells nearer to it than to any other, up to this distance, m.
    cell_size_m : float
        Cell size of the 2D street surface, m.
    """

    coupling_step_s: float = 300.0
    incident_volume_m3: float = 1.0
    drain_back_cms: float = INLET_RETURN_CMS
    car_m: float = CLOSED_TO_CARS_M
    all_m: float = CLOSED_TO_ALL_M
    drain_time_h: float = 2.0
    min_depth_m: float = 0.01
    street_radius_m: float = 200.0
    cell_size_m: float = 10.0

    def __post_init__(self) -> None:
        for name in ("coupling_step_s", "incident_volume_m3", "drain_back_cms", "car_m", "all_m", "drain_time_h",
                     "min_depth_m", "street_radius_m", "cell_size_m"):
            if not math.isfinite(getattr(self, name)):  # inf passes every comparison below
                raise CouplerError(f"{name}={getattr(self, name)} must be a finite number")
        if not MIN_COUPLING_STEP_S <= self.coupling_step_s <= MAX_COUPLING_STEP_S:
            raise CouplerError(f"coupling_step_s={self.coupling_step_s:g} is out of range; expected "
                               f"{MIN_COUPLING_STEP_S:g} <= coupling_step_s <= {MAX_COUPLING_STEP_S:g} s")
        for name in ("incident_volume_m3", "drain_time_h", "min_depth_m", "street_radius_m"):
            if not getattr(self, name) >= 0:
                raise CouplerError(f"{name}={getattr(self, name)} must be >= 0")
        if not self.drain_back_cms > 0:
            raise CouplerError(f"drain_back_cms={self.drain_back_cms} must be > 0 (m3/s per manhole)")
        if not 0.5 <= self.cell_size_m <= 100:
            raise CouplerError(f"cell_size_m={self.cell_size_m} is out of range; expected 0.5 <= cell_size_m <= 100 m")
        if not 0 <= self.car_m <= self.all_m:
            raise CouplerError(f"car_m={self.car_m}, all_m={self.all_m}: need 0 <= car_m <= all_m (m)")


@dataclass(frozen=True)
class FloodUpdate:
    """What changed in the flood at one coupling step (plain tables for the agents).

    Attributes
    ----------
    time_s : float
        Simulated time (s since the scenario start).
    new_incidents : DataFrame
        ``incident_id``, ``x``, ``y`` (m), ``time_s``, ``depth_m``, ``node``, ``volume_m3``:
        manhole streets whose water passed the threshold.
    ended : list of str
        Incident IDs whose street is dry again.
    closures : DataFrame or None
        The whole closure state (index ``road_id``; ``depth_m``, ``status``) if any road changed, else None.
    nodes : DataFrame
        Wet junctions at this step (:data:`NODE_COLUMNS`; ``depth_m`` is the water in the manhole, m).
    """

    time_s: float
    new_incidents: pd.DataFrame
    ended: list[str]
    closures: pd.DataFrame | None
    nodes: pd.DataFrame


class FloodPublisher:
    """Turns successive street depth grids into incidents, closures and wet nodes (see the module docstring).

    Parameters
    ----------
    city : gisdata.CityTwin
        Junctions (positions) and roads.
    surface : hydraulics.urban_surface.UrbanSurface
        The street surface the depth grids are on.
    options : CouplingOptions
        Thresholds.
    offset_s : float
        Simulated time of the hydraulics' start on the twin's clock, s.
    """

    def __init__(self, city, surface, options: CouplingOptions, *, offset_s: float = 0.0) -> None:
        from scipy.spatial import cKDTree

        from hydraulics.street_flood import road_depth_reader

        self.options, self.offset_s = options, float(offset_s)
        nodes = city.nodes
        junctions = nodes[nodes["node_type"].astype(str) == "junction"] if "node_type" in nodes.columns else nodes
        self.node_ids = junctions.index.astype(str)
        self.xy = np.column_stack([junctions.geometry.x.to_numpy(float), junctions.geometry.y.to_numpy(float)])
        n = len(self.node_ids)
        self.cell_area_m2 = surface.ground.cell_size_m ** 2
        street = ~(surface.outside | surface.river)
        rows, cols = np.nonzero(street)
        t = surface.ground.transform
        cx, cy = t.c + (cols + 0.5) * t.a, t.f + (rows + 0.5) * t.e
        self._cells = (rows, cols)
        self._cell_xy = np.column_stack([cx, cy])
        if n:
            dist, owner = cKDTree(self.xy).query(self._cell_xy, distance_upper_bound=options.street_radius_m)
            self._owner = np.where(np.isfinite(dist), owner, -1)
        else:
            self._owner = np.full(len(rows), -1)
        self._owned = self._owner >= 0
        self._road_depth = road_depth_reader(surface, city)
        self.road_ids = pd.Index(city.roads.index.astype(str), name="road_id")
        self.status = pd.Series("open", index=self.road_ids)
        self.volume = np.zeros(n)
        self.since_dry = np.zeros(n)
        self.open: dict[int, str] = {}
        self.last_time_s = self.offset_s
        self.n_incidents = 0

    def update(self, t_run_s: float, depth: np.ndarray, node_depth_m: np.ndarray | None = None) -> FloodUpdate:
        """Publish the street depth grid (m) at run time ``t_run_s`` (s); returns the changes.

        ``node_depth_m`` is the water depth in each junction's manhole, m (in :attr:`node_ids` order), if known.
        """
        from hydraulics.surface import road_closures

        opts = self.options
        t = self.offset_s + float(t_run_s)
        dt = max(t - self.last_time_s, 0.0)
        self.last_time_s = t
        n = len(self.node_ids)
        d = np.asarray(depth, dtype=float)[self._cells]
        wet = self._owned & (d >= opts.min_depth_m)
        vol = np.bincount(self._owner[wet], weights=d[wet] * self.cell_area_m2, minlength=n) if n else np.zeros(0)
        deepest = np.zeros(n)
        if n and wet.any():
            np.maximum.at(deepest, self._owner[wet], d[wet])
        rise = np.clip(vol - self.volume, 0.0, None)
        rate = rise / dt if dt > 0 else np.zeros(n)
        self.since_dry = np.where(vol > 0, self.since_dry + rise, 0.0)
        self.volume = vol

        closures = None
        road = road_closures(pd.Series(self._road_depth(depth), index=self.road_ids), car_m=opts.car_m,
                             all_m=opts.all_m)
        status = road["status"].astype(str)
        if not status.equals(self.status):
            self.status = status
            closures = road

        new_rows = []
        for i in np.flatnonzero((self.since_dry >= opts.incident_volume_m3) & (vol > 0)):
            if int(i) in self.open:
                continue
            iid = f"FL-{self.node_ids[i]}-{round(t)}"
            self.open[int(i)] = iid
            self.n_incidents += 1
            mine = np.flatnonzero(wet & (self._owner == i))
            k = mine[np.argmax(d[mine])]
            new_rows.append({"incident_id": iid, "x": float(self._cell_xy[k, 0]), "y": float(self._cell_xy[k, 1]),
                             "time_s": t, "depth_m": float(deepest[i]), "node": self.node_ids[i],
                             "volume_m3": float(vol[i])})
        ended = [self.open.pop(i) for i in [k for k in self.open if self.volume[k] <= 0]]
        show = vol > 0
        manhole = np.full(n, np.nan) if node_depth_m is None else np.asarray(node_depth_m, float)
        nodes = pd.DataFrame({"time_s": t, "node_id": self.node_ids[show], "depth_m": manhole[show],
                              "flooding_cms": rate[show], "flood_volume_m3": self.since_dry[show],
                              "surface_volume_m3": vol[show], "surface_depth_m": deepest[show],
                              "x": self.xy[show, 0], "y": self.xy[show, 1]}, columns=list(NODE_COLUMNS))
        inc = pd.DataFrame(new_rows, columns=["incident_id", "x", "y", "time_s", "depth_m", "node", "volume_m3"])
        return FloodUpdate(t, inc, ended, closures, nodes)


def live_flood(city, rain, *, start_s: float, horizon_s: float, options: CouplingOptions,
               on_update: Callable[[FloodUpdate], None],
               progress: Callable[[float], None] | None = None) -> tuple[dict, DepthSeries]:
    """Run the city's sewer and streets coupled for ``rain`` and publish every report time.

    Parameters
    ----------
    city : gisdata.CityTwin
    rain : RainSeries
        The storm (mm/h).
    start_s : float
        Storm start on the twin's clock, s.
    horizon_s : float
        End of the twin's run, s; the hydraulics stop there at the latest
        (the drain time is shortened to fit).
    options : CouplingOptions
    on_update : callable
        Receives each :class:`FloodUpdate` in time order, while the engine runs.
    progress : callable, optional
        Fraction of the hydraulic run done (0..1).

    Returns
    -------
    dict
        The hydraulics' metadata: the coupled run's summary (mass balance,
        exchange, water to the river), the storm and its start.
    DepthSeries
        The street depth at every report time, times on the twin's clock (s).
    """
    from hydraulics.build import build_swmm
    from hydraulics.city_flood import city_options
    from hydraulics.dual_drainage import run_dual_drainage
    from hydraulics.engine_batch import read_node_results
    from hydraulics.urban_surface import build_urban_surface

    opts = options
    room_h = (horizon_s - start_s - float(rain.duration_s)) / 3600.0
    drain_h = max(0.0, min(opts.drain_time_h, room_h))
    surface = build_urban_surface(city, cell_size_m=opts.cell_size_m)
    text = build_swmm(city, rain_gauges=rain, drain_time_h=drain_h, report="none")
    pub = FloodPublisher(city, surface, opts, offset_s=start_s)
    run_opts = city_options(report_step_s=opts.coupling_step_s, inlet_capacity_m3s=opts.drain_back_cms)
    engine_idx: list[np.ndarray] = []
    frames = DepthSeriesRecorder(surface.ground.transform, surface.ground.crs, ~(surface.outside | surface.river),
                                 every_s=opts.coupling_step_s)

    def on_report(t: float, surf) -> None:
        if not engine_idx:
            from swmm.toolkit import solver
            from swmm.toolkit.shared_enum import ObjectType

            engine_idx.append(np.array([solver.project_get_index(ObjectType.NODE, i) for i in pub.node_ids]))
        from swmm.toolkit.shared_enum import NodeResult

        manhole = read_node_results(engine_idx[0], NodeResult.DEPTH.value)  # the city model is in metres
        frames.add(start_s + t, surf.depth_m)
        on_update(pub.update(t, surf.depth_m, manhole))

    res = run_dual_drainage(text, surface, options=run_opts, on_report=on_report, on_progress=progress)
    s = res.summary
    hyd = {"surface": f"2D street surface, {s['rows']} x {s['cols']} cells of {s['cell_size_m']:g} m, "
                       f"coupled both ways",
            **{k: s[k] for k in ("input_sha256", "start", "end", "coupled_nodes", "to_surface_m3", "to_network_m3",
                                 "to_river_m3", "max_depth_m", "flooded_area_m2", "mass_balance_error_rel",
                                 "swmm_routing_error_pct", "wall_time_s")},
            "flood_volume_m3": s["to_surface_m3"],  # what the manholes spilled onto the streets
            "flood_incidents": pub.n_incidents, "storm": getattr(rain, "label", ""), "start_s": float(start_s),
            "swmm_duration_s": float(rain.duration_s) + drain_h * 3600.0}
    return hyd, frames.result()


# ----------------------------------------------------------------------------- a recorded run


@dataclass(frozen=True)
class FloodSchedule:
    """A live flood run, recorded: every update with its time, and tables of them.

    Attributes
    ----------
    incidents : DataFrame
        ``incident_id``, ``x``, ``y``, ``time_s``, ``depth_m``, ``node``, ``end_s`` (inf if still wet).
    closures : DataFrame
        ``time_s``, ``road_id``, ``status``, ``depth_m``: status changes.
    nodes : DataFrame
        Wet junctions per coupling step (as :attr:`twin.coupler.CoupledResult.flood_nodes`).
    hydraulics : dict
        The coupled run's metadata (:func:`live_flood`).
    key : str
        Digest of the hydraulic input and the coupling options.
    updates : tuple of FloodUpdate
        Every coupling step's update, in time order (what :func:`twin.coupler.run_coupled` replays with ``flood=``).
    depths : DepthSeries, optional
        The street depth at every coupling step, times on the twin's clock.
    """

    incidents: pd.DataFrame
    closures: pd.DataFrame
    nodes: pd.DataFrame
    hydraulics: dict
    key: str
    updates: tuple = ()
    depths: DepthSeries | None = None


def check_run(hours: float, rain, start_s: float, seed) -> float:
    """The run's horizon, s; refuses a non-positive length, a negative seed or a storm outside the run."""
    if not hours > 0:
        raise CouplerError(f"hours={hours} must be > 0")
    if int(seed) < 0:
        raise CouplerError(f"seed={seed} must be >= 0")
    horizon = float(hours) * 3600.0
    if rain is not None and not 0 <= start_s < horizon:
        raise CouplerError(f"storm start {start_s / 3600:g} h must be within the run (0 .. {hours:g} h)")
    return horizon


def compute_flood_schedule(city, rain, *, start_s: float = 0.0, hours: float = 24.0,
                           options: CouplingOptions | None = None, worker: bool = False,
                           progress: Callable[[float], None] | None = None) -> FloodSchedule:
    """Run the flood once (:func:`live_flood`) and keep every update with its time.

    With ``worker=True`` the engine runs in a fresh process (:func:`twin.job_process.run_in_process`).
    """
    if worker:
        from twin.job_process import run_in_process

        return run_in_process(_schedule_job, {"city": city, "rain": rain, "start_s": start_s, "hours": hours,
                                              "options": options}, on_report=progress, poll_s=0.1, what="flood",
                              error_type=CouplerError)
    opts = options or CouplingOptions()
    horizon = check_run(hours, rain, start_s, 0)
    updates: list[FloodUpdate] = []
    hyd, depths = live_flood(city, rain, start_s=start_s, horizon_s=horizon, options=opts,
                             on_update=updates.append, progress=progress)
    incs = [u.new_incidents for u in updates if len(u.new_incidents)]
    ends = {iid: u.time_s for u in updates for iid in u.ended}
    inc = pd.concat(incs, ignore_index=True) if incs else pd.DataFrame(
        columns=["incident_id", "x", "y", "time_s", "depth_m", "node", "volume_m3"])
    inc = inc.assign(end_s=inc["incident_id"].map(ends).astype(float).fillna(np.inf))
    closures = [u.closures.assign(time_s=u.time_s).reset_index() for u in updates if u.closures is not None]
    nodes = [u.nodes for u in updates if len(u.nodes)]
    key = hashlib.sha256((hyd.get("input_sha256", "") + repr(opts) + repr(start_s)).encode()).hexdigest()[:16]
    return FloodSchedule(inc.drop(columns=["volume_m3"]), closure_changes(closures),
                         pd.concat(nodes, ignore_index=True) if nodes else empty_nodes(), hyd, key, tuple(updates),
                         depths)


def _schedule_job(request: dict, report: Callable[[float], None]) -> FloodSchedule:
    return compute_flood_schedule(progress=report, **request)


def empty_nodes() -> pd.DataFrame:
    """An empty wet-node table (:data:`NODE_COLUMNS`)."""
    return pd.DataFrame({c: pd.Series(dtype=object if c == "node_id" else float) for c in NODE_COLUMNS})


def closure_changes(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Only the roads whose status changed at each step (a road reopening included)."""
    cols = ["time_s", "road_id", "status", "depth_m"]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object if c in ("road_id", "status") else float) for c in cols})
    prev: dict[str, str] = {}
    out = []
    for f in frames:
        f = f.assign(status=f["status"].astype(str))
        changed = [p != prev.get(r, "open") for r, p in zip(f["road_id"], f["status"])]
        out.append(f.loc[changed, cols])
        prev = dict(zip(f["road_id"], f["status"]))
    return pd.concat(out, ignore_index=True)
