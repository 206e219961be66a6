"""Layer schemas of a :class:`~gisdata.city.CityTwin`: columns, dtypes, units, meaning.

This is the one place where a layer's columns are declared (in the spirit of
landlab's component ``_info``).  Readers validate against it when data comes in,
so the rest of the code can trust column names, dtypes and units.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd

from gisdata.errors import (
    ColumnTypeError,
    ColumnValueError,
    CRSError,
    EmptyDataError,
    GeometryError,
    MissingColumnError,
)
from gisdata.limits import (
    MAX_AREA_M2,
    MAX_CREWS,
    MAX_DEPTH_M,
    MAX_ELEVATION_M,
    MAX_LENGTH_M,
    MAX_MANNING_N,
    MIN_ELEVATION_M,
    MIN_MANNING_N,
)

DEPARTMENTS = ("city_management", "drainage", "police", "emergency")
"""The four departments that own depots and crews."""


@dataclass(frozen=True)
class Column:
    """One column of a layer.

    Parameters
    ----------
    name : str
        Column name; units are part of the name where there is one (``depth_m``).
    dtype : str
        pandas dtype: ``"float64"``, ``"int64"``, ``"str"`` or ``"bool"``.
    unit : str
        Unit, or ``"-"`` for dimensionless and categorical values.
    description : str
        What the column means.
    required : bool
        If False the column is filled with ``default`` when missing.
    default : object
        Fill value for an optional column.
    choices : tuple of str, optional
        Allowed values of a categorical column.
    bounds : tuple of (float, float), optional
        Sane range ``(lo, hi)`` of a numeric column, in ``unit``
        (:mod:`gisdata.limits`); values must then be finite (no NaN, no inf).
    lo_inclusive : bool
        Whether ``lo`` itself is allowed (False for Manning's n > 0).
    """

    name: str
    dtype: str
    unit: str
    description: str
    required: bool = True
    default: object = None
    choices: tuple[str, ...] | None = None
    bounds: tuple[float, float] | None = None
    lo_inclusive: bool = True


@dataclass(frozen=True)
class LayerSchema:
    """Schema of one vector layer: its index, geometry type and columns."""

    name: str
    index: str
    geometry: tuple[str, ...]
    description: str
    columns: tuple[Column, ...] = field(default_factory=tuple)

    def column(self, name: str) -> Column:
        """Return the column called ``name``."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def column_names(self) -> list[str]:
        """Names of the declared columns, in order."""
        return [c.name for c in self.columns]


_ELEV = (MIN_ELEVATION_M, MAX_ELEVATION_M)
_RISE = (MIN_ELEVATION_M - MAX_ELEVATION_M, MAX_ELEVATION_M - MIN_ELEVATION_M)  # any difference of two elevations
_POLY = ("Polygon", "MultiPolygon")
_LINE = ("LineString", "MultiLineString")
_POINT = ("Point",)

LAYERS: dict[str, LayerSchema] = {
    s.name: s
    for s in [
        LayerSchema("roads", "road_id", _LINE, "Street segments: the edges of the road graph", (
            Column("from_node", "str", "-", "ID of the road-graph junction where the segment starts"),
            Column("to_node", "str", "-", "ID of the road-graph junction where the segment ends"),
            Column("length_m", "float64", "m", "Segment length along its geometry"),
            Column("road_class", "str", "-", "Functional class",
                   choices=("motorway", "arterial", "collector", "local", "service", "path")),
            Column("speed_kmh", "float64", "km/h", "Free-flow speed"),
            Column("lanes", "int64", "-", "Number of traffic lanes (both directions)"),
            Column("name", "str", "-", "Street name", required=False, default=""),
            Column("sag", "str", "-",
                   "Sag point on the segment: an underpass (the road dips under a rail line or an elevated "
                   "road) or a low crossing (a junction in a hollow); '' for none",
                   required=False, default="", choices=("", "underpass", "low_crossing")),
            Column("sag_depth_m", "float64", "m", "Depth of the sag below the surrounding grade (0 for none)",
                   required=False, default=0.0, bounds=(0.0, 100.0)),
        )),
        LayerSchema("buildings", "building_id", _POLY, "Building footprints", (
            Column("height_m", "float64", "m", "Height above ground"),
            Column("height_source", "str", "-",
                   "Where height_m came from: OSM 'height' tag, 'building:levels' x 3 m, "
                   "a documented default, or the synthetic generator",
                   choices=("height", "levels", "default", "synthetic")),
            Column("use", "str", "-", "Main use of the building",
                   choices=("residential", "commercial", "industrial", "public", "mixed", "other")),
            Column("residents", "int64", "persons", "People living in the building"),
        )),
        LayerSchema("nodes", "node_id", _POINT, "Sewer manholes (junctions) and outfalls", (
            Column("node_type", "str", "-", "Kind of node", choices=("junction", "outfall")),
            Column("invert_elev_m", "float64", "m", "Invert (bottom) elevation above datum", bounds=_ELEV),
            Column("rim_elev_m", "float64", "m", "Rim (ground) elevation above datum", bounds=_ELEV),
            Column("max_depth_m", "float64", "m", "Rim minus invert", bounds=_RISE),
        )),
        LayerSchema("conduits", "conduit_id", _LINE, "Sewer pipes (circular)", (
            Column("from_node", "str", "-", "Upstream node ID"),
            Column("to_node", "str", "-", "Downstream node ID"),
            Column("length_m", "float64", "m", "Pipe length", bounds=(0.0, MAX_LENGTH_M)),
            Column("diameter_m", "float64", "m", "Inside diameter", bounds=(0.0, MAX_DEPTH_M), lo_inclusive=False),
            Column("roughness_n", "float64", "s/m^(1/3)", "Manning roughness coefficient",
                   bounds=(MIN_MANNING_N, MAX_MANNING_N), lo_inclusive=False),
            Column("in_offset_m", "float64", "m", "Pipe invert above the upstream node invert",
                   required=False, default=0.0, bounds=_RISE),
            Column("out_offset_m", "float64", "m", "Pipe invert above the downstream node invert",
                   required=False, default=0.0, bounds=_RISE),
        )),
        LayerSchema("subcatchments", "subcatchment_id", _POLY, "Areas draining to one manhole", (
            Column("outlet_node", "str", "-", "Node ID that receives the runoff"),
            Column("area_m2", "float64", "m2", "Plan (horizontal) area", bounds=(0.0, MAX_AREA_M2)),
            Column("imperv_pct", "float64", "%", "Impervious share of the area, 0-100", bounds=(0.0, 100.0)),
            Column("slope_pct", "float64", "%", "Mean surface slope", bounds=(0.0, 1000.0)),
            Column("width_m", "float64", "m", "Characteristic overland-flow width", bounds=(0.0, MAX_LENGTH_M)),
        )),
        LayerSchema("districts", "district_id", _POLY, "Management grid cells", (
            Column("name", "str", "-", "Display name of the cell"),
        )),
        LayerSchema("depots", "depot_id", _POINT, "Bases from which department crews start", (
            Column("department", "str", "-", "Owning department", choices=DEPARTMENTS),
            Column("name", "str", "-", "Display name"),
            Column("n_crews", "int64", "crews", "Crews based here", bounds=(0, MAX_CREWS)),
        )),
        LayerSchema("sensors", "sensor_id", _POINT, "Rain gauges and water-level sensors", (
            Column("sensor_type", "str", "-", "Kind of sensor", choices=("rain_gauge", "water_level")),
            Column("node_id", "str", "-", "Manhole a water-level sensor watches; empty for gauges",
                   required=False, default=""),
        )),
        LayerSchema("water", "water_id", _POLY, "Rivers, canals and lakes: outside the street surface, "
                    "they receive what the outfalls and the banks discharge", (
            Column("kind", "str", "-", "Kind of water body",
                   choices=("river", "canal", "stream", "drain", "lake", "pond", "other")),
            Column("name", "str", "-", "Name of the water body", required=False, default=""),
        )),
        LayerSchema("vendor_sites", "site_id", _POINT, "Places street vendors favour", (
            Column("site_type", "str", "-", "Kind of place",
                   choices=("market", "metro_exit", "school", "park", "hospital", "plaza")),
            Column("attractiveness", "float64", "-", "Relative pull on vendors, 0-1"),
        )),
    ]
}
"""Schema of every vector layer, keyed by layer name."""

LAYER_NAMES: tuple[str, ...] = tuple(LAYERS)
"""Vector layer names, in the order they are written."""


def check_projected_crs(crs, *, source: str) -> str:
    """Return ``crs`` as a string, or raise if it is missing or not in metres.

    Parameters
    ----------
    crs : pyproj.CRS or str or None
        The CRS to check.
    source : str
        File or layer named in the error message.
    """
    from pyproj import CRS

    if crs is None:
        raise CRSError(f"{source}: no CRS; expected a projected CRS in metres")
    c = CRS.from_user_input(crs)
    if not c.is_projected:
        raise CRSError(
            f"{source}: CRS {c.to_string()} is geographic (degrees); "
            "expected a projected CRS in metres, e.g. a UTM zone"
        )
    unit = c.axis_info[0].unit_name if c.axis_info else ""
    if unit not in ("metre", "meter"):
        raise CRSError(f"{source}: CRS {c.to_string()} is in '{unit}'; expected metres")
    return c.to_string()


def _coerce(series: pd.Series, col: Column, where: str) -> pd.Series:
    try:
        if col.dtype == "str":
            out = series.fillna("").astype(str)
        elif col.dtype == "bool":
            out = series.astype(bool)
        elif col.dtype == "int64":
            num = pd.to_numeric(series, errors="raise")
            if num.isna().any():
                raise ValueError("missing values")
            if not np.allclose(num, np.round(num)):
                raise ValueError("non-integer values")
            out = num.round().astype("int64")
        else:
            out = pd.to_numeric(series, errors="raise").astype(col.dtype)
    except (ValueError, TypeError) as exc:
        raise ColumnTypeError(
            f"{where}: column '{col.name}' cannot be read as {col.dtype} ({col.unit}): {exc}"
        ) from exc
    if col.bounds is not None and len(out):
        _check_bounds(out, col, where)
    if col.choices is not None:
        bad = sorted(set(out) - set(col.choices))
        if bad:
            raise ColumnTypeError(
                f"{where}: column '{col.name}' has values {bad[:5]}; expected one of {list(col.choices)}"
            )
    return out


def _check_bounds(values: pd.Series, col: Column, where: str) -> None:
    """Refuse NaN/inf and values outside ``col.bounds``, naming the column, the IDs and the limit."""
    arr = values.to_numpy(dtype=float)
    bad = ~np.isfinite(arr)
    if bad.any():
        ids = values.index[bad][:5].tolist()
        raise ColumnValueError(f"{where}: column '{col.name}' has {int(bad.sum())} non-finite value(s) "
                               f"({sorted({str(v) for v in arr[bad]})}) at {ids}; expected finite {col.unit}")
    lo, hi = col.bounds
    low = (arr < lo) | ((arr == lo) & (not col.lo_inclusive))
    out = low | (arr > hi)
    if out.any():
        k = int(np.argmax(out))
        rel = "<=" if col.lo_inclusive else "<"
        raise ColumnValueError(f"{where}: column '{col.name}' = {arr[k]:g} at '{values.index[k]}' is out of range "
                               f"({int(out.sum())} value(s)); expected {lo:g} {rel} {col.name} <= {hi:g} {col.unit}")


def validate_layer(gdf: gpd.GeoDataFrame, layer: str, *, source: str = "<memory>",
                   allow_empty: bool = True) -> gpd.GeoDataFrame:
    """Check ``gdf`` against the schema of ``layer`` and return a clean copy.

    The copy is indexed by the layer's string ID, holds the declared columns in
    order (optional ones filled with their default, extra ones kept after them),
    with dtypes coerced.

    Parameters
    ----------
    gdf : geopandas.GeoDataFrame
        Layer data; the ID is either the index or a column of the index name.
    layer : str
        Layer name, a key of :data:`LAYERS`.
    source : str
        File the data came from, for error messages.
    allow_empty : bool
        If False an empty layer raises :class:`EmptyDataError`.

    Raises
    ------
    MissingColumnError, ColumnTypeError, GeometryError, CRSError, EmptyDataError
    """
    schema = LAYERS[layer]
    where = f"{source}: layer '{layer}'"
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry is None:
        raise GeometryError(f"{where}: has no geometry column")
    df = gdf.copy()
    if schema.index in df.columns:
        df = df.set_index(schema.index)
    df.index = df.index.astype(str)
    df.index.name = schema.index
    if df.index.has_duplicates:
        dup = df.index[df.index.duplicated()].unique()[:5].tolist()
        raise ColumnTypeError(f"{where}: index '{schema.index}' has duplicate IDs {dup}")
    if len(df) == 0 and not allow_empty:
        raise EmptyDataError(f"{where}: has no features")
    for col in schema.columns:
        if col.name not in df.columns:
            if col.required:
                raise MissingColumnError(
                    f"{where}: missing required column '{col.name}' "
                    f"({col.dtype}, {col.unit}: {col.description})"
                )
            df[col.name] = col.default
        df[col.name] = _coerce(df[col.name], col, where)
    if len(df):
        geom = df.geometry
        empty = geom.is_empty | geom.isna()
        if empty.any():
            ids = df.index[empty][:5].tolist()
            raise GeometryError(f"{where}: {int(empty.sum())} empty geometries, e.g. {ids}")
        wrong = ~geom.geom_type.isin(schema.geometry)
        if wrong.any():
            ids = df.index[wrong][:5].tolist()
            raise GeometryError(
                f"{where}: geometry type {sorted(set(geom.geom_type[wrong]))} at {ids}; "
                f"expected {list(schema.geometry)}"
            )
        invalid = ~geom.is_valid
        if invalid.any():
            ids = df.index[invalid][:5].tolist()
            raise GeometryError(f"{where}: {int(invalid.sum())} invalid geometries, e.g. {ids}")
    check_projected_crs(df.crs, source=where)
    extra = [c for c in df.columns if c not in schema.column_names and c != df.geometry.name]
    ordered = schema.column_names + extra + [df.geometry.name]
    return gpd.GeoDataFrame(df[ordered], geometry=df.geometry.name, crs=df.crs)


def empty_layer(layer: str, crs: str) -> gpd.GeoDataFrame:
    """An empty, schema-conforming layer (for cities that lack it, e.g. no depots yet)."""
    schema = LAYERS[layer]
    data = {c.name: pd.Series([], dtype=("object" if c.dtype == "str" else c.dtype))
            for c in schema.columns}
    gdf = gpd.GeoDataFrame(data, geometry=gpd.GeoSeries([], crs=crs), crs=crs)
    gdf.index = pd.Index([], dtype=object, name=schema.index)
    return gdf


def describe_schema() -> pd.DataFrame:
    """A table of every layer's columns with dtype, unit and meaning (for docs and the app)."""
    rows = []
    for s in LAYERS.values():
        rows.append(dict(layer=s.name, column=s.index, dtype="str", unit="-",
                         description="Stable string ID (index)", required=True))
        for c in s.columns:
            rows.append(dict(layer=s.name, column=c.name, dtype=c.dtype, unit=c.unit,
                             description=c.description, required=c.required))
    return pd.DataFrame(rows)
