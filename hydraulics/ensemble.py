"""One ensemble member: a coupled sewer + street run (1D-2D) from a saved state, reduced to depth per risk point.

A member is a plain function of plain data (:class:`MemberTask` in,
:class:`MemberResult` out), so it runs the same in this process, in a
``spawn`` process pool or on a Dask worker (:mod:`hydraulics.executors`).

The model
---------
Each member runs the city's SWMM model coupled both ways with its street
surface (:func:`hydraulics.dual_drainage.run_dual_drainage` on
:func:`hydraulics.urban_surface.build_urban_surface`): manholes spill onto the
2D street grid and the street drains back through the gully inlets; the river
is a boundary that takes what reaches it (never waterlogging) and backs up
into the outfalls.  A member starts from a saved state (the engine's hotstart
and the street water on the grid) and can save one (the shared dry lead-in).

Risk points: places a crew can drive to
---------------------------------------
Per point the member records the street depth every ``surface_step_s``
(sparse: depth >= ``min_depth_m``, in seconds from the issue time):

- **road** segment: its effective depth, the depth exceeded over at least
  20 m of its carriageway (:mod:`hydraulics.street_flood`: the same depth
  closes it to cars at 0.15 m and to everyone at 0.30 m);
- **sag** point (an underpass or low crossing: a road segment whose ``sag``
  column says so): the deepest water on its carriageway, where its low point is;
- **entrance** of a building: the deepest water in the street cells around
  its footprint (where its doors are);
- **district**: the depth exceeded on at least :data:`DISTRICT_MIN_ROAD_M` of
  its roads, i.e. "P(district depth > h)" is the probability that at least
  that length of its roads is flooded above ``h`` (the risk table adds its
  flooded road length and share of roads closed).

River cells are not street cells, and manholes, bridges and the river are
never risk points.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gisdata.city import CityTwin

POINT_KINDS = ("road", "sag", "entrance", "district")
"""Kinds of risk point (``sag`` points come from the street surface when the city has them)."""
DISTRICT_MIN_ROAD_M = 100.0
"""Length of a district's roads that must be flooded for the district to count, m."""
QUIET_S = 1800.0
"""Default spill-free time of the quiet stop, s."""


