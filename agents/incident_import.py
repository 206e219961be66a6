"""Import real service requests (NYC 311, 12345-style hotlines) and replay them through dispatch.

A record needs an ID, a creation time, a type and a location (lon/lat or
projected x/y); status, channel and closing time are used when present.
Column names are matched after normalising (case, spaces and dashes to
underscores), so the NYC Open Data API export (``created_date``) and the portal
CSV (``Created Date``) both work with :data:`NYC311`.

Nothing is dropped silently: records without usable coordinates or times are
kept, flagged (``has_location``, ``has_time``), counted in
:attr:`ImportedIncidents.stats` and listed by ID; :meth:`ImportedIncidents.to_reports`
leaves them out of a replay and says how many.  Types not in the type map
become ``other`` and are counted by their raw name.

Examples
--------
>>> imp = read_service_requests(path, crs="EPSG:32618")            # doctest: +SKIP
>>> imp.stats["rows"], imp.stats["missing_location"]               # doctest: +SKIP
(1000, 12)
>>> res = replay_incidents(city, imp, strategy="priority", seed=1) # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from agents.catalog import CATEGORIES
from agents.errors import ImportFormatError, MissingColumnError
from agents.merge import find_duplicates
from gisdata.errors import InputFileNotFoundError
from gisdata.limits import MAX_MERGE_RADIUS_M, MAX_RECORD_TIME, MAX_SCENARIO_HOURS, MIN_RECORD_TIME, check_range


def _norm(name: str) -> str:
    return re.sub(r"[\s\-/]+", "_", str(name).strip().lower())


@dataclass(frozen=True)
class ColumnMapping:
    """Which source column holds which field (``None`` = not available).

    Parameters
    ----------
    incident_id, time, type : str
        Required: record ID, creation time, complaint type.
    lon, lat : str, optional
        Geographic coordinates (degrees, WGS 84).
    x, y : str, optional
        Projected coordinates in ``source_crs`` (used if lon/lat are not given).
    status, channel, closed_time, descriptor : str, optional
        Optional fields.
    """

    incident_id: str
    time: str
    type: str
    lon: str | None = None
    lat: str | None = None
    x: str | None = None
    y: str | None = None
    status: str | None = None
    channel: str | None = None
    closed_time: str | None = None
    descriptor: str | None = None

    def required(self) -> dict[str, str]:
        """Field -> column for the columns a file must have."""
        req = {"incident_id": self.incident_id, "time": self.time, "type": self.type}
        if self.lon and self.lat:
            req.update(lon=self.lon, lat=self.lat)
        elif self.x and self.y:
            req.update(x=self.x, y=self.y)
        else:
            raise ImportFormatError("column mapping needs lon/lat or x/y columns for the location")
        return req

    def optional(self) -> dict[str, str]:
        """Field -> column for the optional columns."""
        return {k: v for k, v in (("status", self.status), ("channel", self.channel),
                                  ("closed_time", self.closed_time), ("descriptor", self.descriptor)) if v}


NYC311 = ColumnMapping(incident_id="unique_key", time="created_date", type="complaint_type", lon="longitude",
                       lat="latitude", status="status", channel="open_data_channel_type", closed_time="closed_date",
                       descriptor="descriptor")
"""NYC 311 (Open Data ``erm2-nwe9``), API or portal export."""

HOTLINE_12345 = ColumnMapping(incident_id="工单编号", time="受理时间", type="诉求类型", lon="经度", lat="纬度",
                              status="办理状态", channel="来源渠道")
"""A typical Chinese 12345 work-order export (adapt the names to your file)."""

NYC311_TYPES: Mapping[str, str] = {
    "noise": "noise", "illegal parking": "traffic", "blocked driveway": "traffic", "abandoned vehicle": "traffic",
    "derelict vehicles": "traffic", "traffic": "traffic", "for hire vehicle complaint": "traffic",
    "traffic signal condition": "traffic", "street condition": "pothole", "sidewalk condition": "pothole",
    "dirty condition": "litter", "illegal dumping": "litter", "litter basket request": "litter",
    "missed collection": "litter", "commercial disposal complaint": "litter", "sanitation condition": "litter",
    "graffiti": "litter", "vendor enforcement": "vendor", "street vendor": "vendor", "sewer": "drain_blocked",
    "street flooding": "waterlogging", "drinking": "public_order", "drug activity": "public_order",
    "non-emergency police matter": "public_order", "panhandling": "public_order",
    "illegal fireworks": "public_order", "encampment": "public_order", "homeless person assistance": "public_order",
    "urinating in public": "public_order", "disorderly youth": "public_order", "safety": "public_order",
}
"""Complaint type (case-insensitive; a key also matches as a prefix, e.g. ``Noise - Street``) -> category."""

NYC311_CHANNELS: Mapping[str, str] = {"online": "app", "mobile": "app", "phone": "hotline", "other": "import",
                                      "unknown": "import"}
"""Source channel (case-insensitive) -> report channel."""


def parse_record_times(values: pd.Series) -> tuple[pd.Series, int]:
    """Date-times of records, naive; unreadable ones and ones outside the plausible range become NaT.

    The plausible range is :data:`gisdata.limits.MIN_RECORD_TIME` to
    :data:`~gisdata.limits.MAX_RECORD_TIME`: a value such as ``0`` or
    ``-5`` that a lenient parser reads as year 0 or -5 would shift every
    record of the file by two thousand years.  Mixed time zones are converted
    to UTC.

    Returns
    -------
    times : pandas.Series
        ``datetime64`` without time zone; NaT where unusable.
    n_out_of_range : int
        Values that were read but fall outside the range (also NaT).

    Examples
    --------
    >>> t, n = parse_record_times(pd.Series(["2024-05-27 10:00", "-5", "x"]))
    >>> t.isna().tolist(), n
    ([False, True, True], 1)
    """
    try:
        times = pd.to_datetime(values, errors="coerce", format="mixed")
    except (ValueError, TypeError, OverflowError):  # mixed time zones, or values pandas cannot hold
        times = pd.to_datetime(values, errors="coerce", format="mixed", utc=True)
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_convert(None)
    lo, hi = pd.Timestamp(MIN_RECORD_TIME), pd.Timestamp(MAX_RECORD_TIME)
    out = times.notna() & ((times < lo) | (times >= hi))
    return times.mask(out), int(out.sum())


def map_type(raw: str, type_map: Mapping[str, str]) -> str | None:
    """Category of a raw complaint type (exact, then longest prefix match); ``None`` if unknown."""
    key = str(raw).strip().casefold()
    if key in type_map:
        return type_map[key]
    best = max((k for k in type_map if key.startswith(k)), key=len, default=None)
    return type_map[best] if best else None


def utm_crs_for(lon: float, lat: float) -> str:
    """The WGS 84 UTM zone CRS of a point (e.g. ``EPSG:32618`` for New York)."""
    zone = int(np.floor((lon + 180.0) / 6.0)) % 60 + 1
    return f"EPSG:{32600 + zone if lat >= 0 else 32700 + zone}"


@dataclass(frozen=True)
class ImportedIncidents:
    """Imported records and what happened to them.

    Attributes
    ----------
    incidents : pandas.DataFrame
        Index ``incident_id``; ``time`` (Timestamp), ``time_s`` (s since ``origin``),
        ``raw_type``, ``category``, ``status``, ``channel``, ``lon``, ``lat``,
        ``x``, ``y`` (m in ``crs``), ``has_location``, ``has_time``, ``known_type``,
        ``duplicate_of`` (ID of the first record of its merge group).
    stats : dict
        Counts: rows, missing_location (+ IDs), bad_time, unknown types, duplicates, by category/status/channel.
    crs : str
        Projected CRS of ``x``/``y``.
    origin : pandas.Timestamp
        Time zero (midnight of the first record's day).
    """

    incidents: pd.DataFrame
    stats: dict
    crs: str
    origin: pd.Timestamp
    source: str = ""

    def summary(self) -> str:
        """A few lines for the CLI and logs."""
        s = self.stats
        return (f"{self.source}: {s['rows']} records; {s['missing_location']} without coordinates "
                f"(kept, not replayable); {s['bad_time']} with unreadable times; {s['unknown_type_rows']} of unknown "
                f"type -> 'other' ({len(s['unknown_types'])} types); {s['duplicate_rows']} likely duplicates in "
                f"{s['duplicate_groups']} groups ({s['merge_radius_m']:.0f} m, {s['merge_window_s'] / 60:.0f} min)")

    def to_reports(self) -> pd.DataFrame:
        """Replayable records as dispatch reports (located, timed ones only; see ``stats``)."""
        df = self.incidents[self.incidents["has_location"] & self.incidents["has_time"]]
        return pd.DataFrame({"time_s": df["time_s"].to_numpy(), "x": df["x"].to_numpy(), "y": df["y"].to_numpy(),
                             "category": df["category"].to_numpy(), "channel": df["channel"].to_numpy(),
                             "incident_id": df.index.astype(str), "reporter": "import", "age_group": ""})

    def fit_to_extent(self, extent: tuple[float, float, float, float], *, margin: float = 0.05) -> ImportedIncidents:
        """Map the located records affinely into ``extent`` (xmin, ymin, xmax, ymax; m), keeping the layout.

        For replaying a real city's records on another (e.g. synthetic) city;
        the original coordinates are kept in ``x_src``/``y_src``.
        """
        df = self.incidents.copy()
        loc = df["has_location"]
        if not loc.any():
            return self
        x, y = df.loc[loc, "x"], df.loc[loc, "y"]
        xmin, ymin, xmax, ymax = extent
        w, h = (xmax - xmin) * (1 - 2 * margin), (ymax - ymin) * (1 - 2 * margin)
        span = max(x.max() - x.min(), y.max() - y.min(), 1e-9)
        s = min(w, h) / span
        df["x_src"], df["y_src"] = df["x"], df["y"]
        cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
        df.loc[loc, "x"] = cx + (x - (x.min() + x.max()) / 2) * s
        df.loc[loc, "y"] = cy + (y - (y.min() + y.max()) / 2) * s
        return ImportedIncidents(df, {**self.stats, "fitted_scale": float(s)}, self.crs, self.origin, self.source)


def read_service_requests(source: str | Path | pd.DataFrame, *, mapping: ColumnMapping = NYC311,
                          type_map: Mapping[str, str] = NYC311_TYPES,
                          channel_map: Mapping[str, str] = NYC311_CHANNELS, crs: str | None = None,
                          source_crs: str = "EPSG:4326", origin: str | pd.Timestamp | None = None,
                          merge_radius_m: float = 150.0, merge_window_s: float = 3600.0) -> ImportedIncidents:
    """Read service requests into incidents with metric coordinates.

    Parameters
    ----------
    source : str, Path or DataFrame
        A CSV file or an already loaded table.
    mapping : ColumnMapping
        Source column names (default :data:`NYC311`).
    type_map : Mapping[str, str]
        Raw type -> category of :data:`agents.catalog.CATEGORIES` (unknown -> ``other``).
    channel_map : Mapping[str, str]
        Raw channel -> report channel (unknown -> ``import``).
    crs : str, optional
        Metric CRS for ``x``/``y``; default the UTM zone of the records' centre.
    source_crs : str
        CRS of ``mapping.x``/``mapping.y`` when lon/lat are not mapped.
    origin : str or Timestamp, optional
        Time zero; default midnight of the first record's day.
    merge_radius_m, merge_window_s : float
        Window for the duplicate statistics (m, s).

    Raises
    ------
    InputFileNotFoundError
        If the file does not exist.
    MissingColumnError
        If required columns are missing (all of them are named).
    ImportFormatError
        If the file has no rows or no readable time at all.
    """
    from pyproj import Transformer

    from gisdata.schema import check_projected_crs

    check_range("merge_radius_m", merge_radius_m, 0, MAX_MERGE_RADIUS_M, "m")
    check_range("merge_window_s", merge_window_s, 0, MAX_SCENARIO_HOURS * 3600.0, "s")
    if isinstance(source, pd.DataFrame):
        raw, name = source.copy(), "<table>"
    else:
        path = Path(source)
        if not path.exists():
            raise InputFileNotFoundError(f"{path}: service-request file not found")
        if path.is_dir():
            raise ImportFormatError(f"{path}: is a directory; expected a CSV file of service requests")
        with path.open("rb") as fh:
            head = fh.read(65536)
        if b"\x00" in head:
            raise ImportFormatError(f"{path}: holds binary data (NUL bytes); expected a CSV file of service requests")
        try:
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        except pd.errors.EmptyDataError:
            raise ImportFormatError(f"{path}: is empty; expected a CSV file with a header row") from None
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise ImportFormatError(f"{path}: not a readable CSV ({' '.join(str(exc).split())[:200]})") from None
        name = str(path)
    cols = {_norm(c): c for c in raw.columns}
    req = mapping.required()
    missing = [f"{v} ({k})" for k, v in req.items() if _norm(v) not in cols]
    if missing:
        raise MissingColumnError(f"{name}: missing column(s) {missing}; the file has {list(raw.columns)[:12]}"
                                 f"{' ...' if len(raw.columns) > 12 else ''}")
    if len(raw) == 0:
        raise ImportFormatError(f"{name}: no records")
    col = lambda field: raw[cols[_norm(getattr(mapping, field))]]
    opt = {k: raw[cols[_norm(v)]] if _norm(v) in cols else None for k, v in mapping.optional().items()}

    ids = col("incident_id").fillna("").astype(str).str.strip()
    # a record without an ID is named by its line, so the index stays unique (NaN IDs were repeated)
    ids = ids.mask(ids == "", pd.Series([f"line-{n}" for n in range(2, len(raw) + 2)], index=raw.index))
    times, n_time_out_of_range = parse_record_times(col("time"))
    if times.notna().sum() == 0:
        raise ImportFormatError(f"{name}: no readable time in column '{mapping.time}' (between "
                                f"{MIN_RECORD_TIME} and {MAX_RECORD_TIME})")
    t0 = pd.Timestamp(origin) if origin is not None else times.min().normalize()
    raw_type = col("type").fillna("").astype(str).str.strip()
    cats = raw_type.map(lambda t: map_type(t, type_map))
    known = cats.notna()
    cats = cats.fillna("other")
    bad_cat = sorted(set(cats) - set(CATEGORIES))
    if bad_cat:
        raise ImportFormatError(f"type_map maps to unknown categories {bad_cat}; expected {sorted(CATEGORIES)}")

    if mapping.lon and mapping.lat:
        lon = pd.to_numeric(col("lon"), errors="coerce")
        lat = pd.to_numeric(col("lat"), errors="coerce")
        has_loc = lon.notna() & lat.notna() & lon.between(-180, 180) & lat.between(-90, 90) & ~((lon == 0) & (lat == 0))
        if crs is None:
            crs = utm_crs_for(float(lon[has_loc].mean()), float(lat[has_loc].mean())) if has_loc.any() else "EPSG:3857"
        crs = check_projected_crs(crs, source=f"{name}: target crs")
        x = np.full(len(raw), np.nan)
        y = np.full(len(raw), np.nan)
        if has_loc.any():
            tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
            x[has_loc.to_numpy()], y[has_loc.to_numpy()] = tr.transform(lon[has_loc].to_numpy(), lat[has_loc].to_numpy())
    else:
        sx = pd.to_numeric(col("x"), errors="coerce")
        sy = pd.to_numeric(col("y"), errors="coerce")
        has_loc = sx.notna() & sy.notna()
        crs = check_projected_crs(crs or source_crs, source=f"{name}: target crs")
        tr = Transformer.from_crs(source_crs, crs, always_xy=True)
        x, y = (np.asarray(v, dtype=float) for v in tr.transform(sx.to_numpy(float), sy.to_numpy(float)))
        inv = Transformer.from_crs(source_crs, "EPSG:4326", always_xy=True)
        lon_a, lat_a = inv.transform(sx.to_numpy(float), sy.to_numpy(float))
        lon, lat = pd.Series(lon_a, index=raw.index), pd.Series(lat_a, index=raw.index)

    status = (opt["status"].fillna("").astype(str).str.strip().str.lower().str.replace(" ", "_")
              if opt.get("status") is not None else pd.Series("", index=raw.index))
    channel_raw = opt["channel"].fillna("").astype(str) if opt.get("channel") is not None else pd.Series("", index=raw.index)
    channel = channel_raw.str.strip().str.lower().map(lambda c: channel_map.get(c, "import"))
    closed = parse_record_times(opt["closed_time"])[0] if opt.get("closed_time") is not None \
        else pd.Series(pd.NaT, index=raw.index)
    df = pd.DataFrame({
        "time": times, "time_s": (times - t0).dt.total_seconds(), "raw_type": raw_type, "category": cats,
        "status": status, "channel": channel, "lon": lon.to_numpy(float), "lat": lat.to_numpy(float), "x": x, "y": y,
        "has_location": has_loc.to_numpy(bool), "has_time": times.notna().to_numpy(bool), "known_type": known.to_numpy(bool),
        "closed_s": (closed - t0).dt.total_seconds(),
    })
    dup_ids = int(ids.duplicated().sum())
    if dup_ids:  # keep every row: suffix repeated IDs so the index stays unique
        ids = ids + ids.groupby(ids).cumcount().map(lambda k: "" if k == 0 else f"~{k}")
    df.index = pd.Index(ids.to_numpy(), name="incident_id")
    grp = find_duplicates(df.assign(time_s=df["time_s"].fillna(np.inf)), radius_m=merge_radius_m,
                          window_s=merge_window_s, key=("category",))
    df["duplicate_of"] = np.where(grp.to_numpy() != df.index.to_numpy(), grp.to_numpy(), "")
    dup = df["duplicate_of"] != ""
    stats = {
        "rows": len(df), "missing_location": int((~df["has_location"]).sum()),
        "missing_location_ids": df.index[~df["has_location"]].tolist(), "bad_time": int((~df["has_time"]).sum()),
        "time_out_of_range": n_time_out_of_range,
        "unknown_type_rows": int((~df["known_type"]).sum()),
        "unknown_types": raw_type[~known.to_numpy()].value_counts().to_dict(),
        "duplicate_ids": dup_ids, "duplicate_rows": int(dup.sum()), "duplicate_groups": int(df.loc[dup, "duplicate_of"].nunique()),
        "merge_radius_m": float(merge_radius_m), "merge_window_s": float(merge_window_s),
        "replayable": int((df["has_location"] & df["has_time"]).sum()),
        "by_category": df["category"].value_counts().sort_index().to_dict(),
        "by_status": df["status"].value_counts().sort_index().to_dict(),
        "by_channel": df["channel"].value_counts().sort_index().to_dict(),
        "time_span_s": float(df["time_s"].max() - df["time_s"].min()),
    }
    return ImportedIncidents(df, stats, crs, t0, name)


def replay_incidents(city, imported: ImportedIncidents, *, strategy: str = "priority", seed: int = 0,
                     crews=None, fit: bool = True, hours: float | None = None, **kwargs):
    """Replay imported records through a dispatch strategy on ``city`` (no citizens, vendors or background).

    Parameters
    ----------
    city : gisdata.CityTwin
        City whose crews and roads serve the records.
    imported : ImportedIncidents
        From :func:`read_service_requests`.
    strategy : str
        Dispatch strategy.
    seed : int
        Seed (service times, referral delays).
    crews : int, Mapping or None
        Crews (see :func:`agents.runner.simulate_day`).
    fit : bool
        Map the records into the city's extent first (:meth:`ImportedIncidents.fit_to_extent`).
    hours : float, optional
        Horizon (h); default the records' span plus 4 h to finish the work.
    **kwargs
        Passed to :func:`agents.runner.simulate_day`.

    Returns
    -------
    AgentRunResult
        With ``metadata["import"]`` holding the import statistics (records not replayed are counted there).
    """
    from agents.runner import simulate_day

    imp = imported.fit_to_extent(city.extent) if fit else imported
    reports = imp.to_reports()
    if hours is None:
        hours = float(np.ceil((reports["time_s"].max() if len(reports) else 0.0) / 3600.0) + 4.0)
    kwargs.setdefault("patrol_detect_per_h", 0.0)  # replay the records only, no patrol findings
    res = simulate_day(city, hours=hours, strategy=strategy, seed=seed, n_citizens=0, n_vendors=0, crews=crews,
                       background=False, reports=reports, **kwargs)
    meta = {**res.metadata, "import": {k: v for k, v in imp.stats.items() if k != "missing_location_ids"},
            "not_replayed": int(imp.stats["rows"] - len(reports))}
    return dataclasses.replace(res, metadata=meta)
