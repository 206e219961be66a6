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

BLOCK = 16
"""Columns per block in the bookkeeping of where water is (:func:`active_segments`)."""

OUTSIDE, LAND, RIVER = 0, 1, 2
"""Cell kinds in ``active``: a wall, the street surface, and a water body with a level (a boundary)."""

BANK_WEIR_Q = 1.705
"""Free broad-crested weir in SI: q = sqrt(g) (2/3 h)^(3/2) = 1.705 h^(3/2), m2/s per metre of bank, with h the
water depth on the bank (critical depth over the crest): how water spills into a river whose level is below
the bank."""
"""Index of each edge in the ``bc_type`` / ``bc_stage`` arrays."""


@nb.njit(cache=True, inline="always")
def _face_q(q0, qm1, qp1, q_cross, hf, d_eta, n_face, dt, dx, g, theta):
    """New discharge (m2/s) through one face from the old one.

    ``d_eta`` is the water-surface rise in the flow's positive direction (m),
    ``hf`` the flow depth at the face (m), ``n_face`` Manning's n (s/m^(1/3)).
    """
    t1 = theta * q0 + 0.5 * (1.0 - theta) * (qm1 + qp1)
    t2 = -(g * dt / dx) * hf * d_eta  # g dt / dx is loop-invariant: LLVM hoists it
    if t1 * t2 < 0.0:  # θ-diffusion against the slope drives instability (de Almeida & Bates 2013)
        t1 = q0
    q_norm = math.sqrt(q0 * q0 + q_cross * q_cross)
    # hf^(-7/3) is the costliest part of a face: single-precision pow (about 5 ns here, against 10 ns for
    # a float64 exp/log, 12 ns for pow and 16 ns for cbrt); its 1e-7 relative error only touches friction
    # (floored at 1 µm so that the power stays finite in single precision)
    hf_m73 = np.float32(max(hf, 1e-6)) ** np.float32(-7.0 / 3.0)
    return (t1 + t2) / (1.0 + g * dt * n_face * n_face * q_norm * hf_m73)


@nb.njit(cache=True, inline="always")
def _river_face_q(q0, q_cross, z_land, h_land, n_land, level, toward_river, dt, dx, g, h_min):
    """Discharge (m2/s, positive east/south) between a land cell and a river cell with water level ``level``.

    ``toward_river`` is +1 when the river lies east/south of the land cell, -1 otherwise.  Below the bank
    (level <= ground) water spills over it as a free broad-crested weir; above it the face is an ordinary
    local-inertial face with the river level as the neighbour's water surface, so a high river floods the
    bank back.
    """
    eta = z_land + h_land
    if level <= z_land:
        if h_land <= h_min:
            return 0.0
        return toward_river * BANK_WEIR_Q * h_land * math.sqrt(h_land)
    hf = max(level, eta) - z_land
    if hf <= h_min:
        return 0.0
    d_eta = (level - eta) * toward_river  # surface rise in the positive axis direction
    return _face_q(q0, q0, q0, q_cross, hf, d_eta, n_land, dt, dx, g, 1.0)


