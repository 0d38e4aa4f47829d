"""Finding rows that may repeat without hashing their strings: 64-bit row hashes and a sort.

Both duplicate checks (``churn import``'s and ingestion's) turn the columns that are cheap to
compare into integer codes (equal when the values are), hash each row from them
(:func:`row_hashes`) and keep only the rows whose hash another row shares
(:func:`repeated_rows`): a superset of the duplicates, which an exact comparison confirms.
Ingestion's check of a whole frame is :func:`duplicated_rows`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["candidate_rows", "duplicated_rows", "repeated_rows", "row_hashes"]


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


def duplicated_rows(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """``frame.duplicated(subset=columns, keep="first")``, compared on the numbers first.

    Equal rows have equal numbers and time stamps, so only rows whose numbers repeat
    (:func:`candidate_rows` of their hashes: no string is hashed)
    go through pandas' comparison. On 10M timestamped transactions that is a few rows
    instead of all of them (3.9 s); when most rows qualify, pandas compares them all.
    """
    n = len(frame)
    numbers = [
        c
        for c in columns
        if pd.api.types.is_numeric_dtype(frame[c].dtype)
        or pd.api.types.is_datetime64_any_dtype(frame[c].dtype)
    ]
    if n > 1 and numbers:
        candidates = candidate_rows(row_hashes([_equality_codes(frame[c]) for c in numbers], n))
        if candidates is not None:
            duplicated = np.zeros(n, dtype=bool)
            if candidates.size:
                subset = frame.iloc[candidates]
                duplicated[candidates] = subset.duplicated(subset=columns, keep="first").to_numpy()
            return duplicated
    return frame.duplicated(subset=columns, keep="first").to_numpy()


def _equality_codes(values: pd.Series) -> np.ndarray:
    """``int64`` codes of a number or time column, equal whenever pandas calls values equal."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return np.asarray(values.to_numpy(dtype="datetime64[ns]")).view(np.int64)  # NaT: min
    floats = values.to_numpy(dtype=np.float64, na_value=np.nan) + 0.0  # -0.0 becomes 0.0
    floats[np.isnan(floats)] = np.nan  # one NaN bit pattern
    return floats.view(np.int64)
