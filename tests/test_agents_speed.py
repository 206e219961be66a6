"""Speed target of the agent layer (marked slow: timing-dependent; deselect with ``-m "not slow"``)."""

from __future__ import annotations

import time

import pytest

from agents.gridcity import make_grid_city
from agents.runner import simulate_day


@pytest.mark.slow
def test_day_of_20000_citizens_is_2000x_faster_than_real_time():
    city = make_grid_city(31, 31, spacing_m=100.0)  # 3 x 3 km; hydraulics off
    t = time.perf_counter()
    res = simulate_day(city, hours=24, n_citizens=20_000, n_vendors=200, crews=60, seed=1)
    factor = 86_400.0 / (time.perf_counter() - t)
    assert res.metadata["agent_steps"] == 288 * (20_000 + 200 + 60)
    assert factor >= 2000.0, f"only {factor:.0f}x faster than real time"
