"""Multiple-testing correction of a small window: Benjamini-Hochberg across every test of the
window, so an effect counts only if its test is a discovery."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from functions.ml.drift.effects import Measured


def gate_by_tests(features: Iterable[Measured], alpha: float) -> None:
    """Benjamini-Hochberg across every test of the window: a gated effect counts only if its
    test is a discovery."""
    measured = list(features)
    tests = [(m, test, p) for m in measured for test, p in m.p_values.items()]
    discoveries = _benjamini_hochberg([p for _, _, p in tests], alpha)
    for m in measured:
        m.gated = True
    for (m, test, _), discovered in zip(tests, discoveries, strict=True):
        if discovered:
            m.rejected.add(test)


def _benjamini_hochberg(p_values: list[float], alpha: float) -> list[bool]:
    if not p_values:
        return []
    order = np.argsort(p_values)
    ranked = np.asarray(p_values)[order]
    below = ranked <= alpha * np.arange(1, len(ranked) + 1) / len(ranked)
    cutoff = int(np.nonzero(below)[0].max()) + 1 if below.any() else 0
    discovered = np.zeros(len(ranked), dtype=bool)
    discovered[order[:cutoff]] = True
    return discovered.tolist()
