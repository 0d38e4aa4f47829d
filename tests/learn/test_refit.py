"""The held-out fit and the served refit: honest test metrics, a model fit on the newest labels."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from churn_kfp.core import columns  # noqa: E402
from churn_kfp.learn import evaluation, training, weights  # noqa: E402
from churn_kfp.learn.training import tune_threshold  # noqa: E402

CUTOFFS = ("2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01", "2024-05-01")
SPLIT_OF = ("train", "train", "validation", "refit", "test")


def make_table(seed: int = 0, n: int = 600) -> pd.DataFrame:
    """Churn follows ``signal`` (with noise); the test cutoff is the newest."""
    rng = np.random.default_rng(seed)
    frames = []
    for cutoff, split in zip(CUTOFFS, SPLIT_OF, strict=True):
        signal = rng.normal(size=n)
        y = (signal + rng.normal(scale=0.8, size=n) > 0.5).astype(int)
        frames.append(
            pd.DataFrame(
                {
                    columns.CUSTOMER_ID: [f"c{i:04d}" for i in range(n)],
                    columns.CUTOFF: pd.Timestamp(cutoff),
                    columns.SPLIT: split,
                    columns.LABEL: y,
                    "signal": signal,
                    "recency_days": rng.exponential(30, n),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def with_scrambled_labels(table: pd.DataFrame, cutoff: str, seed: int = 9) -> pd.DataFrame:
    changed = table.copy()
    rows = pd.to_datetime(changed[columns.CUTOFF]) == pd.Timestamp(cutoff)
    rng = np.random.default_rng(seed)
    changed.loc[rows, columns.LABEL] = rng.permutation(changed.loc[rows, columns.LABEL].to_numpy())
    return changed


@pytest.mark.parametrize("model_type", ["logistic_regression", "xgboost"])
def test_the_held_out_fit_never_sees_the_test_or_refit_labels(model_type):
    table = make_table()
    changed = with_scrambled_labels(with_scrambled_labels(table, "2024-05-01"), "2024-04-01")
    assert not changed[columns.LABEL].equals(table[columns.LABEL])
    test = table[table[columns.SPLIT] == columns.TEST]
    first = training.train_candidate(table, model_type, n_iter=2, seed=0)
    second = training.train_candidate(changed, model_type, n_iter=2, seed=0)
    # the same fit, threshold and scores whatever the labels of the test and refit cutoffs
    assert first.threshold == second.threshold and first.params == second.params
    np.testing.assert_array_equal(first.predict_proba(test), second.predict_proba(test))
    # ... while the served refit learns them
    served_first = training.refit_on_matured(first, table)
    served_second = training.refit_on_matured(second, changed)
    assert not np.array_equal(served_first.predict_proba(test), served_second.predict_proba(test))


def test_the_served_model_is_refit_on_every_matured_row_with_a_fresh_threshold():
    table = make_table(seed=1)
    held_out = training.train_candidate(table, "logistic_regression", n_iter=1, seed=0)
    served = training.refit_on_matured(held_out, table)
    assert served.refit_on == training.SERVED_REFIT_ON
    assert served.refit_through == "2024-05-01"
    assert served.n_rows["fit"] == len(table)
    assert served.params == held_out.params and served.model_type == held_out.model_type
    newest = table[table[columns.CUTOFF] == pd.Timestamp("2024-05-01")]
    # the threshold maximises F1 of the held-out fit's scores on the newest cutoff
    expected = tune_threshold(newest[columns.LABEL], held_out.predict_proba(newest))
    assert served.threshold == pytest.approx(expected)
    # fit on all rows: the same model as an independent fit of those rows
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = table[["signal", "recency_days"]].to_numpy()
    scaled = StandardScaler().fit(x)
    reference = LogisticRegression(
        C=held_out.params["C"], class_weight="balanced", max_iter=2000, random_state=0
    ).fit(scaled.transform(x), table[columns.LABEL])
    np.testing.assert_allclose(
        served.predict_proba(newest),
        reference.predict_proba(scaled.transform(newest[["signal", "recency_days"]].to_numpy()))[
            :, 1
        ],
        rtol=1e-6,
    )


def test_saved_served_model_keeps_its_refit_through(tmp_path):
    table = make_table(seed=2)
    held_out = training.train_candidate(table, "logistic_regression", n_iter=1, seed=0)
    served = training.refit_on_matured(held_out, table)
    loaded = training.load_candidate(training.save_candidate(served, tmp_path / "served"))
    assert (loaded.refit_on, loaded.refit_through) == (served.refit_on, served.refit_through)


def test_served_model_summary_names_both_fits():
    table = make_table(seed=3)
    held_out = training.train_candidate(table, "logistic_regression", n_iter=1, seed=0)
    served = training.refit_on_matured(held_out, table)
    summary = evaluation.served_model_summary(served, held_out, table)
    assert summary["cutoffs"] == list(CUTOFFS)
    assert summary["held_out_cutoffs"] == ["2024-01-01", "2024-02-01", "2024-03-01"]
    assert summary["refit_through"] == "2024-05-01" and summary["rows"] == len(table)
    assert summary["threshold"] == served.threshold
    assert summary["held_out_threshold"] == held_out.threshold
    # and the evaluation's test metrics are the held-out fit's
    result = evaluation.evaluate_candidates(table, [held_out])
    test = table[table[columns.SPLIT] == columns.TEST]
    assert result.candidates["logistic_regression"]["test"]["roc_auc"] == pytest.approx(
        roc_auc_score(test[columns.LABEL], held_out.predict_proba(test))
    )


# Recency weighting: newer cutoffs weigh more in the held-out fit, the folds and the refit.


def test_weights_halve_every_half_life_counted_in_cutoffs_back_from_the_newest():
    cutoffs = pd.Series(pd.to_datetime(["2024-03-01", "2024-01-01", "2024-02-01", "2024-03-01"]))
    w = weights.recency_weights(cutoffs, half_life=1)
    assert w.mean() == pytest.approx(1.0)
    assert w[0] == pytest.approx(w[3])
    assert w[0] / w[2] == pytest.approx(2.0)
    assert w[2] / w[1] == pytest.approx(2.0)
    slower = weights.recency_weights(cutoffs, half_life=2)
    assert slower[0] / slower[2] == pytest.approx(np.sqrt(2.0))
    # uneven gaps between cutoffs do not matter: the age is a rank, not days
    uneven = pd.Series(pd.to_datetime(["2024-12-01", "2024-01-01", "2024-02-01", "2024-12-01"]))
    np.testing.assert_allclose(weights.recency_weights(uneven, 1), w)
    np.testing.assert_array_equal(weights.recency_weights(cutoffs, 0), np.ones(4))


def concept_shift_table(n: int = 500, seed: int = 0) -> pd.DataFrame:
    """:func:`make_table` with the newest (test) cutoff's labels flipped: a new concept."""
    table = make_table(seed=seed, n=n)
    newest = table[columns.SPLIT] == columns.TEST
    table.loc[newest, columns.LABEL] = 1 - table.loc[newest, columns.LABEL]
    return table


