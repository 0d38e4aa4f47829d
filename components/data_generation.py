"""Component: write a synthetic customer base into the landing zone."""

from churn_kfp.components._base import churn_component


@churn_component
def generate_data(
    landing_zone: str,
    enabled: bool = True,
    n_customers: int = 5000,
    n_months: int = 6,
    start_month: str = "2025-01",
    seed: int = 42,
    drift_from_month: int = 0,
) -> str:
    """Generates customers, monthly sales and raw feedback into the landing zone.

    Args:
        landing_zone: Landing-zone path or ``s3://`` URI; empty means ``CHURN_LANDING_ZONE``.
        enabled: False skips generation (bring-your-own-data runs).
        n_customers: Customers at the start.
        n_months: Months of history to write.
        start_month: First month, ``YYYY-MM``.
        seed: Random seed; the same seed writes the same files.
        drift_from_month: 1-based month from which patterns change; 0 means no drift.

    Returns:
        A JSON summary of what was written (or why nothing was).
    """
    import json

    from churn_kfp.core.config import Settings
    from churn_kfp.data import datagen
    from churn_kfp.data.storage import open_landing_zone

    if not enabled:
        return json.dumps({"generated": False, "reason": "generation disabled"})
    zone = open_landing_zone(landing_zone or Settings.from_env().landing_zone)
    summary = datagen.generate(
        zone,
        n_customers=n_customers,
        n_months=n_months,
        start=start_month,
        seed=seed,
        drift_from_month=drift_from_month or None,
    )
    print(f"generated synthetic data into {zone.uri}: {summary}")
    return json.dumps({"generated": True, **summary}, default=str)
