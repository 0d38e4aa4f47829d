from churn_kfp.registry.lineage import covered_month


def test_covered_month_from_lineage_tags():
    assert covered_month({"data_end": "2025-04-30T23:10:00"}) == "2025-04"
    # no data_end tag: the test cutoff's label window must have been observed
    assert covered_month({"test_cutoff": "2025-04-01", "horizon_days": "30"}) == "2025-04"
    assert covered_month({"test_cutoff": "2025-04-01", "horizon_days": "31"}) == "2025-05"
    assert covered_month({}) is None
    assert covered_month(None) is None
