"""The one schema of scenario files (TOML): what a run is, as data.

A scenario names the city, the time window, the rain, the hydraulic options,
the populations and crews, the dispatch strategy, the policies, the seed and
the outputs.  A sweep file is a scenario plus ``[sweep]`` (the parameters to
vary) and ``[batch]`` (where to run).  Example (every key is optional except
``[scenario] name``)::

    [scenario]
    name = "demo_storm"
    seed = 1

    [city]
    source = "demo"                    # preset, .gpkg, OSM extract or SWMM .inp (then crs = "EPSG:...";
                                       # its streets are assumed along the sewer, see runner.street_proxy)

    [period]
    hours = 24                         # or "1440 min", "1 d"
    tick_s = 300

    [rain]
    kind = "design"                    # none | design | observed | forecast
    method = "chicago"
    idf = "beijing"
    return_period_yr = 20
    duration_min = 120
    start_h = 6                        # storm start on the twin's clock

    [population]
    citizens = 2000
    vendors = 50

    [crews]
    shifts = 1
    departments = { drainage = 6, police = 4 }   # departments not named get none;
                                                 # or per depot: depots = { D001 = 3 }; default: the depots' n_crews

    [dispatch]
    strategy = "priority"

    [policies]
    elderly_friendly = true

Validation (:func:`load_scenario`, :func:`validate_scenario`) happens before
anything runs.  An unknown key gets the closest valid key (``difflib``); a
wrong type, an impossible value, a quantity in the wrong unit (``hours =
"3 m"``) or a missing file gets the key, the value and what was expected.
Durations, lengths, depths and intensities may be given as numbers in the
unit the key names or as strings with a unit (``"90 min"``, ``"0.3 m"``).
Relative file paths are looked up beside the scenario file, then in the
working directory.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import math
import re
import tomllib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gisdata.errors import InputFileNotFoundError, TwinError
from gisdata.limits import (
    MAX_COUPLING_STEP_S,
    MAX_CREWS,
    MAX_DEPTH_M,
    MAX_MERGE_RADIUS_M,
    MAX_NESTING,
    MAX_RAIN_INTENSITY_MM_H,
    MAX_RAIN_SCALE,
    MAX_RAIN_SPAN_DAYS,
    MAX_RAIN_STEP_S,
    MAX_RETURN_PERIOD_YR,
    MAX_SCENARIO_HOURS,
    MAX_STORM_DURATION_MIN,
    MAX_SWEEP_RUNS,
    MAX_TICK_S,
    MIN_COUPLING_STEP_S,
    MIN_RAIN_STEP_S,
    MIN_RETURN_PERIOD_YR,
    MIN_TICK_S,
    nesting_depth,
)
from hydraulics.surface import INLET_RETURN_CMS

__all__ = [
    "TABLE_NAMES",
    "BatchSpec",
    "CitySpec",
    "CrewSpec",
    "DispatchSpec",
    "HydraulicsSpec",
    "OutputSpec",
    "PeriodSpec",
    "PoliciesSpec",
    "PopulationSpec",
    "RainSpec",
    "ScenarioError",
    "ScenarioFileNotFoundError",
    "ScenarioSpec",
    "SweepSpec",
    "load_scenario",
    "parameter_paths",
    "scenario_hash",
    "set_parameter",
    "validate_scenario",
]

TABLE_NAMES = ("incidents", "reports", "cases", "dispatches", "crews", "vendors", "citizens", "timeline",
               "flood_nodes", "road_closures", "positions", "crew_series", "vendor_series")
"""Tables a run can write (``[outputs] tables``)."""

DEPARTMENTS = ("city_management", "drainage", "police", "emergency")


class ScenarioError(TwinError, ValueError):
    """A scenario file is invalid; the message names the key, the value and what was expected."""


class ScenarioFileNotFoundError(ScenarioError, InputFileNotFoundError):
    """A file a scenario names (or the scenario itself) does not exist."""


# ----------------------------------------------------------------------------- quantities with units

_UNITS: dict[str, tuple[str, float]] = {
    # symbol: (dimension, factor to SI)
    "s": ("time", 1.0), "sec": ("time", 1.0), "second": ("time", 1.0), "seconds": ("time", 1.0),
    "min": ("time", 60.0), "minute": ("time", 60.0), "minutes": ("time", 60.0),
    "h": ("time", 3600.0), "hr": ("time", 3600.0), "hour": ("time", 3600.0), "hours": ("time", 3600.0),
    "d": ("time", 86400.0), "day": ("time", 86400.0), "days": ("time", 86400.0),
    "yr": ("time_yr", 1.0), "year": ("time_yr", 1.0), "years": ("time_yr", 1.0),
    "m": ("length", 1.0), "km": ("length", 1000.0), "cm": ("length", 0.01), "mm": ("length", 0.001),
    "in": ("length", 0.0254), "ft": ("length", 0.3048),
    "mm/h": ("intensity", 1.0), "mm_h": ("intensity", 1.0), "mm/hr": ("intensity", 1.0),
    "in/h": ("intensity", 25.4), "in_h": ("intensity", 25.4), "in/hr": ("intensity", 25.4),
    "m3": ("volume", 1.0), "m^3": ("volume", 1.0), "l": ("volume", 0.001), "L": ("volume", 0.001),
    "cms": ("flow", 1.0), "m3/s": ("flow", 1.0), "l/s": ("flow", 0.001), "L/s": ("flow", 0.001),
}
_SHORT_UNITS = {"time": ["s", "min", "h", "d"], "time_yr": ["yr"], "length": ["mm", "cm", "m", "km", "in", "ft"],
                "intensity": ["mm/h", "in/h"], "volume": ["m3", "L"], "flow": ["cms", "m3/s", "L/s"]}
_DIM_NAMES = {"time": "a duration", "time_yr": "a return period", "length": "a length",
              "intensity": "a rain intensity", "volume": "a volume", "flow": "a flow rate"}
_QTY_RE = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z/_^0-9]+)?\s*$")


def _quantity(target: str):
    """A before-validator: a number is in ``target`` units; a string ``"<number> <unit>"`` is converted."""
    dim, tfac = _UNITS[target]
    choices = _SHORT_UNITS[dim]

    def convert(value: Any) -> Any:
        if isinstance(value, bool):  # pydantic reports ValueError, not TypeError, as the key's message
            raise ValueError(f"expected a number in {target}, got a boolean")  # noqa: TRY004
        if not isinstance(value, str):
            return value
        m = _QTY_RE.match(value)
        if not m:
            raise ValueError(f"expected a number in {target} or a quantity like '2 {target}'")
        number, unit = float(m.group(1)), m.group(2)
        if unit is None:
            return number
        if unit not in _UNITS:
            raise ValueError(f"unknown unit '{unit}'; expected {_DIM_NAMES[dim]} in one of {choices}")
        udim, ufac = _UNITS[unit]
        if udim != dim:
            raise ValueError(f"'{unit}' is {_DIM_NAMES[udim]} unit; expected {_DIM_NAMES[dim]} "
                             f"(number in {target}, or one of {choices})")
        return number * ufac / tfac

    return BeforeValidator(convert)


Seconds = Annotated[float, _quantity("s")]
Minutes = Annotated[float, _quantity("min")]
Hours = Annotated[float, _quantity("h")]
Metres = Annotated[float, _quantity("m")]
Millimetres = Annotated[float, _quantity("mm")]
MmPerHour = Annotated[float, _quantity("mm/h")]
CubicMetres = Annotated[float, _quantity("m3")]
Cms = Annotated[float, _quantity("cms")]
Years = Annotated[float, _quantity("yr")]


def _resolve_path(value: Any, info: ValidationInfo, *, must_exist: bool = True) -> str:
    """Resolve a relative path beside the scenario file, then in the working directory."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a file path (string)")
    p = Path(value).expanduser()
    ctx = info.context or {}
    if p.is_absolute():
        cands = [p]
    else:
        cands = []
        if ctx.get("base_dir"):
            cands.append(Path(ctx["base_dir"]) / p)
        cands.append(Path.cwd() / p)
    for c in cands:
        if c.exists():
            return str(c.resolve())
    if not must_exist or ctx.get("check_files") is False:
        return str(cands[0])
    raise ValueError("file not found (looked at " + " and ".join(str(c) for c in dict.fromkeys(cands)) + ")")


