"""OSM import (gisdata.osm): real extracts from ../shared/data, a tiny hand-written extract, bad input."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from affine import Affine
from pyproj import CRS

from gisdata import osm
from gisdata.city import load_city, save_city
from gisdata.errors import (
    CorruptFileError,
    CRSError,
    EmptyDataError,
    InputFileNotFoundError,
    TwinError,
)
from gisdata.raster import Raster, write_geotiff
from gisdata.schema import DEPARTMENTS, LAYER_NAMES, LAYERS, validate_layer


@pytest.fixture(scope="module")
def pbf(shared_data) -> Path:
    return shared_data / "gis" / "pyrosm" / "test.osm.pbf"


@pytest.fixture(scope="module")
def timed_import(pbf):
    """The pyrosm extract imported once, with the wall time it took, s."""
    t0 = time.perf_counter()
    c = osm.import_osm(pbf)
    return c, time.perf_counter() - t0


@pytest.fixture(scope="module")
def city(timed_import):
    return timed_import[0]


# ------------------------------------------------------------ the pyrosm extract


def test_pbf_counts_and_speed(timed_import):
    c, elapsed = timed_import
    assert len(c.buildings) >= 2000
    assert len(c.roads) >= 200
    assert elapsed < 30.0, f"import took {elapsed:.1f} s"  # about 2 s on a laptop


def test_pbf_is_in_a_metric_utm_crs(city):
    crs = CRS.from_user_input(city.crs)
    assert crs.is_projected and crs.axis_info[0].unit_name == "metre"
    assert crs.to_epsg() == 32635  # Helsinki area: UTM 35N
    assert city.metadata["crs"] == city.crs and city.dem.crs == city.crs
    xmin, ymin, xmax, ymax = city.extent
    assert 1000 < xmax - xmin < 10_000 and 1000 < ymax - ymin < 10_000  # a few km, so metres not degrees


def test_pbf_layers_are_schema_valid(city):
    for layer in LAYER_NAMES:
        gdf = city.layer(layer)
        again = validate_layer(gdf, layer, source="test")
        assert list(again.columns[: len(LAYERS[layer].columns)]) == LAYERS[layer].column_names
        assert gdf.index.is_unique


def test_pbf_heights_follow_their_source(city):
    b = city.buildings
    # The extract tags building:levels on 10 ways and height on none.
    assert set(b["height_source"]) == {"levels", "default"}
    assert (b.loc[b["height_source"] == "default", "height_m"] == osm.DEFAULT_HEIGHT_M).all()
    levels = b.loc[b["height_source"] == "levels", "height_m"] / osm.STOREY_HEIGHT_M
    assert len(levels) == 10 and np.allclose(levels, levels.round())
    assert b["residents"].sum() > 1000
    assert (b.loc[~b["use"].isin(["residential", "mixed"]), "residents"] == 0).all()


def test_pbf_roads_are_split_at_junctions(city):
    r = city.roads
    assert set(r["road_class"]) >= {"motorway", "arterial", "collector", "local", "service", "path"}
    # Motorways are mapped one carriageway per way: half the two-way default (or the tagged 1-2).
    assert (r.loc[r["road_class"] == "motorway", "lanes"] <= osm.DEFAULT_LANES["motorway"] // 2).all()
    assert r["from_node"].str.match(r"^n\d+$").all() and r["to_node"].str.match(r"^n\d+$").all()
    assert np.allclose(r["length_m"], r.length)
    geoms = r.geometry.to_numpy()
    ends = pd.DataFrame({
        "node": np.r_[r["from_node"], r["to_node"]],
        "x": np.r_[shapely.get_x(shapely.get_point(geoms, 0)), shapely.get_x(shapely.get_point(geoms, -1))],
        "y": np.r_[shapely.get_y(shapely.get_point(geoms, 0)), shapely.get_y(shapely.get_point(geoms, -1))],
    })
    # One graph ID, one place.
    assert (ends.groupby("node")[["x", "y"]].nunique() == 1).all().all()
    # No segment runs through a junction: interior vertices are never segment ends.
    interior = np.vstack([shapely.get_coordinates(g)[1:-1] for g in geoms])
    end_xy = set(map(tuple, ends[["x", "y"]].to_numpy()))
    assert not any(tuple(p) in end_xy for p in interior)


def test_pbf_other_layers(city):
    assert list(city.depots["department"]) == list(DEPARTMENTS)
    assert city.depots["name"].str.contains("fallback").all()  # the extract has no police, townhall, ...
    assert set(city.vendor_sites["site_type"]) == {"school", "park"}
    assert (city.sensors["sensor_type"] == "rain_gauge").sum() == 1
    d = city.districts
    assert d.area.max() <= osm.DISTRICT_CELL_M ** 2 + 1e-6
    xmin, ymin, xmax, ymax = d.total_bounds
    assert np.isclose(d.area.sum(), (xmax - xmin) * (ymax - ymin))  # the grid tiles the extent
    assert "synthetic surface" in city.metadata["dem_source"] and "southern edge" in city.metadata["dem_source"]
    assert city.metadata["source"].endswith("test.osm.pbf") and len(city.metadata["source_sha256"]) == 64


def test_fallback_dem_slopes_gently(city):
    # The extract's only water is a brook, too small to be a receiving water: the plane is used.
    assert city.metadata["outfalls_at"] == "low points of the network boundary"
    z = city.dem.values
    assert z.min() >= osm.FALLBACK_DEM_BASE_M
    rise_per_row = np.diff(z[::-1, 0]) / city.dem.cell_size_m
    assert np.allclose(rise_per_row, osm.FALLBACK_DEM_SLOPE)


def _differing_layers(a, b) -> list[str]:
    """Layers whose rows, columns or geometries differ (to name the culprit when equals() fails)."""
    out = []
    for layer in LAYER_NAMES:
        x, y = a.layer(layer), b.layer(layer)
        if (len(x), list(x.columns)) != (len(y), list(y.columns)) or not x.drop(columns="geometry").equals(
                y.drop(columns="geometry")):
            out.append(f"{layer}: attributes")
        elif not x.geometry.geom_equals_exact(y.geometry, tolerance=0, align=False).all():
            out.append(f"{layer}: geometry {sorted(set(x.geom_type))} -> {sorted(set(y.geom_type))}")
    return out


def test_pbf_round_trip(city, tmp_path):
    back = load_city(save_city(city, tmp_path / "osm.gpkg"))
    assert _differing_layers(city, back) == []
    assert back.equals(city)


def test_load_city_dispatches_osm(pbf, city):
    assert load_city(pbf).equals(city)


def test_pbf_sewer_follows_drivable_roads(city):
    assert (city.nodes["node_type"] == "junction").sum() > 50
    assert (city.nodes["node_type"] == "outfall").sum() >= 1
    assert len(city.conduits) > 50 and len(city.subcatchments) > 0
    drivable = city.roads[city.roads["road_class"].isin(osm.DRIVABLE_CLASSES)].geometry.union_all()
    junctions = city.nodes[city.nodes["node_type"] == "junction"]
    assert (junctions.distance(drivable) < 0.01).all()  # manholes sit on drivable streets, never on paths
    # Pipes between manholes are chords about 60 m long: they stay close to the street.
    outfalls = city.nodes.index[city.nodes["node_type"] == "outfall"]
    pipes = city.conduits[~city.conduits["to_node"].isin(outfalls)]
    assert pipes.geometry.interpolate(0.5, normalized=True).distance(drivable).max() < 25.0
    wl = city.sensors[city.sensors["sensor_type"] == "water_level"]
    assert len(wl) == osm.N_WATER_LEVEL_SENSORS and wl["node_id"].isin(city.nodes.index).all()
    junction_rims = city.nodes.loc[city.nodes["node_type"] == "junction", "rim_elev_m"]
    assert city.nodes.loc[wl["node_id"], "rim_elev_m"].max() <= junction_rims.nsmallest(len(wl)).max()


# ------------------------------------------------------------ other real extracts


@pytest.mark.parametrize("relpath, epsg", [
    ("gis/osmnx_testdata/West-Oakland.osm.bz2", 32610),
    ("gis/osmnx_testdata/planet_10.068,48.135_10.071,48.137.osm", 32632),
])
def test_other_extracts_import(shared_data, relpath, epsg):
    c = osm.import_osm(shared_data / relpath)
    assert CRS.from_user_input(c.crs).to_epsg() == epsg
    assert len(c.roads) > 10 and len(c.buildings) > 20
    assert c.buildings["height_source"].isin(["height", "levels", "default"]).all()
    assert "levels" in set(c.buildings["height_source"])
    assert c.name == Path(relpath).name.split(".osm")[0]


def test_crs_argument_is_used_and_checked(pbf):
    c = osm.import_osm(pbf, crs="EPSG:3067", name="Helsinki")  # ETRS-TM35FIN, metres
    assert CRS.from_user_input(c.crs).to_epsg() == 3067 and c.name == "Helsinki"
    assert c.metadata["crs_source"] == "given by the caller"
    with pytest.raises(CRSError, match="geographic"):
        osm.import_osm(pbf, crs="EPSG:4326")


# ------------------------------------------------------------ user DEM


def _geographic_dem(tmp_path, lon0, lat0, size_deg, z0=40.0) -> Path:
    """A GeoTIFF in EPSG:4326 rising 1 m per 0.001 degree eastwards."""
    n = 200
    cell = size_deg / n
    values = z0 + np.tile(np.arange(n) * cell * 1000, (n, 1))
    raster = Raster(values, Affine(cell, 0, lon0, 0, -cell, lat0 + size_deg), "EPSG:4326")
    return write_geotiff(raster, tmp_path / "dem_wgs84.tif")


def test_user_dem_is_reprojected_and_cropped(pbf, tmp_path):
    dem = _geographic_dem(tmp_path, 26.85, 60.45, 0.2)  # the extract spans 26.93-26.97 E, 60.52-60.54 N
    c = osm.import_osm(pbf, dem=dem)
    assert c.dem.crs == c.crs
    assert str(dem) in c.metadata["dem_source"]
    xmin, ymin, xmax, ymax = c.dem.bounds
    rxmin, rymin, rxmax, rymax = c.roads.total_bounds
    assert xmin <= rxmin and ymin <= rymin and xmax >= rxmax and ymax >= rymax
    assert xmax - xmin < 5000  # cropped to the city, not the 11 km DEM
    z = c.dem.values
    assert np.isfinite(z).all() and 40.0 <= z.min() < z.max() <= 40.0 + 200
    # The surface rises eastwards in the source, so it does in the city CRS too.
    assert (z[:, -1] > z[:, 0]).all()


def test_user_dem_that_misses_the_city_is_refused(pbf, tmp_path):
    dem = _geographic_dem(tmp_path, 10.0, 48.0, 0.05)  # Bavaria, not Helsinki
    with pytest.raises(TwinError, match="does not overlap"):
        osm.import_osm(pbf, dem=dem)


# ------------------------------------------------------------ a tiny hand-written extract

_TINY = """<?xml version='1.0' encoding='UTF-8'?>
<osm version="0.6" generator="test">
{nodes}
  <node id="900" lat="48.1000" lon="11.5000"><tag k="amenity" v="police"/><tag k="name" v="Wache"/></node>
  <node id="901" lat="48.1010" lon="11.5010"><tag k="amenity" v="townhall"/></node>
  <node id="902" lat="48.1005" lon="11.5005"><tag k="railway" v="subway_entrance"/></node>
  <node id="903" lat="48.1006" lon="11.5006"><tag k="amenity" v="marketplace"/></node>
  <way id="1"><nd ref="1"/><nd ref="2"/><nd ref="3"/>
    <tag k="highway" v="primary"/><tag k="maxspeed" v="30 mph"/><tag k="lanes" v="3"/><tag k="name" v="Main"/></way>
  <way id="2"><nd ref="4"/><nd ref="2"/><nd ref="5"/><tag k="highway" v="residential"/></way>
  <way id="3"><nd ref="5"/><nd ref="6"/><tag k="highway" v="footway"/></way>
  <way id="4"><nd ref="6"/><nd ref="7"/><tag k="highway" v="construction"/></way>
  <way id="10"><nd ref="20"/><nd ref="21"/><nd ref="22"/><nd ref="23"/><nd ref="20"/>
    <tag k="building" v="residential"/><tag k="building:levels" v="3"/></way>
  <way id="11"><nd ref="30"/><nd ref="31"/><nd ref="32"/><nd ref="33"/><nd ref="30"/>
    <tag k="building" v="yes"/><tag k="height" v="40'"/><tag k="shop" v="bakery"/></way>
  <way id="12"><nd ref="40"/><nd ref="41"/><nd ref="42"/><nd ref="43"/><nd ref="40"/>
    <tag k="building" v="garage"/></way>
