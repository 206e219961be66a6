"""Where crews go: road segments, building entrances and districts flooded on the 2D street surface.

A flood map is a grid; a crew needs an address.  :func:`street_flood`
reduces the 2D depths of a run (snapshots over time, on the grid of an
:class:`~hydraulics.urban_surface.UrbanSurface`) to the places of the city:

- **road segments**: a segment's *effective depth* at a time is the depth
  exceeded on at least ``min_length_m`` of its carriageway (the k-th deepest
  of its carriageway cells, k = ``min_length_m`` x width / cell area), so one
  deep cell at a drain does not close a street, and a flooded street is not
  missed because its water is shallow in places.  The same depth gives the
  closures (:data:`CLOSED_TO_CARS_M` to cars, :data:`CLOSED_TO_ALL_M` to
  everyone) and the risk points: a segment is a risk point when its
  effective depth stays at or above ``threshold_m`` for at least
  ``min_duration_s``;
- **building entrances**: the deepest water in the cells around a
  building's footprint (where its doors are);
- **districts**: flooded road length and the share of road segments closed
  to cars.

River cells are not street cells, so water in the river, on its banks'
other side or under a bridge deck is never counted here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
from scipy import ndimage

from gisdata.errors import TwinError
from gisdata.limits import check_range
from hydraulics.urban_surface import LANE_WIDTH_M, UrbanSurface

CLOSED_TO_CARS_M = 0.15
"""Effective depth from which a road is closed to cars, m."""
CLOSED_TO_ALL_M = 0.30
"""Effective depth from which a road is closed to everyone, m."""
MIN_LENGTH_M = 20.0
"""Length of carriageway that must be under water for a segment to count, m."""
MIN_DURATION_S = 600.0
"""Time a segment must stay flooded to be a risk point, s."""


class StreetFloodError(TwinError, ValueError):
    """Depth snapshots that do not fit the surface, or out of time order."""


@dataclass(frozen=True)
class StreetFlood:
    """Flooding of a city's places over a run.

    Parameters
    ----------
    roads : pandas.DataFrame
        Index ``road_id``: ``max_depth_m`` (largest effective depth), ``onset_s``
        (first time at or above the threshold, NaN if never), ``flooded_s``
        (time at or above it), ``closed_to_cars_s``, ``closed_s``,
        ``max_flooded_length_m``, ``is_risk_point``, ``district_id``.
    entrances : pandas.DataFrame
        Index ``building_id``: ``max_depth_m`` around the footprint, ``onset_s``,
        ``is_risk_point`` (depth at or above the threshold at any time).
    districts : pandas.DataFrame
        Index ``district_id``: ``flooded_road_length_m`` (largest over time),
        ``share_closed_to_cars`` (largest share of its segments closed at one time).
    threshold_m : float
        Depth threshold of the risk points, m.
    """

    roads: pd.DataFrame
    entrances: pd.DataFrame
    districts: pd.DataFrame
    threshold_m: float

    def risk_points(self) -> pd.DataFrame:
        """Road segments and building entrances that are risk points, deepest first.

        Columns ``kind`` (``road`` or ``entrance``), ``element_id``, ``max_depth_m``, ``onset_s``.
        """
        r = self.roads[self.roads["is_risk_point"]]
        e = self.entrances[self.entrances["is_risk_point"]]
        table = pd.concat([
            pd.DataFrame({"kind": "road", "element_id": r.index, "max_depth_m": r["max_depth_m"].to_numpy(),
                          "onset_s": r["onset_s"].to_numpy()}),
            pd.DataFrame({"kind": "entrance", "element_id": e.index, "max_depth_m": e["max_depth_m"].to_numpy(),
                          "onset_s": e["onset_s"].to_numpy()}),
        ], ignore_index=True)
        return table.sort_values(["max_depth_m", "element_id"], ascending=[False, True], ignore_index=True)

    def closures_summary(self) -> dict:
        """Segments ever closed to cars and to everyone (effective depth over the closure depths)."""
        return {"roads_closed_cars": int((self.roads["max_depth_m"] >= CLOSED_TO_CARS_M).sum()),
                "roads_closed_all": int((self.roads["max_depth_m"] >= CLOSED_TO_ALL_M).sum())}


def _road_labels(surface: UrbanSurface, roads: gpd.GeoDataFrame, lane_width_m: float) -> np.ndarray:
    """Grid of the road each carriageway cell belongs to (its position in ``roads``; -1 elsewhere)."""
    from rasterio.features import rasterize

    widths = roads["lanes"].clip(lower=1).to_numpy(float) * lane_width_m
    shapes = [(g.buffer(w / 2.0, cap_style="flat"), k) for k, (g, w) in enumerate(zip(roads.geometry, widths))
              if g is not None and not g.is_empty]
    labels = rasterize(shapes, out_shape=surface.shape, transform=surface.ground.transform, fill=-1,
                       dtype="int32") if shapes else np.full(surface.shape, -1, dtype=np.int32)
    return np.where(surface.carriageway, labels, -1)


def _entrance_labels(surface: UrbanSurface, buildings: gpd.GeoDataFrame) -> np.ndarray:
    """Grid of the building whose footprint a street cell touches (-1 elsewhere)."""
    from rasterio.features import rasterize

    shapes = [(g, k + 1) for k, g in enumerate(buildings.geometry) if g is not None and not g.is_empty]
    if not shapes:
        return np.full(surface.shape, -1, dtype=np.int32)
    inside = rasterize(shapes, out_shape=surface.shape, transform=surface.ground.transform, fill=0, dtype="int32")
    ring = ndimage.grey_dilation(inside, footprint=np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool))
    street = ~surface.outside & ~surface.river & (inside == 0)
    return np.where(street & (ring > 0), ring - 1, -1).astype(np.int32)


def _kth_deepest(depth: np.ndarray, labels: np.ndarray, k: np.ndarray, n_labels: int) -> np.ndarray:
    """For each label, the k-th largest depth among its cells (0 when it has fewer than k wet cells)."""
    cells = np.flatnonzero((labels >= 0) & (depth > 0))
    out = np.zeros(n_labels)
    if cells.size == 0:
        return out
    lab = labels.ravel()[cells]
    d = depth.ravel()[cells]
    order = np.lexsort((-d, lab))
    lab, d = lab[order], d[order]
    starts = np.searchsorted(lab, np.arange(n_labels))
    ends = np.searchsorted(lab, np.arange(n_labels), side="right")
    pick = starts + k - 1
    ok = pick < ends
    out[ok] = d[pick[ok]]
    return out


def street_flood(surface: UrbanSurface, city, snapshots: Iterable[tuple[float, np.ndarray]], *,
                 threshold_m: float = CLOSED_TO_CARS_M, min_length_m: float = MIN_LENGTH_M,
                 min_duration_s: float = MIN_DURATION_S, lane_width_m: float = LANE_WIDTH_M) -> StreetFlood:
    """Reduce 2D depth snapshots to flooded roads, entrances and districts.

    Parameters
    ----------
    surface : UrbanSurface
        The grid the depths are on (from :func:`~hydraulics.urban_surface.build_urban_surface`).
    city : CityTwin
        Roads (``lanes``), buildings and districts.
    snapshots : iterable of (float, ndarray)
        (time in s, depth grid in m) in time order; each depth holds until the next time, so
        durations need at least two snapshots (the last one adds no time).
    threshold_m : float
        Depth of a risk point, m (default: closed to cars).
    min_length_m : float
        Carriageway length that must be under water, m.
    min_duration_s : float
        Time a segment must stay flooded to be a risk point, s.
    lane_width_m : float
        Lane width used to find each segment's carriageway, m.

    Returns
    -------
    StreetFlood
    """
    check_range("threshold_m", threshold_m, 0.0, 10.0, "m", lo_inclusive=False)
    check_range("min_length_m", min_length_m, 0.0, 1000.0, "m")
    check_range("min_duration_s", min_duration_s, 0.0, 86_400.0, "s")
    roads, buildings = city.roads, city.buildings
    cell_area = surface.ground.cell_size_m ** 2
    road_lab = _road_labels(surface, roads, lane_width_m)
    widths = roads["lanes"].clip(lower=1).to_numpy(float) * lane_width_m
    k = np.maximum(1, np.ceil(min_length_m * widths / cell_area)).astype(int)
    ent_lab = _entrance_labels(surface, buildings)
    n_r, n_b = len(roads), len(buildings)

    stats = {name: np.zeros(n_r) for name in ("max", "flooded", "cars", "all", "length")}
    onset = np.full(n_r, np.nan)
    ent_max = np.zeros(n_b)
    ent_onset = np.full(n_b, np.nan)
    district_of = _district_of(roads, city)
    d_names = list(city.districts.index)
    d_length = np.zeros(len(d_names))
    d_share = np.zeros(len(d_names))
    frames = list(snapshots)
    for idx, (t, depth) in enumerate(frames):
        depth = np.asarray(depth, dtype="float64")
        if depth.shape != surface.shape:
            raise StreetFloodError(f"depth snapshot at t={t} s has shape {depth.shape}; the surface is {surface.shape}")
        if idx and t < frames[idx - 1][0]:
            raise StreetFloodError(f"depth snapshots out of time order: t={t} s follows t={frames[idx - 1][0]} s")
        dt = (frames[idx + 1][0] - t) if idx + 1 < len(frames) else 0.0
        eff = _kth_deepest(depth, road_lab, k, n_r)
        wet_cells = np.bincount(road_lab[(road_lab >= 0) & (depth >= threshold_m)], minlength=n_r)
        length = wet_cells * cell_area / widths
        stats["max"] = np.maximum(stats["max"], eff)
        stats["length"] = np.maximum(stats["length"], length)
        hit = eff >= threshold_m
        onset = np.where(hit & np.isnan(onset), t, onset)
        stats["flooded"] += hit * dt
        cars = eff >= CLOSED_TO_CARS_M
        stats["cars"] += cars * dt
        stats["all"] += (eff >= CLOSED_TO_ALL_M) * dt
        if n_b:
            e = np.zeros(n_b)
            sel = ent_lab >= 0
            np.maximum.at(e, ent_lab[sel], depth[sel])
            ent_max = np.maximum(ent_max, e)
            ent_onset = np.where((e >= threshold_m) & np.isnan(ent_onset), t, ent_onset)
        if d_names:
            d_length = np.maximum(d_length, np.bincount(district_of[district_of >= 0],
                                                        weights=(length * hit)[district_of >= 0],
                                                        minlength=len(d_names)))
            n_in = np.bincount(district_of[district_of >= 0], minlength=len(d_names))
            closed_in = np.bincount(district_of[district_of >= 0], weights=cars[district_of >= 0].astype(float),
                                    minlength=len(d_names))
            d_share = np.maximum(d_share, np.divide(closed_in, n_in, out=np.zeros(len(d_names)), where=n_in > 0))
    road_table = pd.DataFrame({
        "max_depth_m": stats["max"], "onset_s": onset, "flooded_s": stats["flooded"],
        "closed_to_cars_s": stats["cars"], "closed_s": stats["all"],
        "max_flooded_length_m": stats["length"],
        "is_risk_point": (stats["max"] >= threshold_m) & (stats["flooded"] >= min_duration_s),
        "district_id": [d_names[i] if i >= 0 else "" for i in district_of],
    }, index=roads.index)
    entrances = pd.DataFrame({"max_depth_m": ent_max, "onset_s": ent_onset,
                              "is_risk_point": ent_max >= threshold_m}, index=buildings.index)
    districts = pd.DataFrame({"flooded_road_length_m": d_length, "share_closed_to_cars": d_share},
                             index=pd.Index(d_names, name=city.districts.index.name))
    return StreetFlood(road_table, entrances, districts, float(threshold_m))


def _district_of(roads: gpd.GeoDataFrame, city) -> np.ndarray:
    """Position in ``city.districts`` of the district holding each road's midpoint (-1 if none)."""
    if len(city.districts) == 0 or len(roads) == 0:
        return np.full(len(roads), -1)
    mid = gpd.GeoDataFrame(geometry=roads.geometry.interpolate(0.5, normalized=True), crs=roads.crs)
    mid["pos"] = np.arange(len(roads))
    d = city.districts.reset_index(drop=True)
    d["dpos"] = np.arange(len(d))
    # "intersects", not "within": a midpoint on the line between two districts belongs to the first
    joined = gpd.sjoin(mid, d[["dpos", "geometry"]], how="left", predicate="intersects")
    joined = joined.sort_values("dpos")
    joined = joined[~joined.index.duplicated(keep="first")].sort_index()
    return joined["dpos"].fillna(-1).astype(int).to_numpy()

