import json

import pandas as pd
import pytest

from churn_kfp.loop import decision, finalize, ledger, state
from churn_kfp.loop.monitor import evaluate_matured
from churn_kfp.loop.periods import iso_date, period_cutoff, plan_period


def _features(ids, cutoff):
    return pd.DataFrame({"customer_id": ids, "cutoff": pd.Timestamp(cutoff)})


def _monitoring_dir(tmp_path, tx, period="2025-02", version="1"):
    """What the monitor step leaves for finalize, made by hand."""
    folder = tmp_path / f"monitoring-{period}-{version}"
    folder.mkdir()
    new_cutoff = iso_date(period_cutoff(period))
    predictions = state.make_predictions(
        _features(["A", "B", "C"], new_cutoff), [0.2, 0.7, 0.4], version, 0.5
    )
    predictions.to_parquet(folder / "predictions.parquet")
    matured = state.make_predictions(
        _features(["A", "B", "C", "D", "E"], "2025-02-01"), [0.8, 0.9, 0.2, 0.1, 0.6], "1", 0.5
    )
    performance = evaluate_matured(matured, tx, "2025-03-31", 30, period)
    performance.to_parquet(folder / "performance.parquet")
    records = state.performance_records(performance)
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
    return plan_period(zone, champion_covered=None, requested=period)


def test_finalize_commits_the_period_once(tmp_path, tx, zone_with_months):
    zone = zone_with_months([2, 3])
    folder, summary = _monitoring_dir(tmp_path, tx)
    plan = _plan(zone, "2025-02")
    made = decision.decide(decision.Signals.from_summary(summary), decision.Policy()).to_dict()
    run = {"pipeline": "churn-retraining", "pipeline_run_id": "p1", "run_tag": "t1"}
    result = finalize.finalize(
        zone=zone,
        plan=plan,
        monitoring_dir=str(folder),
        decision=made,
        registration=None,
        run_info=run,
    )
    assert result["status"] == "succeeded" and result["champion_after"] == "1"
    assert [a["kind"] for a in result["alerts"]] == ["degradation", "drift"]
    assert state.read_json(zone, state.alerts_key("2025-02")) == result["alerts"]
    assert state.read_json(zone, state.period_key("2025-02"))["period"] == "2025-02"
    assert state.read_json(zone, state.run_key("t1"))["status"] == "succeeded"
    assert [p.period for p in ledger.pending_partitions(zone)] == ["2025-03"]
    assert len(state.read_predictions(zone)) == 3
    assert len(state.read_performance(zone)) == 1
    # finalizing the same period again (a retried task) duplicates nothing
    finalize.finalize(
        zone=zone,
        plan=plan,
        monitoring_dir=str(folder),
        decision=made,
        registration=None,
        run_info=run,
    )
    assert len(state.read_predictions(zone)) == 3
    assert len(state.read_performance(zone)) == 1
    assert len(ledger.read_ledger(zone)[0]) == 1


def test_a_failure_inside_finalize_leaves_the_ledger_alone(
    tmp_path, tx, zone_with_months, monkeypatch
):
    zone = zone_with_months([2])
    folder, _ = _monitoring_dir(tmp_path, tx)
    plan = _plan(zone, "2025-02")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(finalize, "write_json", broken)
    with pytest.raises(OSError, match="disk full"):
        finalize.finalize(
            zone=zone,
            plan=plan,
            monitoring_dir=str(folder),
            decision={"retrain": False, "reasons": []},
            registration=None,
            run_info={"run_tag": "t"},
        )
    assert [p.period for p in ledger.pending_partitions(zone)] == ["2025-02"]
    assert plan_period(zone, None) == plan


def test_skips_are_recorded(zone_with_months):
    zone = zone_with_months([])
    plan = plan_period(zone, champion_covered="2025-04")
    record = finalize.record_skip(zone, plan, {"run_tag": "t2", "pipeline": "p"})
    assert record["status"] == "skipped" and record["reason"] == "no new data"
    assert state.read_json(zone, state.run_key("t2")) == record
    assert state.read_json(zone, state.LAST_SKIP_KEY) == record


def _commit(zone, tmp_path, tx, run_tag="t1"):
    folder, _ = _monitoring_dir(tmp_path, tx)
    plan = _plan(zone, "2025-02")
    return plan, lambda: finalize.finalize(
        zone=zone,
        plan=plan,
        monitoring_dir=str(folder),
        decision={"retrain": False, "reasons": []},
        registration=None,
        run_info={"pipeline": "churn-retraining", "run_tag": run_tag},
    )


def test_a_run_that_crashes_at_the_commit_leaves_its_period_pending(tmp_path, tx, zone_with_months):
    zone = zone_with_months([2, 3])
    plan, commit = _commit(zone, tmp_path, tx)
    # a directory where the ledger goes: the real write at the commit point fails
    blocker = tmp_path / "zone" / ledger.LEDGER_KEY
    blocker.mkdir(parents=True)
    with pytest.raises(IsADirectoryError):
        commit()
    assert state.read_json(zone, state.period_key("2025-02"))["status"] == "succeeded"
    assert iso_date(period_cutoff("2025-02")) in state.prediction_index(zone)
    assert state.read_json(zone, state.run_key("t1")) is None
    blocker.rmdir()
    retry = plan_period(zone, champion_covered=None)
    assert retry.has_new and retry.period == "2025-02" and retry.partitions == plan.partitions
    state.refuse_reprocessing(zone, retry)  # not committed: the retry redoes it
    commit()
    assert [p.period for p in ledger.pending_partitions(zone)] == ["2025-03"]


def test_a_lost_ledger_does_not_reprocess_a_committed_period(tmp_path, tx, zone_with_months):
    zone = zone_with_months([2, 3])
    _, commit = _commit(zone, tmp_path, tx)
    commit()
    predictions_before = state.read_predictions(zone)
    (tmp_path / "zone" / ledger.LEDGER_KEY).unlink()
    again = plan_period(zone, champion_covered=None)
    assert again.period == "2025-02"  # the ledger alone no longer knows it was done
    with pytest.raises(ledger.LedgerError) as excinfo:
        state.refuse_reprocessing(zone, again)
    message = str(excinfo.value)
    assert "period 2025-02 was already processed by run t1" in message
    assert f"{tmp_path / 'zone'}/state/ledger.json does not list it" in message
    assert "--reprocess" in message
    pd.testing.assert_frame_equal(state.read_predictions(zone), predictions_before)
    # the next period, never committed, is not refused
    state.refuse_reprocessing(zone, plan_period(zone, None, requested="2025-03"))
