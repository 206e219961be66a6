"""One palette for every map and scene: each thing a planner looks for has its own colour.

Before this module the same orange stood for arterial roads, closed roads, city
management crews and incidents.  The rule now:

* **roads** are greys (darker and wider for bigger roads; paths tan): the background
  everything else is drawn on;
* **closures** are the only amber and red lines: amber closed to cars, red closed to everyone;
* **water** is blue, in the fixed depth classes of :mod:`twin.viz.depth_map` (deep water purple);
* **crews** (and their depots) have one saturated colour per department, drawn with a white ring;
  a depot is a larger ring with a white centre;
* **incidents** are light, warm dots with a dark ring, by status;
* **manholes** are small white dots with a grey ring, outfalls orange.

Colours are ``#rrggbb`` strings; :func:`rgb` and :func:`rgba` give deck.gl's lists.
``tests/test_map_legibility.py`` checks that the colours of different things stay
apart (CIE L*a*b* distance).

Examples
--------
>>> rgb(CLOSURE["closed"])
[224, 49, 49]
>>> DEPARTMENT["drainage"] != ROAD_CLASS["arterial"] != CLOSURE["closed_to_cars"]
True
"""

from __future__ import annotations

ROAD_CLASS: dict[str, str] = {
    "motorway": "#495057",
    "arterial": "#6c757d",
    "collector": "#868e96",
    "local": "#adb5bd",
    "service": "#ced4da",
    "path": "#c0b283",
}
"""Road colour by class: greys, darker for bigger roads (paths tan)."""
ROAD_OTHER = "#adb5bd"
ROAD_WIDTH_M: dict[str, float] = {"motorway": 14.0, "arterial": 11.0, "collector": 8.0, "local": 6.0,
                                  "service": 4.0, "path": 2.5}
"""Drawn width of each road class on a 2D map, m (the map keeps at least 1 px)."""
ROAD_WIDTH_PX: dict[str, float] = {"motorway": 4.0, "arterial": 3.5, "collector": 2.5, "local": 1.5,
                                   "service": 1.0, "path": 1.0}
"""Line width of each road class in static pictures and the 3D scene, points / pixels."""

CLOSURE: dict[str, str] = {"closed_to_cars": "#f59f00", "closed": "#e03131"}
"""Road closure colour: amber closed to cars, red closed to everyone (the only amber and red lines)."""
OPEN_ROAD = "#868e96"
WET_ROAD = "#4dabf7"
"""An open road with water on it (0.05 m or more): blue, so the water reads at city zoom."""
"""An open road on a closure map."""

DEPARTMENT: dict[str, str] = {
    "city_management": "#2b8a3e",
    "drainage": "#0b7285",
    "police": "#364fc7",
    "emergency": "#a61e4d",
}
"""Crew and depot colour by department (:data:`agents.catalog` departments)."""
OTHER_DEPARTMENT = "#5c5f66"

INCIDENT: dict[str, str] = {
    "unreported": "#ffe066",
    "reported": "#f06595",
    "en_route": "#faa2c1",
    "on_site": "#b2f2bb",
}
"""Open incident colour by status: nobody reported it; reported, no crew yet; a crew on its way; a crew there."""
INCIDENT_RING = "#212529"
"""Ring around incident dots (crews have a white ring)."""
CREW_RING = "#ffffff"

MANHOLE = "#f8f9fa"
MANHOLE_RING = "#495057"
OUTFALL = "#e8590c"
SPILL = "#1864ab"
"""Manholes that overflow (a flood event's spill points) and wet manholes on the Replay map."""
DEPOT_CENTRE = "#ffffff"
VENDOR = "#cc5de8"
SENSOR: dict[str, str] = {"rain_gauge": "#15aabf", "water_level": "#15aabf"}

BUILDING_USE: dict[str, str] = {
    "residential": "#ded6c4", "commercial": "#c9c4e6", "industrial": "#c8c8c8",
    "public": "#c4dee6", "mixed": "#e6d2c4", "other": "#d2d2d2",
}
"""Building fill by use in 2D (pale, so the street layers stay on top)."""
BUILDING_3D = "#d9dce3"
BUILDING_EDGE = "#5a5a5a"
BUILDING_FLAT = "#5c5f66"
"""Buildings in static pictures (one dark grey)."""

