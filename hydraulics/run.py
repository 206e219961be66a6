"""Run a SWMM model: isolated copy, stepping with a coupling callback, hotstart, results.

:func:`run_swmm` is the simulator of the twin: model in, :class:`HydraulicResults`
out.  It always runs a copy in a fresh temporary folder (never writing beside
the user's file), hands a :class:`FloodState` snapshot in SI units to an
optional callback every coupling step (300 s by default), can save a hotstart
file at a chosen time and start from one.  :func:`run_swmm_bare` is the plain
engine (``swmm.toolkit.solver.swmm_run``) for reference tests and benchmarks.

One simulation per process
--------------------------
The SWMM engine keeps its project in C globals: it is not re-entrant and not
thread-safe.  A second run while one is active raises :class:`EngineBusyError`
(as pyswmm raises ``MultiSimulationError``).  Run ensembles and sweeps as
separate processes (``multiprocessing`` with the ``spawn`` context, or Dask
workers with one thread).  Runs one after another in the same process are fine.

Why the engine is stepped routing step by routing step
------------------------------------------------------
pyswmm's ``Simulation.step_advance`` calls ``swmm_stride``, which clips the
routing step at every stride boundary.  For variable-step dynamic-wave models
that changes the engine's step sequence, so results differ from ``swmm_run``
(measured: Example3 and SWMMExtCntrlModel ``.out`` files differ).  We therefore
drive the engine through ``swmm.toolkit.solver`` (pyswmm's own backend) with
one ``swmm_step`` per routing step and publish state on the first routing step
at or after each coupling time.  The Python cost is one call and one compare
per routing step; results are bit-identical to ``swmm_run`` (tested).

State is read in bulk only at coupling steps (RECIPES: reading every node at
every routing step costs more than the engine).  Node depths are read every
coupling step; flooding rates and flood volumes only when the engine's system
flooding total changed since the last read, which is exact when every overflow
is a system loss (a node that overflows adds to that total) and skips the reads
in dry weather.  It is not exact with ``ALLOW_PONDING YES``: overflow at a node
with a ponded area stays in the system (SWMM's ``node_getSystemOutflow`` counts
overflow as flooding loss only while the node's volume is at most its full
volume), so the system flooding total does not move while the node's flood
volume grows.  Models where any node can pond are therefore read at every
coupling step.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import sys
import tempfile
import time as _time
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import repeat
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import numpy as np
import pandas as pd

from gisdata.errors import TwinError
from gisdata.limits import (
    MAX_COUPLING_STEP_S,
    MAX_RAIN_SPAN_DAYS,
    MAX_ROUTING_STEPS,
    MIN_COUPLING_STEP_S,
    LimitError,
    check_range,
)
from gisdata.paths import atomic_path
from hydraulics.errors import HotstartError, MissingModelFileError, SwmmError
from hydraulics.inp import (
    FLOW_TO_CMS,
    FT_TO_M,
    InpModel,
    check_model_values,
    parse_inp,
    read_inp,
    replace_lines,
    resolve_file_refs,
)

_SWMM_EPOCH = datetime(1899, 12, 30)
_FT3_TO_M3 = FT_TO_M ** 3
_FLOW_NAMES = ("CFS", "GPM", "MGD", "CMS", "LPS", "MLD")
_ACTIVE = False  # the one engine of this process is busy


class EngineBusyError(TwinError, RuntimeError):
    """A SWMM simulation is already running in this process (the engine is not re-entrant)."""


class StopRun(Exception):
    """Raise from an ``on_step`` callback to end a run early and cleanly.

    The engine stops stepping and closes as at the end of its window
    (statistics, continuity and a requested hotstart already saved are
    kept); ``metadata["stopped_early_at"]`` records the simulated time.
    """


class _CallbackError(Exception):
    """Carries an exception raised by the caller's ``on_step`` out of the engine loop."""

    def __init__(self, original: BaseException):
        super().__init__(repr(original))
        self.original = original


# ---------------------------------------------------------------------------- options and results


