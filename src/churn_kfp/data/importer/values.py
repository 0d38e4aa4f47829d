"""Normalising and parsing the export's values, vectorised with Arrow compute kernels.

Text is trimmed and the mapping's ``na_values`` become null (:func:`to_text`); customer
ids are normalised (:func:`customer_ids`); numbers (:func:`parse_numbers`) and time
stamps (:func:`parse_timestamps`) are parsed into values plus masks of the missing and
unusable ones, which the row checks (:mod:`churn_kfp.data.importer.rules`) count. A column
that repeats its values is converted once per distinct value.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from churn_kfp.data.importer.mapping import ImportMapping

__all__ = [
    "as_mask",
    "customer_ids",
    "is_text",
    "na_array",
    "null_mask",
    "parse_numbers",
    "parse_timestamps",
    "repetitive",
    "suggest_formats",
    "to_text",
    "value_at",
]

_NUMBER_RE = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
_ISO_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d")
_OFFSET_RE = r"(?:Z|[+-]\d{2}:?\d{2})$"
_MIN_YEAR, _MAX_YEAR = 1900, 2200
_SAMPLE_ROWS = 1 << 16

_Convert = TypeVar("_Convert", bound=Callable[..., tuple])


def as_mask(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A boolean Arrow array as numpy, nulls as False."""
    return np.asarray(pc.fill_null(values, False).to_numpy(zero_copy_only=False), dtype=bool)


def null_mask(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Where an Arrow array is null, as a numpy mask."""
    return np.asarray(pc.is_null(values).to_numpy(zero_copy_only=False), dtype=bool)


def value_at(values: pa.ChunkedArray | pa.Array, index: int) -> Any:
    """One value as Python (time stamps as ISO text): a report's example."""
    value = values[index].as_py()
    return value.isoformat(sep=" ") if isinstance(value, datetime) else value


def to_text(raw: pa.ChunkedArray, na_values: tuple[str, ...]) -> pa.ChunkedArray:
    """Any column as trimmed strings; blanks and ``na_values`` become null.

    String columns arrive with the exact ``na_values`` already null (the export's reader,
    :func:`~churn_kfp.data.importer.reading.read_export`, does that), so only values that
    trimming changed are looked up.
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
    blank = as_mask(pc.equal(text, ""))
    trimmed = np.flatnonzero(as_mask(pc.not_equal(pc.binary_length(text), pc.binary_length(raw))))
    if trimmed.size:
        tokens = pc.is_in(pc.take(text, pa.array(trimmed)), value_set=na_array(na_values))
        blank[trimmed] |= as_mask(tokens)
    if not blank.any():
        return text
    return pc.if_else(pa.array(blank), pa.scalar(None, pa.string()), text)


def na_array(na_values: tuple[str, ...]) -> pa.Array:
    """The tokens that mean "missing", blank included, as an Arrow array for ``is_in``."""
    return pa.array(sorted(set(na_values) | {""}), pa.string())


def customer_ids(raw: pa.ChunkedArray, mapping: ImportMapping) -> pa.ChunkedArray:
    """Customer ids as trimmed text, normalised by the mapping's ``customer_id`` rule."""
    rule = mapping.customer_id
    ids = to_text(raw, mapping.na_values)
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


def is_text(values: pa.ChunkedArray) -> bool:
    """Whether a column holds strings."""
    return pa.types.is_string(values.type) or pa.types.is_large_string(values.type)


def repetitive(values: pa.ChunkedArray) -> bool:
    """Whether a column repeats its values a lot (judged on its first rows)."""
    sample = values.slice(0, _SAMPLE_ROWS)
    return len(sample) > 0 and pc.count_distinct(sample, mode="all").as_py() * 4 <= len(sample)


def _once_per_distinct(convert: _Convert) -> _Convert:
    """Makes a per-value conversion of text run once per distinct value when values repeat.

    ``convert(values, mapping)`` returns an Arrow array and numpy masks, one element per
    value, each depending on that value alone: converting the distinct values and
    spreading the results over the rows gives what converting every row would, for a
    fraction of the work (dates, prices, quantities).
    """

    @functools.wraps(convert)
    def converted(raw: pa.ChunkedArray, mapping: ImportMapping) -> tuple:
        if not (is_text(raw) and repetitive(raw)):
            return convert(raw, mapping)
        encoded = pc.dictionary_encode(raw.combine_chunks(), null_encoding="encode")
        values, *masks = convert(pa.chunked_array([encoded.dictionary]), mapping)
        rows = encoded.indices.to_numpy()
        return (pc.take(values, encoded.indices), *(mask[rows] for mask in masks))

    return cast(_Convert, converted)


@_once_per_distinct
def parse_numbers(
    raw: pa.ChunkedArray, mapping: ImportMapping
) -> tuple[pa.ChunkedArray, np.ndarray, np.ndarray]:
    """Parses numbers; returns floats (null where unusable), the missing and invalid masks."""
    kind = raw.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        values = raw.cast(pa.float64())
        missing = null_mask(values) | as_mask(pc.is_nan(values))
        invalid = as_mask(pc.is_inf(values))
        values = pc.if_else(pc.is_finite(values), values, pa.scalar(None, pa.float64()))
        return values, missing, invalid
    if pa.types.is_boolean(kind):
        values = raw.cast(pa.float64())
        return values, null_mask(values), np.zeros(len(values), dtype=bool)
    text = to_text(raw, mapping.na_values)
    if mapping.decimal == ",":  # 1.234,56 -> 1234.56
        text = pc.replace_substring(pc.replace_substring(text, ".", ""), ",", ".")
    missing = null_mask(text)
    try:
        values = text.cast(pa.float64())
    except pa.ArrowInvalid:
        numeric = pc.match_substring_regex(text, _NUMBER_RE)
        values = pc.if_else(numeric, text, pa.scalar(None, pa.string())).cast(pa.float64())
    values = pc.if_else(pc.is_finite(values), values, pa.scalar(None, pa.float64()))
    invalid = null_mask(values) & ~missing
    return values, missing, invalid


@_once_per_distinct
def parse_timestamps(
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
        missing = null_mask(values)
        invalid = np.zeros(n, dtype=bool)
    else:
        text = to_text(raw, mapping.na_values)
        missing = null_mask(text)
        values, aware = _parse_time_text(text, mapping.timestamp_format, missing)
        invalid = null_mask(values) & ~missing
    if mapping.timezone and not aware.all():
        local = pc.assume_timezone(
            values, timezone=mapping.timezone, ambiguous="earliest", nonexistent="latest"
        ).cast(pa.timestamp("us"))
        values = pc.if_else(pa.array(aware), values, local) if aware.any() else local
    years = pc.year(values)
    outside = as_mask(pc.or_(pc.less(years, _MIN_YEAR), pc.greater(years, _MAX_YEAR)))
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
            exact = ~null_mask(attempt) & ~done
            # Arrow rejects month 13, day 32, hour 24, but rolls 30 Feb over to 2 March:
            # a rolled-over value lands on day 1-3, so only those are formatted back and
            # compared with the text (formatting is slow; doing it for all rows is not).
            suspect = np.flatnonzero(exact & as_mask(pc.less_equal(pc.day(attempt), 3)))
            if suspect.size:
                picked = pa.array(suspect)
                back = pc.strftime(pc.take(attempt, picked), format=pattern)
                exact[suspect] = as_mask(pc.equal(back, pc.take(text, picked)))
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


def suggest_formats(values: list[str]) -> list[str]:
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
