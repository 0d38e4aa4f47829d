"""The row checks: map and normalise the columns, drop unusable rows, count them by reason.

:func:`stage` turns the export's raw columns into contract columns and assigns every row
that cannot be used to the first drop reason of :data:`REASONS` that applies, keeping one
example of each; kept rows with a repaired or notable value (a missing amount, a kept
return...) are noted for the report. A file whose time stamps or amounts are mostly
unusable is refused as a whole (:data:`MAX_UNUSABLE_SHARE`): then the mapping is wrong,
not the rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churn_kfp.data.contract import FEEDBACK, TABLES, TRANSACTIONS
from churn_kfp.data.importer.errors import ImportRefused
from churn_kfp.data.importer.mapping import ImportMapping
from churn_kfp.data.importer.reading import RawExport
from churn_kfp.data.importer.values import (
    as_mask,
    customer_ids,
    null_mask,
    parse_numbers,
    parse_timestamps,
    suggest_formats,
    to_text,
    value_at,
)

__all__ = [
    "MAX_UNUSABLE_SHARE",
    "REASONS",
    "Staged",
    "customer_id_codes",
    "in_background",
    "stage",
]

_T = TypeVar("_T")

MAX_UNUSABLE_SHARE = 0.5
"""Above this share of rows with a missing/unparseable time stamp (or a non-numeric amount)
the whole file is refused: the mapping is wrong, not the rows."""

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


@dataclass
class Staged:
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
    id_codes: np.ndarray  # one integer per distinct customer id, per row (-1: missing)
    id_dictionary: pa.Array  # the ids the codes stand for
    note_masks: dict[str, np.ndarray] = field(default_factory=dict)
    customers_read: int = 0


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
            value = value_at(values, index) if values is not None else None
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


def stage(read: RawExport, mapping: ImportMapping, name: str) -> Staged:
    """Maps and normalises the export's columns and checks every row.

    Each unusable row is counted under the first drop reason of :data:`REASONS` that
    applies (duplicates are left to
    :func:`~churn_kfp.data.importer.duplicates.remove_duplicates`); kept rows with a
    repaired or notable value are noted.

    Raises:
        ImportRefused: No data rows, or too many unusable ones (more than
            :data:`MAX_UNUSABLE_SHARE`) for the mapping to be right.
    """
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
    ids = customer_ids(src("customer_id"), mapping)
    rows.drop("missing_customer_id", null_mask(ids), src("customer_id"))
    out["customer_id"] = ids
    # Customer ids as integers, once: they count customers and feed duplicate detection.
    # It runs beside the other columns' parsing.
    encoding = in_background(customer_id_codes, ids)

    if contract.partitioned:
        raw = src("timestamp")
        stamps, missing, invalid, outside = parse_timestamps(raw, mapping)
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
        text = to_text(src("text"), ("",))
        rows.drop("missing_text", null_mask(text))
        out["text"] = text
    else:
        _stage_customers(source, mapping, rows, out)

    id_codes, id_dictionary = encoding.result()
    return Staged(
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


def customer_id_codes(ids: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
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
        full[~null_mask(ids)] = codes
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
    fits = suggest_formats(sample[:200])
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
        quantity, _, bad_q = parse_numbers(raw_q, mapping)
    if mapping.amount == "given":
        raw = source.column(columns["amount"])
        amount, missing, invalid = parse_numbers(raw, mapping)
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
        price, missing_p, bad_p = parse_numbers(raw_p, mapping)
        for bad, raw, what in ((bad_q, raw_q, "quantities"), (bad_p, raw_p, "unit prices")):
            column = columns["quantity" if raw is raw_q else "unit_price"]
            _refuse_if_mostly(
                bad, n, name, column, raw, f"have {what} that are not numbers", decimal_hint
            )
        rows.drop("non_numeric_quantity", bad_q, raw_q)
        rows.drop("non_numeric_unit_price", bad_p, raw_p)
        amount = pc.multiply(quantity, price)
        rows.note("missing_amount", null_mask(amount) & ~bad_q & ~bad_p, raw_p)

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
        order_ids = to_text(raw, mapping.na_values)
        mask = np.zeros(n, dtype=bool)
        for prefix in rule.order_id_prefix:
            mask |= as_mask(pc.starts_with(order_ids, prefix))
        mark("cancelled_order_id", mask, raw)
    if rule.status_values:
        raw = source.column(columns["status"])
        status = pc.utf8_lower(to_text(raw, mapping.na_values))
        wanted = pa.array(sorted({v.strip().lower() for v in rule.status_values}), pa.string())
        mark("cancelled_status", as_mask(pc.is_in(status, value_set=wanted)), raw)
    if rule.negative_quantity:
        mark("return_negative_quantity", as_mask(pc.less(quantity, 0)), raw_q)
    if rule.negative_amount:
        raw = source.column(columns["amount"]) if "amount" in columns else raw_p
        mark("return_negative_amount", as_mask(pc.less(amount, 0)), raw)
    if flagged.any():  # kept returns carry a negative amount, as the contract says
        amount = pc.if_else(pa.array(flagged), pc.negate(pc.abs(amount)), amount)
    if mapping.zero_amount == "drop":
        raw = source.column(columns["amount"]) if "amount" in columns else raw_p
        rows.drop("zero_amount", as_mask(pc.equal(amount, 0)), raw)

    out["amount"] = amount
    if "order_id" in columns:
        out["order_id"] = to_text(source.column(columns["order_id"]), mapping.na_values)
    if quantity is not None:
        out["quantity"] = quantity
    if "product_id" in columns:
        out["product_id"] = to_text(source.column(columns["product_id"]), mapping.na_values)


def _stage_customers(
    source: pa.Table, mapping: ImportMapping, rows: _Rows, out: dict[str, pa.ChunkedArray]
) -> None:
    columns = mapping.columns
    if "signup_date" in columns:
        raw = source.column(columns["signup_date"])
        stamps, _, invalid, outside = parse_timestamps(raw, mapping)
        rows.note("unparseable_signup_date", invalid | outside, raw)
        out["signup_date"] = stamps
    if "age" in columns:
        raw = source.column(columns["age"])
        ages, _, invalid = parse_numbers(raw, mapping)
        rows.note("non_numeric_age", invalid, raw)
        out["age"] = ages
    for column in ("gender", "location", "segment"):
        if column in columns:
            out[column] = to_text(source.column(columns[column]), mapping.na_values)


def in_background(func: Callable[..., _T], *args: Any) -> Future[_T]:
    """Starts ``func(*args)`` on another thread (Arrow and numpy release the GIL)."""
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(func, *args)
    finally:
        pool.shutdown(wait=False)  # the thread ends once the call is done
