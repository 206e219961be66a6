"""Dual drainage: any SWMM model coupled both ways with the 2D street surface on a DEM.

:func:`run_dual_drainage` runs a SWMM ``.inp`` (in an isolated temporary
copy, with its file names confined as :func:`hydraulics.run.run_swmm` does)
together with :class:`~hydraulics.surface2d.Surface2D` on a DEM.  Every
junction whose coordinates lie on a domain cell of the DEM is coupled to that
cell; the others are listed and left uncoupled (a warning), and a DEM that
covers no junction is refused.

One exchange step (``exchange_step_s``, default 5 s, at most 30 s)
------------------------------------------------------------------
1. Read the head of the coupled nodes (SWMM) and the depth on their cells (2D).
2. :class:`~hydraulics.exchange.Exchanger` gives the flow of each node from the
   orifice/weir equations, relaxed and damped, limited by the inlet capacity
   and by what the cell holds.
3. The 2D surface runs over the step with those flows (its own adaptive
   steps); it reports the volume each point actually moved.
4. SWMM runs over the same step (``swmm_stride``) with that very volume as a
   lateral inflow of each node (negative when the node spills onto the street).

The step is fixed and short rather than "every 2D step": the 2D step is
adaptive (sub-second when water is deep), SWMM keeps its own step, and a
stride per 2D step would cost a Python round trip per step for no gain in
agreement: on EA test 8B (``benchmarks/dual_drainage_ea8b.py``) J1's exchange
series has an NSE of 0.999 against itzi's, which exchanges at every SWMM
routing step, with a 5 s and with a 30 s exchange step alike.  5 s is the 2D
surface's default ``dt_max``; 30 s is the upper bound the issue allows.

Both at once
------------
Steps 3 and 4 are independent once the flows are fixed, so by default
(``overlap``) SWMM takes its stride in a second thread (through ctypes, which
releases the GIL: :func:`hydraulics.engine_batch.stride`) while this thread
steps the 2D surface.  SWMM then receives the flows asked for rather than the
volume the 2D actually moved.  Spills always move in full; a take the street
could not fully supply (its cell emptied during the step) leaves SWMM with a
little more than moved (``carry``, per node), repaid out of that node's later
takes (never as a negative inflow at a node that takes nothing, which could
ask the engine for water its node no longer holds).  The mass balance counts
the carry not yet repaid as ``in_transit_m3``, so the books stay exact.  On the demo city this runs the two engines side by side
on the machine's two cores.

Why the spill leaves the node as a negative inflow (not as SWMM flooding)
------------------------------------------------------------------------
With "flooding, ponding off", SWMM decides alone how much overflows (all the
volume above the rim) and throws it away: the water on the street could not
push back, and the orifice equation would be used one way only.  Instead the
spill is the orifice flow from the node's head to the street's water surface,
taken out of the node through the engine's API as a negative lateral inflow
(``node_set_total_inflow``, what pyswmm's ``Node.generated_inflow`` calls),
converted to the model's flow units.  itzi applies its exchange the same way.

For that, a coupled node's head must be able to rise above its rim without
the engine discarding water, so the run copy gives every coupled node a
**shaft**: the engine's ponding with a ponded area equal to the manhole's plan
area (default 1.167 m2, the engine's MIN_SURFAREA), i.e. the water column
standing in the manhole above the rim.  ``ALLOW_PONDING YES`` is appended to
the copy (a later ``[OPTIONS]`` row wins; no line of the user's file moves);
if the model had ponding off, the other nodes' ponded areas are set to 0 so
they still flood as before.  The model's own ponded areas at coupled nodes
are replaced: the 2D surface is their pond, the shaft holds a few m3 at most
and stays in SWMM's storage in the mass balance.  A sealed node (no storage
above the rim) was tried first: its head then jumps by metres between
exchange steps (EXTRAN surcharge has no storage) and the explicit exchange
flip-flops between spill and none every step.

With that shaft, itzi's relaxation (0.8) and reversal damping (0.5) keep the
explicit exchange smooth at 5 s and at 30 s (measured on EA 8B); an extra cap
of a spill at the node's net inflow plus its shaft's water is available
(``limit_spill``) but off by default, since it cut the spill short there.

Mass balance
------------
Kept over the whole system at every report step::

    SWMM storage + 2D volume + outfalls + SWMM flooding (uncoupled nodes) + losses + 2D boundary out
        = initial storage + SWMM inflows (runoff, dry weather, groundwater, RDII, external) + 2D rain/inflows

SWMM's inflow and outflow totals come from the engine
(``system_get_routing_totals``) with the exchange taken out of its external
inflow; its storage is the sum of the volumes of every node and link.  The
error therefore includes SWMM's own routing continuity error, the 2D error,
and any mismatch at the interface; ``swmm_error_m3`` (SWMM's books against
its own storage, the exchange counted as an inflow) and ``coupling_error_m3``
(the rest: 2D and interface) separate them.  The interface is exact by
construction: SWMM receives the volume the 2D surface actually moved.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time as _time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gisdata.errors import TwinError
from gisdata.paths import StagedDir
from hydraulics.engine_batch import read_node_results, set_node_inflows
from hydraulics.engine_batch import stride as engine_stride
from hydraulics.exchange import ExchangeParams, Exchanger, inlet_capacity_m3s
from hydraulics.inp import FT_TO_M, InpModel, replace_lines, resolve_file_refs
from hydraulics.river import reach_from_cells
from hydraulics.surface2d import Surface2D
from hydraulics.surface2d_io import Domain, read_domain, write_depth_tif
from hydraulics.urban_surface import UrbanSurface

RIVER_UPDATE_S = 5.0
"""Interval of the river's level (and the outfall stages it sets), s: every exchange step of a city run.
The engine books a change of an outfall's stage as an instant refill of the pipe behind it, with no
inflow recorded.  Measured on the demo city, 100-yr 3 h storm, 6 h (SWMM's own continuity error):
stages moved at every 300 s report -0.25 %, every 15 s -0.06 %; every 5 s with the outfalls starting
at the river's base level (:func:`_outfalls_at_base_stage`) -0.006 %."""
MAX_EXCHANGE_STEP_S = 30
"""Longest exchange step, s."""
FLOODED_M = 0.05
"""Depth from which a cell counts as flooded in the summary, m."""
_Q_TOL_M3S = 3e-7
"""The engine ignores lateral inflows below 1e-5 cfs (2.8e-7 m3/s); smaller exchange flows are not applied."""
_MAX_REPORTS = 200_000


class DualDrainageInputError(TwinError, ValueError):
    """Bad input for a coupled run (the message names the file or value)."""


class DualDrainageError(TwinError, RuntimeError):
    """The coupled run went wrong while running (the message says where)."""


class UncoupledNodesWarning(UserWarning):
    """Some junctions lie outside the DEM and stay uncoupled."""


class DatumWarning(UserWarning):
    """Coupled manhole rims lie far from the DEM's ground: the model and the DEM may not share a datum."""


DATUM_TOLERANCE_M = 1.0
"""A rim farther than this from the ground of its cell is reported (:class:`DatumWarning`), m."""


@dataclass(frozen=True)
class DualDrainageOptions:
    """How to run a coupled model.

    Parameters
    ----------
    manning : float
        Manning's n of the surface, s/m^(1/3) (0 < n <= 1).
    exchange_step_s : int
        Exchange step, whole seconds (1..30).
    report_step_s : float
        Interval of the exchange series and mass-balance rows, s (>= the exchange step).
    params : ExchangeParams
        Exchange coefficients and damping.
    manhole_area_m2 : float or None
        Plan area of every coupled manhole, m2; None: the model's MIN_SURFAREA (the
        area the engine itself gives a manhole; 12.566 ft2 = 1.167 m2 by default).
    inlets_per_node : int or None
        Gully inlets of each coupled node; with ``inlet_capacity_m3s``.
    inlet_capacity_m3s : float or None
        Capacity of one inlet, m3/s (> 0).  Both None: no limit beyond the weir/orifice equations.
    boundary : {"closed", "open"}
        Kind of the four edges of the grid.
    cfl, dt_max_s, theta, h_min_m : float
        2D solver settings (see :class:`~hydraulics.surface2d.Surface2D`).
    allowed_inputs : tuple of path
        Files outside the model's folder the model may read (see :class:`~hydraulics.run.RunOptions`).
    limit_spill : bool, default False
        Also cap a spill at the node's net inflow plus its shaft's water over the step.  Off by
        default: the shaft storage with relaxation and damping is already stable, and the cap (net
        inflow read at the end of the last routing step, when the head has already answered the
        previous spill) cuts the spill short (EA 8B: 3,631 instead of 3,874 m3, NSE against itzi
        0.978 instead of 0.999 at a 5 s step, 0.905 instead of 0.999 at 30 s).
    overlap : bool, default True
        Step SWMM in a second thread while the 2D surface steps (module docstring, "Both at once").
    river_backs_outfalls : bool, default True
        On a city's street surface with a river: at every river update, each outfall's stage is set to the
        river level at its nearest river cell (``outfall_set_stage``; the engine then treats it as a stage
        outfall), so a high river backs up into the sewer.  No effect without a river.
    drain_after_stop : bool, default True
        After ``stop_when`` ends the engine, the street water keeps draining into the inlets (2D alone,
        the nodes taken as free outfalls for it) up to the end of the run window; False: the run ends there.
    """

    manning: float = 0.03
    exchange_step_s: int = 5
    report_step_s: float = 60.0
    params: ExchangeParams = field(default_factory=ExchangeParams)
    manhole_area_m2: float | None = None
    inlets_per_node: int | None = None
    inlet_capacity_m3s: float | None = None
    boundary: str = "closed"
    cfl: float = 0.7
    dt_max_s: float = 5.0
    theta: float = 0.8
    h_min_m: float = 0.001
    allowed_inputs: tuple = ()
    limit_spill: bool = False
    overlap: bool = True
    river_backs_outfalls: bool = True
    drain_after_stop: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.exchange_step_s, (int, np.integer)) or float(self.exchange_step_s).is_integer()) \
                or not 1 <= self.exchange_step_s <= MAX_EXCHANGE_STEP_S:
            raise DualDrainageInputError(f"exchange step {self.exchange_step_s} s: expected a whole number of "
                                         f"seconds from 1 to {MAX_EXCHANGE_STEP_S}")
        object.__setattr__(self, "exchange_step_s", int(self.exchange_step_s))
        if not (math.isfinite(self.report_step_s) and self.report_step_s >= self.exchange_step_s):
            raise DualDrainageInputError(f"report step {self.report_step_s} s: expected >= the exchange step "
                                         f"({self.exchange_step_s} s)")
        if not (math.isfinite(self.manning) and 0 < self.manning <= 1):
            raise DualDrainageInputError(f"--manning {self.manning}: Manning's n must be > 0 and <= 1 s/m^(1/3)")
        if self.manhole_area_m2 is not None and not (math.isfinite(self.manhole_area_m2)
                                                     and 0 < self.manhole_area_m2 <= 1e4):
            raise DualDrainageInputError(f"manhole area {self.manhole_area_m2} m2: expected > 0 and <= 10000")
        if self.boundary not in ("closed", "open"):
            raise DualDrainageInputError(f"--boundary {self.boundary!r}: expected closed or open")
        inlet_capacity_m3s(self.inlets_per_node, self.inlet_capacity_m3s, 1)  # range check now


