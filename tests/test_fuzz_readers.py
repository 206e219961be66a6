"""Issue #12: property-based fuzzing (hypothesis) of every reader of user files.

The property, for every reader: given any bytes, it returns a valid object or
raises :class:`gisdata.errors.TwinError` (or a subclass); it never raises
anything else, never allocates more than :data:`BUDGET_BYTES` (tracemalloc
peak of one example), and never writes outside its own temporary folder (each
example runs in a fresh folder, with the working directory moved into it; the
input's folder, the working directory and the repository's top level are
checked after every call).

Inputs mix near-valid files (a valid file with one field mutated to a huge,
non-finite, negative, empty, unicode, ``../`` or very long value, rows
duplicated, dropped or truncated, deep nesting) with raw bytes and text.  The
engine is never run: the ``.inp`` reader is fuzzed up to the run copy's file
references and the import into a city.

Profiles (environment variable ``CITYTWIN_FUZZ_PROFILE``):

- ``ci`` (default): about 2,000 examples in all, derandomized (reproducible);
- ``nightly``: about 20,000 examples, random seed (printed by hypothesis on failure).

The run ends with one line (``tests/conftest.py``)::

    fuzz readers (profile ci): 2146 examples tried, 0 failures, peak memory 64.6 MB per example (inp_city; ...

(about 105 s on the 2-core machine; the nightly profile about 20 minutes).

Nightly command::

    CITYTWIN_FUZZ_PROFILE=nightly .venv/bin/pytest tests/test_fuzz_readers.py -q -p no:cacheprovider
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shutil
import sqlite3
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import FUZZ_STATS, make_tiny_city
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gisdata.errors import TwinError

# ----------------------------------------------------------------------------- profiles

_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
           HealthCheck.large_base_example]
settings.register_profile("ci", deadline=None, derandomize=True, database=None, print_blob=True,
                          suppress_health_check=_HEALTH)
settings.register_profile("nightly", deadline=None, derandomize=False, database=None, print_blob=True,
                          suppress_health_check=_HEALTH)
PROFILE = os.environ.get("CITYTWIN_FUZZ_PROFILE", "ci")
if PROFILE not in ("ci", "nightly"):
    raise pytest.UsageError(f"CITYTWIN_FUZZ_PROFILE={PROFILE!r}; expected 'ci' or 'nightly'")
TOTAL_EXAMPLES = int(os.environ.get("CITYTWIN_FUZZ_EXAMPLES", {"ci": 2000, "nightly": 20000}[PROFILE]))
"""Examples across all readers (``CITYTWIN_FUZZ_EXAMPLES`` overrides the profile's number, e.g. for a quick look)."""

# Share of the examples per reader (the weights sum to 1): cheap readers get more.
_SHARE = {
    "inp": 0.12, "inp_city": 0.04, "qpf": 0.09, "rain_csv": 0.09, "ncdc": 0.08, "idf": 0.04, "scenario": 0.11,
    "incidents": 0.08, "gpkg": 0.06, "eventlog": 0.07, "manifest": 0.06, "sweep": 0.07, "surface2d": 0.09,
}
assert abs(sum(_SHARE.values()) - 1.0) < 1e-9


def fuzz(reader: str) -> settings:
    """Settings of one reader's test: the profile, with this reader's share of the examples."""
    return settings(settings.get_profile(PROFILE), max_examples=max(1, round(TOTAL_EXAMPLES * _SHARE[reader])))


BUDGET_BYTES = 200 * 2**20
"""Most memory one example may allocate (tracemalloc peak above what was held before the call)."""

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"

# ----------------------------------------------------------------------------- the guard

_STATS = {"examples": 0, "peak_bytes": 0, "peak_reader": "", "twin_errors": 0, "returned": 0, "start": None}


@pytest.fixture(scope="module", autouse=True)
def _fuzz_session(request):
    """Trace allocations, cap the address space (a runaway allocation fails the example, not the machine)."""
    request.config.stash[FUZZ_STATS] = _STATS
    _STATS["profile"] = PROFILE
    _STATS["start"] = _STATS["start"] or time.perf_counter()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    limits = None
    try:
        import resource

        limits = resource.getrlimit(resource.RLIMIT_AS)
        with open("/proc/self/statm") as fh:
            vsz = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        cap = vsz + 4 * 2**30
        if limits[0] == resource.RLIM_INFINITY or limits[0] > cap:
            resource.setrlimit(resource.RLIMIT_AS, (cap, limits[1]))
    except (ImportError, OSError, ValueError):
        limits = None
    yield
    _STATS["elapsed_s"] = time.perf_counter() - _STATS["start"]
    if limits is not None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, limits)
    if not was_tracing:
        tracemalloc.stop()


def _snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> content digest of every file below ``folder`` (symlinks by their target)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = "link:" + os.readlink(p)
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


_REPO_TOP = None


