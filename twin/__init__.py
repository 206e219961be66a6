"""The twin at run time: coupling, event log, replay, visualisation and the CLI."""

from gisdata import CityTwin, load_city, save_city
from gisdata.errors import TwinError

__all__ = ["CityTwin", "TwinError", "load_city", "save_city"]
