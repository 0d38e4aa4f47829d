"""The retraining decision and the alerts of a period: pure functions plus a webhook POST.

:func:`decide` turns the monitoring signals of a period into "retrain or not" and the
reasons. A challenger is trained when at least one of these rules fires (each reason
records its ``kind`` and the ``rule`` that fired):

- **degradation** (``below_champion_held_out``): the latest matured F1 is more than
  ``performance_drop`` below the champion's own held-out test F1 (what it scored on data it
  never trained on when it was registered); (``absolute_floor``): the matured F1 is below
  ``retrain_threshold`` (0 turns this off);
- **data drift**: more than ``drift_threshold`` of the monitored features drifted, and the
  drift either persisted (``persistence``: ``drift_persistence`` consecutive periods under
  the same champion, this one included) or is large (``effect_size``: more than
  ``drift_threshold`` of the features moved by at least ``drift_effect_floor``, the normed
  Wasserstein / Jensen-Shannon distance, not a p-value);
- **prediction drift** (when ``prediction_drift_triggers``): the champion's scores drifted,
  under the same persistence / effect-size rule;
- **forced** by the caller.

**Back-off:** after a retrain whose challenger was not promoted, drift alone does not
retrain again for ``backoff_periods`` periods (a degradation still does): the drift the
challenger could not turn into a better model is recorded as ``suppressed``, with the rule.
Drift that has not persisted yet and is not large is recorded as ``held`` with the count.

With ``retraining_enabled=False`` (the *frozen* policy) the same reasons are computed and
reported (``would_retrain``) but ``retrain`` stays False: the loop keeps monitoring.

:func:`build_alerts` turns a finished period into structured alert records
``{period, kind, severity, message, details}``; :func:`post_webhook` posts them as JSON.
"""

from __future__ import annotations

import json
import logging
import math
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "ABSOLUTE_FLOOR",
    "BACKOFF",
    "BELOW_HELD_OUT",
    "CHAMPION_KEPT",
    "DEGRADATION",
    "DRIFT",
    "EFFECT_SIZE",
    "FORCED",
    "PERSISTENCE",
    "PREDICTION_DRIFT",
    "PROMOTION",
    "SKIPPED",
    "WAITING",
    "WEBHOOK_KINDS",
    "Policy",
    "RetrainDecision",
    "Signals",
    "build_alerts",
    "decide",
    "log_alerts",
    "notify",
    "post_webhook",
    "skip_alert",
]

logger = logging.getLogger(__name__)

DEGRADATION = "degradation"
DRIFT = "drift"
PREDICTION_DRIFT = "prediction_drift"
FORCED = "forced"
PROMOTION = "promotion"
# the rules that fire
ABSOLUTE_FLOOR = "absolute_floor"
BELOW_HELD_OUT = "below_champion_held_out"
PERSISTENCE = "persistence"
EFFECT_SIZE = "effect_size"
BACKOFF = "backoff"
WAITING = "waiting_for_persistence"
CHAMPION_KEPT = "champion_kept"
SKIPPED = "skipped"

WEBHOOK_KINDS = frozenset({DEGRADATION, DRIFT, PREDICTION_DRIFT, PROMOTION})
"""Alert kinds posted to the webhook (skips and routine outcomes are only recorded)."""


