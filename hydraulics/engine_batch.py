"""Read and set many SWMM nodes in one call, for the coupled loop.

The coupled loop (:mod:`hydraulics.dual_drainage`) reads the head of every
coupled node and sets the exchange inflow of every node that changed, at every
exchange step: on the demo city that is a thousand nodes, four thousand times
a run.  Through swmm-toolkit's Python wrappers each read costs ~0.6 µs of
interpreter overhead, which was a sixth of the coupled run's wall time
(profiled on the demo city, 100-year storm).  swmm-toolkit has no call that
reads an array, so the loops here are compiled with numba and call the
engine's own C functions (``swmm_getNodeResult``, ``swmm_setNodeInflow``) in
the very ``libswmm5`` that swmm-toolkit loaded, at ~35 ns a node.

If the library cannot be found (a swmm-toolkit build that names it
differently), the same functions fall back to the toolkit's wrappers: slower,
same results.  :func:`stride` steps the engine through ctypes too, which releases
the GIL, so the coupled loop can step the 2D surface in the meantime.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np


def _engine_library():
    """``libswmm5`` as swmm-toolkit ships it (dlopen gives the already-loaded copy, so one engine state)."""
    try:
        import swmm.toolkit

        path = os.path.join(os.path.dirname(swmm.toolkit.__file__), "libswmm5.so")
        if not os.path.exists(path):
            return None
        lib = ctypes.CDLL(path)
        get = lib.swmm_getNodeResult
        get.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
        get.restype = ctypes.c_int
        put = lib.swmm_setNodeInflow
        put.argtypes = [ctypes.c_int, ctypes.c_double]
        put.restype = ctypes.c_int
        stride = lib.swmm_stride
        stride.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_double)]
        stride.restype = ctypes.c_int
        return get, put, stride
    except (ImportError, OSError, AttributeError):
        return None


_LIB = _engine_library()

if _LIB is not None:
    import numba as nb

    _get, _put, _stride = _LIB

    @nb.njit(cache=False)
    def _read(idx, key, out):
        bad = 0
        for k in range(idx.size):
            if _get(idx[k], key, out[k:].ctypes.data) != 0:
                bad += 1
        return bad

    @nb.njit(cache=False)
    def _write(idx, values):
        bad = 0
        for k in range(idx.size):
            if _put(idx[k], values[k]) != 0:
                bad += 1
        return bad


def read_node_results(idx: np.ndarray, key: int, out: np.ndarray | None = None) -> np.ndarray:
    """One result of many nodes of the running engine, in the model's units.

    Parameters
    ----------
    idx : ndarray of int
        Engine node indices.
    key : int
        ``swmm.toolkit.shared_enum.NodeResult`` value (e.g. ``NodeResult.HEAD.value``).
    out : ndarray of float64, optional
        Where to write (length ``idx.size``).

    Returns
    -------
    ndarray of float64
        The values, ft or m, cfs or the model's flow unit (as the engine reports them).
    """
    idx32 = np.ascontiguousarray(idx, dtype=np.int32)
    if out is None:
        out = np.empty(idx32.size)
    if _LIB is None:
        from swmm.toolkit import _solver

        out[:] = [_solver.node_get_result(int(i), key) for i in idx32]
        return out
    if _read(idx32, int(key), out):
        raise RuntimeError("the SWMM engine refused a node result read (is a simulation running?)")
    return out


def set_node_inflows(idx: np.ndarray, values: np.ndarray) -> None:
    """Set the external inflow the engine adds to each node until it is set again.

    Parameters
    ----------
    idx : ndarray of int
        Engine node indices.
    values : ndarray of float64
        Inflow of each node in the model's flow unit (negative takes water out).
    """
    idx32 = np.ascontiguousarray(idx, dtype=np.int32)
    vals = np.ascontiguousarray(values, dtype=np.float64)
    if _LIB is None:
        from swmm.toolkit import solver

        for i, v in zip(idx32, vals):
            solver.node_set_total_inflow(int(i), float(v))
        return
    if _write(idx32, vals):
        raise RuntimeError("the SWMM engine refused a node inflow (is a simulation running?)")


def stride(step_s: int) -> float:
    """Advance the running engine by ``step_s`` seconds (``swmm_stride``); returns the elapsed time, days.

    Called through ctypes, which releases the GIL for the C call, so another
    thread can step the 2D surface meanwhile (:mod:`hydraulics.dual_drainage`).
    0 means the simulation has ended.
    """
    if _LIB is None:
        from swmm.toolkit import solver

        return float(solver.swmm_stride(int(step_s)))
    elapsed = ctypes.c_double(0.0)
    err = _stride(int(step_s), ctypes.byref(elapsed))
    if err != 0:
        raise RuntimeError(f"the SWMM engine stopped with error {err} while stepping")
    return float(elapsed.value)
