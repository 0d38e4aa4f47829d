"""Unit tests of churn_kfp.learn.training on a synthetic table with a nonlinear (XOR) signal."""

from __future__ import annotations

import os

# XGBoost's OpenMP threads spin while idle; on shared CI cores that makes 2-thread fits 10x
# slower. Must be set before xgboost is first imported (no effect otherwise).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402

from churn_kfp.core import columns
from churn_kfp.learn import training

CUTOFFS = ("2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01")
SPLIT_OF = ("train", "train", "validation", "test")


def make_table(n_per_cutoff: int = 700, seed: int = 0) -> pd.DataFrame:
    """Churn = XOR(x1 > 0, x2 > 0) with 10% label noise; x1/x2 alone carry no signal."""
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
                "noise": rng.normal(size=n),
                "segment": rng.choice(np.array(["a", "b", "c", None], dtype=object), n),
            }
        )
        frame.loc[rng.random(n) < 0.05, "noise"] = np.nan
        frame.loc[rng.random(n) < 0.05, "segment"] = np.nan
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return make_table()


@pytest.fixture(scope="module")
def xgb(table: pd.DataFrame) -> training.TrainedCandidate:
    return training.train_candidate(table, "xgboost", n_iter=3, seed=0)


@pytest.fixture(scope="module")
def logreg(table: pd.DataFrame) -> training.TrainedCandidate:
    return training.train_candidate(table, "logistic_regression", n_iter=2, seed=0)


def test_feature_types(table: pd.DataFrame) -> None:
    numeric, categorical = training.feature_types(table)
    assert numeric == ["x1", "x2", "recency_days", "noise"]
    assert categorical == ["segment"]


@pytest.mark.parametrize("model_type", training.CANDIDATES)
def test_pipeline_handles_missing_and_unseen_values(table: pd.DataFrame, model_type: str) -> None:
    numeric, categorical = training.feature_types(table)
    train = table[table[columns.SPLIT] == "train"]
    params = {"n_estimators": 20} if model_type != "logistic_regression" else {}
    pipe = training.build_pipeline(model_type, numeric, categorical, params, seed=1)
    pipe.fit(train[numeric + categorical], train[columns.LABEL])
    odd = pd.DataFrame(
        {
            "x1": [np.nan, 0.5, -0.5],
            "x2": [0.1, np.nan, 0.3],
            "recency_days": [np.nan, 10.0, 400.0],
            "noise": [np.nan, np.nan, np.nan],
            "segment": ["never-seen", None, np.nan],
        }
    )
    proba = pipe.predict_proba(odd)[:, 1]
    assert proba.shape == (3,) and np.all((proba >= 0) & (proba <= 1))
    # Extra columns (ids, labels) are ignored; order of columns does not matter.
    assert np.allclose(
        pipe.predict_proba(train.iloc[:5, ::-1])[:, 1], pipe.predict_proba(train.iloc[:5])[:, 1]
    )


def test_pipeline_without_categorical_columns(table: pd.DataFrame) -> None:
    behavioural = table.drop(columns=["segment"])
    candidate = training.train_candidate(behavioural, "logistic_regression", n_iter=1)
    assert candidate.feature_names == (["x1", "x2", "recency_days", "noise"], [])
    assert candidate.predict_proba(behavioural).shape == (len(behavioural),)


