"""The :class:`CityTwin` container and its GeoPackage reader and writer.

A city is a GeoPackage with one layer per schema in :mod:`gisdata.schema`, a
``metadata`` table of key/value strings, and the DEM as a GeoTIFF beside it
(``city.gpkg`` -> ``city.dem.tif``).  The round trip is lossless: IDs, columns,
dtypes, geometries, the DEM grid and the metadata come back identical.
"""

from __future__ import annotations

import math
import os
import sqlite3
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import geopandas as gpd
import pandas as pd

from gisdata.errors import (
    CorruptFileError,
    CRSError,
    GeometryError,
    InputFileNotFoundError,
    MissingLayerError,
    TwinError,
)
from gisdata.raster import Raster, read_geotiff, write_geotiff
from gisdata.schema import LAYER_NAMES, LAYERS, check_projected_crs, empty_layer, validate_layer

PRESETS = ("demo", "small", "large")
"""City names that :func:`load_city` accepts instead of a path."""

REQUIRED_LAYERS = ("roads", "buildings", "nodes", "conduits", "subcatchments")
"""Layers a GeoPackage must hold; the others may be absent and are then empty."""


@dataclass(frozen=True, eq=False)
class CityTwin:
    """A city: one GeoDataFrame per layer, a DEM and metadata. Holds no simulation state.

    Every table is indexed by a stable string ID and its columns follow
    :data:`gisdata.schema.LAYERS`.  All layers share one projected CRS in metres.
    Transformations return a new object (:meth:`replace`).

    Parameters
    ----------
    name : str
        Display name of the city.
    crs : str
        Projected CRS of every layer and the DEM, e.g. ``"EPSG:32650"``.
    roads, buildings, nodes, conduits, subcatchments, districts, depots, sensors, vendor_sites : geopandas.GeoDataFrame
        The vector layers (see :mod:`gisdata.schema`).
    dem : Raster
        Ground elevation in metres above datum.
    metadata : Mapping[str, str]
        Provenance: generator preset and seed, source file, DEM source, ...
    water : geopandas.GeoDataFrame, optional
        Rivers, canals and lakes (polygons): the street surface's outer
        boundary, never waterlogging.  Empty when a city has none or predates
        the layer.
    """

    name: str
    crs: str
    roads: gpd.GeoDataFrame
    buildings: gpd.GeoDataFrame
    nodes: gpd.GeoDataFrame
    conduits: gpd.GeoDataFrame
    subcatchments: gpd.GeoDataFrame
    districts: gpd.GeoDataFrame
    depots: gpd.GeoDataFrame
    sensors: gpd.GeoDataFrame
    vendor_sites: gpd.GeoDataFrame
    dem: Raster
    metadata: Mapping[str, str] = field(default_factory=dict)
    water: gpd.GeoDataFrame | None = None

    def __post_init__(self) -> None:
        crs = check_projected_crs(self.crs, source=f"city '{self.name}'")
        object.__setattr__(self, "crs", crs)
        for layer in LAYER_NAMES:
            gdf = getattr(self, layer)
            if gdf is None:
                gdf = empty_layer(layer, crs)
            gdf = validate_layer(gdf, layer, source=f"city '{self.name}'")
            if gdf.crs is not None and gdf.crs.to_string() != crs:
                gdf = gdf.to_crs(crs)
            object.__setattr__(self, layer, gdf)
        if check_projected_crs(self.dem.crs, source=f"city '{self.name}': DEM") != crs:
            raise CRSError(f"city '{self.name}': DEM CRS {self.dem.crs} differs from the layers' {crs}")
        object.__setattr__(self, "metadata", MappingProxyType({str(k): str(v) for k, v in self.metadata.items()}))

    def __getstate__(self) -> dict:
        # A mappingproxy cannot be pickled; cities travel to worker processes and Dask.
        state = dict(self.__dict__)
        state["metadata"] = dict(self.metadata)
        return state

    def __setstate__(self, state: dict) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "metadata", MappingProxyType(dict(state["metadata"])))

    def layer(self, name: str) -> gpd.GeoDataFrame:
        """Return the vector layer called ``name``."""
        if name not in LAYERS:
            raise MissingLayerError(f"unknown layer '{name}'; expected one of {list(LAYER_NAMES)}")
        return getattr(self, name)

    def replace(self, **changes) -> "CityTwin":
        """Return a new city with some fields replaced (the original is untouched)."""
        return replace(self, **changes)

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the DEM in metres."""
        return self.dem.bounds

    def summary(self) -> dict:
        """Headline figures: layer counts, CRS, extent, pipe length and residents."""
        xmin, ymin, xmax, ymax = self.extent
        nodes = self.nodes
        return {
            "name": self.name,
            "crs": self.crs,
            "extent_m": [round(v, 1) for v in (xmin, ymin, xmax, ymax)],
            "size_km": [round((xmax - xmin) / 1000, 2), round((ymax - ymin) / 1000, 2)],
            "layers": {name: int(len(getattr(self, name))) for name in LAYER_NAMES},
            "manholes": int((nodes["node_type"] == "junction").sum()),
            "outfalls": int((nodes["node_type"] == "outfall").sum()),
            "pipe_length_km": round(float(self.conduits["length_m"].sum()) / 1000, 2),
            "road_length_km": round(float(self.roads["length_m"].sum()) / 1000, 2),
            "residents": int(self.buildings["residents"].sum()),
            "dem_shape": list(self.dem.shape),
            "dem_cell_m": self.dem.cell_size_m,
        }

    def equals(self, other: "CityTwin") -> bool:
        """True if every layer, the DEM, the CRS, the name and the metadata are identical."""
        if not isinstance(other, CityTwin):
            return False
        if (self.name, self.crs, dict(self.metadata)) != (other.name, other.crs, dict(other.metadata)):
            return False
        for layer in LAYER_NAMES:
            a, b = getattr(self, layer), getattr(other, layer)
            if len(a) != len(b) or list(a.columns) != list(b.columns):
                return False
            try:
                pd.testing.assert_frame_equal(
                    pd.DataFrame(a.drop(columns=a.geometry.name)),
                    pd.DataFrame(b.drop(columns=b.geometry.name)),
                    check_exact=True, check_index_type=False, check_column_type=False,
                )
            except AssertionError:
                return False
            if not a.geometry.geom_equals_exact(b.geometry, tolerance=0).all():
                return False
        return self.dem.equals(other.dem)


# ----------------------------------------------------------------------------- I/O


def dem_path_for(gpkg: str | Path) -> Path:
    """The DEM GeoTIFF that sits beside a city GeoPackage: ``x.gpkg`` -> ``x.dem.tif``."""
    gpkg = Path(gpkg)
    return gpkg.with_name(gpkg.stem + ".dem.tif")


def save_city(city: CityTwin, path: str | Path) -> Path:
    """Write ``city`` to a GeoPackage, with its DEM as a GeoTIFF beside it.

    Both files are written under temporary names and renamed into place only when
    complete, so a failure never leaves a half-written city.

    Parameters
    ----------
    city : CityTwin
        The city to write.
    path : str or Path
        Target ``.gpkg`` file; the DEM goes to ``<stem>.dem.tif``.

    Returns
    -------
    Path
        The GeoPackage path.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> city = load_city("small")
    >>> out = save_city(city, pathlib.Path(tempfile.mkdtemp()) / "small.gpkg")
    >>> load_city(out).equals(city)
    True
    """
    import pyogrio

    path = Path(path)
    if path.suffix.lower() != ".gpkg":
        raise TwinError(f"{path}: a city is saved as a GeoPackage; expected a '.gpkg' file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".gpkg", dir=path.parent, prefix=f".{path.stem}.")
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        for layer in LAYER_NAMES:
            gdf = getattr(city, layer).reset_index()
            pyogrio.write_dataframe(gdf, tmp, layer=layer, driver="GPKG", promote_to_multi=False)
        meta = {"name": city.name, "crs": city.crs, **{f"meta.{k}": v for k, v in city.metadata.items()}}
        _write_metadata_table(tmp, meta)
        dem_tmp = write_geotiff(city.dem, tmp.with_name(tmp.stem + ".dem.tif"))
        dem_tmp.replace(dem_path_for(path))
        tmp.replace(path)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.stem + ".dem.tif")):
            leftover.unlink(missing_ok=True)
    return path


def _write_metadata_table(gpkg: Path, meta: dict[str, str]) -> None:
    # A plain attribute table: GeoPackage allows non-spatial tables, and sqlite3 keeps it simple.
    with sqlite3.connect(gpkg) as con:
        con.execute("CREATE TABLE citytwin_metadata (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        con.executemany("INSERT INTO citytwin_metadata VALUES (?, ?)", sorted(meta.items()))
        con.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier) VALUES (?, 'attributes', ?)",
            ("citytwin_metadata", "citytwin_metadata"),
        )


def _read_metadata_table(gpkg: Path) -> dict[str, str]:
    try:
        with sqlite3.connect(f"file:{gpkg}?mode=ro", uri=True) as con:
            rows = con.execute("SELECT key, value FROM citytwin_metadata").fetchall()
    except sqlite3.DatabaseError:
        return {}
    return dict(rows)


def read_city_gpkg(path: str | Path, *, dem: str | Path | Raster | None = None) -> CityTwin:
    """Read a city from a GeoPackage (and its DEM GeoTIFF).

    Parameters
    ----------
    path : str or Path
        The ``.gpkg`` file.
    dem : str, Path or Raster, optional
        DEM to use; default ``<stem>.dem.tif`` beside the GeoPackage.  If neither
        exists, a DEM is interpolated from the manhole rim elevations (documented
        fallback: 10 m cells, linear inside the hull, nearest outside).

    Raises
    ------
    InputFileNotFoundError, CorruptFileError, MissingLayerError, MissingColumnError,
    CRSError, GeometryError
    """
    import pyogrio

    path = Path(path)
    if not path.exists():
        raise InputFileNotFoundError(f"{path}: city file not found (expected a GeoPackage, .gpkg)")
    if path.is_dir():
        raise CorruptFileError(f"{path}: is a directory; expected a GeoPackage file (.gpkg)")
    try:
        available = {name for name, _ in pyogrio.list_layers(path)}
    except Exception as exc:  # pyogrio raises DataSourceError and friends for non-GPKG bytes
        raise CorruptFileError(f"{path}: not a readable GeoPackage: the file could not be opened as one",
                               key="err.gpkg.unreadable", file=Path(path).name,
                               detail=f"{type(exc).__name__}: {exc}") from exc
    missing = [layer for layer in REQUIRED_LAYERS if layer not in available]
    if missing:
        raise MissingLayerError(
            f"{path}: missing required layer(s) {missing}; a city GeoPackage needs {list(REQUIRED_LAYERS)}",
            key="err.gpkg.missing_layers", file=Path(path).name, missing=", ".join(map(str, missing)),
            required=", ".join(REQUIRED_LAYERS)
        )
    layers: dict[str, gpd.GeoDataFrame] = {}
    crs = None
    for layer in LAYER_NAMES:
        if layer not in available:
            continue
        try:
            gdf = pyogrio.read_dataframe(path, layer=layer)
        except Exception as exc:
            raise CorruptFileError(f"{path}: layer '{layer}' cannot be read; the GeoPackage may be damaged",
                                   detail=f"{type(exc).__name__}: {exc}") from exc
        layer_crs = check_projected_crs(gdf.crs, source=f"{path}: layer '{layer}'")
        if crs is None:
            crs = layer_crs
        elif layer_crs != crs:
            raise CRSError(f"{path}: layer '{layer}' is in {layer_crs}, other layers in {crs}; expected one CRS")
        layers[layer] = validate_layer(gdf, layer, source=str(path))
    meta = _read_metadata_table(path)
    if isinstance(dem, Raster):
        raster = dem
    else:
        dem_file = Path(dem) if dem is not None else dem_path_for(path)
        if dem is not None or dem_file.exists():
            raster = read_geotiff(dem_file)
        else:
            raster = dem_from_nodes(layers["nodes"], crs)
            meta.setdefault("meta.dem_source", "interpolated from manhole rim elevations")
    if check_projected_crs(raster.crs, source=f"{path}: DEM") != crs:
        raise CRSError(f"{path}: DEM is in {raster.crs}, layers in {crs}; expected one CRS")
    return CityTwin(
        name=meta.get("name", path.stem),
        crs=crs,
        dem=raster,
        metadata={k[5:]: v for k, v in meta.items() if k.startswith("meta.")},
        **{layer: layers.get(layer) for layer in LAYER_NAMES},
    )


MAX_FALLBACK_DEM_CELLS = 1_000_000
"""Most cells of a fallback DEM (10 m cells over 10 x 10 km; coarser cells beyond)."""


def dem_from_nodes(nodes: gpd.GeoDataFrame, crs: str, *, cell_m: float = 10.0) -> Raster:
    """Fallback DEM: interpolate manhole rim elevations onto a grid of ``cell_m`` metres.

    The cell doubles until the grid holds at most :data:`MAX_FALLBACK_DEM_CELLS`
    cells, so nodes far apart (a typo in a coordinate) never cost gigabytes.
    """
    import numpy as np
    from affine import Affine
    from scipy.interpolate import griddata
    from scipy.spatial import QhullError

    if len(nodes) < 3:
        raise TwinError("cannot build a fallback DEM: fewer than 3 nodes with rim elevations")
    x, y = nodes.geometry.x.to_numpy(), nodes.geometry.y.to_numpy()
    z = nodes["rim_elev_m"].to_numpy()
    with np.errstate(over="ignore", invalid="ignore"):
        width, height = float(x.max() - x.min()), float(y.max() - y.min())
    if not (np.isfinite(x).all() and np.isfinite(y).all() and np.isfinite(z).all()
            and math.isfinite(width) and math.isfinite(height)):
        raise GeometryError("cannot build a fallback DEM: node coordinates or rim elevations are not finite")
    while (width / cell_m + 12) * (height / cell_m + 12) > MAX_FALLBACK_DEM_CELLS:  # Python floats: inf, no warning
        cell_m *= 2
    pad = 5 * cell_m
    x0, y1 = np.floor((x.min() - pad) / cell_m) * cell_m, np.ceil((y.max() + pad) / cell_m) * cell_m
    cols = int(np.ceil((x.max() + pad - x0) / cell_m))
    rows = int(np.ceil((y1 - (y.min() - pad)) / cell_m))
    transform = Affine(cell_m, 0, x0, 0, -cell_m, y1)
    cx, cy = np.meshgrid(x0 + (np.arange(cols) + 0.5) * cell_m, y1 - (np.arange(rows) + 0.5) * cell_m)
    try:
        lin = griddata((x, y), z, (cx, cy), method="linear")
    except QhullError:  # nodes on one line (or one point): no triangles, nearest only
        lin = np.full(cx.shape, np.nan)
    near = griddata((x, y), z, (cx, cy), method="nearest")
    return Raster(np.where(np.isnan(lin), near, lin), transform, crs)


def load_city(city: "str | Path | CityTwin", *, seed: int | None = None) -> CityTwin:
    """Load a city by preset name or path.

    Parameters
    ----------
    city : str, Path or CityTwin
        ``"demo"`` (the embedded demo city, about 1,000 manholes on 3 x 3 km),
        ``"small"`` (about 200 manholes, for tests), ``"large"`` (about 5,000
        manholes, for benchmarks), a ``.gpkg`` path, or an OSM extract
        (``.osm``, ``.osm.bz2``, ``.osm.pbf``), imported on the fly.
    seed : int, optional
        Generator seed for ``small`` and ``large`` (default: the preset's own).

    Examples
    --------
    >>> load_city("small").summary()["manholes"] > 100
    True
    """
    if isinstance(city, CityTwin):
        return city
    text = str(city)
    if text in PRESETS:
        from gisdata.presets import load_preset

        return load_preset(text, seed=seed)
    path = Path(text)
    name = path.name.lower()
    if name.endswith((".osm", ".osm.bz2", ".osm.pbf", ".pbf")):
        from gisdata.osm import import_osm

        return import_osm(path)
    if not path.exists():
        raise InputFileNotFoundError(
            f"{path}: city not found; expected a GeoPackage path, an OSM extract or one of {list(PRESETS)}"
        )
    return read_city_gpkg(path)
