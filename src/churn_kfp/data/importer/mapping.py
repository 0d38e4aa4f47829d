"""The import mapping: which export column is what, and how to read and clean it.

:func:`load_mapping` reads the YAML file, :func:`mapping_from_dict` checks a parsed
document and builds the :class:`ImportMapping`; the reference with examples is
``docs/data-contract.md``. Every problem raises :class:`MappingError` naming the file
and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from churn_kfp.data.contract import FEEDBACK, NULL_TOKENS, TABLES, TRANSACTIONS
from churn_kfp.data.importer.errors import MappingError

__all__ = [
    "AMOUNT_MODES",
    "DUPLICATE_ACTIONS",
    "FORMATS",
    "OUTPUT_FORMATS",
    "PARTITIONS",
    "RETURN_ACTIONS",
    "SOURCE_ONLY_COLUMNS",
    "ZERO_AMOUNT_ACTIONS",
    "CustomerIdRule",
    "ImportMapping",
    "ReturnsRule",
    "load_mapping",
    "mapping_from_dict",
]

FORMATS = ("auto", "csv", "whitespace", "parquet")
AMOUNT_MODES = ("given", "quantity_x_unit_price")
RETURN_ACTIONS = ("drop", "keep")
DUPLICATE_ACTIONS = ("drop", "keep")
ZERO_AMOUNT_ACTIONS = ("keep", "drop")
PARTITIONS = ("month", "day")
OUTPUT_FORMATS = ("parquet", "csv")

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

_Fail = Callable[[str], MappingError]
"""Builds the error for a message (prefixed with the mapping's origin)."""


@dataclass(frozen=True)
class ReturnsRule:
    """How the export marks returns and cancellations.

    A transactions mapping without ``returns:`` marks negative quantities and amounts as
    returns and drops them (the data contract's default); a ``returns:`` block says all.

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
    na_values: tuple[str, ...] = NULL_TOKENS
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
    needed = ["customer_id"] + ([contract.time_column] if contract.time_column else [])
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
    na_values = data.get("na_values", list(NULL_TOKENS))
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


def _reject_unknown(data: Mapping, allowed: tuple[str, ...], prefix: str, fail: _Fail) -> None:
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {prefix}{close[0]!r}?)" if close else ""
            raise fail(f"unknown key {prefix}{key!r}{hint}; known keys: {', '.join(allowed)}")


def _choice(data: Mapping, key: str, choices: tuple[str, ...], default: str, fail: _Fail) -> str:
    value = data.get(key, default)
    if value not in choices:
        raise fail(f"{key}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def _codec_name(encoding: str) -> str:
    import codecs

    name = codecs.lookup(encoding).name
    return "utf-8" if name == "utf-8-sig" else name


def _returns_rule(raw: Any, table: str, columns: dict[str, str], fail: _Fail) -> ReturnsRule:
    if raw is None:  # the contract's default: returns are left out (and counted)
        if table != TRANSACTIONS:
            return ReturnsRule()
        return ReturnsRule(negative_quantity="quantity" in columns, negative_amount=True)
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


def _customer_id_rule(raw: Any, fail: _Fail) -> CustomerIdRule:
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
