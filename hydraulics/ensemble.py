"""One ensemble member: a SWMM run from a hotstart, reduced to surface depth per risk point.

A member is a plain function of plain data (:class:`MemberTask` in,
:class:`MemberResult` out), so it runs the same in this process, in a
``spawn`` process pool or on a Dask worker (:mod:`hydraulics.executors`).

Surface depth and its time course (the definition used everywhere)
------------------------------------------------------------------
The SWMM model (``hydraulics.build``) lets water that overflows a manhole
leave the network.  We keep it on the street:

- **surface volume** ``V_i(t)`` at manhole ``i`` grows by the node's overflow
  volume in each coupling step, and drains back through the street inlets at
  ``inlet_return_cms`` (m3/s per manhole) in steps when the node is not
  overflowing.  The returned water is not fed back to SWMM (it is small
  against pipe capacity once the node stops surcharging); this is a documented
  simplification that gives ponding a duration.
- every ``surface_step_s`` the volumes are spread over the DEM together by
  fill-and-spill (:func:`hydraulics.surface.spread_flood`), giving a depth grid;
- **manhole depth** = the largest water depth on the DEM cells within
  ``node_radius_cells`` cells of the manhole (the street around the lid; a
  DEM cell is coarser than a street).  It is the ponded/surface depth at the
  node, not the water level in the shaft;
- **road depth** = the largest depth along the segment
  (:func:`hydraulics.surface.road_max_depth`);
- **district depth** = the largest depth in the management cell.

Per point the member records the sparse depth series (depth >=
``min_depth_m``) at the surface steps, in seconds from the issue time.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from gisdata.city import CityTwin
from gisdata.raster import Raster
from hydraulics.surface import INLET_RETURN_CMS

POINT_KINDS = ("manhole", "road", "district")
"""Kinds of risk point."""


@dataclass(frozen=True, eq=False)
class SurfaceContext:
    """Everything a member needs to turn node overflow into depth per risk point.

    Build it with :func:`build_surface_context`; it pickles (sent once per worker).

    Parameters
    ----------
    dem : Raster
        Ground elevation, m.
    node_ids : tuple of str
        Manhole (junction) IDs.
    node_xy : numpy.ndarray
        (N, 2) manhole coordinates, m.
    roads : geopandas.GeoDataFrame
        Road segments (geometry only), indexed by ``road_id``.
    district_ids : tuple of str
        District IDs; ``district_labels`` holds their position + 1 per DEM cell (0 = none).
    district_labels : numpy.ndarray
        int32 grid on the DEM.
    points : tuple of str
        Point IDs ``"manhole:J1"``, ``"road:R1"``, ``"district:D1"``: manholes, roads, districts in order.
    inlet_return_cms : float
        Rate at which street water drains back into a manhole that is not overflowing, m3/s.
    node_radius_cells : int
        Neighbourhood (cells each way) over which manhole depth is taken.
    min_depth_m : float
        Depths below this are not recorded, m.
    """

    dem: Raster
    node_ids: tuple[str, ...]
    node_xy: np.ndarray
    roads: gpd.GeoDataFrame
    district_ids: tuple[str, ...]
    district_labels: np.ndarray
    points: tuple[str, ...]
    inlet_return_cms: float = INLET_RETURN_CMS
    node_radius_cells: int = 1
    min_depth_m: float = 0.01

    @property
    def n_nodes(self) -> int:
        return len(self.node_ids)


def build_surface_context(city: CityTwin, *, inlet_return_cms: float = INLET_RETURN_CMS, node_radius_cells: int = 1,
                          min_depth_m: float = 0.01) -> SurfaceContext:
    """Prepare the surface reduction of ``city`` (see the module docstring for the parameters)."""
    from rasterio.features import rasterize

    junctions = city.nodes[city.nodes["node_type"] == "junction"]
    xy = np.column_stack([junctions.geometry.x.to_numpy(), junctions.geometry.y.to_numpy()])
    dem = city.dem
    if len(city.districts):
        labels = rasterize(((g, k + 1) for k, g in enumerate(city.districts.geometry.values)),
                           out_shape=dem.shape, transform=dem.transform, fill=0, dtype="int32")
    else:
        labels = np.zeros(dem.shape, dtype="int32")
    roads = gpd.GeoDataFrame(geometry=city.roads.geometry.values, index=city.roads.index, crs=city.crs)
    points = tuple([f"manhole:{i}" for i in junctions.index] + [f"road:{i}" for i in city.roads.index]
                   + [f"district:{i}" for i in city.districts.index])
    return SurfaceContext(dem=dem, node_ids=tuple(map(str, junctions.index)), node_xy=xy, roads=roads,
                          district_ids=tuple(map(str, city.districts.index)), district_labels=labels,
                          points=points, inlet_return_cms=float(inlet_return_cms),
                          node_radius_cells=int(node_radius_cells), min_depth_m=float(min_depth_m))


class SurfaceTracker:
    """Follows street water through a run: call it with each :class:`~hydraulics.run.FloodState`.

    Parameters
    ----------
    ctx : SurfaceContext
    offset_s : float
        Time of the run's start after the issue time, s (series are in seconds from issue).
    coupling_step_s, surface_step_s : float
        Engine publish interval and surface evaluation interval, s; ``surface_step_s``
        is a multiple of ``coupling_step_s``.
    initial_m3 : Mapping[str, float], optional
        Street water per manhole at the start (carried in the issue state), m3.
    snapshot_at_s : float, optional
        Keep the street water at this run time, s (the state saved with a hotstart).
    quiet_after_s, quiet_s : float, optional
        Quiet stop: from run time ``quiet_after_s`` (the member's last rain), once
        no manhole has overflowed for ``quiet_s`` seconds, raise
        :class:`~hydraulics.run.StopRun`; :meth:`drain_to` then finishes the
        series without the engine.  From then on the street water only drains
        back at ``inlet_return_cms``, which needs no hydraulics, so the series
        equals the full run's unless a manhole would overflow again later.
    """

    def __init__(self, ctx: SurfaceContext, *, offset_s: float, coupling_step_s: float, surface_step_s: float,
                 initial_m3=None, snapshot_at_s: float | None = None, quiet_after_s: float | None = None,
                 quiet_s: float = 1800.0) -> None:
        self.ctx = ctx
        self.quiet_after_s = quiet_after_s
        self.quiet_s = float(quiet_s)
        self._quiet_for = 0.0
        self.stopped_at_s: float | None = None
        self.snapshot_at_s = snapshot_at_s
        self.snapshot: dict[str, float] | None = None
        self.offset_s = float(offset_s)
        self.cpl = float(coupling_step_s)
        self.sstep = float(surface_step_s)
        self.volume = np.zeros(ctx.n_nodes)
        if initial_m3:
            pos = {n: k for k, n in enumerate(ctx.node_ids)}
            for nid, v in dict(initial_m3).items():
                if nid in pos:
                    self.volume[pos[nid]] = float(v)
        self._pos = None
        self._prev_cum = None
        self._prev_t = 0.0
        self.rows_point: list[np.ndarray] = []
        self.rows_t: list[np.ndarray] = []
        self.rows_d: list[np.ndarray] = []
        self.n_spreads = 0
        r, c = ctx.dem.index_of(ctx.node_xy[:, 0], ctx.node_xy[:, 1])
        self._node_rc = (np.asarray(r), np.asarray(c))
        self._n_roads = len(ctx.roads)

    def __call__(self, state) -> None:
        if self._pos is None:
            ids = pd.Index(state.node_ids)
            self._pos = ids.get_indexer(list(self.ctx.node_ids))
            self._prev_cum = np.zeros(self.ctx.n_nodes)
        t = round(state.elapsed_s / self.cpl) * self.cpl  # the nominal coupling time
        dt = t - self._prev_t
        if dt <= 0 and t > 0:
            return
        cum = np.asarray(state.flood_volume_m3)[self._pos]
        rate = np.asarray(state.flooding_rate_cms)[self._pos]
        added = np.clip(cum - self._prev_cum, 0.0, None)
        self._prev_cum = cum
        self._advance(t, dt, added, rate)
        if self.quiet_after_s is not None and t >= self.quiet_after_s:
            self._quiet_for = 0.0 if (added.any() or (rate > 0).any()) else self._quiet_for + dt
            if self._quiet_for >= self.quiet_s - 1e-9:
                from hydraulics.run import StopRun

                self.stopped_at_s = t
                raise StopRun

    def _advance(self, t: float, dt: float, added: np.ndarray, rate: np.ndarray | None) -> None:
        """Add the overflow of the step ending at run time ``t`` (s), drain the rest, record on the surface grid."""
        self.volume += added
        draining = (added <= 0) if rate is None else (rate <= 0) & (added <= 0)
        self.volume[draining] = np.maximum(self.volume[draining] - self.ctx.inlet_return_cms * dt, 0.0)
        self._prev_t = t
        if self.snapshot_at_s is not None and self.snapshot is None and t >= self.snapshot_at_s - 1e-6:
            self.snapshot = self.surface_m3()
        t_issue = self.offset_s + t
        if abs(t_issue / self.sstep - round(t_issue / self.sstep)) > 1e-9:
            return
        if self.volume.any():
            self._record(t_issue)

    def drain_to(self, end_s: float) -> None:
        """After a quiet stop: let the street water drain back, step by step, up to run time ``end_s`` (s)."""
        none = np.zeros(self.ctx.n_nodes)
        t = self._prev_t
        while t + self.cpl <= end_s + 1e-6 and self.volume.any():
            t += self.cpl
            self._advance(t, self.cpl, none, None)

    def _record(self, t_issue: float) -> None:
        from hydraulics.surface import road_max_depth, spread_flood

        ctx = self.ctx
        if not self.volume.any():
            return
        keep = self.volume > 0
        nodes = pd.DataFrame({"x_m": ctx.node_xy[keep, 0], "y_m": ctx.node_xy[keep, 1]},
                             index=np.asarray(ctx.node_ids)[keep])
        flood = spread_flood(ctx.dem, nodes, self.volume[keep])
        self.n_spreads += 1
        depth = flood.depth.values
        # Manhole: the deepest water on the cells around the lid.
        k = ctx.node_radius_cells
        if k > 0:
            from scipy.ndimage import maximum_filter

            around = maximum_filter(depth, size=2 * k + 1, mode="nearest")
        else:
            around = depth
        d_node = around[self._node_rc]
        d_road = road_max_depth(ctx.roads, flood.depth).fillna(0.0).to_numpy()
        n_d = len(ctx.district_ids)
        d_dist = np.zeros(n_d)
        if n_d:
            wet = depth > 0
            lab = ctx.district_labels[wet]
            has = lab > 0
            np.maximum.at(d_dist, lab[has] - 1, depth[wet][has])
        d = np.concatenate([d_node, d_road, d_dist])
        idx = np.flatnonzero(d >= ctx.min_depth_m)
        if len(idx):
            self.rows_point.append(idx.astype("int32"))
            self.rows_t.append(np.full(len(idx), t_issue, dtype="float64"))
            self.rows_d.append(d[idx].astype("float32"))

    def series(self) -> pd.DataFrame:
        """Sparse depth series: ``point`` (position in ``ctx.points``), ``t_s`` (from issue), ``depth_m``."""
        if not self.rows_point:
            return pd.DataFrame({"point": pd.Series([], dtype="int32"), "t_s": pd.Series([], dtype="float64"),
                                 "depth_m": pd.Series([], dtype="float32")})
        return pd.DataFrame({"point": np.concatenate(self.rows_point), "t_s": np.concatenate(self.rows_t),
                             "depth_m": np.concatenate(self.rows_d)})

    def surface_m3(self) -> dict[str, float]:
        """Street water per manhole now, m3 (only the wet ones)."""
        return {n: float(v) for n, v in zip(self.ctx.node_ids, self.volume) if v > 0}


@dataclass(frozen=True)
class MemberTask:
    """One SWMM run of an ensemble (or of the observed record).

    Parameters
    ----------
    index : int
        Position in the ensemble.
    name : str
        Member name (``m000`` ...).
    inp_text : str
        The model with this member's rain; its START is the run start.
    hotstart : bytes or None
        Engine state to start from (a SWMM hotstart file's bytes).
    offset_s : float
        Run start after the issue time, s.
    duration_s : float
        Run length, s.
    coupling_step_s, surface_step_s : float
        See :class:`SurfaceTracker`, s.
    initial_surface_m3 : dict
        Street water per manhole at the run start, m3.
    save_hotstart_at_s : float, optional
        Save the engine state this many seconds after the run start (returned as bytes).
    quiet_after_s : float, optional
        Quiet stop (see :class:`SurfaceTracker`): the member's last rain, s after the run start.
    quiet_s : float
        Overflow-free time that ends the engine run after ``quiet_after_s``, s.
    """

    index: int
    name: str
    inp_text: str
    hotstart: bytes | None
    offset_s: float
    duration_s: float
    coupling_step_s: float = 300.0
    surface_step_s: float = 300.0
    initial_surface_m3: dict = field(default_factory=dict)
    save_hotstart_at_s: float | None = None
    quiet_after_s: float | None = None
    quiet_s: float = 1800.0


@dataclass
class MemberResult:
    """What a member sends back: its sparse depth series, or why it failed.

    Parameters
    ----------
    index, name : int, str
        As in the task.
    status : str
        ``"ok"`` or ``"failed"``.
    error : str
        ``"ErrorType: message"`` of a failed member.
    series : pandas.DataFrame
        ``point`` (int), ``t_s`` (s from issue), ``depth_m`` (m); depth >= the context's ``min_depth_m``.
    wall_s : float
        Wall time of the member, s.
    hotstart : bytes or None
        Saved engine state (when the task asked for it).
    surface_m3 : dict
        Street water per manhole at the end of the run, m3.
    n_spreads : int
        Surface evaluations made.
    host : str
        Machine that ran it.
    stopped_at_s : float or None
        Run time of a quiet stop, s (None: the engine ran the whole window).
    """

    index: int
    name: str
    status: str
    error: str = ""
    series: pd.DataFrame | None = None
    wall_s: float = 0.0
    hotstart: bytes | None = None
    surface_m3: dict = field(default_factory=dict)
    n_spreads: int = 0
    host: str = ""
    stopped_at_s: float | None = None


def run_member(task: MemberTask, ctx: SurfaceContext) -> MemberResult:
    """Run one member and reduce it to surface depth per point; never raises for an engine failure.

    Parameters
    ----------
    task : MemberTask
    ctx : SurfaceContext

    Returns
    -------
    MemberResult
        ``status="failed"`` with the error text when the engine or the reduction failed.
    """
    import socket

    from hydraulics.run import RunOptions, run_swmm

    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="citytwin-member-"))
    try:
        hs = None
        if task.hotstart is not None:
            hs = work / "start.hsf"
            hs.write_bytes(task.hotstart)
        save_to = work / "save.hsf" if task.save_hotstart_at_s is not None else None
        tracker = SurfaceTracker(ctx, offset_s=task.offset_s, coupling_step_s=task.coupling_step_s,
                                 surface_step_s=task.surface_step_s, initial_m3=task.initial_surface_m3,
                                 snapshot_at_s=task.save_hotstart_at_s, quiet_after_s=task.quiet_after_s,
                                 quiet_s=task.quiet_s)
        duration = task.duration_s
        if task.save_hotstart_at_s is not None:
            # The engine saves at the first routing step at or after the time; run a little past it.
            duration = max(duration, task.save_hotstart_at_s + task.coupling_step_s)
        opts = RunOptions(coupling_step_s=task.coupling_step_s, duration_s=duration, hotstart=hs,
                          save_hotstart_at=task.save_hotstart_at_s, save_hotstart_to=save_to, base_dir=work)
        run_swmm(task.inp_text, options=opts, on_step=tracker)
        if tracker.stopped_at_s is not None:
            tracker.drain_to(task.duration_s)
        series = tracker.series()
        surface = tracker.surface_m3()
        if task.save_hotstart_at_s is not None:
            # Only what happened up to the saved state belongs to this run.
            series = series[series["t_s"] <= task.offset_s + task.save_hotstart_at_s + 1e-6].reset_index(drop=True)
            surface = tracker.snapshot if tracker.snapshot is not None else surface
        return MemberResult(task.index, task.name, "ok", series=series,
                            wall_s=time.perf_counter() - t0,
                            hotstart=save_to.read_bytes() if save_to is not None else None,
                            surface_m3=surface, n_spreads=tracker.n_spreads,
                            host=socket.gethostname(), stopped_at_s=tracker.stopped_at_s)
    except Exception as exc:  # noqa: BLE001 - a member failure is reported, never fatal to the ensemble
        msg = " ".join(f"{type(exc).__name__}: {exc}".split())
        if not hasattr(exc, "code") and not isinstance(exc, (ValueError, OSError)):
            msg += " | " + " ".join(traceback.format_exc().splitlines()[-3:])
        return MemberResult(task.index, task.name, "failed", error=msg[:2000], wall_s=time.perf_counter() - t0)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def summarize_series(series: pd.DataFrame, n_points: int, threshold_m: float, surface_step_s: float) -> pd.DataFrame:
    """Per point: max depth (m), first exceedance of ``threshold_m`` (s from issue) and time above it (s).

    Parameters
    ----------
    series : pandas.DataFrame
        Sparse member series (``point``, ``t_s``, ``depth_m``).
    n_points : int
        Number of points (rows of the result, in ``ctx.points`` order).
    threshold_m : float
        Depth threshold, m.
    surface_step_s : float
        Interval of the series, s (each exceeding sample counts for one interval).

    Returns
    -------
    pandas.DataFrame
        ``max_depth_m``, ``onset_s`` (NaN if never above), ``duration_s``.
    """
    out = pd.DataFrame({"max_depth_m": np.zeros(n_points), "onset_s": np.full(n_points, np.nan),
                        "duration_s": np.zeros(n_points)})
    if series is None or series.empty:
        return out
    g = series.groupby("point")
    mx = g["depth_m"].max()
    out.loc[mx.index, "max_depth_m"] = mx.to_numpy(dtype=float)
    # Compare in float64, as max_depth_m is: a float32 column against a Python float compares in
    # float32 (NumPy 2), and a depth equal to float32(threshold) would count in one and not the other.
    above = series[series["depth_m"].to_numpy(dtype="float64") > threshold_m]
    if len(above):
        ga = above.groupby("point")
        on = ga["t_s"].min()
        out.loc[on.index, "onset_s"] = on.to_numpy()
        out.loc[on.index, "duration_s"] = ga.size().to_numpy() * float(surface_step_s)
    return out
