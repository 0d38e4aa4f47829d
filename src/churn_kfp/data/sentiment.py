"""Sentiment of customer feedback, scored offline with VADER.

VADER (``vaderSentiment``) is a rule-based analyser whose lexicon ships inside the package:
no network, no model download, deterministic scores. Its *compound* score lies in
``[-1, 1]``; the usual thresholds label a text positive at ``>= 0.05``, negative at
``<= -0.05`` and neutral in between.

The analyser is built on first use (it reads its lexicon from disk) and then reused;
importing this module does no work.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

POSITIVE_THRESHOLD = 0.05
"""Compound scores at or above this are positive."""

NEGATIVE_THRESHOLD = -0.05
"""Compound scores at or below this are negative."""

NEGATIVE, NEUTRAL, POSITIVE = "negative", "neutral", "positive"
LABELS = (NEGATIVE, NEUTRAL, POSITIVE)

SENTIMENT = "sentiment"
SENTIMENT_LABEL = "sentiment_label"
TEXT = "text"


@lru_cache(maxsize=1)
def analyzer() -> SentimentIntensityAnalyzer:
    """Returns the shared VADER analyser, building it on the first call."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def score_texts(texts: Iterable[str | None]) -> np.ndarray:
    """Scores texts with VADER's compound score.

    Identical texts are scored once.

    Args:
        texts: Texts; ``None``, NaN and blank strings count as missing. Other non-string
            values are scored as their ``str()``.

    Returns:
        A float array in ``[-1, 1]``, one score per text, NaN where the text is missing.
    """
    values = pd.Series(list(texts), dtype=object)
    scores = np.full(len(values), np.nan, dtype=float)
    present = values.notna().to_numpy()
    if not present.any():
        return scores
    cleaned = values[present].astype(str).str.strip()
    codes, uniques = pd.factorize(cleaned)
    vader = analyzer()
    unique_scores = np.array(
        [vader.polarity_scores(text)["compound"] if text else np.nan for text in uniques],
        dtype=float,
    )
    scores[present] = unique_scores[codes]
    return scores


def label(scores: np.ndarray | pd.Series) -> np.ndarray:
    """Labels compound scores ``negative``/``neutral``/``positive``.

    Args:
        scores: Compound scores; NaN for a missing text.

    Returns:
        An object array of labels, ``None`` where the score is NaN.
    """
    values = np.asarray(scores, dtype=float)
    labels = np.select(
        [values >= POSITIVE_THRESHOLD, values <= NEGATIVE_THRESHOLD, ~np.isnan(values)],
        [POSITIVE, NEGATIVE, NEUTRAL],
        default="",
    ).astype(object)
    labels[np.isnan(values)] = None
    return labels


def score_feedback(feedback: pd.DataFrame) -> pd.DataFrame:
    """Adds the sentiment of each feedback text.

    Args:
        feedback: Feedback with a ``text`` column (as :func:`churn_kfp.data.validation.ingest`
            returns it).

    Returns:
        A copy with ``sentiment`` (float compound score, NaN for a missing text) and
        ``sentiment_label`` (``negative``/``neutral``/``positive``, ``None`` for a missing
        text).

    Raises:
        ValueError: If there is no ``text`` column.
    """
    if TEXT not in feedback.columns:
        raise ValueError(
            f"feedback has no {TEXT!r} column to score; it has {list(feedback.columns)}"
        )
    scored = feedback.copy()
    scored[SENTIMENT] = score_texts(scored[TEXT])
    scored[SENTIMENT_LABEL] = label(scored[SENTIMENT].to_numpy())
    return scored


def summary(scored: pd.DataFrame) -> dict[str, Any]:
    """Summarises scored feedback as flat numbers for KFP metrics.

    Args:
        scored: The output of :func:`score_feedback`.

    Returns:
        ``texts`` (rows), ``scored`` (rows with a score), ``negative``/``neutral``/
        ``positive`` (counts), ``share_negative``/``share_positive`` (of the scored
        rows) and ``mean_sentiment``. Shares and mean are 0.0 when nothing was scored
        (``scored == 0``), so every value stays a finite number.

    Raises:
        ValueError: If the frame has not been scored.
    """
    missing = [c for c in (SENTIMENT, SENTIMENT_LABEL) if c not in scored.columns]
    if missing:
        raise ValueError(f"columns {missing} are missing: call score_feedback first")
    scores = scored[SENTIMENT].astype(float)
    counts = scored[SENTIMENT_LABEL].value_counts()
    n_scored = int(scores.notna().sum())
    result: dict[str, Any] = {"texts": len(scored), "scored": n_scored}
    for name in LABELS:
        result[name] = int(counts.get(name, 0))
    result["share_negative"] = result[NEGATIVE] / n_scored if n_scored else 0.0
    result["share_positive"] = result[POSITIVE] / n_scored if n_scored else 0.0
    result["mean_sentiment"] = float(scores.mean()) if n_scored else 0.0
    return result
