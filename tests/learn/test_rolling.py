"""Rolling time-series validation folds: what scores a hyperparameter setting."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from churn_kfp.core import columns  # noqa: E402
from churn_kfp.learn import training  # noqa: E402
from churn_kfp.learn.metrics import safe_roc_auc  # noqa: E402


def make_table(cutoffs, splits, seed=0, n=300):
    rng = np.random.default_rng(seed)
    frames = []
    for cutoff, split in zip(cutoffs, splits, strict=True):
        signal = rng.normal(size=n)
        frames.append(
            pd.DataFrame(
                {
                    columns.CUSTOMER_ID: [f"c{i}" for i in range(n)],
                    columns.CUTOFF: pd.Timestamp(cutoff),
                    columns.SPLIT: split,
                    columns.LABEL: (signal + rng.normal(size=n) > 0).astype(int),
                    "signal": signal,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def cutoffs_of(frame):
    return [str(c.date()) for c in sorted(pd.to_datetime(frame[columns.CUTOFF]).unique())]


def test_folds_move_validation_back_and_keep_the_label_gap():
    # a 90-day horizon on a month grid: training ends three months before validation
    table = make_table(
        ["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01", "2024-07-01"],
        ["train", "train", "train", "train", "validation"],
    )
    train, validation, _ = training.split_frames(table)
    folds = training.rolling_folds(train, validation, n_folds=3)
    assert [(cutoffs_of(fit), cutoffs_of(held)) for fit, held in folds] == [
        (["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"], ["2024-07-01"]),
        (["2024-01-01"], ["2024-04-01"]),  # fits end three months before 04-01
    ]  # 03-01 has nothing three months before it: no third fold
    assert training.rolling_folds(train, validation, n_folds=1) == folds[:1]


def test_the_setting_is_scored_by_the_mean_over_the_folds():
    table = make_table(
        ["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"],
        ["train", "train", "train", "validation"],
    )
    candidate = training.train_candidate(table, "logistic_regression", n_iter=1, n_folds=3)
    (result,) = candidate.search_results
    assert candidate.n_folds == 3 and len(result["fold_scores"]) == 3
    # the newest fold is the plan's own split; the others computed independently
    train, validation, _ = training.split_frames(table)
    expected = [candidate.validation_metrics["roc_auc"]]
    for fit, held in training.rolling_folds(train, validation, 3)[1:]:
        model = training.build_pipeline(
            "logistic_regression", ["signal"], [], dict(result["params"]), seed=0
        ).fit(fit[["signal"]], fit[columns.LABEL])
        expected.append(
            safe_roc_auc(held[columns.LABEL], model.predict_proba(held[["signal"]])[:, 1])
        )
    assert result["fold_scores"] == pytest.approx(expected)
    assert candidate.cv_score == pytest.approx(np.mean(expected))
    assert result["score"] == pytest.approx(candidate.cv_score)
