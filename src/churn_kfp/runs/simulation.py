"""Month-by-month replay of the continuous-learning loop: retraining vs a frozen model.

:func:`run_simulation` generates seeded synthetic data (:func:`churn_kfp.data.datagen.simulate`)
and runs three *arms* side by side, each in its own sub-home
(``$CHURN_HOME/simulation/<arm>/``: landing zone, MLflow database, kfp.local outputs): the
``retrain`` policy and the ``frozen`` first model on data with persistent concept drift, and
the retraining policy on the same world without drift (``no_drift``, whose retrains are
false alarms):

1. the first ``initial_months`` months (before any drift, the same in every arm) are
   written to the landing zone and the **training pipeline** trains the first champion,
   once: the other arms start from a copy of that landing zone and MLflow database;
2. for every following month, that month's partitions are written and the **retraining
   pipeline** runs once: it scores the month's new cutoff, judges the predictions whose
   churn window has just passed, measures drift and, under the ``retrain`` policy, trains
   a challenger when the signals say so (``retrain``, ``no_drift``). The ``frozen`` policy
   runs the same pipeline with ``retraining_enabled=False``: it monitors but keeps its first
   model.

Row ``m`` of the result is the run for month ``m``: its F1 is that of the predictions made
for the first day of month ``m`` (by the champion of the previous run), judged against who
actually churned during month ``m``. Everything is seeded: the same arguments give the same
numbers (only the ``elapsed_s`` fields differ).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

from churn_kfp.core.config import MODEL_NAME, Settings
from churn_kfp.core.protocol import SIMULATION_PROTOCOL, Protocol

RETRAIN, FROZEN, NO_DRIFT = "retrain", "frozen", "no_drift"
POLICIES = (RETRAIN, FROZEN, NO_DRIFT)
"""The arms: the retraining policy and the frozen first model on the drifting data, and the
retraining policy on the same world without drift (its retrains are false alarms)."""
DRIFTING = (RETRAIN, FROZEN)
RETRAINING = (RETRAIN, NO_DRIFT)

MONTHS = 16
DRIFT_FROM = 10
INITIAL_MONTHS = 4
"""Defaults: a first model on January..April, then 12 monitored months, drift from the 6th."""
RECOVERY_TOLERANCE = 0.03
"""Recovered: the retraining policy's matured F1 is back within this of its pre-drift mean."""
MIN_F1_GAIN = 0.05
"""The retraining policy beats the frozen model by this much mean F1 over the drift months."""
_ENV_KEYS = ("CHURN_HOME", "CHURN_LANDING_ZONE", "MLFLOW_TRACKING_URI", "CHURN_ARTIFACT_ROOT")


def policy_settings(home: Path, policy: str) -> Settings:
    """The settings of one policy's sub-home (its own landing zone and MLflow database)."""
    return Settings.from_env({"CHURN_HOME": str(home / "simulation" / policy)})


def training_arguments_of(settings: Settings, protocol: Protocol) -> dict[str, Any]:
    """The arguments of a policy's first training run: the data already in its landing zone."""
    from churn_kfp.runs.training import training_arguments

    return training_arguments(
        protocol,
        landing_zone=settings.landing_zone,
        model_name=MODEL_NAME,
        generate=False,
        until="",
    )


def retraining_arguments_of(settings: Settings, protocol: Protocol, policy: str) -> dict[str, Any]:
    """The arguments of a policy's monthly retraining run (``frozen`` never retrains)."""
    from churn_kfp.runs.retraining import retraining_arguments

    return retraining_arguments(
        protocol,
        landing_zone=settings.landing_zone,
        model_name=MODEL_NAME,
        period="",
        retraining_enabled=policy in RETRAINING,
        force=False,
        drift_columns="",
        webhook_url="",
    )


def _write_months(data: Any, settings: Settings, months: tuple[str, ...]) -> None:
    """Writes the data of ``months`` (the generator replaces its whole dataset each time)."""
    from churn_kfp.data import datagen
    from churn_kfp.data.storage import open_landing_zone

    zone = open_landing_zone(settings.landing_zone)
    datagen.write_to_landing_zone(dataclasses.replace(data, months=months), zone)


