"""Import a user's own export into the landing zone: ``churn import``.

A shop's or warehouse's export rarely looks like the data contract. A small YAML
*mapping* (:func:`load_mapping`, reference in ``docs/data-contract.md``) says which column
is what, how dates are written, whether the amount is given or is quantity × unit price,
how returns and cancellations are marked and how customer ids are normalised.
:func:`import_file` then

1. reads the export: CSV with any delimiter (sniffed when not given), whitespace-aligned
   columns, or Parquet;
2. maps and normalises the columns (vectorised with Arrow compute kernels);
3. drops unusable rows and counts them by reason (missing customer id, missing or
   unparseable time stamp, non-numeric amount, cancellations and returns, duplicate
   lines, malformed lines), keeping one example of each;
4. validates the result with the contract's pandera schema
   (:func:`churn_kfp.data.contract.schema`), the same schema ingestion uses;
5. writes date partitions (``raw/sales/year=YYYY/month=MM/[day=DD/]``) as Parquet (or
   CSV) and an import manifest ``imports/<sha256 of the file>.json``.

It is all or nothing. *Unrecoverable* problems raise :class:`ImportRefused` before
anything is written, naming the file, the column and an example value: an empty file, a
wrong encoding, a mapped column that the file does not have (which is also how a wrong
delimiter shows: the file seems to have a single column), time stamps unusable in most
rows (> :data:`MAX_UNUSABLE_SHARE`), amounts that are mostly not numbers, no row left
after the drops, and partitions that would overwrite another import's data without
``replace=True``. If a write fails midway, the files this import wrote are removed again
and replaced files are restored (:class:`ImportFailed`).

Re-importing the same file (same bytes, same mapping) adds nothing and says so.

Usage::

    from churn_kfp.data.importer import import_file, load_mapping

    report = import_file("orders.csv", load_mapping("shop.yaml"), "/data/landing")
    print(report.format())  # or report.to_dict()
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import functools
import hashlib
import json
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from churn_kfp.data.contract import CUSTOMERS, FEEDBACK, TABLES, TRANSACTIONS, schema
from churn_kfp.data.storage import (
    RAW_PREFIX,
    LandingZone,
    discover_partitions,
    open_landing_zone,
    partition_key,
    table_keys,
    unpartitioned_key,
)

MAX_UNUSABLE_SHARE = 0.5
"""Above this share of rows with a missing/unparseable time stamp (or a non-numeric amount)
the whole file is refused: the mapping is wrong, not the rows."""

MANIFEST_PREFIX = "imports/"
"""Where import manifests live in the landing zone (next to ``raw/``)."""

PROGRESS_MIN_BYTES = 16 * 1024 * 1024
"""Files smaller than this import without a progress bar."""

FORMATS = ("auto", "csv", "whitespace", "parquet")
AMOUNT_MODES = ("given", "quantity_x_unit_price")
RETURN_ACTIONS = ("drop", "keep")
DUPLICATE_ACTIONS = ("drop", "keep")
ZERO_AMOUNT_ACTIONS = ("keep", "drop")
PARTITIONS = ("month", "day")
OUTPUT_FORMATS = ("parquet", "csv")
DEFAULT_NA_VALUES = ("", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "None", "none")

SOURCE_ONLY_COLUMNS = {TRANSACTIONS: ("unit_price", "status")}
"""Mapping targets that are not contract columns: they feed the amount and the returns."""

_TOP_LEVEL_KEYS = (
    "table",
    "format",
    "delimiter",
    "quotechar",
    "encoding",
    "header",
    "names",
    "skip_rows",
    "na_values",
    "decimal",
    "columns",
    "timestamp_format",
    "timezone",
    "amount",
    "returns",
    "customer_id",
    "duplicates",
    "zero_amount",
    "partition",
    "output_format",
)
_SNIFF_DELIMITERS = ",;\t|"
_SNIFF_BYTES = 64 * 1024
_NUMBER_RE = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
_ISO_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")
_OFFSET_RE = r"(?:Z|[+-]\d{2}:?\d{2})$"
_MIN_YEAR, _MAX_YEAR = 1900, 2200
_PARQUET_MAGIC = b"PAR1"
_SAMPLE_ROWS = 1 << 16

# Drop reasons, in the order they are checked; a row is counted under the first that applies.
REASONS = (
    "malformed_line",
    "missing_customer_id",
    "missing_timestamp",
    "unparseable_timestamp",
    "timestamp_out_of_range",
    "non_numeric_quantity",
    "non_numeric_unit_price",
    "non_numeric_amount",
    "missing_text",
    "cancelled_order_id",
    "cancelled_status",
    "return_negative_quantity",
    "return_negative_amount",
    "zero_amount",
    "duplicate_line",
    "duplicate_customer_id",
)


class MappingError(ValueError):
    """An import mapping that cannot be used (unknown key, missing column, bad value)."""


class ImportRefused(ValueError):
    """An export that cannot be imported as it is; nothing was written.

    ``str(error)`` reads ``<file>: column '<column>': <problem> (e.g. '<example>'). <hint>``
    leaving out the parts that are ``None``.

    Attributes:
        file: The export (path or name).
        column: The offending source column, or ``None``.
        problem: What is wrong.
        example: An offending value, or ``None``.
        hint: What to change, or ``None``.
    """

    def __init__(
        self,
        file: str,
        column: str | None,
        problem: str,
        example: str | None = None,
        hint: str | None = None,
    ):
        super().__init__(file, column, problem, example, hint)
        self.file = file
        self.column = column
        self.problem = problem
        self.example = example
        self.hint = hint

    def __str__(self) -> str:
        parts = [self.file]
        if self.column is not None:
            parts.append(f"column {self.column!r}")
        problem = self.problem
        if self.example is not None:
            problem += f" (e.g. {self.example!r})"
        parts.append(problem)
        text = ": ".join(parts)
        return f"{text}. {self.hint}" if self.hint else text

    def to_dict(self) -> dict[str, Any]:
        """Returns the refusal as JSON-serialisable fields."""
        return {
            "status": "refused",
            "error": str(self),
            "file": self.file,
            "column": self.column,
            "problem": self.problem,
            "example": self.example,
            "hint": self.hint,
        }


class ImportFailed(RuntimeError):
    """Writing to the landing zone failed midway; what this import wrote was removed."""


# --- the mapping -----------------------------------------------------------------------


@dataclass(frozen=True)
class ReturnsRule:
    """How the export marks returns and cancellations.

    Attributes:
        negative_quantity: A negative quantity marks a return.
        negative_amount: A negative amount marks a return.
        order_id_prefix: Order ids starting with one of these mark a cancellation.
        status_values: Values of the ``status`` column (case-insensitive) that mark a
            cancellation.
        action: ``drop`` the rows (counted by reason) or ``keep`` them as returns: kept
            rows get a negative amount, the contract's way of saying "return".
    """

    negative_quantity: bool = False
    negative_amount: bool = False
    order_id_prefix: tuple[str, ...] = ()
    status_values: tuple[str, ...] = ()
    action: str = "drop"


@dataclass(frozen=True)
class CustomerIdRule:
    """How customer ids are normalised (after trimming blanks).

    Attributes:
        strip_float_suffix: ``"17850.0"`` becomes ``"17850"`` (ids that went through a
            spreadsheet or a float column).
        strip_leading_zeros: ``"00001"`` becomes ``"1"`` (digit-only ids).
        zero_pad: Left-pad digit-only ids with zeros to this width (``"1"`` ->
            ``"00001"``), or ``None``.
    """

    strip_float_suffix: bool = True
    strip_leading_zeros: bool = False
    zero_pad: int | None = None


@dataclass(frozen=True)
class ImportMapping:
    """How to read one export and map it onto a landing-zone table.

    See ``docs/data-contract.md`` for the reference with examples; :func:`load_mapping`
    builds and checks one from YAML.
    """

    columns: dict[str, str]
    table: str = TRANSACTIONS
    format: str = "auto"
    delimiter: str | None = None
    quotechar: str | None = '"'
    encoding: str = "utf-8"
    header: bool = True
    names: tuple[str, ...] | None = None
    skip_rows: int = 0
    na_values: tuple[str, ...] = DEFAULT_NA_VALUES
    decimal: str = "."
    timestamp_format: str | None = None
    timezone: str | None = None
    amount: str = "given"
    returns: ReturnsRule = field(default_factory=ReturnsRule)
    customer_id: CustomerIdRule = field(default_factory=CustomerIdRule)
    duplicates: str = "drop"
    zero_amount: str = "keep"
    partition: str = "month"
    output_format: str = "parquet"

    def to_dict(self) -> dict[str, Any]:
        """Returns the mapping as plain data (the YAML shape, every default filled in)."""
        data = dataclasses.asdict(self)
        data["names"] = list(self.names) if self.names is not None else None
        data["na_values"] = list(self.na_values)
        data["returns"]["order_id_prefix"] = list(self.returns.order_id_prefix)
        data["returns"]["status_values"] = list(self.returns.status_values)
        return data

    def digest(self) -> str:
        """Returns a short hash of the mapping (two imports of a file compare it)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def output_suffix(self) -> str:
        """``.parquet`` or ``.csv``."""
        return f".{self.output_format}"

    def source_columns(self) -> list[str]:
        """The export's columns the mapping reads, without repeats."""
        return list(dict.fromkeys(self.columns.values()))


