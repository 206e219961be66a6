"""SWMM model -> GIS layers and a :class:`~gisdata.city.CityTwin`.

A ``.inp`` carries its map in ``[COORDINATES]`` (nodes), ``[VERTICES]`` (link
bends) and ``[Polygons]`` (subcatchment outlines), in map units of a CRS the
file does not name: the user gives it.  Attributes are converted to SI using
the model's FLOW_UNITS (US: ft -> m, acres -> m2; SI: m, hectares -> m2).

What does not fit the city schema is kept as extra columns (``swmm_type``,
``shape``) or reported in ``metadata["skipped"]``:

- storage units and flow dividers become ``node_type="junction"`` with their
  SWMM type in ``swmm_type`` (the schema knows junctions and outfalls only);
- the ``conduits`` layer holds ``[CONDUITS]``; pumps, orifices, weirs and
  outlets are in the ``links`` layer of :func:`inp_to_gis` only;
- ``diameter_m`` is the cross-section's full height (``Geom1``) for
  non-circular shapes, with the shape in ``shape``;
- elements without coordinates (or subcatchments without polygons) are skipped, and so are conduits
  whose cross-section has no numeric height (STREET, IRREGULAR, CUSTOM shapes).
"""

from __future__ import annotations

import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry import LineString, MultiPolygon, Point, Polygon
from shapely.validation import make_valid

from gisdata.errors import CRSError, EmptyDataError
from gisdata.schema import empty_layer, validate_layer
from hydraulics.inp import InpModel, read_inp


def _crs(crs) -> str:
    from pyproj import CRS
    from pyproj.exceptions import CRSError as ProjCRSError

    try:
        return CRS.from_user_input(crs).to_string()
    except ProjCRSError as exc:
        raise CRSError(f"CRS '{crs}' not understood ({exc}); expected e.g. EPSG:32632") from exc


