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
from twin.i18n import catalogue, t

APP_CITY_ENV = "CITYTWIN_APP_CITY"
"""Environment variable naming the app's built-in city (a preset or a .gpkg path); default ``demo``."""

WORKSPACE_ENV = "CITYTWIN_WORKSPACE"
"""Environment variable naming the workspace root: the only tree whose folders the pages list,
load from and create (default: the server's current directory)."""

RUNS_DIR_ENV = "CITYTWIN_RUNS_DIR"
"""Environment variable naming the run store the Replay and Batch pages open first (default ``runs``
in the workspace).  Set by whoever starts the server, so it is allowed even outside the workspace."""

MB = 1024 * 1024

UPLOAD_LIMITS_MB: dict[str, int] = {"gpkg": 200, "dem": 200, "osm": 100, "rain_csv": 20, "qpf": 20, "members": 20}
"""Largest upload per kind of file, MB, checked before a file is read into memory.

A city GeoPackage or a DEM GeoTIFF of a whole city is the largest input (tens to a few
hundred MB; ``server.maxUploadSize`` in ``.streamlit/config.toml`` is this maximum).  An OSM
extract of a city district is a few MB (Monaco's ``.osm.pbf`` is 0.6 MB); 100 MB is a large
city.  A rain CSV, a QPF or an ensemble member is a few kB to a few MB: a year of one-minute
rain at one gauge is about 13 MB."""

MAX_MEMBER_FILES = 200
"""Most ensemble member files one upload may hold."""

OSM_SUFFIXES = (".osm", ".osm.bz2", ".osm.pbf", ".pbf")
GPKG_SUFFIXES = (".gpkg",)
DEM_SUFFIXES = (".tif", ".tiff")

UploadedFiles = Sequence[tuple[str, bytes]]
"""Uploaded files as (file name, content) pairs."""


def app_city_source() -> str:
    """The built-in city of the app: ``$CITYTWIN_APP_CITY`` or ``"demo"``."""
    return os.environ.get(APP_CITY_ENV, "").strip() or "demo"


class WorkspaceFolderError(TwinError, PermissionError):
    """A folder typed in the workbench lies outside the workspace root (or cannot be resolved)."""


class UploadTooLargeError(TwinError, ValueError):
    """An uploaded file is larger than :data:`UPLOAD_LIMITS_MB` allows for its kind."""


def workspace_root() -> Path:
    """The workspace root: ``$CITYTWIN_WORKSPACE``, else the current directory (symlinks resolved)."""
    return Path(os.environ.get(WORKSPACE_ENV, "").strip() or os.getcwd()).resolve()


def workspace_roots() -> list[Path]:
    """Every tree the pages may open: the workspace root, and ``$CITYTWIN_RUNS_DIR`` when the server sets it."""
    root = workspace_root()
    roots = [root]
    runs = os.environ.get(RUNS_DIR_ENV, "").strip()
    if runs:
        resolved = (root / runs).resolve()  # an absolute value replaces root
        if not any(resolved.is_relative_to(r) for r in roots):
            roots.append(resolved)
    return roots


