"""Issue #12, defect class 4: non-finite values, impossible dates and unwritable IDs never pass silently.

Also the tracebacks of class 5 that belong to these readers: an empty or binary 311 CSV.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from gisdata.errors import ColumnValueError, TwinError

sys.path.insert(0, str(Path(__file__).parent))
from conftest import make_tiny_city  # noqa: E402

NYC = Path(__file__).resolve().parents[2] / "shared/data/reports/nyc311_sample_2024-05-27/311_Service_Requests.csv"
INF, NAN = float("inf"), float("nan")


def _cli(*args):
    from twin.cli import cli

    res = CliRunner().invoke(cli, [str(a) for a in args])
    return res.exit_code, res.output.strip()


# ----------------------------------------------------------------------------- GeoPackage elevations


@pytest.mark.parametrize("column, value", [("invert_elev_m", NAN), ("invert_elev_m", INF), ("rim_elev_m", -INF),
                                           ("max_depth_m", INF)])
def test_non_finite_elevations_in_a_geopackage_are_refused(tmp_path, column, value):
    import pyogrio

    from gisdata.city import read_city_gpkg, save_city

    gpkg = save_city(make_tiny_city(), tmp_path / "city.gpkg")
    nodes = pyogrio.read_dataframe(gpkg, layer="nodes")
    nodes.loc[nodes["node_id"] == "J3", column] = value
    pyogrio.write_dataframe(nodes, gpkg, layer="nodes")
    with pytest.raises(ColumnValueError) as info:
        read_city_gpkg(gpkg)
    msg = str(info.value)
    assert "\n" not in msg and f"column '{column}'" in msg and "'J3'" in msg and "non-finite" in msg
    # the CLI gives the same one line and writes no model
    code, out = _cli("swmm", "export", "--city", gpkg, "--out", tmp_path / "m.inp")
    assert code == 2 and out.count("\n") == 0 and column in out
    assert not (tmp_path / "m.inp").exists()


@pytest.mark.parametrize("layer, column, value, expect", [
    ("nodes", "invert_elev_m", 1e6, "out of range"),
    ("conduits", "roughness_n", 0.0, "expected 0 < roughness_n <= 1"),
    ("conduits", "roughness_n", -0.013, "out of range"),
    ("conduits", "diameter_m", INF, "non-finite"),
    ("subcatchments", "imperv_pct", 150.0, "expected 0 <= imperv_pct <= 100"),
    ("subcatchments", "area_m2", NAN, "non-finite"),
    ("depots", "n_crews", 100_000_000, "expected 0 <= n_crews <= 10000"),
])
def test_physical_values_of_a_city_are_range_checked(layer, column, value, expect):
    city = make_tiny_city()
    gdf = getattr(city, layer).copy()
    gdf.iloc[1, gdf.columns.get_loc(column)] = value
    with pytest.raises(ColumnValueError, match=expect):
        city.replace(**{layer: gdf})


# ----------------------------------------------------------------------------- inf parameters


def test_inf_coupling_step_merge_radius_and_return_period_are_refused(tmp_path):
    from agents.dispatch import DispatchConfig
    from agents.errors import AgentConfigError
    from hydraulics.rainfall import RainDataError, RainSeries, chicago_storm
    from hydraulics.run import RunOptions
    from scenarios.schema import ScenarioError, validate_scenario
    from twin.coupler import CouplerError, CouplingOptions

    for v in (INF, NAN):
        with pytest.raises(TwinError, match="coupling_step_s"):
            RunOptions(coupling_step_s=v)
        with pytest.raises(CouplerError, match="coupling_step_s"):
            CouplingOptions(coupling_step_s=v)
        with pytest.raises(AgentConfigError, match="merge_radius_m"):
            DispatchConfig(merge_radius_m=v)
        with pytest.raises(TwinError, match="return_period_yr"):
            chicago_storm("beijing", v, 60)
    with pytest.raises(RainDataError, match="return_period_yr"):
        RainSeries(pd.DataFrame({"RG1": [1.0]}, index=[0]), step_s=300, return_period_yr=INF)
    for section, key in (("hydraulics", "coupling_step_s"), ("dispatch", "merge_radius_m"),
                         ("rain", "return_period_yr"), ("period", "tick_s")):
        data = {"scenario": {"name": "x"}, section: {key: INF}}
        if section == "rain":
            data["rain"]["kind"] = "design"
        with pytest.raises(ScenarioError, match=rf"{section}\.{key} = inf: .*finite"):
            validate_scenario(data)
    # written as TOML, with the observed-rain window of the issue
    rain = tmp_path / "r.csv"
    rain.write_text("elapsed_s,RG1_mm_h\n0,1\n300,2\n")
    p = tmp_path / "s.toml"
    p.write_text(f'[scenario]\nname = "x"\n[rain]\nkind = "observed"\nfile = "{rain}"\nwindow_hours = inf\n')
    from scenarios.schema import load_scenario

    with pytest.raises(ScenarioError, match="rain.window_hours = inf") as info:
        load_scenario(p)
    assert "\n" not in str(info.value)


def test_simulate_cli_refuses_inf(tmp_path):
    code, out = _cli("simulate", "--hours", "inf", "--out", tmp_path / "r", "--no-progress")
    assert code == 2 and "--hours=inf is not a finite number" in out and out.count("\n") == 0
    code, out = _cli("simulate", "--storm", "chicago", "--return-period", "inf", "--out", tmp_path / "r", "--no-progress")
    assert code == 2 and "--return-period=inf" in out


# ----------------------------------------------------------------------------- 311 dates and files


def _nyc_with(tmp_path: Path, **changes: str) -> Path:
    """The real 311 sample with some records' created_date replaced (unique_key -> text)."""
    df = pd.read_csv(NYC, dtype=str, keep_default_na=False)
    for key, value in changes.items():
        df.loc[df["unique_key"] == key, "created_date"] = value
    p = tmp_path / "311.csv"
    df.to_csv(p, index=False)
    return p


