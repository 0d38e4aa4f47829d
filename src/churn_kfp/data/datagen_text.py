"""The synthetic generator's feedback texts: review templates and how a review is composed.

:func:`~churn_kfp.data.datagen.simulate` decides each review's tone from the customer's
experience; :func:`sentiment_level` maps the tone to one of five levels and
:func:`compose_texts` writes the reviews from templates of that level, with price
complaints (after the drift's price rise) and churn threats from leavers.
"""

from __future__ import annotations

import numpy as np

__all__ = ["compose_texts", "sentiment_level"]

_POS_STRONG = (
    "Absolutely love this shop!",
    "Fantastic service, I highly recommend it.",
    "Excellent quality and super fast delivery.",
    "Best purchase I have made this year, thank you so much!",
    "Amazing experience, the staff were wonderful and helpful.",
    "Brilliant {item}, great value and perfect condition.",
    "Superb customer service, they were really kind.",
)
_POS_MILD = (
    "Good {item}, arrived on time.",
    "Nice quality for the price.",
    "Happy with my order.",
    "The delivery was quick and the {item} works well.",
    "Pleasant experience overall.",
    "The {item} is fine and I like it.",
    "Easy checkout, good selection.",
)
_NEUTRAL = (
    "Ordered a {item} last week.",
    "The parcel arrived on {day}.",
    "I bought a {item} for my {person}.",
    "Package received, have not opened it yet.",
    "Second order this month.",
    "Delivery was on {day} as scheduled.",
    "Checking the status of my order for the {item}.",
)
_NEG_MILD = (
    "The delivery was a bit slow.",
    "The {item} was not as described.",
    "Customer service took too long to reply.",
    "Packaging was damaged, the {item} is okay I guess.",
    "Not great, I expected better quality.",
    "Disappointed that the {item} was out of stock again.",
    "The website is confusing and checkout failed twice.",
)
_NEG_STRONG = (
    "Terrible experience, the {item} arrived broken.",
    "Awful customer service, nobody answers my emails.",
    "Worst purchase ever, a complete waste of money.",
    "Very disappointed and frustrated with this shop.",
    "Horrible quality, I want a refund.",
    "Useless support and a damaged {item}, I am angry.",
    "The order never arrived and nobody cares. Unacceptable.",
)
_PRICE_COMPLAINTS = (
    "Prices went up again, it is too expensive now.",
    "Everything costs more than last month, not worth it anymore.",
    "The new prices are ridiculous, I am disappointed.",
    "Why is the {item} suddenly so expensive? Bad deal.",
)
_CHURN_THREATS = (
    "I am cancelling my account.",
    "I will not order again.",
    "Thinking about switching to another store.",
    "Never again.",
    "Goodbye.",
)
_PREFIXES = ("", "", "", "Hi, ", "Update: ", "Honestly, ", "Well, ", "FYI: ")
_SUFFIXES = ("", "", "", " Thanks.", " Regards.", "!", " Cheers.")
_ITEMS = (
    "jacket",
    "kettle",
    "headphones",
    "lamp",
    "backpack",
    "blender",
    "sofa cushion",
    "phone case",
    "rug",
    "coffee maker",
    "toaster",
    "desk chair",
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_PEOPLE = ("wife", "husband", "son", "daughter", "mother", "friend", "office")
_LEVELS = (_NEG_STRONG, _NEG_MILD, _NEUTRAL, _POS_MILD, _POS_STRONG)


def sentiment_level(experience: np.ndarray) -> np.ndarray:
    """Maps experience scores to 0 (very negative) .. 4 (very positive)."""
    return np.digitize(experience, [-1.2, -0.4, 0.3, 1.2])


def compose_texts(
    rng: np.random.Generator, level: np.ndarray, price_topic: np.ndarray, leaving: np.ndarray
) -> list[str]:
    """Builds one free-text review per row from templates plus random variation."""
    n = len(level)
    u = rng.random((n, 8))
    idx = (u * 1_000_003).astype(np.int64)
    # a second sentence of an adjacent sentiment, for variety
    second_level = np.clip(level + rng.integers(-1, 2, size=n), 0, 4)
    texts = []
    for i in range(n):
        lv = int(level[i])
        if price_topic[i]:
            main = _PRICE_COMPLAINTS[idx[i, 0] % len(_PRICE_COMPLAINTS)]
        else:
            pool = _LEVELS[lv]
            main = pool[idx[i, 0] % len(pool)]
        parts = [main]
        if u[i, 1] < 0.45:
            pool = _LEVELS[int(second_level[i])]
            second = pool[idx[i, 2] % len(pool)]
            if second == main:
                second = pool[(idx[i, 2] + 1) % len(pool)]
            parts.append(second)
        if leaving[i] and lv <= 1 and u[i, 3] < 0.5:
            parts.append(_CHURN_THREATS[idx[i, 4] % len(_CHURN_THREATS)])
        text = " ".join(parts).format(
            item=_ITEMS[idx[i, 5] % len(_ITEMS)],
            day=_DAYS[idx[i, 6] % len(_DAYS)],
            person=_PEOPLE[idx[i, 7] % len(_PEOPLE)],
        )
        prefix = _PREFIXES[idx[i, 1] % len(_PREFIXES)]
        if prefix:
            text = prefix + (text if text.startswith("I ") else text[0].lower() + text[1:])
        suffix = _SUFFIXES[idx[i, 3] % len(_SUFFIXES)]
        if suffix == "!" and text.endswith((".", "!", "?")):
            suffix = ""
        texts.append(text + suffix)
    return texts
