"""The street surface of a city for the 2D model: carriageways below the kerb, buildings blocked, water a boundary.

:func:`build_urban_surface` turns a :class:`~gisdata.city.CityTwin` into the
grids :class:`~hydraulics.surface2d.Surface2D` needs, at a chosen cell size:

- **ground**: the city's DEM resampled (bilinear) to ``cell_size_m``, with
  every carriageway burned ``kerb_m`` below its surroundings, so that street
  water runs along the roads as it does between kerbs;
- **outside**: building footprints (a cell whose centre lies in a building;
  never a carriageway cell) and nodata: walls for the water;
- **river**: the ``water`` layer (rivers, canals, lakes): a boundary with a
  water level that receives what spills over the banks.  A bridge's deck is
  not modelled: where a road crosses water, the cell is river;
- **manning**: smooth asphalt on carriageways, rougher mixed urban ground elsewhere.

Carriageway width is ``lanes x lane_width_m``.  A crossfall towards the
gutters is not drawn: at the default 10 m cells (:data:`DEFAULT_CELL_M`) a
two-lane road is one cell wide, and two at the finer 5 m
(:data:`FINE_CELL_M`), too coarse to resolve it.  Sags (underpasses, low
crossings) are in the city's DEM already (:func:`gisdata.terrain.carve_sags`)
and come through the resampling.

Examples
--------
>>> from gisdata.presets import load_preset                       # doctest: +SKIP
>>> surf = build_urban_surface(load_preset("small"), cell_size_m=5.0)  # doctest: +SKIP
>>> model = surf.surface2d()                                      # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine

from gisdata.limits import MAX_GRID_CELLS, check_range
from gisdata.raster import Raster
from hydraulics.surface2d import Surface2D

DEFAULT_CELL_M = 10.0
"""Default cell size of a city's street surface, m (the demo city: 320 x 320 cells, its DEM's own grid).

Chosen for speed (issue 11: a storm on the coupled sewer and street model
should cost at most about three times SWMM alone) at a grid that still
resolves what closes roads.  At 10 m an arterial (6 lanes, 21 m) is two
cells wide and a local street (7 m) one; the sags of the synthetic cities
(underpasses with a 20-40 m floor, low crossings 110-160 m across) span
several cells, so their ponds and the closures they cause come out much as at
5 m (demo city, 100-year 3 h storm: 23 roads closed at 10 m, 21 at 5 m, all
at sags).  Measured speed: README, "Sewer and streets coupled both ways"."""
FINE_CELL_M = 5.0
"""Cell size for detailed studies of a city's street surface, m (the demo city: 640 x 640 cells).

Four times the cells of :data:`DEFAULT_CELL_M` and, where water is deep,
half the time step (the local-inertial CFL limit scales with the cell
size): the demo city's 100-year storm took about seven times as long as at
10 m.  Carriageways twice as many cells wide resolve the water's spread
across a street and along a kerb; use it for one district or one event,
not for ensembles."""
KERB_M = 0.12
"""Height of the kerb above the carriageway, m."""
LANE_WIDTH_M = 3.5
"""Width of one traffic lane, m."""
MANNING_ROAD = 0.015
"""Manning's n of asphalt carriageways, s/m^(1/3)."""
MANNING_GROUND = 0.035
"""Manning's n of pavements, yards and green space between buildings, s/m^(1/3)."""


