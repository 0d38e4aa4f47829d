"""Evaluation of trained candidates against baselines on a time-based test split.

:func:`evaluate_candidates` picks the champion on validation, scores every candidate and the
baselines (recency only, logistic regression) on test with :mod:`churn_kfp.learn.metrics`, and
diagnoses the champion (importances, curves, calibration, split checks). It returns an
:class:`Evaluation` whose :meth:`Evaluation.to_dict` is what the evaluation component writes as
JSON and what :func:`churn_kfp.learn.report.render_report` draws. Nothing is read from or
written to disk here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.inspection import permutation_importance

from churn_kfp.core import columns
from churn_kfp.core.jsonable import jsonable
from churn_kfp.learn.metrics import (
    classification_metrics,
    confusion,
    pr_curve_points,
    roc_curve_points,
)
from churn_kfp.learn.training import (
    SELECTION_METRIC,
    TrainedCandidate,
    fit_candidate,
    split_frames,
    tune_threshold,
)

__all__ = [
    "LEAKAGE_AUC",
    "LR_BASELINE",
    "PROTOCOL",
    "RECENCY_BASELINE",
    "RECENCY_COLUMN",
    "Evaluation",
    "check_split",
    "evaluate_candidates",
    "model_importance",
    "permutation_rows",
    "recency_baseline_scores",
    "served_model_summary",
]

LEAKAGE_AUC = 0.97
"""A test ROC AUC above this is more likely leakage than skill for churn (see the protocol)."""

RECENCY_COLUMN = "recency_days"
RECENCY_BASELINE = "recency_only"
LR_BASELINE = "logistic_regression"

PROTOCOL = f"""\
Evaluation protocol.
1. Time-based split. Every row is a customer as of a cutoff date; features use only data
   before the cutoff, the label says whether the customer bought nothing in the churn window
   after it. Rows are split by cutoff: the oldest cutoffs train, a later one validates, the
   latest one tests. The label windows of the training and validation cutoffs end on or before
   the test cutoff, so no training label uses information from the test period. Validation
   mirrors test: the training cutoffs' label windows end by the validation cutoff (on the
   cutoff grid), so a candidate is chosen on a period its training labels have not seen.
2. Model selection on validation only. Each candidate (XGBoost, logistic regression, random
   forest) is tuned by a seeded random search fitted on train and scored by ROC AUC on
   validation, averaged over rolling validation folds when there are several (each older
   fold validates on an earlier training cutoff and fits on the cutoffs before it, with the
   same label gap); its decision threshold maximises F1 on validation; the chosen parameters
   are then refitted on train + validation with that threshold kept (the held-out fit). The
   champion is the candidate with the best (mean) validation ROC AUC (ties: PR AUC). The
   test split is never used to choose anything; it only reports.
3. Baselines on the same splits: "recency only" (the score is the days since the last purchase,
   threshold tuned on validation) and logistic regression. A model that does not beat recency
   alone on validation adds little.
4. Metrics on test: ROC AUC and PR AUC (ranking, independent of the threshold), F1, precision,
   recall and accuracy at the validation-tuned threshold, lift and capture rate in the top
   decile of scores, base rate. When most customers churn, F1 is easy to inflate by predicting
   everybody: compare on ROC AUC, PR AUC and lift. A test ROC AUC above {LEAKAGE_AUC} usually
   means a feature leaks the label, and is flagged.
5. Importance: the model's own importances (gain / impurity / |coefficient| on standardised
   inputs) and seeded permutation importance (drop in ROC AUC) on up to 2,000 test rows.