def resolve_workspace_folder(text: str | os.PathLike, *, roots: Sequence[Path] | None = None) -> Path:
    """The folder a visitor typed, resolved inside the workspace, or an error saying it is not.

    A relative folder is taken from the workspace root.  ``..`` and symbolic links are
    resolved first (of the parts that exist), so neither can lead out of the workspace.

    Parameters
    ----------
    text : str or path-like
        The folder as typed (absolute, or relative to the workspace root).  Empty means
        the workspace root.
    roots : sequence of Path, optional
        Allowed trees, already resolved; default :func:`workspace_roots`.

    Returns
    -------
    Path
        The absolute, resolved folder (it need not exist yet).

    Raises
    ------
    WorkspaceFolderError
        The folder lies outside every root, holds a NUL byte, or cannot be resolved
        (a symbolic-link loop).

    Examples
    --------
    >>> root = Path("/srv/ws")
    >>> resolve_workspace_folder("runs/a/../b", roots=[root])
    PosixPath('/srv/ws/runs/b')
    >>> resolve_workspace_folder("/etc", roots=[root])
    Traceback (most recent call last):
    ...
    twin.app_support.WorkspaceFolderError: /etc: outside the workspace; type a path inside it
    """
    roots = [Path(r) for r in (workspace_roots() if roots is None else roots)]
    shown = str(text).strip()
    if "\0" in shown:
        raise WorkspaceFolderError(f"{shown!r}: not a folder name (it holds a NUL byte)")
    path = Path(shown) if shown else roots[0]
    if not path.is_absolute():
        path = roots[0] / path
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise WorkspaceFolderError(f"{shown}: cannot be resolved ({exc.__class__.__name__})",
                                   key="err.workspace.unresolved", folder=shown) from exc
    if not any(resolved.is_relative_to(r) for r in roots):
        raise WorkspaceFolderError(f"{shown}: outside the workspace; type a path inside it",
                                   key="err.workspace.outside", folder=shown)
    return resolved


def resolve_city_field(text: str, *, roots: Sequence[Path] | None = None) -> str:
    """A city typed in a page: a preset name, the server's built-in city, or a file inside the workspace.

    Parameters
    ----------
    text : str
        As typed: ``demo``/``small``/``large``, the value of ``$CITYTWIN_APP_CITY``,
        or a GeoPackage / OSM path (relative to the workspace root or absolute).
    roots : sequence of Path, optional
        Allowed trees; default :func:`workspace_roots`.

    Returns
    -------
    str
        The preset name or built-in city unchanged, else the resolved path.

    Raises
    ------
    WorkspaceFolderError
        A path outside the workspace.
    """
    from gisdata.city import PRESETS

    text = str(text).strip()
    if text in PRESETS or (text and text == app_city_source()):
        return text
    return str(resolve_workspace_folder(text, roots=roots))


def keep_inside_workspace(paths, *, roots: Sequence[Path] | None = None) -> list[Path]:
    """The paths (listed inside a workspace folder) that still resolve inside it: a symbolic link out is dropped."""
    roots = [Path(r) for r in (workspace_roots() if roots is None else roots)]
    out = []
    for p in paths:
        try:
            resolved = Path(p).resolve()
        except (OSError, RuntimeError):
            continue
        if any(resolved.is_relative_to(r) for r in roots):
            out.append(Path(p))
    return out


def check_upload_size(name: str, size_bytes: int, kind: str) -> None:
    """Refuse an upload larger than its kind's limit, before it is read or parsed.

    Parameters
    ----------
    name : str
        The file name as uploaded (for the message).
    size_bytes : int
        Its size, bytes (Streamlit's ``UploadedFile.size``).
    kind : str
        A key of :data:`UPLOAD_LIMITS_MB`.

    Raises
    ------
    UploadTooLargeError
        ``size_bytes`` exceeds the limit; the message names the file, its size and the limit.

    Examples
    --------
    >>> check_upload_size("rain.csv", 2_000, "rain_csv")
    >>> check_upload_size("rain.csv", 10**9, "rain_csv")
    Traceback (most recent call last):
    ...
    twin.app_support.UploadTooLargeError: rain.csv: 953.7 MB is larger than the 20 MB allowed for a rain_csv upload
    """
    limit_mb = UPLOAD_LIMITS_MB[kind]
    if size_bytes > limit_mb * MB:
        raise UploadTooLargeError(f"{Path(name).name}: {size_bytes / MB:.1f} MB is larger than the {limit_mb} MB "
                                  f"allowed for a {kind} upload", key="err.upload.too_large", file=Path(name).name,
                                  size=f"{size_bytes / MB:.1f}", limit=limit_mb)