@dataclass(frozen=True, eq=False)
class UrbanSurface:
    """The grids of a city's street surface (see the module docstring).

    Parameters
    ----------
    ground : Raster
        Ground elevation with carriageways burned in, m.
    outside : ndarray of bool
        Buildings and nodata: walls.
    river : ndarray of bool
        Water bodies: a boundary with a level.
    carriageway : ndarray of bool
        Carriageway cells (for road depths and closures).
    manning : ndarray of float
        Manning's n per cell, s/m^(1/3).
    """

    ground: Raster
    outside: np.ndarray
    river: np.ndarray
    carriageway: np.ndarray
    manning: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return self.ground.shape

    def surface2d(self, **options) -> Surface2D:
        """A :class:`Surface2D` on these grids; ``options`` go to its constructor (rain, sources, cfl...)."""
        return Surface2D(self.ground.values, cell_size_m=self.ground.cell_size_m, manning=self.manning,
                         outside=self.outside, river=self.river, **options)

    def cell_of(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """(row, col) of points in the city's CRS, m, clipped to the grid."""
        return self.ground.index_of(x, y)


def _resample(dem: Raster, cell_size_m: float) -> tuple[np.ndarray, Affine, np.ndarray]:
    """The DEM on a grid of ``cell_size_m`` over the same extent (bilinear); returns values, transform, nodata mask."""
    from rasterio.enums import Resampling
    from rasterio.warp import reproject

    xmin, ymin, xmax, ymax = dem.bounds
    cols = max(1, int(round((xmax - xmin) / cell_size_m)))
    rows = max(1, int(round((ymax - ymin) / cell_size_m)))
    if rows * cols > MAX_GRID_CELLS:
        check_range("surface cells", rows * cols, 1, MAX_GRID_CELLS, "cells")
    transform = Affine(cell_size_m, 0, xmin, 0, -cell_size_m, ymax)
    src = np.where(np.isfinite(dem.values), dem.values, np.nan)
    if dem.nodata is not None:
        src = np.where(dem.values == dem.nodata, np.nan, src)
    out = np.full((rows, cols), np.nan)
    reproject(src, out, src_transform=dem.transform, src_crs=dem.crs, dst_transform=transform, dst_crs=dem.crs,
              src_nodata=np.nan, dst_nodata=np.nan, resampling=Resampling.bilinear)
    return out, transform, ~np.isfinite(out)


def _burn(geoms, shape, transform, *, all_touched: bool = False) -> np.ndarray:
    from rasterio.features import rasterize

    geoms = [g for g in geoms if g is not None and not g.is_empty]
    if not geoms:
        return np.zeros(shape, dtype=bool)
    return rasterize(geoms, out_shape=shape, transform=transform, fill=0, default_value=1,
                     all_touched=all_touched, dtype="uint8").astype(bool)


def build_urban_surface(city, *, cell_size_m: float = DEFAULT_CELL_M, kerb_m: float = KERB_M,
                        lane_width_m: float = LANE_WIDTH_M, manning_road: float = MANNING_ROAD,
                        manning_ground: float = MANNING_GROUND) -> UrbanSurface:
    """Build the street surface of ``city`` for the 2D model.

    Parameters
    ----------
    city : CityTwin
        Roads (with ``lanes``), buildings, the ``water`` layer and the DEM.
    cell_size_m : float
        Cell size of the surface grid, m (default :data:`DEFAULT_CELL_M`).
    kerb_m : float
        Depth of carriageways below their surroundings, m.
    lane_width_m : float
        Width of a lane, m; a road is ``lanes x lane_width_m`` wide.
    manning_road, manning_ground : float
        Manning's n of carriageways and of everything else, s/m^(1/3).

    Returns
    -------
    UrbanSurface
    """
    check_range("cell_size_m", cell_size_m, 0.5, 100.0, "m")
    check_range("kerb_m", kerb_m, 0.0, 1.0, "m")
    check_range("lane_width_m", lane_width_m, 1.0, 10.0, "m")
    check_range("manning_road", manning_road, 0.0, 1.0, "s/m^(1/3)", lo_inclusive=False)
    check_range("manning_ground", manning_ground, 0.0, 1.0, "s/m^(1/3)", lo_inclusive=False)
    ground, transform, nodata = _resample(city.dem, cell_size_m)
    shape = ground.shape
    roads = city.roads
    widths = roads["lanes"].clip(lower=1).to_numpy(float) * lane_width_m
    carriageway = _burn([g.buffer(w / 2.0, cap_style="flat") for g, w in zip(roads.geometry, widths)], shape,
                        transform, all_touched=False)
    water = city.water if city.water is not None else None
    river = _burn(water.geometry if water is not None else [], shape, transform) & ~nodata
    buildings = _burn(city.buildings.geometry, shape, transform) & ~carriageway & ~river
    carriageway &= ~river & ~nodata
    ground = np.where(carriageway, ground - kerb_m, ground)
    outside = (buildings | nodata) & ~river
    ground = np.where(nodata, 0.0, ground)
    manning = np.where(carriageway, manning_road, manning_ground)
    return UrbanSurface(Raster(ground, transform, city.crs), outside, river, carriageway, manning)