@dataclass(frozen=True)
class RunOptions:
    """How to run a model.

    Parameters
    ----------
    coupling_step_s : float
        Interval between :class:`FloodState` snapshots, in seconds (default 300).
    start, end : datetime, optional
        Override the model's START and END date-times.
    duration_s : float, optional
        Run length in seconds from the (possibly overridden) start; excludes ``end``.
    save_hotstart_at : datetime or float, optional
        When to save a hotstart: a date-time, or seconds after the start.  It is
        saved at the first routing step at or after that time (the engine's
        step sequence is never altered); the actual time is in
        ``results.metadata["hotstart_saved_at"]``.
    save_hotstart_to : str or Path, optional
        Where to write that hotstart file (required with ``save_hotstart_at``).
    hotstart : str or Path, optional
        Hotstart file to start from.  Set ``start`` to the time it was saved.
        The engine's hotstart restores node depths, link flows and runoff
        state; it does not restore control-rule state (Example3's wet-well
        pump restarts off, ~3 m apart afterwards), and for the kinematic-wave
        Example1 it restarts every node at full depth (the same through pyswmm).
        Dynamic-wave models without rules continue within 1e-3 m (tested).
    progress : bool
        Show a tqdm progress bar (off in the library, on in the CLI).
    keep_dir : str or Path, optional
        Copy the run's ``.inp`` copy, ``.rpt``, ``.out`` and side outputs here.
    on_error : {"raise", "warn"}
        ``"raise"`` (default) raises :class:`~hydraulics.errors.SwmmError`;
        ``"warn"`` returns results with ``status="failed"`` and the error attached.
    base_dir : str or Path, optional
        Folder that relative file names resolve against when the model is given
        as text (default: the current directory).
    allowed_inputs : tuple of str or Path
        Files (or folders) outside the model's folder that the model may read,
        because the user named them explicitly (``twin swmm run --allow-read``).
        Any other path outside the model's folder is refused
        (:class:`~hydraulics.errors.ModelPathError`); outputs always go to the
        run folder.
    """

    coupling_step_s: float = 300.0
    start: datetime | None = None
    end: datetime | None = None
    duration_s: float | None = None
    save_hotstart_at: datetime | float | None = None
    save_hotstart_to: str | Path | None = None
    hotstart: str | Path | None = None
    progress: bool = False
    keep_dir: str | Path | None = None
    on_error: Literal["raise", "warn"] = "raise"
    base_dir: str | Path | None = None
    allowed_inputs: tuple[str | Path, ...] = ()

    def __post_init__(self) -> None:
        check_range("coupling_step_s", self.coupling_step_s, MIN_COUPLING_STEP_S, MAX_COUPLING_STEP_S, "s")
        if self.duration_s is not None:
            check_range("duration_s", self.duration_s, 0, MAX_RAIN_SPAN_DAYS * 86400.0, "s", lo_inclusive=False)
        object.__setattr__(self, "allowed_inputs", tuple(self.allowed_inputs))
        if self.duration_s is not None and self.end is not None:
            raise TwinError("give either end or duration_s, not both")
        if self.on_error not in ("raise", "warn"):
            raise TwinError(f"on_error={self.on_error!r}; expected 'raise' or 'warn'")
        if self.save_hotstart_at is not None and self.save_hotstart_to is None:
            raise HotstartError("save_hotstart_at needs save_hotstart_to (the hotstart file to write)")


@dataclass(frozen=True)
class FloodState:
    """What the sewer looks like at one coupling step, in SI units.

    Arrays are aligned with ``node_ids`` and read-only.

    Parameters
    ----------
    time : datetime
        Simulated date-time.
    elapsed_s : float
        Seconds since the start of the run.
    node_ids : pandas.Index
        Node IDs.
    depth_m : numpy.ndarray
        Water depth above the node invert, m.
    flooding_rate_cms : numpy.ndarray
        Rate of water leaving the network at the node (overflow), m3/s.
    ponded_volume_m3 : numpy.ndarray
        Water ponded above the node (engine ponding, ``ALLOW_PONDING YES``), m3.
        Zero when ponding is off: the engine then discards flood water, whose
        running total is ``flood_volume_m3``.
    flood_volume_m3 : numpy.ndarray
        Volume that has overflowed at the node since the start, m3.
    """

    time: datetime
    elapsed_s: float
    node_ids: pd.Index
    depth_m: np.ndarray
    flooding_rate_cms: np.ndarray
    ponded_volume_m3: np.ndarray
    flood_volume_m3: np.ndarray

    def to_frame(self) -> pd.DataFrame:
        """The state as a DataFrame indexed by ``node_id``."""
        return pd.DataFrame(
            {"depth_m": self.depth_m, "flooding_rate_cms": self.flooding_rate_cms,
             "ponded_volume_m3": self.ponded_volume_m3, "flood_volume_m3": self.flood_volume_m3},
            index=self.node_ids,
        )


@dataclass(frozen=True)
class HydraulicResults:
    """Results of one SWMM run, in SI units.

    Parameters
    ----------
    node : Mapping[str, DataFrame]
        ``depth_m``, ``head_m``, ``flooding_cms``, ``volume_m3``, ``inflow_cms``:
        indexed by time (the model's report step), node IDs as columns.
    link : Mapping[str, DataFrame]
        ``flow_cms``, ``depth_m``, ``capacity`` (fraction full, 0-1).
    subcatchment : Mapping[str, DataFrame]
        ``runoff_cms``.
    system : DataFrame
        System totals per report step: ``flooding_cms``, ``outfall_flow_cms``, ``runoff_cms``.
    flood_summary : DataFrame
        One row per node that flooded at all (as the engine's Node Flooding
        Summary): ``hours_flooded`` (h), ``peak_rate_cms`` (m3/s), ``volume_m3`` (m3).
    outfalls : DataFrame
        Per outfall: ``volume_m3`` (total outflow), ``peak_flow_cms``.
    continuity : Mapping[str, float]
        ``runoff_error_pct``, ``flow_routing_error_pct`` and, where known,
        ``flooding_m3``, ``outflow_m3``.
    metadata : Mapping[str, str]
        Input hash, engine and package versions, times, options.
    status : str
        ``"complete"`` or ``"failed"`` (only with ``on_error="warn"``).
    error : SwmmError or None
        The engine error of a failed run.
    files : Mapping[str, Path]
        Kept files (``inp``, ``rpt``, ``out``, hotstart) when ``keep_dir`` was given.

    Only elements the model reports (its ``[REPORT]`` section; all by default)
    appear in the time-series tables.
    """

    node: Mapping[str, pd.DataFrame]
    link: Mapping[str, pd.DataFrame]
    subcatchment: Mapping[str, pd.DataFrame]
    system: pd.DataFrame
    flood_summary: pd.DataFrame
    outfalls: pd.DataFrame
    continuity: Mapping[str, float]
    metadata: Mapping[str, str]
    status: str = "complete"
    error: SwmmError | None = None
    files: Mapping[str, Path] = field(default_factory=dict)

    @property
    def flooded_nodes(self) -> list[str]:
        """IDs of nodes that flooded at all."""
        return list(self.flood_summary.index)

    @property
    def total_flood_volume_m3(self) -> float:
        """Sum of flood volumes over all nodes, m3."""
        return float(self.flood_summary["volume_m3"].sum())

    def summary(self) -> dict:
        """Headline figures for printing."""
        depth = self.node.get("depth_m")
        max_depth = float(np.nanmax(depth.to_numpy())) if depth is not None and depth.size else float("nan")
        return {
            "status": self.status,
            "flooded_nodes": len(self.flood_summary),
            "total_flood_volume_m3": self.total_flood_volume_m3,
            "max_node_depth_m": max_depth,
            "runoff_error_pct": self.continuity.get("runoff_error_pct", float("nan")),
            "flow_routing_error_pct": self.continuity.get("flow_routing_error_pct", float("nan")),
        }


