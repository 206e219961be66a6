"""Analytic solutions the 2D surface is checked against (tests, figures, benchmarks).

- :func:`ritter_depth`: dam break on a flat frictionless bed over a dry
  downstream (Ritter 1892).
- :func:`planar_wave_depth`: a wave pushed at constant velocity over a flat
  rough plane, the diffusive-wave solution of Hunter et al. (2005) used by
  Bates et al. (2010) and de Almeida et al. (2012).
"""

from __future__ import annotations

import numpy as np

from hydraulics.surface2d import G


def ritter_depth(x_m, t_s: float, h0_m: float, *, g: float = G) -> np.ndarray:
    """Depth (m) of Ritter's dam break at positions ``x_m`` (m from the dam) and time ``t_s`` (s > 0).

    Upstream (x < 0) holds ``h0_m`` at t = 0, downstream is dry.

    Examples
    --------
    >>> float(ritter_depth(0.0, 10.0, 1.0))  # 4/9 h0 at the dam
    0.4444444444444444
    """
    x = np.asarray(x_m, dtype="float64")
    c0 = np.sqrt(g * h0_m)
    h = (2.0 * c0 - x / t_s) ** 2 / (9.0 * g)
    return np.where(x <= -c0 * t_s, h0_m, np.where(x >= 2.0 * c0 * t_s, 0.0, h))


def planar_wave_depth(x_m, t_s: float, *, u_ms: float, manning: float) -> np.ndarray:
    """Depth (m) of the planar wave at ``x_m`` (m from the inflow edge) and ``t_s`` (s).

    ``h(x, t) = [7/3 n^2 u^2 (u t - x)]^(3/7)`` behind the front ``x = u t``, 0 ahead of it.

    Examples
    --------
    >>> round(float(planar_wave_depth(0.0, 3600.0, u_ms=0.4, manning=0.01)), 4)
    0.2859
    """
    x = np.asarray(x_m, dtype="float64")
    behind = np.clip(u_ms * t_s - x, 0.0, None)
    return (7.0 / 3.0 * manning ** 2 * u_ms ** 2 * behind) ** (3.0 / 7.0)


def planar_wave_inflow_depth(t_s, *, u_ms: float, manning: float) -> np.ndarray:
    """Depth (m) imposed at the inflow edge, ``h(0, t) = (7/3 n^2 u^3 t)^(3/7)``."""
    t = np.asarray(t_s, dtype="float64")
    return (7.0 / 3.0 * manning ** 2 * u_ms ** 3 * t) ** (3.0 / 7.0)
