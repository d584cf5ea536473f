"""The promotion gate: does the candidate meet `[gate]` (thresholds, improvement on the champion)?

Semantics follow MLflow's `MetricThreshold` as `mlflow.models.evaluation.validation._validate`
implements it (mlflow/mlflow, mlflow/models/evaluation/validation.py); every comparison is
inclusive (`operator.__ge__` / `operator.__le__`), and `greater_is_better=False` flips it:

- `threshold`: candidate >= threshold (lower is better: candidate <= threshold).
- `min_absolute_change`: candidate >= champion + change (lower is better:
  candidate <= champion - change).
- `min_relative_change`: (candidate - champion) / champion >= change (lower is better:
  (champion - candidate) / champion >= change); MLflow fails when the relative change is
  `< min_relative_change`. A champion value of 0 falls back to candidate >= champion + 1e-10
  (lower is better: candidate <= champion - 1e-10).

Where this differs from MLflow, and why:

- No champion (the first model): MLflow fails every change criterion ("missing baseline");
  here they pass with the message "no champion", so that a first model can be registered on
  its thresholds alone. A champion that lacks the metric still fails, as in MLflow.
- Arithmetic is exact (fractions), where MLflow adds in floats before comparing as Decimals:
  `champion + change` can round back to `champion`, letting an equal candidate through.
- The relative change divides by |champion|, where MLflow divides by the signed value, which
  inverts the test for a negative champion (r2 can be negative). Same result for champion > 0.
- MLflow rejects `min_absolute_change=0`; here 0 means "not worse than the champion", which is
  also what an empty `[gate]` means for the task's primary metric.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any, Literal

from functions.common.config.dataset import Task
from functions.common.config.insight import FairnessGateConfig
from functions.common.config.training import GateConfig, MetricThreshold
from functions.common.contracts import Criterion
from functions.ml.metrics import GREATER_IS_BETTER, primary_metric

ZERO_CHAMPION_MARGIN = 1e-10
"""MLflow's margin for a relative change against a champion value of exactly 0."""

Kind = Literal["min_absolute_change", "min_relative_change"]


def gate_thresholds(gate: GateConfig, task: Task, n_classes: int) -> dict[str, MetricThreshold]:
    """The configured criteria, or (empty `[gate]`) "the primary metric is not worse than the
    champion's"."""
    if gate.metrics:
        return dict(gate.metrics)
    return {primary_metric(task, n_classes): MetricThreshold(min_absolute_change=0.0)}


def apply_gate(
    *,
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    gate: GateConfig,
    task: Task,
    n_classes: int,
) -> tuple[bool, list[Criterion]]:
    """Evaluate every criterion of the gate; the candidate passes when all of them pass.
    Raises ValueError for a configured metric the candidate's evaluation does not have, or a
    metric without any criterion."""
    thresholds = gate_thresholds(gate, task, n_classes)
    unknown = [name for name in thresholds if name not in candidate]
    if unknown:
        raise ValueError(
            f"gate metric(s) {', '.join(map(repr, unknown))} not in the evaluation; available: "
            f"{', '.join(sorted(candidate))}"
        )
    criteria: list[Criterion] = []
    for metric, spec in thresholds.items():
        greater = _greater_is_better(metric, spec)
        value = float(candidate[metric])
        if (spec.threshold, spec.min_absolute_change, spec.min_relative_change) == (None,) * 3:
            raise ValueError(
                f"gate metric {metric!r} sets none of threshold, min_absolute_change, "
                "min_relative_change"
            )
        if spec.threshold is not None:
            criteria.append(_threshold(metric, value, spec.threshold, greater))
        changes: list[tuple[Kind, float | None]] = [
            ("min_absolute_change", spec.min_absolute_change),
            ("min_relative_change", spec.min_relative_change),
        ]
        for kind, bound in changes:
            if bound is not None:
                criteria.append(_change(kind, metric, value, champion, bound, greater))
    return all(criterion.passed for criterion in criteria), criteria


def fairness_criteria(
    fairness: Mapping[str, Any] | None, bounds: FairnessGateConfig
) -> list[Criterion]:
    """`[gate.fairness]`: one criterion per configured bound and fairness attribute, failed
    when the candidate's difference (`functions.ml.insight.fairness`) exceeds the bound (the
    bound itself passes). Without a fairness table (a multiclass classifier, whose
    disparities are not measured) or with an undefined difference, a configured bound fails:
    a fairness requirement is never waived silently."""
    criteria: list[Criterion] = []
    for metric, bound in bounds.bounds.items():
        if fairness is None:
            message = (
                f"{metric}: not measured (fairness is measured for binary classifiers on "
                "dataset.fairness_attributes); gate.fairness requires it"
            )
            criteria.append(_max_difference(metric, None, bound, message))
            continue
        for attribute, table in fairness["attributes"].items():
            value = table.get(metric)
            passed = value is not None and math.isfinite(value) and value <= bound
            if value is None:
                message = (
                    f"{metric} across {attribute} is undefined (fewer than two groups of at "
                    f"least model_card.min_slice_rows rows); gate.fairness requires max "
                    f"{_format(bound)[0]}"
                )
            else:
                shown = _format(float(value), bound)[0]
                message = f"{metric} across {attribute} {shown} {'<=' if passed else '>'} max "
                message += _format(bound)[0]
            criteria.append(_max_difference(metric, value, bound, message, passed))
    return criteria