@dataclass(frozen=True, eq=False)
class SurfaceContext:
    """Everything a member needs besides its task: the street surface and the risk points on it.

    Build it with :func:`build_surface_context`; it pickles (sent once per worker).

    Parameters
    ----------
    surface : UrbanSurface
        The city's street surface (ground, buildings, river, carriageways).
    points : tuple of str
        Point IDs ``"road:R1"``, ``"sag:R7"``, ``"entrance:B1"``, ``"district:D1"``, in that order.
    point_xy : ndarray
        (N, 2) where a crew goes for each point, m (road midpoint, entrance, district centre).
    road_labels, road_k : ndarray
        Road (position) of each carriageway cell (-1 elsewhere) and the number of its cells that make
        :data:`~hydraulics.street_flood.MIN_LENGTH_M` of carriageway.
    sag_roads : ndarray of int
        Road (position) of each sag point.
    entrance_labels : ndarray
        Building (position) each street cell around a footprint belongs to (-1 elsewhere).
    entrance_ids : tuple of str
        Buildings with at least one street cell around them (their points).
    road_district : ndarray of int
        Position of each road's district (-1: none).
    road_length_m : ndarray
        Length of each road segment, m.
    district_ids : tuple of str
    n_nodes : int
        Manholes (junctions) of the sewer (for the resource estimate).
    min_depth_m : float
        Depths below this are not recorded, m.
    """

    surface: object
    points: tuple[str, ...]
    point_xy: np.ndarray
    road_labels: np.ndarray
    road_k: np.ndarray
    sag_roads: np.ndarray
    entrance_labels: np.ndarray
    entrance_ids: tuple[str, ...]
    road_district: np.ndarray
    road_length_m: np.ndarray
    district_ids: tuple[str, ...]
    n_nodes: int
    min_depth_m: float = 0.01

    @property
    def cell_size_m(self) -> float:
        """Cell size of the street surface, m."""
        return float(self.surface.ground.cell_size_m)

    @property
    def n_roads(self) -> int:
        return len(self.road_k)

    def depths(self, depth: np.ndarray) -> np.ndarray:
        """Depth at every point (``points`` order) for one street depth grid, m."""
        from hydraulics.street_flood import _kth_deepest

        d_road = _kth_deepest(depth, self.road_labels, self.road_k, self.n_roads)
        d_sag = np.zeros(0)
        if self.sag_roads.size:
            deepest = np.zeros(self.n_roads)
            on = self.road_labels >= 0
            np.maximum.at(deepest, self.road_labels[on], depth[on])
            d_sag = deepest[self.sag_roads]
        d_ent = np.zeros(len(self.entrance_ids))
        sel = self.entrance_labels >= 0
        if d_ent.size:
            np.maximum.at(d_ent, self.entrance_labels[sel], depth[sel])
        n_d = len(self.district_ids)
        d_dist = np.zeros(n_d)
        if n_d:
            d_dist = _district_depth(d_road, self.road_district, self.road_length_m, n_d)
        return np.concatenate([d_road, d_sag, d_ent, d_dist])

    def street_water(self, depth: np.ndarray) -> dict:
        """The street water of a depth grid as plain data (wet cells' centres and depths)."""
        r, c = np.nonzero(depth > 0)
        tr = self.surface.ground.transform
        return {"cell_size_m": self.cell_size_m, "x_m": (tr.c + (c + 0.5) * tr.a).tolist(),
                "y_m": (tr.f + (r + 0.5) * tr.e).tolist(), "depth_m": depth[r, c].tolist()}

    def depth_grid(self, water: dict | None) -> np.ndarray | None:
        """A :meth:`street_water` record on this surface's grid (volume kept; cells off the street dropped)."""
        if not water or not len(water.get("depth_m", ())):
            return None
        s = self.surface
        grid = np.zeros(s.shape)
        x, y = np.asarray(water["x_m"], float), np.asarray(water["y_m"], float)
        r, c = s.ground.index_of(x, y)
        r, c = np.asarray(r, int), np.asarray(c, int)
        ok = (r >= 0) & (r < s.shape[0]) & (c >= 0) & (c < s.shape[1])
        r, c = r[ok], c[ok]
        vol = np.asarray(water["depth_m"], float)[ok] * float(water["cell_size_m"]) ** 2
        np.add.at(grid, (r, c), vol / self.cell_size_m ** 2)
        return np.where(s.outside | s.river, 0.0, grid)


def _district_depth(d_road: np.ndarray, road_district: np.ndarray, length_m: np.ndarray, n_d: int) -> np.ndarray:
    """Per district, the road depth exceeded on at least :data:`DISTRICT_MIN_ROAD_M` of its roads (0 if none)."""
    out = np.zeros(n_d)
    sel = np.flatnonzero((road_district >= 0) & (d_road > 0))
    if sel.size == 0:
        return out
    dist, d, ln = road_district[sel], d_road[sel], length_m[sel]
    order = np.lexsort((-d, dist))
    dist, d, ln = dist[order], d[order], ln[order]
    starts = np.searchsorted(dist, np.arange(n_d))
    cum = np.cumsum(ln)
    for j in np.unique(dist):
        lo = starts[j]
        base = cum[lo - 1] if lo > 0 else 0.0
        hi = np.searchsorted(dist, j, side="right")
        k = np.searchsorted(cum[lo:hi] - base, DISTRICT_MIN_ROAD_M - 1e-9)
        if k < hi - lo:
            out[j] = d[lo + k]
    return out