def _polygonal(geom):
    """Keep the polygonal part of a repaired geometry (make_valid may return a collection)."""
    if geom.is_valid:
        return geom
    fixed = make_valid(geom)
    if isinstance(fixed, (Polygon, MultiPolygon)):
        return fixed
    polys = [g for g in getattr(fixed, "geoms", []) if isinstance(g, (Polygon, MultiPolygon))]
    if not polys:
        return None
    parts = [p for g in polys for p in (g.geoms if isinstance(g, MultiPolygon) else [g])]
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def inp_to_gis(model: InpModel | str | Path, crs) -> dict[str, gpd.GeoDataFrame]:
    """Convert a SWMM model's map and attributes to GeoDataFrames in SI units.

    Parameters
    ----------
    model : InpModel, str or Path
        The model or its ``.inp`` file.
    crs : str or pyproj.CRS
        CRS of the model's map coordinates (the ``.inp`` does not say).

    Returns
    -------
    dict of GeoDataFrame
        ``nodes`` (invert_elev_m, rim_elev_m, max_depth_m, node_type, swmm_type),
        ``conduits`` (from_node, to_node, length_m, diameter_m, roughness_n, in/out_offset_m, shape),
        ``links`` (every link: swmm_type, from_node, to_node, length_m),
        ``subcatchments`` (outlet_node, area_m2, imperv_pct, slope_pct, width_m, raingage),
        and ``skipped``: a dict of element kind -> IDs without map data.

    Examples
    --------
    >>> from pathlib import Path
    >>> inp = Path(__file__).resolve().parents[2] / "shared/data/swmm/bellinge_small/bellinge_small.inp"
    >>> layers = inp_to_gis(inp, "EPSG:32632")
    >>> len(layers["nodes"]) > 0 and layers["nodes"].crs.to_epsg() == 32632
    True
    """
    m = model if isinstance(model, InpModel) else read_inp(model)
    crs = _crs(crs)
    L, A = m.length_to_m, m.area_to_m2
    coords = m.coordinates()
    coords = coords[~coords.index.duplicated(keep="first")]
    skipped: dict[str, list[str]] = {}

    nodes = m.nodes()
    nodes = nodes[~nodes.index.duplicated(keep="first")]
    has_xy = nodes.index.isin(coords.index)
    skipped["nodes"] = nodes.index[~has_xy].tolist()
    nodes = nodes[has_xy]
    xy = coords.loc[nodes.index]
    node_gdf = gpd.GeoDataFrame(
        {
            "node_type": np.where(nodes["swmm_type"] == "outfall", "outfall", "junction"),
            "invert_elev_m": nodes["invert_elev"].to_numpy() * L,
            "max_depth_m": np.nan_to_num(nodes["max_depth"].to_numpy()) * L,
            "swmm_type": nodes["swmm_type"].to_numpy(),
        },
        index=pd.Index(nodes.index.astype(str), name="node_id"),
        geometry=[Point(x, y) for x, y in zip(xy["x"], xy["y"])], crs=crs,
    )
    node_gdf.insert(2, "rim_elev_m", node_gdf["invert_elev_m"] + node_gdf["max_depth_m"])

    verts = m.vertices()
    links = m.links()
    links = links[~links.index.duplicated(keep="first")]
    ok = links["from_node"].isin(coords.index) & links["to_node"].isin(coords.index)
    skipped["links"] = links.index[~ok].tolist()
    links = links[ok]
    geoms = []
    for lid, row in links.iterrows():
        pts = [tuple(coords.loc[row.from_node, ["x", "y"]])] + verts.get(lid, []) + [tuple(coords.loc[row.to_node, ["x", "y"]])]
        geoms.append(LineString(pts) if len({p for p in pts}) > 1 else LineString([pts[0], (pts[0][0] + 1e-6, pts[0][1])]))
    link_gdf = gpd.GeoDataFrame(
        {"swmm_type": links["swmm_type"].to_numpy(), "from_node": links["from_node"].to_numpy(),
         "to_node": links["to_node"].to_numpy(), "length_m": links["length"].to_numpy() * L},
        index=pd.Index(links.index.astype(str), name="link_id"), geometry=geoms, crs=crs,
    )

    conduit_rows = {r[0]: r for r in m.rows("CONDUITS")}
    xs = m.xsections()
    xs = xs[~xs.index.duplicated(keep="first")]
    cond = link_gdf[link_gdf["swmm_type"] == "conduit"].copy()

    def tok(lid, i):
        r = conduit_rows.get(lid, [])
        try:
            return float(r[i])
        except (IndexError, ValueError):
            return 0.0

    cond_gdf = gpd.GeoDataFrame(
        {
            "from_node": cond["from_node"], "to_node": cond["to_node"], "length_m": cond["length_m"],
            "diameter_m": [float(xs.loc[i, "geom1"]) * L if i in xs.index else np.nan for i in cond.index],
            "roughness_n": [tok(i, 4) for i in cond.index],
            "in_offset_m": [tok(i, 5) * L for i in cond.index],
            "out_offset_m": [tok(i, 6) * L for i in cond.index],
            "shape": [xs.loc[i, "shape"] if i in xs.index else "" for i in cond.index],
        },
        index=pd.Index(cond.index, name="conduit_id"), geometry=cond.geometry.to_numpy(), crs=crs,
    )
    # A cross-section without a numeric height (STREET, IRREGULAR or CUSTOM shapes name a table instead)
    # has no pipe diameter: skip the link and say so rather than carry NaN into the city.
    no_height = ~np.isfinite(cond_gdf["diameter_m"].to_numpy(dtype=float))
    if no_height.any():
        skipped.setdefault("conduits", []).extend(cond_gdf.index[no_height].tolist())
        cond_gdf = cond_gdf[~no_height]

    subs = m.subcatchments()
    subs = subs[~subs.index.duplicated(keep="first")]
    polys = m.polygons()
    sub_geoms, sub_ids = [], []
    for sid in subs.index:
        pts = polys.get(sid, [])
        finite = all(math.isfinite(x) and math.isfinite(y) for x, y in pts)  # GEOS raises on NaN/inf rings
        geom = _polygonal(Polygon(pts)) if len(pts) >= 3 and finite else None
        if geom is None or geom.is_empty:
            skipped.setdefault("subcatchments", []).append(sid)
            continue
        sub_geoms.append(geom)
        sub_ids.append(sid)
    s = subs.loc[sub_ids]
    sub_gdf = gpd.GeoDataFrame(
        {
            "outlet_node": s["outlet"].to_numpy(), "area_m2": s["area"].to_numpy() * A,
            "imperv_pct": s["imperv_pct"].to_numpy(), "slope_pct": s["slope_pct"].to_numpy(),
            "width_m": s["width"].to_numpy() * L, "raingage": s["raingage"].to_numpy(),
        },
        index=pd.Index([str(i) for i in sub_ids], name="subcatchment_id"), geometry=sub_geoms, crs=crs,
    )
    skipped.setdefault("subcatchments", [])
    return {"nodes": node_gdf, "conduits": cond_gdf, "links": link_gdf, "subcatchments": sub_gdf,
            "skipped": {k: v for k, v in skipped.items() if v}}


