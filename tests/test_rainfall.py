"""Rainfall: design storms against their definitions, readers against independent parses,
volume-conserving resampling, SWMM time-series lines and bad-input errors."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pandas as pd
import pytest

from gisdata.errors import CorruptFileError, EmptyDataError, InputFileNotFoundError, TwinError, UnknownPresetError
from hydraulics.rainfall import (
    IDF_PRESETS,
    MM_PER_INCH,
    NRCS_TYPES,
    ChineseIDF,
    RainDataError,
    RainFileError,
    RainSeries,
    Storm,
    block_storm,
    chicago_storm,
    combine_gauges,
    design_storm_for_city,
    idf_table_storm,
    nrcs_curve,
    nrcs_storm,
    read_design_storm_curves,
    read_idf_table,
    read_ncdc,
    read_rain_csv,
)


@pytest.fixture
def rain_dir(shared_data):
    return shared_data / "rain"


# ----------------------------------------------------------------------------- Chicago


@pytest.mark.parametrize("preset", sorted(IDF_PRESETS))
@pytest.mark.parametrize("r", [0.0, 0.3, 0.4, 0.5, 1.0])
def test_chicago_total_depth_equals_idf_depth(preset, r):
    idf = IDF_PRESETS[preset]
    storm = chicago_storm(idf, 20, 120, r=r, step_min=5)
    assert storm.max_depth_mm == pytest.approx(idf.depth_mm(120, 20), rel=1e-12)
    assert storm.duration_s == 7200 and storm.step_s == 300 and storm.n_steps == 24
    assert storm.return_period_yr == 20.0


@pytest.mark.parametrize("r, step_min, windows", [
    (0.4, 1, range(5, 121, 5)),   # r*T and (1-r)*T are whole minutes when T is a multiple of 5
    (0.5, 5, range(10, 121, 10)),
])
def test_chicago_depth_over_windows_around_peak_matches_idf(r, step_min, windows):
    idf = IDF_PRESETS["shanghai"]
    storm = chicago_storm(idf, 5, 120, r=r, step_min=step_min)
    tp_s = r * 120 * 60
    for T in windows:
        got = storm.depth_between_mm(tp_s - r * T * 60, tp_s + (1 - r) * T * 60)["RG1"]
        assert got == pytest.approx(idf.depth_mm(T, 5), rel=1e-9), T


@pytest.mark.parametrize("r, expected_step", [(0.4, 9), (0.0, 0), (1.0, 23), (0.5, 11)])
def test_chicago_peak_is_in_the_step_holding_r_times_duration(r, expected_step):
    storm = chicago_storm("beijing", 20, 120, r=r, step_min=5)
    values = storm.intensity_mm_h["RG1"].to_numpy()
    k = int(np.argmax(values))
    assert k == expected_step or (r == 0.5 and k in (11, 12))
    # intensity rises to the peak and falls after it
    assert np.all(np.diff(values[: k + 1]) >= 0) and np.all(np.diff(values[k:]) <= 0)


def test_chicago_accepts_user_idf_parameters():
    mine = ChineseIDF("mycity", A=1500.0, C=0.7, b=10.0, n=0.7)
    storm = chicago_storm(mine, 10, 60, step_min=1)
    assert storm.max_depth_mm == pytest.approx(mine.depth_mm(60, 10), rel=1e-12)
    assert storm.params["A"] == 1500.0 and storm.method == "chicago"
    assert isinstance(storm, Storm) and isinstance(storm, RainSeries)
    as_numbers = chicago_storm({"name": "mycity", "A": 1500, "C": 0.7, "b": 10, "n": 0.7}, 10, 60, step_min=1)
    assert np.array_equal(as_numbers.intensity_mm_h.to_numpy(), storm.intensity_mm_h.to_numpy())
    with pytest.raises(RainDataError, match=r"missing \['n'\]"):
        chicago_storm({"A": 1500, "C": 0.7, "b": 10}, 10, 60)


def test_chicago_bad_inputs():
    with pytest.raises(RainDataError, match="whole number of steps"):
        chicago_storm("beijing", 20, 62, step_min=5)
    with pytest.raises(RainDataError, match="r=1.5"):
        chicago_storm("beijing", 20, 60, r=1.5)
    with pytest.raises(UnknownPresetError, match="atlantis"):
        chicago_storm("atlantis", 20, 60)
    with pytest.raises(ValueError, match="return_period_yr"):
        chicago_storm("beijing", 0, 60)
    with pytest.raises(ValueError, match="A > 0"):
        ChineseIDF("bad", A=-1, C=0.5, b=5, n=0.7)


# ----------------------------------------------------------------------------- NRCS, IDF tables, block


@pytest.mark.parametrize("storm_type", NRCS_TYPES)
@pytest.mark.parametrize("step_min", [6, 5, 15, 60])
def test_nrcs_total_depth(storm_type, step_min):
    storm = nrcs_storm(120.0, storm_type, step_min=step_min)
    assert storm.max_depth_mm == pytest.approx(120.0, rel=1e-12)
    assert storm.duration_s == 24 * 3600


def test_nrcs_tables_are_the_published_ones(rain_dir):
    # Independent parse of the source CSV (percent) and TR-55 spot values.
    with open(rain_dir / "design_storms_9cities" / "City_design_storms_v2.csv") as fh:
        rows = list(csv.DictReader(fh))
    for storm_type, column in {"I": "Los_Angeles", "IA": "Seattle", "II": "Atlanta", "III": "New_Orleans"}.items():
        expected = np.array([float(r[column]) / 100 for r in rows])
        assert np.allclose(nrcs_curve(storm_type).to_numpy(), expected, atol=1e-12)
    assert nrcs_curve("II").loc[12.0] == pytest.approx(0.663)
    assert nrcs_curve("III").loc[12.0] == pytest.approx(0.500)
    # type II peaks in the hour before noon
    peak_s = nrcs_storm(100.0, "II").peak_time["RG1"]
    assert 11 * 3600 <= peak_s < 12 * 3600


def test_idf_table_storm_uses_table_depth_and_log_interpolation(rain_dir):
    table = read_idf_table(rain_dir / "design_storms_9cities" / "Atlanta_IDF.csv")
    assert table.depth_mm.loc[24.0, 100.0] == pytest.approx(7.75 * MM_PER_INCH)
    storm = idf_table_storm(table, 100, curve="II")
    assert storm.max_depth_mm == pytest.approx(7.75 * MM_PER_INCH, rel=1e-12)
    # 3 yr lies between the 2 and 5 yr columns, linear in log(P)
    w = np.log(3 / 2) / np.log(5 / 2)
    expected = ((1 - w) * 3.75 + w * 4.5) * MM_PER_INCH
    assert idf_table_storm(table, 3).max_depth_mm == pytest.approx(expected, rel=1e-12)
    with pytest.raises(RainDataError, match="outside"):
        idf_table_storm(table, 5000)
    with pytest.raises(RainDataError, match="no row for duration"):
        table.depth_for(5.0, 10)


def test_design_storm_for_city_matches_its_curve(rain_dir):
    folder = rain_dir / "design_storms_9cities"
    storm = design_storm_for_city(folder, "New_Orleans", 10)
    assert storm.max_depth_mm == pytest.approx(8.13 * MM_PER_INCH, rel=1e-12)
    curves = read_design_storm_curves(folder / "City_design_storms_v2.csv")
    cum = storm.cumulative_depth_mm()["RG1"].to_numpy() / storm.max_depth_mm
    assert np.allclose(cum, curves["New_Orleans"].to_numpy(), atol=1e-12)


def test_block_storm():
    storm = block_storm(40.0, 30, step_min=5, lead_min=10, tail_min=15)
    assert storm.n_steps == 11
    assert storm.max_depth_mm == pytest.approx(20.0)
    assert storm.intensity_mm_h["RG1"].tolist() == [0, 0] + [40.0] * 6 + [0, 0, 0]
    with pytest.raises(RainDataError):
        block_storm(-1.0, 30)


# ----------------------------------------------------------------------------- NCDC readers


def _independent_online_total_in(path) -> tuple[float, int]:
    total, n = 0.0, 0
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts and parts[0].startswith("COOP:"):
            total += float(parts[3])
            n += 1
    return total, n


def test_read_ncdc_online_format(rain_dir):
    path = rain_dir / "ncdc_hourly" / "ncdc_format_new.dat"
    rain = read_ncdc(path)
    total_in, n = _independent_online_total_in(path)
    assert n == 176 and total_in == pytest.approx(27.8)
    assert rain.gauges == ["134101"]
    assert rain.step_s == 3600 and rain.is_timestamped
    assert rain.depth_mm["134101"] == pytest.approx(total_in * MM_PER_INCH, rel=1e-12)
    idx = rain.intensity_mm_h.index
    # values are for the hour *ending* at the time given: 01:00 -> interval starting 00:00
    assert idx[0] == pd.Timestamp("2013-01-01 00:00") and idx[-1] == pd.Timestamp("2013-06-29 13:00")
    assert rain.intensity_mm_h.loc[pd.Timestamp("2013-06-26 02:00"), "134101"] == pytest.approx(0.70 * MM_PER_INCH)
    # 00:00 ends the last hour of the previous day
    assert rain.intensity_mm_h.loc[pd.Timestamp("2013-01-29 23:00"), "134101"] == pytest.approx(0.10 * MM_PER_INCH)
    assert rain.meta["missing_steps"] == "0"


def test_read_ncdc_td3240_format(rain_dir):
    path = rain_dir / "ncdc_hourly" / "sta310301.dat"
    rain = read_ncdc(path)
    # Independent check: the sum of the daily-total groups ('2500 VVVVV'), hundredths of an inch.
    daily_total = 0
    for line in path.read_text().splitlines():
        tokens = line.split()
        if tokens and tokens[0] == "310301":
            daily_total += int(tokens[tokens.index("2500") + 1])
    assert daily_total == 6834
    assert rain.gauges == ["310301"] and rain.step_s == 3600
    assert rain.depth_mm["310301"] == pytest.approx(daily_total / 100 * MM_PER_INCH, rel=1e-12)
    # 1998-01-07, hour ending 04:00 holds 0.17 in
    assert rain.intensity_mm_h.loc[pd.Timestamp("1998-01-07 03:00"), "310301"] == pytest.approx(0.17 * MM_PER_INCH)
    assert rain.intensity_mm_h.index[0] == pd.Timestamp("1998-01-01 00:00")
    assert rain.intensity_mm_h.index[-1] == pd.Timestamp("2000-01-31 23:00")


TD_HEAD = "COOPID CD ELEM UN YEAR MO DA TIME HOUR01 F F\n------ -- ---- -- ---- -- -- ---- ------ - -\n"


def _td_line(day: int, groups: list[tuple[str, int, str]]) -> str:
    body = "".join(f" {hhmm}  {v:05d} {f or ' '}  " for hhmm, v, f in groups)
    return f"310301 01 HPCP HI 1998 01 {day:02d}" + body + "\n"


def test_td3240_flags_missing_and_accumulation(tmp_path):
    lines = [
        _td_line(1, [("0100", 10, ""), ("0200", 99999, "M"), ("0300", 5, "")]),
        _td_line(2, [("0100", 99999, "["), ("0500", 99999, "]"), ("0700", 20, "")]),
        _td_line(3, [("0200", 0, "a"), ("0500", 40, "A")]),
    ]
    path = tmp_path / "flags.dat"
    path.write_text(TD_HEAD + "".join(lines))
    rain = read_ncdc(path)
    s = rain.intensity_mm_h["310301"] / MM_PER_INCH  # in per hour
    t = pd.Timestamp
    assert s[t("1998-01-01 00:00")] == pytest.approx(0.10) and s[t("1998-01-01 01:00")] == 0.0
    assert s[t("1998-01-02 06:00")] == pytest.approx(0.20)
    # accumulation 'a' at hour ending 02:00 ... 'A' at 05:00: 0.40 in spread over 4 hours
    assert [s[t(f"1998-01-03 0{h}:00")] for h in range(1, 5)] == pytest.approx([0.10] * 4)
    assert rain.depth_mm["310301"] == pytest.approx((0.15 + 0.20 + 0.40) * MM_PER_INCH)
    # 1 flagged M + hours ending 01:00..05:00 of the bracketed period
    assert rain.meta["missing_steps"] == "6"
    assert rain.meta["accumulated_periods"] == "1"
    with pytest.raises(RainFileError, match="missing"):
        read_ncdc(path, missing="raise")


def test_ncdc_several_stations_become_gauges(tmp_path):
    header = "STATION           DATE           HPCP     Measurement Flag Quality Flag \n" + "-" * 70 + "\n"
    row = "      COOP:{} 20130101 {}:00 {}                                   \n"
    path = tmp_path / "two.dat"
    path.write_text(header + row.format("134101", "01", "0.10") + row.format("134101", "03", "0.20")
                    + row.format("999999", "08", "0.30") + row.format("999999", "09", "0.30"))
    rain = read_ncdc(path)
    assert rain.gauges == ["134101", "999999"] and rain.n_steps == 9
    assert (rain.depth_mm / MM_PER_INCH).round(12).tolist() == [0.3, 0.6]
    assert rain.intensity_mm_h.loc[pd.Timestamp("2013-01-01 07:00"), "999999"] == pytest.approx(0.3 * MM_PER_INCH)
    path.write_text(header + row.format("134101", "01", "0.10") + "oops\n")
    with pytest.raises(RainFileError, match=r"two\.dat:4: expected a 'COOP:"):
        read_ncdc(path)


def test_ncdc_bad_lines_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.dat"
    bad.write_text(TD_HEAD + _td_line(1, [("0100", 10, "")]) + "310301 01 HPCP HI 1998 02 30 0100  00010    \n")
    with pytest.raises(RainFileError, match=r"bad\.dat:4: invalid date") as info:
        read_ncdc(bad)
    assert info.value.line == 4 and info.value.path == bad
    assert isinstance(info.value, CorruptFileError) and isinstance(info.value, ValueError)

    online = tmp_path / "online.dat"
    header = "STATION           DATE           HPCP     Measurement Flag Quality Flag \n"
    rows = ["      COOP:134101 20130101 01:00 0.10                                   \n",
            "      COOP:134101 20130101 02:00 x.yz                                   \n"]
    online.write_text(header + "-" * 20 + "\n" + "".join(rows))
    with pytest.raises(RainFileError, match=r"online\.dat:4: HPCP value 'x.yz' is not a number"):
        read_ncdc(online)
    dup = tmp_path / "dup.dat"
    dup.write_text(header + "-" * 20 + "\n" + rows[0] + rows[0])
    with pytest.raises(RainFileError, match=r"dup\.dat:4: .*also given on line 3"):
        read_ncdc(dup)
    miss = tmp_path / "miss.dat"
    miss.write_text(header + "-" * 20 + "\n" + rows[0] + rows[0].replace("01:00 0.10", "03:00 999.99"))
    assert read_ncdc(miss).meta["missing_steps"] == "1"
    with pytest.raises(InputFileNotFoundError):
        read_ncdc(tmp_path / "nope.dat")
    junk = tmp_path / "junk.dat"
    junk.write_text("hello\nworld\n")
    with pytest.raises(RainFileError, match="no NCDC data line"):
        read_ncdc(junk)


# ----------------------------------------------------------------------------- CSV


def test_read_rain_csv_units_by_suffix_and_gaps(tmp_path):
    path = tmp_path / "gauges.csv"
    path.write_text(
        "time,RG1_mm_h,RG2_in\n"
        "2024-06-01 00:00,12.0,0.1\n"
        "2024-06-01 00:05,6.0,0\n"
        "2024-06-01 00:15,0,0.2\n"  # 00:10 skipped: no rain
    )
    rain = read_rain_csv(path)
    assert rain.gauges == ["RG1", "RG2"] and rain.step_s == 300 and rain.n_steps == 4
    assert rain.intensity_mm_h["RG1"].tolist() == [12.0, 6.0, 0.0, 0.0]
    assert rain.depth_mm["RG2"] == pytest.approx(0.3 * MM_PER_INCH)
    assert rain.intensity_mm_h["RG2"].iloc[0] == pytest.approx(0.1 * MM_PER_INCH * 12)
    assert rain.depth_mm["RG1"] == pytest.approx(1.5)

    end = read_rain_csv(path, time_label="end")
    assert end.intensity_mm_h.index[0] == pd.Timestamp("2024-05-31 23:55")

    elapsed = tmp_path / "elapsed.csv"
    elapsed.write_text("elapsed_min,G\n0,1\n10,2\n20,3\n")
    e = read_rain_csv(elapsed, units="mm")
    assert e.step_s == 600 and not e.is_timestamped
    assert e.depth_mm["G"] == pytest.approx(6.0)


@pytest.mark.parametrize("body, units, match", [
    ("time,RG1_mm_h\n2024-06-01 00:00,1\n2024-06-01 00:05,abc\n", None,
     r":3: column 'RG1_mm_h': 'abc' is not a number"),
    ("time,RG1_mm_h\n2024-06-01 00:00,1\n2024-06-01 00:05,-2\n", None, r":3: .*negative"),
    ("time,RG1_mm_h\n2024-06-01 00:05,1\n2024-06-01 00:00,1\n", None, r":3: .*does not come after"),
    ("time,RG1_mm_h\n2024-06-01 00:00,1\nnot a date,1\n", None, r":3: time 'not a date'"),
    ("time,RG1_mm_h\n2024-06-01 00:00,1\n2024-06-01 00:05,1\n2024-06-01 00:12,1\n", None,
     r":4: .*whole number of 300 s steps"),
    ("time,RG1\n2024-06-01 00:00,1\n", None, r":1: column 'RG1' declares no unit"),
    ("time,RG1_mm_h\n2024-06-01 00:00,1\n2024-06-01 00:05,\n", None, r":3: column 'RG1_mm_h' is empty"),
])
def test_read_rain_csv_bad_input_names_file_and_line(tmp_path, body, units, match):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(RainFileError, match=r"bad\.csv" + match):
        read_rain_csv(path, units=units)


def test_read_rain_csv_missing_zero(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("time,RG1_mm_h\n2024-06-01 00:00,1\n2024-06-01 00:05,\n2024-06-01 00:10,3\n")
    rain = read_rain_csv(path, missing="zero")
    assert rain.intensity_mm_h["RG1"].tolist() == [1.0, 0.0, 3.0]
    assert rain.meta["missing_steps"] == "1"


# ----------------------------------------------------------------------------- resampling, combining


@pytest.mark.parametrize("new_step", [1, 60, 240, 420, 900, 3600, 7200, 86400])
def test_resample_conserves_depth(rng, new_step):
    frame = pd.DataFrame(rng.gamma(0.5, 10.0, (97, 3)) * (rng.random((97, 3)) < 0.6),
                         columns=["A", "B", "C"], index=np.arange(97) * 300)
    rain = RainSeries(frame, step_s=300)
    out = rain.resample(new_step)
    assert out.step_s == new_step
    assert np.allclose(out.depth_mm.to_numpy(), rain.depth_mm.to_numpy(), rtol=0, atol=1e-9)
    assert (out.intensity_mm_h.to_numpy() >= 0).all()
    assert out.duration_s >= rain.duration_s and out.duration_s - rain.duration_s < new_step
    back = out.resample(300)
    assert np.allclose(back.depth_mm.to_numpy(), rain.depth_mm.to_numpy(), rtol=0, atol=1e-9)


def test_resample_exact_shapes_and_timestamps():
    rain = chicago_storm("beijing", 20, 120).with_start("2024-07-01 08:00")
    coarse = rain.resample(3600)
    assert coarse.intensity_mm_h.index.tolist() == [pd.Timestamp("2024-07-01 08:00"), pd.Timestamp("2024-07-01 09:00")]
    assert isinstance(coarse, Storm) and coarse.method == "chicago"
    fine = rain.resample(60)
    # a finer step repeats each value
    assert np.allclose(fine.intensity_mm_h["RG1"].to_numpy()[:5], rain.intensity_mm_h["RG1"].iloc[0])
    assert fine.max_depth_mm == pytest.approx(rain.max_depth_mm, abs=1e-9)


def test_combine_gauges_and_select(rain_dir):
    a = chicago_storm("beijing", 20, 120, gauge="RG1").with_start("2024-07-01 08:00")
    b = block_storm(10.0, 60, step_min=10, gauge="RG2").with_start("2024-07-01 09:00")
    both = combine_gauges([a, b])
    assert both.gauges == ["RG1", "RG2"] and both.step_s == 300
    assert both.intensity_mm_h.index[0] == pd.Timestamp("2024-07-01 08:00")
    assert both.depth_mm["RG1"] == pytest.approx(a.max_depth_mm, abs=1e-9)
    assert both.depth_mm["RG2"] == pytest.approx(10.0, abs=1e-9)
    assert both.select(["RG2"]).gauges == ["RG2"]
    with pytest.raises(RainDataError, match="unknown gauge"):
        both.select(["RG9"])
    with pytest.raises(RainDataError, match="more than one series"):
        combine_gauges([a, a])
    with pytest.raises(RainDataError, match="mix of timestamped"):
        combine_gauges([a, chicago_storm("beijing", 20, 60, gauge="X")])


# ----------------------------------------------------------------------------- SWMM lines, validation


def test_to_swmm_timeseries_lines():
    storm = block_storm(25.4, 10, step_min=5)
    assert storm.to_swmm_timeseries() == ["RG1 0:00 25.4", "RG1 0:05 25.4", "RG1 0:10 0"]
    assert storm.to_swmm_timeseries({"RG1": "TS_design"}, units="in") == [
        "TS_design 0:00 1", "TS_design 0:05 1", "TS_design 0:10 0"]
    assert storm.swmm_interval == "0:05"
    dated = storm.with_start("2024-07-01 23:55").to_swmm_timeseries()
    assert dated == ["RG1 07/01/2024 23:55 25.4", "RG1 07/02/2024 00:00 25.4", "RG1 07/02/2024 00:05 0"]
    # the written values give back the depth
    long = chicago_storm("beijing", 20, 1500, step_min=5)
    values = [float(line.split()[-1]) for line in long.to_swmm_timeseries()]
    assert sum(values) * 5 / 60 == pytest.approx(long.max_depth_mm, rel=1e-9)
    assert long.to_swmm_timeseries()[-1].startswith("RG1 25:00 ")
    sparse = block_storm(6.0, 10, step_min=5, lead_min=10).to_swmm_timeseries(skip_zeros=True)
    assert sparse == ["RG1 0:10 6", "RG1 0:15 6", "RG1 0:20 0"]
    with pytest.raises(RainDataError, match="without spaces"):
        storm.to_swmm_timeseries({"RG1": "my series"})
    with pytest.raises(RainDataError, match="timestamped"):
        storm.to_swmm_timeseries(time_format="date")


@pytest.mark.parametrize("frame, step, err, match", [
    (pd.DataFrame({"A": [1.0, -1.0]}, index=[0, 60]), 60, RainDataError, "expected a finite value >= 0"),
    (pd.DataFrame({"A": [1.0, np.nan]}, index=[0, 60]), 60, RainDataError, "finite"),
    (pd.DataFrame({"A": [1.0, 2.0]}, index=[0, 90]), 60, RainDataError, "fixed step of 60 s"),
    (pd.DataFrame({"A": [1.0]}, index=[0]), 0, RainDataError, "step_s=0"),
    (pd.DataFrame({"A": []}, dtype=float), 60, EmptyDataError, "no intervals"),
])
def test_rain_series_validates_its_input(frame, step, err, match):
    with pytest.raises(err, match=match):
        RainSeries(frame, step_s=step, label="x")
    assert issubclass(err, TwinError)


def test_storms_pickle_for_worker_processes():
    import pickle

    storm = chicago_storm("beijing", 20, 120).with_start("2024-07-01")
    back = pickle.loads(pickle.dumps(storm))
    assert type(back) is Storm and back.params == storm.params and back.label == storm.label
    pd.testing.assert_frame_equal(back.intensity_mm_h, storm.intensity_mm_h)


def test_rain_series_is_frozen_and_does_not_share_input():
    frame = pd.DataFrame({"A": [1.0, 2.0]}, index=[0, 60])
    rain = RainSeries(frame, step_s=60)
    frame.iloc[0, 0] = 99.0
    assert rain.intensity_mm_h["A"].iloc[0] == 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        rain.step_s = 30  # type: ignore[misc]
    with pytest.raises(ValueError):
        rain.intensity_mm_h.to_numpy()[0, 0] = 5.0


def test_idf_table_reader_errors(tmp_path):
    bad = tmp_path / "X_IDF.csv"
    bad.write_text("Hour,1,2\n1,1.0,1.2\n2,1.1,oops\n")
    with pytest.raises(RainFileError, match=r"X_IDF\.csv:3: 'oops' is not a number"):
        read_idf_table(bad)
    bad.write_text("Hour,1,2\n1,1.0,1.2\n2,0.9,1.3\n")
    with pytest.raises(RainFileError, match=r":3: durations must increase and depths must not fall"):
        read_idf_table(bad)
    bad.write_text("Minutes,1,2\n1,1.0,1.2\n")
    with pytest.raises(RainFileError, match=r":1: first header cell"):
        read_idf_table(bad)


# ----------------------------------------------------------------------------- reference: the SWMM engine

_INP = """[OPTIONS]
FLOW_UNITS CMS
FLOW_ROUTING STEADY
START_DATE 07/01/2024
START_TIME 00:00:00
END_DATE 07/02/2024
END_TIME 00:00:00
WET_STEP 00:01:00
DRY_STEP 00:05:00
ROUTING_STEP 60
REPORT_STEP 00:05:00
[RAINGAGES]
RG1 INTENSITY {interval} 1.0 TIMESERIES TS1
[SUBCATCHMENTS]
S1 RG1 O1 1 100 100 1 0
[SUBAREAS]
S1 0.01 0.1 0 0 100 OUTLET
[INFILTRATION]
S1 3 0.5 4 7 0
[OUTFALLS]
O1 0 FREE NO
[TIMESERIES]
{series}
"""


@pytest.mark.parametrize("time_format, skip_zeros", [("elapsed", False), ("date", False), ("elapsed", True)])
def test_swmm_engine_reads_our_timeseries_as_the_same_depth(tmp_path, time_format, skip_zeros):
    import re

    from swmm.toolkit import solver

    storm = combine_gauges([chicago_storm("beijing", 20, 120, gauge="RG1"),
                            block_storm(6.0, 10, step_min=5, lead_min=30, gauge="X")])
    storm = storm.with_start("2024-07-01 00:00")
    lines = [ln for ln in storm.to_swmm_timeseries({"RG1": "TS1", "X": "TSX"}, time_format=time_format,
                                                   skip_zeros=skip_zeros) if ln.startswith("TS1 ")]
    inp = tmp_path / "rain.inp"
    inp.write_text(_INP.format(interval=storm.swmm_interval, series="\n".join(lines)))
    solver.swmm_run(str(inp), str(tmp_path / "rain.rpt"), str(tmp_path / "rain.out"))
    report = (tmp_path / "rain.rpt").read_text()
    depth_mm = float(re.search(r"Total Precipitation \.+\s+[\d.]+\s+([\d.]+)", report).group(1))
    assert depth_mm == pytest.approx(storm.depth_mm["RG1"], abs=1e-3)  # the report prints 3 decimals