@dataclass(frozen=True)
class Policy:
    """When to retrain: the bare rules by default (the pipelines pass the protocol's).

    Attributes:
        retrain_threshold: Retrain when the latest matured F1 is below this (0: off).
        drift_threshold: Drift counts when this share of monitored features drifted.
        prediction_drift_triggers: Whether drift of the champion's scores is a reason.
        retraining_enabled: False is the frozen policy: never retrain, keep monitoring.
        force: Retrain whatever the signals say (ignored when retraining is disabled).
        performance_drop: Retrain when the matured F1 is more than this below the
            champion's held-out test F1 (``None``: off).
        drift_persistence: Consecutive periods (this one included) drift must last to
            retrain, unless it is large (1: any drift).
        drift_effect_floor: Effect size (normed Wasserstein or Jensen-Shannon distance) from
            which a feature's drift is large; drift retrains at once when more than
            ``drift_threshold`` of the features are large (0: every drift is large).
        backoff_periods: Periods after a retrain that did not promote during which drift
            alone does not retrain (0: off).
    """

    retrain_threshold: float = 0.8
    drift_threshold: float = 0.3
    prediction_drift_triggers: bool = True
    retraining_enabled: bool = True
    force: bool = False
    performance_drop: float | None = None
    drift_persistence: int = 1
    drift_effect_floor: float = 0.0
    backoff_periods: int = 0


@dataclass(frozen=True)
class Signals:
    """What monitoring measured for a period.

    Attributes:
        latest_f1: F1 of the most recent matured cutoff, ``None`` before any has matured.
        latest_cutoff: That cutoff (ISO date), for the messages.
        drift_share: Share of drifted monitored features, ``None`` when not measured.
        drifted_columns: Names of the drifted monitored features.
        prediction_drift: Whether the champion's score distribution drifted.
        prediction_drift_score: The drift score of the scores, for the messages.
        champion_version: The champion that was monitored.
        champion_held_out_f1: Its held-out test F1 at registration, ``None`` when unknown.
        column_scores: ``(feature, effect size)`` of every monitored feature.
        history: Earlier periods, newest first: ``period``, ``champion``, ``drift_share``,
            ``prediction_drift``, ``retrained``, ``promoted`` (see
            :func:`churn_kfp.loop.monitor.recent_periods`).
    """

    latest_f1: float | None = None
    latest_cutoff: str = ""
    drift_share: float | None = None
    drifted_columns: tuple[str, ...] = ()
    prediction_drift: bool = False
    prediction_drift_score: float | None = None
    champion_version: str = ""
    champion_held_out_f1: float | None = None
    column_scores: tuple[tuple[str, float], ...] = ()
    history: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any]) -> Signals:
        """Reads the signals out of a monitoring summary (see ``components/monitoring.py``)."""
        perf = summary.get("latest_matured") or {}
        data = summary.get("drift") or {}
        pred = data.get("prediction") or {}
        champion = summary.get("champion") or {}
        measured = bool(data.get("n_columns"))
        scores = tuple(
            (str(name), score)
            for name, column in (data.get("columns") or {}).items()
            if (score := _finite((column or {}).get("score"))) is not None
        )
        return cls(
            latest_f1=_finite(perf.get("f1")),
            latest_cutoff=str(perf.get("cutoff") or ""),
            drift_share=_finite(data.get("share")) if measured else None,
            drifted_columns=tuple(data.get("drifted_columns") or ()),
            prediction_drift=bool(pred.get("drifted", False)),
            prediction_drift_score=_finite(pred.get("score")),
            champion_version=str(champion.get("version") or ""),
            champion_held_out_f1=_finite(champion.get("held_out_f1")),
            column_scores=scores if measured else (),
            history=tuple(summary.get("history") or ()),
        )


@dataclass
class RetrainDecision:
    """Outcome of :func:`decide`.

    Attributes:
        retrain: Whether to train a challenger now.
        would_retrain: Whether the signals ask for it (also under the frozen policy).
        reasons: ``{"kind", "rule", "message"}`` per rule that fired, in a fixed order.
        policy: The policy applied (as a dict).
        summary: One line for logs and tables.
        held: Signals that did not fire (yet): drift waiting for persistence, or drift
            suppressed by the back-off; same keys as ``reasons``.
        evidence: What the rules looked at: ``drift_periods``, ``prediction_drift_periods``,
            ``large_drift_share``, ``champion_held_out_f1``, ``backoff_remaining``.
    """

    retrain: bool
    would_retrain: bool
    reasons: list[dict[str, str]] = field(default_factory=list)
    policy: dict[str, Any] = field(default_factory=dict)
    summary: str = ""
    held: list[dict[str, str]] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(result) or math.isinf(result) else result


