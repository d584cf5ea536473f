"""Rows of one map item checked with the predict API's own column checks
(`functions.serving.values.check_column`: types, finite float32 numbers, unseen categories
per `[serving] unseen_categories`) and scored with its ONNX input code
(`functions.ml.onnx_input.predict_columns`), so a row gets the prediction the online endpoint
gives for the same values. Unlike a request, which is refused whole, each bad row is rejected
on its own with the reason, and the others are scored. Pure: numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from functions.ml.onnx_input import Prediction, Session, predict_columns
from functions.serving.errors import RequestError
from functions.serving.features import FeatureSpec
from functions.serving.values import check_column, check_columns

SCORE_CHUNK_ROWS = 50_000
"""Rows per `session.run`: bounds the memory of the input tensors and outputs."""


@dataclass(frozen=True)
class Problem:
    field: str | None
    error: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "error": self.error, "reason": self.reason}


@dataclass
class Checked:
    """Rows `good` (offsets into the item) as model-ready columns, and every rejected row's
    problems (offset -> problems, features in signature order)."""

    good: list[int]
    columns: dict[str, Any]
    rejected: dict[int, list[Problem]]
    unseen: dict[str, int] = field(default_factory=dict)


def check_rows(
    columns: Mapping[str, list[Any]],
    present: Mapping[str, list[bool]],
    rows: int,
    specs: Sequence[FeatureSpec],
    *,
    reject_unseen: bool,
    problems: Sequence[tuple[int, str | None, str, str]] = (),
) -> Checked:
    """Check `rows` rows given as feature columns (`present[name][i]` False: the row has no
    such field). `problems` are rows the reader already found bad (offset, field, code,
    message)."""
    rejected: dict[int, list[Problem]] = {}
    for offset, name, code, message in problems:
        rejected.setdefault(offset, []).append(Problem(name, code, message))
    for spec in specs:
        flags = present.get(spec.name)
        absent = range(rows) if flags is None else np.flatnonzero(~np.asarray(flags, bool)).tolist()
        for offset in absent:
            if offset in rejected and rejected[offset][0].field is None:
                continue  # a blank or unreadable record: one reason is enough
            rejected.setdefault(offset, []).append(
                Problem(
                    spec.name,
                    "missing_feature",
                    f"the row has no value for feature {spec.name!r} (leave it empty, or "
                    "null in JSON, for a missing value)",
                )
            )
    candidates = [offset for offset in range(rows) if offset not in rejected]
    for spec in specs:
        subset = _rows(columns[spec.name], candidates, rows)
        for position, error in _bad_values(subset, spec, reject_unseen=reject_unseen):
            rejected.setdefault(candidates[position], []).append(
                Problem(spec.name, error.code, error.message)
            )
    good = [offset for offset in candidates if offset not in rejected]
    checked, unseen = check_columns(
        ((spec, _rows(columns[spec.name], good, rows), _field_name(spec.name)) for spec in specs),
        reject_unseen=reject_unseen,
    )
    return Checked(good=good, columns=checked, rejected=rejected, unseen=unseen)


def _rows(values: list[Any], offsets: list[int], rows: int) -> list[Any]:
    """The values at `offsets` (all of them, as they are, when every row is there)."""
    return values if len(offsets) == rows else [values[i] for i in offsets]


def _field_name(name: str) -> Callable[[int], str]:
    """A row's field is named by the feature alone: the row number is reported beside it."""
    return lambda _index: name


def _bad_values(
    values: list[Any], spec: FeatureSpec, *, reject_unseen: bool, offset: int = 0
) -> list[tuple[int, RequestError]]:
    """The values `check_column` refuses, with its error, found by halving: one pass when the
    column is clean, about k log n small passes for k bad values."""
    if not values:
        return []
    try:
        check_column(values, spec, _field_name(spec.name), reject_unseen=reject_unseen)
        return []
    except RequestError as error:
        if len(values) == 1:
            return [(offset, error)]
    middle = len(values) // 2
    return _bad_values(
        values[:middle], spec, reject_unseen=reject_unseen, offset=offset
    ) + _bad_values(values[middle:], spec, reject_unseen=reject_unseen, offset=offset + middle)


def score(
    session: Session, columns: Mapping[str, Any], rows: int, signature: Mapping[str, Any]
) -> Prediction:
    """Predictions for checked columns, `SCORE_CHUNK_ROWS` rows per `session.run`."""
    if rows <= SCORE_CHUNK_ROWS:
        return predict_columns(session, columns, signature)
    parts = [
        predict_columns(
            session,
            {name: values[start : start + SCORE_CHUNK_ROWS] for name, values in columns.items()},
            signature,
        )
        for start in range(0, rows, SCORE_CHUNK_ROWS)
    ]
    probabilities = (
        np.concatenate([part.probabilities for part in parts])  # type: ignore[misc]
        if parts[0].probabilities is not None
        else None
    )
    return Prediction(
        labels=np.concatenate([part.labels for part in parts]),
        probabilities=probabilities,
        classes=parts[0].classes,
    )