def guarded(reader: str, files: dict[str, bytes], call: Callable[[Path], object],
            check: Callable[[object], None] | None = None, *, setup: Callable[[Path], None] | None = None) -> object:
    """Run ``call(input_dir)`` on ``files`` in a fresh folder and check the property.

    Returns what the reader returned, or the TwinError it raised.  Any other
    exception propagates (the example fails).
    """
    global _REPO_TOP
    if _REPO_TOP is None:
        _REPO_TOP = sorted(os.listdir(REPO))
    base = Path(tempfile.mkdtemp(prefix="citytwin-fuzz-"))
    indir, work, cwd = base / "in", base / "work", base / "cwd"
    for d in (indir, work, cwd):
        d.mkdir()
    for name, data in files.items():
        (indir / name).parent.mkdir(parents=True, exist_ok=True)
        (indir / name).write_bytes(data)
    if setup is not None:
        setup(indir)
    before = _snapshot(indir)
    if os.environ.get("CITYTWIN_FUZZ_TRACE"):  # the example being read, to find one that hangs
        Path(os.environ["CITYTWIN_FUZZ_TRACE"]).write_text(repr((reader, files)))
    old_cwd, old_tmp = os.getcwd(), tempfile.tempdir
    _STATS["examples"] += 1
    try:
        os.chdir(cwd)
        tempfile.tempdir = str(work)  # the reader's own temp folder: allowed
        tracemalloc.reset_peak()
        held = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        try:
            result = call(indir)
            _STATS["returned"] += 1
        except TwinError as exc:
            result = exc
            _STATS["twin_errors"] += 1
            assert str(exc).strip(), f"{type(exc).__name__} without a message"
        finally:
            peak = tracemalloc.get_traced_memory()[1] - held
            if os.environ.get("CITYTWIN_FUZZ_TRACE") and time.perf_counter() - t0 > 0.3:
                with open(os.environ["CITYTWIN_FUZZ_TRACE"] + ".slow", "a") as fh:
                    fh.write(f"{time.perf_counter() - t0:.2f} {reader} {repr(files)[:300]}\n")
            os.chdir(old_cwd)
            tempfile.tempdir = old_tmp
        if peak > _STATS["peak_bytes"]:
            _STATS["peak_bytes"], _STATS["peak_reader"] = peak, reader
        assert peak <= BUDGET_BYTES, f"{reader}: allocated {peak / 2**20:.0f} MB (budget {BUDGET_BYTES / 2**20:.0f} MB)"
        assert _snapshot(indir) == before, f"{reader}: wrote or changed files beside its input"
        assert not os.listdir(cwd), f"{reader}: wrote {os.listdir(cwd)} into the working directory"
        assert sorted(os.listdir(base)) == ["cwd", "in", "work"], f"{reader}: wrote into {base}"
        assert sorted(os.listdir(REPO)) == _REPO_TOP, f"{reader}: wrote into the repository"
        if check is not None and not isinstance(result, TwinError):
            check(result)
        return result
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ----------------------------------------------------------------------------- hostile values

HOSTILE = [
    "1e308", "-1e308", "1e309", "1e400", "-1e400", "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "-Infinity",
    "0", "-0", "-1", "-0.0001", "1e-320", "4.9e-324", "9" * 40, "9" * 400, "-" + "9" * 30, "0x1p2000", "0x7fffffff",
    "", " ", "null", "None", "true", "..", "../..", "../../../etc/passwd", "/etc/passwd", "C:\\Windows\\win.ini",
    "~/x", "$HOME", "%s%s%n", "{}", "[]", "[[[[[[[[", "\"", "'", ",", ";", "\t", "\\", "é", "日本語", "𝕏𝕐",
    "\u202e", "\ufeff", "\x00", "1,000", "1_000", "２", "2024-13-45", "0000-00-00 00:00", "9999-12-31 23:59",
    "1970-01-01", "2024-02-30T25:61:61", "24:00", "00:60", "99999", "-99999", "M", "T", "a" * 5000,
]
"""Field values that broke readers somewhere (numbers out of range, non-finite, paths, odd text)."""

hostile = st.one_of(
    st.sampled_from(HOSTILE),
    st.floats().map(repr),
    st.integers(min_value=-10**30, max_value=10**30).map(str),
    st.text(max_size=12),
)


