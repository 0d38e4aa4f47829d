"""The ledger of processed partitions: a partition is never processed twice.

The ledger is one JSON object in the landing zone (``state/ledger.json``), updated with a
compare-and-swap (conditional write) so two runs racing cannot lose each other's update.
A run marks its partitions only after everything else succeeded: a crashed run leaves
them pending and the next run processes them.
"""

from __future__ import annotations

import json
import time

from churn_kfp.data.contract import TRANSACTIONS
from churn_kfp.data.storage import LandingZone, Partition, PreconditionFailed, discover_partitions

__all__ = ["LEDGER_KEY", "mark_processed", "pending_partitions", "read_ledger"]

LEDGER_KEY = "state/ledger.json"


def read_ledger(zone: LandingZone) -> tuple[dict[str, dict], str | None]:
    """Returns the processed partitions (by key) and the ledger's version tag."""
    current = zone.read_versioned(LEDGER_KEY)
    if current is None:
        return {}, None
    data, tag = current
    return json.loads(data)["partitions"], tag


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
