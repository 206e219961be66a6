"""Readers of rain files: NCDC/NWS hourly precipitation, CSV gauge records, IDF tables.

All readers convert to SI on the way in (mm, mm/h) and name the file and line
of any value they cannot use (:class:`RainFileError`).

NCDC formats (as SWMM 5's ``rain.c`` reads them):

- *online* (``ncdc_format_new.dat``): ``COOP:134101 20130101 01:00 0.00 g``,
  depth in inches (``units="in"``) per interval ending at the time, with a
  measurement flag and a quality flag in columns given by the header;
- *space-delimited TD-3240* (``sta310301.dat``): one line per day, ``COOPID CD
  HPCP HI YYYY MM DD`` then 25 groups ``HHMM VVVVVV F F`` of depth in hundredths of
  an inch per interval ending at ``HHMM`` (group ``2500`` is the daily total,
  skipped).

Flags: ``M`` or a value of 99999 (999.99 in) is missing; ``[``...``]`` brackets a
missing period and ``{``...``}`` a deleted one (every interval in between is
missing, listed or not); ``a``...``A`` brackets an accumulation whose total,
given at ``A``, is spread evenly over the period (as SWMM does).  Other flags
(``g`` start of record, ``T`` trace, quality flags) leave the value as it is.
Hours not listed had no rain.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from gisdata.errors import CorruptFileError, InputFileNotFoundError
from gisdata.limits import (
    MAX_RAIN_INTENSITY_MM_H,
    MAX_RAIN_SPAN_DAYS,
    MAX_RETURN_PERIOD_YR,
    MIN_RETURN_PERIOD_YR,
    LimitError,
    check_rain_grid,
)
from hydraulics.design_storms import IDFTable, cumulative_curve_storm
from hydraulics.rain_series import MM_PER_INCH, RainSeries, Storm

INTERVAL_S = {"HPCP": 3600, "QPCP": 900, "QGAG": 900}
"""Recording interval of each NCDC element code, s."""

UNIT_SUFFIXES = {"_mm_h": "mm_h", "_mmh": "mm_h", "_in_h": "in_h", "_mm": "mm", "_in": "in"}
"""CSV column-name suffixes and the unit each declares (intensity per hour or depth per interval)."""

ELAPSED_TIME_COLUMNS = {"elapsed_s": "s", "time_s": "s", "elapsed_min": "min", "time_min": "min",
                        "elapsed_h": "h", "time_h": "h", "hours": "h"}
"""CSV time-column names (any case) that hold time from the start of the record, and their unit."""

DATETIME_COLUMNS = ("time", "timestamp", "datetime", "date_time", "date")
"""CSV time-column names (any case) that hold date-times (any format pandas parses)."""

SECONDS_PER = {"s": 1.0, "min": 60.0, "h": 3600.0}
TIME_UNIT_WORDS = {"s": "seconds", "min": "minutes", "h": "hours"}

ACCEPTED_TIME_COLUMNS = ("accepted time columns: a date-time column (e.g. 'time', 'timestamp' or 'datetime', "
                         "values like 2024-07-01 08:00), or time from the start in 'elapsed_s' or 'time_s' "
                         "(seconds), 'elapsed_min' or 'time_min' (minutes), 'elapsed_h', 'time_h' or 'hours' (hours)")
"""What a refusal of a CSV's time column says it would have accepted."""


