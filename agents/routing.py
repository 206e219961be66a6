"""Routing on the road network: a sparse graph, closures as weight changes, cached Dijkstra.

The road layer (``roads``: ``from_node``, ``to_node``, ``length_m``, ``speed_kmh``)
becomes an undirected graph whose edge weight is the free-flow travel time
``length_m / (speed_kmh / 3.6)`` in seconds.  Because the graph is symmetric, one
Dijkstra run *from an incident node* gives the travel time *to* it from every
crew position at once; that is what keeps dispatch fast.

Closures replace the weights rather than the graph: ``closed`` roads are removed,
``closed_to_cars`` roads stay usable by crews at a crawl
(``closed_to_cars_speed_kmh``, default 10 km/h).  Every change bumps
:attr:`RoadGraph.version` and empties the cache of Dijkstra rows, so a row is
never reused across closure states.

Citizens use :meth:`RoadGraph.free_flow_trees`: shortest-path trees on the
free-flow network with Euler-tour intervals, so "does the trip from home ``h``
to hub ``d`` pass node ``n``?" is one vectorised comparison
``tin[n] <= tin[h] < tout[n]`` over thousands of trips.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from agents.errors import RoutingError

CLOSURE_STATUSES = ("open", "closed_to_cars", "closed")
"""Allowed values of a closure's ``status``."""

_STATUS_CODE = {s: i for i, s in enumerate(CLOSURE_STATUSES)}
_MIN_EDGE_S = 1e-3  # csgraph would read an explicit 0 weight as "no edge"


@dataclass(frozen=True)
class ShortestPathTrees:
    """Shortest-path trees rooted at some hub nodes, with Euler-tour intervals.

    Attributes
    ----------
    roots : numpy.ndarray
        Root node index of each tree, shape ``(K,)``.
    time_s : numpy.ndarray
        Free-flow travel time from every node to each root, shape ``(K, N)``, in s
        (``inf`` where unreachable).
    length_m : numpy.ndarray
        Path length from every node to each root, shape ``(K, N)``, in m.
    tin, tout : numpy.ndarray
        Euler-tour entry and exit counters, shape ``(K, N)``; node ``h``'s path to
        root ``k`` passes node ``n`` iff ``tin[k, n] <= tin[k, h] < tout[k, n]``.
        Unreachable nodes get ``tin = tout = -1``.
    parent : numpy.ndarray
        Next node towards the root, shape ``(K, N)``; ``-1`` at the root and when unreachable.
    """

    roots: np.ndarray
    time_s: np.ndarray
    length_m: np.ndarray
    tin: np.ndarray
    tout: np.ndarray
    parent: np.ndarray

    def passes(self, k: np.ndarray, h: np.ndarray, n) -> np.ndarray:
        """Boolean mask: does the path from node ``h[i]`` to root ``k[i]`` pass node ``n`` (or ``n[i]``)?"""
        t_h = self.tin[k, h]
        return (self.tin[k, n] <= t_h) & (t_h < self.tout[k, n]) & (t_h >= 0)


