"""Generate synthetic cities: the ``small``, ``demo`` and ``large`` presets.

A city is built in stages, each in its own module and each drawing from one
``numpy.random.Generator`` seeded by the caller (so a (preset, seed) pair
always gives the same city):

1. :mod:`gisdata.terrain` -- DEM with a river valley, regional slope and closed basins;
2. :mod:`gisdata.streets` -- arterial grid, local streets, bridges, blocks;
3. :mod:`gisdata.synth_buildings` -- land use per block, footprints, heights, residents;
4. :mod:`gisdata.sewer_design` -- storm sewers under the streets draining to outfalls on the river banks,
   sized for a 3-year storm; the pipes leaving each closed basin are two sizes
   too small (:func:`constrain_basin_outlets`), the city's bottlenecks;
5. sag points (:func:`gisdata.streets.place_sags`, from their own random stream
   :data:`SAG_STREAM`): underpasses 1.5-3 m deep on arterials and collectors and
   low crossings 0.6-1.1 m deep at junctions, each over a manhole whose design
   water level lies below its floor (it drains up to the design storm, and is
   the first place a larger storm backs up to); cut into the DEM
   (:func:`gisdata.terrain.carve_sags`), the rims lowered with it
   (:func:`gisdata.sewer_design.fit_sewer_to_ground`) and marked in the
   ``sag`` and ``sag_depth_m`` columns of ``roads``;
6. :mod:`gisdata.synth_services` -- management grid, depots, sensors, vendor sites.

Flood behaviour (SWMM 5.2 dynamic wave, Chicago storms of the Beijing IDF,
2 h, r = 0.4, 5 min steps; see ``tests/test_build_swmm.py``): a 2-year storm
floods no manhole of the ``small`` or ``demo`` city; a 20-year storm floods a
few per cent of them, in and around the basins behind the bottlenecks and at
the heads of the longest trunks on the northern terrace.  On the street
surface coupled both ways (:func:`hydraulics.city_flood.run_city_flood`,
10 m cells) the sags are where roads close: on the demo city none under the
2-year storm, the first ones (at sags) under the 20-year storm, and more
than ten, every one at a sag, under the 100-year 3 h storm, with the street
water of that storm deeper than 0.15 m almost only in the sags and the
basins (``tests/test_demo_flooding.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import Point, box

from gisdata.city import CityTwin
from gisdata.errors import UnknownPresetError
from gisdata.idf import DEFAULT_IDF
from gisdata.presets import DEFAULT_SEEDS
from gisdata.sewer_design import (
    COMMERCIAL_DIAMETERS_M,
    design_sewer,
    fit_sewer_to_ground,
    full_flow_capacity_cms,
    max_sag_depth_m,
)
from gisdata.streets import city_boundary, generate_streets, place_sags
from gisdata.synth_buildings import assign_block_use, generate_buildings
from gisdata.synth_services import generate_depots, generate_districts, generate_sensors, generate_vendor_sites
from gisdata.terrain import RIVER_WIDTH_M, carve_sags, generate_terrain

CRS = "EPSG:32650"
"""UTM zone 50N (Beijing), metres."""

ORIGIN = (440_000.0, 4_420_000.0)
"""South-west corner of every synthetic DEM, m in :data:`CRS`."""

SAG_STREAM = 1
"""Sags draw from their own random stream, ``default_rng([seed, SAG_STREAM])``, so that adding
them left the rest of a seed's city (terrain, streets, buildings, services) as it was."""


@dataclass(frozen=True)
class PresetSpec:
    """Size and texture of a synthetic city preset.

    Parameters
    ----------
    size_m : float
        Edge of the square DEM, m (the built-up area is ``size_m - 2 * margin_m``).
    margin_m : float
        Undeveloped strip around the built-up area, m.
    n_basins : int
        Closed depressions in the DEM.
    n_bridges : int
        Arterials that cross the river.
    outfall_spacing_m : float
        Distance between outfall candidates along each river bank, m.
    design_return_period_yr : float
        Return period the sewers are sized for, years.
    basin_outlet_sizes_smaller : int
        How many commercial sizes the pipes leaving each closed basin are
        below their design size (see :func:`constrain_basin_outlets`).
    n_underpasses, n_low_crossings : int
        Sag points (see :func:`gisdata.streets.place_sags`).
    """

    size_m: float
    margin_m: float
    n_basins: int
    n_bridges: int
    outfall_spacing_m: float
    design_return_period_yr: float = 3.0
    basin_outlet_sizes_smaller: int = 2
    n_underpasses: int = 0
    n_low_crossings: int = 0


