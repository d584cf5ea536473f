"""A window's column values as numbers: missing (None, NaN) and non-numeric values become NaN."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

Column = Sequence[Any] | np.ndarray  # values of one column; None / NaN = missing


def floats(values: Column) -> tuple[np.ndarray, int]:
    """float64 (NaN for missing) and the number of non-numeric values (made missing)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        return values.astype(np.float64, copy=False).reshape(-1), 0
    try:
        return np.asarray(values, dtype=np.float64).reshape(-1), 0
    except (TypeError, ValueError):
        pass
    converted = [float_or_none(value) for value in values]
    invalid = sum(
        value is None and raw is not None for value, raw in zip(converted, values, strict=True)
    )
    return np.array([math.nan if v is None else v for v in converted], dtype=np.float64), invalid


def float_or_none(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def finite_sample(sample: list[Any] | None) -> np.ndarray:
    if not sample:
        return np.array([])
    array, _ = floats(sample)
    return array[np.isfinite(array)]


def finite_sum(values: np.ndarray) -> float:
    with np.errstate(over="ignore", invalid="ignore"):
        return float(values[np.isfinite(values)].sum()) if len(values) else 0.0


def as_list(values: Column) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)
