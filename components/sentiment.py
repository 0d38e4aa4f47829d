"""Component: score raw feedback text offline with VADER."""

from kfp.dsl import Dataset, Input, Metrics, Output

from churn_kfp.components._base import churn_component


@churn_component
def score_sentiment(
    feedback: Input[Dataset], scored_feedback: Output[Dataset], sentiment_metrics: Output[Metrics]
):
    """Adds a ``sentiment`` score in [-1, 1] to every feedback row (empty input stays empty)."""
    import pandas as pd

    from churn_kfp.data import sentiment

    frame = pd.read_parquet(feedback.path)
    if frame.empty:
        print("no feedback in the landing zone: sentiment features will be left out")
        frame.to_parquet(scored_feedback.path, index=False)
        scored_feedback.metadata["rows"] = 0
        return
    scored = sentiment.score_feedback(frame)
    scored.to_parquet(scored_feedback.path, index=False)
    scored_feedback.metadata["rows"] = len(scored)
    for name, value in sentiment.summary(scored).items():
        if isinstance(value, int | float):
            sentiment_metrics.log_metric(name, value)
