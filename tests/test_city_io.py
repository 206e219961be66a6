"""CityTwin contract, GeoPackage round trip and bad-input errors."""

from __future__ import annotations

import dataclasses
import sqlite3

import geopandas as gpd
import pyogrio
import pytest
from shapely.geometry import Polygon

from gisdata.city import CityTwin, dem_path_for, load_city, read_city_gpkg, save_city
from gisdata.errors import (
    ColumnTypeError,
    CorruptFileError,
    CRSError,
    GeometryError,
    InputFileNotFoundError,
    MissingColumnError,
    MissingLayerError,
    TwinError,
)
from gisdata.schema import LAYER_NAMES, LAYERS, describe_schema, validate_layer


def test_round_trip_is_lossless(tiny_city, tmp_path):
    path = save_city(tiny_city, tmp_path / "tiny.gpkg")
    assert dem_path_for(path).exists()
    back = load_city(path)
    assert back.equals(tiny_city)
    for layer in LAYER_NAMES:
        assert list(back.layer(layer).index) == list(tiny_city.layer(layer).index)
        assert back.layer(layer).dtypes.astype(str).to_dict() == tiny_city.layer(layer).dtypes.astype(str).to_dict()
    assert back.dem.values.dtype == tiny_city.dem.values.dtype


def test_equals_detects_a_changed_value(tiny_city):
    nodes = tiny_city.nodes.copy()
    nodes.loc["J0", "rim_elev_m"] += 1e-9
    assert not tiny_city.replace(nodes=nodes).equals(tiny_city)


def test_city_is_frozen_and_replace_is_pure(tiny_city):
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny_city.name = "other"
    renamed = tiny_city.replace(name="other")
    assert renamed.name == "other" and tiny_city.name == "tiny"
    with pytest.raises(ValueError):
        tiny_city.dem.values[0, 0] = 1.0  # the DEM array is read-only


def test_every_column_declares_unit_and_meaning():
    table = describe_schema()
    assert set(table["layer"]) == set(LAYERS)
    assert (table["unit"].str.len() > 0).all()
    assert (table["description"].str.len() > 10).all()
    units = dict(zip(table["column"], table["unit"]))
    assert units["height_m"] == "m" and units["area_m2"] == "m2" and units["speed_kmh"] == "km/h"


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(InputFileNotFoundError, match="nothere.gpkg"):
        load_city(tmp_path / "nothere.gpkg")


def test_corrupt_file_is_a_typed_error(tmp_path):
    bad = tmp_path / "bad.gpkg"
    bad.write_bytes(b"\x00\x01not a geopackage" * 100)
    with pytest.raises(CorruptFileError, match="bad.gpkg"):
        load_city(bad)


def test_missing_layer_names_layer(tiny_city, tmp_path):
    path = tmp_path / "partial.gpkg"
    pyogrio.write_dataframe(tiny_city.roads.reset_index(), path, layer="roads", driver="GPKG")
    with pytest.raises(MissingLayerError, match=r"partial.gpkg.*buildings"):
        read_city_gpkg(path)


def _rewrite_layer(tiny_city, tmp_path, layer, gdf):
    path = save_city(tiny_city, tmp_path / "city.gpkg")
    pyogrio.write_dataframe(gdf, path, layer=layer, driver="GPKG")  # overwrite that layer
    return path


def test_missing_column_names_layer_and_column(tiny_city, tmp_path):
    path = _rewrite_layer(tiny_city, tmp_path, "conduits", tiny_city.conduits.reset_index().drop(columns="diameter_m"))
    with pytest.raises(MissingColumnError, match=r"city.gpkg.*'conduits'.*'diameter_m'"):
        read_city_gpkg(path)


def test_geographic_crs_is_rejected(tiny_city, tmp_path):
    path = _rewrite_layer(tiny_city, tmp_path, "buildings", tiny_city.buildings.reset_index().to_crs("EPSG:4326"))
    with pytest.raises(CRSError, match=r"buildings.*geographic"):
        read_city_gpkg(path)


def test_invalid_geometry_is_rejected(tiny_city):
    bowtie = Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])
    b = tiny_city.buildings.copy()
    b.loc["B1", "geometry"] = bowtie
    with pytest.raises(GeometryError, match=r"'buildings'.*invalid.*B1"):
        validate_layer(b, "buildings", source="test")


def test_empty_geometry_is_rejected(tiny_city):
    b = tiny_city.buildings.copy()
    b.loc["B2", "geometry"] = Polygon()
    with pytest.raises(GeometryError, match=r"empty.*B2"):
        validate_layer(b, "buildings", source="test")


def test_bad_category_and_dtype(tiny_city):
    d = tiny_city.depots.copy()
    d.loc["DP1", "department"] = "fire_brigade"
    with pytest.raises(ColumnTypeError, match="fire_brigade"):
        validate_layer(d, "depots")
    r = tiny_city.roads.copy()
    r["lanes"] = "two"
    with pytest.raises(ColumnTypeError, match="'lanes'.*int64"):
        validate_layer(r, "roads")


def test_errors_are_builtin_compatible():
    assert issubclass(InputFileNotFoundError, FileNotFoundError)
    assert issubclass(MissingColumnError, KeyError)
    assert issubclass(CRSError, ValueError)
    assert str(MissingColumnError("x: missing")) == "x: missing"  # no KeyError quoting


def test_failed_save_leaves_nothing(tiny_city, tmp_path):
    with pytest.raises(TwinError, match="gpkg"):
        save_city(tiny_city, tmp_path / "city.shp")
    assert list(tmp_path.iterdir()) == []


def test_metadata_table_round_trips(tiny_city, tmp_path):
    path = save_city(tiny_city.replace(metadata={"seed": "7", "note": "ünïcode 城市"}), tmp_path / "m.gpkg")
    with sqlite3.connect(path) as con:
        keys = {k for (k,) in con.execute("SELECT key FROM citytwin_metadata")}
    assert {"name", "crs", "meta.seed"} <= keys
    assert dict(load_city(path).metadata) == {"seed": "7", "note": "ünïcode 城市"}


def test_dem_fallback_from_nodes(tiny_city, tmp_path):
    path = save_city(tiny_city, tmp_path / "nodem.gpkg")
    dem_path_for(path).unlink()
    city = read_city_gpkg(path)
    assert "rim" in city.metadata["dem_source"]
    rim = tiny_city.nodes["rim_elev_m"]
    sampled = city.dem.sample(tiny_city.nodes.geometry.x, tiny_city.nodes.geometry.y)
    assert abs(sampled - rim.to_numpy()).max() < 0.2


def test_city_rejects_mixed_crs(tiny_city):
    with pytest.raises(CRSError):
        CityTwin(**{**{f.name: getattr(tiny_city, f.name) for f in dataclasses.fields(CityTwin)},
                    "dem": dataclasses.replace(tiny_city.dem, crs="EPSG:32651")})


def test_gdf_without_index_column_gets_string_ids(tiny_city):
    gdf = gpd.GeoDataFrame(tiny_city.nodes.reset_index(drop=True))
    out = validate_layer(gdf, "nodes")
    assert out.index.name == "node_id" and list(out.index) == [str(i) for i in range(len(gdf))]


def test_city_pickles_for_worker_processes(tiny_city):
    import pickle

    back = pickle.loads(pickle.dumps(tiny_city))
    assert back.equals(tiny_city)
    with pytest.raises(TypeError):
        back.metadata["x"] = "y"  # still read-only after the trip
