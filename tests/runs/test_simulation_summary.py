"""The simulation's headline numbers from hand-made months (no pipeline runs)."""

from churn_kfp.runs import simulation


def cell(f1, retrained=False, promoted=False, reasons=()):
    return {
        "f1": f1,
        "retrained": retrained,
        "promoted": promoted,
        "would_retrain": retrained,
        "reasons": list(reasons),
        "rules": [],
        "reason_messages": [f"{r} message" for r in reasons],
        "held": [],
        "challenger_version": "2" if retrained else None,
        "drift_share": 0.0,
        "prediction_drift": False,
        "matured_cutoff": None,
        "champion_version": "1",
    }


def result_of(retrain, frozen, no_drift, drift_from=3, retrains_no_drift=()):
    months = []
    for index, (r, f, n) in enumerate(zip(retrain, frozen, no_drift, strict=True)):
        month = index + 1
        months.append(
            {
                "month": month,
                "period": f"2025-{month:02d}",
                "drifted": month >= drift_from,
                "policies": {
                    "retrain": cell(r, retrained=month == drift_from, reasons=["drift"]),
                    "frozen": cell(f),
                    "no_drift": cell(n, retrained=month in retrains_no_drift),
                },
            }
        )
    return {
        "months": months,
        "training": {
            p: {"f1": 0.8, "period": "2024-12", "champion_version": "1"}
            for p in simulation.POLICIES
        },
        "parameters": {"policies": list(simulation.POLICIES), "drift_from": drift_from},
    }


def test_recovery_gain_and_false_alarms():
    result = result_of(
        retrain=[0.80, 0.78, 0.70, 0.74, 0.78, 0.79],  # pre-drift mean 0.79
        frozen=[0.80, 0.78, 0.70, 0.66, 0.65, 0.64],
        no_drift=[0.80, 0.78, 0.79, 0.80, 0.78, 0.79],
        retrains_no_drift=(4,),
    )
    summary, checks = simulation.summarise(result)
    assert summary["mean_f1_before_drift"]["retrain"] == 0.79
    # drift months 3..6: retrain 0.7525, frozen 0.6625
    assert summary["f1_gain_drift_months"] == round(0.7525 - 0.6625, 4)
    # within 0.03 of 0.79 from month 5 on (0.78, 0.79); drift began in month 3
    assert summary["recovery_months"] == 2
    assert summary["no_drift"] == {"retrains": 1, "promotions": 0, "months": 6, "mean_f1": 0.79}
    assert checks["retraining_beats_frozen"] is True
    assert checks["recovers_within_two_months"] is True
    assert checks["no_drift_retrains_at_most_once"] is True


def test_a_relapse_means_not_recovered_and_two_false_alarms_fail():
    result = result_of(
        retrain=[0.80, 0.78, 0.70, 0.78, 0.79, 0.70],  # back in month 4, relapses in 6
        frozen=[0.80, 0.78, 0.70, 0.70, 0.70, 0.70],
        no_drift=[0.80, 0.78, 0.79, 0.80, 0.78, 0.79],
        retrains_no_drift=(3, 5),
    )
    summary, checks = simulation.summarise(result)
    assert summary["recovery_months"] is None
    assert checks["recovers_within_two_months"] is False
    assert summary["f1_gain_drift_months"] == round(0.7425 - 0.70, 4)
    assert checks["retraining_beats_frozen"] is False  # 0.0425 < 0.05
    assert checks["no_drift_retrains_at_most_once"] is False
    table = simulation.format_table({**result, "summary": summary, "checks": checks})
    assert "no-drift arm: 2 retrain(s)" in table and "recovery months: None" in table


def test_a_month_that_judges_the_previous_cutoff_again_counts_once():
    # the last month is a February: its own 30-day label window is still open at the end
    # of the data, so its run judges January's cutoff again, with the same F1
    result = result_of(
        retrain=[0.80, 0.78, 0.70, 0.72, 0.77, 0.77],
        frozen=[0.80, 0.78, 0.70, 0.66, 0.60, 0.60],
        no_drift=[0.80, 0.78, 0.79, 0.80, 0.70, 0.70],
    )
    cutoffs = ["2025-01-01", "2025-02-01", "2025-03-01", "2025-04-01", "2025-05-01"]
    for month, cutoff in zip(result["months"], [*cutoffs, cutoffs[-1]], strict=True):
        for policy_cell in month["policies"].values():
            policy_cell["matured_cutoff"] = cutoff
    summary, _ = simulation.summarise(result)
    # drift months 3..5 once each: retrain 0.73, frozen 0.6533 (not 0.7400 / 0.6400)
    assert summary["mean_f1_drift_months"]["retrain"] == 0.73
    assert summary["mean_f1_drift_months"]["frozen"] == 0.6533
    assert summary["no_drift"]["mean_f1"] == round((0.80 + 0.78 + 0.79 + 0.80 + 0.70) / 5, 4)
    # month 5 (0.77 >= 0.79 - 0.03) is the last judged month: recovered 2 months after onset
    assert summary["recovery_months"] == 2
    table = simulation.format_table({**result, "summary": summary, "checks": {}})
    assert table.count("2025-05-01=") == 1 and table.count("2025-04-01=") == 0
