"""Categorical features: Jensen-Shannon distance over category shares, chi-square test, the share
of categories unseen in training, and the histogram of the largest categories."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from functions.ml.drift.effects import Measured, null_change
from functions.ml.drift.report import DriftThresholds, severity_of
from functions.ml.drift.significance import chi_square
from functions.ml.drift.windows import (
    MAX_UNSEEN_CATEGORIES,
    CategoricalWindow,
    reference_counts,
)
from functions.ml.onnx_input import MISSING_CATEGORY

UNSEEN = "<unseen>"
OTHER = "<other>"
HISTOGRAM_LABELS = 20


def measure_categorical(
    name: str,
    profile: Mapping[str, Any],
    window: CategoricalWindow,
    thresholds: DriftThresholds,
    large: bool,
) -> Measured:
    counts = Counter(window.counts)
    nulls = counts.pop(MISSING_CATEGORY, 0)
    rows = sum(counts.values()) + window.pooled + nulls
    measured = null_change(name, "categorical", profile, rows, rows - nulls, thresholds, large)
    reference = reference_counts(profile)
    if profile.get("other"):
        reference[UNSEEN] = float(profile["other"])
    unseen_labels = [label for label in counts if label not in reference]
    unseen = sum(counts[label] for label in unseen_labels) + window.pooled
    distinct = len(unseen_labels) + bool(window.pooled)
    measured.statistics.update(unseen=unseen, unseen_categories=distinct)
    if rows > nulls:
        unseen_share = unseen / (rows - nulls)
        measured.statistics["unseen_share"] = unseen_share
        what = (
            f"{unseen_share:.1%} of values in {distinct} categor{'y' if distinct == 1 else 'ies'}"
        )
        what += " unseen in training"
        # a profile of more than 1000 categories counts the rest as `other`: expected unseen
        present_reference = float(profile.get("rows") or 0) - float(profile.get("nulls") or 0)
        other = float(profile.get("other") or 0) / present_reference if present_reference else 0
        severity = severity_of(unseen_share - other, thresholds.out_of_range)
        measured.effects.append((None, severity, "quality", what))
    if window.pooled:
        measured.notes.append(
            f"more than {MAX_UNSEEN_CATEGORIES} distinct unseen categories: the rest are counted"
            " together (unseen_categories is a lower bound)"
        )
    if unseen and profile.get("other"):
        measured.notes.append("unseen includes categories beyond the profile's 1000 most frequent")
    if not reference:
        measured.notes.append("no values in the reference: only the null share is compared")
        return measured
    observed_counts = {label: float(counts[label]) for label in reference if label != UNSEEN}
    if unseen or UNSEEN in reference:
        observed_counts[UNSEEN] = float(unseen)
    measured.histogram = _category_histogram(reference, observed_counts)
    if rows == nulls:
        measured.notes.append("no values in the window: only the null share is compared")
        return measured
    labels = list(observed_counts)
    expected = np.array([reference.get(label, 0.0) for label in labels])
    observed = np.array([observed_counts[label] for label in labels])
    js = _js_distance(expected, observed)
    measured.statistics["js_distance"] = js
    measured.score = js
    measured.effects.append(("distribution", severity_of(js, thresholds.js), "distribution", ""))
    if len(reference) == 1:
        measured.notes.append("a single category in the reference")
    if not large:
        measured.p_values["distribution"] = chi_square(expected, observed)
    return measured


def _category_histogram(
    reference: Mapping[str, float], current: Mapping[str, float]
) -> dict[str, Any]:
    """At most `HISTOGRAM_LABELS` bars: the largest categories by their larger share, then
    `<other>` and `<unseen>` (each only when not empty)."""
    reference_total = max(sum(reference.values()), 1.0)
    current_total = max(sum(current.values()), 1.0)
    named = [label for label in reference if label != UNSEEN]

    def largest_share(label: str) -> tuple[float, str]:
        share = max(reference[label] / reference_total, current.get(label, 0.0) / current_total)
        return -share, label

    named.sort(key=largest_share)
    pooled = [UNSEEN] if UNSEEN in current or UNSEEN in reference else []
    room = HISTOGRAM_LABELS - len(pooled)
    shown, rest = (named, []) if len(named) <= room else (named[: room - 1], named[room - 1 :])
    labels = [*shown, *([OTHER] if rest else []), *pooled]

    def bars(counts: Mapping[str, float]) -> list[int]:
        by_label = {label: counts.get(label, 0.0) for label in [*shown, *pooled]}
        by_label[OTHER] = sum(counts.get(label, 0.0) for label in rest)
        return [int(by_label[label]) for label in labels]

    return {"labels": labels, "reference": bars(reference), "current": bars(current)}


def _js_distance(p: np.ndarray, q: np.ndarray) -> float:
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        right = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(math.sqrt(max((left + right) / 2, 0.0)))
