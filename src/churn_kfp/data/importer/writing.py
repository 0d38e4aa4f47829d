"""Writing an import to the landing zone, all or nothing.

:func:`plan_files` sorts the kept rows into date partitions and encodes each file in
memory; :func:`overlaps` finds the existing files an import would replace (refused
without ``replace``: :func:`overlap_refusal`); :func:`write_all` writes the files, removes
what they replace and records the import manifest ``imports/<sha256>.json``, as one
all-or-nothing change (:mod:`churn_kfp.data.staging`): a write that fails midway, or a
process killed midway, leaves the landing zone as it was
(:class:`~churn_kfp.data.importer.errors.ImportFailed`).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from churn_kfp.data.contract import TABLES
from churn_kfp.data.importer.errors import ImportFailed, ImportRefused
from churn_kfp.data.importer.mapping import ImportMapping
from churn_kfp.data.importer.report import ImportReport, Progress
from churn_kfp.data.staging import CHANGE_ID_FIELD, write_change
from churn_kfp.data.storage import (
    MANIFEST_PREFIX,
    LandingZone,
    discover_partitions,
    partition_key,
    table_keys,
    unpartitioned_key,
)

__all__ = [
    "MANIFEST_PREFIX",
    "PlannedFile",
    "load_manifests",
    "manifest_key",
    "overlap_refusal",
    "overlaps",
    "plan_files",
    "write_all",
]


@dataclass
class PlannedFile:
    """One file to write: its key, period and encoded bytes."""

    key: str
    period: str
    rows: int
    data: bytes


def _encode(table: pa.Table, suffix: str) -> bytes:
    """The bytes of a landing-zone file (what ``storage.read_frame`` reads back)."""
    buffer = pa.BufferOutputStream()  # not io.BytesIO: no call back into Python (the GIL)
    if suffix == ".parquet":
        pq.write_table(table, buffer)
        return buffer.getvalue().to_pybytes()
    for index, column in enumerate(table.column_names):
        stamps = table.column(column)
        if pa.types.is_timestamp(stamps.type):
            seconds = stamps.cast(pa.timestamp("s"), safe=False)
            if pc.all(pc.equal(seconds.cast(stamps.type), stamps)).as_py() is not False:
                stamps = seconds  # no fractions of seconds: write 2025-01-05 00:00:00
            table = table.set_column(index, column, pc.strftime(stamps, format="%Y-%m-%d %H:%M:%S"))
    pacsv.write_csv(table, buffer)
    return buffer.getvalue().to_pybytes()


def plan_files(
    table: pa.Table, rows: np.ndarray, mapping: ImportMapping
) -> tuple[pa.Table, list[PlannedFile]]:
    """Sorts the given rows by time, splits them into partitions and encodes each file.

    Returns the rows as written (a copy of them, in file order) and the files, oldest
    first.
    """
    contract = TABLES[mapping.table]
    suffix = mapping.output_suffix
    whole = rows.size == table.num_rows  # then rows are 0, 1, 2...
    if not contract.partitioned:
        table = table if whole else table.take(pa.array(rows))
        key = unpartitioned_key(mapping.table, suffix=suffix)
        return table, [PlannedFile(key, "all", table.num_rows, _encode(table, suffix))]
    stamps = table.column(contract.time_column)
    code, period = _partitions(stamps if whole else stamps.take(pa.array(rows)), mapping)
    if code.size > 1 and (np.diff(period) < 0).any():
        # Group rows by partition, keeping the file's order within each: a stable sort of a
        # small integer (numpy uses a linear-time radix sort for 16 bits).
        small = period.astype(np.int16 if period.max() < 2**15 else np.int32)
        order = np.argsort(small, kind="stable")
        rows, code, whole = rows[order], code[order], False
    table = table if whole else table.take(pa.array(rows))
    bounds = np.flatnonzero(np.diff(code)) + 1
    starts = np.concatenate(([0], bounds)).astype(int)
    ends = np.concatenate((bounds, [len(code)])).astype(int)
    parts = []
    for start, end in zip(starts, ends, strict=True):
        value = int(code[start])
        if mapping.partition == "day":
            year, month, day = value // 10000, value // 100 % 100, value % 100
            label = f"{year:04d}-{month:02d}-{day:02d}"
        else:
            year, month, day = value // 100, value % 100, None
            label = f"{year:04d}-{month:02d}"
        key = partition_key(mapping.table, year, month, day, suffix=suffix)
        parts.append((key, label, table.slice(start, end - start)))
    with ThreadPoolExecutor(max_workers=pa.cpu_count()) as pool:  # Arrow encodes without the GIL
        data = pool.map(_encode, [part for _, _, part in parts], [suffix] * len(parts))
        return table, [
            PlannedFile(key, label, part.num_rows, encoded)
            for (key, label, part), encoded in zip(parts, data, strict=True)
        ]


def _partitions(stamps: pa.ChunkedArray, mapping: ImportMapping) -> tuple[np.ndarray, np.ndarray]:
    """Each time stamp's partition as ``YYYYMM`` (or ``YYYYMMDD``) and as a small number.

    The small numbers count months (or days) from the first one: they sort like the
    partitions.
    """
    years = pc.year(stamps).cast(pa.int32()).to_numpy()
    months = pc.month(stamps).cast(pa.int32()).to_numpy()
    if mapping.partition == "day":
        days = stamps.cast(pa.int64()).to_numpy() // (86_400 * 10**9)
        period = (days - days.min()).astype(np.int32)
        code = (years * 100 + months) * 100 + pc.day(stamps).cast(pa.int32()).to_numpy()
    else:
        period = (years - years.min()) * 12 + months - 1
        code = years * 100 + months
    return code, period


def manifest_key(sha: str) -> str:
    """The landing-zone key of the manifest of the file with this SHA-256."""
    return f"{MANIFEST_PREFIX}{sha}.json"


def load_manifests(zone: LandingZone) -> dict[str, dict[str, Any]]:
    """Every import manifest in the landing zone, by the imported file's SHA-256."""
    manifests = {}
    for key in zone.list_keys(MANIFEST_PREFIX):
        if not key.endswith(".json") or "/" in key[len(MANIFEST_PREFIX) :]:
            continue
        try:
            manifest = json.loads(zone.read_bytes(key))
        except (ValueError, FileNotFoundError):
            continue
        sha = manifest.get("sha256") or Path(key).stem
        manifests[sha] = manifest
    return manifests


