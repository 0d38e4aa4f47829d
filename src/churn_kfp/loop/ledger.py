"""The ledger of processed partitions: a partition is never processed twice.

The ledger is one JSON object in the landing zone (``state/ledger.json``), updated with a
compare-and-swap (conditional write) so two runs racing cannot lose each other's update.
A run marks its partitions only after everything else succeeded: a crashed run leaves
them pending and the next run processes them. A ledger that is not valid JSON or not of
that shape raises :class:`LedgerError`, which names the file and how to repair it.
"""

from __future__ import annotations

import json
import time

from churn_kfp.data.contract import TRANSACTIONS
from churn_kfp.data.storage import LandingZone, Partition, PreconditionFailed, discover_partitions

__all__ = ["LEDGER_KEY", "LedgerError", "mark_processed", "pending_partitions", "read_ledger"]

LEDGER_KEY = "state/ledger.json"


class LedgerError(ValueError):
    """The ledger is unreadable, or a run would redo a period the ledger lost."""


def read_ledger(zone: LandingZone) -> tuple[dict[str, dict], str | None]:
    """Returns the processed partitions (by key) and the ledger's version tag.

    Raises:
        LedgerError: The ledger is not valid JSON or not ``{"partitions": {key: {...}}}``.
    """
    current = zone.read_versioned(LEDGER_KEY)
    if current is None:
        return {}, None
    data, tag = current
    try:
        ledger = json.loads(data)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        problem = f"it is not valid JSON ({exc})"
    else:
        partitions = ledger.get("partitions") if isinstance(ledger, dict) else None
        if isinstance(partitions, dict) and all(isinstance(v, dict) for v in partitions.values()):
            return partitions, tag
        problem = (
            'it is not an object {"partitions": {<partition key>: {...}}} '
            f"(found {type(ledger).__name__} {_excerpt(data)})"
        )
    raise LedgerError(
        f"the ledger of processed partitions {zone.uri}/{LEDGER_KEY} is corrupted: {problem}. "
        "Restore it from a backup (on S3: an earlier object version). Without one, delete "
        "it: runs then refuse periods already committed until given --reprocess."
    )


def _excerpt(data: bytes, limit: int = 40) -> str:
    text = data.decode("utf-8", "replace").strip()
    return repr(text if len(text) <= limit else text[:limit] + "...")


def pending_partitions(zone: LandingZone, table: str = TRANSACTIONS) -> list[Partition]:
    """Lists a table's partitions that no successful run has processed yet, oldest first."""
    done, _ = read_ledger(zone)
    return [p for p in discover_partitions(zone, table) if p.key not in done]


def mark_processed(
    zone: LandingZone, partitions: list[Partition], run_id: str, attempts: int = 10
) -> list[str]:
    """Records partitions as processed by ``run_id``; safe against concurrent runs.

    Returns:
        The keys newly recorded (already-recorded partitions are left as they were).

    Raises:
        PreconditionFailed: The ledger kept changing under us for ``attempts`` tries.
    """
    for attempt in range(attempts):
        done, tag = read_ledger(zone)
        added = [p for p in partitions if p.key not in done]
        if not added:
            return []
        for p in added:
            done[p.key] = {"period": p.period, "run_id": run_id, "processed_at": time.time()}
        body = json.dumps({"partitions": done}, indent=1, sort_keys=True).encode()
        try:
            zone.write_conditional(LEDGER_KEY, body, if_match=tag)
            return [p.key for p in added]
        except PreconditionFailed:
            time.sleep(0.05 * (attempt + 1))
    raise PreconditionFailed(f"could not update {LEDGER_KEY} after {attempts} attempts")
