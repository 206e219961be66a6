"""Smoke test of benchmarks/batch_scaling.py: it runs end to end and prints its figures.

Runs the benchmark with ``--quick --runs 2`` (2 short runs on a 1-worker, then a 2-worker local Dask
cluster; about 25 s).  It checks only that the results tables agree and that the last line is an
efficiency figure; the speed itself is a benchmark, never asserted here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_batch_scaling_quick_prints_an_efficiency_line():
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "batch_scaling.py"), "--quick", "--runs", "2"],
                          cwd=REPO, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert "same results table on 1 and 2 workers: yes" in proc.stdout
    assert lines[-2].startswith("parallel efficiency T1 / (2 * T2)")
    assert float(lines[-1]) > 0