class RainFileError(CorruptFileError):
    """A rain file has a value or layout the reader cannot use; names the file and line.

    Attributes
    ----------
    path : Path
        The file.
    line : int or None
        1-based line number, where one applies.
    """

    def __init__(self, path: str | Path, line: int | None, message: str, *, detail: str | None = None,
                 key: str | None = None, **params) -> None:
        self.path = Path(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else f"{self.path}"
        # a catalogue key's fields also get ``where`` (the file's name and line, as the message starts)
        super().__init__(f"{where}: {message}", detail=detail, key=key,
                         where=f"{self.path.name}:{line}" if line is not None else self.path.name, **params)

    def __reduce__(self):  # keep path, line and message across processes (the default would pass one string)
        params = {k: v for k, v in self.params.items() if k != "where"}
        return _rain_file_error, (type(self), str(self.path), self.line, self.message, self.detail, self.key, params)


def _rain_file_error(cls, path, line, message, detail, key="", params=None):
    return cls(path, line, message, detail=detail or None, key=key or None, **(params or {}))


@dataclass
class _Record:
    station: str
    end: pd.Timestamp
    depth_in: float  # nan when missing
    flag: str
    line: int


def _checked_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputFileNotFoundError(f"{path}: rain file not found")
    if path.is_dir():
        raise RainFileError(path, None, "is a directory; expected a rain data file")
    return path


def _open_lines(path: str | Path) -> tuple[Path, list[str]]:
    path = _checked_path(path)
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise RainFileError(path, None, "cannot be read", detail=f"{type(exc).__name__}: {exc}") from exc
    return path, text.splitlines()


# ----------------------------------------------------------------------------- NCDC

_TD3240 = re.compile(r"^(\d{6}) (\d{2}) (HPCP|QPCP|QGAG) (\w\w) (\d{4}) (\d{2}) (\d{2})")


def read_ncdc(path: str | Path, *, missing: Literal["zero", "raise"] = "zero",
              units: Literal["in", "mm"] = "in") -> RainSeries:
    """Read an NCDC/NWS hourly or 15-minute precipitation file (either format, detected).

    Parameters
    ----------
    path : str or Path
        The ``.dat`` file.
    missing : {"zero", "raise"}
        What to do with missing or deleted intervals: count them as no rain (as
        SWMM does; their number goes to ``meta["missing_steps"]``) or raise.
    units : {"in", "mm"}
        Depth unit of the *online* format's values (the file does not say);
        TD-3240 files declare theirs (only ``HI``, hundredths of an inch, is known).

    Returns
    -------
    RainSeries
        Timestamped (interval start, local standard time), one column per
        station ID, intensity in mm/h.

    Raises
    ------
    InputFileNotFoundError, RainFileError
    """
    path, lines = _open_lines(path)
    if missing not in ("zero", "raise"):
        raise ValueError(f"missing={missing!r}; expected 'zero' or 'raise'")
    head = "\n".join(lines[:6])
    if "COOP:" in head:
        records, interval = _parse_online(path, lines, units)
        fmt = "ncdc_online"
    else:
        records, interval = _parse_td3240(path, lines)
        fmt = "ncdc_td3240"
    if not records:
        raise RainFileError(path, None, "holds no precipitation records")
    frames, n_missing, n_accum = {}, 0, 0
    for station in dict.fromkeys(r.station for r in records):
        depth, miss, acc = _station_series(path, [r for r in records if r.station == station], interval)
        if miss.any() and missing == "raise":
            first = depth.index[np.argmax(miss.to_numpy())]
            raise RainFileError(path, None, f"station {station}: interval starting {first} is missing "
                                            "(pass missing='zero' to count it as no rain)")
        frames[station] = depth.fillna(0.0) * (MM_PER_INCH * 3600.0 / interval)
        n_missing += int(miss.sum())
        n_accum += acc
    frame = pd.DataFrame(frames)
    _check_grid(path, (frame.index.max() - frame.index.min()).total_seconds(), interval, frame.shape[1])
    full = pd.date_range(frame.index.min(), frame.index.max(), freq=pd.Timedelta(seconds=interval), name="time")
    frame = frame.reindex(full).fillna(0.0)  # stations may cover different periods
    meta = {"format": fmt, "missing_steps": n_missing, "accumulated_periods": n_accum}
    meta["time_note"] = time_note(meta)
    return RainSeries(frame, step_s=interval, label=path.stem, source=str(path), meta=meta)


def _parse_online(path: Path, lines: list[str], units: str) -> tuple[list[_Record], int]:
    if units not in ("in", "mm"):
        raise ValueError(f"units={units!r}; expected 'in' or 'mm'")
    header = lines[0] if lines else ""
    elem = next((e for e in INTERVAL_S if e in header), None)
    if elem is None:
        raise RainFileError(path, 1, f"header names no precipitation element {list(INTERVAL_S)}")
    value_col = header.index(elem)
    flag_col = header.find("Measurement Flag")
    to_in = 1.0 if units == "in" else 1.0 / MM_PER_INCH
    records = []
    for no, line in enumerate(lines, start=1):
        if "COOP:" not in line:
            if no > 1 and line.strip(" -\t"):
                raise RainFileError(path, no, "expected a 'COOP:<id> YYYYMMDD HH:MM value' data line")
            continue
        m = re.match(r"\s*COOP:(\S+)\s+(\d{8})\s+(\d{1,2}):(\d{2})\s*$", line[:value_col])
        if m is None:
            raise RainFileError(path, no, f"expected 'COOP:<id> YYYYMMDD HH:MM' before column {value_col + 1}, "
                                          f"got {line[:value_col].strip()!r}")
        station, date, hh, mm = m.groups()
        end = _end_time(path, no, date[:4], date[4:6], date[6:], hh, mm)
        text = line[value_col:flag_col if flag_col > value_col else None].split()
        if not text:
            raise RainFileError(path, no, f"no {elem} value in column {value_col + 1}")
        try:
            v = float(text[0])
        except ValueError:
            raise RainFileError(path, no, f"{elem} value {text[0]!r} is not a number") from None
        flag = line[flag_col:flag_col + 16].strip()[:1] if flag_col >= 0 else ""
        is_missing = flag == "M" or v >= 999.0
        if not is_missing and v < 0:
            raise RainFileError(path, no, f"{elem} value {v} is negative")
        records.append(_Record(station, end, np.nan if is_missing else v * to_in, flag, no))
    return records, INTERVAL_S[elem]


def _parse_td3240(path: Path, lines: list[str]) -> tuple[list[_Record], int]:
    records, interval = [], None
    for no, line in enumerate(lines, start=1):
        m = _TD3240.match(line)
        if m is None:
            if records or interval is not None:
                if line.strip():
                    raise RainFileError(path, no, "not a TD-3240 data line "
                                                  "('COOPID CD ELEM UN YYYY MM DD' then 'HHMM VALUE F F' groups)")
                continue
            continue  # header lines before the first record
        station, _, elem, unit, y, mo, d = m.groups()
        if unit != "HI":
            raise RainFileError(path, no, f"unit code '{unit}' is not supported; expected 'HI' (hundredths of an inch)")
        if interval is None:
            interval = INTERVAL_S[elem]
        elif INTERVAL_S[elem] != interval:
            raise RainFileError(path, no, f"element {elem} mixes recording intervals in one file")
        k = 28
        while k + 12 <= len(line.rstrip()):
            group = line[k:k + 16]
            k += 16
            hhmm, val = group[1:5], group[6:12]
            if not hhmm.strip():
                break
            if not (hhmm.isdigit() and val.strip().lstrip("-").isdigit()):
                raise RainFileError(path, no, f"column {k - 15}: expected 'HHMM VVVVVV', got {group[:12]!r}")
            if hhmm == "2500":  # daily total
                continue
            flag = group[13:14].strip()
            v = int(val)
            end = _end_time(path, no, y, mo, d, hhmm[:2], hhmm[2:])
            is_missing = flag == "M" or v >= 9999
            if not is_missing and v < 0:
                raise RainFileError(path, no, f"value {v} at {hhmm} is negative")
            records.append(_Record(station, end, np.nan if is_missing else v / 100.0, flag, no))
    if interval is None:
        raise RainFileError(path, None, "no NCDC data line found (neither the online 'COOP:' format nor TD-3240)")
    return records, interval


def _end_time(path: Path, no: int, y, mo, d, hh, mm) -> pd.Timestamp:
    try:
        day = pd.Timestamp(int(y), int(mo), int(d))
    except ValueError as exc:
        raise RainFileError(path, no, f"invalid date {y}-{mo}-{d} ({exc})") from None
    h, mi = int(hh), int(mm)
    if not (0 <= h <= 24 and 0 <= mi < 60) or (h == 24 and mi):
        raise RainFileError(path, no, f"invalid time {hh}:{mm}; expected 00:00 ... 24:00")
    return day + pd.Timedelta(hours=h, minutes=mi)  # 24:00 and next-day 00:00 end the same hour


def _station_series(path: Path, recs: list[_Record], interval: int) -> tuple[pd.Series, pd.Series, int]:
    """Depth per interval (inches, NaN = missing), the missing mask, and the accumulation count."""
    step = pd.Timedelta(seconds=interval)
    starts = [r.end - step for r in recs]
    _check_grid(path, (max(starts) - min(starts)).total_seconds(), interval, 1)
    index = pd.date_range(min(starts), max(starts), freq=step, name="time")
    pos = {t: i for i, t in enumerate(index)}
    depth = np.zeros(len(index))
    missing = np.zeros(len(index), dtype=bool)
    seen: dict[int, int] = {}
    open_gap: tuple[int, str, int] | None = None  # (position, flag, line) of '[' or '{'
    accum_start: int | None = None
    n_accum = 0
    for rec, start in zip(recs, starts, strict=True):
        i = pos.get(start)
        if i is None:  # e.g. 09:10 in an hourly record
            raise RainFileError(path, rec.line, f"station {rec.station}: interval ending {rec.end} is not on the "
                                                f"{interval} s grid of the record starting {min(starts)}")
        if i in seen:
            raise RainFileError(path, rec.line, f"station {rec.station}: interval ending {rec.end} "
                                                f"is also given on line {seen[i]}")
        seen[i] = rec.line
        if rec.flag in ("[", "{"):
            open_gap = (i, rec.flag, rec.line)
        if rec.flag in ("]", "}"):
            lo = open_gap[0] if open_gap else i
            missing[lo:i + 1] = True
            open_gap = None
            continue
        if rec.flag == "a" and open_gap is None:  # its value is a placeholder
            accum_start = i
            continue
        if open_gap is not None or np.isnan(rec.depth_in):
            missing[i] = True
            continue
        if rec.flag == "A":
            lo = accum_start if accum_start is not None else i
            depth[lo:i + 1] = rec.depth_in / (i + 1 - lo)  # SWMM spreads the total evenly
            accum_start = None
            n_accum += 1
            continue
        depth[i] = rec.depth_in
    if open_gap is not None:
        raise RainFileError(path, open_gap[2], f"'{open_gap[1]}' opens a missing/deleted period that never closes")
    out = pd.Series(np.where(missing, np.nan, depth), index=index)
    return out, pd.Series(missing, index=index), n_accum


# ----------------------------------------------------------------------------- any rain file

RAIN_FILE_FORMATS = ("auto", "csv", "ncdc")
"""Formats :func:`read_rain_file` reads; ``auto`` tells them apart by their content."""


def rain_file_format(path: str | Path) -> str:
    """``"ncdc"`` if the file's first lines are NCDC precipitation records (either layout), else ``"csv"``."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(8192).decode("latin-1")
    except OSError:
        return "csv"  # the reader names the problem
    lines = head.splitlines()[:12]
    if any("COOP:" in ln for ln in lines) or any(_TD3240.match(ln) for ln in lines):
        return "ncdc"
    return "csv"


def read_rain_file(path: str | Path, *, format: str = "auto", units: str | None = None,
                   missing: Literal["zero", "raise"] | None = None) -> RainSeries:
    """Read an observed rain record: a CSV of gauge columns or an NCDC precipitation file.

    The one reader behind the workbench's rain upload and the CLI's ``--rain``.

    Parameters
    ----------
    path : str or Path
        The file.
    format : {"auto", "csv", "ncdc"}
        ``auto`` (default) reads an NCDC file (online ``COOP:`` layout or
        TD-3240) as NCDC and anything else as CSV (:func:`read_rain_csv`).
    units : {"mm_h", "in_h", "mm", "in"}, optional
        CSV only: unit of gauge columns whose name carries no unit suffix.
    missing : {"zero", "raise"}, optional
        Missing values: default ``raise`` for a CSV (an empty cell) and
        ``zero`` for NCDC (flagged gaps count as no rain, as SWMM does).

    Returns
    -------
    RainSeries
        ``meta["format"]`` says what was read and ``meta["time_note"]`` where
        the times came from.

    Raises
    ------
    InputFileNotFoundError, RainFileError
    """
    if format not in RAIN_FILE_FORMATS:
        raise ValueError(f"format={format!r}; expected one of {RAIN_FILE_FORMATS}")
    path = _checked_path(path)
    fmt = rain_file_format(path) if format == "auto" else format
    if fmt == "ncdc":
        return read_ncdc(path, missing=missing or "zero")
    return read_rain_csv(path, units=units, missing=missing or "raise")


def read_rain_files(paths, *, units: str | None = None, missing: Literal["zero", "raise"] | None = None) -> RainSeries:
    """Read one or more rain files (:func:`read_rain_file`) as one series, gauges side by side.

    Several files are put on the finest step among them (depth conserved);
    outside a file's own record its gauges have no rain.

    Raises
    ------
    RainFileError
        A file cannot be read, or the files cannot be put together: some with
        dates and some without, or one gauge ID in two files.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("read_rain_files: no file given")
    series = [read_rain_file(p, units=units, missing=missing) for p in paths]
    if len(series) == 1:
        return series[0]
    from hydraulics.rain_series import combine_gauges

    dated = [p.name for p, s in zip(paths, series) if s.is_timestamped]
    if dated and len(dated) < len(series):
        undated = [p.name for p, s in zip(paths, series) if not s.is_timestamped]
        raise RainFileError(paths[0], None, f"files {dated} have dates but {undated} only time from the start; "
                                            "give every file the same kind of time column")
    seen: dict[str, Path] = {}
    for p, s in zip(paths, series):
        for g in s.gauges:
            if g in seen:
                raise RainFileError(p, 1, f"gauge '{g}' is also in {seen[g].name}; each gauge belongs to one file")
            seen[g] = p
    out = combine_gauges(series, label="+".join(p.name for p in paths))
    notes = sorted({s.meta.get("time_note", "") for s in series} - {""})
    meta = {"format": "+".join(dict.fromkeys(s.meta.get("format", "?") for s in series)),
            "files": ",".join(str(p) for p in paths), "time_note": "; ".join(notes)}
    return dataclasses.replace(out, meta=meta)


# ----------------------------------------------------------------------------- CSV


def read_rain_csv(path: str | Path, *, time_col: str | None = None, units: str | None = None,
                  time_label: Literal["start", "end"] = "start", step_s: int | None = None,
                  missing: Literal["zero", "raise"] = "raise") -> RainSeries:
    """Read gauge records from a CSV file: a time column, then one column per gauge.

    Parameters
    ----------
    path : str or Path
        The CSV file (header row first).
    time_col : str, optional
        Name of the time column.  By default the column is found by its name
        (any case): date-times (any format pandas parses) in ``time``,
        ``timestamp``, ``datetime``, ``date_time`` or ``date`` (a ``date`` and a
        ``time`` column together make one date-time), or time from the start in
        ``elapsed_s``/``time_s`` (seconds), ``elapsed_min``/``time_min``
        (minutes) or ``elapsed_h``/``time_h``/``hours`` (hours; decimal minutes
        and hours are rounded to whole seconds).  With no such name, the first
        column, read as date-times.  The series' ``meta`` says which column was
        used (``time_column``, ``time_unit``, ``time_note``: e.g. "time from
        column 'time_min' (minutes from the start)"); a refusal lists the
        accepted time columns (:data:`ACCEPTED_TIME_COLUMNS`).
    units : {"mm_h", "in_h", "mm", "in"}, optional
        Unit of columns whose name carries no suffix: intensity per hour
        (``mm_h``, ``in_h``) or depth per interval (``mm``, ``in``).  A suffix in
        the column name (``RG1_mm_h``, ``RG2_in``) declares the unit of that
        column, and the gauge ID is the name without it.
    time_label : {"start", "end"}
        Whether a row's time is the start or the end of its interval.
    step_s : int, optional
        Interval, s; default the smallest spacing of the times.  Times must be
        a whole number of steps apart; skipped intervals count as no rain.
    missing : {"raise", "zero"}
        Empty cells: raise (default) or count as no rain (counted in
        ``meta["missing_steps"]``).

    Raises
    ------
    InputFileNotFoundError, RainFileError
        With the line number of a bad time or value and the column it is in.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "gauge.csv"
    >>> _ = p.write_text("time_min,RG1_mm\\n0,0.5\\n5,1.0\\n10,0\\n")
    >>> rain = read_rain_csv(p)
    >>> rain.step_s, float(rain.max_depth_mm), rain.meta["time_note"]
    (300, 1.5, "time from column 'time_min' (minutes from the start)")
    """
    path = _checked_path(path)
    if time_label not in ("start", "end"):
        raise ValueError(f"time_label={time_label!r}; expected 'start' or 'end'")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise RainFileError(path, None, "not a readable CSV file (a header row, then one row per time)",
                            key="err.rain.not_csv", detail=f"{type(exc).__name__}: {exc}") from exc
    lineno = np.arange(len(df)) + 2  # header is line 1
    blank = (df == "").all(axis=1).to_numpy()
    df, lineno = df[~blank], lineno[~blank]
    if df.empty:
        raise RainFileError(path, None, "holds no data rows", key="err.rain.no_rows")
    tcols, tunit, ignored = _time_columns(path, list(df.columns), time_col)
    gauge_cols = [c for c in df.columns if c not in tcols and c not in ignored]
    if not gauge_cols:
        if time_col is None and not _is_time_name(tcols[0]):
            raise RainFileError(path, 1, f"found only column '{tcols[0]}'; expected a time column, then one column "
                                         f"per rain gauge; {ACCEPTED_TIME_COLUMNS}",
                                  key="err.rain.only_column", column=tcols[0])
        raise RainFileError(path, 1, "no gauge columns besides the time column", key="err.rain.no_gauges")
    col_units = {col: _column_unit(path, col, units) for col in gauge_cols}  # header errors first

    shown = df[tcols[0]] if len(tcols) == 1 else df[tcols[0]] + " " + df[tcols[1]]
    named = " and ".join(f"'{c}'" for c in tcols)
    if tunit != "datetime":
        raw = df[tcols[0]].str.strip()
        t = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float) * SECONDS_PER[tunit]
        bad = ~np.isfinite(t)
        if bad.any():
            k = int(np.argmax(bad))
            raise RainFileError(path, int(lineno[k]), f"time {raw.iloc[k]!r} in column {named} is not a number of "
                                                      f"{TIME_UNIT_WORDS[tunit]} from the start",
                                  key="err.rain.time_not_number", value=repr(raw.iloc[k]), column=named)
        if (t < 0).any():
            k = int(np.argmax(t < 0))
            raise RainFileError(path, int(lineno[k]), f"time {raw.iloc[k]!r} in column {named} is negative; "
                                                      "expected time from the start, >= 0")
        if tunit != "s":  # decimal minutes or hours (0.0833 h): to whole seconds
            t = np.round(t)
        far = t > MAX_RAIN_SPAN_DAYS * 86400.0  # an offset of centuries is refused before any grid
        if far.any():
            k = int(np.argmax(far))
            raise RainFileError(path, int(lineno[k]), f"time {raw.iloc[k]!r} in column {named} is "
                                                      f"{t[k] / 86400.0:,.0f} d from the start; expected at most "
                                                      f"{MAX_RAIN_SPAN_DAYS:,g} d (MAX_RAIN_SPAN_DAYS)")
    else:
        t = pd.to_datetime(shown, errors="coerce", format="mixed")
        bad = t.isna().to_numpy()
        if bad.any() and len(tcols) == 2 and not pd.to_datetime(df[tcols[1]], errors="coerce", format="mixed").isna().any():
            tcols, ignored = [tcols[1]], [*ignored, tcols[0]]  # 'time' holds whole date-times; 'date' repeats them
            shown, named = df[tcols[0]], f"'{tcols[0]}'"
            t = pd.to_datetime(shown, errors="coerce", format="mixed")
            bad = t.isna().to_numpy()
        if bad.any():
            k = int(np.argmax(bad))
            value = shown.iloc[k]
            if tunit == "datetime" and time_col is None and not _is_time_name(tcols[0]) and _is_float(value):
                raise RainFileError(path, int(lineno[k]), f"column {named} holds numbers, not date-times, and its "
                                                          "name does not say their unit (name it e.g. 'time_min' "
                                                          f"for minutes from the start); {ACCEPTED_TIME_COLUMNS}")
            raise RainFileError(path, int(lineno[k]), f"time {value!r} in column {named} cannot be read as a "
                                                      f"date-time; {ACCEPTED_TIME_COLUMNS}",
                                  key="err.rain.time_column", value=repr(value), column=named)
    secs = t - t[0] if tunit != "datetime" else (t - t.iloc[0]).dt.total_seconds().to_numpy()
    secs = np.asarray(secs, dtype=float)
    d = np.diff(secs)
    if (d <= 0).any():
        k = int(np.argmax(d <= 0)) + 1
        raise RainFileError(path, int(lineno[k]), f"time {shown.iloc[k]!r} in column {named} does not come after "
                                                  "the previous row", key="err.rain.time_order",
                                  value=repr(shown.iloc[k]), column=named)
    step = int(step_s) if step_s else (int(round(d.min())) if len(d) else None)
    if step is None or step <= 0:
        raise RainFileError(path, None, "one row gives no time step; give at least two rows (or step_s)")
    off = secs / step
    irregular = np.abs(off - np.round(off)) > 1e-6
    if irregular.any():
        k = int(np.argmax(irregular))
        raise RainFileError(path, int(lineno[k]), f"time {shown.iloc[k]!r} in column {named} is not a whole number "
                                                  f"of {step} s steps after the first row")
    _check_grid(path, float(secs[-1]), step, len(gauge_cols))
    slot = np.round(off).astype(int)

    values, n_missing = {}, 0
    for col in gauge_cols:
        gauge, unit = col_units[col]
        raw = df[col].str.strip()
        num = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        empty = (raw == "").to_numpy()
        nonnum = np.isnan(num) & ~empty
        if nonnum.any():
            k = int(np.argmax(nonnum))
            raise RainFileError(path, int(lineno[k]), f"column '{col}': {raw.iloc[k]!r} is not a number",
                                    key="err.rain.not_a_number", column=col, value=repr(raw.iloc[k]))
        if np.isinf(num).any():
            k = int(np.argmax(np.isinf(num)))
            raise RainFileError(path, int(lineno[k]), f"column '{col}': {raw.iloc[k]!r} is not a finite number")
        if empty.any():
            if missing == "raise":
                k = int(np.argmax(empty))
                raise RainFileError(path, int(lineno[k]), f"column '{col}' is empty (pass missing='zero' "
                                                          "to count it as no rain)")
            n_missing += int(empty.sum())
            num = np.where(empty, 0.0, num)
        neg = num < 0
        if neg.any():
            k = int(np.argmax(neg))
            raise RainFileError(path, int(lineno[k]), f"column '{col}': {num[k]} is negative; expected rain >= 0")
        factor = {"mm_h": 1.0, "in_h": MM_PER_INCH, "mm": 3600.0 / step, "in": MM_PER_INCH * 3600.0 / step}[unit]
        if gauge in values:
            raise RainFileError(path, 1, f"gauge '{gauge}' appears in more than one column")
        rate = num * factor
        if (rate > MAX_RAIN_INTENSITY_MM_H).any():
            k = int(np.argmax(rate > MAX_RAIN_INTENSITY_MM_H))
            raise RainFileError(path, int(lineno[k]), f"column '{col}': {raw.iloc[k]} is {rate[k]:,.6g} mm/h; "
                                                      f"expected at most {MAX_RAIN_INTENSITY_MM_H:g} mm/h "
                                                      "(MAX_RAIN_INTENSITY_MM_H)")
        full = np.zeros(slot[-1] + 1)
        full[slot] = rate
        values[gauge] = full
    shift = -step if time_label == "end" else 0
    if tunit != "datetime":
        index = pd.Index((round(float(t[0])) + shift + np.arange(slot[-1] + 1) * step).astype("int64"),
                         name="elapsed_s")
    else:
        index = pd.DatetimeIndex(t.iloc[0] + pd.to_timedelta(shift + np.arange(slot[-1] + 1) * step, unit="s"),
                                 name="time")
    meta = {"format": "csv", "missing_steps": n_missing, "time_column": "+".join(tcols), "time_unit": tunit}
    if ignored:
        meta["time_columns_ignored"] = ",".join(ignored)
    meta["time_note"] = time_note(meta)
    return RainSeries(pd.DataFrame(values, index=index), step_s=step, label=path.stem, source=str(path), meta=meta)