@st.composite
def mutated_lines(draw, base: list[str], sep: str = ",", *, long_line: int = 20_000) -> str:
    """``base`` (lines of a valid file) with one to three edits: a field, a row, a line, the end."""
    lines = list(base)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["field", "field", "field", "dup", "drop", "swap", "line", "insert", "truncate",
                                   "long", "wide", "blank"]))
        i = draw(st.integers(0, max(0, len(lines) - 1))) if lines else 0
        if op == "field" and lines:
            cells = lines[i].split(sep) if sep else lines[i].split()
            j = draw(st.integers(0, max(0, len(cells) - 1)))
            if cells:
                cells[j] = draw(hostile)
            lines[i] = (sep or " ").join(cells)
        elif op == "dup" and lines:
            lines.insert(i, lines[i])
        elif op == "drop" and lines:
            del lines[i]
        elif op == "swap" and len(lines) > 1:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "line" and lines:
            lines[i] = draw(st.text(max_size=60))
        elif op == "insert":
            lines.insert(i, draw(hostile))
        elif op == "truncate":
            text = "\n".join(lines)
            lines = text[: draw(st.integers(0, len(text)))].split("\n")
        elif op == "long" and lines:
            # a long field, not many fields (see "wide")
            lines[i] = lines[i] + draw(st.sampled_from(["x", "9", " ", "[", "\""])) * long_line
        elif op == "wide" and lines:
            # At most ~2,000 fields: pandas turns the surplus fields of a first row into a MultiIndex of that
            # many levels, quadratic in time (80,000 fields took 30 s), a cost outside our readers' code.
            fields = max(1, len(lines[i].split(sep or None)))
            lines[i] = (sep or " ").join([lines[i]] * min(draw(st.integers(2, 200)), max(2, 2000 // fields)))
        elif op == "blank":
            lines.insert(i, "")
    ending = draw(st.sampled_from(["\n", "\n", "\n", "\r\n", "\r"]))
    return ending.join(lines) + draw(st.sampled_from([ending, ""]))


def encoded(text_strategy) -> st.SearchStrategy[bytes]:
    """Text encoded as UTF-8 mostly, sometimes with a BOM, latin-1 or UTF-16."""
    def enc(args):
        text, how = args
        if how == "utf-8-sig":
            return b"\xef\xbb\xbf" + text.encode("utf-8", "surrogatepass")
        if how == "latin-1":
            return text.encode("latin-1", "replace")
        if how == "utf-16":
            return text.encode("utf-16", "surrogatepass")
        return text.encode("utf-8", "surrogatepass")
    return st.tuples(text_strategy, st.sampled_from(["utf-8"] * 6 + ["utf-8-sig", "latin-1", "utf-16"])).map(enc)


def near_valid_or_raw(base: list[str], sep: str = ",") -> st.SearchStrategy[bytes]:
    """A mutated valid file (most examples), the valid file itself, or raw bytes / text."""
    return st.one_of(
        encoded(mutated_lines(base, sep)),
        encoded(mutated_lines(base, sep)),
        encoded(mutated_lines(base, sep)),
        st.just("\n".join(base).encode() + b"\n"),
        st.binary(max_size=2000),
        encoded(st.text(max_size=400)),
    )


def _finite_rain(series) -> None:
    v = series.intensity_mm_h.to_numpy(float)
    assert np.isfinite(v).all() and (v >= 0).all(), "rain series with a non-finite or negative intensity"
    assert series.step_s > 0


# ----------------------------------------------------------------------------- .inp

_INP = """[TITLE]
fuzz model

[OPTIONS]
FLOW_UNITS CMS
ROUTING_STEP 0:00:30
START_DATE 01/01/2024
END_DATE 01/01/2024
END_TIME 02:00:00

[RAINGAGES]
RG1 INTENSITY 0:05 1.0 FILE rain.dat RG1 MM

[SUBCATCHMENTS]
S1 RG1 J1 1.2 50 120 1.5 0

[JUNCTIONS]
J1 10.0 2.0 0 0 0
J2 9.5 2.0 0 0 0

[OUTFALLS]
O1 9.0 FREE NO

[CONDUITS]
C1 J1 J2 80 0.013 0 0 0 0
C2 J2 O1 60 0.013 0 0 0 0

[XSECTIONS]
C1 CIRCULAR 0.5 0 0 0 1
C2 CIRCULAR 0.6 0 0 0 1

[FILES]
SAVE HOTSTART ../../out.hsf
USE RAINFALL rain.ifl

[COORDINATES]
J1 500000 3400000
J2 500080 3400040
O1 500140 3400000

[POLYGONS]
S1 499990 3399990
S1 500060 3399990
S1 500060 3400040
S1 499990 3400040
""".splitlines()


def _read_inp_all(indir: Path):
    from hydraulics.inp import check_model_values, read_inp, resolve_file_refs

    m = read_inp(indir / "model.inp")
    check_model_values(m)
    m.nodes(), m.links(), m.xsections(), m.subcatchments(), m.coordinates(), m.vertices(), m.polygons()
    m.to_text()
    work = Path(tempfile.gettempdir()) / "run"
    work.mkdir()
    _, _, outputs = resolve_file_refs(m, work)
    for target in outputs.values():  # every file the engine may write lands in the run folder
        assert target.parent == work, f"output {target} outside the run folder {work}"
    return m


def _check_inp(m) -> None:
    from hydraulics.inp import InpModel

    assert isinstance(m, InpModel) and m.sections


@fuzz("inp")
@given(data=near_valid_or_raw(_INP, sep=""))
@example(data=b"[JUNCTIONS]\nJ1 inf 2\n")
@example(data=b"[FILES]\nSAVE HOTSTART ../../../../tmp/x.hsf\nUSE RAINFALL /etc/passwd\n")
@example(data=b"[SUBCATCHMENTS]\nS1\n")  # a one-token row: IndexError in subcatchments()
@example(data=b"[FILES]\nUSE RAINFALL rain" + b"x" * 300 + b".ifl\n")  # ENAMETOOLONG from Path.exists
def test_fuzz_inp_reader(data):
    guarded("inp", {"model.inp": data}, _read_inp_all, _check_inp, setup=lambda d: (d / "rain.dat").write_text("x"))


def _import_inp_city(indir: Path):
    from hydraulics.gis import import_swmm_city

    return import_swmm_city(indir / "model.inp", "EPSG:32650")


def _check_city(city) -> None:
    from gisdata.city import CityTwin

    assert isinstance(city, CityTwin)
    for layer in ("nodes", "conduits", "subcatchments"):
        gdf = city.layer(layer)
        num = gdf.select_dtypes("number").to_numpy(float)
        assert np.isfinite(num).all(), f"{layer}: non-finite values got through"
    assert city.dem.values.size <= 50_000_000


_COORD_LINES = [i for i, ln in enumerate(_INP) if ln and ln.split()[0] in ("J1", "J2", "O1") and "5000" in ln]


@st.composite
def inp_far_coordinates(draw) -> bytes:
    """A valid model whose node coordinates are far apart, huge or non-finite."""
    lines = list(_INP)
    for i in _COORD_LINES:
        if "[" in lines[i]:
            continue
        name, x, y = lines[i].split()[:3]
        if draw(st.booleans()):
            x = draw(st.sampled_from(["1e7", "-1e7", "1e12", "1e308", "inf", "nan", "5e6", "0"]))
        if draw(st.booleans()):
            y = draw(st.sampled_from(["1e7", "-1e9", "1e15", "-1e308", "nan", "3.4e6"]))
        lines[i] = f"{name} {x} {y}"
    return "\n".join(lines).encode()


@fuzz("inp_city")
@given(data=st.one_of(inp_far_coordinates(), near_valid_or_raw(_INP, sep="")))
@example(data="\n".join(_INP).replace("J2 500080 3400040", "J2 5000000 34000000").encode())  # 10 TiB grid
@example(data="\n".join(_INP).replace("J2 500080 3400040", "J2 500080 3400000").encode())  # collinear: Qhull
@example(data="\n".join(_INP).replace("S1 499990 3399990", "S1 499990 1e999").encode())  # GEOS: NaN/Inf ring
@example(data="\n".join(_INP).replace("S1 499990 3399990", "S1 499990 3399990x").encode())  # GEOS: not closed
def test_fuzz_inp_import_as_city(data):
    guarded("inp_city", {"model.inp": data}, _import_inp_city, _check_city)


# ----------------------------------------------------------------------------- QPF CSV

_QPF = ["lead_h,RG1_mm_h,RG2_mm", "0,0,0", "1,4.5,1.2", "2,0.5,0", "3,0,0"]


def _read_qpf(indir: Path):
    from hydraulics.qpf import read_ensemble, read_qpf

    series = read_qpf(indir / "qpf.csv")
    read_ensemble(indir)  # the directory form: every *.csv a member
    return series


@st.composite
def qpf_timestamps(draw) -> bytes:
    rows = ["time,RG1_mm_h", "2024-07-01 00:00,0", "2024-07-01 01:00,3", "2024-07-01 02:00,0"]
    return draw(encoded(mutated_lines(rows)))


@fuzz("qpf")
@given(data=near_valid_or_raw(_QPF), stamped=qpf_timestamps(), issue=st.sampled_from(
    [None, "2024-07-01", "1677-09-21", "2262-04-11", "2024-07-01 00:30"]))
@example(data=b"lead_h,RG1_mm_h\n0,0\n1e12,1\n", stamped=b"time,RG1_mm_h\n", issue=None)
def test_fuzz_qpf_reader(data, stamped, issue):
    from hydraulics.qpf import read_qpf

    def call(indir):
        out = _read_qpf(indir)
        if issue is not None:
            try:
                read_qpf(indir / "stamped.txt", issue_time=issue)
            except TwinError:
                pass
        return out

    guarded("qpf", {"qpf.csv": data, "stamped.txt": stamped}, call, _finite_rain)


# ----------------------------------------------------------------------------- rain CSV, NCDC, IDF

_RAIN_CSV = ["time,RG1_mm_h,RG2_in", "2024-07-01 00:00,0,0", "2024-07-01 00:05,12.5,0.1",
             "2024-07-01 00:10,3,0.02", "2024-07-01 00:20,0,0"]
_RAIN_ELAPSED = ["elapsed_min,RG1_mm", "0,0", "5,1.5", "10,0"]


@fuzz("rain_csv")
@given(data=st.one_of(near_valid_or_raw(_RAIN_CSV), encoded(mutated_lines(_RAIN_ELAPSED))),
       missing=st.sampled_from(["raise", "zero"]), label=st.sampled_from(["start", "end"]))
@example(data=b"time,RG1_mm_h\n1900-01-01,1\n2200-01-01,1\n", missing="zero", label="start")
def test_fuzz_rain_csv_reader(data, missing, label):
    from hydraulics.rain_readers import read_rain_csv

    guarded("rain_csv", {"rain.csv": data},
            lambda d: read_rain_csv(d / "rain.csv", missing=missing, time_label=label), _finite_rain)


def _ncdc_base(name: str, n: int) -> list[str]:
    p = SHARED / "rain" / "ncdc_hourly" / name
    if p.exists():
        return p.read_text(encoding="latin-1").splitlines()[:n]
    return ["COOP:134101 20130101 01:00 0.00     g", "COOP:134101 20130110 22:00 0.10"]


_NCDC_ONLINE = _ncdc_base("ncdc_format_new.dat", 12)
_NCDC_TD3240 = _ncdc_base("sta310301.dat", 6)


@fuzz("ncdc")
@given(data=st.one_of(near_valid_or_raw(_NCDC_ONLINE, sep=" "), near_valid_or_raw(_NCDC_TD3240, sep=" ")),
       missing=st.sampled_from(["zero", "raise"]))
@example(data=b"COOP:134101 20130101 01:00 0.00 g\nCOOP:134101 99991231 23:00 0.10\n", missing="zero")
def test_fuzz_ncdc_reader(data, missing):
    from hydraulics.rain_readers import read_ncdc

    guarded("ncdc", {"rain.dat": data}, lambda d: read_ncdc(d / "rain.dat", missing=missing), _finite_rain)


def _shared_lines(rel: str, n: int, fallback: list[str]) -> list[str]:
    p = SHARED / rel
    return p.read_text(encoding="latin-1").splitlines()[:n] if p.exists() else fallback


_IDF = _shared_lines("rain/design_storms_9cities/Atlanta_IDF.csv", 6, ["Hour,1,2", "1,1.3,1.5", "2,1.6,1.9"])
_CURVES = _shared_lines("rain/design_storms_9cities/City_design_storms_v2.csv", 400,
                        ["time,A", "0,0", "12,50", "24,100"])


@fuzz("idf")
@given(idf=near_valid_or_raw(_IDF), curves=st.one_of(
    encoded(mutated_lines(_CURVES[:1] + _CURVES[1:4] + _CURVES[-2:])), st.binary(max_size=300)))
def test_fuzz_idf_and_storm_curve_readers(idf, curves):
    from hydraulics.rain_readers import read_design_storm_curves, read_idf_table

    def call(d):
        table = read_idf_table(d / "x_IDF.csv")
        try:
            frame = read_design_storm_curves(d / "curves.csv")
            assert np.isfinite(frame.to_numpy(float)).all()
        except TwinError:
            pass
        return table

    def check(table):
        assert np.isfinite(table.depth_mm.to_numpy(float)).all() and (table.depth_mm.to_numpy(float) > 0).all()

    guarded("idf", {"x_IDF.csv": idf, "curves.csv": curves}, call, check)


# ----------------------------------------------------------------------------- scenario TOML

def _scenario_base() -> list[str]:
    p = REPO / "scenarios" / "demo_storm_72h.toml"
    return [ln for ln in p.read_text(encoding="utf-8").splitlines()]


_TOML = _scenario_base()
_TOML_VALUES = st.one_of(
    st.sampled_from(["inf", "-inf", "nan", "+nan", "1e308", "1e309", "-1e400", "99999999999999999999999999",
                     "-9223372036854775809", "0", "-1", "0.0", "true", "\"\"", "\"../../../etc/passwd\"",
                     "\"/etc/passwd\"", "\"~/x.gpkg\"", "\"../x.inp\"", "\"日本語\"", "\"\\u0000\"",
                     "\"1e999 h\"", "\"nan h\"", "\"inf min\"", "\"-5 min\"", "\"3 parsecs\"", "\"9e9 mm\"",
                     "1979-05-27T07:32:00Z", "0000-01-01", "[]", "{}", "{a = 1}", "[1, \"a\", 2.5]",
                     "\"" + "a" * 5000 + "\"", "[" * 40 + "]" * 40, "[" * 2000 + "]" * 2000,
                     "{a = " * 40 + "1" + "}" * 40, "\"tcp://x:99999999\"", "\"all\"", "[\"all\", \"all\"]"]),
    st.integers(min_value=-10**20, max_value=10**20).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=10).map(json.dumps),
)
_TOML_SECTIONS = st.sampled_from([("[sweep]\nmethod = \"lhs\"\nsamples = 100000\nseeds = [1, 2, 3]\n"
                                   "parameters = {\"population.citizens\" = {min = 0, max = 1e308}}"),
                                  ("[sweep]\nparameters = {\"population.citizens\" = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}\n"
                                   "seeds = [" + ", ".join(map(str, range(2000))) + "]"),
                                  "[rain]\nkind = \"observed\"\nfile = \"../../../../etc/passwd\"",
                                  "[rain]\nkind = \"forecast\"\nfile = \"/dev/zero\"",
                                  "[rain]\nkind = [\"design\"]", "[city]\nsource = \"../../x.gpkg\"",
                                  "[city]\nsource = \"x.inp\"\ncrs = \"EPSG:999999\"",
                                  "[crews]\ndepots = {" + ", ".join(f"d{i} = 1" for i in range(300)) + "}",
                                  "[batch]\nscheduler = \"tcp://0.0.0.0:8786\"\nworkers = 100000",
                                  "[[scenario]]\nname = \"x\""])


@st.composite
def scenario_toml(draw) -> str:
    lines = list(_TOML)
    for _ in range(draw(st.integers(1, 3))):
        keyed = [i for i, ln in enumerate(lines) if "=" in ln and not ln.lstrip().startswith("#")] or [0]
        op = draw(st.sampled_from(["value", "value", "value", "key", "section", "append", "drop"]))
        i = draw(st.sampled_from(keyed))
        key = lines[i].split("=", 1)[0]
        if op == "value":
            lines[i] = f"{key}= {draw(_TOML_VALUES)}"
        elif op == "key":
            lines[i] = draw(st.sampled_from(['x', 'seed', '"a.b"', 'hours.x', '日本'])) + " = 1"
        elif op == "section":
            j = draw(st.sampled_from([k for k, ln in enumerate(lines) if ln.startswith("[")] or [0]))
            lines[j] = draw(st.sampled_from(["[x]", "[scenario.x]", "[[rain]]", "[rain.kind]", "[]", "[period]"]))
        elif op == "append":
            lines.append(draw(_TOML_SECTIONS))
        else:
            del lines[i]
    return "\n".join(lines) + "\n"


def _check_scenario(spec) -> None:
    from scenarios.schema import ScenarioSpec

    assert isinstance(spec, ScenarioSpec)
    assert 0 < spec.period.hours and math.isfinite(spec.period.hours)


@fuzz("scenario")
@given(data=st.one_of(encoded(scenario_toml()), encoded(scenario_toml()), encoded(mutated_lines(_TOML, sep="=")),
                      st.binary(max_size=1000), st.text(max_size=300).map(str.encode)))
@example(data=b"[scenario]\nname = \"x\"\n[rain]\nkind = {a = 1}\n")
@example(data=b"[scenario]\nname = \"x\"\n[period]\nhours = \"1e999 h\"\n")
@example(data=b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n")
def test_fuzz_scenario_toml(data):
    from scenarios.schema import load_scenario

    guarded("scenario", {"scenario.toml": data}, lambda d: load_scenario(d / "scenario.toml"), _check_scenario)


# ----------------------------------------------------------------------------- 311 CSV

_311 = [
    "unique_key,created_date,closed_date,complaint_type,descriptor,status,open_data_channel_type,latitude,longitude",
    "61276295,2024-05-27T02:08:51.000,,Street Condition,Pothole,Open,UNKNOWN,40.84735682050765,-73.93517137747149",
    "61279486,2024-05-27T01:27:34.000,2024-05-27T03:00:00.000,Noise - Street,Loud Music,Closed,PHONE,40.70,-73.90",
    "61279487,2024-05-27T01:29:00.000,,Street Flooding,Flooding,Open,ONLINE,,",
    "61279487,2024-05-27T04:00:00.000,,Illegal Parking,Blocked,Open,MOBILE,40.71,-73.91",
]


def _real_311() -> list[str]:
    p = SHARED / "reports" / "nyc311_sample_2024-05-27" / "311_Service_Requests.csv"
    return p.read_text(encoding="utf-8").splitlines()[:4] if p.exists() else _311


def _check_incidents(imp) -> None:
    from agents.incident_import import ImportedIncidents

    assert isinstance(imp, ImportedIncidents)
    df = imp.incidents
    loc = df["has_location"].to_numpy(bool)
    assert np.isfinite(df.loc[loc, ["x", "y"]].to_numpy(float)).all(), "a located incident without finite x, y"
    assert df.index.is_unique


@fuzz("incidents")
@given(data=st.one_of(near_valid_or_raw(_311), encoded(mutated_lines(_real_311()))))
@example(data=(_311[0] + "\n1,0,,Noise,,Open,,1e308,-1e308\n2,1e30,,Noise,,Open,,nan,inf\n").encode())
@example(data=(_311[0] + "\n,2024-05-27T01:00:00,,Noise,,Open,,40.7,-73.9\n,2024-05-27T02:00:00,,Noise,,Open,,40.7,-73.9\n"
               ).encode())  # records without an ID: NaN index entries, repeated
@example(data=(_311[0] + "\n" + _311[1] + "," + _311[1] + "\n" + _311[2] + "\n").encode())  # implicit MultiIndex
def test_fuzz_311_reader(data):
    from agents.incident_import import read_service_requests

    guarded("incidents", {"311.csv": data}, lambda d: read_service_requests(d / "311.csv"), _check_incidents)


# ----------------------------------------------------------------------------- GeoPackage

_GPKG_DIR = None


def _base_gpkg() -> Path:
    """A tiny city saved once (with its DEM), its R-tree triggers dropped so plain sqlite can edit it."""
    global _GPKG_DIR
    if _GPKG_DIR is None:
        from gisdata.city import save_city

        d = Path(tempfile.mkdtemp(prefix="citytwin-fuzz-gpkg-"))
        save_city(make_tiny_city(), d / "city.gpkg")
        with sqlite3.connect(d / "city.gpkg") as con:
            for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
                con.execute(f'DROP TRIGGER "{name}"')
        _GPKG_DIR = d
    return _GPKG_DIR


def _gpkg_point(x: float, y: float, srs: int = 32650) -> bytes:
    import struct

    return b"GP" + bytes([0, 1]) + struct.pack("<i", srs) + struct.pack("<BIdd", 1, 1, x, y)


_GEOMS = [
    b"", b"GP", b"\x00" * 40, b"GP\x00\x11" + b"\xe6\x7f\x00\x00",  # empty-geometry flag
    _gpkg_point(float("nan"), float("nan")), _gpkg_point(float("inf"), 0.0), _gpkg_point(1e308, -1e308),
    _gpkg_point(5e6, 3.4e7), _gpkg_point(-1e7, 1e7), _gpkg_point(500_000.0, 3_400_000.0, srs=4326),
    _gpkg_point(500_000.0, 3_400_000.0, srs=99999),
]
_SQL_VALUES = st.one_of(st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308, -1e308, -1, 0, 10**18,
                                         "", "abc", "1e999", "NaN", None, b"\x00\xff", "../../etc/passwd", "日本"]),
                        st.floats(), st.integers(min_value=-2**63, max_value=2**63 - 1), st.text(max_size=8))
_LAYERS = ["nodes", "conduits", "subcatchments", "roads", "buildings", "depots", "sensors", "districts",
           "vendor_sites"]


@st.composite
def gpkg_edits(draw):
    """A list of ('sql', statement, params) / ('bytes', offset, data) / ('dem', kind, arg) edits."""
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["value", "value", "value", "geom", "geom", "delete", "dropcol", "droptable",
                                   "srs", "bytes", "truncate", "nodem", "dembytes", "demsize"]))
        layer = draw(st.sampled_from(_LAYERS))
        if op == "value":
            edits.append(("value", layer, draw(st.integers(1, 6)), draw(_SQL_VALUES)))
        elif op == "geom":
            edits.append(("geom", layer, draw(st.integers(0, 6)), draw(st.sampled_from(_GEOMS))))
        elif op in ("delete", "dropcol", "droptable", "srs"):
            edits.append((op, layer, draw(st.integers(1, 6)), None))
        elif op in ("bytes", "dembytes"):
            edits.append((op, draw(st.integers(0, 200_000)), draw(st.binary(min_size=1, max_size=64)), None))
        elif op == "truncate":
            edits.append((op, draw(st.integers(0, 200_000)), None, None))
        elif op == "demsize":
            edits.append((op, draw(st.sampled_from([(100_000, 100_000), (1, 1), (3, 0), (70_000, 70_000)])), None,
                          None))
        else:
            edits.append((op, None, None, None))
    return edits


