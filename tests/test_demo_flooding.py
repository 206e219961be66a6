"""The demo city floods like a city (#11): roads close at its sags (underpasses, low crossings), never on a
bridge, and only in storms beyond the sewer's design storm.

The real coupled model (SWMM + the 2D street surface, both ways) on the bundled demo city at the default
10 m cells, Chicago storms of the Beijing IDF.  About 50 s in all on a shared 2-core machine.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from gisdata.city import load_city
from gisdata.presets import DEFAULT_SEEDS
from gisdata.synth import ORIGIN, PRESET_SPECS
from gisdata.terrain import generate_terrain
from hydraulics.city_flood import run_city_flood
from hydraulics.rainfall import chicago_storm
from hydraulics.street_flood import CLOSED_TO_CARS_M


@pytest.fixture(scope="module")
def demo():
    return load_city("demo")


@pytest.fixture(scope="module")
def hotspots(demo):
    """Where the demo city should flood: 40 m around its sag segments, and its closed basins (the terrain's
    first draw, as in tests/test_synth.py)."""
    spec = PRESET_SPECS["demo"]
    terrain = generate_terrain(np.random.default_rng(DEFAULT_SEEDS["demo"]), x0=ORIGIN[0], y0=ORIGIN[1],
                               width_m=spec.size_m, height_m=spec.size_m, crs=demo.crs, n_basins=spec.n_basins)
    sags = demo.roads[demo.roads["sag"] != ""].geometry.buffer(40.0).values
    return shapely.union_all(list(sags) + list(terrain.basins))


def _share_in(zone, result, min_depth_m: float) -> tuple[int, float]:
    """Cells whose largest depth reached ``min_depth_m``, and the share of them inside ``zone``."""
    rows, cols = np.nonzero(result.coupled.max_depth_m >= min_depth_m)
    tr = result.surface.ground.transform
    inside = shapely.contains_xy(zone, tr.c + (cols + 0.5) * tr.a, tr.f + (rows + 0.5) * tr.e)
    return len(rows), float(inside.mean()) if len(rows) else 1.0


def _check_mass_balance(summary: dict) -> None:
    assert abs(summary["coupling_error_rel"]) < 1e-6                  # the exchange and the 2D lose nothing
    assert abs(summary["mass_balance_error_rel"]) <= 1e-3


@pytest.mark.slow
def test_a_100_year_storm_closes_more_than_ten_roads_at_the_sags_and_no_bridge(demo, hotspots):
    result = run_city_flood(demo, chicago_storm("beijing", 100, 180), cell_size_m=10.0, drain_time_h=3.0)
    s, roads = result.summary, result.streets.roads
    closed = roads.index[roads["max_depth_m"] >= CLOSED_TO_CARS_M]
    print(f"\n100-yr: {len(closed)} roads closed to cars ({s['roads_closed_all']} to all), "
          f"{s['roads_closed_cars_at_sags']} at sags; wall {s['wall_time_s']:.1f} s")
    assert s["roads_closed_cars"] == len(closed) > 10
    assert s["bridges_closed"] == 0
    assert not demo.roads.loc[closed].intersects(demo.water.geometry.union_all()).any()
    assert s["roads_closed_cars_at_sags"] >= 0.8 * len(closed)         # the sags are the hotspots
    risk = result.streets.risk_points()
    sag_points = risk.loc[risk["kind"] == "sag", "element_id"]
    assert len(sag_points) >= 5
    assert set(demo.roads.loc[sag_points, "sag"]) == {"underpass", "low_crossing"}
    # street water deeper than a closure stands in the sags and the basins, not spread over the city
    n_deep, share = _share_in(hotspots, result, CLOSED_TO_CARS_M)
    assert n_deep > 50 and share >= 0.9, (n_deep, share)
    assert s["to_river_m3"] > 0.9 * result.coupled.mass_balance["swmm_inflow_m3"].iloc[-1]  # most reaches the river
    _check_mass_balance(s)


@pytest.mark.slow
def test_a_20_year_storm_floods_the_sags_and_bottlenecks_first(demo, hotspots):
    result = run_city_flood(demo, chicago_storm("beijing", 20, 120), cell_size_m=10.0, drain_time_h=1.0)
    s, roads = result.summary, result.streets.roads
    print(f"\n20-yr: {s['roads_closed_cars']} roads closed to cars, {s['to_surface_m3']:.0f} m3 onto the streets")
    assert s["roads_closed_cars"] <= 10 and s["bridges_closed"] == 0
    assert s["roads_closed_cars_at_sags"] == s["roads_closed_cars"]    # if anything closes, it is a sag
    assert (roads["sag_max_depth_m"] >= CLOSED_TO_CARS_M).sum() >= 1    # water stands in at least one sag
    n_wet, share = _share_in(hotspots, result, 0.05)
    assert n_wet > 0 and share >= 0.7, (n_wet, share)
    _check_mass_balance(s)


@pytest.mark.slow
def test_a_2_year_storm_closes_nothing(demo):
    result = run_city_flood(demo, chicago_storm("beijing", 2, 120), cell_size_m=10.0, drain_time_h=1.0)
    s = result.summary
    assert s["roads_closed_cars"] == 0 and s["risk_points"] == 0
    assert s["to_surface_m3"] < 100.0                                  # the sewer carries its design storms
    _check_mass_balance(s)
