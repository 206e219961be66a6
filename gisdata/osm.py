"""Import an OpenStreetMap extract (``.osm``, ``.osm.bz2``, ``.osm.gz``, ``.osm.pbf``) as a :class:`CityTwin`.

The extract is read once with pyosmium; every layer is then built with
vectorised numpy / shapely / geopandas code in a local projected CRS (the UTM
zone of the data unless the caller names one).

What comes from OSM and what is estimated
-----------------------------------------
- **roads**: ``highway=*`` ways, split at every junction (an OSM node shared by
  two road ways, or visited twice by one).  Graph IDs are the OSM node IDs
  (``"n123"``), segment IDs ``"w<way>_<k>"``.  Classes follow
  :data:`ROAD_CLASS_OF_HIGHWAY`; speed from ``maxspeed`` and lanes from
  ``lanes`` when parseable, else :data:`DEFAULT_SPEED_KMH` /
  :data:`DEFAULT_LANES` per class.
- **buildings**: ``building=*`` ways and multipolygons.  ``height_m`` from the
  ``height`` tag, else ``building:levels`` x :data:`STOREY_HEIGHT_M`, else
  :data:`DEFAULT_HEIGHT_M`; ``height_source`` records which.  ``use`` from the
  building / amenity / shop tags (:data:`BUILDING_USE`), and for untyped
  ``building=yes`` from the surrounding ``landuse``.  ``residents`` = residential
  floor area / :data:`FLOOR_AREA_PER_RESIDENT_M2`.
- **dem**: the caller's GeoTIFF (reprojected and cropped), else a synthetic
  0.5 % surface (:func:`build_fallback_dem`); ``metadata["dem_source"]`` says which.
- **nodes, conduits, subcatchments**: designed along the drivable roads by
  :func:`gisdata.sewer_design.design_sewer`, discharging to rivers, canals and
  lakes of the extract (:func:`outfall_candidates`) or, without them, to the
  low points of the network boundary.
- **depots, sensors, vendor_sites, districts**: from OSM amenities where
  present, else documented fallbacks (see the ``build_*`` functions).

Invalid geometry
----------------
Real extracts hold self-intersecting rings (bowties), rings that touch or cross
their holes, spikes and duplicate nodes.  Every area (buildings, landuse, water,
POI areas) is repaired with ``shapely.make_valid`` (:func:`repair_polygons`) before
any overlay, and an area that is nothing once repaired (a ring of collinear or
repeated nodes), or has non-finite coordinates, is dropped.  The counts per layer
are in ``metadata["geometry_repairs"]`` (with totals in ``repaired_geometries``
and ``dropped_geometries``); building ways osmium could not assemble at all are
``skipped_buildings``.  A geometry operation that still fails ends in a
:class:`~gisdata.errors.GeometryError` naming the file, never a GEOS traceback.
"""

from __future__ import annotations

import hashlib
import itertools
import string
from dataclasses import dataclass, field
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from affine import Affine

from gisdata.city import CityTwin
from gisdata.errors import (
    CorruptFileError,
    EmptyDataError,
    GeometryError,
    InputFileNotFoundError,
    TwinError,
)
from gisdata.raster import Raster, read_geotiff
from gisdata.schema import DEPARTMENTS, check_projected_crs, empty_layer, validate_layer

OSM_SUFFIXES = (".osm", ".osm.bz2", ".osm.gz", ".osm.pbf", ".pbf")
"""File endings :func:`import_osm` reads (XML, compressed XML, PBF)."""

# --------------------------------------------------------------------- roads

ROAD_CLASS_OF_HIGHWAY: dict[str, str] = {
    **dict.fromkeys(["motorway", "motorway_link", "trunk", "trunk_link"], "motorway"),
    **dict.fromkeys(["primary", "primary_link", "secondary", "secondary_link"], "arterial"),
    **dict.fromkeys(["tertiary", "tertiary_link"], "collector"),
    **dict.fromkeys(["residential", "unclassified", "living_street", "road"], "local"),
    **dict.fromkeys(["service", "busway"], "service"),
    # Tracks are unpaved field access: no sewer under them and no car routing.
    **dict.fromkeys(["footway", "path", "cycleway", "pedestrian", "steps", "bridleway",
                     "track", "sidewalk", "crossing"], "path"),
}
"""OSM ``highway`` value -> schema road class.  Other values (construction,
proposed, platform, raceway, ...) are not roads and are skipped."""

DEFAULT_SPEED_KMH: dict[str, float] = {
    "motorway": 100.0, "arterial": 50.0, "collector": 50.0, "local": 30.0, "service": 20.0, "path": 5.0,
}
"""Free-flow speed per class, km/h, when ``maxspeed`` is missing or unparseable
(urban limits; ``path`` is walking pace)."""

DEFAULT_LANES: dict[str, int] = {
    "motorway": 4, "arterial": 4, "collector": 2, "local": 2, "service": 1, "path": 1,
}
"""Lanes (both directions) per class when ``lanes`` is missing or unparseable.  A one-way
way (``oneway=yes``, or a motorway, which OSM maps one carriageway at a time) gets half."""

SPEED_ZONE_KMH: dict[str, float] = {"urban": 50.0, "rural": 90.0, "living_street": 10.0, "walk": 5.0}
"""Speed of zone-style ``maxspeed`` values such as ``DE:urban``, km/h."""

DRIVABLE_CLASSES = ("motorway", "arterial", "collector", "local", "service")
"""Road classes vehicles use.  Only these go to the sewer designer, which itself
leaves motorways and service roads without sewers where it can."""

# ----------------------------------------------------------------- buildings

STOREY_HEIGHT_M = 3.0
"""Height of one storey, m (``building:levels`` -> ``height_m``)."""

MIN_BUILDING_AREA_M2 = 1.0
"""Smallest footprint kept, m2: a ring of (nearly) collinear or repeated nodes encloses less
and is dropped as broken (counted in ``metadata["geometry_repairs"]``)."""

DEFAULT_HEIGHT_M = 9.0
"""Height of a building with neither ``height`` nor ``building:levels``, m (three storeys)."""

FLOOR_AREA_PER_RESIDENT_M2 = 40.0
"""Gross residential floor area per resident, m2 (about the EU average dwelling space per person)."""

RESIDENTIAL_SHARE = {"residential": 1.0, "mixed": 0.5}
"""Share of a building's floor area that is dwellings, by use; other uses house nobody."""

BUILDING_USE: dict[str, str] = {
    **dict.fromkeys(["residential", "apartments", "house", "detached", "semidetached_house", "terrace",
                     "dormitory", "bungalow", "cabin", "farm", "houseboat", "static_caravan"], "residential"),
    **dict.fromkeys(["commercial", "retail", "office", "supermarket", "kiosk", "hotel"], "commercial"),
    **dict.fromkeys(["industrial", "warehouse", "factory", "manufacture", "hangar", "storage_tank"], "industrial"),
    **dict.fromkeys(["public", "civic", "government", "school", "kindergarten", "university", "college",
                     "hospital", "church", "cathedral", "chapel", "mosque", "temple", "synagogue",
                     "religious", "fire_station", "police", "townhall", "train_station", "transportation",
                     "sports_hall", "stadium"], "public"),
    **dict.fromkeys(["mixed_use"], "mixed"),
}
"""OSM ``building`` value -> schema use.  Unlisted values (garage, shed, roof, ...) are
``other``; ``building=yes`` is resolved from amenity / shop tags or the landuse around it."""

PUBLIC_AMENITIES = frozenset({"school", "kindergarten", "university", "college", "hospital", "clinic",
                              "townhall", "police", "fire_station", "library", "place_of_worship",
                              "community_centre", "post_office", "courthouse"})
"""``amenity`` values that make an untyped building ``public``."""

LANDUSE_USE = {"residential": "residential", "commercial": "commercial", "retail": "commercial",
               "industrial": "industrial"}
"""``landuse`` value -> use given to untyped (``building=yes``) buildings inside it."""

# ---------------------------------------------------------- other layers

DEM_CELL_M = 10.0
"""Cell size of the fallback DEM, m (and the floor for a reprojected user DEM)."""

