import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from churn_kfp.loop import decision
from churn_kfp.loop.decision import Policy, Signals, decide

POLICY = Policy(retrain_threshold=0.7, drift_threshold=0.3)

# (case, signals, policy, retrain, would_retrain, reason kinds)
CASES = [
    ("nothing measured yet", Signals(), POLICY, False, False, []),
    ("healthy", Signals(latest_f1=0.75, drift_share=0.1), POLICY, False, False, []),
    ("f1 equal to threshold is fine", Signals(latest_f1=0.7), POLICY, False, False, []),
    ("f1 below threshold", Signals(latest_f1=0.69), POLICY, True, True, ["degradation"]),
    ("drift share equal to threshold", Signals(drift_share=0.3), POLICY, False, False, []),
    ("drift share above threshold", Signals(drift_share=0.31), POLICY, True, True, ["drift"]),
    (
        "prediction drift triggers",
        Signals(latest_f1=0.9, prediction_drift=True, prediction_drift_score=0.4),
        POLICY,
        True,
        True,
        ["prediction_drift"],
    ),
    (
        "prediction drift only reported",
        Signals(latest_f1=0.9, prediction_drift=True),
        Policy(retrain_threshold=0.7, prediction_drift_triggers=False),
        False,
        False,
        [],
    ),
    (
        "everything at once, in a fixed order",
        Signals(latest_f1=0.5, drift_share=0.9, prediction_drift=True),
        Policy(retrain_threshold=0.7, drift_threshold=0.3, force=True),
        True,
        True,
        ["forced", "degradation", "drift", "prediction_drift"],
    ),
    ("forced when healthy", Signals(latest_f1=0.9), Policy(force=True), True, True, ["forced"]),
    (
        "frozen policy reports but never retrains",
        Signals(latest_f1=0.5, drift_share=0.9),
        Policy(retrain_threshold=0.7, retraining_enabled=False),
        False,
        True,
        ["degradation", "drift"],
    ),
    (
        "frozen policy ignores force",
        Signals(latest_f1=0.9),
        Policy(force=True, retraining_enabled=False),
        False,
        True,
        ["forced"],
    ),
]


