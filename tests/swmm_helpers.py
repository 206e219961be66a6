"""Helpers shared by the SWMM tests: model discovery and copies into tmp_path."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import SHARED_DATA

SWMM_DIR = SHARED_DATA / "swmm"

EXPECTED_INVALID = {
    "swmmio_tests/model_full_features_network.inp": 209,  # undefined link C6 in [DIVIDERS]
    "pystorms/delta.inp": 235,  # infiltration parameters SWMM 5.2 rejects
}
"""Models the engine must refuse, with the engine's error code."""

SLOW_MODELS = {
    "swmmio_tests/model_state_plane.inp", "swmmio_tests/model_full_features_b.inp",
    "swmmio_tests/model_full_features_network_xy.inp", "pystorms/gamma.inp", "pystorms/alpha.inp",
    "epa_examples/SWMMExtCntrlModel.inp",
}
"""Models whose reference test takes several seconds (up to ~40 s) on a loaded 2-core machine;
THREADS > 1 in alpha and SWMMExtCntrlModel makes them erratic there (RECIPES)."""


def discover_models() -> list[str]:
    """Every ``*.inp`` under ``../shared/data/swmm``, as paths relative to it."""
    return sorted(p.relative_to(SWMM_DIR).as_posix() for p in SWMM_DIR.rglob("*.inp"))


def copy_model(shared_data: Path, rel: str, tmp_path: Path) -> Path:
    """Copy the model's folder (it may hold rain files) into ``tmp_path``; return the copied ``.inp``."""
    src = shared_data / "swmm" / rel
    dst = tmp_path / "data" / src.parent.name
    if not dst.exists():
        shutil.copytree(src.parent, dst, ignore=shutil.ignore_patterns("*.rpt", "*.out"))
    return dst / src.name
