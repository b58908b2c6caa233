"""Terminal locations: field 59's `lat,lon` text parsed and checked, and the great-circle distance in km
between where a terminal says it is and where its shop is registered."""

from __future__ import annotations

import math
import re

EARTH_RADIUS_KM = 6371.0088  # IUGG mean radius
_LOCATION = re.compile(r"^\s*([+-]?\d{1,3}(?:\.\d{1,8})?)\s*,\s*([+-]?\d{1,3}(?:\.\d{1,8})?)\s*$")

Location = tuple[float, float]


def parse_location(text: str | None) -> Location | None:
    """`lat,lon` in decimal degrees → (lat, lon); None for a missing, malformed or out-of-range value.

    >>> parse_location("31.2304,121.4737")
    (31.2304, 121.4737)
    >>> parse_location(" -33.86 , 151.21 ")
    (-33.86, 151.21)
    >>> parse_location("91,0") is None, parse_location("0,181") is None, parse_location("here") is None
    (True, True, True)
    """
    if not text:
        return None
    match = _LOCATION.match(text)
    if match is None:
        return None
    lat, lon = float(match.group(1)), float(match.group(2))
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None
    return lat, lon


def distance_km(a: Location, b: Location) -> float:
    """Haversine distance in kilometres.

    >>> round(distance_km((31.2304, 121.4737), (39.9042, 116.4074)))  # Shanghai – Beijing
    1067
    >>> distance_km((31.2304, 121.4737), (31.2304, 121.4737))
    0.0
    """
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def terminal_distance_km(reported: str | None, registered: str | None) -> float:
    """The fact `terminal.distance_km`: -1.0 when either location is unknown, so `distance_km > N` is false.

    >>> terminal_distance_km("31.2304,121.4737", None)
    -1.0
    >>> round(terminal_distance_km("31.2304,121.4737", "31.3304,121.4737"), 1)
    11.1
    """
    here, home = parse_location(reported), parse_location(registered)
    if here is None or home is None:
        return -1.0
    return distance_km(here, home)
