"""End-to-end training-pipeline wall time on the default data.

Baseline, measured in the same run: the same domain steps called one after another in
this process (no kfp.local, no per-step process start or artifact passing), so the ratio
is the cost of running every stage as its own KFP component.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

DEFAULTS = {"n_customers": 5000, "n_months": 6, "seed": 42, "n_iter": 6, "n_train_cutoffs": 3}


def _settings(home: Path):
    from churn_kfp.core.config import Settings

    return Settings.from_env({"CHURN_HOME": str(home)})


def pipeline_run(home: Path, size: dict) -> dict:
    """Runs ``churn run``'s code path (kfp.local) and returns its timing and scores."""
    from churn_kfp.runs.training import run_training

    for var in ("CHURN_LANDING_ZONE", "MLFLOW_TRACKING_URI", "CHURN_ARTIFACT_ROOT"):
        os.environ.pop(var, None)
    os.environ["CHURN_HOME"] = str(home)
    args = {
        "n_customers": size["n_customers"],
        "n_months": size["n_months"],
        "seed": size["seed"],
        "n_iter": size["n_iter"],
        "n_train_cutoffs": size["n_train_cutoffs"],
    }
    started = time.perf_counter()
    summary = run_training(args, _settings(home), quiet=True)
    return {
        "wall_s": round(time.perf_counter() - started, 2),
        "roc_auc": summary["metrics"]["roc_auc"],
        "chosen_model": summary["chosen_model"],
    }


def in_process_run(home: Path, size: dict) -> dict:
    """The same stages as plain function calls in one process."""
    from churn_kfp.core.columns import SPLIT, TEST, feature_columns
    from churn_kfp.data import datagen, sentiment, validation
    from churn_kfp.data.storage import LocalLandingZone
    from churn_kfp.learn import evaluation, features, labels, training
    from churn_kfp.learn.plan import plan_cutoffs
    from churn_kfp.registry import register as registry

    settings = _settings(home)
    started = time.perf_counter()
    zone = LocalLandingZone(settings.landing_zone)
    datagen.generate(zone, n_customers=size["n_customers"], n_months=size["n_months"], seed=42)
    data = validation.ingest(zone)
    tx = data.transactions
    scored = sentiment.score_feedback(data.feedback)
    plan = plan_cutoffs(
        tx["timestamp"].min(), tx["timestamp"].max(), n_train_cutoffs=size["n_train_cutoffs"]
    )
    table = features.build_feature_table(tx, plan, customers=data.customers, feedback=scored)
    table = labels.label_churn(table, tx, plan.horizon_days, tx["timestamp"].max())
    candidates = [
        training.train_candidate(table, name, n_iter=size["n_iter"], seed=size["seed"])
        for name in training.CANDIDATES
    ]
    result = evaluation.evaluate_candidates(table, candidates).to_dict()
    chosen = next(c for c in candidates if c.model_type == result["champion"])
    registry.connect(settings.tracking_uri, settings.artifact_root)
    test = table[table[SPLIT] == TEST]
    registry.register_and_decide(
        chosen.pipeline,
        test_frame=test,
        test_metrics=result["candidates"][result["champion"]]["test"],
        train_test_gap=result.get("train_test_gap"),
        threshold=chosen.threshold,
        input_example=test[feature_columns(test.columns)].head(5),
        params={},
        metrics={},
        artifacts={},
        lineage={"source": "bench"},
        skops_trusted_types=training.SKOPS_TRUSTED_TYPES,
    )
    return {"wall_s": round(time.perf_counter() - started, 2), "chosen_model": result["champion"]}


def run(quick: bool = False) -> dict:
    """Measures both paths on the same data size; returns the figures."""
    size = dict(DEFAULTS, n_customers=1500, n_months=5, n_iter=2) if quick else dict(DEFAULTS)
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = pipeline_run(Path(tmp) / "pipeline", size)
        baseline = in_process_run(Path(tmp) / "in-process", size)
    return {
        "size": size,
        "training_pipeline_kfp_local": pipeline,
        "baseline_in_process": baseline,
        "orchestration_ratio": round(pipeline["wall_s"] / baseline["wall_s"], 2),
        "target_s": 90,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data (smoke check)")
    parser.add_argument("--out", default="bench/results/pipeline.json", help="JSON output")
    options = parser.parse_args()
    figures = run(quick=options.quick)
    Path(options.out).parent.mkdir(parents=True, exist_ok=True)
    Path(options.out).write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
