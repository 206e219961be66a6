"""The 72-hour waterlogging forecast: issue state, ensemble runs, and the :class:`Forecast`.

How a forecast is made
----------------------
1. **State at issue time.**  A coupled run (sewer + street surface) driven by
   the *observed* rain up to now saves a SWMM hotstart at the issue time
   (:func:`compute_issue_state`).  Beside it, ``<hotstart>.json`` records the
   model hash (:func:`model_hash`), the issue time and the street water on the
   2D grid (wet cells' centres and depths, so it fits any cell size).  A
   hotstart whose hash differs from the forecast model's is refused
   (:class:`HotstartMismatchError`).
2. **Members.**  Each rain member (lead-indexed, see :mod:`hydraulics.qpf`)
   becomes a SWMM model starting at the issue time from that state, run
   coupled both ways with the street surface in its own process
   (:mod:`hydraulics.executors`) and reduced to depth per risk point: road
   segments, building entrances and districts (:mod:`hydraulics.ensemble`).
   Results stream to ``<out>/members/`` as they finish.
3. **Reduction.**  :mod:`hydraulics.risk` turns member depths into risk
   points; :mod:`hydraulics.plan` turns those into a response plan.

Settings (:class:`ForecastSettings`)
------------------------------------
``reference`` runs every member over the whole horizon with the builder's
engine options.  Cheaper settings (``fast``) are measured against it by
``benchmarks/forecast_speed.py``:

- ``skip_dry``: while every member forecasts no rain, the members are the same
  run; it is run once (from the issue hotstart to one hour before the first
  rain of any member) and the members start from its hotstart.  Exact up to
  the engine's restart (a hotstart holds the full hydraulic state).
- ``tail_cut``: a member stops ``drain_h`` hours after its own last rain.
- ``quiet_stop_h``: after its last rain, a member's engine stops once no
  manhole has spilled onto the street for this many hours and the street
  water is not growing (:class:`hydraulics.dual_drainage.QuietStop`); the
  street water then drains into the inlets on the 2D surface alone, to the
  end of the member's window (held as it is once still).  Exact unless a
  manhole would spill again.
- ``exchange_step_s``, ``cell_size_m``: the coupled model's exchange step and
  street grid (default: the city default, :data:`~hydraulics.urban_surface.DEFAULT_CELL_M`).
- ``reduce_to``: only this many representative members run
  (:func:`hydraulics.qpf.reduce_members`), weighted by the members they stand for.
- ``options``: engine overrides, e.g. a longer routing step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gisdata.city import CityTwin
from gisdata.errors import InputFileNotFoundError, TwinError
from gisdata.paths import atomic_path
from hydraulics.ensemble import (
    QUIET_S,
    MemberResult,
    MemberTask,
    SurfaceContext,
    build_surface_context,
    summarize_series,
)
from hydraulics.qpf import Ensemble, fit_horizon, spread_to_gauges
from hydraulics.rain_series import RainSeries

NETWORK_SECTIONS = ("JUNCTIONS", "OUTFALLS", "STORAGE", "CONDUITS", "PUMPS", "ORIFICES", "WEIRS", "XSECTIONS",
                    "SUBCATCHMENTS", "SUBAREAS", "INFILTRATION", "LOSSES", "DIVIDERS", "OUTLETS")
"""``.inp`` sections whose content defines the hydraulic state a hotstart holds (hashed)."""


class HotstartMismatchError(TwinError, ValueError):
    """A hotstart was saved by another model (its model hash differs), or carries no hash."""


class ForecastError(TwinError, ValueError):
    """A forecast request is inconsistent or too large for the machine or the time limit."""


# ----------------------------------------------------------------------------- model hash


def model_hash(inp_text: str) -> str:
    """SHA-256 of the network part of a SWMM model (the sections in :data:`NETWORK_SECTIONS`).

    Rain, dates, options and the report section are left out: a hotstart
    holds the state of nodes, links and subcatchments, so it fits any run of
    the same network whatever its rain or routing step.

    Examples
    --------
    >>> a = "[JUNCTIONS]\\nJ1 10 2 0 0 0\\n[TIMESERIES]\\nTS 0:00 5\\n"
    >>> b = "[JUNCTIONS]\\nJ1 10 2 0 0 0\\n[TIMESERIES]\\nTS 0:00 9\\n"
    >>> model_hash(a) == model_hash(b), model_hash(a) == model_hash(a.replace("J1 10", "J1 11"))
    (True, False)
    """
    h = hashlib.sha256()
    section = None
    for raw in inp_text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().upper()
            continue
        if section in NETWORK_SECTIONS:
            h.update(f"{section}|{' '.join(line.split())}\n".encode())
    return h.hexdigest()


def city_model_hash(city: CityTwin) -> str:
    """:func:`model_hash` of the model ``hydraulics.build`` makes of ``city``."""
    from hydraulics.build import build_swmm

    return model_hash(build_swmm(city))


# ----------------------------------------------------------------------------- issue state


@dataclass(frozen=True)
class IssueState:
    """The twin's state at the issue time.

    Parameters
    ----------
    hotstart : Path
        SWMM hotstart file.
    issue_time : pandas.Timestamp
        Simulated date-time of the state.
    model_sha256 : str
        :func:`model_hash` of the model that saved it.
    street : dict
        Street water on the 2D grid (:meth:`hydraulics.ensemble.SurfaceContext.street_water`; empty: dry).
    city : str
        City name (for messages).
    """

    hotstart: Path
    issue_time: pd.Timestamp
    model_sha256: str
    street: dict = field(default_factory=dict)
    city: str = ""

    @property
    def sidecar(self) -> Path:
        """The JSON beside the hotstart."""
        return sidecar_path(self.hotstart)


def sidecar_path(hotstart: str | Path) -> Path:
    """``state.hsf`` -> ``state.hsf.json``."""
    p = Path(hotstart)
    return p.with_name(p.name + ".json")


def write_issue_state(hotstart_bytes: bytes, path: str | Path, *, issue_time, model_sha256: str,
                      street: dict | None = None, city: str = "") -> IssueState:
    """Write a hotstart and its sidecar JSON (both renamed into place when complete)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    side = sidecar_path(path)
    meta = {"model_sha256": model_sha256, "issue_time": pd.Timestamp(issue_time).isoformat(),
            "city": city, "street": _check_street(street or {}, path), "format": "citytwin-issue-state/2"}
    with atomic_path(path) as tmp_h:
        tmp_h.write_bytes(hotstart_bytes)
    with atomic_path(side) as tmp_s:  # the sidecar last: a hotstart without one is refused
        tmp_s.write_text(json.dumps(meta, indent=1))
    return IssueState(path, pd.Timestamp(issue_time), model_sha256, dict(meta["street"]), city)