def build_surface_context(city: CityTwin, *, cell_size_m: float | None = None,
                          min_depth_m: float = 0.01) -> SurfaceContext:
    """The street surface of ``city`` at ``cell_size_m`` (default the surface's) and its risk points."""
    from hydraulics.street_flood import _district_of, _entrance_labels, _road_labels
    from hydraulics.urban_surface import DEFAULT_CELL_M, LANE_WIDTH_M, build_urban_surface

    cell = float(cell_size_m or DEFAULT_CELL_M)
    surface = build_urban_surface(city, cell_size_m=cell)
    roads = city.roads
    road_lab = _road_labels(surface, roads, LANE_WIDTH_M)
    widths = roads["lanes"].clip(lower=1).to_numpy(float) * LANE_WIDTH_M
    from hydraulics.street_flood import MIN_LENGTH_M

    k = np.maximum(1, np.ceil(MIN_LENGTH_M * widths / cell ** 2)).astype(int)
    ent_full = _entrance_labels(surface, city.buildings)
    has = np.unique(ent_full[ent_full >= 0])
    remap = np.full(len(city.buildings) + 1, -1, dtype=np.int32)
    remap[has] = np.arange(len(has))
    ent_lab = np.where(ent_full >= 0, remap[np.clip(ent_full, 0, None)], -1).astype(np.int32)
    bld = city.buildings.iloc[has]
    mid = roads.geometry.interpolate(0.5, normalized=True)
    b_pt = bld.geometry.representative_point()
    d_pt = city.districts.geometry.representative_point()
    # sag points: the segments the city marks as underpasses or low crossings, placed at their lowest cell
    sag = roads["sag"].fillna("").astype(str).to_numpy() if "sag" in roads.columns else np.full(len(roads), "")
    sag_roads = np.flatnonzero(sag != "")
    sag_xy = np.zeros((len(sag_roads), 2))
    tr, ground = surface.ground.transform, surface.ground.values
    for j, k_road in enumerate(sag_roads):
        rr, cc = np.nonzero(road_lab == k_road)
        if rr.size:
            low = int(np.argmin(ground[rr, cc]))
            sag_xy[j] = (tr.c + (cc[low] + 0.5) * tr.a, tr.f + (rr[low] + 0.5) * tr.e)
        else:
            sag_xy[j] = (mid.x.iloc[k_road], mid.y.iloc[k_road])
    xy = np.concatenate([np.column_stack([mid.x, mid.y]).reshape(-1, 2), sag_xy,
                         np.column_stack([b_pt.x, b_pt.y]).reshape(-1, 2),
                         np.column_stack([d_pt.x, d_pt.y]).reshape(-1, 2)])
    points = tuple([f"road:{i}" for i in roads.index] + [f"sag:{roads.index[k]}" for k in sag_roads]
                   + [f"entrance:{i}" for i in bld.index] + [f"district:{i}" for i in city.districts.index])
    n_nodes = int((city.nodes["node_type"] == "junction").sum())
    return SurfaceContext(surface=surface, points=points, point_xy=np.asarray(xy, float), road_labels=road_lab,
                          road_k=k, sag_roads=sag_roads.astype(np.int64), entrance_labels=ent_lab, entrance_ids=tuple(map(str, bld.index)),
                          road_district=_district_of(roads, city), road_length_m=roads.geometry.length.to_numpy(float),
                          district_ids=tuple(map(str, city.districts.index)), n_nodes=n_nodes,
                          min_depth_m=float(min_depth_m))


class PointRecorder:
    """Records the depth at every point from the street surface of a run (an ``on_report`` callable).

    Parameters
    ----------
    ctx : SurfaceContext
    offset_s : float
        Run start after the issue time, s (series are in seconds from issue).
    surface_step_s : float
        Interval of the series, s.
    until_s : float, optional
        Record only up to this run time, s (a run that goes on past a saved state).
    """

    def __init__(self, ctx: SurfaceContext, *, offset_s: float, surface_step_s: float, until_s: float | None = None):
        self.ctx, self.offset_s, self.sstep, self.until_s = ctx, float(offset_s), float(surface_step_s), until_s
        self.rows_point: list[np.ndarray] = []
        self.rows_t: list[np.ndarray] = []
        self.rows_d: list[np.ndarray] = []
        self.n_reports = 0

    def __call__(self, t_s: float, surface) -> None:
        if self.until_s is not None and t_s > self.until_s + 1e-6:
            return
        t_issue = self.offset_s + t_s
        if t_s <= 0 or abs(t_issue / self.sstep - round(t_issue / self.sstep)) > 1e-6:
            return  # the start state belongs to the run before
        depth = surface.depth_m
        self.n_reports += 1
        if not depth.any():
            return
        d = self.ctx.depths(depth)
        idx = np.flatnonzero(d >= self.ctx.min_depth_m)
        if len(idx):
            self.rows_point.append(idx.astype("int32"))
            self.rows_t.append(np.full(len(idx), round(t_issue, 3), dtype="float64"))
            self.rows_d.append(d[idx].astype("float32"))

    def series(self) -> pd.DataFrame:
        """Sparse depth series: ``point`` (position in ``ctx.points``), ``t_s`` (from issue), ``depth_m``."""
        if not self.rows_point:
            return pd.DataFrame({"point": pd.Series([], dtype="int32"), "t_s": pd.Series([], dtype="float64"),
                                 "depth_m": pd.Series([], dtype="float32")})
        return pd.DataFrame({"point": np.concatenate(self.rows_point), "t_s": np.concatenate(self.rows_t),
                             "depth_m": np.concatenate(self.rows_d)})


