"""`twin simulate`, `twin compare`, `twin replay`, `twin log verify` and `twin reports import`.

The commands parse arguments and call library functions: :mod:`twin.coupler`
(the coupled run), :mod:`twin.runstore` (runs on disk), :mod:`twin.replay`,
:mod:`twin.eventlog` and :func:`agents.read_service_requests`.  User errors are
:class:`~gisdata.errors.TwinError`: one line, exit code 2.  ``twin log verify``
exits 1 when a log has been tampered with.
"""

from __future__ import annotations

import math
from pathlib import Path

import click

from gisdata.errors import TwinError
from gisdata.limits import (
    MAX_CITIZENS,
    MAX_COUPLING_STEP_S,
    MAX_CREWS,
    MAX_RETURN_PERIOD_YR,
    MAX_SCENARIO_HOURS,
    MAX_STORM_DURATION_MIN,
    MAX_RECORD_TIME,
    MAX_VENDORS,
    MIN_COUPLING_STEP_S,
    MIN_RECORD_TIME,
    MIN_RETURN_PERIOD_YR,
    check_range,
)
from twin.commands.swmm import Duration, observed_rain, parse_duration_s, rain_options


def _parse_crews(text: str | None):
    """``40`` (total) or ``drainage=5,police=3`` (per department) -> int or dict."""
    from gisdata.schema import DEPARTMENTS

    if text is None:
        return None
    text = text.strip()
    if "=" not in text:
        try:
            n = int(text)
        except ValueError:
            raise TwinError(f"--crews '{text}' not understood; expected a number or department=N,...") from None
        check_range("--crews", n, 1, MAX_CREWS * len(DEPARTMENTS), integer=True)
        return n
    out = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in DEPARTMENTS:
            raise TwinError(f"--crews: unknown department '{name}'; expected one of {list(DEPARTMENTS)}")
        try:
            n = int(value)
        except ValueError:
            raise TwinError(f"--crews: '{part}' needs a whole number of crews") from None
        check_range(f"--crews {name}", n, 0, MAX_CREWS, integer=True)
        out[name] = n
    return out


def _bar(enabled: bool, desc: str):
    """(callback(fraction), close()) for a tqdm bar on stderr, or no-ops."""
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=1000, desc=desc, unit="‰", leave=False)

    def update(f: float) -> None:
        bar.update(max(0, round(f * 1000) - bar.n))

    return update, bar.close


@click.command("simulate")
@click.option("--city", default="demo", show_default=True, help="City: preset (demo, small, large), GeoPackage or OSM extract.")
@click.option("--hours", type=float, default=24.0, show_default=True, help="Simulated hours from midnight.")
@click.option("--strategy", default="priority", show_default=True,
              help="Dispatch strategy: siloed, nearest, priority, assignment, forecast_staging.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of every random stream.")
@click.option("--storm", type=click.Choice(["none", "chicago"]), default="none", show_default=True,
              help="Couple SWMM with a design storm.")
@click.option("--return-period", "return_period", type=float, default=20.0, show_default=True,
              help="Return period of the storm, years.")
@click.option("--duration", "duration_s", type=Duration(), default="2h", show_default=True, help="Storm duration.")
@click.option("--start-at", "start_at", default="7h", show_default=True,
              help="When the storm starts: hours after midnight (7, 7h, 07:30).")
@click.option("--idf", default="beijing", show_default=True, help="IDF formula preset of the storm.")
@click.option("--citizens", type=int, default=2000, show_default=True, help="Citizens simulated.")
@click.option("--vendors", type=int, default=50, show_default=True, help="Street vendors.")
@click.option("--crews", default=None, help="Crews: a total (40) or per department (drainage=5,police=3); default the depots'.")
@click.option("--risk-points", "risk_points", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Forecast risk points (risk_points.csv of `twin forecast`) where forecast_staging stages crews; "
                   "default: the storm's hydraulic risk map.")
