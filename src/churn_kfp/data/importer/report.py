"""What an import tells its user: a progress bar while it runs, the report at the end."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from churn_kfp.data.contract import TABLES
from churn_kfp.data.importer.mapping import ImportMapping

__all__ = ["ImportReport", "Progress", "date_range"]


@dataclass
class ImportReport:
    """What an import read, kept, dropped and wrote.

    Attributes:
        status: ``imported``, ``unchanged`` (this file was imported before: nothing added)
            or ``dry_run`` (checked, nothing written).
        message: One sentence saying what happened.
        source: The export's path.
        sha256: The export's SHA-256 (names the manifest).
        size_bytes: The export's size.
        table: The landing-zone table written.
        landing_zone: The landing zone's URI.
        input_format: How the export was read: ``format``, ``delimiter``, ``encoding``,
            ``header``, ``columns`` (the columns found).
        rows_read: Data rows in the export (malformed lines included).
        rows_kept: Rows written.
        dropped: Rows dropped, by reason (see :data:`~churn_kfp.data.importer.rules.REASONS`).
        notes: Kept rows with a repaired or notable value, by kind (``missing_amount``,
            ``returns_kept``...): ingestion repairs these.
        examples: One offending source value per reason: ``{"row": n, "line": l,
            "value": v}`` with ``n`` the 1-based data row and, for text files, ``l`` the
            line in the file (exact unless the file has blank lines or values spanning
            lines).
        date_range: First and last time stamp kept (ISO), or ``None``.
        customers: Distinct customer ids kept.
        customers_read: Distinct customer ids in the export (after normalisation),
            including those whose every row was dropped.
        partitions: Files written (or that would be): ``key``, ``period``, ``rows``.
        output_format: ``parquet`` or ``csv``.
        replaced: Landing-zone files this import replaced (removed or overwrote).
        manifest: Key of the import manifest.
        seconds: Wall time of the import.
        warnings: Things worth a look that did not stop the import.
    """

    status: str
    message: str
    source: str
    sha256: str
    size_bytes: int
    table: str
    landing_zone: str
    input_format: dict[str, Any] = field(default_factory=dict)
    rows_read: int = 0
    rows_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)
    date_range: tuple[str, str] | None = None
    customers: int = 0
    customers_read: int = 0
    partitions: list[dict[str, Any]] = field(default_factory=list)
    output_format: str = "parquet"
    replaced: list[str] = field(default_factory=list)
    manifest: str = ""
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_dropped(self) -> int:
        """Rows read but not written."""
        return int(sum(self.dropped.values()))

    @property
    def rows_per_second(self) -> float:
        """Rows read per second of wall time."""
        return self.rows_read / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Returns the report as JSON-serialisable data."""
        data = dataclasses.asdict(self)
        data["date_range"] = list(self.date_range) if self.date_range else None
        data["rows_dropped"] = self.rows_dropped
        data["rows_per_second"] = round(self.rows_per_second, 1)
        data["seconds"] = round(self.seconds, 4)
        return data

    def format(self) -> str:
        """Returns the report as a table for humans."""
        fmt = self.input_format
        how = fmt.get("format", "?")
        if fmt.get("delimiter"):
            how += f" delimiter {fmt['delimiter']!r}"
        how += f", {fmt.get('encoding', '?')}"
        if fmt.get("format") != "parquet":
            how += ", header" if fmt.get("header") else ", no header"
        lines = [
            f"churn import: {self.status} - {self.message}",
            f"  source        {self.source} ({_size(self.size_bytes)}, sha256 {self.sha256[:12]}…)",
            f"  read as       {how}",
            f"  landing zone  {self.landing_zone} (table {self.table})",
            f"  rows read     {self.rows_read:>12,}",
            f"  rows kept     {self.rows_kept:>12,}",
            f"  rows dropped  {self.rows_dropped:>12,}",
        ]
        for reason, count in self.dropped.items():
            example = self.examples.get(reason)
            where = _where(example)
            lines.append(f"    {reason:<26}{count:>10,}{where}")
        if self.notes:
            lines.append("  kept, noted (ingestion repairs these)")
            for kind, count in self.notes.items():
                example = self.examples.get(kind)
                where = _where(example)
                lines.append(f"    {kind:<26}{count:>10,}{where}")
        if self.date_range:
            lines.append(f"  date range    {self.date_range[0]} .. {self.date_range[1]} (UTC)")
        lost = self.customers_read - self.customers
        whose = f"  ({lost:,} more had only dropped rows)" if lost > 0 else ""
        lines.append(f"  customers     {self.customers:>12,}{whose}")
        if self.partitions:
            first, last = self.partitions[0], self.partitions[-1]
            span = first["period"] if first is last else f"{first['period']} .. {last['period']}"
            lines.append(
                f"  partitions    {len(self.partitions):>12,}  {span} ({self.output_format})"
            )
        if self.replaced:
            lines.append(
                f"  replaced      {len(self.replaced):>12,}  " + ", ".join(self.replaced[:4])
            )
            if len(self.replaced) > 4:
                lines.append(f"                              ... and {len(self.replaced) - 4} more")
        if self.manifest:
            lines.append(f"  manifest      {self.manifest}")
        rate = f" ({self.rows_per_second:,.0f} rows/s)" if self.status == "imported" else ""
        lines.append(f"  time          {self.seconds:>12.2f} s{rate}")
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)


def _where(example: dict[str, Any] | None) -> str:
    if not example:
        return ""
    if example.get("line"):
        at = f"line {example['line']}: "
    elif example.get("row"):
        at = f"row {example['row']}: "
    else:
        at = ""
    return f"   e.g. {at}{example['value']!r}"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


class Progress:
    """A tqdm bar counting import steps (parse, normalise, validate, one per file written)."""

    def __init__(self, enabled: bool, description: str):
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            # disable=None: only on a terminal, so logs and CI output stay clean.
            self._bar = tqdm(total=3, desc=description, unit="step", disable=None, leave=False)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def step(self, what: str) -> None:
        """Advances by one step and shows what comes next."""
        if self._bar is not None:
            self._bar.set_postfix_str(what, refresh=False)
            self._bar.update(1)

    def grow(self, n: int) -> None:
        """Adds ``n`` steps to the total."""
        if self._bar is not None:
            self._bar.total += n
            self._bar.refresh()


def date_range(table: pa.Table, mapping: ImportMapping) -> tuple[str, str] | None:
    """First and last time stamp (signup date for customers) of the rows, or ``None``.

    Dates alone when every value is at midnight, else date and time.
    """
    column = TABLES[mapping.table].time_column or (
        "signup_date" if "signup_date" in table.column_names else None
    )
    if column is None or table.num_rows == 0:
        return None
    stamps = table.column(column)
    bounds = pc.min_max(stamps)
    first, last = bounds["min"].as_py(), bounds["max"].as_py()
    if first is None:
        return None
    midnight = pc.all(pc.equal(pc.cast(stamps, pa.date32()).cast(stamps.type), stamps))
    if midnight.as_py() is not False:
        return first.date().isoformat(), last.date().isoformat()
    return first.isoformat(sep=" "), last.isoformat(sep=" ")
