"""The river as a boundary: its water level along the reach from a base flow plus what the outfalls discharge.

The street surface sees the river as cells with a water level
(:class:`~hydraulics.surface2d.Surface2D` ``river``); the sewer's outfalls
discharge into it and feel its level as a stage.  :class:`RiverReach` gives
that level without a 1D river model: the reach is one wide rectangular
channel on the river cells of the DEM, and at each point the flow is the base
flow plus every outfall upstream of it, at normal depth (Manning):

    h = (Q n / (W sqrt(S)))^(3/5)

with ``W`` the channel width (river area / reach length), ``S`` the slope
of the bed (the line through the lowest ground of each stretch of the
reach) and ``n`` Manning's n of the channel.  Chainage
is the position along the reach's main axis (the principal axis of its
cells), downstream being the way the fitted bed falls.  This is steady and
local: no travel time down the reach and no backwater, which is adequate
for a few-kilometre urban reach whose level changes over hours.  The
level is capped just below the lowest bank of each stretch: the river is
where the city's water goes, and a river flood (the reach overtopping from
upstream water this model does not know) is out of its scope; for that,
give the street surface a stage series instead
(:class:`~hydraulics.surface2d.TimeSeries`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gisdata.errors import TwinError
from gisdata.limits import check_range

RIVER_MANNING = 0.035
"""Manning's n of a natural or lined urban river channel, s/m^(1/3)."""
MIN_BED_SLOPE = 1e-4
"""Smallest bed slope used for the normal depth (flat fitted beds would give infinite depths)."""
BASE_FLOW_CMS = 5.0
"""Default base flow of the reach before the storm, m3/s."""
FREEBOARD_M = 0.05
"""The computed level stays this far below the lowest bank of its stretch, m."""


class RiverError(TwinError, ValueError):
    """The river cells cannot form a reach (none, or a single cell)."""


@dataclass(frozen=True)
class RiverReach:
    """A reach laid on the river cells of a grid.

    Parameters
    ----------
    chainage_m : ndarray
        Position of each river cell along the reach, m from its upstream end.
    bed_m : ndarray
        Fitted bed elevation at each river cell, m.
    width_m : float
        Channel width, m.
    slope : float
        Bed slope used for the normal depth (>= :data:`MIN_BED_SLOPE`).
    length_m : float
        Reach length, m.
    axis : ndarray (2,)
        Unit vector pointing downstream in map coordinates.
    origin : ndarray (2,)
        Map coordinates (m) of chainage 0.
    manning : float
        Channel roughness, s/m^(1/3).
    bank_m : ndarray or None
        Lowest bank ground along each river cell's stretch, m: the level is
        kept :data:`FREEBOARD_M` below it (None: no cap).
    """

    chainage_m: np.ndarray
    bed_m: np.ndarray
    width_m: float
    slope: float
    length_m: float
    axis: np.ndarray
    origin: np.ndarray
    manning: float = RIVER_MANNING
    bank_m: np.ndarray | None = None

    def chainage_of(self, x, y) -> np.ndarray:
        """Chainage (m) of points in map coordinates (their projection on the reach axis)."""
        xy = np.column_stack([np.asarray(x, float).ravel(), np.asarray(y, float).ravel()])
        return (xy - self.origin) @ self.axis

    def normal_depth_m(self, flow_cms) -> np.ndarray:
        """Normal depth (m) of a flow (m3/s) in the reach's channel."""
        q = np.clip(np.asarray(flow_cms, dtype=float), 0.0, None)
        return (q * self.manning / (self.width_m * np.sqrt(self.slope))) ** 0.6

    def levels_m(self, outfall_chainage_m, outfall_flow_cms, *, base_flow_cms: float = BASE_FLOW_CMS) -> np.ndarray:
        """Water level (m) at every river cell for the outfalls' current discharges.

        Parameters
        ----------
        outfall_chainage_m : array of float
            Chainage of each outfall, m (:meth:`chainage_of`).
        outfall_flow_cms : array of float
            Discharge of each outfall into the river, m3/s.
        base_flow_cms : float
            Flow entering the reach upstream, m3/s.
        """
        check_range("base_flow_cms", base_flow_cms, 0.0, 1e5, "m3/s")
        oc = np.asarray(outfall_chainage_m, dtype=float).ravel()
        oq = np.clip(np.asarray(outfall_flow_cms, dtype=float).ravel(), 0.0, None)
        order = np.argsort(oc)
        cum = np.concatenate([[0.0], np.cumsum(oq[order])])
        upstream = np.searchsorted(oc[order], self.chainage_m, side="right")  # outfalls at or above each cell
        flow = base_flow_cms + cum[upstream]
        level = self.bed_m + self.normal_depth_m(flow)
        if self.bank_m is not None:
            level = np.minimum(level, np.maximum(self.bank_m - FREEBOARD_M, self.bed_m))
        return level


