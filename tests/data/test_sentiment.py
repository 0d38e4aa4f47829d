import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from churn_kfp.data import sentiment
from churn_kfp.data.sentiment import label, score_feedback, score_texts, summary


def test_clearly_positive_and_negative_texts():
    scores = score_texts(
        [
            "I love this shop, great service and fast delivery!",
            "Terrible experience, the product broke and support was useless.",
            "The parcel arrived on Tuesday.",
        ]
    )
    assert scores.dtype == np.float64
    assert scores[0] > 0.05
    assert scores[1] < -0.05
    assert -0.05 < scores[2] < 0.05
    assert np.all((scores >= -1) & (scores <= 1))


def test_missing_and_blank_texts_score_nan():
    scores = score_texts([None, np.nan, "", "   ", pd.NA, "good"])
    assert np.isnan(scores[:5]).all()
    assert scores[5] > 0.05


def test_empty_input_gives_an_empty_array():
    assert score_texts([]).shape == (0,)
    assert np.isnan(score_texts(iter([None]))).all()  # any iterable, not only lists


def test_identical_texts_are_scored_once(monkeypatch):
    calls = []

    class Fake:
        def polarity_scores(self, text):
            calls.append(text)
            return {"compound": 0.5}

    monkeypatch.setattr(sentiment, "analyzer", lambda: Fake())
    scores = score_texts(["nice", "nice ", "bad", "nice", None])
    assert sorted(calls) == ["bad", "nice"]
    assert scores[:4].tolist() == [0.5, 0.5, 0.5, 0.5]
    assert np.isnan(scores[4])


def test_labels_use_the_usual_thresholds():
    labels = label(np.array([0.05, 0.049, -0.049, -0.05, 0.9, -0.9, np.nan]))
    assert labels.tolist() == [
        "positive",
        "neutral",
        "neutral",
        "negative",
        "positive",
        "negative",
        None,
    ]


def test_score_feedback_adds_columns_and_keeps_the_input():
    feedback = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "text": ["Awful, I want a refund", "Excellent, thank you!", "ok", None],
        }
    )
    scored = score_feedback(feedback)
    assert "sentiment" not in feedback.columns
    assert scored["sentiment"].dtype == np.float64
    assert scored["sentiment_label"].tolist() == ["negative", "positive", "positive", None]
    assert scored["customer_id"].tolist() == ["a", "b", "c", "d"]


def test_score_feedback_needs_text():
    with pytest.raises(ValueError, match="no 'text' column"):
        score_feedback(pd.DataFrame({"customer_id": ["a"]}))


def test_summary_counts_labels_and_averages():
    scored = pd.DataFrame(
        {
            "sentiment": [0.8, -0.6, 0.0, 0.4, np.nan],
            "sentiment_label": ["positive", "negative", "neutral", "positive", None],
        }
    )
    result = summary(scored)
    assert result == {
        "texts": 5,
        "scored": 4,
        "negative": 1,
        "neutral": 1,
        "positive": 2,
        "share_negative": 0.25,
        "share_positive": 0.5,
        "mean_sentiment": pytest.approx(0.15),
    }
    empty = summary(score_feedback(pd.DataFrame({"text": [None]})))
    assert empty["scored"] == 0 and empty["mean_sentiment"] == 0.0
    with pytest.raises(ValueError, match="score_feedback first"):
        summary(pd.DataFrame({"text": ["x"]}))


def test_import_does_no_work():
    code = (
        "import sys, churn_kfp.data.sentiment as s;"
        "assert 'vaderSentiment.vaderSentiment' not in sys.modules;"
        "assert s.analyzer.cache_info().currsize == 0"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