# ---------------------------------------------------------------------------- helpers


def _load(model: str | Path | InpModel, base_dir: str | Path | None) -> tuple[InpModel, str, str]:
    """(model, text to run, name for messages) from a path, text or InpModel."""
    if isinstance(model, InpModel):
        text = model.to_text()
        parsed = parse_inp(text, source=model.source, encoding=model.encoding)
        return parsed, text, str(model.source or "<model>")
    if isinstance(model, str) and ("\n" in model or model.lstrip().startswith("[")):
        src = Path(base_dir) / "<text>.inp" if base_dir is not None else None
        parsed = parse_inp(model, source=src)
        parsed.source = src
        return parsed, model, "<text>"
    parsed = read_inp(model)
    return parsed, parsed.text or parsed.to_text(), str(model)


def _to_datetime(parts) -> datetime:
    return datetime(*[int(v) for v in parts])


def _dt_parts(t: datetime) -> tuple[int, int, int, int, int, int]:
    return t.year, t.month, t.day, t.hour, t.minute, t.second


@contextmanager
def _engine_slot():
    """Claim the process's single SWMM engine (and tell pyswmm it is taken)."""
    global _ACTIVE
    state = getattr(sys.modules.get("pyswmm.simulation"), "_sim_state_instance", None)
    if _ACTIVE or (state is not None and state.sim_is_instantiated):
        raise EngineBusyError(
            "a SWMM simulation is already running in this process; the engine is not re-entrant: "
            "run simulations one after another, or in separate processes"
        )
    _ACTIVE = True
    if state is not None:
        state.sim_is_instantiated = True  # so pyswmm refuses to open a second engine meanwhile
    try:
        yield
    finally:
        _ACTIVE = False
        if state is not None:
            state.sim_is_instantiated = False


def _engine_error(rpt: Path, exc_text: str, display: str, model: InpModel) -> SwmmError:
    text = rpt.read_text(errors="replace") if rpt.exists() else ""
    err = SwmmError.from_engine(text if "ERROR" in text else exc_text, file=display, stage="run")
    if err.line is not None:
        # The engine abbreviates section names ([INFIL]); name the section as the user's file does.
        engine_section = err.section
        for s in model.sections:
            if 0 < s.header_line < err.line:
                err.section = s.name
        if engine_section and err.section != engine_section:
            err.args = (err.args[0].replace(f"[{engine_section}]", f"[{err.section}]"),)
    if isinstance(err, MissingModelFileError) and err.line is None:
        # The engine names the file but not the line; point at the row that names it.
        for ref in model.file_refs():
            if Path(ref.path.replace("\\", "/")).name and Path(ref.path.replace("\\", "/")).name in err.engine_message:
                err.section, err.line = ref.section, ref.line
                err.args = (f"{err.args[0]} (named at line {ref.line} of [{ref.section}])",)
                break
    return err


def sha256_text(text: str) -> str:
    """SHA-256 of a model's text (UTF-8), as stored in results metadata."""
    return hashlib.sha256(text.encode("utf-8", errors="replace")).hexdigest()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("swmm-toolkit", "pyswmm", "citytwin"):
        try:
            out[f"version.{pkg}"] = version(pkg)
        except PackageNotFoundError:
            out[f"version.{pkg}"] = "not installed"
    return out


# ---------------------------------------------------------------------------- binary output

_OUT_MAGIC = 516114522


def out_periods(out_path: str | Path) -> int:
    """Number of reporting periods in a SWMM ``.out`` file, read from its epilogue.

    Raises
    ------
    SwmmError
        If the file is not a complete SWMM binary output (bad magic numbers).
    """
    import struct

    data = Path(out_path).read_bytes()
    if len(data) < 24:
        raise SwmmError(f"{out_path}: SWMM binary output is truncated ({len(data)} bytes)")
    head = struct.unpack("<i", data[:4])[0]
    n_periods, err, tail = struct.unpack("<3i", data[-12:])
    if head != _OUT_MAGIC or tail != _OUT_MAGIC:
        raise SwmmError(f"{out_path}: not a complete SWMM binary output (magic numbers {head}, {tail})")
    if err:
        raise SwmmError(f"{out_path}: the engine recorded error {err} in its binary output", code=err)
    return n_periods