def read_uploads(uploads, kind: str, *, max_files: int | None = None) -> tuple[tuple[str, bytes], ...]:
    """(name, bytes) of Streamlit uploads, each size-checked (:func:`check_upload_size`) before it is read.

    Parameters
    ----------
    uploads : sequence of streamlit UploadedFile
        Objects with ``name``, ``size`` (bytes) and ``getvalue()``.
    kind : str
        A key of :data:`UPLOAD_LIMITS_MB`; a ``.tif``/``.tiff`` in a ``gpkg`` upload is checked as ``dem``.
    max_files : int, optional
        Most files allowed.

    Raises
    ------
    UploadTooLargeError
        A file is too large, or there are more than ``max_files``.
    """
    uploads = list(uploads)
    if max_files is not None and len(uploads) > max_files:
        raise UploadTooLargeError(f"{len(uploads)} files uploaded; at most {max_files} are allowed",
                                  key="err.upload.too_many", n=len(uploads), max=max_files)
    for u in uploads:
        one = "dem" if kind == "gpkg" and u.name.lower().endswith(DEM_SUFFIXES) else kind
        check_upload_size(u.name, int(u.size), one)
    return tuple((u.name, u.getvalue()) for u in uploads)


def upload_limit_mb(kind: str) -> int:
    """The per-field upload limit for Streamlit's ``file_uploader(max_upload_size=...)``, MB."""
    return UPLOAD_LIMITS_MB[kind]


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
                        f"{names}: expected one city GeoPackage (.gpkg) and at most one DEM GeoTIFF (.tif)",
                        key="err.upload.gpkg_files", files=names)
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
                raise TwinError(f"{names}: expected one OSM extract (.osm, .osm.bz2 or .osm.pbf)",
                                key="err.upload.osm_file", files=names)
            osm = tmp_dir / files[0][0]
            osm.write_bytes(files[0][1])
            return load_city(osm)
        except TwinError as exc:
            plain, detail = upload_error_parts(exc, tmp_dir)
            if (plain, detail) == (str(exc), exc.detail):
                raise
            raise _retold(exc, plain, detail) from exc


def error_text(exc: BaseException, lang: str = "en") -> str:
    """An error's message in ``lang``: its catalogue key's message when it has one, else its English text.

    English is the error's own message, word for word as the CLI prints it.

    Examples
    --------
    >>> from gisdata.errors import CorruptFileError
    >>> err = CorruptFileError("x.gpkg: not a readable GeoPackage: ...", key="err.gpkg.unreadable", file="x.gpkg")
    >>> error_text(err, "zh")
    'x.gpkg：不是可读取的 GeoPackage 文件，无法按 GeoPackage 打开'
    >>> error_text(ValueError("bad"), "zh")
    'bad'
    """
    found = getattr(exc, "message_key", None)
    if found and lang != "en":
        key, params = found
        message = catalogue(lang).get(key) or catalogue("en").get(key)
        try:
            if message is not None:
                return message.format(**params)
        except (KeyError, IndexError, ValueError):  # a field the error lacks: its English words, not a crash
            pass
    return str(exc)


def upload_error_parts(exc: BaseException, tmp_dir: str | os.PathLike | None = None,
                       lang: str = "en") -> tuple[str, str]:
    """(plain message, technical detail) of an upload error, for a page to show the first and fold the second.

    The plain message says what is wrong in words a planner reads ("not a
    readable GeoPackage: the file could not be opened as one"); the detail
    holds the library's own words (``TwinError.detail``, or the error it was
    raised from; see :func:`gisdata.errors.error_parts`), ``""`` if none.
    ``tmp_dir``, the folder an upload was written to, is taken out of both.

    Examples
    --------
    >>> from gisdata.errors import CorruptFileError
    >>> upload_error_parts(CorruptFileError("/tmp/u1/x.gpkg: not a readable GeoPackage", detail="Error: /tmp/u1/x.gpkg"),
    ...                    "/tmp/u1")
    ('x.gpkg: not a readable GeoPackage', 'Error: x.gpkg')
    """
    from gisdata.errors import error_parts

    plain, detail = error_parts(exc)
    if lang != "en" and getattr(exc, "message_key", None):  # the plain words in the page's language
        plain = error_text(exc, lang)
    if tmp_dir is not None:
        tmp = str(tmp_dir)
        plain, detail = (text.replace(tmp + os.sep, "").replace(tmp, ".") for text in (plain, detail))
    return plain, detail


