"""Risk points: reduce ensemble member depths to probabilities, depths, onsets and lead times.

A risk point is a place a crew can drive to: a road segment, a sag point
(underpass, low crossing), a building entrance or a district (see
:mod:`hydraulics.ensemble` for how depth is defined at each, on the coupled
sewer + street model).  Manholes, the river and bridges are never risk
points.  For a depth threshold ``h`` (m) and member weights ``w_m``:

- ``probability`` = sum of ``w_m`` over members whose maximum depth exceeds
  ``h`` -- at road segments and sag points for at least
  :data:`~hydraulics.street_flood.MIN_DURATION_S` (10 min), as a road closure needs;
- ``expected_max_depth_m`` = weighted mean of the members' maximum depth;
- ``p90_max_depth_m`` = weighted 90th percentile of the maximum depth;
- ``onset`` = weighted median, over the exceeding members, of the first time
  the depth exceeds ``h`` (``onset_earliest`` = the earliest member);
- ``duration_h`` = weighted median time above ``h`` of the exceeding members;
- ``lead_h`` = onset minus issue time, h;
- districts also get ``flooded_road_m`` (expected length of their roads whose
  maximum exceeds ``h``, m) and ``share_closed`` (expected share of their road
  segments closed to cars, 0.15 m, at some time of the horizon);
- ``x``, ``y``: where a crew goes, m (the city's CRS); ``lon``, ``lat``: the same
  place in WGS84 degrees, and ``address``: a street name or the nearest named
  street (:func:`locate_points`; filled when :func:`compute_risk` is given the city).

A point is a *risk point* when ``probability >= prob_threshold``.  The
probability can only fall as ``h`` rises (fewer members exceed a higher
threshold), and it lies in [0, 1] because the weights sum to 1.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd

from gisdata.city import CityTwin
from gisdata.errors import TwinError
from hydraulics.ensemble import summarize_series

if TYPE_CHECKING:  # pragma: no cover
    from hydraulics.forecast import Forecast

RISK_COLUMNS = ("rank", "kind", "element_id", "probability", "expected_max_depth_m", "p90_max_depth_m",
                "onset", "onset_earliest", "lead_h", "duration_h", "is_risk_point", "flooded_road_m", "share_closed",
                "x", "y", "lon", "lat", "address")
TIMED_KINDS = ("road", "sag")
"""Kinds that must stay flooded for :data:`~hydraulics.street_flood.MIN_DURATION_S` to count."""
LAYER_OF_KIND = {"road": "roads", "entrance": "buildings", "district": "districts", "manhole": "nodes"}
"""City layer holding each kind's element (a sag point, named by its road segment, is placed by its ``x``, ``y``:
the segment's lowest cell)."""
"""Columns of the risk table (index ``point_id``)."""

ADDRESS_RADIUS_M = 150.0
"""How far a named street may be to name an unnamed road or a building entrance, m."""

ADDRESS_EN = {
    "street": "{street}",
    "near": "near {street}",
    "district": "{district}",
    "unnamed_near": "unnamed road near {street}",
    "unnamed_at": "unnamed road near {lat}, {lon}",
}
"""English forms of the address kinds of :func:`address_parts` (the plan translates them)."""


