"""The lean scoring path: a fitted preprocessing + classifier pipeline as plain numpy steps.

At one row, a scikit-learn ``ColumnTransformer`` costs several times what XGBoost does: every
``transform`` re-validates its input, builds sub-frames and checks feature names. The
serving runtime instead compiles the model once, when it is loaded, into the same
arithmetic on the request's already validated numpy columns:

- numeric blocks (``double`` columns): ``SimpleImputer`` (missing values ``NaN``, its
  ``statistics_``, dropped all-missing features, the missing-value indicator) and
  ``StandardScaler``, with the very operations scikit-learn applies;
- categorical blocks (``string`` columns): ``SimpleImputer`` (constant or most frequent)
  then ``OneHotEncoder``, as one lookup table per column built by calling the fitted
  encoder itself on every known category and on an unseen one (so infrequent categories,
  ``drop`` and ``handle_unknown`` behave as fitted);
- the blocks stacked as ``ColumnTransformer`` stacks them, straight into the classifier's
  ``predict_proba`` (for XGBoost: the booster's in-place prediction on that array).

Anything else (other transformers, weights, sparse or pandas output, other column types)
is refused with :class:`NotCompilable`, and the runtime keeps calling the whole pipeline on
a DataFrame. :func:`compile_pipeline` also scores probe rows both ways and refuses unless
the probabilities are bit-identical. A request the lean path cannot take as fitted (an
unseen category with ``handle_unknown="error"``) returns ``None``: the caller then uses the
pipeline, which raises as it always did.

Nothing here imports MLServer or MLflow.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LeanPipeline", "NotCompilable", "compile_pipeline", "probe_frame"]

NUMERIC_KIND = "double"
STRING_KIND = "string"

Columns = Mapping[str, np.ndarray]
_Step = Callable[[np.ndarray], np.ndarray]


class NotCompilable(ValueError):
    """The model is not (exactly) expressible as lean numpy steps; the message says why."""


@dataclass(frozen=True)
class _NumericBlock:
    columns: tuple[str, ...]
    steps: tuple[_Step, ...]

    def transform(self, columns: Columns) -> np.ndarray | None:
        values = np.column_stack([columns[name] for name in self.columns])
        for step in self.steps:
            values = step(values)
        return values


@dataclass(frozen=True)
class _CategoricalColumn:
    name: str
    index: dict[Any, int]  # value -> row of `table`
    table: np.ndarray  # one encoded row per known value (+ the unseen-value row, if allowed)
    unseen: int  # row of `table` for values not in `index`; -1: the encoder refuses them


@dataclass(frozen=True)
class _CategoricalBlock:
    columns: tuple[_CategoricalColumn, ...]

    def transform(self, columns: Columns) -> np.ndarray | None:
        parts = []
        for column in self.columns:
            get, unseen = column.index.get, column.unseen
            rows = [get(value, unseen) for value in columns[column.name]]
            if unseen < 0 and -1 in rows:
                return None  # the pipeline raises "unknown categories"; let it
            parts.append(column.table[rows])
        return np.hstack(parts) if len(parts) > 1 else parts[0]


_Block = _NumericBlock | _CategoricalBlock


class LeanPipeline:
    """A compiled pipeline: validated columns in, ``predict_proba`` out."""

    def __init__(self, blocks: Sequence[_Block], predict_proba: Callable[[np.ndarray], Any]):
        self._blocks = tuple(blocks)
        self._predict_proba = predict_proba

    def features(self, columns: Columns) -> np.ndarray | None:
        """The classifier's input matrix (``None``: only the pipeline can take these rows)."""
        parts = []
        for block in self._blocks:
            part = block.transform(columns)
            if part is None:
                return None
            parts.append(part)
        return np.hstack(parts)  # as ColumnTransformer stacks its blocks

    def predict_proba(self, columns: Columns) -> np.ndarray | None:
        """The classifier's ``predict_proba`` on these columns, or ``None`` (see above).

        Args:
            columns: One validated array per input column (``float64`` for ``double``,
                ``object`` holding ``str``/``None`` for ``string``), all of one length.
        """
        features = self.features(columns)
        return None if features is None else self._predict_proba(features)


