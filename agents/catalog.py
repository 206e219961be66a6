"""Incident categories, response levels and report channels: the shared vocabulary.

One table says, per category, which departments must attend, how it is handled,
how long service takes and how likely a passer-by notices it.  Dispatch, the
citizens, the importer and the KPIs all read it, so a new category is one entry.

Response levels (one command centre, three levels):

==========  =====  ===================================  ==============
level       name   meaning                              target (s)
==========  =====  ===================================  ==============
3           red    danger to people (deep water, ...)   900 (15 min)
2           amber  urgent, same hour                    1800 (30 min)
1           green  routine                              7200 (2 h)
==========  =====  ===================================  ==============

Handling modes: ``field`` (crews go out), ``remote`` (handled by phone at the
centre, no crew).  ``joint`` is not a mode but a property: a category with two
departments (waterlogging: drainage + police) needs both to attend.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gisdata.schema import DEPARTMENTS

LEVELS = (1, 2, 3)
"""Response levels, 3 = most severe."""

LEVEL_NAMES = MappingProxyType({1: "green", 2: "amber", 3: "red"})

TARGET_RESPONSE_S = MappingProxyType({1: 7200.0, 2: 1800.0, 3: 900.0})
"""Target time from first report to first crew arrival, per level (s)."""

MODES = ("field", "remote")
"""Handling modes of a case."""

CHANNELS = ("app", "hotline", "voice", "proxy", "sensor", "patrol", "import")
"""Report channels: citizens use app/hotline/voice/proxy (a child reporting for a parent)."""

AGE_GROUPS = ("young", "adult", "elderly")
"""Citizen age groups (18-34, 35-64, 65+)."""


@dataclass(frozen=True)
class CategorySpec:
    """How one incident category is handled.

    Parameters
    ----------
    departments : tuple of str
        Departments that must attend (two for a joint incident).
    level : int
        Default response level (1-3); waterlogging is raised by depth.
    service_mean_s : float
        Mean on-site service time per crew (s); drawn lognormal with ``service_cv``.
    mode : str
        ``"field"`` or ``"remote"``.
    notice_prob : float
        Chance that a citizen passing by notices it (0-1).
    remote_s : float
        Handling time at the centre for ``remote`` cases (s).
    visible_m : float or None
        Distance from which passers-by can see it (m); ``None`` = the model's ``notice_radius_m``.
    """

    departments: tuple[str, ...]
    level: int = 1
    service_mean_s: float = 1200.0
    mode: str = "field"
    notice_prob: float = 0.2
    remote_s: float = 300.0
    visible_m: float | None = None

    def __post_init__(self) -> None:
        bad = [d for d in self.departments if d not in DEPARTMENTS]
        if bad or not self.departments:
            raise ValueError(f"departments={self.departments} must be a non-empty subset of {DEPARTMENTS}")
        if self.level not in LEVELS:
            raise ValueError(f"level={self.level} must be one of {LEVELS}")
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r} must be one of {MODES}")
        if self.service_mean_s <= 0:
            raise ValueError(f"service_mean_s={self.service_mean_s} must be > 0")


CATEGORIES: Mapping[str, CategorySpec] = MappingProxyType({
    "waterlogging": CategorySpec(("drainage", "police"), 2, 2700.0, notice_prob=0.6, visible_m=150.0),
    "drain_blocked": CategorySpec(("drainage",), 2, 2400.0, notice_prob=0.3),
    "vendor": CategorySpec(("city_management",), 1, 900.0, notice_prob=0.25),
    "litter": CategorySpec(("city_management",), 1, 1200.0, notice_prob=0.15),
    "pothole": CategorySpec(("city_management",), 1, 1800.0, notice_prob=0.2),
    "traffic": CategorySpec(("police",), 2, 1200.0, notice_prob=0.3),
    "public_order": CategorySpec(("police",), 1, 1200.0, notice_prob=0.2),
    "noise": CategorySpec(("police",), 1, 600.0, mode="remote", notice_prob=0.3),
    "medical": CategorySpec(("emergency",), 3, 1800.0, notice_prob=0.9),
    "other": CategorySpec(("city_management",), 1, 1200.0, notice_prob=0.1),
})
"""The default category table (pass your own mapping to the dispatch config to change it)."""


def waterlogging_level(depth_m: float) -> int:
    """Response level of a waterlogging incident by water depth (m): >=0.3 red, >=0.15 amber."""
    if depth_m >= 0.30:
        return 3
    if depth_m >= 0.15:
        return 2
    return 1


# In the siloed baseline each department runs its own intake: the app and the
# 12345-style hotline land at city management, 110-style calls about danger at the
# police, sensor alarms at drainage, a patrol at its own department.
SILO_INTAKE: Mapping[str, str] = MappingProxyType({
    "app": "city_management", "voice": "city_management", "proxy": "city_management",
    "hotline": "city_management", "sensor": "drainage", "import": "city_management",
})
SILO_HOTLINE_POLICE = frozenset({"waterlogging", "traffic", "public_order", "noise", "medical"})
"""Categories whose hotline calls go to the police line in the siloed baseline."""


def silo_intake(channel: str, category: str, patrol_department: str = "") -> str:
    """Department that receives a report in the siloed baseline."""
    if channel == "patrol" and patrol_department:
        return patrol_department
    if channel == "hotline" and category in SILO_HOTLINE_POLICE:
        return "police" if category != "medical" else "emergency"
    return SILO_INTAKE.get(channel, "city_management")


@dataclass(frozen=True)
class ReportingConfig:
    """How citizens notice and report incidents (all probabilities 0-1).

    Parameters
    ----------
    age_shares : Mapping[str, float]
        Population share of each age group.
    report_share_by_age : Mapping[str, float]
        Target share of *reports* sent by each group (default young 0.83); the
        per-group propensity is calibrated from it assuming equal noticing.
    report_prob : float
        Population-mean chance that a citizen who notices an incident reports it.
    channel_mix : Mapping[str, Mapping[str, float]]
        Per age group, the chance of each channel (default elderly app 0.11 < 12 %).
    elderly_friendly : bool
        Policy: voice reporting and children reporting for parents.  Uses
        ``elderly_friendly_mix`` for the elderly and multiplies their propensity by
        ``elderly_friendly_boost``.
    location_error_m : Mapping[str, float]
        Standard deviation of the reported position per channel (m).
    misclassify_prob : float
        Chance a citizen files the wrong category (as ``"other"``).
    delay_mean_s : float
        Mean delay between noticing and reporting (s, exponential).
    """

    age_shares: Mapping[str, float] = field(default_factory=lambda: {"young": 0.30, "adult": 0.48, "elderly": 0.22})
    report_share_by_age: Mapping[str, float] = field(
        default_factory=lambda: {"young": 0.83, "adult": 0.14, "elderly": 0.03})
    report_prob: float = 0.12
    channel_mix: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: {
        "young": {"app": 0.85, "hotline": 0.15},
        "adult": {"app": 0.55, "hotline": 0.45},
        "elderly": {"app": 0.11, "hotline": 0.89},
    })
    elderly_friendly: bool = False
    elderly_friendly_mix: Mapping[str, float] = field(
        default_factory=lambda: {"app": 0.11, "voice": 0.35, "proxy": 0.20, "hotline": 0.34})
    elderly_friendly_boost: float = 3.0
    location_error_m: Mapping[str, float] = field(default_factory=lambda: {
        "app": 15.0, "voice": 60.0, "proxy": 120.0, "hotline": 80.0, "sensor": 0.0, "patrol": 5.0, "import": 0.0})
    misclassify_prob: float = 0.08
    delay_mean_s: float = 300.0

    def __post_init__(self) -> None:
        for name, mix in (("age_shares", self.age_shares), ("report_share_by_age", self.report_share_by_age)):
            if set(mix) != set(AGE_GROUPS):
                raise ValueError(f"{name} keys {sorted(mix)} must be {list(AGE_GROUPS)}")
            if any(v < 0 for v in mix.values()) or abs(sum(mix.values()) - 1) > 1e-6:
                raise ValueError(f"{name}={dict(mix)} must be >= 0 and sum to 1")
        if not 0 <= self.report_prob <= 1:
            raise ValueError(f"report_prob={self.report_prob} must be in [0, 1]")
        mixes = dict(self.channel_mix)
        mixes["elderly_friendly"] = self.elderly_friendly_mix
        for g, mix in mixes.items():
            bad = [c for c in mix if c not in CHANNELS]
            if bad or abs(sum(mix.values()) - 1) > 1e-6:
                raise ValueError(f"channel_mix[{g!r}]={dict(mix)} must use channels {CHANNELS} and sum to 1")

    def propensity(self) -> dict[str, float]:
        """Per-group chance to report after noticing, calibrated to ``report_share_by_age``."""
        raw = {g: self.report_share_by_age[g] / max(self.age_shares[g], 1e-12) for g in AGE_GROUPS}
        mean = sum(self.age_shares[g] * raw[g] for g in AGE_GROUPS)
        out = {g: min(1.0, self.report_prob * raw[g] / mean) for g in AGE_GROUPS}
        if self.elderly_friendly:
            out["elderly"] = min(1.0, out["elderly"] * self.elderly_friendly_boost)
        return out

    def channels(self, group: str) -> dict[str, float]:
        """Channel probabilities of an age group under the current policy."""
        if group == "elderly" and self.elderly_friendly:
            return dict(self.elderly_friendly_mix)
        return dict(self.channel_mix[group])