def load_mapping(path: str | Path) -> ImportMapping:
    """Reads and checks an import mapping from a YAML file.

    Args:
        path: The YAML file.

    Returns:
        The checked mapping.

    Raises:
        MappingError: Unknown keys, a missing ``customer_id``/``timestamp`` column, a value
            of the wrong kind; the message names the file and the key.
        FileNotFoundError: If the file does not exist.
    """
    import yaml

    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MappingError(f"{path}: not valid YAML: {exc}") from exc
    return mapping_from_dict(data, origin=str(path))


def mapping_from_dict(data: Any, origin: str = "<mapping>") -> ImportMapping:
    """Builds and checks an import mapping from plain data (a parsed YAML document).

    Args:
        data: The mapping document.
        origin: Where it came from, for error messages.

    Returns:
        The checked mapping.

    Raises:
        MappingError: See :func:`load_mapping`.
    """

    def fail(message: str) -> MappingError:
        return MappingError(f"{origin}: {message}")

    if not isinstance(data, Mapping):
        raise fail(f"expected a YAML mapping (key: value lines), got {type(data).__name__}")
    _reject_unknown(data, _TOP_LEVEL_KEYS, "", fail)

    table = _choice(data, "table", tuple(TABLES), TRANSACTIONS, fail)
    contract = TABLES[table]
    columns_raw = data.get("columns")
    if not isinstance(columns_raw, Mapping) or not columns_raw:
        raise fail(
            "'columns' is required: map contract columns to the export's columns, e.g. "
            "'columns: {customer_id: CustomerID, timestamp: InvoiceDate, amount: Total}'"
        )
    allowed = contract.columns + SOURCE_ONLY_COLUMNS.get(table, ())
    _reject_unknown(columns_raw, allowed, "columns.", fail)
    columns: dict[str, str] = {}
    for target, source in columns_raw.items():
        if isinstance(source, bool) or not isinstance(source, str | int) or str(source) == "":
            raise fail(f"columns.{target}: expected the export's column name, got {source!r}")
        columns[str(target)] = str(source)
    needed = ["customer_id"] + ([contract.time_column] if contract.partitioned else [])
    for target in needed:
        if target not in columns:
            raise fail(
                f"columns.{target} is required for table {table!r}: name the export's "
                f"column that holds the {target.replace('_', ' ')}"
            )
    if table == FEEDBACK and "text" not in columns:
        raise fail("columns.text is required for table 'feedback'")

    fmt = _choice(data, "format", FORMATS, "auto", fail)
    delimiter = data.get("delimiter")
    if delimiter is not None:
        if not isinstance(delimiter, str) or len(delimiter.encode()) != 1:
            raise fail(
                f"delimiter: expected one character such as ',' ';' '\\t' '|', got {delimiter!r}"
            )
        if fmt == "whitespace":
            raise fail(
                "delimiter: not used with format: whitespace (columns are split on runs of blanks)"
            )
    quotechar = data.get("quotechar", '"')
    if quotechar is not None and (not isinstance(quotechar, str) or len(quotechar) != 1):
        raise fail(f"quotechar: expected one character or null, got {quotechar!r}")
    encoding = data.get("encoding", "utf-8")
    if not isinstance(encoding, str):
        raise fail(
            f"encoding: expected a codec name such as utf-8, latin-1, cp1252, got {encoding!r}"
        )
    try:
        encoding = _codec_name(encoding)
    except LookupError:
        raise fail(f"encoding: unknown codec {encoding!r} (try utf-8, latin-1, cp1252)") from None
    header = data.get("header", True)
    if not isinstance(header, bool):
        raise fail(f"header: expected true or false, got {header!r}")
    names = data.get("names")
    if names is not None:
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise fail("names: expected a list of column names")
        if len(set(names)) != len(names):
            raise fail(f"names: repeated column names in {names}")
        names = tuple(names)
    elif not header and fmt != "parquet":
        raise fail("header: false needs 'names:' (the column names, in file order)")
    skip_rows = data.get("skip_rows", 0)
    if isinstance(skip_rows, bool) or not isinstance(skip_rows, int) or skip_rows < 0:
        raise fail(f"skip_rows: expected a whole number >= 0, got {skip_rows!r}")
    na_values = data.get("na_values", list(DEFAULT_NA_VALUES))
    if not isinstance(na_values, list) or not all(isinstance(v, str) for v in na_values):
        raise fail("na_values: expected a list of strings that mean 'missing'")
    decimal = data.get("decimal", ".")
    if decimal not in (".", ","):
        raise fail(f"decimal: expected '.' or ',', got {decimal!r}")

    timestamp_format = data.get("timestamp_format")
    if timestamp_format is not None:
        if not isinstance(timestamp_format, str) or "%" not in timestamp_format:
            raise fail(
                f"timestamp_format: expected a strftime pattern such as '%Y%m%d' or "
                f"'%d/%m/%Y %H:%M', got {timestamp_format!r}"
            )
        try:
            datetime(2001, 2, 3, 4, 5, 6).strftime(timestamp_format)
        except ValueError as exc:
            raise fail(f"timestamp_format: {exc}") from None
    timezone = data.get("timezone")
    if timezone is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(str(timezone))
        except (ZoneInfoNotFoundError, ValueError):
            raise fail(
                f"timezone: unknown time zone {timezone!r} (use an IANA name such as "
                "'Europe/London' or 'UTC')"
            ) from None
        timezone = str(timezone)

    amount = _choice(data, "amount", AMOUNT_MODES, "given", fail)
    if table == TRANSACTIONS:
        if amount == "given" and "amount" not in columns:
            raise fail(
                "columns.amount is required with 'amount: given'; if the export has a "
                "quantity and a unit price instead, map columns.quantity and "
                "columns.unit_price and set 'amount: quantity_x_unit_price'"
            )
        if amount == "quantity_x_unit_price":
            missing = [c for c in ("quantity", "unit_price") if c not in columns]
            if missing:
                raise fail(
                    f"amount: quantity_x_unit_price needs columns.{' and columns.'.join(missing)}"
                )
            if "amount" in columns:
                raise fail("columns.amount and 'amount: quantity_x_unit_price' exclude each other")
    elif "amount" in data:
        raise fail(f"amount: only used for table 'transactions', not {table!r}")

    returns = _returns_rule(data.get("returns"), table, columns, fail)
    customer_id = _customer_id_rule(data.get("customer_id"), fail)
    duplicates = _choice(data, "duplicates", DUPLICATE_ACTIONS, "drop", fail)
    zero_amount = _choice(data, "zero_amount", ZERO_AMOUNT_ACTIONS, "keep", fail)
    if "zero_amount" in data and table != TRANSACTIONS:
        raise fail(f"zero_amount: only used for table 'transactions', not {table!r}")
    partition = _choice(data, "partition", PARTITIONS, "month", fail)
    output_format = _choice(data, "output_format", OUTPUT_FORMATS, "parquet", fail)
    return ImportMapping(
        columns=columns,
        table=table,
        format=fmt,
        delimiter=delimiter,
        quotechar=quotechar,
        encoding=encoding,
        header=header,
        names=names,
        skip_rows=skip_rows,
        na_values=tuple(na_values),
        decimal=decimal,
        timestamp_format=timestamp_format,
        timezone=timezone,
        amount=amount,
        returns=returns,
        customer_id=customer_id,
        duplicates=duplicates,
        zero_amount=zero_amount,
        partition=partition,
        output_format=output_format,
    )


def _reject_unknown(data: Mapping, allowed: tuple[str, ...], prefix: str, fail) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {prefix}{close[0]!r}?)" if close else ""
            raise fail(f"unknown key {prefix}{key!r}{hint}; known keys: {', '.join(allowed)}")


