"""What a landing zone is: the :class:`LandingZone` protocol, its errors, a partition file.

The backends implement the protocol: :class:`~churn_kfp.data.storage.LocalLandingZone`
(a folder) and :class:`~churn_kfp.data.s3storage.S3LandingZone` (a bucket);
:func:`~churn_kfp.data.storage.open_landing_zone` picks one from a URI. Both import this
module, so neither needs the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "LandingZone",
    "LandingZoneBusy",
    "LandingZoneError",
    "Partition",
    "PreconditionFailed",
]


class LandingZoneError(RuntimeError):
    """A landing-zone problem the user must fix (missing bucket, bad credentials...)."""


class PreconditionFailed(LandingZoneError):
    """A conditional write lost a race: the object changed (or appeared) since it was read."""


class LandingZoneBusy(LandingZoneError):
    """Another process holds the landing zone's lock (a run or an import is under way)."""


class LandingZone(Protocol):
    """What the pipelines need from a landing zone."""

    uri: str

    def list_keys(self, prefix: str = "") -> list[str]:
        """Lists object keys under a prefix, sorted."""

    def read_bytes(self, key: str) -> bytes:
        """Reads one object."""

    def write_bytes(self, key: str, data: bytes) -> None:
        """Writes one object atomically (readers never see half a file)."""

    def exists(self, key: str) -> bool:
        """Whether an object exists."""

    def delete(self, key: str) -> None:
        """Deletes one object (no error when absent)."""

    def move(self, source: str, target: str) -> None:
        """Moves one object to another key (replacing it); no error when ``source`` is gone.

        Readers see ``target`` either as it was or as the whole moved object.
        """

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """Reads an object and its version tag (ETag); None when absent."""

    def write_conditional(self, key: str, data: bytes, if_match: str | None) -> str:
        """Writes only if the object is still at version ``if_match`` (None: must not exist).

        Returns:
            The new version tag.

        Raises:
            PreconditionFailed: Someone else wrote the object in between.
        """


@dataclass(frozen=True, order=True)
class Partition:
    """One data file of a partitioned table."""

    year: int
    month: int
    day: int | None
    key: str
    table: str

    @property
    def period(self) -> str:
        """``YYYY-MM`` or ``YYYY-MM-DD``."""
        base = f"{self.year:04d}-{self.month:02d}"
        return base if self.day is None else f"{base}-{self.day:02d}"
