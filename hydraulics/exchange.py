"""Sewer <-> street exchange at coupled manholes: orifice and weir equations, vectorised over nodes.

This is the "2D manhole" of dual-drainage models (InfoWorks ICM, PCSWMM 2D,
itzi): at every exchange step the flow between a node of the sewer network
and the 2D surface cell it sits in follows from the node's hydraulic head
``H`` and the water surface ``wse = z + h`` of the cell, with the cell's
ground ``z`` as the crest of the inlet.

Equations (Rubinato et al. 2017, as implemented by itzi's
``itzi/drainage.py``, ``DrainageNode._get_coupling_type`` and
``_get_coupling_flow``, itzi 25.8)::

    H > wse                         orifice, up:    Q = +C_o A sqrt(2 g (H - wse))
    H < wse and H < z               free weir:      Q = -2/3 C_w W d^1.5 sqrt(2 g)
    H < wse, H >= z, d < A / W      submerged weir: Q = -C_sw W d sqrt(2 g d)
    H < wse, H >= z, d >= A / W     orifice, down:  Q = -C_o A sqrt(2 g (wse - H))

with ``d = wse - z`` the water depth over the crest, ``A`` the manhole area
(m2) and ``W = 2 sqrt(pi A)`` the weir crest length (the circumference of a
circular manhole of area ``A``).  ``Q`` is positive onto the surface.

Coefficients default to itzi's (``itzi/const.py``, ``DefaultValues``, taken
from Rubinato et al. 2017): orifice 0.167, free weir 0.54, submerged weir
0.056; all three are configurable in :class:`ExchangeParams`.

Reference: M. Rubinato, R. Martins, G. Kesserwani, J. Leandro, S. Djordjević,
J. Shucksmith (2017), "Experimental calibration and validation of sewer/surface
flow exchange equations in steady and unsteady flow conditions", Journal of
Hydrology 552, 421-432, https://doi.org/10.1016/j.jhydrol.2017.06.024.

Stability
---------
The exchange is explicit (computed from the states at the start of a step
and held over it), so it is damped, as itzi does it:

- **under-relaxation**: ``Q = a Q_new + (1 - a) Q_prev`` with ``a = 0.8``.
  A surcharged node has almost no storage, so its head answers at once to
  the flow taken out of it; weighting in the previous flow turns the
  head/flow fixed-point iteration into a contraction instead of an
  overshoot;
- **reversal damping**: when the flow changes direction between two steps
  it is multiplied by 0.5, which kills the two-step (up/down) oscillation
  that an explicit exchange shows around ``H = wse``.

Then two hard limits are applied (they are never relaxed away):

- **inlet capacity** (surface -> sewer only): the number of gully inlets
  times the capacity of one inlet, m3/s per node;
- **what the cell holds**: a take never exceeds ``h * cell_area / dt``;
- **what the node can give** (optional, ``spill_max_m3s``): a spill never
  exceeds the node's net inflow plus the water standing in its shaft over
  the step, so an explicit step cannot empty a node of little storage.

Examples
--------
A node 0.5 m above a dry street cell spills through the orifice; a street
with 0.1 m of water over an empty manhole drains over the free weir:

>>> import numpy as np
>>> from hydraulics.exchange import exchange_flow
>>> q, regime = exchange_flow(np.array([10.5, 9.0]), np.array([10.0, 10.0]), np.array([0.0, 0.1]),
...                           np.array([1.0, 1.0]))
>>> np.round(q, 4), regime
(array([ 0.5231, -0.1788]), array([1, 2]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gisdata.errors import TwinError

G = 9.81
"""Gravity, m/s2 (the value of :mod:`hydraulics.surface2d`)."""

NO_FLOW, ORIFICE_UP, FREE_WEIR, SUBMERGED_WEIR, ORIFICE_DOWN = 0, 1, 2, 3, 4
"""Regime codes returned by :func:`exchange_flow`."""
REGIME_NAMES = {NO_FLOW: "no flow", ORIFICE_UP: "orifice (to surface)", FREE_WEIR: "free weir",
                SUBMERGED_WEIR: "submerged weir", ORIFICE_DOWN: "orifice (to sewer)"}


class ExchangeInputError(TwinError, ValueError):
    """A parameter of the sewer/surface exchange is out of range (the message names it)."""


def _check(name: str, value: float, lo: float, hi: float, *, open_low: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ExchangeInputError(f"{name}={value!r}: expected a number") from None
    ok_low = v > lo if open_low else v >= lo
    if not (math.isfinite(v) and ok_low and v <= hi):
        raise ExchangeInputError(f"{name}={value} out of range: expected {'>' if open_low else '>='} {lo} "
                                 f"and <= {hi}")
    return v


@dataclass(frozen=True)
class ExchangeParams:
    """Coefficients of the exchange equations and of its damping.

    Parameters
    ----------
    orifice_coeff : float, default 0.167
        Orifice discharge coefficient, - (Rubinato et al. 2017; itzi's default).
    free_weir_coeff : float, default 0.54
        Free-weir discharge coefficient, -.
    submerged_weir_coeff : float, default 0.056
        Submerged-weir discharge coefficient, -.
    relaxation : float, default 0.8
        Weight of the new flow against the previous one, in (0, 1] (1: none).
    reversal_damping : float, default 0.5
        Factor applied to a flow that changed direction since the last step, in (0, 1].
    g : float, default 9.81
        Gravity, m/s2.
    """

    orifice_coeff: float = 0.167
    free_weir_coeff: float = 0.54
    submerged_weir_coeff: float = 0.056
    relaxation: float = 0.8
    reversal_damping: float = 0.5
    g: float = G

    def __post_init__(self) -> None:
        for name in ("orifice_coeff", "free_weir_coeff", "submerged_weir_coeff"):
            _check(name, getattr(self, name), 0.0, 10.0, open_low=True)
        _check("relaxation", self.relaxation, 0.0, 1.0, open_low=True)
        _check("reversal_damping", self.reversal_damping, 0.0, 1.0, open_low=True)
        _check("g", self.g, 0.0, 100.0, open_low=True)


def weir_length_m(area_m2):
    """Crest length of a circular manhole of plan area ``area_m2`` (m2): ``2 sqrt(pi A)``, m."""
    return 2.0 * np.sqrt(np.pi * np.asarray(area_m2, dtype="float64"))


def exchange_flow(head_m, ground_m, depth_m, area_m2, params: ExchangeParams | None = None):
    """Flow between nodes and their surface cells from the orifice/weir equations (no damping, no limits).

    Parameters
    ----------
    head_m : array_like
        Hydraulic head of each node, m.
    ground_m : array_like
        Ground elevation of each node's cell (the inlet crest), m.
    depth_m : array_like
        Water depth on each node's cell, m (>= 0).
    area_m2 : array_like
        Manhole plan area of each node, m2 (> 0).
    params : ExchangeParams, optional
        Coefficients (default: itzi's).

    Returns
    -------
    flow_m3s : ndarray
        Flow per node, m3/s, positive from the sewer onto the surface.
    regime : ndarray of int
        ``NO_FLOW``, ``ORIFICE_UP``, ``FREE_WEIR``, ``SUBMERGED_WEIR`` or ``ORIFICE_DOWN``.
    """
    p = params or ExchangeParams()
    head = np.asarray(head_m, dtype="float64")
    z = np.asarray(ground_m, dtype="float64")
    h = np.asarray(depth_m, dtype="float64")
    area = np.broadcast_to(np.asarray(area_m2, dtype="float64"), head.shape)
    wse = z + h
    width = weir_length_m(area)
    d = np.maximum(wse - z, 0.0)
    up = head > wse
    down = head < wse
    free = down & (head < z)
    sub = down & ~free & (d < area / width)
    orifice_down = down & ~free & ~sub
    regime = np.full(head.shape, NO_FLOW, dtype=np.int64)
    regime[up] = ORIFICE_UP
    regime[free] = FREE_WEIR
    regime[sub] = SUBMERGED_WEIR
    regime[orifice_down] = ORIFICE_DOWN
    two_g = 2.0 * p.g
    dh = np.abs(head - wse)
    q = np.zeros(head.shape)
    q = np.where(up, p.orifice_coeff * area * np.sqrt(two_g * dh), q)
    q = np.where(free, -(2.0 / 3.0) * p.free_weir_coeff * width * d ** 1.5 * math.sqrt(two_g), q)
    q = np.where(sub, -p.submerged_weir_coeff * width * d * np.sqrt(two_g * d), q)
    q = np.where(orifice_down, -p.orifice_coeff * area * np.sqrt(two_g * dh), q)
    return q, regime


def inlet_capacity_m3s(n_inlets, capacity_per_inlet_m3s, n_nodes: int) -> np.ndarray:
    """Largest surface -> sewer flow of each node: gully inlets x capacity of one, m3/s.

    Parameters
    ----------
    n_inlets : int or array_like of int, or None
        Gully inlets per node (>= 1); None with ``capacity_per_inlet_m3s`` None: no limit.
    capacity_per_inlet_m3s : float or array_like, or None
        Capacity of one inlet, m3/s (> 0).
    n_nodes : int
        Number of coupled nodes.

    Returns
    -------
    ndarray
        Capacity per node, m3/s (``inf`` where unlimited).

    Raises
    ------
    ExchangeInputError
        A count below 1 or a capacity <= 0, NaN or above 100 m3/s (named).

    Examples
    --------
    >>> inlet_capacity_m3s(2, 0.02, 3)
    array([0.04, 0.04, 0.04])
    """
    if n_inlets is None and capacity_per_inlet_m3s is None:
        return np.full(n_nodes, np.inf)
    n = np.broadcast_to(np.asarray(1 if n_inlets is None else n_inlets, dtype="float64"), (n_nodes,))
    if capacity_per_inlet_m3s is None:
        raise ExchangeInputError("inlet capacity: give the capacity of one inlet (m3/s) with the number of inlets")
    cap = np.broadcast_to(np.asarray(capacity_per_inlet_m3s, dtype="float64"), (n_nodes,))
    bad = ~np.isfinite(n) | (n < 1) | (n != np.round(n))
    if bad.any():
        raise ExchangeInputError(f"inlets per node = {n[bad][0]:g}: expected a whole number >= 1")
    bad = ~np.isfinite(cap) | (cap <= 0) | (cap > 100.0)
    if bad.any():
        raise ExchangeInputError(f"inlet capacity = {cap[bad][0]:g} m3/s: expected > 0 and <= 100 m3/s")
    return n * cap


class Exchanger:
    """The exchange of a set of coupled nodes over time: equations, damping and limits.

    Parameters
    ----------
    area_m2 : array_like
        Manhole plan area per node, m2 (> 0).
    cell_area_m2 : float
        Plan area of one surface cell, m2.
    capacity_m3s : array_like, optional
        Inlet capacity per node (surface -> sewer), m3/s; default unlimited.
    params : ExchangeParams, optional
        Coefficients.

    Attributes
    ----------
    flow_m3s : ndarray
        The flow of the last step, m3/s (positive onto the surface).
    regime : ndarray of int
        The regime of the last step.
    """

    def __init__(self, area_m2, cell_area_m2: float, capacity_m3s=None, params: ExchangeParams | None = None):
        self.area_m2 = np.asarray(area_m2, dtype="float64").ravel()
        n = self.area_m2.size
        bad = ~np.isfinite(self.area_m2) | (self.area_m2 <= 0) | (self.area_m2 > 1e4)
        if bad.any():
            raise ExchangeInputError(f"manhole area = {self.area_m2[bad][0]:g} m2: expected > 0 and <= 10000 m2")
        self.cell_area_m2 = _check("cell_area_m2", cell_area_m2, 0.0, 1e10, open_low=True)
        cap = np.full(n, np.inf) if capacity_m3s is None else np.broadcast_to(
            np.asarray(capacity_m3s, dtype="float64"), (n,)).copy()
        if np.any(~(cap > 0)):
            raise ExchangeInputError(f"inlet capacity = {cap[~(cap > 0)][0]:g} m3/s: expected > 0")
        self.capacity_m3s = cap
        self.params = params or ExchangeParams()
        self.flow_m3s = np.zeros(n)
        self.regime = np.zeros(n, dtype=np.int64)

    def step(self, head_m, ground_m, depth_m, dt_s: float, spill_max_m3s=None) -> np.ndarray:
        """The flow to apply over the next ``dt_s`` seconds, m3/s per node (positive onto the surface).

        Parameters
        ----------
        head_m, ground_m, depth_m : array_like
            Node head, ground of its cell and water depth on it, m, at the start of the step.
        dt_s : float
            Length of the step, s (> 0).
        spill_max_m3s : array_like, optional
            Largest flow each node can give the surface over the step, m3/s
            (what the node holds above its rim over ``dt_s`` plus its net
            inflow): the mirror of the cell limit, so that an explicit step
            never empties a node of little storage (default: no limit).
        """
        p = self.params
        q_new, self.regime = exchange_flow(head_m, ground_m, depth_m, self.area_m2, p)
        prev = self.flow_m3s
        q = p.relaxation * q_new + (1.0 - p.relaxation) * prev
        reversed_ = ((prev > 0) & (q < 0)) | ((prev < 0) & (q > 0))
        q = np.where(reversed_, q * p.reversal_damping, q)
        take_max = np.minimum(self.capacity_m3s, np.asarray(depth_m, dtype="float64") * self.cell_area_m2 / dt_s)
        q = np.maximum(q, -take_max)
        if spill_max_m3s is not None:
            q = np.minimum(q, np.maximum(np.asarray(spill_max_m3s, dtype="float64"), 0.0))
        self.flow_m3s = q
        return q.copy()

    def applied(self, flow_m3s) -> None:
        """Tell the exchanger the flow actually moved over the last step, m3/s (a take the cell could
        not fully supply is smaller than planned); the next step relaxes against it."""
        self.flow_m3s = np.asarray(flow_m3s, dtype="float64").ravel().copy()
