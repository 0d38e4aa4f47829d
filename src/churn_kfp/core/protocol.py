"""The protocol parameters: how a run labels, featurizes, trains, gates and retrains.

Each parameter is declared once, in :class:`Protocol`: its name, type, default, command-line
flag and help text. Everything else derives from it:

- the CLI options (:mod:`churn_kfp.cli.options` builds them from the field metadata);
- the pipeline parameters (``horizon_days: int = PROTOCOL.horizon_days``: KFP reads literal
  signatures, so the pipelines name the default instead of repeating it);
- the simulation's settings (:data:`SIMULATION_PROTOCOL`);
- the pipeline arguments of a run (:func:`pipeline_arguments`).

Commands differ in a few defaults: :data:`PROTOCOL` holds those of a training run,
:data:`RETRAINING_PROTOCOL` and :data:`SIMULATION_PROTOCOL` the ones the retraining loop and
the simulation change. The components keep literal defaults: KFP copies a component's source
into the task, without this module (``tests/pipelines/test_compile.py`` checks they agree).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "POLICY_PARAMETERS",
    "PROTOCOL",
    "RETRAINING_PROTOCOL",
    "SIMULATION_PROTOCOL",
    "Option",
    "Protocol",
    "option_of",
    "pipeline_arguments",
]


@dataclass(frozen=True)
class Option:
    """How a protocol parameter appears on the command line.

    Attributes:
        flag: The option, e.g. ``--horizon-days``.
        help: Its help text.
        help_in: The help text of the commands that word it differently (command -> text).
        negated: The flag is a ``--no-...`` switch that turns a true parameter off.
        listed: The flag takes a comma-separated list; the parameter is a tuple of names.
    """

    flag: str
    help: str
    help_in: Mapping[str, str] = field(default_factory=dict)
    negated: bool = False
    listed: bool = False

    @property
    def dest(self) -> str:
        """The attribute argparse stores the flag's value in."""
        return self.flag.lstrip("-").replace("-", "_")

    def help_for(self, command: str) -> str:
        """The help text as ``command`` shows it."""
        return self.help_in.get(command, self.help)

    def cli_default(self, value: Any) -> Any:
        """The parser default that stands for the parameter value ``value``."""
        if self.negated:
            return False
        if self.listed:
            return ",".join(value)
        return value

    def from_cli(self, value: Any) -> Any:
        """The parameter value of a parsed command-line value (a given ``--no-...`` is False)."""
        if self.negated:
            return not value
        if self.listed:
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value


def _parameter(default: Any, flag: str, help: str, **option: Any) -> Any:
    return field(default=default, metadata={"option": Option(flag, help, **option)})


_LOOP_CUTOFFS = "rolling window: training cutoffs before the validation cutoff"
_LOOP_N_ITER = "search iterations per candidate model"


