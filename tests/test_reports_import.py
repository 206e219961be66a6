"""Import of real service requests (NYC 311) and their replay through dispatch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA

from agents.errors import MissingColumnError
from agents.gridcity import make_grid_city
from agents.incident_import import (
    NYC311,
    ColumnMapping,
    map_type,
    read_service_requests,
    replay_incidents,
    utm_crs_for,
)
from agents.strategies import strategy_names


@pytest.fixture(scope="module")
def nyc_path():
    p = SHARED_DATA / "reports" / "nyc311_sample_2024-05-27" / "311_Service_Requests.csv"
    if not p.exists():
        pytest.fail(f"NYC 311 sample not found at {p}")
    return p


@pytest.fixture(scope="module")
def nyc(nyc_path):
    return read_service_requests(nyc_path)


def test_counts_of_the_real_sample(nyc, nyc_path):
    raw = pd.read_csv(nyc_path, dtype=str)
    s = nyc.stats
    assert s["rows"] == len(raw) == 1000 == len(nyc.incidents)  # nothing dropped
    no_xy = raw["latitude"].isna() | raw["longitude"].isna()
    assert s["missing_location"] == int(no_xy.sum()) == 12
    assert sorted(s["missing_location_ids"]) == sorted(raw.loc[no_xy, "unique_key"])
    assert s["replayable"] == 988 == len(nyc.to_reports())
    assert s["bad_time"] == 0 and s["duplicate_ids"] == 0
    assert sum(s["by_category"].values()) == 1000
    assert s["by_status"] == {"assigned": 1, "closed": 677, "in_progress": 293, "open": 29}
    assert s["by_channel"]["hotline"] == int((raw["open_data_channel_type"] == "PHONE").sum())
    # unknown types become 'other' and are counted by raw name
    assert s["unknown_type_rows"] == sum(s["unknown_types"].values()) == s["by_category"]["other"]
    assert s["unknown_types"]["Rodent"] == 4
    assert s["by_category"]["noise"] == int(raw["complaint_type"].str.startswith("Noise").sum())
    # duplicate statistics by the merge rule
    assert 0 < s["duplicate_rows"] < s["replayable"] and s["duplicate_groups"] <= s["duplicate_rows"]
    assert "12 without coordinates" in nyc.summary()


def test_projection_to_a_metric_crs(nyc):
    assert nyc.crs == "EPSG:32618" == utm_crs_for(-73.9, 40.7)
    from pyproj import Transformer

    row = nyc.incidents.loc["61276295"]
    x, y = Transformer.from_crs("EPSG:4326", "EPSG:32618", always_xy=True).transform(row["lon"], row["lat"])
    assert (row["x"], row["y"]) == pytest.approx((x, y))
    from gisdata.errors import CRSError

    src = nyc.incidents.reset_index().rename(columns={"incident_id": "unique_key"}).assign(
        created_date=lambda d: d["time"].astype(str), complaint_type=lambda d: d["raw_type"],
        longitude=lambda d: d["lon"], latitude=lambda d: d["lat"])
    with pytest.raises(CRSError, match="foot"):  # NY state plane is in US feet: not metric
        read_service_requests(src, crs="EPSG:2263")
    assert read_service_requests(src, crs="EPSG:3857").crs == "EPSG:3857"


def test_portal_headers_work_too(nyc_path):
    raw = pd.read_csv(nyc_path, dtype=str)
    portal = raw.rename(columns={"unique_key": "Unique Key", "created_date": "Created Date",
                                 "complaint_type": "Complaint Type", "latitude": "Latitude",
                                 "longitude": "Longitude", "status": "Status"})
    imp = read_service_requests(portal, mapping=NYC311)
    assert imp.stats["rows"] == 1000 and imp.stats["missing_location"] == 12


def test_wrong_columns_are_named(nyc_path):
    raw = pd.read_csv(nyc_path, dtype=str).drop(columns=["created_date", "latitude"])
    with pytest.raises(MissingColumnError) as err:
        read_service_requests(raw)
    assert "created_date" in str(err.value) and "latitude" in str(err.value)
    assert isinstance(err.value, KeyError)


def test_custom_mapping_with_projected_coordinates():
    df = pd.DataFrame({"id": ["a", "b", "c"], "when": ["2024-06-01 08:00", "2024-06-01 08:10", "not a time"],
                       "kind": ["积水", "Noise - Street", "?"], "e": [500_100.0, 500_120.0, np.nan],
                       "n": [3_400_000.0, 3_400_010.0, 3_400_000.0]})
    mapping = ColumnMapping(incident_id="id", time="when", type="kind", x="e", y="n")
    imp = read_service_requests(df, mapping=mapping, type_map={"积水": "waterlogging", "noise": "noise"},
                                source_crs="EPSG:32650", crs="EPSG:32650")
    inc = imp.incidents
    assert inc["category"].tolist() == ["waterlogging", "noise", "other"]
    assert imp.stats["bad_time"] == 1 and imp.stats["missing_location"] == 1 and imp.stats["replayable"] == 2
    assert inc.loc["a", "time_s"] == 8 * 3600.0


def test_map_type_prefix_and_case():
    assert map_type("NOISE - Vehicle", {"noise": "noise"}) == "noise"
    assert map_type("Graffiti", {"graffiti": "litter"}) == "litter"
    assert map_type("Rodent", {"noise": "noise"}) is None


@pytest.mark.parametrize("strategy", [s for s in strategy_names() if s != "forecast_staging"])
def test_replay_through_every_strategy(nyc, strategy):
    city = make_grid_city(10, 10, spacing_m=200.0)
    res = replay_incidents(city, nyc, strategy=strategy, seed=1, crews=24)
    assert len(res.reports) == 988 and res.metadata["not_replayed"] == 12
    assert set(res.reports["incident_id"]) <= set(nyc.incidents.index)
    xmin, ymin, xmax, ymax = city.extent
    assert res.incidents["x"].between(xmin, xmax).all() and res.incidents["y"].between(ymin, ymax).all()
    assert res.kpis["counts"]["dispatched"] > 0
    assert nyc.stats["rows"] == 1000  # the import is not mutated by the replay
