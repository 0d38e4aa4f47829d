"""The lean scoring path gives exactly the probabilities of the pipeline on a DataFrame.

The pipelines are the project's own (:func:`churn_kfp.learn.training.build_pipeline`: every
candidate), fitted on rows with missing values, a column that is always missing in training
(the imputer drops it), a column that is never missing in training (no indicator), rare
categories (grouped as infrequent) and nulls in strings. They are scored on 1 row, many
rows, all-null rows, unseen categories and NaN in every numeric column, and compared
bit-for-bit (``np.array_equal``) with ``predict_proba`` on a DataFrame. Then the runtime
itself (in process, no HTTP) is checked to take the lean path and to fall back to the whole
pipeline for a model that does not compile.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn_kfp.learn import training
from churn_kfp.serving import lean

NUMERIC = ["recency_days", "frequency_30d", "monetary_90d", "always_missing", "never_missing"]
CATEGORICAL = ["gender", "location", "segment"]
FEATURES = NUMERIC + CATEGORICAL
KINDS = {**dict.fromkeys(NUMERIC, "double"), **dict.fromkeys(CATEGORICAL, "string")}
CANDIDATES = ["xgboost", "logistic_regression", "random_forest"]


def make_rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "recency_days": rng.exponential(20, n),
            "frequency_30d": rng.poisson(2, n).astype(float),
            "monetary_90d": rng.gamma(2, 50, n),
            "always_missing": np.full(n, np.nan),
            "never_missing": rng.normal(0, 1, n),
            # "z" is rare (about 0.3 %): below min_frequency, so grouped as infrequent
            "gender": rng.choice(["f", "m", "x", "z"], n, p=[0.5, 0.4, 0.097, 0.003]),
            "location": rng.choice(["north", "south", "east"], n),
            "segment": rng.choice(["bronze", "silver", "gold"], n),
        }
    )
    frame[CATEGORICAL] = frame[CATEGORICAL].astype(object)
    frame.loc[rng.random(n) < 0.1, "monetary_90d"] = np.nan
    frame.loc[rng.random(n) < 0.1, "recency_days"] = np.nan
    frame.loc[rng.random(n) < 0.1, "gender"] = None
    return frame


def fitted(model_type: str) -> Any:
    import warnings

    train = make_rows(1500, seed=1)
    y = train["frequency_30d"].fillna(0) + np.random.default_rng(2).normal(0, 1, 1500) < 2
    pipeline = training.build_pipeline(model_type, NUMERIC, CATEGORICAL, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Skipping features without any observed values"
        pipeline.fit(train[FEATURES], y.astype(int))
    return pipeline


@pytest.fixture(scope="module", params=CANDIDATES)
def pipeline(request):
    return fitted(request.param)


def as_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """What the runtime decodes a V2 request into (float64; object with str/None)."""
    columns: dict[str, np.ndarray] = {}
    for name in FEATURES:
        if KINDS[name] == "double":
            columns[name] = frame[name].to_numpy(dtype=np.float64)
        else:
            values = [None if v is None or v != v else v for v in frame[name]]
            columns[name] = np.array(values, dtype=object)
    return columns


def proba_of_frame(pipeline, frame: pd.DataFrame) -> np.ndarray:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pipeline.predict_proba(frame[FEATURES].reset_index(drop=True))


def edge_rows() -> pd.DataFrame:
    """All-null rows, unseen and rare categories, extreme numbers, NaN where training had none."""
    return pd.DataFrame(
        {
            "recency_days": [np.nan, 0.0, 1e9, -3.5, 12.25],
            "frequency_30d": [np.nan, 0.0, 7.0, 1.0, np.nan],
            "monetary_90d": [np.nan, 1e-12, 5e5, np.nan, 80.0],
            "always_missing": [np.nan, 1.0, np.nan, 2.0, np.nan],
            "never_missing": [np.nan, 0.5, -2.0, np.nan, 1.0],
            "gender": [None, "z", "not seen", "f", None],
            "location": [None, "north", "atlantis", None, "east"],
            "segment": [None, "gold", "", "silver", "platinum"],
        }
    )


@pytest.mark.parametrize("rows", [1, 2, 57, 1000])
def test_same_probabilities_as_the_pipeline(pipeline, rows):
    frame = make_rows(rows, seed=10 + rows)
    compiled = lean.compile_pipeline(pipeline, KINDS)
    got = compiled.predict_proba(as_columns(frame))
    assert np.array_equal(got, proba_of_frame(pipeline, frame))


def test_edge_rows_one_by_one_and_together(pipeline):
    compiled = lean.compile_pipeline(pipeline, KINDS)
    frame = edge_rows()
    expected = proba_of_frame(pipeline, frame)
    assert np.array_equal(compiled.predict_proba(as_columns(frame)), expected)
    for i in range(len(frame)):
        single = frame.iloc[[i]]
        assert np.array_equal(compiled.predict_proba(as_columns(single)), expected[[i]]), i
    # the checks above exercise what they claim: the rare category is grouped, the
    # always-missing column dropped, and unseen values differ from every known one
    preprocess = pipeline.steps[0][1]
    encoder = preprocess.named_transformers_["cat"].steps[-1][1]
    assert encoder.infrequent_categories_[0].tolist() == ["z"]
    imputer = preprocess.named_transformers_["num"].steps[0][1]
    assert np.isnan(imputer.statistics_[NUMERIC.index("always_missing")])
    assert NUMERIC.index("never_missing") not in imputer.indicator_.features_


def test_features_are_the_column_transformers_output(pipeline):
    frame = pd.concat([make_rows(30, seed=5), edge_rows()], ignore_index=True)
    compiled = lean.compile_pipeline(pipeline, KINDS)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = pipeline.steps[0][1].transform(frame[FEATURES])
    got = compiled.features(as_columns(frame))
    assert got.dtype == expected.dtype and np.array_equal(got, expected, equal_nan=True)


def test_a_wrong_compilation_is_refused(monkeypatch):
    """The bit-for-bit check at compile time catches steps that differ from the pipeline."""
    pipeline = fitted("xgboost")
    original = lean._numeric_imputer

    def off_by_one(imputer):
        step = original(imputer)
        return lambda values: step(values) + 1.0

    monkeypatch.setattr(lean, "_numeric_imputer", off_by_one)
    with pytest.raises(lean.NotCompilable, match="do not reproduce predict_proba exactly"):
        lean.compile_pipeline(pipeline, KINDS)


def test_unknown_categories_refused_by_the_encoder_go_to_the_pipeline():
    """With handle_unknown="error" an unseen value is left to the pipeline, which raises."""
    pipeline = fitted("logistic_regression")
    encoder = pipeline.steps[0][1].named_transformers_["cat"].steps[-1][1]
    encoder.handle_unknown = "error"
    compiled = lean.compile_pipeline(pipeline, KINDS)
    known = make_rows(20, seed=3)
    assert np.array_equal(
        compiled.predict_proba(as_columns(known)), proba_of_frame(pipeline, known)
    )
    unseen = edge_rows().iloc[[2]]
    assert compiled.predict_proba(as_columns(unseen)) is None
    with pytest.raises(ValueError, match="unknown categor"):
        proba_of_frame(pipeline, unseen)


def test_other_structures_are_not_compiled():
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import KNNImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    train = make_rows(200, seed=4)
    y = (train["never_missing"] > 0).astype(int)
    knn = Pipeline(
        [
            ("preprocess", ColumnTransformer([("num", KNNImputer(), ["never_missing"])])),
            ("model", LogisticRegression()),
        ]
    ).fit(train, y)
    with pytest.raises(lean.NotCompilable, match="KNNImputer"):
        lean.compile_pipeline(knn, KINDS)
    with pytest.raises(lean.NotCompilable, match="not a Pipeline"):
        lean.compile_pipeline(LogisticRegression().fit(train[["never_missing"]], y), KINDS)
    with pytest.raises(lean.NotCompilable, match="types \\['long'\\]"):
        lean.compile_pipeline(fitted("xgboost"), {**KINDS, "count": "long"})


# --------------------------------------------------------------------------------------------
# The runtime, in process
# --------------------------------------------------------------------------------------------


def save_model(pipeline, path) -> str:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    train = make_rows(50, seed=6)
    mlflow.sklearn.save_model(
        pipeline,
        str(path),
        serialization_format="skops",
        skops_trusted_types=training.SKOPS_TRUSTED_TYPES,
        signature=infer_signature(train[FEATURES], pipeline.predict_proba(train[FEATURES])),
        input_example=train[FEATURES].head(3),
        pyfunc_predict_fn="predict_proba",
        pip_requirements=["mlflow", "scikit-learn", "xgboost", "skops"],
    )
    return str(path)


def loaded_runtime(model_dir: str):
    from mlserver.settings import ModelParameters, ModelSettings

    from churn_kfp.serving.runtime import ValidatingMLflowRuntime

    settings = ModelSettings(
        name="churn-classifier",
        implementation=ValidatingMLflowRuntime,
        parameters=ModelParameters(uri=model_dir, version="1"),
    )
    runtime = ValidatingMLflowRuntime(settings)
    asyncio.run(runtime.load())
    return runtime


def served_probability(runtime, frame: pd.DataFrame) -> np.ndarray:
    from mlserver.types import InferenceRequest

    from churn_kfp.serving import client

    request = InferenceRequest.model_validate(client.frame_to_v2_request(frame[FEATURES]))
    response = asyncio.run(runtime.predict(request))
    return client.parse_v2_response(response.model_dump()).probability


@pytest.mark.parametrize("model_type", ["xgboost", "random_forest"])
def test_runtime_scores_through_the_lean_path(tmp_path, model_type):
    pipeline = fitted(model_type)
    runtime = loaded_runtime(save_model(pipeline, tmp_path / "model"))
    assert isinstance(runtime._lean, lean.LeanPipeline)
    for frame in (make_rows(1, seed=8), make_rows(300, seed=9), edge_rows()):
        expected = proba_of_frame(pipeline, frame)[:, 1]
        assert np.array_equal(served_probability(runtime, frame), expected)


def test_runtime_falls_back_to_the_pipeline_when_it_does_not_compile(tmp_path, monkeypatch):
    pipeline = fitted("xgboost")
    model_dir = save_model(pipeline, tmp_path / "model")

    def refuse(*args, **kwargs):
        raise lean.NotCompilable("refused for this test")

    from churn_kfp.serving import runtime as runtime_module

    monkeypatch.setattr(runtime_module, "compile_pipeline", refuse)
    runtime = loaded_runtime(model_dir)
    assert runtime._lean is None
    frame = pd.concat([make_rows(40, seed=12), edge_rows()], ignore_index=True)
    expected = proba_of_frame(pipeline, frame)[:, 1]
    assert np.array_equal(served_probability(runtime, frame), expected)
