"""A flood event on a city: rain in, sewer and streets coupled in their own process, flooded places out.

:func:`run_flood_event` runs :func:`hydraulics.city_flood.run_city_flood` (the
city's SWMM model coupled both ways with its 2D street surface, the same run
``twin swmm run --city`` makes) and returns a frozen :class:`FloodEventResult`
of plain tables, ready for maps, hydrographs, the depth animation and the 3D scene.

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
keeps the binary output small), so the hydrographs are the coupled run's
report-time reads of every node's depth and of each manhole's exchange with
the street, every ``coupling_step_s`` of simulated time.
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
from hydraulics.depth_series import DepthSeries

STORM_KINDS = ("chicago", "block", "nrcs")
"""Design storms :class:`StormSpec` can build (observed rain comes from :func:`read_rain_upload`)."""

STAGES = ("build", "start", "run", "surface", "done")
"""Stages reported to the progress callback, in order."""

MAX_SNAPSHOTS = 480
"""Most node snapshots a run keeps by default (see :func:`run_flood_event`)."""

_RUN_SHARE = 0.9  # fraction of the progress bar given to the engine run


class FloodEventError(TwinError, RuntimeError):
    """The flood event could not be run (worker process died, bad options)."""


# ----------------------------------------------------------------------------- storm captions


def _num(value) -> str:
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value)


def storm_caption(storm: Mapping | None, lang: str = "en") -> str:
    """A storm's parameters (as a page or a run's manifest records them) in words of ``lang``; ``""`` for none.

    ``storm`` holds ``kind`` (``chicago``, ``block``, ``nrcs`` or ``csv``) and that
    kind's parameters (``idf``, ``return_period_yr``, ``duration_min``, ``r``;
    ``intensity_mm_h``; ``depth_mm``, ``nrcs_type``; ``file``).  Other storms are
    told as :func:`localize_storm_text` tells :func:`twin.runstore.storm_text`'s words.

    Examples
    --------
    >>> storm_caption({"kind": "chicago", "idf": "beijing", "return_period_yr": 100, "duration_min": 60, "r": 0.4}, "zh")
    '芝加哥雨型（北京公式）100 年一遇，历时 60 分钟，r=0.4'
    >>> storm_caption({"kind": "block", "intensity_mm_h": 40.0, "duration_min": 60}, "en")
    'block 40 mm/h x 60 min'
    """
    from twin.i18n import t

    if not isinstance(storm, Mapping) or not storm:
        return ""
    kind = str(storm.get("kind") or "")
    try:
        if kind == "chicago" and storm.get("idf"):
            return t("storm.caption.chicago", lang, idf=t(f"flood.idf.{storm['idf']}", lang),
                     rp=_num(storm["return_period_yr"]), minutes=_num(storm["duration_min"]),
                     r=_num(storm.get("r", 0.4)))
        if kind == "block":
            return t("storm.caption.block", lang, intensity=_num(storm["intensity_mm_h"]),
                     minutes=_num(storm["duration_min"]))
        if kind == "nrcs":
            return t("storm.caption.nrcs", lang, type=storm.get("nrcs_type", "II"), depth=_num(storm["depth_mm"]))
        if kind == "csv" and storm.get("file"):
            return t("storm.caption.file", lang, file=storm["file"])
    except KeyError:  # a manifest without every parameter: its short words below
        pass
    from twin.runstore import storm_text

    return localize_storm_text(storm_text(storm), lang)


def localize_storm_text(text: str, lang: str = "en") -> str:
    """:func:`twin.runstore.storm_text`'s words (``chicago 100 yr 60 min``) in ``lang`` (English: unchanged).

    The first word is the storm's kind (``storm.kind.<kind>`` where the catalogue has
    it), the units ``yr`` and ``min`` are translated, numbers and file names kept.

    Examples
    --------
    >>> localize_storm_text("chicago 100 yr 60 min", "zh")
    '芝加哥雨型 100 年一遇 60 分钟'
    >>> localize_storm_text("chicago 100 yr 60 min", "en")
    'chicago 100 yr 60 min'
    """
    from twin.i18n import catalogue, t

    if lang == "en" or not text:
        return text
    words = str(text).split()
    kind = words[0]
    if f"storm.kind.{kind}" in catalogue("en"):
        words[0] = t(f"storm.kind.{kind}", lang)
    units = {"yr": t("storm.unit.yr", lang), "min": t("storm.unit.min", lang)}
    return " ".join(units.get(w, w) if i else w for i, w in enumerate(words))


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


def read_rain_upload(name: str, data: bytes, **options):
    """Read an uploaded rain record (a CSV of gauge columns or an NCDC file) as a RainSeries.

    The same reader as the CLI's ``--rain`` (:func:`hydraulics.rainfall.read_rain_file`).

    Parameters
    ----------
    name : str
        The file's name as uploaded (named in error messages and as the series' source).
    data : bytes
        Its content.
    **options
        Passed to :func:`hydraulics.rainfall.read_rain_file` (``units`` of a
        CSV's unsuffixed columns, ``format``, ``missing``).

    Returns
    -------
    RainSeries
        ``meta["time_note"]`` says where its times came from (e.g. "time from
        column 'time_min' (minutes from the start)").

    Raises
    ------
    RainFileError
        From the reader, naming the file as uploaded, the bad line and column,
        and for a time column it cannot use, the time columns it accepts.
    """
    import dataclasses

    from hydraulics.rainfall import RainFileError, read_rain_file

    safe = Path(name).name or "rain.csv"
    with tempfile.TemporaryDirectory(prefix="citytwin-rain-") as tmp:
        path = Path(tmp) / safe
        path.write_bytes(data)
        try:
            rain = read_rain_file(path, **options)
        except RainFileError as exc:
            detail = exc.detail.replace(str(path), safe).replace(tmp, ".")
            params = {k: v for k, v in exc.params.items() if k != "where"}  # the catalogue key goes along
            raise RainFileError(safe, exc.line, exc.message.replace(str(path), safe), detail=detail or None,
                                key=exc.key or None, **params) from None
    return dataclasses.replace(rain, source=safe)


def read_rain_inputs(paths, *, units: str | None = None, start=None, hours: float | None = None):
    """The observed rain of a command's ``--rain FILE [--rain FILE2 ...]``: read, put together, cut to a window.

    Parameters
    ----------
    paths : sequence of str or Path
        Rain files: CSVs of gauge columns or NCDC files, one or more gauges
        each (:func:`hydraulics.rainfall.read_rain_files`).
    units : str, optional
        Unit of CSV gauge columns without a unit suffix (``mm_h``, ``mm``, ``in_h``, ``in``).
    start : datetime, str or float, optional
        Start of the event within the record: a date-time, or seconds from the
        record's start.
    hours : float, optional
        Length of the event, h (default: to the end of the record).

    Raises
    ------
    RainFileError, RainDataError
        A file cannot be read, the window is outside the record, or no rain
        falls in it.
    """
    from gisdata.limits import check_range
    from hydraulics.rainfall import RainDataError, read_rain_files

    rain = read_rain_files(paths, units=units)
    if start is not None or hours is not None:
        if hours is not None:
            check_range("--rain-hours", hours, 0, MAX_RAIN_EVENT_H, "h", lo_inclusive=False)
        end = None
        if hours is not None:
            if start is None:  # seconds from the record's start
                end = hours * 3600.0
            elif isinstance(start, (int, float, np.integer, np.floating)):
                end = float(start) + hours * 3600.0
            else:
                end = pd.Timestamp(start) + pd.Timedelta(hours=hours)
        rain = rain.window(start, end)
    if rain.max_depth_mm <= 0:
        raise RainDataError(f"rain {rain.label}: no rain falls in {_span_text(rain)}", key="err.rain.dry",
                            rain=rain.label)
    return rain


MAX_RAIN_EVENT_H = 72.0
"""Longest observed rain a city flood or a simulation takes, h (as the longest design storm, 3 days)."""


def check_rain_event(rain, *, max_hours: float = MAX_RAIN_EVENT_H) -> None:
    """Refuse a rain record longer than ``max_hours``, pointing at its wettest stretch.

    Raises
    ------
    RainDataError
        Naming the record's span and the start of its wettest ``24 h`` (or
        shorter) window, to give as ``--rain-start``.
    """
    from hydraulics.rainfall import RainDataError

    hours = rain.duration_s / 3600.0
    if hours <= max_hours:
        return
    span = min(24.0, max_hours)
    wettest = rain.wettest_start(span)
    where = (f"{pd.Timestamp(wettest):%Y-%m-%dT%H:%M}" if rain.is_timestamped
             else f"{int(wettest) - int(rain.intensity_mm_h.index[0])}s")
    raise RainDataError(f"rain {rain.label}: the record runs {hours:,.0f} h ({_span_text(rain)}); a run takes at most "
                        f"{max_hours:g} h of rain: choose the event with --rain-start and --rain-hours (the wettest "
                        f"{span:g} h start at {where})")


def _span_text(rain) -> str:
    index = rain.intensity_mm_h.index
    if rain.is_timestamped:
        end = index[-1] + pd.Timedelta(seconds=rain.step_s)
        return f"{index[0]:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M}"
    return f"{int(index[0])} s .. {int(index[-1]) + rain.step_s} s from the start"


def city_rain_gauges(city: CityTwin) -> list[str]:
    """The rain gauges a city's SWMM model gets (:func:`hydraulics.build.build_swmm`'s rule)."""
    from hydraulics.build import _gauges

    return list(_gauges(city)[0])


def match_rain_gauges(city: CityTwin, rain) -> dict[str, str]:
    """Which rain column feeds each of the city's rain gauges, as :func:`hydraulics.build.build_swmm` matches them.

    One column feeds every gauge; several columns must include every city
    gauge by its ID.

    Returns
    -------
    dict
        City gauge ID -> rain column.

    Raises
    ------
    RainDataError
        Several columns that do not cover the city's gauges (the message names both).
    """
    from hydraulics.rainfall import RainDataError

    gauges = city_rain_gauges(city)
    columns = list(rain.gauges)
    if len(columns) == 1:
        return {g: columns[0] for g in gauges}
    missing = [g for g in gauges if g not in columns]
    if missing:
        raise RainDataError(f"rain {rain.label}: gauges {columns}, but the city's rain gauges {missing} have no series; "
                            f"give one column per city gauge ({gauges}) or a single column for all of them",
                            key="err.rain.gauges", rain=rain.label, columns=", ".join(columns),
                            missing=", ".join(missing), gauges=", ".join(gauges))
    return {g: g for g in gauges}


def rain_summary_lines(rain, match: dict[str, str] | None = None) -> list[str]:
    """The printed lines naming a rain: its files or design, period, gauges, depth and peak.

    Examples
    --------
    >>> from hydraulics.rainfall import block_storm
    >>> print("\\n".join(rain_summary_lines(block_storm(30.0, 60), {"RG1": "RG1"})))
    rain              block 30 mm/h x 60 min: 60 min
    rain gauges       RG1 <- RG1
    rain depth        30.0 mm (largest gauge), peak 30.0 mm/h
    """
    files = rain.meta.get("files") or (rain.source if rain.meta.get("format") else "")
    name = ", ".join(Path(f).name for f in files.split(",")) if files else (rain.label or "rain")
    period = _span_text(rain) if rain.is_timestamped else f"{rain.duration_s / 60:g} min"
    lines = [f"rain              {name}: {period}"]
    if match:
        if len(set(match.values())) == 1 and len(match) > 1:
            lines.append(f"rain gauges       {', '.join(match)} <- {next(iter(match.values()))} "
                         "(one record for every gauge)")
        else:
            lines.append("rain gauges       " + ", ".join(f"{g} <- {c}" for g, c in match.items()))
    lines.append(f"rain depth        {rain.max_depth_mm:.1f} mm (largest gauge), peak {rain.max_peak_mm_h:.1f} mm/h")
    note = rain.meta.get("time_note", "")
    if note:
        lines.append(f"rain time         {note}")
    return lines


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
        Rate at which each node spills onto the street, m3/s: the positive part
        of its net exchange over each interval (same shape).
    node_flood_volume_m3 : DataFrame
        Cumulative of that net spill since the start, m3 (same shape).
    flood_summary : DataFrame
        Per node that spilled at all: ``hours_flooded``, ``peak_rate_cms`` and
        ``volume_m3``, every m3 it spilled (gross: a node can spill and take
        water back within one interval, so this is at least the series' total).
    nodes : DataFrame
        Per node of the city: ``node_type``, ``max_depth_m`` (rim - invert),
        ``peak_depth_m``, ``peak_flooding_cms``, ``flood_volume_m3``, and the
        surface ``surface_depth_m`` at the node's DEM cell; sorted worst first
        (flood volume, then peak depth as a share of the shaft).
    depth : Raster
        Maximum street water depth, m, on the street surface's grid (0 on
        buildings and the river).
    roads : DataFrame
        Per road: ``depth_m`` (largest effective depth on its carriageway,
        :mod:`hydraulics.street_flood`) and ``status`` (``open`` /
        ``closed_to_cars`` / ``closed``); thresholds in ``.attrs``.
    buildings : DataFrame
        Buildings with at least ``building_threshold_m`` of water at their entrances, deepest first.
    continuity : Mapping[str, float]
        ``flow_routing_error_pct`` (SWMM's own), ``mass_balance_error_rel`` (the
        coupled system's), ``to_surface_m3``, ``to_network_m3``, ``to_river_m3``.
    summary : Mapping[str, float]
        Headline figures: ``flooded_nodes``, ``flood_volume_m3``, ``surface_volume_m3``,
        ``max_surface_depth_m``, ``flooded_area_m2``, ``roads_closed``,
        ``roads_closed_to_cars``, ``buildings_exposed``, ``rain_depth_mm``,
        ``rain_peak_mm_h``, ``flow_routing_error_pct``, ``mass_balance_error_rel``,
        ``to_surface_m3``, ``to_network_m3``, ``to_river_m3``, ``risk_points``,
        ``surface_cell_m``, ``wall_time_s``.
    metadata : Mapping[str, str]
        The run's metadata (input hash, start and end, surface grid, warnings) and options.
    depths : DepthSeries
        Street water depth at every report time.
    mass_balance : DataFrame
        The coupled mass balance at every report time (:mod:`hydraulics.dual_drainage`).
    risk_points : DataFrame
        Road segments and entrances that are risk points (:meth:`~hydraulics.street_flood.StreetFlood.risk_points`).
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
    depths: DepthSeries | None = None
    mass_balance: pd.DataFrame | None = None
    risk_points: pd.DataFrame | None = None

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


def _simulate(request: dict, on_fraction: Callable[[float], None] | None = None):
    """The coupled city run (:func:`hydraulics.city_flood.run_city_flood`); runs in the engine's own process."""
    import warnings

    from hydraulics.city_flood import city_options, run_city_flood

    opts = city_options(report_step_s=request["report_step_s"], boundary=request["boundary"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_city_flood(request["city"], request["rain"], cell_size_m=request["cell_size_m"],
                                drain_time_h=request["drain_time_h"], options=opts, threshold_m=request["car_m"],
                                on_progress=on_fraction)
    return result, [str(w.message) for w in caught]


def _simulate_job(request: dict, report: Callable[[float], None]):
    """The engine process's work (:func:`twin.job_process.run_in_process`): the fraction done is reported."""
    return _simulate(request, report)


def _run_in_process(request: dict, on_progress: Callable[[float], None], *, poll_s: float = 0.1):
    """:func:`_simulate` in a fresh process; ``on_progress`` gets the fraction of simulated time done, here."""
    from twin.job_process import run_in_process

    return run_in_process(_simulate_job, request, on_report=on_progress, poll_s=poll_s,
                          what="SWMM + 2D", error_type=FloodEventError)


# ----------------------------------------------------------------------------- the event


def run_flood_event(city: CityTwin, rain, *, progress: Callable[[FloodProgress], None] | None = None,
                    drain_time_h: float = 2.0, coupling_step_s: float | None = None, car_m: float = 0.15,
                    all_m: float = 0.30, building_threshold_m: float = 0.10,
                    boundary: Literal["wall", "outflow"] = "wall", cell_size_m: float | None = None) -> FloodEventResult:
    """Run one rain event on a city's sewer and streets, coupled both ways, and reduce it to flooded places.

    The city's SWMM model and its street surface run together
    (:func:`hydraulics.city_flood.run_city_flood`: manholes spill onto the 2D
    streets and take water back through their gullies; the river is a
    boundary) in a fresh process (one simulation per process).  The result
    keeps the node hydrographs, the street depth at every report time
    (:class:`~hydraulics.depth_series.DepthSeries`), road closures from the
    depth on the carriageway, and the coupled mass balance.

    Parameters
    ----------
    city : CityTwin
        The city (nodes, conduits, subcatchments, roads, buildings, water, DEM).
    rain : RainSeries
        Rain in mm/h: a design storm (:meth:`StormSpec.build`) or an observed
        series (:func:`read_rain_upload`); one column for all gauges or one per
        rain gauge of the city.
    progress : callable, optional
        Called in this thread with a :class:`FloodProgress` at each stage and
        as the run advances (at most about once per percent).
    drain_time_h : float
        Simulated time after the rain ends, h.
    coupling_step_s : float, optional
        Interval of the node snapshots, street depth frames and mass balance, s of
        simulated time; default 300 s, lengthened in whole minutes so that a long
        event keeps at most about :data:`MAX_SNAPSHOTS` snapshots.
    car_m, all_m : float
        Effective carriageway depths at which a road is closed to cars and to everyone, m.
    building_threshold_m : float
        Water depth at a building's entrance that counts it as exposed, m.
    boundary : {"wall", "outflow"}
        Edge of the street surface: closed, or water leaves the city there.
    cell_size_m : float, optional
        Street surface cell size, m (default :data:`hydraulics.urban_surface.DEFAULT_CELL_M`).

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
    """
    from hydraulics.surface import road_closures
    from hydraulics.urban_surface import DEFAULT_CELL_M

    if coupling_step_s is not None and not (isinstance(coupling_step_s, (int, float)) and coupling_step_s >= 5
                                            and math.isfinite(coupling_step_s)):
        raise FloodEventError(f"coupling_step_s={coupling_step_s!r} must be a finite number >= 5 s")
    if not (drain_time_h >= 0 and math.isfinite(drain_time_h)):
        raise FloodEventError(f"drain_time_h={drain_time_h!r} must be a finite number >= 0 h")
    if boundary not in ("wall", "outflow"):
        raise FloodEventError(f"boundary={boundary!r}: expected 'wall' or 'outflow'")
    if not 0 <= car_m <= all_m:
        raise FloodEventError(f"car_m={car_m}, all_m={all_m}: need 0 <= car_m <= all_m (m)")
    cell = float(cell_size_m or DEFAULT_CELL_M)
    report = progress or (lambda p: None)
    t0 = time.perf_counter()
    report(FloodProgress("build", 0.0))
    total_s = float(rain.duration_s) + drain_time_h * 3600.0
    if coupling_step_s is None:
        coupling_step_s = 60.0 * max(5, math.ceil(total_s / MAX_SNAPSHOTS / 60.0))
    report(FloodProgress("start", 0.01, 0.0, total_s))
    last = [0.0]

    def on_fraction(done: float) -> None:
        frac = 0.01 + (_RUN_SHARE - 0.01) * min(done, 1.0)
        if frac - last[0] >= 0.01 or done >= 1.0:
            last[0] = frac
            report(FloodProgress("run", frac, done * total_s, total_s))

    request = {"city": city, "rain": rain, "drain_time_h": float(drain_time_h), "report_step_s": float(coupling_step_s),
               "boundary": "closed" if boundary == "wall" else "open", "cell_size_m": cell, "car_m": float(car_m)}
    res, warned = _run_in_process(request, on_fraction)
    report(FloodProgress("surface", _RUN_SHARE, total_s, total_s))

    cpl, s = res.coupled, res.summary
    ids = city.nodes.index.astype(str)
    start = pd.Timestamp(s["start"])
    times = pd.DatetimeIndex(start + pd.to_timedelta(cpl.node_depth_m.index, unit="s"), name="time")
    depth_t = pd.DataFrame(cpl.node_depth_m.to_numpy(), index=times,
                           columns=cpl.node_depth_m.columns.astype(str)).reindex(columns=ids).fillna(0.0)
    # a node's overflow is what it spills onto the street (the exchange's positive part); 0 at the start
    spill = cpl.exchange_m3s.clip(lower=0.0)
    spill.columns = spill.columns.astype(str)
    spill = pd.concat([pd.DataFrame(0.0, index=[0.0], columns=spill.columns), spill])
    spans = np.diff(spill.index.to_numpy(float), prepend=0.0)
    volume = spill.mul(spans, axis=0).cumsum()
    flooding_t = pd.DataFrame(spill.to_numpy(), index=times, columns=spill.columns).reindex(columns=ids).fillna(0.0)
    volume_t = pd.DataFrame(volume.to_numpy(), index=times, columns=spill.columns).reindex(columns=ids).fillna(0.0)
    spilled = cpl.nodes["to_surface_m3"]
    spilled.index = spilled.index.astype(str)
    spilled = spilled[spilled > 0]
    fs = pd.DataFrame({
        "hours_flooded": [(flooding_t[n].to_numpy()[1:] > 0).dot(spans[1:]) / 3600.0 for n in spilled.index],
        "peak_rate_cms": [float(flooding_t[n].max()) for n in spilled.index],
        "volume_m3": spilled.to_numpy(float)}, index=pd.Index(spilled.index, name="node_id"))
    fs = fs.sort_values("volume_m3", ascending=False, kind="stable")

    surf = res.surface
    street = ~(surf.outside | surf.river)
    max_depth = np.where(street, cpl.max_depth_m, 0.0)
    depth_raster = Raster(max_depth, surf.ground.transform, surf.ground.crs)
    at_node = pd.Series(max_depth[cpl.nodes["row"].to_numpy(int), cpl.nodes["col"].to_numpy(int)],
                        index=cpl.nodes.index.astype(str))
    full = city.nodes["max_depth_m"].to_numpy(dtype=float)
    peak = depth_t.max().to_numpy(dtype=float) if len(depth_t) else np.zeros(len(ids))
    nodes = pd.DataFrame({
        "node_type": city.nodes["node_type"].to_numpy(),
        "max_depth_m": full,
        "peak_depth_m": peak,
        "peak_flooding_cms": flooding_t.max().to_numpy(dtype=float) if len(flooding_t) else np.zeros(len(ids)),
        "flood_volume_m3": spilled.reindex(ids).fillna(0.0).to_numpy(),
        "surface_depth_m": at_node.reindex(ids).fillna(0.0).to_numpy(),
    }, index=pd.Index(ids, name="node_id"))
    fill = np.divide(peak, full, out=np.zeros_like(peak), where=full > 0)
    order = np.lexsort((nodes.index.to_numpy(), -np.nan_to_num(fill), -nodes["flood_volume_m3"].to_numpy()))
    nodes = nodes.iloc[order]

    roads_eff = res.streets.roads["max_depth_m"]
    closures = road_closures(roads_eff, car_m=car_m, all_m=all_m)
    closures.index.name = "road_id"
    ent = res.streets.entrances
    exposed = ent.loc[ent["max_depth_m"] >= building_threshold_m, ["max_depth_m"]].rename(
        columns={"max_depth_m": "depth_m"})
    for col in ("residents", "use"):
        if col in city.buildings.columns:
            exposed[col] = city.buildings[col].reindex(exposed.index).to_numpy()
    exposed = exposed.sort_values("depth_m", ascending=False, kind="stable")

    status_counts = closures["status"].astype(str).value_counts()
    cont = {"flow_routing_error_pct": float(s["swmm_routing_error_pct"]),
            "mass_balance_error_rel": float(s["mass_balance_error_rel"]),
            "to_surface_m3": float(s["to_surface_m3"]), "to_network_m3": float(s["to_network_m3"]),
            "to_river_m3": float(s["to_river_m3"])}
    last_mb = cpl.mass_balance.iloc[-1]
    summary = {
        "flooded_nodes": len(fs),
        "flood_volume_m3": float(fs["volume_m3"].sum()),
        "surface_volume_m3": float(last_mb["surface_m3"]),
        "surface_outflow_m3": float(last_mb["boundary_out_m3"]),
        "max_surface_depth_m": float(max_depth.max()) if max_depth.size else 0.0,
        "flooded_area_m2": float((max_depth >= 0.02).sum() * surf.ground.cell_size_m ** 2),
        "roads_closed": int(status_counts.get("closed", 0)),
        "roads_closed_to_cars": int(status_counts.get("closed_to_cars", 0)),
        "buildings_exposed": len(exposed),
        "rain_depth_mm": float(rain.max_depth_mm),
        "rain_peak_mm_h": float(rain.max_peak_mm_h),
        "flow_routing_error_pct": float(s["swmm_routing_error_pct"]),
        "mass_balance_error_rel": float(s["mass_balance_error_rel"]),
        "to_surface_m3": float(s["to_surface_m3"]), "to_network_m3": float(s["to_network_m3"]),
        "to_river_m3": float(s["to_river_m3"]), "risk_points": int(s["risk_points"]),
        "surface_cell_m": cell,
        "wall_time_s": round(time.perf_counter() - t0, 3),
    }
    meta = {"input_sha256": str(s.get("input_sha256", "")), "start": str(s["start"]), "end": str(s["end"]),
            "surface": f"2D street surface, {surf.shape[0]} x {surf.shape[1]} cells of {cell:g} m, coupled both ways",
            "drain_time_h": str(drain_time_h), "coupling_step_s": str(coupling_step_s), "car_m": str(car_m),
            "all_m": str(all_m), "boundary": boundary, "rain": getattr(rain, "label", ""),
            "warnings": " | ".join(warned)}
    result = FloodEventResult(
        city_name=city.name, rain=rain, node_depth_m=depth_t, node_flooding_cms=flooding_t,
        node_flood_volume_m3=volume_t, flood_summary=fs, nodes=nodes, depth=depth_raster, roads=closures,
        buildings=exposed, continuity=MappingProxyType(cont), summary=MappingProxyType(summary),
        metadata=MappingProxyType(meta), depths=res.depths, mass_balance=cpl.mass_balance,
        risk_points=res.streets.risk_points(),
    )
    report(FloodProgress("done", 1.0, total_s, total_s))
    return result