def decide(signals: Signals, policy: Policy) -> RetrainDecision:
    """Decides whether to retrain (see the module docstring).

    Args:
        signals: The period's monitoring signals (with the earlier periods).
        policy: Thresholds and switches.

    Returns:
        The decision with every rule that fired, and the signals held back.
    """
    reasons: list[dict[str, str]] = []
    held: list[dict[str, str]] = []
    if policy.force:
        reasons.append(_reason(FORCED, FORCED, "retraining forced by the caller"))
    reasons += _degradation(signals, policy)
    drift_periods = _persisted(signals, lambda h: _exceeds(h.get("drift_share"), policy))
    large_share = _large_share(signals, policy.drift_effect_floor)
    if signals.drift_share is not None and signals.drift_share > policy.drift_threshold:
        columns = ", ".join(signals.drifted_columns[:8])
        more = len(signals.drifted_columns) - 8
        what = (
            f"data drift: {signals.drift_share:.0%} of monitored features drifted "
            f"(> {policy.drift_threshold:.0%})"
            + (f": {columns}" if columns else "")
            + (f" and {more} more" if more > 0 else "")
        )
        reasons_or_held = _drift_rule(
            DRIFT, what, drift_periods, large_share > policy.drift_threshold, policy
        )
        (reasons if reasons_or_held[0] else held).append(reasons_or_held[1])
    prediction_periods = _persisted(signals, lambda h: bool(h.get("prediction_drift")))
    if policy.prediction_drift_triggers and signals.prediction_drift:
        score = signals.prediction_drift_score
        what = "prediction drift: the champion's churn scores moved" + (
            f" (drift score {score:.3f})" if score is not None else ""
        )
        large = score is not None and score >= policy.drift_effect_floor
        fired, entry = _drift_rule(PREDICTION_DRIFT, what, prediction_periods, large, policy)
        (reasons if fired else held).append(entry)
    backoff = _backoff_remaining(signals, policy)
    if backoff and not any(r["kind"] in (DEGRADATION, FORCED) for r in reasons):
        for reason in [r for r in reasons if r["kind"] in (DRIFT, PREDICTION_DRIFT)]:
            reasons.remove(reason)
            held.append(
                {
                    **reason,
                    "rule": BACKOFF,
                    "message": f"{reason['message']}; suppressed: a retrain without "
                    f"promotion backs off drift for {backoff} more period(s)",
                }
            )
    would = bool(reasons)
    retrain = would and policy.retraining_enabled
    if retrain:
        summary = "retrain: " + "; ".join(r["message"] for r in reasons)
    elif would:
        summary = "frozen policy, not retraining although: " + "; ".join(
            r["message"] for r in reasons
        )
    else:
        summary = "no retraining: " + _healthy(signals, policy)
        if held:
            summary += "; held: " + "; ".join(h["message"] for h in held)
    return RetrainDecision(
        retrain=retrain,
        would_retrain=would,
        reasons=reasons,
        policy=asdict(policy),
        summary=summary,
        held=held,
        evidence={
            "drift_periods": drift_periods,
            "prediction_drift_periods": prediction_periods,
            "large_drift_share": large_share,
            "champion_held_out_f1": signals.champion_held_out_f1,
            "backoff_remaining": backoff,
        },
    )


def _reason(kind: str, rule: str, message: str) -> dict[str, str]:
    return {"kind": kind, "rule": rule, "message": message}


