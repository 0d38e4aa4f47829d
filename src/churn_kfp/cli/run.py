"""``churn run``: the training pipeline end to end on this machine (kfp.local)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from churn_kfp.core.config import MODEL_NAME, TRAINING_PIPELINE, Settings


def training_arguments(args: argparse.Namespace) -> dict:
    """Maps command-line options to training-pipeline parameters."""
    return {
        "landing_zone": args.landing_zone or "",
        "model_name": args.model_name,
        "generate": not args.no_generate,
        "n_customers": args.customers,
        "n_months": args.months,
        "start_month": args.start_month,
        "seed": args.seed,
        "drift_from_month": args.drift_from_month,
        "until": args.until,
        "horizon_days": args.horizon_days,
        "n_train_cutoffs": args.train_cutoffs,
        "eligibility_days": args.eligibility_days,
        "windows": args.windows,
        "test_cutoff": args.test_cutoff,
        "cutoff_spacing": args.cutoff_spacing,
        "n_iter": args.n_iter,
        "min_f1": args.min_f1,
        "min_roc_auc": args.min_roc_auc,
        "max_train_test_gap": args.max_gap,
        "promotion_margin": args.margin,
    }


def run_training(
    arguments: dict, settings: Settings, quiet: bool = False, progress: bool = False
) -> dict:
    """Runs the training pipeline locally and publishes its summary.

    ``quiet`` hides the task logs; with ``progress`` too, one line per finished task shows.

    Raises:
        PipelineRunError: A step failed (``last-run.json`` then records the failure).
    """
    from churn_kfp.orchestration.localrun import PipelineRunError, run_locally
    from churn_kfp.pipelines.training import training_pipeline
    from churn_kfp.runs import summary as summaries

    try:
        output, elapsed = run_locally(
            training_pipeline, arguments, settings, quiet=quiet, progress=progress
        )
    except PipelineRunError as exc:
        record_failure(settings, TRAINING_PIPELINE, exc)
        raise
    registered = json.loads(output)
    evaluation = json.loads(Path(registered["evaluation_path"]).read_text())
    result = summaries.build_training_summary(registered, evaluation, elapsed)
    return summaries.publish(result, settings)


def record_failure(settings: Settings, pipeline: str, exc: Exception) -> None:
    """Writes a failed status to ``last-run.json`` (earlier summaries stay under ``runs/``)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    failure = {
        "status": "failed",
        "pipeline": pipeline,
        "failed_step": getattr(exc, "task", None),
        "error": getattr(exc, "cause", None) or str(exc),
    }
    settings.last_run_path.write_text(json.dumps(failure, indent=2))


def _handle(args: argparse.Namespace) -> int:
    from churn_kfp.orchestration.localrun import PipelineRunError
    from churn_kfp.runs.summary import format_training_summary

    settings = Settings.from_env()
    try:
        result = run_training(training_arguments(args), settings, quiet=args.quiet, progress=True)
    except PipelineRunError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        print(f"nothing was promoted; details in {settings.last_run_path}", file=sys.stderr)
        if exc.log_path:
            print(f"task logs: {exc.log_path}", file=sys.stderr)
        return 1
    print(format_training_summary(result))
    print(f"summary: {settings.last_run_path}")
    return 0


def _cutoff_spacing(value: str) -> str:
    """Checks a ``--cutoff-spacing`` before any pipeline starts."""
    from churn_kfp.learn.features import parse_spacing

    try:
        parse_spacing(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that trains (run, example runs, simulate)."""
    data = parser.add_argument_group("data")
    data.add_argument("--landing-zone", help="landing-zone folder or s3:// URI")
    data.add_argument(
        "--no-generate",
        action="store_true",
        help="use the data already in the landing zone (e.g. after `churn import`)",
    )
    data.add_argument("--customers", type=int, default=5000, help="synthetic customers")
    data.add_argument("--months", type=int, default=6, help="synthetic months of history")
    data.add_argument("--start-month", default="2025-01", help="first synthetic month YYYY-MM")
    data.add_argument("--seed", type=int, default=42, help="random seed (data and search)")
    data.add_argument(
        "--drift-from-month", type=int, default=0, help="synthetic drift from this month (1-based)"
    )
    data.add_argument("--until", default="", help="only use partitions up to YYYY-MM")
    model = parser.add_argument_group("labels, features and training")
    model.add_argument("--horizon-days", type=int, default=30, help="churn window after a cutoff")
    model.add_argument("--train-cutoffs", type=int, default=3, help="training cutoffs")
    model.add_argument(
        "--eligibility-days", type=int, default=90, help="score customers active this recently"
    )
    model.add_argument("--windows", default="30,60,90", help="feature windows in days")
    model.add_argument(
        "--test-cutoff",
        default="",
        help="test cutoff YYYY-MM-DD (default: the latest whose churn window has passed)",
    )
    model.add_argument(
        "--cutoff-spacing",
        default="MS",
        type=_cutoff_spacing,
        help="grid of the cutoffs: a pandas frequency (MS month starts, W-MON Mondays, QS "
        "quarter starts) or a number of days back from the test cutoff (14d)",
    )
    model.add_argument("--n-iter", type=int, default=6, help="search iterations per model")
    gate = parser.add_argument_group("registration, validation gate and promotion")
    gate.add_argument("--model-name", default=MODEL_NAME, help="registered model (one per dataset)")
    gate.add_argument("--min-f1", type=float, default=0.5, help="minimum test F1")
    gate.add_argument("--min-roc-auc", type=float, default=0.7, help="minimum test ROC AUC")
    gate.add_argument("--max-gap", type=float, default=0.15, help="max train-test ROC AUC gap")
    gate.add_argument(
        "--margin", type=float, default=0.0, help="margin by which to beat the champion"
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="one line per finished step instead of the step logs",
    )


def register(subparsers) -> None:
    """Adds the ``run`` sub-command."""
    parser = subparsers.add_parser(
        "run",
        help="run the training pipeline locally (no cluster)",
        description="Run the churn-training pipeline through kfp.local.SubprocessRunner: "
        "generate (or read) data, validate, featurize, label, train XGBoost and baselines, "
        "evaluate, register in MLflow and promote the champion. Writes a summary to "
        "$CHURN_HOME/last-run.json and the HTML report to $CHURN_HOME/reports/.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_training_options(parser)
    parser.set_defaults(handler=_handle)
