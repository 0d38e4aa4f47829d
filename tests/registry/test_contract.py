from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from churn_kfp.registry.contract import (
    MissingInputColumnsError,
    parse_threshold,
    positive_class_proba,
    score_rows,
)


def test_positive_class_proba_shapes():
    two = np.array([[0.9, 0.1], [0.2, 0.8]])
    np.testing.assert_array_equal(positive_class_proba(two), [0.1, 0.8])
    np.testing.assert_array_equal(positive_class_proba(two[:, 1:]), [0.1, 0.8])
    np.testing.assert_array_equal(positive_class_proba(pd.DataFrame(two)), [0.1, 0.8])
    with pytest.raises(ValueError):
        positive_class_proba(np.zeros((2, 3)))


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.42", 0.42), (0.0, 0.0), ("1", 1.0), (None, None), ("x", None), ("1.5", None)],
)
def test_parse_threshold(value, expected):
    assert parse_threshold(value) == expected


class _Schema:
    """The part of an MLflow input schema :func:`score_rows` reads."""

    def __init__(self, names, optional=()):
        self.names, self.optional = list(names), set(optional)

    def has_input_names(self):
        return True

    def input_names(self):
        return self.names

    def required_input_names(self):
        return [n for n in self.names if n not in self.optional]


class _Model:
    """A stand-in pyfunc model: P(churn) is the ``x`` column; records what it was given."""

    def __init__(self, schema):
        self.metadata = SimpleNamespace(get_input_schema=lambda: schema)
        self.seen = None

    def predict(self, frame):
        self.seen = list(frame.columns)
        return np.column_stack([1 - frame["x"], frame["x"]])


def test_score_rows_passes_only_the_schema_columns():
    model = _Model(_Schema(["x", "y"], optional=["y"]))
    frame = pd.DataFrame({"customer_id": ["a", "b"], "x": [0.1, 0.7], "churn": [0, 1]})
    proba = score_rows(model, frame, model_name="m", version="3")
    np.testing.assert_allclose(proba, [0.1, 0.7])
    assert model.seen == ["x"]  # optional y absent, id and label left out


def test_score_rows_refuses_rows_missing_a_required_column_and_accepts_no_rows():
    model = _Model(_Schema(["x", "y"]))
    with pytest.raises(MissingInputColumnsError, match=r"m version 3 needs .*\['y'\]"):
        score_rows(model, pd.DataFrame({"x": [0.5]}), model_name="m", version="3")
    empty = score_rows(model, pd.DataFrame({"x": []}), model_name="m", version="3")
    assert empty.shape == (0,) and model.seen is None
