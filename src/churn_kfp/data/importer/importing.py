"""The import of one export, step by step: :func:`import_file`.

Read (:mod:`~churn_kfp.data.importer.reading`), map, normalise and check the rows
(:mod:`~churn_kfp.data.importer.rules`, :mod:`~churn_kfp.data.importer.duplicates`),
check them against the data contract (:mod:`~churn_kfp.data.importer.contract_check`)
while the files are planned, then write them all or nothing
(:mod:`~churn_kfp.data.importer.writing`) and report
(:class:`~churn_kfp.data.importer.report.ImportReport`).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from churn_kfp.data.importer.contract_check import validate
from churn_kfp.data.importer.duplicates import remove_duplicates
from churn_kfp.data.importer.errors import ImportRefused
from churn_kfp.data.importer.mapping import ImportMapping, load_mapping
from churn_kfp.data.importer.reading import read_export
from churn_kfp.data.importer.report import ImportReport, Progress, date_range
from churn_kfp.data.importer.rules import REASONS, in_background, stage
from churn_kfp.data.importer.writing import (
    load_manifests,
    manifest_key,
    overlap_refusal,
    overlaps,
    plan_files,
    write_all,
)
from churn_kfp.data.locking import landing_zone_lock
from churn_kfp.data.staging import settle, sigterm_as_interrupt
from churn_kfp.data.storage import (
    SYNTHETIC_MANIFEST_ID,
    LandingZone,
    contract_data_keys,
    open_landing_zone,
)

__all__ = ["PROGRESS_MIN_BYTES", "import_file"]

PROGRESS_MIN_BYTES = 16 * 1024 * 1024
"""Files smaller than this import without a progress bar."""


def import_file(
    source: str | Path,
    mapping: ImportMapping | str | Path,
    zone: LandingZone | str,
    replace: bool = False,
    progress: bool = True,
    dry_run: bool = False,
    fresh: bool = False,
) -> ImportReport:
    """Imports one export into the landing zone, all or nothing.

    Args:
        source: The export: CSV, whitespace-aligned text or Parquet.
        mapping: An :class:`ImportMapping` or the path of its YAML file.
        zone: A landing zone or its URI (local folder or ``s3://bucket/prefix``).
        replace: Replace partitions that hold data from another source (or from this file
            imported with another mapping). Without it such an overlap is refused. Also
            restores the months of a file imported before whose files a later import
            replaced.
        progress: Show a progress bar for large files (on a terminal only).
        dry_run: Read, check and report, but write nothing.
        fresh: Start from an empty landing zone: every data file of the contract's tables
            (what ingestion reads) and every import manifest is removed, once the export
            has passed every check; other files (a README, notes) are left alone. For
            examples and experiments; nothing is removed if the import fails.

    Returns:
        The report. ``status`` is ``unchanged`` when this file was already imported with
        this mapping (nothing is written again).

    Raises:
        ImportRefused: The export cannot be imported as it is (or the landing zone holds
            synthetic data); nothing was written.
        ImportFailed: A write failed midway; nothing was imported.
        LandingZoneBusy: Another import or run holds the landing zone's lock.
        FileNotFoundError: If ``source`` does not exist.

    The import holds the landing zone's lock (:mod:`churn_kfp.data.locking`) and is one
    all-or-nothing change (:mod:`churn_kfp.data.staging`), even when the process is killed.
    """
    started = time.perf_counter()
    path = Path(source)
    mapping = mapping if isinstance(mapping, ImportMapping) else load_mapping(mapping)
    zone = open_landing_zone(zone) if isinstance(zone, str) else zone
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if dry_run:
        return _import(path, mapping, zone, replace, progress, True, fresh, started)
    with landing_zone_lock(zone, f"churn import {path.name}"), sigterm_as_interrupt():
        settle(zone, abandon=True)  # what an import or generator killed earlier left
        return _import(path, mapping, zone, replace, progress, False, fresh, started)


def _import(
    path: Path,
    mapping: ImportMapping,
    zone: LandingZone,
    replace: bool,
    progress: bool,
    dry_run: bool,
    fresh: bool,
    started: float,
) -> ImportReport:
    name = str(path)
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    base: dict[str, Any] = {
        "source": name,
        "sha256": sha,
        "size_bytes": len(data),
        "table": mapping.table,
        "landing_zone": zone.uri,
        "output_format": mapping.output_format,
        "manifest": manifest_key(sha),
    }
    if not data or data.isspace():  # isspace stops at the first other byte: no copy
        raise ImportRefused(
            name, None, "empty file" if not data else "empty file (only blank lines)"
        )

    manifests = load_manifests(zone)
    synthetic = manifests.get(SYNTHETIC_MANIFEST_ID)
    if synthetic is not None and not fresh and not dry_run:
        raise ImportRefused(
            name,
            None,
            f"the landing zone {zone.uri} holds synthetic data "
            f"({len(synthetic.get('partitions', []))} file(s), {synthetic.get('source', '')}); "
            "your rows would be mixed with it",
            hint="Import into another landing zone (--landing-zone PATH), or run again with "
            "--fresh to remove the synthetic data first. Nothing was written",
        )
    previous = manifests.get(sha)
    if not fresh and previous is not None and previous.get("mapping_digest") == mapping.digest():
        present = [p["key"] for p in previous.get("partitions", []) if zone.exists(p["key"])]
        replaced = [k for r in previous.get("replaced_by", []) for k in r.get("keys", [])]
        if len(present) == len(previous.get("partitions", [])) and not (replaced and replace):
            old = previous.get("report", {})
            later = (
                f"; {len(replaced)} of its files were since replaced by a later import "
                "(--replace restores them)"
            ) * bool(replaced)
            return ImportReport(
                status="unchanged",
                message=f"this file was already imported on {previous.get('imported_at', '?')} "
                f"with the same mapping; nothing added{later}",
                input_format=old.get("input_format", {}),
                rows_read=old.get("rows_read", 0),
                rows_kept=old.get("rows_kept", 0),
                dropped=old.get("dropped", {}),
                notes=old.get("notes", {}),
                examples=old.get("examples", {}),
                date_range=tuple(old["date_range"]) if old.get("date_range") else None,
                customers=old.get("customers", 0),
                customers_read=old.get("customers_read", 0),
                partitions=previous.get("partitions", []),
                seconds=time.perf_counter() - started,
                **base,
            )

    show = progress and len(data) >= PROGRESS_MIN_BYTES
    with Progress(show, f"import {path.name}") as bar:
        bar.step("parsing")
        read = read_export(data, mapping, name)
        del data
        bar.step("normalising")
        staged = stage(read, mapping, name)
        info = read.info
        del read  # the raw columns: free them before the next copies are made
        if staged.source_rows.size == 0:
            reasons = ", ".join(f"{r}: {n:,}" for r, n in staged.dropped.items())
            raise ImportRefused(
                name,
                None,
                f"no usable rows: all {staged.rows_read:,} rows were dropped ({reasons})",
                hint="Check the mapping's columns and rules against the report of a --dry-run",
            )
        remove_duplicates(staged, mapping)
        bar.step("validating")
        # The contract check of the rows to write (pandera, bound to Python's GIL) runs on
        # one core while the files are sorted, split and encoded in memory on the other
        # (Arrow, outside the GIL). Nothing is written unless the check passes.
        check = in_background(
            validate,
            staged.table,
            staged.source_rows,
            mapping,
            name,
            staged.id_codes,
            staged.id_dictionary,
        )
        try:
            table, files = plan_files(staged.table, staged.source_rows, mapping)
        finally:
            check.result()
        if info["format"] != "parquet":
            offset = mapping.skip_rows + (1 if mapping.header else 0)
            for example in staged.examples.values():
                if example.get("row"):
                    example["line"] = example["row"] + offset
        existing, conflicts = overlaps(zone, mapping, files, sha, manifests)
        if fresh:  # the contract's data files and the manifests; nothing else of the user's
            conflicts = contract_data_keys(zone)
            existing = set(conflicts) | {manifest_key(s) for s in manifests}
            replace = True
        if conflicts and not replace and not dry_run:
            raise overlap_refusal(name, conflicts, manifests, previous is not None)
        report = ImportReport(
            status="dry_run" if dry_run else "imported",
            message="",
            input_format=info,
            rows_read=staged.rows_read,
            rows_kept=table.num_rows,
            dropped={r: staged.dropped[r] for r in REASONS if staged.dropped.get(r)},
            notes=dict(sorted(staged.notes.items())),
            examples=staged.examples,
            date_range=date_range(table, mapping),
            customers=int(np.count_nonzero(np.bincount(staged.id_codes[staged.source_rows]))),
            customers_read=staged.customers_read,
            partitions=[{"key": f.key, "period": f.period, "rows": f.rows} for f in files],
            replaced=conflicts,
            warnings=staged.warnings,
            **base,
        )
        if conflicts and dry_run and not replace:
            report.warnings.append(
                f"overlaps {len(conflicts)} existing file(s): a real import needs --replace"
            )
        if dry_run:
            report.message = "checked, nothing written (dry run)"
        else:
            added = f"wrote {len(files)} file(s) with {table.num_rows:,} rows"
            report.message = added + (f", replacing {len(conflicts)}" if conflicts else "")
            bar.grow(len(files))
            write_all(zone, files, mapping, existing, report, manifests, bar, started)
    report.seconds = time.perf_counter() - started
    return report