@click.option("--coupling-step", "coupling_s", type=Duration(), default="300s", show_default=True,
              help="Interval of the flood-state exchange.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Run folder to create (runs/<run_id>).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
@rain_options
def simulate_command(city, hours, strategy, seed, storm, return_period, duration_s, start_at, idf, citizens,
                     vendors, crews, risk_points, coupling_s, out, progress, rain_files=(), rain_units=None,
                     rain_start=None, rain_hours=None) -> None:
    """Simulate a day of the city (agents, dispatch and, with --storm or --rain, SWMM) into a run folder.

    Writes OUT/manifest.json, the tables as Parquet, kpis.json and the
    hash-chained event log events.jsonl; the folder appears only when complete.

    \b
    Examples:
      twin simulate --city demo --hours 24 --strategy siloed --seed 1 --out runs/r1
      twin simulate --city demo --strategy priority --storm chicago --return-period 100 \\
          --duration 2h --start-at 7 --out runs/storm1
      twin simulate --city demo --strategy forecast_staging --storm chicago --risk-points fc/risk_points.csv \\
          --out runs/staged
      twin simulate --city demo --rain gauges.csv --start-at 7 --out runs/observed

    --rain replays observed rain (CSV or NCDC; see twin swmm run --help): its
    first interval falls at --start-at, and it must end within --hours.

    forecast_staging stages crews at the --risk-points table's risk points,
    else at the manholes the storm floods (SWMM runs once, first), else, with
    neither, at the manholes with water-level sensors (a warning says so).
    """
    from agents import get_strategy
    from gisdata.city import load_city
    from twin.coupler import CouplingOptions, run_coupled, strategy_params_for
    from twin.runstore import RunExistsError, write_coupled_run

    check_range("--hours", hours, 0, MAX_SCENARIO_HOURS, "h", lo_inclusive=False)
    check_range("--citizens", citizens, 0, MAX_CITIZENS, integer=True)
    check_range("--vendors", vendors, 0, MAX_VENDORS, integer=True)
    check_range("--coupling-step", coupling_s, MIN_COUPLING_STEP_S, MAX_COUPLING_STEP_S, "s")
    if seed < 0:
        raise TwinError(f"--seed {seed} must be >= 0")
    crew_spec = _parse_crews(crews)
    start_s = _hours_s(start_at, "--start-at")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunExistsError(f"{out}: already exists; runs are never overwritten (choose another --out)")
    from gisdata.paths import check_id, check_out_dir

    check_out_dir(out, "--out")  # writable, before the simulation rather than after it
    check_id(out.name, "run id (the --out folder's name)")
    observed = observed_rain(rain_files, rain_units, rain_start, rain_hours,
                             design={"storm": "--storm", "return_period": "--return-period",
                                     "duration_s": "--duration", "idf": "--idf"})
    city_obj = load_city(city)
    rain = None
    rain_lines: list[str] = []
    if observed is not None:
        from twin.flood_event import match_rain_gauges, rain_summary_lines

        rain_lines = rain_summary_lines(observed, match_rain_gauges(city_obj, observed))
        if not start_s < hours * 3600:
            raise TwinError(f"--start-at {start_at} must be before the end of the run ({hours:g} h)")
        if start_s + observed.duration_s > hours * 3600 + 1e-6:
            raise TwinError(f"--rain: the rain lasts {observed.duration_s / 60:g} min from --start-at {start_at}, past "
                            f"the end of the run ({hours:g} h); give more --hours or a shorter --rain-hours")
        rain = observed.to_elapsed()  # the run's clock puts its first interval at --start-at
    if storm == "chicago" and observed is None:
        from hydraulics.rainfall import chicago_storm

        check_range("--return-period", return_period, MIN_RETURN_PERIOD_YR, MAX_RETURN_PERIOD_YR, "yr")
        check_range("--duration", duration_s / 60.0, 0, MAX_STORM_DURATION_MIN, "min", lo_inclusive=False)
        rain = chicago_storm(idf, return_period, duration_s / 60.0)
        if not start_s < hours * 3600:
            raise TwinError(f"--start-at {start_at} must be before the end of the run ({hours:g} h)")
    get_strategy(strategy, **(strategy_params_for(city_obj, strategy) or {}))  # unknown name -> exit 2 now
    risk_table = None
    if risk_points is not None:
        from twin.staging import read_risk_points, table_sha256

        if strategy != "forecast_staging":
            raise TwinError(f"--risk-points is used only by --strategy forecast_staging (got '{strategy}')")
        risk_table = read_risk_points(risk_points, city_obj)  # bad table -> exit 2 before any run
    if observed is not None:
        storm_params = _observed_params(observed, rain_files, rain_start, rain_hours, start_s)
    else:
        storm_params = None if rain is None else {
            "kind": storm, "idf": idf, "return_period_yr": return_period, "duration_s": duration_s, "start_s": start_s}
    params = {"city": city, "hours": hours, "strategy": strategy, "seed": seed, "n_citizens": citizens,
              "n_vendors": vendors, "crews": crew_spec, "storm": storm_params, "coupling_step_s": coupling_s,
              "risk_points": None if risk_points is None else {"file": str(risk_points),
                                                               "sha256": table_sha256(risk_points)}}
    opts = CouplingOptions(coupling_step_s=coupling_s)
    update, close = _bar(progress, f"simulate {strategy}")

    def run(event_sink, progress):
        return run_coupled(city_obj, hours=hours, strategy=strategy, seed=seed, rain=rain, start_s=start_s,
                           options=opts, event_sink=event_sink, progress=progress, n_citizens=citizens,
                           n_vendors=vendors, crews=crew_spec, risk_points=risk_table)

    try:
        path = write_coupled_run(out, run, params=params, city=city_obj, progress=update)
    finally:
        close()
    from twin.runstore import read_manifest

    man = read_manifest(path)
    for line in rain_lines:
        click.echo(line)
    click.echo(f"wrote {path}: {man['events']['n_records']} events, head {man['events']['head_sha256'][:12]}")
    staging = (man.get("metadata", {}).get("coupler") or {}).get("staging") or {}
    if staging.get("source"):
        click.echo(f"staging: {staging['n_points']} risk point(s) from {staging['source']}")
    if staging.get("warning"):
        click.echo(f"warning: {staging['warning']}", err=True)
    click.echo(_format_compare([path]))


def _observed_params(rain, files, rain_start, rain_hours, start_s: float) -> dict:
    """The run manifest's record of ``--rain``: the files (with their SHA-256), the window and the rain's figures."""
    import hashlib

    first = rain.intensity_mm_h.index[0]
    return {"kind": "observed", "label": rain.label, "return_period_yr": None,
            "files": [{"file": str(f), "sha256": hashlib.sha256(Path(f).read_bytes()).hexdigest()} for f in files],
            "rain_start": rain_start, "rain_hours": rain_hours,
            "record_start": str(first) if rain.is_timestamped else int(first), "gauges": list(rain.gauges),
            "step_s": rain.step_s, "duration_s": rain.duration_s, "depth_mm": round(rain.max_depth_mm, 3),
            "peak_mm_h": round(rain.max_peak_mm_h, 3), "start_s": start_s}


def _hours_s(text: str, name: str) -> float:
    text = str(text).strip()
    try:
        v = float(text)
    except ValueError:
        try:
            v = parse_duration_s(text) / 3600.0
        except ValueError as exc:
            raise TwinError(f"{name} '{text}': {exc}") from None
    if v < 0 or not math.isfinite(v):
        raise TwinError(f"{name} '{text}' must be >= 0 hours")
    return v * 3600.0


COMPARE_ROWS = (
    ("strategy", "params.strategy"), ("seed", "params.seed"), ("storm", "storm"),
    ("response p50 (min)", "response.all:all.response_s.p50"), ("response p90 (min)", "response.all:all.response_s.p90"),
    ("incident response p50 (min)", "incident_response_s.p50"), ("incident response p90 (min)", "incident_response_s.p90"),
    ("within target", "within_target.all"), ("duplicate dispatches", "duplicates.dispatches"),
    ("duplicate share", "duplicates.share"), ("referrals", "coordination.referrals"),
    ("coordination time (h)", "coordination.total_h"), ("coordination delay mean (min)", "coordination.delay_mean"),
    ("resolution p50 (min)", "resolution_s.p50"), ("utilisation", "utilisation.all"),
    ("unresolved cases", "unresolved.cases"), ("incidents", "counts.incidents"), ("reports", "counts.reports"),
    ("dispatches", "counts.dispatched"), ("flood incidents", "flood_incidents"), ("road closure changes", "road_closures"),
    ("person-h on closed roads", "exposure.person_hours_closed_roads"), ("events", "events"),
)


def _storm_label(storm: dict | None) -> str:
    """'none', 'P=20 yr', or the storm's kind where it has no return period (observed rain, QPF, block)."""
    if not storm:
        return "none"
    period = storm.get("return_period_yr")
    return f"P={period:g} yr" if period is not None else str(storm.get("kind") or storm.get("label") or "rain")


def compare_table(run_dirs) -> list[tuple[str, list[str]]]:
    """Rows (label, one formatted value per run) of the KPIs side by side."""
    from agents import flatten_kpis
    from twin.runstore import read_kpis, read_manifest

    cols = []
    for d in run_dirs:
        man = read_manifest(d)
        flat = flatten_kpis(read_kpis(d))
        storm = man["params"].get("storm")
        flat.update({"params.strategy": man["params"].get("strategy"), "params.seed": man["params"].get("seed"),
                     "storm": _storm_label(storm),
                     "events": man["events"]["n_records"],
                     "road_closures": man["tables"].get("road_closures", {}).get("rows", 0),
                     "flood_incidents": (man["metadata"].get("hydraulics") or {}).get("flood_incidents")})
        cols.append(flat)
    rows = []
    for label, key in COMPARE_ROWS:
        vals = []
        for flat in cols:
            v = flat.get(key)
            if key.endswith(("_s.p50", "_s.p90")) or key == "coordination.delay_mean":
                v = None if v is None or (isinstance(v, float) and math.isnan(v)) else v / 60.0
            vals.append(_fmt(v))
        rows.append((label, vals))
    return rows


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return str(v)


def _format_compare(run_dirs) -> str:
    rows = compare_table(run_dirs)
    names = [Path(d).name for d in run_dirs]
    w0 = max(len(r[0]) for r in rows) + 2
    ws = [max(len(n), *(len(r[1][i]) for r in rows)) + 2 for i, n in enumerate(names)]
    lines = ["".ljust(w0) + "".join(n.rjust(w) for n, w in zip(names, ws))]
    lines += [label.ljust(w0) + "".join(v.rjust(w) for v, w in zip(vals, ws)) for label, vals in rows]
    return "\n".join(lines)


@click.command("compare")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
def compare_command(runs) -> None:
    """Print the KPIs of RUNS side by side (response p50/p90, duplicate dispatches, coordination time, ...).

    \b
    Example:
      twin compare runs/r1 runs/r2
    """
    try:
        text = _format_compare(list(runs))
    except TwinError:
        raise
    except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        from twin.runstore import raise_if_tampered

        raise_if_tampered(runs, exc, "cannot be compared")  # edited runs are the data's fault, not ours
        raise
    click.echo(text)


@click.group("log")
def group() -> None:
    """Check a run's files and hash-chained event log; sign or anchor its head."""


@group.command("verify")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--key", "public_key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Ed25519 public key (PEM): also check RUN/manifest.sig was made with its private key.")
@click.option("--anchor", "anchor_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Anchor file (`twin log anchor`): also check it holds the run's head.")
def verify_command(run: Path, public_key: Path | None, anchor_file: Path | None) -> None:
    """Verify every file of RUN against its manifest, and the manifest itself; exit 1 if tampered.

    Checks the event log's chain, count and last hash, the digest of every
    table, of kpis.json and of the log file, the manifest's own digest, that
    no file was added, and that no pointer leaves the run.  RUN may also be
    an events.jsonl file (its chain only).

    \b
    Examples:
      twin log verify runs/r1
      twin log verify runs/r1 --key me.key.pub --anchor /shared/anchors.jsonl
    """
    from twin.eventlog import verify_log
    from twin.runstore import verify_run

    if run.is_file():
        if public_key or anchor_file:
            raise TwinError("--key and --anchor need a run folder, not an events file")
        res = verify_log(run)
        ok, message = res.ok, f"{run}: {res.message}"
    else:
        check = verify_run(run)
        ok, message = check.ok, f"{run}: {check.message}"
        if ok and public_key is not None:
            from twin.evidence import check_signature

            good, why = check_signature(run, public_key)
            ok, message = good, f"{message}; {why}"
        if ok and anchor_file is not None:
            from twin.evidence import check_anchor

            good, why = check_anchor(run, anchor_file)
            ok, message = good, f"{message}; {why}"
    message = " ".join(message.split())
    if ok:
        click.echo(f"intact  {message}")
        return
    click.echo(f"TAMPERED  {message}", err=True)
    raise SystemExit(1)


@group.command("keygen")
@click.argument("key", type=click.Path(dir_okay=False, path_type=Path))
def keygen_command(key: Path) -> None:
    """Write a new Ed25519 key pair: KEY (private, mode 0600; keep it safe) and KEY.pub.

    \b
    Example:
      twin log keygen ~/.citytwin/me.key
    """
    from twin.evidence import generate_key

    priv, pub = generate_key(key)
    click.echo(f"wrote {priv} (private: keep it to yourself) and {pub} (public: give it to whoever verifies)")


@group.command("sign")
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
@click.option("--key", "private_key", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Ed25519 private key (PEM, from `twin log keygen`).")
def sign_command(run: Path, private_key: Path) -> None:
    """Sign the head of RUN (its manifest digest) with an Ed25519 key; writes RUN/manifest.sig.

    The run is verified first; a tampered run is not signed.

    \b
    Example:
      twin log sign runs/r1 --key ~/.citytwin/me.key
    """
    from twin.evidence import sign_run

    path = sign_run(run, private_key)
    click.echo(f"signed {run} -> {path}")


@group.command("anchor")
@click.argument("run", type=click.Path(file_okay=False, path_type=Path))
@click.option("--to", "anchor_file", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Append-only, hash-chained anchor file (created if missing).")
def anchor_command(run: Path, anchor_file: Path) -> None:
    """Append the head of RUN to an append-only anchor file kept elsewhere.

    \b
    Example:
      twin log anchor runs/r1 --to /shared/anchors.jsonl
    """
    from twin.evidence import anchor_run

    rec = anchor_run(run, anchor_file)
    click.echo(f"anchored {run} head {rec['payload']['head_sha256'][:12]} in {anchor_file} (record {rec['seq']})")


@click.command("replay")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--at", "at", required=True, help="Time since the start: 9h, 09:30, 5400s.")
def replay_command(run: Path, at: str) -> None:
    """Print the state of RUN at a time: crews, vendors, open incidents, the flood and KPIs so far.

    \b
    Example:
      twin replay runs/r1 --at 09:30
    """
    from twin.replay import format_state, state_at

    t = 0.0 if at.strip() in ("0", "0s", "00:00") else _at_s(at)
    click.echo(format_state(state_at(run, t)))


def _at_s(text: str) -> float:
    try:
        return parse_duration_s(text)
    except ValueError as exc:
        raise TwinError(f"--at: {exc}") from None


@click.group("reports")
def reports_group() -> None:
    """Import real service requests (NYC 311 and alike)."""


@reports_group.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Output Parquet file.")
@click.option("--top", type=int, default=15, show_default=True, help="Raw types to list.")
def import_command(file: Path, out: Path, top: int) -> None:
    """Read service requests from FILE.csv into incidents with metric coordinates (Parquet).

    Prints counts by category and by raw type, rows without coordinates, and
    duplicate statistics (the dispatch centre's merge rule).

    \b
    Example:
      twin reports import 311_Service_Requests.csv --out reports.parquet
    """
    from agents import read_service_requests
    from twin.runstore import _prepare

    from gisdata.paths import atomic_path, check_out_file

    if top < 0:
        raise TwinError(f"--top {top} must be >= 0")
    check_out_file(out, "--out")  # before reading the file
    imp = read_service_requests(file)
    s = imp.stats
    with atomic_path(out) as tmp:  # an unpredictable temporary name: a planted symlink is never followed
        _prepare(imp.incidents).to_parquet(tmp)
    click.echo(f"records                 {s['rows']}")
    click.echo(f"without coordinates     {s['missing_location']} (kept, not replayable)")
    out_of_range = s.get("time_out_of_range", 0)
    click.echo(f"unreadable times        {s['bad_time']}"
               + (f" ({out_of_range} outside {MIN_RECORD_TIME} .. {MAX_RECORD_TIME})" if out_of_range else ""))
    click.echo(f"replayable              {s.get('replayable', '?')}")
    click.echo(f"duplicates              {s['duplicate_rows']} rows in {s['duplicate_groups']} groups "
               f"({s['merge_radius_m']:.0f} m, {s['merge_window_s'] / 60:.0f} min)")
    click.echo(f"crs                     {imp.crs}")
    click.echo("by category")
    for k, v in sorted(s["by_category"].items(), key=lambda kv: (-kv[1], kv[0])):
        click.echo(f"  {k:<22}{v:>6}")
    click.echo(f"by raw type (top {top})")
    raw = imp.incidents["raw_type"].value_counts()
    for k, v in raw.head(top).items():
        click.echo(f"  {k!s:<40}{v:>6}")
    if len(raw) > top:
        click.echo(f"  ... {len(raw) - top} more types")
    click.echo(f"wrote {out}")


COMMANDS = (simulate_command, compare_command, replay_command, reports_group)
"""Top-level commands besides :data:`group`."""


def build_commands(_load_scenarios=None) -> list:
    """Every command of this module, for :mod:`twin.cli` (``twin log``, ``simulate``, ``compare``, ...)."""
    return [group, *COMMANDS]