@dataclass(frozen=True)
class Protocol:
    """The protocol parameters of the pipelines (defaults: those of a training run).

    Attributes:
        horizon_days: Churn window after a cutoff: no purchase within it means churn.
        n_train_cutoffs: Training cutoffs before the validation cutoff.
        eligibility_days: A customer is scored if they bought within this many days.
        windows: Comma-separated feature windows in days.
        test_cutoff: Test cutoff ``YYYY-MM-DD``; empty means the latest whose churn window
            the data covers.
        cutoff_spacing: Grid of the cutoffs: a pandas frequency or a number of days (``14d``).
        n_iter: Hyperparameter settings tried per candidate model.
        validation_folds: Rolling validation folds that score each setting (1: the
            validation cutoff alone).
        recency_half_life: Sample weights halve every this many cutoffs back from the
            newest one in every fit (0: all cutoffs weigh the same).
        seed: Random seed (of the synthetic data too, where a run generates it).
        min_f1: Gate: minimum test F1.
        min_roc_auc: Gate: minimum test ROC AUC.
        max_train_test_gap: Gate: largest train-minus-test ROC AUC.
        promotion_margin: How much a new model must beat the champion by.
        retrain_threshold: Retrain when the latest matured F1 is below this absolute floor
            (0: off; the relative rule ``performance_drop`` is the default trigger).
        performance_drop: Retrain when the latest matured F1 is more than this below the
            champion's own held-out test F1.
        drift_threshold: Drift counts when this share of monitored features drifted.
        drift_persistence: Drift retrains once it lasted this many consecutive periods.
        drift_effect_floor: ... or at once when more than ``drift_threshold`` of the features
            moved by at least this effect size (normed Wasserstein / Jensen-Shannon distance).
        backoff_periods: After a retrain that did not promote, drift alone does not retrain
            for this many periods (a performance drop still does).
        prediction_drift_triggers: Whether drift of the champion's scores alone retrains.
        candidate_models: Models trained in parallel; the best on validation is kept.
    """

    horizon_days: int = _parameter(30, "--horizon-days", "churn window after a cutoff")
    n_train_cutoffs: int = _parameter(
        3,
        "--train-cutoffs",
        "training cutoffs",
        help_in={"retrain": _LOOP_CUTOFFS, "simulate": _LOOP_CUTOFFS},
    )
    eligibility_days: int = _parameter(
        90,
        "--eligibility-days",
        "score customers active this recently",
        help_in={"retrain": "scoring eligibility"},
    )
    windows: str = _parameter("30,60,90", "--windows", "feature windows in days")
    test_cutoff: str = _parameter(
        "",
        "--test-cutoff",
        "test cutoff YYYY-MM-DD (default: the latest whose churn window has passed)",
    )
    cutoff_spacing: str = _parameter(
        "MS",
        "--cutoff-spacing",
        "grid of the cutoffs: a pandas frequency (MS month starts, W-MON Mondays, QS "
        "quarter starts) or a number of days back from the test cutoff (14d)",
    )
    n_iter: int = _parameter(
        6,
        "--n-iter",
        "search iterations per model",
        help_in={"retrain": _LOOP_N_ITER, "simulate": _LOOP_N_ITER},
    )
    validation_folds: int = _parameter(
        2,
        "--validation-folds",
        "rolling validation folds that choose the model and its hyperparameters",
    )
    recency_half_life: float = _parameter(
        0.0,
        "--recency-half-life",
        "newer cutoffs weigh more in every fit: weights halve every this many cutoffs back "
        "(0: equal weights)",
    )
    seed: int = _parameter(
        42,
        "--seed",
        "random seed (data and search)",
        help_in={
            "retrain": "random seed of the search",
            "simulate": "random seed (data and models)",
        },
    )
    min_f1: float = _parameter(
        0.5, "--min-f1", "minimum test F1", help_in={"retrain": "gate: minimum test F1"}
    )
    min_roc_auc: float = _parameter(
        0.7, "--min-roc-auc", "minimum test ROC AUC", help_in={"retrain": "gate: minimum ROC AUC"}
    )
    max_train_test_gap: float = _parameter(
        0.15,
        "--max-gap",
        "max train-test ROC AUC gap",
        help_in={"retrain": "gate: max train-test gap"},
    )
    promotion_margin: float = _parameter(
        0.0,
        "--margin",
        "margin by which to beat the champion",
        help_in={"retrain": "promotion margin"},
    )
    retrain_threshold: float = _parameter(
        0.0,
        "--retrain-threshold",
        "retrain when the latest matured F1 is below this absolute floor (0: off)",
    )
    performance_drop: float = _parameter(
        0.05,
        "--performance-drop",
        "retrain when the matured F1 falls more than this below the champion's held-out F1",
    )
    drift_threshold: float = _parameter(
        0.3, "--drift-threshold", "drift counts when this share of monitored features drifted"
    )
    drift_persistence: int = _parameter(
        2, "--drift-persistence", "drift retrains after this many consecutive periods"
    )
    drift_effect_floor: float = _parameter(
        0.2,
        "--drift-effect-floor",
        "drift retrains at once when enough features moved by this effect size (distance)",
    )
    backoff_periods: int = _parameter(
        2,
        "--backoff-periods",
        "after a retrain that did not promote, drift alone waits this many periods",
    )
    prediction_drift_triggers: bool = _parameter(
        True,
        "--no-prediction-drift",
        "do not retrain on prediction drift alone (still reported)",
        negated=True,
    )
    candidate_models: tuple[str, ...] = _parameter(
        ("xgboost", "logistic_regression", "random_forest"),
        "--candidate-models",
        "challenger models trained in parallel",
        listed=True,
    )

    def as_arguments(self) -> dict[str, Any]:
        """The parameters as pipeline arguments (lists where KFP wants a list)."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(self).items()
        }


PROTOCOL = Protocol()
"""The defaults of a training run (``churn run``, the training pipeline)."""

RETRAINING_PROTOCOL = dataclasses.replace(PROTOCOL, n_iter=4)
"""The defaults of a retraining run: a smaller search per challenger."""

SIMULATION_PROTOCOL = dataclasses.replace(
    PROTOCOL,
    n_iter=2,
    validation_folds=1,
    n_train_cutoffs=2,
    min_f1=0.4,
    min_roc_auc=0.65,
    max_train_test_gap=0.2,
    drift_threshold=0.05,
    drift_persistence=3,
    prediction_drift_triggers=False,
    candidate_models=("xgboost",),
)
"""The defaults of ``churn simulate``: small searches of one model (it trains many times), a
gate and a drift share tuned to its small synthetic months. Their feature and score
distributions wander a little even without drift (seasons, an ageing customer base), which
that low share flags, so data drift alone retrains once it has lasted a quarter, and the
champion's scores moving is reported but does not retrain by itself (a performance drop or
large data drift still does)."""


POLICY_PARAMETERS = (
    "retrain_threshold",
    "performance_drop",
    "drift_threshold",
    "drift_persistence",
    "drift_effect_floor",
    "backoff_periods",
)
"""The thresholds of the retraining decision (``prediction_drift_triggers`` is a switch)."""


def option_of(name: str) -> Option:
    """The command-line option of the protocol parameter ``name``."""
    found = {f.name: f for f in dataclasses.fields(Protocol)}
    if name not in found:
        raise KeyError(f"{name!r} is not a protocol parameter")
    return found[name].metadata["option"]


def pipeline_arguments(
    protocol: Protocol, parameters: Collection[str], **inputs: Any
) -> dict[str, Any]:
    """The arguments of a pipeline: the protocol parameters it takes, and its run inputs.

    Args:
        protocol: The protocol of the run.
        parameters: The names of the pipeline's parameters; protocol parameters the
            pipeline does not take are left out.
        **inputs: The run's other arguments (landing zone, model name, ...).

    Raises:
        ValueError: An input is not a parameter of the pipeline.
    """
    unknown = sorted(set(inputs) - set(parameters))
    if unknown:
        raise ValueError(f"not parameters of the pipeline: {', '.join(unknown)}")
    chosen = {k: v for k, v in protocol.as_arguments().items() if k in parameters}
    return {**chosen, **inputs}