@dataclass(frozen=True)
class MemberTask:
    """One coupled run of an ensemble (or of the observed record).

    Parameters
    ----------
    index : int
        Position in the ensemble.
    name : str
        Member name (``m000`` ...).
    inp_text : str
        The SWMM model with this member's rain; its START is the run start.
    hotstart : bytes or None
        Engine state to start from (a SWMM hotstart file's bytes).
    offset_s : float
        Run start after the issue time, s.
    duration_s : float
        Run length, s.
    coupling_step_s : float
        Kept for the settings' record (the coupled run exchanges every ``exchange_step_s``), s.
    surface_step_s : float
        Interval of the depth series (and of the quiet-stop checks), s.
    initial_street : dict
        Street water at the run start (:meth:`SurfaceContext.street_water`; empty: dry).
    save_hotstart_at_s : float, optional
        Save the state this many seconds after the run start (returned as bytes + street water).
    quiet_after_s : float, optional
        Quiet stop (:class:`~hydraulics.dual_drainage.QuietStop`): the member's last rain, s after the run start.
    quiet_s : float
        Spill-free time that ends the engine after ``quiet_after_s``, s.
    exchange_step_s : int
        Exchange step of the coupled run, s (1..30).
    """

    index: int
    name: str
    inp_text: str
    hotstart: bytes | None
    offset_s: float
    duration_s: float
    coupling_step_s: float = 300.0
    surface_step_s: float = 300.0
    initial_street: dict = field(default_factory=dict)
    save_hotstart_at_s: float | None = None
    quiet_after_s: float | None = None
    quiet_s: float = QUIET_S
    exchange_step_s: int = 5


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
    street : dict
        Street water at the saved state (or at the end), :meth:`SurfaceContext.street_water`.
    n_reports : int
        Street snapshots reduced to the points.
    host : str
        Machine that ran it.
    stopped_at_s : float or None
        Run time of a quiet stop, s (None: the engine ran the whole window).
    mass_balance_error_rel : float
        The coupled run's global mass-balance error over the volume in.
    """

    index: int
    name: str
    status: str
    error: str = ""
    series: pd.DataFrame | None = None
    wall_s: float = 0.0
    hotstart: bytes | None = None
    street: dict = field(default_factory=dict)
    n_reports: int = 0
    host: str = ""
    stopped_at_s: float | None = None
    mass_balance_error_rel: float = float("nan")


def member_options(task: MemberTask):
    """The coupling options of a member: a city run's (gully inlets at every manhole), its exchange and report steps."""
    from hydraulics.city_flood import city_options

    return city_options(exchange_step_s=int(task.exchange_step_s), report_step_s=float(task.surface_step_s))


def run_member(task: MemberTask, ctx: SurfaceContext) -> MemberResult:
    """Run one member on the coupled model and reduce it to depth per point; never raises for an engine failure.

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
    import warnings

    from hydraulics.dual_drainage import QuietStop, run_dual_drainage

    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="citytwin-member-"))
    try:
        rec = PointRecorder(ctx, offset_s=task.offset_s, surface_step_s=task.surface_step_s,
                            until_s=task.save_hotstart_at_s)
        stop = QuietStop(task.quiet_after_s, task.quiet_s) if task.quiet_after_s is not None else None
        duration = task.duration_s
        if task.save_hotstart_at_s is not None:
            duration = max(duration, task.save_hotstart_at_s)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # uncoupled junctions, datum: the city's own model, said once elsewhere
            res = run_dual_drainage(task.inp_text, ctx.surface, options=member_options(task), on_report=rec,
                                    hotstart=task.hotstart, initial_depth_m=ctx.depth_grid(task.initial_street),
                                    save_state_at_s=task.save_hotstart_at_s, duration_s=duration, stop_when=stop)
        saved = res.saved
        street = ctx.street_water(saved.depth_m if saved is not None else res.final_depth_m)
        return MemberResult(task.index, task.name, "ok", series=rec.series(), wall_s=time.perf_counter() - t0,
                            hotstart=saved.hotstart if saved is not None else None, street=street,
                            n_reports=rec.n_reports, host=socket.gethostname(), stopped_at_s=res.stopped_at_s,
                            mass_balance_error_rel=float(res.summary["mass_balance_error_rel"]))
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