@nb.njit(cache=True, inline="always")
def _momentum_row(i, z, h, n, active, level, qx, qy, qx_new, qy_new, dt, dx, g, theta, h_min, bc_type,
                  bc_stage, seg_lo, seg_hi, n_seg):
    """New discharges of the x faces of row i and of the y faces between rows i - 1 and i.

    Only the row's segments (cells near water, :func:`active_segments`) are computed; every other face is 0.
    """
    rows, cols = h.shape
    qx_new[i, :] = 0.0
    if i > 0:
        qy_new[i, :] = 0.0
    for s in range(n_seg[i]):
        lo, hi = seg_lo[i, s], seg_hi[i, s]
        for j in range(max(lo, 1), min(hi + 1, cols - 1) + 1):
            a = j - 1
            ka, kb = active[i, a], active[i, j]
            if ka != LAND or kb != LAND:
                q = 0.0
                if ka == LAND and kb == RIVER:
                    q = _river_face_q(qx[i, j], 0.5 * (qy[i, a] + qy[i + 1, a]), z[i, a], h[i, a], n[i, a],
                                      level[i, j], 1.0, dt, dx, g, h_min)
                elif ka == RIVER and kb == LAND:
                    q = _river_face_q(qx[i, j], 0.5 * (qy[i, j] + qy[i + 1, j]), z[i, j], h[i, j], n[i, j],
                                      level[i, a], -1.0, dt, dx, g, h_min)
                qx_new[i, j] = q
                continue
            eta_a = z[i, a] + h[i, a]
            eta_b = z[i, j] + h[i, j]
            hf = max(eta_a, eta_b) - max(z[i, a], z[i, j])
            if hf <= h_min:
                continue
            q_cross = 0.25 * (qy[i, a] + qy[i + 1, a] + qy[i, j] + qy[i + 1, j])
            qx_new[i, j] = _face_q(qx[i, j], qx[i, j - 1], qx[i, j + 1], q_cross, hf, eta_b - eta_a,
                                   0.5 * (n[i, a] + n[i, j]), dt, dx, g, theta)
        if lo == 0:
            qx_new[i, 0] = _edge_q(z, h, n, active, qx, qy, i, 0, 1, True, -1.0, bc_type[EDGE_WEST],
                                   bc_stage[EDGE_WEST], dt, dx, g, h_min, cols)
        if hi == cols - 1:
            qx_new[i, cols] = _edge_q(z, h, n, active, qx, qy, i, cols - 1, cols - 2, True, 1.0,
                                      bc_type[EDGE_EAST], bc_stage[EDGE_EAST], dt, dx, g, h_min, cols)
        if i > 0:
            # the wet cells of rows i - 1 and i lie inside row i's segments
            a = i - 1
            for j in range(lo, hi + 1):
                ka, kb = active[a, j], active[i, j]
                if ka != LAND or kb != LAND:
                    q = 0.0
                    if ka == LAND and kb == RIVER:
                        q = _river_face_q(qy[i, j], 0.5 * (qx[a, j] + qx[a, j + 1]), z[a, j], h[a, j], n[a, j],
                                          level[i, j], 1.0, dt, dx, g, h_min)
                    elif ka == RIVER and kb == LAND:
                        q = _river_face_q(qy[i, j], 0.5 * (qx[i, j] + qx[i, j + 1]), z[i, j], h[i, j], n[i, j],
                                          level[a, j], -1.0, dt, dx, g, h_min)
                    qy_new[i, j] = q
                    continue
                eta_a = z[a, j] + h[a, j]
                eta_b = z[i, j] + h[i, j]
                hf = max(eta_a, eta_b) - max(z[a, j], z[i, j])
                if hf <= h_min:
                    continue
                q_cross = 0.25 * (qx[a, j] + qx[a, j + 1] + qx[i, j] + qx[i, j + 1])
                qy_new[i, j] = _face_q(qy[i, j], qy[i - 1, j], qy[i + 1, j], q_cross, hf, eta_b - eta_a,
                                       0.5 * (n[a, j] + n[i, j]), dt, dx, g, theta)
    if i == 0:
        qy_new[0, :] = 0.0
        for s in range(n_seg[0]):
            for j in range(seg_lo[0, s], seg_hi[0, s] + 1):
                qy_new[0, j] = _edge_q(z, h, n, active, qx, qy, 0, j, 1, False, -1.0, bc_type[EDGE_NORTH],
                                       bc_stage[EDGE_NORTH], dt, dx, g, h_min, rows)
    if i == rows - 1:
        qy_new[rows, :] = 0.0
        for s in range(n_seg[i]):
            for j in range(seg_lo[i, s], seg_hi[i, s] + 1):
                qy_new[rows, j] = _edge_q(z, h, n, active, qx, qy, rows - 1, j, rows - 2, False, 1.0,
                                          bc_type[EDGE_SOUTH], bc_stage[EDGE_SOUTH], dt, dx, g, h_min, rows)


@nb.njit(cache=True, inline="always")
def _limiter_row(k, h, active, qx, qy, limiter, dt_dx, seg_lo, seg_hi, n_seg):
    """Share of each cell's outflow that it can supply: min(1, held / wanted); a river supplies any."""
    for s in range(n_seg[k]):
        for j in range(seg_lo[k, s], seg_hi[k, s] + 1):
            if active[k, j] != LAND:
                limiter[k, j] = 1.0
                continue
            out = (max(qx[k, j + 1], 0.0) + max(-qx[k, j], 0.0)
                   + max(qy[k + 1, j], 0.0) + max(-qy[k, j], 0.0))
            wanted = out * dt_dx  # depth the outflow would take, m
            # most cells hold enough: compare first, divide only when the cell runs short
            limiter[k, j] = h[k, j] / wanted if wanted > h[k, j] else 1.0


