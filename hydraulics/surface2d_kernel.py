"""Compiled kernels of the 2D local-inertial surface (numba, one thread).

These are the hot loops of :class:`hydraulics.surface2d.Surface2D`; nothing
else should call them.  The scheme is Bates et al. (2010) with the
θ-weighted momentum of de Almeida et al. (2012) and the refinements of
de Almeida & Bates (2013): the friction term uses the magnitude of the face
discharge together with the averaged cross-direction discharge, and the
θ-diffusion is dropped where it would point against the water-surface slope.

Grid layout (rows run north to south, as in a north-up raster):

- ``h``, ``z``, ``n`` and ``active`` are (rows, cols) cell arrays;
- ``qx`` is (rows, cols + 1): ``qx[i, j]`` is the discharge per unit width
  (m2/s) through the face between cells ``(i, j - 1)`` and ``(i, j)``,
  positive towards the east; ``qx[:, 0]`` and ``qx[:, cols]`` are the west and
  east edges of the grid;
- ``qy`` is (rows + 1, cols): ``qy[i, j]`` is the face between ``(i - 1, j)``
  and ``(i, j)``, positive towards the south; ``qy[0]`` and ``qy[rows]`` are
  the north and south edges.

Why hand-written loops and not numpy: one step touches every face twice
(momentum, then a volume limiter and continuity); fused loops read each array
once per pass, where whole-array numpy would allocate about a dozen
temporaries per step.  One thread: on this 2-core shared machine two numba
threads were slower than one (``../shared/RECIPES.md``).
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

BC_CLOSED = 0
"""Edge type: a wall, no flow."""
BC_OPEN = 1
"""Edge type: free outflow with the water-surface slope of the adjacent interior face."""
BC_STAGE = 2
"""Edge type: a water level outside the edge (m); water flows out or in."""

EDGE_NORTH, EDGE_SOUTH, EDGE_WEST, EDGE_EAST = 0, 1, 2, 3
"""Index of each edge in the ``bc_type`` / ``bc_stage`` arrays."""


@nb.njit(cache=True, inline="always")
def _face_q(q0, qm1, qp1, q_cross, hf, d_eta, n_face, dt, dx, g, theta):
    """New discharge (m2/s) through one face from the old one.

    ``d_eta`` is the water-surface rise in the flow's positive direction (m),
    ``hf`` the flow depth at the face (m), ``n_face`` Manning's n (s/m^(1/3)).
    """
    t1 = theta * q0 + 0.5 * (1.0 - theta) * (qm1 + qp1)
    t2 = -g * hf * dt * d_eta / dx
    if t1 * t2 < 0.0:  # θ-diffusion against the slope drives instability (de Almeida & Bates 2013)
        t1 = q0
    q_norm = math.sqrt(q0 * q0 + q_cross * q_cross)
    # hf^(7/3) as hf^2 * cbrt(hf): the same value, about 3x cheaper than pow
    hf73 = hf * hf * np.cbrt(hf)
    return (t1 + t2) / (1.0 + g * dt * n_face * n_face * q_norm / hf73)


@nb.njit(cache=True)
def compute_fluxes(z, h, n, active, qx, qy, qx_new, qy_new, dt, dx, g, theta, h_min,
                   bc_type, bc_stage):
    """Momentum step: fill ``qx_new`` and ``qy_new`` from the state at time t.

    Parameters
    ----------
    z, h, n : ndarray (rows, cols), float64
        Bed elevation (m), water depth (m), Manning's n (s/m^(1/3)).
    active : ndarray (rows, cols), uint8
        1 inside the domain, 0 outside (a wall).
    qx, qy : ndarray
        Face discharges at time t, m2/s (layout in the module docstring).
    qx_new, qy_new : ndarray
        Output: face discharges at t + dt, m2/s.
    dt, dx : float
        Time step (s) and cell size (m).
    g, theta, h_min : float
        Gravity (m/s2), θ weighting (1 = Bates 2010), flow-depth threshold (m).
    bc_type : ndarray (4,), int64
        Edge types (``BC_*``) in the order north, south, west, east.
    bc_stage : ndarray (4,), float64
        Water level outside each ``BC_STAGE`` edge at this step, m.
    """
    rows, cols = h.shape
    # x faces
    for i in range(rows):
        for j in range(1, cols):
            a = j - 1
            if active[i, a] == 0 or active[i, j] == 0:
                qx_new[i, j] = 0.0
                continue
            eta_a = z[i, a] + h[i, a]
            eta_b = z[i, j] + h[i, j]
            hf = max(eta_a, eta_b) - max(z[i, a], z[i, j])
            if hf <= h_min:
                qx_new[i, j] = 0.0
                continue
            q_cross = 0.25 * (qy[i, a] + qy[i + 1, a] + qy[i, j] + qy[i + 1, j])
            qx_new[i, j] = _face_q(qx[i, j], qx[i, j - 1], qx[i, j + 1], q_cross, hf, eta_b - eta_a,
                                   0.5 * (n[i, a] + n[i, j]), dt, dx, g, theta)
        # west and east edges
        qx_new[i, 0] = _edge_q(z, h, n, active, qx, qy, i, 0, 1, True, -1.0, bc_type[EDGE_WEST],
                               bc_stage[EDGE_WEST], dt, dx, g, h_min, cols)
        qx_new[i, cols] = _edge_q(z, h, n, active, qx, qy, i, cols - 1, cols - 2, True, 1.0,
                                  bc_type[EDGE_EAST], bc_stage[EDGE_EAST], dt, dx, g, h_min, cols)
    # y faces
    for i in range(1, rows):
        a = i - 1
        for j in range(cols):
            if active[a, j] == 0 or active[i, j] == 0:
                qy_new[i, j] = 0.0
                continue
            eta_a = z[a, j] + h[a, j]
            eta_b = z[i, j] + h[i, j]
            hf = max(eta_a, eta_b) - max(z[a, j], z[i, j])
            if hf <= h_min:
                qy_new[i, j] = 0.0
                continue
            q_cross = 0.25 * (qx[a, j] + qx[a, j + 1] + qx[i, j] + qx[i, j + 1])
            qy_new[i, j] = _face_q(qy[i, j], qy[i - 1, j], qy[i + 1, j], q_cross, hf, eta_b - eta_a,
                                   0.5 * (n[a, j] + n[i, j]), dt, dx, g, theta)
    for j in range(cols):
        qy_new[0, j] = _edge_q(z, h, n, active, qx, qy, 0, j, 1, False, -1.0, bc_type[EDGE_NORTH],
                               bc_stage[EDGE_NORTH], dt, dx, g, h_min, rows)
        qy_new[rows, j] = _edge_q(z, h, n, active, qx, qy, rows - 1, j, rows - 2, False, 1.0,
                                  bc_type[EDGE_SOUTH], bc_stage[EDGE_SOUTH], dt, dx, g, h_min, rows)


@nb.njit(cache=True, inline="always")
def _edge_q(z, h, n, active, qx, qy, i, j, inner, along_x, outward, kind, stage, dt, dx, g, h_min, size):
    """Discharge through a grid-edge face of boundary cell (i, j), m2/s, positive east/south.

    ``inner`` is the index (column if ``along_x`` else row) of the interior
    neighbour, ``outward`` is +1 for the east/south edge and -1 for west/north,
    ``size`` the number of cells along that axis.
    """
    if kind == BC_CLOSED or active[i, j] == 0:
        return 0.0
    if along_x:
        q0 = qx[i, j + (1 if outward > 0 else 0)]
        q_cross = 0.5 * (qy[i, j] + qy[i + 1, j])
    else:
        q0 = qy[i + (1 if outward > 0 else 0), j]
        q_cross = 0.5 * (qx[i, j] + qx[i, j + 1])
    eta = z[i, j] + h[i, j]
    if kind == BC_OPEN:
        # zero-gradient water surface: the slope across the edge is the slope of the adjacent interior face
        if size < 2:
            return 0.0
        ii, jj = (i, inner) if along_x else (inner, j)
        if active[ii, jj] == 0:
            return 0.0
        fall = (z[ii, jj] + h[ii, jj]) - eta  # how much the surface falls towards the edge, m
        hf = h[i, j]
        if hf <= h_min or fall <= 0.0:
            return 0.0
        # outflow only; d_eta in the positive axis direction is -fall * outward
        q = _face_q(q0, q0, q0, q_cross, hf, -fall * outward, n[i, j], dt, dx, g, 1.0)
        return q if q * outward > 0.0 else 0.0
    # BC_STAGE: a ghost cell with the given level over the boundary cell's bed
    hf = max(stage, eta) - z[i, j]
    if hf <= h_min:
        return 0.0
    d_eta = (stage - eta) * outward  # rise in the positive axis direction
    return _face_q(q0, q0, q0, q_cross, hf, d_eta, n[i, j], dt, dx, g, 1.0)


@nb.njit(cache=True)
def update_depth(h, active, qx, qy, limiter, h_max_seen, dt, dx, rain_ms, depth_limit):
    """Continuity step: limit outflows to what each cell holds, then update the depth.

    The faces are scaled in place by their donor cell's limiter, so the
    discharges kept for the next momentum step are the ones that moved water.

    Parameters
    ----------
    h : ndarray (rows, cols)
        Depth at t (m), overwritten with the depth at t + dt.
    active : ndarray (rows, cols), uint8
        1 inside the domain.
    qx, qy : ndarray
        Face discharges for this step (m2/s), scaled in place.
    limiter : ndarray (rows, cols)
        Scratch space for the outflow factors.
    h_max_seen : ndarray (rows, cols)
        Running maximum depth (m), updated in place.
    dt, dx : float
        Time step (s), cell size (m).
    rain_ms : float
        Rain rate on every active cell during the step, m/s.
    depth_limit : float
        A depth above this (m) is taken as instability.

    Returns
    -------
    h_max : float
        Largest depth after the step, m.
    boundary_out_m3 : float
        Net volume that left through the grid edges during the step, m3.
    clipped_m3 : float
        Volume added by clipping round-off negative depths to 0, m3.
    bad_cell : int
        Flat index of the first cell whose depth became NaN or exceeded
        ``depth_limit``, or -1.
    """
    rows, cols = h.shape
    dt_dx = dt / dx
    for i in range(rows):
        for j in range(cols):
            out = (max(qx[i, j + 1], 0.0) + max(-qx[i, j], 0.0)
                   + max(qy[i + 1, j], 0.0) + max(-qy[i, j], 0.0))
            if out > 0.0:
                limiter[i, j] = min(1.0, h[i, j] / (out * dt_dx))
            else:
                limiter[i, j] = 1.0
    h_max = 0.0
    boundary_out = 0.0
    clipped = 0.0
    bad = -1
    area = dx * dx
    rain_dh = rain_ms * dt
    for i in range(rows):
        for j in range(cols):
            if active[i, j] == 0:
                continue
            # west face: written back here (this cell owns it); donor is the west cell when q > 0
            qw = qx[i, j]
            if qw > 0.0:
                if j > 0:
                    qw *= limiter[i, j - 1]
            else:
                qw *= limiter[i, j]
            qx[i, j] = qw
            qn = qy[i, j]
            if qn > 0.0:
                if i > 0:
                    qn *= limiter[i - 1, j]
            else:
                qn *= limiter[i, j]
            qy[i, j] = qn
            # east and south faces: read raw, scaled the same way; the neighbour writes them back
            qe = qx[i, j + 1]
            if qe > 0.0:
                qe *= limiter[i, j]
            elif j + 1 < cols:
                qe *= limiter[i, j + 1]
            qs = qy[i + 1, j]
            if qs > 0.0:
                qs *= limiter[i, j]
            elif i + 1 < rows:
                qs *= limiter[i + 1, j]
            if j == 0:
                boundary_out -= qw * dt * dx
            if j == cols - 1:
                qx[i, j + 1] = qe
                boundary_out += qe * dt * dx
            if i == 0:
                boundary_out -= qn * dt * dx
            if i == rows - 1:
                qy[i + 1, j] = qs
                boundary_out += qs * dt * dx
            hn = h[i, j] + dt_dx * (qw - qe + qn - qs) + rain_dh
            if hn < 0.0:
                clipped -= hn * area
                hn = 0.0
            if not (hn <= depth_limit):  # also true for NaN
                if bad < 0:
                    bad = i * cols + j
            h[i, j] = hn
            if hn > h_max:
                h_max = hn
            if hn > h_max_seen[i, j]:
                h_max_seen[i, j] = hn
    return h_max, boundary_out, clipped, bad


@nb.njit(cache=True)
def apply_point_sources(h, rows, cols, q_m3s, dt, area, applied_m3):
    """Add (q > 0) or take (q < 0) point flows at cells; a take is limited to what the cell holds.

    Parameters
    ----------
    h : ndarray (rows, cols)
        Depth (m), updated in place.
    rows, cols : ndarray of int64
        Cell of each source.
    q_m3s : ndarray of float64
        Flow of each source, m3/s; positive onto the surface.
    dt, area : float
        Step (s) and cell area (m2).
    applied_m3 : ndarray of float64
        Output: the volume each source actually moved (m3, signed).
    """
    for k in range(rows.shape[0]):
        i = rows[k]
        j = cols[k]
        vol = q_m3s[k] * dt
        if vol < 0.0:
            vol = max(vol, -h[i, j] * area)
        h[i, j] += vol / area
        if h[i, j] < 0.0:
            h[i, j] = 0.0
        applied_m3[k] = vol
