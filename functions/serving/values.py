"""Feature values checked a column at a time, and the validated rows as columns (`Batch`).

Pure (numpy only): values are checked here and converted by `functions.ml.onnx_input` (the
conversion training uses). Rules per feature value:

- null: allowed for every feature; the graph imputes it, as in training.
- numeric: a JSON number (int or float). Booleans are not numbers; strings are refused (no
  silent parsing); NaN, Infinity and values beyond float32's range (about 3.4e38) are refused.
- categorical: a string (`""` means missing, as in training). An integer or finite float is
  accepted as its decimal string (`3` -> `"3"`), the way `onnx_input.category` converts it;
  booleans, objects and lists are refused. A category not seen in training is counted (and
  encoded as none of the known ones) or refused with 422, per `[serving] unseen_categories`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from functions.ml.onnx_input import MISSING_CATEGORY
from functions.serving.errors import type_name, unprocessable
from functions.serving.features import FeatureSpec

FLOAT32_MAX = float(np.finfo(np.float32).max)
_NUMBER_TYPES = frozenset({int, float})
NUMBER_OR_NULL_TYPES = _NUMBER_TYPES | {type(None)}
_STRING_TYPES = frozenset({str, type(None)})
_MAX_LISTED_CATEGORIES = 20


@dataclass(frozen=True)
class Batch:
    """Validated rows as columns (feature -> values; None or NaN is missing), ready for
    `onnx_inputs`, and how many values of each feature were categories unseen in training."""

    columns: dict[str, Any]
    rows: int
    unseen: dict[str, int]

    def row(self, index: int) -> dict[str, Any]:
        """One row as the model saw it (JSON-ready: missing is None)."""
        return {name: _plain(values[index]) for name, values in self.columns.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, np.floating):
        value = float(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def check_column(
    values: list[Any],
    spec: FeatureSpec,
    field_of: Callable[[int], str],
    *,
    reject_unseen: bool,
) -> tuple[Any, int]:
    """One feature's values checked: (values for `onnx_inputs`, count of unseen categories)."""
    if spec.categorical:
        return check_categories(values, spec, field_of, reject_unseen=reject_unseen)
    if isinstance(values, np.ndarray):
        return numeric_array(values, spec, field_of), 0
    return _numeric(values, spec, field_of), 0


def check_columns(
    features: Iterable[tuple[FeatureSpec, list[Any], Callable[[int], str]]],
    *,
    reject_unseen: bool,
) -> tuple[dict[str, Any], dict[str, int]]:
    """Each feature's values checked in turn (`check_column`; the first problem raises): the
    checked columns by feature, and the count of unseen categories of each feature with any."""
    columns: dict[str, Any] = {}
    unseen: dict[str, int] = {}
    for spec, values, field_of in features:
        columns[spec.name], count = check_column(
            values, spec, field_of, reject_unseen=reject_unseen
        )
        if count:
            unseen[spec.name] = count
    return columns, unseen


def _numeric(values: list[Any], spec: FeatureSpec, field_of: Callable[[int], str]) -> np.ndarray:
    kinds = set(map(type, values))
    if not kinds <= _NUMBER_TYPES | {type(None)}:
        for index, value in enumerate(values):
            if type(value) not in _NUMBER_TYPES and value is not None:
                raise unprocessable(
                    "invalid_type",
                    f"{field_of(index)} must be a number (feature {spec.name!r} is numeric), "
                    f"not {type_name(value)}",
                    field_of(index),
                )
    try:
        array = np.array(values, dtype=np.float64)
    except OverflowError:
        array = np.array([_float_or_inf(value) for value in values], dtype=np.float64)
    bad = ~(np.abs(array) <= FLOAT32_MAX)
    if bad.any():
        for index in np.flatnonzero(bad).tolist():
            if values[index] is not None:
                raise unprocessable(
                    "invalid_number",
                    f"{field_of(index)} must be a finite number within float32 range "
                    f"(|x| <= 3.4e38), not {values[index]!r:.40}",
                    field_of(index),
                )
    return array


def numeric_array(
    values: np.ndarray, spec: FeatureSpec, field_of: Callable[[int], str]
) -> np.ndarray:
    """A numeric tensor sent as binary data: NaN is missing (binary has no null); infinities
    and values beyond float32's range are refused. Floats stay in their width (FP32 reaches
    the graph without a copy), integers become float64."""
    array = values if values.dtype.kind == "f" else values.astype(np.float64)
    with np.errstate(invalid="ignore"):
        bad = np.abs(array) > FLOAT32_MAX
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise unprocessable(
            "invalid_number",
            f"{field_of(index)} must be a finite number within float32 range (|x| <= 3.4e38; "
            f"NaN means missing), not {float(array[index])!r} (feature {spec.name!r})",
            field_of(index),
        )
    return array


def _float_or_inf(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except OverflowError:
        return math.inf


def check_categories(
    values: list[Any],
    spec: FeatureSpec,
    field_of: Callable[[int], str],
    *,
    reject_unseen: bool,
) -> tuple[list[Any], int]:
    distinct = _distinct(values)
    # The types of the distinct values are those of all values: no JSON value other than a
    # string equals a string, and none other than null equals null.
    if distinct is None or not set(map(type, distinct)) <= _STRING_TYPES:
        values = [_category(value, spec, field_of, index) for index, value in enumerate(values)]
        distinct = set(values)
    known = spec.categories
    if not known:
        return values, 0
    surprises = distinct.difference(known)
    surprises.discard(None)
    surprises.discard(MISSING_CATEGORY)
    if not surprises:
        return values, 0
    unseen = 0
    for index, value in enumerate(values):
        if value is None or value in known or value == MISSING_CATEGORY:
            continue
        if reject_unseen:
            raise unprocessable(
                "unseen_category",
                f"{field_of(index)} is {value!r:.60}, a category the model did not see in "
                f"training; known: {_listed(known)}",
                field_of(index),
            )
        unseen += 1
    return values, unseen


def _distinct(values: list[Any]) -> set[Any] | None:
    try:
        return set(values)
    except TypeError:  # an array or an object among them
        return None


def _category(value: Any, spec: FeatureSpec, field_of: Callable[[int], str], index: int) -> Any:
    kind = type(value)
    if value is None or kind is str:
        return value
    if kind is int or (kind is float and math.isfinite(value)):
        return str(value)
    raise unprocessable(
        "invalid_type",
        f"{field_of(index)} must be a string (feature {spec.name!r} is categorical), "
        f"not {type_name(value) if kind is not float else 'a non-finite number'}",
        field_of(index),
    )


def _listed(categories: frozenset[str]) -> str:
    ordered = sorted(categories)
    shown = ", ".join(repr(value) for value in ordered[:_MAX_LISTED_CATEGORIES])
    more = len(ordered) - _MAX_LISTED_CATEGORIES
    return shown + (f" and {more} more" if more > 0 else "")