def new_concept_auc(candidate: training.TrainedCandidate, seed: int = 5) -> float:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {"signal": rng.normal(size=2000), "recency_days": rng.exponential(30, 2000)}
    )
    y = (frame["signal"] + rng.normal(scale=0.8, size=2000) <= 0.5).astype(int)
    return float(roc_auc_score(y, candidate.predict_proba(frame)))


@pytest.mark.parametrize("model_type", ["logistic_regression", "xgboost"])
def test_a_short_half_life_lets_the_served_refit_follow_the_newest_labels(model_type):
    table = concept_shift_table()
    aucs = {}
    for half_life in (0.0, 0.25):
        held_out = training.train_candidate(
            table, model_type, n_iter=1, seed=0, recency_half_life=half_life
        )
        assert held_out.recency_half_life == half_life
        aucs[half_life] = new_concept_auc(training.refit_on_matured(held_out, table))
    # four cutoffs of the old concept outvote one of the new when all weigh the same ...
    assert aucs[0.0] < 0.4
    # ... and lose when each cutoff back weighs 1/16 of the one after it
    assert aucs[0.25] > 0.7


def test_the_half_life_survives_save_and_load(tmp_path):
    table = concept_shift_table(n=200)
    held_out = training.train_candidate(
        table, "logistic_regression", n_iter=1, seed=0, recency_half_life=1.5
    )
    loaded = training.load_candidate(training.save_candidate(held_out, tmp_path / "model"))
    assert loaded.recency_half_life == 1.5
