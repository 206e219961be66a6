"""Where ``forecast_staging`` stages crews: risk points from a forecast, the storm's hydraulics, or sensors.

The strategy (:class:`agents.strategies.ForecastStaging`) takes points
``(x_m, y_m, onset_s, weight)`` on the twin's clock.  This module chooses them,
in this order of preference:

===================  =========================================================
source               points
===================  =========================================================
``given``            ``strategy_params`` already hold ``risk_points`` or ``risk_map``
``forecast``         a risk-points table (``risk_points.csv`` of ``twin forecast``,
                     :func:`read_risk_points`): its flagged risk points, ranked
                     by probability, then expected depth, then onset
``hydraulic``        the storm's own SWMM run (:func:`compute_hydraulic_risk_points`):
                     every manhole whose overflow passed the incident threshold,
                     at its first onset, ranked by the greatest surface depth,
                     then volume, then onset.  This is a *perfect* forecast
                     (the same hydraulics the run replays): an upper bound on
                     what staging can gain
``sensor_manholes``  neither a storm nor a table: the lowest manholes with
                     water-level sensors (:func:`twin.coupler.hot_spot_risk_points`)
                     at the storm start (time 0 without a storm), with a warning
===================  =========================================================

Why the sensor fallback rather than no staging: a city without a forecast
stages at the manholes it knows flood, and that is what the scenario runner
and earlier runs did.  Without any rain it only ties crews up, so the run's
metadata (``coupler.staging.warning``) and ``twin simulate`` say so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gisdata.errors import TwinError

POINT_COLUMNS = ("x", "y", "onset_s", "weight", "node_id", "source")
"""Columns of a staging risk-point table (``x``, ``y`` in m, ``onset_s`` on the twin's clock, s)."""

DEFAULT_TOP_K = 5
"""Risk points handed to the strategy by default (it stages at most ``max_share`` of each department)."""


class StagingInputError(TwinError, ValueError):
    """A risk-points table cannot be turned into staging points (missing columns, unknown elements)."""


def _empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object if c in ("node_id", "source") else float) for c in POINT_COLUMNS})


def compute_hydraulic_risk_points(flood, *, top_k: int | None = DEFAULT_TOP_K, rank_by: str = "volume",
                                  min_spacing_m: float = 0.0) -> pd.DataFrame:
    """Risk points from a storm's hydraulics: the manholes that became flood incidents.

    Parameters
    ----------
    flood : twin.coupler.FloodSchedule
        The storm's SWMM run reduced to timed state (:func:`twin.coupler.compute_flood_schedule`).
        A manhole is a risk point when its overflow passed the incident
        threshold (``CouplingOptions.incident_volume_m3``): it has an incident.
    top_k : int or None
        Points kept (None: all).
    rank_by : {"volume", "depth"}
        ``volume``: greatest surface volume at the manhole (m3), then depth;
        ``depth``: greatest depth of the pool the water ran to (m), then volume.
        Ties go to the earlier onset.  Volume is the default because on gentle
        terrain most overflow spreads as sheet flow (pool depth 0).
    min_spacing_m : float
        A point closer than this to a better-ranked one is skipped (m), so crews
        spread over the flood instead of queuing at one pool.

    Returns
    -------
    DataFrame
        :data:`POINT_COLUMNS` plus ``max_depth_m`` (greatest surface depth, m),
        ``max_volume_m3`` (greatest surface volume, m3), ranked.  ``onset_s`` is
        the first incident at the node, s; ``weight`` is the ranking quantity.
    """
    if rank_by not in ("volume", "depth"):
        raise StagingInputError(f"rank_by={rank_by!r}; expected 'volume' or 'depth'")
    if not min_spacing_m >= 0:
        raise StagingInputError(f"min_spacing_m={min_spacing_m} must be >= 0")
    inc = flood.incidents
    if inc is None or not len(inc):
        return _empty().assign(max_depth_m=pd.Series(dtype=float), max_volume_m3=pd.Series(dtype=float))
    inc = inc.assign(node=inc["node"].astype(str))
    first = inc.sort_values("time_s", kind="stable").groupby("node", sort=False).first()
    nodes = flood.nodes
    if len(nodes):
        g = nodes.assign(node_id=nodes["node_id"].astype(str)).groupby("node_id")
        depth = g["surface_depth_m"].max().reindex(first.index)
        vol = g["surface_volume_m3"].max().reindex(first.index)
    else:
        depth = vol = pd.Series(np.nan, index=first.index)
    depth = depth.fillna(first["depth_m"]).astype(float)
    vol = vol.fillna(0.0).astype(float)
    keys = ["max_volume_m3", "max_depth_m"] if rank_by == "volume" else ["max_depth_m", "max_volume_m3"]
    out = pd.DataFrame({"x": first["x"].astype(float), "y": first["y"].astype(float),
                        "onset_s": first["time_s"].astype(float), "weight": vol if rank_by == "volume" else depth,
                        "node_id": first.index, "source": "hydraulic", "max_depth_m": depth,
                        "max_volume_m3": vol}).reset_index(drop=True)
    out = out.sort_values([*keys, "onset_s", "node_id"], ascending=[False, False, True, True], kind="stable")
    if min_spacing_m > 0:
        xy = out[["x", "y"]].to_numpy(float)
        keep: list[int] = []
        for i in range(len(out)):
            if all(np.hypot(*(xy[i] - xy[j])) >= min_spacing_m for j in keep):
                keep.append(i)
                if top_k is not None and len(keep) >= top_k:
                    break
        out = out.iloc[keep]
    return (out if top_k is None else out.head(int(top_k))).reset_index(drop=True)


