"""Run one scenario: ``run_scenario(spec) -> RunResult``, a plain function of its parameters.

Any evaluator can drive it -- a loop, a process pool, Dask, or the EMA
Workbench -- because it takes data and returns data (EMA Workbench style):

1. the city is loaded (preset, GeoPackage, OSM extract or SWMM model; cached
   per process, since a sweep runs many scenarios on one city);
2. the rain is built (design storm, observed series or deterministic QPF);
3. :func:`twin.coupler.run_coupled` runs SWMM, the Mesa agents and the SimPy
   dispatch centre on one clock (without rain: agents and dispatch only);
4. the tables, the flat KPIs, the hash-chained event log and the manifest
   (scenario, seed, parameters, package versions, input hashes) come back in
   a :class:`RunResult`, which :func:`scenarios.store.write_run` writes to
   ``runs/<run_id>/``.

Examples
--------
>>> from scenarios.schema import validate_scenario
>>> spec = validate_scenario({"scenario": {"name": "tiny", "seed": 3}, "city": {"source": "small"},
...                           "period": {"hours": 1}, "population": {"citizens": 50, "vendors": 2}})
>>> res = run_scenario(spec)
>>> res.status, res.run_id.startswith("tiny-s3-")
('complete', True)
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from gisdata.errors import TwinError
from scenarios.schema import (
    ScenarioError,
    ScenarioSpec,
    load_scenario,
    scenario_hash,
    validate_scenario,
)

__all__ = ["RunResult", "build_rain", "load_scenario_city", "run_scenario", "run_spec_data"]


@dataclass(frozen=True)
class RunResult:
    """Everything one run produced (plain data; never the live model).

    Attributes
    ----------
    run_id : str
        Directory name in the run store.
    status : str
        ``"complete"`` or ``"failed"``.
    kpis : dict
        Flat KPIs (:func:`agents.flatten_kpis`); NaN where undefined.
    nested_kpis : dict
        The same KPIs nested (:func:`agents.compute_kpis`), as the run store keeps them.
    tables : dict of DataFrame
        The tables the scenario's ``[outputs]`` asked for.
    events : bytes or None
        The hash-chained event log (JSON Lines), as written by :class:`twin.eventlog.EventLog`.
    manifest : dict
        What the run store's manifest gets: ``params`` (scenario, city, hours, strategy, seed, storm and
        the swept parameters), ``inputs`` (hashes of the scenario, city, SWMM input, rain file) and
        ``metadata`` (resolved scenario, hydraulics, agents, wall time); ``error`` for a failed run.
    error : str
        Why a failed run failed (empty when complete).
    """

    run_id: str
    status: str
    kpis: dict = field(default_factory=dict)
    tables: dict = field(default_factory=dict)
    events: bytes | None = None
    manifest: dict = field(default_factory=dict)
    error: str = ""
    nested_kpis: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "complete"


def default_run_id(spec: ScenarioSpec) -> str:
    """``<name>-s<seed>-<8 hex of the scenario hash>``: the same scenario and seed give the same ID."""
    return f"{spec.name}-s{spec.seed}-{scenario_hash(spec)[:8]}"


# ----------------------------------------------------------------------------- inputs


def _sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=4)
def _load_city_cached(source: str, crs: str | None, to_crs: str | None, dem: str | None, preset_seed: int | None):
    from gisdata import load_city
    from gisdata.city import read_city_gpkg

    low = source.lower()
    if low.endswith(".inp"):
        from hydraulics.gis import import_swmm_city

        return import_swmm_city(source, crs, to_crs=to_crs, dem=dem)
    if low.endswith((".osm", ".osm.bz2", ".osm.gz", ".osm.pbf", ".pbf")):
        from gisdata.osm import import_osm

        return import_osm(source, dem=dem, crs=to_crs)
    if low.endswith(".gpkg"):
        return read_city_gpkg(source, dem=dem)
    return load_city(source, seed=preset_seed)


def street_proxy(city):
    """A city without streets or depots (a SWMM model) made runnable for the agents.

    Streets are assumed along the sewer (sewers run under streets): each conduit
    becomes a local street of 30 km/h, 2 lanes; each department gets one depot
    at the junction nearest the network's centre.  Returns the city and the
    list of what was derived (recorded in the run's manifest).
    """
    import geopandas as gpd

    from gisdata.schema import DEPARTMENTS, validate_layer

    derived = []
    if not len(city.roads) and len(city.conduits):
        c = city.conduits
        roads = gpd.GeoDataFrame({"from_node": c["from_node"].astype(str).to_numpy(),
                                  "to_node": c["to_node"].astype(str).to_numpy(),
                                  "length_m": c.geometry.length.to_numpy(float), "road_class": "local",
                                  "speed_kmh": 30.0, "lanes": 2, "name": ""},
                                 geometry=c.geometry.to_numpy(), crs=city.crs,
                                 index=pd.Index([f"R{k}" for k in c.index.astype(str)], name="road_id"))
        city = dataclasses.replace(city, roads=validate_layer(roads[roads["length_m"] > 0], "roads",
                                                              source="streets along the sewer"))
        derived.append("roads: one local street along each conduit")
    if not len(city.depots) and len(city.nodes):
        n = city.nodes
        cx, cy = n.geometry.x.mean(), n.geometry.y.mean()
        k = int(((n.geometry.x - cx) ** 2 + (n.geometry.y - cy) ** 2).to_numpy().argmin())
        pt = n.geometry.iloc[k]
        depots = gpd.GeoDataFrame({"department": list(DEPARTMENTS), "name": [f"{d} depot" for d in DEPARTMENTS],
                                   "n_crews": 2}, geometry=[pt] * len(DEPARTMENTS), crs=city.crs,
                                  index=pd.Index([f"D-{d}" for d in DEPARTMENTS], name="depot_id"))
        city = dataclasses.replace(city, depots=validate_layer(depots, "depots", source="central depot"))
        derived.append(f"depots: one per department at node {n.index[k]} (2 crews each)")
    return city, derived


def load_scenario_city(spec: ScenarioSpec):
    """The scenario's city, with its ``[crews] depots`` applied (cached per process).

    A SWMM model has no streets or depots; :func:`street_proxy` derives them.
    """
    c = spec.city
    city = _load_city_cached(c.source, c.crs, c.to_crs, c.dem, c.preset_seed)
    if not len(city.roads) or not len(city.depots):
        city, derived = street_proxy(city)
        city = dataclasses.replace(city, metadata={**dict(city.metadata or {}), "derived": "; ".join(derived)})
    depots = spec.crews.depots
    if depots:
        ids = list(city.depots.index.astype(str))
        for k in depots:
            if k not in ids:
                close = difflib.get_close_matches(k, ids, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise ScenarioError(f"crews.depots.{k}: no depot '{k}' in city '{city.name}'; {hint}"
                                    f"it has {ids[:12]}{' ...' if len(ids) > 12 else ''}")
        d = city.depots.copy()
        d["n_crews"] = [int(depots.get(str(i), 0)) for i in d.index]
        city = dataclasses.replace(city, depots=d)
    return city


def build_rain(spec: ScenarioSpec, city=None):
    """The scenario's rain as a :class:`hydraulics.rain_series.RainSeries` in elapsed seconds (None without rain)."""
    r = spec.rain
    if r.kind == "none":
        return None
    from hydraulics.rain_series import RainSeries

    if r.kind == "design":
        from hydraulics.rainfall import block_storm, chicago_storm, nrcs_storm

        if r.method == "chicago":
            rain = chicago_storm(r.idf, r.return_period_yr, r.duration_min, r=r.r, step_min=r.step_min)
        elif r.method == "nrcs":
            rain = nrcs_storm(r.depth_mm, r.storm_type, step_min=r.step_min, return_period_yr=r.return_period_yr)
        else:
            rain = block_storm(r.intensity_mm_h, r.duration_min, step_min=r.step_min)
    elif r.kind == "observed":
        from hydraulics.rainfall import read_ncdc, read_rain_csv

        fmt = r.format
        if fmt == "auto":
            fmt = "csv" if r.file.lower().endswith((".csv", ".txt")) else "ncdc"
        rain = read_ncdc(r.file) if fmt == "ncdc" else read_rain_csv(r.file, units=r.units)
        if r.window_start is not None or r.window_hours is not None:
            rain = _window(rain, r.window_start, r.window_hours, key="rain")
    else:
        from hydraulics.qpf import read_qpf

        rain = read_qpf(r.file, units=r.units)
    frame = rain.intensity_mm_h
    if frame.shape[1] > 1:
        gauges = [] if city is None else list(city.sensors.index[city.sensors["sensor_type"] == "rain_gauge"].astype(str))
        if not gauges or any(g not in frame.columns for g in gauges):
            frame = frame.mean(axis=1).to_frame("RG1")  # gauges that do not match the city: areal mean
    scale = getattr(r, "scale", 1.0)
    if scale != 1.0:
        frame = frame * scale
    out = RainSeries(frame.reset_index(drop=True).set_axis(pd.Index(rain.elapsed_s, name="elapsed_s")),
                     step_s=rain.step_s, label=rain.label or spec.rain.kind, source=rain.source,
                     return_period_yr=rain.return_period_yr)
    if out.max_depth_mm <= 0:
        raise ScenarioError(f"rain: the {r.kind} rain has no rain in the chosen window ({rain.source})")
    return out


def _window(rain, start: datetime | None, hours: float | None, *, key: str):
    df = rain.intensity_mm_h
    if not rain.is_timestamped:
        t0 = 0 if start is None else None
        if t0 is None:
            raise ScenarioError(f"{key}.window_start = {start}: the series has no timestamps (elapsed time only)")
        sel = df[df.index < (hours or 1e12) * 3600]
    else:
        t0 = pd.Timestamp(start) if start is not None else df.index[0]
        t1 = t0 + pd.Timedelta(hours=hours) if hours is not None else df.index[-1] + pd.Timedelta(seconds=1)
        sel = df[(df.index >= t0) & (df.index < t1)]
        if not len(sel):
            raise ScenarioError(f"{key}.window_start = {start}: outside the record "
                                f"({df.index[0]} .. {df.index[-1]})")
    return dataclasses.replace(rain, intensity_mm_h=sel)


_CITY_DIGESTS: dict[str, str] = {}


def _city_sha256(spec: ScenarioSpec, city) -> str:
    """:func:`twin.runstore.city_sha256`, once per city in this process (a sweep reuses its city)."""
    from twin.runstore import city_sha256

    key = json.dumps([spec.city.model_dump(mode="json"), spec.crews.depots], sort_keys=True)
    if key not in _CITY_DIGESTS:
        if len(_CITY_DIGESTS) > 8:
            _CITY_DIGESTS.clear()
        _CITY_DIGESTS[key] = city_sha256(city)
    return _CITY_DIGESTS[key]


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for pkg in ("citytwin", "mesa", "simpy", "numpy", "pandas", "swmm-toolkit", "pyswmm", "pydantic", "pyarrow"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _input_hashes(spec: ScenarioSpec) -> dict[str, str]:
    out = {"scenario_sha256": scenario_hash(spec)}
    src = spec.city.source
    out["city"] = f"preset:{src}:{spec.city.preset_seed}" if not Path(src).is_file() else _sha256_file(src)
    for key, path in (("dem", spec.city.dem), ("rain_file", getattr(spec.rain, "file", None))):
        if path:
            out[key] = _sha256_file(path)
    return out


# ----------------------------------------------------------------------------- the run


def run_scenario(spec: ScenarioSpec | Mapping | str | Path, *, run_id: str | None = None,
                 params: Mapping[str, Any] | None = None, progress: Callable[[float], None] | None = None,
                 on_error: str = "raise") -> RunResult:
    """Run one scenario and return its tables, KPIs, event log and manifest.

    Parameters
    ----------
    spec : ScenarioSpec, Mapping or path
        A validated scenario, its data, or a TOML file.  ``[sweep]`` is ignored.
    run_id : str, optional
        Default :func:`default_run_id` (name, seed and scenario hash).
    params : Mapping, optional
        The swept parameter values that made this scenario (recorded in the manifest).
    progress : callable, optional
        Called with the fraction of simulated time done.
    on_error : {"raise", "return"}
        On a failure, raise, or return a ``failed`` RunResult carrying the message.

    Returns
    -------
    RunResult
    """
    t0 = time.perf_counter()
    if on_error not in ("raise", "return"):
        raise ValueError(f"on_error={on_error!r} must be 'raise' or 'return'")
    if isinstance(spec, (str, Path)):
        spec = load_scenario(spec)
    elif not isinstance(spec, ScenarioSpec):
        spec = validate_scenario(spec)
    spec = spec.without_sweep()
    rid = run_id or default_run_id(spec)
    base = {"run_id": rid, "seed": spec.seed, "sweep_params": dict(params or {})}
    try:
        return _run(spec, rid, dict(params or {}), progress, t0)
    except Exception as exc:
        if on_error == "raise":
            raise
        msg = " ".join(str(exc).split()) if isinstance(exc, TwinError) else \
            f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
        return RunResult(rid, "failed", manifest={**base, "status": "failed", "error": msg,
                                                  "wall_time_s": time.perf_counter() - t0}, error=msg)


def _run(spec: ScenarioSpec, rid: str, sweep_params: dict, progress, t0: float) -> RunResult:
    from agents import DispatchConfig, ReportingConfig, VendorPolicy, flatten_kpis
    from twin.coupler import CouplingOptions, hot_spot_risk_points, run_coupled
    from twin.eventlog import EventLog

    city = load_scenario_city(spec)
    rain = build_rain(spec, city)
    h = spec.hydraulics
    opts = CouplingOptions(coupling_step_s=h.coupling_step_s, incident_volume_m3=h.incident_volume_m3,
                           drain_back_cms=h.drain_back_cms, car_m=h.car_closed_m, all_m=h.road_closed_m,
                           drain_time_h=h.drain_time_h)
    start_s = spec.rain.start_h * 3600.0
    strategy = spec.dispatch.strategy
    sparams = dict(spec.dispatch.params)
    pol = spec.policies
    if pol.staging:
        strategy = "forecast_staging"
        sparams.setdefault("lead_s", pol.staging_lead_s)
        sparams.setdefault("max_share", pol.staging_max_share)
        # With rain, leave the points to run_coupled: it stages at the storm's hydraulic risk map.
        if "risk_points" not in sparams and "risk_map" not in sparams and rain is None:
            sparams["risk_points"] = hot_spot_risk_points(city, onset_s=0.0, top_k=pol.staging_points)
    if "risk_points" in sparams:
        sparams["risk_points"] = [tuple(float(v) for v in p) for p in sparams["risk_points"]]
    rep_kw = {"elderly_friendly": pol.elderly_friendly}
    if spec.population.report_prob is not None:
        rep_kw["report_prob"] = spec.population.report_prob
    d = spec.dispatch
    agent_kwargs = {
        "dispatch_config": DispatchConfig(merge=d.merge, merge_radius_m=d.merge_radius_m,
                                          merge_window_s=d.merge_window_s, coordination_mean_s=d.coordination_mean_s,
                                          batch_dt_s=d.batch_dt_s),
        "reporting": ReportingConfig(**rep_kw),
        "vendor_policy": VendorPolicy(first_violation_free=pol.first_violation_free),
        "n_shifts": spec.crews.shifts, "tick_s": spec.period.tick_s,
    }
    crews = spec.crews.departments  # None: the depots' n_crews (possibly set per depot)
    with tempfile.TemporaryDirectory(prefix="citytwin-run-") as tmp:
        log_path = Path(tmp) / "events.jsonl"
        log = EventLog(log_path) if spec.outputs.event_log else None
        try:
            res = run_coupled(city, hours=spec.period.hours, strategy=strategy, seed=spec.seed, rain=rain,
                              start_s=start_s, options=opts, event_sink=log, progress=progress,
                              strategy_params=sparams or None, n_citizens=spec.population.citizens,
                              n_vendors=spec.population.vendors, crews=crews, **agent_kwargs)
        finally:
            if log is not None:
                log.close()
        events = log_path.read_bytes() if log is not None else None
        ev_meta = {"n_records": log.n_records, "head_sha256": log.head_sha256} if log is not None else {}
    tables = {k: v for k, v in res.tables().items() if k in spec.outputs.tables}
    kpis = flatten_kpis(res.kpis)
    storm = None if rain is None else {
        "label": rain.label, "source": rain.source, "depth_mm": float(rain.max_depth_mm),
        "peak_mm_h": float(rain.max_peak_mm_h), "duration_s": int(rain.duration_s), "start_s": start_s}
    r = spec.rain
    # the same keys as `twin simulate`, so `twin compare` reads scenario runs too
    run_params = {"scenario": spec.name, "city": spec.city.source, "hours": spec.period.hours, "strategy": strategy,
                  "seed": spec.seed, "n_citizens": spec.population.citizens, "n_vendors": spec.population.vendors,
                  "crews": spec.crews.departments, "coupling_step_s": spec.hydraulics.coupling_step_s,
                  "storm": None if rain is None else {
                      "kind": r.kind if r.kind != "design" else r.method, "idf": getattr(r, "idf", None),
                      "return_period_yr": rain.return_period_yr, "duration_s": int(rain.duration_s),
                      "start_s": start_s, "label": rain.label, "depth_mm": float(rain.max_depth_mm)},
                  **{k: v for k, v in sweep_params.items() if k != "seed"}}
    inputs = _input_hashes(spec)
    inputs["city_sha256"] = _city_sha256(spec, city)
    if res.hydraulics.get("input_sha256"):
        inputs["swmm_inp_sha256"] = res.hydraulics["input_sha256"]
    metadata = {"scenario": spec.to_data(), "sweep_params": sweep_params, "hydraulics": res.hydraulics,
                "derived": (city.metadata or {}).get("derived", ""),
                "agents": res.agents.metadata, "coupler": res.metadata, "rain": storm,
                "city": {"name": city.name, "crs": city.crs}, "all_versions": _versions(),
                "event_log": ev_meta, "wall_time_s": time.perf_counter() - t0}
    manifest = {"run_id": rid, "status": "complete", "seed": spec.seed, "params": run_params, "inputs": inputs,
                "metadata": metadata, "wall_time_s": metadata["wall_time_s"]}
    return RunResult(rid, "complete", kpis=kpis, tables=tables, events=events, manifest=manifest,
                     nested_kpis=res.kpis)


def run_spec_data(task: Mapping[str, Any]) -> RunResult:
    """Worker entry point: ``task = {"run_id", "scenario" (data), "params"}``; never raises for a bad run."""
    try:
        spec = validate_scenario(task["scenario"], source=f"run {task['run_id']}")
    except TwinError as exc:
        msg = " ".join(str(exc).split())
        return RunResult(task["run_id"], "failed", manifest={"run_id": task["run_id"], "status": "failed",
                                                             "error": msg, "params": task.get("params", {})},
                         error=msg)
    return run_scenario(spec, run_id=task["run_id"], params=task.get("params"), on_error="return")


def result_row(run_dir: str | Path) -> dict:
    """One row of a results table from a stored run: run_id, status, seed, swept parameters, KPIs."""
    from scenarios.store import read_flat_kpis, read_manifest

    m = read_manifest(run_dir) or {}
    meta = m.get("metadata", {})
    row = {"run_id": m.get("run_id", Path(run_dir).name), "status": m.get("status", "?"), "seed": m.get("seed")}
    for k, v in (meta.get("sweep_params") or {}).items():
        if k != "seed":
            row[k] = json.dumps(v) if isinstance(v, (list, dict)) else v
    row["wall_time_s"] = meta.get("wall_time_s")
    row["error"] = ""
    row.update(read_flat_kpis(run_dir))
    return row
