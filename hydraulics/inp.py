"""SWMM ``.inp`` read and write: a section-preserving, tokenised model.

Why hand-written and not swmmio or the engine's API
---------------------------------------------------
* swmmio parses into DataFrames per section and writes them back normalised:
  it drops or reorders sections it does not model, rewrites number formats and
  pulls in a heavy stack; a round trip is not guaranteed to be what the engine
  read.
* swmm-toolkit (the engine) can read a model but cannot write one.
* A ``.inp`` is a list of ``[SECTION]`` blocks of whitespace-separated tokens
  (the engine's own ``getTokens``: ``;`` starts a comment, ``"..."`` groups a
  token with spaces).  Keeping exactly those token rows, in file order, is the
  most faithful model of what the engine reads, and it is ~300 lines.

So :func:`read_inp` keeps every section in order as rows of tokens (comments
dropped), and keeps ``[TITLE]``, ``[CONTROLS]`` and every section it does not
know verbatim (comments included).  :func:`write_inp` writes them back; running
the written file gives the same results as the original (tested over every
model in ``../shared/data/swmm``).

Each row remembers its source line, so an engine error "at line N" can be
traced, and :func:`prepare_run_text` can produce the run copy by rewriting only
the lines that hold file names or start/end times, keeping every other line of
the user's file byte for byte in place.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gisdata.paths import atomic_path
from hydraulics.errors import BinaryInpError, EmptyInpError, InpFileNotFoundError, InpParseError

# Section keywords as the engine matches them (by prefix, case-insensitive;
# SWMM 5.2 text.h).  Sections matching none of these are kept verbatim.
_ENGINE_SECTIONS = (
    "TITLE", "OPTION", "FILE", "RAINGAGE", "TEMPERATURE", "EVAP", "SUBCATCHMENT", "SUBAREA",
    "INFIL", "AQUIFER", "GROUNDWATER", "SNOWPACK", "JUNC", "OUTFALL", "STORAGE", "DIVIDER",
    "CONDUIT", "PUMP", "ORIFICE", "WEIR", "OUTLET", "XSECT", "TRANSECT", "LOSS", "CONTROL",
    "POLLUTANT", "LANDUSE", "BUILDUP", "WASHOFF", "COVERAGE", "INFLOW", "DWF", "PATTERN", "RDII",
    "HYDROGRAPH", "LOADING", "TREATMENT", "CURVE", "TIMESERIES", "REPORT", "COORDINATE",
    "VERTICES", "POLYGON", "SYMBOL", "LABEL", "BACKDROP", "TAG", "PROFILE", "MAP", "LID_CONTROL",
    "LID_USAGE", "GWF", "ADJUSTMENT", "EVENT", "STREET", "INLET",
)
# Free-text sections: the engine reads [TITLE] raw and rule text is best kept as written.
_VERBATIM_SECTIONS = ("TITLE", "CONTROL")

_HEADER_RE = re.compile(r"^\s*\[(?P<name>[^\]]+)\]")
_TOKEN_RE = re.compile(r'"(?P<q>[^"\n]*)"?|(?P<w>\S+)')

US_FLOW_UNITS = ("CFS", "GPM", "MGD")
SI_FLOW_UNITS = ("CMS", "LPS", "MLD")

FT_TO_M = 0.3048
"""Metres per foot."""
ACRE_TO_M2 = 4046.8564224
"""Square metres per acre."""
HECTARE_TO_M2 = 10_000.0
"""Square metres per hectare."""
FLOW_TO_CMS = {"CFS": 0.028316846592, "GPM": 6.30901964e-05, "MGD": 0.0438126364,
               "CMS": 1.0, "LPS": 0.001, "MLD": 1.0 / 86.4}
"""Cubic metres per second per unit of each SWMM FLOW_UNITS."""


def tokenize(line: str) -> list[str]:
    """Split one ``.inp`` line into tokens exactly as the engine does.

    ``;`` starts a comment anywhere (even inside quotes, as in the engine);
    a token opening with ``"`` runs to the next ``"``.

    Examples
    --------
    >>> tokenize('1  INTENSITY 0:05 1.0 FILE "my storm.dat" 1 MM ; gauge')
    ['1', 'INTENSITY', '0:05', '1.0', 'FILE', 'my storm.dat', '1', 'MM']
    """
    text = line.split(";", 1)[0]
    return [m.group("q") if m.group("q") is not None else m.group("w") for m in _TOKEN_RE.finditer(text)]


def format_token(token: str) -> str:
    """Quote a token if the engine would otherwise split it (spaces) or lose it (empty)."""
    if token == "" or any(c.isspace() for c in token) or token.startswith('"'):
        return f'"{token}"'
    return token


def format_row(tokens: list[str] | tuple[str, ...]) -> str:
    """One data line: tokens padded to 16 columns for readability, as the SWMM GUI writes them."""
    parts = [format_token(t) for t in tokens]
    return " ".join(p.ljust(16) for p in parts[:-1]) + (" " if len(parts) > 1 else "") + (parts[-1] if parts else "")


def canonical_section(name: str) -> str | None:
    """The engine keyword a section header matches (``"Polygons"`` -> ``"POLYGON"``), or None.

    The engine matches by prefix, case-insensitively: ``[FILE]``, ``[files]``,
    ``[FILESXYZ]`` and ``[Filez]`` are all its ``[FILES]`` section (checked
    against swmm-toolkit 0.17 = SWMM 5.2.4).

    Examples
    --------
    >>> canonical_section("files"), canonical_section("FILESXYZ"), canonical_section("FIL")
    ('FILE', 'FILE', None)
    """
    upper = name.strip().upper()
    for word in _ENGINE_SECTIONS:
        if upper.startswith(word):
            return word
    return None


def header_name(line: str) -> str | None:
    """The section name if the engine reads ``line`` as a section header, else None.

    The engine splits a line into tokens (quotes group, ``;`` starts a comment)
    and takes it as a header when the first token starts with ``[``.  So
    ``[FILES``, ``"[FILES]"``, ``[FILES];x`` and ``[FILE S]`` are headers too;
    the name is what follows ``[`` up to ``]``.

    Examples
    --------
    >>> header_name("[JUNCTIONS]"), header_name('"[Files]"'), header_name("[FILES"), header_name("x[FILES]")
    ('JUNCTIONS', 'Files', 'FILES', None)
    """
    tokens = tokenize(line)
    if not tokens or not tokens[0].startswith("["):
        return None
    m = _HEADER_RE.match(line)
    name = m.group("name") if m else tokens[0][1:].split("]", 1)[0]
    return name.strip()


@dataclass
class InpSection:
    """One ``[SECTION]`` block.

    Parameters
    ----------
    name : str
        Header as written, without brackets (``"Polygons"``).
    rows : list of list of str
        Data rows as token lists (tokenised sections only).
    lines : list of int
        1-based source line of each row (0 for rows added in code).
    verbatim : list of str or None
        Raw lines after the header, kept as written, for free-text and unknown
        sections; None for tokenised sections.
    header_line : int
        1-based source line of the header (0 if added in code).
    """

    name: str
    rows: list[list[str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    verbatim: list[str] | None = None
    header_line: int = 0

    @property
    def key(self) -> str:
        """Upper-case name, used for look-ups (``"POLYGONS"``)."""
        return self.name.strip().upper()

    @property
    def is_verbatim(self) -> bool:
        """True if the section is kept as raw text."""
        return self.verbatim is not None

    @property
    def canonical(self) -> str | None:
        """The engine keyword the header matches (``"FILE"`` for ``[files]``), or None if unknown."""
        return canonical_section(self.name)

    def matches(self, key: str) -> bool:
        """True if this is section ``key`` as the engine reads it (prefix, any case)."""
        want = canonical_section(key)
        return self.canonical == want if want is not None else self.key == key.strip().upper()


@dataclass
class FileRef:
    """A file name inside the model.

    Parameters
    ----------
    section : str
        Section key (``"RAINGAGES"``, ``"FILES"``, ``"TIMESERIES"``, ...).
    row : int
        Row index inside the section.
    token : int
        Token index of the file name in that row.
    path : str
        The file name as written.
    kind : str
        ``"input"`` (read by the engine) or ``"output"`` (written by it).
    line : int
        1-based source line (0 if unknown).
    """

    section: str
    row: int
    token: int
    path: str
    kind: str
    line: int


@dataclass
class InpModel:
    """A SWMM model as ordered sections of token rows.

    Parameters
    ----------
    sections : list of InpSection
        In file order; a name may repeat (the engine allows it).
    preamble : list of str
        Lines before the first header, verbatim.
    source : Path or None
        File it was read from; relative file names resolve against its folder.
    encoding : str
        Text encoding used to read (and to write back).
    text : str or None
        The original text (for line-preserving run copies).
    """

    sections: list[InpSection] = field(default_factory=list)
    preamble: list[str] = field(default_factory=list)
    source: Path | None = None
    encoding: str = "utf-8"
    text: str | None = None

    # ------------------------------------------------------------------ access
    def __contains__(self, key: str) -> bool:
        return any(s.matches(key) for s in self.sections)

    def section(self, key: str) -> InpSection | None:
        """The first section the engine reads as ``key`` (``"FILES"`` finds ``[file]``), or None."""
        for s in self.sections:
            if s.matches(key):
                return s
        return None

    def rows(self, key: str) -> list[list[str]]:
        """All token rows of every section the engine reads as ``key`` (empty if absent)."""
        return [r for s in self.sections if s.matches(key) and not s.is_verbatim for r in s.rows]

    def _rows_with_lines(self, key: str) -> Iterator[tuple[InpSection, int, list[str]]]:
        for s in self.sections:
            if s.matches(key) and not s.is_verbatim:
                for i, r in enumerate(s.rows):
                    yield s, i, r

    @property
    def base_dir(self) -> Path:
        """Folder that relative file names are resolved against (the model's folder, else cwd)."""
        return self.source.resolve().parent if self.source is not None else Path.cwd()

    @property
    def options(self) -> dict[str, str]:
        """``[OPTIONS]`` as upper-case key -> value text (later rows win, as in the engine)."""
        return {r[0].upper(): " ".join(r[1:]) for r in self.rows("OPTIONS") if r}

    @property
    def flow_units(self) -> str:
        """FLOW_UNITS (default CFS, as in the engine)."""
        value = self.options.get("FLOW_UNITS", "").split()
        return value[0].upper() if value else "CFS"

    @property
    def is_metric(self) -> bool:
        """True if the model uses SI units (CMS, LPS, MLD)."""
        return self.flow_units in SI_FLOW_UNITS

    @property
    def length_to_m(self) -> float:
        """Metres per model length unit (ft or m)."""
        return 1.0 if self.is_metric else FT_TO_M

    @property
    def area_to_m2(self) -> float:
        """Square metres per model area unit (acre or hectare)."""
        return HECTARE_TO_M2 if self.is_metric else ACRE_TO_M2

    @property
    def flow_to_cms(self) -> float:
        """m3/s per model flow unit."""
        return FLOW_TO_CMS.get(self.flow_units, 1.0)

    def nodes(self) -> pd.DataFrame:
        """Every node: index ``node_id``; ``swmm_type``, ``invert_elev``, ``max_depth`` (model units)."""
        out = []
        for r in self.rows("JUNCTIONS"):
            out.append((r[0], "junction", _f(r, 1), _f(r, 2)))
        for r in self.rows("OUTFALLS"):
            out.append((r[0], "outfall", _f(r, 1), 0.0))
        for r in self.rows("STORAGE"):
            out.append((r[0], "storage", _f(r, 1), _f(r, 2)))
        for r in self.rows("DIVIDERS"):
            out.append((r[0], "divider", _f(r, 1), _divider_max_depth(r)))
        df = pd.DataFrame(out, columns=["node_id", "swmm_type", "invert_elev", "max_depth"])
        return df.set_index("node_id")

    def links(self) -> pd.DataFrame:
        """Every link: index ``link_id``; ``swmm_type``, ``from_node``, ``to_node``, ``length`` (model units)."""
        out = []
        for key, kind in (("CONDUITS", "conduit"), ("PUMPS", "pump"), ("ORIFICES", "orifice"),
                          ("WEIRS", "weir"), ("OUTLETS", "outlet")):
            for r in self.rows(key):
                length = _f(r, 3) if kind == "conduit" else float("nan")
                out.append((r[0], kind, r[1] if len(r) > 1 else "", r[2] if len(r) > 2 else "", length))
        df = pd.DataFrame(out, columns=["link_id", "swmm_type", "from_node", "to_node", "length"])
        return df.set_index("link_id")

    def xsections(self) -> pd.DataFrame:
        """``[XSECTIONS]``: index ``link_id``; ``shape``, ``geom1`` (full height, model length unit)."""
        rows = [(r[0], r[1].upper() if len(r) > 1 else "", _f(r, 2)) for r in self.rows("XSECTIONS")]
        return pd.DataFrame(rows, columns=["link_id", "shape", "geom1"]).set_index("link_id")

    def subcatchments(self) -> pd.DataFrame:
        """``[SUBCATCHMENTS]``: index ``subcatchment_id``; raingage, outlet, area, imperv_pct, width, slope_pct."""
        rows = [(r[0], r[1] if len(r) > 1 else "", r[2] if len(r) > 2 else "", _f(r, 3), _f(r, 4), _f(r, 5), _f(r, 6))
                for r in self.rows("SUBCATCHMENTS")]
        cols = ["subcatchment_id", "raingage", "outlet", "area", "imperv_pct", "width", "slope_pct"]
        return pd.DataFrame(rows, columns=cols).set_index("subcatchment_id")

    def coordinates(self) -> pd.DataFrame:
        """``[COORDINATES]``: index ``node_id``; ``x``, ``y`` in map units."""
        rows = [(r[0], _f(r, 1), _f(r, 2)) for r in self.rows("COORDINATES")]
        return pd.DataFrame(rows, columns=["node_id", "x", "y"]).set_index("node_id")

    def vertices(self) -> dict[str, list[tuple[float, float]]]:
        """``[VERTICES]``: link ID -> interior points in order."""
        out: dict[str, list[tuple[float, float]]] = {}
        for r in self.rows("VERTICES"):
            out.setdefault(r[0], []).append((_f(r, 1), _f(r, 2)))
        return out

    def polygons(self) -> dict[str, list[tuple[float, float]]]:
        """``[POLYGONS]``: subcatchment (or storage) ID -> ring points in order."""
        out: dict[str, list[tuple[float, float]]] = {}
        for r in self.rows("POLYGONS"):
            out.setdefault(r[0], []).append((_f(r, 1), _f(r, 2)))
        return out

    def file_refs(self) -> list[FileRef]:
        """Every file or folder name the engine reads or writes.

        Matched as the engine matches them (keywords by prefix, any case):
        ``[FILES]`` ``USE``/``SAVE`` lines under any header the engine reads as
        ``[FILES]``, rain gage ``FILE`` sources, ``[TEMPERATURE] FILE``,
        ``[TIMESERIES] ... FILE``, ``[LID_USAGE]`` report files, and
        ``[OPTIONS] TEMPDIR`` (the folder of the engine's scratch files,
        ``kind="dir"``).
        """
        refs: list[FileRef] = []

        def add(s: InpSection, i: int, token: int, path: str, kind: str, section: str) -> None:
            refs.append(FileRef(section, i, token, path, kind, s.lines[i] if i < len(s.lines) else 0))

        for s, i, r in self._rows_with_lines("FILES"):
            if len(r) >= 3:
                mode = r[0].upper()
                if mode.startswith("USE"):
                    add(s, i, 2, r[2], "input", "FILES")
                elif mode.startswith("SAVE"):
                    add(s, i, 2, r[2], "output", "FILES")
        for s, i, r in self._rows_with_lines("RAINGAGES"):
            if len(r) >= 6 and r[4].upper().startswith("FILE"):
                add(s, i, 5, r[5], "input", "RAINGAGES")
        for s, i, r in self._rows_with_lines("TIMESERIES"):
            if len(r) >= 3 and r[1].upper() == "FILE":  # the engine compares this one exactly
                add(s, i, 2, r[2], "input", "TIMESERIES")
        for s, i, r in self._rows_with_lines("TEMPERATURE"):
            if len(r) >= 2 and r[0].upper().startswith("FILE"):
                add(s, i, 1, r[1], "input", "TEMPERATURE")
        for s, i, r in self._rows_with_lines("LID_USAGE"):
            if len(r) >= 9 and r[8] not in ("*", ""):
                add(s, i, 8, r[8], "output", "LID_USAGE")
        for s, i, r in self._rows_with_lines("OPTIONS"):
            if len(r) >= 2 and r[0].upper().startswith("TEMPDIR"):
                add(s, i, 1, r[1], "dir", "OPTIONS")
        return refs

    def copy(self) -> InpModel:
        """A deep copy (the model is plain data; edit the copy, never a shared one)."""
        return copy.deepcopy(self)

    def set_option(self, key: str, value: str) -> InpModel:
        """Return a copy with ``[OPTIONS] key value`` set (replaced in place or appended)."""
        new = self.copy()
        new.text = None  # the original text no longer describes the model
        key = key.upper()
        opts = new.section("OPTIONS")
        if opts is None:
            opts = InpSection("OPTIONS")
            new.sections.insert(1 if new.sections and new.sections[0].key == "TITLE" else 0, opts)
        for r in opts.rows:
            if r and r[0].upper() == key:
                r[1:] = [value]
                return new
        opts.rows.append([key, value])
        opts.lines.append(0)
        return new

    def to_text(self) -> str:
        """The model as ``.inp`` text (comments of tokenised sections are dropped)."""
        out: list[str] = list(self.preamble)
        for s in self.sections:
            if out and out[-1].strip():
                out.append("")
            out.append(f"[{s.name}]")
            if s.is_verbatim:
                out.extend(s.verbatim)
            else:
                out.extend(format_row(r) for r in s.rows)
        return "\n".join(out) + "\n"


_TEXT_SECTIONS = ("LABEL", "TAG", "BACKDROP", "PROFILE", "MAP")
"""Sections whose tokens are free text or ignored by the engine: not checked for numbers."""


def _c_number(token: str) -> float | None:
    """The value C's ``strtod`` reads from a whole token (as the engine does), or None if it is not a number."""
    t = token.strip()
    try:
        return float(t)
    except ValueError:
        pass
    if t.lstrip("+-").lower().startswith("0x"):  # strtod reads hex floats; Python's float() does not
        try:
            return float.fromhex(t)
        except OverflowError:
            return math.copysign(math.inf, -1.0 if t.startswith("-") else 1.0)
        except ValueError:
            return None
    return None


def check_model_values(model: InpModel) -> None:
    """Refuse numbers the engine would misread or crash on, before it runs.

    * A non-finite number anywhere the engine reads numbers (``inf``,
      ``nan``, ``1e400``, ``0x1p2000``): SWMM 5.2 reads them with ``strtod``
      and an infinite node elevation crashes the engine (segmentation fault)
      instead of raising an error.
    * A node invert elevation outside :data:`gisdata.limits.MIN_ELEVATION_M`
      .. :data:`~gisdata.limits.MAX_ELEVATION_M` (in the model's length unit):
      the engine runs such a model to "complete" without routing anything.

    Object names are never taken for numbers (a node may be called ``nan``).

    Raises
    ------
    InpValueError
        Naming the file, the line, the section and the token.
    """
    from gisdata.limits import MAX_ELEVATION_M, MIN_ELEVATION_M
    from hydraulics.errors import InpValueError

    where = str(model.source) if model.source is not None else "<model>"
    names = {r[0] for s in model.sections if not s.is_verbatim for r in s.rows if r}
    for s in model.sections:
        if s.is_verbatim or s.canonical is None or s.canonical in _TEXT_SECTIONS:
            continue
        for row, line in zip(s.rows, s.lines):
            for tok in row[1:]:
                if tok in names:
                    continue
                v = _c_number(tok)
                if v is not None and not math.isfinite(v):
                    raise InpValueError(f"{where}:{line}: [{s.name}] '{tok}' is not a finite number",
                                        file=where, section=s.name, line=line or None)
    lo, hi = MIN_ELEVATION_M / model.length_to_m, MAX_ELEVATION_M / model.length_to_m
    unit = "m" if model.is_metric else "ft"
    for key in ("JUNCTIONS", "OUTFALLS", "STORAGE", "DIVIDERS"):
        for s, i, r in model._rows_with_lines(key):
            v = _c_number(r[1]) if len(r) > 1 else None
            if v is not None and not lo <= v <= hi:
                line = s.lines[i] if i < len(s.lines) else 0
                raise InpValueError(f"{where}:{line}: [{s.name}] node '{r[0]}' invert elevation {r[1]} {unit} is out "
                                    f"of range; expected {lo:,.0f} - {hi:,.0f} {unit}", file=where, section=s.name,
                                    line=line or None)


def _f(row: list[str], i: int) -> float:
    try:
        return float(row[i])
    except (IndexError, ValueError):
        return float("nan")


def _divider_max_depth(r: list[str]) -> float:
    # Name Elev DivLink Type <type params> Ymax Y0 Ysur Apond; type params: OVERFLOW 0, CUTOFF 1, TABULAR 1, WEIR 3
    n_params = {"OVERFLOW": 0, "CUTOFF": 1, "TABULAR": 1, "WEIR": 3}.get(r[3].upper() if len(r) > 3 else "", 0)
    return _f(r, 4 + n_params)


# ---------------------------------------------------------------------------- read / write


def _decode(data: bytes, source: str) -> tuple[str, str]:
    if b"\x00" in data[:65536]:
        raise BinaryInpError(f"{source}: holds binary data (NUL bytes); expected a SWMM .inp text file",
                             file=source)
    for enc in ("utf-8", "cp1252", "latin-1"):
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError:
            continue
    raise BinaryInpError(f"{source}: cannot be decoded as text; expected a SWMM .inp file", file=source)


def parse_inp(text: str, *, source: Path | None = None, encoding: str = "utf-8") -> InpModel:
    """Parse ``.inp`` text into an :class:`InpModel`.

    Parameters
    ----------
    text : str
        File contents.
    source : Path, optional
        File the text came from (for messages and relative file names).
    encoding : str
        Encoding to write the model back with.

    Raises
    ------
    EmptyInpError
        If the text holds no ``[SECTION]`` header.
    BinaryInpError
        If the text holds NUL characters.
    """
    where = str(source) if source is not None else "<text>"
    if "\x00" in text:
        raise BinaryInpError(f"{where}: holds binary data (NUL bytes); expected a SWMM .inp text file", file=where)
    model = InpModel(source=source, encoding=encoding, text=text)
    current: InpSection | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        name = header_name(raw) if "[" in raw else None
        if name is not None:
            canon = canonical_section(name)
            verbatim = canon is None or canon in _VERBATIM_SECTIONS
            current = InpSection(name=name, verbatim=[] if verbatim else None, header_line=lineno)
            model.sections.append(current)
            continue
        if current is None:
            model.preamble.append(raw)
            continue
        if current.is_verbatim:
            current.verbatim.append(raw)
            continue
        tokens = tokenize(raw)
        if tokens:
            current.rows.append(tokens)
            current.lines.append(lineno)
    if not model.sections:
        what = "is empty" if not text.strip() else "holds no [SECTION] header"
        raise EmptyInpError(f"{where}: {what}; expected a SWMM .inp file with [OPTIONS], [JUNCTIONS], ...",
                            file=where)
    for s in model.sections:  # trailing blank lines of verbatim sections are layout, not content
        if s.is_verbatim:
            while s.verbatim and not s.verbatim[-1].strip():
                s.verbatim.pop()
    return model


def read_inp(path: str | Path) -> InpModel:
    """Read a SWMM ``.inp`` file.

    Parameters
    ----------
    path : str or Path
        The model file.

    Returns
    -------
    InpModel
        Sections in file order; see the module docstring for what is kept.

    Raises
    ------
    InpFileNotFoundError, EmptyInpError, BinaryInpError, InpParseError

    Examples
    --------
    >>> from pathlib import Path
    >>> m = read_inp(Path(__file__).resolve().parents[2] / "shared/data/swmm/epa_examples/Example1.inp")
    >>> m.flow_units, len(m.nodes()), len(m.links())
    ('CFS', 14, 13)
    """
    path = Path(path)
    if not path.exists():
        raise InpFileNotFoundError(f"{path}: SWMM model not found (expected a .inp file)")
    if path.is_dir():
        raise InpParseError(f"{path}: is a directory; expected a SWMM .inp file", file=str(path))
    data = path.read_bytes()
    text, enc = _decode(data, str(path))
    return parse_inp(text, source=path, encoding=enc)


def write_inp(model: InpModel, path: str | Path) -> Path:
    """Write ``model`` as a ``.inp`` file (written to a temporary name, then renamed).

    Parameters
    ----------
    model : InpModel
        The model.
    path : str or Path
        Target file.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(model.to_text(), encoding=model.encoding, errors="replace")
    return path


# ---------------------------------------------------------------------------- run copy


def replace_lines(text: str, changes: dict[int, str], appended: list[str] | None = None) -> str:
    """Replace whole lines of ``text`` (1-based ``{line: new}``), keeping all others in place.

    ``appended`` lines go after the end, so no existing line moves and the
    engine's "at line N" still points at the user's file.
    """
    lines = text.splitlines()
    for n, new in changes.items():
        lines[n - 1] = new
    if appended:
        lines.append("")
        lines.extend(appended)
    return "\n".join(lines) + "\n"


_SAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]")


def _safe_output_name(path: str) -> str:
    """The last component of ``path`` as a plain file name (no folders, no ``..``)."""
    name = _SAFE_NAME_RE.sub("_", path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1])
    return "output" if name.strip(".") == "" else name


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def resolve_file_refs(model: InpModel, work_dir: Path, *,
                      allowed_inputs: tuple[str | Path, ...] | list[str | Path] = ()
                      ) -> tuple[dict[int, str], list[FileRef], dict[str, Path]]:
    """Line replacements that make a copy of ``model`` runnable, and confined, in ``work_dir``.

    * Input files (rain, time series, climate, ``USE`` files, a hotstart to
      start from) become absolute, symlink-free paths.  They must lie in the
      model's own folder (or below it), or be one of ``allowed_inputs`` (a
      file, or a folder whose files are allowed): anything else is refused.
    * Output files (``SAVE`` files, LID reports) are redirected into
      ``work_dir`` by their bare name, so the engine never writes beside the
      user's file or anywhere else.
    * ``[OPTIONS] TEMPDIR`` (the engine's scratch folder) becomes ``work_dir``.

    Parameters
    ----------
    model : InpModel
        The model.
    work_dir : Path
        The run folder.
    allowed_inputs : sequence of str or Path
        Paths the user named explicitly (e.g. on the command line) that the
        model may read although they are outside its folder.

    Returns
    -------
    changes : dict
        1-based line -> replacement line.
    missing : list of FileRef
        Input files that do not exist.
    outputs : dict
        Output file name as written -> path in ``work_dir``.

    Raises
    ------
    ModelPathError
        An input file lies outside the model's folder and was not allowed;
        the message names the model file, the line and the path.
    """
    from hydraulics.errors import ModelPathError

    changes: dict[int, str] = {}
    missing: list[FileRef] = []
    outputs: dict[str, Path] = {}
    rows_by_line: dict[int, list[str]] = {}
    base = model.base_dir.resolve()
    allowed = [Path(a).expanduser().resolve() for a in allowed_inputs]
    work_dir = Path(work_dir)
    display = str(model.source) if model.source is not None else "<model>"
    row_at: dict[int, list[str]] = {}
    for s in model.sections:
        if not s.is_verbatim:
            for i, ln in enumerate(s.lines):
                if ln:
                    row_at[ln] = s.rows[i]
    for ref in model.file_refs():
        row = row_at.get(ref.line)
        if row is None or ref.line == 0:
            continue
        tokens = rows_by_line.setdefault(ref.line, list(row))
        if ref.kind == "input":
            p = Path(ref.path.replace("\\", "/"))
            resolved = (p if p.is_absolute() else base / p).resolve()
            if not (_inside(resolved, base) or any(_inside(resolved, a) for a in allowed)):
                raise ModelPathError(
                    f"{display}:{ref.line}: [{ref.section}] file '{ref.path}' resolves to {resolved}, outside the "
                    f"model's folder {base}; refused (put it beside the model or name it explicitly, e.g. --allow-read)",
                    file=display, line=ref.line, path=ref.path)
            try:
                exists = resolved.exists()
            except OSError:  # a name too long for the file system names no file
                exists = False
            if not exists:
                missing.append(ref)
            tokens[ref.token] = str(resolved)
        elif ref.kind == "dir":
            tokens[ref.token] = str(work_dir)
        else:
            name = _safe_output_name(ref.path)
            target = work_dir / name
            k = 1
            while target in outputs.values():
                target = work_dir / f"{k}_{name}"
                k += 1
            if target.parent != work_dir:  # cannot happen with a sanitised name; never write elsewhere
                raise ModelPathError(f"{display}:{ref.line}: [{ref.section}] output '{ref.path}' would be written "
                                     f"outside the run folder; refused", file=display, line=ref.line, path=ref.path)
            outputs[ref.path] = target
            tokens[ref.token] = str(target)
        changes[ref.line] = format_row(tokens)
    return changes, missing, outputs