def _apply_gpkg_edits(indir: Path, edits) -> None:
    gpkg, dem = indir / "city.gpkg", indir / "city.dem.tif"
    for op, a, b, c in edits:
        if op in ("value", "geom", "delete", "dropcol", "droptable", "srs"):
            try:
                with sqlite3.connect(gpkg) as con:
                    cols = [r[1] for r in con.execute(f'PRAGMA table_info("{a}")').fetchall()]
                    data_cols = [x for x in cols if x not in ("fid", "geom", "geometry")]
                    if op == "value" and data_cols:
                        col = data_cols[b % len(data_cols)]
                        where, args = ("", (c,)) if b == 6 else (" WHERE fid = ?", (c, b))
                        con.execute(f'UPDATE "{a}" SET "{col}" = ?{where}', args)
                    elif op == "geom":
                        gcol = "geom" if "geom" in cols else "geometry"
                        con.execute(f'UPDATE "{a}" SET "{gcol}" = ?' + (" WHERE fid = ?" if b else ""),
                                    (c, b) if b else (c,))
                    elif op == "delete":
                        con.execute(f'DELETE FROM "{a}"' + (" WHERE fid > 1" if b % 2 else ""))
                    elif op == "dropcol" and data_cols:
                        con.execute(f'ALTER TABLE "{a}" DROP COLUMN "{data_cols[b % len(data_cols)]}"')
                    elif op == "droptable":
                        con.execute(f'DROP TABLE "{a}"')
                    elif op == "srs":
                        srs = [4326, 0, -1, 99999, 3857][b % 5]
                        con.execute("UPDATE gpkg_geometry_columns SET srs_id = ? WHERE table_name = ?", (srs, a))
            except sqlite3.Error:
                pass  # an edit the layout does not allow: the file stays as it was
        elif op in ("bytes", "dembytes"):
            target = gpkg if op == "bytes" else dem
            if target.exists():
                raw = bytearray(target.read_bytes())
                k = a % max(1, len(raw))
                raw[k:k + len(b)] = b
                target.write_bytes(bytes(raw))
        elif op == "truncate":
            raw = gpkg.read_bytes()
            gpkg.write_bytes(raw[: a % max(1, len(raw))])
        elif op == "nodem":
            dem.unlink(missing_ok=True)
        elif op == "demsize":
            import rasterio
            from affine import Affine

            dem.unlink(missing_ok=True)
            h, w = a
            if h and w:
                with rasterio.open(dem, "w", driver="GTiff", height=h, width=w, count=1, dtype="float64",
                                   crs="EPSG:32650", transform=Affine(1, 0, 499_980, 0, -1, 3_400_100),
                                   tiled=True, sparse_ok=True, compress="deflate"):
                    pass  # a sparse file: a few hundred bytes that claim h x w cells


