"""A window's sufficient statistics per column, streamed chunk by chunk with bounded memory:
bin counts and sums against the profile's edges (numeric), counts per category (categorical)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from functions.ml.drift.columns import Column, finite_sum, floats
from functions.ml.onnx_input import MISSING_CATEGORY, category

MAX_UNSEEN_CATEGORIES = 10_000
"""Distinct unseen categories counted one by one per column; the rest share one bucket."""


class NumericWindow:
    """Sufficient statistics of one numeric column of the window against the profile edges."""

    def __init__(self, edges: Sequence[float], keep_values: bool) -> None:
        self.edges = np.asarray(edges, dtype=np.float64)
        self.counts = np.zeros(max(len(self.edges) - 1, 0), dtype=np.int64)
        self.rows = self.present = self.invalid = self.below = self.above = 0
        self.excess_below = self.excess_above = self.total = 0.0
        self.values: list[np.ndarray] | None = [] if keep_values else None

    @property
    def retained(self) -> int:
        return sum(len(chunk) for chunk in self.values) if self.values is not None else 0

    def add(self, values: Column) -> None:
        array, invalid = floats(values)
        present = array[~np.isnan(array)]
        self.rows += len(array)
        self.invalid += invalid
        self.present += len(present)
        with np.errstate(over="ignore", invalid="ignore"):
            self.total += float(present.sum())
        if self.values is not None:
            self.values.append(present)
        if not len(self.edges):
            return
        low, high = self.edges[0], self.edges[-1]
        below, above = present[present < low], present[present > high]
        self.below += len(below)
        self.above += len(above)
        self.excess_below += finite_sum(low - below)
        self.excess_above += finite_sum(above - high)
        self.counts += _bin_counts(self.edges, present)

    def add_missing(self, rows: int) -> None:
        self.rows += rows

    def forget_values(self) -> None:
        self.values = None

    def histogram(self, reference_counts: Sequence[int]) -> dict[str, Any]:
        return {
            "edges": self.edges.tolist(),
            "reference": [int(count) for count in reference_counts],
            "current": self.counts.tolist(),
            "below": self.below,
            "above": self.above,
        }


_COUNTING_EDGES = 32


def _bin_counts(edges: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Values per profile bin (`edges[i] <= v < edges[i + 1]`, outer bins open-ended), as
    `bincount(searchsorted(edges[1:-1], v, side="right"))`. For the usual few bins (up to
    `_COUNTING_EDGES` inner edges), one vectorised comparison per inner edge instead of
    searchsorted."""
    inner = edges[1:-1]
    if len(inner) > _COUNTING_EDGES:
        bins = np.searchsorted(inner, present, side="right")
        return np.bincount(bins, minlength=len(edges) - 1)
    at_least = np.array([np.count_nonzero(present >= edge) for edge in inner], dtype=np.int64)
    return -np.diff(np.concatenate([[len(present)], at_least, [0]]))


class CategoricalWindow:
    """Counts per category of one column (`""` = missing); distinct categories the profile does
    not list are counted one by one up to `MAX_UNSEEN_CATEGORIES`, then in `pooled`."""

    def __init__(self, profile: Mapping[str, Any]) -> None:
        self.known = reference_counts(profile).keys() | {MISSING_CATEGORY}
        self.counts: Counter[str] = Counter()
        self.unseen_kept = 0
        self.pooled = 0

    def add(self, values: Column) -> None:
        raw = Counter(values.tolist() if isinstance(values, np.ndarray) else values)
        for value, count in raw.items():
            label = category(value)
            if label in self.counts or label in self.known:
                self.counts[label] += count
            elif self.unseen_kept < MAX_UNSEEN_CATEGORIES:
                self.unseen_kept += 1
                self.counts[label] += count
            else:
                self.pooled += count

    def add_missing(self, rows: int) -> None:
        self.counts[MISSING_CATEGORY] += rows


def reference_counts(profile: Mapping[str, Any]) -> dict[str, float]:
    return {
        str(label): float(count)
        for label, count in (profile.get("counts") or {}).items()
        if label != MISSING_CATEGORY and count > 0
    }
