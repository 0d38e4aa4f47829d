import json

import numpy as np
import pandas as pd
import pytest

from churn_kfp.data.storage import LocalLandingZone, partition_key
from churn_kfp.loop import decision, ledger, monitoring
from churn_kfp.loop.monitoring import PeriodPlan


def _zone_with_months(tmp_path, months, year=2025):
    zone = LocalLandingZone(tmp_path / "zone")
    for month in months:
        zone.write_bytes(partition_key("transactions", year, month), b"customer_id\n")
    return zone


def _mark(zone, months):
    parts = [p for p in ledger.pending_partitions(zone) if p.month in months]
    ledger.mark_processed(zone, parts, run_id="test")


# ----------------------------------------------------------------------------- periods


def test_period_and_cutoff_helpers():
    assert monitoring.period_cutoff("2025-05") == pd.Timestamp("2025-06-01")
    assert monitoring.period_cutoff("2025-12") == pd.Timestamp("2026-01-01")
    assert monitoring.cutoff_period("2025-06-01") == "2025-05"
    assert monitoring.cutoff_step("2025-06-01") == 20250601
    with pytest.raises(ValueError, match="YYYY-MM"):
        monitoring.period_cutoff("2025-5")
    # a 30-day window from June 1 needs data through June 30
    assert monitoring.is_matured("2025-06-01", "2025-06-30 18:00", 30)
    assert not monitoring.is_matured("2025-06-01", "2025-06-29", 30)


def test_covered_month_from_lineage_tags():
    assert monitoring.covered_month({"data_end": "2025-04-30T23:10:00"}) == "2025-04"
    # no data_end tag: the test cutoff's label window must have been observed
    assert monitoring.covered_month({"test_cutoff": "2025-04-01", "horizon_days": "30"}) == (
        "2025-04"
    )
    assert monitoring.covered_month({"test_cutoff": "2025-04-01", "horizon_days": "31"}) == (
        "2025-05"
    )
    assert monitoring.covered_month({}) is None
    assert monitoring.covered_month(None) is None


def test_first_run_after_training_processes_the_month_after_the_champion(tmp_path):
    zone = _zone_with_months(tmp_path, range(1, 7))
    plan = monitoring.plan_period(zone, champion_covered="2025-04")
    assert plan.has_new and plan.period == "2025-05" and plan.new_cutoff == "2025-06-01"
    assert plan.partitions == [partition_key("transactions", 2025, 5)]
    assert plan.pending_periods == ["2025-05", "2025-06"]
    # the months the champion was trained on are "late": marked with the period
    assert plan.late == [partition_key("transactions", 2025, m) for m in range(1, 5)]
    assert "still pending after it: 2025-06" in plan.reason
    assert PeriodPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan


def test_ledger_drives_the_next_period_and_a_second_run_skips(tmp_path):
    zone = _zone_with_months(tmp_path, range(1, 6))
    first = monitoring.plan_period(zone, champion_covered="2025-04")
    parts = [p for p in ledger.discover_partitions(zone, "transactions")]
    ledger.mark_processed(zone, [p for p in parts if p.key in first.keys_to_mark()], run_id="run-1")
    again = monitoring.plan_period(zone, champion_covered="2025-04")
    assert not again.has_new and again.reason == "no new data"
    assert again.last_handled == "2025-05"
    assert ledger.pending_partitions(zone) == []
    # a requested period that was processed already is refused, not redone
    refused = monitoring.plan_period(zone, "2025-04", requested="2025-05")
    assert not refused.has_new and "already processed" in refused.reason
    missing = monitoring.plan_period(zone, "2025-04", requested="2025-09")
    assert not missing.has_new and "no data" in missing.reason


def test_a_crashed_run_leaves_its_period_pending(tmp_path):
    zone = _zone_with_months(tmp_path, range(1, 6))
    plan = monitoring.plan_period(zone, champion_covered="2025-04")
    # ... the run fails before finalize marks the ledger ...
    retry = monitoring.plan_period(zone, champion_covered="2025-04")
    assert retry == plan