def _check_gpkg_city(city) -> None:
    _check_city(city)
    for layer in _LAYERS:
        gdf = city.layer(layer)
        assert not gdf.geometry.is_empty.any(), f"{layer}: empty geometry got through"


@fuzz("gpkg")
@given(edits=gpkg_edits())
@example(edits=[("nodem", None, None, None), ("geom", "nodes", 1, _gpkg_point(5e6, 3.4e7))])
@example(edits=[("demsize", (100_000, 100_000), None, None)])
def test_fuzz_gpkg_city_reader(edits):
    from gisdata.city import load_city

    base = _base_gpkg()
    files = {"city.gpkg": (base / "city.gpkg").read_bytes(), "city.dem.tif": (base / "city.dem.tif").read_bytes()}
    guarded("gpkg", files, lambda d: load_city(d / "city.gpkg"), _check_gpkg_city,
            setup=lambda d: _apply_gpkg_edits(d, edits))


@fuzz("gpkg")
@given(data=st.one_of(st.binary(max_size=3000), st.just(b"SQLite format 3\x00" + b"\x00" * 84)))
def test_fuzz_gpkg_raw_bytes(data):
    from gisdata.city import read_city_gpkg

    guarded("gpkg", {"city.gpkg": data}, lambda d: read_city_gpkg(d / "city.gpkg"), _check_gpkg_city)


