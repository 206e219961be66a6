"""Typed errors shared by every CityTwin package.

One base class, :class:`TwinError`; each specific error also subclasses the
builtin a caller would expect (as WNTR's ``ENKeyError(EpanetException, KeyError)``),
so ``except FileNotFoundError`` still works.  Messages name the file, the
layer or column, and what was expected.
"""

from __future__ import annotations


class TwinError(Exception):
    """Base class of every error CityTwin raises on purpose."""

    def __str__(self) -> str:  # KeyError quotes its message; we do not want that
        return str(self.args[0]) if self.args else self.__class__.__name__


class InputFileNotFoundError(TwinError, FileNotFoundError):
    """An input file or directory does not exist."""


class CorruptFileError(TwinError, ValueError):
    """A file exists but cannot be read as the format it claims to be."""


class MissingLayerError(TwinError, KeyError):
    """A GeoPackage or city lacks a required layer."""


class MissingColumnError(TwinError, KeyError):
    """A layer lacks a required column."""


class ColumnTypeError(TwinError, TypeError):
    """A column cannot be converted to the dtype its schema declares."""


class ColumnValueError(TwinError, ValueError):
    """A column holds a non-finite value (NaN, inf) or one outside its sane range (:mod:`gisdata.limits`)."""


class CRSError(TwinError, ValueError):
    """A CRS is missing, geographic where metres are needed, or inconsistent."""


class GeometryError(TwinError, ValueError):
    """Geometries are invalid, empty, or of the wrong type."""


class EmptyDataError(TwinError, ValueError):
    """An input holds no usable features."""


class UnknownPresetError(TwinError, ValueError):
    """A city preset name is not one of the known presets."""