def read_out(out_path: str | Path) -> tuple[dict, dict, dict, pd.DataFrame]:
    """Read a SWMM binary ``.out`` file into SI DataFrames.

    Parameters
    ----------
    out_path : str or Path
        The ``.out`` file.

    Returns
    -------
    node, link, subcatchment : dict of DataFrame
        Time series indexed by report time, element IDs as columns (see
        :class:`HydraulicResults`).
    system : DataFrame
        System series: ``flooding_cms``, ``outfall_flow_cms``, ``runoff_cms``.
    """
    from swmm.toolkit import output
    from swmm.toolkit.shared_enum import (
        ElementType,
        LinkAttribute,
        NodeAttribute,
        SubcatchAttribute,
        SystemAttribute,
        Time,
    )

    n_periods = out_periods(out_path)
    if n_periods == 0:  # the toolkit's reader crashes (double free) on a file without periods
        return {}, {}, {}, pd.DataFrame(index=pd.DatetimeIndex([], name="time"))
    h = output.init()
    try:
        output.open(h, str(out_path))
        n_sub, n_node, n_link = output.get_proj_size(h)[:3]
        units = output.get_units(h)
        flow = FLOW_TO_CMS[_FLOW_NAMES[units[1]]]
        length = 1.0 if units[0] == 1 else FT_TO_M
        volume = 1.0 if units[0] == 1 else _FT3_TO_M3
        n = output.get_times(h, Time.NUM_PERIODS)
        index = pd.DatetimeIndex(
            [(_SWMM_EPOCH + timedelta(days=output.get_date_time(h, p))) for p in range(n)], name="time"
        ).round("s")
        names = {kind: [output.get_elem_name(h, kind, i) for i in range(cnt)]
                 for kind, cnt in ((ElementType.SUBCATCH, n_sub), (ElementType.NODE, n_node), (ElementType.LINK, n_link))}

        def table(getter, attr, ids, factor):
            arr = np.array([getter(h, p, attr) for p in range(n)], dtype="float64").reshape(n, len(ids))
            return pd.DataFrame(arr * factor, index=index, columns=pd.Index(ids, name="id"))

        nodes = names[ElementType.NODE]
        node = {
            "depth_m": table(output.get_node_attribute, NodeAttribute.INVERT_DEPTH, nodes, length),
            "head_m": table(output.get_node_attribute, NodeAttribute.HYDRAULIC_HEAD, nodes, length),
            "flooding_cms": table(output.get_node_attribute, NodeAttribute.FLOODING_LOSSES, nodes, flow),
            "volume_m3": table(output.get_node_attribute, NodeAttribute.PONDED_VOLUME, nodes, volume),
            "inflow_cms": table(output.get_node_attribute, NodeAttribute.TOTAL_INFLOW, nodes, flow),
        }
        links = names[ElementType.LINK]
        link = {
            "flow_cms": table(output.get_link_attribute, LinkAttribute.FLOW_RATE, links, flow),
            "depth_m": table(output.get_link_attribute, LinkAttribute.FLOW_DEPTH, links, length),
            "capacity": table(output.get_link_attribute, LinkAttribute.CAPACITY, links, 1.0),
        }
        subs = names[ElementType.SUBCATCH]
        sub = {"runoff_cms": table(output.get_subcatch_attribute, SubcatchAttribute.RUNOFF_RATE, subs, flow)}
        system = pd.DataFrame(
            {
                "flooding_cms": [output.get_system_attribute(h, p, SystemAttribute.FLOOD_LOSSES)[0] * flow for p in range(n)],
                "outfall_flow_cms": [output.get_system_attribute(h, p, SystemAttribute.OUTFALL_FLOWS)[0] * flow for p in range(n)],
                "runoff_cms": [output.get_system_attribute(h, p, SystemAttribute.RUNOFF_FLOW)[0] * flow for p in range(n)],
            },
            index=index,
        )
    except Exception as exc:  # the toolkit raises plain Exception for unreadable files
        raise SwmmError(f"{out_path}: cannot read SWMM binary output ({exc})") from exc
    finally:
        output.close(h)
    return node, link, sub, system


# ---------------------------------------------------------------------------- report file


def _section(lines: list[str], title: str) -> list[str]:
    for i, ln in enumerate(lines):
        if ln.strip() == title:
            out = []
            for ln2 in lines[i + 1:]:
                if ln2.strip().startswith("****") and out and any(o.strip() for o in out[2:]):
                    break
                out.append(ln2)
            return out
    return []


