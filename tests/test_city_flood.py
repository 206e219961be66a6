"""A city's flood event on the coupled sewer + street surface: `twin swmm run --city ... --surface 2d`."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from hydraulics.urban_surface import DEFAULT_CELL_M
from twin.cli import cli

KEYS = {"coupled_nodes", "mass_balance_error_rel", "to_surface_m3", "to_network_m3", "to_river_m3", "max_depth_m",
        "roads_closed_cars", "roads_closed_all", "rows", "cols", "cell_size_m", "crs", "bounds"}


@pytest.mark.slow
def test_small_city_storm_on_the_coupled_model(tmp_path):
    out = tmp_path / "ev"
    result = CliRunner().invoke(cli, ["swmm", "run", "--city", "small", "--surface", "2d", "--return-period", "100",
                                      "--duration", "1h", "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "to the river" in result.output and "roads closed" in result.output and "mass balance" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert KEYS <= set(summary)
    assert summary["coupled_nodes"] > 100 and summary["cell_size_m"] == DEFAULT_CELL_M == 10.0
    assert summary["to_river_m3"] > 1000                                               # the outfalls reached the river
    assert abs(summary["coupling_error_rel"]) < 1e-6                                  # the exchange loses nothing
    assert abs(summary["mass_balance_error_rel"]) < 0.01                              # SWMM's own continuity
    assert summary["bridges_closed"] == 0
    roads = pd.read_csv(out / "roads.csv", index_col=0)
    assert len(roads) > 100 and {"max_depth_m", "closed_to_cars_s", "is_risk_point"} <= set(roads.columns)
    assert (roads["max_depth_m"] >= 0.15).sum() == summary["roads_closed_cars"]
    for name in ("max_depth.tif", "max_depth.png", "risk_points.csv", "districts.csv", "exchange.csv"):
        assert (out / name).exists(), name


def test_city_with_a_dem_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["swmm", "run", "--city", "small", "--surface", "2d", "--dem", "x.tif",
                                      "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "no --dem" in result.output
    assert not (tmp_path / "x").exists()
