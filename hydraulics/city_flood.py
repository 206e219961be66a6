"""A city's flood event on the coupled 1D-2D model: its sewer (SWMM) and its streets (2D), both ways.

:func:`run_city_flood` builds the city's SWMM model for a rain, its street
surface (:func:`~hydraulics.urban_surface.build_urban_surface`: carriageways
below the kerb, buildings blocked, the river a boundary), runs them coupled
(:func:`~hydraulics.dual_drainage.run_dual_drainage`) and reduces the street
depths to places crews can drive to
(:class:`~hydraulics.street_flood.StreetFloodRecorder`): road segments closed
to cars (0.15 m) and to everyone (0.30 m), risk points, flooded entrances
and districts.  Water that reaches the river, through the outfalls or over
the banks, is reported as ``to_river_m3``, never as waterlogging.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from gisdata.paths import StagedDir
from hydraulics.build import build_swmm
from hydraulics.depth_series import FILE_NAME as DEPTH_SERIES_FILE
from hydraulics.depth_series import DepthSeries, DepthSeriesRecorder
from hydraulics.dual_drainage import (
    DualDrainageOptions,
    DualDrainageResults,
    run_dual_drainage,
)
from hydraulics.street_flood import CLOSED_TO_CARS_M, StreetFlood, StreetFloodRecorder
from hydraulics.surface import INLET_RETURN_CMS
from hydraulics.surface2d_io import Domain
from hydraulics.urban_surface import DEFAULT_CELL_M, UrbanSurface, build_urban_surface

CITY_REPORT_STEP_S = 300.0
"""Default interval of the exchange series, the mass balance and the street snapshots of a city run, s."""
CITY_INLETS_PER_NODE = 1
"""Gully inlet groups per manhole of a city run, each taking :data:`~hydraulics.surface.INLET_RETURN_CMS`
(the project's one figure for what a manhole's gullies take back, 0.05 m3/s)."""


@dataclass(frozen=True)
class CityFloodResult:
    """A city's coupled flood event.

    Parameters
    ----------
    coupled : DualDrainageResults
        Exchange series, depths, mass balance and nodes of the coupled run.
    streets : StreetFlood
        Roads, entrances and districts.
    surface : UrbanSurface
        The street surface the depths are on.
    depths : DepthSeries
        Street water depth at every report time (``depth_series.tif``).
    summary : dict
        The coupled run's summary plus ``roads_closed_cars``, ``roads_closed_all``,
        ``risk_points``, ``bridges_closed`` and the surface's cell size.
    """

    coupled: DualDrainageResults
    streets: StreetFlood
    surface: UrbanSurface
    depths: DepthSeries
    summary: dict

    def lines(self) -> list[str]:
        """The printed summary: the coupled run's, then the streets."""
        s = self.summary
        return self.coupled.lines() + [
            f"to the river      {s['to_river_m3']:,.1f} m3 (outfalls and banks; never counted as waterlogging)",
            f"roads closed      {s['roads_closed_cars']} to cars (>= 0.15 m), {s['roads_closed_all']} to everyone "
            f"(>= 0.30 m) over >= 20 m of carriageway; {s['bridges_closed']} of them bridges",
            f"risk points       {s['risk_points']} ({s['risk_roads']} road segments, {s['risk_entrances']} "
            f"building entrances)",
        ]


def city_options(**changes) -> DualDrainageOptions:
    """Coupling options of a city run: :data:`CITY_REPORT_STEP_S` and gully inlets at every manhole."""
    base = dict(report_step_s=CITY_REPORT_STEP_S, inlets_per_node=CITY_INLETS_PER_NODE,
                inlet_capacity_m3s=INLET_RETURN_CMS)
    base.update(changes)
    return DualDrainageOptions(**base)