def _degradation(signals: Signals, policy: Policy) -> list[dict[str, str]]:
    """The performance rules: below the champion's own held-out F1, or an absolute floor."""
    f1 = signals.latest_f1
    if f1 is None:
        return []
    at = f" at cutoff {signals.latest_cutoff}" if signals.latest_cutoff else ""
    held_out = signals.champion_held_out_f1
    drop = policy.performance_drop
    if drop is not None and held_out is not None and f1 < held_out - drop:
        return [
            _reason(
                DEGRADATION,
                BELOW_HELD_OUT,
                f"matured F1 {f1:.3f}{at} is more than {policy.performance_drop:.3f} below "
                f"the champion's held-out F1 {held_out:.3f}",
            )
        ]
    if f1 < policy.retrain_threshold:
        return [
            _reason(
                DEGRADATION,
                ABSOLUTE_FLOOR,
                f"matured F1 {f1:.3f}{at} is below the retrain threshold "
                f"{policy.retrain_threshold:.3f}",
            )
        ]
    return []


def _exceeds(share: Any, policy: Policy) -> bool:
    value = _finite(share)
    return value is not None and value > policy.drift_threshold


def _persisted(signals: Signals, drifted: Any) -> int:
    """Consecutive periods, this one first, in which ``drifted`` held under this champion."""
    current = {"drift_share": signals.drift_share, "prediction_drift": signals.prediction_drift}
    if not drifted(current):
        return 0
    count = 1
    for earlier in signals.history:
        same_champion = str(earlier.get("champion") or "") == signals.champion_version
        if not same_champion or not drifted(earlier):
            break
        count += 1
    return count


def _large_share(signals: Signals, floor: float) -> float:
    """Share of monitored features whose drift effect size reaches ``floor``."""
    if not signals.column_scores:
        return 1.0 if signals.drift_share and floor <= 0 else 0.0
    large = sum(1 for _, score in signals.column_scores if score >= floor)
    return large / len(signals.column_scores)


def _drift_rule(
    kind: str, what: str, periods: int, large: bool, policy: Policy
) -> tuple[bool, dict[str, str]]:
    """Whether a drift signal fires (persistence, then effect size), with its record."""
    if periods >= policy.drift_persistence:
        return True, _reason(kind, PERSISTENCE, f"{what}; for {periods} period(s)")
    if large:
        return True, _reason(
            kind, EFFECT_SIZE, f"{what}; effect size at least {policy.drift_effect_floor:.2f}"
        )
    return False, _reason(
        kind,
        WAITING,
        f"{what}; {periods} of {policy.drift_persistence} periods, effects below "
        f"{policy.drift_effect_floor:.2f}",
    )


def _backoff_remaining(signals: Signals, policy: Policy) -> int:
    """Periods of back-off left after the latest retrain, when it did not promote."""
    if policy.backoff_periods <= 0:
        return 0
    for distance, earlier in enumerate(signals.history, start=1):
        if earlier.get("retrained"):
            if earlier.get("promoted") or distance > policy.backoff_periods:
                return 0
            return policy.backoff_periods - distance + 1
    return 0


def _healthy(signals: Signals, policy: Policy) -> str:
    parts = []
    held_out = signals.champion_held_out_f1
    if signals.latest_f1 is None:
        parts.append("no matured labels yet")
    elif policy.performance_drop is not None and held_out is not None:
        parts.append(
            f"F1 {signals.latest_f1:.3f} within {policy.performance_drop:.3f} of the champion's "
            f"held-out {held_out:.3f}"
        )
    else:
        parts.append(f"F1 {signals.latest_f1:.3f} >= {policy.retrain_threshold:.3f}")
    if signals.drift_share is None:
        parts.append("drift not measured")
    else:
        relation = ">" if signals.drift_share > policy.drift_threshold else "<="
        parts.append(
            f"drift share {signals.drift_share:.0%} {relation} {policy.drift_threshold:.0%}"
        )
    if signals.prediction_drift and not policy.prediction_drift_triggers:
        parts.append("prediction drift reported only")
    return ", ".join(parts)