def overlaps(
    zone: LandingZone,
    mapping: ImportMapping,
    files: list[PlannedFile],
    sha: str,
    manifests: dict[str, dict[str, Any]],
) -> tuple[set[str], list[str]]:
    """Existing files this import would overwrite or remove, and those that need ``replace``.

    A monthly period overlaps every file of the same month (monthly or daily). Files from
    an earlier import of this very file with the same mapping are rewritten without asking.
    """
    table = mapping.table
    if TABLES[table].partitioned:
        months = {f.period[:7] for f in files}
        existing = {
            p.key
            for p in discover_partitions(zone, table)
            if f"{p.year:04d}-{p.month:02d}" in months
        }
    else:
        existing = set(table_keys(zone, table))
    own = manifests.get(sha)
    mine = set()
    if own is not None and own.get("mapping_digest") == mapping.digest():
        mine = {p["key"] for p in own.get("partitions", [])}
    conflicts = sorted(existing - mine)
    return existing, conflicts


def _owner(key: str, manifests: dict[str, dict[str, Any]]) -> str:
    for manifest in manifests.values():
        if any(p.get("key") == key for p in manifest.get("partitions", [])):
            source = Path(manifest.get("source", "?")).name
            return f"from {source} imported {manifest.get('imported_at', '?')}"
    return "not written by churn import"


def overlap_refusal(
    name: str, conflicts: list[str], manifests: dict[str, dict[str, Any]], seen_before: bool
) -> ImportRefused:
    """The refusal of an import that would replace other files without ``replace``."""
    listed = "; ".join(f"{key} ({_owner(key, manifests)})" for key in conflicts[:5])
    more = f"; and {len(conflicts) - 5} more" if len(conflicts) > 5 else ""
    problem = (
        "this file was imported before with a different mapping; " if seen_before else ""
    ) + f"it overlaps {len(conflicts)} existing file(s) in the landing zone: {listed}{more}"
    return ImportRefused(
        name,
        None,
        problem,
        hint="Nothing was written. To replace those periods with this file's rows, run again "
        "with --replace (import_file(..., replace=True)); to keep both, import into another "
        "landing zone (--landing-zone)",
    )


def write_all(
    zone: LandingZone,
    files: list[PlannedFile],
    mapping: ImportMapping,
    existing: set[str],
    report: ImportReport,
    manifests: dict[str, dict[str, Any]],
    bar: Progress,
    started: float,
) -> None:
    """Writes the partitions, removes what they replace and records the manifests; or nothing.

    One all-or-nothing change (:func:`~churn_kfp.data.staging.write_change`): the files
    are staged, the import's manifest commits them, then they replace ``existing``. A
    failure (or Ctrl-C, SIGTERM, SIGKILL) before the commit leaves the landing zone as
    it was.
    """
    now = datetime.now(UTC).isoformat(timespec="seconds")
    updates: dict[str, bytes] = {}
    for other_sha, manifest in manifests.items():
        lost = [p for p in manifest.get("partitions", []) if p["key"] in existing]
        if other_sha == report.sha256 or not lost or manifest_key(other_sha) in existing:
            continue  # its own file, untouched, or removed (a fresh import)
        updated = {
            **manifest,
            "partitions": [p for p in manifest["partitions"] if p not in lost],
            "replaced_by": [
                *manifest.get("replaced_by", []),
                {
                    "sha256": report.sha256,
                    "source": report.source,
                    "at": now,
                    "keys": [p["key"] for p in lost],
                },
            ],
        }
        updated.pop(CHANGE_ID_FIELD, None)
        updates[manifest_key(other_sha)] = _json_bytes(updated)
    periods = {f.key: f.period for f in files}
    report.seconds = time.perf_counter() - started
    manifest = {
        "sha256": report.sha256,
        "source": report.source,
        "size_bytes": report.size_bytes,
        "table": report.table,
        "imported_at": now,
        "churn_kfp_version": _version(),
        "mapping": mapping.to_dict(),
        "mapping_digest": mapping.digest(),
        "partitions": report.partitions,
        "replaced": report.replaced,
        "report": report.to_dict(),
    }
    try:
        unfinished = write_change(
            zone,
            ((f.key, f.data) for f in files),
            report.manifest,
            manifest,
            deletes=existing,
            writes=updates,
            on_file=lambda key: bar.step(periods[key]),
        )
    except Exception as exc:
        raise ImportFailed(
            f"{report.source}: writing to {zone.uri} failed ({exc}); nothing was imported "
            "(the staged files were removed)"
        ) from exc
    if unfinished:
        report.warnings.append(unfinished)


def _json_bytes(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, default=str) + "\n").encode()


def _version() -> str:
    from churn_kfp import __version__

    return __version__