@dataclass(frozen=True)
class DualDrainageResults:
    """Results of a coupled run (SI units).

    Parameters
    ----------
    exchange_m3s : DataFrame
        Mean exchange flow of each coupled node over each report interval,
        m3/s, positive from the network onto the surface; indexed by
        ``time_s`` (end of the interval), one column per node ID.
    max_depth_m, final_depth_m : ndarray
        Largest and last surface depth per cell, m.
    mass_balance : DataFrame
        Cumulative volumes (m3) and the global error at every report time.
    nodes : DataFrame
        Coupled nodes: ``x``, ``y``, ``row``, ``col``, ``ground_m``, ``rim_m``,
        ``manhole_area_m2``, ``inlet_capacity_m3s``, ``to_surface_m3``, ``to_network_m3``.
    uncoupled : list of str
        Junctions left uncoupled (no coordinates, or outside the DEM's domain).
    summary : dict
        Headline figures (also ``summary.json``).
    node_depth_m : DataFrame, optional
        Water depth above the invert of every node of the model (coupled or
        not) at 0 and every report time, m; index ``time_s``, one column per node ID.
    saved : SavedState, optional
        The state saved at ``save_state_at_s`` (engine hotstart and street depths).
    stopped_at_s : float, optional
        Time at which ``stop_when`` ended the engine, s (None: it ran the whole window).
    """

    exchange_m3s: pd.DataFrame
    max_depth_m: np.ndarray
    final_depth_m: np.ndarray
    mass_balance: pd.DataFrame
    nodes: pd.DataFrame
    uncoupled: list
    summary: dict
    node_depth_m: pd.DataFrame | None = None
    saved: SavedState | None = None
    stopped_at_s: float | None = None

    def lines(self) -> list[str]:
        """The printed summary, with the coupled mass balance."""
        s = self.summary
        mb = self.mass_balance.iloc[-1]
        out = [
            f"model             {s['model']}",
            f"DEM               {s['dem']}: {s['rows']} x {s['cols']} cells of {s['cell_size_m']:g} m",
            f"coupled nodes     {s['coupled_nodes']} (uncoupled junctions: {len(self.uncoupled)})",
            f"exchange          {s['to_surface_m3']:,.1f} m3 to the surface, {s['to_network_m3']:,.1f} m3 back "
            f"to the network (step {s['exchange_step_s']} s)",
            f"max depth         {s['max_depth_m']:.3f} m; flooded area {s['flooded_area_m2']:,.0f} m2 "
            f"(depth >= {FLOODED_M} m)",
            (f"mass balance (m3) stored: SWMM {mb.swmm_storage_m3:,.1f} + surface {mb.surface_m3:,.1f}; "
             f"out: outfalls {mb.outfall_m3:,.1f} + flooding {mb.flooding_m3:,.1f} + losses {mb.losses_m3:,.1f} "
             f"+ edges {mb.boundary_out_m3:,.1f}"),
            (f"                  in: initial {mb.initial_m3:,.1f} + SWMM inflows {mb.swmm_inflow_m3:,.1f} "
             f"+ surface rain/inflow {mb.surface_in_m3:,.1f}"),
            f"                  error {s['mass_balance_error_m3']:.3e} m3 = {100 * s['mass_balance_error_rel']:.4f} % "
            f"of the volume in: SWMM's own {s['swmm_error_m3']:.3e} m3 (its routing continuity "
            f"{s['swmm_routing_error_pct']:.3f} %), coupling and 2D {s['coupling_error_m3']:.3e} m3",
            f"wall time         {s['wall_time_s']:.1f} s",
        ]
        return out


