"""A feature's effects before the small-window gate (`Measured`), and the effect every feature
has: the change of its null share."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from functions.ml.drift.presentation import SEVERITY_RANK
from functions.ml.drift.report import (
    DriftThresholds,
    EffectKind,
    FeatureDrift,
    Severity,
    severity_of,
)
from functions.ml.drift.significance import binomial


@dataclass
class Measured:
    """A feature's statistics before the small-window gate: `effects` are (test name or None
    for ungated effects, severity, kind, what it measured); `p_values` the test p-values."""

    name: str
    kind: str
    statistics: dict[str, float | int | None]
    effects: list[tuple[str | None, Severity, EffectKind, str]]
    p_values: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rejected: set[str] = field(default_factory=set)
    gated: bool = False
    score: float | None = None
    histogram: dict[str, Any] | None = None

    def result(self) -> FeatureDrift:
        counted = [
            (severity, kind, what)
            for test, severity, kind, what in self.effects
            if test is None or not self.gated or test in self.rejected
        ]

        def worst(kinds: set[str]) -> Severity:
            severities = [severity for severity, kind, _ in counted if kind in kinds]
            return max(severities, key=SEVERITY_RANK.__getitem__, default="none")

        score = self.score if self.score is None or math.isfinite(self.score) else None
        breaks = tuple(
            f"{what} ({severity})"
            for severity, kind, what in counted
            if kind == "quality" and severity != "none"
        )
        return FeatureDrift(
            self.name,
            self.kind,
            worst({"distribution", "quality"}),
            worst({"distribution"}),
            worst({"quality"}),
            breaks,
            self.statistics,
            self.p_values,
            tuple(self.notes),
            score,
            self.histogram,
        )


def null_change(
    name: str,
    kind: str,
    profile: Mapping[str, Any],
    rows: int,
    present: int,
    thresholds: DriftThresholds,
    large: bool,
) -> Measured:
    reference_share = float(profile.get("null_share") or 0.0)
    share = (rows - present) / rows if rows else 0.0
    change = abs(share - reference_share)
    measured = Measured(
        name,
        kind,
        {"rows": rows, "null_share": share, "null_share_change": change},
        [
            (
                "nulls",
                severity_of(change, thresholds.null_share),
                "quality",
                f"null share {share:.1%} (training {reference_share:.1%})",
            )
        ],
    )
    if not large:
        measured.p_values["nulls"] = binomial(rows - present, rows, reference_share)
    if share == 1.0 and reference_share == 1.0:
        measured.notes.append("all values missing in both the reference and the window")
    return measured