def build_alerts(
    period: str,
    decision: Mapping[str, Any],
    registration: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The structured alerts of a finished period.

    One alert per retraining reason (degradation, drift, prediction drift, forced; severity
    ``warning``, or ``info`` for forced), plus ``promotion`` when a challenger took the
    champion alias, or ``champion_kept`` when one was trained but lost.

    Args:
        period: The period (``YYYY-MM``).
        decision: :meth:`RetrainDecision.to_dict` output.
        registration: The registration summary when a challenger was trained.

    Returns:
        Alert records ``{period, kind, severity, message, details}``.
    """
    alerts = []
    for reason in decision.get("reasons", []):
        kind = reason.get("kind", "")
        alerts.append(
            {
                "period": period,
                "kind": kind,
                "severity": "info" if kind == FORCED else "warning",
                "message": reason.get("message", ""),
                "details": {
                    "retrain": bool(decision.get("retrain")),
                    "retraining_enabled": bool(
                        (decision.get("policy") or {}).get("retraining_enabled", True)
                    ),
                },
            }
        )
    if registration:
        promoted = bool(registration.get("promoted"))
        version = registration.get("model_version")
        details = {
            key: registration.get(key)
            for key in (
                "model_name",
                "model_version",
                "champion_version",
                "previous_champion_version",
                "metric",
                "candidate_metric",
                "champion_metric",
                "decision_reason",
            )
        }
        if promoted:
            message = (
                f"version {version} promoted to champion (was "
                f"{registration.get('previous_champion_version')}): "
                f"{registration.get('decision_reason')}"
            )
        else:
            message = (
                f"challenger version {version} not promoted, champion stays "
                f"{registration.get('champion_version')}: {registration.get('decision_reason')}"
            )
        alerts.append(
            {
                "period": period,
                "kind": PROMOTION if promoted else CHAMPION_KEPT,
                "severity": "info",
                "message": message,
                "details": details,
            }
        )
    return alerts


def skip_alert(period: str, reason: str) -> dict[str, Any]:
    """The record of a run that found nothing to do."""
    return {
        "period": period or "",
        "kind": SKIPPED,
        "severity": "info",
        "message": f"skipped: {reason}",
        "details": {},
    }


def log_alerts(alerts: list[dict[str, Any]]) -> None:
    """One log line per alert (warnings for degradation and drift)."""
    for alert in alerts:
        level = logging.WARNING if alert.get("severity") == "warning" else logging.INFO
        logger.log(level, "ALERT [%s] %s: %s", alert["kind"], alert["period"], alert["message"])


def post_webhook(url: str, payload: Mapping[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
    """Posts a JSON payload; never raises (an unreachable webhook must not fail a run).

    Args:
        url: ``http://`` or ``https://`` endpoint.
        payload: JSON-serialisable body.
        timeout_s: Connect + read timeout.

    Returns:
        ``{"url", "ok", "status"}`` plus ``"error"`` when the POST failed.
    """
    if not url.startswith(("http://", "https://")):
        return {"url": url, "ok": False, "status": None, "error": "not an http(s) URL"}
    body = json.dumps(payload, default=str).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "churn-kfp-alerts"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            status = int(response.status)
            return {"url": url, "ok": 200 <= status < 300, "status": status}
    except urllib.error.HTTPError as exc:
        logger.warning("alert webhook %s answered %s", url, exc.code)
        return {"url": url, "ok": False, "status": int(exc.code), "error": str(exc)}
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        logger.warning("alert webhook %s unreachable: %s", url, exc)
        return {"url": url, "ok": False, "status": None, "error": str(exc)}


def notify(
    url: str, period: str, alerts: list[dict[str, Any]], timeout_s: float = 5.0
) -> dict[str, Any] | None:
    """Posts the alerts worth a notification (:data:`WEBHOOK_KINDS`) in one JSON body.

    Returns:
        The :func:`post_webhook` result, or ``None`` when there was nothing to post or no URL.
    """
    wanted = [a for a in alerts if a.get("kind") in WEBHOOK_KINDS]
    if not url or not wanted:
        return None
    return post_webhook(
        url, {"source": "churn-kfp", "period": period, "alerts": wanted}, timeout_s=timeout_s
    )