def _month_row(period_summary: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """One policy's cell of a month: what its run measured and did."""
    latest = period_summary.get("latest_matured") or {}
    drift = period_summary.get("drift") or {}
    decision = period_summary.get("decision") or {}
    registration = period_summary.get("registration") or {}
    prediction = drift.get("prediction") or {}
    return {
        "matured_cutoff": latest.get("cutoff"),
        "f1": _num(latest.get("f1")),
        "precision": _num(latest.get("precision")),
        "recall": _num(latest.get("recall")),
        "roc_auc": _num(latest.get("roc_auc")),
        "base_rate": _num(latest.get("base_rate")),
        "scored_by": latest.get("model_version"),
        "prediction_source": latest.get("source"),
        "drift_share": _num(drift.get("share")),
        "drifted_columns": drift.get("drifted_columns") or [],
        "prediction_drift_score": _num(prediction.get("score")),
        "prediction_drift": bool(prediction.get("drifted")),
        "would_retrain": bool(decision.get("would_retrain")),
        "retrained": bool(decision.get("retrain")),
        "reasons": [r.get("kind") for r in decision.get("reasons", [])],
        "rules": [r.get("rule") for r in decision.get("reasons", [])],
        "reason_messages": [r.get("message") for r in decision.get("reasons", [])],
        "held": [f"{h.get('kind')}:{h.get('rule')}" for h in decision.get("held", [])],
        "challenger_version": registration.get("model_version") if registration else None,
        "promoted": bool(registration.get("promoted")) if registration else False,
        "promotion_reason": registration.get("decision_reason") if registration else None,
        "champion_version": period_summary.get("champion_after"),
        "status": run.get("status"),
        "elapsed_s": run.get("elapsed_s"),
    }


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(result) else round(result, 4)


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(sum(present) / len(present), 4) if present else None


def _arm_data(policy: str, data_args: dict[str, Any]) -> Any:
    from churn_kfp.data import datagen

    if policy not in DRIFTING:
        data_args = {**data_args, "drift_from_month": None}
    return datagen.simulate(**data_args)


def _say(verbose: bool, line: str) -> None:
    if verbose:
        print(line, flush=True)


def _train_first(
    policy: str,
    home: str,
    data_args: dict[str, Any],
    initial_months: int,
    protocol: Protocol,
    quiet: bool,
    verbose_progress: bool,
) -> dict[str, Any]:
    """Trains the first champion in one arm's sub-home (the months before any drift)."""
    from churn_kfp.runs.retraining import restored_print
    from churn_kfp.runs.training import run_training

    data = _arm_data(policy, data_args)
    settings = policy_settings(Path(home), policy)
    _write_months(data, settings, data.months[:initial_months])
    with restored_print():
        summary = run_training(training_arguments_of(settings, protocol), settings, quiet=quiet)
    training = {
        "period": data.months[initial_months - 1],
        "test_cutoff": (summary.get("lineage") or {}).get("test_cutoff"),
        "model_version": summary.get("model_version"),
        "champion_version": summary.get("champion_version"),
        "chosen_model": summary.get("chosen_model"),
        "f1": _num((summary.get("metrics") or {}).get("f1")),
        "roc_auc": _num((summary.get("metrics") or {}).get("roc_auc")),
        "refit_through": summary.get("refit_through"),
        "elapsed_s": summary.get("elapsed_s"),
    }
    _say(
        verbose_progress,
        f"[{policy}] trained on {data.months[0]}..{data.months[initial_months - 1]}: "
        f"v{training['champion_version']} ({training['chosen_model']}), test F1 {training['f1']}"
        f" ({training['elapsed_s']} s)",
    )
    return training


def _clone_arm(home: Path, source: str, target: str) -> None:
    """Gives ``target`` the first champion trained in ``source``'s sub-home.

    The months before the drift are the same in every arm, so the first model is trained
    once: the landing zone and the MLflow database are copied (the registered versions keep
    pointing at the source's artifact store, which the arms then share).
    """
    origin = policy_settings(home, source).home
    shutil.rmtree(policy_settings(home, target).home, ignore_errors=True)
    shutil.copytree(
        origin,
        policy_settings(home, target).home,
        ignore=shutil.ignore_patterns("kfp-local", "mlartifacts", "logs", "reports"),
    )


def _run_months(
    policy: str,
    home: str,
    data_args: dict[str, Any],
    initial_months: int,
    protocol: Protocol,
    quiet: bool,
    verbose_progress: bool,
) -> dict[str, Any]:
    """One arm's monthly retraining runs after the first champion (a worker process).

    Returns:
        ``{period: cell}``.
    """
    from churn_kfp.data.storage import open_landing_zone
    from churn_kfp.loop.state import period_key, read_json
    from churn_kfp.runs.retraining import run_retraining

    data = _arm_data(policy, data_args)
    settings = policy_settings(Path(home), policy)
    cells: dict[str, Any] = {}
    zone = open_landing_zone(settings.landing_zone)
    for index, period in enumerate(data.months[initial_months:], start=initial_months + 1):
        _write_months(data, settings, data.months[:index])
        run = run_retraining(
            retraining_arguments_of(settings, protocol, policy), settings, quiet=quiet
        )
        period_summary = read_json(zone, period_key(period)) or {}
        cells[period] = _month_row(period_summary, run)
        _say(verbose_progress, _progress_line(policy, period, cells[period]))
    return cells


def run_simulation(
    settings: Settings,
    months: int = MONTHS,
    drift_from: int = DRIFT_FROM,
    initial_months: int = INITIAL_MONTHS,
    n_customers: int = 5000,
    start: str = "2025-01",
    protocol: Protocol = SIMULATION_PROTOCOL,
    policies: tuple[str, ...] = POLICIES,
    quiet: bool = True,
    parallel: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Replays the loop month by month for each policy (see the module docstring).

    Args:
        settings: Where ``simulation.json``, the plot and the sub-homes go
            (``settings.home``).
        months: Months of data in total.
        drift_from: 1-based month from which the data drift (0: no drift).
        initial_months: Months the first model is trained on (at least 4: a training plan
            needs a training, a validation and a matured test cutoff).
        n_customers: Synthetic customers.
        start: First month ``YYYY-MM``.
        protocol: Training and policy settings; its ``seed`` seeds the data and the
            model search.
        policies: Which arms to run (``retrain``, ``frozen``, ``no_drift``).
        quiet: Hide the per-step logs of the pipeline runs.
        parallel: Run each policy in its own worker process (they share nothing but the
            seed); False runs them one after the other in this process.
        progress: Print one line per finished run.

    Returns:
        The result (also written to ``$CHURN_HOME/simulation.json``): ``parameters``,
        ``training`` (per arm), ``months`` (one entry per retraining run, with a cell
        per arm), ``summary`` (mean F1 before/over the drift months, first detection,
        first retrain, ``recovery_months``, ``no_drift`` retrains) and ``checks`` (the
        properties the simulation is meant to show).

    Raises:
        PipelineRunError: A pipeline run failed.
        ValueError: Inconsistent arguments.
    """
    from churn_kfp.loop.periods import iso_date, period_cutoff

    if initial_months < 4:
        raise ValueError("initial_months must be >= 4 (train, validation and test cutoffs)")
    if months <= initial_months:
        raise ValueError(f"months ({months}) must exceed initial_months ({initial_months})")
    if drift_from and not initial_months < drift_from <= months:
        raise ValueError(
            f"drift_from must be within {initial_months + 1}..{months}, after the first "
            "model's months (or 0 for no drift)"
        )
    unknown = [p for p in policies if p not in POLICIES]
    if unknown or not policies:
        raise ValueError(f"unknown policies {unknown}; choose from {POLICIES}")
    home = settings.home
    saved_env = {k: os.environ.get(k) for k in _ENV_KEYS}
    started = time.perf_counter()
    shutil.rmtree(home / "simulation", ignore_errors=True)
    data_args = {
        "n_customers": n_customers,
        "n_months": months,
        "start": start,
        "seed": protocol.seed,
        "drift_from_month": drift_from or None,
    }
    periods = [str(p) for p in _period_range(start, months)]
    args = (str(home), data_args, initial_months, protocol, quiet, progress)
    first = policies[0]
    cells: dict[str, dict[str, Any]] = {}
    try:
        if parallel and len(policies) > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=len(policies), mp_context=context) as pool:
                training = pool.submit(_train_first, first, *args).result()
                for policy in policies[1:]:
                    _clone_arm(home, first, policy)
                futures = {p: pool.submit(_run_months, p, *args) for p in policies}
                cells = {p: future.result() for p, future in futures.items()}
        else:
            training = _train_first(first, *args)
            for policy in policies[1:]:
                _clone_arm(home, first, policy)
            cells = {p: _run_months(p, *args) for p in policies}
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    result: dict[str, Any] = {
        "parameters": {
            "months": months,
            "drift_from": drift_from,
            "drift_start_period": periods[drift_from - 1] if drift_from else None,
            "initial_months": initial_months,
            "n_customers": n_customers,
            "seed": protocol.seed,
            "start": start,
            "policies": list(policies),
            "options": dataclasses.asdict(protocol),
        },
        "training": {p: dict(training) for p in policies},
        "months": [
            {
                "month": index + 1,
                "period": periods[index],
                "drifted": bool(drift_from) and index + 1 >= drift_from,
                "drifted_arms": [p for p in policies if p in DRIFTING],
                "new_cutoff": iso_date(period_cutoff(periods[index])),
                "policies": {p: cells[p][periods[index]] for p in policies},
            }
            for index in range(initial_months, months)
        ],
    }
    result["summary"], result["checks"] = summarise(result)
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    result["plot_path"] = str(plot_timeline(result, settings.reports_dir / "simulation.png"))
    home.mkdir(parents=True, exist_ok=True)
    (home / "simulation.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def _period_range(start: str, months: int) -> list[str]:
    import pandas as pd

    return [str(p) for p in pd.period_range(start, periods=months, freq="M")]


def _progress_line(policy: str, period: str, cell: dict[str, Any]) -> str:
    action = "retrained" if cell["retrained"] else "kept"
    if cell["retrained"]:
        action += f" ({', '.join(cell['reasons'])}; v{cell['challenger_version']} "
        action += "promoted)" if cell["promoted"] else "not promoted)"
    return (
        f"[{policy}] {period}: matured F1 {cell['f1']} at {cell['matured_cutoff']}, "
        f"drift share {cell['drift_share']}, {action}, champion v{cell['champion_version']} "
        f"({cell['elapsed_s']} s)"
    )


def summarise(result: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Headline numbers and the properties the simulation should show.

    Returns:
        ``(summary, checks)``. ``summary``: per arm the mean matured F1 before the drift
        (the training test F1 when no loop month precedes the drift) and over the drift
        months; ``f1_gain_drift_months`` (retrain minus frozen over the drift months); the
        first drift month in which drift was detected (data or prediction drift), the first
        retrain and its reasons; ``recovery_months`` (months from the drift onset to the
        first month from which the retraining policy's matured F1 stays within
        :data:`RECOVERY_TOLERANCE` of its pre-drift mean, ``None`` if it never does);
        ``no_drift`` (``retrains``, ``promotions`` and ``months`` of the arm without drift).
        Means and recovery count each judged cutoff once (see :func:`_newly_judged`).
        ``checks``: ``frozen_f1_drops``, ``drift_detected_within_one_month``,
        ``retrain_triggered_with_reason``, ``retraining_beats_frozen`` (by at least 0.05
        mean F1 over the drift months), ``recovers_within_two_months`` and
        ``no_drift_retrains_at_most_once``; ``None`` when an arm is missing or there is no
        drift.
    """
    months = result["months"]
    policies = result["parameters"]["policies"]
    drift_from = result["parameters"]["drift_from"]
    summary: dict[str, Any] = {"mean_f1_before_drift": {}, "mean_f1_drift_months": {}}
    judged = {policy: _newly_judged(months, policy) for policy in policies}
    for policy in policies:
        before = [m["policies"][policy]["f1"] for m in judged[policy] if not m["drifted"]]
        if not before:
            before = [(result["training"].get(policy) or {}).get("f1")]
        summary["mean_f1_before_drift"][policy] = _mean(before)
        summary["mean_f1_drift_months"][policy] = _mean(
            [m["policies"][policy]["f1"] for m in judged[policy] if m["drifted"]]
        )
    detected = None
    first_retrain = None
    for m in months:
        if not m["drifted"]:
            continue
        for policy in [p for p in policies if p in DRIFTING]:
            cell = m["policies"][policy]
            kinds = set(cell["reasons"])
            if detected is None and kinds & {"drift", "prediction_drift"}:
                detected = {"period": m["period"], "month": m["month"], "policy": policy}
            if first_retrain is None and cell["retrained"]:
                first_retrain = {
                    "period": m["period"],
                    "month": m["month"],
                    "reasons": cell["reason_messages"],
                    "rules": cell.get("rules", []),
                    "challenger_version": cell["challenger_version"],
                    "promoted": cell["promoted"],
                }
    summary["drift_detected"] = detected
    summary["first_retrain"] = first_retrain
    retrain_drift = summary["mean_f1_drift_months"].get(RETRAIN)
    frozen_drift = summary["mean_f1_drift_months"].get(FROZEN)
    summary["f1_gain_drift_months"] = (
        None
        if retrain_drift is None or frozen_drift is None
        else round(retrain_drift - frozen_drift, 4)
    )
    summary["recovery_months"] = _recovery_months(
        judged.get(RETRAIN, []), drift_from, summary["mean_f1_before_drift"].get(RETRAIN)
    )
    if NO_DRIFT in policies:
        cells = [m["policies"][NO_DRIFT] for m in months]
        summary["no_drift"] = {
            "retrains": sum(1 for c in cells if c["retrained"]),
            "promotions": sum(1 for c in cells if c["promoted"]),
            "months": len(cells),
            "mean_f1": _mean([m["policies"][NO_DRIFT]["f1"] for m in judged[NO_DRIFT]]),
        }
    checks: dict[str, Any] = {}
    if drift_from:
        frozen_before = summary["mean_f1_before_drift"].get(FROZEN)
        checks["frozen_f1_drops"] = (
            None if frozen_before is None or frozen_drift is None else frozen_drift < frozen_before
        )
        checks["drift_detected_within_one_month"] = (
            detected is not None and detected["month"] <= drift_from + 1
        )
        checks["retrain_triggered_with_reason"] = bool(first_retrain and first_retrain["reasons"])
        gain = summary["f1_gain_drift_months"]
        checks["retraining_beats_frozen"] = None if gain is None else gain >= MIN_F1_GAIN
        recovery = summary["recovery_months"]
        checks["recovers_within_two_months"] = (
            None if RETRAIN not in policies else recovery is not None and recovery <= 2
        )
    if NO_DRIFT in policies:
        checks["no_drift_retrains_at_most_once"] = summary["no_drift"]["retrains"] <= 1
    return summary, checks


def _newly_judged(months: list[dict[str, Any]], policy: str) -> list[dict[str, Any]]:
    """The months in which ``policy`` judged a cutoff it had not judged before.

    A month too short for the churn horizon (a February under a 30-day window) leaves the
    month's own cutoff unmatured, so its run judges the previous cutoff again: counting it
    would count that cutoff twice.
    """
    seen: set[Any] = set()
    fresh = []
    for m in months:
        cutoff = m["policies"][policy]["matured_cutoff"]
        if cutoff is None or cutoff not in seen:
            fresh.append(m)
        seen.add(cutoff)
    return fresh


def _recovery_months(
    judged: list[dict[str, Any]], drift_from: int, before: float | None
) -> int | None:
    """Months from the drift onset until the retraining policy's F1 stays recovered.

    ``judged``: the months in which the retraining policy judged a new cutoff (none when
    the arm did not run).
    """
    if not drift_from or before is None:
        return None
    drifted = [m for m in judged if m["drifted"]]
    if not drifted:
        return None
    recovered_from = None
    for m in drifted:
        f1 = m["policies"][RETRAIN]["f1"]
        if f1 is not None and f1 >= before - RECOVERY_TOLERANCE:
            recovered_from = recovered_from if recovered_from is not None else m["month"]
        else:
            recovered_from = None
    return None if recovered_from is None else recovered_from - drift_from


def format_table(result: dict[str, Any]) -> str:
    """The simulation as a text table, one line per month, plus the headline and checks."""
    policies = result["parameters"]["policies"]
    header = f"{'month':<8}{'drift':<6}{'judged':<12}"
    for policy in policies:
        header += f"{'F1 ' + policy:>12}"
    for policy in policies:
        header += f"{'drift ' + policy:>16}"
    header += f"  {'action of the retraining arms':<60}{'champions':>12}"
    lines = [header, "-" * len(header)]
    for policy, train in result["training"].items():
        if policy != policies[0]:
            continue
        line = f"{train['period']:<8}{'':<6}{str(train.get('test_cutoff')) + '*':<12}"
        for p in policies:
            line += f"{_fmt(result['training'][p]['f1']):>12}"
        line += "".join(f"{'':>16}" for _ in policies)
        versions = "/".join(f"v{result['training'][p]['champion_version']}" for p in policies)
        line += f"  {'first model trained (*test F1)':<60}{versions:>12}"
        lines.append(line)
    fresh = {id(m) for m in _newly_judged(result["months"], policies[0])}
    for m in result["months"]:
        cells = m["policies"]
        first = cells[policies[0]]
        drifted = "yes" if m["drifted"] else ""
        judged = (first["matured_cutoff"] or "-") + ("" if id(m) in fresh else "=")
        line = f"{m['period']:<8}{drifted:<6}{judged:<12}"
        for policy in policies:
            line += f"{_fmt(cells[policy]['f1']):>12}"
        for policy in policies:
            share = cells[policy]["drift_share"]
            flag = "+p" if cells[policy]["prediction_drift"] else ""
            line += f"{(_fmt(share, pct=True) + flag):>16}"
        action = " | ".join(
            f"{p}: {_action(cells[p])}" for p in policies if p in RETRAINING
        ) or _action(first)
        versions = "/".join(f"v{cells[p]['champion_version']}" for p in policies)
        line += f"  {action[:60]:<60}{versions:>12}"
        lines.append(line)
    summary, checks = result.get("summary", {}), result.get("checks", {})
    lines.append("")
    lines.append(
        "F1 = matured F1 of the predictions for the 'judged' cutoff (labels of that month); "
        "drift = share of drifted monitored features (+p: prediction drift); champions = "
        + "/".join(policies)
        + "; = after the judged cutoff: judged again (the month's own label window was still "
        "open), counted once"
    )
    for key in ("mean_f1_before_drift", "mean_f1_drift_months"):
        values = ", ".join(f"{p} {_fmt(v)}" for p, v in summary.get(key, {}).items())
        lines.append(f"{key.replace('_', ' ')}: {values}")
    if summary.get("drift_detected"):
        d = summary["drift_detected"]
        lines.append(f"drift first detected in {d['period']} (month {d['month']})")
    if summary.get("first_retrain"):
        r = summary["first_retrain"]
        lines.append(f"first retrain in {r['period']}: {'; '.join(r['reasons'])}")
    if summary.get("f1_gain_drift_months") is not None:
        lines.append(
            f"retrain minus frozen over the drift months: {summary['f1_gain_drift_months']}"
        )
    if "recovery_months" in summary:
        lines.append(f"recovery months: {summary['recovery_months']}")
    if summary.get("no_drift"):
        nd = summary["no_drift"]
        lines.append(
            f"no-drift arm: {nd['retrains']} retrain(s), {nd['promotions']} promotion(s) in "
            f"{nd['months']} months (mean F1 {_fmt(nd['mean_f1'])})"
        )
    for key, value in checks.items():
        lines.append(f"check {key}: {'PASS' if value else 'FAIL' if value is False else 'n/a'}")
    lines.append(f"elapsed: {result.get('elapsed_s')} s")
    return "\n".join(lines)


_RULE_LABELS = {
    "below_champion_held_out": "perf",
    "absolute_floor": "floor",
    "effect_size": "effect",
    "persistence": "persist",
    "forced": "forced",
}
"""Short names of the decision rules on the plot."""


def _action(cell: dict[str, Any]) -> str:
    """What one arm did in a month, briefly (the rules that fired)."""
    if cell["retrained"]:
        fired = dict.fromkeys(_RULE_LABELS.get(r, r) for r in cell.get("rules", []) if r)
        rules = "+".join(fired) or ",".join(cell["reasons"])
        return f"retrain ({rules}) v{cell['challenger_version']} " + (
            "promoted" if cell["promoted"] else "lost"
        )
    if cell["would_retrain"]:
        return f"would retrain ({', '.join(cell['reasons'])})"
    return "held (" + ",".join(cell["held"]) + ")" if cell.get("held") else "kept"


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:.0%}" if pct else f"{value:.3f}"


def plot_timeline(result: dict[str, Any], path: Path) -> Path:
    """Draws F1 per month for each policy, drift shares and retrain events to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    policies = result["parameters"]["policies"]
    months = result["months"]
    fig = Figure(figsize=(9.5, 7))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    labels = [m["period"] for m in months]
    xs = list(range(len(months)))
    colors = {RETRAIN: "tab:blue", FROZEN: "tab:red", NO_DRIFT: "tab:gray"}
    styles = {RETRAIN: ("-", "o", 3), FROZEN: ("--", "s", 2), NO_DRIFT: (":", "D", 1)}
    names = {
        RETRAIN: "retraining policy (drift)",
        FROZEN: "frozen first model (drift)",
        NO_DRIFT: "retraining policy, no drift",
    }
    first_training: dict[str, Any] = next(iter(result["training"].values()), {})
    first_period = first_training.get("period")
    for policy in policies:
        train_f1 = (result["training"].get(policy) or {}).get("f1")
        ys = [m["policies"][policy]["f1"] for m in months]
        line, marker, order = styles.get(policy, ("-", "o", 2))
        top.plot(
            [-1, *xs],
            [train_f1, *ys],
            linestyle=line,
            marker=marker,
            color=colors.get(policy),
            zorder=order,
            label=names.get(policy, policy),
        )
        if policy in RETRAINING:
            events = [(x, m["policies"][policy]) for x, m in zip(xs, months, strict=True)]
            rows = (0.98, 0.91) if policy == RETRAIN else (0.84, 0.77)
            retrained = [(x, cell) for x, cell in events if cell["retrained"]]
            for index, (x, cell) in enumerate(retrained):
                row = rows[index % 2]  # neighbouring labels on alternate rows
                marker = "^" if cell["promoted"] else "v"
                top.scatter(
                    [x],
                    [cell["f1"] or 0],
                    s=140,
                    marker=marker,
                    facecolor="tab:green" if cell["promoted"] else "white",
                    edgecolor=colors[policy],
                    zorder=5,
                )
                rules = dict.fromkeys(_RULE_LABELS.get(r, r) for r in cell.get("rules", []))
                top.annotate(
                    f"{policy}: {'+'.join(r for r in rules if r)}\n"
                    + (
                        f"v{cell['challenger_version']} promoted"
                        if cell["promoted"]
                        else f"v{cell['challenger_version']} not promoted"
                    ),
                    (x, row),
                    xycoords=("data", "axes fraction"),
                    va="top",
                    ha="center",
                    fontsize=6,
                    color=colors[policy],
                )
    drift_from = result["parameters"]["drift_from"]
    drift_x = [x for x, m in zip(xs, months, strict=True) if m["drifted"]]
    for axis in (top, bottom):
        if drift_from and drift_x:
            axis.axvspan(min(drift_x) - 0.5, max(drift_x) + 0.5, color="orange", alpha=0.12)
    low, high = top.get_ylim()
    top.set_ylim(low, high + (high - low) * 0.5)  # room for the retrain labels
    top.set_ylabel("F1 of matured predictions")
    top.set_title(
        "Retraining vs frozen first model (drift) and retraining without drift: matured F1\n"
        "first point: the first model's test F1; shaded: drift months (drifting arms)\n"
        "triangles: retrains (filled: promoted, serves from the next month; open: kept)",
        fontsize=10,
    )
    top.legend(loc="best", fontsize=8)
    top.grid(alpha=0.3)
    width = 0.8 / max(1, len(policies))
    for k, policy in enumerate(policies):
        shares = [m["policies"][policy]["drift_share"] or 0 for m in months]
        offset = (k - (len(policies) - 1) / 2) * width
        bottom.bar(
            [x + offset for x in xs],
            shares,
            width=width,
            color=colors.get(policy),
            alpha=0.7,
            label=f"drift share ({policy})",
        )
        for x, m, share in zip(xs, months, shares, strict=True):
            if m["policies"][policy]["prediction_drift"]:
                bottom.annotate(
                    "pred.\ndrift",
                    (x + offset, share),
                    textcoords="offset points",
                    xytext=(0, 2),
                    ha="center",
                    fontsize=6,
                )
    threshold = result["parameters"]["options"]["drift_threshold"]
    bottom.axhline(threshold, color="black", linestyle="--", linewidth=1, label="threshold")
    bottom.set_ylabel("share of drifted features")
    bottom.set_ylim(0, 1)
    bottom.legend(loc="upper left", fontsize=8)
    bottom.grid(alpha=0.3)
    bottom.set_xlabel("month processed (its F1 judges the predictions made for its first day)")
    bottom.set_xticks([-1, *xs])
    bottom.set_xticklabels([f"{first_period}\n(training)", *labels], fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