def _check_street(street, where) -> dict:
    """A street-water record (cell size, wet cells' x, y and depth, m) checked, as plain floats."""
    if not street:
        return {}
    try:
        cell = float(street["cell_size_m"])
        cols = [np.asarray(street[k], dtype=float).ravel() for k in ("x_m", "y_m", "depth_m")]
    except (KeyError, TypeError, ValueError) as exc:
        raise HotstartMismatchError(f"{where}: unreadable street water in the state record ({exc})") from None
    n = len(cols[0])
    if not (0.1 <= cell <= 1000) or any(len(c) != n for c in cols) or n > 10_000_000 or not all(
            np.isfinite(c).all() for c in cols) or (cols[2] < 0).any() or (cols[2] > 100).any():
        raise HotstartMismatchError(f"{where}: street water in the state record is out of range "
                                    f"(cell {cell} m, {n} cells; expected finite depths 0..100 m)")
    return {"cell_size_m": cell, "x_m": cols[0].tolist(), "y_m": cols[1].tolist(), "depth_m": cols[2].tolist()}


def load_issue_state(path: str | Path, *, city: CityTwin | None = None, expected_hash: str | None = None) -> IssueState:
    """Read a hotstart and its sidecar, refusing one saved by another model.

    Parameters
    ----------
    path : str or Path
        Hotstart file (its sidecar is ``<path>.json``).
    city : CityTwin, optional
        The forecast city; its model hash is compared with the sidecar's.
    expected_hash : str, optional
        Compare with this hash instead.

    Raises
    ------
    InputFileNotFoundError
        The hotstart does not exist.
    HotstartMismatchError
        No sidecar, or the hash differs.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileNotFoundError(f"{path}: hotstart file not found")
    side = sidecar_path(path)
    if not side.is_file():
        raise HotstartMismatchError(f"{path}: no model hash beside it ({side.name} missing); a hotstart of "
                                    "unknown origin is refused -- save states with `compute_issue_state`")
    try:
        meta = json.loads(side.read_text())
        saved_hash = str(meta["model_sha256"])
        issue = pd.Timestamp(meta["issue_time"])
    except (ValueError, KeyError, TypeError) as exc:
        raise HotstartMismatchError(f"{side}: unreadable state record ({exc})") from exc
    want = expected_hash or (city_model_hash(city) if city is not None else None)
    if want is not None and want != saved_hash:
        who = f" of city '{meta.get('city', '?')}'" if meta.get("city") else ""
        here = f" (city '{city.name}')" if city is not None else ""
        raise HotstartMismatchError(
            f"{path}: hotstart saved by another model{who} (hash {saved_hash[:12]}), "
            f"this forecast's model{here} has hash {want[:12]}; refused -- a hotstart only fits the network that saved it"
        )
    # a state saved before the 2D street surface (format /1) held water per manhole: it starts dry here
    return IssueState(path, issue, saved_hash, _check_street(meta.get("street") or {}, side),
                      str(meta.get("city", "")))


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class ForecastSettings:
    """How members are run (see the module docstring).

    Parameters
    ----------
    name : str
        Label for reports.
    coupling_step_s : float
        Engine state read interval, s.
    surface_step_s : float
        Surface evaluation interval (onset resolution), s; a multiple of ``coupling_step_s``.
    skip_dry : bool
        Run the shared dry lead-in once.
    tail_cut : bool
        Stop each member ``drain_h`` after its last rain.
    drain_h : float
        Hours simulated after a member's last rain with ``tail_cut``.
    margin_h : float
        Hours before the first rain at which the shared lead-in ends.
    options : dict
        Engine ``[OPTIONS]`` overrides.
    reduce_to : int, optional
        Run only this many representative members (:func:`hydraulics.qpf.reduce_members`).
    quiet_stop_h : float, optional
        Quiet stop after this many spill-free hours past a member's last rain, h.
    exchange_step_s : int
        Exchange step between the sewer and the street surface, s (1..30).
    cell_size_m : float, optional
        Cell size of the street surface, m (default :data:`hydraulics.urban_surface.DEFAULT_CELL_M`).
    """

    name: str = "reference"
    coupling_step_s: float = 300.0
    surface_step_s: float = 300.0
    skip_dry: bool = False
    tail_cut: bool = False
    drain_h: float = 6.0
    margin_h: float = 1.0
    options: dict = field(default_factory=dict)
    reduce_to: int | None = None
    quiet_stop_h: float | None = None
    exchange_step_s: int = 5
    cell_size_m: float | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.exchange_step_s, int) and 1 <= self.exchange_step_s <= 30):
            raise ForecastError(f"exchange_step_s={self.exchange_step_s} must be a whole number of seconds, 1..30")
        if self.cell_size_m is not None and not 0.5 <= self.cell_size_m <= 100:
            raise ForecastError(f"cell_size_m={self.cell_size_m} must be within 0.5..100 m")
        if self.quiet_stop_h is not None and not self.quiet_stop_h > 0:
            raise ForecastError(f"quiet_stop_h={self.quiet_stop_h} must be > 0 h")
        if self.reduce_to is not None and self.reduce_to < 1:
            raise ForecastError(f"reduce_to={self.reduce_to} must be >= 1 member")
        if not self.coupling_step_s > 0 or not self.surface_step_s > 0:
            raise ForecastError("coupling_step_s and surface_step_s must be > 0 s")
        r = self.surface_step_s / self.coupling_step_s
        if abs(r - round(r)) > 1e-9:
            raise ForecastError(f"surface_step_s={self.surface_step_s} must be a multiple of "
                                f"coupling_step_s={self.coupling_step_s}")


FAST_EXCHANGE_S = 30
"""Exchange step of the fast settings, s (the longest the coupling allows)."""
FAST_OPTIONS = {"ROUTING_STEP": "30"}
"""Engine options of the fast settings.  ``MINIMUM_STEP 2`` (used with fill-and-spill) is left out: on the
coupled demo city (ponded shafts) a 24 h dry lead-in with it saved a hotstart holding NaN depths at 20
nodes, which the members then refused (SWMM ERROR 335); 12 h did not, nor 24 h without it."""

SETTINGS = {
    "reference": ForecastSettings(),
    "skipdry": ForecastSettings(name="skipdry", skip_dry=True, tail_cut=True, quiet_stop_h=0.5),
    "fast": ForecastSettings(name="fast", skip_dry=True, tail_cut=True, drain_h=3.0, quiet_stop_h=0.5,
                             options=FAST_OPTIONS, exchange_step_s=FAST_EXCHANGE_S),
    "fastreduced": ForecastSettings(name="fastreduced", skip_dry=True, tail_cut=True, drain_h=3.0, quiet_stop_h=0.5,
                                    options=FAST_OPTIONS, exchange_step_s=FAST_EXCHANGE_S, reduce_to=16),
}
"""Named settings, all on the coupled sewer + street model at the city's default cell size: ``reference``
(every member over the whole horizon, 5 s exchange); ``skipdry`` (the exact savings: shared dry lead-in,
tail cut 6 h after the last rain, quiet stop after 0.5 h without a spill);
``fast`` (also a 30 s routing step, :data:`FAST_EXCHANGE_S` exchange step, 3 h tail);
``fastreduced`` (``fast`` on 16 k-means representative members)."""


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class Forecast:
    """Per-member surface depths of one forecast, ready to reduce to risk points.

    Parameters
    ----------
    city_name : str
    issue_time : pandas.Timestamp
    horizon_s : float
        Horizon from issue, s.
    points : pandas.DataFrame
        Index ``point_id`` (``"road:R1"``); ``kind``, ``element_id``.
    series : dict
        Member name -> sparse series (``point`` position, ``t_s`` from issue, ``depth_m``).
    weights : dict
        Member name -> weight (failed members excluded; renormalised).
    members : pandas.DataFrame
        One row per member: ``status``, ``error``, ``wall_s``, ``weight``.
    surface_step_s : float
        Series interval, s.
    settings : ForecastSettings
    meta : dict
        Wall times and counts.
    """

    city_name: str
    issue_time: pd.Timestamp
    horizon_s: float
    points: pd.DataFrame
    series: dict
    weights: dict
    members: pd.DataFrame
    surface_step_s: float
    settings: ForecastSettings
    meta: dict = field(default_factory=dict)

    @property
    def ok_members(self) -> list[str]:
        """Names of members that ran."""
        return list(self.weights)

    def member_summary(self, name: str, threshold_m: float) -> pd.DataFrame:
        """Per point max depth, onset and duration of one member (index ``point_id``)."""
        s = summarize_series(self.series[name], len(self.points), threshold_m, self.surface_step_s)
        s.index = self.points.index
        return s


def points_table(ctx: SurfaceContext) -> pd.DataFrame:
    """The risk-point table of a surface context: index ``point_id``; ``kind``, ``element_id``, ``x``, ``y``
    (where a crew goes, m), and for roads their ``district`` and ``length_m``."""
    kinds = [p.split(":", 1)[0] for p in ctx.points]
    elems = [p.split(":", 1)[1] for p in ctx.points]
    n = len(ctx.points)
    district = np.full(n, "", dtype=object)
    length = np.full(n, np.nan)
    nr = ctx.n_roads
    d_ids = np.array(list(ctx.district_ids) + [""], dtype=object)
    district[:nr] = d_ids[np.where(ctx.road_district >= 0, ctx.road_district, len(ctx.district_ids))]
    length[:nr] = ctx.road_length_m
    xy = ctx.point_xy if len(ctx.point_xy) == n else np.full((n, 2), np.nan)
    return pd.DataFrame({"kind": kinds, "element_id": elems, "x": xy[:, 0], "y": xy[:, 1], "district": district,
                         "length_m": length}, index=pd.Index(list(ctx.points), name="point_id"))


# ----------------------------------------------------------------------------- model text


def _rain_frame(rain: RainSeries, start: pd.Timestamp) -> pd.DataFrame:
    frame = rain.intensity_mm_h.copy()
    frame.index = pd.DatetimeIndex(start + pd.to_timedelta(np.arange(len(frame)) * rain.step_s, unit="s"))
    return frame


def _hms(seconds: float) -> str:
    seconds = round(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}"


def splice_rain(base_text: str, rain: RainSeries) -> str:
    """Replace the ``[TIMESERIES]`` of a model built by ``hydraulics.build`` with ``rain``.

    ``base_text`` must have been built with a rain of the same step, length
    and gauges; only the values change.  Building 50 demo models takes ~12 s;
    splicing takes milliseconds.  ``tests/test_forecast.py`` checks the result
    equals :func:`hydraulics.build.build_swmm` text for the same rain.
    """
    lines = base_text.split("\n")
    try:
        i = lines.index("[TIMESERIES]")
    except ValueError:
        raise ForecastError("model text has no [TIMESERIES] section to splice rain into") from None
    j = i + 1
    while j < len(lines) and not lines[j].startswith("["):
        j += 1
    have = {ln.split()[0][3:] for ln in lines[i + 1:j] if ln.startswith("TS_")}
    if have != set(rain.gauges):
        raise ForecastError(f"rain gauges {rain.gauges} differ from the model's {sorted(have)}")
    new = ["[TIMESERIES]", lines[i + 1] if lines[i + 1].startswith(";;") else ";;"]
    for g in rain.gauges:
        vals = np.append(rain.intensity_mm_h[g].to_numpy(), 0.0)
        new += [f"TS_{g} {_hms(k * rain.step_s)} {v:.6g}" for k, v in enumerate(vals)]
    new.append("")
    return "\n".join(lines[:i] + new + lines[j:])


# ----------------------------------------------------------------------------- issue state from observations


def compute_issue_state(city: CityTwin, observed: RainSeries | None, issue_time, path: str | Path, *,
                        coupling_step_s: float = 300.0, surface_step_s: float = 300.0,
                        ctx: SurfaceContext | None = None, scheduler: str | None = "inline",
                        spinup_h: float = 1.0) -> IssueState:
    """Run the observed rain up to ``issue_time`` and save the state there.

    Parameters
    ----------
    city : CityTwin
    observed : RainSeries or None
        Observed rain from the record start (timestamped, or elapsed from
        ``hydraulics.build.DEFAULT_START``).  None: dry weather, a spin-up of
        ``spinup_h`` hours ending at ``issue_time``.
    issue_time : Timestamp or float
        A date-time, or seconds after the record start.  It must lie on the
        surface-step grid of the record (so the forecast's steps line up with
        the observed run's).
    path : str or Path
        Hotstart file to write (and ``<path>.json``).
    coupling_step_s, surface_step_s : float
        As in :class:`ForecastSettings`, s.
    ctx : SurfaceContext, optional
        Reused if given.
    scheduler : str or None
        Where to run (``"inline"``: this process).

    Returns
    -------
    IssueState
    """
    from hydraulics.build import DEFAULT_START

    if observed is None:
        t_issue = pd.Timestamp(issue_time) if not isinstance(issue_time, (int, float)) \
            else DEFAULT_START + pd.Timedelta(seconds=float(issue_time))
        n = max(round(spinup_h * 3600 / 300), 1)
        idx = pd.DatetimeIndex(t_issue - pd.to_timedelta(np.arange(n, 0, -1) * 300, unit="s"))
        observed = RainSeries(pd.DataFrame({"RG1": np.zeros(n)}, index=idx), step_s=300, label="dry spin-up")
        issue_time = t_issue
    return compute_issue_states(city, observed, [issue_time], [path], coupling_step_s=coupling_step_s,
                                surface_step_s=surface_step_s, ctx=ctx, scheduler=scheduler)[0]


def observed_start(observed: RainSeries) -> pd.Timestamp:
    """Start of an observed record (elapsed records start at ``hydraulics.build.DEFAULT_START``)."""
    from hydraulics.build import DEFAULT_START

    if observed.is_timestamped:
        return pd.Timestamp(observed.intensity_mm_h.index[0])
    return DEFAULT_START + pd.Timedelta(seconds=int(observed.intensity_mm_h.index[0]))


def observed_model(city: CityTwin, observed: RainSeries, end_offset_s: float) -> str:
    """SWMM text of ``city`` driven by ``observed`` from its start, dry after it, up to ``end_offset_s``."""
    from hydraulics.build import build_swmm

    obs = spread_to_gauges(observed, _city_gauges(city))
    t0 = observed_start(observed)
    frame = obs.intensity_mm_h.copy()
    frame.index = pd.DatetimeIndex(t0 + pd.to_timedelta(np.arange(len(frame)) * obs.step_s, unit="s"))
    if len(frame) * obs.step_s < end_offset_s:  # dry after the record ends
        extra = math.ceil((end_offset_s - len(frame) * obs.step_s) / obs.step_s)
        pad = pd.DataFrame(0.0, columns=frame.columns, index=pd.DatetimeIndex(
            frame.index[-1] + pd.to_timedelta(np.arange(1, extra + 1) * obs.step_s, unit="s")))
        frame = pd.concat([frame, pad])
    return build_swmm(city, rain_gauges=frame, drain_time_h=0, report="none")


def compute_issue_states(city: CityTwin, observed: RainSeries, issue_times, paths, *,
                         coupling_step_s: float = 300.0, surface_step_s: float = 300.0,
                         ctx: SurfaceContext | None = None, scheduler: str | None = "inline",
                         max_workers: int | None = None) -> list[IssueState]:
    """:func:`compute_issue_state` for several issue times at once (the runs go in parallel).

    Each state comes from its own run of the observed record from its start,
    so every state is the continuous run's state at that time.
    """
    from hydraulics.executors import run_tasks

    ctx = ctx or build_surface_context(city)
    t0 = observed_start(observed)
    issues, offsets = [], []
    for it in issue_times:
        t_issue = t0 + pd.Timedelta(seconds=float(it)) if isinstance(it, (int, float)) else pd.Timestamp(it)
        offset = (t_issue - t0).total_seconds()
        if offset <= 0:
            raise ForecastError(f"issue time {t_issue} must be after the start of the observed record {t0}")
        if abs(offset / surface_step_s - round(offset / surface_step_s)) > 1e-9:
            raise ForecastError(f"issue time {t_issue} is {offset:g} s after the record start; expected a "
                                f"multiple of the surface step {surface_step_s:g} s")
        issues.append(t_issue)
        offsets.append(offset)
    text = observed_model(city, observed, max(offsets) + coupling_step_s)
    tasks = [MemberTask(index=k, name=f"observed-to-{t:%Y%m%dT%H%M}", inp_text=text, hotstart=None,
                        offset_s=-off, duration_s=off, coupling_step_s=coupling_step_s,
                        surface_step_s=surface_step_s, save_hotstart_at_s=off)
             for k, (t, off) in enumerate(zip(issues, offsets))]
    results = run_tasks(tasks, ctx, scheduler=scheduler, max_workers=max_workers)
    states = []
    for res, t_issue, path in zip(results, issues, paths):
        if res.status != "ok":
            raise ForecastError(f"the observed run up to {t_issue} failed: {res.error}")
        states.append(write_issue_state(res.hotstart, path, issue_time=t_issue, model_sha256=model_hash(text),
                                        street=res.street, city=city.name))
    return states


def _city_gauges(city: CityTwin) -> list[str]:
    rg = city.sensors[city.sensors["sensor_type"] == "rain_gauge"]
    return [str(g) for g in rg.index] if len(rg) else ["RG1"]


# ----------------------------------------------------------------------------- resource checks

WORKER_BASE_MB = 350.0
"""Resident memory of a worker process before its model, MB (Python, GeoPandas, the engine)."""

ENGINE_S_PER_NODE_HOUR = 1.5e-3
"""Default cost of a member, wall seconds per node per simulated hour (demo city, SWMM coupled with its
street surface at 10 m, averaged over storm and dry hours, measured here)."""


def estimate_resources(n_members: int, n_nodes: int, n_points: int, horizon_s: float, surface_step_s: float,
                       workers: int, sim_hours_per_member: float | None = None) -> dict:
    """Rough memory (MB) and wall time (s) of an ensemble, for refusing ones that cannot fit.

    Memory: each worker holds the engine and the model (``WORKER_BASE_MB`` + 20 kB
    per node) and this process keeps every member's series, bounded by a dense
    series (12 bytes per point per surface step).  Time: members x simulated
    hours x nodes x :data:`ENGINE_S_PER_NODE_HOUR` / workers.
    """
    steps = horizon_s / surface_step_s
    worker_mb = workers * (WORKER_BASE_MB + 0.02 * n_nodes)
    results_mb = n_members * n_points * steps * 12 / 1e6
    hours = sim_hours_per_member if sim_hours_per_member is not None else horizon_s / 3600
    wall_s = math.ceil(n_members / workers) * hours * n_nodes * ENGINE_S_PER_NODE_HOUR
    return {"memory_mb": worker_mb + results_mb, "worker_mb": worker_mb, "results_mb": results_mb,
            "wall_s": wall_s}


def check_resources(est: dict, *, time_limit_s: float | None, available_mb: float | None = None) -> None:
    """Refuse an ensemble whose estimate exceeds the free memory or the time limit.

    Raises
    ------
    ForecastError
    """
    if available_mb is None:
        import psutil

        available_mb = psutil.virtual_memory().available / 1e6
    if est["memory_mb"] > 0.8 * available_mb:
        raise ForecastError(
            f"ensemble too large for this machine: about {est['memory_mb']:.0f} MB needed "
            f"({est['worker_mb']:.0f} MB workers + {est['results_mb']:.0f} MB results), "
            f"{available_mb:.0f} MB free; use fewer members or a Dask cluster (--scheduler)")
    if time_limit_s is not None and est["wall_s"] > time_limit_s:
        raise ForecastError(
            f"ensemble would take about {est['wall_s']:.0f} s, over the time limit of {time_limit_s:.0f} s; "
            "use fewer members, faster settings, or a Dask cluster (--scheduler)")


# ----------------------------------------------------------------------------- the forecast


def run_forecast(city: CityTwin, state: IssueState, ensemble: Ensemble, *, horizon_h: float = 72.0,
                 out_dir: str | Path | None = None, settings: ForecastSettings | str = "reference",
                 scheduler: str | None = None, max_workers: int | None = None, progress: bool = False,
                 time_limit_s: float | None = None, threshold_m: float = 0.15,
                 ctx: SurfaceContext | None = None,
                 on_member: Callable[[int, int], None] | None = None) -> Forecast:
    """Run every ensemble member from the issue state and collect surface depths.

    Parameters
    ----------
    city : CityTwin
    state : IssueState
        From :func:`compute_issue_state` or :func:`load_issue_state`; its model
        hash must match ``city``'s model.
    ensemble : Ensemble
        Lead-indexed rain members.
    horizon_h : float
        Forecast horizon, h.
    out_dir : str or Path, optional
        Member results stream to ``<out_dir>/members/member_<name>.parquet``
        (per point: max depth, onset and duration at ``threshold_m``) and
        ``member_<name>_series.parquet`` (sparse depth series) as they finish.
    settings : ForecastSettings or str
        Or a key of :data:`SETTINGS`.
    scheduler : str, optional
        ``None`` local process pool, ``"inline"``, or ``tcp://HOST:PORT``.
    max_workers : int, optional
        Local pool size (default cores).
    progress : bool
        tqdm progress bar.
    time_limit_s : float, optional
        Refuse an ensemble estimated to take longer, s.
    threshold_m : float
        Depth threshold of the per-member summaries written to disk, m.
    on_member : callable, optional
        Called in this process as each member finishes (ok or failed) with
        ``(done, total)`` member counts, e.g. to drive a progress bar.

    Returns
    -------
    Forecast

    Raises
    ------
    HotstartMismatchError, ForecastError, SchedulerError
    """
    from hydraulics.build import build_swmm
    from hydraulics.executors import default_workers, run_tasks

    t_wall = time.perf_counter()
    if isinstance(settings, str):
        if settings not in SETTINGS:
            raise ForecastError(f"settings '{settings}' unknown; expected one of {list(SETTINGS)}")
        settings = SETTINGS[settings]
    if not horizon_h > 0:
        raise ForecastError(f"horizon_h={horizon_h} must be > 0")
    base_text = build_swmm(city, rain_gauges=None, report="none")
    want = model_hash(base_text)
    if state.model_sha256 != want:
        raise HotstartMismatchError(
            f"{state.hotstart}: hotstart saved by another model (hash {state.model_sha256[:12]}, city "
            f"'{state.city}'); this forecast's model (city '{city.name}') has hash {want[:12]}; refused")
    if ctx is None or (settings.cell_size_m is not None and abs(ctx.cell_size_m - settings.cell_size_m) > 1e-9):
        ctx = build_surface_context(city, cell_size_m=settings.cell_size_m)
    if settings.reduce_to is not None:
        from hydraulics.qpf import reduce_members

        ensemble = reduce_members(ensemble, settings.reduce_to)
    horizon_s = float(horizon_h) * 3600.0
    sstep = settings.surface_step_s
    gauges = _city_gauges(city)
    step = min(m.step_s for m in ensemble.members)
    members = [fit_horizon(spread_to_gauges(m, gauges), horizon_s, step_s=step) for m in ensemble.members]
    workers = 1 if scheduler == "inline" else max(1, min(int(max_workers or default_workers()), len(members)))

    # Run windows: the shared dry lead-in [0, p) and each member's [p, end_m).
    wet = [np.flatnonzero(m.intensity_mm_h.to_numpy().sum(axis=1) > 0) for m in members]
    p = 0.0
    if settings.skip_dry:
        firsts = [w[0] * step for w in wet if len(w)]
        if firsts:
            p = max(0.0, math.floor((min(firsts) - settings.margin_h * 3600) / sstep) * sstep)
        if p < 3600:  # not worth a separate run
            p = 0.0
    ends, lasts = [], []
    for w in wet:
        e = horizon_s
        last = (w[-1] + 1) * step if len(w) else p
        lasts.append(max(last, p))
        if settings.tail_cut:
            e = min(horizon_s, math.ceil((last + settings.drain_h * 3600) / sstep) * sstep)
        ends.append(max(e, p + sstep))
    sim_hours = float(np.mean(ends) - p) / 3600
    est = estimate_resources(len(members), ctx.n_nodes, len(ctx.points), horizon_s, sstep, workers, sim_hours)
    check_resources(est, time_limit_s=time_limit_s)

    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        from gisdata.paths import check_id

        for name in ensemble.names:  # they become file names: plain names only
            check_id(name, "member name")
        (out / "members").mkdir(parents=True, exist_ok=True)
    opts = dict(settings.options)
    hotstart = state.hotstart.read_bytes()
    street0 = dict(state.street)
    prefix_series = None
    t_prefix = 0.0
    if p > 0:
        dry = RainSeries(pd.DataFrame(0.0, index=np.arange(int(p // step)) * step, columns=gauges), step_s=step)
        text = build_swmm(city, rain_gauges=_rain_frame(dry, state.issue_time), options=opts, drain_time_h=0, report="none")
        task = MemberTask(-1, "lead-in", text, hotstart, 0.0, p, settings.coupling_step_s, sstep, street0,
                          save_hotstart_at_s=p, exchange_step_s=settings.exchange_step_s)
        t0 = time.perf_counter()
        # One run: in this process unless a cluster was asked for (no worker start-up to pay).
        res = run_tasks([task], ctx, scheduler="inline" if scheduler is None else scheduler, max_workers=1)[0]
        t_prefix = time.perf_counter() - t0
        if res.status != "ok":
            raise ForecastError(f"the shared dry lead-in run failed: {res.error}")
        hotstart, street0, prefix_series = res.hotstart, res.street, res.series

    start = state.issue_time + pd.Timedelta(seconds=p)
    k0 = round(p / step)
    windows = [dataclasses.replace(m, intensity_mm_h=m.intensity_mm_h.iloc[k0:]) for m in members]
    base = build_swmm(city, rain_gauges=_rain_frame(windows[0], start), options=opts, drain_time_h=0, report="none")
    quiet = settings.quiet_stop_h is not None
    tasks = [MemberTask(k, ensemble.names[k], splice_rain(base, windows[k]), hotstart, p, ends[k] - p,
                        settings.coupling_step_s, sstep, street0,
                        quiet_after_s=lasts[k] - p if quiet else None,
                        quiet_s=(settings.quiet_stop_h or 0.0) * 3600.0 if quiet else QUIET_S,
                        exchange_step_s=settings.exchange_step_s)
             for k in range(len(members))]

    series: dict[str, pd.DataFrame] = {}
    rows = []

    def on_result(res: MemberResult) -> None:
        s = res.series
        if res.status == "ok":
            if prefix_series is not None and len(prefix_series):
                s = pd.concat([prefix_series, s], ignore_index=True)
            series[res.name] = s
            if out is not None:
                _write_member(out / "members", res.name, s, ctx, threshold_m, sstep)
        rows.append({"member": res.name, "index": res.index, "status": res.status, "error": res.error,
                     "wall_s": round(res.wall_s, 3), "n_reports": res.n_reports, "host": res.host,
                     "mass_balance_error_rel": res.mass_balance_error_rel,
                     "engine_stopped_h": None if res.stopped_at_s is None else round((p + res.stopped_at_s) / 3600, 3)})
        if out is not None:
            _write_table(pd.DataFrame(rows).sort_values("index"), out / "members" / "members.csv")
        if on_member is not None:
            on_member(len(rows), len(tasks))

    t_members = time.perf_counter()
    run_tasks(tasks, ctx, scheduler=scheduler, max_workers=max_workers, on_result=on_result,
              progress=progress, desc="forecast members")
    t_members = time.perf_counter() - t_members
    table = pd.DataFrame(rows).sort_values("index").set_index("member")
    ok = [n for n in ensemble.names if n in series]
    if not ok:
        first = table["error"].iloc[0] if len(table) else "no members"
        raise ForecastError(f"every forecast member failed (first: {first})")
    w = np.array([ensemble.weights[ensemble.names.index(n)] for n in ok])
    weights = dict(zip(ok, w / w.sum()))
    table["weight"] = [weights.get(n, 0.0) for n in table.index]
    if out is not None:
        _write_table(table.reset_index(), out / "members" / "members.csv")
    meta = {"wall_s": time.perf_counter() - t_wall, "members_wall_s": t_members, "lead_in_wall_s": t_prefix,
            "lead_in_s": p, "cell_size_m": ctx.cell_size_m, "exchange_step_s": settings.exchange_step_s,
            "n_members": len(members), "n_failed": int((table["status"] != "ok").sum()),
            "workers": workers, "scheduler": scheduler or "local", "estimate": est,
            "ensemble_source": ensemble.source, "ensemble_params": dict(ensemble.params)}
    return Forecast(city.name, state.issue_time, horizon_s, points_table(ctx), series, weights, table, sstep,
                    settings, meta)


def load_forecast(out_dir: str | Path, city: CityTwin, *, issue_time, horizon_h: float = 72.0,
                  surface_step_s: float = 300.0, settings: ForecastSettings | None = None) -> Forecast:
    """Rebuild a :class:`Forecast` from the member files a run streamed to ``<out_dir>/members``.

    Members listed as ``ok`` in ``members.csv`` are read (an interrupted run
    gives the members that finished); weights come from its ``weight`` column,
    or are equal when the run did not finish.
    """
    folder = Path(out_dir) / "members"
    table_path = folder / "members.csv"
    if not table_path.is_file():
        raise InputFileNotFoundError(f"{table_path}: no member table; not a forecast output directory")
    from gisdata.paths import check_id

    table = pd.read_csv(table_path, dtype={"member": str}).set_index("member")
    for n in table.index:  # names read from a file become file names: plain names only
        check_id(n, "member name", source=table_path)
    ok = [n for n in table.index if table.loc[n, "status"] == "ok" and (folder / f"member_{n}_series.parquet").exists()]
    if not ok:
        raise ForecastError(f"{folder}: no finished members")
    series = {n: pd.read_parquet(folder / f"member_{n}_series.parquet") for n in ok}
    w = table.loc[ok, "weight"].to_numpy(float) if "weight" in table else np.ones(len(ok))
    w = np.where(np.isfinite(w), w, 1.0)
    ctx = build_surface_context(city)
    return Forecast(city.name, pd.Timestamp(issue_time), float(horizon_h) * 3600.0, points_table(ctx), series,
                    dict(zip(ok, w / w.sum())), table, surface_step_s, settings or ForecastSettings(),
                    {"n_failed": int((table["status"] != "ok").sum()), "loaded_from": str(folder)})


def _write_table(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def _write_member(folder: Path, name: str, s: pd.DataFrame, ctx: SurfaceContext, threshold_m: float,
                  sstep: float) -> None:
    summ = summarize_series(s, len(ctx.points), threshold_m, sstep)
    summ.insert(0, "point_id", list(ctx.points))
    summ = summ[(summ["max_depth_m"] > 0)]
    summ.attrs = {}
    for df, path in ((summ, folder / f"member_{name}.parquet"), (s, folder / f"member_{name}_series.parquet")):
        with atomic_path(path) as tmp:
            df.to_parquet(tmp, index=False)
