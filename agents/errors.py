"""Typed errors of the :mod:`agents` package.

Each subclasses :class:`gisdata.errors.TwinError` and the builtin a caller would
expect, so ``except KeyError`` still catches an unknown strategy name.
"""

from __future__ import annotations

from gisdata.errors import MissingColumnError, TwinError

__all__ = [
    "AgentConfigError",
    "ImportFormatError",
    "MissingColumnError",
    "RoutingError",
    "StrategyConfigError",
    "UnknownStrategyError",
]


class UnknownStrategyError(TwinError, KeyError):
    """A dispatch strategy name is not in the registry; the message lists the valid names."""


class StrategyConfigError(TwinError, ValueError):
    """A strategy lacks an input it needs (e.g. ``forecast_staging`` without risk points)."""


class AgentConfigError(TwinError, ValueError):
    """A population, crew or dispatch parameter is out of range; the message names it."""


class RoutingError(TwinError, ValueError):
    """The road layer cannot be turned into a graph, or a closure names an unknown road."""


class ImportFormatError(TwinError, ValueError):
    """An incident file is readable but its values cannot be used (bad times, no rows)."""
