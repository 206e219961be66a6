"""QPF reading (strict validation) and the seeded QPF error model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gisdata.errors import InputFileNotFoundError, TwinError
from hydraulics.qpf import (
    Ensemble,
    EnsembleError,
    ErrorModel,
    QPFError,
    fit_horizon,
    perturb_qpf,
    read_ensemble,
    read_qpf,
)
from hydraulics.rain_series import RainSeries


def _write(tmp_path, text, name="qpf.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_read_qpf_units_and_lead(tmp_path):
    p = _write(tmp_path, "lead_h,RG1_mm_h,RG2_mm\n0,0,0\n1,6,3\n2,0,1.5\n")
    q = read_qpf(p)
    assert q.step_s == 3600 and q.gauges == ["RG1", "RG2"]
    assert q.depth_mm.to_dict() == pytest.approx({"RG1": 6.0, "RG2": 4.5})
    assert list(q.intensity_mm_h.index) == [0, 3600, 7200]


def test_read_qpf_decimal_hour_leads_are_whole_steps(tmp_path):
    rows = "".join(f"{k * 300 / 3600:.6f},{10.0 if 3 <= k < 6 else 0.0}\n" for k in range(12))
    q = read_qpf(_write(tmp_path, "lead_h,RG1_mm_h\n" + rows))
    assert q.step_s == 300 and len(q.intensity_mm_h) == 12
    assert q.depth_mm["RG1"] == pytest.approx(10.0 * 3 * 300 / 3600)


def test_example_qpf_reads():
    from pathlib import Path

    q = read_qpf(Path(__file__).resolve().parents[1] / "examples" / "qpf_demo_chicago50yr_3h_in48h.csv")
    wet = np.flatnonzero(q.intensity_mm_h["RG01"].to_numpy() > 0) * q.step_s / 3600
    assert q.duration_s == 72 * 3600 and wet[0] == pytest.approx(48.0) and wet[-1] < 51.0


def test_read_qpf_timestamps_need_issue_time(tmp_path):
    p = _write(tmp_path, "time,RG1_mm_h\n2024-07-01 02:00,1\n2024-07-01 03:00,2\n")
    with pytest.raises(QPFError, match="issue time"):
        read_qpf(p)
    q = read_qpf(p, issue_time="2024-07-01 00:00")
    # Starts 2 h after issue: dry before.
    assert q.intensity_mm_h["RG1"].tolist() == [0.0, 0.0, 1.0, 2.0]


@pytest.mark.parametrize("text, where, what", [
    ("lead_h,RG1_mm_h\n0,1\n1,2\n3,1\n", ":4", "gap"),
    ("lead_h,RG1_mm_h\n0,1\n1,-2\n", ":3", "negative"),
    ("lead_h,RG1_mm_h\n0,1\n1,2\n1,2\n", ":4", "duplicated"),
    ("lead_h,RG1_mm_h\n0,1\n2,2\n1,2\n", ":4", "not sorted"),
    ("lead_h,RG1_cm\n0,1\n1,2\n", ":1", "unit 'cm' is unknown"),
    ("lead_h,RG1\n0,1\n1,2\n", ":1", "declares no unit"),
    ("lead_h,RG1_mm_h\n0,1\n1,\n", ":3", "empty"),
    ("lead_h,RG1_mm_h\n0,1\n1,abc\n", ":3", "not a number"),
    ("lead_h,RG1_mm_h\n0,1\nx,2\n", ":3", "cannot be read"),
    ("lead_h,RG9_mm_h\n0,1\n1,2\n", ":1", "not a rain gauge"),
])
def test_read_qpf_bad_inputs_name_row_or_field(tmp_path, text, where, what):
    p = _write(tmp_path, text)
    with pytest.raises(QPFError) as info:
        read_qpf(p, gauges=["RG1"])
    msg = str(info.value)
    assert f"qpf.csv{where}:" in msg and what in msg
    assert isinstance(info.value, TwinError)


def test_read_qpf_unknown_units_argument(tmp_path):
    p = _write(tmp_path, "lead_h,RG1\n0,1\n")
    with pytest.raises(QPFError, match="units='furlongs'"):
        read_qpf(p, units="furlongs")


def test_read_qpf_missing_file(tmp_path):
    with pytest.raises(InputFileNotFoundError):
        read_qpf(tmp_path / "nope.csv")


def _qpf(n=72, wet=(30, 36), value=20.0, step=600, gauges=("RG1",)):
    v = np.zeros(n)
    v[wet[0]:wet[1]] = value
    return RainSeries(pd.DataFrame({g: v for g in gauges}, index=np.arange(n) * step), step_s=step, label="q")


def test_error_model_is_seeded_and_member_wise_reproducible():
    q = _qpf()
    a = perturb_qpf(q, 6, seed=42)
    b = perturb_qpf(q, 6, seed=42)
    c = perturb_qpf(q, 3, seed=42)
    d = perturb_qpf(q, 6, seed=43)
    for x, y in zip(a.members, b.members):
        pd.testing.assert_frame_equal(x.intensity_mm_h, y.intensity_mm_h)
    for x, y in zip(a.members[:3], c.members):  # member m depends on (seed, m) only
        pd.testing.assert_frame_equal(x.intensity_mm_h, y.intensity_mm_h)
    assert not np.allclose(a.members[1].intensity_mm_h, d.members[1].intensity_mm_h)
    control = a.members[0].intensity_mm_h  # the QPF itself, padded dry for late shifts
    pd.testing.assert_frame_equal(control.iloc[:len(q.intensity_mm_h)], q.intensity_mm_h)
    assert (control.iloc[len(q.intensity_mm_h):] == 0).all().all()
    assert a.params["seed"] == 42 and len(a) == 6


def test_error_model_volume_unbiased_and_spread_grows_with_lead():
    early, late = _qpf(n=432, wet=(6, 12)), _qpf(n=432, wet=(400, 406))
    m = ErrorModel(control=False, timing0_h=0, timing_per_day_h=0, gauge_shift_h=0)
    de = perturb_qpf(early, 400, seed=1, model=m).depth_mm()["RG1"]
    dl = perturb_qpf(late, 400, seed=1, model=m).depth_mm()["RG1"]
    assert de.mean() == pytest.approx(early.max_depth_mm, rel=0.05)
    assert dl.mean() == pytest.approx(late.max_depth_mm, rel=0.12)
    assert np.log(dl).std() > 1.5 * np.log(de).std()  # sigma grows with lead time


def test_error_model_timing_and_gauge_shift_keep_rain_after_issue():
    q = _qpf(n=72, wet=(2, 8), gauges=("RG1", "RG2"))
    m = ErrorModel(sigma0=0, sigma_per_day=0, timing0_h=3.0, gauge_shift_h=1.0, control=False)
    ens = perturb_qpf(q, 30, seed=5, model=m)
    firsts = []
    for mem in ens.members:
        v = mem.intensity_mm_h
        assert v.sum().to_numpy() == pytest.approx(q.intensity_mm_h.sum().to_numpy())  # nothing lost
        firsts.append(tuple(int(np.argmax(v[g].to_numpy() > 0)) for g in v.columns))
    assert len(set(firsts)) > 5  # members move in time
    assert any(a != b for a, b in firsts)  # and gauges move against each other


def test_error_model_rejects_bad_parameters():
    with pytest.raises(EnsembleError):
        ErrorModel(sigma0=-1)
    with pytest.raises(EnsembleError):
        perturb_qpf(_qpf(), 0, seed=1)
    with pytest.raises(EnsembleError, match="seed"):
        perturb_qpf(_qpf(), 2, seed=1.5)


def test_ensemble_from_files_and_weights(tmp_path):
    d = tmp_path / "ens"
    d.mkdir()
    _write(d, "lead_h,RG1_mm_h\n0,1\n1,2\n", "a.csv")
    _write(d, "lead_min,RG1_mm\n0,0.5\n30,0.5\n60,0\n", "b.csv")
    ens = read_ensemble(d)
    assert ens.names == ("a", "b") and ens.weights == (0.5, 0.5)
    assert {m.step_s for m in ens.members} == {1800}
    with pytest.raises(EnsembleError):
        Ensemble(ens.members, weights=(1.0, -1.0))


def test_fit_horizon_pads_and_cuts():
    q = _qpf(n=10, wet=(0, 10), step=3600)
    assert fit_horizon(q, 4 * 3600).n_steps == 4
    assert fit_horizon(q, 12 * 3600).intensity_mm_h["RG1"].tolist()[-2:] == [0.0, 0.0]


def test_member_reduction_keeps_weight_and_is_seeded():
    from hydraulics.qpf import reduce_members

    ens = perturb_qpf(_qpf(n=144, wet=(60, 70)), 30, seed=2)
    a, b = reduce_members(ens, 8, seed=0), reduce_members(ens, 8, seed=0)
    assert a.names == b.names and a.weights == b.weights
    assert 1 <= len(a) <= 8 and sum(a.weights) == pytest.approx(1.0)
    assert set(a.names) <= set(ens.names)
    assert reduce_members(ens, 50) is ens
    # The weighted mean depth of the representatives stays near the full ensemble's.
    full = ens.depth_mm()["RG1"].mean()
    red = float((a.depth_mm()["RG1"] * np.array(a.weights)).sum())
    assert red == pytest.approx(full, rel=0.15)
