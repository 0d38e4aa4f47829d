"""The behaviour and quantity features as one SQL query, written once for every SQL engine.

:func:`feature_query` returns a query that computes the ``behaviour`` and ``quantity``
features (see :mod:`churn_kfp.learn.features` for their meaning) of every eligible customer
at every cutoff of a run in one pass over the transactions. The cutoffs, window starts and
active-period edges cut time into segments, so every window of every cutoff is a union of
whole segments: the transactions are summed once per ``(customer_id, segment)`` (each
row also carries the days since the customer's previous purchase day, by ``LAG``), and
only those few rows are joined to a small inline table of the segments before each cutoff
and summed per ``(customer_id, cutoff)`` with conditional sums per window. The text is
the subset of SQL that DuckDB and Spark SQL both accept (``CASE``, ``COALESCE``, ``POWER``,
``SQRT``, ``CEIL``, ``FLOOR``, ``LAG`` over a window, an inline ``VALUES`` table); the only
dialect-specific piece is the timestamp -> epoch microseconds function, chosen by
``dialect``. Every division is guarded by ``CASE`` (Spark's ANSI mode raises on a division
by zero).

Usage::

    sql = feature_query("transactions", cutoffs, windows=(30, 60, 90), eligibility_days=90,
                        has_quantity=True, dialect="duckdb")   # or dialect="spark"

Input: a table or view named ``transactions`` with the canonical columns
(:data:`churn_kfp.core.columns.CUSTOMER_ID`, ``timestamp``, ``amount``, optionally
``quantity``); rows with a missing id or timestamp are ignored, a missing or ``NaN`` amount or
quantity counts as 0. Timestamps are read as UTC at microsecond precision.

Output columns, ordered by cutoff then ``customer_id``: ``customer_id`` (string), ``cutoff_us``
and ``first_purchase_us`` (``BIGINT`` epoch microseconds: the cutoff and the customer's first
purchase, for :func:`churn_kfp.learn.features.finish_feature_table`, which turns the result
into the feature table: ``cutoff`` column, split, sentiment and demographic features), then
the features in the order of :func:`churn_kfp.learn.features.build_feature_table` as
``DOUBLE`` (``NULL`` where the pandas builder has ``NaN``).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from churn_kfp.core import columns
from churn_kfp.core.dates import to_timestamp
from churn_kfp.learn.features import ACTIVE_PERIOD_DAYS, DECAY_HALF_LIVES, check_windows

__all__ = ["DIALECTS", "feature_query"]

DAY_US = 86_400 * 10**6
"""Microseconds per day."""

DIALECTS = {"duckdb": "epoch_us({})", "spark": "unix_micros({})"}
"""Timestamp -> epoch microseconds, the one function the engines spell differently."""


def _segment_edges(cutoffs: Sequence[Any], ages: set[int]) -> list[int]:
    """Sorted epoch-microsecond edges: every cutoff, and every cutoff minus each age (days)."""
    edges = set()
    for c in cutoffs:
        micros = to_timestamp(c).value // 1000
        edges.add(micros)
        edges.update(micros - days * DAY_US for days in ages)
    return sorted(edges)


def _segments_values(cutoffs: Sequence[Any], edges: list[int]) -> str:
    """An inline table of the segments before each cutoff and the oldest age they hold.

    Segment ``k`` holds times in ``[edges[k-1], edges[k])`` (segment 0 starts at minus
    infinity); ``oldest`` is the cutoff minus its start (``NULL`` for segment 0): every row
    of the segment is within a window of that age or more.
    """
    rows = []
    for c in sorted({to_timestamp(c).value // 1000 for c in cutoffs}):
        for k, end in enumerate(edges):
            if end > c:
                break
            oldest = "NULL" if k == 0 else str(c - edges[k - 1])
            rows.append(f"({c}, {k}, CAST({oldest} AS BIGINT))")
    return f"(VALUES {', '.join(rows)}) AS s(c, seg, oldest)"


def _divide(numerator: str, denominator: str, when: str) -> str:
    return f"CASE WHEN {when} THEN ({numerator}) / ({denominator}) END"


def feature_query(
    transactions: str,
    cutoffs: Sequence[Any],
    windows: Sequence[int] = (30, 60, 90),
    eligibility_days: int = 90,
    has_quantity: bool = True,
    half_lives: Sequence[int] = DECAY_HALF_LIVES,
    dialect: str = "duckdb",
) -> str:
    """Returns the SQL computing behaviour (+ quantity) features at every cutoff in one pass.

    Args:
        transactions: Name of the table or view holding the transactions.
        cutoffs: The cutoffs (anything :func:`churn_kfp.core.dates.to_timestamp` accepts).
        windows: Look-back windows in days.
        eligibility_days: A customer is included at a cutoff when they bought within this
            many days before it.
        has_quantity: Whether the transactions have a ``quantity`` column (adds the
            ``quantity`` group).
        half_lives: Half-lives in days of the decayed frequency and spend.
        dialect: ``"duckdb"`` or ``"spark"``.

    Returns:
        The query text (see the module docstring for its output).

    Raises:
        ValueError: Unknown dialect, no cutoff, or bad windows / eligibility.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}; expected one of {sorted(DIALECTS)}")
    if not cutoffs:
        raise ValueError("at least one cutoff is needed")
    wins = check_windows(windows, eligibility_days)
    smallest, largest = wins[0], wins[-1]
    epoch = DIALECTS[dialect].format("timestamp")
    day = f"{float(DAY_US)!r}"
    quantity = (
        "CASE WHEN isnan(quantity) THEN 0.0 ELSE COALESCE(CAST(quantity AS DOUBLE), 0.0) END"
        if has_quantity
        else "0.0"
    )

    # Purchases are counted within these ages (days before a cutoff): the windows (their
    # spend too), the eligibility look-back and the edges of the active periods; period j
    # (1-based) holds ages in ((j-1)P, jP], capped at the largest window.
    summed = {*wins, 2 * smallest}
    n_periods = -(-largest // ACTIVE_PERIOD_DAYS)
    period_edges = [min(j * ACTIVE_PERIOD_DAYS, largest) for j in range(1, n_periods + 1)]
    counted = {*summed, *period_edges, eligibility_days}
    # The cutoffs minus those ages cut time into segments; each window of each cutoff is a
    # union of whole segments. So the transactions are summed once per (customer, segment)
    # and only those few rows are joined to the cutoffs.
    edges = _segment_edges(cutoffs, counted)
    segment = " + ".join(f"CASE WHEN t >= {e} THEN 1 ELSE 0 END" for e in edges)

    def within(days_us: int, value: str, otherwise: str = "0.0") -> str:
        # every row of the segment is within the window when its oldest one is
        return f"CASE WHEN s.oldest <= {days_us} THEN {value} ELSE {otherwise} END"

    aggregates = [
        "MAX(g.last_t) AS last_t",
        "MIN(g.first_t) AS first_t",
        "CAST(SUM(g.n) AS DOUBLE) AS lifetime_f",
        "SUM(g.m) AS lifetime_m",
    ]
    # one aggregate per count, however many uses it has (a period is active when the counts
    # at its two edges differ)
    for days in sorted(counted):
        aggregates.append(f"SUM({within(days * DAY_US, 'CAST(g.n AS DOUBLE)')}) AS f_{days}")
    for w in sorted(summed):
        aggregates.append(f"SUM({within(w * DAY_US, 'g.m')}) AS m_{w}")
    # 2 ** (-(c - t) / h) = 2 ** (-(c - t0) / h) * 2 ** ((t - t0) / h): the row factor is
    # computed once per row (not per row and cutoff), t0 being the latest cutoff; it
    # underflows only for purchases ~1000 half-lives before it.
    latest = max(to_timestamp(c).value // 1000 for c in cutoffs)
    row_weights = [
        f"POWER(2.0, (CAST(t - {latest} AS DOUBLE) / {day}) / {float(h)!r}) AS w_{h}"
        for h in half_lives
    ]
    segment_sums = [
        "COUNT(*) AS n",
        "SUM(amount) AS m",
        "SUM(quantity) AS q",
        "MIN(t) AS first_t",
        "MAX(t) AS last_t",
    ]
    for h in half_lives:
        segment_sums += [f"SUM(w_{h}) AS df_{h}", f"SUM(w_{h} * amount) AS dm_{h}"]
        aggregates.append(f"SUM(g.df_{h}) AS df_{h}")
        aggregates.append(f"SUM(g.dm_{h}) AS dm_{h}")
    if has_quantity:
        aggregates.append(f"SUM({within(largest * DAY_US, 'g.q')}) AS q_{largest}")
        aggregates.append("SUM(g.q) AS lifetime_q")
    # gap: days since the customer's previous purchase day, non-zero only on a day's first
    # transaction (later ones that day have gap 0, which is not a gap)
    segment_sums += [
        "CAST(SUM(CASE WHEN gap > 0 THEN 1 ELSE 0 END) AS DOUBLE) AS n_gaps",
        "SUM(CASE WHEN gap > 0 THEN gap ELSE 0.0 END) AS gap_sum",
        "SUM(CASE WHEN gap > 0 THEN gap * gap ELSE 0.0 END) AS gap_sq",
    ]
    aggregates += [
        "SUM(g.n_gaps) AS n_gaps",
        "SUM(g.gap_sum) AS gap_sum",
        "SUM(g.gap_sq) AS gap_sq",
    ]

    active_periods = [
        f"CASE WHEN f_{edge} > {'f_' + str(previous) if previous else '0.0'} THEN 1.0 ELSE 0.0 END"
        for previous, edge in pairwise([0, *period_edges])
    ]
    recency = f"CAST(a.c - last_t AS DOUBLE) / {day}"
    since_first = f"CAST(a.c - first_t AS DOUBLE) / {day}"
    mean_gap = _divide(
        f"CAST(last_t - first_t AS DOUBLE) / {day}", "lifetime_f - 1.0", "lifetime_f > 1.0"
    )
    gap_mean = "a.gap_sum / a.n_gaps"
    spread = f"SQRT(GREATEST(a.gap_sq / a.n_gaps - ({gap_mean}) * ({gap_mean}), 0.0))"
    features = [
        f"a.{columns.CUSTOMER_ID} AS {columns.CUSTOMER_ID}",
        "a.c AS cutoff_us",
        "a.first_t AS first_purchase_us",
        f"{recency} AS recency_days",
        f"{since_first} AS tenure_days",
        *(f"f_{w} AS frequency_{w}d" for w in wins),
        *(f"m_{w} AS monetary_{w}d" for w in wins),
        f"{_divide(f'm_{largest}', f'f_{largest}', f'f_{largest} > 0')} AS avg_basket_{largest}d",
        f"2.0 * f_{smallest} - f_{2 * smallest} AS frequency_trend_{smallest}d",
        f"2.0 * m_{smallest} - m_{2 * smallest} AS monetary_trend_{smallest}d",
        f"{mean_gap} AS mean_days_between_purchases",
        f"{_divide(recency, mean_gap, f'({mean_gap}) > 0')} AS overdue_ratio",
        "lifetime_f AS lifetime_frequency",
        "lifetime_m AS lifetime_monetary",
        f"{_divide(spread, gap_mean, 'a.n_gaps >= 2')} AS purchase_gap_cv",
        f"{_divide(f'1.0 - ({recency}) / ({since_first})', '1.0', f'{since_first} > 0')}"
        " AS active_span_ratio",
        f"{' + '.join(active_periods)} AS active_months_{largest}d",
    ]
    for h in half_lives:
        factor = f"POWER(2.0, -(CAST(a.c - {latest} AS DOUBLE) / {day}) / {float(h)!r})"
        features += [
            f"df_{h} * {factor} AS decayed_frequency_{h}d",
            f"dm_{h} * {factor} AS decayed_monetary_{h}d",
        ]
    if has_quantity:
        features += [f"q_{largest} AS quantity_{largest}d", "lifetime_q AS lifetime_quantity"]

    sep = ",\n    "
    segments = _segments_values(cutoffs, edges)
    return f"""WITH clean AS (
  SELECT CAST({columns.CUSTOMER_ID} AS STRING) AS {columns.CUSTOMER_ID},
    {epoch} AS t,
    CASE WHEN isnan(amount) THEN 0.0 ELSE COALESCE(CAST(amount AS DOUBLE), 0.0) END AS amount,
    {quantity} AS quantity
  FROM {transactions}
  WHERE {columns.CUSTOMER_ID} IS NOT NULL AND timestamp IS NOT NULL
),
tx AS (
  SELECT {columns.CUSTOMER_ID}, t, amount, quantity, {segment} AS seg,
    CAST(
      FLOOR(t / {day})
        - FLOOR(LAG(t) OVER (PARTITION BY {columns.CUSTOMER_ID} ORDER BY t) / {day})
      AS DOUBLE
    ) AS gap
    {"".join(f", {w}" for w in row_weights)}
  FROM clean
),
per_segment AS (
  SELECT {columns.CUSTOMER_ID}, seg,
    {sep.join(segment_sums)}
  FROM tx
  GROUP BY {columns.CUSTOMER_ID}, seg
),
per_cutoff AS (
  SELECT g.{columns.CUSTOMER_ID} AS {columns.CUSTOMER_ID}, s.c AS c,
    {sep.join(aggregates)}
  FROM per_segment AS g
  JOIN {segments} ON g.seg = s.seg
  GROUP BY g.{columns.CUSTOMER_ID}, s.c
)
SELECT
    {sep.join(features)}
FROM per_cutoff AS a
WHERE a.f_{eligibility_days} > 0
ORDER BY a.c, a.{columns.CUSTOMER_ID}
"""
