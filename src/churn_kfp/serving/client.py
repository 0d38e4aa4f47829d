"""Call a served churn model over the V2 (Open Inference) protocol.

:func:`frame_to_v2_request` turns a DataFrame into a V2 request (one input per column),
:func:`predict_http` sends it in batches and returns churn probabilities,
:func:`parse_v2_response` reads either runtime's answer (ours or MLServer's stock MLflow
runtime), :func:`curl_example` prints the same request for a shell. The output names and
P(churn) come from the model contract (:mod:`churn_kfp.registry.contract`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn_kfp.core.config import MODEL_NAME
from churn_kfp.registry.contract import DECISION_OUTPUT, PROBABILITY_OUTPUT, positive_class_proba

DEFAULT_BATCH_SIZE = 1000


class ServingError(RuntimeError):
    """The server answered a request with an error (``status`` and its ``message``)."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class ServerUnreachableError(ServingError):
    """Nothing answers at the URL (connection refused, timeout, DNS)."""

    def __init__(self, url: str, reason: str):
        super().__init__(
            0,
            f"cannot reach the model server at {url} ({reason}); start it with `churn serve` "
            "(or `make serve`) and check the --url",
        )
        self.url = url


def v2_datatype(series: pd.Series) -> str:
    """The V2 datatype a column is sent as: FP64, INT64, BOOL or BYTES (strings)."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "BOOL"
    if pd.api.types.is_integer_dtype(dtype) and not series.isna().any():
        return "INT64"
    if pd.api.types.is_numeric_dtype(dtype):
        return "FP64"
    return "BYTES"


def _column_data(series: pd.Series, datatype: str) -> list:
    if datatype == "FP64":
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        data = values.tolist()
        if np.isnan(values).any():
            data = [None if math.isnan(v) else v for v in data]
        return data
    if datatype.startswith(("INT", "UINT")):
        return series.astype(np.int64).tolist()
    if datatype == "BOOL":
        return series.astype(bool).tolist()
    return [None if _is_missing(v) else (v if isinstance(v, str) else str(v)) for v in series]


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def frame_to_v2_request(
    frame: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    datatypes: Mapping[str, str] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Builds a V2 inference request: one input per column, shape ``[n, 1]``.

    Numbers go as FP64 (``NaN`` -> ``null``), strings as BYTES (missing -> ``null``). The
    request says ``"content_type": "pd"`` so MLServer decodes it as one DataFrame (both
    MLflow runtimes also default to that from the signature).

    Args:
        frame: Feature rows.
        columns: Columns to send, in order; default all.
        datatypes: Datatype per column (e.g. from the model metadata) overriding the guess
            from the dtype; numeric columns are converted to numbers for FP64.
        request_id: Optional request id echoed in the response.

    Returns:
        The JSON-ready request body.
    """
    columns = list(frame.columns if columns is None else columns)
    datatypes = dict(datatypes or {})
    inputs = []
    for name in columns:
        series = frame[name]
        datatype = datatypes.get(name) or v2_datatype(series)
        if datatype in ("FP16", "FP32"):
            datatype = "FP64"
        # Values that do not fit the wanted datatype go as they are, so the server names the
        # column in its error instead of this client failing or guessing.
        if datatype == "FP64" and not pd.api.types.is_numeric_dtype(series.dtype):
            datatype = "BYTES"
        elif datatype.startswith(("INT", "UINT", "BOOL")):
            guessed = v2_datatype(series)
            if guessed != ("BOOL" if datatype == "BOOL" else "INT64"):
                datatype = guessed
        inputs.append(
            {
                "name": name,
                "shape": [len(series), 1],
                "datatype": datatype,
                "data": _column_data(series, datatype),
            }
        )
    body: dict[str, Any] = {"parameters": {"content_type": "pd"}, "inputs": inputs}
    if request_id is not None:
        body["id"] = request_id
    return body


@dataclass(frozen=True)
class Prediction:
    """What a V2 response says about each row.

    Attributes:
        probability: P(churn) per row.
        decision: ``probability >= threshold`` per row, if the server sent it.
        threshold: The threshold behind ``decision``, if the server sent it.
    """

    probability: np.ndarray
    decision: np.ndarray | None = None
    threshold: float | None = None


def parse_v2_response(body: Mapping[str, Any]) -> Prediction:
    """Reads churn probabilities from a V2 response of either runtime.

    Our runtime sends ``churn_probability`` (``[n]``) and possibly ``churn`` (``[n]``,
    ``parameters.threshold``); the stock MLflow runtime sends one ``[n, 2]`` tensor (P(no
    churn), P(churn)) whose column 1 is taken.

    Raises:
        ValueError: No usable output.
    """
    outputs = {out["name"]: out for out in body.get("outputs", [])}
    if PROBABILITY_OUTPUT in outputs:
        probability = np.asarray(outputs[PROBABILITY_OUTPUT]["data"], dtype=np.float64)
    elif len(outputs) == 1:
        (out,) = outputs.values()
        shape = list(out.get("shape", []))
        values = np.asarray(out["data"], dtype=np.float64).reshape(shape or (-1,))
        probability = positive_class_proba(values)
    else:
        raise ValueError(f"no '{PROBABILITY_OUTPUT}' output in the response: {sorted(outputs)}")
    decision = threshold = None
    if DECISION_OUTPUT in outputs:
        decision = np.asarray(outputs[DECISION_OUTPUT]["data"], dtype=bool)
        threshold = (outputs[DECISION_OUTPUT].get("parameters") or {}).get("threshold")
    return Prediction(probability=probability.reshape(-1), decision=decision, threshold=threshold)


def _error_message(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:2000] or response.reason
    if isinstance(body, dict):
        if body.get("error"):
            return str(body["error"])
        if body.get("detail"):
            return json.dumps(body["detail"])[:2000]
    return json.dumps(body)[:2000]


