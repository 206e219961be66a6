"""City data in and out: the :class:`CityTwin` container, layer schemas, readers and generators."""

from gisdata.city import CityTwin, load_city, save_city
from gisdata.errors import TwinError
from gisdata.raster import Raster

__all__ = ["CityTwin", "Raster", "TwinError", "load_city", "save_city"]
