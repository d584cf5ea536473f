"""The groups of held-out rows a slice or a fairness table is about, as they may be shown:
values as the model sees them (`functions.ml.onnx_input`), `(missing)` for missing, and never a
raw value of a `[dataset] sensitive` column (a `hash` column shows a truncated hash of each
value, `functions.common.sensitive.hash_value`; a `drop` column shows numbered groups)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from functions.common.sensitive import hash_value
from functions.ml.onnx_input import MISSING_CATEGORY, categorical_values

MISSING_LABEL = "(missing)"
HASH_PREFIX = "sha256:"
HASH_SHOWN = 8
"""Hex digits of a hashed value shown in a slice or group label."""


@dataclass(frozen=True)
class Privacy:
    """`[dataset] sensitive` (column -> `hash` | `drop`), its salt, and the smallest group of
    rows that may be listed (`[model_card] min_slice_rows`)."""

    sensitive: Mapping[str, str] = field(default_factory=dict)
    salt: str = ""
    min_rows: int = 30

    def mode(self, column: str) -> str | None:
        return self.sensitive.get(column)


def category_labels(values: pd.Series, column: str, privacy: Privacy) -> np.ndarray:
    """Each row's group label for `column` (an object array of `str`), as it may be shown."""
    text = categorical_values(values.to_numpy(dtype=object, na_value=None))
    mode = privacy.mode(column)
    if mode is None:
        return np.where(text == MISSING_CATEGORY, MISSING_LABEL, text).astype(object)
    if mode == "hash":
        shown = {
            value: MISSING_LABEL
            if value == MISSING_CATEGORY
            else HASH_PREFIX + hash_value(value, privacy.salt)[:HASH_SHOWN]
            for value in set(text)
        }
        return np.array([shown[value] for value in text], dtype=object)
    # drop: the groups are numbered, largest first; their values are never shown
    counts = pd.Series(text).value_counts(sort=False)
    order = sorted(counts.index, key=lambda value: (-counts[value], hash_value(value)))
    numbered = {value: f"group {index}" for index, value in enumerate(order, start=1)}
    return np.array([numbered[value] for value in text], dtype=object)


def quantile_labels(values: pd.Series, bins: int) -> np.ndarray:
    """Each row's bin of a numeric column cut at its quantiles into at most `bins` bins of about
    equal rows (`[low, high)`, the last one closed), `(missing)` for missing values."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    present = ~np.isnan(numbers)
    labels = np.full(len(numbers), MISSING_LABEL, dtype=object)
    if not present.any():
        return labels
    edges = np.unique(np.quantile(numbers[present], np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) == 1:
        labels[present] = f"[{_number(edges[0])}, {_number(edges[0])}]"
        return labels
    index = np.clip(np.searchsorted(edges, numbers[present], side="right") - 1, 0, len(edges) - 2)
    names = [
        f"[{_number(low)}, {_number(high)}{']' if i == len(edges) - 2 else ')'}"
        for i, (low, high) in enumerate(zip(edges[:-1], edges[1:], strict=True))
    ]
    labels[present] = np.array(names, dtype=object)[index]
    return labels


def _number(value: float) -> str:
    return f"{value:.4g}"