# ----------------------------------------------------------------------------- event log and manifest

def _make_run(folder: Path) -> Path:
    from twin import runstore

    with runstore.RunWriter(folder) as w:
        for i in range(3):
            w.log.append(60.0 * i, "report", f"citizen:{i}", x=1.0 * i, y=2.0, payload={"i": i, "s": "é"})
        return w.commit({"incidents": pd.DataFrame({"onset_s": [1.0, 2.0]})}, params={"seed": 1, "hours": 1},
                        kpis={"counts": {"incidents": 2}})


_RUN_DIR = None


def _base_run() -> Path:
    global _RUN_DIR
    if _RUN_DIR is None:
        d = Path(tempfile.mkdtemp(prefix="citytwin-fuzz-run-"))
        _RUN_DIR = _make_run(d / "r1")
    return _RUN_DIR


_JSON_HOSTILE = st.one_of(
    st.sampled_from([None, True, -1, 0, 2**63, 10**30, 1e308, -1e308, "", "../x", "/etc/passwd",
                     "..", "a/b", "NaN", "é", [], {}, [[[[[]]]]], {"a": {"b": {}}}, "0" * 64, "x" * 10_000]),
    st.integers(), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=10),
)
_JSON_LITERALS = [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"9" * 5000, b"[" * 3000 + b"]" * 3000,
                  b'"\\ud800"', b"\xff\xfe", b"{\"a\": 1, \"a\": 2}", b"0x10", b"01"]


