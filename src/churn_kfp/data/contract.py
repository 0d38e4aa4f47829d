"""The landing-zone data contract, written once.

Import, ingestion/validation and the serving input checks all use these
definitions; ``docs/data-contract.md`` describes them for humans.

Timestamps are naive and mean UTC. Amounts are in the shop's currency (one currency
per landing zone). Customer ids are strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import pandera.pandas as pa
from pandera.dtypes import immutable
from pandera.engines import pandas_engine

TRANSACTIONS = "transactions"
CUSTOMERS = "customers"
FEEDBACK = "feedback"

AGE_RANGE = (16, 100)

NULL_TOKENS = ("", "NA", "N/A", "n/a", "NaN", "nan", "NULL", "null", "None", "none")
"""Text that means "missing" in a column (compared after trimming blanks).

``churn import`` treats exactly these as missing unless a mapping's ``na_values`` says
otherwise; ingestion adds :data:`INGESTION_NULL_TOKENS`."""

INGESTION_NULL_TOKENS = frozenset(NULL_TOKENS) | {"na", "NAN", "Null", "NONE", "Nan", "N/a"}
"""What ingestion reads as missing: :data:`NULL_TOKENS` and other casings of them, for
files that reach the landing zone without ``churn import`` (feedback text excepted)."""


@dataclass(frozen=True)
class TableContract:
    """One landing-zone table.

    Attributes:
        name: Logical table name.
        folder: Folder under ``raw/`` in the landing zone.
        file_prefix: Prefix of the partition files (``sales_2025_01.csv``).
        required: Columns that must be present.
        optional: Columns that may be present.
        partitioned: Whether the table is split into date partitions.
        time_column: The column that decides the partition, if partitioned.
    """

    name: str
    folder: str
    file_prefix: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    partitioned: bool
    time_column: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """Required then optional columns."""
        return self.required + self.optional


TABLES: dict[str, TableContract] = {
    TRANSACTIONS: TableContract(
        name=TRANSACTIONS,
        folder="sales",
        file_prefix="sales",
        required=("customer_id", "timestamp", "amount"),
        optional=("order_id", "quantity", "product_id"),
        partitioned=True,
        time_column="timestamp",
    ),
    CUSTOMERS: TableContract(
        name=CUSTOMERS,
        folder="customers",
        file_prefix="customers",
        required=("customer_id",),
        optional=("signup_date", "age", "gender", "location", "segment"),
        partitioned=False,
    ),
    FEEDBACK: TableContract(
        name=FEEDBACK,
        folder="feedback",
        file_prefix="feedback_raw",
        required=("customer_id", "timestamp", "text"),
        optional=(),
        partitioned=True,
        time_column="timestamp",
    ),
}


@immutable
class ContractString(pandas_engine.NpString):
    """pandera's ``str`` type, with its check on object columns done in one vectorised pass.

    pandera checks a ``str`` column by calling ``isinstance`` on every value from Python
    (about 1 s per 10M ids); ``pandas.api.types.infer_dtype`` answers "every non-missing
    value is a string" in C (0.16 s). Only a column it does not call all-strings takes pandera's
    own per-value check, so the failure cases and messages are pandera's.
    """

    def coerce(self, data_container: Any) -> Any:
        """The column itself when it already holds only strings (pandera would copy it twice)."""
        if _all_strings(data_container):
            return data_container
        return super().coerce(data_container)

    def check(self, pandera_dtype: Any, data_container: Any = None) -> Any:
        """Per-value booleans (all ``True`` when every non-missing value is a ``str``)."""
        if _all_strings(data_container):
            return pd.Series(True, index=data_container.index)
        return super().check(pandera_dtype, data_container)


def _all_strings(data_container: Any) -> bool:
    """Whether an object Series' non-missing values are all ``str`` (one pass in C)."""
    return (
        isinstance(data_container, pd.Series)
        and data_container.dtype == object
        and pd.api.types.infer_dtype(data_container, skipna=True) in ("string", "empty")
    )


_TEXT = ContractString()  # type: ignore[call-arg]  # @immutable makes a no-argument __init__
_TIME = pandas_engine.DateTime(to_datetime_kwargs={"cache": False})  # type: ignore[call-arg]
"""``datetime64[ns]``, coerced without ``pandas.to_datetime``'s cache of distinct values,
which costs seconds on a column that is already of that type (8 s at 30M time stamps)."""

_COLUMN_SPECS: dict[str, dict[str, pa.Column]] = {
    TRANSACTIONS: {
        "customer_id": pa.Column(_TEXT, nullable=False),
        "timestamp": pa.Column(_TIME, nullable=False),
        "amount": pa.Column(float, nullable=True),
        "order_id": pa.Column(_TEXT, nullable=True, required=False),
        "quantity": pa.Column(float, nullable=True, required=False),
        "product_id": pa.Column(_TEXT, nullable=True, required=False),
    },
    CUSTOMERS: {
        "customer_id": pa.Column(_TEXT, nullable=False, unique=True),
        "signup_date": pa.Column(_TIME, nullable=True, required=False),
        "age": pa.Column(float, nullable=True, required=False),
        "gender": pa.Column(_TEXT, nullable=True, required=False),
        "location": pa.Column(_TEXT, nullable=True, required=False),
        "segment": pa.Column(_TEXT, nullable=True, required=False),
    },
    FEEDBACK: {
        "customer_id": pa.Column(_TEXT, nullable=False),
        "timestamp": pa.Column(_TIME, nullable=False),
        "text": pa.Column(_TEXT, nullable=True),
    },
}


def schema(table: str) -> pa.DataFrameSchema:
    """Returns the pandera schema of a clean (validated) table.

    Args:
        table: One of ``transactions``, ``customers``, ``feedback``.

    Returns:
        A schema that coerces types and rejects missing required columns.
    """
    if table not in _COLUMN_SPECS:
        raise KeyError(f"unknown table {table!r}; known tables: {sorted(_COLUMN_SPECS)}")
    return pa.DataFrameSchema(_COLUMN_SPECS[table], coerce=True, strict=False, name=table)
