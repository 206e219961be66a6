"""Issue #12, class 10: real OSM data with invalid polygons imports cleanly and says what it repaired.

* The real Monaco extract (``../shared/data/gis/monaco``, see its SOURCE.txt: about
  1,160 buildings and 3,300 road segments, (c) OpenStreetMap contributors, ODbL).
* A hand-made hostile ``.osm`` in ``tmp_path``: bowtie buildings, landuse, water and
  POI areas, duplicate nodes (repeated refs, one location under two IDs, one ID
  defined twice), multipolygons whose rings cross or overlap, spikes and
  coordinates out of range.
* Invalid geometry that reaches the layer builders (osmium itself refuses most
  bowties, other readers and versions may not): repaired with ``make_valid`` and
  counted, and a GEOS failure that still happens is a :class:`GeometryError`.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from gisdata import osm
from gisdata.city import load_city
from gisdata.errors import CorruptFileError, GeometryError, TwinError
from gisdata.schema import LAYER_NAMES, validate_layer

POLYGON_LAYERS = ("buildings", "subcatchments", "districts")


def _all_valid(city) -> None:
    for layer in LAYER_NAMES:
        gdf = city.layer(layer)
        geoms = gdf.geometry.to_numpy()
        assert shapely.is_valid(geoms).all(), (layer, [shapely.is_valid_reason(g) for g in geoms
                                                       if not shapely.is_valid(g)][:3])
        assert not shapely.is_empty(geoms).any(), layer
        assert np.isfinite(shapely.get_coordinates(geoms)).all(), layer
        validate_layer(gdf, layer, source="test")
    for layer in POLYGON_LAYERS:
        assert set(city.layer(layer).geom_type) <= {"Polygon", "MultiPolygon"}, layer


# ------------------------------------------------------------ the real Monaco extract


@pytest.fixture(scope="module")
def monaco(shared_data):
    folder = shared_data / "gis" / "monaco"
    assert "OpenStreetMap" in (folder / "SOURCE.txt").read_text(encoding="utf-8")
    return osm.import_osm(folder / "monaco-latest.osm.pbf")


def test_monaco_imports_with_its_documented_size(monaco):
    # SOURCE.txt: about 1,160 buildings and 3,300 road segments.
    assert 1_100 <= len(monaco.buildings) <= 1_250
    assert 3_000 <= len(monaco.roads) <= 3_600
    assert monaco.crs == "EPSG:32632"  # Monaco lies in UTM zone 32N
    assert len(monaco.nodes) > 100 and len(monaco.conduits) > 100 and len(monaco.subcatchments) > 50
    xmin, ymin, xmax, ymax = monaco.extent
    assert 2_000 < xmax - xmin < 8_000 and 1_000 < ymax - ymin < 8_000  # a few km, in metres


def test_monaco_layers_are_valid_and_the_repairs_are_reported(monaco):
    _all_valid(monaco)
    m = monaco.metadata
    assert int(m["repaired_geometries"]) >= 0 and int(m["dropped_geometries"]) >= 0 and int(m["skipped_buildings"]) >= 0
    assert m["geometry_repairs"] == "none" or "repaired" in m["geometry_repairs"] or "dropped" in m["geometry_repairs"]
    assert (monaco.buildings["height_m"] > 0).all() and monaco.buildings.index.is_unique


# ------------------------------------------------------------ a hostile hand-made extract

D = 0.0002  # degrees, about 22 m north-south


class _Osm:
    """A tiny OSM XML writer: a grid of nodes around (48.10 N, 11.50 E), ways and relations."""

    def __init__(self):
        self.nodes: list[str] = []
        self.ways: list[str] = []
        self.relations: list[str] = []
        self._ids = itertools.count(1)

    def node(self, x: float, y: float, *, node_id: int | None = None, tags: dict | None = None) -> int:
        i = next(self._ids) if node_id is None else node_id
        tag = "".join(f'<tag k="{k}" v="{v}"/>' for k, v in (tags or {}).items())
        self.nodes.append(f'  <node id="{i}" lat="{48.1 + y * D:.7f}" lon="{11.5 + x * D:.7f}">{tag}</node>')
        return i

    def ring(self, *xy) -> list[int]:
        ids = [self.node(x, y) for x, y in xy]
        return ids + [ids[0]]

    def way(self, refs, tags: dict | None = None) -> int:
        wid = next(self._ids) + 10_000
        self.ways.append(f'  <way id="{wid}">' + "".join(f'<nd ref="{r}"/>' for r in refs)
                         + "".join(f'<tag k="{k}" v="{v}"/>' for k, v in (tags or {}).items()) + "</way>")
        return wid

    def multipolygon(self, members: list[tuple[int, str]], tags: dict) -> None:
        rid = next(self._ids) + 20_000
        self.relations.append(f'  <relation id="{rid}">'
                              + "".join(f'<member type="way" ref="{w}" role="{r}"/>' for w, r in members)
                              + '<tag k="type" v="multipolygon"/>'
                              + "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items()) + "</relation>")

    def write(self, path: Path) -> Path:
        path.write_text("<?xml version='1.0' encoding='UTF-8'?>\n<osm version=\"0.6\" generator=\"test\">\n"
                        + "\n".join(self.nodes + self.ways + self.relations) + "\n</osm>\n", encoding="utf-8")
        return path


def _hostile(tmp_path: Path) -> tuple[Path, dict]:
    """The hostile extract, and the IDs of the features the test looks for."""
    o = _Osm()
    # A street grid: two crossing roads, one with repeated node refs, one through a node defined twice.
    a, b, c = o.node(-10, 0), o.node(0, 0), o.node(10, 0)
    n, s = o.node(0, 10), o.node(0, -10)
    main = o.way([a, a, b, b, c], {"highway": "primary", "name": "Main"})
    cross = o.way([s, b, n], {"highway": "residential"})
    twin_id = o.node(10, 10)
    o.node(11, 11, node_id=twin_id)  # the same node ID twice, at another place
    side = o.way([c, twin_id], {"highway": "service"})
    same_place = o.node(-10, 0)  # a second ID at the location of `a`
    spur = o.way([same_place, a, o.node(-10, 5)], {"highway": "residential"})
    ids = {"roads": (main, cross, side, spur)}

    # Good buildings, which must survive next to the bad ones.
    good = [o.way(o.ring((1 + 3 * k, 1), (3 + 3 * k, 1), (3 + 3 * k, 3), (1 + 3 * k, 3)), {"building": "yes"})
            for k in range(3)]
    ids["good"] = good
    # Bowties: building, landuse, water, a marketplace.
    ids["bowties"] = [
        o.way(o.ring((-8, 1), (-6, 3), (-6, 1), (-8, 3)), {"building": "house"}),
        o.way(o.ring((-12, -12), (12, 12), (12, -12), (-12, 12)), {"landuse": "residential"}),
        o.way(o.ring((-9, -9), (-1, -1), (-1, -9), (-9, -1)), {"natural": "water"}),
        o.way(o.ring((5, -8), (8, -5), (8, -8), (5, -5)), {"amenity": "marketplace"}),
    ]
    # A building with duplicate consecutive refs and a spike back along one edge.
    p = [o.node(x, y) for x, y in ((1, -3), (4, -3), (4, -1), (1, -1))]
    spike = o.node(6, -1)
    ids["spiky"] = o.way([p[0], p[0], p[1], p[2], p[2], spike, p[2], p[3], p[0]], {"building": "apartments"})
    # A building of two nodes and a building of collinear nodes.
    q = [o.node(-4, -4), o.node(-3, -4), o.node(-2, -4)]
    o.way([q[0], q[1], q[0]], {"building": "yes"})
    o.way([q[0], q[1], q[2], q[0]], {"building": "yes"})
    # Ring conflicts: an inner ring that crosses its outer ring; two overlapping outers; a nested "outer".
    outer = o.way(o.ring((2, 5), (8, 5), (8, 9), (2, 9)))
    inner = o.way(o.ring((1, 6), (5, 6), (5, 8), (1, 8)))
    o.multipolygon([(outer, "outer"), (inner, "inner")], {"building": "commercial"})
    ov1 = o.way(o.ring((-9, 5), (-5, 5), (-5, 9), (-9, 9)))
    ov2 = o.way(o.ring((-7, 7), (-3, 7), (-3, 11), (-7, 11)))
    o.multipolygon([(ov1, "outer"), (ov2, "outer")], {"natural": "water"})
    big = o.way(o.ring((-20, -20), (20, -20), (20, 20), (-20, 20)))
    o.multipolygon([(big, "outer"), (ov1, "outer"), (ov2, "")], {"landuse": "commercial"})
    # Coordinates out of range: osmium gives them no location.
    far = [o.node(0, 0) for _ in range(3)]
    o.nodes[-3:] = [f'  <node id="{i}" lat="{lat}" lon="{lon}"/>'
                    for i, (lat, lon) in zip(far, (("91.5", "11.5"), ("48.1", "181.0"), ("-95", "11.5")))]
    o.way(far + [far[0]], {"building": "yes"})
    return o.write(tmp_path / "hostile.osm"), ids


def test_hostile_extract_imports_and_counts_what_it_dropped(tmp_path):
    path, ids = _hostile(tmp_path)
    city = osm.import_osm(path)
    _all_valid(city)
    b = city.buildings
    for wid in ids["good"]:
        assert f"w{wid}" in b.index
    assert f"w{ids['bowties'][0]}" not in b.index  # a bowtie has no outline to keep
    spiky = b.loc[b.index.str.startswith(f"w{ids['spiky']}")].geometry.union_all()
    assert spiky.area == pytest.approx(3 * 2 * (D * 111_000) ** 2 * np.cos(np.radians(48.1)), rel=0.05)
    m = city.metadata
    # Bowtie, two-node, collinear and out-of-range buildings: osmium could not assemble them.
    assert int(m["skipped_buildings"]) >= 4
    assert int(m["repaired_geometries"]) >= 0 and int(m["dropped_geometries"]) >= 0 and m["geometry_repairs"]
    r = city.roads
    assert (r["length_m"] > 0).all() and (r["from_node"] != r["to_node"]).all()
    assert {f"w{ids['roads'][0]}_0", f"w{ids['roads'][0]}_1"} <= set(r.index)  # Main, split at the crossing


@pytest.mark.parametrize("lat, lon", [("48.1", "1e10"), ("-1e300", "11.5"), ("nan", "11.5"), ("48.1", "")])
def test_a_malformed_coordinate_is_a_corrupt_file_not_a_traceback(tmp_path, lat, lon):
    path, _ = _hostile(tmp_path)
    text = path.read_text(encoding="utf-8").replace('lat="91.5" lon="11.5"', f'lat="{lat}" lon="{lon}"')
    path.write_text(text, encoding="utf-8")
    try:
        city = osm.import_osm(path)  # osmium may take some spellings as "no location"
    except CorruptFileError as exc:
        assert "hostile.osm: not readable as OSM data" in str(exc) and "\n" not in str(exc)
    else:
        _all_valid(city)


def test_hostile_extract_loads_through_the_workbench_upload(tmp_path):
    from twin.app_support import load_uploaded_city

    path, _ = _hostile(tmp_path)
    city = load_uploaded_city([(path.name, path.read_bytes())], "osm")
    _all_valid(city)
    assert "geometry_repairs" in city.metadata


# ------------------------------------------------------------ invalid geometry past the reader

BOWTIE = shapely.Polygon([(0, 0), (2, 2), (2, 0), (0, 2), (0, 0)])


def _lonlat(geom, x0=11.5, y0=48.1, scale=D):
    return shapely.transform(geom, lambda xy: np.column_stack([x0 + xy[:, 0] * scale, y0 + xy[:, 1] * scale]))


def test_invalid_areas_from_the_reader_are_repaired_and_counted(tmp_path, monkeypatch):
    """A reader that hands over bowties, a spiky water body (GeometryCollection once made valid),
    a collapsed ring and non-finite coordinates: the import repairs, drops and counts them."""
    path, _ = _hostile(tmp_path)
    raw = osm.read_osm(path)
    spiky_water = shapely.Polygon([(-9, -9), (-1, -9), (-1, -1), (3, 3), (-1, -1), (-9, -1), (-9, -9)])
    collapsed = shapely.Polygon([(0, -5), (1, -5), (2, -5), (0, -5)])
    nonfinite = shapely.Polygon([(0, 0), (np.inf, 0), (1, 1), (0, 0)])
    crossing = shapely.MultiPolygon([shapely.box(2, 5, 8, 9), shapely.box(6, 7, 10, 11)])  # overlapping parts
    raw.buildings = pd.concat([raw.buildings, pd.DataFrame({
        "building_id": ["wBOW", "wFLAT", "wINF", "rCROSS"], "building": ["yes"] * 4, "height": [""] * 4,
        "levels": [""] * 4, "amenity": [""] * 4, "shop": [""] * 4,
        "wkb": [shapely.to_wkb(_lonlat(BOWTIE, 11.5 - 8 * D, 48.1 + D)), shapely.to_wkb(_lonlat(collapsed)),
                shapely.to_wkb(nonfinite), shapely.to_wkb(_lonlat(crossing, 11.5 + 10 * D, 48.1 + 10 * D))],
    })], ignore_index=True)
    raw.landuse = pd.concat([raw.landuse, pd.DataFrame({
        "landuse": ["residential"], "wkb": [shapely.to_wkb(_lonlat(shapely.affinity.scale(BOWTIE, 12, 12)))]})],
        ignore_index=True)
    raw.water = pd.concat([raw.water, pd.DataFrame({"kind": ["water"],
                                                    "wkb": [shapely.to_wkb(_lonlat(spiky_water, scale=D * 2))]})],
                          ignore_index=True)
    raw.pois = pd.concat([raw.pois, pd.DataFrame({"osm_id": ["wPOI"], "kind": ["market"], "name": ["<b>x</b>"],
                                                  "wkb": [shapely.to_wkb(_lonlat(BOWTIE, 11.5 + 5 * D))]})],
                         ignore_index=True)
    monkeypatch.setattr(osm, "read_osm", lambda _path: raw)
    city = osm.import_osm(path)
    _all_valid(city)
    b = city.buildings
    assert {"wBOW_1", "wBOW_2"} <= set(b.index)  # the bowtie's two triangles, each 1/4 of its box
    assert not b.index.str.startswith(("wFLAT", "wINF")).any()
    assert b.index.str.startswith("rCROSS").any()
    m = city.metadata
    assert "buildings: 2 repaired, 2 dropped" in m["geometry_repairs"]  # bowtie and crossing; flat and inf
    assert "landuse: 1 repaired" in m["geometry_repairs"] and "water: 1 repaired" in m["geometry_repairs"]
    assert "points of interest: 1 repaired" in m["geometry_repairs"]
    assert int(m["repaired_geometries"]) >= 5 and int(m["dropped_geometries"]) >= 2
    assert m["outfalls_at"] == "OSM water features"  # the repaired water body still receives the sewer
    assert "V_wPOI" in set(city.vendor_sites.index)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_repair_polygons_keeps_area_and_drops_what_has_none():
    spike = shapely.Polygon([(0, 0), (2, 0), (2, 2), (3, 3), (2, 2), (0, 2), (0, 0)])
    # A hole that pokes out of its shell; the NaN ring below warns when shapely builds it.
    hole_out = shapely.Polygon(shapely.box(0, 0, 4, 4).exterior.coords, [shapely.box(3, 1, 5, 2).exterior.coords])
    geoms = gpd.GeoSeries([BOWTIE, spike, hole_out, shapely.Polygon([(0, 0), (1, 0), (2, 0), (0, 0)]),
                           shapely.Polygon([(0, 0), (np.nan, 0), (1, 1), (0, 0)]), None, shapely.Point(1, 1),
                           shapely.LineString([(0, 0), (0, 0)]), shapely.LineString([(0, 0), (1, 0)]),
                           shapely.box(0, 0, 1, 1)], index=list("abcdefghij"), crs="EPSG:32633")
    out, n_repaired, n_dropped = osm.repair_polygons(geoms)
    assert list(out.index) == list("abcdefghij") and out.crs == geoms.crs
    assert out["a"].area == pytest.approx(2.0) and out["a"].geom_type == "MultiPolygon"
    assert out["b"].equals(shapely.box(0, 0, 2, 2))  # the spike is gone, no stray line kept
    assert out["c"].area == pytest.approx(16 - 1) and out["c"].is_valid  # the hole inside the shell is cut out
    assert out[["d", "e", "h"]].is_empty.all()
    assert out["g"].equals(shapely.Point(1, 1)) and out["i"].length == 1 and out["j"].area == 1
    assert shapely.is_valid(out.dropna().to_numpy()).all()
    assert (n_repaired, n_dropped) == (3, 3)
    _, _, n_small = osm.repair_polygons(gpd.GeoSeries([shapely.box(0, 0, 1, 0.5), shapely.box(0, 0, 2, 2)]), min_area=1.0)
    assert n_small == 1


def test_a_geos_failure_left_is_a_one_line_geometry_error(tmp_path, monkeypatch):
    path, _ = _hostile(tmp_path)

    def boom(*args, **kwargs):
        raise shapely.errors.GEOSException("TopologyException: side location conflict at 1 2. This can occur...")

    monkeypatch.setattr(osm, "_design_sewer", boom)
    with pytest.raises(GeometryError, match=r"hostile\.osm: a geometry operation failed .*side location conflict"):
        osm.import_osm(path)
    with pytest.raises(TwinError) as info:
        load_city(path)
    assert "\n" not in str(info.value)