</osm>
"""


def _tiny_nodes() -> str:
    pts = {1: (48.1000, 11.4990), 2: (48.1000, 11.5000), 3: (48.1000, 11.5010), 4: (48.0990, 11.5000),
           5: (48.1010, 11.5000), 6: (48.1020, 11.5000), 7: (48.1030, 11.5000)}
    for base, (lat, lon) in {20: (48.1003, 11.4993), 30: (48.1003, 11.5003), 40: (48.0995, 11.5003)}.items():
        d = 0.0002
        for k, (dy, dx) in enumerate([(0, 0), (0, d), (d, d), (d, 0)]):
            pts[base + k] = (lat + dy, lon + dx)
    return "\n".join(f'  <node id="{i}" lat="{lat:.7f}" lon="{lon:.7f}"/>' for i, (lat, lon) in pts.items())


@pytest.fixture
def tiny_osm(tmp_path) -> Path:
    path = tmp_path / "tiny.osm"
    path.write_text(_TINY.format(nodes=_tiny_nodes()))
    return path


def test_tiny_extract_roads(tiny_osm):
    r = osm.import_osm(tiny_osm).roads
    # way 1 and way 2 cross at node 2: each splits in two; the footway stays whole; construction is no road.
    assert sorted(r.index) == ["w1_0", "w1_1", "w2_0", "w2_1", "w3_0"]
    assert r.loc["w1_0", "to_node"] == "n2" and r.loc["w2_1", "from_node"] == "n2"
    assert r.loc["w1_0", "road_class"] == "arterial" and r.loc["w3_0", "road_class"] == "path"
    assert r.loc["w1_0", "speed_kmh"] == pytest.approx(30 * 1.609344)
    assert r.loc["w1_0", "lanes"] == 3 and r.loc["w1_0", "name"] == "Main"
    assert r.loc["w2_0", "speed_kmh"] == osm.DEFAULT_SPEED_KMH["local"]
    assert r.loc["w2_0", "lanes"] == osm.DEFAULT_LANES["local"]
    assert r.loc["w3_0", "lanes"] == 1
    # 0.001 degree of latitude is about 111 m.
    assert r.loc["w2_0", "length_m"] == pytest.approx(111.2, abs=0.5)


def test_tiny_extract_buildings(tiny_osm):
    b = osm.import_osm(tiny_osm).buildings
    assert b.loc["w10", "height_source"] == "levels" and b.loc["w10", "height_m"] == 9.0
    assert b.loc["w11", "height_source"] == "height" and b.loc["w11", "height_m"] == pytest.approx(12.19)
    assert b.loc["w12", "height_source"] == "default"
    assert b.loc[["w10", "w11", "w12"], "use"].tolist() == ["residential", "commercial", "other"]
    area = b.loc["w10"].geometry.area  # about 15 m x 22 m
    assert b.loc["w10", "residents"] == int(area * 3 / osm.FLOOR_AREA_PER_RESIDENT_M2)
    assert b.loc[["w11", "w12"], "residents"].tolist() == [0, 0]


def test_tiny_extract_depots_and_vendor_sites(tiny_osm):
    c = osm.import_osm(tiny_osm)
    d = c.depots.set_index("department")
    assert d.loc["police", "name"] == "Wache" and d.loc["police", "osm_id"] == "n900"
    assert d.loc["city_management", "osm_id"] == "n901"
    assert d.loc["drainage", "osm_id"] == "" and "fallback" in d.loc["drainage", "name"]
    # Fallback depots sit on road-graph junctions.
    junction_pts = np.r_[shapely.get_coordinates(shapely.get_point(c.roads.geometry.to_numpy(), 0)),
                         shapely.get_coordinates(shapely.get_point(c.roads.geometry.to_numpy(), -1))]
    for dept in ("drainage", "emergency"):
        p = np.array(d.loc[dept, "geometry"].coords[0])
        assert np.isclose(np.abs(junction_pts - p).sum(axis=1), 0).any()
    assert sorted(c.vendor_sites["site_type"]) == ["market", "metro_exit"]


def test_tiny_extract_with_a_river(tmp_path):
    river = ('  <node id="80" lat="48.0985" lon="11.4980"/>\n  <node id="81" lat="48.0985" lon="11.5020"/>\n'
             '  <way id="80"><nd ref="80"/><nd ref="81"/><tag k="waterway" v="river"/></way>\n</osm>')
    path = tmp_path / "river.osm"
    path.write_text(_TINY.format(nodes=_tiny_nodes()).replace("</osm>", river))
    c = osm.import_osm(path)
    assert c.metadata["outfalls_at"] == "OSM water features"
    assert "water features" in c.metadata["dem_source"]
    # The ground is lowest along the river and rises away from it.
    from pyproj import Transformer

    xs, ys = Transformer.from_crs("EPSG:4326", c.crs, always_xy=True).transform([11.4985, 11.5015], [48.0985] * 2)
    river_line = shapely.LineString(zip(xs, ys))
    on_river = c.dem.sample(np.linspace(xs[0], xs[1], 20), np.linspace(ys[0], ys[1], 20))
    assert np.allclose(on_river, osm.FALLBACK_DEM_BASE_M, atol=0.1)
    assert c.dem.values.max() > osm.FALLBACK_DEM_BASE_M + 0.5
    out = c.nodes[c.nodes["node_type"] == "outfall"]
    assert len(out) >= 1
    assert out.distance(river_line).min() < 1.0  # the outfall is on the river bank


# ------------------------------------------------------------ bad input


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.osm.pbf"
    with pytest.raises(InputFileNotFoundError, match="nowhere.osm.pbf"):
        osm.import_osm(path)
    with pytest.raises(FileNotFoundError):  # the builtin still catches it
        load_city(path)


def test_osm_file_without_ways(tmp_path):
    path = tmp_path / "nodes_only.osm"
    path.write_text('<?xml version="1.0"?>\n<osm version="0.6">\n'
                    '  <node id="1" lat="48.1" lon="11.5"/>\n</osm>\n')
    with pytest.raises(EmptyDataError, match="nodes_only.osm.*no highway"):
        osm.import_osm(path)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "zero.osm"
    path.write_bytes(b"")
    with pytest.raises(EmptyDataError, match="zero.osm.*empty"):
        osm.import_osm(path)


def test_buildings_but_no_roads(tmp_path, tiny_osm):
    text = tiny_osm.read_text()
    for highway in ("primary", "residential", "footway"):
        text = text.replace(f'<tag k="highway" v="{highway}"/>', "")
    path = tmp_path / "no_roads.osm"
    path.write_text(text)
    with pytest.raises(EmptyDataError, match="no_roads.osm.*roads"):
        osm.import_osm(path)


def test_footpaths_only(tmp_path, tiny_osm):
    text = tiny_osm.read_text().replace('v="primary"', 'v="footway"').replace('v="residential"', 'v="path"')
    path = tmp_path / "paths.osm"
    path.write_text(text)
    with pytest.raises(EmptyDataError, match="paths.osm.*no drivable roads"):
        osm.import_osm(path)


def test_roads_without_buildings_is_a_valid_city(tmp_path, tiny_osm):
    text = re.sub(r'<tag k="building"[^>]*/>', "", tiny_osm.read_text())
    path = tmp_path / "streets.osm"
    path.write_text(text)
    c = osm.import_osm(path)
    assert len(c.buildings) == 0 and len(c.roads) == 5 and c.buildings["residents"].sum() == 0


@pytest.mark.parametrize("name, content", [
    ("garbage.osm.pbf", b"this is not a protocol buffer" * 20),
    ("page.osm", b"<html><body>404</body></html>"),
    ("broken.osm.bz2", b"BZh9 not really bzip2"),
])
def test_corrupt_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CorruptFileError, match=name.replace(".", r"\.")):
        osm.import_osm(path)


def test_unsupported_extension(tmp_path):
    path = tmp_path / "city.geojson"
    path.write_text("{}")
    with pytest.raises(TwinError, match=r"city\.geojson.*\.osm\.pbf"):
        osm.import_osm(path)


# ------------------------------------------------------------ parsers and splitting


def test_split_ways_at_junctions_handles_gaps_and_loops():
    # way 0: 1-2-3-?-4-5 (node without location cuts it); way 1: loop 6-7-8-6 touching nothing.
    way = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    node = np.array([1, 2, 3, 99, 4, 5, 6, 7, 8, 6])
    valid = np.array([True, True, True, False, True, True, True, True, True, True])
    s = osm.split_ways_at_junctions(way, node, valid)
    segs = [node[s.rows[s.segment == k]].tolist() for k in range(s.segment.max() + 1)]
    assert segs == [[1, 2, 3], [4, 5], [6, 7, 8, 6]]


def test_parsers():
    assert osm.parse_height_m(pd.Series(["12", "12 m", "12.5m", "40 ft", "-3", "", "2000"])).tolist()[:4] == \
        [12.0, 12.0, 12.5, pytest.approx(12.192)]
    assert osm.parse_height_m(pd.Series(["-3", "", "2000", "a lot"])).isna().all()
    assert osm.parse_levels(pd.Series(["2", "x"])).tolist()[0] == 2.0
    assert osm.parse_speed_kmh(pd.Series(["walk", "RU:rural", "signals"])).tolist()[:2] == [5.0, 90.0]
    assert np.isnan(osm.parse_lanes(pd.Series(["many"]))[0])
