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
- **sag points** (segments the city marks in its ``sag`` column: an
  underpass or a low crossing, see :func:`gisdata.streets.place_sags`): the
  deepest water on the segment's carriageway, where its low point is; a sag
  is a risk point (kind ``sag``) when that depth stays at or above
  ``threshold_m`` for at least ``min_duration_s``.  The segment itself is
  still a road segment with its effective depth (a flooded underpass closes
  its road once 20 m of it are under water);
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
        ``max_flooded_length_m``, ``is_risk_point``, ``district_id``, ``sag`` (the
        city's ``sag`` column, ``""`` off a sag), ``sag_max_depth_m`` (deepest water on
        the carriageway of a sag segment; NaN off a sag), ``sag_onset_s`` and
        ``is_sag_risk_point``.
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
        """Road segments, sag points and building entrances that are risk points, deepest first.

        Columns ``kind`` (``road``, ``sag`` or ``entrance``), ``element_id`` (a ``sag``
        point is named by its road segment), ``max_depth_m``, ``onset_s``.
        """
        r = self.roads[self.roads["is_risk_point"]]
        sag = self.roads[self.roads["is_sag_risk_point"]] if "is_sag_risk_point" in self.roads else r.iloc[:0]
        e = self.entrances[self.entrances["is_risk_point"]]
        table = pd.concat([
            pd.DataFrame({"kind": "road", "element_id": r.index, "max_depth_m": r["max_depth_m"].to_numpy(),
                          "onset_s": r["onset_s"].to_numpy()}),
            pd.DataFrame({"kind": "sag", "element_id": sag.index,
                          "max_depth_m": sag["sag_max_depth_m"].to_numpy(float) if len(sag) else [],
                          "onset_s": sag["sag_onset_s"].to_numpy(float) if len(sag) else []}),
            pd.DataFrame({"kind": "entrance", "element_id": e.index, "max_depth_m": e["max_depth_m"].to_numpy(),
                          "onset_s": e["onset_s"].to_numpy()}),
        ], ignore_index=True)
        return table.sort_values(["max_depth_m", "element_id"], ascending=[False, True], ignore_index=True)

    def closures_summary(self) -> dict:
        """Segments ever closed to cars and to everyone (effective depth over the closure depths).

        ``roads_closed_cars_at_sags`` counts the closed segments the city marks as sags.
        """
        closed = self.roads["max_depth_m"] >= CLOSED_TO_CARS_M
        at_sag = (self.roads["sag"] != "") if "sag" in self.roads else closed & False
        return {"roads_closed_cars": int(closed.sum()),
                "roads_closed_all": int((self.roads["max_depth_m"] >= CLOSED_TO_ALL_M).sum()),
                "roads_closed_cars_at_sags": int((closed & at_sag).sum())}


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


def road_depth_reader(surface: UrbanSurface, city, *, min_length_m: float = MIN_LENGTH_M,
                      lane_width_m: float = LANE_WIDTH_M):
    """A function ``depth grid (m) -> effective depth of each road segment (m, city.roads order)``.

    The effective depth is the one rule of this module: the depth that at least
    ``min_length_m`` of the segment's carriageway stands under.  The labels are
    computed once, so a coupled run can ask at every report time.
    """
    labels = _road_labels(surface, city.roads, lane_width_m)
    widths = city.roads["lanes"].clip(lower=1).to_numpy(float) * lane_width_m
    k = np.maximum(1, np.ceil(min_length_m * widths / surface.ground.cell_size_m ** 2)).astype(int)
    n = len(city.roads)
    return lambda depth: _kth_deepest(np.asarray(depth, dtype="float64"), labels, k, n)


