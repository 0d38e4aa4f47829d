"""The retraining decision and the alerts of a period: pure functions plus a webhook POST.

:func:`decide` turns the monitoring signals of a period into "retrain or not" and the
reasons. A challenger is trained when at least one of these holds:

- **degradation**: the latest matured F1 (predictions whose churn window has passed) is
  below ``retrain_threshold``;
- **data drift**: the share of drifted monitored features exceeds ``drift_threshold``;
- **prediction drift**: the champion's score distribution drifted (when
  ``prediction_drift_triggers``);
- **forced** by the caller.

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
    "CHAMPION_KEPT",
    "DEGRADATION",
    "DRIFT",
    "FORCED",
    "PREDICTION_DRIFT",
    "PROMOTION",
    "SKIPPED",
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
CHAMPION_KEPT = "champion_kept"
SKIPPED = "skipped"

WEBHOOK_KINDS = frozenset({DEGRADATION, DRIFT, PREDICTION_DRIFT, PROMOTION})
"""Alert kinds posted to the webhook (skips and routine outcomes are only recorded)."""


@dataclass(frozen=True)
class Policy:
    """When to retrain.

    Attributes:
        retrain_threshold: Retrain when the latest matured F1 is below this.
        drift_threshold: Retrain when the share of drifted monitored features exceeds this.
        prediction_drift_triggers: Whether drift of the champion's scores is a reason.
        retraining_enabled: False is the frozen policy: never retrain, keep monitoring.
        force: Retrain whatever the signals say (ignored when retraining is disabled).
    """

    retrain_threshold: float = 0.8
    drift_threshold: float = 0.3
    prediction_drift_triggers: bool = True
    retraining_enabled: bool = True
    force: bool = False


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
    """

    latest_f1: float | None = None
    latest_cutoff: str = ""
    drift_share: float | None = None
    drifted_columns: tuple[str, ...] = ()
    prediction_drift: bool = False
    prediction_drift_score: float | None = None

    @classmethod
    def from_summary(cls, summary: Mapping[str, Any]) -> Signals:
        """Reads the signals out of a monitoring summary (see ``components/monitoring.py``)."""
        perf = summary.get("latest_matured") or {}
        data = summary.get("drift") or {}
        pred = data.get("prediction") or {}
        measured = bool(data.get("n_columns"))
        return cls(
            latest_f1=_finite(perf.get("f1")),
            latest_cutoff=str(perf.get("cutoff") or ""),
            drift_share=_finite(data.get("share")) if measured else None,
            drifted_columns=tuple(data.get("drifted_columns") or ()),
            prediction_drift=bool(pred.get("drifted", False)),
            prediction_drift_score=_finite(pred.get("score")),
        )


@dataclass
class RetrainDecision:
    """Outcome of :func:`decide`.

    Attributes:
        retrain: Whether to train a challenger now.
        would_retrain: Whether the signals ask for it (also under the frozen policy).
        reasons: ``{"kind", "message"}`` per reason, in a fixed order.
        policy: The policy applied (as a dict).
        summary: One line for logs and tables.
    """

    retrain: bool
    would_retrain: bool
    reasons: list[dict[str, str]] = field(default_factory=list)
    policy: dict[str, Any] = field(default_factory=dict)
    summary: str = ""

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
        signals: The period's monitoring signals.
        policy: Thresholds and switches.

    Returns:
        The decision with every reason that applies.
    """
    reasons: list[dict[str, str]] = []
    if policy.force:
        reasons.append({"kind": FORCED, "message": "retraining forced by the caller"})
    if signals.latest_f1 is not None and signals.latest_f1 < policy.retrain_threshold:
        at = f" at cutoff {signals.latest_cutoff}" if signals.latest_cutoff else ""
        reasons.append(
            {
                "kind": DEGRADATION,
                "message": f"matured F1 {signals.latest_f1:.3f}{at} is below the retrain "
                f"threshold {policy.retrain_threshold:.3f}",
            }
        )
    if signals.drift_share is not None and signals.drift_share > policy.drift_threshold:
        columns = ", ".join(signals.drifted_columns[:8])
        more = len(signals.drifted_columns) - 8
        reasons.append(
            {
                "kind": DRIFT,
                "message": f"data drift: {signals.drift_share:.0%} of monitored features "
                f"drifted (> {policy.drift_threshold:.0%})"
                + (f": {columns}" if columns else "")
                + (f" and {more} more" if more > 0 else ""),
            }
        )
    if policy.prediction_drift_triggers and signals.prediction_drift:
        score = signals.prediction_drift_score
        reasons.append(
            {
                "kind": PREDICTION_DRIFT,
                "message": "prediction drift: the champion's churn scores moved"
                + (f" (drift score {score:.3f})" if score is not None else ""),
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
    return RetrainDecision(
        retrain=retrain,
        would_retrain=would,
        reasons=reasons,
        policy=asdict(policy),
        summary=summary,
    )


def _healthy(signals: Signals, policy: Policy) -> str:
    parts = []
    if signals.latest_f1 is None:
        parts.append("no matured labels yet")
    else:
        parts.append(f"F1 {signals.latest_f1:.3f} >= {policy.retrain_threshold:.3f}")
    if signals.drift_share is None:
        parts.append("drift not measured")
    else:
        parts.append(f"drift share {signals.drift_share:.0%} <= {policy.drift_threshold:.0%}")
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