def compile_pipeline(
    model: Any, kinds: Mapping[str, str], probe: pd.DataFrame | None = None
) -> LeanPipeline:
    """Compiles ``Pipeline([ColumnTransformer, classifier])`` into a :class:`LeanPipeline`.

    Args:
        model: The fitted scikit-learn model.
        kinds: MLflow type of every input column of the model signature.
        probe: Extra rows (e.g. the model's input example) to check the result on, besides
            the rows :func:`probe_frame` builds.

    Returns:
        The lean pipeline, checked bit-for-bit against ``model.predict_proba``.

    Raises:
        NotCompilable: The model has another structure, or the check failed.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    other = sorted({kind for kind in kinds.values()} - {NUMERIC_KIND, STRING_KIND})
    if other:
        raise NotCompilable(f"input columns of types {other}")
    steps = getattr(model, "steps", None) if isinstance(model, Pipeline) else None
    if not steps or len(steps) != 2 or not isinstance(steps[0][1], ColumnTransformer):
        raise NotCompilable("not a Pipeline of a ColumnTransformer and a classifier")
    preprocess, classifier = steps[0][1], steps[1][1]
    if not hasattr(classifier, "predict_proba"):
        raise NotCompilable(f"{type(classifier).__name__} has no predict_proba")
    if getattr(classifier, "feature_names_in_", None) is not None:
        raise NotCompilable("the classifier was fitted on named columns")
    _check_column_transformer(preprocess)
    blocks: list[_Block] = []
    for name, transformer, selected in preprocess.transformers_:
        if isinstance(transformer, str) and transformer == "drop":
            continue
        if not isinstance(selected, (list, tuple)) or not all(isinstance(c, str) for c in selected):
            raise NotCompilable(f"transformer {name!r} selects columns by other than name")
        if not selected:
            continue
        unknown = [c for c in selected if c not in kinds]
        if unknown:
            raise NotCompilable(f"transformer {name!r} reads columns outside the signature")
        found = {kinds[c] for c in selected}
        transformers = _flatten_steps(transformer)
        if found == {NUMERIC_KIND}:
            blocks.append(
                _NumericBlock(tuple(selected), tuple(_numeric_step(t) for t in transformers))
            )
        elif found == {STRING_KIND}:
            blocks.append(_categorical_block(list(selected), transformers))
        else:
            raise NotCompilable(f"transformer {name!r} mixes or uses column types {found}")
    if not blocks:
        raise NotCompilable("the ColumnTransformer outputs nothing")
    lean = LeanPipeline(blocks, _classifier_proba(classifier))
    _check_identical(lean, model, kinds, probe)
    return lean


def _check_column_transformer(preprocess: Any) -> None:
    from sklearn.utils._set_output import _get_output_config

    if getattr(preprocess, "sparse_output_", False):
        raise NotCompilable("the ColumnTransformer has sparse output")
    if preprocess.transformer_weights:
        raise NotCompilable("the ColumnTransformer weights its transformers")
    if _get_output_config("transform", preprocess)["dense"] != "default":
        raise NotCompilable("the ColumnTransformer outputs DataFrames (set_output)")


def _flatten_steps(transformer: Any) -> list[Any]:
    from sklearn.pipeline import Pipeline

    if isinstance(transformer, Pipeline):
        return [t for _, step in transformer.steps for t in _flatten_steps(step)]
    if isinstance(transformer, str) or transformer is None:
        raise NotCompilable(f"transformer {transformer!r} is not supported")
    return [transformer]


def _numeric_step(transformer: Any) -> _Step:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    if type(transformer) is SimpleImputer:
        return _numeric_imputer(transformer)
    if type(transformer) is StandardScaler:
        mean = transformer.mean_ if transformer.with_mean else None
        scale = transformer.scale_ if transformer.with_std else None

        def scale_step(values: np.ndarray) -> np.ndarray:
            if mean is not None:
                values = values - mean
            if scale is not None:
                values = values / scale
            return values

        return scale_step
    raise NotCompilable(f"{type(transformer).__name__} on numeric columns is not supported")


def _numeric_imputer(imputer: Any) -> _Step:
    if not _is_nan(imputer.missing_values):
        raise NotCompilable("a numeric SimpleImputer whose missing value is not NaN")
    statistics = np.asarray(imputer.statistics_, dtype=np.float64)
    keep: np.ndarray | None = None
    if not imputer.keep_empty_features and np.isnan(statistics).any():
        keep = np.flatnonzero(~np.isnan(statistics))  # scikit-learn drops all-missing ones
        statistics = statistics[keep]
    indicator = getattr(imputer, "indicator_", None) if imputer.add_indicator else None
    flagged = None if indicator is None else np.asarray(indicator.features_)

    def impute(values: np.ndarray) -> np.ndarray:
        missing = np.isnan(values)
        kept_missing = missing if keep is None else missing[:, keep]
        kept = values if keep is None else values[:, keep]
        imputed = np.where(kept_missing, statistics, kept)
        if flagged is None:
            return imputed
        return np.hstack((imputed, missing[:, flagged]))

    return impute


def _categorical_block(columns: list[str], transformers: list[Any]) -> _CategoricalBlock:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    *imputers, encoder = transformers
    if type(encoder) is not OneHotEncoder or any(type(t) is not SimpleImputer for t in imputers):
        names = [type(t).__name__ for t in transformers]
        raise NotCompilable(f"categorical steps {names}: only SimpleImputer then OneHotEncoder")
    if len(imputers) > 1:
        raise NotCompilable("more than one SimpleImputer on categorical columns")
    fills: list[Any] = [None] * len(columns)
    if imputers:
        fills = _categorical_fills(imputers[0], len(columns))
    if encoder.sparse_output:
        raise NotCompilable("a OneHotEncoder with sparse output")
    widths = getattr(encoder, "_n_features_outs", None)
    categories = [list(c) for c in encoder.categories_]
    if widths is None or len(categories) != len(columns):
        raise NotCompilable("a OneHotEncoder without per-feature output widths")
    known = _encode_each(encoder, categories, widths)
    unseen = _encode_unseen(encoder, categories, widths)
    compiled = []
    for j, name in enumerate(columns):
        table = known[j]
        index = {value: i for i, value in enumerate(categories[j])}
        unseen_row = -1
        if unseen is not None:
            table = np.vstack((table, unseen[j]))
            unseen_row = len(table) - 1
        if fills[j] is not None:  # None (a null in the request) is imputed first
            index[None] = index.get(fills[j], unseen_row)
        compiled.append(_CategoricalColumn(name, index, table, unseen_row))
    return _CategoricalBlock(tuple(compiled))


def _categorical_fills(imputer: Any, n: int) -> list[Any]:
    """The value each column's nulls become (``None``: nulls are not imputed)."""
    import pandas as pd

    if imputer.add_indicator or imputer.strategy not in ("constant", "most_frequent"):
        raise NotCompilable("a categorical SimpleImputer with an indicator or a statistic")
    statistics = list(imputer.statistics_)
    if len(statistics) != n or not all(isinstance(s, str) for s in statistics):
        raise NotCompilable("a categorical SimpleImputer without a string per column")
    if imputer.missing_values is pd.NA or imputer.missing_values is None:
        return statistics
    if _is_nan(imputer.missing_values):
        return [None] * n  # NaN never matches None or a string in an object array
    raise NotCompilable(f"a categorical SimpleImputer for {imputer.missing_values!r}")


