"""The depth series artefact: round trip, thinning and refusals."""

import numpy as np
import pytest
from affine import Affine

from hydraulics.depth_series import MAX_FRAMES, DepthSeriesError, DepthSeriesRecorder, read_depth_series


def _recorder(every=60.0):
    domain = np.ones((6, 8), bool)
    domain[0, 0] = False
    return DepthSeriesRecorder(Affine(5, 0, 1000, 0, -5, 2000), "EPSG:32650", domain, every_s=every)


def test_round_trip_keeps_times_depths_and_domain(tmp_path):
    rec = _recorder()
    for k in range(4):
        d = np.full((6, 8), 0.01 * k)
        rec.add(60.0 * k, d)
        rec.add(60.0 * k + 10, d + 5)  # not due yet: skipped
    series = rec.result()
    path = series.write(tmp_path / "depth_series.tif")
    back = read_depth_series(tmp_path)
    assert back.times_s.tolist() == [0, 60, 120, 180]
    assert back.depth_m.shape == (4, 6, 8)
    assert back.depth_m[3, 2, 2] == pytest.approx(0.03)
    assert not back.domain[0, 0] and back.depth_m[:, 0, 0].max() == 0
    assert back.frame_at(130) == 2 and back.frame_at(-5) == 0
    assert back.max_depth_m()[1, 1] == pytest.approx(0.03)
    assert back.bounds() == (1000, 1970, 1040, 2000)
    assert path.stat().st_size < 20_000


def test_long_runs_are_thinned_and_keep_the_last_frame():
    rec = _recorder(every=1.0)
    for k in range(MAX_FRAMES * 2 + 7):
        rec.add(float(k), np.zeros((6, 8)))
    s = rec.result()
    assert len(s.times_s) <= MAX_FRAMES
    assert s.times_s[-1] == MAX_FRAMES * 2 + 6


def test_a_plain_geotiff_is_refused_by_name(tmp_path):
    from gisdata.raster import Raster, write_geotiff

    p = write_geotiff(Raster(np.zeros((3, 3)), Affine(1, 0, 0, 0, -1, 3), "EPSG:32650"), tmp_path / "x.tif")
    with pytest.raises(DepthSeriesError, match="x.tif: no time_s tag"):
        read_depth_series(p)
    with pytest.raises(DepthSeriesError, match="no depth series"):
        read_depth_series(tmp_path / "missing")
