"""The street surface built from a city: kerbs, blocked buildings, the river as a boundary, water in the streets."""

from __future__ import annotations

import numpy as np
import pytest

from gisdata.city import load_city
from gisdata.errors import TwinError
from hydraulics.surface2d import PointSource, TimeSeries
from hydraulics.urban_surface import KERB_M, build_urban_surface


@pytest.fixture(scope="module")
def small_city():
    return load_city("small")


def test_grids_follow_the_city(small_city):
    flat = build_urban_surface(small_city, cell_size_m=5.0, kerb_m=0.0)
    surf = build_urban_surface(small_city, cell_size_m=5.0)
    assert surf.shape == flat.shape and surf.ground.cell_size_m == 5.0
    lowered = flat.ground.values - surf.ground.values
    assert np.allclose(lowered[surf.carriageway], KERB_M) and np.allclose(lowered[~surf.carriageway], 0.0)
    assert 0.05 < surf.carriageway.mean() < 0.4                    # the streets are there, as a share of the city
    assert surf.outside.mean() > 0.03                               # and the buildings block water
    assert not (surf.carriageway & surf.outside).any() and not (surf.river & surf.outside).any()
    water_area = small_city.water.geometry.area.sum()
    assert surf.river.sum() * 25.0 == pytest.approx(water_area, rel=0.1)
    assert (surf.manning[surf.carriageway] < surf.manning[~surf.carriageway & ~surf.outside].min()).all()


def test_water_runs_along_the_street_and_into_the_river(small_city):
    surf = build_urban_surface(small_city, cell_size_m=5.0)
    rows, cols = np.nonzero(surf.carriageway)
    # a carriageway cell away from the river and the grid's edges
    far = [(r, c) for r, c in zip(rows, cols)
           if 20 < r < surf.shape[0] - 20 and 20 < c < surf.shape[1] - 20
           and not surf.river[r - 20:r + 20, c - 20:c + 20].any()]
    r0, c0 = far[len(far) // 2]
    src = PointSource("MH", int(r0), int(c0), TimeSeries([0.0, 900.0, 900.001], [0.3, 0.3, 0.0]))
    model = surf.surface2d(sources=[src])
    model.run_until(1800.0)
    wet = model.max_depth_m > 0.01
    assert wet.sum() > 20
    assert (wet & surf.carriageway).sum() / wet.sum() > 0.7        # the kerbs keep it on the carriageway
    assert not (model.depth_m[surf.outside] > 0).any()              # nothing inside buildings
    assert abs(model.mass_balance().error_rel) < 1e-9


def test_bad_cell_size_is_refused(small_city):
    with pytest.raises(TwinError, match="cell_size_m"):
        build_urban_surface(small_city, cell_size_m=0.0)