def _choice(data: Mapping, key: str, choices: tuple[str, ...], default: str, fail) -> str:
    value = data.get(key, default)
    if value not in choices:
        raise fail(f"{key}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def _codec_name(encoding: str) -> str:
    import codecs

    name = codecs.lookup(encoding).name
    return "utf-8" if name == "utf-8-sig" else name


def _returns_rule(raw: Any, table: str, columns: dict[str, str], fail) -> ReturnsRule:
    if raw is None:
        return ReturnsRule()
    if table != TRANSACTIONS:
        raise fail(f"returns: only used for table 'transactions', not {table!r}")
    if not isinstance(raw, Mapping):
        raise fail(
            "returns: expected keys negative_quantity, negative_amount, order_id_prefix, "
            "status_values, action"
        )
    allowed = ("negative_quantity", "negative_amount", "order_id_prefix", "status_values", "action")
    _reject_unknown(raw, allowed, "returns.", fail)
    for key in ("negative_quantity", "negative_amount"):
        if not isinstance(raw.get(key, False), bool):
            raise fail(f"returns.{key}: expected true or false, got {raw[key]!r}")
    prefix = raw.get("order_id_prefix") or ()
    prefix = (prefix,) if isinstance(prefix, str) else prefix
    if not isinstance(prefix, list | tuple) or not all(isinstance(p, str) and p for p in prefix):
        raise fail("returns.order_id_prefix: expected a string such as 'C' or a list of strings")
    status = raw.get("status_values") or ()
    status = (status,) if isinstance(status, str) else status
    if not isinstance(status, list | tuple) or not all(isinstance(s, str | int) for s in status):
        raise fail(
            "returns.status_values: expected a list of status values, e.g. [cancelled, returned]"
        )
    action = raw.get("action", "drop")
    if action not in RETURN_ACTIONS:
        raise fail(f"returns.action: expected drop or keep, got {action!r}")
    rule = ReturnsRule(
        negative_quantity=raw.get("negative_quantity", False),
        negative_amount=raw.get("negative_amount", False),
        order_id_prefix=tuple(prefix),
        status_values=tuple(str(s) for s in status),
        action=action,
    )
    needs = {
        "quantity": rule.negative_quantity,
        "order_id": bool(rule.order_id_prefix),
        "status": bool(rule.status_values),
    }
    for column, used in needs.items():
        if used and column not in columns:
            raise fail(f"returns: marking returns by {column} needs columns.{column}")
    if rule.negative_amount and "amount" not in columns and "unit_price" not in columns:
        raise fail(
            "returns.negative_amount needs an amount (columns.amount or quantity × unit price)"
        )
    return rule


def _customer_id_rule(raw: Any, fail) -> CustomerIdRule:
    if raw is None:
        return CustomerIdRule()
    if not isinstance(raw, Mapping):
        raise fail("customer_id: expected keys strip_float_suffix, strip_leading_zeros, zero_pad")
    _reject_unknown(
        raw, ("strip_float_suffix", "strip_leading_zeros", "zero_pad"), "customer_id.", fail
    )
    for key in ("strip_float_suffix", "strip_leading_zeros"):
        if not isinstance(raw.get(key, False), bool):
            raise fail(f"customer_id.{key}: expected true or false, got {raw[key]!r}")
    zero_pad = raw.get("zero_pad")
    if zero_pad is not None and (
        isinstance(zero_pad, bool) or not isinstance(zero_pad, int) or not 1 <= zero_pad <= 64
    ):
        raise fail(f"customer_id.zero_pad: expected a width between 1 and 64, got {zero_pad!r}")
    if zero_pad and raw.get("strip_leading_zeros"):
        raise fail("customer_id: strip_leading_zeros and zero_pad exclude each other")
    return CustomerIdRule(
        strip_float_suffix=raw.get("strip_float_suffix", True),
        strip_leading_zeros=raw.get("strip_leading_zeros", False),
        zero_pad=zero_pad,
    )


# --- the report ------------------------------------------------------------------------


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
        dropped: Rows dropped, by reason (see :data:`REASONS`).
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


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


# --- importing -------------------------------------------------------------------------


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
            imported with another mapping). Without it such an overlap is refused.
        progress: Show a progress bar for large files (on a terminal only).
        dry_run: Read, check and report, but write nothing.
        fresh: Start from an empty landing zone: every existing data file (all tables) and
            import manifest is removed, once the export has passed every check. For
            examples and experiments; restored if a write fails.

    Returns:
        The report. ``status`` is ``unchanged`` when this file was already imported with
        this mapping (nothing is written again).

    Raises:
        ImportRefused: The export cannot be imported as it is; nothing was written.
        ImportFailed: A write failed midway; what this import wrote was removed and the
            files it replaced were restored.
        FileNotFoundError: If ``source`` does not exist.
    """
    started = time.perf_counter()
    path = Path(source)
    mapping = mapping if isinstance(mapping, ImportMapping) else load_mapping(mapping)
    zone = open_landing_zone(zone) if isinstance(zone, str) else zone
    name = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    base = {
        "source": name,
        "sha256": sha,
        "size_bytes": len(data),
        "table": mapping.table,
        "landing_zone": zone.uri,
        "output_format": mapping.output_format,
        "manifest": _manifest_key(sha),
    }
    if not data or data.isspace():  # isspace stops at the first other byte: no copy
        raise ImportRefused(
            name, None, "empty file" if not data else "empty file (only blank lines)"
        )

    manifests = _load_manifests(zone)
    previous = manifests.get(sha)
    if not fresh and previous is not None and previous.get("mapping_digest") == mapping.digest():
        present = [p["key"] for p in previous.get("partitions", []) if zone.exists(p["key"])]
        if len(present) == len(previous.get("partitions", [])):
            old = previous.get("report", {})
            replaced = [k for r in previous.get("replaced_by", []) for k in r.get("keys", [])]
            later = f"; {len(replaced)} of its files were since replaced by a later import" * bool(
                replaced
            )
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
    with _Progress(show, f"import {path.name}") as bar:
        bar.step("parsing")
        read = _read_export(data, mapping, name)
        del data
        bar.step("normalising")
        staged = _stage(read, mapping, name)
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
        _remove_duplicates(staged, mapping)
        bar.step("validating")
        # The contract check of the rows to write (pandera, bound to Python's GIL) runs on
        # one core while the files are sorted, split and encoded in memory on the other
        # (Arrow, outside the GIL). Nothing is written unless the check passes.
        check = _background(
            _validate,
            staged.table,
            staged.source_rows,
            mapping,
            name,
            staged.id_codes,
            staged.id_dictionary,
        )
        try:
            table, files = _plan_files(staged.table, staged.source_rows, mapping)
        finally:
            check.result()
        if info["format"] != "parquet":
            offset = mapping.skip_rows + (1 if mapping.header else 0)
            for example in staged.examples.values():
                if example.get("row"):
                    example["line"] = example["row"] + offset
        existing, conflicts = _overlaps(zone, mapping, files, sha, manifests)
        if fresh:
            existing = set(zone.list_keys(f"{RAW_PREFIX}/")) | set(zone.list_keys(MANIFEST_PREFIX))
            conflicts = sorted(k for k in existing if k.startswith(f"{RAW_PREFIX}/"))
            replace = True
        if conflicts and not replace and not dry_run:
            raise _overlap_refusal(name, conflicts, manifests, previous is not None)
        report = ImportReport(
            status="dry_run" if dry_run else "imported",
            message="",
            input_format=info,
            rows_read=staged.rows_read,
            rows_kept=table.num_rows,
            dropped={r: staged.dropped[r] for r in REASONS if staged.dropped.get(r)},
            notes=dict(sorted(staged.notes.items())),
            examples=staged.examples,
            date_range=_date_range(table, mapping),
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
            _write_all(zone, files, mapping, existing, report, manifests, bar, started)
    report.seconds = time.perf_counter() - started
    return report


def _background(func, *args) -> Future:
    """Starts ``func(*args)`` on another thread (Arrow and numpy release the GIL)."""
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(func, *args)
    finally:
        pool.shutdown(wait=False)  # the thread ends once the call is done


class _Progress:
    """A tqdm bar counting import steps (parse, normalise, validate, one per file written)."""

    def __init__(self, enabled: bool, description: str):
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            # disable=None: only on a terminal, so logs and CI output stay clean.
            self._bar = tqdm(total=3, desc=description, unit="step", disable=None, leave=False)

    def __enter__(self) -> _Progress:
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


# --- reading the export ----------------------------------------------------------------


@dataclass
class _Read:
    """The export's mapped columns, as read, and how they were read."""

    table: pa.Table
    info: dict[str, Any]
    malformed: int = 0
    malformed_example: str | None = None


def _read_export(data: bytes, mapping: ImportMapping, name: str) -> _Read:
    fmt = mapping.format
    if fmt == "auto" and (data[:4] == _PARQUET_MAGIC or name.lower().endswith((".parquet", ".pq"))):
        fmt = "parquet"
    if fmt == "parquet":
        return _read_parquet(data, mapping, name)
    if data[:3] == b"\xef\xbb\xbf" and mapping.encoding == "utf-8":
        data = data[3:]  # a UTF-8 byte-order mark (Excel writes one)
    sample = data[:_SNIFF_BYTES].decode(mapping.encoding, errors="replace")
    lines = [line for line in sample.splitlines()[mapping.skip_rows :] if line.strip()]
    if len(data) > _SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last sampled line may be cut
    if not lines:
        raise ImportRefused(name, None, "empty file (nothing after the skipped rows)")
    delimiter = mapping.delimiter
    if fmt == "auto" or (fmt == "csv" and delimiter is None):
        fmt, delimiter = _sniff(lines, fmt)
    names = list(mapping.names) if mapping.names else None
    if names is not None:
        file_columns = names
    elif fmt == "whitespace":
        file_columns = lines[0].split()
    else:
        header = _split_csv_line(lines[0], delimiter, mapping.quotechar)
        file_columns = [c.strip() for c in header]
        if file_columns != header:  # " total " in the header: read it as "total"
            names = file_columns
    info = {
        "format": fmt,
        "delimiter": delimiter,
        "encoding": mapping.encoding,
        "header": mapping.header,
        "columns": file_columns,
    }
    data = _as_utf8(data, mapping, name, fmt, delimiter, file_columns)
    _check_columns(mapping, file_columns, name, lines[0], fmt, delimiter)
    if fmt == "whitespace":
        data = _collapse_blanks(data)
    return _parse_text(data, mapping, name, fmt, delimiter, info, names)


