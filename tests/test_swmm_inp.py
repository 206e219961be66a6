"""The .inp reader/writer and the GIS conversion: tokens, verbatim sections, file names, SI units."""

from __future__ import annotations

import pytest
from swmm_helpers import copy_model

from hydraulics.gis import import_swmm_city, inp_to_gis
from hydraulics.inp import parse_inp, read_inp, resolve_file_refs, tokenize, write_inp


def test_tokenize_follows_the_engine():
    assert tokenize('RG1 INTENSITY 0:05 1.0 FILE "my storm.dat" 1 MM ; a comment') == [
        "RG1", "INTENSITY", "0:05", "1.0", "FILE", "my storm.dat", "1", "MM"]
    assert tokenize('J1 FLOW "" FLOW 1 1 0.5') == ["J1", "FLOW", "", "FLOW", "1", "1", "0.5"]
    assert tokenize(";; only a comment") == []


def test_unknown_and_free_text_sections_are_kept_verbatim(tmp_path):
    text = ("[TITLE]\nMy model ; with a semicolon\n\n[OPTIONS]\nFLOW_UNITS CMS ; comment\n\n"
            "[FUTURE_SECTION]\n  anything   goes ; here\n\n[LABELS]\n1 2 \"a label with spaces\"\n")
    m = parse_inp(text)
    assert m.section("TITLE").verbatim == ["My model ; with a semicolon"]
    assert m.section("FUTURE_SECTION").verbatim == ["  anything   goes ; here"]
    assert m.rows("LABELS") == [["1", "2", "a label with spaces"]]
    assert m.options == {"FLOW_UNITS": "CMS"} and m.is_metric
    again = parse_inp(write_inp(m, tmp_path / "x.inp").read_text())
    assert [(s.name, s.rows, s.verbatim) for s in again.sections] == [(s.name, s.rows, s.verbatim) for s in m.sections]


def test_relative_input_files_become_absolute_and_outputs_stay_in_the_work_dir(shared_data, tmp_path):
    inp = copy_model(shared_data, "bellinge_small/bellinge_small.inp", tmp_path)
    m = read_inp(inp)
    changes, missing, outputs = resolve_file_refs(m, tmp_path / "work")
    assert not missing and list(changes) == [51]
    assert str(inp.parent / "storm.dat") in changes[51]
    ex2 = read_inp(copy_model(shared_data, "epa_examples/Example2.inp", tmp_path))
    changes, missing, outputs = resolve_file_refs(ex2, tmp_path / "work")
    assert list(outputs.values()) == [tmp_path / "work" / "Example2.txt"]


def test_us_model_converts_to_si(shared_data):
    layers = inp_to_gis(shared_data / "swmm" / "epa_examples" / "Example1.inp", "EPSG:32650")
    nodes, subs = layers["nodes"], layers["subcatchments"]
    assert nodes.loc["9", "invert_elev_m"] == pytest.approx(1000 * 0.3048)
    assert nodes.loc["9", "max_depth_m"] == pytest.approx(3 * 0.3048)
    assert subs.loc["1", "area_m2"] == pytest.approx(10 * 4046.8564224)
    assert subs.loc["1", "width_m"] == pytest.approx(500 * 0.3048)
    assert set(nodes["node_type"]) == {"junction", "outfall"}


def test_metric_model_keeps_metres_and_converts_hectares(shared_data):
    m = read_inp(shared_data / "swmm" / "bellinge_small" / "bellinge_small.inp")
    layers = inp_to_gis(m, "EPSG:32632")
    sid = layers["subcatchments"].index[0]
    assert layers["subcatchments"].loc[sid, "area_m2"] == pytest.approx(float(m.subcatchments().loc[sid, "area"]) * 1e4)
    assert layers["conduits"].crs.to_epsg() == 32632


def test_import_swmm_city_builds_a_valid_city(shared_data):
    city = import_swmm_city(shared_data / "swmm" / "bellinge_small" / "bellinge_small.inp", "EPSG:32632")
    assert len(city.roads) == 0 and len(city.nodes) == 16 and city.dem.shape[0] > 0
    assert (city.nodes["rim_elev_m"] >= city.nodes["invert_elev_m"]).all()
