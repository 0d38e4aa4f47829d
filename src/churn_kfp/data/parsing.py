"""Parsing one raw column of a landing-zone file into typed values, with its defects.

Each parser returns the values and, where values can be missing or unusable, two masks:
*missing* (blank or a null token of :data:`churn_kfp.data.contract.INGESTION_NULL_TOKENS`)
and *invalid* (present but not a value of the type). Ingestion
(:mod:`churn_kfp.data.validation`) counts them, drops or imputes, and rejects a file when
too many are invalid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churn_kfp.data.contract import INGESTION_NULL_TOKENS

__all__ = ["clean_text", "parse_dates", "parse_numbers"]

_SAMPLE = 10_000
"""Rows looked at to decide whether a text column has few distinct values."""


def clean_text(raw: pd.Series, null_tokens: bool = True) -> pd.Series:
    """Returns stripped strings (object dtype) with missing values as NaN."""
    if pd.api.types.is_float_dtype(raw.dtype):
        finite = raw.dropna()
        if (finite == np.round(finite)).all():  # ids read as floats: 12.0 -> "12"
            raw = raw.astype("Int64")
    elif pd.api.types.is_datetime64_any_dtype(raw.dtype):
        raw = raw.dt.strftime("%Y-%m-%d %H:%M:%S")
    values = raw.astype(object)
    sample = values.iloc[:_SAMPLE]
    if len(values) > _SAMPLE and sample.nunique() < 0.5 * len(sample):
        # Few distinct values (ids, categories): clean each distinct value once.
        codes, uniques = pd.factorize(values)
        cleaned = clean_text(pd.Series(uniques, dtype=object), null_tokens).to_numpy()
        out = np.full(len(values), np.nan, dtype=object)
        found = codes >= 0
        out[found] = cleaned[codes[found]]
        return pd.Series(out, index=raw.index, dtype=object)
    present = values.notna().to_numpy()
    if present.all():
        values = values.astype(str).str.strip()
    elif present.any():
        values = values.where(present, np.nan)
        values[present] = values[present].astype(str).str.strip()
    else:
        return pd.Series(np.nan, index=raw.index, dtype=object)
    blank = values.isin(INGESTION_NULL_TOKENS if null_tokens else ("",)).to_numpy()
    if blank.any():
        values = values.where(~blank, np.nan)
    return values


def parse_numbers(raw: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Parses numbers; returns the floats, the missing mask and the invalid mask."""
    if pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype):
        values = raw.astype(float)
        missing = values.isna().to_numpy()
    else:
        values = pd.to_numeric(raw, errors="coerce").astype(float)
        missing = _missing_among_failures(raw, values.isna().to_numpy())
    infinite = np.isinf(values.to_numpy())
    if infinite.any():
        values = values.where(~infinite, np.nan)
    invalid = values.isna().to_numpy() & ~missing
    return values, missing, invalid


def _missing_among_failures(raw: pd.Series, failed: np.ndarray) -> np.ndarray:
    """Marks as missing the failed values that are blank or a null token."""
    missing = failed.copy()
    if failed.any():
        text = clean_text(raw[failed])
        missing[failed] = text.isna().to_numpy()
    return missing


def parse_dates(raw: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Parses ISO 8601 time stamps to naive UTC; returns values, missing and invalid masks."""
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):
        values = raw
        if getattr(values.dt, "tz", None) is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        values = values.astype("datetime64[ns]")
        missing = values.isna().to_numpy()
        return values, missing, np.zeros(len(raw), dtype=bool)
    if pd.api.types.is_numeric_dtype(raw.dtype):
        missing = raw.isna().to_numpy()
        values = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
        return values, missing, ~missing
    if not isinstance(raw.dtype, np.dtype) or raw.dtype != object:
        raw = raw.astype(object)
    values = _to_utc(raw)
    failed = values.isna().to_numpy()
    missing = failed.copy()
    if failed.any():  # a second chance after stripping blanks; null tokens are missing
        text = clean_text(raw[failed])
        missing[failed] = text.isna().to_numpy()
        retry = text.dropna()
        if len(retry):
            values.loc[retry.index] = _to_utc(retry)
    invalid = values.isna().to_numpy() & ~missing
    return values, missing, invalid


def _to_utc(text: pd.Series) -> pd.Series:
    parsed = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True)
    return parsed.dt.tz_localize(None).astype("datetime64[ns]")