def _sniff(lines: list[str], fmt: str) -> tuple[str, str | None]:
    sample = "\n".join(lines[:50])
    try:
        return "csv", csv.Sniffer().sniff(sample, delimiters=_SNIFF_DELIMITERS).delimiter
    except csv.Error:
        pass
    if fmt == "auto":
        widths = {len(line.split()) for line in lines[:50]}
        if len(widths) == 1 and widths.pop() > 1:
            return "whitespace", None
    return "csv", ","


def _split_csv_line(line: str, delimiter: str, quotechar: str | None) -> list[str]:
    quoting = csv.QUOTE_MINIMAL if quotechar else csv.QUOTE_NONE
    return next(
        csv.reader([line], delimiter=delimiter, quotechar=quotechar or '"', quoting=quoting)
    )


def _as_utf8(
    data: bytes,
    mapping: ImportMapping,
    name: str,
    fmt: str,
    delimiter: str | None,
    file_columns: list[str],
) -> bytes:
    """Checks that the bytes decode with the mapping's encoding; returns them as UTF-8."""
    if mapping.encoding == "utf-8" and data.isascii():
        return data  # ASCII is valid UTF-8: no need to decode a copy
    try:
        text = data.decode(mapping.encoding)
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line_end = data.find(b"\n", exc.start)
        line = data[line_start : line_end if line_end >= 0 else len(data)]
        before = line[: exc.start - line_start].decode(mapping.encoding, errors="replace")
        if fmt == "whitespace":
            index = len(before.split()) - (0 if before[-1:].isspace() or not before else 1)
        else:
            index = before.count(delimiter or ",")
        column = file_columns[index] if 0 <= index < len(file_columns) else None
        fields = line.split() if fmt == "whitespace" else line.split((delimiter or ",").encode())
        bad = next((f for f in fields if _undecodable(f, mapping.encoding)), line)
        line_number = data.count(b"\n", 0, exc.start) + 1
        raise ImportRefused(
            name,
            column,
            f"not valid {mapping.encoding} text: byte 0x{data[exc.start]:02x} on line "
            f"{line_number}",
            example=bad.decode("latin-1").strip(),
            hint=f"Set the file's encoding in the mapping, e.g. 'encoding: "
            f"{_guess_encoding(data)}'",
        ) from None
    if mapping.encoding == "utf-8":
        return data
    return text.lstrip("\ufeff").encode("utf-8")


def _undecodable(value: bytes, encoding: str) -> bool:
    try:
        value.decode(encoding)
    except UnicodeDecodeError:
        return True
    return False


def _guess_encoding(data: bytes) -> str:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "utf-16"
    try:
        data.decode("cp1252")
    except UnicodeDecodeError:
        return "latin-1"
    return "cp1252"


def _check_columns(
    mapping: ImportMapping,
    file_columns: list[str],
    name: str,
    first_line: str,
    fmt: str,
    delimiter: str | None,
) -> None:
    available = set(file_columns)
    for target, column in mapping.columns.items():
        if column in available:
            continue
        if len(file_columns) == 1:
            found = {d: first_line.count(d) for d in _SNIFF_DELIMITERS if d != delimiter}
            best = max(found, key=found.get) if any(found.values()) else None
            how = (
                "as whitespace-aligned columns"
                if fmt == "whitespace"
                else f"with delimiter {delimiter!r}"
            )
            hint = (
                f"Read {how}, the file has a single column {file_columns[0]!r}: "
                "the delimiter looks wrong"
            )
            if best:
                change = "format: csv and " if fmt == "whitespace" else ""
                setting = f"{change}delimiter: {json.dumps(best)}"
                hint += f"; the first line splits on {best!r} (set {setting})"
        else:
            close = difflib.get_close_matches(column, file_columns, n=1)
            hint = f"The file has columns {file_columns}" + (
                f"; did you mean {close[0]!r}?" if close else ""
            )
        raise ImportRefused(
            name,
            column,
            f"mapped column (columns.{target}) not found",
            example=first_line[:120],
            hint=hint,
        )


def _collapse_blanks(data: bytes, block: int = 1 << 19) -> memoryview:
    """Rewrites whitespace-aligned columns as single-space-separated ones (vectorised).

    Runs of blanks (spaces, tabs) become one space; blanks at the start or end of a line
    go. The result can then be parsed by Arrow's multi-threaded CSV reader. Works through
    blocks of whole lines (cache-sized: four times faster than one pass over a big file)
    on every core (numpy releases the GIL), into one buffer.
    """
    spans, start = [], 0
    while start < len(data):
        end = min(start + block, len(data))
        if end < len(data):
            newline = data.find(b"\n", end)
            end = len(data) if newline < 0 else newline + 1
        spans.append((start, end))
        start = end
    out = np.empty(len(data), dtype=np.uint8)
    size = 0
    with ThreadPoolExecutor(max_workers=pa.cpu_count()) as pool:
        for part in pool.map(lambda span: _collapse_block(data, *span), spans):
            out[size : size + part.size] = part
            size += part.size
    return memoryview(out[:size])


