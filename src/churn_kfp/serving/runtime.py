"""An MLServer runtime for the churn model: MLServer's MLflow runtime plus input validation.

:class:`SafeMLflowRuntime` is ``mlserver_mlflow.MLflowRuntime`` loading the model through
:mod:`churn_kfp.registry.loading`: skops with the project's trusted types only; a model saved
with pickle or cloudpickle, or a pyfunc ``python_model``, is refused before anything in it is
deserialised, and ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` is never needed.
:class:`ValidatingMLflowRuntime` loads that way too, with three more changes:

1. **Every request is checked against the model's MLflow signature before it reaches the
   model.** Missing or extra columns, wrong datatypes, values of the wrong kind, infinite
   numbers, nulls where the column does not allow them, rows of unequal length and empty
   batches get HTTP **422** with a message naming each offending field, for example
   ``{"error": "invalid request for model churn-classifier: missing column(s) ['age'];
   unexpected column(s) ['colour']"}``. The stock runtime answers most of these with a bare
   ``500 Internal Server Error`` (MLflow's ``MlflowException`` is not an MLServer error),
   accepts extra columns silently and even scores rows whose columns differ in length.
2. **The response is the churn probability, not MLflow's raw output.** Output
   ``churn_probability`` (FP64, shape ``[n]``) is P(churn) for every row, i.e. column 1 of
   the model's ``predict_proba``; when the tuned threshold is known, output ``churn`` (BOOL,
   shape ``[n]``, ``probability >= threshold``) carries the decision and its ``parameters``
   name the threshold. The stock runtime returns one FP32 ``[n, 2]`` tensor named
   ``output-1`` (while its metadata calls it ``output-0``).
3. **A lean hot path.** Each request is decoded once, into validated numpy columns
   (:func:`decode_columns`); the validation does what MLflow's schema enforcement would, so
   the pyfunc layer is skipped. A model that :mod:`churn_kfp.serving.lean` compiles (the
   project's ``ColumnTransformer`` + classifier pipelines) is scored from those columns by
   plain numpy steps straight into the classifier (XGBoost's booster), with no DataFrame;
   the compilation is checked bit-for-bit against ``predict_proba`` when the model loads.
   Other scikit-learn models get a DataFrame and their own ``predict_proba``. Either way
   probabilities are bit-for-bit those of ``mlflow.pyfunc.load_model(uri).predict``.
   Lean requests of up to :data:`INLINE_MAX_ROWS` rows are scored on the event loop (a
   thread hand-over costs more than the model); larger ones, and the DataFrame path, in a
   worker thread, so the event loop keeps reading other requests. The model's ``n_jobs``
   is set to 1 (see :func:`limit_threads`).

Nulls: numeric (``double``/``float``) and ``string`` columns accept ``null``: the model's
pipeline imputes them (numbers become ``NaN``, strings ``None``). Integer and boolean columns
cannot hold nulls (MLflow refuses them too). A model can forbid nulls in more columns with
the ``non_nullable_columns`` list in its MLflow model metadata or in the model settings'
``parameters.extra``.

Settings (``model-settings.json`` ``parameters.extra``, or the ``MLSERVER_MODEL_EXTRA``
environment variable as JSON, both optional):

- ``threshold``: decision threshold on P(churn); otherwise the model metadata's
  ``threshold`` is used, if any.
- ``non_nullable_columns``: list of input columns that must not contain nulls.
- ``inference_threads``: ``n_jobs`` of the model's estimators while serving (default 1,
  see :func:`limit_threads`; 0 keeps the trained value).

Requests of more rows than ``CHURN_SERVE_MAX_ROWS`` (environment, default 10,000) get 422;
bodies over the byte limit never get here (413, :mod:`churn_kfp.serving.limits`).

KServe runs this class with any MLServer image that has this package installed: set
``MLSERVER_MODEL_IMPLEMENTATION=churn_kfp.serving.runtime.ValidatingMLflowRuntime`` (the
``kserve-mlserver`` runtime takes it from the InferenceService label ``modelClass``); see
``docs/serving.md``.

This module imports MLServer and MLflow at import time: only the MLServer process imports it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from fastapi import status
from mlflow.exceptions import MlflowException
from mlserver.errors import MLServerError
from mlserver.types import (
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataTensor,
    Parameters,
    RequestInput,
    ResponseOutput,
)
from mlserver.utils import get_model_uri
from mlserver_mlflow import MLflowRuntime

from churn_kfp.registry.contract import DECISION_OUTPUT, PROBABILITY_OUTPUT, positive_class_proba
from churn_kfp.registry.loading import load_pyfunc
from churn_kfp.serving.lean import LeanPipeline, NotCompilable, compile_pipeline
from churn_kfp.serving.limits import MAX_ROWS_ENV, RequestLimits

logger = logging.getLogger(__name__)

THRESHOLD_KEY = "threshold"
NON_NULLABLE_KEY = "non_nullable_columns"
THREADS_KEY = "inference_threads"
DEFAULT_INFERENCE_THREADS = 1
INLINE_MAX_ROWS = 64
"""Requests up to this many rows are scored on the event loop when the lean path applies."""

_FLOAT_DATATYPES = frozenset({"FP16", "FP32", "FP64"})
_INT_DATATYPES = frozenset(
    {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
)
_NUMERIC_DATATYPES = _FLOAT_DATATYPES | _INT_DATATYPES

# MLflow column type -> (accepted V2 datatypes, datatype to advertise, numpy dtype)
_COLUMN_KINDS: dict[str, tuple[frozenset[str], str, Any]] = {
    "double": (_NUMERIC_DATATYPES, "FP64", np.float64),
    "float": (_NUMERIC_DATATYPES, "FP32", np.float32),
    "long": (_INT_DATATYPES, "INT64", np.int64),
    "integer": (_INT_DATATYPES, "INT32", np.int32),
    "boolean": (frozenset({"BOOL"}), "BOOL", np.bool_),
    "string": (frozenset({"BYTES"}), "BYTES", object),
}
_MAX_LISTED = 5


class InvalidInputError(MLServerError):
    """A request that does not fit the model's inputs (HTTP 422, message names the fields)."""

    def __init__(self, msg: str):
        super().__init__(msg, status.HTTP_422_UNPROCESSABLE_ENTITY)