def test_late_partitions_never_reopen_a_processed_period(tmp_path):
    zone = _zone_with_months(tmp_path, range(1, 6))
    _mark(zone, range(1, 6))
    zone.write_bytes(partition_key("transactions", 2025, 3, day=31), b"customer_id\n")
    only_late = monitoring.plan_period(zone, champion_covered="2025-04")
    assert not only_late.has_new and "late" in only_late.reason
    zone.write_bytes(partition_key("transactions", 2025, 6), b"customer_id\n")
    plan = monitoring.plan_period(zone, champion_covered="2025-04")
    assert plan.period == "2025-06"
    assert plan.late == [partition_key("transactions", 2025, 3, day=31)]
    assert set(plan.keys_to_mark()) == {
        partition_key("transactions", 2025, 6),
        partition_key("transactions", 2025, 3, day=31),
    }


def test_requested_period_and_no_champion_tags(tmp_path):
    zone = _zone_with_months(tmp_path, [1, 2, 3])
    plan = monitoring.plan_period(zone, champion_covered=None)
    assert plan.period == "2025-01" and plan.late == []
    chosen = monitoring.plan_period(zone, champion_covered=None, requested="2025-02")
    assert chosen.period == "2025-02" and chosen.new_cutoff == "2025-03-01"
    empty = monitoring.plan_period(LocalLandingZone(tmp_path / "empty"), champion_covered=None)
    assert not empty.has_new and empty.reason == "no new data"


# ----------------------------------------------------------------------------- predictions


def _features(ids, cutoff):
    return pd.DataFrame({"customer_id": ids, "cutoff": pd.Timestamp(cutoff)})


def test_prediction_store_keeps_one_prediction_per_customer_and_cutoff(tmp_path):
    zone = LocalLandingZone(tmp_path)
    rows = _features(["C2", "C1", "C3"], "2025-06-01")
    first = monitoring.make_predictions(rows, np.array([0.9, 0.2, 0.5]), "1", 0.5)
    assert list(first["customer_id"]) == ["C1", "C2", "C3"]
    assert list(first["prediction"]) == [0, 1, 1]
    monitoring.write_predictions(zone, first)
    monitoring.write_predictions(zone, first)  # a re-run: same key, overwritten
    assert len(monitoring.read_predictions(zone)) == 3
    # a later run of the same period with another champion replaces, never adds
    second = monitoring.make_predictions(rows, np.array([0.1, 0.2, 0.3]), "2", 0.25)
    monitoring.write_predictions(zone, second)
    stored = monitoring.read_predictions(zone)
    assert len(stored) == 3 and set(stored["model_version"]) == {"2"}
    assert zone.list_keys("state/predictions/") == [
        "state/predictions/cutoff=2025-06-01/model=2.parquet"
    ]
    other = monitoring.make_predictions(_features(["C1"], "2025-07-01"), np.array([0.7]), "2", 0.5)
    monitoring.write_predictions(zone, other)
    assert sorted(monitoring.prediction_index(zone)) == ["2025-06-01", "2025-07-01"]
    assert len(monitoring.read_predictions(zone, ["2025-07-01"])) == 1


def test_prediction_store_refuses_ambiguous_frames(tmp_path):
    zone = LocalLandingZone(tmp_path)
    rows = _features(["C1", "C1"], "2025-06-01")
    with pytest.raises(ValueError, match="duplicate"):
        monitoring.write_predictions(
            zone, monitoring.make_predictions(rows, np.array([0.1, 0.2]), "1", 0.5)
        )
    mixed = pd.concat(
        [
            monitoring.make_predictions(_features(["C1"], "2025-06-01"), [0.1], "1", 0.5),
            monitoring.make_predictions(_features(["C2"], "2025-06-01"), [0.1], "2", 0.5),
        ]
    )
    with pytest.raises(ValueError, match="predictions of"):
        monitoring.write_predictions(zone, mixed)
    with pytest.raises(ValueError, match="probabilities"):
        monitoring.make_predictions(rows, np.array([0.1]), "1", 0.5)


# ----------------------------------------------------------------------------- delayed labels


def _transactions(rows):
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "timestamp": pd.to_datetime([r[1] for r in rows]),
            "amount": 10.0,
        }
    )


TX = _transactions(
    [
        ("A", "2025-01-20"),
        ("A", "2025-02-10"),  # buys inside [Feb 1, Mar 3): stays
        ("B", "2025-01-25"),  # never again: churns
        ("C", "2025-01-05"),
        ("C", "2025-03-05"),  # buys only after the window: churns
        ("D", "2025-01-31"),
        ("D", "2025-02-01"),  # buys on the cutoff day itself: stays
        ("E", "2025-01-10"),
        ("E", "2025-03-02"),  # last day of the window: stays
        ("F", "2025-03-20"),
    ]
)


