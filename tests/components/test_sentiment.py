"""Component ``score-sentiment``: VADER compound scores added to the feedback rows."""

from __future__ import annotations

import pandas as pd
import pytest
from kfp import dsl
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from churn_kfp.components.sentiment import score_sentiment

TEXTS = [
    "I love this shop, the service is great!",
    "Terrible experience, I hate it.",
    "The parcel came on Tuesday.",
]


def run(artifacts, feedback: pd.DataFrame):
    scored = artifacts.output(dsl.Dataset, "scored_feedback")
    metrics = artifacts.output(dsl.Metrics, "sentiment_metrics")
    score_sentiment.python_func(
        feedback=artifacts.dataset("feedback", feedback),
        scored_feedback=scored,
        sentiment_metrics=metrics,
    )
    return scored, metrics


def test_scores_every_text_and_logs_the_summary(artifacts):
    feedback = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C"],
            "timestamp": pd.to_datetime(["2025-01-01", "2025-01-02", "2025-01-03"]),
            "text": TEXTS,
        }
    )

    scored, metrics = run(artifacts, feedback)

    vader = SentimentIntensityAnalyzer()
    expected = [vader.polarity_scores(text)["compound"] for text in TEXTS]
    assert expected[0] >= 0.05 and expected[1] <= -0.05 and abs(expected[2]) < 0.05
    frame = pd.read_parquet(scored.path)
    assert list(frame["customer_id"]) == ["A", "B", "C"]
    assert list(frame["sentiment"]) == pytest.approx(expected)
    assert list(frame["sentiment_label"]) == ["positive", "negative", "neutral"]
    assert scored.metadata["rows"] == 3
    assert metrics.metadata == pytest.approx(
        {
            "texts": 3,
            "scored": 3,
            "negative": 1,
            "neutral": 1,
            "positive": 1,
            "share_negative": 1 / 3,
            "share_positive": 1 / 3,
            "mean_sentiment": sum(expected) / 3,
        }
    )


def test_empty_feedback_stays_empty_and_logs_nothing(artifacts, capsys):
    empty = pd.DataFrame({"customer_id": [], "timestamp": [], "text": []})

    scored, metrics = run(artifacts, empty)

    assert pd.read_parquet(scored.path).empty
    assert scored.metadata["rows"] == 0
    assert metrics.metadata == {}
    assert "sentiment features will be left out" in capsys.readouterr().out