def import_swmm_city(inp: str | Path, crs, *, to_crs=None, dem=None, name: str | None = None):
    """Import a SWMM model as a :class:`~gisdata.city.CityTwin`.

    Roads, buildings and the other layers are empty (schema-conforming); the
    DEM is read from ``dem`` or interpolated from the manhole rim elevations.

    Parameters
    ----------
    inp : str or Path
        The ``.inp`` file.
    crs : str
        CRS of the model's coordinates, e.g. ``"EPSG:32632"``.
    to_crs : str, optional
        Reproject to this CRS (a city must be in metres; use this for models in
        feet, e.g. state-plane coordinates).
    dem : str, Path or Raster, optional
        Ground elevation GeoTIFF (m), in the city's CRS.
    name : str, optional
        City name (default: the file stem).

    Raises
    ------
    CRSError
        If the resulting CRS is not projected in metres.
    EmptyDataError
        If no node has coordinates.

    Examples
    --------
    >>> from pathlib import Path
    >>> inp = Path(__file__).resolve().parents[2] / "shared/data/swmm/bellinge_small/bellinge_small.inp"
    >>> city = import_swmm_city(inp, "EPSG:32632")
    >>> city.summary()["outfalls"] >= 1
    True
    """
    from gisdata.city import CityTwin, dem_from_nodes
    from gisdata.raster import Raster, read_geotiff
    from gisdata.schema import LAYER_NAMES, check_projected_crs

    inp = Path(inp)
    layers = inp_to_gis(inp, crs)
    target = _crs(to_crs) if to_crs is not None else _crs(crs)
    check_projected_crs(target, source=f"{inp}: --crs {crs}" + (f" -> {to_crs}" if to_crs else ""))
    if to_crs is not None:
        for key in ("nodes", "conduits", "subcatchments"):
            layers[key] = layers[key].to_crs(target)
    if len(layers["nodes"]) == 0:
        raise EmptyDataError(f"{inp}: no node has [COORDINATES]; cannot place the model on a map")
    nodes = validate_layer(layers["nodes"], "nodes", source=str(inp))
    conduits = validate_layer(layers["conduits"], "conduits", source=str(inp))
    subs = validate_layer(layers["subcatchments"], "subcatchments", source=str(inp))
    if isinstance(dem, Raster):
        raster = dem
    elif dem is not None:
        raster = read_geotiff(dem)
    else:
        raster = dem_from_nodes(nodes, target)
    other = {layer: empty_layer(layer, target) for layer in LAYER_NAMES
             if layer not in ("nodes", "conduits", "subcatchments")}
    skipped = "; ".join(f"{k}: {len(v)} ({', '.join(map(str, v[:5]))}{', ...' if len(v) > 5 else ''})"
                        for k, v in layers["skipped"].items())
    return CityTwin(
        name=name or inp.stem, crs=target, nodes=nodes, conduits=conduits, subcatchments=subs, dem=raster,
        metadata={"source": str(inp), "source_crs": _crs(crs), "imported_by": "hydraulics.gis.import_swmm_city",
                  "dem_source": str(dem) if dem is not None else "interpolated from manhole rim elevations",
                  **({"skipped": skipped} if skipped else {})},
        **other,
    )