def rain_time_note(rain, lang: str = "en") -> str:
    """Where an uploaded rain record's times came from, in ``lang`` (``""`` if the reader did not say).

    Examples
    --------
    >>> from hydraulics.rain_series import RainSeries
    >>> rain = RainSeries(pd.DataFrame({"RG1": [1.0]}, index=[0]), step_s=300,
    ...                   meta={"format": "csv", "time_column": "time_min", "time_unit": "min"})
    >>> rain_time_note(rain, "en")
    "Time from column 'time_min' (minutes from the start)."
    """
    meta = getattr(rain, "meta", {}) or {}
    if str(meta.get("format", "")).startswith("ncdc"):
        return t("flood.rain_time.ncdc", lang)
    column, unit = str(meta.get("time_column", "")), str(meta.get("time_unit", ""))
    if not column:
        return ""
    columns = " + ".join(f"'{c}'" for c in column.split("+"))
    if unit == "datetime":
        note = t("flood.rain_time.datetime", lang, column=columns)
    else:
        note = t("flood.rain_time.elapsed", lang, column=columns, unit=t(f"flood.rain_time.unit.{unit}", lang))
    ignored = str(meta.get("time_columns_ignored", ""))
    if ignored:
        note += " " + t("flood.rain_time.ignored", lang, columns=", ".join(f"'{c}'" for c in ignored.split(",")))
    return note


def _retold(exc: TwinError, plain: str, detail: str) -> TwinError:
    """An error of ``exc``'s type with another message and detail (a plain TwinError if the type cannot be remade)."""
    try:
        out = type(exc)(plain, detail=detail)
    except TypeError:  # a type with its own constructor (e.g. RainFileError(path, line, message))
        out = TwinError(plain, detail=detail)
    if exc.key:  # the catalogue key and its fields travel with the message
        out.key, out.params = exc.key, dict(exc.params)
    return out


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
        unit = units.get(col, "")
        row = {"column": col, "description": column_description(col, lang), "dtype": dtype_label(s.dtype, lang),
               "unit": t(f"unit.{unit}", lang) if f"unit.{unit}" in catalogue("en") else unit}
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s) and len(s):
            row.update(min=float(s.min()), mean=float(s.mean()), max=float(s.max()))
        else:
            row.update(min=np.nan, mean=np.nan, max=np.nan)
        row["distinct"] = int(s.nunique())
        top = s.astype(str).value_counts()
        row["top"] = f"{value_label(layer, col, top.index[0], lang)} ({top.iloc[0]})" if len(top) else ""
        rows.append(row)
    df = pd.DataFrame(rows, columns=["column", "description", "dtype", "unit", "min", "mean", "max", "distinct", "top"])
    return df.rename(columns={k: t(f"stats.{k}", lang) for k in df.columns})


def column_description(column: str, lang: str = "en") -> str:
    """What a layer column holds, in ``lang`` (``column.<name>`` in the catalogue; ``""`` if it has none).

    Examples
    --------
    >>> column_description("lanes", "zh")
    '车道数（双向合计）'
    """
    key = f"column.{column}"
    return t(key, lang) if key in catalogue("en") else ""


def dtype_label(dtype, lang: str = "en") -> str:
    """A column's data type in words of ``lang`` (text, integer, decimal, yes/no, date-time).

    Examples
    --------
    >>> dtype_label(np.dtype("int64"), "zh"), dtype_label(np.dtype("float64"), "en")
    ('整数', 'decimal')
    """
    kind = getattr(dtype, "kind", "O")
    name = {"i": "integer", "u": "integer", "f": "decimal", "b": "boolean", "M": "datetime"}.get(kind, "text")
    return t(f"stats.dtype.{name}", lang)


