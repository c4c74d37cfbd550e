"""Public value helpers, as in ``google.cloud.datastore.helpers``."""

from __future__ import annotations

from typing import Any

__all__ = ["GeoPoint"]


class GeoPoint:
    """A geographical point (latitude, longitude in degrees).

    Example:
        >>> GeoPoint(51.5, -0.12) == GeoPoint(51.5, -0.12)
        True
    """

    __slots__ = ("latitude", "longitude")

    def __init__(self, latitude: float, longitude: float) -> None:
        self.latitude = latitude
        self.longitude = longitude

    def to_protobuf(self) -> Any:
        """Return a ``google.type.latlng_pb2.LatLng`` (needs googleapis-common-protos)."""
        from google.type import latlng_pb2

        return latlng_pb2.LatLng(latitude=self.latitude, longitude=self.longitude)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GeoPoint):
            return NotImplemented
        return self.latitude == other.latitude and self.longitude == other.longitude

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((self.latitude, self.longitude))

    def __repr__(self) -> str:
        return f"GeoPoint(latitude={self.latitude!r}, longitude={self.longitude!r})"
