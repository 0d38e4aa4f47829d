"""Models that run code when unpickled: what the safe loader must refuse (issue 14).

Unpickling one writes a marker file (through the builtin ``exec``, so nothing of this module
has to be importable where it is loaded). Logging it never unpickles it: requirements are
given, so MLflow does not reload the model to infer them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import mlflow.pyfunc


def _payload(marker: Path) -> tuple[Any, tuple[str]]:
    return (exec, (f"open({str(marker)!r}, 'w').write('unpickled')",))


class MarkerWriter:
    """Pretends to be a scikit-learn model; unpickling it writes ``marker``."""

    def __init__(self, marker: Path):
        self.marker = Path(marker)

    def __reduce__(self) -> Any:
        return _payload(self.marker)

    def predict(self, rows: Any) -> list[int]:
        return [0] * len(rows)


def marker_python_model(marker: Path) -> Any:
    """A pyfunc ``python_model`` instance; unpickling it writes ``marker``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's advice on type hints, at class creation

        class MarkerPythonModel(mlflow.pyfunc.PythonModel):
            def __init__(self, marker: Path):
                self.marker = Path(marker)

            def __reduce__(self) -> Any:
                return _payload(self.marker)

            def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
                return model_input

    return MarkerPythonModel(marker)


def save_hostile_model(path: Path, marker: Path, kind: str = "cloudpickle") -> Path:
    """Saves a hostile MLflow model directory (see :func:`log_hostile_version` for ``kind``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's advice on pickles and type hints
        _save(path, marker, kind)
    return Path(path)


def _save(path: Path, marker: Path, kind: str) -> None:
    import mlflow.sklearn

    if kind == "python_model":
        mlflow.pyfunc.save_model(
            str(path), python_model=marker_python_model(marker), pip_requirements=["mlflow"]
        )
    else:
        mlflow.sklearn.save_model(
            MarkerWriter(marker),
            str(path),
            serialization_format=kind,
            pip_requirements=["scikit-learn"],
        )


def log_hostile_version(
    model_name: str, marker: Path, *, kind: str = "cloudpickle", champion: bool = False
) -> str:
    """Logs and registers a hostile version in the active MLflow registry; returns it.

    Args:
        model_name: Registered model name.
        marker: File the payload writes when unpickled.
        kind: ``"cloudpickle"`` or ``"pickle"`` (an ``mlflow.sklearn`` model saved that
            way) or ``"python_model"`` (a pyfunc ``python_model``).
        champion: Also point the ``champion`` alias at it.
    """
    import mlflow
    from mlflow import MlflowClient

    with mlflow.start_run(run_name=f"hostile-{kind}"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's advice on pickles and type hints
        if kind == "python_model":
            info = mlflow.pyfunc.log_model(
                name="model", python_model=marker_python_model(marker), pip_requirements=["mlflow"]
            )
        else:
            info = mlflow.sklearn.log_model(
                MarkerWriter(marker),
                name="model",
                serialization_format=kind,
                pip_requirements=["scikit-learn"],
            )
    version = str(mlflow.register_model(info.model_uri, model_name).version)
    if champion:
        MlflowClient().set_registered_model_alias(model_name, "champion", version)
    assert not Path(marker).exists(), "logging must not unpickle the model"
    return version