@dataclass(frozen=True, eq=False)
class SavedState:
    """A coupled model's state at one time: what a later run starts from.

    Parameters
    ----------
    time_s : float
        Run time of the state, s.
    hotstart : bytes
        The engine's hotstart file (node depths, link flows, runoff state).
    depth_m : ndarray
        Street water depth on every cell of the surface grid, m.
    """

    time_s: float
    hotstart: bytes
    depth_m: np.ndarray


@dataclass(frozen=True, eq=False)
class CouplingState:
    """What a ``stop_when`` callable sees at each report time.

    Parameters
    ----------
    t_s : float
        Run time, s.
    surface : Surface2D
        The live street surface (read only).
    last_spill_s : float
        Run time of the end of the last exchange step in which a node put water onto the street, s
        (-inf: none yet).
    stored_m3, previous_stored_m3 : float
        Street water now and at the previous report time, m3.
    """

    t_s: float
    surface: Surface2D
    last_spill_s: float
    stored_m3: float
    previous_stored_m3: float


@dataclass(frozen=True)
class QuietStop:
    """Stop the engine once the storm is over: a ``stop_when`` for :func:`run_dual_drainage`.

    From run time ``after_s`` (the last rain), once no node has spilled onto the
    street for ``quiet_s`` seconds and the street water is not growing, the
    sewer has nothing more to give the street; with ``drain_after_stop`` the
    street water then drains back into the inlets without the engine.

    Parameters
    ----------
    after_s : float
        Earliest stop, s (run time).
    quiet_s : float
        Spill-free time that ends the engine, s.
    """

    after_s: float
    quiet_s: float = 1800.0

    def __call__(self, state: CouplingState) -> bool:
        return (state.t_s >= self.after_s - 1e-9 and state.t_s - state.last_spill_s >= self.quiet_s - 1e-9
                and state.stored_m3 <= state.previous_stored_m3 * (1 + 1e-9) + 1e-9)


STATIC_DEPTH_M = 1e-4
"""After a stop, once no cell's depth changes by more than this over a report interval and nothing drains,
the street water is still (ponds without an inlet) and is held as it is to the end of the window, m."""

SNAP_CELLS = 2
"""On a city's street surface, a manhole whose cell is a building or the river is moved to the nearest
street cell within this many cells (its rasterised footprint can cover the pavement it sits on)."""


def _nearest_open_cell(outside: np.ndarray, r: int, c: int, radius: int) -> tuple[int, int] | None:
    rows, cols = outside.shape
    r0, r1, c0, c1 = max(r - radius, 0), min(r + radius + 1, rows), max(c - radius, 0), min(c + radius + 1, cols)
    free = np.argwhere(~outside[r0:r1, c0:c1])
    if free.size == 0:
        return None
    d2 = (free[:, 0] + r0 - r) ** 2 + (free[:, 1] + c0 - c) ** 2
    k = int(np.argmin(d2))
    return int(free[k, 0] + r0), int(free[k, 1] + c0)


def _junction_cells(parsed: InpModel, domain: Domain, display: str, *, snap_cells: int = 0):
    """(coupled frame indexed by node_id with x, y, row, col; list of uncoupled junction IDs)."""
    nodes = parsed.nodes()
    junctions = nodes.index[nodes["swmm_type"] == "junction"]
    if len(junctions) == 0:
        raise DualDrainageInputError(f"{display}: the model has no junction to couple")
    coords = parsed.coordinates()
    coords = coords[~coords.index.duplicated(keep="last")]
    xmin, ymin, xmax, ymax = domain.dem.bounds
    rows, uncoupled = [], []
    for nid in junctions:
        if nid not in coords.index:
            uncoupled.append(nid)
            continue
        x, y = float(coords.at[nid, "x"]), float(coords.at[nid, "y"])
        if not (math.isfinite(x) and math.isfinite(y) and xmin <= x < xmax and ymin < y <= ymax):
            uncoupled.append(nid)
            continue
        r, c = domain.dem.index_of(x, y)
        r, c = int(r), int(c)
        if domain.outside[r, c]:
            near = _nearest_open_cell(domain.outside, r, c, snap_cells) if snap_cells else None
            if near is None:
                uncoupled.append(nid)
                continue
            r, c = near
        rows.append((nid, x, y, r, c))
    if not rows:
        raise DualDrainageInputError(
            f"{domain.filled_from}: the DEM (x {xmin:.1f}..{xmax:.1f}, y {ymin:.1f}..{ymax:.1f}) covers none of "
            f"the {len(junctions)} junctions of {display}; check that both use the same CRS")
    coupled = pd.DataFrame(rows, columns=["node_id", "x", "y", "row", "col"]).set_index("node_id")
    return coupled, uncoupled


