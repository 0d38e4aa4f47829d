"""Synthetic customer base with a latent churn process, for demos, tests and simulations.

Each customer has latent traits (segment, price sensitivity, purchase rate or replenishment
cycle, basket size, satisfaction, feedback propensity) and observable demographics. The
simulation steps month by month (after a short burn-in): every customer faces a churn
hazard that depends nonlinearly on age (U-shaped), tenure (onboarding, yearly premium
renewal), last month's purchase frequency (a per-segment threshold), budget segment x price
sensitivity x competitor location and negative feedback x short tenure. A customer who
decides to leave keeps buying for a few weeks, less often and cheaper, while their feedback
turns sour, then stops for good. Recency/frequency/monetary windows, trends, sentiment and
demographics therefore predict "no purchase in the next 30 days", and trees beat a linear
model on them.

Real-world defects are injected: missing values, outliers and exact duplicate transaction
rows. ``drift_from_month`` changes the world from that month on: budget prices rise 30%,
price-sensitive budget customers then only buy in the monthly sale week (fewer, larger
baskets: the new behaviour stays), shoppers on cycles of up to 28 days buy double packs
every other cycle (the label no longer follows recency as it did), premium customers
leave abruptly after a bad experience, and everybody's feedback turns negative.

:func:`simulate` is pure (no I/O); :func:`write_to_landing_zone` lays the tables out as
date-partitioned CSV files, replacing the dataset it wrote before as a whole and never
writing beside data it did not write (:func:`check_generator_owns`); :func:`generate`
does both. The feedback texts are written
from templates in :mod:`churn_kfp.data.datagen_text`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from churn_kfp.data.contract import CUSTOMERS, FEEDBACK, TABLES, TRANSACTIONS
from churn_kfp.data.datagen_text import compose_texts, sentiment_level
from churn_kfp.data.landing import LandingZone, LandingZoneError
from churn_kfp.data.locking import landing_zone_lock
from churn_kfp.data.staging import settle, write_change
from churn_kfp.data.storage import (
    MANIFEST_PREFIX,
    SYNTHETIC_MANIFEST_KEY,
    contract_data_keys,
    frame_bytes,
    open_landing_zone,
    partition_key,
    unpartitioned_key,
)

__all__ = [
    "BURN_IN_MONTHS",
    "DATE_FORMAT",
    "DRIFT_PRICE_FACTOR",
    "DRIFT_SENTIMENT_SHIFT",
    "DUPLICATE_RATE",
    "ForeignDataError",
    "GENDERS",
    "LOCATIONS",
    "MISSING_RATE",
    "OUTLIER_RATE",
    "SEGMENTS",
    "TIMESTAMP_FORMAT",
    "SyntheticData",
    "check_generator_owns",
    "generate",
    "simulate",
    "write_to_landing_zone",
]

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
DATE_FORMAT = "%Y-%m-%d"

SEGMENTS = ("budget", "standard", "premium")
GENDERS = ("F", "M", "X")
LOCATIONS = (
    "London",
    "Manchester",
    "Birmingham",
    "Leeds",
    "Glasgow",
    "Bristol",
    "Liverpool",
    "Cardiff",
)
# Locations with a strong competitor: a small extra hazard.
_COMPETITIVE_LOCATIONS = ("Birmingham", "Glasgow")

BURN_IN_MONTHS = 3
_DAYS_PER_MONTH = 30.44
_N_PRODUCTS = 240
_HISTORY_DAYS = 3 * 365

# Defect rates (the tests check them within tolerance bands).
MISSING_RATE = 0.05
OUTLIER_RATE = 0.02
DUPLICATE_RATE = 0.01

# Drift effects (from ``drift_from_month`` on).
DRIFT_PRICE_FACTOR = 1.3  # budget-segment prices
DRIFT_SENTIMENT_SHIFT = 2.5  # subtracted from the tone of every feedback text
_SALE_DAYS = (9.0, 16.0)  # drift: the sale week, in days after the month start

_SEG_P = np.array([0.45, 0.37, 0.18])
_SEG_RATE = (4.0, 3.0, 1.8)  # median purchases per month
_SEG_QTY = np.array([1.2, 1.0, 0.8])  # extra items per basket (Poisson mean)
_SEG_PS = ((6.0, 2.0), (3.0, 3.0), (2.0, 6.0))  # Beta parameters of price sensitivity
_SEG_AGE = (36.0, 43.0, 51.0)
_RATE_SIGMA = 0.8  # spread of the purchase rates (lognormal)
_PERIODIC_SHARE = 0.6  # customers who buy on a replenishment cycle
_CYCLE_DAYS = (7, 14, 21, 28, 42, 56)  # replenishment cycles
_CYCLE_P = (0.15, 0.25, 0.15, 0.2, 0.15, 0.1)
_CYCLE_JITTER = 2.5  # days
_FEEDBACK_BETA = (2.0, 6.0)  # monthly probability of writing feedback
_LEAVER_FEEDBACK_BOOST = 2.5  # leavers write more feedback
_DECLINE_START = 0.7  # purchase intensity right after the churn decision


@dataclass(frozen=True, eq=False)
class SyntheticData:
    """The output of :func:`simulate`.

    Attributes:
        customers: One row per customer (contract table ``customers``), with defects.
        transactions: Sales rows (contract table ``transactions``), with defects.
        feedback: Free-text feedback rows (contract table ``feedback``), with defects.
        churn_dates: Latent churn date per customer id: ``NaT`` if the customer did not
            decide to leave during the simulation; may lie after its last month. For
            tests and simulations only, never a model input. No purchase or feedback
            happens on or after it.
        latent: Latent traits and churn decision per customer id (for tests and analysis).
        months: The simulated months, ``YYYY-MM``, oldest first.
        drift_from_month: 1-based month index from which drift applies, or ``None``.
    """

    customers: pd.DataFrame = field(repr=False)
    transactions: pd.DataFrame = field(repr=False)
    feedback: pd.DataFrame = field(repr=False)
    churn_dates: pd.Series = field(repr=False)
    latent: pd.DataFrame = field(repr=False)
    months: tuple[str, ...] = ()
    drift_from_month: int | None = None


# --------------------------------------------------------------------------- simulation


def _month_starts(start: str, n_months: int) -> pd.DatetimeIndex:
    if not re.fullmatch(r"\d{4}-\d{2}", start):
        raise ValueError(f"start must look like 'YYYY-MM', got {start!r}")
    first = pd.Period(start, freq="M") - BURN_IN_MONTHS
    periods = pd.period_range(first, periods=BURN_IN_MONTHS + n_months + 1, freq="M")
    return periods.to_timestamp()


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _draw_customers(
    rng: np.random.Generator, n: int, origin_day: float, end_day: float
) -> dict[str, np.ndarray]:
    """Draws latent traits and demographics; returns arrays sorted by signup day."""
    seg = rng.choice(3, size=n, p=_SEG_P)
    age = rng.normal(np.asarray(_SEG_AGE)[seg], 15.0)
    age = np.clip(np.round(age), 18, 88)
    gender = rng.choice(3, size=n, p=[0.5, 0.47, 0.03])
    location = rng.choice(len(LOCATIONS), size=n, p=[0.2, 0.14, 0.13, 0.11, 0.11, 0.11, 0.1, 0.1])
    a = np.array([p[0] for p in _SEG_PS])[seg]
    b = np.array([p[1] for p in _SEG_PS])[seg]
    price_sens = rng.beta(a, b)
    rate = np.asarray(_SEG_RATE)[seg] * rng.lognormal(0.0, _RATE_SIGMA, size=n)
    qty = _SEG_QTY[seg] * rng.lognormal(0.0, 0.3, size=n)
    satisfaction = rng.normal(0.35, 0.75, size=n)
    fb_prop = rng.beta(*_FEEDBACK_BETA, size=n)
    # two thirds existed before the output window (some of them before the burn-in),
    # the others sign up during the window
    start_day = origin_day + BURN_IN_MONTHS * _DAYS_PER_MONTH
    pre = rng.random(n) < 0.65
    signup = np.where(
        pre,
        start_day - rng.random(n) * _HISTORY_DAYS,
        start_day + rng.random(n) * (end_day - start_day),
    )
    signup = np.floor(signup)  # a whole day
    periodic = rng.random(n) < _PERIODIC_SHARE
    # under drift, price-sensitive budget customers wait for the sale
    bargain = (seg == 0) & (rng.random(n) < price_sens**3)
    cycle = rng.choice(np.asarray(_CYCLE_DAYS, dtype=float), size=n, p=_CYCLE_P)
    period = np.where(periodic, cycle, np.inf)
    rate = np.where(periodic, _DAYS_PER_MONTH / cycle, rate)
    phase = signup + rng.random(n) * np.where(periodic, period, 0.0)
    order = np.argsort(signup, kind="stable")
    traits = {
        "segment": seg,
        "age": age,
        "gender": gender,
        "location": location,
        "price_sensitivity": price_sens,
        "rate": rate,
        "qty": qty,
        "satisfaction": satisfaction,
        "feedback_propensity": fb_prop,
        "signup": signup,
        "period": period,
        "phase": phase,
        "bargain": bargain,
    }
    return {k: v[order] for k, v in traits.items()}


# Log-odds contributions of the monthly churn-decision hazard.
_HAZARD: dict[str, float] = {
    "base": -5.1,
    "age_u": 0.008,  # x (age - 45)^2, capped
    "age_cap": 6.0,
    "onboarding": 1.5,  # x exp(-tenure_months / 2.5)
    "low_freq": 2.0,  # last month's purchase rate below _FREQ_THRESHOLD
    "high_freq": -0.5,  # last month's purchase rate above 5
    "budget_ps": 4.0,  # budget segment x (price sensitivity - 0.6)
    "negative": 0.5,  # negative feedback in the last two months
    "negative_new": 2.5,  # ... and tenure below 6 months
    "satisfaction": -0.3,
    "competitor": 0.1,
    "competitor_budget": 1.5,  # budget segment in a location with a strong competitor
    "renewal": 3.0,  # premium membership renewal (signup anniversary) this month
    "premium": -0.3,
    "drift_budget_ps": 0.8,  # drift: budget segment x price sensitivity
    "drift_premium_negative": 4.0,  # drift: premium x negative feedback
}
_FREQ_THRESHOLD = (2.5, 1.5, 0.0)  # purchases a month, per segment: below it, "low_freq"


def _hazard_logit(
    t: dict,
    tenure_months: np.ndarray,
    prev_rate: np.ndarray,
    recent_negative: np.ndarray,
    drifted: bool,
) -> np.ndarray:
    """Monthly churn-decision log-odds of each customer (nonlinear, with interactions)."""
    h = _HAZARD
    seg = t["segment"]
    budget, premium = seg == 0, seg == 2
    z = np.full(len(seg), h["base"])
    # U-shaped age: the young and the old leave more easily
    z += np.minimum(h["age_u"] * (t["age"] - 45.0) ** 2, h["age_cap"])
    # onboarding: new customers are fragile
    z += h["onboarding"] * np.exp(-tenure_months / 2.5)
    # frequency threshold: below it the shopping habit breaks
    threshold = np.asarray(_FREQ_THRESHOLD)[seg]
    freq_effect = np.where(prev_rate < threshold, h["low_freq"], 0.0)
    freq_effect += np.where(prev_rate > 5.0, h["high_freq"], 0.0)
    # budget customers x price sensitivity
    z += np.where(budget, h["budget_ps"] * (t["price_sensitivity"] - 0.6), 0.0)
    # negative feedback hurts, a lot when the relationship is young
    z += np.where(recent_negative, h["negative"], 0.0)
    z += np.where(recent_negative & (tenure_months < 6), h["negative_new"], 0.0)
    z += h["satisfaction"] * t["satisfaction"]
    competitor = np.isin(t["location"], _COMPETITIVE_IDX)
    z += np.where(competitor, h["competitor"], 0.0)
    z += np.where(competitor & budget, h["competitor_budget"], 0.0)
    # premium is a yearly membership: the renewal month is a moment of truth
    renewal = np.floor((tenure_months + 1.0) / 12.0) > np.floor(tenure_months / 12.0)
    z += np.where(premium & renewal & (tenure_months > 0), h["renewal"], 0.0)
    z += np.where(premium, h["premium"], 0.0)
    if drifted:
        # the price rise drives price-sensitive budget customers away
        z += np.where(budget, h["drift_budget_ps"] * t["price_sensitivity"], 0.0)
        # premium customers now leave after a bad experience, whatever their activity;
        # bargain hunters and double-pack buyers buy less often without losing the habit
        freq_effect = np.where(premium | t["bargain"] | (t["period"] <= 28), 0.0, freq_effect)
        z += np.where(premium & recent_negative, h["drift_premium_negative"], 0.0)
    return z + freq_effect


_COMPETITIVE_IDX = np.array([LOCATIONS.index(x) for x in _COMPETITIVE_LOCATIONS])


def _product_catalog(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Product ids and unit prices, cheapest first."""
    prices = np.sort(np.round(rng.lognormal(np.log(18.0), 0.8, size=_N_PRODUCTS), 2))
    prices = np.maximum(prices, 0.99)
    ids = np.array([f"P{i:04d}" for i in range(1, _N_PRODUCTS + 1)], dtype=object)
    perm = rng.permutation(_N_PRODUCTS)  # ids do not reveal the price rank
    return ids[perm], prices