def _max_difference(
    metric: str, value: float | None, bound: float, message: str, passed: bool = False
) -> Criterion:
    return Criterion(
        metric=metric,
        kind="max_difference",
        candidate=value,
        bound=bound,
        greater_is_better=False,
        passed=passed,
        message=message,
    )


def _greater_is_better(metric: str, spec: MetricThreshold) -> bool:
    if spec.greater_is_better is not None:
        return spec.greater_is_better
    if metric not in GREATER_IS_BETTER:
        raise ValueError(
            f"whether greater is better is unknown for gate metric {metric!r}; set "
            f"greater_is_better in [gate.metrics.{metric}]"
        )
    return GREATER_IS_BETTER[metric]


def _threshold(metric: str, value: float, threshold: float, greater: bool) -> Criterion:
    passed = math.isfinite(value) and (value >= threshold if greater else value <= threshold)
    shown_value, shown_threshold = _format(value, threshold)
    operator = (">=" if passed else "<") if greater else ("<=" if passed else ">")
    return Criterion(
        metric=metric,
        kind="threshold",
        candidate=value,
        bound=threshold,
        greater_is_better=greater,
        passed=passed,
        message=f"{metric} {shown_value} {operator} threshold {shown_threshold}",
    )


def _change(
    kind: Kind,
    metric: str,
    value: float,
    champion: Mapping[str, float] | None,
    bound: float,
    greater: bool,
) -> Criterion:
    def criterion(passed: bool, message: str, champion_value: float | None = None) -> Criterion:
        return Criterion(
            metric=metric,
            kind=kind,
            candidate=value,
            champion=champion_value,
            bound=bound,
            greater_is_better=greater,
            passed=passed,
            message=message,
        )

    if champion is None:
        return criterion(True, f"{metric}: no champion to compare with")
    if metric not in champion:
        return criterion(False, f"{metric}: the champion's evaluation has no {metric}")
    base = float(champion[metric])
    if not (math.isfinite(value) and math.isfinite(base)):
        return criterion(False, f"{metric}: cannot compare {value} with champion {base}")
    if kind == "min_absolute_change":
        passed = _beats_by(value, base, Fraction(bound), greater)
        return criterion(
            passed, _absolute_message(metric, value, base, bound, greater, passed), base
        )
    if base == 0:
        passed = _beats_by(value, base, Fraction(ZERO_CHAMPION_MARGIN), greater)
    else:
        passed = _beats_by(value, base, Fraction(bound) * abs(Fraction(base)), greater)
    return criterion(passed, _relative_message(metric, value, base, bound, greater, passed), base)


def _beats_by(value: float, base: float, margin: Fraction, greater: bool) -> bool:
    """Exactly: value >= base + margin (greater is better) or value <= base - margin."""
    if greater:
        return Fraction(value) >= Fraction(base) + margin
    return Fraction(value) <= Fraction(base) - margin


def _absolute_message(
    metric: str, value: float, base: float, bound: float, greater: bool, passed: bool
) -> str:
    shown_value, shown_base, shown_delta = _format(value, base, value - base)
    delta = f"({'+' if value >= base else ''}{shown_delta})"
    if bound == 0:
        verdict = "is not worse than" if passed else "is worse than"
        return f"{metric} {shown_value} {verdict} champion {shown_base} {delta}"
    verdict = "is better than" if passed else "is not better than"
    direction = "" if greater else " (lower is better)"
    (shown_bound,) = _format(bound)
    return (
        f"{metric} {shown_value} {verdict} champion {shown_base} by at least {shown_bound}"
        f"{direction} {delta}"
    )


def _relative_message(
    metric: str, value: float, base: float, bound: float, greater: bool, passed: bool
) -> str:
    shown_value, shown_base = _format(value, base)
    verdict = "is better than" if passed else "is not better than"
    if base == 0:
        return f"{metric} {shown_value} {verdict} champion {shown_base} (champion is 0)"
    change = (value - base) / abs(base) * (1 if greater else -1)
    return (
        f"{metric} {shown_value} {verdict} champion {shown_base} by at least {bound:.4g} "
        f"relative (got {change:+.4g})"
    )


def _format(*values: float) -> tuple[str, ...]:
    """The values with the fewest significant digits (at least 3) that keep distinct values
    distinct, so that a message never reads "0.705 is worse than 0.705"."""
    for digits in range(3, 18):
        shown = tuple(_significant(value, digits) for value in values)
        if all(
            (shown[i] == shown[j]) == (values[i] == values[j])
            for i in range(len(values))
            for j in range(i + 1, len(values))
        ):
            return shown
    return tuple(repr(value) for value in values)


def _significant(value: float, digits: int) -> str:
    """`value` to `digits` significant digits, in plain notation where `g` would write an
    exponent for a large number (an rmse on prices: 21102, not 2.11e+04)."""
    shown = f"{value:.{digits}g}"
    if "e+" in shown and abs(value) < 1e15:
        whole = len(f"{abs(value):.0f}")
        shown = f"{value:.{max(0, digits - whole)}f}"
    return shown