def _brute_force_best_f1(y: np.ndarray, proba: np.ndarray) -> float:
    return max(f1_score(y, (proba >= t).astype(int), zero_division=0) for t in np.unique(proba))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tune_threshold_maximises_f1(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    proba = np.round(np.clip(0.3 * y + rng.uniform(0, 0.7, 300), 0, 1), 2)  # with ties
    threshold = training.tune_threshold(y, proba)
    achieved = f1_score(y, (proba >= threshold).astype(int))
    assert achieved == pytest.approx(_brute_force_best_f1(y, proba))


def test_tune_threshold_single_class() -> None:
    assert training.tune_threshold([0, 0, 0], [0.1, 0.2, 0.3]) == 0.5
    assert training.tune_threshold([1, 1], [0.4, 0.9]) == pytest.approx(0.4)


def test_xgboost_beats_logistic_regression_on_interaction(
    table: pd.DataFrame, xgb: training.TrainedCandidate, logreg: training.TrainedCandidate
) -> None:
    assert xgb.validation_metrics["roc_auc"] > 0.8
    assert logreg.validation_metrics["roc_auc"] < 0.75
    test = table[table[columns.SPLIT] == "test"]
    from sklearn.metrics import roc_auc_score

    y = test[columns.LABEL]
    assert (
        roc_auc_score(y, xgb.predict_proba(test))
        > roc_auc_score(y, logreg.predict_proba(test)) + 0.1
    )


def test_search_threshold_and_refit_bookkeeping(
    table: pd.DataFrame, xgb: training.TrainedCandidate
) -> None:
    space = training.search_space("xgboost")
    assert len(xgb.search_results) == 3
    for result in xgb.search_results:
        assert all(result["params"][k] in space[k] for k in space)
    best = max(xgb.search_results, key=lambda r: r["score"])
    assert xgb.params == best["params"]
    assert xgb.validation_metrics["roc_auc"] == pytest.approx(best["score"])
    assert xgb.validation_metrics["threshold"] == xgb.threshold
    assert xgb.refit_on == "train+validation"
    assert xgb.n_rows == {"train": 1400, "validation": 700, "fit": 2100}
    # scale_pos_weight follows the class ratio of the fit rows, not a search parameter.
    fit = table[table[columns.SPLIT].isin(["train", "validation"])]
    ratio = (fit[columns.LABEL] == 0).sum() / fit[columns.LABEL].sum()
    assert xgb.pipeline[-1].get_params()["scale_pos_weight"] == pytest.approx(ratio)
    assert "scale_pos_weight" not in xgb.params


def test_without_refit_threshold_is_tuned_on_the_fitted_model(table: pd.DataFrame) -> None:
    candidate = training.train_candidate(table, "random_forest", n_iter=1, refit=False)
    validation = table[table[columns.SPLIT] == "validation"]
    expected = training.tune_threshold(
        validation[columns.LABEL], candidate.predict_proba(validation)
    )
    assert candidate.refit_on == "train"
    assert candidate.threshold == pytest.approx(expected)


def test_time_budget_stops_after_first_fit(table: pd.DataFrame) -> None:
    candidate = training.train_candidate(table, "xgboost", n_iter=5, time_budget_s=0.0)
    assert len(candidate.search_results) == 1


def test_missing_validation_split_uses_latest_train_cutoff(table: pd.DataFrame) -> None:
    no_val = table[table[columns.SPLIT] != "validation"]
    train, validation, source = training.split_frames(no_val)
    assert source == "latest train cutoff"
    assert set(validation[columns.CUTOFF]) == {pd.Timestamp("2024-02-01")}
    assert set(train[columns.CUTOFF]) == {pd.Timestamp("2024-01-01")}


def test_single_class_training_data_is_rejected(table: pd.DataFrame) -> None:
    flat = table.assign(**{columns.LABEL: 0})
    with pytest.raises(ValueError, match="single class"):
        training.train_candidate(flat, "logistic_regression", n_iter=1)


def test_xgboost_search_keeps_a_small_boosting_budget() -> None:
    space = training.search_space("xgboost")
    budget = max(space["learning_rate"]) * max(space["n_estimators"])
    assert budget <= training.MAX_BOOSTING_BUDGET
    default = training.default_params("xgboost")
    assert default["learning_rate"] * default["n_estimators"] <= training.MAX_BOOSTING_BUDGET


def test_unknown_model_type() -> None:
    with pytest.raises(ValueError, match="unknown model type"):
        training.search_space("svm")


def test_save_load_round_trip(
    table: pd.DataFrame, xgb: training.TrainedCandidate, tmp_path
) -> None:
    training.save_candidate(xgb, tmp_path / "model")
    loaded = training.load_candidate(tmp_path / "model")
    assert np.array_equal(loaded.predict_proba(table), xgb.predict_proba(table))
    assert loaded.threshold == xgb.threshold
    assert loaded.params == xgb.params
    assert loaded.feature_names == xgb.feature_names
    assert loaded.validation_metrics == xgb.validation_metrics
    assert loaded.search_results == xgb.search_results
    assert (loaded.model_type, loaded.refit_on, loaded.n_rows) == (
        xgb.model_type,
        xgb.refit_on,
        xgb.n_rows,
    )


def test_skops_trusted_types_cover_every_candidate(table: pd.DataFrame) -> None:
    import skops.io

    numeric, categorical = training.feature_types(table)
    train = table[table[columns.SPLIT] == "train"]
    for model_type in training.CANDIDATES:
        params = {"n_estimators": 5} if model_type != "logistic_regression" else {}
        pipe = training.build_pipeline(model_type, numeric, categorical, params)
        pipe.fit(train, train[columns.LABEL])
        untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(pipe))
        assert set(untrusted) <= set(training.SKOPS_TRUSTED_TYPES), model_type


def test_pipeline_survives_mlflow_skops(
    table: pd.DataFrame, xgb: training.TrainedCandidate, tmp_path, monkeypatch
) -> None:
    import mlflow.sklearn
    import yaml

    path = tmp_path / "mlflow-model"
    mlflow.sklearn.save_model(
        xgb.pipeline,
        str(path),
        skops_trusted_types=training.SKOPS_TRUSTED_TYPES,
        # Explicit pins: inferring requirements reloads the model in a subprocess (~10 s).
        pip_requirements=["scikit-learn==1.9.1", "xgboost==3.2.0", "skops"],
    )
    flavor = yaml.safe_load((path / "MLmodel").read_text())["flavors"]["sklearn"]
    assert flavor["serialization_format"] == "skops"
    # The project's loader (never MLflow's, which would follow any format in MLmodel).
    from churn_kfp.registry import loading

    monkeypatch.delenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", raising=False)
    loaded = loading.load_sklearn(path, model_name="m", version="1")
    frame = table[xgb.input_columns]
    assert np.array_equal(loaded.predict_proba(frame), xgb.pipeline.predict_proba(frame))
    # The pyfunc flavour (what MLServer's runtime calls) loads through skops as well.
    served = loading.load_pyfunc(path, model_name="m", version="1").predict(frame.head(50))
    assert np.array_equal(np.asarray(served), xgb.pipeline.predict(frame.head(50)))
