"""The ``twin`` command line: parses arguments and calls library functions.

Every command has ``--help``.  A user error (any :class:`~gisdata.errors.TwinError`,
or an ``OSError`` such as an unwritable folder) is printed as one line on
stderr, ``error: ...``, without a traceback, and exits with code 2; so is a
usage error (a bad option value, a missing argument), with the command's
``--help`` to look at.

Any other exception is a bug of CityTwin, not the user's: it is printed as one
line ``internal error: <type>: <message> (details in <log file>)`` and also
exits with code 2 (so a script sees one code for "the command did not do its
work"); the full traceback goes to a new file under ``$CITYTWIN_LOG_DIR``
(default ``~/.cache/citytwin/logs``, else the temp folder), never to the
screen.  ``twin log verify`` alone exits 1, when a run has been tampered with.
"""

from __future__ import annotations

import os
import sys
import traceback

import click

from gisdata.errors import TwinError
from twin.commands.city import city_group, demo_command, info_command


class TwinGroup(click.Group):
    """A click group that turns :class:`TwinError` into a one-line message and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (TwinError, OSError) as exc:
            # OSError too: an unwritable --out or a full disk is the user's to fix, not a bug.
            message = " ".join(str(exc).split())  # one line, whatever the error text held
            click.echo(f"error: {message}", err=True)
            ctx.exit(2)
        except click.ClickException as exc:
            if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):
                raise  # `twin swmm` alone: click shows the group's help
            # a usage error (bad option value, missing argument) is one line too, with where to look
            where = f" (see `{exc.ctx.command_path} --help`)" if isinstance(exc, click.UsageError) and exc.ctx else ""
            click.echo(f"error: {' '.join(exc.format_message().split())}{where}", err=True)
            ctx.exit(2)
        except (click.exceptions.Exit, click.exceptions.Abort, SystemExit, KeyboardInterrupt):
            raise  # click's own endings
        except Exception as exc:  # noqa: BLE001 - anything else is our bug: one line here, the traceback in a file
            log = write_crash_log(exc)
            message = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            click.echo(f"internal error: {message} (details in {log})", err=True)
            ctx.exit(2)


def write_crash_log(exc: BaseException) -> str:
    """Write the traceback of ``exc`` to a new file and return its path (or a note when nowhere is writable).

    The folder is ``$CITYTWIN_LOG_DIR``, else ``~/.cache/citytwin/logs``, else
    the temp folder; the file name is unpredictable and created exclusively.
    """
    import tempfile
    import time
    from pathlib import Path

    text = "".join(traceback.format_exception(exc))
    argv = " ".join(sys.argv)
    candidates = [os.environ.get("CITYTWIN_LOG_DIR"), str(Path.home() / ".cache" / "citytwin" / "logs"),
                  tempfile.gettempdir()]
    for folder in filter(None, candidates):
        try:
            Path(folder).mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, path = tempfile.mkstemp(prefix=time.strftime("twin-%Y%m%dT%H%M%S-"), suffix=".log", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(f"command: {argv}\n\n{text}")
            return path
        except OSError:
            continue
    return "no writable log folder"


@click.group(cls=TwinGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="citytwin")
def cli() -> None:
    """CityTwin: a digital twin of a city's sewers, streets, people and crews.

    CITY arguments accept a preset name (demo, small, large), a GeoPackage
    written by `twin city generate`, or an OSM extract (.osm, .osm.bz2, .osm.pbf).
    """


cli.add_command(info_command)
cli.add_command(city_group)
cli.add_command(demo_command)


def _register_stage_groups() -> None:
    # Each later stage lives in its own module under twin/commands/ and exposes `group`.
    import importlib
    import importlib.util

    for stage in ("swmm", "forecast", "batch", "sim", "render", "flood2d"):
        if importlib.util.find_spec(f"twin.commands.{stage}") is not None:
            module = importlib.import_module(f"twin.commands.{stage}")
            if hasattr(module, "build_commands"):  # needs `scenarios`, which only this file of twin may import
                for command in module.build_commands(lambda: importlib.import_module("scenarios")):
                    cli.add_command(command)
            else:
                cli.add_command(module.group)


_register_stage_groups()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``twin`` console script."""
    if not os.environ.get("DISPLAY"):
        # Headless: go straight to EGL so VTK does not first try X and warn "bad X server connection".
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    from hydraulics.processes import use_private_tempdir

    use_private_tempdir()  # this command's temp folders: removed at exit, or by the next command if it is killed
    cli.main(args=argv, prog_name="twin", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