DEM_MARGIN_M = 100.0
"""The DEM covers the city's extent plus this margin on every side, m."""

FALLBACK_DEM_BASE_M = 10.0
"""Lowest elevation of the fallback DEM (its southern edge, or the water), m."""

FALLBACK_DEM_SLOPE = 0.005
"""Rise of the fallback DEM, m/m (0.5 %): gentle, yet enough for gravity sewers."""

WATERWAYS = ("river", "canal")
"""``waterway`` values that receive the storm sewer.  With ``natural=water`` areas of at
least :data:`MIN_WATER_AREA_M2` they give the outfall candidates, and the fallback DEM
falls towards them.  Streams and ditches are left out: the designer sends the whole
network to the candidates, and a brook in a corner should not drain a city."""

WATERWAY_WIDTH_M = {"river": 20.0, "canal": 10.0}
"""Width given to a mapped waterway line in the ``water`` layer, m (OSM draws most rivers as lines)."""

MIN_WATER_AREA_M2 = 10_000.0
"""Smallest ``natural=water`` area (a 1 ha pond) that counts as a receiving water, m2."""

OUTFALL_SPACING_M = 250.0
"""Distance between outfall candidates along a water body's edge, m."""

DISTRICT_CELL_M = 500.0
"""Edge of a management-grid cell, m."""

N_WATER_LEVEL_SENSORS = 5
"""Water-level sensors placed on the lowest manholes."""

DEPOT_CREWS = {"city_management": 2, "drainage": 3, "police": 2, "emergency": 2}
"""Crews per depot, by department."""

DEPOT_OF_POI = {"townhall": "city_management", "wastewater_plant": "drainage",
                "police": "police", "fire_station": "emergency"}
"""Kind of OSM feature -> department whose depot it hosts."""

VENDOR_ATTRACTIVENESS = {"market": 1.0, "metro_exit": 0.9, "plaza": 0.8, "park": 0.7,
                         "school": 0.6, "hospital": 0.6}
"""Relative pull of each kind of vendor site, 0-1."""

_POI_TAGS: dict[tuple[str, str], str] = {
    ("amenity", "townhall"): "townhall",
    ("amenity", "police"): "police",
    ("amenity", "fire_station"): "fire_station",
    ("man_made", "wastewater_plant"): "wastewater_plant",
    ("amenity", "marketplace"): "market",
    ("railway", "subway_entrance"): "metro_exit",
    ("amenity", "school"): "school",
    ("leisure", "park"): "park",
    ("amenity", "hospital"): "hospital",
    ("place", "square"): "plaza",
}
_POI_KEYS = sorted({k for k, _ in _POI_TAGS})
_READ_KEYS = sorted({"highway", "building", "landuse", "waterway", "natural", *_POI_KEYS})


# ============================================================== public API


def import_osm(path: str | Path, *, dem: str | Path | Raster | None = None, crs: str | None = None,
               name: str | None = None) -> CityTwin:
    """Build a :class:`CityTwin` from an OpenStreetMap extract.

    Parameters
    ----------
    path : str or Path
        ``.osm``, ``.osm.bz2``, ``.osm.gz``, ``.osm.pbf`` or ``.pbf`` file.
    dem : str, Path or Raster, optional
        Ground elevation in metres: a GeoTIFF path or a :class:`Raster`, in any
        CRS (reprojected bilinearly to the city CRS and cropped to the city plus
        :data:`DEM_MARGIN_M`).  Default: the synthetic surface of
        :func:`build_fallback_dem` (a 0.5 % plane, or a valley towards rivers).
    crs : str, optional
        Projected CRS in metres for every layer, e.g. ``"EPSG:32633"``.  Default:
        the UTM zone of the data's centroid.
    name : str, optional
        City name; default the file name without its OSM suffix.

    Returns
    -------
    CityTwin
        Schema-valid layers in ``crs``; ``metadata`` holds ``source``,
        ``source_sha256``, ``crs``, ``crs_source``, ``dem_source``, the
        defaults used, and what was done to invalid geometry:
        ``skipped_buildings``, ``geometry_repairs`` (per layer, e.g.
        ``"buildings: 2 repaired, 1 dropped"``), ``repaired_geometries`` and
        ``dropped_geometries`` (totals).

    Raises
    ------
    InputFileNotFoundError
        ``path`` (or the ``dem`` file) does not exist.
    TwinError
        ``path`` does not end in an OSM suffix, or the DEM misses the city.
    CorruptFileError
        The file is not readable OSM data.
    EmptyDataError
        The file holds no ways, or no usable roads.
    CRSError
        ``crs`` is not a projected CRS in metres.
    GeometryError
        A geometry operation failed even on the repaired polygons.

    Examples
    --------
    >>> city = import_osm("../shared/data/gis/pyrosm/test.osm.pbf")  # run from the repo root
    >>> city.crs, len(city.buildings) > 2000, sorted(set(city.buildings["height_source"]))
    ('EPSG:32635', True, ['default', 'levels'])
    """
    path = _check_osm_path(path)
    raw = read_osm(path)
    try:
        return _build_city(path, raw, dem=dem, crs=crs, name=name)
    except shapely.errors.GEOSException as exc:  # a GEOS TopologyException the repairs did not prevent
        raise GeometryError(f"{path}: a geometry operation failed on this extract ({' '.join(str(exc).split())}); "
                            "its polygons could not be repaired") from exc


def _build_city(path: Path, raw: OsmTables, *, dem, crs: str | None, name: str | None) -> CityTwin:
    """The layers of :func:`import_osm` from the tables :func:`read_osm` read."""
    repairs = GeometryRepairs()
    if crs is None:
        crs = _utm_crs_of(raw.road_nodes["lon"].to_numpy(), raw.road_nodes["lat"].to_numpy())
        crs_source = "UTM zone of the data's centroid"
    else:
        crs_source = "given by the caller"
    crs = check_projected_crs(crs, source=f"{path}: crs argument")

    roads = build_roads(raw.road_ways, raw.road_nodes, crs, source=str(path))
    landuse = _areas_to_crs(raw.landuse, crs, layer="landuse", repairs=repairs)
    buildings = build_buildings(raw.buildings, landuse, crs, repairs=repairs)
    pois = _pois_to_crs(raw.pois, crs, repairs=repairs)

    bounds = _data_bounds(roads, buildings)
    water = _water_in(_areas_to_crs(raw.water, crs, layer="water", repairs=repairs), bounds)
    if dem is None:
        raster = build_fallback_dem(bounds, crs, water=water)
        dem_source = (f"synthetic surface (no DEM given): {FALLBACK_DEM_BASE_M:g} m "
                      + ("at the OSM water features, rising " if len(water) else "at the southern edge, rising ")
                      + f"{FALLBACK_DEM_SLOPE * 100:g} % "
                      + ("with distance from them" if len(water) else "northwards")
                      + f", {DEM_CELL_M:g} m cells")
    else:
        raster, dem_source = load_dem(dem, bounds, crs)

    drivable = roads[roads["road_class"].isin(DRIVABLE_CLASSES)]
    if len(drivable) == 0:
        raise EmptyDataError(f"{path}: has footpaths but no drivable roads; the sewer is laid along streets "
                             f"(highway={'|'.join(k for k, v in ROAD_CLASS_OF_HIGHWAY.items() if v != 'path')})")
    sewer = _design_sewer(drivable, raster, buildings, outfall_candidates(water))
    nodes, conduits, subcatchments = sewer.nodes, sewer.conduits, sewer.subcatchments

    centre = _network_centre(roads)
    metadata = {
        "source": str(path),
        "source_sha256": _sha256(path),
        "importer": "gisdata.osm.import_osm",
        "crs": crs,
        "crs_source": crs_source,
        "dem_source": dem_source,
        "height_default_m": f"{DEFAULT_HEIGHT_M:g}",
        "storey_height_m": f"{STOREY_HEIGHT_M:g}",
        "floor_area_per_resident_m2": f"{FLOOR_AREA_PER_RESIDENT_M2:g}",
        "skipped_buildings": str(raw.skipped_areas),
        "geometry_repairs": repairs.summary(),
        "repaired_geometries": str(repairs.n_repaired),
        "dropped_geometries": str(repairs.n_dropped),
        "outfalls_at": "OSM water features" if len(water) else "low points of the network boundary",
    }
    return CityTwin(
        name=name or _stem(path),
        crs=crs,
        roads=roads,
        buildings=buildings,
        nodes=nodes,
        conduits=conduits,
        subcatchments=subcatchments,
        districts=build_districts(bounds, crs),
        depots=build_depots(pois, roads, centre, crs),
        sensors=build_sensors(nodes, centre, crs),
        vendor_sites=build_vendor_sites(pois, crs),
        dem=raster,
        metadata=metadata,
        water=build_water(water, crs),
    )


