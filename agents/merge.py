"""Duplicate merging: the spatio-temporal window rule shared by dispatch and the importer.

A report joins an existing group (case) when it has the same key (category,
and in the siloed baseline the receiving department), lies within
``radius_m`` of the group's first report, and either the group is still open
or it arrives within ``window_s`` of the group's latest report or closure.
Among several candidates the nearest wins.  Closed groups older than the
window are forgotten, so the index stays small.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable

import numpy as np
import pandas as pd

from agents.errors import AgentConfigError


class MergeIndex:
    """Incremental merge index.

    Parameters
    ----------
    radius_m : float
        Greatest distance from a group's first report (m).
    window_s : float
        Greatest gap after a group's latest report (s).

    Examples
    --------
    >>> ix = MergeIndex(radius_m=100, window_s=600)
    >>> ix.add("litter", "C1", 0.0, 0.0, 0.0)
    >>> ix.match("litter", 300.0, 50.0, 0.0)
    'C1'
    >>> ix.match("litter", 300.0, 500.0, 0.0) is None
    True
    """

    def __init__(self, radius_m: float, window_s: float) -> None:
        if radius_m < 0:
            raise AgentConfigError(f"merge radius_m={radius_m} must be >= 0")
        if window_s < 0:
            raise AgentConfigError(f"merge window_s={window_s} must be >= 0")
        self.radius_m = float(radius_m)
        self.window_s = float(window_s)
        self._groups: dict[Hashable, dict[Hashable, list[float]]] = defaultdict(dict)

    def match(self, key: Hashable, t: float, x: float, y: float, *, radius_m: float | None = None):
        """ID of the group this report joins, or ``None`` (``radius_m`` overrides the index's)."""
        radius = self.radius_m if radius_m is None else float(radius_m)
        groups = self._groups.get(key)
        if not groups:
            return None
        best, best_d = None, np.inf
        stale = []
        for gid, (t_last_s, gx, gy, is_open) in groups.items():
            if not is_open and t - t_last_s > self.window_s:
                stale.append(gid)
                continue
            d = float(np.hypot(x - gx, y - gy))
            if d <= radius and d < best_d:
                best, best_d = gid, d
        for gid in stale:
            del groups[gid]
        return best

    def add(self, key: Hashable, gid: Hashable, t: float, x: float, y: float, *, is_open: bool = False) -> None:
        """Register a new group anchored at its first report.

        An open group (a case being handled) never expires; :meth:`close` starts its window.
        """
        self._groups[key][gid] = [float(t), float(x), float(y), bool(is_open)]

    def close(self, key: Hashable, gid: Hashable, t: float) -> None:
        """The group's case closed at ``t`` (s): it stays matchable for ``window_s`` more."""
        g = self._groups.get(key, {}).get(gid)
        if g is not None:
            g[0], g[3] = max(g[0], float(t)), False

    def touch(self, key: Hashable, gid: Hashable, t: float) -> None:
        """A report joined ``gid`` at ``t`` (s): extend its window."""
        g = self._groups.get(key, {}).get(gid)
        if g is not None:
            g[0] = max(g[0], float(t))


def find_duplicates(df: pd.DataFrame, *, radius_m: float = 150.0, window_s: float = 3600.0,
                    key: Iterable[str] = ("category",), time_col: str = "time_s") -> pd.Series:
    """Group reports by the merge rule; returns the group (first report's index label) per row.

    Rows without a position (NaN ``x`` or ``y``) form their own group each.

    Parameters
    ----------
    df : pandas.DataFrame
        Columns ``x``, ``y`` (m), ``time_col`` (s) and the ``key`` columns.
    radius_m, window_s : float
        The merge window (m, s).
    key : iterable of str
        Columns that must match.
    """
    key = list(key)
    ix = MergeIndex(radius_m, window_s)
    out = pd.Series(df.index, index=df.index, dtype=object)
    order = np.argsort(df[time_col].to_numpy(float), kind="stable")
    xs, ys, ts = (df[c].to_numpy(float) for c in ("x", "y", time_col))
    keys = list(zip(*(df[c].tolist() for c in key))) if key else [()] * len(df)
    labels = df.index.tolist()
    for i in order:
        if not (np.isfinite(xs[i]) and np.isfinite(ys[i])):
            continue
        g = ix.match(keys[i], ts[i], xs[i], ys[i])
        if g is None:
            ix.add(keys[i], labels[i], ts[i], xs[i], ys[i])
        else:
            ix.touch(keys[i], g, ts[i])
            out.iloc[i] = g
    return out
