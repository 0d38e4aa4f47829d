"""Point-in-time customer features at every cutoff of a plan (see :mod:`churn_kfp.learn.plan`).

Every feature of a customer *as of a cutoff* uses only rows whose timestamp is strictly before
the cutoff; nothing at or after it is read. A customer appears in the table of a cutoff when
they are *eligible*: at least one purchase in the ``eligibility_days`` before the cutoff.

Feature groups (a group is produced only when its input exists):

- ``behaviour`` (always, from the transactions): ``recency_days``, ``tenure_days``,
  ``frequency_{w}d`` and ``monetary_{w}d`` for every window ``w``, ``avg_basket_{W}d`` for the
  largest window ``W``, ``frequency_trend_{s}d`` and ``monetary_trend_{s}d`` (the smallest
  window ``s`` minus the ``s`` days before it), ``mean_days_between_purchases``,
  ``overdue_ratio`` (recency over the mean gap), ``lifetime_frequency``,
  ``lifetime_monetary``, ``purchase_gap_cv`` (coefficient of variation of the gaps between
  purchase days: how regular the customer is), ``active_span_ratio`` (time from the first to
  the last purchase over the time since the first purchase), ``active_months_{W}d`` (how many
  of the 30-day periods of the largest window hold a purchase) and ``decayed_frequency_{h}d``
  / ``decayed_monetary_{h}d`` (purchases and spend weighted by ``2 ** (-age / h)`` for every
  half-life ``h`` in :data:`DECAY_HALF_LIVES`).
- ``quantity`` (when the transactions have a ``quantity`` column): ``quantity_{W}d``,
  ``lifetime_quantity``.
- ``sentiment`` (when a scored feedback table is given, even an empty one):
  ``sentiment_mean_{W}d``, ``sentiment_last``, ``negative_feedback_{W}d`` (sentiment below
  :data:`NEGATIVE_SENTIMENT`), ``feedback_count_{W}d``, ``days_since_feedback``.
- ``demographics`` (when a customers table is given, one feature per column it has):
  ``customer_age_days`` (from ``signup_date``), ``age``, ``gender``, ``location``,
  ``segment``.

A *frequency* counts transaction rows; a *purchase day* is a (UTC) calendar day with at least
one purchase, and counts at a cutoff when its first purchase is before the cutoff. A missing
amount or quantity counts as 0 in the sums. Numeric features are ``float64`` (``NaN`` when
undefined: no purchase in a window for the average basket, a single purchase for the mean gap,
fewer than three purchase days for ``purchase_gap_cv``, no feedback for the sentiment
features, an unknown or future signup date); categorical ones are ``object`` (``str`` or
``NaN``). The customers table has no history, so its values are taken as they are (a signup
date at or after the cutoff is treated as unknown).

Performance: transactions are encoded once (:class:`TransactionIndex`: integer customer codes,
``int64`` nanosecond times); each cutoff then costs a handful of ``np.bincount`` passes over
``customer code × time bucket``, with no sort, group-by or per-customer Python loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from churn_kfp.core import columns
from churn_kfp.core.dates import to_timestamp
from churn_kfp.learn.plan import CutoffPlan

__all__ = [
    "ACTIVE_PERIOD_DAYS",
    "BEHAVIOUR",
    "DAY_NS",
    "DECAY_HALF_LIVES",
    "DEMOGRAPHICS",
    "DEMOGRAPHIC_CATEGORICALS",
    "FEATURE_GROUPS",
    "NEGATIVE_SENTIMENT",
    "QUANTITY",
    "SENTIMENT",
    "TransactionIndex",
    "build_feature_table",
    "build_features",
    "check_windows",
    "finish_feature_table",
    "describe_feature_groups",
    "feature_group_of",
    "feature_groups_used",
    "index_transactions",
    "utc_ns",
]

DAY_NS = 86_400 * 10**9
"""Nanoseconds per day."""

NEGATIVE_SENTIMENT = -0.05
"""Feedback with a sentiment below this counts as negative (VADER's usual threshold)."""

DECAY_HALF_LIVES = (30, 90)
"""Half-lives in days of the time-decayed frequency and spend features."""

ACTIVE_PERIOD_DAYS = 30
"""Length of the periods counted by ``active_months_{W}d``."""

BEHAVIOUR, QUANTITY, SENTIMENT, DEMOGRAPHICS = "behaviour", "quantity", "sentiment", "demographics"
FEATURE_GROUPS = (BEHAVIOUR, QUANTITY, SENTIMENT, DEMOGRAPHICS)
"""All feature groups, in the order their columns appear."""

DEMOGRAPHIC_CATEGORICALS = ("gender", "location", "segment")
_SENTIMENT_PREFIXES = ("sentiment_", "negative_feedback_", "feedback_count_")
_SENTIMENT_NAMES = ("days_since_feedback",)
_QUANTITY_PREFIXES = ("quantity_", "lifetime_quantity")
_DEMOGRAPHIC_NAMES = ("customer_age_days", "age", *DEMOGRAPHIC_CATEGORICALS)

_INT64_MIN = np.iinfo(np.int64).min
_INT64_MAX = np.iinfo(np.int64).max


# --------------------------------------------------------------------------------------
# Encoded transactions
# --------------------------------------------------------------------------------------


def utc_ns(values: Any) -> np.ndarray:
    """Naive UTC ``int64`` nanoseconds of a datetime-like column (``NaT`` -> ``INT64_MIN``)."""
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        series = pd.to_datetime(series)
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    return np.asarray(series.to_numpy(dtype="datetime64[ns]")).view(np.int64)


def _floats(values: Any) -> np.ndarray:
    """A ``float64`` copy of a column (non-numbers become ``NaN``)."""
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if not pd.api.types.is_numeric_dtype(series.dtype):
        series = pd.to_numeric(series, errors="coerce")
    if isinstance(series.dtype, pd.api.extensions.ExtensionDtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(series, dtype=np.float64)


def _zero_nan(values: np.ndarray) -> np.ndarray:
    """``values`` with ``NaN`` replaced by 0 (a copy when needed; never modifies the input)."""
    missing = np.isnan(values)
    return np.where(missing, 0.0, values) if missing.any() else values


class TransactionIndex:
    """Transactions encoded once for fast point-in-time aggregation.

    Customer ids are integer codes in sorted id order, so per-customer results come out
    sorted by ``customer_id``. Rows with a missing customer id or timestamp are dropped.

    Attributes:
        customer_ids: Sorted unique customer ids (``pd.Index`` of ``str``).
        codes: Customer code of every row (``intp``).
        times: Row timestamps as ``int64`` nanoseconds (naive UTC).
        amounts: Row amounts (``float64``, missing -> 0).
        quantities: Row quantities (``float64``, missing -> 0) or ``None`` without a
            ``quantity`` column.
        first_purchase: Earliest timestamp (``int64`` ns) of every customer.
        day_codes: Customer code of every purchase day (one per customer and UTC calendar day
            with a purchase), sorted by customer then time.
        day_times: Time (``int64`` ns) of the first purchase of every purchase day.
        day_gaps: Days since the same customer's previous purchase day (``float64``, ``NaN``
            for their first).
    """

    def __init__(self, transactions: pd.DataFrame):
        """Encodes a clean transactions frame.

        Args:
            transactions: ``customer_id``, ``timestamp``, ``amount`` and optionally
                ``quantity`` (other columns are ignored).

        Raises:
            ValueError: A required column is missing.
        """
        missing = [c for c in ("customer_id", "timestamp", "amount") if c not in transactions]
        if missing:
            raise ValueError(
                f"transactions lack column(s) {missing}; have {list(transactions.columns)}"
            )
        codes, uniques = pd.factorize(transactions["customer_id"], sort=False)
        times = utc_ns(transactions["timestamp"])
        amounts = _floats(transactions["amount"])
        quantities = _floats(transactions["quantity"]) if "quantity" in transactions else None
        keep = (codes >= 0) & (times != _INT64_MIN)
        if not keep.all():
            codes, times, amounts = codes[keep], times[keep], amounts[keep]
            if quantities is not None:
                quantities = quantities[keep]
        # Renumber the codes in sorted id order (sorting the uniques is cheaper than
        # factorize(sort=True) on the full column); ids become str whatever their dtype.
        unique_str = np.asarray(uniques, dtype=object).astype(str)
        order = np.argsort(unique_str, kind="stable")
        rank = np.empty(len(order), dtype=np.intp)
        rank[order] = np.arange(len(order), dtype=np.intp)
        self.codes: np.ndarray = rank[codes] if len(codes) else codes.astype(np.intp)
        self.customer_ids: pd.Index = pd.Index(
            unique_str[order].astype(object), dtype=object, name=columns.CUSTOMER_ID
        )
        self.times: np.ndarray = times
        self.amounts: np.ndarray = _zero_nan(amounts)
        self.quantities: np.ndarray | None = None if quantities is None else _zero_nan(quantities)
        first = np.full(len(self.customer_ids), _INT64_MAX, dtype=np.int64)
        np.minimum.at(first, self.codes, self.times)
        self.first_purchase: np.ndarray = first
        # Purchase days: one entry per customer and (UTC) calendar day with a purchase, at the
        # time of that day's first purchase, with the days since the customer's previous
        # purchase day (NaN for the first). A day counts at a cutoff when its first purchase
        # is before it; its gap only looks back, so it is point-in-time too.
        order = np.lexsort((self.times, self.codes))
        day_codes, day_times = self.codes[order], self.times[order]
        day_numbers = day_times // DAY_NS
        new_day = np.ones(len(order), dtype=bool)
        new_day[1:] = (day_codes[1:] != day_codes[:-1]) | (day_numbers[1:] != day_numbers[:-1])
        day_codes, day_times, day_numbers = (
            day_codes[new_day],
            day_times[new_day],
            day_numbers[new_day],
        )
        gaps = np.full(len(day_codes), np.nan)
        same = day_codes[1:] == day_codes[:-1]
        gaps[1:][same] = (day_numbers[1:] - day_numbers[:-1])[same]
        self.day_codes: np.ndarray = day_codes
        self.day_times: np.ndarray = day_times
        self.day_gaps: np.ndarray = gaps

    @property
    def n_customers(self) -> int:
        """Number of distinct customers."""
        return len(self.customer_ids)

    @property
    def n_rows(self) -> int:
        """Number of transaction rows kept."""
        return len(self.codes)

    @property
    def has_quantity(self) -> bool:
        """Whether the transactions had a ``quantity`` column."""
        return self.quantities is not None

    def codes_of(self, customer_ids: Any) -> np.ndarray:
        """Returns the code of every given customer id (``-1`` for unknown ids)."""
        values = pd.Index(pd.Series(customer_ids, dtype=object).astype(str), dtype=object)
        return self.customer_ids.get_indexer(values)

    def purchases_between(self, start: Any, end: Any) -> np.ndarray:
        """Counts every customer's transactions with ``start <= timestamp < end``.

        Returns:
            ``int64`` counts indexed by customer code.
        """
        lo, hi = to_timestamp(start).value, to_timestamp(end).value
        mask = (self.times >= lo) & (self.times < hi)
        return np.bincount(self.codes[mask], minlength=self.n_customers)


def index_transactions(transactions: pd.DataFrame | TransactionIndex) -> TransactionIndex:
    """Returns ``transactions`` encoded as a :class:`TransactionIndex` (no-op if it is one)."""
    if isinstance(transactions, TransactionIndex):
        return transactions
    return TransactionIndex(transactions)


# --------------------------------------------------------------------------------------
# Features at one cutoff
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Feedback:
    """Scored feedback encoded against a :class:`TransactionIndex`."""

    codes: np.ndarray
    times: np.ndarray
    sentiment: np.ndarray


def _prepare_feedback(feedback: pd.DataFrame, index: TransactionIndex | pd.Index) -> _Feedback:
    """Encodes feedback against the index's customers (or a ``pd.Index`` of ``str`` ids)."""
    missing = [c for c in ("customer_id", "timestamp", "sentiment") if c not in feedback]
    if missing:
        hint = " (score the feedback text first)" if "sentiment" in missing else ""
        raise ValueError(f"feedback lacks column(s) {missing}{hint}")
    if isinstance(index, TransactionIndex):
        codes = index.codes_of(feedback["customer_id"])
    else:
        ids = pd.Series(feedback["customer_id"], dtype=object).astype(str)
        codes = index.get_indexer(pd.Index(ids, dtype=object))
    times = utc_ns(feedback["timestamp"])
    sentiment = _floats(feedback["sentiment"])
    keep = (codes >= 0) & (times != _INT64_MIN)
    return _Feedback(codes[keep], times[keep], sentiment[keep])


def _category_value(value: Any) -> Any:
    """A categorical value as ``str``, or ``NaN`` when missing."""
    if isinstance(value, str):
        return value
    return np.nan if pd.isna(value) else str(value)


def _prepare_customers(customers: pd.DataFrame) -> pd.DataFrame:
    if "customer_id" not in customers:
        raise ValueError(f"customers lack column 'customer_id'; have {list(customers.columns)}")
    wanted = [c for c in ("signup_date", "age", *DEMOGRAPHIC_CATEGORICALS) if c in customers]
    table = customers[["customer_id", *wanted]].copy()
    table["customer_id"] = table["customer_id"].astype(str)
    table = table.drop_duplicates("customer_id", keep="last").set_index("customer_id")
    if "signup_date" in table:
        signup = utc_ns(table["signup_date"])
        table["signup_date"] = np.where(signup == _INT64_MIN, np.nan, signup.astype(np.float64))
    if "age" in table:
        table["age"] = _floats(table["age"])
    for name in DEMOGRAPHIC_CATEGORICALS:
        if name in table:
            table[name] = table[name].astype(object).map(_category_value)
    return table


def check_windows(windows: Iterable[int], eligibility_days: int) -> tuple[int, ...]:
    """Sorted distinct windows, checked with the eligibility look-back.

    Raises:
        ValueError: A window or ``eligibility_days`` is not a positive day count.
    """
    result = tuple(sorted({int(w) for w in windows}))
    if not result or result[0] < 1:
        raise ValueError(f"windows must be positive day counts, got {tuple(windows)}")
    if eligibility_days < 1:
        raise ValueError(f"eligibility_days must be >= 1, got {eligibility_days}")
    return result


def build_features(
    transactions: pd.DataFrame | TransactionIndex,
    cutoff: Any,
    customers: pd.DataFrame | None = None,
    feedback: pd.DataFrame | None = None,
    windows: Sequence[int] = (30, 60, 90),
    eligibility_days: int = 90,
) -> pd.DataFrame:
    """Computes every eligible customer's features as of a cutoff.

    Only rows with a timestamp strictly before ``cutoff`` are used. See the module docstring
    for the columns of each feature group.

    Args:
        transactions: Clean transactions (or a :class:`TransactionIndex` of them, to reuse
            the encoding across cutoffs).
        cutoff: The as-of time (usually midnight of a day).
        customers: Optional customers table (``customer_id`` + any of ``signup_date``,
            ``age``, ``gender``, ``location``, ``segment``).
        feedback: Optional scored feedback (``customer_id``, ``timestamp``, ``sentiment``).
        windows: Look-back windows in days.
        eligibility_days: A customer is included when they bought within this many days
            before the cutoff.

    Returns:
        One row per eligible customer, sorted by ``customer_id``: ``customer_id``, ``cutoff``,
        then the features. ``frame.attrs["feature_groups"]`` lists the groups produced.
    """
    index = index_transactions(transactions)
    prepared_feedback = None if feedback is None else _prepare_feedback(feedback, index)
    prepared_customers = None if customers is None else _prepare_customers(customers)
    return _features_at(
        index,
        to_timestamp(cutoff),
        prepared_customers,
        prepared_feedback,
        check_windows(windows, eligibility_days),
        int(eligibility_days),
    )


def _features_at(
    index: TransactionIndex,
    cutoff: pd.Timestamp,
    customers: pd.DataFrame | None,
    feedback: _Feedback | None,
    windows: tuple[int, ...],
    eligibility_days: int,
) -> pd.DataFrame:
    c = cutoff.value
    smallest, largest = windows[0], windows[-1]
    # Time buckets: boundaries c - d days (d descending), then c. Row bucket b = number of
    # boundaries <= t: 0 = older than every window, k = at or after the cutoff (ignored).
    days_back = sorted({*windows, eligibility_days, 2 * smallest}, reverse=True)
    bounds = np.array([c - d * DAY_NS for d in days_back] + [c], dtype=np.int64)
    k = len(bounds)
    n_buckets = k + 1
    position = {d: i for i, d in enumerate(days_back)}  # bound index of c - d days
    n_cust = index.n_customers

    key = index.codes * n_buckets
    for bound in bounds:  # key += bucket, one comparison per boundary
        key += index.times >= bound
    size = n_cust * n_buckets
    counts = np.bincount(key, minlength=size).reshape(n_cust, n_buckets)

    def window(matrix: np.ndarray, days: int | None) -> np.ndarray:
        lo = 0 if days is None else position[days] + 1
        return matrix[:, lo:k].sum(axis=1)

    eligible = np.flatnonzero(window(counts, eligibility_days) > 0)
    counts = counts[eligible].astype(np.float64)
    spend = np.bincount(key, weights=index.amounts, minlength=size).reshape(n_cust, n_buckets)
    spend = spend[eligible]

    last = np.full(n_cust, _INT64_MIN, dtype=np.int64)
    np.maximum.at(last, index.codes, np.where(index.times < c, index.times, _INT64_MIN))
    last = last[eligible]
    first = index.first_purchase[eligible]

    out: dict[str, Any] = {
        columns.CUSTOMER_ID: np.asarray(index.customer_ids[eligible], dtype=object),
        columns.CUTOFF: np.full(len(eligible), np.datetime64(c, "ns")),
    }
    out["recency_days"] = (c - last) / DAY_NS
    tenure_start = first.copy()
    for w in windows:
        out[f"frequency_{w}d"] = window(counts, w)
    for w in windows:
        out[f"monetary_{w}d"] = window(spend, w)
    freq_large = out[f"frequency_{largest}d"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out[f"avg_basket_{largest}d"] = np.where(
            freq_large > 0, out[f"monetary_{largest}d"] / freq_large, np.nan
        )
    recent_f, double_f = window(counts, smallest), window(counts, 2 * smallest)
    recent_m, double_m = window(spend, smallest), window(spend, 2 * smallest)
    out[f"frequency_trend_{smallest}d"] = 2 * recent_f - double_f
    out[f"monetary_trend_{smallest}d"] = 2 * recent_m - double_m
    lifetime_f = window(counts, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["mean_days_between_purchases"] = np.where(
            lifetime_f > 1, (last - first) / DAY_NS / (lifetime_f - 1), np.nan
        )
        # How overdue the next purchase is: days since the last one over the usual gap (the
        # "alive" signal of buy-till-you-die models; a linear model cannot form the ratio).
        gap = out["mean_days_between_purchases"]
        out["overdue_ratio"] = np.where(gap > 0, out["recency_days"] / gap, np.nan)
    out["lifetime_frequency"] = lifetime_f
    out["lifetime_monetary"] = window(spend, None)
    out.update(_purchase_pattern_features(index, c, eligible, largest, out["recency_days"]))
    groups = [BEHAVIOUR]

    if index.quantities is not None:
        qty = np.bincount(key, weights=index.quantities, minlength=size)
        qty = qty.reshape(n_cust, n_buckets)[eligible]
        out[f"quantity_{largest}d"] = window(qty, largest)
        out["lifetime_quantity"] = window(qty, None)
        groups.append(QUANTITY)

    if feedback is not None:
        out.update(_sentiment_features(feedback, c, eligible, n_cust, largest))
        groups.append(SENTIMENT)

    if customers is not None:
        demographics, tenure_start = _demographic_features(
            customers, out[columns.CUSTOMER_ID], c, tenure_start
        )
        out.update(demographics)
        groups.append(DEMOGRAPHICS)

    # tenure_days second, right after recency
    tenure = (c - tenure_start) / DAY_NS
    frame = pd.DataFrame(out)
    frame.insert(3, "tenure_days", tenure)
    for name in frame.columns[2:]:
        if frame[name].dtype != object:
            frame[name] = frame[name].astype(np.float64)
    frame.attrs["feature_groups"] = groups
    return frame


def _demographic_features(
    customers: pd.DataFrame, customer_ids: np.ndarray, c: int, tenure_start: np.ndarray
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Demographic features of the given customers at ``c``, and their tenure start.

    A known signup date before ``c`` moves the tenure start (first purchase, ``int64`` ns)
    earlier.
    """
    out: dict[str, np.ndarray] = {}
    demo = customers.reindex(pd.Index(customer_ids, dtype=object))
    if "signup_date" in demo:
        signup = demo["signup_date"].to_numpy(dtype=np.float64, na_value=np.nan)
        known = np.isfinite(signup) & (signup < c)
        out["customer_age_days"] = np.where(known, (c - signup) / DAY_NS, np.nan)
        signup_ns = np.where(known, signup, np.inf)
        tenure_start = np.minimum(tenure_start.astype(np.float64), signup_ns)
    if "age" in demo:
        out["age"] = demo["age"].to_numpy(dtype=np.float64, na_value=np.nan)
    for name in DEMOGRAPHIC_CATEGORICALS:
        if name in demo:
            out[name] = demo[name].to_numpy(dtype=object)
    return out, tenure_start


def _purchase_pattern_features(
    index: TransactionIndex, c: int, eligible: np.ndarray, largest: int, recency: np.ndarray
) -> dict[str, np.ndarray]:
    """Regularity, spread and recency-weighted intensity of the purchases before ``c``."""
    n_cust = index.n_customers
    out: dict[str, np.ndarray] = {}

    # Gaps between consecutive purchase days: their coefficient of variation says how regular
    # the customer is (a regular buyer who skips a beat is a stronger warning than an erratic
    # one). Undefined with fewer than two gaps.
    seen = index.day_times < c
    codes, gaps = index.day_codes[seen], index.day_gaps[seen]
    has_gap = ~np.isnan(gaps)
    codes, gaps = codes[has_gap], gaps[has_gap]
    n_gaps = np.bincount(codes, minlength=n_cust)[eligible].astype(np.float64)
    total = np.bincount(codes, weights=gaps, minlength=n_cust)[eligible]
    squares = np.bincount(codes, weights=gaps * gaps, minlength=n_cust)[eligible]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n_gaps
        spread = np.sqrt(np.maximum(squares / n_gaps - mean * mean, 0.0))
        out["purchase_gap_cv"] = np.where(n_gaps >= 2, spread / mean, np.nan)

    # Share of the time since the first purchase that the customer kept buying: near 1 for a
    # customer still active, near 0 for one who stopped right after the first purchase.
    since_first = (c - index.first_purchase[eligible]) / DAY_NS
    with np.errstate(invalid="ignore", divide="ignore"):
        out["active_span_ratio"] = np.where(since_first > 0, 1.0 - recency / since_first, np.nan)

    # In how many of the 30-day periods of the largest window (counted back from the cutoff)
    # the customer bought: steady activity rather than one burst.
    period_ns = ACTIVE_PERIOD_DAYS * DAY_NS
    n_periods = -(-largest // ACTIVE_PERIOD_DAYS)
    recent = (index.times < c) & (index.times >= c - largest * DAY_NS)
    period = (c - 1 - index.times[recent]) // period_ns
    hit = np.bincount(index.codes[recent] * n_periods + period, minlength=n_cust * n_periods)
    active = (hit.reshape(n_cust, n_periods) > 0).sum(axis=1)
    out[f"active_months_{largest}d"] = active[eligible].astype(np.float64)

    # Exponentially time-decayed purchase counts and spend: a purchase h days ago weighs
    # 1/2 with half-life h (a smooth recency-weighted frequency, no window edge).
    before = index.times < c
    age_days = (c - index.times[before]) / DAY_NS
    codes_before = index.codes[before]
    amounts_before = index.amounts[before]
    for half_life in DECAY_HALF_LIVES:
        weight = np.exp2(-age_days / half_life)
        out[f"decayed_frequency_{half_life}d"] = np.bincount(
            codes_before, weights=weight, minlength=n_cust
        )[eligible]
        out[f"decayed_monetary_{half_life}d"] = np.bincount(
            codes_before, weights=weight * amounts_before, minlength=n_cust
        )[eligible]
    return out


def _sentiment_features(
    feedback: _Feedback, c: int, eligible: np.ndarray, n_cust: int, days: int
) -> dict[str, np.ndarray]:
    n_out = len(eligible)
    row_of = np.full(n_cust, -1, dtype=np.intp)
    row_of[eligible] = np.arange(n_out, dtype=np.intp)
    rows = row_of[feedback.codes] if len(feedback.codes) else feedback.codes
    keep = (rows >= 0) & (feedback.times < c)
    rows, times, score = rows[keep], feedback.times[keep], feedback.sentiment[keep]
    scored = ~np.isnan(score)
    in_window = times >= c - days * DAY_NS

    count_w = np.bincount(rows[in_window], minlength=n_out).astype(np.float64)
    scored_w = scored & in_window
    n_scored = np.bincount(rows[scored_w], minlength=n_out)
    total = np.bincount(rows[scored_w], weights=score[scored_w], minlength=n_out)
    negative = np.bincount(rows[scored_w & (score < NEGATIVE_SENTIMENT)], minlength=n_out)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_scored > 0, total / np.maximum(n_scored, 1), np.nan)

    latest = np.full(n_out, _INT64_MIN, dtype=np.int64)
    np.maximum.at(latest, rows, times)
    since = np.where(latest > _INT64_MIN, (c - latest) / DAY_NS, np.nan)

    last_score = np.full(n_out, np.nan)
    s_rows, s_times, s_score = rows[scored], times[scored], score[scored]
    if len(s_rows):
        order = np.lexsort((s_times, s_rows))  # by row, then time; stable for ties
        s_rows, s_score = s_rows[order], s_score[order]
        is_last = np.append(s_rows[1:] != s_rows[:-1], True)
        last_score[s_rows[is_last]] = s_score[is_last]

    return {
        f"sentiment_mean_{days}d": mean,
        "sentiment_last": last_score,
        f"negative_feedback_{days}d": negative.astype(np.float64),
        f"feedback_count_{days}d": count_w,
        "days_since_feedback": since,
    }


def build_feature_table(
    transactions: pd.DataFrame | TransactionIndex,
    plan: CutoffPlan,
    customers: pd.DataFrame | None = None,
    feedback: pd.DataFrame | None = None,
    windows: Sequence[int] = (30, 60, 90),
    eligibility_days: int = 90,
) -> pd.DataFrame:
    """Stacks :func:`build_features` for every cutoff of a plan and adds ``columns.SPLIT``.

    The transactions, feedback and customers are encoded once for all cutoffs.

    Args:
        transactions: Clean transactions (or their :class:`TransactionIndex`).
        plan: The cutoffs and their splits.
        customers: Optional customers table.
        feedback: Optional scored feedback.
        windows: Look-back windows in days.
        eligibility_days: Eligibility look-back in days.

    Returns:
        Rows ordered by cutoff then ``customer_id``: ``customer_id``, ``cutoff``, ``split``,
        then the features; ``attrs["feature_groups"]`` lists the groups produced.
    """
    index = index_transactions(transactions)
    checked = check_windows(windows, eligibility_days)
    prepared_feedback = None if feedback is None else _prepare_feedback(feedback, index)
    prepared_customers = None if customers is None else _prepare_customers(customers)
    parts = []
    for cutoff in plan.all_cutoffs():
        part = _features_at(
            index, cutoff, prepared_customers, prepared_feedback, checked, int(eligibility_days)
        )
        part.insert(2, columns.SPLIT, plan.split_of(cutoff))
        parts.append(part)
    groups = parts[0].attrs["feature_groups"]
    table = pd.concat(parts, ignore_index=True)
    table.attrs["feature_groups"] = list(groups)
    return table


def finish_feature_table(
    raw: pd.DataFrame,
    plan: CutoffPlan | Sequence[Any],
    customers: pd.DataFrame | None = None,
    feedback: pd.DataFrame | None = None,
    windows: Sequence[int] = (30, 60, 90),
) -> pd.DataFrame:
    """Turns the result of :func:`churn_kfp.learn.feature_sql.feature_query` into a feature table.

    Adds ``cutoff`` and ``columns.SPLIT``, the sentiment and demographic groups (computed
    here, as :func:`build_feature_table` does), and moves the tenure start to a known earlier
    signup date; the result equals :func:`build_feature_table`'s.

    Args:
        raw: The query's rows (``customer_id``, ``cutoff_us``, ``first_purchase_us``, the
            behaviour and quantity features), ordered by cutoff then ``customer_id``.
        plan: The cutoffs and their splits, or just the cutoffs (then no split column, as
            :func:`build_features` at one cutoff).
        customers: Optional customers table.
        feedback: Optional scored feedback.
        windows: The look-back windows the query used.

    Returns:
        The feature table; ``attrs["feature_groups"]`` lists the groups produced.
    """
    largest = max(int(w) for w in windows)
    prepared_customers = None if customers is None else _prepare_customers(customers)
    cutoffs = [
        to_timestamp(c) for c in (plan.all_cutoffs() if isinstance(plan, CutoffPlan) else plan)
    ]
    micros = raw["cutoff_us"].to_numpy(dtype=np.int64)
    ids = raw[columns.CUSTOMER_ID].to_numpy(dtype=object)
    feature_names = [c for c in raw.columns if c not in ("cutoff_us", "first_purchase_us")][1:]
    out: dict[str, Any] = {
        columns.CUSTOMER_ID: ids,
        columns.CUTOFF: (micros * 1000).astype("datetime64[ns]"),
    }
    if isinstance(plan, CutoffPlan):
        split_of = {c.value // 1000: plan.split_of(c) for c in cutoffs}
        out[columns.SPLIT] = pd.Series(micros).map(split_of).to_numpy(dtype=object)
    out.update({name: raw[name].to_numpy(dtype=np.float64) for name in feature_names})
    # Rows come ordered by cutoff: the sentiment and demographic groups per cutoff slice.
    side: dict[str, list[np.ndarray]] = {}
    for cutoff in cutoffs:
        c = cutoff.value
        lo, hi = np.searchsorted(micros, [c // 1000, c // 1000 + 1])
        part_ids = ids[lo:hi]
        part: dict[str, np.ndarray] = {}
        if feedback is not None:
            encoded = _prepare_feedback(feedback, pd.Index(part_ids, dtype=object))
            eligible = np.arange(len(part_ids), dtype=np.intp)
            part.update(_sentiment_features(encoded, c, eligible, len(part_ids), largest))
        if prepared_customers is not None:
            first = raw["first_purchase_us"].to_numpy(dtype=np.int64)[lo:hi] * 1000
            demographics, tenure_start = _demographic_features(
                prepared_customers, part_ids, c, first
            )
            part.update(demographics)
            part["tenure_days"] = (c - tenure_start) / DAY_NS
        for name, values in part.items():
            side.setdefault(name, []).append(values)
    for name, pieces in side.items():
        merged = np.concatenate(pieces)
        out[name] = merged.astype(np.float64) if merged.dtype != object else merged
    # no copy into consolidated blocks (0.8 s at 1.5M rows): the arrays are new or views of
    # ``raw``, which the engines drop once the table is built
    table = pd.DataFrame(out, copy=False)
    groups = [BEHAVIOUR]
    groups += [QUANTITY] if "lifetime_quantity" in raw else []
    groups += [SENTIMENT] if feedback is not None else []
    groups += [DEMOGRAPHICS] if customers is not None else []
    table.attrs["feature_groups"] = groups
    return table


# --------------------------------------------------------------------------------------
# Feature groups
# --------------------------------------------------------------------------------------


def feature_group_of(column: str) -> str | None:
    """Returns the feature group a column belongs to (``None`` for id, cutoff, split, label)."""
    if column in columns.META_COLUMNS:
        return None
    if column.startswith(_SENTIMENT_PREFIXES) or column in _SENTIMENT_NAMES:
        return SENTIMENT
    if column.startswith(_QUANTITY_PREFIXES):
        return QUANTITY
    if column in _DEMOGRAPHIC_NAMES:
        return DEMOGRAPHICS
    return BEHAVIOUR


def feature_groups_used(features: pd.DataFrame | Iterable[str]) -> list[str]:
    """Lists the feature groups present in a feature table (or a list of column names).

    Args:
        features: A table from :func:`build_features` / :func:`build_feature_table`, or its
            column names.

    Returns:
        Groups in :data:`FEATURE_GROUPS` order, e.g. ``["behaviour", "quantity"]``.
    """
    names = features.columns if isinstance(features, pd.DataFrame) else list(features)
    found = {feature_group_of(str(name)) for name in names}
    return [g for g in FEATURE_GROUPS if g in found]


def describe_feature_groups(groups: Sequence[str]) -> str:
    """Says in words which groups were used: ``"behaviour only"`` or ``"behaviour + ..."``."""
    if not groups:
        return "no features"
    if list(groups) == [BEHAVIOUR]:
        return "behaviour only"
    return " + ".join(groups)