def time_note(meta) -> str:
    """Where a series' times came from, in words, from a reader's ``meta`` (``""`` if it does not say).

    Examples
    --------
    >>> time_note({"format": "csv", "time_column": "time_min", "time_unit": "min"})
    "time from column 'time_min' (minutes from the start)"
    >>> time_note({"format": "ncdc_online"})
    "time from the NCDC record's dates and hours (each value ends at its hour, local standard time)"
    """
    fmt = str(meta.get("format", ""))
    if fmt.startswith("ncdc"):
        return "time from the NCDC record's dates and hours (each value ends at its hour, local standard time)"
    column, unit = str(meta.get("time_column", "")), str(meta.get("time_unit", ""))
    if not column:
        return ""
    cols = " and ".join(f"'{c}'" for c in column.split("+"))
    what = "date and time" if unit == "datetime" else f"{TIME_UNIT_WORDS.get(unit, unit)} from the start"
    note = f"time from column{'s' if '+' in column else ''} {cols} ({what})"
    ignored = str(meta.get("time_columns_ignored", ""))
    if ignored:
        note += "; also a time column, not used: " + ", ".join(f"'{c}'" for c in ignored.split(","))
    return note


def _check_grid(path: Path, span_s: float, step_s: float, n_gauges: int) -> None:
    """Refuse a record whose regular grid would be too large, before it is allocated (see gisdata.limits)."""
    try:
        check_rain_grid("rain record", span_s, step_s, n_gauges)
    except LimitError as exc:
        raise RainFileError(path, None, str(exc).removeprefix("rain record: ")) from None