# layer column -> catalogue prefix of its categorical values
_VALUE_KEYS = {"road_class": "road_class", "use": "use", "node_type": "node_type", "height_source": "height_source",
               "department": "department", "site_type": "site_type", "sensor_type": "sensor_type", "sag": "sag",
               "kind": "water_kind"}


def value_label(layer: str, column: str, value, lang: str = "en") -> str:
    """A categorical value of a layer column in words of ``lang``; names are kept (generated ones translated).

    Generated depot and district names (``Police Station 1``, ``Grid A1``) come from the
    catalogue, as in the response plan; a city's own names are shown as they are.

    Examples
    --------
    >>> value_label("roads", "road_class", "arterial", "zh"), value_label("roads", "sag", "", "zh")
    ('主干路', '-')
    >>> value_label("depots", "name", "Police Station 1", "zh")
    '派出所 1'
    """
    text = str(value)
    if text == "":
        return "-"
    prefix = _VALUE_KEYS.get(column)
    if prefix and f"{prefix}.{text}" in catalogue("en"):
        return t(f"{prefix}.{text}", lang)
    if column == "name" and layer in ("depots", "districts"):
        from hydraulics.plan import depot_label, district_label

        def say(key: str, **fields) -> str:
            return t(key, lang, **fields)

        if layer == "districts":
            return district_label(text, say)
        return next((depot_label(text, d, say) for d in _DEPARTMENTS if depot_label(text, d, say) != text), text)
    return text


_DEPARTMENTS = ("city_management", "drainage", "police", "emergency")


def city_scene_html(city: CityTwin, *, vertical_exaggeration: float = 1.0, lang: str = "en") -> str:
    """The interactive 3D page of the city (self-contained HTML text, for an iframe)."""
    from twin.viz.scene import scene_html

    return scene_html(city, vertical_exaggeration=vertical_exaggeration, lang=lang)


# ----------------------------------------------------------------------------- flood event page


def rain_description(rain, lang: str = "en", storm: dict | None = None) -> str:
    """One line about a rain series: label, depth, duration and peak.

    With ``storm`` (the storm's parameters, as the Flood event page records them) the
    label is told in ``lang`` (:func:`twin.flood_event.storm_caption`); English keeps the rain's own label.
    """
    label = rain.label or "-"
    if storm and lang != "en":
        from twin.flood_event import storm_caption

        label = storm_caption(storm, lang) or label
    return t("flood.rain_summary", lang, label=label, depth=f"{rain.max_depth_mm:.1f}",
             minutes=f"{rain.duration_s / 60:g}", peak=f"{rain.max_peak_mm_h:.1f}")


def flood_progress_text(progress, lang: str = "en") -> str:
    """The progress bar's text for a :class:`twin.flood_event.FloodProgress`."""
    if progress.stage == "run":
        return t("flood.progress.run", lang, done=f"{progress.simulated_s / 60:.0f}",
                 total=f"{progress.total_s / 60:.0f}")
    return t(f"flood.progress.{progress.stage}", lang)


def flood_metrics(result, lang: str = "en") -> list[tuple[str, str]]:
    """The four headline figures of a flood event as (label, value): manholes that spilled,
    spilled volume, maximum street depth and the mass balance errors (coupled system, SWMM routing)."""
    s = result.summary
    return [
        (t("flood.summary.flooded_nodes", lang), f"{s['flooded_nodes']:,}"),
        (t("flood.summary.flood_volume_m3", lang), f"{s['flood_volume_m3']:,.1f}"),
        (t("flood.summary.max_surface_depth_m", lang), f"{s['max_surface_depth_m']:.2f}"),
        (t("flood.summary.continuity", lang),
         t("flood.summary.continuity_value", lang, coupled=f"{100 * s['mass_balance_error_rel']:.3f}",
           routing=f"{s['flow_routing_error_pct']:.2f}")),
    ]


