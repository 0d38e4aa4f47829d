import re

import numpy as np
import pandas as pd
import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from churn_kfp.data import contract, datagen, storage

N, MONTHS, SEED = 3000, 4, 7
DRIFT_MONTH = 3  # 1-based: 2025-03


@pytest.fixture(scope="module")
def data() -> datagen.SyntheticData:
    return datagen.simulate(n_customers=N, n_months=MONTHS, seed=SEED)


@pytest.fixture(scope="module")
def drifted() -> datagen.SyntheticData:
    return datagen.simulate(n_customers=N, n_months=MONTHS, seed=SEED, drift_from_month=DRIFT_MONTH)


@pytest.fixture(scope="module")
def vader() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


def _compound(analyzer, texts: pd.Series) -> pd.Series:
    return texts.dropna().map(lambda text: analyzer.polarity_scores(text)["compound"])


def _unit_price(tx: pd.DataFrame) -> pd.Series:
    return tx["amount"] / tx["quantity"]


# --------------------------------------------------------------------------- reproducibility


def test_same_seed_gives_identical_tables(data):
    again = datagen.simulate(n_customers=N, n_months=MONTHS, seed=SEED)
    pd.testing.assert_frame_equal(data.customers, again.customers)
    pd.testing.assert_frame_equal(data.transactions, again.transactions)
    pd.testing.assert_frame_equal(data.feedback, again.feedback)
    pd.testing.assert_series_equal(data.churn_dates, again.churn_dates)


def test_different_seed_gives_different_tables(data):
    other = datagen.simulate(n_customers=N, n_months=MONTHS, seed=SEED + 1)
    assert not data.transactions.equals(other.transactions)
    assert not data.customers.equals(other.customers)
    assert not data.feedback["text"].equals(other.feedback["text"])


# --------------------------------------------------------------------------- shape and contract


@pytest.mark.parametrize("table", sorted(contract.TABLES))
def test_columns_follow_the_contract(data, table):
    frame = {
        contract.TRANSACTIONS: data.transactions,
        contract.CUSTOMERS: data.customers,
        contract.FEEDBACK: data.feedback,
    }[table]
    assert list(frame.columns) == list(contract.TABLES[table].columns)
    assert len(frame) > 0
    contract.schema(table).validate(frame)
    assert frame["customer_id"].str.fullmatch(r"C\d{6}").all()


def test_sizes_and_time_range(data):
    assert len(data.customers) == N
    assert data.customers["customer_id"].is_unique
    assert data.months == ("2025-01", "2025-02", "2025-03", "2025-04")
    for frame in (data.transactions, data.feedback):
        assert frame["timestamp"].min() >= pd.Timestamp("2025-01-01")
        assert frame["timestamp"].max() < pd.Timestamp("2025-05-01")
        assert frame["timestamp"].is_monotonic_increasing
        assert set(frame["customer_id"]) <= set(data.customers["customer_id"])
    # customers sign up before and during the window
    signups = data.customers["signup_date"]
    assert (signups < "2025-01-01").mean() > 0.5
    assert (signups >= "2025-01-01").sum() > 0.2 * N


def test_texts_carry_sentiment(data, vader):
    scores = _compound(vader, data.feedback["text"])
    assert (scores > 0.3).mean() > 0.15
    assert (scores < -0.3).mean() > 0.15
    assert data.feedback["text"].dropna().nunique() > 300


# --------------------------------------------------------------------------- defects


def test_missing_value_rates(data):
    tx, cu, fb = data.transactions, data.customers, data.feedback
    for series in (tx["amount"], fb["text"], cu["age"], cu["gender"], cu["location"]):
        assert 0.03 <= series.isna().mean() <= 0.07, series.name
    for column in ("customer_id", "timestamp"):
        assert tx[column].notna().all() and fb[column].notna().all()


def test_outlier_and_duplicate_rates(data):
    tx, cu = data.transactions, data.customers
    ages = cu["age"].dropna()
    low, high = contract.AGE_RANGE
    assert 0.01 <= ((ages < low) | (ages > high)).mean() <= 0.03
    # prices vary by +-5% per product; an amount 20-100x too large stands out
    unit = _unit_price(tx.dropna(subset=["amount"]))
    ratio = unit / unit.groupby(tx["product_id"]).transform("median")
    assert 0.012 <= (ratio > 10).mean() <= 0.03
    assert 0.006 <= tx.duplicated().mean() <= 0.015
    assert tx.duplicated(keep=False).equals(tx["order_id"].duplicated(keep=False))


# --------------------------------------------------------------------------- the latent process


def test_no_activity_outside_a_customers_life(data):
    churn = data.churn_dates
    signup = data.customers.set_index("customer_id")["signup_date"]
    assert churn.notna().sum() > 0.15 * N
    for frame in (data.transactions, data.feedback):
        ends = frame["customer_id"].map(churn)
        assert (frame["timestamp"][ends.notna()] < ends.dropna()).all()
        assert (frame["timestamp"] >= frame["customer_id"].map(signup)).all()
    churned_in_window = churn[(churn >= "2025-02-01") & (churn < "2025-04-01")]
    buyers = data.transactions.groupby("customer_id")["timestamp"].max()
    # people who leave did buy before (they are not empty shells)
    assert buyers.reindex(churned_in_window.index).notna().mean() > 0.8