@st.composite
def mutated_json(draw, doc: dict) -> bytes:
    """``doc`` with one to three nested fields replaced, removed or added; sometimes a raw literal spliced in."""
    doc = json.loads(json.dumps(doc))
    for _ in range(draw(st.integers(1, 3))):
        node, path = doc, []
        while isinstance(node, (dict, list)) and node and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else list(range(len(node)))))
            path.append((node, key))
            node = node[key]
        parent, key = path[-1] if path else (doc, draw(st.sampled_from(sorted(doc) or ["x"])))
        op = draw(st.sampled_from(["set", "set", "del", "add"]))
        if op == "set" or not isinstance(parent, dict):
            if isinstance(parent, list) and isinstance(key, int) and key < len(parent) or isinstance(parent, dict):
                parent[key] = copy.deepcopy(draw(_JSON_HOSTILE))  # sampled lists/dicts are shared: never edit them
        elif op == "del":
            parent.pop(key, None)
        else:
            parent[draw(st.text(max_size=6))] = copy.deepcopy(draw(_JSON_HOSTILE))
    text = json.dumps(doc, ensure_ascii=draw(st.booleans()))
    if draw(st.integers(0, 4)) == 0:  # splice a literal json.dumps cannot produce
        lit = draw(st.sampled_from(_JSON_LITERALS)).decode("latin-1")
        k = text.find(":", draw(st.integers(0, max(0, len(text) - 1))))
        if k >= 0:
            end = min([j for j in (text.find(",", k), text.find("}", k)) if j >= 0] or [len(text)])
            text = text[: k + 1] + " " + lit + text[end:]
    return text.encode("utf-8", "surrogatepass")


def _verify_log(indir: Path):
    from twin.eventlog import read_log, verify_log

    res = verify_log(indir / "events.jsonl", head_sha256="0" * 64, n_records=3)
    assert isinstance(res.ok, bool) and "\n" not in res.message
    try:
        read_log(indir / "events.jsonl")
    except TwinError:
        pass
    return res


def _event_lines() -> list[bytes]:
    return (_base_run() / "events.jsonl").read_bytes().splitlines()


@st.composite
def event_logs(draw) -> bytes:
    lines = _event_lines()
    op = draw(st.sampled_from(["record", "record", "record", "line", "drop", "dup", "swap", "truncate", "raw"]))
    i = draw(st.integers(0, len(lines) - 1))
    if op == "record":
        lines[i] = draw(mutated_json(json.loads(lines[i])))
    elif op == "line":
        lines[i] = draw(st.one_of(st.binary(max_size=200), st.sampled_from(_JSON_LITERALS)))
    elif op == "drop":
        del lines[i]
    elif op == "dup":
        lines.insert(i, lines[i])
    elif op == "swap":
        lines[0], lines[-1] = lines[-1], lines[0]
    elif op == "truncate":
        raw = b"\n".join(lines) + b"\n"
        return raw[: draw(st.integers(0, len(raw)))]
    else:
        return draw(st.binary(max_size=1000))
    return b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n"


