"""Numeric features: PSI over the profile's bins, Wasserstein distance normed by the reference
std (binned, or exact against the profile's row sample for small windows, tested with KS and
Brown-Forsythe), the share of values outside the training range."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from functions.ml.drift.effects import Measured, null_change
from functions.ml.drift.report import DriftThresholds, severity_of
from functions.ml.drift.significance import chi_square
from functions.ml.drift.windows import NumericWindow


def measure_numeric(
    name: str,
    profile: Mapping[str, Any],
    window: NumericWindow,
    sample: np.ndarray,
    thresholds: DriftThresholds,
    large: bool,
) -> Measured:
    present = window.present
    measured = null_change(name, "numeric", profile, window.rows, present, thresholds, large)
    if window.invalid:
        measured.notes.append(f"{window.invalid} non-numeric value(s) counted as missing")
    edges = window.edges
    if not len(edges):
        measured.notes.append("no values in the reference: only the null share is compared")
        return measured
    reference_counts = np.asarray(profile["counts"], dtype=np.float64)
    measured.histogram = window.histogram(profile["counts"])
    if not present:
        measured.notes.append("no values in the window: only the null share is compared")
        return measured
    outside = (window.below + window.above) / present
    stats = measured.statistics
    stats["out_of_range_share"] = outside
    what = f"{outside:.1%} of values outside the training range"
    measured.effects.append((None, severity_of(outside, thresholds.out_of_range), "quality", what))
    if len(edges) == 2 and edges[0] == edges[-1]:
        measured.notes.append("constant in the reference: judged by the share of other values")
        return measured
    counts = window.counts
    psi = population_stability(reference_counts, counts, thresholds.psi_epsilon)
    std = float(profile.get("std") or 0.0)
    excess = (window.excess_above + window.excess_below) / present
    distance = _binned_wasserstein(edges, reference_counts, counts, window.below, window.above)
    distance += excess
    if not large and window.values is not None:
        distance, p_value = _exact_tests(sample, np.concatenate(window.values))
        measured.p_values["distribution"] = p_value
    elif not large:
        measured.p_values["distribution"] = chi_square(reference_counts, counts)
    normed = distance / std if std > 0 else math.inf
    mean = window.total / present
    stats.update(psi=psi, wasserstein_normed=normed, mean=mean if math.isfinite(mean) else None)
    measured.score = normed
    measured.effects.append(("distribution", severity_of(psi, thresholds.psi), "distribution", ""))
    severity = severity_of(normed, thresholds.wasserstein)
    measured.effects.append(("distribution", severity, "distribution", ""))
    return measured


def population_stability(reference: np.ndarray, current: np.ndarray, epsilon: float) -> float:
    """PSI of two histograms over the same bins (counts), each share floored at `epsilon`."""
    p = np.maximum(reference / max(reference.sum(), 1.0), epsilon)
    q = np.maximum(current / max(current.sum(), 1), epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def _binned_wasserstein(
    edges: np.ndarray,
    reference: np.ndarray,
    current: np.ndarray,
    below: int,
    above: int,
) -> float:
    """W1 inside the training range from the CDFs at the edges (values uniform inside a bin);
    the mass outside the range is added exactly by the caller."""
    n = max(current.sum(), 1)
    cdf_current = np.concatenate([[below], np.cumsum(current)[:-1], [n - above]]) / n
    cdf_reference = np.concatenate([[0.0], np.cumsum(reference)[:-1], [reference.sum()]])
    cdf_reference /= max(reference.sum(), 1.0)
    gap = np.abs(cdf_current - cdf_reference)
    return float(np.sum(np.diff(edges) * (gap[:-1] + gap[1:]) / 2))


def _exact_tests(sample: np.ndarray, present: np.ndarray) -> tuple[float, float]:
    """Wasserstein distance against the reference row sample, and the p-value of "same
    distribution": KS (sensitive to location) or Brown-Forsythe (spread; KS misses a 1.5x
    scale change at 200 rows), whichever is smaller, doubled (Bonferroni) so that a feature
    stays one test in the Benjamini-Hochberg family."""
    from scipy import stats

    finite = present[np.isfinite(present)]
    if len(finite) < 2:
        return math.inf, 0.0
    distance = float(stats.wasserstein_distance(sample, finite))
    location = float(stats.ks_2samp(sample, finite).pvalue)
    with np.errstate(all="ignore"):  # constant or huge values: NaN, judged below
        spread = float(stats.levene(sample, finite, center="median").pvalue)
    spread = spread if math.isfinite(spread) else 1.0
    return distance, min(1.0, 2 * min(location, spread))
