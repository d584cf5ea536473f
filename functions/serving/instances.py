"""The v1 body `{"instances": [{feature: value, ...}, ...]}` as a validated `Batch`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np

from functions.ml.onnx_input import NamedTwiceError, by_feature_name
from functions.serving.body import batch_list
from functions.serving.errors import type_name, unprocessable
from functions.serving.features import FeatureSpec, alias_names
from functions.serving.values import (
    FLOAT32_MAX,
    NUMBER_OR_NULL_TYPES,
    Batch,
    check_categories,
    check_columns,
)


def _by_feature_name(instances: list[Any], aliases: Mapping[str, str]) -> list[Any]:
    """The rows, those with an alias among their keys keyed by feature name instead."""
    rows = []
    for index, row in enumerate(instances):
        if type(row) is dict and not aliases.keys().isdisjoint(row):
            try:
                row = by_feature_name(row, aliases)
            except NamedTwiceError as error:
                raise unprocessable(
                    "duplicate_feature", str(error), f"instances[{index}].{error.second}"
                ) from None
        rows.append(row)
    return rows


def instances_batch(
    document: Any,
    specs: Sequence[FeatureSpec],
    *,
    max_rows: int,
    reject_unseen: bool,
) -> Batch:
    """The v1 body `{"instances": [{feature: value, ...}, ...]}` as a validated Batch.

    Checked a column at a time, with C-level passes (`itemgetter`, `set(map(type, ...))`, one
    float64 matrix of the numeric features); only when one of them finds a problem are the
    rows walked, by `_checked_rows`, to name it (`instances[i].feature`)."""
    instances = batch_list(document, "instances", max_rows=max_rows)
    aliases = alias_names(tuple(specs))
    if aliases:
        instances = _by_feature_name(instances, aliases)
    layout = _layout(tuple(specs))
    if set(map(type, instances)) != {dict} or set(map(len, instances)) != {len(specs)}:
        return _checked_rows(instances, specs, reject_unseen=reject_unseen)
    try:
        rows = list(map(layout.values_of, instances))
    except KeyError:  # as many keys as features, so an unknown one instead of a feature
        return _checked_rows(instances, specs, reject_unseen=reject_unseen)
    by_feature = list(zip(*rows, strict=True))
    numeric = _numeric_matrix([by_feature[index] for index in layout.numeric], len(rows))
    if numeric is None:
        return _checked_rows(instances, specs, reject_unseen=reject_unseen)
    columns: dict[str, Any] = {}
    unseen: dict[str, int] = {}
    numeric_rows = iter(numeric)
    for spec, values in zip(specs, by_feature, strict=True):
        name = spec.name
        if not spec.categorical:
            columns[name] = next(numeric_rows)
            continue
        columns[name], count = check_categories(
            list(values), spec, _instance_field(name), reject_unseen=reject_unseen
        )
        if count:
            unseen[name] = count
    return Batch(columns=columns, rows=len(rows), unseen=unseen)


def _instance_field(name: str) -> Callable[[int], str]:
    """A value is named by its row and feature: `instances[i].<feature>`."""
    return lambda index: f"instances[{index}].{name}"


@dataclass(frozen=True)
class _Layout:
    """Where the numeric features are, and a getter of a row's values in signature order."""

    numeric: tuple[int, ...]
    values_of: Callable[[dict[str, Any]], tuple[Any, ...]]


@lru_cache(maxsize=8)
def _layout(specs: tuple[FeatureSpec, ...]) -> _Layout:
    names = tuple(spec.name for spec in specs)
    numeric = tuple(index for index, spec in enumerate(specs) if not spec.categorical)
    if len(names) >= 2:
        return _Layout(numeric, itemgetter(*names))
    # itemgetter of a single name returns the value, not a 1-tuple
    return _Layout(numeric, lambda row: tuple(row[name] for name in names))


def _numeric_matrix(columns: list[tuple[Any, ...]], rows: int) -> np.ndarray | None:
    """The numeric features' values as float64, one row per feature (NaN for null), or None
    when a value is not a number, or not finite within float32's range."""
    values = list(chain.from_iterable(columns))
    kinds = set(map(type, values))
    if not kinds <= NUMBER_OR_NULL_TYPES:
        return None
    try:
        flat = np.array(values, dtype=np.float64)  # null -> NaN
    except OverflowError:  # an integer beyond float64
        return None
    bad = ~(np.abs(flat) <= FLOAT32_MAX)
    if bad.any() and (
        type(None) not in kinds
        or any(values[index] is not None for index in np.flatnonzero(bad).tolist())
    ):
        return None
    return flat.reshape(len(columns), rows)


def _checked_rows(
    instances: list[Any], specs: Sequence[FeatureSpec], *, reject_unseen: bool
) -> Batch:
    """`instances_batch` a row and a value at a time: slower, and names the first problem
    (rows before features, features in signature order)."""
    expected = {spec.name for spec in specs}
    for index, row in enumerate(instances):
        if type(row) is not dict:
            raise unprocessable(
                "invalid_instance",
                f"instances[{index}] must be an object of feature values, not {type_name(row)}",
                f"instances[{index}]",
            )
        if row.keys() != expected:
            _explain_keys(row, specs, index)
    columns, unseen = check_columns(
        (
            (spec, [row[spec.name] for row in instances], _instance_field(spec.name))
            for spec in specs
        ),
        reject_unseen=reject_unseen,
    )
    return Batch(columns=columns, rows=len(instances), unseen=unseen)


def _explain_keys(row: Mapping[str, Any], specs: Sequence[FeatureSpec], index: int) -> None:
    for spec in specs:
        if spec.name not in row:
            raise unprocessable(
                "missing_feature",
                f"instances[{index}] has no value for feature {spec.name!r} "
                "(send null for a missing value)",
                f"instances[{index}].{spec.name}",
            )
    names = {spec.name for spec in specs}
    unknown = sorted(str(key) for key in row if key not in names)
    raise unprocessable(
        "unknown_feature",
        f"instances[{index}] has unknown feature {unknown[0]!r}; the model takes: "
        f"{', '.join(spec.name for spec in specs)}",
        f"instances[{index}].{unknown[0]}",
    )