class ModelFailedError(MLServerError):
    """The model raised on input that passed validation (HTTP 500, with the reason)."""

    def __init__(self, msg: str):
        super().__init__(msg, status.HTTP_500_INTERNAL_SERVER_ERROR)


@dataclass(frozen=True)
class ColumnSpec:
    """One input column of the model signature.

    Attributes:
        name: Column name.
        kind: MLflow type name (``double``, ``string``, ...).
        nullable: Whether ``null`` values are accepted.
    """

    name: str
    kind: str

    nullable: bool = True

    @property
    def supported(self) -> bool:
        """Whether :func:`decode_inputs` can check and decode this column itself."""
        return self.kind in _COLUMN_KINDS

    @property
    def datatype(self) -> str:
        """The V2 datatype clients should send."""
        return _COLUMN_KINDS[self.kind][1] if self.supported else "BYTES"


def column_specs(signature: Any, non_nullable: Sequence[str] = ()) -> list[ColumnSpec] | None:
    """Reads the input columns of an MLflow model signature.

    Args:
        signature: ``mlflow.models.ModelSignature`` or ``None``.
        non_nullable: Columns that must not contain nulls (besides integer and boolean ones).

    Returns:
        One spec per named column, or ``None`` when the signature has no named columns
        (no signature or a tensor signature): then nothing is validated here.
    """
    if signature is None or signature.inputs is None:
        return None
    schema = signature.inputs
    if schema.is_tensor_spec() or not schema.has_input_names():
        return None
    forbidden = set(non_nullable)
    specs = []
    for col in schema.inputs:
        kind = getattr(col.type, "name", None) or str(col.type)
        nullable = kind in ("double", "float", "string") and col.name not in forbidden
        specs.append(ColumnSpec(name=col.name, kind=kind, nullable=nullable))
    return specs