_SUMMARY_ROWS = (
    ("flooded_nodes", "{:,}"), ("flood_volume_m3", "{:,.1f}"), ("surface_volume_m3", "{:,.1f}"),
    ("surface_outflow_m3", "{:,.1f}"), ("max_surface_depth_m", "{:.3f}"), ("flooded_area_m2", "{:,.0f}"),
    ("roads_closed", "{:,}"), ("roads_closed_to_cars", "{:,}"), ("buildings_exposed", "{:,}"),
    ("risk_points", "{:,}"), ("to_surface_m3", "{:,.1f}"), ("to_network_m3", "{:,.1f}"), ("to_river_m3", "{:,.1f}"),
    ("rain_depth_mm", "{:.1f}"), ("rain_peak_mm_h", "{:.1f}"), ("mass_balance_error_pct", "{:.4f}"),
    ("flow_routing_error_pct", "{:.3f}"), ("surface_cell_m", "{:g}"), ("wall_time_s", "{:.1f}"),
)


def flood_summary_table(result, lang: str = "en") -> pd.DataFrame:
    """Every figure of :attr:`FloodEventResult.summary` as a two-column table (item, value)."""
    s = {**result.summary, "mass_balance_error_pct": 100.0 * result.summary["mass_balance_error_rel"]}
    return pd.DataFrame({
        t("stats.item", lang): [t(f"flood.summary.{k}", lang) for k, _ in _SUMMARY_ROWS],
        t("stats.value", lang): [fmt.format(s[k]) for k, fmt in _SUMMARY_ROWS],
    })


def flood_node_label(result, node_id: str, lang: str = "en") -> str:
    """How a manhole is listed in the hydrograph selector: its flood volume, or its peak depth."""
    row = result.nodes.loc[node_id]
    if row["flood_volume_m3"] > 0:
        return t("flood.node_option.flooded", lang, id=node_id, volume=f"{row['flood_volume_m3']:,.1f}")
    return t("flood.node_option.dry", lang, id=node_id, depth=f"{row['peak_depth_m']:.2f}",
             full=f"{row['max_depth_m']:.2f}")


def flooded_nodes_table(result, lang: str = "en") -> pd.DataFrame:
    """Manholes that overflowed, largest volume first, with translated headers."""
    fs = result.flood_summary.sort_values("volume_m3", ascending=False, kind="stable")
    nodes = result.nodes.reindex(fs.index)
    return pd.DataFrame({
        t("map.id", lang): fs.index.astype(str),
        t("flood.volume_m3", lang): fs["volume_m3"].round(2).to_numpy(),
        t("flood.peak_flooding_cms", lang): fs["peak_rate_cms"].round(4).to_numpy(),
        t("flood.hours_flooded", lang): fs["hours_flooded"].round(2).to_numpy(),
        t("flood.surface_depth_at_node_m", lang): nodes["surface_depth_m"].round(3).to_numpy(),
    })


def flooded_roads_table(city: CityTwin, result, lang: str = "en", *, min_depth_m: float = 0.02) -> pd.DataFrame:
    """Roads with at least ``min_depth_m`` of water, deepest first: name, class, depth and state."""
    r = result.roads[result.roads["depth_m"] >= min_depth_m].sort_values("depth_m", ascending=False, kind="stable")
    roads = city.roads.reindex(r.index)
    names = roads["name"].fillna("").astype(str) if "name" in roads.columns else pd.Series("", index=r.index)
    return pd.DataFrame({
        t("map.id", lang): r.index.astype(str),
        t("map.name", lang): names.replace("", "-").to_numpy(),
        t("map.class", lang): [t(f"road_class.{c}", lang) for c in roads["road_class"].astype(str)],
        t("flood.road_depth_m", lang): r["depth_m"].round(3).to_numpy(),
        t("flood.road_status", lang): [t(f"flood.status.{s}", lang) for s in r["status"].astype(str)],
    })


def exposed_buildings_table(result, lang: str = "en") -> pd.DataFrame:
    """Buildings with water against them, deepest first."""
    b = result.buildings
    out = pd.DataFrame({t("map.id", lang): b.index.astype(str), t("flood.depth_m", lang): b["depth_m"].round(3)})
    if "use" in b.columns:
        out[t("map.use", lang)] = [t(f"use.{u}", lang) for u in b["use"].astype(str)]
    if "residents" in b.columns:
        out[t("map.residents", lang)] = b["residents"].to_numpy()
    return out.reset_index(drop=True)


