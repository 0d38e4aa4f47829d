"""The raw-data landing zone: a folder (or bucket) laid out by date partitions.

Layout, the same on a local disk and in an S3 bucket::

    raw/sales/year=2025/month=01/sales_2025_01.csv          # monthly partition
    raw/sales/year=2025/month=01/day=15/sales_2025_01_15.csv  # daily partition
    raw/feedback/year=2025/month=01/feedback_raw_2025_01.csv
    raw/customers/customers.csv                              # not partitioned
    imports/<sha256>.json                                    # one manifest per import
    imports/synthetic-data.json                              # the generator's manifest

This module holds the local backend (:class:`LocalLandingZone`), the layout (partition
keys, :func:`discover_partitions`), reading and writing frames, and
:func:`open_landing_zone`, which picks the backend from a URI. The protocol every backend
implements, its errors and :class:`~churn_kfp.data.landing.Partition` live in
:mod:`churn_kfp.data.landing` and are importable from here too.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import os
import re
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churn_kfp.data.contract import TABLES
from churn_kfp.data.landing import LandingZone, LandingZoneError, Partition, PreconditionFailed
from churn_kfp.data.s3storage import open_s3_landing_zone
from churn_kfp.data.staging import settle

__all__ = [
    "DATA_SUFFIXES",
    "MANIFEST_PREFIX",
    "RAW_PREFIX",
    "SYNTHETIC_MANIFEST_ID",
    "SYNTHETIC_MANIFEST_KEY",
    "LandingZone",
    "LandingZoneError",
    "LocalLandingZone",
    "Partition",
    "contract_data_keys",
    "PreconditionFailed",
    "discover_partitions",
    "frame_bytes",
    "open_landing_zone",
    "partition_key",
    "read_frame",
    "table_keys",
    "table_prefix",
    "unpartitioned_key",
    "write_frame",
]

RAW_PREFIX = "raw"
MANIFEST_PREFIX = "imports/"
"""Where the manifests live: one per import (``imports/<sha256>.json``), and the generator's."""
SYNTHETIC_MANIFEST_ID = "synthetic-data"
"""The synthetic generator's manifest is ``imports/synthetic-data.json``."""
SYNTHETIC_MANIFEST_KEY = f"{MANIFEST_PREFIX}{SYNTHETIC_MANIFEST_ID}.json"
_PARTITION_RE = re.compile(r"year=(\d{4})/month=(\d{2})(?:/day=(\d{2}))?/")
DATA_SUFFIXES = (".csv", ".parquet")


class LocalLandingZone:
    """A landing zone in a local folder."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser().absolute()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents and path != self.root.resolve():
            raise LandingZoneError(f"key {key!r} escapes the landing zone {self.root}")
        return path

    def list_keys(self, prefix: str = "") -> list[str]:
        """Lists file keys (POSIX-style, relative to the root) under a prefix."""
        if not self.root.exists():
            return []
        keys = []
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith((".tmp-", ".lock-")):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def read_bytes(self, key: str) -> bytes:
        """Reads one file."""
        path = self._path(key)
        if not path.is_file():
            raise FileNotFoundError(f"{key} not found in landing zone {self.uri}")
        return path.read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        """Writes through a temporary file and an atomic rename."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def exists(self, key: str) -> bool:
        """Whether the file exists."""
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        """Deletes the file if present."""
        self._path(key).unlink(missing_ok=True)

    def move(self, source: str, target: str) -> None:
        """Renames a file (atomic on one file system); no error when ``source`` is gone."""
        path = self._path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.replace(self._path(source), path)

    def read_versioned(self, key: str) -> tuple[bytes, str] | None:
        """Reads a file and its content hash (the local stand-in for an ETag)."""
        path = self._path(key)
        if not path.is_file():
            return None
        data = path.read_bytes()
        return data, hashlib.sha256(data).hexdigest()

    def write_conditional(self, key: str, data: bytes, if_match: str | None) -> str:
        """Compare-and-swap under an exclusive file lock (safe across processes)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f".lock-{path.name}", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = self.read_versioned(key)
            current_tag = current[1] if current else None
            if current_tag != if_match:
                raise PreconditionFailed(
                    f"{key} changed since it was read (expected version {if_match}, "
                    f"found {current_tag})"
                )
            self.write_bytes(key, data)
        return hashlib.sha256(data).hexdigest()


def open_landing_zone(uri: str) -> LandingZone:
    """Opens the landing zone a URI names.

    Args:
        uri: A local path, ``file://`` URI, or ``s3://bucket[/prefix]``.

    Returns:
        The matching backend.
    """
    if uri.startswith("s3://"):
        return open_s3_landing_zone(uri)
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    return LocalLandingZone(uri)


def partition_key(
    table: str, year: int, month: int, day: int | None = None, suffix: str = ".csv"
) -> str:
    """Returns the landing-zone key of a table's partition file."""
    contract = TABLES[table]
    folder = f"{RAW_PREFIX}/{contract.folder}/year={year:04d}/month={month:02d}"
    name = f"{contract.file_prefix}_{year:04d}_{month:02d}"
    if day is not None:
        folder += f"/day={day:02d}"
        name += f"_{day:02d}"
    return f"{folder}/{name}{suffix}"