class RiskInputError(TwinError, ValueError):
    """A threshold or member table given to the risk reduction is invalid."""


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The ``q`` quantile (0-1) of ``values`` under ``weights`` (lower value at ties; NaN if empty).

    Examples
    --------
    >>> weighted_quantile(np.array([1.0, 2.0, 3.0]), np.array([1, 1, 1]) / 3, 0.5)
    2.0
    """
    v = np.asarray(values, dtype=float)
    w = np.asarray(weights, dtype=float)
    if len(v) == 0 or w.sum() <= 0:
        return float("nan")
    order = np.argsort(v, kind="stable")
    cw = np.cumsum(w[order]) / w.sum()
    k = int(np.searchsorted(cw, q - 1e-12))
    return float(v[order][min(k, len(v) - 1)])


def member_matrix(forecast: Forecast, threshold_m: float) -> dict[str, np.ndarray]:
    """Arrays (members x points) of max depth (m), onset (s from issue, NaN) and duration (s)."""
    names = forecast.ok_members
    n_p = len(forecast.points)
    mx = np.zeros((len(names), n_p))
    on = np.full((len(names), n_p), np.nan)
    du = np.zeros((len(names), n_p))
    for k, n in enumerate(names):
        s = summarize_series(forecast.series[n], n_p, threshold_m, forecast.surface_step_s)
        mx[k], on[k], du[k] = s["max_depth_m"], s["onset_s"], s["duration_s"]
    return {"max_depth_m": mx, "onset_s": on, "duration_s": du,
            "weights": np.array([forecast.weights[n] for n in names])}


def compute_risk(forecast: Forecast, *, threshold_m: float = 0.15, prob_threshold: float = 0.5,
                 keep_all: bool = False, city: CityTwin | None = None) -> pd.DataFrame:
    """Rank the points of a forecast by their flood risk.

    Parameters
    ----------
    forecast : Forecast
    threshold_m : float
        Depth that counts as waterlogging, m (0.15 m: cars cannot pass).
    prob_threshold : float
        Probability at and above which a point is a risk point, 0-1.
    keep_all : bool
        Keep points with zero probability (default: only those with some).
    city : CityTwin, optional
        The forecast's city: fills ``lon``, ``lat`` and ``address``
        (:func:`locate_points`); without it they are NaN and empty.

    Returns
    -------
    pandas.DataFrame
        Index ``point_id``, columns :data:`RISK_COLUMNS`, ranked by probability,
        then expected depth, then onset.  ``attrs`` holds the thresholds, issue
        time and horizon.
    """
    if not (np.isfinite(threshold_m) and threshold_m >= 0):
        raise RiskInputError(f"threshold_m={threshold_m!r} must be a depth >= 0 m")
    if not 0 < prob_threshold <= 1:
        raise RiskInputError(f"prob_threshold={prob_threshold!r} must be in (0, 1]")
    from hydraulics.street_flood import CLOSED_TO_CARS_M, MIN_DURATION_S

    mm = member_matrix(forecast, threshold_m)
    mx, on, du, w = mm["max_depth_m"], mm["onset_s"], mm["duration_s"], mm["weights"]
    kinds = forecast.points["kind"].to_numpy()
    timed = np.isin(kinds, TIMED_KINDS)
    exceed = (mx > threshold_m) & (~timed[None, :] | (du >= MIN_DURATION_S - 1e-6))
    prob = np.clip((w[:, None] * exceed).sum(axis=0), 0.0, 1.0)
    expected = (w[:, None] * mx).sum(axis=0)
    n_p = mx.shape[1]
    p90 = np.zeros(n_p)
    onset = np.full(n_p, np.nan)
    earliest = np.full(n_p, np.nan)
    dur = np.zeros(n_p)
    cols = np.flatnonzero(mx.max(axis=0) > 0)
    for j in cols:
        p90[j] = weighted_quantile(mx[:, j], w, 0.9)
        e = exceed[:, j]
        if e.any():
            onset[j] = weighted_quantile(on[e, j], w[e], 0.5)
            earliest[j] = np.nanmin(on[e, j])
            dur[j] = weighted_quantile(du[e, j], w[e], 0.5)
    pts = forecast.points
    flooded = np.full(n_p, np.nan)
    share = np.full(n_p, np.nan)
    if "district" in pts.columns and (kinds == "district").any():
        roads = np.flatnonzero(kinds == "road")
        r_dist = pts["district"].to_numpy()[roads]
        r_len = pts["length_m"].to_numpy(float)[roads]
        r_hit = exceed[:, roads]                                        # members x roads
        r_closed = mx[:, roads] >= CLOSED_TO_CARS_M
        for j in np.flatnonzero(kinds == "district"):
            sel = r_dist == pts["element_id"].iloc[j]
            if sel.any():
                flooded[j] = float(w @ (r_hit[:, sel] @ r_len[sel]))
                share[j] = float(w @ r_closed[:, sel].mean(axis=1))
    issue = pd.Timestamp(forecast.issue_time)
    xy = pts[["x", "y"]].to_numpy(float) if {"x", "y"} <= set(pts.columns) else np.full((n_p, 2), np.nan)
    table = pd.DataFrame({
        "kind": pts["kind"].to_numpy(), "element_id": pts["element_id"].to_numpy(),
        "probability": prob, "expected_max_depth_m": expected, "p90_max_depth_m": p90,
        "onset": issue + pd.to_timedelta(onset, unit="s"),
        "onset_earliest": issue + pd.to_timedelta(earliest, unit="s"),
        "lead_h": onset / 3600.0, "duration_h": dur / 3600.0,
        "is_risk_point": prob >= prob_threshold - 1e-12,
        "flooded_road_m": flooded, "share_closed": share, "x": xy[:, 0], "y": xy[:, 1],
    }, index=pts.index)
    if not keep_all:
        table = table[(table["probability"] > 0) | (table["expected_max_depth_m"] > 0)]
    if city is not None:
        table = pd.concat([table, locate_points(table, city)], axis=1)
    else:
        table = table.assign(lon=np.nan, lat=np.nan, address="")
    table = table.sort_values(["probability", "expected_max_depth_m", "lead_h"],
                              ascending=[False, False, True], kind="stable")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    table.attrs.update(threshold_m=threshold_m, prob_threshold=prob_threshold, issue_time=issue.isoformat(),
                       horizon_h=forecast.horizon_s / 3600.0, n_members=len(w), city=forecast.city_name)
    return table


def to_lonlat(x, y, crs) -> tuple[np.ndarray, np.ndarray]:
    """Projected ``x``, ``y`` (m, in ``crs``) as WGS84 longitude and latitude, degrees.

    Examples
    --------
    >>> lon, lat = to_lonlat([500000.0], [0.0], "EPSG:32650")
    >>> round(float(lon[0]), 6), round(float(lat[0]), 6)
    (117.0, 0.0)
    """
    from pyproj import Transformer

    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(np.asarray(x, float), np.asarray(y, float))
    return np.atleast_1d(np.asarray(lon, float)), np.atleast_1d(np.asarray(lat, float))


def _street(name) -> str:
    return "" if name is None or (isinstance(name, float) and np.isnan(name)) else str(name).strip()


def address_parts(risk: pd.DataFrame, city: CityTwin, *, radius_m: float = ADDRESS_RADIUS_M) -> list[tuple[str, dict]]:
    """Each row's address as a kind of :data:`ADDRESS_EN` and its fields.

    A road segment or sag point is named by its road's own name; an unnamed
    one, and a building entrance, by the nearest named road within
    ``radius_m``; a district by its name.  Without a name in reach the
    address is the place itself (``unnamed_at``, lat/lon to 5 decimals).

    Parameters
    ----------
    risk : pandas.DataFrame
        ``kind``, ``element_id``, ``x``, ``y`` (m, the city's CRS).
    city : CityTwin
    radius_m : float
        Search radius for the nearest named road, m.

    Returns
    -------
    list of (str, dict)
        One ``(kind, fields)`` per row.
    """
    import shapely

    roads = city.roads
    names = roads["name"].map(_street) if "name" in roads.columns else pd.Series("", index=roads.index)
    named = names[names != ""]
    tree = shapely.STRtree(roads.geometry.loc[named.index].values) if len(named) else None
    x = risk["x"].to_numpy(float)
    y = risk["y"].to_numpy(float)
    lon, lat = to_lonlat(x, y, city.crs) if len(risk) else (np.zeros(0), np.zeros(0))
    nearest = [""] * len(risk)
    ok = np.isfinite(x) & np.isfinite(y)
    if tree is not None and ok.any():
        idx = np.flatnonzero(ok)
        src, hit = tree.query_nearest(shapely.points(x[idx], y[idx]), max_distance=radius_m, all_matches=False)
        for k, j in zip(src, hit):
            nearest[idx[k]] = named.iloc[j]
    districts = city.districts["name"].map(_street) if "name" in city.districts.columns else pd.Series(dtype=str)
    out = []
    for k, (kind, eid) in enumerate(zip(risk["kind"].astype(str), risk["element_id"].astype(str))):
        own = names.get(eid, "") if kind in ("road", "sag") else ""
        if own:
            out.append(("street", {"street": own}))
        elif kind == "district" and districts.get(eid, ""):
            out.append(("district", {"district": districts[eid]}))
        elif nearest[k]:
            out.append(("unnamed_near" if kind in ("road", "sag") else "near", {"street": nearest[k]}))
        else:
            out.append(("unnamed_at", {"lat": f"{lat[k]:.5f}", "lon": f"{lon[k]:.5f}"}))
    return out


def locate_points(risk: pd.DataFrame, city: CityTwin) -> pd.DataFrame:
    """``lon``, ``lat`` (WGS84 degrees) and ``address`` (English, :data:`ADDRESS_EN`) of each row of ``risk``.

    Parameters
    ----------
    risk : pandas.DataFrame
        ``kind``, ``element_id``, ``x``, ``y`` (m, the city's CRS).
    city : CityTwin

    Returns
    -------
    pandas.DataFrame
        Same index as ``risk``.
    """
    if len(risk) == 0:
        return pd.DataFrame({"lon": pd.Series([], dtype=float), "lat": pd.Series([], dtype=float),
                             "address": pd.Series([], dtype=object)}, index=risk.index)
    lon, lat = to_lonlat(risk["x"].to_numpy(float), risk["y"].to_numpy(float), city.crs)
    address = [ADDRESS_EN[kind].format(**fields) for kind, fields in address_parts(risk, city)]
    return pd.DataFrame({"lon": lon, "lat": lat, "address": address}, index=risk.index)


def risk_points(risk: pd.DataFrame) -> pd.DataFrame:
    """Only the rows that are risk points (probability >= the table's threshold)."""
    return risk[risk["is_risk_point"]]


def summary_line(risk: pd.DataFrame, translate: Callable[..., str] | None = None) -> str:
    """``"N risk points in the next 72 h; the first expected at ..."``.

    Parameters
    ----------
    risk : DataFrame
        :func:`compute_risk`'s table.
    translate : callable, optional
        ``translate(key, **fields) -> str`` of a message catalogue (the workbench's
        ``twin.i18n.t`` with a language bound); keys ``risk.summary``,
        ``risk.summary.none``, ``risk.summary.count``, ``risk.summary.sep`` and
        ``plan.kind.<kind>``.  None: the English line below (the CLI's, word for word).

    Examples
    --------
    >>> t = pd.DataFrame({"kind": ["road"], "element_id": ["R1"], "is_risk_point": [True],
    ...                   "onset": [pd.Timestamp("2024-07-03 01:00")], "lead_h": [49.0]}, index=["road:R1"])
    >>> t.attrs.update(horizon_h=72.0)
    >>> summary_line(t)
    '1 risk points in the next 72 h; the first expected at 2024-07-03 01:00 (lead 49.0 h) at road R1 [1 road]'
    """
    rp = risk_points(risk)
    horizon = risk.attrs.get("horizon_h", 72.0)
    n = len(rp)
    if n == 0:
        if translate is not None:
            return translate("risk.summary.none", hours=f"{horizon:g}")
        return f"0 risk points in the next {horizon:g} h"
    counts = rp["kind"].value_counts()
    kinds = [k for k in ("road", "sag", "entrance", "district", "manhole") if k in counts]
    first = rp.sort_values("lead_h", kind="stable").iloc[0]
    when = pd.Timestamp(first["onset"]).strftime("%Y-%m-%d %H:%M")
    if translate is not None:
        parts = translate("risk.summary.sep").join(
            translate("risk.summary.count", n=int(counts[k]), kind=translate(f"plan.kind.{k}")) for k in kinds)
        return translate("risk.summary", n=n, hours=f"{horizon:g}", when=when, lead=f"{first['lead_h']:.1f}",
                         kind=translate(f"plan.kind.{first['kind']}"), element=first["element_id"], parts=parts)
    parts = ", ".join(f"{int(counts[k])} {k}{'s' if counts[k] > 1 and not k.endswith('s') else ''}" for k in kinds)
    return (f"{n} risk points in the next {horizon:g} h; the first expected at {when} "
            f"(lead {first['lead_h']:.1f} h) at {first['kind']} {first['element_id']} [{parts}]")


def risk_layer(risk: pd.DataFrame, city: CityTwin) -> gpd.GeoDataFrame:
    """The risk table as a map layer: roads as lines, entrances as building footprints, districts as
    polygons, sag points as points.

    Times are ISO strings so the layer writes to GeoPackage as is.
    """
    geoms = point_geometries(risk, city)
    gdf = gpd.GeoDataFrame(risk.copy(), geometry=geoms, crs=city.crs)
    for col in ("onset", "onset_earliest"):
        gdf[col] = gdf[col].map(lambda t: "" if pd.isna(t) else pd.Timestamp(t).isoformat())
    gdf.index.name = "point_id"
    return gdf


def point_geometries(risk: pd.DataFrame, city: CityTwin) -> list:
    """The geometry of each row's element (its city layer's, or a point at ``x``, ``y`` for a sag point)."""
    import shapely

    geoms = []
    for k, (kind, eid) in enumerate(zip(risk["kind"], risk["element_id"])):
        layer = LAYER_OF_KIND.get(kind)
        if layer is not None and eid in getattr(city, layer).index:
            geoms.append(getattr(city, layer).geometry.loc[eid])
        elif {"x", "y"} <= set(risk.columns):
            geoms.append(shapely.Point(float(risk["x"].iloc[k]), float(risk["y"].iloc[k])))
        else:
            raise RiskInputError(f"risk point {kind}:{eid} has no geometry in city '{city.name}'")
    return geoms


def plot_hydrographs(forecast: Forecast, risk: pd.DataFrame, path: str | Path, *, top: int = 6,
                     translate: Callable[..., str] | None = None) -> Path:
    """Depth over lead time at the ``top`` risk points: every member, the weighted mean, the threshold.

    ``translate(key, **fields)`` gives the labels in a catalogue's language (keys
    ``hydro.*`` and ``plan.kind.*``; the caller sets a font with the language's glyphs);
    None: English.

    Returns
    -------
    Path
        The PNG written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    english = {"hydro.mean": "weighted mean", "hydro.threshold": "threshold {thr} m", "hydro.depth": "depth (m)",
               "hydro.point": "#{rank} {kind} {element}: P={p}, E[max]={depth} m, onset lead {lead} h",
               "hydro.none": "no risk points", "hydro.lead": "lead time from issue (h)",
               "hydro.title": "{city}: surface depth, {n} members, issued {issued}"}

    def say(key: str, **fields) -> str:
        if translate is not None:
            return translate(key, **fields)
        return english.get(key, key.rsplit(".", 1)[-1]).format(**fields)

    rows = risk.head(top)
    thr = float(risk.attrs.get("threshold_m", 0.15))
    n = max(1, len(rows))
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.2 * n + 0.6), sharex=True, squeeze=False)
    horizon_h = forecast.horizon_s / 3600.0
    t = np.arange(0, forecast.horizon_s + forecast.surface_step_s, forecast.surface_step_s)
    pos = {p: k for k, p in enumerate(forecast.points.index)}
    for ax, (pid, row) in zip(axes[:, 0], rows.iterrows()):
        k = pos[pid]
        mean = np.zeros(len(t))
        for name in forecast.ok_members:
            s = forecast.series[name]
            s = s[s["point"] == k]
            y = np.zeros(len(t))
            idx = np.clip(np.round(s["t_s"].to_numpy() / forecast.surface_step_s).astype(int), 0, len(t) - 1)
            y[idx] = s["depth_m"].to_numpy()
            mean += forecast.weights[name] * y
            ax.plot(t / 3600.0, y, color="0.6", lw=0.7, alpha=0.6)
        ax.plot(t / 3600.0, mean, color="C0", lw=2, label=say("hydro.mean"))
        ax.axhline(thr, color="C3", ls="--", lw=1, label=say("hydro.threshold", thr=f"{thr:g}"))
        ax.set_ylabel(say("hydro.depth"))
        kind = say(f"plan.kind.{row['kind']}") if translate is not None else row["kind"]
        ax.set_title(say("hydro.point", rank=int(row["rank"]), kind=kind, element=row["element_id"],
                         p=f"{row['probability']:.2f}", depth=f"{row['expected_max_depth_m']:.2f}",
                         lead=f"{row['lead_h']:.1f}"), fontsize=9, loc="left")
    if len(rows) == 0:
        axes[0, 0].text(0.5, 0.5, say("hydro.none"), ha="center", va="center", transform=axes[0, 0].transAxes)
    axes[0, 0].legend(loc="upper left", fontsize=8)
    axes[-1, 0].set_xlabel(say("hydro.lead"))
    axes[-1, 0].set_xlim(0, horizon_h)
    fig.suptitle(say("hydro.title", city=forecast.city_name, n=len(forecast.ok_members),
                     issued=f"{pd.Timestamp(forecast.issue_time):%Y-%m-%d %H:%M}"), fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