def _encode_each(encoder: Any, categories: list[list[Any]], widths: list[int]) -> list[np.ndarray]:
    """Rows of the fitted encoder's output for every known category of every column."""
    rows = max(len(c) for c in categories)
    probe = np.empty((rows, len(categories)), dtype=object)
    for j, values in enumerate(categories):
        probe[:, j] = [values[min(i, len(values) - 1)] for i in range(rows)]
    encoded = np.asarray(encoder.transform(probe))
    offsets = np.cumsum([0, *widths])
    if encoded.shape[1] != offsets[-1]:
        raise NotCompilable("the OneHotEncoder's output width is not the sum of its features'")
    return [
        encoded[: len(values), offsets[j] : offsets[j + 1]] for j, values in enumerate(categories)
    ]


def _encode_unseen(
    encoder: Any, categories: list[list[Any]], widths: list[int]
) -> list[np.ndarray] | None:
    """The encoder's output for an unseen value, per column; ``None`` if it refuses them."""
    sentinel = "\x00unseen"
    while any(sentinel in values for values in categories):
        sentinel += "\x00"
    probe = np.full((1, len(categories)), sentinel, dtype=object)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "unknown categories ... encoded as all zeros"
            encoded = np.asarray(encoder.transform(probe))
    except ValueError:  # handle_unknown="error"
        return None
    offsets = np.cumsum([0, *widths])
    return [encoded[0, offsets[j] : offsets[j + 1]] for j in range(len(categories))]