def _is_time_name(col) -> bool:
    name = str(col).strip().lower()
    return name in ELAPSED_TIME_COLUMNS or name in DATETIME_COLUMNS


def _time_columns(path: Path, columns: list, time_col: str | None) -> tuple[list, str, list]:
    """(time column(s), unit: "datetime", "s", "min" or "h", other time columns left unused).

    By name: the first column called like :data:`ELAPSED_TIME_COLUMNS` or
    :data:`DATETIME_COLUMNS` (any case); a ``date`` column and a ``time`` column
    together are read as one date-time.  With no such name, the first column,
    read as date-times.
    """
    norm = {c: str(c).strip().lower() for c in columns}
    if time_col is not None:
        if time_col not in columns:
            raise RainFileError(path, 1, f"no time column '{time_col}'; columns are {list(columns)}")
        return [time_col], ELAPSED_TIME_COLUMNS.get(norm[time_col], "datetime"), []
    known = [c for c in columns if _is_time_name(c)]
    if not known:
        return [columns[0]], "datetime", []
    by_name = {norm[c]: c for c in reversed(known)}
    if "date" in by_name and "time" in by_name and norm[known[0]] in ("date", "time"):
        pair = [by_name["date"], by_name["time"]]
        return pair, "datetime", [c for c in known if c not in pair]
    first = known[0]
    return [first], ELAPSED_TIME_COLUMNS.get(norm[first], "datetime"), known[1:]