def test_monthly_churn_is_realistic(data):
    lat, tx = data.latent, data.transactions
    for month in data.months:
        start = pd.Period(month, freq="M").to_timestamp()
        end = start + pd.offsets.MonthBegin(1)
        active = (lat["signup_date"] < start) & ~(lat["churn_date"] < start)
        churned = active & (lat["churn_date"] < end)
        assert 0.04 <= churned.sum() / active.sum() <= 0.2, month
    cutoff = pd.Timestamp("2025-04-01")
    before = tx[(tx["timestamp"] < cutoff) & (tx["timestamp"] >= cutoff - pd.Timedelta(days=90))]
    after = tx[(tx["timestamp"] >= cutoff) & (tx["timestamp"] < cutoff + pd.Timedelta(days=30))]
    population = before["customer_id"].unique()
    label_rate = 1 - np.isin(population, after["customer_id"].unique()).mean()
    assert 0.1 <= label_rate <= 0.35


def test_engagement_and_sentiment_decline_before_churn(data, vader):
    lat, tx = data.latent, data.transactions
    fading = (lat["churn_date"] - lat["decision_date"]) >= pd.Timedelta(days=10)
    leavers = lat[
        (lat["signup_date"] < "2024-12-01")
        & lat["decision_date"].between("2025-02-15", "2025-04-01")
        & fading
    ]
    assert len(leavers) > 50
    joined = tx.merge(leavers, left_on="customer_id", right_index=True)
    before = joined["timestamp"].between(
        joined["decision_date"] - pd.Timedelta(days=45), joined["decision_date"], "left"
    )
    after = joined["timestamp"] >= joined["decision_date"]
    days_after = (leavers["churn_date"].clip(upper="2025-05-01") - leavers["decision_date"]).sum()
    rate_before = before.sum() / (45 * len(leavers))
    rate_after = after.sum() / (days_after / pd.Timedelta(days=1))
    assert rate_after < 0.65 * rate_before
    # ... baskets shrink too
    assert joined.loc[after, "quantity"].mean() < 0.85 * joined.loc[before, "quantity"].mean()
    fb = data.feedback
    decided = fb["timestamp"] >= fb["customer_id"].map(lat["decision_date"])
    assert _compound(vader, fb.loc[decided, "text"]).mean() < -0.2
    assert _compound(vader, fb.loc[~decided, "text"]).mean() > 0.1


def test_age_effect_is_u_shaped(data):
    lat = data.latent
    churned = lat["churn_date"].notna()
    young = churned[lat["age"] < 27].mean()
    middle = churned[lat["age"].between(38, 52)].mean()
    old = churned[lat["age"] > 65].mean()
    assert young > 1.5 * middle and old > 1.5 * middle


# --------------------------------------------------------------------------- drift


def test_drift_leaves_earlier_months_untouched(data, drifted):
    drift_start = pd.Timestamp("2025-03-01")
    for name in ("transactions", "feedback"):
        base, other = getattr(data, name), getattr(drifted, name)
        pd.testing.assert_frame_equal(
            base[base["timestamp"] < drift_start], other[other["timestamp"] < drift_start]
        )
    pd.testing.assert_frame_equal(data.customers, drifted.customers)


def test_drift_changes_prices_sentiment_and_churn(data, drifted, vader):
    drift_start = pd.Timestamp("2025-03-01")
    segment = data.customers.set_index("customer_id")["segment"]

    def budget_unit_price(d, after):
        tx = d.transactions
        tx = tx[((tx["timestamp"] >= drift_start) == after) & (tx["amount"] < 2000)]
        tx = tx[tx["customer_id"].map(segment) == "budget"]
        return _unit_price(tx).median()

    def negative_share(d, after):
        fb = d.feedback[(d.feedback["timestamp"] >= drift_start) == after]
        return (_compound(vader, fb["text"]) < -0.3).mean()

    def abrupt_premium_leavers(d):
        lat = d.latent
        abrupt = (lat["churn_date"] == lat["decision_date"]) & (lat["segment"] == "premium")
        return abrupt.sum(), (abrupt & (lat["decision_date"] < drift_start)).sum()

    assert budget_unit_price(drifted, False) == budget_unit_price(data, False)
    assert budget_unit_price(drifted, True) > 1.2 * budget_unit_price(data, True)
    assert negative_share(drifted, True) > negative_share(data, True) + 0.2
    # premium members now leave right after a bad experience, without fading first
    assert abrupt_premium_leavers(data) == (0, 0)
    assert abrupt_premium_leavers(drifted)[0] >= 10 and abrupt_premium_leavers(drifted)[1] == 0