TERRAIN: list[str] = ["#3d7a4a", "#86a86b", "#cfc48f", "#b08a5e", "#7d5a41"]
"""Green lowlands to brown hills (no blue: low ground is not water)."""
TERRAIN_SWATCH = "#8ca872"
SKY = ("#f4f6f8", "#c5d6e8")
"""3D background, bottom and top."""
WATER_SWATCH = "#339af0"
WATER_RAMP = ["#74c0fc", "#1c7ed6", "#0b2e6b"]
"""Continuous water depth in 3D replays without a depth series: even 2 cm shows blue."""
MANHOLE_3D = "#495057"
PIPE_CMAP = "plasma"
"""Sewer pipes by diameter."""
PIPE_SWATCH = "#cc4778"
WATER_CMAP = "Blues"
"""Continuous water depth (fill-and-spill screening; coupled runs use the fixed depth classes)."""
NO_RISK = "#adb5bd"
RISK_EDGE = "#783c14"
"""Outline of forecast district cells."""

DEPTH_CLASS: tuple[str, str, str, str] = ("#74c0fc", "#1c7ed6", "#0b3d91", "#6a1b9a")
"""Street water by depth class (0.05 / 0.15 / 0.30 / 0.50 m, :mod:`twin.viz.depth_map`): light to dark blue,
purple for deep water; fixed, never rescaled."""
BACKDROP = "#f1f3f5"
"""Page-grey behind top-view depth pictures."""
STREET_DOMAIN = "#f8f9fa"
WALLS_LIGHT = "#adb5bd"
ROAD_BACKDROP = "#868e96"
BUILDING_BACKDROP = "#6c757d"

CHART: dict[str, str] = {"depth": "#1c7ed6", "overflow": "#c92a2a", "rim": "#495057", "rain": "#4dabf7",
                         "members": "#868e96", "mean": "#1c7ed6"}
"""Chart colours (hydrograph, rain, forecast members)."""
WALLS = "#868e96"
"""Cells where street water cannot be (buildings, walls) in depth pictures."""
RIVER = "#1c4f8a"
LEGEND_EDGE = "#495057"

TEXT = "#212529"
TEXT_3D = "#222222"
PANEL = "#ffffff"


def rgb(hex_colour: str) -> list[int]:
    """``#rrggbb`` as [r, g, b] (0-255), as deck.gl takes colours.

    Examples
    --------
    >>> rgb("#0b7285")
    [11, 114, 133]
    """
    h = hex_colour.lstrip("#")
    return [int(h[k:k + 2], 16) for k in (0, 2, 4)]


def rgba(hex_colour: str, alpha: int = 255) -> list[int]:
    """``#rrggbb`` as [r, g, b, a] (0-255)."""
    return [*rgb(hex_colour), int(alpha)]


def hex_of(colour) -> str:
    """[r, g, b(, a)] (0-255) or ``#rrggbb`` as ``#rrggbb``.

    Examples
    --------
    >>> hex_of([224, 49, 49, 200])
    '#e03131'
    """
    if isinstance(colour, str):
        return colour.lower()
    r, g, b = (int(round(float(v))) for v in list(colour)[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def road_colour(road_class: str) -> str:
    """Colour of a road class (:data:`ROAD_OTHER` for classes the palette does not know)."""
    return ROAD_CLASS.get(str(road_class), ROAD_OTHER)


def department_colour(department: str) -> str:
    """Colour of a department's crews and depots (:data:`OTHER_DEPARTMENT` for others)."""
    return DEPARTMENT.get(str(department), OTHER_DEPARTMENT)


def lab(hex_colour: str):
    """CIE L*a*b* (D65) of a colour, for checking that two colours read apart."""
    import numpy as np

    c = np.asarray(rgb(hex_colour), dtype=float) / 255
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = m @ c / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def colour_distance(a: str, b: str) -> float:
    """CIE76 distance between two colours (about 2.3 is just noticeable; 20+ reads as a different colour)."""
    import numpy as np

    return float(np.linalg.norm(lab(a) - lab(b)))