@nb.njit(cache=True, inline="always")
def _continuity_row(i, h, active, has_river, qx, qy, limiter, h_max_seen, dt, dx, rain_dh, depth_limit, h_min,
                    seg_lo, seg_hi, n_seg, wet_blk, acc):
    """Update the depths of row i with the limited face flows.

    ``acc`` = [h_max, boundary_out, clipped, bad, to_river] (see :func:`step`).
    """
    rows, cols = h.shape
    dt_dx = dt / dx
    area = dx * dx
    wet_blk[i, :] = 0
    for s in range(n_seg[i]):
        _continuity_segment(i, seg_lo[i, s], seg_hi[i, s], h, active, has_river, qx, qy, limiter, h_max_seen, dt,
                            dx, dt_dx, area, rain_dh, depth_limit, h_min, wet_blk, acc)


@nb.njit(cache=True, inline="always")
def _continuity_segment(i, lo, hi, h, active, has_river, qx, qy, limiter, h_max_seen, dt, dx, dt_dx, area, rain_dh,
                        depth_limit, h_min, wet_blk, acc):
    """:func:`_continuity_row` over the cells lo..hi of row i."""
    rows, cols = h.shape
    for j in range(lo, hi + 1):
        kind = active[i, j]
        if kind != LAND:
            if kind == RIVER:  # counted as wet, so that the banks next to it are always computed
                wet_blk[i, j // BLOCK] = 1
            continue
        # west and north faces are written back here (this cell owns them); the donor scales a flow
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
            acc[1] -= qw * dt * dx
        if j == cols - 1:
            qx[i, j + 1] = qe
            acc[1] += qe * dt * dx
        if i == 0:
            acc[1] -= qn * dt * dx
        if i == rows - 1:
            qy[i + 1, j] = qs
            acc[1] += qs * dt * dx
        if has_river:
            vol = dt * dx
            if j > 0 and active[i, j - 1] == RIVER:
                acc[4] -= qw * vol
            if j + 1 < cols and active[i, j + 1] == RIVER:
                acc[4] += qe * vol
            if i > 0 and active[i - 1, j] == RIVER:
                acc[4] -= qn * vol
            if i + 1 < rows and active[i + 1, j] == RIVER:
                acc[4] += qs * vol
        hn = h[i, j] + dt_dx * (qw - qe + qn - qs) + rain_dh
        if hn < 0.0:
            acc[2] -= hn * area
            hn = 0.0
        if not (hn <= depth_limit):  # also true for NaN
            if acc[3] < 0:
                acc[3] = i * cols + j
        h[i, j] = hn
        # a face between two cells at or below h_min carries nothing, so only deeper cells keep a block awake
        # (films left behind by drained water would otherwise keep the whole city computed)
        if hn > h_min:
            wet_blk[i, j // BLOCK] = 1
        if hn > acc[0]:
            acc[0] = hn
        if hn > h_max_seen[i, j]:
            h_max_seen[i, j] = hn


@nb.njit(cache=True)
def step(z, h, n, active, level, has_river, qx, qy, qx_new, qy_new, limiter, h_max_seen, dt, dx, g, theta, h_min,
         bc_type, bc_stage, seg_lo, seg_hi, n_seg, rain_ms, depth_limit, wet_blk, acc):
    """One time step of the whole grid in a single sweep over the rows.

    Row i's momentum (its x faces and the y faces above it), then the outflow
    limiter of row i - 1 (all its faces are known now), then the continuity
    of row i - 2 (its neighbours' limiters are known, and no later momentum
    reads its depth).  One sweep keeps each row in cache from momentum to
    continuity, where three whole-grid passes would stream the grid three times.

    Parameters
    ----------
    z, h, n : ndarray (rows, cols), float64
        Bed elevation (m), water depth (m, updated in place), Manning's n (s/m^(1/3)).
    active : ndarray (rows, cols), uint8
        ``LAND`` (1) inside the domain, ``OUTSIDE`` (0) a wall, ``RIVER`` (2) a water body.
    level : ndarray (rows, cols), float64
        Water level of each river cell, m (read only there).
    has_river : bool
        Whether any cell is a river (skips the to-river bookkeeping otherwise).
    qx, qy : ndarray
        Face discharges at time t, m2/s (layout in the module docstring).
    qx_new, qy_new : ndarray
        Output: the face discharges that moved water during the step, m2/s.
    limiter : ndarray (rows, cols)
        Scratch space for the outflow factors.
    h_max_seen : ndarray (rows, cols)
        Running maximum depth (m), updated in place.
    dt, dx, g, theta, h_min : float
        Step (s), cell size (m), gravity (m/s2), θ weighting (1 = Bates 2010),
        flow-depth threshold (m).
    bc_type : ndarray (4,), int64
        Edge types (``BC_*``) in the order north, south, west, east.
    bc_stage : ndarray (4,), float64
        Water level outside each ``BC_STAGE`` edge at this step, m.
    seg_lo, seg_hi, n_seg : ndarray
        The segments of cells of each row that may move water (:func:`active_segments`); faces
        outside are set to 0 and cells outside stay as they are (dry).
    rain_ms : float
        Rain on every active cell during the step, m/s (the segments must cover whole rows then).
    depth_limit : float
        A depth above this (m) is taken as instability.
    wet_blk : ndarray (rows, blocks), uint8
        Output: which blocks of :data:`BLOCK` columns of each row hold water (or river).
    acc : ndarray (5,), float64
        Output: [largest depth (m), net volume out through the edges (m3),
        volume added by clipping round-off negative depths (m3), flat index
        of the first cell that went NaN or above ``depth_limit`` or -1,
        net volume into river cells (m3)].
    """
    rows = h.shape[0]
    acc[0] = 0.0
    acc[1] = 0.0
    acc[2] = 0.0
    acc[3] = -1.0
    acc[4] = 0.0
    dt_dx = dt / dx
    rain_dh = rain_ms * dt
    for i in range(rows + 2):
        if i < rows:
            _momentum_row(i, z, h, n, active, level, qx, qy, qx_new, qy_new, dt, dx, g, theta, h_min, bc_type,
                          bc_stage, seg_lo, seg_hi, n_seg)
        if 1 <= i <= rows:
            _limiter_row(i - 1, h, active, qx_new, qy_new, limiter, dt_dx, seg_lo, seg_hi, n_seg)
        if i >= 2:
            _continuity_row(i - 2, h, active, has_river, qx_new, qy_new, limiter, h_max_seen, dt, dx, rain_dh,
                            depth_limit, h_min, seg_lo, seg_hi, n_seg, wet_blk, acc)


@nb.njit(cache=True, inline="always")
def _edge_q(z, h, n, active, qx, qy, i, j, inner, along_x, outward, kind, stage, dt, dx, g, h_min, size):
    """Discharge through a grid-edge face of boundary cell (i, j), m2/s, positive east/south.

    ``inner`` is the index (column if ``along_x`` else row) of the interior
    neighbour, ``outward`` is +1 for the east/south edge and -1 for west/north,
    ``size`` the number of cells along that axis.
    """
    if kind == BC_CLOSED or active[i, j] != LAND:
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
        if active[ii, jj] != LAND:
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
def active_segments(wet_blk, cols, full, seg_lo, seg_hi, n_seg):
    """Segments of cells of each row that may move water in the next step.

    Water crosses at most one face per step, so a row needs the blocks that
    hold water in it or in the rows above and below, widened by one block
    each side; runs of such blocks are the row's segments.  ``full`` (rain
    falling, or a stage edge that can push water in) makes every row one
    whole segment.  Blocks rather than single cells: the bookkeeping stays a
    few bytes a row, and scattered puddles (a city in a storm) do not make a
    row's one span reach across the whole city.
    """
    rows, nblk = wet_blk.shape
    near = np.zeros(nblk + 2, dtype=np.uint8)  # blocks with water in rows i-1..i+1, padded by one each side
    for i in range(rows):
        if full:
            seg_lo[i, 0] = 0
            seg_hi[i, 0] = cols - 1
            n_seg[i] = 1
            continue
        for b in range(nblk):
            v = wet_blk[i, b]
            if i > 0:
                v |= wet_blk[i - 1, b]
            if i + 1 < rows:
                v |= wet_blk[i + 1, b]
            near[b + 1] = v
        k = 0
        run_start = -1
        for b in range(nblk + 1):
            on = b < nblk and (near[b] | near[b + 1] | near[b + 2]) != 0
            if on and run_start < 0:
                run_start = b
            elif not on and run_start >= 0:
                seg_lo[i, k] = run_start * BLOCK
                seg_hi[i, k] = min(b * BLOCK, cols) - 1
                k += 1
                run_start = -1
        n_seg[i] = k


@nb.njit(cache=True)
def mark_wet_blocks(wet, wet_blk):
    """Blocks of :data:`BLOCK` columns of each row where ``wet`` (a bool or depth grid) is > 0."""
    rows, cols = wet.shape
    wet_blk[:, :] = 0
    for i in range(rows):
        for j in range(cols):
            if wet[i, j] > 0:
                wet_blk[i, j // BLOCK] = 1


@nb.njit(cache=True)
def mark_cells_wet(rows, cols, wet_blk):
    """Mark the blocks of some cells (point sources) as wet."""
    for k in range(rows.shape[0]):
        wet_blk[rows[k], cols[k] // BLOCK] = 1


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
