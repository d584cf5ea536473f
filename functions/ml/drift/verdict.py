"""The dataset's verdict from its features' results: the share of drifted features, the critical
features' major drift, the data-quality breaks; and the decision stated as applied."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from functions.ml.drift.presentation import SEVERITY_RANK
from functions.ml.drift.report import (
    DriftReport,
    DriftThresholds,
    FeatureDrift,
    Verdict,
)

CRITICAL_IMPORTANCE_SHARE = 0.5
"""Without `critical_features`, the features carrying this share of the importance are critical."""


def dataset_report(
    features: dict[str, FeatureDrift],
    prediction: FeatureDrift | None,
    rows: int,
    large: bool,
    skipped: tuple[str, ...],
    thresholds: DriftThresholds,
    importance: Mapping[str, Any] | None = None,
) -> DriftReport:
    judged = {name: f for name, f in features.items() if f.kind != "skipped"}
    drifted = tuple(name for name, f in judged.items() if f.distribution != "none")
    quality = tuple(name for name, f in judged.items() if f.quality != "none")
    share = len(drifted) / len(judged) if judged else 0.0
    source: Literal["critical_features", "importance", "none"] = "none"
    critical: list[str] = []
    if thresholds.critical_features:
        source, critical = "critical_features", sorted(thresholds.critical_features)
    elif importance and isinstance(importance.get("features"), Mapping):
        source, critical = "importance", critical_by_importance(importance["features"])
    hit = [name for name in critical if name in judged and judged[name].distribution == "major"]
    notes = [f"critical feature(s) with major drift: {', '.join(hit)}"] * bool(hit)
    if not judged:
        notes.append("no feature compared")
    fail = thresholds.data_quality_fail
    failed = [
        name
        for name in quality
        if fail != "never" and SEVERITY_RANK[judged[name].quality] >= SEVERITY_RANK[fail]
    ]
    by_share = bool(judged) and share >= thresholds.share
    verdict: Verdict = "drift" if by_share or hit or failed else "no_drift"
    method: Literal["effect_size", "p_value"] = "effect_size" if large else "p_value"
    decision = "; ".join(
        [
            f"{len(drifted)} of {len(judged)} features drifted (share {share:.2f} "
            f"{'>=' if by_share else '<'} {thresholds.share:g})",
            _critical_rule(source, critical, hit, importance),
            _quality_rule(judged, quality, failed, fail),
            f"verdict: {verdict.replace('_', ' ')}",
        ]
    )
    return DriftReport(
        verdict=verdict,
        rows=rows,
        method=method,
        drifted_share=share,
        drifted=drifted,
        features=features,
        prediction=prediction,
        skipped=skipped,
        notes=tuple(notes),
        thresholds=thresholds,
        data_quality=quality,
        critical=tuple(critical),
        critical_source=source,
        decision=decision,
    )


def critical_by_importance(
    importances: Mapping[str, Any], share: float = CRITICAL_IMPORTANCE_SHARE
) -> list[str]:
    """The features carrying the top `share` of the (positive) importance, most important
    first: the fewest features whose importances add up to at least `share` of the total.
    Empty when no importance is positive (the model relies on no single feature)."""
    positive = {
        str(name): float(value)
        for name, value in importances.items()
        if isinstance(value, int | float) and math.isfinite(value) and value > 0
    }
    total = sum(positive.values())
    chosen: list[str] = []
    carried = 0.0
    for name in sorted(positive, key=lambda n: (-positive[n], n)):
        if carried >= share * total:
            break
        chosen.append(name)
        carried += positive[name]
    return chosen


def _critical_rule(
    source: str, critical: list[str], hit: list[str], importance: Mapping[str, Any] | None
) -> str:
    if source == "critical_features":
        why = f"drift.critical_features: {', '.join(critical)}"
    elif source == "importance":
        metric = (importance or {}).get("metric")
        why = "the top half of the served model's permutation importance" + (
            f" ({metric})" if metric else ""
        )
        if not critical:
            return f"no critical feature ({why} is zero for every feature)"
        why += f": {', '.join(critical)}"
    else:
        return (
            "no critical feature: no drift.critical_features configured and no feature "
            "importance in the reference profile (trained before importances were recorded), "
            "so only the share rule applies"
        )
    if hit:
        return f"critical feature(s) with major drift: {', '.join(hit)} (critical by {why})"
    return f"no critical feature drifted major (critical by {why})"


def _quality_rule(
    judged: Mapping[str, FeatureDrift], quality: tuple[str, ...], failed: list[str], fail: str
) -> str:
    if not quality:
        return "no data-quality break"
    breaks = ", ".join(f"{name}: {'; '.join(judged[name].quality_breaks)}" for name in quality)
    rule = f"drift.data_quality_fail = {fail}"
    if failed:
        return f"data quality failed in {', '.join(failed)} ({rule}): {breaks}"
    return f"data-quality break(s) below the failing level ({rule}): {breaks}"
