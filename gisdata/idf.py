"""Rainfall intensity-duration-frequency (IDF) formulas of the Chinese standard form.

``q = A (1 + C lg P) / (t + b)^n`` with ``q`` in L/(s*ha), ``t`` the duration in
minutes and ``P`` the return period in years (GB 50014 "storm intensity
formula").  It lives in ``gisdata`` because both the sewer designer (rational
method, here) and the design-storm generator (``hydraulics.rainfall``) need it.

The shipped parameter sets are the commonly published single-formula values;
check them against the city's current local standard before design use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LPS_PER_HA_TO_MM_H = 0.36
"""1 L/(s*ha) = 1e-7 m/s = 0.36 mm/h."""


@dataclass(frozen=True)
class ChineseIDF:
    """``q = A (1 + C lg P) / (t + b)^n``, q in L/(s*ha), t in min, P in years.

    Parameters
    ----------
    name : str
        Label, e.g. the city.
    A : float
        Rain-force coefficient, L/(s*ha).
    C : float
        Return-period coefficient, dimensionless.
    b : float
        Duration offset, minutes.
    n : float
        Decay exponent, dimensionless.

    Examples
    --------
    >>> round(IDF_PRESETS["beijing"].intensity_mm_h(10, 2), 1)
    114.8
    """

    name: str
    A: float
    C: float
    b: float
    n: float

    def __post_init__(self) -> None:
        if self.A <= 0 or self.n <= 0 or self.b < 0:
            raise ValueError(f"IDF '{self.name}': need A > 0, n > 0, b >= 0; got A={self.A}, b={self.b}, n={self.n}")

    def intensity_mm_h(self, duration_min: float, return_period_yr: float) -> float:
        """Mean intensity over ``duration_min`` minutes for return period ``return_period_yr``, mm/h."""
        if duration_min <= 0:
            raise ValueError(f"duration_min={duration_min} must be > 0")
        if return_period_yr <= 0:
            raise ValueError(f"return_period_yr={return_period_yr} must be > 0")
        q = self.A * (1 + self.C * math.log10(return_period_yr)) / (duration_min + self.b) ** self.n
        return q * LPS_PER_HA_TO_MM_H

    def depth_mm(self, duration_min: float, return_period_yr: float) -> float:
        """Rain depth over ``duration_min`` minutes, mm."""
        return self.intensity_mm_h(duration_min, return_period_yr) * duration_min / 60.0


IDF_PRESETS: dict[str, ChineseIDF] = {
    "beijing": ChineseIDF("beijing", A=2001.0, C=0.811, b=8.0, n=0.711),
    "shanghai": ChineseIDF("shanghai", A=1600.0, C=0.846, b=7.0, n=0.656),
    "guangzhou": ChineseIDF("guangzhou", A=2424.17, C=0.533, b=11.0, n=0.668),
    "wuhan": ChineseIDF("wuhan", A=983.0, C=0.65, b=4.0, n=0.56),
}
"""Published parameter sets of a few cities; ``beijing`` is the default."""

DEFAULT_IDF = IDF_PRESETS["beijing"]
