"""Per-column profiles of the cleaned data, accumulated chunk by chunk in bounded memory.

Numeric: count, nulls, min, max, mean, std (sample, ddof=1; chunk statistics are merged with
Chan's parallel formula, so the result does not depend on the chunk size beyond float
rounding). Categorical: count, nulls, distinct count and the most frequent values.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from functions.common.config.dataset import FeatureType

TOP_VALUES = 10
# Past this many tracked values, rare ones are forgotten (top values become approximate);
# the distinct count stays exact through a sorted array of 64-bit value hashes.
_TRACKED_VALUES = 10_000


class ValueCount(BaseModel):
    value: str
    count: int


class NumericProfile(BaseModel):
    kind: Literal["numeric"] = "numeric"
    count: int
    nulls: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None


class CategoricalProfile(BaseModel):
    kind: Literal["categorical"] = "categorical"
    count: int
    nulls: int
    distinct: int
    top_values: list[ValueCount]
    top_values_exact: bool = True


ColumnProfile = Annotated[NumericProfile | CategoricalProfile, Field(discriminator="kind")]


class _Numeric:
    def __init__(self) -> None:
        self.count = 0
        self.nulls = 0
        self.min = math.inf
        self.max = -math.inf
        self.mean = 0.0
        self.m2 = 0.0

    def update(self, values: pd.Series) -> None:
        present = values.to_numpy(dtype=np.float64)
        present = present[~np.isnan(present)]
        self.nulls += len(values) - len(present)
        n = len(present)
        if not n:
            return
        total = self.count + n
        with np.errstate(over="ignore", invalid="ignore"):  # extreme values: see result()
            mean = float(present.mean())
            m2 = float(((present - mean) ** 2).sum())
            delta = mean - self.mean
            self.mean += delta * n / total
            self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total
        self.min = min(self.min, float(present.min()))
        self.max = max(self.max, float(present.max()))

    def result(self) -> NumericProfile:
        if not self.count:
            return NumericProfile(
                count=0, nulls=self.nulls, min=None, max=None, mean=None, std=None
            )
        with np.errstate(over="ignore", invalid="ignore"):
            std = math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0
        # Values near the float64 limit overflow the moments: reported as unknown (null), so
        # the manifest stays strict JSON (no Infinity/NaN).
        return NumericProfile(
            count=self.count,
            nulls=self.nulls,
            min=self.min,
            max=self.max,
            mean=self.mean if math.isfinite(self.mean) else None,
            std=std if math.isfinite(std) else None,
        )


class _Categorical:
    def __init__(self, exact: bool) -> None:
        self.exact = exact
        self.count = 0
        self.nulls = 0
        self.counts: Counter[str] = Counter()
        self.pruned = False
        self._hashes = np.empty(0, dtype=np.uint64)

    def update(self, values: pd.Series) -> None:
        present = values.dropna()
        self.nulls += len(values) - len(present)
        self.count += len(present)
        if not len(present):
            return
        chunk = present.value_counts(sort=False)
        self.counts.update(
            dict(zip(chunk.index.astype(str), chunk.to_numpy().tolist(), strict=True))
        )
        hashes = pd.util.hash_array(chunk.index.to_numpy(dtype=object))
        self._hashes = np.union1d(self._hashes, hashes)
        if not self.exact and len(self.counts) > _TRACKED_VALUES:
            self.counts = Counter(dict(self.counts.most_common(_TRACKED_VALUES // 10)))
            self.pruned = True

    @property
    def distinct(self) -> int:
        return int(self._hashes.size)

    def result(self) -> CategoricalProfile:
        top = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_VALUES]
        return CategoricalProfile(
            count=self.count,
            nulls=self.nulls,
            distinct=self.distinct,
            top_values=[ValueCount(value=value, count=count) for value, count in top],
            top_values_exact=not self.pruned,
        )


class ProfileBuilder:
    """Accumulates profiles of the cleaned chunks; `exact` columns (the classification target)
    keep every value count, so class checks are exact."""

    def __init__(self, columns: dict[str, FeatureType], exact: tuple[str, ...] = ()) -> None:
        self._columns: dict[str, _Numeric | _Categorical] = {
            name: _Numeric() if kind is FeatureType.NUMERIC else _Categorical(name in exact)
            for name, kind in columns.items()
        }

    def update(self, frame: pd.DataFrame) -> None:
        for name, accumulator in self._columns.items():
            accumulator.update(frame[name])

    def distinct(self, name: str) -> int:
        accumulator = self._columns[name]
        return accumulator.distinct if isinstance(accumulator, _Categorical) else 0

    def value_counts(self, name: str) -> dict[str, int]:
        accumulator = self._columns[name]
        return dict(accumulator.counts) if isinstance(accumulator, _Categorical) else {}

    def result(self) -> dict[str, NumericProfile | CategoricalProfile]:
        return {name: accumulator.result() for name, accumulator in self._columns.items()}


def profile_frame(
    frame: pd.DataFrame, columns: dict[str, FeatureType]
) -> dict[str, NumericProfile | CategoricalProfile]:
    """Profile one whole cleaned frame."""
    builder = ProfileBuilder(columns)
    builder.update(frame)
    return builder.result()