def _collapse_block(data: bytes, start: int, end: int) -> np.ndarray:
    b = np.frombuffer(data, dtype=np.uint8, count=end - start, offset=start)
    tabs = data.find(b"\t", start, end) >= 0  # most files have none: skip their passes
    blank = b == 32
    if tabs:
        blank |= b == 9
    edges = np.diff(blank.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    del edges
    before = b[np.maximum(starts - 1, 0)]
    after = b[np.minimum(ends, b.size - 1)]
    inner = (before != 10) & (before != 13) & (starts > 0)
    inner &= (after != 10) & (after != 13) & (ends < b.size)
    keep = ~blank
    keep[starts[inner]] = True
    out = b[keep]
    if tabs:
        out[out == 9] = 32
    return out


def _parse_text(
    data: bytes,
    mapping: ImportMapping,
    name: str,
    fmt: str,
    delimiter: str | None,
    info: dict[str, Any],
    names: list[str] | None,
) -> _Read:
    columns = mapping.source_columns()
    malformed: list[str] = []

    def on_invalid_row(row) -> str:
        malformed.append(row.text)
        return "skip"

    skip = mapping.skip_rows + (1 if mapping.header and names else 0)
    read_options = pacsv.ReadOptions(
        use_threads=True,
        block_size=1 << 22,
        skip_rows=skip,
        column_names=names,
    )
    parse_options = pacsv.ParseOptions(
        delimiter=" " if fmt == "whitespace" else delimiter,
        quote_char=False if fmt == "whitespace" or not mapping.quotechar else mapping.quotechar,
        ignore_empty_lines=True,
        invalid_row_handler=on_invalid_row,
    )
    convert_options = pacsv.ConvertOptions(
        include_columns=columns,
        column_types={c: pa.string() for c in columns},
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        null_values=list(mapping.na_values),
        check_utf8=False,  # checked (or transcoded) by _as_utf8
    )
    try:
        table = pacsv.read_csv(
            pa.BufferReader(data),
            read_options=read_options,
            parse_options=parse_options,
            convert_options=convert_options,
        )
    except (pa.ArrowInvalid, pa.ArrowKeyError) as exc:
        detail = str(exc).strip().splitlines()[0]
        raise ImportRefused(name, None, f"cannot be parsed as {fmt}: {detail}") from None
    return _Read(
        table=table,
        info=info,
        malformed=len(malformed),
        malformed_example=malformed[0] if malformed else None,
    )


def _read_parquet(data: bytes, mapping: ImportMapping, name: str) -> _Read:
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        file_columns = list(parquet.schema_arrow.names)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ImportRefused(name, None, f"cannot be read as Parquet: {exc}") from None
    info = {"format": "parquet", "delimiter": None, "encoding": None, "header": True}
    info["columns"] = file_columns
    _check_columns(mapping, file_columns, name, ", ".join(file_columns), "parquet", None)
    table = parquet.read(columns=mapping.source_columns())
    for index, column in enumerate(table.columns):  # like the CSV reader's null_values
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = column.cast(pa.string())
            tokens = pc.is_in(column, value_set=_na_array(mapping.na_values))
            column = pc.if_else(tokens, pa.scalar(None, pa.string()), column)
            table = table.set_column(index, table.column_names[index], column)
    return _Read(table=table, info=info)


# --- mapping and normalising columns ---------------------------------------------------


def _np(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean Arrow array as numpy, nulls as False."""
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def _null(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.is_null(values).to_numpy(zero_copy_only=False), dtype=bool)


def _value(values: pa.ChunkedArray | pa.Array, index: int) -> Any:
    value = values[index].as_py()
    return value.isoformat(sep=" ") if isinstance(value, datetime) else value


def _text(raw: pa.ChunkedArray, na_values: tuple[str, ...]) -> pa.ChunkedArray:
    """Any column as trimmed strings; blanks and ``na_values`` become null.

    String columns arrive with the exact ``na_values`` already null (the CSV reader and
    :func:`_read_parquet` do that), so only values that trimming changed are looked up.
    """
    kind = raw.type
    if pa.types.is_dictionary(kind):
        raw, kind = raw.cast(kind.value_type), kind.value_type
    if pa.types.is_large_string(kind):
        raw, kind = raw.cast(pa.string()), pa.string()
    if pa.types.is_floating(kind):
        raw = pc.if_else(pc.is_nan(raw), pa.scalar(None, kind), raw)
        whole = pc.all(pc.equal(raw, pc.floor(raw))).as_py()
        try:  # ids stored as floats: 17850.0 -> "17850"
            text = raw.cast(pa.int64()).cast(pa.string()) if whole is not False else None
        except pa.ArrowInvalid:
            text = None
        raw = text if text is not None else raw.cast(pa.string())
    elif pa.types.is_timestamp(kind):
        raw = pc.strftime(raw, format="%Y-%m-%d %H:%M:%S")
    elif not pa.types.is_string(kind):
        raw = raw.cast(pa.string())
    text = pc.utf8_trim_whitespace(raw)
    blank = _np(pc.equal(text, ""))
    trimmed = np.flatnonzero(_np(pc.not_equal(pc.binary_length(text), pc.binary_length(raw))))
    if trimmed.size:
        tokens = pc.is_in(pc.take(text, pa.array(trimmed)), value_set=_na_array(na_values))
        blank[trimmed] |= _np(tokens)
    if not blank.any():
        return text
    return pc.if_else(pa.array(blank), pa.scalar(None, pa.string()), text)


def _na_array(na_values: tuple[str, ...]) -> pa.Array:
    return pa.array(sorted(set(na_values) | {""}), pa.string())


def _customer_ids(raw: pa.ChunkedArray, mapping: ImportMapping) -> pa.ChunkedArray:
    rule = mapping.customer_id
    ids = _text(raw, mapping.na_values)
    if rule.strip_float_suffix and pc.any(pc.match_substring(ids, ".")).as_py():
        ids = pc.replace_substring_regex(ids, pattern=r"^([+-]?\d+)\.0*$", replacement=r"\1")
    if rule.strip_leading_zeros and pc.any(pc.starts_with(ids, "0")).as_py():
        stripped = pc.utf8_ltrim(ids, characters="0")  # "00001" -> "1", "000" -> "0"
        stripped = pc.if_else(pc.equal(stripped, ""), "0", stripped)
        ids = pc.if_else(pc.utf8_is_digit(ids), stripped, ids)
    if rule.zero_pad:
        padded = pc.utf8_lpad(ids, width=rule.zero_pad, padding="0")
        ids = pc.if_else(pc.utf8_is_digit(ids), padded, ids)
    return ids


def _is_text(values: pa.ChunkedArray) -> bool:
    return pa.types.is_string(values.type) or pa.types.is_large_string(values.type)


def _repetitive(values: pa.ChunkedArray) -> bool:
    """Whether a column repeats its values a lot (judged on its first rows)."""
    sample = values.slice(0, _SAMPLE_ROWS)
    return len(sample) > 0 and pc.count_distinct(sample, mode="all").as_py() * 4 <= len(sample)


def _once_per_distinct(convert):
    """Makes a per-value conversion of text run once per distinct value when values repeat.

    ``convert(values, mapping)`` returns an Arrow array and numpy masks, one element per
    value, each depending on that value alone: converting the distinct values and
    spreading the results over the rows gives what converting every row would, for a
    fraction of the work (dates, prices, quantities).
    """

    @functools.wraps(convert)
    def converted(raw: pa.ChunkedArray, mapping: ImportMapping) -> tuple:
        if not (_is_text(raw) and _repetitive(raw)):
            return convert(raw, mapping)
        encoded = pc.dictionary_encode(raw.combine_chunks(), null_encoding="encode")
        values, *masks = convert(pa.chunked_array([encoded.dictionary]), mapping)
        rows = encoded.indices.to_numpy()
        return (pc.take(values, encoded.indices), *(mask[rows] for mask in masks))

    return converted


@_once_per_distinct
def _numbers(
    raw: pa.ChunkedArray, mapping: ImportMapping
) -> tuple[pa.ChunkedArray, np.ndarray, np.ndarray]:
    """Parses numbers; returns floats (null where unusable), the missing and invalid masks."""
    kind = raw.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        values = raw.cast(pa.float64())
        missing = _null(values) | _np(pc.is_nan(values))
        invalid = _np(pc.is_inf(values))
        values = pc.if_else(pc.is_finite(values), values, pa.scalar(None, pa.float64()))
        return values, missing, invalid
    if pa.types.is_boolean(kind):
        values = raw.cast(pa.float64())
        return values, _null(values), np.zeros(len(values), dtype=bool)
    text = _text(raw, mapping.na_values)
    if mapping.decimal == ",":  # 1.234,56 -> 1234.56
        text = pc.replace_substring(pc.replace_substring(text, ".", ""), ",", ".")
    missing = _null(text)
    try:
        values = text.cast(pa.float64())
    except pa.ArrowInvalid:
        numeric = pc.match_substring_regex(text, _NUMBER_RE)
        values = pc.if_else(numeric, text, pa.scalar(None, pa.string())).cast(pa.float64())
    values = pc.if_else(pc.is_finite(values), values, pa.scalar(None, pa.float64()))
    invalid = _null(values) & ~missing
    return values, missing, invalid


@_once_per_distinct
def _timestamps(
    raw: pa.ChunkedArray, mapping: ImportMapping
) -> tuple[pa.ChunkedArray, np.ndarray, np.ndarray, np.ndarray]:
    """Parses time stamps to naive UTC ``timestamp[ns]``.

    Returns:
        The values (null where unusable) and the masks ``missing``, ``invalid``
        (unparseable) and ``out_of_range`` (years outside 1900..2200: sentinels such as
        ``99991231``).
    """
    kind = raw.type
    n = len(raw)
    aware = np.zeros(n, dtype=bool)
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        values = raw.cast(pa.timestamp("us", tz=getattr(kind, "tz", None)))
        if getattr(kind, "tz", None):
            values = values.cast(pa.timestamp("us"))  # Arrow keeps UTC: drop the zone
            aware[:] = True
        missing = _null(values)
        invalid = np.zeros(n, dtype=bool)
    else:
        text = _text(raw, mapping.na_values)
        missing = _null(text)
        values, aware = _parse_time_text(text, mapping.timestamp_format, missing)
        invalid = _null(values) & ~missing
    if mapping.timezone and not aware.all():
        local = pc.assume_timezone(
            values, timezone=mapping.timezone, ambiguous="earliest", nonexistent="latest"
        ).cast(pa.timestamp("us"))
        values = pc.if_else(pa.array(aware), values, local) if aware.any() else local
    years = pc.year(values)
    outside = _np(pc.or_(pc.less(years, _MIN_YEAR), pc.greater(years, _MAX_YEAR)))
    if outside.any():
        values = pc.if_else(pa.array(outside), pa.scalar(None, pa.timestamp("us")), values)
    return values.cast(pa.timestamp("ns")), missing, invalid, outside


def _parse_time_text(
    text: pa.ChunkedArray, fmt: str | None, missing: np.ndarray
) -> tuple[pa.ChunkedArray, np.ndarray]:
    """Parses time-stamp strings; returns ``timestamp[us]`` and the mask of zone-aware ones.

    Arrow's ``strptime`` does the bulk. It silently rolls ``19970230`` over to March 2nd,
    so a value that lands on day 1-3 counts as parsed only if formatting it back gives the
    same text. Whatever is left (non-padded numbers, fractions of seconds, offsets, rolled
    over days) goes through pandas' strict parser.
    """
    n = len(text)
    parsed = pa.nulls(n, pa.timestamp("us"))
    done = missing.copy()
    formats = [fmt] if fmt else list(_ISO_FORMATS)
    arrow_ok = fmt is None or not any(d in fmt for d in ("%z", "%Z", "%f", "%p", "%I"))
    if arrow_ok:
        for pattern in formats:
            if done.all():
                break
            attempt = pc.strptime(text, format=pattern, unit="s", error_is_null=True)
            exact = ~_null(attempt) & ~done
            # Arrow rejects month 13, day 32, hour 24, but rolls 30 Feb over to 2 March:
            # a rolled-over value lands on day 1-3, so only those are formatted back and
            # compared with the text (formatting is slow; doing it for all rows is not).
            suspect = np.flatnonzero(exact & _np(pc.less_equal(pc.day(attempt), 3)))
            if suspect.size:
                picked = pa.array(suspect)
                back = pc.strftime(pc.take(attempt, picked), format=pattern)
                exact[suspect] = _np(pc.equal(back, pc.take(text, picked)))
            if exact.any():
                if (exact | missing).all():
                    parsed = attempt.cast(pa.timestamp("us"))  # every value parsed: no merge
                else:
                    parsed = pc.if_else(pa.array(exact), attempt.cast(pa.timestamp("us")), parsed)
                done |= exact
    aware = np.zeros(n, dtype=bool)
    rest = np.flatnonzero(~done)
    if rest.size:
        values = pd.Series(text.take(pa.array(rest)).to_pandas(), dtype=object)
        if fmt:
            utc = "%z" in fmt or "%Z" in fmt
            stamps = pd.to_datetime(values, format=fmt, errors="coerce", utc=utc)
            has_zone = np.full(rest.size, utc)
        else:
            stamps = pd.to_datetime(values, format="ISO8601", errors="coerce", utc=True)
            has_zone = values.str.contains(_OFFSET_RE, regex=True).to_numpy(dtype=bool)
        if getattr(stamps.dt, "tz", None) is not None:
            stamps = stamps.dt.tz_convert(None)
        filled = pa.array(stamps.astype("datetime64[us]"), pa.timestamp("us"))
        full = np.full(n, -1, dtype=np.int64)
        full[rest] = np.arange(rest.size)
        from_pandas = pc.take(filled, pa.array(np.where(full >= 0, full, 0)))
        parsed = pc.if_else(pa.array(full >= 0), from_pandas, parsed)
        aware[rest] = has_zone & stamps.notna().to_numpy()
    return parsed, aware


_FORMAT_CANDIDATES = (
    "%Y%m%d",
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d.%m.%Y",
    "%d-%m-%Y",
    "%m-%d-%Y",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d %b %Y",
    "%b %d %Y",
    "%d-%b-%Y",
    "%Y%m%d%H%M%S",
)


def _suggest_formats(values: list[str]) -> list[str]:
    """The common strftime patterns that parse every one of the sample values."""
    fits = []
    for pattern in _FORMAT_CANDIDATES:
        try:
            for value in values:
                datetime.strptime(value, pattern)
        except ValueError:
            continue
        fits.append(pattern)
    return fits


@dataclass
class _Staged:
    """Mapped, normalised rows and those that survived the row checks.

    ``table`` holds every data row of the export; ``source_rows`` are the numbers of the
    rows kept (duplicates not yet removed). The rows are copied once, when the files are
    planned.
    """

    table: pa.Table
    rows_read: int
    source_rows: np.ndarray
    dropped: Counter
    notes: Counter
    examples: dict[str, dict[str, Any]]
    warnings: list[str]
    note_masks: dict[str, np.ndarray] = field(default_factory=dict)
    customers_read: int = 0
    id_codes: np.ndarray | None = None  # one integer per distinct customer id, per row
    id_dictionary: pa.Array | None = None  # the ids the codes stand for


class _Rows:
    """Assigns each row to the first drop reason that applies; keeps one example each."""

    def __init__(self, n: int):
        self.code = np.zeros(n, dtype=np.int8)
        self.dropped: Counter = Counter()
        self.examples: dict[str, dict[str, Any]] = {}
        self.note_masks: dict[str, np.ndarray] = {}

    def drop(self, reason: str, mask: np.ndarray, values: pa.ChunkedArray | None = None) -> None:
        new = mask & (self.code == 0)
        if new.any():
            self.dropped[reason] += int(new.sum())
            self.code[new] = REASONS.index(reason) + 1
            self._example(reason, new, values)

    def note(self, kind: str, mask: np.ndarray, values: pa.ChunkedArray | None = None) -> None:
        self.note_masks[kind] = self.note_masks.get(kind, False) | mask
        self._example(kind, mask & (self.code == 0), values)

    def _example(self, key: str, mask: np.ndarray, values: pa.ChunkedArray | None) -> None:
        if key not in self.examples and mask.any():
            index = int(np.argmax(mask))
            value = _value(values, index) if values is not None else None
            self.examples[key] = {"row": index + 1, "value": value}

    @property
    def keep(self) -> np.ndarray:
        return self.code == 0


def _refuse_if_mostly(
    bad: np.ndarray,
    n: int,
    name: str,
    column: str,
    raw: pa.ChunkedArray,
    problem: str,
    hint: str,
) -> None:
    count = int(bad.sum())
    if count > MAX_UNUSABLE_SHARE * n:
        index = int(np.argmax(bad))
        example = raw[index].as_py()
        raise ImportRefused(
            name,
            column,
            f"{count:,} of {n:,} rows ({count / n:.0%}) {problem}",
            example=None if example is None else str(example),
            hint=hint,
        )


def _stage(read: _Read, mapping: ImportMapping, name: str) -> _Staged:
    source = read.table
    n = source.num_rows
    rows_read = n + read.malformed
    if rows_read == 0:
        raise ImportRefused(name, None, "empty file: no data rows (only a header)")
    if read.malformed > MAX_UNUSABLE_SHARE * rows_read:
        raise ImportRefused(
            name,
            None,
            f"{read.malformed:,} of {rows_read:,} lines do not have the header's number of fields",
            example=read.malformed_example,
            hint="Check 'delimiter', 'quotechar' and 'format' in the mapping",
        )
    rows = _Rows(n)
    if read.malformed:
        rows.dropped["malformed_line"] = read.malformed
        rows.examples["malformed_line"] = {"value": read.malformed_example}
    columns = mapping.columns
    contract = TABLES[mapping.table]

    def src(target: str) -> pa.ChunkedArray:
        return source.column(columns[target])

    out: dict[str, pa.ChunkedArray] = {}
    ids = _customer_ids(src("customer_id"), mapping)
    rows.drop("missing_customer_id", _null(ids), src("customer_id"))
    out["customer_id"] = ids
    # Customer ids as integers, once: they count customers and feed duplicate detection.
    # It runs beside the other columns' parsing.
    encoding = _background(_id_codes, ids)

    if contract.partitioned:
        raw = src("timestamp")
        stamps, missing, invalid, outside = _timestamps(raw, mapping)
        unusable = missing | invalid | outside
        if unusable.sum() > MAX_UNUSABLE_SHARE * n:
            raise _date_refusal(
                name, columns["timestamp"], raw, missing, invalid | outside, mapping
            )
        rows.drop("missing_timestamp", missing)
        rows.drop("unparseable_timestamp", invalid, raw)
        rows.drop("timestamp_out_of_range", outside, raw)
        out["timestamp"] = stamps

    if mapping.table == TRANSACTIONS:
        _stage_transactions(source, mapping, name, rows, out)
    elif mapping.table == FEEDBACK:
        text = _text(src("text"), ("",))
        rows.drop("missing_text", _null(text))
        out["text"] = text
    else:
        _stage_customers(source, mapping, rows, out)

    id_codes, id_dictionary = encoding.result()
    return _Staged(
        table=pa.table({c: out[c] for c in contract.columns if c in out}),
        rows_read=rows_read,
        source_rows=np.flatnonzero(rows.keep),
        dropped=rows.dropped,
        notes=Counter(),
        examples=rows.examples,
        warnings=[],
        note_masks=rows.note_masks,
        customers_read=len(id_dictionary),
        id_codes=id_codes,
        id_dictionary=id_dictionary,
    )


def _id_codes(ids: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """Customer ids as integer codes (one per row, -1 where missing) and the ids they code."""
    values = ids.drop_null() if ids.null_count else ids
    numbers = _plain_integers(values)
    if numbers is not None:
        distinct, codes = np.unique(numbers, return_inverse=True)
        dictionary = pa.array(distinct).cast(pa.string())
    else:
        encoded = pc.dictionary_encode(values.combine_chunks())
        codes, dictionary = encoded.indices.to_numpy().astype(np.int64), encoded.dictionary
    if ids.null_count:
        full = np.full(len(ids), -1, dtype=np.int64)
        full[~_null(ids)] = codes
        codes = full
    return codes, dictionary


def _plain_integers(ids: pa.ChunkedArray) -> np.ndarray | None:
    """The ids as integers if all are plain numbers, else ``None``.

    Plain means ASCII digits without a leading zero (``"17850"``, not ``"017850"``): then
    each id stands for exactly one integer, and sorting those is much faster than hashing
    the strings.
    """
    if pc.all(pc.ascii_is_decimal(ids)).as_py() is False:
        return None
    zero = pc.starts_with(ids, "0")
    if pc.any(zero).as_py() and pc.max(pc.binary_length(ids.filter(zero))).as_py() > 1:
        return None
    try:
        return ids.cast(pa.int64()).to_numpy()
    except pa.ArrowInvalid:  # more digits than an int64 holds
        return None


def _date_refusal(
    name: str,
    column: str,
    raw: pa.ChunkedArray,
    missing: np.ndarray,
    invalid: np.ndarray,
    mapping: ImportMapping,
) -> ImportRefused:
    n = len(raw)
    if not invalid.any():
        return ImportRefused(
            name,
            column,
            f"{int(missing.sum()):,} of {n:,} rows have no time stamp",
            hint="Map columns.timestamp to the column that holds the order date",
        )
    sample = [str(v) for v in raw.filter(pa.array(invalid)).slice(0, 200).to_pylist()]
    fits = _suggest_formats(sample[:200])
    how = (
        f"timestamp_format {mapping.timestamp_format!r}" if mapping.timestamp_format else "ISO 8601"
    )
    hint = "Set 'timestamp_format:' to the strftime pattern of these values"
    if fits:
        hint += f"; {', '.join(repr(f) for f in fits[:3])} would parse them"
    bad = int(invalid.sum())
    return ImportRefused(
        name,
        column,
        f"{bad:,} of {n:,} rows ({bad / n:.0%}) have time stamps that do not parse as {how}",
        example=sample[0],
        hint=hint,
    )


def _stage_transactions(
    source: pa.Table,
    mapping: ImportMapping,
    name: str,
    rows: _Rows,
    out: dict[str, pa.ChunkedArray],
) -> None:
    columns = mapping.columns
    n = source.num_rows
    decimal_hint = "Map the column that holds numbers" + (
        "; for decimal commas set 'decimal: \",\"'" if mapping.decimal == "." else ""
    )
    quantity = None
    if "quantity" in columns:
        raw_q = source.column(columns["quantity"])
        quantity, _, bad_q = _numbers(raw_q, mapping)
    if mapping.amount == "given":
        raw = source.column(columns["amount"])
        amount, missing, invalid = _numbers(raw, mapping)
        _refuse_if_mostly(
            invalid,
            n,
            name,
            columns["amount"],
            raw,
            "have amounts that are not numbers",
            decimal_hint,
        )
        rows.drop("non_numeric_amount", invalid, raw)
        rows.note("missing_amount", missing, raw)
        if quantity is not None and bad_q.any():
            rows.note("non_numeric_quantity", bad_q, raw_q)
    else:
        raw_p = source.column(columns["unit_price"])
        price, missing_p, bad_p = _numbers(raw_p, mapping)
        for bad, raw, what in ((bad_q, raw_q, "quantities"), (bad_p, raw_p, "unit prices")):
            column = columns["quantity" if raw is raw_q else "unit_price"]
            _refuse_if_mostly(
                bad, n, name, column, raw, f"have {what} that are not numbers", decimal_hint
            )
        rows.drop("non_numeric_quantity", bad_q, raw_q)
        rows.drop("non_numeric_unit_price", bad_p, raw_p)
        amount = pc.multiply(quantity, price)
        rows.note("missing_amount", _null(amount) & ~bad_q & ~bad_p, raw_p)

    rule = mapping.returns
    flagged = np.zeros(n, dtype=bool)

    def mark(reason: str, mask: np.ndarray, raw: pa.ChunkedArray) -> None:
        nonlocal flagged
        if rule.action == "drop":
            rows.drop(reason, mask, raw)
        else:
            flagged |= mask
            rows.note("returns_kept", mask, raw)

    if rule.order_id_prefix:
        raw = source.column(columns["order_id"])
        order_ids = _text(raw, mapping.na_values)
        mask = np.zeros(n, dtype=bool)
        for prefix in rule.order_id_prefix:
            mask |= _np(pc.starts_with(order_ids, prefix))
        mark("cancelled_order_id", mask, raw)
    if rule.status_values:
        raw = source.column(columns["status"])
        status = pc.utf8_lower(_text(raw, mapping.na_values))
        wanted = pa.array(sorted({v.strip().lower() for v in rule.status_values}), pa.string())
        mark("cancelled_status", _np(pc.is_in(status, value_set=wanted)), raw)
    if rule.negative_quantity:
        mark("return_negative_quantity", _np(pc.less(quantity, 0)), raw_q)
    if rule.negative_amount:
        raw = source.column(columns["amount"]) if "amount" in columns else raw_p
        mark("return_negative_amount", _np(pc.less(amount, 0)), raw)
    if flagged.any():  # kept returns carry a negative amount, as the contract says
        amount = pc.if_else(pa.array(flagged), pc.negate(pc.abs(amount)), amount)
    if mapping.zero_amount == "drop":
        raw = source.column(columns["amount"]) if "amount" in columns else raw_p
        rows.drop("zero_amount", _np(pc.equal(amount, 0)), raw)

    out["amount"] = amount
    if "order_id" in columns:
        out["order_id"] = _text(source.column(columns["order_id"]), mapping.na_values)
    if quantity is not None:
        out["quantity"] = quantity
    if "product_id" in columns:
        out["product_id"] = _text(source.column(columns["product_id"]), mapping.na_values)


def _stage_customers(
    source: pa.Table, mapping: ImportMapping, rows: _Rows, out: dict[str, pa.ChunkedArray]
) -> None:
    columns = mapping.columns
    if "signup_date" in columns:
        raw = source.column(columns["signup_date"])
        stamps, _, invalid, outside = _timestamps(raw, mapping)
        rows.note("unparseable_signup_date", invalid | outside, raw)
        out["signup_date"] = stamps
    if "age" in columns:
        raw = source.column(columns["age"])
        ages, _, invalid = _numbers(raw, mapping)
        rows.note("non_numeric_age", invalid, raw)
        out["age"] = ages
    for column in ("gender", "location", "segment"):
        if column in columns:
            out[column] = _text(source.column(columns[column]), mapping.na_values)


# --- duplicates, contract validation, partitions ---------------------------------------


def _exact_codes(column: pa.ChunkedArray, known: np.ndarray | None = None) -> np.ndarray:
    """Integers equal exactly when the values are equal (nulls equal each other)."""
    if known is not None:
        return known
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        encoded = pc.dictionary_encode(column, null_encoding="encode")
        return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    if pa.types.is_floating(kind):
        values = column.cast(pa.float64())
        values = values.fill_null(0.0) if column.null_count else values
        codes = values.to_numpy(zero_copy_only=False).view(np.int64)
    else:  # timestamps, integers
        values = column.cast(pa.int64())
        values = values.fill_null(0) if column.null_count else values
        codes = values.to_numpy(zero_copy_only=False)
    if column.null_count:
        codes = codes.copy()  # a view of Arrow's buffer is read-only
        codes[_null(column)] = np.iinfo(np.int64).min  # distinct from any real value's bits
    return codes


def _row_hashes(codes: list[np.ndarray], n: int) -> np.ndarray:
    """One 64-bit hash per row of the columns' codes (in place: no temporary arrays)."""
    hashes = np.zeros(n, dtype=np.uint64)
    mixed = np.empty(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for code in codes:
            np.multiply(code.view(np.uint64), np.uint64(0x9E3779B97F4A7C15), out=mixed)
            hashes *= np.uint64(1_000_003)
            hashes ^= mixed
            mixed >>= np.uint64(29)
            hashes ^= mixed
    return hashes


def _repeated(hashes: np.ndarray) -> np.ndarray:
    """The rows whose hash another row shares, in order: a superset of the duplicates.

    Sorts each hash packed with its row number in one 64-bit word (the hash's high bits
    above the row's bits) and compares neighbours: one fast numpy sort instead of a hash
    table. Hashes equal in their high bits only give a few more rows, never fewer.
    """
    n = hashes.size
    shift = np.uint64(max(int(n - 1).bit_length(), 1))
    keys = (hashes >> shift) << shift
    keys |= np.arange(n, dtype=np.uint64)
    keys.sort()
    rows = keys & ((np.uint64(1) << shift) - np.uint64(1))
    keys >>= shift
    same = keys[1:] == keys[:-1]
    mask = np.zeros(n, dtype=bool)
    mask[rows[1:][same]] = True
    mask[rows[:-1][same]] = True
    return np.flatnonzero(mask)


def _duplicates(
    table: pa.Table,
    rows: np.ndarray,
    keep: str = "first",
    columns: list[str] | None = None,
    known: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Which of the given rows equal another of them in every column (or the given ones).

    Returns a numpy mask over ``rows``. ``keep="first"`` marks every repeat but the
    first, ``"last"`` every one but the last. ``known`` holds exact codes already
    computed for some columns (one per row of ``table``). Only rows whose numbers, time
    stamps and known codes repeat can be duplicates: those are found first (cheap), and
    the exact check, strings included, runs on them alone.
    """
    n = rows.size
    columns = columns or table.column_names
    if n < 2:
        return np.zeros(n, dtype=bool)
    known = known or {}
    cheap = [c for c in columns if c in known or not pa.types.is_string(table.schema.field(c).type)]
    candidates = None  # all of them
    if cheap:
        codes = [_exact_codes(table.column(c), known.get(c)) for c in cheap]
        repeated = _repeated(_row_hashes(codes, table.num_rows)[rows])
        if repeated.size < n // 2:  # else the exact check on everything is as cheap
            candidates = repeated
    mask = np.zeros(n, dtype=bool)
    if candidates is not None and candidates.size == 0:
        return mask
    picked = rows if candidates is None else rows[candidates]
    subset = table.take(pa.array(picked))
    found = _exact_duplicates(subset, keep, columns, {c: v[picked] for c, v in known.items()})
    mask[found if candidates is None else candidates[found]] = True
    return mask


def _exact_duplicates(
    table: pa.Table, keep: str, columns: list[str], known: dict[str, np.ndarray]
) -> np.ndarray:
    """Hashes exact value codes per row and confirms every hash match on the codes."""
    n = table.num_rows
    codes = [_exact_codes(table.column(c), known.get(c)) for c in columns]
    groups, uniques = pd.factorize(_row_hashes(codes, n))
    candidates = np.flatnonzero(pd.Series(groups).duplicated(keep=keep).to_numpy())
    if candidates.size == 0:
        return np.zeros(n, dtype=bool)
    reference = np.empty(len(uniques), dtype=np.int64)  # the row each group keeps
    positions = np.arange(n)
    if keep == "first":
        reference[groups[::-1]] = positions[::-1]  # the last write, the first row, wins
    else:
        reference[groups] = positions
    originals = reference[groups[candidates]]
    same = np.ones(candidates.size, dtype=bool)
    for code in codes:
        same &= code[candidates] == code[originals]
    mask = np.zeros(n, dtype=bool)
    mask[candidates[same]] = True
    return mask


def _remove_duplicates(staged: _Staged, mapping: ImportMapping) -> None:
    """Drops duplicate lines (and repeated customers), counts them, settles the notes."""
    checks = []
    if mapping.duplicates == "drop":
        checks.append(("duplicate_line", "first", None))
    if mapping.table == CUSTOMERS:  # one row per customer: the last one wins
        checks.append(("duplicate_customer_id", "last", ["customer_id"]))
    kept = staged.source_rows
    removed = np.zeros(kept.size, dtype=bool)
    known = {"customer_id": staged.id_codes} if staged.id_codes is not None else None
    for reason, keep, columns in checks:
        mask = _duplicates(staged.table, kept, keep, columns, known) & ~removed
        if mask.any():
            index = int(kept[np.argmax(mask)])
            staged.dropped[reason] += int(mask.sum())
            row = staged.table.slice(index, 1).to_pylist()[0]
            staged.examples[reason] = {
                "row": index + 1,
                "value": ", ".join(f"{k}={_plain(v)}" for k, v in row.items()),
            }
            removed |= mask
    if removed.any():
        staged.source_rows = kept[~removed]
    for kind, mask in staged.note_masks.items():
        count = int(mask[staged.source_rows].sum())
        if count:
            staged.notes[kind] = count
        else:
            staged.examples.pop(kind, None)


def _plain(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def _value_wise(contract_schema) -> bool:
    """Whether a pandera schema checks one value of one column at a time.

    True when it checks only each column's type and nullability: no checks, parsers or
    uniqueness (of the frame or of a column), no index.
    """
    columns = contract_schema.columns.values()
    return not (
        contract_schema.unique
        or contract_schema.checks
        or contract_schema.parsers
        or contract_schema.index is not None
        or any(c.unique or c.checks or c.parsers for c in columns)
    )


def _validate(
    table: pa.Table,
    rows: np.ndarray,
    mapping: ImportMapping,
    name: str,
    id_codes: np.ndarray | None = None,
    id_dictionary: pa.Array | None = None,
) -> None:
    """Validates the given rows of ``table`` against the contract's pandera schema.

    When the schema is :func:`_value_wise`, a row passes exactly when each of its values
    passes its column's checks, so checking every distinct value of each column once
    (nulls included) proves what checking every row would, for a fraction of the work:
    the first row is checked against the whole schema (column names, presence), then
    each column's distinct values against the schema's own column (``select_columns``).
    Text (Python strings for pandas) is what takes pandera long, one value at a time;
    numbers and time stamps are checked vectorised, so those that rarely repeat are
    checked as they are. ``id_codes`` and ``id_dictionary`` (the customer ids as codes
    into their distinct values) give the distinct customer ids without hashing them
    again. Other schemas check every row.
    """
    from pandera.errors import SchemaError, SchemaErrors

    contract = schema(mapping.table)
    distinct = _value_wise(contract)
    if distinct:
        parts = [(contract, table.slice(int(rows[0]), 1))]
        for column in table.column_names:
            if column not in contract.columns:
                continue
            values = table.column(column)
            if column == "customer_id" and id_codes is not None:
                values = _distinct(values, rows, id_codes, id_dictionary)
            elif _is_text(values) or _repetitive(values):
                values = _distinct(values, rows)
            elif rows.size < len(values):
                values = values.take(pa.array(rows))
            parts.append((contract.select_columns([column]), pa.table({column: values})))
    else:
        parts = [(contract, table.take(pa.array(rows)))]
    changed = set()
    for part_schema, part in parts:
        frame = part.to_pandas(deduplicate_objects=not distinct)  # distinct: nothing to share
        try:
            checked = part_schema.validate(frame, lazy=True)
        except (SchemaError, SchemaErrors) as exc:
            detail = " ".join(str(exc).strip().splitlines()[:6])
            raise ImportRefused(
                name, None, f"the mapped rows do not meet the data contract: {detail[:600]}"
            ) from None
        changed |= {c for c in frame.columns if checked[c].dtype != frame[c].dtype}
    if changed:  # never expected: the files are written from `table`, which must not differ
        raise ImportRefused(
            name, None, f"the contract changed the types of {sorted(changed)}; please report this"
        )


def _distinct(
    values: pa.ChunkedArray,
    rows: np.ndarray,
    codes: np.ndarray | None = None,
    dictionary: pa.Array | None = None,
) -> pa.Array:
    """The distinct values (null included) in the given rows of a column.

    ``codes`` and ``dictionary`` (the column as codes into its distinct values) save
    hashing the values again.
    """
    if codes is None:
        if rows.size == len(values):
            return pc.unique(values)
        encoded = pc.dictionary_encode(values.combine_chunks(), null_encoding="encode")
        codes, dictionary = encoded.indices.to_numpy(), encoded.dictionary
    present = np.bincount(codes[rows], minlength=len(dictionary)) > 0
    return dictionary.filter(pa.array(present))


@dataclass
class _File:
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


def _plan_files(
    table: pa.Table, rows: np.ndarray, mapping: ImportMapping
) -> tuple[pa.Table, list[_File]]:
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
        return table, [_File(key, "all", table.num_rows, _encode(table, suffix))]
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
            _File(key, label, part.num_rows, encoded)
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


def _date_range(table: pa.Table, mapping: ImportMapping) -> tuple[str, str] | None:
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


# --- manifests, overlaps and the all-or-nothing write ----------------------------------


def _manifest_key(sha: str) -> str:
    return f"{MANIFEST_PREFIX}{sha}.json"


def _load_manifests(zone: LandingZone) -> dict[str, dict[str, Any]]:
    """Every import manifest in the landing zone, by the imported file's SHA-256."""
    manifests = {}
    for key in zone.list_keys(MANIFEST_PREFIX):
        if not key.endswith(".json"):
            continue
        try:
            manifest = json.loads(zone.read_bytes(key))
        except (ValueError, FileNotFoundError):
            continue
        sha = manifest.get("sha256") or Path(key).stem
        manifests[sha] = manifest
    return manifests


def _overlaps(
    zone: LandingZone,
    mapping: ImportMapping,
    files: list[_File],
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


def _overlap_refusal(
    name: str, conflicts: list[str], manifests: dict[str, dict[str, Any]], seen_before: bool
) -> ImportRefused:
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


def _write_all(
    zone: LandingZone,
    files: list[_File],
    mapping: ImportMapping,
    existing: set[str],
    report: ImportReport,
    manifests: dict[str, dict[str, Any]],
    bar: _Progress,
    started: float,
) -> None:
    """Writes the partitions, removes what they replace, then the manifests; or nothing.

    On any failure the files written so far are removed and the replaced files and
    manifests are put back as they were.
    """
    new_keys = {f.key for f in files}
    backups: dict[str, bytes] = {}
    written: list[str] = []
    current = "(reading the files to replace)"
    try:
        for key in sorted(existing):
            backups[key] = zone.read_bytes(key)
        for file in files:
            current = file.key
            zone.write_bytes(file.key, file.data)
            written.append(file.key)
            bar.step(file.period)
        for key in sorted(existing - new_keys):
            current = key
            zone.delete(key)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for other_sha, manifest in manifests.items():
            lost = [p for p in manifest.get("partitions", []) if p["key"] in existing]
            if other_sha == report.sha256 or not lost or _manifest_key(other_sha) in existing:
                continue  # its own file, untouched, or removed (a fresh import)
            key = current = _manifest_key(other_sha)
            backups.setdefault(key, zone.read_bytes(key))
            manifest["partitions"] = [p for p in manifest["partitions"] if p not in lost]
            manifest.setdefault("replaced_by", []).append(
                {
                    "sha256": report.sha256,
                    "source": report.source,
                    "at": now,
                    "keys": [p["key"] for p in lost],
                }
            )
            zone.write_bytes(key, _json_bytes(manifest))
        key = current = report.manifest
        if zone.exists(key):
            backups.setdefault(key, zone.read_bytes(key))
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
        zone.write_bytes(key, _json_bytes(manifest))
        written.append(key)
    except BaseException as exc:
        problems = _roll_back(zone, written, backups)
        if not isinstance(exc, Exception):
            raise
        undone = f"removed the {len(set(written) - set(backups))} file(s) this import wrote" + (
            f" and restored {len(backups)} replaced file(s)" if backups else ""
        )
        if problems:
            undone += f"; could not undo: {'; '.join(problems)}"
        raise ImportFailed(
            f"{report.source}: writing {current} to {zone.uri} failed ({exc}); {undone}"
        ) from exc


def _roll_back(zone: LandingZone, written: list[str], backups: dict[str, bytes]) -> list[str]:
    problems = []
    for key in written:
        if key not in backups:
            try:
                zone.delete(key)
            except Exception as exc:  # keep undoing the rest
                problems.append(f"{key}: {exc}")
    for key, data in backups.items():
        try:
            zone.write_bytes(key, data)
        except Exception as exc:
            problems.append(f"{key}: {exc}")
    return problems


def _json_bytes(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, default=str) + "\n").encode()


def _version() -> str:
    from churn_kfp import __version__

    return __version__
