"""Build a SWMM 5.2 model (``.inp`` text) from a :class:`~gisdata.city.CityTwin`.

What the model holds
--------------------
- **Junctions** at manholes: invert elevation and maximum depth (rim minus invert).
- **Outfalls** (``FREE``): the river is assumed never to back up into the pipes.
- **Conduits**: circular pipes with their diameter, Manning ``n`` and the
  in/out offsets of their inverts above the node inverts (``LINK_OFFSETS DEPTH``).
- **Subcatchments**: area (ha), width (m), slope (%), imperviousness (%),
  Horton infiltration on the pervious part (:data:`HORTON`), each bound to its
  nearest rain gauge (``sensors`` with ``sensor_type == "rain_gauge"``; a
  city without gauges gets one at the centroid of its subcatchments).
- Dynamic-wave routing with a 15 s routing step and a variable step (Courant
  0.75) -- the speed/accuracy balance measured in ``RECIPES.md`` -- and the
  Preissmann-slot surcharge method (``SURCHARGE_METHOD SLOT``, SWMM >= 5.1.013).
  With the default EXTRAN method, surcharged manholes of these networks show
  head spikes of a few routing steps that overtop rims for ~30 s (a few m3 each):
  in a 20-year storm on the demo city ~150 nodes "flooded" that way, against 2
  with the slot method, for the same network.
- ``[COORDINATES]``, ``[VERTICES]`` and ``[Polygons]`` in the city's CRS, so the
  model maps in any SWMM GUI.

Ponding policy
--------------
``ALLOW_PONDING NO`` with zero surcharge depth and zero ponded area: when the
head at a manhole reaches its rim, the excess leaves the network and is reported
as *flooding* (volume and rate per node).  It does not come back into the pipe.
We chose this because the street surface is modelled by
``hydraulics.surface``, which spreads each node's flooded volume over the DEM
(depressions, streets, building footprints): a SWMM ponded area is a flat
cylinder above the node that would double-count that storage and return the
water at the wrong place.  The price is that the SWMM-only run
underestimates late drainage of ponded water; the coupled surface model is the
place where that water lives.

Rain
----
``rain_gauges`` is one of

- ``None``: a dry model (one hour of zero rain), useful to check a network;
- a pandas ``Series`` of intensity in mm/h, indexed by elapsed time
  (``TimedeltaIndex`` or seconds) or by timestamps: the same rain at every gauge;
- a pandas ``DataFrame`` (or a :class:`hydraulics.rain_series.RainSeries`) with
  one column per gauge ID; one column only means the same rain everywhere.

Each gauge gets an ``INTENSITY`` ``[TIMESERIES]`` (each value holds until the
next one).  Elapsed series start on :data:`DEFAULT_START`; the simulation ends
``drain_time_h`` after the last rain interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from scipy.spatial import cKDTree

from gisdata.city import CityTwin
from gisdata.errors import EmptyDataError, TwinError
from gisdata.limits import MAX_RAIN_INTENSITY_MM_H

DEFAULT_START = pd.Timestamp("2024-07-01 00:00:00")
"""Start of an elapsed-time rain series (a day in Beijing's rainy season)."""

HORTON = {"max_rate_mm_h": 75.0, "min_rate_mm_h": 5.0, "decay_1_h": 4.0, "dry_time_d": 7.0, "max_infil_mm": 0.0}
"""Horton infiltration of the pervious part of every subcatchment (loam, SWMM manual values)."""

SUBAREA = {"n_imperv": 0.013, "n_perv": 0.15, "store_imperv_mm": 1.5, "store_perv_mm": 5.0, "pct_zero": 25.0}
"""Overland-flow roughness (s/m^(1/3)), depression storage (mm) and % impervious area without storage."""

DEFAULT_OPTIONS = {
    "FLOW_UNITS": "CMS",
    "INFILTRATION": "HORTON",
    "FLOW_ROUTING": "DYNWAVE",
    "LINK_OFFSETS": "DEPTH",
    "MIN_SLOPE": "0",
    "ALLOW_PONDING": "NO",
    "SKIP_STEADY_STATE": "NO",
    "DRY_DAYS": "0",
    "REPORT_STEP": "00:05:00",
    "WET_STEP": "00:01:00",
    "DRY_STEP": "00:15:00",
    "ROUTING_STEP": "15",
    "RULE_STEP": "00:00:00",
    "INERTIAL_DAMPING": "PARTIAL",
    "NORMAL_FLOW_LIMITED": "BOTH",
    "FORCE_MAIN_EQUATION": "H-W",
    "VARIABLE_STEP": "0.75",
    "LENGTHENING_STEP": "0",
    "MIN_SURFAREA": "1.167",
    "MAX_TRIALS": "8",
    "HEAD_TOLERANCE": "0.0015",
    "SYS_FLOW_TOL": "5",
    "LAT_FLOW_TOL": "5",
    "MINIMUM_STEP": "0.5",
    "THREADS": "1",
    "SURCHARGE_METHOD": "SLOT",
}
"""``[OPTIONS]`` written unless overridden (dates are set from the rain)."""


class ModelBuildError(TwinError, ValueError):
    """A city or rain input cannot be turned into a valid SWMM model."""


# ----------------------------------------------------------------------------- rain


def _rain_frame(rain, gauges: list[str]) -> tuple[pd.DataFrame, int, pd.Timestamp]:
    """Normalise the rain input to (intensity mm/h per gauge, step s, start timestamp)."""
    if rain is None:
        return pd.DataFrame({g: [0.0] for g in gauges}), 3600, DEFAULT_START
    if hasattr(rain, "intensity_mm_h") and hasattr(rain, "step_s"):  # a hydraulics RainSeries
        frame = rain.intensity_mm_h
    elif isinstance(rain, pd.Series):
        frame = rain.to_frame(name=str(rain.name) if rain.name is not None else "rain")
    elif isinstance(rain, pd.DataFrame):
        frame = rain
    else:
        raise ModelBuildError(
            f"rain of type {type(rain).__name__}; expected None, a pandas Series or DataFrame of mm/h, or a RainSeries"
        )
    if len(frame) == 0:
        raise EmptyDataError("rain has no intervals; expected at least one intensity value in mm/h")
    values = frame.to_numpy(dtype=float)
    if not np.all(np.isfinite(values)) or (values < 0).any():
        raise ModelBuildError("rain intensities must be finite and >= 0 mm/h")
    if (values > MAX_RAIN_INTENSITY_MM_H).any():
        raise ModelBuildError(f"rain intensity {values.max():g} mm/h is more than {MAX_RAIN_INTENSITY_MM_H:g} mm/h "
                              "(MAX_RAIN_INTENSITY_MM_H)")
    index = frame.index
    if isinstance(index, pd.DatetimeIndex):
        start = index[0]
        offsets = (index - start).total_seconds().to_numpy()
    elif isinstance(index, pd.TimedeltaIndex):
        start = DEFAULT_START + index[0]
        offsets = (index - index[0]).total_seconds().to_numpy()
    else:
        secs = np.asarray(index, dtype=float)
        start = DEFAULT_START + pd.Timedelta(seconds=float(secs[0]))
        offsets = secs - secs[0]
    if len(offsets) > 1:
        steps = np.diff(offsets)
        if not np.allclose(steps, steps[0]) or steps[0] <= 0 or steps[0] != round(steps[0]):
            raise ModelBuildError("rain must be evenly spaced in whole seconds (one INTENSITY value per step)")
        step = int(round(steps[0]))
    else:
        step = int(getattr(rain, "step_s", 3600))
    frame = pd.DataFrame(values, columns=[str(c) for c in frame.columns])
    if frame.shape[1] == 1:
        frame = pd.DataFrame({g: frame.iloc[:, 0].to_numpy() for g in gauges})
    else:
        missing = [g for g in gauges if g not in frame.columns]
        if missing:
            raise ModelBuildError(
                f"rain has columns {list(frame.columns)} but the city's rain gauges {missing} have no series; "
                "give one column per gauge ID, or a single column for all gauges"
            )
        frame = frame[gauges]
    return frame, step, start


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}"


