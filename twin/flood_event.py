"""A flood event on a city: rain in, SWMM run in its own process, surface flood and road closures out.

:func:`run_flood_event` chains the library pieces the CLI's ``twin swmm run
--city`` uses (:func:`hydraulics.build.build_swmm`, :func:`hydraulics.run.run_swmm`,
:func:`hydraulics.surface.max_surface_depth`, :func:`~hydraulics.surface.road_closures`)
and returns a frozen :class:`FloodEventResult` of plain tables, ready for maps,
hydrographs and the 3D scene.

Why a separate process
----------------------
The SWMM engine keeps its project in C globals: one simulation per process
(RECIPES).  A Streamlit server reruns every session's script in threads of one
process, so two users (or one impatient user) would otherwise meet in the
engine.  Each event's engine run therefore goes to a fresh Python process
(:func:`twin.job_process.run_in_process`, which says why that is not a
``multiprocessing`` process).  Its progress is handed to the caller's
``progress`` callback in the calling thread, and when the caller is
interrupted (Streamlit stops a script when the user changes a widget mid-run)
the process is ended instead of being waited for.

Node time series
----------------
The generated model reports no node time series (``[REPORT] NODES NONE``
keeps the binary output small), so the hydrographs are collected from the
run's :class:`~hydraulics.run.FloodState` snapshots, every
``coupling_step_s`` of simulated time, for every node of the city.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import numpy as np
import pandas as pd

from gisdata.city import CityTwin
from gisdata.errors import TwinError
from gisdata.raster import Raster

STORM_KINDS = ("chicago", "block", "nrcs")
"""Design storms :class:`StormSpec` can build (observed rain comes from :func:`read_rain_upload`)."""

STAGES = ("build", "start", "run", "surface", "done")
"""Stages reported to the progress callback, in order."""

MAX_SNAPSHOTS = 480
"""Most node snapshots a run keeps by default (see :func:`run_flood_event`)."""

_RUN_SHARE = 0.9  # fraction of the progress bar given to the engine run


class FloodEventError(TwinError, RuntimeError):
    """The flood event could not be run (worker process died, bad options)."""


# ----------------------------------------------------------------------------- rain


@dataclass(frozen=True)
class StormSpec:
    """A design storm chosen by its parameters (hashable, so it can key caches).

    Parameters
    ----------
    kind : {"chicago", "block", "nrcs"}
        Chicago storm from an IDF formula, constant-intensity block, or NRCS 24 h storm.
    idf : str
        IDF preset of a Chicago storm (``"beijing"``, ``"shanghai"``, ...).
    return_period_yr : float
        Return period of a Chicago storm, years.
    duration_min : float
        Duration of a Chicago or block storm, minutes (whole steps).
    r : float
        Peak position of a Chicago storm as a fraction of its duration, 0-1.
    intensity_mm_h : float
        Intensity of a block storm, mm/h.
    depth_mm : float
        24 h depth of an NRCS storm, mm.
    nrcs_type : str
        NRCS distribution: ``"I"``, ``"IA"``, ``"II"`` or ``"III"``.
    step_min : float
        Rain time step, minutes.

    Examples
    --------
    >>> StormSpec("chicago", return_period_yr=20, duration_min=120).build().max_depth_mm > 50
    True
    >>> StormSpec("block", intensity_mm_h=30, duration_min=60).build().max_depth_mm
    30.0
    """

    kind: Literal["chicago", "block", "nrcs"] = "chicago"
    idf: str = "beijing"
    return_period_yr: float = 20.0
    duration_min: float = 120.0
    r: float = 0.4
    intensity_mm_h: float = 50.0
    depth_mm: float = 100.0
    nrcs_type: str = "II"
    step_min: float = 5.0

    def __post_init__(self) -> None:
        if self.kind not in STORM_KINDS:
            raise FloodEventError(f"kind={self.kind!r} unknown; expected one of {list(STORM_KINDS)}")

    def build(self):
        """The storm as a :class:`hydraulics.rain_series.Storm` (mm/h, elapsed seconds)."""
        from hydraulics.rainfall import block_storm, chicago_storm, nrcs_storm

        if self.kind == "chicago":
            return chicago_storm(self.idf, self.return_period_yr, self.duration_min, r=self.r, step_min=self.step_min)
        if self.kind == "block":
            return block_storm(self.intensity_mm_h, self.duration_min, step_min=self.step_min)
        return nrcs_storm(self.depth_mm, self.nrcs_type, step_min=self.step_min)


def read_rain_upload(name: str, data: bytes, **csv_options):
    """Read an uploaded rain CSV (time column, then one column per gauge) as a RainSeries.

    Parameters
    ----------
    name : str
        The file's name as uploaded (named in error messages).
    data : bytes
        Its content.
    **csv_options
        Passed to :func:`hydraulics.rainfall.read_rain_csv` (``units``, ``time_col``, ...).

    Raises
    ------
    RainFileError
        From the reader, naming the file as uploaded and the bad line.
    """
    from hydraulics.rainfall import RainFileError, read_rain_csv

    safe = Path(name).name or "rain.csv"
    with tempfile.TemporaryDirectory(prefix="citytwin-rain-") as tmp:
        path = Path(tmp) / safe
        path.write_bytes(data)
        try:
            return read_rain_csv(path, **csv_options)
        except RainFileError as exc:
            where = f"{path}:{exc.line}" if exc.line is not None else str(path)
            text = str(exc)
            message = text[len(where) + 2:] if text.startswith(where + ": ") else text
            raise RainFileError(safe, exc.line, message) from None


def rain_key(rain) -> str:
    """A short digest of a rain series (intensities, index, step), for caches."""
    h = hashlib.sha1()
    frame = rain.intensity_mm_h
    h.update(str(rain.step_s).encode())
    h.update(",".join(map(str, frame.columns)).encode())
    h.update(np.asarray(frame.index.astype("int64") if isinstance(frame.index, pd.DatetimeIndex)
                        else frame.index, dtype="int64").tobytes())
    h.update(np.ascontiguousarray(frame.to_numpy(dtype="float64")).tobytes())
    return h.hexdigest()[:16]


def flood_event_key(city_key: str, rain, **options) -> str:
    """A digest naming one flood event: the city (its cache key), the rain and the run options.

    Examples
    --------
    >>> s = StormSpec("block", intensity_mm_h=30, duration_min=60).build()
    >>> flood_event_key("preset:small", s) == flood_event_key("preset:small", s)
    True
    >>> flood_event_key("preset:small", s) != flood_event_key("preset:small", s, drain_time_h=1)
    True
    """
    h = hashlib.sha1(city_key.encode("utf-8"))
    h.update(rain_key(rain).encode())
    h.update(repr(sorted((k, v) for k, v in options.items() if v is not None)).encode())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class FloodProgress:
    """Where a running flood event is.

    Parameters
    ----------
    stage : str
        One of :data:`STAGES`.
    fraction : float
        Overall progress, 0-1.
    simulated_s : float
        Simulated time reached, s (during ``"run"``).
    total_s : float
        Simulated time of the whole run, s.
    """

    stage: str
    fraction: float
    simulated_s: float = 0.0
    total_s: float = 0.0


@dataclass(frozen=True, eq=False)
class FloodEventResult:
    """A flood event reduced to what maps, hydrographs and the 3D scene need (SI units).

    Node tables use the city's node IDs (``city.nodes.index``) as columns and
    road tables its road IDs, so they join the city's layers directly.

    Parameters
    ----------
    city_name : str
        Name of the city that was run.
    rain : RainSeries
        The rain that was applied.
    node_depth_m : DataFrame
        Water depth above the invert per node, m; index ``time`` (simulated
        date-time, every ``coupling_step_s``), one column per node.
    node_flooding_cms : DataFrame
        Overflow rate per node, m3/s (same shape).
    node_flood_volume_m3 : DataFrame
        Volume that has overflowed at each node since the start, m3 (same shape).
    flood_summary : DataFrame
        Per node that flooded at all (the engine's Node Flooding Summary):
        ``hours_flooded``, ``peak_rate_cms``, ``volume_m3``.
    nodes : DataFrame
        Per node of the city: ``node_type``, ``max_depth_m`` (rim - invert),
        ``peak_depth_m``, ``peak_flooding_cms``, ``flood_volume_m3``, and the
        surface ``surface_depth_m`` at the node's DEM cell; sorted worst first
        (flood volume, then peak depth as a share of the shaft).
    depth : Raster
        Maximum surface water depth, m, on the DEM grid: every node's flood
        volume spread over the DEM by fill-and-spill.
    roads : DataFrame
        Per road: ``depth_m`` (maximum along it) and ``status``
        (``open`` / ``closed_to_cars`` / ``closed``); thresholds in ``.attrs``.
    buildings : DataFrame
        Buildings with at least ``building_threshold_m`` of water against them, deepest first.
    continuity : Mapping[str, float]
        ``runoff_error_pct``, ``flow_routing_error_pct``, ``flooding_m3``, ``outflow_m3``.
    summary : Mapping[str, float]
        Headline figures: ``flooded_nodes``, ``flood_volume_m3``, ``surface_volume_m3``,
        ``max_surface_depth_m``, ``flooded_area_m2``, ``roads_closed``,
        ``roads_closed_to_cars``, ``buildings_exposed``, ``rain_depth_mm``,
        ``rain_peak_mm_h``, ``runoff_error_pct``, ``flow_routing_error_pct``,
        ``wall_time_s``.
    metadata : Mapping[str, str]
        The run's metadata (input hash, versions, start and end) and options.
    """

    city_name: str
    rain: object
    node_depth_m: pd.DataFrame
    node_flooding_cms: pd.DataFrame
    node_flood_volume_m3: pd.DataFrame
    flood_summary: pd.DataFrame
    nodes: pd.DataFrame
    depth: Raster
    roads: pd.DataFrame
    buildings: pd.DataFrame
    continuity: Mapping[str, float]
    summary: Mapping[str, float]
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def worst_node(self) -> str:
        """ID of the node that flooded most (or, with no flooding, filled its shaft most)."""
        return str(self.nodes.index[0])

    def hydrograph(self, node_id: str) -> pd.DataFrame:
        """Depth (m) and overflow rate (m3/s) over time at one node.

        Returns
        -------
        DataFrame
            Index ``elapsed_min`` (minutes since the start); columns ``depth_m``,
            ``flooding_cms``, ``flood_volume_m3``.

        Raises
        ------
        KeyError
            If ``node_id`` is not a node of the run.
        """
        if node_id not in self.node_depth_m.columns:
            raise KeyError(f"node_id={node_id!r} is not a node of city '{self.city_name}'")
        t = self.node_depth_m.index
        elapsed = (t - pd.Timestamp(self.metadata.get("start", t[0]))).total_seconds() / 60.0 if len(t) else []
        return pd.DataFrame({
            "depth_m": self.node_depth_m[node_id].to_numpy(),
            "flooding_cms": self.node_flooding_cms[node_id].to_numpy(),
            "flood_volume_m3": self.node_flood_volume_m3[node_id].to_numpy(),
        }, index=pd.Index(np.round(np.asarray(elapsed, dtype=float), 3), name="elapsed_min"))

    def __reduce__(self):
        # Mapping proxies do not pickle (st.cache_data pickles results).
        state = {k: (dict(v) if isinstance(v, MappingProxyType) else v) for k, v in self.__dict__.items()}
        return _rebuild_result, (state,)


def _rebuild_result(state: dict) -> FloodEventResult:
    return FloodEventResult(**state)


# ----------------------------------------------------------------------------- the worker


def _simulate(inp_text: str, coupling_step_s: float, on_elapsed: Callable[[float], None] | None = None) -> dict:
    """Run the model and collect node snapshots; plain data out (runs in the engine's own process)."""
    from hydraulics.run import RunOptions, run_swmm

    times, depth, flooding, volume = [], [], [], []
    ids: list = []

    def on_step(state) -> None:
        if not ids:
            ids.extend(str(i) for i in state.node_ids)
        times.append(state.time)
        depth.append(np.array(state.depth_m))
        flooding.append(np.array(state.flooding_rate_cms))
        volume.append(np.array(state.flood_volume_m3))
        if on_elapsed is not None:
            on_elapsed(float(state.elapsed_s))

    res = run_swmm(inp_text, options=RunOptions(coupling_step_s=coupling_step_s), on_step=on_step)
    index = pd.DatetimeIndex(times, name="time")

    def frame(rows: list) -> pd.DataFrame:
        values = np.vstack(rows) if rows else np.zeros((0, len(ids)))
        return pd.DataFrame(values, index=index, columns=pd.Index(ids, name="node_id"))

    return {
        "depth_m": frame(depth), "flooding_cms": frame(flooding), "flood_volume_m3": frame(volume),
        "flood_summary": res.flood_summary, "continuity": dict(res.continuity), "metadata": dict(res.metadata),
    }


def _simulate_job(request: tuple[str, float], report: Callable[[float], None]) -> dict:
    """The engine process's work (:func:`twin.job_process.run_in_process`): simulated seconds reported."""
    inp_text, coupling_step_s = request
    return _simulate(inp_text, coupling_step_s, report)


def _run_in_process(inp_text: str, coupling_step_s: float, on_progress: Callable[[float], None],
                    *, poll_s: float = 0.1) -> dict:
    """:func:`_simulate` in a fresh process; ``on_progress`` gets the simulated seconds reached, here."""
    from twin.job_process import run_in_process

    return run_in_process(_simulate_job, (inp_text, coupling_step_s), on_report=on_progress, poll_s=poll_s,
                          what="SWMM", error_type=FloodEventError)


# ----------------------------------------------------------------------------- the event


def run_flood_event(city: CityTwin, rain, *, progress: Callable[[FloodProgress], None] | None = None,
                    drain_time_h: float = 2.0, coupling_step_s: float | None = None, car_m: float = 0.15,
                    all_m: float = 0.30, building_threshold_m: float = 0.10,
                    boundary: Literal["wall", "outflow"] = "wall") -> FloodEventResult:
    """Run one rain event on a city and reduce it to surface flooding and road closures.

    The city is built into a SWMM model with the rain
    (:func:`hydraulics.build.build_swmm`), run in a fresh process
    (one simulation per process), and each node's flooded volume is spread over
    the DEM (:func:`hydraulics.surface.max_surface_depth`); roads get their
    maximum depth and a closure state (:func:`hydraulics.surface.road_closures`).

    Parameters
    ----------
    city : CityTwin
        The city (nodes, conduits, subcatchments, roads, buildings, DEM).
    rain : RainSeries
        Rain in mm/h: a design storm (:meth:`StormSpec.build`) or an observed
        series (:func:`read_rain_upload`); one column for all gauges or one per
        rain gauge of the city.
    progress : callable, optional
        Called in this thread with a :class:`FloodProgress` at each stage and
        as the engine advances (at most about once per percent).
    drain_time_h : float
        Simulated time after the rain ends, h.
    coupling_step_s : float, optional
        Interval of the node snapshots (hydrographs), s of simulated time; default
        60 s, lengthened in whole minutes so that a long event keeps at most
        about :data:`MAX_SNAPSHOTS` snapshots (a 24 h storm: every 4 min).
    car_m, all_m : float
        Road depths at which a road is closed to cars and closed to everyone, m.
    building_threshold_m : float
        Water depth against a building that counts it as exposed, m.
    boundary : {"wall", "outflow"}
        Edge of the DEM for the surface spread (see :func:`hydraulics.surface.spread_flood`).

    Returns
    -------
    FloodEventResult

    Raises
    ------
    ModelBuildError
        The city or the rain cannot make a model (e.g. rain columns that are not the city's gauges).
    SwmmError
        The engine failed.
    FloodEventError
        The worker process died, or an option is out of range.

    Examples
    --------
    >>> from conftest import make_tiny_city                          # doctest: +SKIP
    >>> ev = run_flood_event(make_tiny_city(), StormSpec(duration_min=60).build())  # doctest: +SKIP
    >>> ev.summary["flooded_nodes"] > 0                                     # doctest: +SKIP
    True
    """
    from hydraulics.build import build_swmm
    from hydraulics.surface import exposed_buildings, max_surface_depth, road_closures, road_max_depth

    if coupling_step_s is not None and not (isinstance(coupling_step_s, (int, float)) and coupling_step_s > 0
                                            and math.isfinite(coupling_step_s)):
        raise FloodEventError(f"coupling_step_s={coupling_step_s!r} must be a finite number > 0 s")
    if not (drain_time_h >= 0 and math.isfinite(drain_time_h)):
        raise FloodEventError(f"drain_time_h={drain_time_h!r} must be a finite number >= 0 h")
    report = progress or (lambda p: None)
    t0 = time.perf_counter()
    report(FloodProgress("build", 0.0))
    text = build_swmm(city, rain_gauges=rain, drain_time_h=drain_time_h)
    total_s = float(rain.duration_s) + drain_time_h * 3600.0
    if coupling_step_s is None:
        coupling_step_s = 60.0 * max(1, math.ceil(total_s / MAX_SNAPSHOTS / 60.0))
    report(FloodProgress("start", 0.01, 0.0, total_s))

    last = [0.0]

    def on_engine(elapsed_s: float) -> None:
        frac = 0.01 + (_RUN_SHARE - 0.01) * min(elapsed_s / total_s, 1.0) if total_s > 0 else _RUN_SHARE
        if frac - last[0] >= 0.01 or elapsed_s >= total_s:
            last[0] = frac
            report(FloodProgress("run", frac, elapsed_s, total_s))

    raw = _run_in_process(text, float(coupling_step_s), on_engine)

    report(FloodProgress("surface", _RUN_SHARE, total_s, total_s))
    ids = city.nodes.index.astype(str)
    depth_t = raw["depth_m"].reindex(columns=ids)
    flooding_t = raw["flooding_cms"].reindex(columns=ids)
    volume_t = raw["flood_volume_m3"].reindex(columns=ids)
    fs = raw["flood_summary"]
    fs.index = fs.index.astype(str)
    node_vol = fs["volume_m3"].reindex(ids).fillna(0.0)
    surface = max_surface_depth(city.dem, city.nodes, node_vol, boundary=boundary)
    closures = road_closures(road_max_depth(city.roads, surface.depth), car_m=car_m, all_m=all_m)
    exposed = exposed_buildings(city.buildings, surface.depth, threshold_m=building_threshold_m)

    full = city.nodes["max_depth_m"].to_numpy(dtype=float)
    peak = depth_t.max().to_numpy(dtype=float) if len(depth_t) else np.zeros(len(ids))
    nodes = pd.DataFrame({
        "node_type": city.nodes["node_type"].to_numpy(),
        "max_depth_m": full,
        "peak_depth_m": peak,
        "peak_flooding_cms": flooding_t.max().to_numpy(dtype=float) if len(flooding_t) else np.zeros(len(ids)),
        "flood_volume_m3": node_vol.to_numpy(),
        "surface_depth_m": surface.nodes["depth_m"].reindex(ids).to_numpy(),
    }, index=pd.Index(ids, name="node_id"))
    fill = np.divide(peak, full, out=np.zeros_like(peak), where=full > 0)
    order = np.lexsort((nodes.index.to_numpy(), -np.nan_to_num(fill), -nodes["flood_volume_m3"].to_numpy()))
    nodes = nodes.iloc[order]

    cont = raw["continuity"]
    status_counts = closures["status"].value_counts()
    summary = {
        "flooded_nodes": len(fs),
        "flood_volume_m3": float(fs["volume_m3"].sum()),
        "surface_volume_m3": float(surface.volume_stored_m3),
        "surface_outflow_m3": float(surface.outflow_m3),
        "max_surface_depth_m": float(surface.max_depth_m),
        "flooded_area_m2": float(surface.flooded_area_m2(0.02)),
        "roads_closed": int(status_counts.get("closed", 0)),
        "roads_closed_to_cars": int(status_counts.get("closed_to_cars", 0)),
        "buildings_exposed": len(exposed),
        "rain_depth_mm": float(rain.max_depth_mm),
        "rain_peak_mm_h": float(rain.max_peak_mm_h),
        "runoff_error_pct": float(cont.get("runoff_error_pct", math.nan)),
        "flow_routing_error_pct": float(cont.get("flow_routing_error_pct", math.nan)),
        "wall_time_s": round(time.perf_counter() - t0, 3),
    }
    meta = {**{k: str(v) for k, v in raw["metadata"].items()},
            "drain_time_h": str(drain_time_h), "coupling_step_s": str(coupling_step_s), "car_m": str(car_m),
            "all_m": str(all_m), "boundary": boundary, "rain": getattr(rain, "label", "")}
    result = FloodEventResult(
        city_name=city.name, rain=rain, node_depth_m=depth_t, node_flooding_cms=flooding_t,
        node_flood_volume_m3=volume_t, flood_summary=fs, nodes=nodes, depth=surface.depth, roads=closures,
        buildings=exposed, continuity=MappingProxyType(dict(cont)), summary=MappingProxyType(summary),
        metadata=MappingProxyType(meta),
    )
    report(FloodProgress("done", 1.0, total_s, total_s))
    return result