def test_drift_makes_bargain_hunters_wait_for_the_sale(data, drifted):
    hunters = drifted.latent.index[drifted.latent["bargain_hunter"]]
    assert len(hunters) > 0.05 * N

    def days(d, month):
        tx = d.transactions
        tx = tx[tx["customer_id"].isin(hunters) & (tx["timestamp"].dt.strftime("%Y-%m") == month)]
        return tx["timestamp"].dt.day

    # every drifted month they buy in its sale week (days 10-16) only, the behaviour stays;
    # without drift they shop on any day
    for month in ("2025-03", "2025-04"):
        assert days(drifted, month).between(10, 16).all() and len(days(drifted, month)), month
    assert (~days(data, "2025-03").between(10, 16)).sum() > 100


def test_drift_makes_short_cycle_shoppers_buy_every_other_cycle(data, drifted):
    """Replenishment shoppers on cycles up to 28 days buy double packs under drift.

    Counted on customers who never decide to leave in either world (no fading) and do not
    wait for the sale: in the drifted months the short cycles buy half as often as the same
    customers without drift, the longer cycles as often.
    """

    def steady(d):
        lat = d.latent
        return lat.index[lat["decision_date"].isna() & ~lat["bargain_hunter"]]

    customers = steady(data).intersection(steady(drifted))
    cycle = data.latent.loc[customers, "cycle_days"]

    def purchases(d, ids):
        tx = d.transactions
        months = tx["timestamp"].dt.strftime("%Y-%m").isin(["2025-03", "2025-04"])
        return int((months & tx["customer_id"].isin(ids)).sum())

    short, long = cycle.index[cycle <= 28], cycle.index[np.isfinite(cycle) & (cycle > 28)]
    assert len(short) > 100 and len(long) > 50
    assert 0.4 < purchases(drifted, short) / purchases(data, short) < 0.6
    assert 0.9 < purchases(drifted, long) / purchases(data, long) < 1.1


# --------------------------------------------------------------------------- landing zone


def test_monthly_landing_zone_layout(data, tmp_path):
    zone = storage.LocalLandingZone(tmp_path)
    summary = datagen.write_to_landing_zone(data, zone)
    expected = {"raw/customers/customers.csv"}
    for month in data.months:
        year, mm = month.split("-")
        expected.add(f"raw/sales/year={year}/month={mm}/sales_{year}_{mm}.csv")
        expected.add(f"raw/feedback/year={year}/month={mm}/feedback_raw_{year}_{mm}.csv")
    assert set(zone.list_keys()) == expected | {storage.SYNTHETIC_MANIFEST_KEY}
    assert set(summary["keys"]) == expected and summary["files_written"] == len(expected)
    assert summary["rows"] == {
        "customers": N,
        "transactions": len(data.transactions),
        "feedback": len(data.feedback),
    }
    march = storage.read_frame(zone, "raw/sales/year=2025/month=03/sales_2025_03.csv")
    assert list(march.columns) == list(contract.TABLES["transactions"].columns)
    assert march["timestamp"].str.fullmatch(r"2025-03-\d\d \d\d:\d\d:\d\d").all()
    total = sum(
        len(storage.read_frame(zone, p.key))
        for p in storage.discover_partitions(zone, "transactions")
    )
    assert total == len(data.transactions)
    customers = storage.read_frame(zone, "raw/customers/customers.csv")
    assert customers["signup_date"].str.fullmatch(r"\d{4}-\d\d-\d\d").all()
    assert customers["age"].dropna().str.fullmatch(r"-?\d+").all()
    assert customers["age"].isna().sum() == data.customers["age"].isna().sum()


def test_daily_landing_zone_layout(tmp_path):
    small = datagen.simulate(n_customers=400, n_months=2, seed=1)
    zone = storage.LocalLandingZone(tmp_path)
    datagen.write_to_landing_zone(small, zone, daily=True)
    partitions = storage.discover_partitions(zone, "feedback")
    assert len(partitions) == 31 + 28
    assert all(p.day is not None for p in partitions)
    rows = 0
    for partition in partitions:
        frame = storage.read_frame(zone, partition.key)
        assert frame["timestamp"].str.startswith(partition.period).all()
        assert re.search(rf"feedback_raw_{partition.period.replace('-', '_')}\.csv$", partition.key)
        rows += len(frame)
    assert rows == len(small.feedback)


def test_rewrite_is_idempotent(tmp_path):
    small = datagen.simulate(n_customers=400, n_months=2, seed=2)
    zone = storage.LocalLandingZone(tmp_path / "a")
    datagen.write_to_landing_zone(small, zone)
    first = {key: zone.read_bytes(key) for key in zone.list_keys("raw/")}
    datagen.write_to_landing_zone(small, zone)
    assert {key: zone.read_bytes(key) for key in zone.list_keys("raw/")} == first
    # a fresh simulation with the same seed writes the very same bytes
    summary = datagen.generate(str(tmp_path / "b"), n_customers=400, n_months=2, seed=2)
    other = storage.LocalLandingZone(tmp_path / "b")
    assert {key: other.read_bytes(key) for key in other.list_keys("raw/")} == first
    assert summary["seed"] == 2 and summary["rows"]["customers"] == 400


@pytest.mark.parametrize(
    "kwargs",
    [{"start": "2025/01"}, {"drift_from_month": 0}, {"drift_from_month": 3}, {"n_customers": 0}],
)
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        datagen.simulate(**{"n_customers": 10, "n_months": 2, **kwargs})
