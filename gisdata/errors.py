"""Typed errors shared by every CityTwin package.

One base class, :class:`TwinError`; each specific error also subclasses the
builtin a caller would expect (as WNTR's ``ENKeyError(EpanetException, KeyError)``),
so ``except FileNotFoundError`` still works.  Messages name the file, the
layer or column, and what was expected.
"""

from __future__ import annotations


class TwinError(Exception):
    """Base class of every error CityTwin raises on purpose.

    Parameters
    ----------
    *args
        The message (plain words: what is wrong with which file or value).
    detail : str, optional
        The technical words behind it (a library's own message), kept apart so
        a page can fold them away; ``""`` when there are none.
    key : str, optional
        The message's key in the workbench's catalogue (``twin/i18n/*.json``,
        e.g. ``"err.rain.not_a_number"``), so a page can show it in the user's
        language; the English message stays the error's text.
    **params
        The values of the catalogue message's ``{fields}`` (file names, values).

    Examples
    --------
    >>> err = CorruptFileError("city.gpkg: not a readable GeoPackage", detail="DataSourceError: ...")
    >>> str(err), err.detail, err.message_key
    ('city.gpkg: not a readable GeoPackage', 'DataSourceError: ...', None)
    >>> err = CorruptFileError("x.gpkg: not a readable GeoPackage", key="err.gpkg.unreadable", file="x.gpkg")
    >>> err.message_key
    ('err.gpkg.unreadable', {'file': 'x.gpkg'})
    """

    detail: str = ""
    key: str = ""
    params: dict = {}  # noqa: RUF012 - replaced per instance, never mutated

    def __init__(self, *args, detail: str | None = None, key: str | None = None, **params) -> None:
        super().__init__(*args)
        if detail:
            self.detail = str(detail)
        if key:
            self.key = str(key)
            self.params = dict(params)

    @property
    def message_key(self) -> tuple[str, dict] | None:
        """(catalogue key, its fields) of the message, or None when the error has no key."""
        return (self.key, dict(self.params)) if self.key else None

    def __str__(self) -> str:  # KeyError quotes its message; we do not want that
        return str(self.args[0]) if self.args else self.__class__.__name__


def error_parts(exc: BaseException) -> tuple[str, str]:
    """(plain message, technical detail) of an error.

    The detail is the error's ``detail`` attribute; failing that, a library
    error it was raised from (``raise ... from exc``) whose words the message
    quotes in parentheses: they are taken out of the message and returned as
    the detail.

    Examples
    --------
    >>> try:
    ...     try:
    ...         raise OSError("'x.tif' not recognized as being in a supported file format.")
    ...     except OSError as exc:
    ...         raise CorruptFileError(f"x.tif: not a readable GeoTIFF ({exc})") from exc
    ... except CorruptFileError as err:
    ...     error_parts(err)
    ('x.tif: not a readable GeoTIFF', "OSError: 'x.tif' not recognized as being in a supported file format.")
    """
    message = str(exc)
    detail = str(getattr(exc, "detail", "") or "")
    cause = exc.__cause__
    if not detail and cause is not None and not isinstance(cause, TwinError):
        words = str(cause)
        if words and f" ({words})" in message:
            message = message.replace(f" ({words})", "", 1)
            detail = f"{type(cause).__name__}: {words}"
    return message, detail


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