# ----------------------------------------------------------------------------- IDs

_BAD_ID_CHARS = set(' \t\r\n\v\f;"')


def check_swmm_ids(ids, what: str, city_name: str) -> None:
    """Refuse IDs the engine would split or misread: empty, with spaces, ``;`` or ``"``, or starting with ``[``.

    The engine splits a line at white space, ``;`` starts a comment and a
    first token starting with ``[`` is a section header, so such an ID gives
    a cryptic engine error (or a silently different model) later.

    Parameters
    ----------
    ids : iterable of str
        Element IDs.
    what : str
        Layer or field, for the message (``"nodes"``, ``"conduits.from_node"``).
    city_name : str
        City, for the message.

    Raises
    ------
    ModelBuildError
        Naming the first offending ID (quoted) and how many there are.

    Examples
    --------
    >>> check_swmm_ids(["J1", "J 2"], "nodes", "demo")
    Traceback (most recent call last):
    ...
    hydraulics.build.ModelBuildError: city 'demo': nodes ID 'J 2' cannot be written to SWMM (it holds white space, ';' or '"', is empty or starts with '['); rename it (1 such ID)
    """
    bad = [str(i) for i in ids if (not str(i)) or str(i).startswith("[") or _BAD_ID_CHARS.intersection(str(i))]
    if bad:
        raise ModelBuildError(f"city '{city_name}': {what} ID {bad[0]!r} cannot be written to SWMM (it holds white "
                              f"space, ';' or '\"', is empty or starts with '['); rename it ({len(bad)} such ID"
                              f"{'s' if len(bad) > 1 else ''})")


