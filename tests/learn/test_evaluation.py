"""Unit tests of churn_kfp.learn.evaluation and churn_kfp.learn.report."""

from __future__ import annotations

import os

# XGBoost's OpenMP threads spin while idle; on shared CI cores that makes 2-thread fits 10x
# slower. Must be set before xgboost is first imported (no effect otherwise).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import dataclasses  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from churn_kfp.core import columns
from churn_kfp.learn import evaluation, report, training

CUTOFFS = ("2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01")
SPLIT_OF = ("train", "train", "validation", "test")


def make_table(n_per_cutoff: int = 600, seed: int = 0, leak: bool = False) -> pd.DataFrame:
    """Churn = XOR(x1 > 0, x2 > 0) with 10% label noise, plus recency, noise, a category."""
    rng = np.random.default_rng(seed)
    frames = []
    for cutoff, split in zip(CUTOFFS, SPLIT_OF, strict=True):
        n = n_per_cutoff
        x1, x2 = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
        y = ((x1 > 0) ^ (x2 > 0)).astype(int)
        flip = rng.random(n) < 0.10
        y[flip] = 1 - y[flip]
        frame = pd.DataFrame(
            {
                columns.CUSTOMER_ID: [f"c{i:05d}" for i in range(n)],
                columns.CUTOFF: pd.Timestamp(cutoff),
                columns.SPLIT: split,
                columns.LABEL: y,
                "x1": x1,
                "x2": x2,
                "recency_days": rng.exponential(30, n) + 20 * y,
                "segment": rng.choice(np.array(["a", "b", None], dtype=object), n),
            }
        )
        if leak:  # a feature computed from the label window: what leakage looks like
            frame["purchases_after_cutoff"] = (1 - y) * rng.integers(1, 4, n) + rng.normal(
                0, 0.01, n
            )
        frame.loc[rng.random(n) < 0.05, "recency_days"] = np.nan
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return make_table()


@pytest.fixture(scope="module")
def candidates(table: pd.DataFrame) -> list[training.TrainedCandidate]:
    return [
        training.train_candidate(table, "xgboost", n_iter=2, seed=0),
        training.train_candidate(table, "logistic_regression", n_iter=2, seed=0),
        training.train_candidate(table, "random_forest", n_iter=1, seed=0),
    ]


@pytest.fixture(scope="module")
def result(table: pd.DataFrame, candidates) -> evaluation.Evaluation:
    return evaluation.evaluate_candidates(table, candidates, churn_window_days=30)


# ------------------------------------------------------------------------------ baselines


def test_recency_baseline_is_monotone_and_nan_safe() -> None:
    frame = pd.DataFrame({"recency_days": [0.0, 5.0, 30.0, 365.0, np.nan, -3.0]})
    scores = evaluation.recency_baseline_scores(frame)
    assert np.all(np.isfinite(scores))
    assert list(scores[:4]) == sorted(scores[:4]) and scores[2] == pytest.approx(0.5)
    assert scores[4] == 1.0 and scores[5] == 0.0
    with pytest.raises(KeyError):
        evaluation.recency_baseline_scores(pd.DataFrame({"x": [1.0]}))


# ------------------------------------------------------------------- evaluate_candidates


def test_evaluation_compares_candidates_and_baselines(result: evaluation.Evaluation) -> None:
    assert set(result.candidates) == {"xgboost", "logistic_regression", "random_forest"}
    assert set(result.baselines) == {"recency_only", "logistic_regression"}
    assert "reused" in result.baselines["logistic_regression"]["description"]
    for res in list(result.candidates.values()) + list(result.baselines.values()):
        for key in ("roc_auc", "pr_auc", "f1", "lift_top_decile"):
            assert res["test"][key] is not None
    by_validation = {n: r["validation"]["roc_auc"] for n, r in result.candidates.items()}
    assert result.champion == max(by_validation, key=by_validation.get)
    assert result.champion != "logistic_regression"  # XOR signal: a linear model cannot win
    assert "validation" in result.champion_reason and "recency-only" in result.champion_reason
    assert result.leakage_warning is None
    assert result.protocol_warnings == []
    champion = result.candidates[result.champion]
    assert result.train_test_gap == pytest.approx(
        champion["train"]["roc_auc"] - champion["test"]["roc_auc"]
    )
    (tn, fp), (fn, tp) = result.confusion_matrix
    assert tn + fp + fn + tp == result.data["rows"]["test"]
    assert set(result.curves) == {"xgboost", "logistic_regression", "random_forest", "recency_only"}