def test_311_dates_out_of_range_are_dropped_and_counted(tmp_path):
    from agents import read_service_requests

    base = read_service_requests(NYC)
    keys = base.incidents.index[:4].tolist()
    p = _nyc_with(tmp_path, **{keys[0]: "0", keys[1]: "-5", keys[2]: "0001-01-01", keys[3]: "9999-12-31"})
    imp = read_service_requests(p)
    assert imp.stats["time_out_of_range"] >= 3  # '0' may already be unreadable to the parser
    assert imp.stats["bad_time"] == base.stats["bad_time"] + 4
    assert not imp.incidents.loc[keys, "has_time"].any()
    # nothing else moved: the origin is still the sample's day, not year -1
    assert imp.origin == base.origin and imp.origin.year == 2024
    assert imp.stats["time_span_s"] <= base.stats["time_span_s"]
    others = imp.incidents.index.difference(keys)
    assert np.allclose(imp.incidents.loc[others, "time_s"].dropna(), base.incidents.loc[others, "time_s"].dropna())
    assert imp.stats["replayable"] == base.stats["replayable"] - sum(base.incidents.loc[keys, "has_location"])


def test_311_cli_reports_out_of_range_dates(tmp_path):
    from agents import read_service_requests

    key = read_service_requests(NYC).incidents.index[0]
    p = _nyc_with(tmp_path, **{key: "-5"})
    code, out = _cli("reports", "import", p, "--out", tmp_path / "r.parquet")
    assert code == 0, out
    assert "outside 1980-01-01 .. 2100-01-01" in out


@pytest.mark.parametrize("content, expect", [
    (b"", "is empty"),
    (b"\x00\x01\x02\xff" * 100, "binary"),
    (bytes(range(256)) * 20, "binary"),
    (b"\xff\xfe\xfa\xfb unique_key,created_date\n", "not a readable CSV"),
])
def test_empty_or_binary_311_csv_is_one_line(tmp_path, content, expect):
    from agents import read_service_requests
    from agents.errors import ImportFormatError

    p = tmp_path / "bad.csv"
    p.write_bytes(content)
    with pytest.raises((ImportFormatError, TwinError)) as info:
        read_service_requests(p)
    msg = str(info.value)
    assert "\n" not in msg and str(p) in msg
    if expect != "not a readable CSV":  # an undecodable header may also read as missing columns
        assert expect in msg
    code, out = _cli("reports", "import", p, "--out", tmp_path / "r.parquet")
    assert code == 2 and out.count("\n") == 0 and out.startswith("error:")
    assert not (tmp_path / "r.parquet").exists()