def decode_inputs(
    inputs: Sequence[RequestInput], specs: Sequence[ColumnSpec], model_name: str = "the model"
) -> pd.DataFrame:
    """Checks V2 request inputs against the model's columns and builds the feature frame.

    The DataFrame of :func:`decode_columns` (same checks, same errors).
    """
    # insertion order is the signature order; `columns=` costs 0.6 ms
    return pd.DataFrame(decode_columns(inputs, specs, model_name))


def decode_columns(
    inputs: Sequence[RequestInput], specs: Sequence[ColumnSpec], model_name: str = "the model"
) -> dict[str, Any]:
    """Checks V2 request inputs against the model's columns and decodes each one once.

    Every problem is collected, so one answer names all offending fields.

    Args:
        inputs: The request's inputs, one per column.
        specs: The model's columns (:func:`column_specs`).
        model_name: Model name for the error message.

    Returns:
        One array per column, in signature order: ``float64``/``float32`` for numeric
        columns (nulls as ``NaN``), ``object`` for strings (nulls as ``None``), integer and
        boolean dtypes otherwise. Columns of kinds not handled here are lists, as given.

    Raises:
        InvalidInputError: Missing, extra, duplicate or mistyped columns, nulls or infinite
            values where not allowed, unequal lengths, or no rows.
    """
    problems: list[str] = []
    by_name: dict[str, RequestInput] = {}
    duplicates = []
    for request_input in inputs:
        if request_input.name in by_name:
            duplicates.append(request_input.name)
        by_name[request_input.name] = request_input
    expected = [spec.name for spec in specs]
    missing = [name for name in expected if name not in by_name]
    extra = [name for name in by_name if name not in set(expected)]
    if duplicates:
        problems.append(f"duplicate input(s) {sorted(set(duplicates))}")
    if missing:
        problems.append(f"missing column(s) {missing}")
    if extra:
        problems.append(f"unexpected column(s) {extra}")

    columns: dict[str, Any] = {}
    lengths: dict[str, int] = {}
    for spec in specs:
        request_input = by_name.get(spec.name)
        if request_input is None:
            continue
        try:
            values = _decode_column(request_input, spec)
        except _ColumnError as exc:
            problems.append(f"column '{spec.name}': {exc}")
            continue
        columns[spec.name] = values
        lengths[spec.name] = len(values)

    if not problems:
        sizes = set(lengths.values())
        if len(sizes) > 1:
            problems.append(f"columns have different numbers of rows: {lengths}")
        elif sizes == {0} or not sizes:
            problems.append("empty batch: send at least one row")
    if missing or extra:
        problems.append(f"the model's input columns are {expected}")
    if problems:
        raise InvalidInputError(f"invalid request for model {model_name}: " + "; ".join(problems))
    return columns


class _ColumnError(ValueError):
    pass


def _decode_column(request_input: RequestInput, spec: ColumnSpec) -> Any:
    datatype = getattr(request_input.datatype, "value", str(request_input.datatype))
    shape = list(request_input.shape)
    data = request_input.data.root if hasattr(request_input.data, "root") else request_input.data
    if not isinstance(data, list):
        raise _ColumnError("'data' must be a JSON array")
    values = _flatten(data)
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise _ColumnError(f"shape must be [n] or [n, 1], got {shape}")
    if shape[0] != len(values):
        raise _ColumnError(f"shape {shape} but {len(values)} value(s) in 'data'")
    if not spec.supported:
        return values
    accepted, advertised, dtype = _COLUMN_KINDS[spec.kind]
    if datatype not in accepted:
        raise _ColumnError(
            f"expected datatype {advertised} (MLflow type {spec.kind}), got {datatype}"
        )
    if spec.kind == "string":
        return _strings(values, spec)
    if spec.kind in ("double", "float"):
        if datatype in _INT_DATATYPES:  # whole numbers are fine; 1.5 is not what INT64 says
            rows = [i for i, v in enumerate(values) if isinstance(v, float) and not v.is_integer()]
            if rows:
                raise _bad(
                    rows,
                    values,
                    f"datatype {datatype} declared, but not whole numbers; send {advertised}",
                )
        return _floats(values, spec, dtype)
    if spec.kind == "boolean":
        return _exact(values, bool, "booleans", dtype)
    return _exact(values, int, "integers", dtype)