@fuzz("eventlog")
@given(data=event_logs())
@example(data=b'{"sha256": "' + b"0" * 64 + b'", "x": 1e999}\n')
@example(data=b'{"actor": "\\ud800", "seq": 0}\n')  # a lone surrogate escape: UnicodeEncodeError in read_log
def test_fuzz_event_log_verify_and_read(data):
    guarded("eventlog", {"events.jsonl": data}, _verify_log)


def _read_run(indir: Path):
    from twin import runstore

    run = indir / "r1"
    check = runstore.verify_run(run)  # a verdict for any manifest, never an exception
    assert isinstance(check.ok, bool)
    man = runstore.read_manifest(run)
    for name in man.get("tables", {}):
        try:
            runstore.read_table(run, name)
        except TwinError:
            pass
    try:
        runstore.read_kpis(run)
    except TwinError:
        pass
    return man


def _run_files(manifest: bytes) -> dict[str, bytes]:
    base = _base_run()
    files = {f"r1/{p.name}": p.read_bytes() for p in base.iterdir() if p.is_file()}
    files["r1/manifest.json"] = manifest
    return files


@fuzz("manifest")
@given(data=st.one_of(st.builds(lambda: None).flatmap(lambda _: mutated_json(
    json.loads((_base_run() / "manifest.json").read_bytes()))), st.binary(max_size=600),
    st.sampled_from(_JSON_LITERALS)))
@example(data=b'{"status": "complete", "params": {}, "events": {"file": "../../../etc/passwd"}, "tables": {}}')
@example(data=b'{"status": "complete", "params": {}, "events": {}, "tables": {"../x": {}}}')
@example(data=b'{"status": "complete", "params": {"a": "\\udfff"}, "events": {}, "tables": {}}')  # lone surrogate
def test_fuzz_run_manifest_reader(data):
    guarded("manifest", _run_files(data), _read_run, lambda man: isinstance(man, dict) or pytest.fail("not a dict"))


# ----------------------------------------------------------------------------- sweep.json

def _sweep_doc() -> dict:
    from scenarios.batch import SWEEP_FORMAT

    return {"format": SWEEP_FORMAT, "status": "running", "scenario": {"scenario": {"name": "s", "seed": 0},
                                                                       "population": {"citizens": 10}},
            "runs": [{"run_id": "s-0000", "seed": 0, "params": {"population.citizens": 5}},
                     {"run_id": "s-0001", "seed": 1, "params": {"dispatch.merge_radius_m": 100.0}}],
            "failed": {"s-0001": "boom"}, "batch": {"workers": 2}}


def _read_sweep(indir: Path):
    from scenarios.batch import _plan_from_file, _read_sweep, sweep_state

    state = sweep_state(indir)
    assert state["status"] in ("running", "complete", "interrupted", "incomplete")
    plan = _plan_from_file(_read_sweep(indir))  # what a resumed batch runs
    return plan


@fuzz("sweep")
@given(data=st.one_of(mutated_json(_sweep_doc()), mutated_json(_sweep_doc()), st.binary(max_size=600),
                      st.sampled_from(_JSON_LITERALS)))
@example(data=json.dumps({**_sweep_doc(), "runs": [{"run_id": "../../x", "seed": 0}]}).encode())
@example(data=json.dumps({**_sweep_doc(), "runs": [{"run_id": "a", "seed": 0,
                                                     "params": {"scenario.name.x": 1}}]}).encode())
def test_fuzz_sweep_json_reader(data):
    guarded("sweep", {"sweep.json": data}, _read_sweep, lambda plan: isinstance(plan, list) or pytest.fail("plan"))


# ----------------------------------------------------------------------------- 2D surface inputs

_DOMAIN = None


def _domain():
    """A 40 x 30 cell DEM (5 m cells) with a nodata margin, read once."""
    global _DOMAIN
    if _DOMAIN is None:
        from affine import Affine

        from gisdata.raster import Raster, write_geotiff
        from hydraulics.surface2d_io import read_domain

        d = Path(tempfile.mkdtemp(prefix="citytwin-fuzz-dem-"))
        z = np.full((30, 40), 10.0)
        z[0, :] = np.nan
        write_geotiff(Raster(z, Affine(5.0, 0, 500_000.0, 0, -5.0, 3_400_150.0), "EPSG:32650", nodata=None),
                      d / "dem.tif")
        _DOMAIN = read_domain(d / "dem.tif")
    return _DOMAIN


_RAIN2D = ["time_s,mm_h", "0,10.0", "1800,40.0", "3600,0"]
_INFLOWS = ["name,x,y,time_s,q_m3s", "MH1,500100.0,3400050.0,0,0.0", "MH1,500100.0,3400050.0,600,0.25",
            "MH2,500150.5,3400080.0,0,0.1"]
_GAUGES = ["name,x,y", "a,500101.0,3400049.0", "b,500181.0,3400100.0"]


@fuzz("surface2d")
@given(which=st.sampled_from(["rain", "inflows", "gauges"]), data=st.data())
def test_fuzz_surface2d_inputs(which, data):
    from hydraulics.surface2d import PointSource, TimeSeries
    from hydraulics.surface2d_io import read_gauges_csv, read_inflows_csv, read_rain_csv

    base = {"rain": _RAIN2D, "inflows": _INFLOWS, "gauges": _GAUGES}[which]
    raw = data.draw(near_valid_or_raw(base))
    dom = _domain()

    def call(d):
        p = d / f"{which}.csv"
        if which == "rain":
            return read_rain_csv(p)
        if which == "inflows":
            return read_inflows_csv(p, dom)
        return read_gauges_csv(p, dom)

    def check(out):
        if which == "rain":
            assert isinstance(out, TimeSeries)
        elif which == "inflows":
            assert all(isinstance(s, PointSource) and not dom.outside[s.row, s.col] for s in out)
        else:
            assert ((out["row"] >= 0) & (out["row"] < dom.dem.shape[0])).all()
            assert not dom.outside[out["row"].to_numpy(), out["col"].to_numpy()].any()

    guarded("surface2d", {f"{which}.csv": raw}, call, check)
