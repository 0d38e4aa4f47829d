"""Loading registered models safely: scikit-learn models saved with skops, nothing else.

MLflow follows whatever a version's ``MLmodel`` file says: a ``cloudpickle`` or ``pickle``
``serialization_format``, or a pyfunc ``python_model`` pickle, runs arbitrary code while it
is loaded. MLflow 3.17 gates every format behind ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION``
but counts it as true when unset, so its own loader would follow any of them. So this project
never sets that flag, never calls MLflow's loader, and loads every model here instead:

1. :func:`check_model_dir` reads ``MLmodel`` (YAML only) and refuses, with
   :class:`UnsafeModelError` naming the model, version and format, anything that is not a
   ``python_function`` model of the ``mlflow.sklearn`` loader saved with skops;
2. :func:`load_sklearn` then checks the skops file's types against
   :data:`~churn_kfp.learn.training.SKOPS_TRUSTED_TYPES` (the project's list, never the
   one the model file brings along) and loads it with ``skops.io.load``;
3. :func:`load_pyfunc` wraps the result as MLflow's ``PyFuncModel`` (schema enforcement,
   ``pyfunc_predict_fn``), which is what serving and champion scoring call.

Used by serving (:mod:`churn_kfp.serving.runtime`) and champion scoring
(:mod:`churn_kfp.registry.champion`). Heavy imports happen inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "SKOPS_FORMAT",
    "ModelFiles",
    "UnloadableModelError",
    "UnsafeModelError",
    "check_model_dir",
    "load_pyfunc",
    "load_sklearn",
    "trusted_types",
]

SKOPS_FORMAT = "skops"
SKLEARN_LOADER = "mlflow.sklearn"
_PICKLE_DEFAULT = "pickle"  # what MLflow assumes when the sklearn flavour names no format


class UnloadableModelError(RuntimeError):
    """A registered model's files are missing, corrupt or refused (the message names it)."""


class UnsafeModelError(UnloadableModelError):
    """A model refused before anything in it was deserialised (not skops, or untrusted types)."""


@dataclass(frozen=True)
class ModelFiles:
    """An MLflow model directory that passed :func:`check_model_dir`.

    Attributes:
        model_dir: The directory holding ``MLmodel``.
        skops_path: The skops file of the scikit-learn model.
        predict_fn: The method the pyfunc flavour calls (``predict_proba`` for ours).
        mlmodel: The parsed ``MLmodel`` file.
    """

    model_dir: Path
    skops_path: Path
    predict_fn: str
    mlmodel: dict[str, Any] = field(repr=False)


def trusted_types() -> list[str]:
    """The types skops may load: the project's list, whatever a model file claims."""
    from churn_kfp.learn.training import SKOPS_TRUSTED_TYPES

    return list(SKOPS_TRUSTED_TYPES)


def check_model_dir(model_dir: str | Path, *, model_name: str, version: str) -> ModelFiles:
    """Reads a model directory's ``MLmodel`` and refuses every format but skops.

    Nothing is deserialised here: only the YAML file is read.

    Args:
        model_dir: Local MLflow model directory.
        model_name: Registered model name (for messages).
        version: Its version (for messages).

    Returns:
        Where the skops file is and how the pyfunc flavour predicts.

    Raises:
        UnsafeModelError: Not an ``mlflow.sklearn`` model saved with skops.
        UnloadableModelError: ``MLmodel`` or the skops file is missing.
    """
    import yaml

    directory = Path(model_dir)
    what = f"model '{model_name}' version {version}"
    mlmodel_path = directory / "MLmodel"
    if not mlmodel_path.is_file():
        raise UnloadableModelError(f"{what}: no MLmodel file in {directory}")
    mlmodel = yaml.safe_load(mlmodel_path.read_text()) or {}
    flavors = mlmodel.get("flavors") or {}
    pyfunc = flavors.get("python_function") or {}
    sklearn = flavors.get("sklearn")
    loader = pyfunc.get("loader_module")
    if "python_model" in pyfunc or "cloudpickle_version" in pyfunc:
        raise UnsafeModelError(
            f"refusing to load {what}: it is a pyfunc python_model "
            f"({pyfunc.get('python_model', 'cloudpickle')}), a pickle that runs code when "
            "loaded; only scikit-learn models saved with skops are loaded"
        )
    if loader != SKLEARN_LOADER or not isinstance(sklearn, dict):
        raise UnsafeModelError(
            f"refusing to load {what}: its flavour is {loader or 'unknown'} "
            f"({', '.join(sorted(flavors)) or 'no flavours'}); only scikit-learn models "
            "saved with skops are loaded"
        )
    serialization = sklearn.get("serialization_format", _PICKLE_DEFAULT)
    if serialization != SKOPS_FORMAT:
        raise UnsafeModelError(
            f"refusing to load {what}: serialization_format '{serialization}' can run code "
            "when loaded; only scikit-learn models saved with skops are loaded (re-log it with "
            "mlflow.sklearn.log_model(..., serialization_format='skops'))"
        )
    relative = str(sklearn.get("pickled_model") or pyfunc.get("model_path") or "")
    skops_path = (directory / relative).resolve()
    if not relative or directory.resolve() not in skops_path.parents:
        raise UnsafeModelError(f"refusing to load {what}: bad model file path {relative!r}")
    if not skops_path.is_file():
        raise UnloadableModelError(f"{what}: its model file {skops_path} is missing")
    return ModelFiles(
        model_dir=directory,
        skops_path=skops_path,
        predict_fn=str(pyfunc.get("predict_fn") or "predict"),
        mlmodel=mlmodel,
    )