def test_delayed_label_join_on_hand_made_frames():
    # cutoff Feb 1, 30-day window [Feb 1, Mar 3); labels: A 0, B 1, C 1, D 0, E 0
    predictions = monitoring.make_predictions(
        _features(["A", "B", "C", "D", "E"], "2025-02-01"),
        np.array([0.8, 0.9, 0.2, 0.1, 0.6]),  # predicted churn: A, B, E (threshold 0.5)
        "1",
        0.5,
    )
    result = monitoring.evaluate_matured(predictions, TX, "2025-03-31", 30, "2025-03")
    (row,) = result.to_dict("records")
    # TP = B, FP = A + E, FN = C, TN = D
    assert row["n"] == 5 and row["positives"] == 2
    assert row["precision"] == pytest.approx(1 / 3)
    assert row["recall"] == pytest.approx(1 / 2)
    assert row["f1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert row["accuracy"] == pytest.approx(2 / 5)
    assert row["roc_auc"] == pytest.approx(4 / 6)  # B > A,D,E; C > D only
    assert row["model_version"] == "1" and row["evaluated_period"] == "2025-03"
    labels = monitoring.labels_for(predictions, TX, "2025-03-31", 30)
    assert dict(zip(labels["customer_id"], labels["churn"], strict=True)) == {
        "A": 0,
        "B": 1,
        "C": 1,
        "D": 0,
        "E": 0,
    }


def test_immature_cutoffs_are_not_judged():
    early = monitoring.make_predictions(_features(["A", "B"], "2025-02-01"), [0.5, 0.5], "1", 0.5)
    late = monitoring.make_predictions(_features(["A", "B"], "2025-03-01"), [0.5, 0.5], "1", 0.5)
    both = pd.concat([early, late], ignore_index=True)
    # data through Mar 20: Feb 1's window (to Mar 2) has passed, Mar 1's (to Mar 30) has not
    result = monitoring.evaluate_matured(both, TX, "2025-03-20", 30)
    assert [monitoring.iso_date(c) for c in result["cutoff"]] == ["2025-02-01"]
    assert monitoring.evaluate_matured(late, TX, "2025-03-20", 30).empty
    assert monitoring.evaluate_matured(early.iloc[0:0], TX, "2025-03-20", 30).empty


def test_performance_history_upserts_by_cutoff_and_version(tmp_path):
    zone = LocalLandingZone(tmp_path)
    predictions = monitoring.make_predictions(
        _features(["A", "B", "C"], "2025-02-01"), [0.8, 0.9, 0.2], "1", 0.5
    )
    rows = monitoring.evaluate_matured(predictions, TX, "2025-03-31", 30, "2025-03")
    history = monitoring.upsert_performance(monitoring.read_performance(zone), rows)
    monitoring.write_performance(zone, history)
    again = monitoring.upsert_performance(monitoring.read_performance(zone), rows)
    assert len(again) == 1
    other = rows.assign(model_version="2")
    assert len(monitoring.upsert_performance(again, other)) == 2
    records = monitoring.performance_records(again)
    assert records[0]["cutoff"] == "2025-02-01"
    json.dumps(records)


# ----------------------------------------------------------------------------- finalize


def _monitoring_dir(tmp_path, period="2025-02", version="1"):
    folder = tmp_path / f"monitoring-{period}-{version}"
    folder.mkdir()
    new_cutoff = monitoring.iso_date(monitoring.period_cutoff(period))
    predictions = monitoring.make_predictions(
        _features(["A", "B", "C"], new_cutoff), [0.2, 0.7, 0.4], version, 0.5
    )
    predictions.to_parquet(folder / "predictions.parquet")
    matured = monitoring.make_predictions(
        _features(["A", "B", "C", "D", "E"], "2025-02-01"), [0.8, 0.9, 0.2, 0.1, 0.6], "1", 0.5
    )
    performance = monitoring.evaluate_matured(matured, TX, "2025-03-31", 30, period)
    performance.to_parquet(folder / "performance.parquet")
    records = monitoring.performance_records(performance)
    summary = {
        "period": period,
        "new_cutoff": new_cutoff,
        "data_end": "2025-03-31",
        "champion": {"model_name": "m", "version": version, "threshold": 0.5},
        "scored": {"rows": 3},
        "matured": records,
        "newly_matured": records,
        "latest_matured": records[-1],
        "drift": {"share": 0.5, "n_drifted": 2, "n_columns": 4, "drifted_columns": ["x", "y"]},
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder, summary


def _plan(zone, period):
    return monitoring.plan_period(zone, champion_covered=None, requested=period)


def test_finalize_commits_the_period_once(tmp_path):
    zone = _zone_with_months(tmp_path, [2, 3])
    folder, summary = _monitoring_dir(tmp_path)
    plan = _plan(zone, "2025-02")
    made = decision.decide(decision.Signals.from_summary(summary), decision.Policy()).to_dict()
    run = {"pipeline": "churn-retraining", "pipeline_run_id": "p1", "run_tag": "t1"}
    result = monitoring.finalize(
        zone=zone,
        plan=plan,
        monitoring_dir=str(folder),
        decision=made,
        registration=None,
        run_info=run,
    )
    assert result["status"] == "succeeded" and result["champion_after"] == "1"
    assert [a["kind"] for a in result["alerts"]] == ["degradation", "drift"]
    assert monitoring.read_json(zone, monitoring.alerts_key("2025-02")) == result["alerts"]
    assert monitoring.read_json(zone, monitoring.period_key("2025-02"))["period"] == "2025-02"
    assert monitoring.read_json(zone, monitoring.run_key("t1"))["status"] == "succeeded"
    assert [p.period for p in ledger.pending_partitions(zone)] == ["2025-03"]
    assert len(monitoring.read_predictions(zone)) == 3
    assert len(monitoring.read_performance(zone)) == 1
    # finalizing the same period again (a retried task) duplicates nothing
    monitoring.finalize(
        zone=zone,
        plan=plan,
        monitoring_dir=str(folder),
        decision=made,
        registration=None,
        run_info=run,
    )
    assert len(monitoring.read_predictions(zone)) == 3
    assert len(monitoring.read_performance(zone)) == 1
    assert len(ledger.read_ledger(zone)[0]) == 1


def test_a_failure_inside_finalize_leaves_the_ledger_alone(tmp_path, monkeypatch):
    zone = _zone_with_months(tmp_path, [2])
    folder, _ = _monitoring_dir(tmp_path)
    plan = _plan(zone, "2025-02")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(monitoring, "write_json", broken)
    with pytest.raises(OSError, match="disk full"):
        monitoring.finalize(
            zone=zone,
            plan=plan,
            monitoring_dir=str(folder),
            decision={"retrain": False, "reasons": []},
            registration=None,
            run_info={"run_tag": "t"},
        )
    assert [p.period for p in ledger.pending_partitions(zone)] == ["2025-02"]
    assert monitoring.plan_period(zone, None) == plan


def test_test_hook_raises_only_for_its_step(monkeypatch):
    monkeypatch.setenv(monitoring.FAIL_AT_ENV, "finalize-period")
    monitoring.fail_if_requested("score-and-monitor")
    with pytest.raises(RuntimeError, match="injected failure"):
        monitoring.fail_if_requested("finalize-period")


def test_skips_are_recorded(tmp_path):
    zone = _zone_with_months(tmp_path, [])
    plan = monitoring.plan_period(zone, champion_covered="2025-04")
    record = monitoring.record_skip(zone, plan, {"run_tag": "t2", "pipeline": "p"})
    assert record["status"] == "skipped" and record["reason"] == "no new data"
    assert monitoring.read_json(zone, monitoring.run_key("t2")) == record
    assert monitoring.read_json(zone, monitoring.LAST_SKIP_KEY) == record


def test_reference_sample_is_seeded_and_capped_per_split():
    table = pd.DataFrame({"split": ["train"] * 50 + ["test"] * 10, "x": range(60)})
    sample = monitoring.reference_sample(table, max_rows_per_split=20)
    assert sample["split"].value_counts().to_dict() == {"train": 20, "test": 10}
    assert sample.equals(monitoring.reference_sample(table, max_rows_per_split=20))