def _column_unit(path: Path, col: str, units: str | None) -> tuple[str, str]:
    for suffix, unit in sorted(UNIT_SUFFIXES.items(), key=lambda kv: -len(kv[0])):
        if col.endswith(suffix) and len(col) > len(suffix):
            return col[: -len(suffix)], unit
    if units is None:
        raise RainFileError(path, 1, f"column '{col}' declares no unit; add a suffix "
                                     f"{list(UNIT_SUFFIXES)} or pass units=")
    if units not in ("mm_h", "in_h", "mm", "in"):
        raise ValueError(f"units={units!r}; expected 'mm_h', 'in_h', 'mm' or 'in'")
    return col, units


# ----------------------------------------------------------------------------- IDF tables


def _read_numeric_table(path: Path, lines: list[str], first_header: str) -> tuple[list[float], list[list[float]]]:
    rows = [(no, ln) for no, ln in enumerate(lines, start=1) if ln.strip()]
    if not rows:
        raise RainFileError(path, None, "is empty")
    hno, header = rows[0]
    cells = [c.strip() for c in header.split(",")]
    if cells[0].lower() != first_header:
        raise RainFileError(path, hno, f"first header cell is {cells[0]!r}; expected '{first_header}'")
    if len(cells) < 2:
        raise RainFileError(path, hno, "no value columns after the first header cell")
    try:
        cols = [float(c) for c in cells[1:]] if first_header == "hour" else cells[1:]
    except ValueError:
        raise RainFileError(path, hno, f"return periods {cells[1:]} must be numbers (years)") from None
    if first_header == "hour" and not all(MIN_RETURN_PERIOD_YR <= c <= MAX_RETURN_PERIOD_YR for c in cols):
        raise RainFileError(path, hno, f"return periods {cells[1:]} must be {MIN_RETURN_PERIOD_YR:g} - "
                                       f"{MAX_RETURN_PERIOD_YR:g} years")
    data = []
    for no, ln in rows[1:]:
        parts = [c.strip() for c in ln.split(",")]
        if len(parts) != len(cells):
            raise RainFileError(path, no, f"has {len(parts)} fields; the header has {len(cells)}")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            bad = next(p for p in parts if not _is_float(p))
            raise RainFileError(path, no, f"{bad!r} is not a number") from None
        if not all(math.isfinite(v) for v in values):
            raise RainFileError(path, no, f"{next(p for p, v in zip(parts, values) if not math.isfinite(v))!r} "
                                          "is not a finite number")
        data.append(values)
    if not data:
        raise RainFileError(path, None, "holds no data rows after the header")
    return cols, data


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def read_idf_table(path: str | Path, *, units: Literal["in", "mm"] = "in", name: str | None = None) -> IDFTable:
    """Read a depth-duration-frequency table: ``Hour,<P1>,<P2>,...`` then one row per duration.

    Parameters
    ----------
    path : str or Path
        CSV such as ``Atlanta_IDF.csv`` (durations in hours, return periods in
        years, depths in inches, e.g. from NOAA Atlas 14).
    units : {"in", "mm"}
        Unit of the depths in the file.
    name : str, optional
        Label; default the file stem without ``_IDF``.

    Raises
    ------
    RainFileError
        On a non-numeric cell, a ragged row, a depth <= 0, or depths that fall
        with duration or return period.
    """
    path, lines = _open_lines(path)
    periods, data = _read_numeric_table(path, lines, "hour")
    arr = np.array(data, dtype=float)
    line_of = [no for no, ln in enumerate(lines, start=1) if ln.strip()][1:]
    for k in range(len(arr)):
        if (arr[k, 1:] <= 0).any() or (np.diff(arr[k, 1:]) < 0).any():
            raise RainFileError(path, line_of[k], "depths must be > 0 and grow with the return period")
        if k and (arr[k, 0] <= arr[k - 1, 0] or (arr[k, 1:] < arr[k - 1, 1:]).any()):
            raise RainFileError(path, line_of[k], "durations must increase and depths must not fall with duration")
    factor = MM_PER_INCH if units == "in" else 1.0
    frame = pd.DataFrame(arr[:, 1:] * factor, index=pd.Index(arr[:, 0], name="duration_h"),
                         columns=pd.Index(periods, name="return_period_yr"))
    return IDFTable(frame, name=name or path.stem.removesuffix("_IDF"))


