"""Finding rows that may repeat without hashing their strings: 64-bit row hashes and a sort.

Both duplicate checks (``churn import``'s and ingestion's) turn the columns that are cheap to
compare into integer codes (equal when the values are), hash each row from them
(:func:`row_hashes`) and keep only the rows whose hash another row shares
(:func:`repeated_rows`): a superset of the duplicates, which an exact comparison confirms.
"""

from __future__ import annotations

import numpy as np

__all__ = ["candidate_rows", "repeated_rows", "row_hashes"]


def row_hashes(codes: list[np.ndarray], n: int) -> np.ndarray:
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


def repeated_rows(hashes: np.ndarray) -> np.ndarray:
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


def candidate_rows(hashes: np.ndarray) -> np.ndarray | None:
    """:func:`repeated_rows`, or ``None`` when half the rows or more repeat.

    ``None`` means: compare every row exactly, which then costs about as much as
    comparing the candidates.
    """
    repeated = repeated_rows(hashes)
    return repeated if repeated.size < hashes.size // 2 else None