# ----------------------------------------------------------------------------- sections


class _Section(BaseModel):
    # allow_inf_nan=False: `inf` or `nan` is never a duration, a radius or a return period.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)


class ScenarioMeta(_Section):
    """``[scenario]``: name, description and seed."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)
    description: str = ""
    seed: int = Field(default=0, ge=0)


CITY_PRESETS = ("demo", "small", "large")


class CitySpec(_Section):
    """``[city]``: a preset, a GeoPackage, an OSM extract or a SWMM ``.inp`` (with its ``crs``)."""

    source: str = "demo"
    crs: str | None = None
    to_crs: str | None = None
    dem: str | None = None
    preset_seed: int | None = Field(default=None, ge=0)

    @field_validator("source")
    @classmethod
    def _source(cls, v: str, info: ValidationInfo) -> str:
        if v in CITY_PRESETS:
            return v
        low = v.lower()
        if not low.endswith((".gpkg", ".osm", ".osm.bz2", ".osm.gz", ".osm.pbf", ".pbf", ".inp")):
            close = difflib.get_close_matches(v, CITY_PRESETS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ValueError(f"expected a preset {list(CITY_PRESETS)}{hint}, a .gpkg, an OSM extract "
                             "(.osm, .osm.pbf, .osm.bz2) or a SWMM .inp")
        return _resolve_path(v, info)

    @field_validator("dem")
    @classmethod
    def _dem(cls, v: str | None, info: ValidationInfo) -> str | None:
        return None if v is None else _resolve_path(v, info)

    @field_validator("crs", "to_crs")
    @classmethod
    def _crs(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from pyproj import CRS
        from pyproj.exceptions import CRSError

        try:
            crs = CRS.from_user_input(v)
        except CRSError:
            raise ValueError("not a CRS; expected e.g. 'EPSG:32632'") from None
        return crs.to_string()

    @model_validator(mode="after")
    def _needs_crs(self) -> CitySpec:
        if self.source.lower().endswith(".inp") and self.crs is None:
            raise ValueError("a SWMM model needs its CRS: add crs = \"EPSG:...\" to [city]")
        if self.crs is not None and not self.source.lower().endswith(".inp"):
            raise ValueError("crs is only for a SWMM .inp source (GeoPackages and OSM carry their own)")
        return self


class PeriodSpec(_Section):
    """``[period]``: simulated duration and the agents' tick."""

    start: datetime | None = None
    hours: Hours = Field(default=24.0, gt=0, le=MAX_SCENARIO_HOURS)
    tick_s: Seconds = Field(default=300.0, ge=MIN_TICK_S, le=MAX_TICK_S)