def read_risk_points(source, city, *, top_k: int | None = None, day=None) -> pd.DataFrame:
    """Staging points from a forecast risk-points table (a CSV path or a DataFrame).

    The table of ``twin forecast`` (``risk_points.csv``, columns of
    :data:`hydraulics.risk.RISK_COLUMNS`) is read as it is; simpler tables work too.

    Parameters
    ----------
    source : str, Path or DataFrame
        The table.  Position: ``x``, ``y`` (m, the city's CRS), or ``node_id``
        (a manhole), or ``kind`` + ``element_id`` (``manhole`` -> node,
        ``road`` -> the middle of the road, ``district`` -> its centroid).
        Onset on the twin's clock: ``onset_s`` (s), else ``onset`` (timestamps:
        seconds since midnight of ``day``), else ``lead_h`` (h after the issue,
        taken as time 0), else 0.  Optional ``probability`` (0-1, the weight;
        default 1) and ``is_risk_point`` (only flagged rows are kept).
    city : gisdata.CityTwin
        Gives the positions of element IDs.
    top_k : int or None
        Rows kept after ranking (None: all).
    day : date-like, optional
        Day whose midnight is time 0 for ``onset`` timestamps (default: the day
        of the earliest onset kept, i.e. the simulated day is the flood's day).

    Returns
    -------
    DataFrame
        :data:`POINT_COLUMNS` plus ``probability``; ranked by probability, then
        expected depth (if given), then onset.  ``attrs["day"]`` holds the
        midnight used for timestamps (or None).

    Examples
    --------
    >>> from agents.gridcity import make_grid_city
    >>> t = pd.DataFrame({"x": [10.0, 20.0], "y": [0.0, 0.0], "onset_s": [3600.0, 1800.0],
    ...                   "probability": [0.6, 0.9]})
    >>> read_risk_points(t, make_grid_city(3, 3))[["x", "onset_s", "weight"]].values.tolist()
    [[20.0, 1800.0, 0.9], [10.0, 3600.0, 0.6]]
    """
    if isinstance(source, pd.DataFrame):
        df = source.copy()
        name = "risk-points table"
    else:
        path = Path(source)
        name = str(path)
        try:
            df = pd.read_csv(path)
        except FileNotFoundError:
            raise StagingInputError(f"{name}: risk-points file not found") from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise StagingInputError(f"{name}: not a readable CSV table ({exc})") from None
    df = df.reset_index(drop=True)
    if "is_risk_point" in df.columns:
        flag = df["is_risk_point"].map(lambda v: str(v).strip().lower() in ("true", "1", "yes"))
        df = df[flag].reset_index(drop=True)
    xy = risk_point_xy(df, city, name)
    prob = pd.to_numeric(df["probability"], errors="coerce") if "probability" in df.columns \
        else pd.Series(1.0, index=df.index)
    if ((prob < 0) | (prob > 1)).any():
        raise StagingInputError(f"{name}: probability must be in [0, 1]; got {prob[(prob < 0) | (prob > 1)].tolist()[:3]}")
    onset, midnight = _onsets(df, name, day)
    node_id = df["node_id"].astype(str) if "node_id" in df.columns else (
        df["element_id"].astype(str).where(df.get("kind", pd.Series("", index=df.index)).astype(str) == "manhole", "")
        if "element_id" in df.columns else pd.Series("", index=df.index))
    depth = pd.to_numeric(df["expected_max_depth_m"], errors="coerce") if "expected_max_depth_m" in df.columns \
        else pd.Series(0.0, index=df.index)
    out = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "onset_s": onset, "weight": prob.fillna(1.0).astype(float),
                        "node_id": node_id, "source": "forecast", "probability": prob.astype(float),
                        "_depth": depth.fillna(0.0).astype(float)})
    out = out[np.isfinite(out["onset_s"]) & np.isfinite(out["x"]) & np.isfinite(out["y"])]
    out = out.sort_values(["weight", "_depth", "onset_s"], ascending=[False, False, True], kind="stable")
    out = out.drop(columns="_depth").reset_index(drop=True)
    if top_k is not None:
        out = out.head(int(top_k))
    out.attrs["day"] = None if midnight is None else midnight.isoformat()
    return out


