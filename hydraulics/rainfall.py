"""Rainfall for CityTwin: one import for series, design storms and readers.

- :class:`RainSeries` / :class:`Storm`: intensity in mm/h at a fixed step, one
  column per gauge (:mod:`hydraulics.rain_series`);
- design storms: :func:`chicago_storm`, :func:`nrcs_storm`, :func:`idf_table_storm`,
  :func:`block_storm` (:mod:`hydraulics.design_storms`);
- readers: :func:`read_rain_file` / :func:`read_rain_files` (an observed record,
  CSV or NCDC, told apart by content), :func:`read_ncdc`, :func:`read_rain_csv`,
  :func:`read_idf_table`, :func:`read_design_storm_curves` (:mod:`hydraulics.rain_readers`).

Examples
--------
>>> storm = chicago_storm("beijing", return_period_yr=20, duration_min=120)
>>> storm.to_swmm_timeseries()[:2]
['RG1 0:00 16.36516546', 'RG1 0:05 17.96060488']
"""

from gisdata.idf import DEFAULT_IDF, IDF_PRESETS, ChineseIDF
from hydraulics.design_storms import (
    NRCS_TYPES,
    IDFTable,
    block_storm,
    chicago_storm,
    cumulative_curve_storm,
    idf_table_storm,
    nrcs_curve,
    nrcs_storm,
    resolve_idf,
)
from hydraulics.rain_readers import (
    ACCEPTED_TIME_COLUMNS,
    RainFileError,
    design_storm_for_city,
    read_design_storm_curves,
    read_idf_table,
    read_ncdc,
    read_rain_csv,
    read_rain_file,
    read_rain_files,
    time_note,
)
from hydraulics.rain_series import MM_PER_INCH, RainDataError, RainSeries, Storm, combine_gauges

__all__ = [
    "ACCEPTED_TIME_COLUMNS", "DEFAULT_IDF", "IDF_PRESETS", "MM_PER_INCH", "NRCS_TYPES", "ChineseIDF", "IDFTable", "RainDataError",
    "RainFileError", "RainSeries", "Storm", "block_storm", "chicago_storm", "combine_gauges",
    "cumulative_curve_storm", "design_storm_for_city", "idf_table_storm", "nrcs_curve", "nrcs_storm",
    "read_design_storm_curves", "read_idf_table", "read_ncdc", "read_rain_csv", "read_rain_file", "read_rain_files", "resolve_idf", "time_note",
]