def _request(session: Any, method: str, url: str, **kwargs: Any) -> Any:
    import requests

    try:
        response = session.request(method, url, **kwargs)
    except requests.ConnectionError as exc:
        raise ServerUnreachableError(url, _short_reason(exc)) from None
    except requests.Timeout:
        raise ServerUnreachableError(url, "timed out") from None
    if response.status_code >= 400:
        raise ServingError(response.status_code, _error_message(response))
    return response


def _short_reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host"):
        if marker in text:
            return marker.lower()
    return type(exc).__name__


def model_metadata(url: str, model_name: str = MODEL_NAME, *, timeout: float = 10.0) -> dict:
    """Fetches ``/v2/models/<name>``: inputs (name, datatype), outputs, parameters.

    Raises:
        ServerUnreachableError: Nothing answers at ``url``.
        ServingError: The server answered with an error (e.g. 404 for another model name).
    """
    import requests

    with requests.Session() as session:
        return _request(
            session, "GET", f"{url.rstrip('/')}/v2/models/{model_name}", timeout=timeout
        ).json()


def input_datatypes(metadata: Mapping[str, Any]) -> dict[str, str]:
    """Column name -> V2 datatype, from a model metadata answer."""
    return {inp["name"]: inp["datatype"] for inp in metadata.get("inputs") or []}


def infer(
    url: str,
    body: Mapping[str, Any],
    *,
    model_name: str = MODEL_NAME,
    session: Any = None,
    timeout: float = 60.0,
) -> dict:
    """POSTs one V2 request body to ``/v2/models/<name>/infer`` and returns the JSON answer.

    Raises:
        ServerUnreachableError: Nothing answers at ``url``.
        ServingError: The server refused the request (status and message).
    """
    import requests

    own = session is None
    session = session or requests.Session()
    try:
        response = _request(
            session,
            "POST",
            f"{url.rstrip('/')}/v2/models/{model_name}/infer",
            data=json.dumps(body, allow_nan=False),
            headers={"Content-Type": "application/json"},
            timeout=timeout,
        )
        return response.json()
    finally:
        if own:
            session.close()


def predict_frame(
    url: str,
    frame: pd.DataFrame,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    model_name: str = MODEL_NAME,
    columns: Sequence[str] | None = None,
    datatypes: Mapping[str, str] | None = None,
    progress: Callable[[int], Any] | None = None,
    timeout: float = 60.0,
) -> Prediction:
    """Scores ``frame`` through the server in batches of ``batch_size`` rows.

    Args:
        url: Base URL of the server (``http://127.0.0.1:8080``).
        frame: Feature rows.
        batch_size: Rows per request.
        model_name: Model name in the URL.
        columns: Columns to send; default every column of ``frame``.
        datatypes: Datatype per column (see :func:`frame_to_v2_request`).
        progress: Called with the number of rows done after each batch.
        timeout: Seconds per request.

    Returns:
        Probabilities for every row, plus decisions if the server sends them.

    Raises:
        ValueError: ``batch_size`` < 1 or an empty frame.
        ServerUnreachableError: Nothing answers at ``url``.
        ServingError: The server refused a batch.
    """
    import requests

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(frame) == 0:
        raise ValueError("no rows to score")
    probabilities: list[np.ndarray] = []
    decisions: list[np.ndarray] = []
    threshold = None
    with requests.Session() as session:
        for start in range(0, len(frame), batch_size):
            batch = frame.iloc[start : start + batch_size]
            body = frame_to_v2_request(batch, columns=columns, datatypes=datatypes)
            answer = parse_v2_response(
                infer(url, body, model_name=model_name, session=session, timeout=timeout)
            )
            if len(answer.probability) != len(batch):
                raise ServingError(
                    200, f"{len(batch)} rows sent but {len(answer.probability)} scores received"
                )
            probabilities.append(answer.probability)
            if answer.decision is not None:
                decisions.append(answer.decision)
                threshold = answer.threshold
            if progress is not None:
                progress(len(batch))
    decision = np.concatenate(decisions) if len(decisions) == len(probabilities) else None
    return Prediction(np.concatenate(probabilities), decision, threshold)


def predict_http(
    url: str,
    frame: pd.DataFrame,
    batch_size: int = DEFAULT_BATCH_SIZE,
    *,
    model_name: str = MODEL_NAME,
    columns: Sequence[str] | None = None,
) -> np.ndarray:
    """Returns P(churn) for every row of ``frame``, scored by the server in batches.

    See :func:`predict_frame` (which also returns the decisions).
    """
    return predict_frame(
        url, frame, batch_size=batch_size, model_name=model_name, columns=columns
    ).probability


def curl_example(url: str, example: pd.DataFrame, model_name: str = MODEL_NAME) -> str:
    """A ready-to-paste ``curl`` command scoring ``example`` (e.g. the model's input example)."""
    body = json.dumps(frame_to_v2_request(example), allow_nan=False)
    return (
        f"curl -s -X POST {url.rstrip('/')}/v2/models/{model_name}/infer \\\n"
        f"  -H 'Content-Type: application/json' \\\n"
        f"  -d '{body}'"
    )


def input_example(model_dir: str | os.PathLike[str]) -> pd.DataFrame | None:
    """The input example stored with an MLflow model (``input_example.json``), if any."""
    path = Path(model_dir) / "input_example.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if isinstance(data, dict) and "columns" in data and "data" in data:
        return pd.DataFrame(data["data"], columns=data["columns"])
    if isinstance(data, dict) and "dataframe_split" in data:
        split = data["dataframe_split"]
        return pd.DataFrame(split["data"], columns=split["columns"])
    return None