def reach_from_cells(river: np.ndarray, ground: np.ndarray, transform, *, outside: np.ndarray | None = None,
                     manning: float = RIVER_MANNING) -> RiverReach:
    """Lay a reach on the river cells of a grid.

    Parameters
    ----------
    river : ndarray of bool
        River cells.
    ground : ndarray
        Ground (bed) elevation of every cell, m.
    transform : affine.Affine
        The grid's transform (north-up, square cells).
    outside : ndarray of bool, optional
        Walls (buildings): not banks.  The bank of a stretch is the lowest
        other cell next to the river along it.
    manning : float
        Channel roughness, s/m^(1/3).

    Raises
    ------
    RiverError
        Fewer than two river cells.
    """
    rows, cols = np.nonzero(river)
    if rows.size < 2:
        raise RiverError(f"the river covers {rows.size} cell(s); a reach needs at least two")
    cell = abs(transform.a)
    x = transform.c + (cols + 0.5) * transform.a
    y = transform.f + (rows + 0.5) * transform.e
    xy = np.column_stack([x, y])
    centre = xy.mean(axis=0)
    # the reach's main axis: the principal axis of its cells
    _, _, vt = np.linalg.svd(xy - centre, full_matrices=False)
    axis = vt[0]
    s = (xy - centre) @ axis
    z = ground[rows, cols]
    # the bed is the lowest ground across each section (the river cells include the channel's sloping
    # sides): fit the line through the minimum of every cell-long stretch of chainage
    bins = np.floor((s - s.min()) / cell).astype(np.int64)
    low = np.full(bins.max() + 1, np.inf)
    np.minimum.at(low, bins, z)
    centres = s.min() + (np.arange(low.size) + 0.5) * cell
    ok = np.isfinite(low)
    fit = np.polyfit(centres[ok], low[ok], 1) if ok.sum() >= 2 else np.polyfit(s, z, 1)
    if fit[0] > 0:  # downstream is the way the bed falls
        axis, s, fit = -axis, -s, np.array([-fit[0], fit[1]])
    origin = centre + axis * s.min()
    chainage = s - s.min()
    length = float(chainage.max()) + cell
    slope = max(MIN_BED_SLOPE, float(-fit[0]))
    bed = np.polyval(fit, s)
    width = rows.size * cell * cell / length
    bank = _banks(river, ground, transform, outside, centre, axis, s.min(), chainage, cell)
    return RiverReach(chainage, bed, float(width), slope, length, axis, origin, manning, bank)


def _banks(river, ground, transform, outside, centre, axis, s0, chainage, cell):
    """Lowest ground next to the river in each cell-long stretch, at every river cell's chainage (m)."""
    from scipy import ndimage

    land = ndimage.binary_dilation(river) & ~river
    if outside is not None:
        land &= ~outside
    r, c = np.nonzero(land)
    if r.size == 0:
        return None
    xy = np.column_stack([transform.c + (c + 0.5) * transform.a, transform.f + (r + 0.5) * transform.e])
    s = (xy - centre) @ axis - s0
    bins = np.clip(np.floor(s / cell).astype(np.int64), 0, None)
    low = np.full(max(bins.max(), int(chainage.max() // cell)) + 1, np.inf)
    np.minimum.at(low, bins, ground[r, c])
    ok = np.isfinite(low)
    at = (np.arange(low.size) + 0.5) * cell
    return np.interp(chainage, at[ok], low[ok])
