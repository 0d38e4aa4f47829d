"""The period calendar of the retraining loop: periods, their cutoffs, and which one is next.

**Periods and cutoffs.** The loop runs once per month (a *period*, ``YYYY-MM``). The run for
a period scores eligible customers as of the *new cutoff*, the first day after the period
(``2025-05`` -> ``2025-06-01``). A cutoff's churn label exists once its window has passed
(:func:`churn_kfp.core.dates.label_window_closed`), so with a 30-day window the predictions
for ``2025-06-01`` are judged by the run for ``2025-06``.

**Which period is next** (:func:`plan_period`): the oldest month with a pending (unprocessed)
transaction partition that is newer than every month already handled, where "handled" means
recorded in the ledger (:mod:`churn_kfp.loop.ledger`) or covered by the champion's own
training data (:func:`churn_kfp.registry.lineage.covered_month`). Pending partitions of older
months are *late data*: they are marked along with the next period (ingestion reads them
anyway) but never re-open a period whose predictions were already served.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from churn_kfp.data.contract import TRANSACTIONS
from churn_kfp.data.storage import LandingZone, Partition
from churn_kfp.loop.ledger import pending_partitions, read_ledger

__all__ = [
    "PeriodPlan",
    "check_period",
    "cutoff_step",
    "iso_date",
    "period_cutoff",
    "plan_period",
]

_PERIOD_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def check_period(period: str) -> str:
    """Returns ``period`` if it is a ``YYYY-MM`` month, else raises ``ValueError``."""
    if not isinstance(period, str) or not _PERIOD_RE.match(period):
        raise ValueError(f"a period is a month 'YYYY-MM', got {period!r}")
    return period


def period_cutoff(period: str) -> pd.Timestamp:
    """The new cutoff of a period: the first day after the month (``2025-05`` -> 06-01)."""
    return (pd.Period(check_period(period), freq="M") + 1).to_timestamp()


def iso_date(value: Any) -> str:
    """``YYYY-MM-DD`` of a date-like value."""
    return pd.Timestamp(value).date().isoformat()


def cutoff_step(cutoff: Any) -> int:
    """An MLflow metric step for a cutoff: ``yyyymmdd`` as an integer (20250601)."""
    ts = pd.Timestamp(cutoff)
    return ts.year * 10_000 + ts.month * 100 + ts.day


@dataclass
class PeriodPlan:
    """What a retraining run should process (output of :func:`plan_period`).

    Attributes:
        has_new: Whether there is a new period to process.
        period: The period (``YYYY-MM``), or ``""`` when there is none.
        new_cutoff: ISO date of the period's new cutoff, or ``""``.
        partitions: Keys of the period's pending transaction partitions.
        late: Keys of pending partitions of months already handled (marked with the period).
        reason: Why there is nothing to do, or a one-line description of the work.
        last_handled: The latest month already handled (ledger or champion), or ``""``.
        pending_periods: Every month with a pending partition newer than ``last_handled``.
    """

    has_new: bool
    period: str = ""
    new_cutoff: str = ""
    partitions: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)
    reason: str = ""
    last_handled: str = ""
    pending_periods: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PeriodPlan:
        """Reads :meth:`to_dict` output back."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def keys_to_mark(self) -> list[str]:
        """Every partition key the run records in the ledger when it succeeds."""
        return sorted({*self.partitions, *self.late})


def _month(partition: Partition) -> str:
    return f"{partition.year:04d}-{partition.month:02d}"


def plan_period(
    zone: LandingZone,
    champion_covered: str | None,
    requested: str | None = None,
    table: str = TRANSACTIONS,
) -> PeriodPlan:
    """Chooses the period a retraining run processes (see the module docstring).

    Args:
        zone: The landing zone.
        champion_covered: Last month the champion's training data covered
            (:func:`churn_kfp.registry.lineage.covered_month`), or ``None``.
        requested: Process this month (``YYYY-MM``) if it has pending partitions; ``None`` or
            ``""`` picks the oldest pending month.
        table: The table whose partitions drive the loop.

    Returns:
        The plan; ``has_new`` is False when there is nothing to do, with the reason.
    """
    if requested:
        check_period(requested)
    done, _ = read_ledger(zone)
    handled = [str(v.get("period", ""))[:7] for v in done.values() if v.get("period")]
    if champion_covered:
        handled.append(champion_covered)
    last = max(handled) if handled else ""
    pending = pending_partitions(zone, table)
    late = [p for p in pending if last and _month(p) <= last]
    fresh = [p for p in pending if not last or _month(p) > last]
    months = sorted({_month(p) for p in fresh})
    plan = PeriodPlan(
        has_new=False,
        late=[p.key for p in late],
        last_handled=last,
        pending_periods=months,
    )
    if requested:
        if requested not in months:
            done_months = {str(v.get("period", ""))[:7] for v in done.values()}
            if requested in done_months or (last and requested <= last):
                plan.reason = f"period {requested} was already processed"
            else:
                plan.reason = f"no data for period {requested} in {zone.uri}"
            return plan
        period = requested
    elif not months:
        plan.reason = "no new data" + (
            f" ({len(late)} late partition(s) of handled months wait for the next period)"
            if late
            else ""
        )
        return plan
    else:
        period = months[0]
    plan.has_new = True
    plan.period = period
    plan.new_cutoff = iso_date(period_cutoff(period))
    plan.partitions = [p.key for p in fresh if _month(p) == period]
    plan.reason = (
        f"new data for {period}: {len(plan.partitions)} partition(s)"
        + (f" + {len(late)} late" if late else "")
        + (f"; still pending after it: {', '.join(months[1:])}" if len(months) > 1 else "")
    )
    return plan