class _RainBase(_Section):
    start_h: Hours = Field(default=0.0, ge=0, le=MAX_SCENARIO_HOURS)


class NoRain(_RainBase):
    """``kind = "none"``: agents only."""

    kind: Literal["none"] = "none"


class DesignRain(_RainBase):
    """``kind = "design"``: a Chicago (IDF), NRCS 24 h or block storm."""

    kind: Literal["design"]
    method: Literal["chicago", "nrcs", "block"] = "chicago"
    idf: str | dict[str, float] = "beijing"
    return_period_yr: Years = Field(default=20.0, ge=MIN_RETURN_PERIOD_YR, le=MAX_RETURN_PERIOD_YR)
    duration_min: Minutes = Field(default=120.0, gt=0, le=MAX_STORM_DURATION_MIN)
    r: float = Field(default=0.4, gt=0, lt=1)
    step_min: Minutes = Field(default=5.0, ge=MIN_RAIN_STEP_S / 60.0, le=MAX_RAIN_STEP_S / 60.0)
    depth_mm: Millimetres | None = Field(default=None, gt=0, le=MAX_RAIN_INTENSITY_MM_H * 24)
    storm_type: Literal["I", "IA", "II", "III"] = "II"
    intensity_mm_h: MmPerHour | None = Field(default=None, gt=0, le=MAX_RAIN_INTENSITY_MM_H)

    @field_validator("idf")
    @classmethod
    def _idf(cls, v):
        from gisdata.idf import IDF_PRESETS

        if isinstance(v, str) and v not in IDF_PRESETS:
            close = difflib.get_close_matches(v, list(IDF_PRESETS), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ValueError(f"unknown IDF preset; {hint}expected one of {sorted(IDF_PRESETS)} "
                             "or a table {A, C, b, n}")
        if isinstance(v, dict) and set(v) != {"A", "C", "b", "n"}:
            raise ValueError("an IDF formula needs exactly the keys A, C, b, n")
        return v

    @model_validator(mode="after")
    def _method_inputs(self) -> DesignRain:
        if self.method == "nrcs" and self.depth_mm is None:
            raise ValueError("method = 'nrcs' needs depth_mm (24 h rain depth, mm)")
        if self.method == "block" and self.intensity_mm_h is None:
            raise ValueError("method = 'block' needs intensity_mm_h")
        return self


class ObservedRain(_RainBase):
    """``kind = "observed"``: an NCDC/NWS ``.dat`` file or a gauge CSV, optionally a window of it."""

    kind: Literal["observed"]
    file: str
    format: Literal["auto", "ncdc", "csv"] = "auto"
    units: str | None = None
    window_start: datetime | None = None
    window_hours: Hours | None = Field(default=None, gt=0, le=MAX_RAIN_SPAN_DAYS * 24)
    scale: float = Field(default=1.0, ge=0, le=MAX_RAIN_SCALE)

    @field_validator("file")
    @classmethod
    def _file(cls, v: str, info: ValidationInfo) -> str:
        return _resolve_path(v, info)


class ForecastRain(_RainBase):
    """``kind = "forecast"``: a deterministic QPF CSV (lead time, one column per gauge) drives the run."""

    kind: Literal["forecast"]
    file: str
    units: str | None = None
    scale: float = Field(default=1.0, ge=0, le=MAX_RAIN_SCALE)

    @field_validator("file")
    @classmethod
    def _file(cls, v: str, info: ValidationInfo) -> str:
        return _resolve_path(v, info)


RainSpec = Annotated[NoRain | DesignRain | ObservedRain | ForecastRain, Field(discriminator="kind")]
RAIN_MODELS = {"none": NoRain, "design": DesignRain, "observed": ObservedRain, "forecast": ForecastRain}


class HydraulicsSpec(_Section):
    """``[hydraulics]``: coupling step and flood thresholds (:class:`twin.coupler.CouplingOptions`)."""

    coupling_step_s: Seconds = Field(default=300.0, ge=MIN_COUPLING_STEP_S, le=MAX_COUPLING_STEP_S)
    incident_volume_m3: CubicMetres = Field(default=1.0, ge=0, le=1e9)
    drain_back_cms: Cms = Field(default=INLET_RETURN_CMS, ge=0, le=1000)
    car_closed_m: Metres = Field(default=0.15, ge=0, le=MAX_DEPTH_M)
    road_closed_m: Metres = Field(default=0.30, ge=0, le=MAX_DEPTH_M)
    drain_time_h: Hours = Field(default=2.0, ge=0, le=MAX_SCENARIO_HOURS)

    @model_validator(mode="after")
    def _order(self) -> HydraulicsSpec:
        if self.car_closed_m > self.road_closed_m:
            raise ValueError(f"car_closed_m={self.car_closed_m} must be <= road_closed_m={self.road_closed_m} (m)")
        return self


class PopulationSpec(_Section):
    """``[population]``: simulated citizens and street vendors."""

    citizens: int = Field(default=2000, ge=0, le=1_000_000)
    vendors: int = Field(default=50, ge=0, le=100_000)
    report_prob: float | None = Field(default=None, ge=0, le=1)


class CrewSpec(_Section):
    """``[crews]``: crews per department or per depot (default: the depots' ``n_crews``) and shifts."""

    shifts: Literal[1, 2, 3] = 1
    departments: dict[str, int] | None = None
    depots: dict[str, int] | None = None

    @field_validator("departments")
    @classmethod
    def _depts(cls, v):
        if v is None:
            return v
        for k, n in v.items():
            if k not in DEPARTMENTS:
                close = difflib.get_close_matches(k, DEPARTMENTS, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise ValueError(f"unknown department '{k}'; {hint}expected some of {list(DEPARTMENTS)}")
            if not 0 <= n <= MAX_CREWS:
                raise ValueError(f"{k} = {n} crews is out of range; expected 0 <= {k} <= {MAX_CREWS:,} (MAX_CREWS)")
        return {d: int(v.get(d, 0)) for d in DEPARTMENTS}

    @field_validator("depots")
    @classmethod
    def _depots(cls, v):
        if v is not None and any(not 0 <= n <= MAX_CREWS for n in v.values()):
            raise ValueError(f"crews per depot must be 0 - {MAX_CREWS:,} (MAX_CREWS)")
        if v is not None and len(v) > MAX_CREWS:
            raise ValueError(f"{len(v):,} depots; expected at most {MAX_CREWS:,}")
        return v

    @model_validator(mode="after")
    def _one(self) -> CrewSpec:
        if self.departments is not None and self.depots is not None:
            raise ValueError("give crews per department or per depot, not both")
        return self


class DispatchSpec(_Section):
    """``[dispatch]``: strategy, its parameters and the dispatch centre's settings."""

    strategy: str = "priority"
    params: dict[str, Any] = Field(default_factory=dict)
    merge: bool = True
    merge_radius_m: Metres = Field(default=150.0, ge=0, le=MAX_MERGE_RADIUS_M)
    merge_window_s: Seconds = Field(default=3600.0, ge=0, le=MAX_SCENARIO_HOURS * 3600)
    coordination_mean_s: Seconds = Field(default=42 * 60.0, ge=0, le=MAX_SCENARIO_HOURS * 3600)
    batch_dt_s: Seconds = Field(default=300.0, ge=MIN_TICK_S, le=MAX_TICK_S)

    @field_validator("strategy")
    @classmethod
    def _strategy(cls, v: str) -> str:
        from agents import strategy_names

        names = strategy_names()
        if v not in names:
            close = difflib.get_close_matches(v, names, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ValueError(f"unknown strategy; {hint}expected one of {names}")
        return v


class PoliciesSpec(_Section):
    """``[policies]``: elderly-friendly reporting, first violation free, crew staging at risk points."""

    elderly_friendly: bool = False
    first_violation_free: bool = False
    staging: bool = False
    staging_lead_s: Seconds = Field(default=3600.0, ge=0, le=MAX_SCENARIO_HOURS * 3600)
    staging_max_share: float = Field(default=0.5, ge=0, le=1)
    staging_points: int = Field(default=5, ge=1, le=100)


class OutputSpec(_Section):
    """``[outputs]``: tables to write (default all) and whether to keep the event log."""

    tables: list[str] = Field(default_factory=lambda: list(TABLE_NAMES))
    event_log: bool = True

    @field_validator("tables")
    @classmethod
    def _tables(cls, v: list[str]) -> list[str]:
        if v == ["all"]:
            return list(TABLE_NAMES)
        for t in v:
            if t not in TABLE_NAMES:
                close = difflib.get_close_matches(t, TABLE_NAMES, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise ValueError(f"unknown table '{t}'; {hint}expected some of {list(TABLE_NAMES)} or ['all']")
        return list(dict.fromkeys(v))


class ParamRange(_Section):
    """A continuous or integer range of a swept parameter (Latin hypercube)."""

    min: float
    max: float
    integer: bool = False

    @model_validator(mode="after")
    def _order(self) -> ParamRange:
        if not self.min <= self.max:
            raise ValueError(f"min={self.min} must be <= max={self.max}")
        return self


class SweepSpec(_Section):
    """``[sweep]``: a grid or a Latin hypercube over named parameters, crossed with seeds."""

    method: Literal["grid", "lhs"] = "grid"
    samples: int | None = Field(default=None, ge=1, le=100_000)
    sample_seed: int = Field(default=0, ge=0)
    seeds: list[Annotated[int, Field(ge=0)]] | None = None
    parameters: dict[str, list[Any] | ParamRange] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _method(self) -> SweepSpec:
        if self.method == "lhs" and self.samples is None:
            raise ValueError("method = 'lhs' needs samples (number of parameter points)")
        if self.method == "grid":
            if self.samples is not None:
                raise ValueError("samples is for method = 'lhs'; a grid takes every combination")
            bad = [k for k, v in self.parameters.items() if not isinstance(v, list)]
            if bad:
                raise ValueError(f"a grid needs a list of values for {bad}; ranges {{min, max}} are for method = 'lhs'")
        for k, v in self.parameters.items():
            if isinstance(v, list) and not v:
                raise ValueError(f"parameters.{k} is an empty list")
        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise ValueError(f"seeds={self.seeds} must be a non-empty list of distinct integers")
        n_points = self.samples or 1
        if self.method == "grid":
            for v in self.parameters.values():
                n_points *= len(v)
                if n_points > MAX_SWEEP_RUNS:
                    break
        n_runs = n_points * len(self.seeds or [0])
        if n_runs > MAX_SWEEP_RUNS:
            raise ValueError(f"the sweep has {n_runs:,} runs (points x seeds); expected at most "
                             f"{MAX_SWEEP_RUNS:,} (MAX_SWEEP_RUNS)")
        return self


class BatchSpec(_Section):
    """``[batch]``: local workers or a Dask scheduler address."""

    workers: int | None = Field(default=None, ge=1, le=1024)
    scheduler: str | None = Field(default=None, pattern=r"^(tcp|tls)://[^\s:/]+(:\d+)?$")


class ScenarioSpec(_Section):
    """A validated scenario (and, with ``sweep``, a sweep)."""

    scenario: ScenarioMeta
    city: CitySpec = Field(default_factory=CitySpec)
    period: PeriodSpec = Field(default_factory=PeriodSpec)
    rain: RainSpec = Field(default_factory=NoRain)
    hydraulics: HydraulicsSpec = Field(default_factory=HydraulicsSpec)
    population: PopulationSpec = Field(default_factory=PopulationSpec)
    crews: CrewSpec = Field(default_factory=CrewSpec)
    dispatch: DispatchSpec = Field(default_factory=DispatchSpec)
    policies: PoliciesSpec = Field(default_factory=PoliciesSpec)
    outputs: OutputSpec = Field(default_factory=OutputSpec)
    sweep: SweepSpec | None = None
    batch: BatchSpec | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ScenarioSpec:
        if self.rain.kind != "none" and self.rain.start_h >= self.period.hours:
            raise ValueError(f"rain.start_h={self.rain.start_h:g} must be before the end of the run "
                             f"(period.hours={self.period.hours:g})")
        if self.policies.staging and self.dispatch.strategy not in ("priority", "forecast_staging"):
            raise ValueError(f"policies.staging = true stages crews on top of 'priority' (strategy "
                             f"'forecast_staging'); dispatch.strategy = '{self.dispatch.strategy}' cannot stage")
        return self

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def seed(self) -> int:
        return self.scenario.seed

    def to_data(self) -> dict:
        """Plain JSON-able data (resolved paths, SI numbers); ``validate_scenario(to_data())`` round-trips."""
        return self.model_dump(mode="json", exclude_none=True)

    def without_sweep(self) -> ScenarioSpec:
        """This scenario without ``[sweep]`` and ``[batch]`` (one run)."""
        return self.model_copy(update={"sweep": None, "batch": None})


# ----------------------------------------------------------------------------- key checking and errors


def _section_models() -> dict[str, type[BaseModel]]:
    return {name: f.annotation for name, f in ScenarioSpec.model_fields.items()
            if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)}


def _fields_of(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _suggest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"valid keys: {', '.join(valid)}"


def _check_keys(data: Mapping[str, Any]) -> None:
    """Unknown keys anywhere -> ScenarioError naming the key and the closest valid one."""
    top = list(ScenarioSpec.model_fields)
    for key, value in data.items():
        if key not in top:
            raise ScenarioError(f"unknown section [{key}]; {_suggest(key, top)}")
        if not isinstance(value, Mapping):
            raise ScenarioError(f"[{key}] must be a table (section), got {value!r}")
        if key == "rain":
            kind = value.get("kind", "none")
            model = RAIN_MODELS.get(kind) if isinstance(kind, str) else None
            if model is None:
                raise ScenarioError(f"rain.kind = {kind!r}: unknown kind; "
                                    f"{_suggest(str(kind), list(RAIN_MODELS))} (expected one of {list(RAIN_MODELS)})")
        elif key in ("sweep", "batch"):
            model = SweepSpec if key == "sweep" else BatchSpec
        else:
            model = _section_models()[key]
        valid = _fields_of(model)
        for k in value:
            if k not in valid:
                where = f"rain (kind = '{value.get('kind', 'none')}')" if key == "rain" else key
                extra = ""
                if key == "rain":
                    owners = [kd for kd, m in RAIN_MODELS.items() if k in m.model_fields]
                    if owners:
                        extra = f" ('{k}' belongs to rain kind {owners})"
                raise ScenarioError(f"unknown key '{k}' in [{where}]; {_suggest(k, valid)}{extra}")
    if "scenario" not in data:
        raise ScenarioError("missing section [scenario] (with at least name = \"...\")")


def _fmt_value(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _format_error(err: ValidationError, data: Mapping[str, Any]) -> str:
    msgs = []
    for e in err.errors(include_url=False):
        loc = [str(p) for p in e["loc"] if not (isinstance(p, str) and p in RAIN_MODELS and e["loc"][0] == "rain")]
        # drop pydantic's union-branch markers such as "list[...]" / "ParamRange"
        loc = [p for p in loc if not re.match(r"^(list\[|dict\[|ParamRange|function-|int$|float$|str$)", p)]
        key = ".".join(loc)
        msg = e["msg"]
        for prefix in ("Value error, ", "Assertion failed, "):
            msg = msg.removeprefix(prefix)
        if e["type"] == "string_pattern_mismatch" and loc[-1:] == ["name"]:
            msg = "expected letters, digits, '_', '.' or '-' (no spaces), starting with a letter or digit"
        if e["type"] == "missing":
            msgs.append(f"{key}: missing (required)")
            continue
        if "input" in e and e["type"] not in ("model_type",) and not isinstance(e["input"], Mapping):
            msgs.append(f"{key} = {_fmt_value(e['input'])}: {msg}")
        else:
            msgs.append(f"{key}: {msg}" if key else msg)
    # a dict given where a list or a range is allowed: keep only the range's complaint
    ranged = {m.split(":")[0] for m in msgs if "Input should be a valid list" not in m}
    msgs = [m for m in msgs if not ("Input should be a valid list" in m and m.split(":")[0] in ranged)]
    uniq = list(dict.fromkeys(msgs))
    return "; ".join(uniq[:5]) + (f"; and {len(uniq) - 5} more" if len(uniq) > 5 else "")


def validate_scenario(data: Mapping[str, Any], *, base_dir: str | Path | None = None, source: str = "scenario",
                      check_files: bool = True) -> ScenarioSpec:
    """Validate a scenario given as data (the parsed TOML).

    Parameters
    ----------
    data : Mapping
        The TOML document as a dict.
    base_dir : str or Path, optional
        Directory relative file paths are looked up in first (then the working directory).
    source : str
        Name used in error messages (the file path).
    check_files : bool
        Check that files named in the scenario exist.

    Raises
    ------
    ScenarioError
        Unknown key (with the closest valid key), wrong type, value or unit.
    ScenarioFileNotFoundError
        A file the scenario names does not exist.

    Examples
    --------
    >>> spec = validate_scenario({"scenario": {"name": "x"}, "period": {"hours": "90 min"}})
    >>> spec.period.hours
    1.5
    >>> validate_scenario({"scenario": {"name": "x"}, "populaton": {}})
    Traceback (most recent call last):
    ...
    scenarios.schema.ScenarioError: scenario: unknown section [populaton]; did you mean 'population'?
    """
    if nesting_depth(data) > MAX_NESTING:
        raise ScenarioError(f"{source}: tables and lists are nested more than {MAX_NESTING} deep (MAX_NESTING)")
    try:
        _check_keys(data)
    except ScenarioError as exc:
        raise ScenarioError(f"{source}: {exc}") from None
    try:
        return ScenarioSpec.model_validate(dict(data), context={"base_dir": str(base_dir) if base_dir else None,
                                                                 "check_files": check_files})
    except ValidationError as exc:
        text = _format_error(exc, data)
        cls = ScenarioFileNotFoundError if "file not found" in text else ScenarioError
        raise cls(f"{source}: {text}") from None


def load_scenario(path: str | Path) -> ScenarioSpec:
    """Read and validate a scenario TOML file.

    Raises
    ------
    ScenarioFileNotFoundError
        The file does not exist.
    ScenarioError
        The file is not valid TOML or not a valid scenario.
    """
    path = Path(path)
    if not path.is_file():
        raise ScenarioFileNotFoundError(f"{path}: scenario file not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise ScenarioError(f"{path}: tables and lists are nested too deep (at most {MAX_NESTING})") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not a UTF-8 text file") from None
    return validate_scenario(data, base_dir=path.resolve().parent, source=str(path))


def scenario_hash(spec: ScenarioSpec) -> str:
    """SHA-256 of the scenario's canonical JSON (without ``[sweep]``/``[batch]``)."""
    text = json.dumps(spec.without_sweep().to_data(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# ----------------------------------------------------------------------------- dotted parameters


def parameter_paths() -> list[str]:
    """Every ``section.key`` a sweep may vary (``scenario.seed`` is varied through ``[sweep] seeds``)."""
    out = []
    for sec, model in _section_models().items():
        if sec == "scenario":
            continue
        out += [f"{sec}.{k}" for k in model.model_fields]
    for model in RAIN_MODELS.values():
        out += [f"rain.{k}" for k in model.model_fields if f"rain.{k}" not in out]
    out += [f"crews.departments.{d}" for d in DEPARTMENTS]
    return out


def check_parameter(path: str) -> None:
    """Raise :class:`ScenarioError` if ``path`` is not a parameter a sweep may vary."""
    valid = parameter_paths()
    if path in valid or path.startswith(("dispatch.params.", "crews.depots.")):
        return
    raise ScenarioError(f"unknown sweep parameter '{path}'; {_suggest(path, valid)}")


def set_parameter(data: Mapping[str, Any], path: str, value: Any) -> dict:
    """A deep copy of scenario ``data`` with the dotted ``path`` set to ``value``."""
    out = copy.deepcopy(dict(data))
    parts = path.split(".")
    node = out
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ScenarioError(f"cannot set '{path}': '{p}' is not a table")
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and path.endswith(("citizens", "vendors")):
        value = int(value)
    node[parts[-1]] = value
    return out