# ----------------------------------------------------------------------------- gauges


def _gauges(city: CityTwin) -> tuple[list[str], np.ndarray]:
    sensors = city.sensors
    rg = sensors[sensors["sensor_type"] == "rain_gauge"]
    if len(rg):
        return rg.index.tolist(), shapely.get_coordinates(rg.geometry.values)
    centre = shapely.get_coordinates(shapely.centroid(shapely.union_all(city.subcatchments.geometry.values)))
    return ["RG1"], centre.reshape(1, 2)


# ----------------------------------------------------------------------------- writer


def build_swmm(city: CityTwin, *, rain_gauges=None, options: Mapping[str, str] | None = None,
               drain_time_h: float = 4.0, report: str = "all") -> str:
    """Return the text of a SWMM 5.2 ``.inp`` model of ``city``.

    Parameters
    ----------
    city : CityTwin
        The city; nodes, conduits and subcatchments are required.
    rain_gauges : None, pandas.Series, pandas.DataFrame or RainSeries
        Rain in mm/h (see the module docstring).
    options : Mapping[str, str], optional
        ``[OPTIONS]`` overrides, e.g. ``{"ROUTING_STEP": "5"}`` or ``{"END_DATE": ...}``.
    drain_time_h : float
        Simulated time after the rain ends, h.
    report : {"all", "none"}
        Elements whose time series go to the binary output: ``"all"`` gives a full
        :class:`~hydraulics.run.HydraulicResults` (node depth/head/flooding, link flow,
        subcatchment runoff); ``"none"`` keeps the output tiny for ensemble members
        that only read flood states through the stepping callback.

    Returns
    -------
    str
        The ``.inp`` text (metric: CMS, m, ha, mm/h).

    Raises
    ------
    ModelBuildError
        If the city has no junctions or conduits, or the rain is malformed.

    Examples
    --------
    >>> import sys; sys.path.insert(0, "tests")
    >>> from conftest import make_tiny_city
    >>> text = build_swmm(make_tiny_city())
    >>> "[JUNCTIONS]" in text and "J0" in text
    True
    """
    nodes, conduits, subs = city.nodes, city.conduits, city.subcatchments
    if not (nodes["node_type"] == "junction").any() or not len(conduits):
        raise ModelBuildError(f"city '{city.name}' has no junctions or conduits; nothing to route")
    if drain_time_h < 0:
        raise ModelBuildError(f"drain_time_h={drain_time_h} must be >= 0")
    unknown = sorted((set(conduits["from_node"]) | set(conduits["to_node"]) | set(subs["outlet_node"]))
                     - set(nodes.index))
    if unknown:
        raise ModelBuildError(f"city '{city.name}': conduits or subcatchments refer to unknown nodes {unknown[:5]}")

    for what, ids in (("nodes", nodes.index), ("conduits", conduits.index), ("subcatchments", subs.index)):
        check_swmm_ids(ids, what, city.name)
    gauge_ids, gauge_xy = _gauges(city)
    check_swmm_ids(gauge_ids, "rain gauge", city.name)
    rain, step_s, start = _rain_frame(rain_gauges, gauge_ids)
    end = start + pd.Timedelta(seconds=len(rain) * step_s) + pd.Timedelta(hours=drain_time_h)
    opts = dict(DEFAULT_OPTIONS)
    opts.update({
        "START_DATE": start.strftime("%m/%d/%Y"), "START_TIME": start.strftime("%H:%M:%S"),
        "REPORT_START_DATE": start.strftime("%m/%d/%Y"), "REPORT_START_TIME": start.strftime("%H:%M:%S"),
        "END_DATE": end.strftime("%m/%d/%Y"), "END_TIME": end.strftime("%H:%M:%S"),
    })
    opts.update({str(k).upper(): str(v) for k, v in (options or {}).items()})

    out: list[str] = ["[TITLE]", f";;CityTwin model of '{city.name}' ({city.crs}), built by hydraulics.build", ""]
    out += ["[OPTIONS]"] + [f"{k:<22}{v}" for k, v in opts.items()] + [""]

    out += ["[RAINGAGES]", ";;Name Format Interval SCF Source"]
    out += [f"{g} INTENSITY {_hms(step_s)} 1.0 TIMESERIES TS_{g}" for g in gauge_ids] + [""]

    sub_xy = shapely.get_coordinates(shapely.point_on_surface(subs.geometry.values))
    nearest_gauge = np.asarray(gauge_ids, dtype=object)[cKDTree(gauge_xy).query(sub_xy)[1]] if len(subs) else []
    out += ["[SUBCATCHMENTS]", ";;Name RainGage Outlet Area_ha PctImperv Width_m PctSlope CurbLen"]
    for sid, g, row in zip(subs.index, nearest_gauge, subs.itertuples(index=False)):
        out.append(f"{sid} {g} {row.outlet_node} {row.area_m2 / 1e4:.5f} {row.imperv_pct:.2f} "
                   f"{max(row.width_m, 1.0):.2f} {max(row.slope_pct, 0.01):.3f} 0")
    out += ["", "[SUBAREAS]", ";;Subcatchment N-Imperv N-Perv S-Imperv S-Perv PctZero RouteTo"]
    sa = SUBAREA
    out += [f"{sid} {sa['n_imperv']} {sa['n_perv']} {sa['store_imperv_mm']} {sa['store_perv_mm']} "
            f"{sa['pct_zero']} OUTLET" for sid in subs.index]
    out += ["", "[INFILTRATION]", ";;Subcatchment MaxRate MinRate Decay DryTime MaxInfil"]
    h = HORTON
    out += [f"{sid} {h['max_rate_mm_h']} {h['min_rate_mm_h']} {h['decay_1_h']} {h['dry_time_d']} "
            f"{h['max_infil_mm']}" for sid in subs.index]

    junctions = nodes[nodes["node_type"] == "junction"]
    outfalls = nodes[nodes["node_type"] == "outfall"]
    out += ["", "[JUNCTIONS]", ";;Name Elevation MaxDepth InitDepth SurDepth Aponded"]
    out += [f"{nid} {r.invert_elev_m:.3f} {max(r.max_depth_m, 0.0):.3f} 0 0 0"
            for nid, r in zip(junctions.index, junctions.itertuples(index=False))]
    out += ["", "[OUTFALLS]", ";;Name Elevation Type StageData Gated"]
    out += [f"{nid} {r.invert_elev_m:.3f} FREE YES" for nid, r in zip(outfalls.index, outfalls.itertuples(index=False))]

    out += ["", "[CONDUITS]", ";;Name From To Length Roughness InOffset OutOffset InitFlow MaxFlow"]
    for cid, r in zip(conduits.index, conduits.itertuples(index=False)):
        out.append(f"{cid} {r.from_node} {r.to_node} {max(r.length_m, 0.1):.2f} {r.roughness_n:.4f} "
                   f"{max(r.in_offset_m, 0.0):.3f} {max(r.out_offset_m, 0.0):.3f} 0 0")
    out += ["", "[XSECTIONS]", ";;Link Shape Geom1 Geom2 Geom3 Geom4 Barrels"]
    out += [f"{cid} CIRCULAR {d:.3f} 0 0 0 1" for cid, d in zip(conduits.index, conduits["diameter_m"])]

    out += ["", "[TIMESERIES]", ";;Name Time(H:M:S from start) Value(mm/h)"]
    for g in gauge_ids:
        vals = np.append(rain[g].to_numpy(), 0.0)  # the last interval ends with zero rain
        out += [f"TS_{g} {_hms(k * step_s)} {v:.6g}" for k, v in enumerate(vals)]

    if report not in ("all", "none"):
        raise ModelBuildError(f"report={report!r}; expected 'all' or 'none'")
    scope = report.upper()  # 'none' keeps the .out small for ensembles that only read flood states
    out += ["", "[REPORT]", "INPUT NO", "CONTROLS NO", f"SUBCATCHMENTS {scope}", f"NODES {scope}", f"LINKS {scope}", ""]
    xmin, ymin, xmax, ymax = city.extent
    out += ["[MAP]", f"DIMENSIONS {xmin:.2f} {ymin:.2f} {xmax:.2f} {ymax:.2f}", "Units Meters", ""]
    out += ["[COORDINATES]", ";;Node X Y"]
    nxy = shapely.get_coordinates(nodes.geometry.values)
    out += [f"{nid} {x:.2f} {y:.2f}" for nid, (x, y) in zip(nodes.index, nxy)]
    out += ["", "[VERTICES]", ";;Link X Y"]
    for cid, geom in zip(conduits.index, conduits.geometry.values):
        inner = shapely.get_coordinates(geom)[1:-1]
        out += [f"{cid} {x:.2f} {y:.2f}" for x, y in inner]
    out += ["", "[Polygons]", ";;Subcatchment X Y"]
    for sid, geom in zip(subs.index, subs.geometry.values):
        poly = max(shapely.get_parts(geom), key=lambda p: p.area) if geom.geom_type == "MultiPolygon" else geom
        ring = shapely.get_coordinates(shapely.simplify(poly, 0.5).exterior)[:-1]
        out += [f"{sid} {x:.2f} {y:.2f}" for x, y in ring]
    out += ["", "[SYMBOLS]", ";;Gage X Y"]
    out += [f"{g} {x:.2f} {y:.2f}" for g, (x, y) in zip(gauge_ids, gauge_xy)]
    return "\n".join(out) + "\n"


def write_swmm_inp(city: CityTwin, path: str | Path, rain=None, *, options: Mapping[str, str] | None = None,
                   drain_time_h: float = 4.0, report: str = "all") -> Path:
    """Write ``city`` as a SWMM 5.2 ``.inp`` file with ``rain`` and return its path.

    The text is written to a temporary name and renamed into place, so a failure
    never leaves a half-written model.  See :func:`build_swmm` for the parameters.

    Examples
    --------
    >>> import sys, tempfile, pathlib; sys.path.insert(0, "tests")
    >>> from conftest import make_tiny_city
    >>> p = write_swmm_inp(make_tiny_city(), pathlib.Path(tempfile.mkdtemp()) / "tiny.inp",
    ...                    pd.Series([0.0, 30.0, 10.0], index=pd.to_timedelta([0, 5, 10], unit="min")))
    >>> p.read_text().count("TS_RG1 ")
    4
    """
    path = Path(path)
    text = build_swmm(city, rain_gauges=rain, options=options, drain_time_h=drain_time_h, report=report)
    from gisdata.paths import atomic_path

    with atomic_path(path) as tmp:  # an unpredictable temporary name: no planted symlink is followed
        tmp.write_text(text)
    return path