def read_design_storm_curves(path: str | Path) -> pd.DataFrame:
    """Read dimensionless cumulative storm curves: ``time,<city>,...``, hours and percent.

    Returns
    -------
    pandas.DataFrame
        Cumulative fraction (0 ... 1) indexed by ``time_h``, one column per curve.

    Raises
    ------
    RainFileError
        On a non-numeric cell, a curve that falls, or one not running 0 ... 100 %.
    """
    path, lines = _open_lines(path)
    names, data = _read_numeric_table(path, lines, "time")
    arr = np.array(data, dtype=float)
    line_of = [no for no, ln in enumerate(lines, start=1) if ln.strip()][1:]
    for k in range(1, len(arr)):
        if arr[k, 0] <= arr[k - 1, 0] or (arr[k, 1:] < arr[k - 1, 1:] - 1e-9).any():
            raise RainFileError(path, line_of[k], "times must increase and cumulative percentages must not fall")
    if arr[0, 0] != 0 or np.abs(arr[0, 1:]).max() > 1e-9 or np.abs(arr[-1, 1:] - 100).max() > 1e-6:
        raise RainFileError(path, None, "curves must start at time 0 with 0 % and end at 100 %")
    frame = pd.DataFrame(arr[:, 1:] / 100.0, index=pd.Index(arr[:, 0], name="time_h"), columns=names)
    return frame