PRESET_SPECS = {
    "small": PresetSpec(size_m=1500.0, margin_m=80.0, n_basins=2, n_bridges=1, outfall_spacing_m=250.0,
                        n_underpasses=2, n_low_crossings=2),
    "demo": PresetSpec(size_m=3200.0, margin_m=100.0, n_basins=5, n_bridges=3, outfall_spacing_m=250.0,
                       n_underpasses=6, n_low_crossings=6),
    "large": PresetSpec(size_m=7000.0, margin_m=150.0, n_basins=18, n_bridges=6, outfall_spacing_m=250.0,
                        n_underpasses=24, n_low_crossings=24),
}
"""The parameters behind each preset name."""


def generate_city(preset: str, seed: int | None = None) -> CityTwin:
    """Generate the synthetic city ``preset`` with ``seed``.

    Parameters
    ----------
    preset : str
        ``"small"`` (about 200 manholes, 1.2 km square, for tests), ``"demo"``
        (about 1,000 manholes on 3 x 3 km) or ``"large"`` (about 5,000 manholes).
    seed : int, optional
        Seed of the random generator; default :data:`gisdata.presets.DEFAULT_SEEDS`.

    Returns
    -------
    CityTwin
        In EPSG:32650 (UTM 50N).  ``metadata`` records the preset, the seed and
        the sewer design basis.

    Raises
    ------
    UnknownPresetError
        If ``preset`` is not a known preset.

    Examples
    --------
    >>> city = generate_city("small", seed=7)
    >>> 100 < city.summary()["manholes"] < 400
    True
    """
    if preset not in PRESET_SPECS:
        raise UnknownPresetError(f"unknown city preset '{preset}'; expected one of {list(PRESET_SPECS)}")
    seed = DEFAULT_SEEDS[preset] if seed is None else int(seed)
    spec = PRESET_SPECS[preset]
    rng = np.random.default_rng(seed)
    x0, y0 = ORIGIN

    terrain = generate_terrain(rng, x0=x0, y0=y0, width_m=spec.size_m, height_m=spec.size_m, crs=CRS,
                               n_basins=spec.n_basins)
    boundary = city_boundary(x0, y0, spec.size_m, spec.size_m, spec.margin_m)
    streets = generate_streets(rng, boundary=boundary, river=terrain.river, crs=CRS, n_bridges=spec.n_bridges)

    centre = boundary.centroid
    # Industrial quarter: downstream (east) along the river.
    xmin, ymin, xmax, ymax = boundary.bounds
    industrial = box(xmax - 0.22 * (xmax - xmin), ymin, xmax, ymax).intersection(terrain.river.buffer(0.18 * spec.size_m))
    block_use = assign_block_use(rng, streets.blocks, centre=Point(centre.x, centre.y + 0.1 * spec.size_m),
                                 core_radius_m=0.17 * spec.size_m, industrial_zone=industrial)
    buildings = generate_buildings(rng, streets.blocks, block_use, CRS, streets=streets.roads.geometry.values)

    outfalls = _outfall_candidates(terrain.river_centerline, boundary, spec.outfall_spacing_m)
    design = design_sewer(streets.roads, terrain.dem, buildings=buildings, outfall_candidates=outfalls,
                          idf=DEFAULT_IDF, return_period_yr=spec.design_return_period_yr,
                          seed=int(rng.integers(2**31)))
    subcatchments = _off_the_river(design.subcatchments, terrain.river)
    conduits = constrain_basin_outlets(design.conduits, design.nodes, terrain.basins,
                                       sizes_smaller=spec.basin_outlet_sizes_smaller)
    # Sags over manholes that can drain them up to the design storm; then the ground is cut and the
    # rims follow it (the sewer dips under a sag where its cover would be too thin).
    manholes = design.nodes.loc[design.nodes["node_type"] == "junction", ["geometry"]].join(
        max_sag_depth_m(design.nodes, conduits))
    sags = place_sags(np.random.default_rng([seed, SAG_STREAM]), streets.roads, manholes, terrain.dem,
                      river=terrain.river, boundary=boundary, n_underpasses=spec.n_underpasses,
                      n_low_crossings=spec.n_low_crossings)
    dem = carve_sags(terrain.dem, sags.sags)
    nodes, conduits = fit_sewer_to_ground(design.nodes, conduits, dem)

    area_km2 = boundary.area / 1e6
    districts = generate_districts(boundary, CRS)
    depots = generate_depots(rng, streets.roads, area_km2, CRS)
    sensors = generate_sensors(rng, nodes, boundary, CRS)
    vendor_sites = generate_vendor_sites(rng, streets.roads, buildings, streets.blocks, block_use, CRS)

    return CityTwin(
        name=preset, crs=CRS, roads=sags.roads, buildings=buildings.drop(columns=["block_id"]),
        nodes=nodes, conduits=conduits, subcatchments=subcatchments, districts=districts,
        depots=depots, sensors=sensors, vendor_sites=vendor_sites, dem=dem,
        water=gpd.GeoDataFrame({"kind": ["river"], "name": ["river"]}, geometry=[terrain.river], crs=CRS,
                               index=pd.Index(["W0"], name="water_id")),
        metadata={
            "source": "gisdata.synth.generate_city",
            "preset": preset,
            "seed": str(seed),
            "dem_source": "synthetic (gisdata.terrain)",
            "sewer_design": (f"rational method, IDF {DEFAULT_IDF.name}, "
                             f"P={spec.design_return_period_yr:g} yr, Manning n=0.013"),
            "sags": _describe_sags(sags.sags),
            "sewer_bottlenecks": (f"{int((conduits['diameter_m'] < design.conduits['diameter_m']).sum())} pipes "
                                  f"leaving {len(terrain.basins)} closed basins are "
                                  f"up to {spec.basin_outlet_sizes_smaller} sizes below design "
                                  "(compare full_flow_cms with design_flow_cms)"),
        },
    )