def table_prefix(table: str) -> str:
    """Returns the key prefix under which a table's files live."""
    return f"{RAW_PREFIX}/{TABLES[table].folder}/"


def unpartitioned_key(table: str, suffix: str = ".csv") -> str:
    """Returns the key of an unpartitioned table (``raw/customers/customers.csv``)."""
    contract = TABLES[table]
    return f"{RAW_PREFIX}/{contract.folder}/{contract.file_prefix}{suffix}"


def discover_partitions(zone: LandingZone, table: str) -> list[Partition]:
    """Lists a table's partition files, oldest first (after finishing committed changes)."""
    settle(zone)
    partitions = []
    for key in zone.list_keys(table_prefix(table)):
        match = _PARTITION_RE.search(key)
        if match and key.endswith(DATA_SUFFIXES):
            year, month, day = match.groups()
            partitions.append(
                Partition(int(year), int(month), int(day) if day else None, key, table)
            )
    return sorted(partitions, key=lambda p: (p.year, p.month, p.day or 0, p.key))


def table_keys(zone: LandingZone, table: str) -> list[str]:
    """Lists all data files of a table, partitioned or not (after finishing committed changes)."""
    settle(zone)
    return [k for k in zone.list_keys(table_prefix(table)) if k.endswith(DATA_SUFFIXES)]


def contract_data_keys(zone: LandingZone) -> list[str]:
    """Every data file ingestion reads: partitions of the partitioned tables, the others' files.

    Anything else under ``raw/`` (a README, spreadsheets, files outside the layout) is not
    the contract's.
    """
    keys = []
    for table, contract in TABLES.items():
        if contract.partitioned:
            keys += [p.key for p in discover_partitions(zone, table)]
        else:
            keys += table_keys(zone, table)
    return sorted(keys)


def read_frame(zone: LandingZone, key: str, sort_by: str | None = None) -> pd.DataFrame:
    """Reads a CSV (every column as text) or Parquet file from the landing zone.

    Args:
        zone: The landing zone.
        key: The file's key.
        sort_by: A Parquet file whose column of this name holds time stamps comes back in
            their order (a stable sort, missing ones last), sorted by Arrow before its text
            becomes Python strings: at 30M rows, sorting the pandas frame instead took
            seconds more, as it moves every string. CSV files come back as they are.

    Returns:
        The frame, as ``pandas.read_parquet`` / ``pandas.read_csv`` would give it.
    """
    data = zone.read_bytes(key)
    if key.endswith(".parquet"):
        table = pq.read_table(io.BytesIO(data))
        if sort_by in table.column_names and pa.types.is_timestamp(table[sort_by].type):
            stamps = table[sort_by]
            if stamps.null_count or not pc.all(pc.less_equal(stamps[:-1], stamps[1:])).as_py():
                table = table.take(pc.sort_indices(table, [(sort_by, "ascending")]))
        return table.to_pandas()
    return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_values=[""])


def frame_bytes(key: str, frame: pd.DataFrame) -> bytes:
    """Encodes a frame as CSV or Parquet, by the key's suffix."""
    buffer = io.BytesIO()
    if key.endswith(".parquet"):
        frame.to_parquet(buffer, index=False)
    else:
        frame.to_csv(buffer, index=False)
    return buffer.getvalue()


def write_frame(zone: LandingZone, key: str, frame: pd.DataFrame) -> None:
    """Writes a frame as CSV or Parquet (by the key's suffix), atomically."""
    zone.write_bytes(key, frame_bytes(key, frame))