class StreetFloodRecorder:
    """Accumulates :class:`StreetFlood` from depth snapshots as a run goes (no snapshot is kept).

    Parameters are those of :func:`street_flood`; call :meth:`add` with each
    snapshot in time order, then :meth:`result`.
    """

    def __init__(self, surface: UrbanSurface, city, *, threshold_m: float = CLOSED_TO_CARS_M,
                 min_length_m: float = MIN_LENGTH_M, min_duration_s: float = MIN_DURATION_S,
                 lane_width_m: float = LANE_WIDTH_M):
        check_range("threshold_m", threshold_m, 0.0, 10.0, "m", lo_inclusive=False)
        check_range("min_length_m", min_length_m, 0.0, 1000.0, "m")
        check_range("min_duration_s", min_duration_s, 0.0, 86_400.0, "s")
        self.surface, self.city = surface, city
        self.threshold_m, self.min_duration_s = float(threshold_m), float(min_duration_s)
        roads, buildings = city.roads, city.buildings
        self._cell_area = surface.ground.cell_size_m ** 2
        self._road_lab = _road_labels(surface, roads, lane_width_m)
        self._widths = roads["lanes"].clip(lower=1).to_numpy(float) * lane_width_m
        self._k = np.maximum(1, np.ceil(min_length_m * self._widths / self._cell_area)).astype(int)
        self._ent_lab = _entrance_labels(surface, buildings)
        self._ent_sel = self._ent_lab >= 0
        self._n_r, self._n_b = len(roads), len(buildings)
        self._stats = {name: np.zeros(self._n_r) for name in ("max", "flooded", "cars", "all", "length")}
        self._onset = np.full(self._n_r, np.nan)
        self._ent_max = np.zeros(self._n_b)
        self._ent_onset = np.full(self._n_b, np.nan)
        self._district_of = _district_of(roads, city)
        self._in_district = self._district_of >= 0
        self._d_names = list(city.districts.index)
        self._d_length = np.zeros(len(self._d_names))
        self._d_share = np.zeros(len(self._d_names))
        # sag points: each sag segment's carriageway cells, for its deepest water
        sag = roads["sag"].fillna("").astype(str).to_numpy() if "sag" in roads.columns else np.full(self._n_r, "")
        self._sag = sag
        self._sag_pos = np.flatnonzero(sag != "")
        which = np.full(self._n_r + 1, -1)
        which[self._sag_pos] = np.arange(len(self._sag_pos))
        lab = self._road_lab.ravel()
        self._sag_cells = np.flatnonzero(which[lab] >= 0)  # -1 (no road) picks which[-1] = -1
        self._sag_of_cell = which[lab[self._sag_cells]]
        self._sag_max = np.zeros(len(self._sag_pos))
        self._sag_onset = np.full(len(self._sag_pos), np.nan)
        self._sag_flooded = np.zeros(len(self._sag_pos))
        self._last: tuple | None = None  # t, hit, cars, all, sag hit

    def add(self, t_s: float, depth: np.ndarray) -> None:
        """Take the depth grid (m) at time ``t_s`` (s); it holds until the next snapshot."""
        depth = np.asarray(depth, dtype="float64")
        if depth.shape != self.surface.shape:
            raise StreetFloodError(f"depth snapshot at t={t_s} s has shape {depth.shape}; "
                                   f"the surface is {self.surface.shape}")
        st = self._stats
        if self._last is not None:  # the previous state held from its time until now
            t0, hit0, cars0, all0, sag0 = self._last
            if t_s < t0:
                raise StreetFloodError(f"depth snapshots out of time order: t={t_s} s follows t={t0} s")
            dt = t_s - t0
            st["flooded"] += hit0 * dt
            st["cars"] += cars0 * dt
            st["all"] += all0 * dt
            self._sag_flooded += sag0 * dt
        eff = _kth_deepest(depth, self._road_lab, self._k, self._n_r)
        lab = self._road_lab
        wet_cells = np.bincount(lab[(lab >= 0) & (depth >= self.threshold_m)], minlength=self._n_r)
        length = wet_cells * self._cell_area / self._widths
        st["max"] = np.maximum(st["max"], eff)
        st["length"] = np.maximum(st["length"], length)
        hit = eff >= self.threshold_m
        cars = eff >= CLOSED_TO_CARS_M
        self._onset = np.where(hit & np.isnan(self._onset), t_s, self._onset)
        deepest = np.zeros(len(self._sag_pos))
        np.maximum.at(deepest, self._sag_of_cell, depth.ravel()[self._sag_cells])
        self._sag_max = np.maximum(self._sag_max, deepest)
        sag_hit = deepest >= self.threshold_m
        self._sag_onset = np.where(sag_hit & np.isnan(self._sag_onset), t_s, self._sag_onset)
        self._last = (t_s, hit, cars, eff >= CLOSED_TO_ALL_M, sag_hit)
        if self._n_b:
            e = np.zeros(self._n_b)
            np.maximum.at(e, self._ent_lab[self._ent_sel], depth[self._ent_sel])
            self._ent_max = np.maximum(self._ent_max, e)
            self._ent_onset = np.where((e >= self.threshold_m) & np.isnan(self._ent_onset), t_s, self._ent_onset)
        if self._d_names:
            d_of, sel, nd = self._district_of, self._in_district, len(self._d_names)
            self._d_length = np.maximum(self._d_length, np.bincount(d_of[sel], weights=(length * hit)[sel],
                                                                    minlength=nd))
            n_in = np.bincount(d_of[sel], minlength=nd)
            closed_in = np.bincount(d_of[sel], weights=cars[sel].astype(float), minlength=nd)
            self._d_share = np.maximum(self._d_share,
                                       np.divide(closed_in, n_in, out=np.zeros(nd), where=n_in > 0))

    def result(self) -> StreetFlood:
        """The flooding so far (the last snapshot adds no time)."""
        st, roads, city = self._stats, self.city.roads, self.city
        road_table = pd.DataFrame({
            "max_depth_m": st["max"], "onset_s": self._onset, "flooded_s": st["flooded"],
            "closed_to_cars_s": st["cars"], "closed_s": st["all"], "max_flooded_length_m": st["length"],
            "is_risk_point": (st["max"] >= self.threshold_m) & (st["flooded"] >= self.min_duration_s),
            "district_id": [self._d_names[i] if i >= 0 else "" for i in self._district_of],
            "sag": self._sag,
            "sag_max_depth_m": np.nan, "sag_onset_s": np.nan, "is_sag_risk_point": False,
        }, index=roads.index)
        k = self._sag_pos
        road_table.iloc[k, road_table.columns.get_loc("sag_max_depth_m")] = self._sag_max
        road_table.iloc[k, road_table.columns.get_loc("sag_onset_s")] = self._sag_onset
        road_table.iloc[k, road_table.columns.get_loc("is_sag_risk_point")] = (
            (self._sag_max >= self.threshold_m) & (self._sag_flooded >= self.min_duration_s))
        entrances = pd.DataFrame({"max_depth_m": self._ent_max, "onset_s": self._ent_onset,
                                  "is_risk_point": self._ent_max >= self.threshold_m}, index=city.buildings.index)
        districts = pd.DataFrame({"flooded_road_length_m": self._d_length, "share_closed_to_cars": self._d_share},
                                 index=pd.Index(self._d_names, name=city.districts.index.name))
        return StreetFlood(road_table, entrances, districts, self.threshold_m)


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
    rec = StreetFloodRecorder(surface, city, threshold_m=threshold_m, min_length_m=min_length_m,
                              min_duration_s=min_duration_s, lane_width_m=lane_width_m)
    for t, depth in snapshots:
        rec.add(t, depth)
    return rec.result()


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

