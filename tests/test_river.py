"""The river reach: width and slope from its cells, levels from base flow plus upstream outfalls."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from gisdata.city import load_city
from gisdata.terrain import RIVER_WIDTH_M
from hydraulics.river import RiverError, reach_from_cells
from hydraulics.urban_surface import build_urban_surface


def test_reach_of_a_straight_channel():
    z = np.full((20, 100), 10.0)
    river = np.zeros(z.shape, bool)
    river[8:12, :] = True                                            # 4 cells of 5 m: 20 m wide, 500 m long
    z[river] = (8.0 - 0.002 * 5.0 * np.arange(100))[None, :].repeat(4, axis=0).ravel()  # falls 0.2 % eastwards
    reach = reach_from_cells(river, z, Affine(5.0, 0, 0, 0, -5.0, 100.0))
    assert reach.width_m == pytest.approx(20.0, rel=0.02)
    assert reach.slope == pytest.approx(0.002, rel=0.01)
    assert reach.axis[0] == pytest.approx(1.0)                       # downstream is east, where the bed falls
    # Manning, wide channel: Q = W h^(5/3) sqrt(S) / n
    h = reach.normal_depth_m(10.0)
    assert 20.0 * h ** (5 / 3) * np.sqrt(0.002) / reach.manning == pytest.approx(10.0, rel=1e-9)
    x_out = 250.0                                                    # an outfall half way
    levels = reach.levels_m(reach.chainage_of([x_out], [50.0]), [20.0], base_flow_cms=5.0)
    x = reach.origin[0] + reach.chainage_m * reach.axis[0]
    up, down = x < x_out - 1, x > x_out + 1
    assert np.allclose(levels[up] - reach.bed_m[up], reach.normal_depth_m(5.0))
    assert np.allclose(levels[down] - reach.bed_m[down], reach.normal_depth_m(25.0))


def test_reach_of_the_small_city():
    city = load_city("small")
    surf = build_urban_surface(city, cell_size_m=5.0)
    reach = reach_from_cells(surf.river, surf.ground.values, surf.ground.transform)
    assert reach.width_m == pytest.approx(RIVER_WIDTH_M, rel=0.25)
    assert reach.length_m > 0.8 * (surf.ground.bounds[2] - surf.ground.bounds[0])
    levels = reach.levels_m([], [])
    assert (levels > reach.bed_m).all()


def test_no_river_is_refused():
    with pytest.raises(RiverError, match="0 cell"):
        reach_from_cells(np.zeros((4, 4), bool), np.zeros((4, 4)), Affine(1, 0, 0, 0, -1, 4))


def test_level_stays_below_the_bank():
    z = np.full((20, 100), 10.0)
    river = np.zeros(z.shape, bool)
    river[8:12, :] = True
    z[river] = 8.0
    reach = reach_from_cells(river, z, Affine(5.0, 0, 0, 0, -5.0, 100.0))
    assert np.allclose(reach.bank_m, 10.0)
    huge = reach.levels_m([0.0], [1e4])
    assert np.allclose(huge, 10.0 - 0.05)                             # a flood from upstream is out of scope
