"""Inputs a planner can read (#13 item 8) and observed rain on the CLI (#13 item 1, ``--rain FILE``).

- the rain reader accepts the common time columns, says which it used, and a
  refusal names the file, the line, the column and the time columns it accepts;
- upload errors are plain words with the library's words kept apart (``detail``);
- ``twin swmm run --city ... --rain FILE`` and ``twin simulate ... --rain FILE``
  run the real engine on observed rain (CSV and the real NCDC records).
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import SHARED_DATA, make_tiny_city

from gisdata.city import read_city_gpkg, save_city
from gisdata.errors import CorruptFileError, TwinError, error_parts
from hydraulics.rainfall import (
    ACCEPTED_TIME_COLUMNS,
    RainFileError,
    read_ncdc,
    read_rain_csv,
    read_rain_file,
    read_rain_files,
)
from twin import flood_event as fe
from twin.app_support import load_uploaded_city, rain_time_note, upload_error_parts
from twin.cli import cli

NCDC = SHARED_DATA / "rain" / "ncdc_hourly"
INTENSITY = [0.0, 12.0, 36.0, 6.0, 0.0]  # mm/h at a 5 min step


def _ncdc(name: str) -> Path:
    path = NCDC / name
    if not path.exists():
        pytest.skip(f"shared data {path} not present")
    return path


# ----------------------------------------------------------------------------- time columns


def _times(column: str) -> list[str]:
    minutes = np.arange(len(INTENSITY)) * 5
    if column in ("time", "timestamp", "datetime"):
        return [str(pd.Timestamp("2024-07-01 08:00") + pd.Timedelta(minutes=int(m))) for m in minutes]
    per = {"elapsed_s": 1 / 60, "time_s": 1 / 60, "elapsed_min": 1, "time_min": 1, "elapsed_h": 60, "time_h": 60,
           "hours": 60, "Time_Min": 1}[column]
    return [f"{m / per:.6g}" for m in minutes]


@pytest.mark.parametrize("column, unit_words", [
    ("time", "date and time"), ("timestamp", "date and time"), ("datetime", "date and time"),
    ("elapsed_s", "seconds from the start"), ("time_s", "seconds from the start"),
    ("elapsed_min", "minutes from the start"), ("time_min", "minutes from the start"),
    ("Time_Min", "minutes from the start"),
    ("elapsed_h", "hours from the start"), ("time_h", "hours from the start"), ("hours", "hours from the start"),
])
def test_every_accepted_time_column_gives_the_same_series(tmp_path, column, unit_words):
    path = tmp_path / f"{column}.csv"
    path.write_text(f"{column},RG1_mm_h\n" + "".join(f"{t},{v}\n" for t, v in zip(_times(column), INTENSITY)))
    rain = read_rain_csv(path)
    assert rain.step_s == 300 and rain.gauges == ["RG1"]
    assert rain.intensity_mm_h["RG1"].tolist() == INTENSITY
    assert rain.max_depth_mm == pytest.approx(sum(INTENSITY) / 12)
    assert rain.is_timestamped == (unit_words == "date and time")
    assert rain.meta["time_column"] == column
    assert rain.meta["time_note"] == f"time from column '{column}' ({unit_words})"


def test_decimal_hours_and_a_time_column_anywhere(tmp_path):
    path = tmp_path / "h.csv"  # 5 min as 0.0833 h: rounded to whole seconds
    path.write_text("RG1_mm_h,hours\n0,0\n12,0.0833\n36,0.1667\n6,0.25\n0,0.3333\n")
    rain = read_rain_csv(path)
    assert rain.step_s == 300 and rain.intensity_mm_h["RG1"].tolist() == INTENSITY


def test_a_date_and_a_time_column_make_one_date_time_and_an_extra_time_column_is_named(tmp_path):
    path = tmp_path / "dt.csv"
    path.write_text("Date,Time,RG1_mm_h\n2024-07-01,08:00,12\n2024-07-01,08:05,36\n")
    rain = read_rain_csv(path)
    assert rain.intensity_mm_h.index[0] == pd.Timestamp("2024-07-01 08:00") and rain.step_s == 300
    assert rain.meta["time_note"] == "time from columns 'Date' and 'Time' (date and time)"
    both = tmp_path / "both.csv"
    both.write_text("datetime,elapsed_min,RG1_mm_h\n2024-07-01 08:00,0,12\n2024-07-01 08:05,5,36\n")
    rain = read_rain_csv(both)
    assert rain.gauges == ["RG1"] and rain.is_timestamped
    assert "'elapsed_min'" in rain.meta["time_note"] and "not used" in rain.meta["time_note"]


@pytest.mark.parametrize("body, line, words", [
    # a numeric first column whose name says no unit (the old refusal of time_min said nothing more)
    ("t,RG1_mm_h\n0,1\n5,2\n", 2, "column 't' holds numbers"),
    ("when,RG1_mm_h\nsoon,1\nlater,2\n", 2, "time 'soon' in column 'when' cannot be read as a date-time"),
    ("time_min,RG1_mm_h\n0,1\nfive,2\n", 3, "time 'five' in column 'time_min' is not a number of minutes"),
    ("RG1_mm_h\n1\n2\n", 1, "found only column 'RG1_mm_h'"),
])
def test_a_refused_time_column_names_file_line_column_and_the_accepted_columns(tmp_path, body, line, words):
    path = tmp_path / "gauge.csv"
    path.write_text(body)
    with pytest.raises(RainFileError) as info:
        read_rain_csv(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: ") and info.value.line == line
    assert words in message
    if "time_min" not in body:
        assert message.endswith(ACCEPTED_TIME_COLUMNS)
        for name in ("elapsed_s", "time_s", "elapsed_min", "time_min", "elapsed_h", "hours", "timestamp"):
            assert f"'{name}'" in message, name


def test_the_strict_checks_stay(tmp_path):
    for body, words in (("time_min,RG1_mm_h\n0,1\n5,nan\n", "'nan' is not a number"),
                        ("time_min,RG1_mm_h\n0,1\n5,inf\n", "'inf' is not a finite number"),
                        ("time_min,RG1_mm_h\n0,1\n-5,2\n", "negative"),
                        ("time_min,RG1_mm_h\n0,1\n1e300,2\n", "MAX_RAIN_SPAN_DAYS"),
                        ("elapsed_s,RG1_mm_h\n0,1\n1,2000\n", "MAX_RAIN_INTENSITY_MM_H")):
        path = tmp_path / "x.csv"
        path.write_text(body)
        with pytest.raises(RainFileError, match=words):
            read_rain_csv(path)


def test_rain_file_errors_survive_a_process_boundary(tmp_path):
    err = RainFileError(tmp_path / "x.csv", 3, "column 'RG1': 'a' is not a number", detail="ValueError: a")
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), str(back), back.line, back.message, back.detail) == (
        RainFileError, str(err), 3, err.message, "ValueError: a")


# ----------------------------------------------------------------------------- one reader, CSV or NCDC


def test_read_rain_file_tells_ncdc_from_csv_by_content(tmp_path):
    for name, fmt in (("ncdc_format_new.dat", "ncdc_online"), ("sta310301.dat", "ncdc_td3240")):
        copy = tmp_path / f"{name}.txt"  # the name says nothing
        shutil.copy(_ncdc(name), copy)
        rain = read_rain_file(copy)
        assert rain.meta["format"] == fmt
        assert rain.intensity_mm_h.equals(read_ncdc(_ncdc(name)).intensity_mm_h)
        assert "NCDC" in rain.meta["time_note"]


def test_the_upload_reads_ncdc_too_and_names_the_file_as_uploaded(tmp_path):
    rain = fe.read_rain_upload("gauge.dat", _ncdc("ncdc_format_new.dat").read_bytes())
    assert rain.gauges == ["134101"] and rain.source == "gauge.dat"
    assert rain_time_note(rain, "en").startswith("NCDC precipitation record")
    assert rain_time_note(rain, "zh").startswith("NCDC 降水记录")
    rain = fe.read_rain_upload("obs.csv", b"time_min,RG1\n0,0\n5,12\n10,6\n", units="mm_h")
    assert rain_time_note(rain, "en") == "Time from column 'time_min' (minutes from the start)."
    assert "分钟数" in rain_time_note(rain, "zh")
    with pytest.raises(RainFileError) as info:
        fe.read_rain_upload("obs.csv", b"minutes,RG1\n0,0\n5,12\n", units="mm_h")
    assert str(info.value).startswith("obs.csv:2: column 'minutes' holds numbers")
    assert "citytwin-rain-" not in str(info.value) and ACCEPTED_TIME_COLUMNS in str(info.value)


def test_several_files_put_gauges_side_by_side(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("time_min,RG1_mm_h\n0,6\n5,12\n")
    b.write_text("time_min,RG2_mm_h\n0,60\n10,30\n")  # a coarser step: both on the finer one
    rain = read_rain_files([a, b])
    assert rain.gauges == ["RG1", "RG2"] and rain.step_s == 300
    assert rain.depth_mm.to_dict() == pytest.approx({"RG1": 1.5, "RG2": 15.0})
    b.write_text("time_min,RG1_mm_h\n0,1\n5,1\n")
    with pytest.raises(RainFileError, match="gauge 'RG1' is also in a.csv"):
        read_rain_files([a, b])
    b.write_text("time,RG2_mm_h\n2024-07-01 08:00,1\n2024-07-01 08:05,1\n")
    with pytest.raises(RainFileError, match="have dates"):
        read_rain_files([a, b])


def test_a_window_of_the_real_ncdc_record():
    rain = fe.read_rain_inputs([_ncdc("ncdc_format_new.dat")], start=pd.Timestamp("2013-04-17 05:00"), hours=6)
    assert rain.n_steps == 6 and rain.intensity_mm_h.index[0] == pd.Timestamp("2013-04-17 05:00")
    whole = read_ncdc(_ncdc("ncdc_format_new.dat"))
    assert rain.max_depth_mm == pytest.approx(float(whole.intensity_mm_h.loc["2013-04-17 05:00":"2013-04-17 10:00"]
                                                    .sum().iloc[0]))
    with pytest.raises(TwinError, match=r"the record runs 4,310 h .*\(the wettest 24 h start at 2013-04-17T05:00\)"):
        fe.check_rain_event(whole)
    with pytest.raises(TwinError, match="no rain falls"):
        fe.read_rain_inputs([_ncdc("ncdc_format_new.dat")], start=pd.Timestamp("2013-01-01 02:00"), hours=3)


def test_gauges_are_matched_as_the_model_builder_matches_them(tmp_path):
    city = make_tiny_city()  # one gauge, RG1
    one = tmp_path / "one.csv"
    one.write_text("time_min,X_mm_h\n0,1\n5,2\n")
    assert fe.match_rain_gauges(city, read_rain_file(one)) == {"RG1": "X"}
    two = tmp_path / "two.csv"
    two.write_text("time_min,RG1_mm_h,RG2_mm_h\n0,1,2\n5,2,3\n")
    assert fe.match_rain_gauges(city, read_rain_file(two)) == {"RG1": "RG1"}
    two.write_text("time_min,A_mm_h,B_mm_h\n0,1,2\n5,2,3\n")
    with pytest.raises(TwinError, match=r"the city's rain gauges \['RG1'\] have no series"):
        fe.match_rain_gauges(city, read_rain_file(two))


# ----------------------------------------------------------------------------- upload errors in plain words


def test_a_non_geopackage_upload_is_plain_with_the_library_words_kept(tmp_path):
    with pytest.raises(CorruptFileError) as info:
        load_uploaded_city([("city.gpkg", b"this is not a GeoPackage")], "gpkg")
    plain, detail = upload_error_parts(info.value)
    assert plain == "city.gpkg: not a readable GeoPackage: the file could not be opened as one"
    assert "<DRIVER>" not in plain and "DataSourceError" not in plain
    assert "not recognized as being in a supported file format" in detail
    assert "citytwin-upload-" not in plain + detail  # the server's temporary folder is never shown
    assert info.value.detail == detail  # the same error type, with its detail, for any caller
    # the CLI's one line is the plain message too
    (tmp_path / "bad.gpkg").write_bytes(b"this is not a GeoPackage")
    r = CliRunner().invoke(cli, ["swmm", "run", "--city", str(tmp_path / "bad.gpkg"), "--no-progress"])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "<DRIVER>" not in r.output
    assert "not a readable GeoPackage: the file could not be opened as one" in r.output


def test_a_bad_dem_or_osm_upload_folds_the_library_words_too(tmp_path):
    gpkg = save_city(make_tiny_city(), tmp_path / "tiny.gpkg")
    with pytest.raises(TwinError) as info:
        load_uploaded_city([("city.gpkg", gpkg.read_bytes()), ("dem.tif", b"not a tiff")], "gpkg")
    plain, detail = upload_error_parts(info.value)
    assert plain == "dem.tif: not a readable GeoTIFF" and "supported file format" in detail
    with pytest.raises(TwinError) as info:
        load_uploaded_city([("x.osm.pbf", b"hello world")], "osm")
    plain, detail = upload_error_parts(info.value)
    assert plain.startswith("x.osm.pbf: not readable as OSM data; expected OSM XML") and "PBF error" in detail
    assert "PBF error" not in plain


def test_error_parts_of_an_error_without_a_library_cause():
    assert error_parts(TwinError("x.csv:3: 'a' is not a number")) == ("x.csv:3: 'a' is not a number", "")
    assert error_parts(CorruptFileError("m", detail="d")) == ("m", "d")


def test_the_workbench_shows_the_plain_message_and_folds_the_detail(tiny_gpkg_app):
    app = tiny_gpkg_app
    app.radio(key="city_source__en").set_value("gpkg").run()
    app.file_uploader(key="upload_gpkg").set_value(("bad.gpkg", b"this is not a GeoPackage",
                                                    "application/geopackage+sqlite3")).run()
    assert not app.exception
    assert [e.value for e in app.error] == ["bad.gpkg: not a readable GeoPackage: the file could not be opened as one"]
    from twin.i18n import t

    assert [x.label for x in app.expander] == [t("upload.error.detail", "en")]
    assert "supported file format" in app.expander[0].code[0].value


def test_the_flood_page_says_which_time_column_it_used(tiny_gpkg_app):
    from twin.i18n import t

    app = tiny_gpkg_app
    app.sidebar.radio(key="page__en").set_value("flood_event").run()
    app.radio(key="flood_rain__en").set_value("csv").run()
    app.file_uploader(key="flood_csv").set_value(("obs.csv", b"time_min,RG1_mm_h\n0,0\n5,12\n10,6\n", "text/csv")).run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    captions = [c.value for c in app.caption]
    assert t("flood.rain_time.elapsed", "en", column="'time_min'", unit=t("flood.rain_time.unit.min", "en")) in captions
    app.file_uploader(key="flood_csv").set_value(("obs.csv", b"t,RG1_mm_h\n0,0\n5,12\n", "text/csv")).run()
    assert not app.exception
    (message,) = [e.value for e in app.error]
    assert message.startswith("obs.csv:2: column 't' holds numbers") and "'time_min'" in message


@pytest.fixture
def tiny_gpkg_app(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    gpkg = save_city(make_tiny_city(), tmp_path / "tiny.gpkg")
    monkeypatch.setenv("CITYTWIN_APP_CITY", str(gpkg))
    monkeypatch.setenv("CITYTWIN_WORKSPACE", str(tmp_path))
    return AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=120).run()


# ----------------------------------------------------------------------------- --rain FILE on the CLI


def _write_storm(path: Path, column: str = "RG01_mm_h") -> Path:
    """A 40-minute observed-style record (5 min steps, 120 mm/h peak), elapsed minutes."""
    values = [10, 40, 90, 120, 80, 40, 20, 5]
    path.write_text(f"time_min,{column}\n" + "".join(f"{5 * k},{v}\n" for k, v in enumerate(values)))
    return path


def test_swmm_run_city_with_observed_rain_runs_coupled_and_names_the_rain(tmp_path):
    rain = _write_storm(tmp_path / "storm.csv")
    out = tmp_path / "ev"
    r = CliRunner().invoke(cli, ["swmm", "run", "--city", "small", "--rain", str(rain), "--no-progress",
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    lines = r.output.splitlines()
    assert lines[0] == "rain              storm.csv: 40 min"
    assert "rain gauges       RG01 <- RG01" in lines
    assert "rain depth        33.8 mm (largest gauge), peak 120.0 mm/h" in lines
    assert "rain time         time from column 'time_min' (minutes from the start)" in lines
    assert "mass balance" in r.output and "coupled nodes" in r.output
    summary = json.loads((out / "summary.json").read_text())
    assert abs(summary["mass_balance_error_rel"]) < 0.01


def test_swmm_run_city_with_a_window_of_the_real_ncdc_record(tmp_path):
    r = CliRunner().invoke(cli, ["swmm", "run", "--city", "small", "--rain", str(_ncdc("ncdc_format_new.dat")),
                                 "--rain-start", "2013-04-17T05:00", "--rain-hours", "3", "--no-progress",
                                 "--cell-size", "20"])
    assert r.exit_code == 0, r.output
    assert "rain              ncdc_format_new.dat: 2013-04-17 05:00 .. 2013-04-17 08:00" in r.output
    assert "RG01 <- 134101" in r.output and "mass balance" in r.output


@pytest.mark.parametrize("args, words", [
    (["--return-period", "50"], "--rain and --return-period cannot be combined"),
    (["--duration", "1h"], "--rain and --duration cannot be combined"),
    (["--storm", "chicago"], "--rain and --storm cannot be combined"),
])
def test_rain_and_a_design_storm_are_one_line_exit_2(tmp_path, args, words):
    rain = _write_storm(tmp_path / "storm.csv")
    for command in (["swmm", "run", "--city", "small"],
                    ["simulate", "--city", "small", "--out", str(tmp_path / "run")]):
        r = CliRunner().invoke(cli, [*command, "--rain", str(rain), *args, "--no-progress"])
        assert r.exit_code == 2, r.output
        assert r.output.count("\n") == 1 and words in r.output and "Traceback" not in r.output
    assert not (tmp_path / "run").exists()


def test_bad_rain_inputs_are_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("t,RG01_mm_h\n0,1\n5,2\n")
    two = tmp_path / "two.csv"
    two.write_text("time_min,A_mm_h,B_mm_h\n0,1,2\n5,2,3\n")
    cases = [
        (["--rain", str(bad)], "bad.csv:2: column 't' holds numbers"),
        (["--rain", str(tmp_path / "nope.csv")], "nope.csv: rain file not found"),
        (["--rain", str(two)], "the city's rain gauges ['RG01'] have no series"),
        (["--rain", str(_ncdc("ncdc_format_new.dat"))], "choose the event with --rain-start and --rain-hours"),
        (["--rain-hours", "3"], "used only with --rain FILE"),
        (["--rain", str(bad), "--rain-start", "soon"], "--rain-start 'soon': not understood"),
    ]
    for args, words in cases:
        r = CliRunner().invoke(cli, ["swmm", "run", "--city", "small", *args, "--no-progress"])
        assert r.exit_code == 2, (args, r.output)
        assert r.output.count("\n") == 1 and words in r.output, (args, r.output)
    r = CliRunner().invoke(cli, ["swmm", "run", str(tmp_path / "m.inp"), "--rain", str(bad)])
    assert r.exit_code == 2 and "--rain feeds the rain gauges of --city" in r.output


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return save_city(make_tiny_city(), tmp_path_factory.mktemp("city") / "tiny.gpkg")


def test_simulate_with_observed_rain_couples_swmm_and_records_the_rain(tiny, tmp_path):
    rain = tmp_path / "obs.csv"
    rain.write_text("timestamp,RG1_mm_h\n2024-07-01 08:00,20\n2024-07-01 08:10,80\n2024-07-01 08:20,120\n"
                    "2024-07-01 08:30,60\n2024-07-01 08:40,10\n")
    out = tmp_path / "observed"
    r = CliRunner().invoke(cli, ["simulate", "--city", str(tiny), "--rain", str(rain), "--start-at", "0.5",
                                 "--hours", "3", "--citizens", "100", "--vendors", "2", "--no-progress",
                                 "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "rain              obs.csv: 2024-07-01 08:00 .. 2024-07-01 08:50" in r.output
    assert "rain depth        48.3 mm (largest gauge), peak 120.0 mm/h" in r.output
    man = json.loads((out / "manifest.json").read_text())
    storm = man["params"]["storm"]
    assert storm["kind"] == "observed" and storm["start_s"] == 1800.0 and storm["depth_mm"] == pytest.approx(48.333)
    assert storm["files"][0]["file"] == str(rain) and len(storm["files"][0]["sha256"]) == 64
    assert man["metadata"]["hydraulics"]["flood_incidents"] >= 1
    kinds = pd.Series([json.loads(ln)["kind"] for ln in (out / "events.jsonl").read_text().splitlines()])
    assert (kinds == "flood_onset").sum() >= 1
    # the rain must end within the run
    r = CliRunner().invoke(cli, ["simulate", "--city", str(tiny), "--rain", str(rain), "--start-at", "2.5",
                                 "--hours", "3", "--no-progress", "--out", str(tmp_path / "late")])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "past the end of the run" in r.output
    assert not (tmp_path / "late").exists()


def test_read_city_gpkg_keeps_reading_good_files(tmp_path):
    gpkg = save_city(make_tiny_city(), tmp_path / "tiny.gpkg")
    assert read_city_gpkg(gpkg).name == "tiny"
