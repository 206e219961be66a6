"""The named cities ``demo``, ``small`` and ``large``.

``demo`` ships inside the package (``gisdata/data/demo.gpkg``) so that
``twin demo`` works offline on first use without regenerating; ``small`` is
generated on demand (it takes about a second); ``large`` is generated once and
cached under ``$CITYTWIN_CACHE`` (default ``~/.cache/citytwin``).
"""

from __future__ import annotations

import functools
import os
from importlib import resources
from pathlib import Path

from gisdata.errors import UnknownPresetError

DEFAULT_SEEDS = {"demo": 2024, "small": 7, "large": 11}
"""The seed each preset uses when none is given."""


def bundled_demo_path() -> Path:
    """Path of the embedded demo city GeoPackage inside the installed package."""
    return Path(str(resources.files("gisdata") / "data" / "demo.gpkg"))


def cache_dir() -> Path:
    """Directory where generated preset cities are cached."""
    return Path(os.environ.get("CITYTWIN_CACHE", Path.home() / ".cache" / "citytwin"))


@functools.lru_cache(maxsize=8)
def load_preset(name: str, *, seed: int | None = None):
    """Return the preset city ``name`` built with ``seed`` (default: the preset's own seed).

    Raises
    ------
    UnknownPresetError
        If ``name`` is not ``demo``, ``small`` or ``large``.
    """
    from gisdata.city import read_city_gpkg, save_city
    from gisdata.synth import generate_city

    if name not in DEFAULT_SEEDS:
        raise UnknownPresetError(f"unknown city preset '{name}'; expected one of {list(DEFAULT_SEEDS)}")
    seed = DEFAULT_SEEDS[name] if seed is None else int(seed)
    if name == "demo" and seed == DEFAULT_SEEDS["demo"] and bundled_demo_path().exists():
        return read_city_gpkg(bundled_demo_path())
    if name == "large":
        cached = cache_dir() / f"large-seed{seed}.gpkg"
        if cached.exists():
            return read_city_gpkg(cached)
        city = generate_city(name, seed=seed)
        save_city(city, cached)
        return city
    return generate_city(name, seed=seed)