def build_water(water: gpd.GeoDataFrame, crs: str) -> gpd.GeoDataFrame:
    """The ``water`` layer: water areas as they are, waterway lines widened to :data:`WATERWAY_WIDTH_M`.

    Parameters
    ----------
    water : geopandas.GeoDataFrame
        ``kind`` (a ``waterway`` value, or ``"water"`` for ``natural=water`` areas) and the
        geometry, in ``crs`` (from :func:`_water_in`).
    crs : str
        Projected CRS, m.
    """
    rows = []
    for kind, geom in zip(water["kind"], water.geometry) if len(water) else ():
        if geom is None or geom.is_empty:
            continue
        if geom.geom_type in ("Polygon", "MultiPolygon"):
            rows.append(("lake" if kind == "water" else "other", geom))
        elif kind in WATERWAY_WIDTH_M:
            rows.append((kind, geom.buffer(WATERWAY_WIDTH_M[kind] / 2.0, cap_style="flat")))
    if not rows:
        return empty_layer("water", crs)
    gdf = gpd.GeoDataFrame({"kind": [k for k, _ in rows], "name": [""] * len(rows)},
                           geometry=[g for _, g in rows], crs=crs)
    gdf.index = pd.Index([f"W{i}" for i in range(len(gdf))], name="water_id")
    return gdf


# ================================================================= reading


@dataclass
class OsmTables:
    """What :func:`read_osm` takes from a file, in WGS84 lon/lat (degrees).

    Attributes
    ----------
    road_ways : pandas.DataFrame
        One row per ``highway`` way: ``way_id``, ``highway``, ``name`` (else ``ref``),
        ``maxspeed``, ``lanes``, ``oneway`` (tag values, ``""`` when absent).
    road_nodes : pandas.DataFrame
        One row per node reference of those ways, in order: ``way``
        (row of ``road_ways``), ``node_id`` (int64), ``lon``, ``lat``, ``valid``.
    buildings : pandas.DataFrame
        ``building_id``, ``building``, ``height``, ``levels``, ``amenity``, ``shop``, ``wkb``.
    landuse : pandas.DataFrame
        ``landuse``, ``wkb`` of the landuse areas in :data:`LANDUSE_USE`.
    pois : pandas.DataFrame
        ``osm_id``, ``kind``, ``name``, ``wkb`` (point or multipolygon).
    water : pandas.DataFrame
        ``kind``, ``wkb`` of waterways (:data:`WATERWAYS`, lines) and ``natural=water`` areas.
    skipped_areas : int
        Building ways osmium could not assemble into footprints (cut by the
        extract's edge, or broken rings).
    n_ways : int
        Ways with any of the keys read (roads, buildings, landuse, water, POIs).
    """

    road_ways: pd.DataFrame
    road_nodes: pd.DataFrame
    buildings: pd.DataFrame
    landuse: pd.DataFrame
    pois: pd.DataFrame
    water: pd.DataFrame
    skipped_areas: int = 0
    n_ways: int = 0


def read_osm(path: str | Path) -> OsmTables:
    """Read the roads, buildings, landuse and points of interest of an OSM file.

    This is the only function that touches the file (one pyosmium pass with
    node locations and area assembly).

    Parameters
    ----------
    path : str or Path
        An existing OSM file.

    Returns
    -------
    OsmTables
        Raw tables in WGS84 degrees.

    Raises
    ------
    CorruptFileError
        osmium cannot parse the file.
    EmptyDataError
        The file is empty, holds no ways, or no ``highway`` way with coordinates.
    """
    import osmium
    import osmium.geom

    path = Path(path)
    if path.stat().st_size == 0:
        raise EmptyDataError(f"{path}: file is empty (0 bytes); expected an OSM extract with roads and buildings")
    wkb = osmium.geom.WKBFactory()
    ways, refs, buildings, landuse, pois, water = [], [], [], [], [], []
    n_ways = n_building_ways = 0
    processor = osmium.FileProcessor(path).with_areas().with_filter(osmium.filter.KeyFilter(*_READ_KEYS))
    try:
        for obj in processor:
            if obj.is_way():
                n_ways += 1
                n_building_ways += obj.tags.get("building", "no") != "no"
                _read_road_way(obj, ways, refs)
                _read_poi(obj, f"w{obj.id}", _way_point_wkb, pois)
                if obj.tags.get("waterway") in WATERWAYS:
                    _read_waterway(obj, water)
            elif obj.is_area():
                _read_area(obj, wkb, buildings, landuse, pois, water)
            elif obj.is_node():
                _read_poi(obj, _area_id(obj), wkb.create_point, pois)
    # osmium reports parse errors of every format as RuntimeError, and a malformed coordinate
    # (lat="1e10") as InvalidLocationError, which is no RuntimeError.
    except (RuntimeError, osmium.InvalidLocationError) as exc:
        raise CorruptFileError(
            f"{path}: not readable as OSM data ({exc}); expected OSM XML (.osm, .osm.bz2, .osm.gz) or PBF (.osm.pbf)"
        ) from exc
    if n_ways == 0 and not buildings:
        raise EmptyDataError(
            f"{path}: holds no highway=* or building=* ways; expected an OSM extract of a city with roads"
        )
    road_ways = pd.DataFrame(ways, columns=["way_id", "highway", "name", "maxspeed", "lanes", "oneway"])
    road_nodes = pd.DataFrame(refs, columns=["way", "node_id", "lon", "lat", "valid"])
    if not road_nodes["valid"].any():
        raise EmptyDataError(f"{path}: holds no highway=* ways with node coordinates; a city needs roads")
    return OsmTables(
        road_ways=road_ways,
        road_nodes=road_nodes.astype({"way": "int64", "node_id": "int64", "lon": "float64", "lat": "float64",
                                      "valid": "bool"}),
        buildings=pd.DataFrame(buildings, columns=["building_id", "building", "height", "levels", "amenity",
                                                   "shop", "wkb"]),
        landuse=pd.DataFrame(landuse, columns=["landuse", "wkb"]),
        pois=pd.DataFrame(pois, columns=["osm_id", "kind", "name", "wkb"]),
        water=pd.DataFrame(water, columns=["kind", "wkb"]),
        skipped_areas=n_building_ways - sum(b[0].startswith("w") for b in buildings),
        n_ways=n_ways,
    )


def _read_road_way(way, ways: list, refs: list) -> None:
    tags = way.tags
    highway = tags.get("highway")
    if highway not in ROAD_CLASS_OF_HIGHWAY or tags.get("area") == "yes":
        return
    k = len(ways)
    ways.append((way.id, highway, tags.get("name") or tags.get("ref") or "", tags.get("maxspeed", ""),
                 tags.get("lanes", ""), tags.get("oneway", "")))
    for n in way.nodes:
        loc = n.location
        ok = loc.valid()  # nodes outside a clipped extract have no location
        refs.append((k, n.ref, loc.lon if ok else np.nan, loc.lat if ok else np.nan, ok))


def _area_id(obj) -> str:
    if obj.is_area():
        return f"{'w' if obj.from_way() else 'r'}{obj.orig_id()}"
    return f"n{obj.id}"


