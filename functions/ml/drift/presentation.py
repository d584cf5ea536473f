"""How a drift report (`DriftReport.to_dict()`) is shown, by the monitoring function's HTML page
and by the CLI: the order of severities, the statistics shown per feature with their titles,
the features ranked. Standard library only, so whoever shows a report pays nothing to import it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

SEVERITY_RANK = {"none": 0, "minor": 1, "major": 2}
STATISTICS = (
    ("psi", "PSI"),
    ("wasserstein_normed", "Wasserstein / sd"),
    ("js_distance", "JS distance"),
    ("null_share_change", "null share change"),
    ("out_of_range_share", "out of range"),
    ("unseen", "unseen"),
)
"""The statistics shown per feature, with their column titles."""


def ranked_features(report: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A drift report's features (`DriftReport.to_dict()`), most severe first, then by score
    (highest first, features without a score last), then by name."""
    features = list((report.get("features") or {}).values())
    return sorted(
        features,
        key=lambda f: (
            -SEVERITY_RANK.get(str(f.get("severity")), 0),
            -_finite(f.get("score"), -math.inf),
            str(f.get("name")),
        ),
    )


def _finite(value: Any, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return default
