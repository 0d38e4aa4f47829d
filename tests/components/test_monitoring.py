"""Components of the retraining loop, chained as one period runs them, on real MLflow.

The story: a champion trained on data through January 2025 (registered by the
``register-model`` component); monthly sales partitions from October 2024 to April 2025 in
the landing zone. The next period is February (the first month after the champion's data):
its new cutoff is 2025-03-01, and the previous cutoff, 2025-02-01, has matured (28-day
horizon) without stored predictions, so the champion scores it too (backfill) and is judged
on it. The expectations (eligible customers, realised labels, F1) come from the purchase
log directly.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kfp import dsl
from mlflow import MlflowClient
from sklearn.metrics import f1_score

from churn_kfp.components.monitoring import (
    check_new_data,
    decide_retraining,
    finalize_period,
    record_skip,
    score_and_monitor,
)
from churn_kfp.components.registration import register_model
from churn_kfp.learn import training
from churn_kfp.learn.features import build_feature_table
from churn_kfp.learn.labels import label_churn
from churn_kfp.learn.plan import CutoffPlan

pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")

MODEL = "components-loop"
HORIZON = 28
ELIGIBILITY = 60
WINDOWS = "30"
START, END = pd.Timestamp("2024-10-01"), pd.Timestamp("2025-04-30")
MONTHS = [str(p) for p in pd.period_range("2024-10", "2025-04", freq="M")]


def purchase_log() -> pd.DataFrame:
    """60 customers: weekly buyers, buyers every 20 days, and weekly buyers who stop.

    The 20 leavers stop one week apart, from 2024-10-10 on (the last ones never stop).
    """
    rows = []
    for i in range(60):
        first = START + pd.Timedelta(days=i % 7)
        kind = i % 3
        last = (
            END if kind != 1 else min(END, pd.Timestamp("2024-10-10") + pd.Timedelta(weeks=i // 3))
        )
        for stamp in pd.date_range(first, last, freq="20D" if kind == 2 else "7D"):
            rows.append((f"c{i:02d}", stamp + pd.Timedelta(hours=10), 10.0 + kind))
    return pd.DataFrame(rows, columns=["customer_id", "timestamp", "amount"])


LOG = purchase_log()


def eligible(cutoff: str) -> list[str]:
    """Customers with a purchase in the ELIGIBILITY days before ``cutoff``."""
    c = pd.Timestamp(cutoff)
    recent = LOG[(LOG["timestamp"] >= c - pd.Timedelta(days=ELIGIBILITY)) & (LOG["timestamp"] < c)]
    return sorted(recent["customer_id"].unique())


def churned(cutoff: str, customers: list[str]) -> dict[str, int]:
    """1 for each customer without a purchase in ``[cutoff, cutoff + HORIZON)``."""
    c = pd.Timestamp(cutoff)
    window = LOG[(LOG["timestamp"] >= c) & (LOG["timestamp"] < c + pd.Timedelta(days=HORIZON))]
    buyers = set(window["customer_id"])
    return {customer: int(customer not in buyers) for customer in customers}


def write_landing_zone(root: Path) -> None:
    for month in MONTHS:
        year, mm = month.split("-")
        key = root / f"raw/sales/year={year}/month={mm}/sales_{year}_{mm}.csv"
        key.parent.mkdir(parents=True, exist_ok=True)
        LOG[LOG["timestamp"].dt.strftime("%Y-%m") == month].to_csv(key, index=False)


@pytest.fixture(scope="module")
def loop(mlflow_env, module_artifacts, tmp_path_factory) -> dict:
    """The landing zone and a champion registered as the training pipeline registers it."""
    zone = tmp_path_factory.mktemp("landing")
    write_landing_zone(zone)
    seen = LOG[LOG["timestamp"] < pd.Timestamp("2025-02-01")]
    plan = CutoffPlan(
        train=[pd.Timestamp("2024-11-01")],
        validation=pd.Timestamp("2024-12-01"),
        test=pd.Timestamp("2025-01-01"),
        horizon_days=HORIZON,
    )
    table = label_churn(
        build_feature_table(seen, plan, windows=(30,), eligibility_days=ELIGIBILITY),
        seen,
        HORIZON,
        "2025-01-31",
    )
    candidate = training.fit_candidate(table, "logistic_regression", seed=0)
    best_model = module_artifacts.output(dsl.Model, "champion")
    training.save_candidate(candidate, best_model.path)
    metrics = {"f1": 0.5, "roc_auc": 0.5}
    evaluation = {
        "champion": "logistic_regression",
        "candidates": {"logistic_regression": {"test": metrics, "validation": metrics}},
    }
    quality = {"transactions": {"date_range": ["2024-10-01T10:00:00", "2025-01-31T10:00:00"]}}
    result = register_model.python_func(
        best_model=best_model,
        evaluation=module_artifacts.file(dsl.Artifact, "evaluation", json.dumps(evaluation)),
        labelled=module_artifacts.dataset("labelled", table),
        quality_report=module_artifacts.file(dsl.Artifact, "quality", json.dumps(quality)),
        cutoff_plan=module_artifacts.file(dsl.Artifact, "plan", json.dumps(plan.to_dict())),
        report=module_artifacts.file(dsl.HTML, "report", "<html></html>"),
        tracking_uri="",
        model_name=MODEL,
        pipeline_name="churn-training",
        pipeline_run_id="training-1",
        min_f1=0.0,
        min_roc_auc=0.0,
        max_train_test_gap=1.0,
        promotion_margin=0.0,
    )
    assert result.promoted and result.champion_version == "1"
    return {"zone": zone, "tracking_uri": mlflow_env["MLFLOW_TRACKING_URI"]}


def check(loop, model_name: str = MODEL, period: str = ""):
    return check_new_data.python_func(
        landing_zone=str(loop["zone"]),
        tracking_uri=loop["tracking_uri"],
        model_name=model_name,
        period=period,
    )


@pytest.fixture(scope="module")
def checked(loop):
    return check(loop)


@pytest.fixture(scope="module")
def monitored(loop, checked, module_artifacts) -> dict:
    """``score-and-monitor`` on the data ingested up to the period (February)."""
    ingested = LOG[LOG["timestamp"] < pd.Timestamp("2025-03-01")]
    outputs = {
        "monitoring": module_artifacts.output(dsl.Artifact, "monitoring"),
        "drift_report": module_artifacts.output(dsl.HTML, "drift_report"),
        "monitoring_metrics": module_artifacts.output(dsl.Metrics, "monitoring_metrics"),
    }
    result = score_and_monitor.python_func(
        transactions=module_artifacts.dataset("transactions", ingested),
        customers=module_artifacts.dataset("customers", pd.DataFrame()),
        scored_feedback=module_artifacts.dataset("feedback", pd.DataFrame()),
        plan=checked.plan,
        tracking_uri=loop["tracking_uri"],
        model_name=MODEL,
        landing_zone=str(loop["zone"]),
        horizon_days=HORIZON,
        eligibility_days=ELIGIBILITY,
        windows=WINDOWS,
        drift_columns="",
        **outputs,
    )
    return {"result": result, **outputs}


def decide(summary: str, **overrides):
    policy = {
        "retrain_threshold": 0.8,
        "drift_threshold": 0.3,
        "prediction_drift_triggers": True,
        "retraining_enabled": True,
        "force": False,
    }
    return decide_retraining.python_func(summary=summary, **policy | overrides)


@pytest.fixture(scope="module")
def finalized(loop, checked, monitored) -> dict:
    decision = decide(monitored["result"].summary, retraining_enabled=False)
    summary = finalize_period.python_func(
        monitoring=monitored["monitoring"],
        plan=checked.plan,
        decision=decision.decision,
        registration="",
        landing_zone=str(loop["zone"]),
        tracking_uri=loop["tracking_uri"],
        webhook_url="",
        pipeline_name="churn-retraining",
        pipeline_run_id="retraining-1",
        run_tag="tag-1",
    )
    return json.loads(summary)


# --------------------------------------------------------------------------- check-new-data


def test_the_next_period_is_the_first_month_after_the_champions_data(checked):
    plan = json.loads(checked.plan)
    assert (checked.has_new, checked.period, checked.new_cutoff) == (True, "2025-02", "2025-03-01")
    assert plan["partitions"] == ["raw/sales/year=2025/month=02/sales_2025_02.csv"]
    assert plan["pending_periods"] == ["2025-02", "2025-03", "2025-04"]
    assert plan["last_handled"] == "2025-01"
    # months the champion's data covered are late data, marked along with the period
    assert len(plan["late"]) == 4


def test_a_requested_period_and_a_handled_one(loop):
    april = check(loop, period="2025-04")
    assert (april.has_new, april.period, april.new_cutoff) == (True, "2025-04", "2025-05-01")
    january = check(loop, period="2025-01")
    assert january.has_new is False
    assert json.loads(january.plan)["reason"] == "period 2025-01 was already processed"


def test_no_champion_no_work(loop):
    result = check(loop, model_name="nobody")
    assert result.has_new is False
    assert "no champion of 'nobody' yet" in json.loads(result.plan)["reason"]


# --------------------------------------------------------------------------- score-and-monitor


def test_scores_the_new_cutoff_and_backfills_the_matured_one(monitored):
    folder = Path(monitored["monitoring"].path)
    predictions = pd.read_parquet(folder / "predictions.parquet")
    by_cutoff = {c.date().isoformat(): part for c, part in predictions.groupby("cutoff", sort=True)}
    assert sorted(by_cutoff) == ["2025-02-01", "2025-03-01"]
    assert list(by_cutoff["2025-03-01"]["customer_id"]) == eligible("2025-03-01")
    assert list(by_cutoff["2025-02-01"]["customer_id"]) == eligible("2025-02-01")
    assert set(by_cutoff["2025-02-01"]["source"]) == {"backfill"}
    assert set(predictions["model_version"]) == {"1"}

    new = by_cutoff["2025-03-01"]
    metrics = monitored["monitoring_metrics"].metadata
    assert metrics["scored_customers"] == len(eligible("2025-03-01"))
    assert metrics["predicted_churn_rate"] == pytest.approx(new["prediction"].mean())

    # judged against the labels realised in [2025-02-01, 2025-03-01)
    backfill = by_cutoff["2025-02-01"]
    truth = churned("2025-02-01", list(backfill["customer_id"]))
    y = np.array([truth[c] for c in backfill["customer_id"]])
    assert 0 < y.sum() < len(y)
    expected_f1 = f1_score(y, backfill["prediction"].to_numpy(), zero_division=0)
    assert metrics["latest_matured_f1"] == pytest.approx(expected_f1)
    result = monitored["result"]
    assert result.latest_f1 == pytest.approx(expected_f1)
    assert result.champion_version == "1"

    summary = json.loads(result.summary)
    assert summary["backfilled"] == "2025-02-01"
    assert summary["latest_matured"]["cutoff"] == "2025-02-01"
    assert 0.0 <= result.drift_share <= 1.0  # the reference logged at registration
    assert metrics["drift_share"] == pytest.approx(result.drift_share)
    assert "<html" in Path(monitored["drift_report"].path).read_text().lower()
    assert monitored["monitoring"].metadata == {"period": "2025-02", "new_cutoff": "2025-03-01"}


# --------------------------------------------------------------------------- decide-retraining


def test_decision_follows_the_policy():
    degraded = json.dumps({"latest_matured": {"f1": 0.4, "cutoff": "2025-02-01"}, "drift": {}})
    healthy = json.dumps({"latest_matured": {"f1": 0.9}, "drift": {}})

    retrain = decide(degraded)
    assert retrain.retrain is True
    assert [r["kind"] for r in json.loads(retrain.decision)["reasons"]] == ["degradation"]
    frozen = decide(degraded, retraining_enabled=False)
    assert frozen.retrain is False and json.loads(frozen.decision)["would_retrain"] is True
    assert decide(healthy).retrain is False
    assert decide(healthy, force=True).retrain is True


# --------------------------------------------------------------------------- finalize-period


def test_finalize_commits_the_period_and_the_ledger_moves_on(loop, monitored, finalized):
    zone = loop["zone"]
    state = zone / "state"
    assert finalized["status"] == "succeeded" and finalized["period"] == "2025-02"
    assert finalized["champion_before"] == finalized["champion_after"] == "1"
    stored = sorted(str(p.relative_to(state)) for p in (state / "predictions").rglob("*.parquet"))
    assert stored == [
        "predictions/cutoff=2025-02-01/model=1.parquet",
        "predictions/cutoff=2025-03-01/model=1.parquet",
    ]
    performance = pd.read_parquet(state / "performance.parquet")
    row = performance[performance["cutoff"] == pd.Timestamp("2025-02-01")]
    assert row["f1"].item() == pytest.approx(monitored["result"].latest_f1)
    period = json.loads((state / "periods/2025-02.json").read_text())
    assert period["pipeline_run_id"] == "retraining-1"
    assert json.loads((state / "runs/tag-1.json").read_text())["status"] == "succeeded"
    ledger = json.loads((state / "ledger.json").read_text())["partitions"]
    assert "raw/sales/year=2025/month=02/sales_2025_02.csv" in ledger
    assert len(ledger) == 5  # the period and the 4 late months

    client = MlflowClient(loop["tracking_uri"])
    history = client.get_metric_history(finalized["monitoring_run_id"], "matured_f1")
    assert [(m.step, m.value) for m in history] == [
        (20250201, pytest.approx(monitored["result"].latest_f1))
    ]

    following = check(loop)
    assert (following.period, following.new_cutoff) == ("2025-03", "2025-04-01")


def test_a_lost_ledger_refuses_the_committed_period_unless_reprocess(loop, finalized):
    from churn_kfp.loop.ledger import LedgerError

    ledger = loop["zone"] / "state/ledger.json"
    aside = ledger.with_name("ledger.json.aside")
    ledger.rename(aside)
    try:
        with pytest.raises(LedgerError, match="period 2025-02 was already processed by run tag-1"):
            check(loop)
        again = check_new_data.python_func(
            landing_zone=str(loop["zone"]),
            tracking_uri=loop["tracking_uri"],
            model_name=MODEL,
            period="",
            reprocess=True,
        )
        assert (again.has_new, again.period) == (True, "2025-02")
    finally:
        aside.rename(ledger)


# --------------------------------------------------------------------------- record-skip


def test_record_skip_writes_the_skip_and_the_run_record(tmp_path):
    plan = {"has_new": False, "reason": "no new data", "last_handled": "2025-04"}

    record = json.loads(
        record_skip.python_func(
            plan=json.dumps(plan),
            landing_zone=str(tmp_path),
            pipeline_name="churn-retraining",
            pipeline_run_id="retraining-2",
            run_tag="tag-2",
        )
    )

    assert record["status"] == "skipped" and record["reason"] == "no new data"
    assert json.loads((tmp_path / "state/last-skip.json").read_text()) == record
    assert json.loads((tmp_path / "state/runs/tag-2.json").read_text()) == record


# --------------------------------------------------------------------------- test hook


@pytest.mark.parametrize(
    ("step", "component"),
    [
        ("check-new-data", check_new_data),
        ("score-and-monitor", score_and_monitor),
        ("decide-retraining", decide_retraining),
        ("finalize-period", finalize_period),
    ],
)
def test_churn_fail_at_stops_a_step_before_it_does_anything(monkeypatch, step, component):
    monkeypatch.setenv("CHURN_FAIL_AT", step)
    parameters = inspect.signature(component.python_func).parameters
    with pytest.raises(RuntimeError, match=f"CHURN_FAIL_AT={step}"):
        component.python_func(**dict.fromkeys(parameters))