def test_mixed_time_zones_in_311_do_not_crash(tmp_path):
    from agents import read_service_requests

    keys = read_service_requests(NYC).incidents.index[:2].tolist()
    p = _nyc_with(tmp_path, **{keys[0]: "2024-05-27T10:00:00+05:00"})
    imp = read_service_requests(p)
    assert imp.incidents.loc[keys[0], "time"] == pd.Timestamp("2024-05-27 05:00")


# ----------------------------------------------------------------------------- IDs with spaces


@pytest.mark.parametrize("layer, old, new", [
    ("nodes", "J3", "J 3"), ("conduits", "C2", "C\t2"), ("subcatchments", "S1", "S;1"), ("nodes", "J4", '"J4'),
    ("nodes", "J5", "[J5]"),
])
def test_ids_the_engine_would_split_are_refused_by_name(layer, old, new):
    from hydraulics.build import ModelBuildError, build_swmm

    city = make_tiny_city()
    gdf = getattr(city, layer).rename(index={old: new})
    changes = {layer: gdf}
    if layer == "nodes":  # keep references consistent so the ID itself is what fails
        changes["conduits"] = city.conduits.replace({"from_node": {old: new}, "to_node": {old: new}})
        changes["subcatchments"] = city.subcatchments.replace({"outlet_node": {old: new}})
    bad = city.replace(**changes)
    with pytest.raises(ModelBuildError) as info:
        build_swmm(bad)
    msg = str(info.value)
    assert repr(new) in msg and layer in msg and "\n" not in msg
    assert math.isfinite(len(build_swmm(city)))  # the clean city still builds


def test_infinite_dem_cells_are_refused_but_nan_stays_no_data():
    from affine import Affine

    from gisdata.raster import Raster

    values = np.zeros((3, 4))
    values[1, 2] = np.nan
    assert np.isnan(Raster(values, Affine(5, 0, 0, 0, -5, 15), "EPSG:32650").values[1, 2])
    values[2, 3] = INF
    with pytest.raises(ColumnValueError, match="row 2, col 3"):
        Raster(values, Affine(5, 0, 0, 0, -5, 15), "EPSG:32650")
    with pytest.raises(ColumnValueError, match="transform"):
        Raster(np.zeros((2, 2)), Affine(INF, 0, 0, 0, -5, 15), "EPSG:32650")


@pytest.mark.parametrize("value, expect", [
    ("inf", "'inf' is not a finite number"), ("1e400", "'1e400' is not a finite number"),
    ("0x1p2000", "'0x1p2000' is not a finite number"), ("NaN", "'NaN' is not a finite number"),
    ("1e30", "invert elevation 1e30 ft is out of range"),
])
def test_non_finite_numbers_in_an_inp_are_refused_before_the_engine(tmp_path, value, expect):
    """An infinite junction elevation makes SWMM 5.2 crash (segmentation fault); 1e30 'completes' routing nothing."""
    import subprocess

    src = Path(__file__).resolve().parents[2] / "shared/data/swmm/epa_examples/Example1.inp"
    lines = src.read_text().splitlines()
    k = next(i for i, ln in enumerate(lines) if ln.split()[:2] == ["9", "1000"])
    lines[k] = lines[k].replace("1000", value, 1)
    inp = tmp_path / "m.inp"
    inp.write_text("\n".join(lines) + "\n")
    # in a child process: should the check ever regress, the engine's crash must not take pytest with it
    res = subprocess.run([sys.executable, "-c", "import sys; from twin.cli import main; main(sys.argv[1:])",
                          "swmm", "run", str(inp), "--no-progress"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, (res.returncode, res.stderr[-500:])
    err = res.stderr.strip()
    assert err.count("\n") == 0 and f"{inp}:{k + 1}" in err and expect in err