6. The served model. Every figure above is the held-out fit's, which never saw the test
   cutoff's labels. The model that is registered and served is then refit with the chosen
   hyperparameters on every cutoff whose label window has closed by the end of the data (the
   test cutoff included; its newest is "refit through"), with a threshold tuned the same way
   one step later (the held-out fit's scores on the newest cutoff).
"""


@dataclass
class Evaluation:
    """Candidates vs baselines on validation and test, the champion and its diagnostics.

    Attributes:
        protocol: :data:`PROTOCOL`.
        selection_metric: Validation metric that chose the champion (``roc_auc``).
        champion: Name of the chosen candidate.
        champion_reason: One sentence on why.
        candidates: Name -> ``model_type``, ``params``, ``threshold``, ``fit_seconds``,
            ``refit_on``, ``validation``/``test``/``train`` metrics, ``train_test_gap``,
            ``search_results``.
        baselines: Name -> ``description``, ``threshold``, ``validation``/``test`` metrics.
        leakage_auc: :data:`LEAKAGE_AUC`.
        leakage_warning: Text when any model's test ROC AUC exceeds ``leakage_auc``, else None.
        train_test_gap: Champion's ROC AUC on its fit rows minus its test ROC AUC.
        feature_importance: ``model`` (list of ``feature``/``importance``), ``model_kind``,
            ``permutation`` (list of ``feature``/``mean``/``std``), ``permutation_rows``,
            ``permutation_scoring``.
        confusion_matrix: Champion on test, ``[[tn, fp], [fn, tp]]``.
        roc_curve: Champion on test: ``fpr``, ``tpr``, ``thresholds`` (finite).
        curves: Name -> ``roc`` and ``pr`` points on test, for every candidate and baseline.
        calibration: Champion on test: ``mean_predicted``, ``fraction_positive``.
        data: Rows, positives, base rates and cutoffs per split; the feature columns.
        protocol_warnings: Problems found in the split (ordering, label windows).
    """

    protocol: str
    selection_metric: str
    champion: str
    champion_reason: str
    candidates: dict[str, dict[str, Any]]
    baselines: dict[str, dict[str, Any]]
    leakage_auc: float
    leakage_warning: str | None
    train_test_gap: float | None
    feature_importance: dict[str, Any]
    confusion_matrix: list[list[int]]
    roc_curve: dict[str, list[float]]
    curves: dict[str, dict[str, Any]] = field(default_factory=dict)
    calibration: dict[str, list[float]] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    protocol_warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-serialisable dict (non-finite floats become None)."""
        return jsonable(asdict(self))


def recency_baseline_scores(frame: pd.DataFrame) -> np.ndarray:
    """The "recency only" churn score: ``r / (r + 30)`` for ``r`` days since the last purchase.

    Monotone in ``recency_days``, in ``[0, 1)``, comparable between frames (no per-frame
    ranking), so a threshold tuned on validation applies to test. Negative values count as 0;
    a missing recency (no purchase before the cutoff) scores 1.0, the most churn-like.

    Args:
        frame: Rows with a ``recency_days`` column.

    Returns:
        One float score per row.
    """
    if RECENCY_COLUMN not in frame.columns:
        raise KeyError(f"the recency baseline needs a {RECENCY_COLUMN!r} column")
    days = pd.to_numeric(frame[RECENCY_COLUMN], errors="coerce").to_numpy(dtype=float)
    days = np.clip(days, 0.0, None)
    scores = days / (days + 30.0)
    scores[~np.isfinite(scores)] = 1.0
    return scores


def model_importance(candidate: TrainedCandidate, top: int = 30) -> tuple[list[dict], str]:
    """The model's own importances on the transformed features, largest first.

    XGBoost: ``feature_importances_`` (gain); random forest: impurity decrease; logistic
    regression: ``|coefficient|`` on standardised inputs. Names come from the preprocessing's
    ``get_feature_names_out`` without the ``num__``/``cat__`` prefixes.

    Returns:
        ``(rows, kind)`` with rows ``{"feature", "importance"}``.
    """
    model = candidate.pipeline[-1]
    names = [_strip_prefix(n) for n in candidate.pipeline[:-1].get_feature_names_out()]
    if hasattr(model, "feature_importances_"):
        values = np.asarray(model.feature_importances_, dtype=float)
        kind = "gain" if candidate.model_type == "xgboost" else "impurity decrease"
    elif hasattr(model, "coef_"):
        values = np.abs(np.asarray(model.coef_, dtype=float)).ravel()
        kind = "|coefficient| on standardised inputs"
    else:  # pragma: no cover - every candidate has one of the two
        return [], "unavailable"
    order = np.argsort(-values, kind="stable")[:top]
    return [{"feature": names[i], "importance": float(values[i])} for i in order], kind


def _strip_prefix(name: str) -> str:
    for prefix in ("num__", "cat__"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def permutation_rows(
    candidate: TrainedCandidate,
    frame: pd.DataFrame,
    max_rows: int = 2000,
    n_repeats: int = 3,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Permutation importance (mean/std drop in ROC AUC) of the raw input columns.

    Uses a seeded sample of at most ``max_rows`` rows of ``frame``; empty when the sample holds
    a single class.
    """
    sample = frame
    if len(frame) > max_rows:
        sample = frame.sample(n=max_rows, random_state=seed)
    y = sample[columns.LABEL].to_numpy().astype(int)
    if len(np.unique(y)) < 2:
        return []
    inputs = candidate.input_columns
    result = permutation_importance(
        candidate.pipeline,
        sample[inputs],
        y,
        scoring="roc_auc",
        n_repeats=n_repeats,
        random_state=seed,
        n_jobs=1,
    )
    order = np.argsort(-result.importances_mean, kind="stable")
    return [
        {
            "feature": inputs[i],
            "mean": float(result.importances_mean[i]),
            "std": float(result.importances_std[i]),
        }
        for i in order
    ]


def check_split(table: pd.DataFrame, churn_window_days: int | None = None) -> list[str]:
    """Returns problems of the time-based split (empty when it follows the protocol).

    Checks that train cutoffs precede validation cutoffs precede test cutoffs and, when
    ``churn_window_days`` is given, that every train/validation label window ends on or before
    the earliest test cutoff.
    """
    problems: list[str] = []
    cutoffs = pd.to_datetime(table[columns.CUTOFF])
    by_split = {s: cutoffs[table[columns.SPLIT] == s] for s in columns.SPLITS}
    order = [s for s in columns.SPLITS if len(by_split[s])]
    for earlier, later in zip(order, order[1:], strict=False):
        if by_split[earlier].max() > by_split[later].min():
            problems.append(
                f"{earlier} cutoffs reach {by_split[earlier].max().date()}, after the first "
                f"{later} cutoff {by_split[later].min().date()}"
            )
    test = by_split[columns.TEST]
    if churn_window_days is not None and len(test):
        fit = pd.concat([by_split[columns.TRAIN], by_split[columns.VALIDATION]])
        if len(fit):
            window_end = fit.max() + pd.Timedelta(days=int(churn_window_days))
            if window_end > test.min():
                problems.append(
                    f"the label window of the last training cutoff ends {window_end.date()}, "
                    f"after the test cutoff {test.min().date()}: training labels overlap the "
                    "test period"
                )
    return problems


def _data_summary(table: pd.DataFrame, numeric: list[str], categorical: list[str]) -> dict:
    summary: dict[str, Any] = {"rows": {}, "positives": {}, "base_rate": {}, "cutoffs": {}}
    for split in columns.SPLITS:
        part = table[table[columns.SPLIT] == split]
        y = part[columns.LABEL].astype(int)
        summary["rows"][split] = int(len(part))
        summary["positives"][split] = int(y.sum())
        summary["base_rate"][split] = float(y.mean()) if len(part) else None
        summary["cutoffs"][split] = [
            pd.Timestamp(c).date().isoformat()
            for c in sorted(pd.to_datetime(part[columns.CUTOFF]).unique())
        ]
    summary["features"] = {"numeric": numeric, "categorical": categorical}
    return summary


def _unique_names(candidates: Sequence[TrainedCandidate]) -> list[str]:
    names: list[str] = []
    for c in candidates:
        name, k = c.model_type, 2
        while name in names:
            name, k = f"{c.model_type}_{k}", k + 1
        names.append(name)
    return names


def _choice_score(result: dict[str, Any]) -> float | None:
    """The score that chooses between candidates: the rolling-CV mean, else validation."""
    cv = result.get("cv_score")
    return cv if cv is not None else result["validation"].get(SELECTION_METRIC)


def _selection_key(result: dict[str, Any]) -> tuple[float, float]:
    score = _choice_score(result)
    pr = result["validation"].get("pr_auc")
    return (-math.inf if score is None else score, -math.inf if pr is None else pr)


def _curves(y: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    fpr, tpr, thr = roc_curve_points(y, scores)
    precision, recall = pr_curve_points(y, scores)
    return {
        "roc": {"fpr": fpr, "tpr": tpr, "thresholds": thr},
        "pr": {"precision": precision, "recall": recall},
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def served_model_summary(
    served: TrainedCandidate, held_out: TrainedCandidate, table: pd.DataFrame
) -> dict[str, Any]:
    """What the served model was fit on, beside the held-out fit the metrics come from.

    Args:
        served: :func:`~churn_kfp.learn.training.refit_on_matured` of ``held_out``.
        held_out: The chosen candidate as evaluated.
        table: The labelled table of the run.

    Returns:
        ``refit_on``, ``refit_through``, ``cutoffs`` (ISO, oldest first), ``rows``,
        ``threshold`` (tuned on the newest cutoff by the held-out fit) and the held-out
        fit's ``held_out_threshold`` and ``held_out_cutoffs``.
    """
    fit_on = pd.to_datetime(table[columns.CUTOFF])
    split = table[columns.SPLIT]
    held_out_rows = split.isin([columns.TRAIN, columns.VALIDATION])
    if held_out.refit_on != "train+validation":
        held_out_rows = split == columns.TRAIN
    return {
        "refit_on": served.refit_on,
        "refit_through": served.refit_through,
        "cutoffs": _iso_dates(fit_on),
        "rows": int(served.n_rows.get("fit", len(table))),
        "threshold": served.threshold,
        "held_out_threshold": held_out.threshold,
        "held_out_cutoffs": _iso_dates(fit_on[held_out_rows]),
    }


def _iso_dates(cutoffs: pd.Series) -> list[str]:
    return [pd.Timestamp(c).date().isoformat() for c in sorted(cutoffs.unique())]


def evaluate_candidates(
    table: pd.DataFrame,
    candidates: Sequence[TrainedCandidate],
    seed: int = 0,
    churn_window_days: int | None = None,
    permutation_max_rows: int = 2000,
    permutation_repeats: int = 3,
) -> Evaluation:
    """Compares candidates and baselines, picks the champion on validation, diagnoses it.

    Validation metrics of a candidate are its own ``validation_metrics`` (train-only fit, see
    :mod:`churn_kfp.learn.training`); test metrics use its final pipeline and validation-tuned
    threshold. Baselines: recency only (when the table has ``recency_days``) and logistic
    regression (the LR candidate when there is one, else LR with default parameters fitted by
    the same protocol).

    Args:
        table: The labelled table the candidates were trained on (with a test split).
        candidates: Trained candidates (at least one).
        seed: Seed of the permutation-importance sample and the fallback LR baseline.
        churn_window_days: If given, check that training label windows end by the test cutoff.
        permutation_max_rows: Rows of test used for permutation importance.
        permutation_repeats: Repeats per column for permutation importance.

    Returns:
        The :class:`Evaluation`.
    """
    if not candidates:
        raise ValueError("no candidates to evaluate")
    test = table[table[columns.SPLIT] == columns.TEST]
    if len(test) == 0:
        raise ValueError("the labelled table has no rows with split == 'test'")
    train, validation, _ = split_frames(table, seed=candidates[0].seed)
    fit_rows = pd.concat([train, validation])
    y_test = test[columns.LABEL].to_numpy().astype(int)
    y_val = validation[columns.LABEL].to_numpy().astype(int)

    names = _unique_names(candidates)
    results: dict[str, dict[str, Any]] = {}
    curves: dict[str, dict[str, Any]] = {}
    test_scores: dict[str, np.ndarray] = {}
    for name, cand in zip(names, candidates, strict=True):
        proba = cand.predict_proba(test)
        test_scores[name] = proba
        fit_frame = fit_rows if cand.refit_on == "train+validation" else train
        fit_proba = cand.predict_proba(fit_frame)
        train_metrics = classification_metrics(
            fit_frame[columns.LABEL].to_numpy().astype(int), fit_proba, cand.threshold
        )
        test_metrics = classification_metrics(y_test, proba, cand.threshold)
        gap = None
        if train_metrics["roc_auc"] is not None and test_metrics["roc_auc"] is not None:
            gap = train_metrics["roc_auc"] - test_metrics["roc_auc"]
        results[name] = {
            "model_type": cand.model_type,
            "params": cand.params,
            "threshold": cand.threshold,
            "fit_seconds": cand.fit_seconds,
            "refit_on": cand.refit_on,
            "cv_score": cand.cv_score,
            "n_folds": cand.n_folds,
            "validation": dict(cand.validation_metrics),
            "test": test_metrics,
            "train": train_metrics,
            "train_test_gap": gap,
            "search_results": cand.search_results,
        }
        curves[name] = _curves(y_test, proba)

    baselines: dict[str, dict[str, Any]] = {}
    if RECENCY_COLUMN in table.columns:
        val_scores = recency_baseline_scores(validation)
        threshold = tune_threshold(y_val, val_scores)
        scores = recency_baseline_scores(test)
        baselines[RECENCY_BASELINE] = {
            "description": "days since the last purchase, r / (r + 30); no fitting",
            "threshold": threshold,
            "validation": classification_metrics(y_val, val_scores, threshold),
            "test": classification_metrics(y_test, scores, threshold),
        }
        curves[RECENCY_BASELINE] = _curves(y_test, scores)
    lr_names = [n for n, c in zip(names, candidates, strict=True) if c.model_type == LR_BASELINE]
    if lr_names:
        lr = results[lr_names[0]]
        baselines[LR_BASELINE] = {
            "description": f"the {lr_names[0]!r} candidate (tuned), reused",
            "threshold": lr["threshold"],
            "validation": lr["validation"],
            "test": lr["test"],
        }
    else:
        lr_cand = fit_candidate(table, LR_BASELINE, seed=seed)
        proba = lr_cand.predict_proba(test)
        baselines[LR_BASELINE] = {
            "description": "logistic regression, default parameters, same protocol",
            "threshold": lr_cand.threshold,
            "validation": lr_cand.validation_metrics,
            "test": classification_metrics(y_test, proba, lr_cand.threshold),
        }
        curves["baseline_" + LR_BASELINE] = _curves(y_test, proba)

    best = max(range(len(names)), key=lambda i: (_selection_key(results[names[i]]), -i))
    champion = names[best]
    chosen = candidates[best]
    champ_val = results[champion]["validation"]
    folds = max(c.n_folds for c in candidates)
    over = f" (mean over {folds} rolling validation folds)" if folds > 1 else ""
    reason = (
        f"highest validation {SELECTION_METRIC}{over} ({_fmt(_choice_score(results[champion]))})"
        f" among {len(names)} candidate(s): "
        + ", ".join(f"{n} {_fmt(_choice_score(results[n]))}" for n in names)
        + ". The test split played no part in the choice."
    )
    if RECENCY_BASELINE in baselines:
        rec = baselines[RECENCY_BASELINE]["validation"].get(SELECTION_METRIC)
        if rec is not None and champ_val.get(SELECTION_METRIC) is not None:
            delta = champ_val[SELECTION_METRIC] - rec
            verdict = "beats" if delta > 0 else "does NOT beat"
            reason += f" It {verdict} the recency-only baseline on validation by {delta:+.3f}."

    flagged = [
        f"{name} ({res['test']['roc_auc']:.3f})"
        for name, res in list(results.items()) + list(baselines.items())
        if res["test"].get("roc_auc") is not None and res["test"]["roc_auc"] > LEAKAGE_AUC
    ]
    leakage_warning = None
    if flagged:
        leakage_warning = (
            f"Test ROC AUC above {LEAKAGE_AUC} for {', '.join(flagged)}. Churn models rarely "
            "rank this well; check that no feature uses data from on or after the cutoff and "
            "that no training label window overlaps the test period."
        )

    champ_proba = test_scores[champion]
    pred = (champ_proba >= chosen.threshold).astype(int)
    fpr, tpr, thr = roc_curve_points(y_test, champ_proba)
    calibration: dict[str, list[float]] = {"mean_predicted": [], "fraction_positive": []}
    if len(np.unique(y_test)) == 2:
        frac, mean = calibration_curve(y_test, champ_proba, n_bins=10, strategy="quantile")
        calibration = {
            "mean_predicted": [float(v) for v in mean],
            "fraction_positive": [float(v) for v in frac],
        }
    model_rows, kind = model_importance(chosen)
    importance = {
        "model": model_rows,
        "model_kind": kind,
        "permutation": permutation_rows(
            chosen, test, max_rows=permutation_max_rows, n_repeats=permutation_repeats, seed=seed
        ),
        "permutation_rows": int(min(len(test), permutation_max_rows)),
        "permutation_scoring": "roc_auc",
    }
    return Evaluation(
        protocol=PROTOCOL,
        selection_metric=SELECTION_METRIC,
        champion=champion,
        champion_reason=reason,
        candidates=results,
        baselines=baselines,
        leakage_auc=LEAKAGE_AUC,
        leakage_warning=leakage_warning,
        train_test_gap=results[champion]["train_test_gap"],
        feature_importance=importance,
        confusion_matrix=confusion(y_test, pred),
        roc_curve={"fpr": fpr, "tpr": tpr, "thresholds": thr},
        curves=curves,
        calibration=calibration,
        data=_data_summary(table, *chosen.feature_names),
        protocol_warnings=check_split(table, churn_window_days),
    )