def _outfalls_on_reach(parsed: InpModel, reach, solver, ObjectType, NodeType, n_nodes: int, river_xy: np.ndarray):
    """Engine indices of the model's outfalls, their chainage on the reach (m) and their nearest river cell
    (position in ``river_xy``, the centres of the river cells)."""
    coords = parsed.coordinates()
    coords = coords[~coords.index.duplicated(keep="last")]
    idx, chain, near = [], [], []
    for k in range(n_nodes):
        if solver.node_get_type(k) != NodeType.OUTFALL:
            continue
        nid = solver.project_get_id(ObjectType.NODE, k)
        if nid in coords.index:
            x, y = float(coords.at[nid, "x"]), float(coords.at[nid, "y"])
            idx.append(k)
            chain.append(float(reach.chainage_of([x], [y])[0]))
            near.append(int(np.argmin((river_xy[:, 0] - x) ** 2 + (river_xy[:, 1] - y) ** 2)))
    return idx, np.array(chain), np.array(near, dtype=np.int64)


def _outfalls_at_base_stage(parsed: InpModel, reach, river_xy: np.ndarray) -> dict[int, str]:
    """Line changes that start every outfall on the reach as a FIXED outfall at the river's base level.

    The engine books a change of an outfall's stage as an instant refill of the pipe behind it (no
    inflow is recorded): starting at the base level puts that water in the initial storage, so only
    the river's rise during the run (set every :data:`RIVER_UPDATE_S`) is left to SWMM's own
    continuity.  The flap gate column is kept as written.
    """
    sec = parsed.section("OUTFALLS")
    if sec is None:
        return {}
    coords = parsed.coordinates()
    coords = coords[~coords.index.duplicated(keep="last")]
    base = reach.levels_m(np.zeros(0), np.zeros(0))
    to_m = parsed.length_to_m
    out: dict[int, str] = {}
    for row, line in zip(sec.rows, sec.lines):
        if line <= 0 or len(row) < 3 or row[0] not in coords.index:
            continue
        x, y = float(coords.at[row[0], "x"]), float(coords.at[row[0], "y"])
        cell = int(np.argmin((river_xy[:, 0] - x) ** 2 + (river_xy[:, 1] - y) ** 2))
        stage = max(float(base[cell]), float(row[1]) * to_m) / to_m  # the model's length unit
        kind = row[2].upper()
        n_data = {"FREE": 0, "NORMAL": 0, "FIXED": 1, "TIDAL": 1, "TIMESERIES": 1}.get(kind)
        if n_data is None:
            continue
        rest = row[3 + n_data:]  # [Gated] [RouteTo]
        out[line] = " ".join([row[0], row[1], "FIXED", f"{stage:.4f}", *rest])
    return out