def _flatten(data: list) -> list:
    if data and isinstance(data[0], list):
        flat: list = []
        for item in data:
            if isinstance(item, list):
                flat.extend(_flatten(item))
            else:
                flat.append(item)
        return flat
    return data


def _bad(rows: list[int], values: list, what: str) -> _ColumnError:
    shown = ", ".join(f"row {i}: {values[i]!r}" for i in rows[:_MAX_LISTED])
    more = f" and {len(rows) - _MAX_LISTED} more" if len(rows) > _MAX_LISTED else ""
    return _ColumnError(f"{what} ({shown}{more})")


def _null_error(rows: list[int]) -> _ColumnError:
    shown = rows[:_MAX_LISTED]
    more = f" and {len(rows) - _MAX_LISTED} more" if len(rows) > _MAX_LISTED else ""
    return _ColumnError(f"null/NaN values are not allowed (row(s) {shown}{more})")


def _floats(values: list, spec: ColumnSpec, dtype: Any) -> np.ndarray:
    kinds = {type(v) for v in values}
    if not kinds <= {float, int, type(None)}:
        rows = [
            i
            for i, v in enumerate(values)
            if not (v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)))
        ]
        raise _bad(rows, values, "expected numbers")
    if type(None) in kinds:
        values = [math.nan if v is None else v for v in values]
    try:
        array = np.asarray(values, dtype=np.float64)
    except OverflowError:  # integers beyond float range
        raise _ColumnError("numbers out of range") from None
    array = array.astype(np.float64, copy=False)
    nulls = np.isnan(array)
    if not spec.nullable and nulls.any():
        raise _null_error(np.flatnonzero(nulls).tolist())
    infinite = np.isinf(array)
    if infinite.any():
        raise _bad(np.flatnonzero(infinite).tolist(), values, "infinite values are not allowed")
    return array.astype(dtype, copy=False)


def _strings(values: list, spec: ColumnSpec) -> np.ndarray:
    rows = [i for i, v in enumerate(values) if not (v is None or isinstance(v, str))]
    if rows:
        raise _bad(rows, values, "expected strings")
    if not spec.nullable:
        rows = [i for i, v in enumerate(values) if v is None]
        if rows:
            raise _null_error(rows)
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _exact(values: list, kind: type, label: str, dtype: Any) -> np.ndarray:
    rows = [i for i, v in enumerate(values) if v is None]
    if rows:
        raise _null_error(rows)
    if kind is int:
        rows = [i for i, v in enumerate(values) if not isinstance(v, int) or isinstance(v, bool)]
    else:
        rows = [i for i, v in enumerate(values) if not isinstance(v, bool)]
    if rows:
        raise _bad(rows, values, f"expected {label}")
    try:
        return np.asarray(values, dtype=dtype)
    except OverflowError as exc:
        raise _ColumnError(f"value out of range for {np.dtype(dtype).name}: {exc}") from None


def limit_threads(model: Any, threads: int) -> list[str]:
    """Sets ``n_jobs`` of every step of a scikit-learn model that has one (XGBoost included).

    On the small batches a server sees, XGBoost's OpenMP hand-over costs more than a second
    thread saves, and with OpenMP's default spin-waiting it is ruinous on a busy machine
    (measured on a loaded 2-core box, 1-row ``predict_proba``: 64 ms with 2 threads vs 14 ms
    with 1; with ``OMP_WAIT_POLICY=PASSIVE``, which :data:`churn_kfp.core.config.RUNTIME_ENV`
    sets, both about 16 ms). One thread protects deployments that lack that variable.
    Predictions do not change: XGBoost splits rows, not trees, across threads.

    Args:
        model: A fitted estimator or ``Pipeline`` (``None`` is ignored).
        threads: Threads per prediction (``n_jobs``).

    Returns:
        The names of the estimators changed.
    """
    changed: list[str] = []
    if model is None:
        return changed
    steps = getattr(model, "steps", None)
    estimators = [est for _, est in steps] if steps else [model]
    for estimator in estimators:
        try:
            params = estimator.get_params(deep=False)
        except Exception:  # not a scikit-learn estimator
            continue
        if "n_jobs" in params and params["n_jobs"] not in (None, threads):
            estimator.set_params(n_jobs=threads)
            changed.append(type(estimator).__name__)
    return changed