def run_city_flood(city, rain, *, cell_size_m: float = DEFAULT_CELL_M, drain_time_h: float = 3.0,
                   options: DualDrainageOptions | None = None, threshold_m: float = CLOSED_TO_CARS_M,
                   on_progress: Callable[[float], None] | None = None) -> CityFloodResult:
    """Run a flood event of ``city`` on the coupled sewer and street model.

    Parameters
    ----------
    city : CityTwin
        The city (roads, buildings, water, sewer, DEM).
    rain : pandas.Series, pandas.DataFrame or RainSeries
        Rain in mm/h (as :func:`~hydraulics.build.build_swmm` takes it).
    cell_size_m : float
        Cell size of the street surface, m.
    drain_time_h : float
        Simulated time after the rain ends, h.
    options : DualDrainageOptions, optional
        Exchange and solver settings; the report step defaults to :data:`CITY_REPORT_STEP_S`.
    threshold_m : float
        Depth of a risk point, m.
    on_progress : callable, optional
        Called with the fraction of simulated time done (0..1).

    Returns
    -------
    CityFloodResult
    """
    surface = build_urban_surface(city, cell_size_m=cell_size_m)
    opts = options or city_options()
    text = build_swmm(city, rain_gauges=rain, drain_time_h=drain_time_h, report="none")
    recorder = StreetFloodRecorder(surface, city, threshold_m=threshold_m)
    frames = DepthSeriesRecorder(surface.ground.transform, surface.ground.crs,
                                 ~(surface.outside | surface.river), every_s=opts.report_step_s)

    def on_report(t, s) -> None:
        recorder.add(t, s.depth_m)
        frames.add(t, s.depth_m)

    coupled = run_dual_drainage(text, surface, options=opts, on_progress=on_progress, on_report=on_report)
    streets = recorder.result()
    risk = streets.risk_points()
    bridges = _bridges(city, surface)
    closed = streets.roads["max_depth_m"] >= CLOSED_TO_CARS_M
    summary = {**coupled.summary, "model": f"city {city.name}", "dem": f"city {city.name} street surface",
               **streets.closures_summary(),
               "risk_points": int(len(risk)), "risk_roads": int((risk["kind"] == "road").sum()),
               "risk_entrances": int((risk["kind"] == "entrance").sum()),
               "bridges_closed": int((closed & bridges).sum()), "surface_cell_m": float(cell_size_m)}
    coupled = replace(coupled, summary=summary)
    return CityFloodResult(coupled, streets, surface, frames.result(), summary)


def _bridges(city, surface: UrbanSurface):
    """Road segments that cross the river (a bridge deck is not a street cell)."""
    import pandas as pd

    if city.water is None or len(city.water) == 0:
        return pd.Series(False, index=city.roads.index)
    river = city.water.geometry.union_all()
    return pd.Series(city.roads.geometry.intersects(river).to_numpy(), index=city.roads.index)


def write_city_flood(result: CityFloodResult, out: str | Path) -> Path:
    """Write a city flood event into ``out`` (new or empty), all or nothing.

    The coupled run's files (:func:`~hydraulics.dual_drainage.write_dual_drainage`) plus
    ``roads.csv`` (closures, effective depths, risk), ``risk_points.csv``, ``districts.csv``,
    ``node_depth.csv`` (every node's depth at the report times, m) and ``depth_series.tif``
    (:mod:`hydraulics.depth_series`).
    """
    from hydraulics.dual_drainage import _write

    domain = Domain(result.surface.ground, result.surface.outside | result.surface.river, "city street surface")
    folder = StagedDir(out)
    try:
        _write(result.coupled, domain, folder)
        result.streets.roads.to_csv(folder.path / "roads.csv", float_format="%.4f")
        result.streets.risk_points().to_csv(folder.path / "risk_points.csv", index=False, float_format="%.4f")
        result.streets.districts.to_csv(folder.path / "districts.csv", float_format="%.4f")
        result.coupled.node_depth_m.to_csv(folder.path / "node_depth.csv", float_format="%.4f")
        result.depths.write(folder.path / DEPTH_SERIES_FILE)
    except BaseException:
        folder.abort()
        raise
    return folder.commit()
