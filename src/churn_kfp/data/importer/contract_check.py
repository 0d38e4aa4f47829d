"""The contract check of the rows to write: the contract's pandera schema, done fast.

:func:`validate` checks the rows an import would write with
:func:`churn_kfp.data.contract.schema`, the schema ingestion uses. Schemas that check one
value of one column at a time (:func:`value_wise`) are checked on each column's distinct
values instead of every row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churn_kfp.data.contract import schema
from churn_kfp.data.importer.errors import ImportRefused
from churn_kfp.data.importer.mapping import ImportMapping
from churn_kfp.data.importer.values import is_text, repetitive

if TYPE_CHECKING:
    import pandera.pandas as pandera

__all__ = ["validate", "value_wise"]


def value_wise(contract_schema: pandera.DataFrameSchema) -> bool:
    """Whether a pandera schema checks one value of one column at a time.

    True when it checks only each column's type and nullability: no checks, parsers or
    uniqueness (of the frame or of a column), no index.
    """
    columns = contract_schema.columns.values()
    return not (
        contract_schema.unique
        or contract_schema.checks
        or contract_schema.parsers
        or contract_schema.index is not None
        or any(c.unique or c.checks or c.parsers for c in columns)
    )


def validate(
    table: pa.Table,
    rows: np.ndarray,
    mapping: ImportMapping,
    name: str,
    id_codes: np.ndarray | None = None,
    id_dictionary: pa.Array | None = None,
) -> None:
    """Validates the given rows of ``table`` against the contract's pandera schema.

    When the schema is :func:`value_wise`, a row passes exactly when each of its values
    passes its column's checks, so checking every distinct value of each column once
    (nulls included) proves what checking every row would, for a fraction of the work:
    the first row is checked against the whole schema (column names, presence), then
    each column's distinct values against the schema's own column (``select_columns``).
    Text (Python strings for pandas) is what takes pandera long, one value at a time;
    numbers and time stamps are checked vectorised, so those that rarely repeat are
    checked as they are. ``id_codes`` and ``id_dictionary`` (the customer ids as codes
    into their distinct values) give the distinct customer ids without hashing them
    again. Other schemas check every row.
    """
    from pandera.errors import SchemaError, SchemaErrors

    contract = schema(mapping.table)
    distinct = value_wise(contract)
    if distinct:
        parts = [(contract, table.slice(int(rows[0]), 1))]
        for column in table.column_names:
            if column not in contract.columns:
                continue
            values = table.column(column)
            if column == "customer_id" and id_codes is not None:
                values = _distinct(values, rows, id_codes, id_dictionary)
            elif is_text(values) or repetitive(values):
                values = _distinct(values, rows)
            elif rows.size < len(values):
                values = values.take(pa.array(rows))
            parts.append((contract.select_columns([column]), pa.table({column: values})))
    else:
        parts = [(contract, table.take(pa.array(rows)))]
    changed = set()
    for part_schema, part in parts:
        frame = part.to_pandas(deduplicate_objects=not distinct)  # distinct: nothing to share
        try:
            checked = part_schema.validate(frame, lazy=True)
        except (SchemaError, SchemaErrors) as exc:
            detail = " ".join(str(exc).strip().splitlines()[:6])
            raise ImportRefused(
                name, None, f"the mapped rows do not meet the data contract: {detail[:600]}"
            ) from None
        changed |= {c for c in frame.columns if checked[c].dtype != frame[c].dtype}
    if changed:  # never expected: the files are written from `table`, which must not differ
        raise ImportRefused(
            name, None, f"the contract changed the types of {sorted(changed)}; please report this"
        )


def _distinct(
    values: pa.ChunkedArray,
    rows: np.ndarray,
    codes: np.ndarray | None = None,
    dictionary: pa.Array | None = None,
) -> pa.Array:
    """The distinct values (null included) in the given rows of a column.

    ``codes`` and ``dictionary`` (the column as codes into its distinct values) save
    hashing the values again.
    """
    if codes is None or dictionary is None:
        if rows.size == len(values):
            return pc.unique(values)
        encoded = pc.dictionary_encode(values.combine_chunks(), null_encoding="encode")
        codes, dictionary = encoded.indices.to_numpy(), encoded.dictionary
    present = np.bincount(codes[rows], minlength=len(dictionary)) > 0
    return dictionary.filter(pa.array(present))
