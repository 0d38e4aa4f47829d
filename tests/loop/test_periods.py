import json

import pandas as pd
import pytest

from churn_kfp.data.storage import LocalLandingZone, discover_partitions, partition_key
from churn_kfp.loop import ledger
from churn_kfp.loop.periods import PeriodPlan, cutoff_step, period_cutoff, plan_period


def _mark(zone, months):
    parts = [p for p in ledger.pending_partitions(zone) if p.month in months]
    ledger.mark_processed(zone, parts, run_id="test")


def test_period_and_cutoff_helpers():
    assert period_cutoff("2025-05") == pd.Timestamp("2025-06-01")
    assert period_cutoff("2025-12") == pd.Timestamp("2026-01-01")
    assert cutoff_step("2025-06-01") == 20250601
    with pytest.raises(ValueError, match="YYYY-MM"):
        period_cutoff("2025-5")


def test_first_run_after_training_processes_the_month_after_the_champion(zone_with_months):
    zone = zone_with_months(range(1, 7))
    plan = plan_period(zone, champion_covered="2025-04")
    assert plan.has_new and plan.period == "2025-05" and plan.new_cutoff == "2025-06-01"
    assert plan.partitions == [partition_key("transactions", 2025, 5)]
    assert plan.pending_periods == ["2025-05", "2025-06"]
    # the months the champion was trained on are "late": marked with the period
    assert plan.late == [partition_key("transactions", 2025, m) for m in range(1, 5)]
    assert "still pending after it: 2025-06" in plan.reason
    assert PeriodPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def test_ledger_drives_the_next_period_and_a_second_run_skips(zone_with_months):
    zone = zone_with_months(range(1, 6))
    first = plan_period(zone, champion_covered="2025-04")
    parts = discover_partitions(zone, "transactions")
    ledger.mark_processed(zone, [p for p in parts if p.key in first.keys_to_mark()], run_id="run-1")
    again = plan_period(zone, champion_covered="2025-04")
    assert not again.has_new and again.reason == "no new data"
    assert again.last_handled == "2025-05"
    assert ledger.pending_partitions(zone) == []
    # a requested period that was processed already is refused, not redone
    refused = plan_period(zone, "2025-04", requested="2025-05")
    assert not refused.has_new and "already processed" in refused.reason
    missing = plan_period(zone, "2025-04", requested="2025-09")
    assert not missing.has_new and "no data" in missing.reason


def test_late_partitions_never_reopen_a_processed_period(zone_with_months):
    zone = zone_with_months(range(1, 6))
    _mark(zone, range(1, 6))
    zone.write_bytes(partition_key("transactions", 2025, 3, day=31), b"customer_id\n")
    only_late = plan_period(zone, champion_covered="2025-04")
    assert not only_late.has_new and "late" in only_late.reason
    zone.write_bytes(partition_key("transactions", 2025, 6), b"customer_id\n")
    plan = plan_period(zone, champion_covered="2025-04")
    assert plan.period == "2025-06"
    assert plan.late == [partition_key("transactions", 2025, 3, day=31)]
    assert set(plan.keys_to_mark()) == {
        partition_key("transactions", 2025, 6),
        partition_key("transactions", 2025, 3, day=31),
    }


def test_requested_period_and_no_champion_tags(zone_with_months, tmp_path):
    zone = zone_with_months([1, 2, 3])
    plan = plan_period(zone, champion_covered=None)
    assert plan.period == "2025-01" and plan.late == []
    chosen = plan_period(zone, champion_covered=None, requested="2025-02")
    assert chosen.period == "2025-02" and chosen.new_cutoff == "2025-03-01"
    empty = plan_period(LocalLandingZone(tmp_path / "empty"), champion_covered=None)
    assert not empty.has_new and empty.reason == "no new data"
