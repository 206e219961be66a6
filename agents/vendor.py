"""Street vendors: pick a site by footfall and enforcement risk, occupy a road, react to enforcement.

Each vendor is a Mesa agent (a few hundred at most, so plain objects are fine).
In each market window (default 06:30-09:30 and 17:00-21:30) a vendor who takes
part picks a vendor site with a Gumbel-max (logit) choice on

    utility = w_footfall * log1p(footfall) + w_attr * attractiveness - w_risk * risk

where *footfall* is the recent number of citizens passing the site
(:attr:`Citizens.footfall`) and *risk* the recent presence of city-management
and police crews near it (decaying, ``risk_tau_s``).  Occupying the road
segment nearest the site opens a ``vendor`` incident that citizens may report
and patrols may find.

When a crew arrives (enforcement), the vendor complies (leaves for the rest of
the window), moves to another site, or leaves and comes back later.  Under the
``first_violation_free`` policy the first violation only earns a warning and
the chance to comply depends on the vendor's credit level (high, medium,
low); otherwise each violation is penalised (credit falls) and compliance is
``base_comply``.  Recidivism is counted as occupations started after an
enforcement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import mesa
import numpy as np

from agents.errors import AgentConfigError

CREDIT_LEVELS = ("low", "medium", "high")


@dataclass(frozen=True)
class VendorPolicy:
    """Vendor behaviour and the enforcement policy.

    Parameters
    ----------
    market_windows_h : tuple of (float, float)
        Market hours (start, end) within a day (h).
    participation : float
        Chance a vendor goes out in a given window (0-1).
    first_violation_free : bool
        Policy: the first violation is a warning; compliance by credit level.
    comply_by_credit : Mapping[str, float]
        Chance to comply after a warning, per credit level.
    base_comply : float
        Chance to comply after a penalty.
    move_share : float
        Of the non-compliant, the share who move to another site now (the rest come back later).
    return_mean_s : float
        Mean time before a non-compliant vendor returns (s, exponential).
    w_footfall, w_attr, w_risk : float
        Site-choice weights.
    risk_tau_s : float
        Decay time of remembered crew presence (s).
    risk_radius_m : float
        Distance within which a crew counts as present at a site (m).
    site_capacity : int
        Vendors a site can hold at once.
    """

    market_windows_h: tuple[tuple[float, float], ...] = ((6.5, 9.5), (17.0, 21.5))
    participation: float = 0.8
    first_violation_free: bool = False
    comply_by_credit: Mapping[str, float] = field(default_factory=lambda: {"high": 0.9, "medium": 0.7, "low": 0.4})
    base_comply: float = 0.5
    move_share: float = 0.5
    return_mean_s: float = 3600.0
    w_footfall: float = 1.0
    w_attr: float = 2.0
    w_risk: float = 1.5
    risk_tau_s: float = 7200.0
    risk_radius_m: float = 150.0
    site_capacity: int = 4

    def __post_init__(self) -> None:
        for a, b in self.market_windows_h:
            if not 0 <= a < b <= 24:
                raise AgentConfigError(f"market window ({a}, {b}) h must satisfy 0 <= start < end <= 24")
        for name in ("participation", "base_comply", "move_share"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise AgentConfigError(f"{name}={v} must be in [0, 1]")
        if set(self.comply_by_credit) != set(CREDIT_LEVELS):
            raise AgentConfigError(f"comply_by_credit keys {sorted(self.comply_by_credit)} must be {CREDIT_LEVELS}")
        if self.site_capacity < 1:
            raise AgentConfigError(f"site_capacity={self.site_capacity} must be >= 1")


def credit_level(credit: float) -> str:
    """Credit level of a score in [0, 1]: >= 0.75 high, >= 0.5 medium, else low."""
    return "high" if credit >= 0.75 else "medium" if credit >= 0.5 else "low"


class Vendor(mesa.Agent):
    """One street vendor.

    Parameters
    ----------
    model : CityModel
        Owner: gives sites, footfall, risk, the clock, and opens/closes incidents.
    vendor_id : str
        Stable ID (``"V0001"``).
    credit : float
        Initial credit score in [0, 1].
    """

    def __init__(self, model, vendor_id: str, credit: float) -> None:
        super().__init__(model)
        self.vendor_id = vendor_id
        self.credit = float(credit)
        self.site = -1
        self.incident_id = ""
        self.since_s = np.nan
        self.window = -1            # index of the window already decided
        self.start_offset_s = float(self.rng.uniform(0.0, 2700.0))
        self.out_until_s = -np.inf  # complied or sent away until then
        self.return_at_s = np.nan
        self.return_site = -1
        # counters
        self.occupied_s = 0.0
        self.occupations = 0
        self.violations = 0
        self.enforcements = 0
        self.warnings = 0
        self.penalties = 0
        self.complied = 0
        self.moved = 0
        self.returned = 0
        self.reoffences = 0

    @property
    def rng(self) -> np.random.Generator:
        """The model's vendors stream (common random numbers across strategies)."""
        return self.model.streams["vendors"]

    @property
    def occupying(self) -> bool:
        """True while the vendor occupies a road segment."""
        return self.site >= 0

    def _window_at(self, t: float) -> tuple[int, float, float]:
        day = np.floor(t / 86_400.0)
        for j, (a, b) in enumerate(self.model.vendor_policy.market_windows_h):
            s, e = day * 86_400.0 + a * 3600.0, day * 86_400.0 + b * 3600.0
            if s <= t < e:
                return int(day) * 10 + j, s, e
        return -1, np.nan, np.nan

    def step(self) -> None:
        """Open, keep or close an occupation over the current tick."""
        m, pol = self.model, self.model.vendor_policy
        t = m.time_s
        win, start, end = self._window_at(t)
        if self.occupying and (win < 0 or t >= end):
            self.leave(t, reason="market_closed")
            return
        if win < 0 or self.occupying:
            return
        if not np.isnan(self.return_at_s) and t >= self.return_at_s:
            self.return_at_s = np.nan
            self.returned += 1
            self.occupy(t, self.return_site, kind="vendor_return")
            return
        if win != self.window and t >= start + self.start_offset_s:
            self.window = win
            if t >= self.out_until_s and self.rng.random() < pol.participation:
                site = m.choose_vendor_site(self)
                if site >= 0:
                    self.occupy(t, site)

    def occupy(self, t: float, site: int, *, kind: str = "vendor_occupy", new_violation: bool = True) -> None:
        """Start occupying the road segment of ``site`` at ``t`` (s).

        A move after enforcement continues the same violation (``new_violation=False``);
        any other occupation after an enforcement is a reoffence.
        """
        self.site = site
        self.since_s = t
        self.occupations += 1
        if new_violation:
            self.violations += 1
            if self.enforcements:
                self.reoffences += 1
        self.incident_id = self.model.open_vendor_incident(self, site, t, kind=kind)

    def leave(self, t: float, *, reason: str) -> None:
        """Stop occupying at ``t`` (s); closes the incident."""
        if not self.occupying:
            return
        self.occupied_s += max(0.0, t - self.since_s)
        self.model.close_vendor_incident(self, t, reason=reason)
        self.site, self.incident_id, self.since_s = -1, "", np.nan

    def enforce(self, t: float, crew_id: str) -> str:
        """A crew enforces at ``t`` (s); returns the outcome ``comply``, ``move`` or ``return``."""
        pol, rng = self.model.vendor_policy, self.rng
        self.enforcements += 1
        if pol.first_violation_free and self.enforcements == 1:
            self.warnings += 1
            p = pol.comply_by_credit[credit_level(self.credit)]
        else:
            self.penalties += 1
            self.credit = max(0.0, self.credit - 0.15)
            p = pol.base_comply
        site = self.site
        _, _, end = self._window_at(t)
        if rng.random() < p:
            outcome = "comply"
            self.complied += 1
            self.credit = min(1.0, self.credit + 0.05)
            self.leave(t, reason="complied")
            self.out_until_s = end if np.isfinite(end) else t
        elif rng.random() < pol.move_share:
            outcome = "move"
            self.moved += 1
            self.leave(t, reason="moved")
            new = self.model.choose_vendor_site(self, exclude=site)
            if new >= 0:
                self.occupy(t, new, kind="vendor_move", new_violation=False)
        else:
            outcome = "return"
            self.leave(t, reason="sent_away")
            self.return_at_s = t + rng.exponential(pol.return_mean_s)
            self.return_site = site
        return outcome

    def to_row(self, now_s: float) -> dict:
        """Counters for the vendors table (an ongoing occupation counts up to ``now_s``)."""
        ongoing = max(0.0, now_s - self.since_s) if self.occupying else 0.0
        return {
            "credit": self.credit, "credit_level": credit_level(self.credit), "occupations": self.occupations,
            "occupied_s": self.occupied_s + ongoing, "violations": self.violations, "enforcements": self.enforcements,
            "warnings": self.warnings, "penalties": self.penalties, "complied": self.complied,
            "moved": self.moved, "returned": self.returned, "reoffences": self.reoffences,
        }