def _engagement(t_day: np.ndarray, decision: np.ndarray, churn: np.ndarray) -> np.ndarray:
    """Purchase-intensity multiplier: 1 before the churn decision, fading to ~0.1 at churn."""
    declining = t_day >= decision  # False while no decision (inf)
    start = np.where(declining, decision, t_day)
    length = np.where(declining, churn - start, 1.0)
    frac = np.clip((t_day - start) / length, 0.0, 1.0)
    return np.where(declining, _DECLINE_START * (1.0 - 0.8 * frac), 1.0)


def _cycle_jitter(cust: np.ndarray, k: np.ndarray) -> np.ndarray:
    """A deterministic pseudo-random offset in days, within +-_CYCLE_JITTER."""
    x = np.sin(cust * 12.9898 + k * 78.233) * 43758.5453
    return (2.0 * (x - np.floor(x)) - 1.0) * _CYCLE_JITTER


def _purchase_times(
    rng: np.random.Generator,
    t: dict,
    a: np.ndarray,
    b: np.ndarray,
    span: np.ndarray,
    season: float,
    waits: np.ndarray,
    t0: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate purchases (customer index, day) of one month, before engagement thinning.

    Most customers buy as a Poisson process; replenishment shoppers on a cycle; customers
    who ``wait`` for the sale buy only in the month's sale week.
    """
    n = len(a)
    periodic = np.isfinite(t["period"]) & ~waits
    poisson = ~np.isfinite(t["period"]) & ~waits
    n_cand = rng.poisson(np.where(poisson, t["rate"] * season * span / _DAYS_PER_MONTH, 0.0))
    cust = np.repeat(np.arange(n), n_cand)
    when = a[cust] + rng.random(len(cust)) * span[cust]
    # replenishment cycles: the k-th purchase is due at phase + k * period + jitter(k), the
    # jitter a fixed function of (customer, k) so that every purchase lands in one month only
    period = np.where(periodic, t["period"], 1.0)
    margin = _CYCLE_JITTER + 1.0
    k0 = np.ceil((a - margin - t["phase"]) / period)
    n_cyc = np.where(periodic & (span > 0), np.ceil((b + margin - t["phase"]) / period) - k0, 0)
    n_cyc = np.maximum(n_cyc, 0).astype(np.int64)
    p_cust = np.repeat(np.arange(n), n_cyc)
    first = np.repeat(np.cumsum(n_cyc) - n_cyc, n_cyc)
    k = k0[p_cust] + np.arange(len(p_cust)) - first
    p_when = t["phase"][p_cust] + k * period[p_cust] + _cycle_jitter(p_cust, k)
    due = (p_when >= a[p_cust]) & (p_when < b[p_cust])
    p_cust, p_when = p_cust[due], p_when[due]
    # the sale week: days 10-16 of the month
    s_a = np.maximum(a, t0 + _SALE_DAYS[0])
    s_span = np.clip(np.minimum(b, t0 + _SALE_DAYS[1]) - s_a, 0.0, None)
    in_sale = waits & (s_span > 0)
    n_sale = np.where(in_sale, 1 + rng.poisson(1.0, size=n), 0)
    s_cust = np.repeat(np.arange(n), n_sale)
    s_when = s_a[s_cust] + rng.random(len(s_cust)) * s_span[s_cust]
    cust = np.concatenate([cust, p_cust, s_cust])
    when = np.concatenate([when, p_when, s_when])
    order = np.argsort(cust, kind="stable")
    return cust[order], when[order]


def simulate(
    n_customers: int = 5000,
    n_months: int = 6,
    start: str = "2025-01",
    seed: int = 42,
    drift_from_month: int | None = None,
) -> SyntheticData:
    """Simulates a customer base month by month (pure: no I/O).

    Args:
        n_customers: Customers in the table (existing ones and those signing up later).
        n_months: Months of transactions and feedback to produce.
        start: First month produced, ``YYYY-MM``.
        seed: Seed of the random generator; the same seed gives identical output.
        drift_from_month: 1-based month index from which the patterns change (budget
            prices +30%, price-sensitive budget customers wait for a sale every other
            month, premium customers leave abruptly after negative feedback, sentiment
            turns negative); ``None`` for no drift. Months before it are identical to a
            run without drift.

    Returns:
        The three landing-zone tables plus the latent churn dates and traits.
    """
    if n_customers < 1 or n_months < 1:
        raise ValueError("n_customers and n_months must be positive")
    if drift_from_month is not None and not 1 <= drift_from_month <= n_months:
        raise ValueError(f"drift_from_month must be in 1..{n_months}, got {drift_from_month}")
    bounds = _month_starts(start, n_months)
    origin = bounds[0]
    month_days = np.asarray((bounds - origin).days, dtype=float)
    n_steps = BURN_IN_MONTHS + n_months
    drift_step = None if drift_from_month is None else BURN_IN_MONTHS + drift_from_month - 1

    root = np.random.SeedSequence(seed)
    cust_seq, catalog_seq, month_parent, defect_parent, text_parent = root.spawn(5)
    # one stream per month and purpose: months before a drift are identical with or without it
    month_seqs = month_parent.spawn(n_steps)
    defect_seqs = defect_parent.spawn(n_steps)
    text_seqs = text_parent.spawn(n_steps)
    rng_c = np.random.default_rng(cust_seq)

    t = _draw_customers(rng_c, n_customers, 0.0, month_days[-1])
    n = n_customers
    product_ids, product_prices = _product_catalog(np.random.default_rng(catalog_seq))

    decision = np.full(n, np.inf)
    churn = np.full(n, np.inf)
    prev_rate = t["rate"].copy()  # observed purchases per month, last month
    last_negative_step = np.full(n, -99)
    tx_parts: list[dict] = []
    fb_parts: list[dict] = []

    for step in range(n_steps):
        rng = np.random.default_rng(month_seqs[step])
        t0, t1 = month_days[step], month_days[step + 1]
        drifted = drift_step is not None and step >= drift_step
        # ---- churn decisions of customers who existed at the start of the month
        at_risk = (t["signup"] < t0) & np.isinf(decision)
        tenure = (t0 - t["signup"]) / _DAYS_PER_MONTH
        recent_neg = last_negative_step >= step - 2
        z = _hazard_logit(t, tenure, prev_rate, recent_neg, drifted)
        u_decide = rng.random(n)
        decide = at_risk & (u_decide < _sigmoid(z))
        dec_day = t0 + rng.random(n) * (t1 - t0)
        lag = rng.uniform(15.0, 50.0, size=n)
        if drifted:
            # premium members now walk out right after a bad experience: no slow fade
            abrupt = decide & (t["segment"] == 2) & recent_neg
            dec_day = np.where(abrupt, dec_day + rng.uniform(0.0, 7.0, size=n), dec_day)
            lag = np.where(abrupt, 0.0, lag)
        decision = np.where(decide, dec_day, decision)
        churn = np.where(decide, dec_day + lag, churn)

        # ---- transactions
        a = np.maximum(t0, t["signup"])
        b = np.minimum(t1, churn)
        span = np.clip(b - a, 0.0, None)
        season = 1.0 + 0.08 * np.sin(2 * np.pi * (step % 12) / 12.0)
        # after the price rise, bargain hunters only buy in the monthly sale week
        waits = t["bargain"] if drifted else np.zeros(n, dtype=bool)
        # under drift, short-cycle shoppers buy double packs: every other purchase is due
        shopper = {**t, "period": np.where(t["period"] <= 28, 2 * t["period"], t["period"])}
        cust, when = _purchase_times(rng, shopper if drifted else t, a, b, span, season, waits, t0)
        keep = rng.random(len(cust)) < _engagement(when, decision[cust], churn[cust])
        cust, when = cust[keep], when[keep]
        declining = when >= decision[cust]
        seg = t["segment"][cust]
        basket = t["qty"][cust] * np.where(declining, 0.4, 1.0) + np.where(waits[cust], 1.5, 0.0)
        qty = 1 + rng.poisson(basket)
        skew = 0.5 + 2.5 * t["price_sensitivity"][cust] + np.where(declining, 0.8, 0.0)
        prod = (rng.random(len(cust)) ** skew * _N_PRODUCTS).astype(int)
        prod = np.minimum(prod, _N_PRODUCTS - 1)
        price = product_prices[prod]
        if drifted:
            price = price * np.where(seg == 0, DRIFT_PRICE_FACTOR, 1.0)
        amount = np.round(qty * price * rng.uniform(0.95, 1.05, size=len(cust)), 2)
        counts = np.bincount(cust, minlength=n)
        observed = span >= 10.0
        month_rate = counts * _DAYS_PER_MONTH / np.maximum(span, 1e-9)
        prev_rate = np.where(observed, 0.5 * prev_rate + 0.5 * month_rate, prev_rate)
        tx_parts.append(
            {
                "cust": cust,
                "when": when,
                "amount": amount,
                "qty": qty,
                "prod": prod,
            }
        )

        # ---- feedback: at most one message a month, more likely (and sour) when leaving
        active = span > 0
        leaving_now = active & (decision < t1)
        boost = np.where(leaving_now, _LEAVER_FEEDBACK_BOOST, 1.0)
        p_write = np.clip(t["feedback_propensity"] * boost, 0, 0.9)
        writes = active & (rng.random(n) < p_write)
        fc = np.flatnonzero(writes)
        f_when = a[fc] + rng.random(len(fc)) * span[fc]
        f_leaving = f_when >= decision[fc]
        experience = (
            t["satisfaction"][fc]
            + rng.normal(0.0, 0.6, size=len(fc))
            - np.where(f_leaving, 2.0, 0.0)
        )
        price_topic = np.zeros(len(fc), dtype=bool)
        tone = experience
        if drifted:
            budget_fc = t["segment"][fc] == 0
            experience = experience - np.where(budget_fc, 0.8 * t["price_sensitivity"][fc], 0)
            price_topic = budget_fc & (experience < -0.4) & (rng.random(len(fc)) < 0.5)
            # everybody grumbles more (a general mood), which by itself drives nobody away
            tone = experience - DRIFT_SENTIMENT_SHIFT
        last_negative_step[fc[sentiment_level(experience) <= 1]] = step
        level = sentiment_level(tone)
        fb_parts.append(
            {"cust": fc, "when": f_when, "level": level, "price": price_topic, "leav": f_leaving}
        )

    first_out = BURN_IN_MONTHS
    transactions = _assemble_transactions(
        tx_parts[first_out:], defect_seqs[first_out:], origin, product_ids
    )
    feedback = _assemble_feedback(fb_parts[first_out:], text_seqs[first_out:], origin)
    ids = np.array([f"C{i:06d}" for i in range(1, n + 1)], dtype=object)
    transactions.insert(0, "customer_id", ids[transactions.pop("_cust").to_numpy()])
    feedback.insert(0, "customer_id", ids[feedback.pop("_cust").to_numpy()])
    customers = _customers_frame(t, ids, origin, rng_c)

    def to_ts(days: np.ndarray) -> pd.Series:
        out = pd.Series(pd.NaT, index=pd.Index(ids, name="customer_id"), dtype="datetime64[ns]")
        finite = np.isfinite(days)
        # rounded up: every event strictly before the latent date stays before it
        out[finite] = origin + pd.to_timedelta(np.ceil(days[finite] * 86400), unit="s")
        return out

    churn_dates = to_ts(churn).rename("churn_date")
    latent = pd.DataFrame(
        {
            "segment": np.asarray(SEGMENTS, dtype=object)[t["segment"]],
            "age": t["age"],
            "price_sensitivity": t["price_sensitivity"],
            "purchase_rate": t["rate"],
            "satisfaction": t["satisfaction"],
            "cycle_days": t["period"],  # inf: no replenishment cycle
            "bargain_hunter": t["bargain"],  # waits for the sale under drift
            "signup_date": to_ts(t["signup"]).to_numpy(),
            "decision_date": to_ts(decision).to_numpy(),
            "churn_date": churn_dates.to_numpy(),
        },
        index=pd.Index(ids, name="customer_id"),
    )
    months = tuple(str(p) for p in pd.period_range(start, periods=n_months, freq="M"))
    return SyntheticData(
        customers=customers,
        transactions=transactions,
        feedback=feedback,
        churn_dates=churn_dates,
        latent=latent,
        months=months,
        drift_from_month=drift_from_month,
    )


def _to_seconds(days: np.ndarray) -> np.ndarray:
    return np.floor(days * 86400.0).astype("int64")


def _to_timestamps(origin: pd.Timestamp, seconds: np.ndarray) -> pd.Series:
    return pd.Series(origin + pd.to_timedelta(seconds, unit="s")).astype("datetime64[ns]")


def _assemble_transactions(
    parts: list[dict],
    seqs: list[np.random.SeedSequence],
    origin: pd.Timestamp,
    product_ids: np.ndarray,
) -> pd.DataFrame:
    """Orders each month's rows, numbers the orders and injects defects month by month."""
    frames = []
    next_order = 1
    for part, seq in zip(parts, seqs, strict=True):
        rng = np.random.default_rng(seq)  # the month's defect stream
        when = _to_seconds(part["when"])
        order = np.lexsort((part["cust"], when))
        cust = part["cust"][order]
        when = when[order]
        amount = part["amount"][order].astype(float)
        m = len(cust)
        outlier = rng.random(m) < OUTLIER_RATE
        amount = np.where(outlier, np.round(amount * rng.uniform(20, 100, size=m), 2), amount)
        amount[rng.random(m) < MISSING_RATE] = np.nan
        order_ids = np.array([f"O{i:09d}" for i in range(next_order, next_order + m)], object)
        next_order += m
        rows = np.arange(m)
        dup = rng.random(m) < DUPLICATE_RATE
        rows = np.sort(np.concatenate([rows, rows[dup]]), kind="stable")
        frames.append(
            pd.DataFrame(
                {
                    "_cust": cust[rows],
                    "timestamp": _to_timestamps(origin, when[rows]),
                    "amount": amount[rows],
                    "order_id": order_ids[rows],
                    "quantity": part["qty"][order][rows].astype("int64"),
                    "product_id": product_ids[part["prod"][order][rows]],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _assemble_feedback(
    parts: list[dict], seqs: list[np.random.SeedSequence], origin: pd.Timestamp
) -> pd.DataFrame:
    """Orders the feedback rows, writes their text and blanks ~5% of it."""
    frames = []
    for part, seq in zip(parts, seqs, strict=True):
        when = _to_seconds(part["when"])
        order = np.lexsort((part["cust"], when))
        sub_rng = np.random.default_rng(seq)
        texts = np.array(
            compose_texts(sub_rng, part["level"][order], part["price"][order], part["leav"][order]),
            dtype=object,
        )
        texts[sub_rng.random(len(texts)) < MISSING_RATE] = np.nan
        frames.append(
            pd.DataFrame(
                {
                    "_cust": part["cust"][order],
                    "timestamp": _to_timestamps(origin, when[order]),
                    "text": texts,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _customers_frame(
    t: dict, ids: np.ndarray, origin: pd.Timestamp, rng: np.random.Generator
) -> pd.DataFrame:
    """The customers table as exported, with missing values and impossible ages."""
    n = len(ids)
    age = t["age"].astype(float).copy()
    outlier = rng.random(n) < OUTLIER_RATE
    age[outlier] = rng.choice([-1.0, 0.0, 150.0, 199.0, 999.0], size=int(outlier.sum()))
    age[rng.random(n) < MISSING_RATE] = np.nan
    gender = np.asarray(GENDERS, dtype=object)[t["gender"]]
    gender[rng.random(n) < MISSING_RATE] = np.nan
    location = np.asarray(LOCATIONS, dtype=object)[t["location"]]
    location[rng.random(n) < MISSING_RATE] = np.nan
    signup = origin + pd.to_timedelta(t["signup"], unit="D")
    return pd.DataFrame(
        {
            "customer_id": ids,
            "signup_date": pd.Series(signup).astype("datetime64[ns]"),
            "age": age,
            "gender": gender,
            "location": location,
            "segment": np.asarray(SEGMENTS, dtype=object)[t["segment"]],
        }
    )


# --------------------------------------------------------------------------- landing zone


def _csv_ready(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Formats timestamps and integer-valued columns the way the exports look."""
    out = frame.loc[:, list(TABLES[table].columns)].copy()
    if table == CUSTOMERS:
        out["signup_date"] = out["signup_date"].dt.strftime(DATE_FORMAT)
        out["age"] = out["age"].round().astype("Int64")
    else:
        out["timestamp"] = out["timestamp"].dt.strftime(TIMESTAMP_FORMAT)
    return out


def write_to_landing_zone(data: SyntheticData, zone: LandingZone, daily: bool = False) -> dict:
    """Writes the tables to a landing zone as date-partitioned CSV files, replacing the last.

    Every simulated month (or day, when ``daily``) gets a file, empty ones included;
    re-writing the same data gives byte-identical files. The dataset replaces the one
    written before as a whole (files of months it no longer has are removed), all or
    nothing (:func:`~churn_kfp.data.staging.write_change`, committed by the generator's
    manifest ``imports/synthetic-data.json``), under the landing zone's lock.

    Args:
        data: Output of :func:`simulate`.
        zone: Target landing zone.
        daily: Write ``year=/month=/day=`` partitions instead of monthly ones.

    Returns:
        A summary: rows per table, months, number and keys of the files written.

    Raises:
        ForeignDataError: The landing zone holds data the generator did not write.
        LandingZoneBusy: Another run or import holds the landing zone's lock.
    """
    files: list[tuple[str, bytes]] = []
    partitions: list[dict] = []

    def add(key: str, period: str, frame: pd.DataFrame) -> None:
        files.append((key, frame_bytes(key, frame)))
        partitions.append({"key": key, "period": period, "rows": len(frame)})

    add(unpartitioned_key(CUSTOMERS), "all", _csv_ready(CUSTOMERS, data.customers))
    for table, frame in ((TRANSACTIONS, data.transactions), (FEEDBACK, data.feedback)):
        ready = _csv_ready(table, frame)
        stamp = frame["timestamp"]
        month_of = ready["timestamp"].str.slice(0, 7)
        for month in data.months:
            period = pd.Period(month, freq="M")
            in_month = ready[month_of == month]
            if not daily:
                add(partition_key(table, period.year, period.month), month, in_month)
                continue
            day_of = stamp[in_month.index].dt.day
            for day in range(1, period.days_in_month + 1):
                key = partition_key(table, period.year, period.month, day)
                add(key, f"{month}-{day:02d}", in_month[day_of == day])
    rows = {
        CUSTOMERS: len(data.customers),
        TRANSACTIONS: len(data.transactions),
        FEEDBACK: len(data.feedback),
    }
    months = f"{data.months[0]}..{data.months[-1]}" if data.months else "no months"
    manifest = {
        "source": f"synthetic data ({rows[CUSTOMERS]:,} customers, {months})",
        "table": "all",
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "daily": daily,
        "rows": rows,
        "partitions": partitions,
    }
    with landing_zone_lock(zone, "the synthetic data generator"):
        settle(zone, abandon=True)
        previous = check_generator_owns(zone)
        write_change(zone, files, SYNTHETIC_MANIFEST_KEY, manifest, deletes=previous)
    keys = [key for key, _ in files]
    return {
        "landing_zone": zone.uri,
        "months": list(data.months),
        "daily": daily,
        "rows": rows,
        "files_written": len(keys),
        "keys": keys,
    }


class ForeignDataError(LandingZoneError):
    """The landing zone holds data the synthetic generator did not write."""


def check_generator_owns(zone: LandingZone) -> set[str]:
    """Checks that every data file and manifest in the landing zone is the generator's.

    Returns:
        The data files of the dataset the generator wrote last (to be replaced).

    Raises:
        ForeignDataError: Imported data, or data files no generator manifest names; the
            message says what to do instead.
    """
    try:
        manifest = json.loads(zone.read_bytes(SYNTHETIC_MANIFEST_KEY))
    except (FileNotFoundError, ValueError):
        manifest = {}
    own = {p["key"] for p in manifest.get("partitions", [])}
    foreign = [key for key in contract_data_keys(zone) if key not in own]
    imports = [
        key
        for key in zone.list_keys(MANIFEST_PREFIX)
        if key.endswith(".json") and key != SYNTHETIC_MANIFEST_KEY
    ]
    if foreign or imports:
        found = [f"{len(foreign)} data file(s) it did not write"] if foreign else []
        found += [f"{len(imports)} import(s) of churn import"] if imports else []
        example = f" (e.g. {foreign[0]})" if foreign else ""
        raise ForeignDataError(
            f"landing zone {zone.uri} holds {' and '.join(found)}{example}: the synthetic "
            "generator never writes beside other data. To train on that data, run "
            "`churn run --no-generate`; for synthetic data, use another landing zone "
            "(`churn run --landing-zone PATH`, or CHURN_LANDING_ZONE). Nothing was written"
        )
    return own


def generate(
    uri_or_zone: str | LandingZone,
    n_customers: int = 5000,
    n_months: int = 6,
    start: str = "2025-01",
    seed: int = 42,
    drift_from_month: int | None = None,
    daily: bool = False,
) -> dict:
    """Simulates a customer base and writes it to a landing zone.

    Args:
        uri_or_zone: A landing zone, or a URI/path for
            :func:`~churn_kfp.data.storage.open_landing_zone`.
        n_customers: See :func:`simulate`.
        n_months: See :func:`simulate`.
        start: See :func:`simulate`.
        seed: See :func:`simulate`.
        drift_from_month: See :func:`simulate`.
        daily: Write daily partitions instead of monthly ones.

    Returns:
        The summary of :func:`write_to_landing_zone` plus the simulation parameters.
    """
    zone = open_landing_zone(uri_or_zone) if isinstance(uri_or_zone, str) else uri_or_zone
    data = simulate(
        n_customers=n_customers,
        n_months=n_months,
        start=start,
        seed=seed,
        drift_from_month=drift_from_month,
    )
    summary = write_to_landing_zone(data, zone, daily=daily)
    summary.update(
        n_customers=n_customers,
        n_months=n_months,
        start=start,
        seed=seed,
        drift_from_month=drift_from_month,
    )
    return summary