def _classifier_proba(classifier: Any) -> Callable[[np.ndarray], Any]:
    """``predict_proba`` of the classifier; for XGBoost, what it calls, minus its checks."""
    booster_proba = _xgboost_proba(classifier)
    return booster_proba if booster_proba is not None else classifier.predict_proba


def _xgboost_proba(classifier: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    try:
        from xgboost import XGBClassifier
    except ImportError:  # pragma: no cover - xgboost is a dependency
        return None
    if type(classifier) is not XGBClassifier or getattr(classifier, "n_classes_", 0) != 2:
        return None
    can_use = getattr(classifier, "_can_use_inplace_predict", None)
    if classifier.objective != "binary:logistic" or can_use is None or not can_use():
        return None
    booster = classifier.get_booster()
    iteration_range = classifier._get_iteration_range(None)
    missing = classifier.missing

    def proba(features: np.ndarray) -> np.ndarray:
        positive = booster.inplace_predict(
            features,
            iteration_range=iteration_range,
            predict_type="value",
            missing=missing,
            validate_features=False,
        )
        return np.vstack((1 - positive, positive)).transpose()  # as XGBClassifier does

    return proba


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def probe_frame(lean: LeanPipeline, kinds: Mapping[str, str], rows: int = 64) -> pd.DataFrame:
    """Rows that exercise a compiled pipeline: nulls, every known category, unseen ones.

    Numbers are drawn from a fixed-seed mix of scales, with ``NaN`` in every fourth row;
    string columns cycle through their known values, an unseen value (when the encoder takes
    them) and ``None``.
    """
    import pandas as pd

    rng = np.random.default_rng(0)
    data: dict[str, Any] = {}
    tables = {
        c.name: c
        for block in lean._blocks
        if isinstance(block, _CategoricalBlock)
        for c in block.columns
    }
    for name, kind in kinds.items():
        if kind == STRING_KIND:
            column = tables.get(name)
            values: list[Any] = [v for v in (column.index if column else {}) if v is not None]
            if column is None or column.unseen >= 0:
                values.append("not seen in training")
            values.append(None)
            rows = max(rows, len(values))
            data[name] = values
        elif kind == NUMERIC_KIND:
            numbers = rng.normal(0, 1, rows) * rng.choice([1.0, 10.0, 1000.0], rows)
            numbers[::4] = np.nan
            data[name] = numbers
    frame: dict[str, Any] = {}
    for name, values in data.items():
        if isinstance(values, list):
            column_values = [values[i % len(values)] for i in range(rows)]
            frame[name] = pd.Series(column_values, dtype=object)
        else:
            frame[name] = pd.Series(np.resize(values, rows))
    return pd.DataFrame(frame)


def _check_identical(
    lean: LeanPipeline, model: Any, kinds: Mapping[str, str], probe: pd.DataFrame | None
) -> None:
    frames = [probe_frame(lean, kinds)]
    if probe is not None and not probe.empty:
        frames.append(probe.reset_index(drop=True))
    for frame in frames:
        _compare(lean, model, kinds, frame.head(1))
        if not _compare(lean, model, kinds, frame):  # the pipeline refuses some row
            for i in range(len(frame)):
                _compare(lean, model, kinds, frame.iloc[[i]].reset_index(drop=True))


def _compare(lean: LeanPipeline, model: Any, kinds: Mapping[str, str], rows: Any) -> bool:
    """Whether both scored ``rows`` (identically); False if both refused them.

    Raises:
        NotCompilable: One refused and the other did not, or the probabilities differ.
    """
    import pandas as pd

    columns = {name: _as_column(rows[name], kinds[name]) for name in kinds}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Skipping features without any ..."
            expected: np.ndarray | None = np.asarray(model.predict_proba(pd.DataFrame(columns)))
    except (ValueError, TypeError):  # e.g. an unknown category, handle_unknown="error"
        expected = None
    got = lean.predict_proba(columns)
    if got is None and expected is None:
        return False
    if got is None or expected is None or not np.array_equal(got, expected, equal_nan=True):
        raise NotCompilable("the compiled steps do not reproduce predict_proba exactly")
    return True


def _as_column(series: Any, kind: str) -> np.ndarray:
    """A probe column as the runtime decodes requests (float64; object with None)."""
    if kind == NUMERIC_KIND:
        return series.to_numpy(dtype=np.float64)
    if kind == STRING_KIND:
        return np.asarray([None if v is None or v != v else v for v in series], dtype=object)
    return series.to_numpy()
