"""The `twin` CLI: --help everywhere, summaries, and one-line errors with exit code 2."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from gisdata.city import save_city
from twin.cli import cli


def _all_commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,)
        if isinstance(cmd, click.Group):
            yield from _all_commands(cmd, prefix + (name,))


@pytest.mark.parametrize("path", list(_all_commands(cli)), ids=" ".join)
def test_every_command_has_help(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and len(result.output.splitlines()) > 3


def test_info_prints_the_summary(tiny_city, tmp_path):
    path = save_city(tiny_city, tmp_path / "tiny.gpkg")
    result = CliRunner().invoke(cli, ["info", str(path)])
    assert result.exit_code == 0, result.output
    assert "manholes        6" in result.output
    assert "EPSG:32650 (metres)" in result.output
    assert "pipe length     0.44 km" in result.output
    assert "residents       40" in result.output


def test_missing_city_exits_2_with_one_line():
    proc = subprocess.run([sys.executable, "-m", "twin.cli", "info", "no/such.gpkg"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no/such.gpkg" in lines[0] and "Traceback" not in proc.stderr


def test_corrupt_city_exits_2(tmp_path):
    bad = tmp_path / "bad.gpkg"
    bad.write_text("hello")
    result = CliRunner().invoke(cli, ["info", str(bad)])
    assert result.exit_code == 2
    assert "bad.gpkg" in result.output and "Traceback" not in result.output
