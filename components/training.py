"""Component: train one candidate model with a bounded hyperparameter search."""

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from churn_kfp.components._base import churn_component


@churn_component
def train_model(
    labelled: Input[Dataset],
    model_type: str,
    n_iter: int,
    seed: int,
    model: Output[Model],
    validation_metrics: Output[Metrics],
    validation_folds: int = 2,
    recency_half_life: float = 0.0,
) -> float:
    """Fits ``model_type`` on the training cutoffs; tunes on rolling validation folds.

    Args:
        model_type: ``xgboost``, ``logistic_regression`` or ``random_forest``.
        n_iter: Hyperparameter settings to try (random search, seeded).
        seed: Random seed.
        validation_folds: Rolling validation folds scoring each setting (1: the
            validation cutoff alone).
        recency_half_life: Newer cutoffs weigh more: sample weights halve every this
            many cutoffs back (0: equal weights); the served refit weighs the same way.

    Returns:
        The validation score used to choose between candidates (the rolling-fold mean).
    """
    import pandas as pd

    from churn_kfp.learn import training

    candidate = training.train_candidate(
        pd.read_parquet(labelled.path),
        model_type,
        n_iter=n_iter,
        seed=seed,
        n_folds=validation_folds,
        recency_half_life=recency_half_life,
    )
    training.save_candidate(candidate, model.path)
    model.metadata.update({"model_type": model_type, "threshold": candidate.threshold})
    for name, value in candidate.validation_metrics.items():
        if isinstance(value, int | float) and value == value:
            validation_metrics.log_metric(name, float(value))
    score = candidate.cv_score
    if score is None:
        score = candidate.validation_metrics[training.SELECTION_METRIC]
    print(
        f"{model_type}: validation {training.SELECTION_METRIC} {score:.4f} "
        f"({candidate.n_folds} rolling fold(s))"
    )
    score = float(score)
    return score