def run_dual_drainage(model: str | Path | InpModel, dem: str | Path | Domain | UrbanSurface, *,
                      options: DualDrainageOptions | None = None,
                      on_progress: Callable[[float], None] | None = None,
                      on_report: Callable[[float, Surface2D], None] | None = None,
                      hotstart: str | Path | bytes | None = None, initial_depth_m: np.ndarray | None = None,
                      save_state_at_s: float | None = None, duration_s: float | None = None,
                      stop_when: Callable[[CouplingState], bool] | None = None) -> DualDrainageResults:
    """Run a SWMM model coupled both ways with the 2D surface on a DEM.

    Parameters
    ----------
    model : str, Path or InpModel
        The SWMM model (``.inp`` path, text or parsed).  Node coordinates must
        be in the DEM's CRS (metres); elevations in the DEM's datum.
    dem : str, Path, Domain or UrbanSurface
        Ground GeoTIFF (projected CRS, m), a domain read by
        :func:`~hydraulics.surface2d_io.read_domain`, or a city's street
        surface (:func:`~hydraulics.urban_surface.build_urban_surface`: its
        own Manning grid, buildings as walls, and its water bodies as a river
        whose level follows the outfalls' discharge, :mod:`hydraulics.river`;
        manholes on a building or river cell move to the nearest street cell
        within :data:`SNAP_CELLS`).
    options : DualDrainageOptions, optional
        Surface, exchange and reporting settings.
    on_progress : callable, optional
        Called with the fraction of simulated time done (0..1).
    on_report : callable, optional
        Called as ``on_report(t_s, surface)`` at 0 and at every report time, with the live
        :class:`~hydraulics.surface2d.Surface2D` (read its ``depth_m``; do not step it).  It may raise
        :class:`hydraulics.run.StopRun` to end the run there (no drain after it).
    hotstart : str, Path or bytes, optional
        Start the engine from this hotstart file (or its bytes), e.g. a :class:`SavedState`'s.
    initial_depth_m : ndarray, optional
        Street water on every cell at the start, m (the surface grid's shape).  Its volume and the
        hotstart's network storage are the run's initial storage in the mass balance.
    duration_s : float, optional
        Run this long from the model's start, s (default: to the model's END).
    save_state_at_s : float, optional
        Keep the state at the first exchange step ending at or after this run time, s
        (``results.saved``: the engine's hotstart and the street depths).
    stop_when : callable, optional
        Called at every report time with a :class:`CouplingState`; True ends the engine there (e.g.
        :class:`QuietStop`).  With ``options.drain_after_stop`` the street then drains alone to the end.

    Returns
    -------
    DualDrainageResults

    Raises
    ------
    DualDrainageInputError
        The DEM covers no junction, or an option is out of range.
    ExchangeInputError
        A manhole area or inlet capacity out of range.
    SwmmError, ModelPathError, InpParseError
        As :func:`hydraulics.run.run_swmm`.

    Warns
    -----
    UncoupledNodesWarning
        Junctions outside the DEM (named) stay uncoupled.
    """
    from swmm.toolkit import solver
    from swmm.toolkit.shared_enum import (
        LinkResult,
        NodeProperty,
        NodeResult,
        NodeType,
        ObjectType,
        SimOption,
        SimSetting,
        TimeProperty,
    )

    from swmm.toolkit.shared_enum import HotstartFile

    from hydraulics.run import (
        StopRun,
        _engine_error,
        _dt_parts,
        _engine_slot,
        _flow_factor,
        _load,
        _to_datetime,
        parsed_units_us,
        sha256_text,
    )

    opts = options or DualDrainageOptions()
    parsed, text, display = _load(model, None)
    urban = dem if isinstance(dem, UrbanSurface) else None
    if urban is not None:
        domain = Domain(urban.ground, urban.outside | urban.river, "city street surface")
    else:
        domain = dem if isinstance(dem, Domain) else read_domain(dem)
    coupled, uncoupled = _junction_cells(parsed, domain, display, snap_cells=SNAP_CELLS if urban is not None else 0)
    if uncoupled:
        shown = ", ".join(uncoupled[:10]) + (f" and {len(uncoupled) - 10} more" if len(uncoupled) > 10 else "")
        warnings.warn(f"{len(uncoupled)} of {len(uncoupled) + len(coupled)} junctions lie outside the DEM "
                      f"or have no coordinates and stay uncoupled: {shown}", UncoupledNodesWarning, stacklevel=2)
    n = len(coupled)
    rows_ = coupled["row"].to_numpy(np.int64)
    cols_ = coupled["col"].to_numpy(np.int64)
    ground = domain.dem.values[rows_, cols_].astype("float64")
    node_table = parsed.nodes().loc[coupled.index]
    rim_m = (node_table["invert_elev"] + node_table["max_depth"]).to_numpy(float) * parsed.length_to_m
    off = np.where(node_table["max_depth"].to_numpy(float) > 0, np.abs(rim_m - ground), 0.0)  # 0: crown decides
    if np.any(off > DATUM_TOLERANCE_M):
        k = int(np.argmax(off))
        warnings.warn(f"{int((off > DATUM_TOLERANCE_M).sum())} coupled node(s) have a rim more than "
                      f"{DATUM_TOLERANCE_M:g} m from the DEM ground (worst {coupled.index[k]}: rim {rim_m[k]:.2f} m, "
                      f"ground {ground[k]:.2f} m); check that the model and the DEM share a vertical datum",
                      DatumWarning, stacklevel=2)
    capacity = inlet_capacity_m3s(opts.inlets_per_node, opts.inlet_capacity_m3s, n)
    solver_opts = dict(boundary=opts.boundary, cfl=opts.cfl, dt_max_s=opts.dt_max_s, theta=opts.theta,
                       h_min_m=opts.h_min_m)
    reach = None
    if initial_depth_m is not None:
        h0 = np.asarray(initial_depth_m, dtype="float64")
        if h0.shape != domain.dem.shape:
            raise DualDrainageInputError(f"initial depth grid {h0.shape} does not fit the surface "
                                         f"{domain.dem.shape}")
        solver_opts["initial_depth_m"] = np.where(domain.outside, 0.0, h0)
    if urban is not None:
        surface = urban.surface2d(**solver_opts)
        if urban.river.sum() >= 2:
            reach = reach_from_cells(urban.river, urban.ground.values, urban.ground.transform, outside=urban.outside)
            river_cells = np.nonzero(urban.river)  # the order of reach.chainage_m
            tr = urban.ground.transform
            river_xy = np.column_stack([tr.c + (river_cells[1] + 0.5) * tr.a, tr.f + (river_cells[0] + 0.5) * tr.e])
    else:
        surface = Surface2D(domain.dem.values, cell_size_m=domain.dem.cell_size_m, manning=opts.manning,
                            outside=domain.outside, **solver_opts)

    work = Path(tempfile.mkdtemp(prefix="citytwin-dual-"))
    try:
        changes, _missing, _outs = resolve_file_refs(parsed, work, allowed_inputs=opts.allowed_inputs)
        if reach is not None and opts.river_backs_outfalls:
            changes.update(_outfalls_at_base_stage(parsed, reach, river_xy))
        inp, rpt, out = work / "model.inp", work / "model.rpt", work / "model.out"
        model_ponds = parsed.options.get("ALLOW_PONDING", "NO").upper().startswith("Y")
        # a later [OPTIONS] row wins in the engine; appended, so no line of the user's file moves
        inp.write_text(replace_lines(text, changes, ["[OPTIONS]", "ALLOW_PONDING YES"]), encoding=parsed.encoding,
                       errors="replace")
        if isinstance(hotstart, (bytes, bytearray)):
            (work / "start.hsf").write_bytes(bytes(hotstart))
            hotstart = work / "start.hsf"
        elif hotstart is not None and not Path(hotstart).is_file():
            raise DualDrainageInputError(f"{hotstart}: hotstart file not found")
        saved = None
        stopped_at = None
        t_wall = _time.perf_counter()
        with _engine_slot():
            opened = started = False
            pool = None  # the thread that steps SWMM while this one steps the 2D surface
            try:
                opened = True
                solver.swmm_open(str(inp), str(rpt), str(out))
                us = parsed_units_us(solver)
                length = FT_TO_M if us else 1.0
                vol = length ** 3
                flow = _flow_factor(solver)
                start = _to_datetime(solver.simulation_get_datetime(TimeProperty.START_DATE))
                if duration_s is not None:
                    if not (math.isfinite(duration_s) and duration_s > 0):
                        raise DualDrainageInputError(f"duration {duration_s} s: expected > 0")
                    solver.simulation_set_datetime(TimeProperty.END_DATE,
                                                   *_dt_parts(start + pd.Timedelta(seconds=float(duration_s))))
                end = _to_datetime(solver.simulation_get_datetime(TimeProperty.END_DATE))
                total_s = (end - start).total_seconds()
                if total_s <= 0:
                    raise DualDrainageInputError(f"{display}: run window is empty ({start} .. {end})")
                if total_s / opts.report_step_s > _MAX_REPORTS:
                    raise DualDrainageInputError(f"report step {opts.report_step_s:g} s gives more than "
                                                 f"{_MAX_REPORTS:,} rows over {total_s / 3600:g} h")
                n_nodes = solver.project_get_count(ObjectType.NODE)
                n_links = solver.project_get_count(ObjectType.LINK)
                all_node_ids = [solver.project_get_id(ObjectType.NODE, k) for k in range(n_nodes)]
                idx = np.array([solver.project_get_index(ObjectType.NODE, nid) for nid in coupled.index])
                for k in idx:
                    if solver.node_get_type(int(k)) != NodeType.JUNCTION:  # the .inp said junction; trust the engine
                        raise DualDrainageInputError(f"{display}: node {coupled.index[list(idx).index(k)]} is not "
                                                     "a junction in the engine")
                invert = np.array([solver.node_get_parameter(int(k), NodeProperty.INVERT_ELEVATION) for k in idx])
                full = np.array([solver.node_get_parameter(int(k), NodeProperty.FULL_DEPTH) for k in idx])
                if not solver.simulation_get_setting(SimOption.ALLOW_POND):  # the appended option must hold
                    raise DualDrainageInputError(f"{display}: the engine did not take ALLOW_PONDING YES for the "
                                                 "coupled manholes")
                # the engine's own manhole area, in the model's units (its default is 12.566 ft2 = 1.167 m2)
                min_area_m2 = float(solver.simulation_get_parameter(SimSetting.MIN_SURFACE_AREA)) * length ** 2
                area = np.full(n, opts.manhole_area_m2 if opts.manhole_area_m2 is not None else min_area_m2)
                coupled_set = set(int(k) for k in idx)
                if not model_ponds:  # the copy turned ponding on for the shafts only: others keep flooding
                    for k in range(n_nodes):
                        if k not in coupled_set:
                            solver.node_set_parameter(k, NodeProperty.POND_AREA, 0.0)
                for k, a in zip(idx, area):  # the shaft above the rim: plan area = the manhole's
                    solver.node_set_parameter(int(k), NodeProperty.POND_AREA, float(a) / length ** 2)
                exchanger = Exchanger(area, surface.cell_area_m2, capacity, opts.params)
                if reach is not None:
                    out_idx, out_chain, out_cell = _outfalls_on_reach(parsed, reach, solver, ObjectType, NodeType,
                                                                      n_nodes, river_xy)
                    level_grid = np.zeros(surface.shape)
                if hotstart is not None:
                    solver.swmm_hotstart(HotstartFile.USE, str(Path(hotstart).resolve()))
                solver.swmm_start(True)
                started = True

                node_volume = int(NodeResult.VOLUME.value)
                link_volume = int(LinkResult.VOLUME.value)
                head_key = int(NodeResult.HEAD.value)
                depth_key = int(NodeResult.DEPTH.value)
                inflow_key = int(NodeResult.TOTAL_INFLOW.value)
                outflow_key = int(NodeResult.TOTAL_OUTFLOW.value)
                full_m = full * length
                from swmm.toolkit import _solver

                get_node, get_link = _solver.node_get_result, _solver.link_get_result

                all_nodes = np.arange(n_nodes)

                def swmm_storage_m3() -> float:
                    return (float(read_node_results(all_nodes, node_volume).sum())
                            + sum(get_link(i, link_volume) for i in range(n_links))) * vol

                initial_swmm = swmm_storage_m3()
                initial_2d = surface.stored_volume_m3()
                step = opts.exchange_step_s
                report_every = max(1, int(round(opts.report_step_s / step)))
                river_every = max(1, int(round(RIVER_UPDATE_S / step)))
                ex_rows, ex_times, mb_rows = [], [], []
                acc = np.zeros(n)
                to_surface = np.zeros(n)
                to_network = np.zeros(n)
                q_set = np.zeros(n)  # the lateral inflow each coupled node holds in the engine, m3/s
                exchanged_cum = 0.0  # net volume the exchange put into SWMM, m3 (taken out of its ext. inflow)
                carry = np.zeros(n)  # per node: what SWMM received beyond what the 2D moved, not yet repaid, m3
                in_transit = 0.0  # their sum: water booked in SWMM and still on the street until the next step

                frozen = None  # after a stop: the engine's totals, storage and exchange at that time

                def balance_row(t: float) -> dict:
                    if frozen is None:
                        tot, sw_store, ex_cum, after = solver.system_get_routing_totals(), swmm_storage_m3(), \
                            exchanged_cum, 0.0
                    else:  # the drain after a stop puts water into a network the engine no longer routes
                        tot, sw_store, ex_cum = frozen
                        after = drained_after
                        sw_store = sw_store + after
                    mb = surface.mass_balance()
                    swmm_in = (tot.dwInflow + tot.wwInflow + tot.gwInflow + tot.iiInflow + tot.exInflow) * vol \
                        - ex_cum
                    losses = (tot.evapLoss + tot.seepLoss) * vol
                    initial = initial_swmm + initial_2d
                    surface_in = mb.rain_m3 + mb.inflow_m3
                    error = (sw_store + mb.stored_m3 + tot.outflow * vol + tot.flooding * vol + losses
                             + mb.boundary_out_m3 + mb.to_river_m3) - (initial + swmm_in + surface_in) - in_transit
                    vin = initial + max(swmm_in, 0.0) + surface_in
                    # the engine's own share: SWMM's books against its storage, the exchange counted as inflow
                    swmm_error = (sw_store + (tot.outflow + tot.flooding) * vol + losses) - (
                        initial_swmm + swmm_in + ex_cum + after)
                    return {"time_s": t, "swmm_storage_m3": sw_store, "surface_m3": mb.stored_m3,
                            "outfall_m3": tot.outflow * vol, "flooding_m3": tot.flooding * vol, "losses_m3": losses,
                            "boundary_out_m3": mb.boundary_out_m3, "bank_to_river_m3": mb.to_river_m3,
                            "initial_m3": initial, "swmm_inflow_m3": swmm_in,
                            "surface_in_m3": surface_in, "to_surface_m3": float(to_surface.sum()),
                            "to_network_m3": float(to_network.sum()), "in_transit_m3": in_transit, "error_m3": error,
                            "error_rel": error / vin if vin > 0 else 0.0, "swmm_error_m3": swmm_error,
                            "coupling_error_m3": error - swmm_error,
                            "coupling_error_rel": (error - swmm_error) / vin if vin > 0 else 0.0}

                stage_set = None

                def update_river() -> None:
                    # the river's level along the reach from the outfalls' current discharge
                    nonlocal stage_set
                    q_out = np.array([get_node(i, inflow_key) for i in out_idx], float) * flow
                    levels = reach.levels_m(out_chain, q_out)
                    level_grid[river_cells] = levels
                    surface.set_river_level(level_grid)
                    if opts.river_backs_outfalls and len(out_idx):
                        # the river's stage at each outfall (a stage below the outfall's critical depth
                        # leaves it a free outfall: the engine takes the higher of the two)
                        stage = levels[out_cell] / length
                        if stage_set is None or not np.array_equal(stage, stage_set):
                            for k_out, st in zip(out_idx, stage):
                                solver.outfall_set_stage(int(k_out), float(st))
                            stage_set = stage

                if reach is not None:
                    update_river()
                mb_rows.append(balance_row(0.0))
                node_depth_rows = [read_node_results(all_nodes, depth_key) * length]
                if on_report is not None:
                    on_report(0.0, surface)
                t, k_step, last_tick = 0.0, 0, 0.0
                last_spill = -math.inf
                stored_prev = surface.stored_volume_m3()
                save_at = None if save_state_at_s is None else float(save_state_at_s)
                drain = False
                drained_after = 0.0
                pool = ThreadPoolExecutor(1, thread_name_prefix="swmm") if opts.overlap else None
                while t < total_s - 1e-6:
                    dt = float(min(step, total_s - t))
                    head = read_node_results(idx, head_key) * length
                    spill_max = None
                    if opts.limit_spill:
                        node_depth = read_node_results(idx, depth_key) * length
                        net_in = (read_node_results(idx, inflow_key) - read_node_results(idx, outflow_key)) * flow
                        net_in += exchanger.flow_m3s  # what reaches the node besides the exchange itself
                        spill_max = net_in + np.maximum(node_depth - full_m, 0.0) * area / dt
                    depth = surface.depth_m[rows_, cols_]
                    q = exchanger.step(head, ground, depth, dt, spill_max_m3s=spill_max)
                    q[np.abs(q) < _Q_TOL_M3S] = 0.0
                    surface.set_exchange(rows_, cols_, q)
                    if pool is not None:
                        # SWMM steps in another thread with the flows asked for (plus last step's correction)
                        # while this one steps the 2D surface; see the module docstring, "Both at once"
                        # the carry is repaid out of later takes only: a negative inflow at a node that
                        # takes nothing could ask SWMM for water its node no longer holds
                        repay = np.minimum(carry / dt, np.maximum(-q, 0.0))
                        q_swmm = q + repay
                        changed = np.flatnonzero(q_swmm != q_set)  # the engine holds a rate until set again
                        set_node_inflows(idx[changed], -q_swmm[changed] / flow)
                        q_set[changed] = q_swmm[changed]
                        swmm_step = pool.submit(engine_stride, int(round(dt)))
                        surface.run_until(t + dt)
                        elapsed = swmm_step.result()
                        moved = surface.exchange_volume_m3()
                        exchanged_cum -= float(q_swmm.sum()) * dt
                        # a take the street could not fully supply: SWMM received more than moved (>= 0), m3
                        carry = carry - repay * dt + (moved - q * dt)
                        in_transit = float(carry.sum())
                        exchanger.applied(moved / dt)
                    else:
                        surface.run_until(t + dt)
                        moved = surface.exchange_volume_m3()
                        q_act = moved / dt
                        exchanger.applied(q_act)
                        changed = np.flatnonzero(q_act != q_set)  # the engine holds a rate until it is set again
                        set_node_inflows(idx[changed], -q_act[changed] / flow)
                        q_set[changed] = q_act[changed]
                        exchanged_cum -= float(moved.sum())
                        elapsed = engine_stride(int(round(dt)))
                    to_surface += np.maximum(moved, 0.0)
                    to_network += np.maximum(-moved, 0.0)
                    acc += moved
                    t = t + dt
                    k_step += 1
                    if (moved > 0).any():
                        last_spill = t
                    if elapsed > 0 and abs(elapsed * 86400.0 - t) > 0.01:
                        raise DualDrainageError(f"SWMM clock {elapsed * 86400.0:.3f} s out of step with the "
                                                     f"exchange clock {t:.3f} s")
                    if save_at is not None and t >= save_at - 1e-6:
                        solver.swmm_hotstart(HotstartFile.SAVE, str(work / "save.hsf"))
                        saved = (t, surface.depth_m.copy())  # the file is complete once the engine closes
                        save_at = None
                    done = t >= total_s - 1e-6
                    stop = False
                    if reach is not None and k_step % river_every == 0:
                        update_river()
                    if k_step % report_every == 0 or done:
                        span = t - (ex_times[-1] if ex_times else 0.0)
                        ex_rows.append(acc / span)
                        ex_times.append(t)
                        acc = np.zeros(n)
                        mb_rows.append(balance_row(t))
                        node_depth_rows.append(read_node_results(all_nodes, depth_key) * length)
                        if on_report is not None:
                            try:
                                on_report(t, surface)
                            except StopRun:
                                stop = True
                        stored = surface.stored_volume_m3()
                        if not stop and not done and stop_when is not None and stop_when(
                                CouplingState(t, surface, last_spill, stored, stored_prev)):
                            stop = drain = True
                        stored_prev = stored
                    if on_progress is not None and (_time.perf_counter() - last_tick > 0.2 or done):
                        last_tick = _time.perf_counter()
                        on_progress(min(t / total_s, 1.0))
                    if stop:
                        stopped_at = t
                        break
                    if elapsed <= 0:
                        break
                if save_at is not None:  # the state was asked for beyond where the engine ran
                    raise DualDrainageError(f"state at {save_state_at_s:g} s was never reached: the run ended "
                                            f"at {t:g} s")
                frozen = (solver.system_get_routing_totals(), swmm_storage_m3(), exchanged_cum)
                node_depth_last = node_depth_rows[-1]
                if drain and opts.drain_after_stop:
                    # the sewer gave the street nothing for a while: the street drains into the inlets alone
                    far = ground - 1e3  # heads far below the street: each node takes what its inlets can
                    prev_depth = surface.depth_m.copy()
                    still = False
                    while t < total_s - 1e-6:
                        dt = float(min(step, total_s - t))
                        if not still:
                            q = exchanger.step(far, ground, surface.depth_m[rows_, cols_], dt)
                            q[np.abs(q) < _Q_TOL_M3S] = 0.0
                            surface.set_exchange(rows_, cols_, q)
                            surface.run_until(t + dt)
                            moved = surface.exchange_volume_m3()
                            exchanger.applied(moved / dt)
                            drained_after -= float(moved.sum())
                            to_network += np.maximum(-moved, 0.0)
                            acc += moved
                        t += dt
                        k_step += 1
                        done = t >= total_s - 1e-6
                        if k_step % report_every == 0 or done:
                            span = t - ex_times[-1]
                            ex_rows.append(acc / span)
                            ex_times.append(t)
                            if not still:  # still water with nothing draining: held as it is from now on
                                still = (not acc.any()) and float(np.abs(surface.depth_m - prev_depth).max(
                                    initial=0.0)) < STATIC_DEPTH_M
                                prev_depth = surface.depth_m.copy()
                            acc = np.zeros(n)
                            mb_rows.append(balance_row(t))
                            node_depth_rows.append(node_depth_last)
                            if on_report is not None:
                                try:
                                    on_report(t, surface)
                                except StopRun:
                                    break
                        if on_progress is not None and (_time.perf_counter() - last_tick > 0.2 or done):
                            last_tick = _time.perf_counter()
                            on_progress(min(t / total_s, 1.0))
                totals = solver.system_get_routing_totals()
                routing_error_pct = float(totals.pctError)
                solver.swmm_end()
                started = False
            except TwinError:
                raise
            except Exception as exc:
                if "ERROR" in str(exc) or (rpt.exists() and "ERROR" in rpt.read_text(errors="replace")):
                    raise _engine_error(rpt, str(exc), display, parsed) from None
                raise
            finally:
                if pool is not None:
                    pool.shutdown(wait=True)  # no stride may still run when the engine ends
                if started:
                    try:
                        solver.swmm_end()
                    except Exception:  # noqa: BLE001, S110 - already failing
                        pass
                if opened:
                    solver.swmm_close()
        wall = _time.perf_counter() - t_wall
        if saved is not None:
            saved = SavedState(saved[0], (work / "save.hsf").read_bytes(), saved[1])
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ids = list(coupled.index)
    exchange = pd.DataFrame(np.array(ex_rows).reshape(len(ex_rows), n), index=pd.Index(ex_times, name="time_s"),
                            columns=pd.Index(ids, name="node_id"))
    mass = pd.DataFrame(mb_rows)
    nodes = coupled.copy()
    nodes["ground_m"] = ground
    nodes["rim_m"] = (invert + full) * length
    nodes["manhole_area_m2"] = area
    nodes["inlet_capacity_m3s"] = capacity
    nodes["to_surface_m3"] = to_surface
    nodes["to_network_m3"] = to_network
    last = mass.iloc[-1]
    rows, cols = surface.shape
    xmin, ymin, xmax, ymax = domain.dem.bounds
    summary = {
        "model": display, "input_sha256": sha256_text(text), "dem": str(domain.filled_from), "crs": domain.dem.crs,
        "rows": rows, "cols": cols, "cell_size_m": surface.cell_size_m,
        "bounds": [xmin, ymin, xmax, ymax], "domain_cells": int((~domain.outside).sum()),
        "manning": "per cell (city street surface)" if urban is not None else opts.manning,
        "boundary": opts.boundary, "exchange_step_s": opts.exchange_step_s,
        "to_river_m3": float(last["outfall_m3"] + last["bank_to_river_m3"]) if reach is not None else 0.0,
        "bank_to_river_m3": float(last["bank_to_river_m3"]),
        "exchange_params": asdict(opts.params), "start": start.isoformat(), "end": end.isoformat(),
        "coupled_nodes": n, "uncoupled_nodes": list(uncoupled),
        "to_surface_m3": float(to_surface.sum()), "to_network_m3": float(to_network.sum()),
        "max_depth_m": float(surface.max_depth_m.max()),
        "flooded_area_m2": float((surface.max_depth_m >= FLOODED_M).sum() * surface.cell_area_m2),
        "mass_balance_error_m3": float(last["error_m3"]), "mass_balance_error_rel": float(last["error_rel"]),
        "swmm_routing_error_pct": routing_error_pct, "swmm_error_m3": float(last["swmm_error_m3"]),
        "coupling_error_m3": float(last["coupling_error_m3"]), "coupling_error_rel": float(last["coupling_error_rel"]), "surface_error_rel": float(surface.mass_balance().error_rel),
        "surface_steps": surface.steps, "wall_time_s": wall,
        "hotstart_used": hotstart is not None, "stopped_at_s": stopped_at,
        "outfall_stage_from_river": bool(reach is not None and opts.river_backs_outfalls),
    }
    node_depth = pd.DataFrame(np.array(node_depth_rows), index=pd.Index([0.0] + ex_times, name="time_s"),
                              columns=pd.Index(all_node_ids, name="node_id"))
    return DualDrainageResults(exchange, surface.max_depth_m.copy(), surface.depth_m.copy(), mass, nodes,
                               list(uncoupled), summary, node_depth, saved, stopped_at)