def flood_scene_html(city: CityTwin, result, *, vertical_exaggeration: float = 1.0, lang: str = "en") -> str:
    """The interactive 3D page of the city with the event's maximum water surface."""
    from twin.viz.scene import scene_html

    return scene_html(city, flood_depth=result.depth, vertical_exaggeration=vertical_exaggeration, lang=lang)


def keep_latest(store: dict, key, value, keep: int) -> None:
    """Put ``value`` under ``key`` as the newest entry of ``store`` and drop the oldest beyond ``keep``.

    The pages keep their last few runs in ``st.session_state`` dicts (insertion order is age)
    so that going back to earlier settings shows them again without re-running.
    """
    store.pop(key, None)
    store[key] = value
    while len(store) > keep:
        store.pop(next(iter(store)))


# ----------------------------------------------------------------------------- the run store and page state


def runs_dir() -> Path:
    """The workspace's run store, where every page stores its runs and Replay and Batch look first.

    ``$CITYTWIN_RUNS_DIR`` (relative to the workspace root, or absolute), else ``runs`` in the
    workspace root (:func:`workspace_root`).  Resolved; it need not exist yet.
    """
    runs = os.environ.get(RUNS_DIR_ENV, "").strip()
    return (workspace_root() / (runs or "runs")).resolve()


def runs_dir_text() -> str:
    """The run store as a page shows it in its folder field: ``$CITYTWIN_RUNS_DIR`` as set, else ``runs``."""
    return os.environ.get(RUNS_DIR_ENV, "").strip() or "runs"


def persistent(key: str) -> dict:
    """A widget's ``key`` and what keeps its value for the whole session: ``st.slider(..., **persistent("k"))``.

    Streamlit drops the value of a widget that is not drawn in a run (the user is on
    another page); ``persist_state="session"`` keeps it across page switches, language
    switches (the widget's label changes, its key does not) and reruns.  Every page's
    inputs go through here, so the rule is in one place.

    Examples
    --------
    >>> persistent("flood_period")
    {'key': 'flood_period', 'persist_state': 'session'}
    """
    return {"key": key, "persist_state": "session"}


def kept_tabs(ids: Sequence[str], labels: Sequence[str], *, key: str, lang: str):
    """``st.tabs`` that stay on the chosen tab across reruns, page and language switches.

    A tab is remembered by its id (``ids``), not by its translated label, so
    switching the language keeps it open.  Returns the tab containers, in order.
    """
    import streamlit as st

    chosen = st.session_state.get(f"{key}__id")
    default = labels[ids.index(chosen)] if chosen in ids else labels[0]

    def remember() -> None:
        label = st.session_state.get(f"{key}__{lang}")
        if label in labels:
            st.session_state[f"{key}__id"] = ids[list(labels).index(label)]

    return st.tabs(list(labels), default=default, key=f"{key}__{lang}", on_change=remember)


def shown_result(store: dict, key, state: dict, name: str) -> tuple[object, object, bool]:
    """What a page shows of the results it keeps by settings: ``(key, result, stale)``.

    The result of the current settings ``key`` if there is one; else the last one the
    page showed (remembered in ``state[name]``), marked stale so the page says
    "results are from other settings" instead of letting them vanish; else
    ``(None, None, False)``.

    Examples
    --------
    >>> state = {}
    >>> shown_result({"a": 1}, "a", state, "last")
    ('a', 1, False)
    >>> shown_result({"a": 1}, "b", state, "last")
    ('a', 1, True)
    >>> shown_result({}, "b", {}, "last")
    (None, None, False)
    """
    if key in store:
        state[name] = key
        return key, store[key], False
    last = state.get(name)
    if last is not None and last in store:
        return last, store[last], True
    return None, None, False