def _read_area(area, wkb, buildings: list, landuse: list, pois: list, water: list) -> None:
    """Collect one assembled area (building, landuse, water, or a POI mapped as a relation)."""
    tags = area.tags
    building = tags.get("building")
    is_building = building is not None and building != "no"
    is_landuse = tags.get("landuse") in LANDUSE_USE
    # POI ways are read as ways (their areas may be cut by the extract edge).
    is_poi = not area.from_way() and any(tags.get(k) == v for k, v in _POI_TAGS)
    is_water = tags.get("natural") == "water"
    if not (is_building or is_landuse or is_poi or is_water):
        return  # e.g. a closed highway way: nothing to build
    try:
        geom = wkb.create_multipolygon(area)
    except RuntimeError:  # broken rings, e.g. cut by the extract boundary
        return
    aid = _area_id(area)
    if is_building:
        buildings.append((aid, building, tags.get("height", ""), tags.get("building:levels", ""),
                          tags.get("amenity", ""), tags.get("shop", ""), geom))
    if is_landuse:
        landuse.append((tags.get("landuse"), geom))
    if is_water:
        water.append(("water", geom))
    if is_poi:
        _read_poi(area, aid, lambda _: geom, pois)


def _read_waterway(way, water: list) -> None:
    coords = [(n.location.lon, n.location.lat) for n in way.nodes if n.location.valid()]
    if len(coords) >= 2:
        water.append((way.tags.get("waterway"), shapely.to_wkb(shapely.LineString(coords))))


def _way_point_wkb(way) -> bytes | None:
    """A point for a POI mapped as a way: inside its ring if closed, else on its line (WGS84)."""
    coords = [(n.location.lon, n.location.lat) for n in way.nodes if n.location.valid()]
    if not coords:
        return None
    if len(coords) >= 4 and coords[0] == coords[-1]:
        shape = shapely.make_valid(shapely.Polygon(coords))
    else:
        shape = shapely.LineString(coords) if len(coords) > 1 else shapely.Point(coords[0])
    return shapely.to_wkb(shape.representative_point())


def _read_poi(obj, osm_id: str, make_wkb, pois: list) -> None:
    tags = obj.tags
    for (key, value), kind in _POI_TAGS.items():
        if tags.get(key) == value:
            geom = make_wkb(obj)
            if geom is not None:
                pois.append((osm_id, kind, tags.get("name", ""), geom))
            return


# =================================================================== roads


def build_roads(ways: pd.DataFrame, refs: pd.DataFrame, crs: str, *, source: str = "<memory>") -> gpd.GeoDataFrame:
    """Split road ways at junctions into graph edges and attach class, speed and lanes.

    Parameters
    ----------
    ways : pandas.DataFrame
        One row per way (see :class:`OsmTables`).
    refs : pandas.DataFrame
        Node references of the ways, lon/lat in degrees (see :class:`OsmTables`).
    crs : str
        Target projected CRS (metres).
    source : str
        File named in error messages.

    Returns
    -------
    geopandas.GeoDataFrame
        The ``roads`` layer, indexed by ``road_id`` = ``"w<way id>_<k>"``.
    """
    from pyproj import Transformer

    seg = split_ways_at_junctions(refs["way"].to_numpy(), refs["node_id"].to_numpy(), refs["valid"].to_numpy())
    if len(seg.rows) == 0:
        raise EmptyDataError(f"{source}: no road segment with two located nodes; a city needs roads")
    to_crs = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x, y = to_crs.transform(refs["lon"].to_numpy()[seg.rows], refs["lat"].to_numpy()[seg.rows])
    geoms = shapely.linestrings(np.column_stack([x, y]), indices=seg.segment)
    node_ids = refs["node_id"].to_numpy()
    way_of_seg = refs["way"].to_numpy()[seg.rows[seg.first]]
    attrs = _way_attributes(ways).iloc[way_of_seg].reset_index(drop=True)
    k = pd.Series(way_of_seg).groupby(way_of_seg).cumcount().to_numpy()  # segment number within its way
    roads = gpd.GeoDataFrame(
        {
            "road_id": "w" + attrs["way_id"].astype(str) + "_" + pd.Series(k).astype(str),
            "from_node": "n" + pd.Series(node_ids[seg.rows[seg.first]]).astype(str),
            "to_node": "n" + pd.Series(node_ids[seg.rows[seg.last]]).astype(str),
            "length_m": shapely.length(geoms),
            **{c: attrs[c] for c in ("road_class", "speed_kmh", "lanes", "name")},
        },
        geometry=geoms, crs=crs,
    )
    roads = roads[roads["length_m"] > 0]
    return validate_layer(roads, "roads", source=source)