@pytest.mark.parametrize(
    ("signals", "policy", "retrain", "would", "kinds"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decision_table(signals, policy, retrain, would, kinds):
    result = decide(signals, policy)
    assert result.retrain is retrain
    assert result.would_retrain is would
    assert [r["kind"] for r in result.reasons] == kinds
    assert all(r["message"] for r in result.reasons)
    assert result.summary
    json.dumps(result.to_dict())


def test_reason_messages_name_the_numbers():
    result = decide(
        Signals(
            latest_f1=0.61, latest_cutoff="2025-06-01", drift_share=0.5, drifted_columns=("a",)
        ),
        POLICY,
    )
    degradation, drift = result.reasons
    assert "0.610" in degradation["message"] and "2025-06-01" in degradation["message"]
    assert "0.700" in degradation["message"]
    assert "50%" in drift["message"] and "a" in drift["message"]


def test_signals_from_a_monitoring_summary():
    summary = {
        "latest_matured": {"cutoff": "2025-06-01", "f1": 0.66},
        "drift": {
            "share": 0.25,
            "n_columns": 12,
            "drifted_columns": ["x", "y", "z"],
            "prediction": {"drifted": True, "score": 0.2},
        },
    }
    signals = Signals.from_summary(summary)
    assert signals == Signals(
        latest_f1=0.66,
        latest_cutoff="2025-06-01",
        drift_share=0.25,
        drifted_columns=("x", "y", "z"),
        prediction_drift=True,
        prediction_drift_score=0.2,
    )
    # nothing matured, drift not measured (no reference): no signal at all
    empty = Signals.from_summary({"latest_matured": None, "drift": {"share": 0.0, "n_columns": 0}})
    assert empty.latest_f1 is None and empty.drift_share is None
    assert decide(empty, POLICY).retrain is False


def test_alerts_of_a_period():
    result = decide(Signals(latest_f1=0.5, drift_share=0.6), POLICY).to_dict()
    registration = {
        "model_name": "m",
        "model_version": "3",
        "champion_version": "3",
        "previous_champion_version": "2",
        "promoted": True,
        "decision_reason": "candidate f1 0.70 vs champion 0.60",
    }
    alerts = decision.build_alerts("2025-06", result, registration)
    assert [a["kind"] for a in alerts] == ["degradation", "drift", "promotion"]
    assert {a["period"] for a in alerts} == {"2025-06"}
    assert alerts[-1]["details"]["model_version"] == "3"
    kept = decision.build_alerts("2025-06", result, {**registration, "promoted": False})
    assert kept[-1]["kind"] == "champion_kept"
    assert decision.build_alerts("2025-06", decide(Signals(), POLICY).to_dict(), None) == []
    skip = decision.skip_alert("", "no new data")
    assert skip["kind"] == "skipped" and "no new data" in skip["message"]


class _Collector(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server API
        length = int(self.headers["Content-Length"])
        _Collector.received.append(
            (self.headers["Content-Type"], json.loads(self.rfile.read(length)))
        )
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Collector.received = []
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Collector.received
    server.shutdown()
    server.server_close()


def test_webhook_receives_the_alerts_as_json(webhook):
    url, received = webhook
    alerts = decision.build_alerts(
        "2025-06", decide(Signals(latest_f1=0.5), POLICY).to_dict(), None
    )
    result = decision.notify(url, "2025-06", alerts)
    assert result == {"url": url, "ok": True, "status": 204}
    ((content_type, body),) = received
    assert content_type == "application/json"
    assert body["source"] == "churn-kfp" and body["period"] == "2025-06"
    assert [a["kind"] for a in body["alerts"]] == ["degradation"]


def test_webhook_is_not_called_without_alerts_worth_sending(webhook):
    url, received = webhook
    assert decision.notify(url, "2025-06", []) is None
    assert decision.notify(url, "2025-06", [decision.skip_alert("", "no new data")]) is None
    assert decision.notify("", "2025-06", [{"kind": "drift"}]) is None
    assert received == []


def test_unreachable_webhook_does_not_raise():
    with HTTPServer(("127.0.0.1", 0), _Collector) as server:
        port = server.server_address[1]  # closed right away: nothing listens there
    result = decision.post_webhook(f"http://127.0.0.1:{port}/x", {"a": 1}, timeout_s=2)
    assert result["ok"] is False and result["error"]
    assert decision.post_webhook("ftp://example/x", {})["ok"] is False


# --------------------------------------------------------------------------- robust rules

ROBUST = Policy(
    retrain_threshold=0.0,
    drift_threshold=0.1,
    performance_drop=0.05,
    drift_persistence=2,
    drift_effect_floor=0.3,
    backoff_periods=2,
)
SMALL_EFFECTS = tuple((f"f{i}", 0.12) for i in range(10))  # 10 features, all drifted a little


def drifting(share=0.3, history=(), scores=SMALL_EFFECTS, **others):
    return Signals(
        latest_f1=0.76,
        champion_held_out_f1=0.78,
        drift_share=share,
        champion_version="3",
        column_scores=scores,
        history=tuple(history),
        **others,
    )


def period(champion="3", share=0.3, retrained=False, promoted=False, prediction_drift=False):
    return {
        "champion": champion,
        "drift_share": share,
        "prediction_drift": prediction_drift,
        "retrained": retrained,
        "promoted": promoted,
    }


def test_small_drift_waits_for_persistence_and_says_so():
    result = decide(drifting(), ROBUST)
    assert result.retrain is False and result.reasons == []
    (held,) = result.held
    assert (held["kind"], held["rule"]) == ("drift", "waiting_for_persistence")
    assert "1 of 2 periods" in held["message"]
    assert result.evidence["drift_periods"] == 1


def test_drift_that_persists_under_the_same_champion_retrains():
    result = decide(drifting(history=[period()]), ROBUST)
    assert result.retrain is True
    assert [(r["kind"], r["rule"]) for r in result.reasons] == [("drift", "persistence")]
    assert result.evidence["drift_periods"] == 2
    # drift measured against an earlier champion's reference does not count
    other = decide(drifting(history=[period(champion="2")]), ROBUST)
    assert other.retrain is False and other.evidence["drift_periods"] == 1
    # nor does an earlier period below the threshold
    calm = decide(drifting(history=[period(share=0.05), period(), period()]), ROBUST)
    assert calm.retrain is False and calm.evidence["drift_periods"] == 1


def test_large_drift_retrains_at_once():
    large = (*SMALL_EFFECTS[:8], ("a", 0.5), ("b", 0.31))  # 2 of 10 features >= 0.3: 20% > 10%
    result = decide(drifting(scores=large), ROBUST)
    assert [(r["kind"], r["rule"]) for r in result.reasons] == [("drift", "effect_size")]
    assert result.evidence["large_drift_share"] == 0.2
    one_large = (*SMALL_EFFECTS[:9], ("a", 0.5))  # 10% is not more than the 10% threshold
    assert decide(drifting(scores=one_large), ROBUST).retrain is False


def test_performance_is_judged_against_the_champions_own_held_out_f1():
    below = decide(Signals(latest_f1=0.72, champion_held_out_f1=0.78), ROBUST)
    ((kind, rule),) = [(r["kind"], r["rule"]) for r in below.reasons]
    assert (kind, rule) == ("degradation", "below_champion_held_out")
    assert "0.720" in below.reasons[0]["message"] and "0.780" in below.reasons[0]["message"]
    # within the allowed drop, or no held-out F1 known: no degradation
    assert decide(Signals(latest_f1=0.74, champion_held_out_f1=0.78), ROBUST).retrain is False
    assert decide(Signals(latest_f1=0.5), ROBUST).retrain is False
    # the absolute floor is its own rule
    floor = decide(Signals(latest_f1=0.5), dataclasses.replace(ROBUST, retrain_threshold=0.6))
    assert [r["rule"] for r in floor.reasons] == ["absolute_floor"]


def test_backoff_after_a_retrain_that_did_not_promote():
    lost = period(retrained=True, promoted=False)
    result = decide(drifting(history=[period(), lost]), ROBUST)  # lost 2 periods ago
    assert result.retrain is False and result.reasons == []
    assert [(h["kind"], h["rule"]) for h in result.held] == [("drift", "backoff")]
    assert result.evidence["backoff_remaining"] == 1
    # the back-off ends after backoff_periods periods
    assert decide(drifting(history=[period(), period(), lost]), ROBUST).retrain is True
    # a promotion starts no back-off
    won = period(retrained=True, promoted=True)
    assert decide(drifting(history=[period(), won]), ROBUST).retrain is True
    # a performance drop retrains during the back-off
    dropped = dataclasses.replace(drifting(history=[period(), lost]), latest_f1=0.7)
    kinds = [r["kind"] for r in decide(dropped, ROBUST).reasons]
    assert kinds == ["degradation", "drift"]


def test_prediction_drift_follows_the_same_rules():
    signals = drifting(share=0.0, prediction_drift=True, prediction_drift_score=0.15)
    assert decide(signals, ROBUST).retrain is False
    persisted = dataclasses.replace(signals, history=(period(prediction_drift=True),))
    assert [r["rule"] for r in decide(persisted, ROBUST).reasons] == ["persistence"]
    large = dataclasses.replace(signals, prediction_drift_score=0.4)
    assert [r["rule"] for r in decide(large, ROBUST).reasons] == ["effect_size"]


def test_signals_carry_the_champion_scores_and_history():
    summary = {
        "champion": {"version": "4", "held_out_f1": 0.77},
        "drift": {
            "share": 0.2,
            "n_columns": 2,
            "columns": {"a": {"score": 0.4}, "b": {"score": None}},
        },
        "history": [period(champion="4")],
    }
    signals = Signals.from_summary(summary)
    assert signals.champion_version == "4" and signals.champion_held_out_f1 == 0.77
    assert signals.column_scores == (("a", 0.4),)
    assert signals.history == (period(champion="4"),)