class SafeMLflowRuntime(MLflowRuntime):
    """MLServer's MLflow runtime, loading the model through the project's safe loader only.

    ``mlflow.pyfunc.load_model`` would follow whatever the model's ``MLmodel`` names (pickle,
    cloudpickle: MLflow 3.17 allows them while ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` is
    unset); this loads skops models with the trusted types and refuses the rest
    (:func:`churn_kfp.registry.loading.load_pyfunc`). Everything else is the stock runtime.
    """

    async def load(self) -> bool:
        """Loads the model (skops only), then syncs metadata as the stock runtime does."""
        model_uri = await get_model_uri(self._settings)
        self._model_uri = model_uri
        self._model = await asyncio.to_thread(
            load_pyfunc, model_uri, model_name=self.name, version=self.version or "?"
        )
        self._input_schema = self._model.metadata.get_input_schema()
        self._signature = self._model.metadata.signature
        self._sync_metadata()
        return True


class ValidatingMLflowRuntime(SafeMLflowRuntime):
    """MLServer's MLflow runtime with signature validation and a churn-probability response.

    See the module docstring for what changes compared with ``mlserver_mlflow.MLflowRuntime``.
    """

    async def load(self) -> bool:
        """Loads the MLflow model, then prepares validation, the outputs and the fast path."""
        await super().load()
        self._limits = RequestLimits.from_env()
        extra = dict((self._settings.parameters and self._settings.parameters.extra) or {})
        metadata = dict(self._model.metadata.metadata or {})
        non_nullable = extra.get(NON_NULLABLE_KEY, metadata.get(NON_NULLABLE_KEY)) or []
        self._specs = column_specs(self._signature, non_nullable)
        self._threshold = _threshold(extra.get(THRESHOLD_KEY, metadata.get(THRESHOLD_KEY)))
        self._direct = self._direct_predict_fn()
        threads = extra.get(THREADS_KEY, DEFAULT_INFERENCE_THREADS)
        if threads:
            limit_threads(self._raw_model(), int(threads))
        self._lean = await asyncio.to_thread(self._compile_lean)
        if self._specs is not None:
            self.inputs = [
                MetadataTensor(
                    name=spec.name,
                    datatype=spec.datatype,
                    shape=[-1, 1],
                    parameters=Parameters(
                        content_type="str" if spec.kind == "string" else "np",
                        mlflow_type=spec.kind,
                        nullable=spec.nullable,
                    ),
                )
                for spec in self._specs
            ]
        outputs = [
            MetadataTensor(
                name=PROBABILITY_OUTPUT,
                datatype="FP64",
                shape=[-1],
                parameters=Parameters(content_type="np"),
            )
        ]
        if self._threshold is not None:
            outputs.append(
                MetadataTensor(
                    name=DECISION_OUTPUT,
                    datatype="BOOL",
                    shape=[-1],
                    parameters=Parameters(content_type="np", threshold=self._threshold),
                )
            )
        self.outputs = outputs
        return True

    def _direct_predict_fn(self) -> Any:
        """The scikit-learn method the pyfunc wrapper calls, when it is safe to call it."""
        flavor = self._model.metadata.flavors.get("python_function", {})
        if flavor.get("loader_module") != "mlflow.sklearn" or self._specs is None:
            return None
        if not all(spec.supported for spec in self._specs):
            return None
        raw = self._raw_model()
        if raw is None:
            return None
        return getattr(raw, flavor.get("predict_fn") or "predict", None)

    def _compile_lean(self) -> LeanPipeline | None:
        """The model as lean numpy steps (:mod:`churn_kfp.serving.lean`), if it compiles."""
        if self._direct is None or self._specs is None:
            return None
        kinds = {spec.name: spec.kind for spec in self._specs}
        try:
            example = self._model.metadata.load_input_example(self._model_uri)
        except Exception:  # no or unreadable example: the built-in probe rows still check
            example = None
        if not isinstance(example, pd.DataFrame) or not set(kinds) <= set(example.columns):
            example = None
        try:
            lean = compile_pipeline(self._raw_model(), kinds, probe=example)
        except NotCompilable as exc:
            logger.info("model %s: scoring through the whole pipeline (%s)", self.name, exc)
            return None
        except Exception as exc:  # any surprise: the whole pipeline is always right
            logger.warning("model %s: lean path not used: %s: %s", self.name, type(exc), exc)
            return None
        logger.info("model %s: lean scoring path (numpy steps checked bit-for-bit)", self.name)
        return lean

    def _raw_model(self) -> Any:
        try:
            return self._model.get_raw_model()
        except (NotImplementedError, AttributeError):
            return None

    async def metadata(self) -> MetadataModelResponse:
        """Model metadata, plus the decision threshold (if known) in ``parameters``."""
        response = await super().metadata()
        parameters = response.parameters or Parameters(content_type="pd")
        if self._threshold is not None:
            parameters = Parameters(**parameters.model_dump(), threshold=self._threshold)
        response.parameters = parameters
        return response

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        """Validates the request, scores it and returns P(churn) (+ the decision)."""
        self._check_rows(payload)
        if self._specs is None:
            output = self._predict_unchecked(payload)
        else:
            columns = decode_columns(payload.inputs, self._specs, self.name)
            rows = len(next(iter(columns.values())))
            if self._lean is not None and rows <= INLINE_MAX_ROWS:
                output = self._predict_columns(columns)  # cheaper than a thread hand-over
            else:
                output = await asyncio.to_thread(self._predict_columns, columns)
        try:
            probability = positive_class_proba(output)
        except ValueError as exc:
            raise ModelFailedError(f"model {self.name} returned {exc}") from None
        n = len(probability)
        outputs = [
            ResponseOutput(
                name=PROBABILITY_OUTPUT, datatype="FP64", shape=[n], data=probability.tolist()
            )
        ]
        if self._threshold is not None:
            outputs.append(
                ResponseOutput(
                    name=DECISION_OUTPUT,
                    datatype="BOOL",
                    shape=[n],
                    data=(probability >= self._threshold).tolist(),
                    parameters=Parameters(threshold=self._threshold),
                )
            )
        return InferenceResponse(model_name=self.name, model_version=self.version, outputs=outputs)

    def _check_rows(self, payload: InferenceRequest) -> None:
        rows = max((int(i.shape[0]) for i in payload.inputs if i.shape), default=0)
        if rows > self._limits.max_rows:
            raise InvalidInputError(
                f"invalid request for model {self.name}: {rows} rows is over the server's "
                f"limit of {self._limits.max_rows} rows per request ({MAX_ROWS_ENV}); "
                "send them in smaller batches"
            )

    def _predict_columns(self, columns: dict[str, Any]) -> Any:
        if self._lean is not None:
            try:
                output = self._lean.predict_proba(columns)
            except Exception:  # the pipeline below answers, or reports the error as it does
                output = None
            if output is not None:
                return output
        frame = pd.DataFrame(columns)  # in signature order
        try:
            if self._direct is not None:
                return self._direct(frame)
            return self._model.predict(frame)
        except MlflowException as exc:
            raise InvalidInputError(
                f"invalid request for model {self.name}: {exc.message}"
            ) from None
        except Exception as exc:  # reported to the client; the server keeps serving
            raise ModelFailedError(
                f"model {self.name} failed on this input: {type(exc).__name__}: {exc}"
            ) from None

    def _predict_unchecked(self, payload: InferenceRequest) -> Any:
        try:
            decoded = self.decode_request(payload)
        except Exception as exc:
            raise InvalidInputError(f"cannot decode request: {exc}") from None
        params = payload.parameters.model_extra if payload.parameters else None
        try:
            return self._model.predict(decoded, params=params or None)
        except MlflowException as exc:
            raise InvalidInputError(
                f"invalid request for model {self.name}: {exc.message}"
            ) from None
        except Exception as exc:
            raise ModelFailedError(
                f"model {self.name} failed on this input: {type(exc).__name__}: {exc}"
            ) from None


def _threshold(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"threshold must be a number in [0, 1], got {value!r}") from None
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a number in [0, 1], got {value!r}")
    return threshold
