"""Component: point-in-time features at every planned cutoff."""

from typing import NamedTuple

from kfp.dsl import Artifact, Dataset, Input, Output

from churn_kfp.components._base import churn_component


@churn_component
def build_features(
    transactions: Input[Dataset],
    customers: Input[Dataset],
    scored_feedback: Input[Dataset],
    horizon_days: int,
    n_train_cutoffs: int,
    eligibility_days: int,
    windows: str,
    features: Output[Dataset],
    cutoff_plan: Output[Artifact],
    test_cutoff: str = "",
    cutoff_spacing: str = "MS",
) -> NamedTuple("FeatureOutputs", [("feature_groups", str), ("test_cutoff", str), ("rows", int)]):
    """Plans train/validation/test cutoffs from the data's range and builds features.

    Only data strictly before each cutoff is used. Missing optional tables (customers,
    feedback) drop their feature groups; the run says so.

    Args:
        horizon_days: Churn window after each cutoff (labels must mature before use).
        n_train_cutoffs: Training cutoffs before the validation cutoff.
        eligibility_days: A customer is scored if they bought within this many days.
        windows: Comma-separated feature windows in days, e.g. ``"30,60,90"``.
        test_cutoff: Test cutoff ``YYYY-MM-DD``; empty means the latest whose churn window
            the data fully covers.
        cutoff_spacing: Grid of the cutoffs: a pandas frequency (``MS`` month starts,
            ``W-MON`` Mondays) or a number of days back from the test cutoff (``14d``).
    """
    import json
    from collections import namedtuple

    import pandas as pd

    from churn_kfp.learn import features as feats
    from churn_kfp.learn.engines import DEFAULT_ENGINE, build_features_with
    from churn_kfp.learn.plan import parse_spacing, plan_cutoffs

    tx = pd.read_parquet(transactions.path, columns=["timestamp"])
    cust = pd.read_parquet(customers.path)
    fb = pd.read_parquet(scored_feedback.path)
    spacing, spacing_days = parse_spacing(cutoff_spacing)
    plan = plan_cutoffs(
        tx["timestamp"].min(),
        tx["timestamp"].max(),
        horizon_days=horizon_days,
        n_train_cutoffs=n_train_cutoffs,
        spacing=spacing,
        spacing_days=spacing_days,
        test_cutoff=test_cutoff or None,
    )
    table = build_features_with(
        DEFAULT_ENGINE,
        transactions.path,
        plan,
        customers=cust if len(cust) else None,
        feedback=fb if len(fb) else None,
        windows=tuple(int(w) for w in windows.split(",")),
        eligibility_days=eligibility_days,
    )
    groups = feats.feature_groups_used(table)
    table.to_parquet(features.path, index=False)
    features.metadata["rows"] = len(table)
    with open(cutoff_plan.path, "w") as handle:
        json.dump(plan.to_dict(), handle, indent=2)
    print(f"cutoffs {plan.to_dict()}; features: {feats.describe_feature_groups(groups)}")
    outputs = namedtuple("FeatureOutputs", ["feature_groups", "test_cutoff", "rows"])
    return outputs(",".join(groups), plan.test.date().isoformat(), len(table))
