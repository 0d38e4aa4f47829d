"""Wall time of the retraining pipeline: a run that retrains, one that monitors, one that skips.

All runs go through ``kfp.local`` on synthetic data in a temporary ``CHURN_HOME``. The
baseline, measured in the same bench, is the training pipeline on the first four months
(the run every retraining run is compared with). Then:

- **retrain**: month 5 arrives, the run is forced to retrain (monitoring + the whole
  training branch + champion/challenger + commit);
- **skip**: the same run again: no new data, it ends after the new-data check;
- **monitor only**: month 6 arrives, retraining disabled (monitoring, Evidently drift,
  delayed-label performance, commit; no training).

Each local task pays a process start plus its imports (MLflow, Evidently), which dominates
the skip and monitor-only figures. Run ``python bench/retraining_bench.py [--quick]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

try:
    import churn_kfp  # noqa: F401
except ImportError:  # running from a source checkout without installation
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

ENV_KEYS = ("CHURN_HOME", "CHURN_LANDING_ZONE", "MLFLOW_TRACKING_URI", "CHURN_ARTIFACT_ROOT")


def run(quick: bool = False) -> dict[str, Any]:
    """Times the runs (see the module docstring) and returns the figures."""
    from churn_kfp.core.config import Settings
    from churn_kfp.core.protocol import SIMULATION_PROTOCOL
    from churn_kfp.data import datagen
    from churn_kfp.data.storage import open_landing_zone
    from churn_kfp.runs import simulation
    from churn_kfp.runs.retraining import restored_print, run_retraining
    from churn_kfp.runs.training import run_training

    n_customers = 1500 if quick else 5000
    protocol = dataclasses.replace(SIMULATION_PROTOCOL, n_iter=1 if quick else 2)
    seed = protocol.seed
    saved = {k: os.environ.get(k) for k in ENV_KEYS}
    try:
        with tempfile.TemporaryDirectory(prefix="churn-bench-") as tmp:
            for key in ENV_KEYS:
                os.environ.pop(key, None)
            os.environ["CHURN_HOME"] = tmp
            settings = Settings.from_env()
            zone = open_landing_zone(settings.landing_zone)
            data = datagen.simulate(
                n_customers=n_customers, n_months=6, seed=seed, drift_from_month=5
            )

            def write(months):
                datagen.write_to_landing_zone(dataclasses.replace(data, months=months), zone)

            write(data.months[:4])
            arguments = simulation.training_arguments_of(settings, protocol)
            started = time.perf_counter()
            with restored_print():
                trained = run_training(arguments, settings, quiet=True)
            training_s = time.perf_counter() - started

            retrain_args = simulation.retraining_arguments_of(
                settings, protocol, simulation.RETRAIN
            )
            write(data.months[:5])  # the generator replaces its dataset whole: all months so far
            started = time.perf_counter()
            retrained = run_retraining(dict(retrain_args, force=True), settings, quiet=True)
            retrain_s = time.perf_counter() - started

            started = time.perf_counter()
            skipped = run_retraining(dict(retrain_args), settings, quiet=True)
            skip_s = time.perf_counter() - started

            write(data.months[:6])
            started = time.perf_counter()
            monitored = run_retraining(
                dict(retrain_args, retraining_enabled=False), settings, quiet=True
            )
            monitor_s = time.perf_counter() - started
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert retrained["status"] == "succeeded" and retrained["retrained"], retrained
    assert skipped["status"] == "skipped", skipped
    assert monitored["status"] == "succeeded" and not monitored["retrained"], monitored
    return {
        "n_customers": n_customers,
        "n_iter": protocol.n_iter,
        "baseline_training_run_s": round(training_s, 1),
        "retrain_run_s": round(retrain_s, 1),
        "monitor_only_run_s": round(monitor_s, 1),
        "skip_run_s": round(skip_s, 1),
        "retrain_vs_training": round(retrain_s / training_s, 2),
        "skip_vs_training": round(skip_s / training_s, 3),
        "scored_customers": retrained["metrics"]["scored_customers"],
        "challenger_version": (retrained.get("registration") or {}).get("model_version"),
        "first_model_test_f1": trained["metrics"]["f1"],
        "note": "wall time through kfp.local incl. process start and imports per task",
    }


def main(argv: list[str] | None = None) -> int:
    """Runs the bench and prints (and optionally writes) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1500 customers, 1 search iter")
    parser.add_argument("--out", help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    figures = run(quick=args.quick)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