def risk_point_xy(df: pd.DataFrame, city, name: str) -> np.ndarray:
    """Position of each risk-point row, m: its ``x``, ``y`` where given and finite, else its element's place
    (a manhole, the middle of a road, a district's or building's representative point)."""
    out = np.full((len(df), 2), np.nan)
    if {"x", "y"} <= set(df.columns):
        out = np.column_stack([pd.to_numeric(df["x"], errors="coerce").to_numpy(float),
                               pd.to_numeric(df["y"], errors="coerce").to_numpy(float)])
        if np.isfinite(out).all() or not ({"node_id", "element_id"} & set(df.columns)):
            return out
    if "node_id" in df.columns:
        kinds = pd.Series("manhole", index=df.index)
        ids = df["node_id"].astype(str)
    elif "element_id" in df.columns:
        kinds = df["kind"].astype(str) if "kind" in df.columns else pd.Series("manhole", index=df.index)
        ids = df["element_id"].astype(str)
    else:
        raise StagingInputError(f"{name}: columns {list(df.columns)} give no position; expected x and y (m), "
                                "node_id, or kind and element_id")
    layers = {"manhole": city.nodes, "road": city.roads, "district": city.districts, "entrance": city.buildings}
    todo = ~np.isfinite(out).all(axis=1)
    bad_kind = sorted(set(kinds[todo]) - set(layers))
    if bad_kind:
        raise StagingInputError(f"{name}: kind {bad_kind} without x, y; expected x and y (m) or one of "
                                f"{sorted(layers)}")
    missing = []
    for i in np.flatnonzero(todo):
        k, e = kinds.iloc[i], ids.iloc[i]
        layer = layers[k]
        if e not in layer.index.astype(str):
            missing.append(f"{k} {e}")
            continue
        geom = layer.geometry[layer.index.astype(str) == e].iloc[0]
        p = geom if geom.geom_type == "Point" else (
            geom.interpolate(0.5, normalized=True) if "Line" in geom.geom_type else geom.representative_point())
        out[i] = (p.x, p.y)
    if missing:
        raise StagingInputError(f"{name}: {len(missing)} element(s) not in city '{city.name}': {missing[:5]} "
                                "(was the forecast made for another city?)")
    return out


def _onsets(df: pd.DataFrame, name: str, day) -> tuple[np.ndarray, pd.Timestamp | None]:
    if "onset_s" in df.columns:
        return pd.to_numeric(df["onset_s"], errors="coerce").to_numpy(float), None
    if "onset" in df.columns:
        t = pd.to_datetime(df["onset"], errors="coerce")
        if len(t) and t.isna().all() and df["onset"].notna().any():
            raise StagingInputError(f"{name}: onset {df['onset'].dropna().iloc[0]!r} is not a timestamp")
        if t.notna().any():
            midnight = pd.Timestamp(day).normalize() if day is not None else t.min().normalize()
            return ((t - midnight).dt.total_seconds()).to_numpy(float), midnight
        return np.full(len(df), np.nan), None
    if "lead_h" in df.columns:
        return pd.to_numeric(df["lead_h"], errors="coerce").to_numpy(float) * 3600.0, None
    return np.zeros(len(df)), None


