"""The ingestion report: each table's counters, the quality score and the warnings.

:func:`~churn_kfp.data.validation.ingest` fills one :class:`TableStats` per table while it
reads and cleans; :func:`quality_score` and :func:`collect_warnings` turn them into the
report's score and warnings (the score's formula is in ``ingest``'s docstring).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from churn_kfp.data.contract import CUSTOMERS, FEEDBACK, TRANSACTIONS, TableContract

__all__ = [
    "LOW_VOLUME_FACTOR",
    "TABLE_WEIGHTS",
    "TableStats",
    "collect_warnings",
    "quality_score",
]

LOW_VOLUME_FACTOR = 0.5
"""A month with fewer rows than this share of the median month gets a warning."""

TABLE_WEIGHTS = {TRANSACTIONS: 0.6, CUSTOMERS: 0.2, FEEDBACK: 0.2}
"""Weights of the tables in the quality score."""


@dataclass
class TableStats:
    """Counters of one table, filled while reading and cleaning."""

    contract: TableContract
    files: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_kept: int = 0
    duplicates_removed: int = 0
    missing: Counter = field(default_factory=Counter)
    invalid: Counter = field(default_factory=Counter)
    imputed: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    clipped: int = 0
    upper_bound: float | None = None
    returns: int = 0
    rows_by_period: Counter = field(default_factory=Counter)
    outside_by_file: dict[str, int] = field(default_factory=dict)
    empty_files: list[str] = field(default_factory=list)
    latin1_files: list[str] = field(default_factory=list)
    extra_columns: set[str] = field(default_factory=set)
    columns_seen: set[str] = field(default_factory=set)
    kept_cell_defects: int = 0
    last_file_rows: int = 0
    date_range: tuple[pd.Timestamp, pd.Timestamp] | None = None

    @property
    def defect_share(self) -> float:
        """Share of defective cells: see :func:`ingest`."""
        n_columns = max(len(self.columns_seen), 1)
        cells = self.rows_read * n_columns
        if cells == 0:
            return 0.0
        removed = self.rows_read - self.rows_kept
        return min(1.0, (self.kept_cell_defects + removed * n_columns) / cells)

    def to_report(self) -> dict[str, Any]:
        """Returns the JSON-serialisable report of the table."""
        columns = [c for c in self.contract.columns if c in self.columns_seen]
        report: dict[str, Any] = {
            "present": bool(self.files),
            "files": list(self.files),
            "rows_read": int(self.rows_read),
            "rows_kept": int(self.rows_kept),
            "duplicates_removed": int(self.duplicates_removed),
            "missing_by_column": {c: int(self.missing[c]) for c in columns},
            "invalid_by_column": {c: int(self.invalid[c]) for c in columns},
            "imputed": {c: int(n) for c, n in sorted(self.imputed.items()) if n},
            "clipped_outliers": int(self.clipped),
            "dropped": {reason: int(n) for reason, n in sorted(self.dropped.items()) if n},
            "date_range": None
            if self.date_range is None
            else [_iso(self.date_range[0]), _iso(self.date_range[1])],
            "empty_files": list(self.empty_files),
            "ignored_columns": sorted(self.extra_columns),
            "defect_share": round(self.defect_share, 6),
        }
        if self.contract.partitioned:
            report["rows_by_period"] = dict(sorted(self.rows_by_period.items()))
            report["rows_outside_partition"] = int(sum(self.outside_by_file.values()))
        if self.contract.name == TRANSACTIONS:
            report["returns"] = int(self.returns)
            report["outlier_upper_bound"] = (
                None if self.upper_bound is None else float(self.upper_bound)
            )
        return report


def quality_score(stats: dict[str, TableStats]) -> float:
    """The quality score of the tables that have rows (see ``ingest``), rounded to 6 places."""
    weighted = total = 0.0
    for name, table in stats.items():
        if table.rows_read:
            weighted += TABLE_WEIGHTS[name] * table.defect_share
            total += TABLE_WEIGHTS[name]
    if total == 0:
        return 1.0
    return round(max(0.0, 1.0 - weighted / total), 6)


def collect_warnings(
    stats: dict[str, TableStats],
    periods: list[str] | None,
    transactions: pd.DataFrame,
    customers: pd.DataFrame | None,
    warnings: list[str],
) -> None:
    """Appends the report's warnings about the tables.

    Empty and Latin-1 files, ignored columns, rows dated outside their file's period,
    months without files or with far fewer rows than the median month, and transaction
    customers missing from the customers table.
    """
    for name, table in stats.items():
        if table.empty_files:
            warnings.append(
                f"{name}: {len(table.empty_files)} empty file(s): "
                f"{', '.join(table.empty_files[:3])}{', ...' if len(table.empty_files) > 3 else ''}"
            )
        if table.latin1_files:
            warnings.append(
                f"{name}: {len(table.latin1_files)} file(s) are not UTF-8 and were read as "
                f"Latin-1: {', '.join(table.latin1_files[:3])}"
            )
        if table.extra_columns:
            warnings.append(
                f"{name}: ignored columns not in the contract: {sorted(table.extra_columns)}"
            )
        if table.outside_by_file:
            examples = ", ".join(f"{k} ({n})" for k, n in list(table.outside_by_file.items())[:3])
            warnings.append(
                f"{name}: {sum(table.outside_by_file.values())} row(s) are dated outside their "
                f"file's period (late-arriving data, kept): {examples}"
            )
        if not table.contract.partitioned or not table.rows_by_period:
            continue
        months = sorted(table.rows_by_period)
        if periods is None:
            expected = pd.period_range(months[0], months[-1], freq="M").strftime("%Y-%m")
            gaps = [m for m in expected if m not in table.rows_by_period]
            if gaps:
                warnings.append(f"{name}: no files for month(s) {', '.join(gaps)}")
        if len(months) >= 3:
            counts = pd.Series(table.rows_by_period)
            median = float(counts.median())
            for month, count in counts.items():
                if count < LOW_VOLUME_FACTOR * median:
                    warnings.append(
                        f"{name}: month {month} has {int(count)} rows, far fewer than the "
                        f"median of {median:g} over {len(months)} months "
                        "(partial or late delivery?)"
                    )
    if customers is not None:
        unknown = pd.Index(transactions["customer_id"].unique()).difference(
            pd.Index(customers["customer_id"])
        )
        if len(unknown):
            warnings.append(
                f"transactions: {len(unknown)} customer id(s) are not in the customers table "
                f"(e.g. {unknown[0]!r})"
            )


def _iso(value: pd.Timestamp) -> str | None:
    return None if pd.isna(value) else pd.Timestamp(value).isoformat()
