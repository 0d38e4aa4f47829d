"""Duplicate rows: exact repeats of a line, and repeated customers in a customers table.

Rows are compared on their exact values, vectorised: each column becomes integer codes
(equal exactly when the values are), rows are hashed from their codes, and only rows
whose hash repeats are compared value by value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churn_kfp.data.contract import CUSTOMERS
from churn_kfp.data.importer.mapping import ImportMapping
from churn_kfp.data.importer.rules import Staged
from churn_kfp.data.importer.values import null_mask
from churn_kfp.data.rowhash import candidate_rows, row_hashes

__all__ = ["remove_duplicates"]


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
        codes[null_mask(column)] = np.iinfo(np.int64).min  # distinct from any real value's bits
    return codes


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
        candidates = candidate_rows(row_hashes(codes, table.num_rows)[rows])
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
    groups, uniques = pd.factorize(row_hashes(codes, n))
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


def remove_duplicates(staged: Staged, mapping: ImportMapping) -> None:
    """Drops duplicate lines (and repeated customers), counts them, settles the notes."""
    checks: list[tuple[str, str, list[str] | None]] = []  # reason, which to keep, columns
    if mapping.duplicates == "drop":
        checks.append(("duplicate_line", "first", None))
    if mapping.table == CUSTOMERS:  # one row per customer: the last one wins
        checks.append(("duplicate_customer_id", "last", ["customer_id"]))
    kept = staged.source_rows
    removed = np.zeros(kept.size, dtype=bool)
    known = {"customer_id": staged.id_codes}
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
