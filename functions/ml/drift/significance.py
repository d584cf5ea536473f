"""The p-values of the small-window tests on counts: chi-square (binned or category counts)
and binomial (the null share). scipy is imported only when a test runs."""

from __future__ import annotations

import numpy as np


def chi_square(reference: np.ndarray, current: np.ndarray) -> float:
    """Two-sample chi-square p-value (reference counts vs window counts)."""
    from scipy import stats

    table = np.vstack([reference, current])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def binomial(nulls: int, rows: int, share: float) -> float:
    from scipy import stats

    if rows == 0:
        return 1.0
    if share <= 0.0 or share >= 1.0:
        return 1.0 if nulls == round(share * rows) else 0.0
    return float(stats.binomtest(nulls, rows, share).pvalue)
