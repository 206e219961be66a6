"""`twin flood2d`: the example runs end to end; every bad input is one line, exit 2, and no output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner

from gisdata.raster import Raster, read_geotiff, write_geotiff
from twin.cli import cli

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flood2d"


def _twin(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.output


def test_example_runs_and_balances(tmp_path):
    out = tmp_path / "f2d"
    code, output = _twin("flood2d", "--dem", EXAMPLE / "dem.tif", "--inflow", EXAMPLE / "inflows.csv",
                         "--rain", EXAMPLE / "rain.csv", "--gauges", EXAMPLE / "gauges.csv", "--boundary", "open",
                         "--hours", 0.5, "--report-step", "60s", "--quiet", "--out", out)
    assert code == 0, output
    assert "mass balance" in output and "relative" in output
    summary = json.loads((out / "summary.json").read_text())
    assert abs(summary["mass_balance_error_rel"]) <= 1e-6
    assert summary["inflow_m3"] > 100 and summary["rain_m3"] > 100
    balance = pd.read_csv(out / "mass_balance.csv")
    assert list(balance.columns[:2]) == ["time_s", "stored_m3"]
    assert {"rain_m3", "inflow_m3", "boundary_out_m3", "error_m3", "error_rel"} <= set(balance.columns)
    assert balance["time_s"].iloc[-1] == 1800 and len(balance) == 31
    assert (balance["error_rel"].abs() <= 1e-6).all()
    gauges = pd.read_csv(out / "gauges.csv")
    assert list(gauges.columns) == ["time_s", "name", "depth_m", "wse_m"]
    assert set(gauges["name"]) == {"avenue_west", "underpass", "street_north"}
    assert gauges.loc[gauges.name == "avenue_west", "depth_m"].max() > 0.01   # the manhole beside it surcharged
    dem = read_geotiff(EXAMPLE / "dem.tif")
    for name in ("max_depth.tif", "final_depth.tif"):
        with rasterio.open(out / name) as src:
            assert src.crs.to_string() == dem.crs
            assert src.transform.almost_equals(dem.transform)
    max_depth = read_geotiff(out / "max_depth.tif").values
    assert max_depth.max() == pytest.approx(summary["max_depth_m"])
    assert not list(tmp_path.glob(".f2d.*"))                               # no staging folder left behind
    from PIL import Image
    with Image.open(out / "max_depth.png") as png:                        # the quicklook map
        assert png.size[0] > 600 and len(set(png.convert("RGB").getdata())) > 100


def _tiny_dem(tmp_path, values=None, crs="EPSG:32650", name="dem.tif", nodata=None) -> Path:
    z = np.full((10, 12), 5.0) if values is None else values
    path = tmp_path / name
    write_geotiff(Raster(z, Affine(2.0, 0, 1000.0, 0, -2.0, 2000.0), crs, nodata=nodata), path)
    return path


def _inflow_csv(tmp_path, text="name,x,y,time_s,q_m3s\nA,1005,1995,0,0.1\nA,1005,1995,600,0.1\n") -> Path:
    path = tmp_path / "inflows.csv"
    path.write_text(text)
    return path


def _bad(tmp_path, *args):
    out = tmp_path / "out"
    code, output = _twin("flood2d", "--hours", 0.1, "--quiet", "--out", out, *args)
    assert code == 2, output
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    assert "Traceback" not in output
    assert not out.exists()                                               # nothing that looks complete
    return lines[0]


def test_nodata_hole_inside_is_refused(tmp_path):
    z = np.full((10, 12), 5.0)
    z[4, 5] = -9999.0
    line = _bad(tmp_path, "--dem", _tiny_dem(tmp_path, z, nodata=-9999.0))
    assert "dem.tif" in line and "1 nodata cell(s) inside the domain" in line and "row 4, col 5" in line


def test_nodata_at_the_edge_is_outside_the_domain(tmp_path):
    z = np.full((10, 12), 5.0)
    z[:, :3] = -9999.0                                                     # a clipped DEM
    out = tmp_path / "ok"
    code, output = _twin("flood2d", "--dem", _tiny_dem(tmp_path, z, nodata=-9999.0), "--inflow",
                         _inflow_csv(tmp_path, "name,x,y,time_s,q_m3s\nA,1011,1991,0,0.01\n"), "--hours", 0.05,
                         "--quiet", "--out", out)
    assert code == 0, output
    depth = read_geotiff(out / "max_depth.tif")
    assert (depth.values[:, :3] == -9999.0).all() and depth.values[:, 3:].max() > 0


def test_geographic_dem_is_refused(tmp_path):
    line = _bad(tmp_path, "--dem", _tiny_dem(tmp_path, crs="EPSG:4326"))
    assert "geographic CRS" in line and "dem.tif" in line


@pytest.mark.parametrize("value", ["0", "-0.01", "nan"])
def test_manning_not_positive_is_refused(tmp_path, value):
    line = _bad(tmp_path, "--dem", _tiny_dem(tmp_path), "--manning", value)
    assert "--manning" in line and value in line.lower().replace("nan", "nan")


def test_manning_raster_with_zero_is_refused(tmp_path):
    n = np.full((10, 12), 0.03)
    n[2, 3] = 0.0
    line = _bad(tmp_path, "--dem", _tiny_dem(tmp_path), "--manning-raster", _tiny_dem(tmp_path, n, name="n.tif"))
    assert "n.tif" in line and "row 2, col 3" in line


def test_inflow_outside_grid_is_refused(tmp_path):
    csv = _inflow_csv(tmp_path, "name,x,y,time_s,q_m3s\nFAR,5000,1995,0,0.1\n")
    line = _bad(tmp_path, "--dem", _tiny_dem(tmp_path), "--inflow", csv)
    assert "inflows.csv" in line and "'FAR'" in line and "x=5000" in line and "outside the DEM extent" in line


def test_gauge_outside_grid_is_refused(tmp_path):
    gauges = tmp_path / "gauges.csv"
    gauges.write_text("name,x,y\nG1,1001,1999\nG2,1001,1500\n")
    line = _bad(tmp_path, "--dem", _tiny_dem(tmp_path), "--gauges", gauges)
    assert "gauges.csv" in line and "'G2'" in line and "y=1500" in line


def test_cfl_above_one_is_refused(tmp_path):
    line = _bad(tmp_path, "--dem", _tiny_dem(tmp_path), "--cfl", "1.2")
    assert "--cfl=1.2" in line and "<= 1" in line


@pytest.mark.parametrize("text, words", [
    ("name,x,y,q_m3s\nA,1005,1995,0.1\n", ["lacks column", "time_s"]),
    ("name,x,y,time_s,q_m3s\nA,1005,1995,0,lots\n", ["line 2", "q_m3s", "'lots'"]),
    ("name,x,y,time_s,q_m3s\nA,1005,1995,0,0.1\nA,1005,1995,0,0.2\n", ["time_s must increase"]),
])
def test_bad_inflow_csv_is_refused(tmp_path, text, words):
    line = _bad(tmp_path, "--dem", _tiny_dem(tmp_path), "--inflow", _inflow_csv(tmp_path, text))
    assert "inflows.csv" in line
    for word in words:
        assert word in line


def test_unstable_run_stops_and_writes_nothing(tmp_path):
    csv = _inflow_csv(tmp_path, "name,x,y,time_s,q_m3s\nHOSE,1005,1995,0,5000\n")
    line = _bad(tmp_path, "--dem", _tiny_dem(tmp_path), "--inflow", csv)
    assert "unstable at t=" in line and "row" in line and "col" in line
    assert not list(tmp_path.glob(".out.*"))


def test_non_empty_out_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, output = _twin("flood2d", "--dem", _tiny_dem(tmp_path), "--hours", 0.01, "--quiet", "--out", out)
    assert code == 2 and "not empty" in output
    assert (out / "keep.txt").read_text() == "mine"


def test_a_row_wider_than_the_header_is_refused(tmp_path):
    """pandas would make thousands of extra fields an index (minutes); the reader refuses the row instead."""
    csv = _inflow_csv(tmp_path, "name,x,y,time_s,q_m3s\n" + ",".join(["1"] * 5000) + "\nA,1005,1995,0,0.1\n")
    line = _bad(tmp_path, "--dem", _tiny_dem(tmp_path), "--inflow", csv)
    assert "more fields than its header" in line and "inflows.csv" in line