def constrain_basin_outlets(conduits: gpd.GeoDataFrame, nodes: gpd.GeoDataFrame, basins,
                            *, sizes_smaller: int = 1) -> gpd.GeoDataFrame:
    """Make the pipes that leave each closed basin ``sizes_smaller`` commercial sizes too small.

    A basin drains over its rim, so its outlet pipe runs deep under the saddle;
    such reaches are typically jacked or tunnelled under an existing road or
    embankment, and in practice were often built a size or two below what the
    catchment now needs (the basin filled in with buildings later).  These are
    the bottlenecks of the synthetic city: in a storm above the design storm
    the head backs up behind them and the low rims inside the basin overflow
    first.  ``full_flow_cms`` is recomputed; ``design_flow_cms`` keeps the
    design figure, so ``full_flow_cms < design_flow_cms`` marks the bottlenecks.

    Parameters
    ----------
    conduits, nodes : geopandas.GeoDataFrame
        Designed pipes and nodes.
    basins : sequence of shapely Polygon
        Footprints of the closed depressions, m.
    sizes_smaller : int
        Number of commercial sizes to step down (never below the smallest).

    Returns
    -------
    geopandas.GeoDataFrame
        A new conduits table.
    """
    out = conduits.copy()
    if sizes_smaller <= 0 or not len(basins):
        return out
    sizes = np.asarray(COMMERCIAL_DIAMETERS_M)
    pts = nodes.geometry
    for basin in basins:
        inside = set(nodes.index[shapely.within(pts.values, basin)])
        leaving = out.index[out["from_node"].isin(inside) & ~out["to_node"].isin(inside)]
        for cid in leaving:
            k = int(np.searchsorted(sizes, out.at[cid, "diameter_m"] - 1e-9))
            d = float(sizes[max(k - sizes_smaller, 0)])
            out.at[cid, "diameter_m"] = d
            out.at[cid, "full_flow_cms"] = round(full_flow_capacity_cms(d, out.at[cid, "slope"]), 4)
    return out


def _describe_sags(sags: gpd.GeoDataFrame) -> str:
    """One line for the metadata: how many sags of each kind, and how deep."""
    parts = []
    for kind, label in (("underpass", "underpasses"), ("low_crossing", "low crossings")):
        d = sags.loc[sags["kind"] == kind, "depth_m"]
        if len(d):
            parts.append(f"{len(d)} {label} {d.min():.1f}-{d.max():.1f} m deep")
    return (", ".join(parts) + " (roads: sag, sag_depth_m)") if parts else "none"


def _outfall_candidates(centerline, boundary, spacing_m: float) -> gpd.GeoSeries:
    """Points on both river banks every ``spacing_m`` inside the built-up area."""
    pts = []
    for side in (1, -1):
        bank = centerline.offset_curve(side * (RIVER_WIDTH_M / 2 + 2.0)).intersection(boundary)
        for line in shapely.get_parts(bank):
            n = max(int(line.length // spacing_m), 1)
            start = (line.length - (n - 1) * spacing_m) / 2 if n > 1 else line.length / 2
            pts.extend(line.interpolate(start + k * spacing_m) for k in range(n))
    return gpd.GeoSeries(pts, crs=CRS)


def _off_the_river(subcatchments: gpd.GeoDataFrame, river) -> gpd.GeoDataFrame:
    """Remove the water surface from subcatchments (rain on the river does not enter sewers)."""
    geoms = shapely.difference(subcatchments.geometry.values, river)
    geoms = shapely.make_valid(geoms)
    area = shapely.area(geoms)
    out = subcatchments.copy()
    out["width_m"] = (out["width_m"] * area / out["area_m2"]).round(1)
    out["area_m2"] = area
    out = out.set_geometry(list(geoms), crs=subcatchments.crs)
    keep = (area >= 50.0) & np.isin(shapely.get_type_id(geoms), [3, 6])  # Polygon, MultiPolygon
    return out[keep]