def design_storm_for_city(data_dir: str | Path, city: str, return_period_yr: float, *,
                          step_min: float = 6, gauge: str = "RG1") -> Storm:
    """24 h design storm of a city of the NOAA set: depth from ``<city>_IDF.csv``, shape from
    ``City_design_storms_v2.csv`` (the NRCS type of the city).

    Parameters
    ----------
    data_dir : str or Path
        Folder with both files, e.g. ``../shared/data/rain/design_storms_9cities``.
    city : str
        File stem and column, e.g. ``"Atlanta"``, ``"New_Orleans"``.
    return_period_yr : float
        Return period, years.
    """
    data_dir = Path(data_dir)
    table = read_idf_table(data_dir / f"{city}_IDF.csv")
    curves = read_design_storm_curves(data_dir / "City_design_storms_v2.csv")
    if city not in curves.columns:
        raise RainFileError(data_dir / "City_design_storms_v2.csv", 1,
                            f"no curve for '{city}'; has {list(curves.columns)}")
    depth = table.depth_for(float(curves.index[-1]), return_period_yr)
    storm = cumulative_curve_storm(depth, curves[city], step_min=step_min, gauge=gauge,
                                   return_period_yr=float(return_period_yr),
                                   label=f"{city} P={return_period_yr:g} yr 24 h", method="idf_table")
    return storm