def parse_report(rpt: str | Path) -> dict:
    """Read the summary tables of a SWMM ``.rpt`` file (SI units).

    Parameters
    ----------
    rpt : str or Path
        Report file.

    Returns
    -------
    dict
        ``flood_summary`` (DataFrame: hours_flooded, peak_rate_cms, volume_m3),
        ``outfalls`` (DataFrame: volume_m3, peak_flow_cms),
        ``continuity`` (runoff_error_pct, flow_routing_error_pct, flooding_m3, outflow_m3),
        ``errors`` (list of EngineMessage).  Volumes carry the report's print
        precision (1000 m3 or 10^6 l / 10^6 gal with 3 decimals).
    """
    from hydraulics.errors import parse_engine_errors

    text = Path(rpt).read_text(errors="replace")
    lines = text.splitlines()
    flow_units = "CFS"
    for ln in lines[:400]:
        if ln.strip().startswith("Flow Units"):
            flow_units = ln.split()[-1].upper()
    us = flow_units not in ("CMS", "LPS", "MLD")
    # Report volume units: 10^6 gal (US) or 10^6 ltr (SI).
    mvol = 3785.411784 if us else 1000.0
    flow = FLOW_TO_CMS.get(flow_units, 1.0)

    flood_rows = []
    for ln in _section(lines, "Node Flooding Summary"):
        parts = ln.split()
        if len(parts) >= 6 and _is_num(parts[1]) and _is_num(parts[2]) and ":" in parts[4]:
            flood_rows.append((parts[0], float(parts[1]), float(parts[2]) * flow, float(parts[5]) * mvol))
    flood = _table(flood_rows, ["hours_flooded", "peak_rate_cms", "volume_m3"])

    out_rows = []
    for ln in _section(lines, "Outfall Loading Summary"):
        parts = ln.split()
        if len(parts) >= 5 and parts[0] != "System" and all(_is_num(p) for p in parts[1:5]):
            out_rows.append((parts[0], float(parts[4]) * mvol, float(parts[3]) * flow))
    outfalls = _table(out_rows, ["volume_m3", "peak_flow_cms"])

    cont: dict[str, float] = {}
    for title, key in (("Runoff Quantity Continuity", "runoff_error_pct"), ("Flow Routing Continuity", "flow_routing_error_pct")):
        for ln in lines[_line_of(lines, title):]:
            if ln.strip().startswith("Continuity Error (%)"):
                cont[key] = float(ln.split()[-1])
                break
            if title.startswith("Flow") and ln.strip().startswith("Flooding Loss"):
                cont["flooding_m3"] = float(ln.split()[-1]) * mvol
            if title.startswith("Flow") and ln.strip().startswith("External Outflow"):
                cont["outflow_m3"] = float(ln.split()[-1]) * mvol
    return {"flood_summary": flood, "outfalls": outfalls, "continuity": cont, "errors": parse_engine_errors(text)}


def _line_of(lines: list[str], title: str) -> int:
    for i, ln in enumerate(lines):
        if title in ln:
            return i
    return len(lines)