def _write(results: DualDrainageResults, domain: Domain, folder: StagedDir) -> None:
    write_depth_tif(results.max_depth_m, domain, folder.path / "max_depth.tif")
    write_depth_tif(results.final_depth_m, domain, folder.path / "final_depth.tif")
    results.mass_balance.to_csv(folder.path / "mass_balance.csv", index=False, float_format="%.9g")
    results.exchange_m3s.to_csv(folder.path / "exchange.csv", float_format="%.6g")
    results.nodes.to_csv(folder.path / "nodes.csv", float_format="%.6f")
    (folder.path / "summary.json").write_text(json.dumps({**results.summary, "out": str(folder.out)}, indent=2))


def write_dual_drainage(results: DualDrainageResults, domain: Domain, out: str | Path) -> Path:
    """Write a coupled run's files into ``out`` (a new or empty folder), all or nothing.

    Files: ``max_depth.tif``, ``final_depth.tif`` (m, the DEM's CRS and
    transform), ``mass_balance.csv`` (cumulative m3 and the global error),
    ``exchange.csv`` (``time_s`` and one column per coupled node, m3/s,
    positive onto the surface), ``nodes.csv`` and ``summary.json``.
    """
    folder = StagedDir(out)
    try:
        _write(results, domain, folder)
    except BaseException:
        folder.abort()
        raise
    return folder.commit()


def run_dual_drainage_to(model: str | Path | InpModel, dem: str | Path, out: str | Path, *,
                         options: DualDrainageOptions | None = None,
                         on_progress: Callable[[float], None] | None = None) -> DualDrainageResults:
    """:func:`run_dual_drainage`, then :func:`write_dual_drainage` into ``out``.

    The DEM and the output folder are checked before the run; a run that
    fails leaves nothing at ``out`` (the files are staged in a hidden folder
    beside it and moved in at the end).  This is ``twin swmm run MODEL.inp
    --surface 2d --dem DEM.tif --out DIR``.
    """
    domain = read_domain(dem)
    folder = StagedDir(out)
    try:
        results = run_dual_drainage(model, domain, options=options, on_progress=on_progress)
        _write(results, domain, folder)
    except BaseException:
        folder.abort()
        raise
    folder.commit()
    return results