class RoadGraph:
    """Undirected road graph with travel times in seconds and closure states.

    Parameters
    ----------
    roads : pandas.DataFrame or geopandas.GeoDataFrame
        The ``roads`` layer: index ``road_id``; columns ``from_node``, ``to_node``,
        ``length_m`` (m) and ``speed_kmh`` (km/h).  Node coordinates are taken from
        the first and last vertex of each geometry (or from ``node_xy``).
    node_xy : Mapping[str, tuple[float, float]], optional
        Junction coordinates in metres, if ``roads`` has no geometry.
    closed_to_cars_speed_kmh : float
        Speed cap of crews on roads that are ``closed_to_cars`` (km/h).
    cache_rows : int
        Dijkstra rows kept per closure state (each is ``N`` floats).

    Examples
    --------
    >>> import pandas as pd
    >>> roads = pd.DataFrame({"from_node": ["a", "b"], "to_node": ["b", "c"],
    ...                       "length_m": [100.0, 100.0], "speed_kmh": [36.0, 36.0]},
    ...                      index=pd.Index(["r1", "r2"], name="road_id"))
    >>> g = RoadGraph(roads, node_xy={"a": (0, 0), "b": (100, 0), "c": (200, 0)})
    >>> g.travel_time("a", "c")
    20.0
    >>> g.apply_closures({"r2": "closed"}); g.travel_time("a", "c")
    inf
    """

    def __init__(self, roads: pd.DataFrame, *, node_xy: Mapping[str, tuple[float, float]] | None = None,
                 closed_to_cars_speed_kmh: float = 10.0, cache_rows: int = 2048) -> None:
        missing = [c for c in ("from_node", "to_node", "length_m", "speed_kmh") if c not in roads.columns]
        if missing:
            raise RoutingError(f"roads layer lacks column(s) {missing}; expected from_node, to_node, length_m, speed_kmh")
        if len(roads) == 0:
            raise RoutingError("roads layer is empty; a road graph needs at least one segment")
        if closed_to_cars_speed_kmh <= 0:
            raise RoutingError(f"closed_to_cars_speed_kmh={closed_to_cars_speed_kmh} must be > 0")
        speed = roads["speed_kmh"].to_numpy(float)
        length = roads["length_m"].to_numpy(float)
        if (speed <= 0).any() or not np.isfinite(speed).all():
            bad = roads.index[(speed <= 0) | ~np.isfinite(speed)][:5].tolist()
            raise RoutingError(f"roads {bad}: speed_kmh must be finite and > 0")
        if (length < 0).any() or not np.isfinite(length).all():
            bad = roads.index[(length < 0) | ~np.isfinite(length)][:5].tolist()
            raise RoutingError(f"roads {bad}: length_m must be finite and >= 0")
        frm = roads["from_node"].astype(str).to_numpy()
        to = roads["to_node"].astype(str).to_numpy()
        self.node_ids: np.ndarray = np.unique(np.concatenate([frm, to]))
        self.node_index: dict[str, int] = {n: i for i, n in enumerate(self.node_ids)}
        self.road_ids: np.ndarray = roads.index.astype(str).to_numpy()
        self.road_index: dict[str, int] = {r: i for i, r in enumerate(self.road_ids)}
        self.u = np.searchsorted(self.node_ids, frm)
        self.v = np.searchsorted(self.node_ids, to)
        self.length_m = length
        self.speed_kmh = speed
        self.free_time_s = np.maximum(length / (speed / 3.6), _MIN_EDGE_S)
        self.xy = self._node_coords(roads, frm, to, node_xy)
        self._tree = cKDTree(self.xy)
        self.closed_to_cars_speed_kmh = float(closed_to_cars_speed_kmh)
        self.status = np.zeros(len(self.road_ids), dtype=np.int8)
        self.version = 0
        self._cache_rows = int(cache_rows)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._matrix = self._build_matrix()

    @classmethod
    def from_city(cls, city, **kwargs) -> RoadGraph:
        """Build the graph from ``city.roads`` (a :class:`gisdata.CityTwin`)."""
        return cls(city.roads, **kwargs)

    # ------------------------------------------------------------------ geometry
    def _node_coords(self, roads, frm, to, node_xy) -> np.ndarray:
        xy = np.full((len(self.node_ids), 2), np.nan)
        if node_xy is not None:
            for n, p in node_xy.items():
                if n in self.node_index:
                    xy[self.node_index[n]] = p
        elif "geometry" in roads.columns or hasattr(roads, "geometry"):
            import shapely

            geom = roads.geometry.to_numpy()
            lines = shapely.get_geometry(geom, 0)  # first part of MultiLineStrings
            first = shapely.get_coordinates(shapely.get_point(lines, 0))
            last = shapely.get_coordinates(shapely.get_point(lines, -1))
            xy[np.searchsorted(self.node_ids, frm)] = first
            xy[np.searchsorted(self.node_ids, to)] = last
        if np.isnan(xy).any():
            bad = self.node_ids[np.isnan(xy).any(axis=1)][:5].tolist()
            raise RoutingError(f"road junctions {bad} have no coordinates; give roads geometries or node_xy")
        return xy

    @property
    def n_nodes(self) -> int:
        """Number of junctions."""
        return len(self.node_ids)

    def nearest_node(self, x, y) -> np.ndarray:
        """Index of the junction nearest to each point ``(x, y)`` in metres."""
        _, idx = self._tree.query(np.column_stack([np.atleast_1d(x), np.atleast_1d(y)]))
        return np.asarray(idx, dtype=np.int64)

    def nodes_within(self, x: float, y: float, radius_m: float) -> np.ndarray:
        """Junction indices within ``radius_m`` of ``(x, y)``; at least the nearest one."""
        idx = self._tree.query_ball_point((x, y), radius_m)
        return np.asarray(sorted(idx), dtype=np.int64) if idx else self.nearest_node(x, y)

    def road_midpoints(self) -> np.ndarray:
        """Midpoint of each road's end junctions, shape ``(R, 2)`` in m."""
        return 0.5 * (self.xy[self.u] + self.xy[self.v])

    def _as_index(self, node) -> int:
        if isinstance(node, (int, np.integer)):
            return int(node)
        try:
            return self.node_index[str(node)]
        except KeyError:
            raise RoutingError(f"unknown road junction '{node}'") from None

    # ------------------------------------------------------------------ closures
    def crew_time_s(self) -> np.ndarray:
        """Current crew travel time of each road in s (``inf`` if closed)."""
        t = self.free_time_s.copy()
        slow = self.status == _STATUS_CODE["closed_to_cars"]
        crawl = np.minimum(self.speed_kmh[slow], self.closed_to_cars_speed_kmh) / 3.6
        t[slow] = np.maximum(self.length_m[slow] / crawl, _MIN_EDGE_S)
        t[self.status == _STATUS_CODE["closed"]] = np.inf
        return t

    def _build_matrix(self) -> csr_matrix:
        w = self.crew_time_s()
        ok = np.isfinite(w) & (self.u != self.v)
        u = np.concatenate([self.u[ok], self.v[ok]])
        v = np.concatenate([self.v[ok], self.u[ok]])
        w = np.concatenate([w[ok], w[ok]])
        # parallel roads between the same junctions: keep the fastest (csr would sum them)
        order = np.lexsort((w, v, u))
        u, v, w = u[order], v[order], w[order]
        first = np.ones(len(u), dtype=bool)
        first[1:] = (u[1:] != u[:-1]) | (v[1:] != v[:-1])
        n = self.n_nodes
        return csr_matrix((w[first], (u[first], v[first])), shape=(n, n))

    def apply_closures(self, closures) -> None:
        """Set the closure state of every road (roads not listed are open).

        Parameters
        ----------
        closures : pandas.DataFrame, pandas.Series, Mapping[str, str] or None
            ``road_id -> status`` with status in :data:`CLOSURE_STATUSES`.  A
            DataFrame is indexed by ``road_id`` (or has a ``road_id`` column) and
            has a ``status`` column.  ``None`` reopens every road.

        Raises
        ------
        RoutingError
            If a road ID is unknown or a status is not allowed.
        """
        status = np.zeros(len(self.road_ids), dtype=np.int8)
        for road, st in closure_items(closures):
            i = self.road_index.get(road)
            if i is None:
                raise RoutingError(f"closure names unknown road_id '{road}'")
            status[i] = _STATUS_CODE[st]
        if np.array_equal(status, self.status):
            return
        self.status = status
        self.version += 1
        self._cache.clear()
        self._matrix = self._build_matrix()

    def closures(self) -> pd.DataFrame:
        """Roads that are not open: index ``road_id``, column ``status``."""
        shut = np.flatnonzero(self.status > 0)
        return pd.DataFrame({"status": [CLOSURE_STATUSES[s] for s in self.status[shut]]},
                            index=pd.Index(self.road_ids[shut], name="road_id"))

    # ------------------------------------------------------------------ queries
    def travel_times_from(self, node) -> np.ndarray:
        """Crew travel time in s from ``node`` to every junction (== to ``node``; symmetric)."""
        i = self._as_index(node)
        row = self._cache.get(i)
        if row is None:
            row = dijkstra(self._matrix, directed=True, indices=i)
            row.setflags(write=False)
            self._cache[i] = row
            if len(self._cache) > self._cache_rows:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(i)
        return row

    def precompute(self, nodes) -> None:
        """Fill the cache for several source nodes in one Dijkstra call (e.g. all depots)."""
        idx = np.unique([self._as_index(n) for n in np.atleast_1d(nodes)])
        todo = [i for i in idx if i not in self._cache]
        if not todo:
            return
        rows = dijkstra(self._matrix, directed=True, indices=todo)
        for i, row in zip(todo, np.atleast_2d(rows)):
            row.setflags(write=False)
            self._cache[int(i)] = row

    def travel_time(self, a, b) -> float:
        """Crew travel time from junction ``a`` to ``b`` in s (``inf`` if cut off)."""
        return float(self.travel_times_from(b)[self._as_index(a)])

    def travel_time_matrix(self, sources, targets) -> np.ndarray:
        """Travel times in s, shape ``(len(sources), len(targets))``."""
        src = np.array([self._as_index(s) for s in np.atleast_1d(sources)], dtype=np.int64)
        tgt = [self._as_index(t) for t in np.atleast_1d(targets)]
        self.precompute(tgt)
        out = np.empty((len(src), len(tgt)))
        for j, t in enumerate(tgt):
            out[:, j] = self.travel_times_from(t)[src]
        return out

    def path(self, a, b) -> list[int]:
        """Junction indices of the fastest crew path from ``a`` to ``b`` (empty if cut off)."""
        ia, ib = self._as_index(a), self._as_index(b)
        dist, pred = dijkstra(self._matrix, directed=True, indices=ib, return_predecessors=True)
        if not np.isfinite(dist[ia]):
            return []
        out = [ia]
        while out[-1] != ib:
            out.append(int(pred[out[-1]]))
        return out

    def path_roads(self, path: list[int]) -> np.ndarray:
        """Road indices along a junction path (the fastest road between each pair)."""
        if len(path) < 2:
            return np.zeros(0, dtype=np.int64)
        w = self.crew_time_s()
        key = {}
        for r in np.argsort(w)[::-1]:  # slowest first so the fastest overwrites
            key[(self.u[r], self.v[r])] = r
            key[(self.v[r], self.u[r])] = r
        return np.array([key[(a, b)] for a, b in pairwise(path)], dtype=np.int64)

    # ------------------------------------------------------------------ trees
    def free_flow_trees(self, roots) -> ShortestPathTrees:
        """Shortest-path trees on the open, free-flow network rooted at ``roots``.

        Citizens plan on these (they do not know about closures; trips that cross a
        closed road count as flood exposure).
        """
        roots = np.array([self._as_index(r) for r in np.atleast_1d(roots)], dtype=np.int64)
        ok = self.u != self.v
        u = np.concatenate([self.u[ok], self.v[ok]])
        v = np.concatenate([self.v[ok], self.u[ok]])
        w = np.concatenate([self.free_time_s[ok]] * 2)
        ln = np.concatenate([self.length_m[ok]] * 2)
        order = np.lexsort((w, v, u))
        u, v, w, ln = u[order], v[order], w[order], ln[order]
        first = np.ones(len(u), dtype=bool)
        first[1:] = (u[1:] != u[:-1]) | (v[1:] != v[:-1])
        u, v, w, ln = u[first], v[first], w[first], ln[first]
        n = self.n_nodes
        mat = csr_matrix((w, (u, v)), shape=(n, n))
        edge_len = {(a, b): c for a, b, c in zip(u.tolist(), v.tolist(), ln.tolist())}
        dist, pred = dijkstra(mat, directed=True, indices=roots, return_predecessors=True)
        dist, pred = np.atleast_2d(dist), np.atleast_2d(pred)
        k = len(roots)
        tin = np.full((k, n), -1, dtype=np.int64)
        tout = np.full((k, n), -1, dtype=np.int64)
        length = np.full((k, n), np.inf)
        parent = np.where(pred < 0, -1, pred).astype(np.int64)
        for j in range(k):
            tin[j], tout[j], length[j] = _euler_tour(parent[j], int(roots[j]), dist[j], edge_len)
        return ShortestPathTrees(roots=roots, time_s=dist, length_m=length, tin=tin, tout=tout, parent=parent)