def test_feature_importance_finds_the_signal(result: evaluation.Evaluation) -> None:
    importance = result.feature_importance
    assert importance["model_kind"] in {"gain", "impurity decrease"}  # a tree model won
    top_perm = {row["feature"] for row in importance["permutation"][:2]}
    assert top_perm == {"x1", "x2"}
    assert importance["permutation_rows"] == 600
    names = {row["feature"] for row in importance["model"]}
    assert {"x1", "x2", "recency_days"} <= names  # prefixes stripped
    assert any(name.startswith("segment_") for name in names)


def test_champion_is_chosen_on_validation_not_test(table: pd.DataFrame, candidates) -> None:
    xgb, logreg = candidates[0], candidates[1]
    # The LR candidate claims a better validation score than XGBoost; on test XGBoost wins.
    flattering = dict(logreg.validation_metrics, roc_auc=0.99)
    fake = dataclasses.replace(logreg, validation_metrics=flattering, cv_score=0.99)
    result = evaluation.evaluate_candidates(table, [xgb, fake], permutation_repeats=1)
    assert result.candidates["xgboost"]["test"]["roc_auc"] > (
        result.candidates["logistic_regression"]["test"]["roc_auc"] + 0.1
    )
    assert result.champion == "logistic_regression"
    assert result.feature_importance["model_kind"].startswith("|coefficient|")


def test_lr_baseline_is_fitted_when_not_a_candidate(table: pd.DataFrame, candidates) -> None:
    result = evaluation.evaluate_candidates(table, [candidates[0]], permutation_repeats=1)
    assert "default parameters" in result.baselines["logistic_regression"]["description"]
    assert "baseline_logistic_regression" in result.curves
    no_recency = table.drop(columns=["recency_days"])
    cand = training.train_candidate(no_recency, "logistic_regression", n_iter=1)
    result = evaluation.evaluate_candidates(no_recency, [cand], permutation_repeats=1)
    assert "recency_only" not in result.baselines


def test_leakage_warning(tmp_path) -> None:
    leaky = make_table(n_per_cutoff=400, seed=1, leak=True)
    cand = training.fit_candidate(leaky, "logistic_regression")
    result = evaluation.evaluate_candidates(leaky, [cand], permutation_repeats=1)
    assert result.candidates["logistic_regression"]["test"]["roc_auc"] > evaluation.LEAKAGE_AUC
    assert result.leakage_warning is not None and "logistic_regression" in result.leakage_warning
    page = report.render_report(result.to_dict(), tmp_path).read_text()
    assert "Possible leakage" in page


def test_split_checks() -> None:
    table = pd.DataFrame(
        {
            columns.CUTOFF: pd.to_datetime(["2024-01-01", "2024-02-15", "2024-03-01"]),
            columns.SPLIT: ["train", "validation", "test"],
        }
    )
    assert evaluation.check_split(table, churn_window_days=14) == []
    problems = evaluation.check_split(table, churn_window_days=30)
    assert len(problems) == 1 and "overlap" in problems[0]
    swapped = table.assign(**{columns.SPLIT: ["test", "validation", "train"]})
    assert len(evaluation.check_split(swapped)) == 2


def test_to_dict_is_json_serialisable(result: evaluation.Evaluation) -> None:
    data = result.to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text)["champion"] == result.champion
    assert set(data) == {
        "protocol",
        "selection_metric",
        "champion",
        "champion_reason",
        "candidates",
        "baselines",
        "leakage_auc",
        "leakage_warning",
        "train_test_gap",
        "feature_importance",
        "confusion_matrix",
        "roc_curve",
        "curves",
        "calibration",
        "data",
        "protocol_warnings",
    }
    assert data["data"]["cutoffs"]["test"] == ["2024-04-01"]
    assert "Time-based split" in data["protocol"]


# ------------------------------------------------------------------------------- report


def test_report_renders(result: evaluation.Evaluation, tmp_path) -> None:
    path = report.render_report(
        result.to_dict(), tmp_path / "out", extra={"data_range": "2024-01-01 .. 2024-05-01"}
    )
    page = path.read_text()
    assert path.name == "report.html"
    for name in ("xgboost", "logistic_regression", "random_forest", "recency_only"):
        assert name in page
    assert page.count("data:image/png;base64,") == 5
    for png in ("roc.png", "pr.png", "confusion.png", "feature_importance.png", "calibration.png"):
        assert (tmp_path / "out" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "2024-01-01 .. 2024-05-01" in page and "Evaluation protocol" in page
    assert "Possible leakage" not in page
