"""Library helpers behind the Streamlit workbench (``app.py``), testable without Streamlit.

``app.py`` holds only widgets; loading uploads, tables of statistics and the 3D
page come from here, so the same code paths are used by the app, the tests and
the CLI.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from gisdata.city import CityTwin, load_city, read_city_gpkg
from gisdata.errors import InputFileNotFoundError, TwinError
from gisdata.schema import LAYER_NAMES, LAYERS
from twin.i18n import t

APP_CITY_ENV = "CITYTWIN_APP_CITY"
"""Environment variable naming the app's built-in city (a preset or a .gpkg path); default ``demo``."""

OSM_SUFFIXES = (".osm", ".osm.bz2", ".osm.pbf", ".pbf")
GPKG_SUFFIXES = (".gpkg",)
DEM_SUFFIXES = (".tif", ".tiff")

UploadedFiles = Sequence[tuple[str, bytes]]
"""Uploaded files as (file name, content) pairs."""


def app_city_source() -> str:
    """The built-in city of the app: ``$CITYTWIN_APP_CITY`` or ``"demo"``."""
    return os.environ.get(APP_CITY_ENV, "").strip() or "demo"


def upload_key(files: UploadedFiles) -> str:
    """A short digest identifying a set of uploaded files (for caches)."""
    h = hashlib.sha1()
    for name, data in sorted(files):
        h.update(name.encode("utf-8") + b"\0" + hashlib.sha1(data).digest())
    return h.hexdigest()[:16]


def load_uploaded_city(files: UploadedFiles, kind: str) -> CityTwin:
    """Load a city from uploaded files, with the messages the CLI gives for the same files.

    Parameters
    ----------
    files : sequence of (str, bytes)
        File names and contents.  ``kind="gpkg"``: one ``.gpkg`` and optionally
        one ``.tif`` (its DEM, whatever its name).  ``kind="osm"``: one OSM
        extract (``.osm``, ``.osm.bz2``, ``.osm.pbf``).
    kind : {"gpkg", "osm"}
        What was uploaded.

    Returns
    -------
    CityTwin

    Raises
    ------
    TwinError
        The reader's error for a bad file (its type kept), with the temporary
        directory removed from the message so it names the file as uploaded.
    """
    if kind not in ("gpkg", "osm"):
        raise ValueError(f"kind={kind!r} unknown; expected 'gpkg' or 'osm'")
    files = [(Path(name).name, data) for name, data in files]
    if not files:
        raise InputFileNotFoundError("no file uploaded")
    with tempfile.TemporaryDirectory(prefix="citytwin-upload-") as tmp:
        tmp_dir = Path(tmp)
        try:
            if kind == "gpkg":
                gpkgs = [(n, d) for n, d in files if n.lower().endswith(GPKG_SUFFIXES)]
                dems = [(n, d) for n, d in files if n.lower().endswith(DEM_SUFFIXES)]
                others = [n for n, _ in files if not n.lower().endswith(GPKG_SUFFIXES + DEM_SUFFIXES)]
                if len(gpkgs) != 1 or len(dems) > 1 or others:
                    names = ", ".join(n for n, _ in files)
                    raise TwinError(
                        f"{names}: expected one city GeoPackage (.gpkg) and at most one DEM GeoTIFF (.tif)"
                    )
                name, data = gpkgs[0]
                gpkg = tmp_dir / name
                gpkg.write_bytes(data)
                dem = None
                if dems:
                    dem = tmp_dir / dems[0][0]
                    dem.write_bytes(dems[0][1])
                return read_city_gpkg(gpkg, dem=dem)
            if len(files) != 1 or not files[0][0].lower().endswith(OSM_SUFFIXES):
                names = ", ".join(n for n, _ in files)
                raise TwinError(f"{names}: expected one OSM extract (.osm, .osm.bz2 or .osm.pbf)")
            osm = tmp_dir / files[0][0]
            osm.write_bytes(files[0][1])
            return load_city(osm)
        except TwinError as exc:
            message = str(exc).replace(str(tmp_dir) + os.sep, "").replace(str(tmp_dir), ".")
            if message == str(exc):
                raise
            raise type(exc)(message) from exc


def summary_table(city: CityTwin, lang: str = "en") -> pd.DataFrame:
    """Headline figures of :meth:`CityTwin.summary` as a two-column table (item, value)."""
    s = city.summary()
    xmin, ymin, xmax, ymax = s["extent_m"]
    rows = [
        ("stats.name", s["name"]),
        ("stats.crs", s["crs"]),
        ("stats.extent_m", f"{xmin:.1f}, {ymin:.1f} .. {xmax:.1f}, {ymax:.1f}"),
        ("stats.size_km", f"{s['size_km'][0]} x {s['size_km'][1]}"),
        ("stats.manholes", f"{s['manholes']:,}"),
        ("stats.outfalls", f"{s['outfalls']:,}"),
        ("stats.pipe_length_km", f"{s['pipe_length_km']:.2f}"),
        ("stats.road_length_km", f"{s['road_length_km']:.2f}"),
        ("stats.residents", f"{s['residents']:,}"),
        ("stats.dem", t("stats.dem_value", lang, rows=s["dem_shape"][0], cols=s["dem_shape"][1],
                        cell=s["dem_cell_m"])),
    ]
    return pd.DataFrame({t("stats.item", lang): [t(k, lang) for k, _ in rows],
                         t("stats.value", lang): [str(v) for _, v in rows]})


def layer_counts_table(city: CityTwin, lang: str = "en") -> pd.DataFrame:
    """Number of features per layer."""
    counts = city.summary()["layers"]
    return pd.DataFrame({
        t("stats.layer", lang): [t(f"layers.{name}", lang) for name in LAYER_NAMES],
        t("stats.count", lang): [counts[name] for name in LAYER_NAMES],
    })


def layer_column_stats(city: CityTwin, layer: str, lang: str = "en") -> pd.DataFrame:
    """Per-column statistics of one layer: dtype, unit, min/mean/max or distinct values.

    Numeric columns get min, mean and max; text and boolean columns get the number
    of distinct values and the most common one.  Units come from the layer schema.
    """
    gdf = city.layer(layer)
    schema = LAYERS[layer]
    units = {c.name: c.unit for c in schema.columns}
    cols = [c for c in gdf.columns if c != gdf.geometry.name]
    rows = []
    for col in cols:
        s = gdf[col]
        row = {"column": col, "dtype": str(s.dtype), "unit": units.get(col, "")}
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s) and len(s):
            row.update(min=float(s.min()), mean=float(s.mean()), max=float(s.max()))
        else:
            row.update(min=np.nan, mean=np.nan, max=np.nan)
        row["distinct"] = int(s.nunique())
        top = s.astype(str).value_counts()
        row["top"] = f"{top.index[0]} ({top.iloc[0]})" if len(top) else ""
        rows.append(row)
    df = pd.DataFrame(rows, columns=["column", "dtype", "unit", "min", "mean", "max", "distinct", "top"])
    return df.rename(columns={k: t(f"stats.{k}", lang) for k in df.columns})


def city_scene_html(city: CityTwin, *, vertical_exaggeration: float = 1.0, lang: str = "en") -> str:
    """The interactive 3D page of the city (self-contained HTML text, for an iframe)."""
    from twin.viz.scene import scene_html

    return scene_html(city, vertical_exaggeration=vertical_exaggeration, lang=lang)