def load_sklearn(
    model_dir: str | Path,
    *,
    model_name: str,
    version: str,
    trusted: Sequence[str] | None = None,
) -> Any:
    """Loads the scikit-learn model of a checked directory through skops.

    Args:
        model_dir: Local MLflow model directory.
        model_name: Registered model name (for messages).
        version: Its version (for messages).
        trusted: Types skops may load; default :func:`trusted_types`.

    Returns:
        The fitted estimator.

    Raises:
        UnsafeModelError: Not skops (see :func:`check_model_dir`), or types outside
            ``trusted`` in the file.
        UnloadableModelError: A model file is missing or corrupt.
    """
    files = check_model_dir(model_dir, model_name=model_name, version=version)
    return _load(files, trusted, f"model '{model_name}' version {version}")


def _load(files: ModelFiles, trusted: Sequence[str] | None, what: str) -> Any:
    import skops.io

    allowed = set(trusted_types() if trusted is None else trusted)
    try:
        found = skops.io.get_untrusted_types(file=files.skops_path)
    except Exception as exc:
        raise UnloadableModelError(
            f"{what}: cannot read {files.skops_path}: {type(exc).__name__}: {exc}"
        ) from exc
    untrusted = sorted(set(found) - allowed)
    if untrusted:
        raise UnsafeModelError(
            f"refusing to load {what}: its skops file holds types outside "
            f"the trusted list: {untrusted}"
        )
    try:
        return skops.io.load(files.skops_path, trusted=sorted(allowed))
    except Exception as exc:  # a corrupt file: zip, schema or state errors of any kind
        raise UnloadableModelError(
            f"{what}: cannot load {files.skops_path}: {type(exc).__name__}: {exc}"
        ) from exc


def load_pyfunc(
    model_dir: str | Path,
    *,
    model_name: str,
    version: str,
    trusted: Sequence[str] | None = None,
) -> Any:
    """Loads a checked directory as MLflow's ``PyFuncModel`` (schema checks, predict fn).

    The same object ``mlflow.pyfunc.load_model`` builds for an ``mlflow.sklearn`` model,
    without MLflow deserialising anything itself. Arguments and errors: :func:`load_sklearn`.

    Returns:
        A ``mlflow.pyfunc.PyFuncModel``.
    """
    from mlflow.models import Model
    from mlflow.pyfunc import PyFuncModel

    # The wrapper mlflow.sklearn._load_pyfunc puts around the estimator (predict_proba etc.).
    from mlflow.sklearn import _SklearnModelWrapper

    files = check_model_dir(model_dir, model_name=model_name, version=version)
    estimator = _load(files, trusted, f"model '{model_name}' version {version}")
    meta = Model.load(str(files.model_dir / "MLmodel"))
    return PyFuncModel(
        model_meta=meta,
        model_impl=_SklearnModelWrapper(estimator),
        predict_fn=files.predict_fn,
        model_id=meta.model_id,
    )