def table_sha256(path) -> str:
    """SHA-256 of a file (hashed into the run parameters)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def as_strategy_points(points: pd.DataFrame) -> list[tuple[float, float, float, float]]:
    """``(x_m, y_m, onset_s, weight)`` tuples for ``forecast_staging``."""
    return [(float(x), float(y), float(t), float(w))
            for x, y, t, w in points[["x", "y", "onset_s", "weight"]].itertuples(index=False)]


def plan_staging(city, strategy: str, *, params: Mapping[str, Any] | None = None, risk_points=None, flood=None,
                 storm: bool = False, storm_start_s: float | None = None, horizon_s: float | None = None,
                 top_k: int = DEFAULT_TOP_K) -> tuple[dict | None, dict]:
    """Strategy keywords and a staging record for one run (see the module docstring for the order).

    Parameters
    ----------
    city : gisdata.CityTwin
    strategy : str
        Only ``forecast_staging`` is given points; other strategies get ``params`` back.
    params : Mapping, optional
        The caller's strategy keywords (``risk_points``/``risk_map`` there win).
    risk_points : DataFrame, str or Path, optional
        A forecast risk-points table (:func:`read_risk_points`).
    flood : FloodSchedule, optional
        The storm's hydraulics (for the ``hydraulic`` source).
    storm : bool
        True when the run has a storm (onset of the sensor fallback = ``storm_start_s``).
    storm_start_s, horizon_s : float, optional
        Storm start and run length on the twin's clock, s (used for warnings).
    top_k : int
        Points taken from a table or the hydraulics.

    Returns
    -------
    (dict or None, dict)
        The strategy keywords, and ``{"source", "n_points", "points", "warning"}``
        (``warning`` is ``""`` when there is nothing to say).
    """
    from twin.coupler import hot_spot_risk_points

    out = dict(params or {})
    if strategy != "forecast_staging":
        info = {"source": "", "n_points": 0, "points": [], "warning": ""}
        if risk_points is not None:
            info["warning"] = f"risk points ignored: strategy '{strategy}' does not stage crews"
        return out or None, info
    warning = ""
    table = None
    if "risk_points" in out or "risk_map" in out:
        source = "given"
        n = len(out["risk_points"]) if "risk_points" in out else min(len(out["risk_map"]), int(out.get("top_k", 5)))
    elif risk_points is not None:
        source = "forecast"
        normalised = isinstance(risk_points, pd.DataFrame) and set(POINT_COLUMNS) <= set(risk_points.columns)
        table = risk_points if normalised else read_risk_points(risk_points, city)
        table = table.head(int(top_k))
        if not len(table):
            warning = "the risk-points table has no risk point: no crews are staged"
        elif horizon_s is not None and (table["onset_s"] >= horizon_s).all():
            warning = (f"every risk-point onset is after the end of the run ({horizon_s / 3600:g} h; "
                       f"onset timestamps count from midnight {table.attrs.get('day')}): crews are not staged")
        out["risk_points"] = as_strategy_points(table)
        n = len(table)
    elif flood is not None:
        source = "hydraulic"
        table = compute_hydraulic_risk_points(flood, top_k=top_k)
        if not len(table):
            warning = "the storm floods no manhole past the incident threshold: no crews are staged"
        out["risk_points"] = as_strategy_points(table)
        n = len(table)
    else:
        source = "sensor_manholes"
        onset = float(storm_start_s or 0.0) if storm else 0.0
        pts = hot_spot_risk_points(city, onset_s=onset)
        out["risk_points"] = pts
        n = len(pts)
        warning = (f"forecast_staging has no forecast (--risk-points) and no storm: it falls back to staging at the "
                   f"{n} lowest manholes with water-level sensors from t={onset / 3600:g} h")
        if storm:
            warning = (f"forecast_staging has no forecast and no hydraulic risk map: staging at the {n} lowest "
                       f"manholes with water-level sensors from the storm start ({onset / 3600:g} h)")
    points = table.drop(columns=[c for c in table.columns if c not in POINT_COLUMNS]).to_dict("records") \
        if table is not None else [{"x": p[0], "y": p[1], "onset_s": p[2]} for p in out.get("risk_points", [])]
    info = {"source": source, "n_points": int(n), "points": points, "warning": warning}
    if table is not None and table.attrs.get("day"):
        info["onset_day"] = table.attrs["day"]
    return out or None, info


__all__ = ["DEFAULT_TOP_K", "POINT_COLUMNS", "StagingInputError", "as_strategy_points", "compute_hydraulic_risk_points",
           "plan_staging", "read_risk_points", "table_sha256"]