def _is_num(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


# ---------------------------------------------------------------------------- the runner


def run_swmm(
    model: str | Path | InpModel,
    *,
    options: RunOptions | None = None,
    on_step: Callable[[FloodState], None] | None = None,
) -> HydraulicResults:
    """Run a SWMM model in an isolated temporary copy.

    Parameters
    ----------
    model : str, Path or InpModel
        A ``.inp`` path, ``.inp`` text, or a parsed model.
    options : RunOptions, optional
        Coupling step, time window, hotstart, progress bar, kept files.
    on_step : callable, optional
        Called with a :class:`FloodState` every ``options.coupling_step_s``
        seconds of simulated time and once at the end.  It may raise
        :class:`StopRun` to end the run there.

    Returns
    -------
    HydraulicResults
        Time series from the engine's binary output (report step), flood and
        outfall summaries and continuity from the engine's own statistics.

    Raises
    ------
    SwmmError
        The engine refused the model or failed (code, message, file, section, line).
    MissingModelFileError
        A rain, time-series or hotstart file the model needs is missing.
    InpParseError, InpFileNotFoundError
        The file is not a readable ``.inp``.
    EngineBusyError
        Another simulation is running in this process.

    Examples
    --------
    >>> from pathlib import Path
    >>> ex1 = Path(__file__).resolve().parents[2] / "shared/data/swmm/epa_examples/Example1.inp"
    >>> res = run_swmm(ex1)
    >>> res.flooded_nodes
    ['10']
    """
    from swmm.toolkit import solver
    from swmm.toolkit.shared_enum import HotstartFile, NodeProperty, NodeResult, NodeType, ObjectType, TimeProperty

    opts = options or RunOptions()
    parsed, text, display = _load(model, opts.base_dir)
    check_model_values(parsed)  # an infinite elevation crashes the engine (segfault) rather than failing
    if opts.hotstart is not None and not Path(opts.hotstart).is_file():
        raise MissingModelFileError(f"{opts.hotstart}: hotstart file not found", file=str(opts.hotstart))

    work = Path(tempfile.mkdtemp(prefix="citytwin-swmm-"))
    try:
        changes, _missing, side_outputs = resolve_file_refs(parsed, work, allowed_inputs=opts.allowed_inputs)
        inp = work / "model.inp"
        rpt, out = work / "model.rpt", work / "model.out"
        inp.write_text(replace_lines(text, changes), encoding=parsed.encoding, errors="replace")
        hs_tmp = work / "save.hsf"
        meta = {"input_file": display, "input_sha256": sha256_text(text), **_versions(),
                "coupling_step_s": str(opts.coupling_step_s), "flow_units": parsed.flow_units}
        t_wall = _time.perf_counter()
        with _engine_slot():
            try:
                allow_ponding = parsed.options.get("ALLOW_PONDING", "NO").upper().startswith("Y")
                run = _run_engine(solver, inp, rpt, out, opts, on_step, hs_tmp, meta, allow_ponding,
                                  HotstartFile, NodeProperty, NodeResult, NodeType, ObjectType, TimeProperty)
            except TwinError:
                raise
            except _CallbackError as exc:  # the caller's own error: hand it back untouched
                raise exc.original from None
            except Exception as exc:  # noqa: BLE001 - the toolkit raises plain Exception("ERROR nnn ...")
                err = _engine_error(rpt, str(exc), display, parsed)
                if opts.on_error == "warn":
                    return _failed_results(err, meta)
                raise err from None
        meta["wall_time_s"] = f"{_time.perf_counter() - t_wall:.3f}"
        rep = parse_report(rpt)
        if rep["errors"]:
            err = SwmmError.from_engine(rpt.read_text(errors="replace"), file=display)
            if opts.on_error == "warn":
                return _failed_results(err, meta)
            raise err
        node, link, sub, system = read_out(out)
        files: dict[str, Path] = {}
        if opts.save_hotstart_at is not None:
            if not hs_tmp.exists():
                raise HotstartError(f"hotstart time {opts.save_hotstart_at} was never reached; the run ended first")
            target = Path(opts.save_hotstart_to)
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:  # unpredictable, exclusive temp name: no planted symlink is followed
                shutil.copyfile(hs_tmp, tmp)
            files["hotstart"] = target
        if opts.keep_dir is not None:
            keep = Path(opts.keep_dir)
            keep.mkdir(parents=True, exist_ok=True)
            for name, src in (("inp", inp), ("rpt", rpt), ("out", out)):
                files[name] = Path(shutil.copy2(src, keep / src.name))
            for written in side_outputs.values():
                if written.exists():
                    files[written.name] = Path(shutil.copy2(written, keep / written.name))
        return HydraulicResults(
            node=MappingProxyType(node), link=MappingProxyType(link), subcatchment=MappingProxyType(sub),
            system=system, flood_summary=run["flood_summary"], outfalls=run["outfalls"],
            continuity=MappingProxyType(run["continuity"]), metadata=MappingProxyType(meta),
            files=MappingProxyType(files),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _table(rows: list[tuple], columns: list[str]) -> pd.DataFrame:
    """A summary table indexed by ``node_id`` with float columns, even when empty."""
    df = pd.DataFrame(rows, columns=["node_id", *columns]).set_index("node_id")
    df.index = df.index.astype(object)
    return df.astype("float64")


def _failed_results(err: SwmmError, meta: dict) -> HydraulicResults:
    empty = pd.DataFrame()
    return HydraulicResults(
        node=MappingProxyType({}), link=MappingProxyType({}), subcatchment=MappingProxyType({}), system=empty,
        flood_summary=_table([], ["hours_flooded", "peak_rate_cms", "volume_m3"]),
        outfalls=_table([], ["volume_m3", "peak_flow_cms"]), continuity=MappingProxyType({}),
        metadata=MappingProxyType(meta), status="failed", error=err,
    )


def _run_engine(solver, inp, rpt, out, opts, on_step, hs_tmp, meta, allow_ponding,
                HotstartFile, NodeProperty, NodeResult, NodeType, ObjectType, TimeProperty) -> dict:
    """Open, step, collect statistics and close the engine. Returns summaries in SI."""
    from swmm.toolkit.shared_enum import SimSetting

    opened = started = False
    try:
        opened = True  # close even after a failed open, as swmm_run does: it flushes the report
        solver.swmm_open(str(inp), str(rpt), str(out))
        start = _to_datetime(solver.simulation_get_datetime(TimeProperty.START_DATE))
        if opts.start is not None:
            start = opts.start
            solver.simulation_set_datetime(TimeProperty.START_DATE, *_dt_parts(start))
            report = _to_datetime(solver.simulation_get_datetime(TimeProperty.REPORT_DATE))
            if report < start:
                solver.simulation_set_datetime(TimeProperty.REPORT_DATE, *_dt_parts(start))
        if opts.duration_s is not None:
            solver.simulation_set_datetime(TimeProperty.END_DATE, *_dt_parts(start + timedelta(seconds=opts.duration_s)))
        elif opts.end is not None:
            solver.simulation_set_datetime(TimeProperty.END_DATE, *_dt_parts(opts.end))
        end = _to_datetime(solver.simulation_get_datetime(TimeProperty.END_DATE))
        total_s = (end - start).total_seconds()
        if total_s <= 0:
            raise SwmmError(f"run window is empty: start {start} is not before end {end}")
        route_step_s = float(solver.simulation_get_parameter(SimSetting.ROUTE_STEP))
        n_route = total_s / route_step_s if route_step_s > 0 else math.inf
        if not n_route <= MAX_ROUTING_STEPS:  # a one-line edit of END_DATE or ROUTING_STEP must not run for days
            raise LimitError(f"{meta.get('input_file', 'model')}: {start} .. {end} at ROUTING_STEP {route_step_s:g} s "
                             f"is {n_route:,.0f} routing steps; expected at most {MAX_ROUTING_STEPS:,} "
                             "(MAX_ROUTING_STEPS): shorten the run or lengthen the step")
        meta.update(start=start.isoformat(), end=end.isoformat())
        if opts.hotstart is not None:
            solver.swmm_hotstart(HotstartFile.USE, str(Path(opts.hotstart).resolve()))
            meta["hotstart_used"] = str(opts.hotstart)
        save_at_s = None
        if opts.save_hotstart_at is not None:
            sa = opts.save_hotstart_at
            save_at_s = (sa - start).total_seconds() if isinstance(sa, datetime) else float(sa)
            if not 0 < save_at_s <= total_s:
                raise HotstartError(f"save_hotstart_at={sa} is outside the run ({start} .. {end})")

        n_nodes = solver.project_get_count(ObjectType.NODE)
        ids = pd.Index([solver.project_get_id(ObjectType.NODE, i) for i in range(n_nodes)], name="node_id")
        types = [solver.node_get_type(i) for i in range(n_nodes)]
        us = parsed_units_us(solver)
        length = FT_TO_M if us else 1.0
        vol = _FT3_TO_M3 if us else 1.0
        flow = _flow_factor(solver)
        full_depth = np.array([solver.node_get_parameter(i, NodeProperty.FULL_DEPTH) for i in range(n_nodes)])
        pond_area = np.array([solver.node_get_parameter(i, NodeProperty.POND_AREA) for i in range(n_nodes)])
        if not allow_ponding:  # the engine ignores ponded areas unless ALLOW_PONDING is YES
            pond_area = np.zeros(n_nodes)
        not_storage = np.array([t != NodeType.STORAGE for t in types])
        # Ponded overflow is not a system flooding loss, so the "total changed" shortcut
        # below would miss it: read flooding at every publish when any node can pond.
        can_pond = bool((pond_area > 0).any())

        solver.swmm_start(True)
        started = True
        bar = None
        if opts.progress:
            from tqdm import tqdm

            bar = tqdm(total=round(total_s), unit="s", desc="SWMM", leave=False)

        step_days = opts.coupling_step_s / 86400.0
        next_pub = step_days
        save_days = None if save_at_s is None else save_at_s / 86400.0
        swmm_step = solver.swmm_step
        # The SWIG function itself with plain ints: the Python wrapper and the aenum
        # conversion cost more than the C call (profiled on the 1,054-node demo city).
        from swmm.toolkit import _solver

        get_result = _solver.node_get_result
        depth_key, flood_key = int(NodeResult.DEPTH.value), int(NodeResult.FLOOD.value)
        last_flood_total = 0.0
        flooding = np.zeros(n_nodes)
        flood_vol = np.zeros(n_nodes)
        last_pub_days = 0.0
        n_steps = 0
        publish_s = 0.0  # reading state + the callback, reported in metadata for profiling

        def publish(elapsed_days: float) -> None:
            nonlocal last_flood_total, flooding, flood_vol
            depth = np.fromiter(map(get_result, range(n_nodes), repeat(depth_key, n_nodes)), float, n_nodes) * length
            total = solver.system_get_routing_totals().flooding
            if can_pond or total != last_flood_total or flooding.any():
                flooding = np.fromiter(map(get_result, range(n_nodes), repeat(flood_key, n_nodes)), float, n_nodes) * flow
                flood_vol = np.fromiter((solver.node_get_stats(i).volFlooded for i in range(n_nodes)), float, n_nodes) * vol
                last_flood_total = total
            ponded = np.where(not_storage & (pond_area > 0), np.clip(depth - full_depth * length, 0, None) * pond_area * length * length, 0.0)
            for arr in (depth, flooding, ponded, flood_vol):
                arr.setflags(write=False)
            state = FloodState(start + timedelta(days=elapsed_days), elapsed_days * 86400.0, ids,
                               depth, flooding, ponded, flood_vol)
            try:
                on_step(state)
            except (TwinError, StopRun):
                raise
            except Exception as exc:  # not an engine error: run_swmm tells them apart and re-raises it
                raise _CallbackError(exc) from exc

        while True:
            elapsed = swmm_step()
            if elapsed <= 0.0:
                break
            n_steps += 1
            if save_days is not None and elapsed >= save_days - 1e-12:
                solver.swmm_hotstart(HotstartFile.SAVE, str(hs_tmp))
                meta["hotstart_saved_at"] = (start + timedelta(days=elapsed)).isoformat()
                save_days = None
            if elapsed >= next_pub - 1e-12:
                if on_step is not None:
                    t_pub = _time.perf_counter()
                    try:
                        publish(elapsed)
                    except StopRun:
                        meta["stopped_early_at"] = (start + timedelta(days=elapsed)).isoformat()
                        last_pub_days = total_s / 86400.0  # no closing publish: the caller asked to stop
                        break
                    finally:
                        publish_s += _time.perf_counter() - t_pub
                if bar is not None:
                    bar.update(round(elapsed * 86400.0) - bar.n)
                last_pub_days = elapsed
                next_pub = (math.floor(elapsed / step_days + 1e-9) + 1) * step_days
        if on_step is not None and total_s / 86400.0 - last_pub_days > 1e-9:
            publish(total_s / 86400.0)
        if bar is not None:
            bar.update(round(total_s) - bar.n)
            bar.close()
        meta["routing_steps"] = str(n_steps)
        meta["state_publish_s"] = f"{publish_s:.3f}"

        # Statistics live until swmm_end: read them now, exactly as the engine's report will.
        flood_rows, out_rows = [], []
        for i in range(n_nodes):
            if types[i] == NodeType.OUTFALL:
                st = solver.outfall_get_stats(i)
                out_rows.append((ids[i], solver.node_get_total_inflow(i) * vol, st.maxFlow * flow))
                continue
            st = solver.node_get_stats(i)
            if st.timeFlooded > 0:  # the engine's Node Flooding Summary lists any flooding at all
                flood_rows.append((ids[i], st.timeFlooded, st.maxOverflow * flow, st.volFlooded * vol))
        totals = solver.system_get_routing_totals()
        runoff = solver.system_get_runoff_totals()
        continuity = {"flow_routing_error_pct": float(totals.pctError), "runoff_error_pct": float(runoff.pctError),
                      "flooding_m3": float(totals.flooding) * vol, "outflow_m3": float(totals.outflow) * vol}
        solver.swmm_end()
        started = False
        # No swmm_report(): like swmm_run, which reports time series into the .rpt only
        # when there is no binary output file (it would write every node's series as text).
        return {
            "flood_summary": _table(flood_rows, ["hours_flooded", "peak_rate_cms", "volume_m3"]),
            "outfalls": _table(out_rows, ["volume_m3", "peak_flow_cms"]),
            "continuity": continuity,
        }
    finally:
        if started:
            try:
                solver.swmm_end()
            except Exception:  # noqa: BLE001, S110 - already failing; the original error is what matters
                pass
        if opened:
            solver.swmm_close()


def parsed_units_us(solver) -> bool:
    """True if the open model uses US units (the engine's unit system)."""
    from swmm.toolkit.shared_enum import UnitProperty

    return solver.simulation_get_unit(UnitProperty.SYSTEM_UNIT) == 0


def _flow_factor(solver) -> float:
    from swmm.toolkit.shared_enum import UnitProperty

    return FLOW_TO_CMS[_FLOW_NAMES[solver.simulation_get_unit(UnitProperty.FLOW_UNIT)]]


# ---------------------------------------------------------------------------- bare engine


@contextmanager
def _quiet_stdout():
    """Silence the engine's console progress (C-level stdout) for the duration."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


@dataclass(frozen=True)
class BareRun:
    """Files and wall time of a bare ``swmm_run``.

    Parameters
    ----------
    inp, rpt, out : Path
        Files in the run folder.
    wall_time_s : float
        Engine wall time in seconds.
    """

    inp: Path
    rpt: Path
    out: Path
    wall_time_s: float

    def results(self) -> HydraulicResults:
        """Results from the bare run's ``.out`` and ``.rpt`` (summaries at report precision)."""
        rep = parse_report(self.rpt)
        node, link, sub, system = read_out(self.out)
        return HydraulicResults(
            node=MappingProxyType(node), link=MappingProxyType(link), subcatchment=MappingProxyType(sub),
            system=system, flood_summary=rep["flood_summary"], outfalls=rep["outfalls"],
            continuity=MappingProxyType(rep["continuity"]),
            metadata=MappingProxyType({"input_file": str(self.inp), "runner": "swmm_run"}),
        )


def run_swmm_bare(inp: str | Path, work_dir: str | Path | None = None, *,
                  allowed_inputs: tuple[str | Path, ...] = ()) -> BareRun:
    """Run the plain engine (``swmm.toolkit.solver.swmm_run``) on a copy of ``inp`` in ``work_dir``.

    The reference for tests and benchmarks: no stepping, no reads.  The copy
    is made as :func:`run_swmm` makes it (file names resolved), so both run
    the very same text.

    Parameters
    ----------
    inp : str or Path
        The model.
    work_dir : str or Path, optional
        Existing folder for the copy, report and output; default a new
        temporary folder, left in place for the caller (its files are the result).
    allowed_inputs : tuple of str or Path
        Paths outside the model's folder the model may read (see :class:`RunOptions`).

    Raises
    ------
    SwmmError
        With the engine's code, message, section and line.
    """
    from swmm.toolkit import solver

    parsed = read_inp(inp)
    check_model_values(parsed)
    work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="citytwin-bare-"))
    changes, _missing, _outs = resolve_file_refs(parsed, work, allowed_inputs=allowed_inputs)
    run_inp = work / "bare.inp"
    run_inp.write_text(replace_lines(parsed.text, changes), encoding=parsed.encoding, errors="replace")
    rpt, out = work / "bare.rpt", work / "bare.out"
    with _engine_slot():
        t0 = _time.perf_counter()
        try:
            with _quiet_stdout():
                solver.swmm_run(str(run_inp), str(rpt), str(out))
        except Exception as exc:  # noqa: BLE001 - the toolkit raises plain Exception("ERROR nnn ...")
            raise _engine_error(rpt, str(exc), str(inp), parsed) from None
        wall = _time.perf_counter() - t0
    return BareRun(run_inp, rpt, out, wall)