def _euler_tour(parent: np.ndarray, root: int, dist: np.ndarray, edge_len: dict):
    """Entry/exit counters and path lengths of one tree (iterative DFS)."""
    n = len(parent)
    reach = np.flatnonzero((parent >= 0) & np.isfinite(dist))
    order = np.argsort(parent[reach], kind="stable")
    kids_sorted = reach[order]
    starts = np.searchsorted(parent[reach][order], np.arange(n + 1))
    tin = np.full(n, -1, dtype=np.int64)
    tout = np.full(n, -1, dtype=np.int64)
    length = np.full(n, np.inf)
    length[root] = 0.0
    clock = 0
    stack = [(root, False)]
    ks, st = kids_sorted.tolist(), starts.tolist()
    while stack:
        node, done = stack.pop()
        if done:
            tout[node] = clock
            continue
        tin[node] = clock
        clock += 1
        stack.append((node, True))
        for c in ks[st[node]:st[node + 1]]:
            length[c] = length[node] + edge_len[(c, node)]
            stack.append((c, False))
    return tin, tout, length


def closure_items(closures) -> list[tuple[str, str]]:
    """Normalise a closures argument to ``[(road_id, status), ...]``; validates the statuses."""
    if closures is None:
        return []
    if isinstance(closures, pd.DataFrame):
        df = closures
        if "road_id" in df.columns:
            df = df.set_index("road_id")
        if "status" not in df.columns:
            raise RoutingError(f"closures table has columns {list(closures.columns)}; expected 'status' "
                               "(and road_id as index or column)")
        items = list(zip(df.index.astype(str), df["status"].astype(str)))
    elif isinstance(closures, pd.Series):
        items = list(zip(closures.index.astype(str), closures.astype(str)))
    elif isinstance(closures, Mapping):
        items = [(str(k), str(v)) for k, v in closures.items()]
    else:
        raise RoutingError(f"closures of type {type(closures).__name__}; expected a DataFrame, Series or mapping")
    bad = sorted({s for _, s in items if s not in _STATUS_CODE})
    if bad:
        raise RoutingError(f"closure status {bad}; expected one of {list(CLOSURE_STATUSES)}")
    return items