def _way_attributes(ways: pd.DataFrame) -> pd.DataFrame:
    """Class, speed (km/h) and lanes of each way, tags first and class defaults after."""
    road_class = ways["highway"].map(ROAD_CLASS_OF_HIGHWAY)
    oneway = ways["oneway"].isin(["yes", "1", "-1", "true"]) | ways["highway"].isin(["motorway", "motorway_link"])
    oneway &= ways["oneway"] != "no"
    default_lanes = road_class.map(DEFAULT_LANES).astype("int64")
    default_lanes = default_lanes.where(~oneway, np.maximum(1, default_lanes // 2))
    return pd.DataFrame({
        "way_id": ways["way_id"],
        "road_class": road_class,
        "speed_kmh": parse_speed_kmh(ways["maxspeed"]).fillna(road_class.map(DEFAULT_SPEED_KMH)),
        "lanes": parse_lanes(ways["lanes"]).fillna(default_lanes).astype("int64"),
        "name": ways["name"],
    })


@dataclass(frozen=True)
class Segments:
    """Road segments as runs of node-reference rows.

    Attributes
    ----------
    rows : numpy.ndarray
        Row of the node-reference table for each vertex, segment by segment
        (junction rows appear twice: end of one segment, start of the next).
    segment : numpy.ndarray
        Segment index of each entry of ``rows`` (0..n-1, non-decreasing).
    first, last : numpy.ndarray
        Position in ``rows`` of each segment's first and last vertex.
    """

    rows: np.ndarray
    segment: np.ndarray
    first: np.ndarray
    last: np.ndarray


def split_ways_at_junctions(way: np.ndarray, node_id: np.ndarray, valid: np.ndarray) -> Segments:
    """Cut node sequences into segments that start and end at junctions.

    A vertex is a junction if it ends a piece of a way or if its node occurs more
    than once among all road-node references (shared by two ways, or a loop).
    Nodes without a location cut their way in two (extracts clip ways at the
    edge), and repeated consecutive nodes are dropped.

    Parameters
    ----------
    way : numpy.ndarray
        Way index of each node reference, grouped by way, in way order.
    node_id : numpy.ndarray
        OSM node ID of each reference.
    valid : numpy.ndarray of bool
        Whether the node has a location.

    Returns
    -------
    Segments

    Examples
    --------
    >>> s = split_ways_at_junctions(np.array([0, 0, 0, 1, 1]), np.array([1, 2, 3, 2, 4]), np.ones(5, bool))
    >>> s.rows.tolist(), s.segment.tolist()
    ([0, 1, 1, 2, 3, 4], [0, 0, 1, 1, 2, 2])
    """
    n = len(way)
    idx = np.arange(n)
    prev_same_way = np.r_[False, way[1:] == way[:-1]]
    # A piece is a run of located nodes of one way.
    new_piece = ~prev_same_way | np.r_[True, ~valid[:-1]]
    piece = np.cumsum(new_piece)
    dup = np.r_[False, (node_id[1:] == node_id[:-1]) & (piece[1:] == piece[:-1])]
    keep = valid & ~dup
    idx, piece, node = idx[keep], piece[keep], node_id[keep]
    first = np.r_[True, piece[1:] != piece[:-1]]
    last = np.r_[piece[1:] != piece[:-1], True]
    single = first & last
    idx, piece, node, first, last = idx[~single], piece[~single], node[~single], first[~single], last[~single]
    if len(idx) == 0:
        empty = np.array([], dtype=np.int64)
        return Segments(empty, empty, empty, empty)
    _, inverse, counts = np.unique(node, return_inverse=True, return_counts=True)
    junction = first | last | (counts[inverse] > 1)
    starts = junction & ~last
    cs = np.cumsum(starts)
    # Each located vertex continues the segment it starts or lies on; a junction that is
    # not first in its piece also ends the previous segment.  Ordering key 2i+1 vs 2i
    # keeps every segment contiguous after the sort.
    on = ~last
    ends = junction & ~first
    cs_prev = np.r_[0, cs[:-1]]
    rows = np.r_[idx[on], idx[ends]]
    segment = np.r_[cs[on] - 1, cs_prev[ends] - 1]
    order = np.argsort(np.r_[2 * np.flatnonzero(on) + 1, 2 * np.flatnonzero(ends)], kind="stable")
    rows, segment = rows[order], segment[order]
    bounds = np.flatnonzero(np.r_[True, segment[1:] != segment[:-1]])
    return Segments(rows, segment, bounds, np.r_[bounds[1:] - 1, len(rows) - 1])


_NUMBER = r"(\d+(?:[.,]\d+)?)"


def _first_value(tags: pd.Series) -> pd.Series:
    # "50;30" and "2;3" list alternatives: the first is the main one.
    return tags.fillna("").astype(str).str.split(";").str[0].str.strip().str.lower()


def _to_float(text: pd.Series) -> pd.Series:
    return pd.to_numeric(text.str.replace(",", ".", regex=False), errors="coerce")


def parse_speed_kmh(maxspeed: pd.Series) -> pd.Series:
    """Parse OSM ``maxspeed`` values to km/h; NaN where there is no usable number.

    ``"50"`` -> 50, ``"30 mph"`` -> 48.3, ``"DE:urban"`` -> 50 (see
    :data:`SPEED_ZONE_KMH`), ``"walk"`` -> 5, ``"none"`` / ``"signals"`` -> NaN.

    Examples
    --------
    >>> parse_speed_kmh(pd.Series(["50", "30 mph", "DE:urban", "none", "20;30"])).round(1).tolist()
    [50.0, 48.3, 50.0, nan, 20.0]
    """
    text = _first_value(maxspeed)
    parts = text.str.extract(rf"^{_NUMBER}\s*(mph|knots|km/h|kmh|kph)?$")
    value = _to_float(parts[0])
    factor = parts[1].map({"mph": 1.609344, "knots": 1.852}).fillna(1.0)
    speed = value * factor
    zone = text.str.extract(r"^(?:[a-z]{2}:)?([a-z_]+)$")[0].map(SPEED_ZONE_KMH)
    speed = speed.fillna(zone)
    return speed.where((speed > 0) & (speed <= 200)).astype("float64")


def parse_lanes(lanes: pd.Series) -> pd.Series:
    """Parse OSM ``lanes`` values to a lane count (float, NaN if unusable; 1-12 kept).

    Examples
    --------
    >>> parse_lanes(pd.Series(["2", "3;2", "", "x", "0"])).tolist()
    [2.0, 3.0, nan, nan, nan]
    """
    value = _to_float(_first_value(lanes).str.extract(rf"^{_NUMBER}$")[0]).round()
    return value.where((value >= 1) & (value <= 12)).astype("float64")


# =============================================================== buildings


def parse_height_m(height: pd.Series) -> pd.Series:
    """Parse OSM ``height`` values to metres; NaN where there is no usable number.

    Accepts ``"12"``, ``"12 m"``, ``"12,5"``, ``"40'"``, ``"40 ft"`` and ``"40'6\\""``
    (feet and inches).  Values <= 0 or above 1,000 m are treated as tagging errors.

    Examples
    --------
    >>> parse_height_m(pd.Series(["12", "12 m", "40'", "40'6\\"", "tall", "12,5m"])).round(2).tolist()
    [12.0, 12.0, 12.19, 12.34, nan, 12.5]
    """
    text = _first_value(height)
    parts = text.str.extract(
        rf"^{_NUMBER}\s*(m|metres?|meters?|ft|feet|'|′)?\s*(?:(\d+(?:\.\d+)?)\s*(?:\"|″|in))?$"
    )
    value = _to_float(parts[0])
    feet = parts[1].isin(["ft", "feet", "'", "′"])
    inches = pd.to_numeric(parts[2], errors="coerce").fillna(0.0)
    metres = value.where(~feet, value * 0.3048 + inches * 0.0254)
    return metres.where((metres > 0) & (metres <= 1000)).astype("float64")


def parse_levels(levels: pd.Series) -> pd.Series:
    """Parse ``building:levels`` to a storey count (float, NaN if unusable; 0 < levels <= 200).

    Examples
    --------
    >>> parse_levels(pd.Series(["3", "2.5", "0", "", "4;5"])).tolist()
    [3.0, 2.5, nan, nan, 4.0]
    """
    value = _to_float(_first_value(levels).str.extract(rf"^{_NUMBER}$")[0])
    return value.where((value > 0) & (value <= 200)).astype("float64")


def classify_building_use(building: pd.Series, amenity: pd.Series, shop: pd.Series,
                          landuse_use: pd.Series) -> pd.Series:
    """Schema ``use`` of each building from its OSM tags.

    Order of evidence: a specific ``building`` value (:data:`BUILDING_USE`);
    then, for untyped buildings, a public ``amenity``, a ``shop``, and the use
    of the landuse polygon the building lies in; else ``other``.

    Parameters
    ----------
    building, amenity, shop : pandas.Series of str
        OSM tag values (empty string when absent).
    landuse_use : pandas.Series of str
        Use implied by the surrounding landuse, empty when none.
    """
    use = building.map(BUILDING_USE)
    untyped = use.isna()
    use = use.mask(untyped & amenity.isin(PUBLIC_AMENITIES), "public")
    use = use.mask(use.isna() & (shop != ""), "commercial")
    use = use.fillna(landuse_use.replace("", np.nan))
    return use.fillna("other")


def build_buildings(raw: pd.DataFrame, landuse: gpd.GeoDataFrame, crs: str, *,
                    repairs: GeometryRepairs | None = None) -> gpd.GeoDataFrame:
    """The ``buildings`` layer: footprints, height with its source, use and residents.

    Parameters
    ----------
    raw : pandas.DataFrame
        Building areas from :func:`read_osm` (WKB in WGS84).
    landuse : geopandas.GeoDataFrame
        Landuse polygons in ``crs`` with a ``landuse`` column.
    crs : str
        Target projected CRS (metres).
    repairs : GeometryRepairs, optional
        Receives the number of footprints repaired and dropped (:func:`repair_polygons`).

    Returns
    -------
    geopandas.GeoDataFrame
        Indexed by ``building_id`` (``"w<way id>"`` or ``"r<relation id>"``; the
        parts of a multi-part building get ``"_<k>"`` appended).
    """
    geom, n_repaired, n_dropped = repair_polygons(gpd.GeoSeries.from_wkb(raw["wkb"], crs="EPSG:4326").to_crs(crs),
                                                  min_area=MIN_BUILDING_AREA_M2)
    if repairs is not None:
        repairs.add("buildings", n_repaired, n_dropped)
    gdf = gpd.GeoDataFrame(raw.drop(columns="wkb"), geometry=geom.to_numpy(), crs=crs)
    gdf = _one_polygon_per_row(gdf[~gdf.geometry.is_empty])
    if len(gdf) == 0:  # a road-only extract is a valid (if empty) city
        return empty_layer("buildings", crs)
    tagged_h = parse_height_m(gdf["height"])
    levels = parse_levels(gdf["levels"])
    height = tagged_h.fillna(levels * STOREY_HEIGHT_M).fillna(DEFAULT_HEIGHT_M)
    source = np.select([tagged_h.notna(), levels.notna()], ["height", "levels"], "default")
    use = classify_building_use(gdf["building"], gdf["amenity"], gdf["shop"], _landuse_use_of(gdf, landuse))
    floors = levels.fillna(np.maximum(1.0, np.round(height / STOREY_HEIGHT_M)))
    dwelling_m2 = gdf.geometry.area * floors * use.map(RESIDENTIAL_SHARE).astype("float64").fillna(0.0)
    out = gpd.GeoDataFrame(
        {
            "building_id": gdf["building_id"],
            "height_m": height.round(2),
            "height_source": source,
            "use": use,
            "residents": np.floor(dwelling_m2 / FLOOR_AREA_PER_RESIDENT_M2).astype("int64"),
        },
        geometry=gdf.geometry, crs=crs,
    )
    return validate_layer(out, "buildings")


@dataclass
class GeometryRepairs:
    """How many geometries of each layer an import repaired and dropped.

    Examples
    --------
    >>> r = GeometryRepairs()
    >>> r.add("buildings", 2, 1); r.add("water", 0, 0)
    >>> r.summary(), r.n_repaired, r.n_dropped
    ('buildings: 2 repaired, 1 dropped', 2, 1)
    """

    repaired: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)

    def add(self, layer: str, n_repaired: int, n_dropped: int) -> None:
        """Count ``n_repaired`` and ``n_dropped`` geometries of ``layer``."""
        self.repaired[layer] = self.repaired.get(layer, 0) + int(n_repaired)
        self.dropped[layer] = self.dropped.get(layer, 0) + int(n_dropped)

    @property
    def n_repaired(self) -> int:
        return sum(self.repaired.values())

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    def summary(self) -> str:
        """One line: ``"<layer>: <n> repaired, <m> dropped; ..."`` for the layers with any, else ``"none"``."""
        parts = []
        for layer in self.repaired:
            r, d = self.repaired[layer], self.dropped.get(layer, 0)
            said = [f"{r} repaired"] * bool(r) + [f"{d} dropped"] * bool(d)
            if said:
                parts.append(f"{layer}: {', '.join(said)}")
        return "; ".join(parts) or "none"


def repair_polygons(geoms: gpd.GeoSeries, *, min_area: float = 0.0) -> tuple[gpd.GeoSeries, int, int]:
    """Make every polygonal geometry valid, keeping its area; count what was repaired and dropped.

    Self-intersecting rings (bowties), rings that cross their holes and spikes are
    rebuilt with ``shapely.make_valid(method="structure")`` (the area inside the
    outer rings minus the holes, as OSM means a multipolygon), keeping only the
    polygonal parts.  A geometry that is empty once repaired (a ring of collinear or
    repeated nodes), encloses less than ``min_area`` or has non-finite coordinates
    becomes an empty polygon: "dropped".  Points and lines pass through unless
    their coordinates are non-finite (then dropped) or a line has no length (dropped).

    Parameters
    ----------
    geoms : geopandas.GeoSeries
        Geometries in any CRS.
    min_area : float
        Smallest polygonal area kept, in the CRS's units squared (m2 in a projected CRS).

    Returns
    -------
    (geopandas.GeoSeries, int, int)
        The geometries (dropped ones empty, same index), the number repaired and the
        number dropped.

    Examples
    --------
    >>> bowtie = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2), (0, 0)])
    >>> flat = shapely.Polygon([(0, 0), (1, 0), (2, 0), (0, 0)])
    >>> out, n_repaired, n_dropped = repair_polygons(gpd.GeoSeries([bowtie, flat, shapely.box(0, 0, 1, 1)]))
    >>> out.geom_type.tolist(), out.area.tolist(), n_repaired, n_dropped
    (['MultiPolygon', 'Polygon', 'Polygon'], [2.0, 0.0, 1.0], 1, 1)
    """
    values = geoms.to_numpy().copy()
    present = ~(shapely.is_missing(values) | shapely.is_empty(values))
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(shapely.bounds(values)).all(axis=1)
    polygonal = np.isin(shapely.get_type_id(values), (3, 6))  # Polygon, MultiPolygon
    lines = np.isin(shapely.get_type_id(values), (1, 2, 5))  # LineString, LinearRing, MultiLineString
    nonfinite = present & ~finite
    invalid = present & finite & polygonal & ~shapely.is_valid(values)
    flat_lines = present & finite & lines & ~(shapely.length(values) > 0)
    if invalid.any():
        values[invalid] = [_polygonal_part(g) for g in _make_valid(values[invalid])]
    with np.errstate(invalid="ignore"):  # non-finite rings have no area; they are dropped anyway
        slivers = present & finite & polygonal & ~shapely.is_empty(values) & (shapely.area(values) < min_area)
    drop = nonfinite | flat_lines | slivers
    values[drop] = shapely.Polygon()
    dropped = drop | (invalid & shapely.is_empty(values))
    return (gpd.GeoSeries(values, index=geoms.index, crs=geoms.crs),
            int((invalid & ~dropped).sum()), int(dropped.sum()))


def _make_valid(values: np.ndarray) -> np.ndarray:
    """``shapely.make_valid`` with the OSM-like "structure" method where shapely/GEOS have it."""
    try:
        return shapely.make_valid(values, method="structure", keep_collapsed=False)
    except (TypeError, ValueError, shapely.errors.GEOSException):  # shapely < 2.1 or GEOS < 3.10
        return shapely.make_valid(values)


def _polygonal_part(geom):
    # make_valid may return a collection with stray lines or points.
    if geom is None or geom.is_empty:
        return shapely.Polygon()
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _one_polygon_per_row(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Split multi-part buildings into parts ``"<id>_<k>"``.

    An all-Polygon layer is stored as such in a GeoPackage; a mix with
    MultiPolygons would come back promoted, and 3D extrusion wants one ring set per row.
    """
    parts = gdf.explode(index_parts=True)
    k = parts.index.get_level_values(1).to_numpy()
    multi = parts.groupby(level=0)["building_id"].transform("size").to_numpy() > 1
    parts["building_id"] = np.where(multi, parts["building_id"] + "_" + (k + 1).astype(str), parts["building_id"])
    return parts.reset_index(drop=True)


def _landuse_use_of(buildings: gpd.GeoDataFrame, landuse: gpd.GeoDataFrame) -> pd.Series:
    """Use implied by the landuse polygon each building's centre lies in ('' if none)."""
    if len(landuse) == 0 or len(buildings) == 0:
        return pd.Series("", index=buildings.index)
    points = gpd.GeoDataFrame(geometry=buildings.geometry.representative_point(), crs=buildings.crs)
    hit = gpd.sjoin(points, landuse, how="left", predicate="within")
    hit = hit[~hit.index.duplicated()]  # overlapping landuse: first wins
    return hit["landuse"].map(LANDUSE_USE).fillna("").reindex(buildings.index)


# ===================================================================== DEM


def build_fallback_dem(bounds: tuple[float, float, float, float], crs: str, *,
                       water: gpd.GeoDataFrame | None = None, cell_m: float = DEM_CELL_M) -> Raster:
    """Synthetic ground surface used when no DEM is given.

    Without water: a plane at :data:`FALLBACK_DEM_BASE_M` metres along the
    southern edge of the grid, rising :data:`FALLBACK_DEM_SLOPE` (0.5 %) towards
    the north (an arbitrary direction).  With water features: the same height at
    the water, rising 0.5 % with the distance from it, so the sewer drains to
    the river as a real one would.  Gentle enough to be "flat" for flooding,
    steep enough for gravity sewers; pass a real DEM for real studies.

    Parameters
    ----------
    bounds : tuple of float
        (xmin, ymin, xmax, ymax) of the city in metres; the grid adds
        :data:`DEM_MARGIN_M` on every side.
    crs : str
        Projected CRS (metres).
    water : geopandas.GeoDataFrame, optional
        Rivers, canals and water areas in ``crs``.
    cell_m : float
        Cell size in metres.

    Returns
    -------
    Raster
        Elevation in metres.

    Examples
    --------
    >>> r = build_fallback_dem((0, 0, 1000, 1000), "EPSG:32633")
    >>> float(r.values.min()), r.shape
    (10.025, (120, 120))
    """
    x0, y0, x1, y1 = _grid_bounds(bounds, cell_m)
    cols, rows = round((x1 - x0) / cell_m), round((y1 - y0) / cell_m)
    transform = Affine(cell_m, 0, x0, 0, -cell_m, y1)
    if water is not None and len(water):
        from rasterio.features import rasterize
        from scipy.ndimage import distance_transform_edt

        wet = rasterize(water.geometry, out_shape=(rows, cols), transform=transform, all_touched=True,
                        dtype="uint8").astype(bool)
        if wet.any():
            distance_m = distance_transform_edt(~wet) * cell_m
            return Raster(FALLBACK_DEM_BASE_M + FALLBACK_DEM_SLOPE * distance_m, transform, crs)
    yc = y1 - (np.arange(rows) + 0.5) * cell_m
    z = FALLBACK_DEM_BASE_M + FALLBACK_DEM_SLOPE * (yc - y0)
    return Raster(np.repeat(z[:, None], cols, axis=1), transform, crs)


def load_dem(dem: str | Path | Raster, bounds: tuple[float, float, float, float], crs: str) -> tuple[Raster, str]:
    """Read a user DEM, reproject it to ``crs`` and crop it to the city plus a margin.

    Parameters
    ----------
    dem : str, Path or Raster
        GeoTIFF path or raster, elevation in metres, in any CRS.
    bounds : tuple of float
        (xmin, ymin, xmax, ymax) of the city in ``crs``, metres.
    crs : str
        The city's projected CRS.

    Returns
    -------
    Raster, str
        The DEM on a north-up grid in ``crs`` (cell size kept, never finer than
        1 m) and a description for ``metadata["dem_source"]``.  No-data cells
        inside the grid are filled from the nearest valid cell.

    Raises
    ------
    InputFileNotFoundError, CorruptFileError, CRSError
        From :func:`gisdata.raster.read_geotiff`.
    TwinError
        If the DEM does not overlap the city.
    """
    from pyproj import CRS, Transformer
    from rasterio.warp import Resampling, reproject

    label = "Raster object" if isinstance(dem, Raster) else str(dem)
    src = dem if isinstance(dem, Raster) else read_geotiff(dem)
    if CRS.from_user_input(src.crs).equals(CRS.from_user_input(crs)):
        cell = src.cell_size_m
    else:
        # Source cell size in target metres: measure one cell at the source grid's centre.
        rows, cols = src.shape
        cx, cy = src.transform @ (cols / 2, rows / 2)
        px, py = Transformer.from_crs(src.crs, crs, always_xy=True).transform(
            [cx, cx + src.transform.a], [cy, cy])
        cell = float(np.hypot(px[1] - px[0], py[1] - py[0]))
    cell = max(1.0, round(cell, 3))
    x0, y0, x1, y1 = _grid_bounds(bounds, cell)
    shape = (round((y1 - y0) / cell), round((x1 - x0) / cell))
    transform = Affine(cell, 0, x0, 0, -cell, y1)
    values = np.full(shape, np.nan)
    source = np.where(src.values == src.nodata, np.nan, src.values) if src.nodata is not None else src.values
    reproject(source=np.ascontiguousarray(source), destination=values, src_transform=src.transform,
              src_crs=src.crs, dst_transform=transform, dst_crs=crs, src_nodata=np.nan, dst_nodata=np.nan,
              resampling=Resampling.bilinear)
    missing = np.isnan(values)
    if missing.all():
        raise TwinError(f"{label}: DEM (bounds {tuple(round(b, 3) for b in src.bounds)} in {src.crs}) does not "
                        f"overlap the city (bounds {tuple(round(b) for b in bounds)} in {crs}); "
                        "expected a DEM covering the OSM extract")
    note = ""
    if missing.any():
        from scipy.ndimage import distance_transform_edt

        nearest = distance_transform_edt(missing, return_distances=False, return_indices=True)
        values = values[tuple(nearest)]
        note = f"; {missing.mean() * 100:.1f} % of cells outside the DEM filled from the nearest cell"
    return Raster(values, transform, crs), f"{label} (reprojected from {src.crs} to {crs}, {cell:g} m cells{note})"


def _grid_bounds(bounds, cell_m: float) -> tuple[float, float, float, float]:
    """Bounds plus margin, snapped outwards to whole cells."""
    xmin, ymin, xmax, ymax = bounds
    m = DEM_MARGIN_M
    return (np.floor((xmin - m) / cell_m) * cell_m, np.floor((ymin - m) / cell_m) * cell_m,
            np.ceil((xmax + m) / cell_m) * cell_m, np.ceil((ymax + m) / cell_m) * cell_m)


# ===================================================================== sewer


def _design_sewer(roads: gpd.GeoDataFrame, dem: Raster, buildings: gpd.GeoDataFrame,
                  outfalls: gpd.GeoSeries | None):
    from gisdata.sewer_design import design_sewer

    return design_sewer(roads, dem, buildings=buildings, outfall_candidates=outfalls)


def outfall_candidates(water: gpd.GeoDataFrame, *, spacing_m: float = OUTFALL_SPACING_M) -> gpd.GeoSeries | None:
    """Points every ``spacing_m`` metres along the rivers and water-area shores.

    The sewer designer ties each to its nearest street junction.  ``None`` (no
    water) lets the designer pick the low points of the network boundary.

    Examples
    --------
    >>> w = gpd.GeoDataFrame(geometry=[shapely.LineString([(0, 0), (1000, 0)])], crs="EPSG:32633")
    >>> outfall_candidates(w).x.tolist()
    [125.0, 375.0, 625.0, 875.0]
    """
    if water is None or len(water) == 0:
        return None
    lines = shapely.get_parts(water.geometry.boundary.where(water.geom_type.str.contains("Polygon"),
                                                            water.geometry).to_numpy())
    lines = lines[shapely.length(lines) > 0]
    n = np.maximum(1, np.floor(shapely.length(lines) / spacing_m).astype(int))
    along = np.concatenate([(np.arange(k) + 0.5) * spacing_m for k in n])
    along = np.minimum(along, np.repeat(shapely.length(lines), n))
    return gpd.GeoSeries(shapely.line_interpolate_point(np.repeat(lines, n), along), crs=water.crs)


def _water_in(water: gpd.GeoDataFrame, bounds) -> gpd.GeoDataFrame:
    """Water features clipped to the city's extent plus the DEM margin."""
    if len(water) == 0:
        return water
    m = DEM_MARGIN_M
    area = shapely.box(bounds[0] - m, bounds[1] - m, bounds[2] + m, bounds[3] + m)
    big = ~water.geom_type.str.contains("Polygon") | (water.area >= MIN_WATER_AREA_M2)
    clipped = water[big].clip(area)
    return clipped[~clipped.geometry.is_empty]


# ============================================================ other layers


def build_districts(bounds: tuple[float, float, float, float], crs: str, *,
                    cell_m: float = DISTRICT_CELL_M) -> gpd.GeoDataFrame:
    """Management grid of ``cell_m`` squares aligned to whole multiples of ``cell_m``, clipped to ``bounds``.

    Cells are named like a map grid: column letters west to east, row numbers
    north to south (``"A1"`` is the north-west cell).

    Parameters
    ----------
    bounds : tuple of float
        (xmin, ymin, xmax, ymax) of the city, metres.
    crs : str
        Projected CRS.
    cell_m : float
        Cell edge, metres.

    Examples
    --------
    >>> build_districts((0, 0, 1200, 400), "EPSG:32633")["name"].tolist()
    ['A1', 'B1', 'C1']
    """
    xmin, ymin, xmax, ymax = bounds
    xs = np.arange(np.floor(xmin / cell_m) * cell_m, xmax, cell_m)
    ys = np.arange(np.ceil(ymax / cell_m) * cell_m, ymin, -cell_m)  # north to south
    gx, gy = np.meshgrid(xs, ys)
    row, col = np.meshgrid(np.arange(len(ys)), np.arange(len(xs)), indexing="ij")
    cells = shapely.box(np.maximum(gx, xmin), np.maximum(gy - cell_m, ymin),
                        np.minimum(gx + cell_m, xmax), np.minimum(gy, ymax)).ravel()
    width = len(str(max(len(xs), len(ys))))
    ids = [f"D{r + 1:0{width}d}_{c + 1:0{width}d}" for r, c in zip(row.ravel(), col.ravel())]
    names = [f"{_column_letters(c)}{r + 1}" for r, c in zip(row.ravel(), col.ravel())]
    gdf = gpd.GeoDataFrame({"district_id": ids, "name": names}, geometry=cells, crs=crs)
    return validate_layer(gdf[shapely.area(cells) > 0], "districts")


def _column_letters(col: int) -> str:
    letters = ""
    col += 1
    while col:
        col, rem = divmod(col - 1, 26)
        letters = string.ascii_uppercase[rem] + letters
    return letters


def build_depots(pois: gpd.GeoDataFrame, roads: gpd.GeoDataFrame, centre: shapely.Point,
                 crs: str) -> gpd.GeoDataFrame:
    """One depot per department, at an OSM feature when there is one.

    ``amenity=townhall`` -> city_management, ``man_made=wastewater_plant`` ->
    drainage, ``amenity=police`` -> police, ``amenity=fire_station`` ->
    emergency; of several, the one nearest ``centre`` wins.  A department without
    one gets a fallback depot on a road-graph junction: the nearest free
    junctions to ``centre``, taken in :data:`DEPARTMENTS` order, so depots sit on
    the network and share a spot only when there are fewer junctions than depots.

    Parameters
    ----------
    pois : geopandas.GeoDataFrame
        Points of interest with ``osm_id``, ``kind`` and ``name``, in ``crs``.
    roads : geopandas.GeoDataFrame
        The ``roads`` layer.
    centre : shapely.Point
        Centre of the road network, metres.
    crs : str
        Projected CRS.
    """
    rows = []
    junctions = _drivable_junctions(roads)
    order = itertools.cycle(junctions.distance(centre).sort_values(kind="stable").index)
    for dept in DEPARTMENTS:
        kinds = [k for k, d in DEPOT_OF_POI.items() if d == dept]
        cand = pois[pois["kind"].isin(kinds)]
        if len(cand):
            best = cand.loc[cand.distance(centre).idxmin()]
            label = best["name"] or f"{best['kind'].replace('_', ' ')} {best['osm_id']}"
            rows.append((f"DP_{dept}", dept, label, DEPOT_CREWS[dept], best["osm_id"], best.geometry))
        else:
            node = next(order)
            rows.append((f"DP_{dept}", dept, f"{dept.replace('_', ' ')} depot (fallback)", DEPOT_CREWS[dept],
                         "", junctions[node]))
    gdf = gpd.GeoDataFrame(rows, columns=["depot_id", "department", "name", "n_crews", "osm_id", "geometry"],
                           geometry="geometry", crs=crs)
    return validate_layer(gdf, "depots")


def build_sensors(nodes: gpd.GeoDataFrame, centre: shapely.Point, crs: str, *,
                  n_water_level: int = N_WATER_LEVEL_SENSORS) -> gpd.GeoDataFrame:
    """A rain gauge ``RG1`` at ``centre`` and water-level sensors ``WL1..`` on the lowest manholes.

    Parameters
    ----------
    nodes : geopandas.GeoDataFrame
        The ``nodes`` layer (sewer manholes and outfalls).
    centre : shapely.Point
        Centre of the road network, metres.
    crs : str
        Projected CRS.
    n_water_level : int
        Water-level sensors, placed on the junctions with the lowest rim elevation.
    """
    junctions = nodes[nodes["node_type"] == "junction"] if len(nodes) else nodes
    low = junctions.assign(_id=junctions.index).sort_values(["rim_elev_m", "_id"]).head(n_water_level)
    ids = ["RG1"] + [f"WL{i + 1}" for i in range(len(low))]
    gdf = gpd.GeoDataFrame(
        {"sensor_id": ids, "sensor_type": ["rain_gauge"] + ["water_level"] * len(low),
         "node_id": [""] + list(low.index)},
        geometry=[centre, *low.geometry], crs=crs,
    )
    return validate_layer(gdf, "sensors")


def build_vendor_sites(pois: gpd.GeoDataFrame, crs: str) -> gpd.GeoDataFrame:
    """Vendor sites at markets, subway entrances, squares, parks, schools and hospitals.

    Attractiveness per kind is :data:`VENDOR_ATTRACTIVENESS`; IDs are
    ``"V_<osm id>"``.  An area (a park) is represented by a point inside it.
    """
    sites = pois[pois["kind"].isin(VENDOR_ATTRACTIVENESS)].drop_duplicates("osm_id")
    gdf = gpd.GeoDataFrame(
        {"site_id": "V_" + sites["osm_id"], "site_type": sites["kind"],
         "attractiveness": sites["kind"].map(VENDOR_ATTRACTIVENESS), "name": sites["name"]},
        geometry=sites.geometry, crs=crs,
    )
    return validate_layer(gdf, "vendor_sites")


# ================================================================= helpers


def _check_osm_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputFileNotFoundError(f"{path}: OSM file not found (expected one of {list(OSM_SUFFIXES)})")
    if not path.name.lower().endswith(OSM_SUFFIXES):
        raise TwinError(f"{path}: unsupported file type; expected an OSM extract ending in {list(OSM_SUFFIXES)}")
    if path.is_dir():
        raise CorruptFileError(f"{path}: is a directory; expected an OSM extract file")
    return path


def _stem(path: Path) -> str:
    name = path.name
    for suffix in sorted(OSM_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _utm_crs_of(lon: np.ndarray, lat: np.ndarray) -> str:
    """The UTM zone (WGS84) of the centre of the located points."""
    ok = ~np.isnan(lon)
    centre = gpd.GeoSeries(gpd.points_from_xy([np.nanmean(lon[ok])], [np.nanmean(lat[ok])]), crs="EPSG:4326")
    return centre.estimate_utm_crs().to_string()


def _areas_to_crs(raw: pd.DataFrame, crs: str, *, layer: str, repairs: GeometryRepairs | None = None
                  ) -> gpd.GeoDataFrame:
    """Areas (and lines, points) read in WGS84 as a GeoDataFrame in ``crs``: repaired, the dropped ones left out."""
    geom, n_repaired, n_dropped = repair_polygons(gpd.GeoSeries.from_wkb(raw["wkb"], crs="EPSG:4326").to_crs(crs))
    if repairs is not None:
        repairs.add(layer, n_repaired, n_dropped)
    gdf = gpd.GeoDataFrame(raw.drop(columns="wkb"), geometry=geom.to_numpy(), crs=crs)
    return gdf[~gdf.geometry.is_empty]


def _pois_to_crs(raw: pd.DataFrame, crs: str, *, repairs: GeometryRepairs | None = None) -> gpd.GeoDataFrame:
    """POIs as points in ``crs`` (areas become a point inside them)."""
    gdf = _areas_to_crs(raw, crs, layer="points of interest", repairs=repairs)
    return gdf.set_geometry(gdf.geometry.representative_point())


def _data_bounds(roads: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame) -> tuple[float, float, float, float]:
    b = [roads.total_bounds] + ([buildings.total_bounds] if len(buildings) else [])
    arr = np.vstack(b)
    return (float(arr[:, 0].min()), float(arr[:, 1].min()), float(arr[:, 2].max()), float(arr[:, 3].max()))


def _network_centre(roads: gpd.GeoDataFrame) -> shapely.Point:
    """Length-weighted centre of the road segments (the network's centroid), metres."""
    c = shapely.centroid(roads.geometry.to_numpy())
    w = roads["length_m"].to_numpy()
    return shapely.Point(np.average(shapely.get_x(c), weights=w), np.average(shapely.get_y(c), weights=w))


def _drivable_junctions(roads: gpd.GeoDataFrame) -> gpd.GeoSeries:
    """Road-graph nodes of the drivable network as points, indexed by node ID."""
    drive = roads[roads["road_class"].isin(DRIVABLE_CLASSES)]
    if len(drive) == 0:
        drive = roads
    geoms = drive.geometry.to_numpy()
    pts = pd.concat([
        pd.Series(shapely.get_point(geoms, 0), index=drive["from_node"].to_numpy()),
        pd.Series(shapely.get_point(geoms, -1), index=drive["to_node"].to_numpy()),
    ])
    pts = pts[~pts.index.duplicated()].sort_index()
    return gpd.GeoSeries(pts, crs=roads.crs)
