"""The promotion gate: MLflow MetricThreshold semantics, checked by example and by property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.common.config.dataset import Task
from functions.common.config.training import GateConfig, MetricThreshold
from functions.ml.gate import apply_gate

values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
changes = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)
positive_changes = st.floats(min_value=1e-9, max_value=10.0, allow_nan=False)
optional = st.one_of(st.none(), changes)


@st.composite
def thresholds(draw: st.DrawFn) -> MetricThreshold:
    spec = MetricThreshold(
        threshold=draw(st.one_of(st.none(), values)),
        min_absolute_change=draw(optional),
        min_relative_change=draw(optional),
        greater_is_better=draw(st.booleans()),
    )
    if (spec.threshold, spec.min_absolute_change, spec.min_relative_change) == (None,) * 3:
        return spec.model_copy(update={"threshold": 0.0})
    return spec


def _gate(metric: str = "m", **spec: float | bool | None) -> GateConfig:
    return GateConfig(metrics={metric: MetricThreshold(**spec)})


def _passes(spec: MetricThreshold, candidate: float, champion: float | None) -> bool:
    passed, _ = apply_gate(
        candidate={"m": candidate},
        champion=None if champion is None else {"m": champion},
        gate=GateConfig(metrics={"m": spec}),
        task=Task.CLASSIFICATION,
        n_classes=2,
    )
    return passed


def test_the_demo_gate_reads_like_a_sentence() -> None:
    gate = GateConfig(
        metrics={
            "roc_auc": MetricThreshold(threshold=0.75, min_absolute_change=0.0),
            "f1_macro": MetricThreshold(threshold=0.65, min_absolute_change=0.01),
        }
    )

    passed, criteria = apply_gate(
        candidate={"roc_auc": 0.812, "f1_macro": 0.701},
        champion={"roc_auc": 0.805, "f1_macro": 0.705},
        gate=gate,
        task=Task.CLASSIFICATION,
        n_classes=2,
    )

    assert not passed
    assert [c.message for c in criteria] == [
        "roc_auc 0.812 >= threshold 0.75",
        "roc_auc 0.812 is not worse than champion 0.805 (+0.007)",
        "f1_macro 0.701 >= threshold 0.65",
        "f1_macro 0.701 is not better than champion 0.705 by at least 0.01 (-0.004)",
    ]
    assert [(c.kind, c.passed) for c in criteria] == [
        ("threshold", True),
        ("min_absolute_change", True),
        ("threshold", True),
        ("min_absolute_change", False),
    ]
    assert criteria[3].champion == 0.705 and criteria[3].bound == 0.01


def test_comparisons_are_inclusive_as_in_mlflow() -> None:
    # Exactly representable values: candidate == champion + change passes (MLflow uses >=).
    up = {"greater_is_better": True}
    assert _passes(MetricThreshold(min_absolute_change=0.25, **up), 0.75, 0.5)
    assert not _passes(MetricThreshold(min_absolute_change=0.25, **up), 0.7499, 0.5)
    assert _passes(MetricThreshold(min_relative_change=0.5, **up), 0.75, 0.5)
    assert not _passes(MetricThreshold(min_relative_change=0.5, **up), 0.7499, 0.5)
    assert _passes(MetricThreshold(threshold=0.5, **up), 0.5, None)
    # A champion at exactly 0: the candidate must beat it by MLflow's 1e-10.
    assert _passes(MetricThreshold(min_relative_change=0.5, **up), 1e-9, 0.0)
    assert not _passes(MetricThreshold(min_relative_change=0.5, **up), 0.0, 0.0)


def test_lower_is_better_metrics_use_their_natural_direction() -> None:
    passed, criteria = apply_gate(
        candidate={"rmse": 3.0, "log_loss": 0.5},
        champion={"rmse": 3.5, "log_loss": 0.4},
        gate=GateConfig(
            metrics={
                "rmse": MetricThreshold(threshold=4.0, min_relative_change=0.1),
                "log_loss": MetricThreshold(threshold=0.45),
            }
        ),
        task=Task.REGRESSION,
        n_classes=0,
    )

    assert not passed
    assert [c.passed for c in criteria] == [True, True, False]
    assert criteria[0].message == "rmse 3 <= threshold 4"
    assert criteria[1].message.startswith("rmse 3 is better than champion 3.5 by at least 0.1")
    assert criteria[2].message == "log_loss 0.5 > threshold 0.45"
    assert not criteria[0].greater_is_better


def test_an_empty_gate_requires_the_primary_metric_not_to_get_worse() -> None:
    def run(candidate: float, champion: float, task: Task, n_classes: int) -> bool:
        metric = {2: "roc_auc", 3: "f1_macro", 0: "rmse"}[n_classes]
        passed, criteria = apply_gate(
            candidate={metric: candidate, "other": 0.0},
            champion={metric: champion, "other": 1.0},
            gate=GateConfig(),
            task=task,
            n_classes=n_classes,
        )
        assert [c.metric for c in criteria] == [metric]
        return passed

    assert run(0.8, 0.8, Task.CLASSIFICATION, 2)
    assert not run(0.79, 0.8, Task.CLASSIFICATION, 2)
    assert run(0.7, 0.6, Task.CLASSIFICATION, 3)
    assert run(2.9, 3.0, Task.REGRESSION, 0)
    assert not run(3.1, 3.0, Task.REGRESSION, 0)


def test_without_a_champion_only_thresholds_count() -> None:
    passed, criteria = apply_gate(
        candidate={"roc_auc": 0.8},
        champion=None,
        gate=_gate("roc_auc", threshold=0.75, min_absolute_change=0.05, min_relative_change=0.1),
        task=Task.CLASSIFICATION,
        n_classes=2,
    )

    assert passed
    assert [c.message for c in criteria[1:]] == ["roc_auc: no champion to compare with"] * 2
    assert all(c.champion is None for c in criteria)


def test_a_champion_without_the_metric_fails_the_comparison() -> None:
    passed, criteria = apply_gate(
        candidate={"roc_auc": 0.9},
        champion={"accuracy": 0.8},
        gate=_gate("roc_auc", min_absolute_change=0.0),
        task=Task.CLASSIFICATION,
        n_classes=2,
    )

    assert not passed
    assert "champion's evaluation has no roc_auc" in criteria[0].message


def test_a_custom_metric_needs_its_direction() -> None:
    with pytest.raises(ValueError, match="gate metric 'm'; set greater_is_better"):
        _passes(MetricThreshold(threshold=1.0), 2.0, None)


def test_a_metric_the_evaluation_lacks_is_named_with_the_available_ones() -> None:
    with pytest.raises(ValueError, match=r"'auc'.*available: accuracy, roc_auc"):
        apply_gate(
            candidate={"roc_auc": 0.8, "accuracy": 0.7},
            champion=None,
            gate=_gate("auc", threshold=0.5),
            task=Task.CLASSIFICATION,
            n_classes=2,
        )


@given(
    value=values,
    absolute=st.one_of(st.none(), positive_changes),
    relative=st.one_of(st.none(), positive_changes),
    greater=st.booleans(),
)
def test_a_candidate_equal_to_the_champion_never_passes_a_positive_improvement(
    value: float, absolute: float | None, relative: float | None, greater: bool
) -> None:
    for spec in (
        MetricThreshold(min_absolute_change=absolute, greater_is_better=greater),
        MetricThreshold(min_relative_change=relative, greater_is_better=greater),
    ):
        if spec.min_absolute_change is None and spec.min_relative_change is None:
            continue
        assert not _passes(spec, value, value)


@given(spec=thresholds(), champion=st.one_of(st.none(), values), a=values, b=values)
def test_passing_is_monotone_in_the_candidate(
    spec: MetricThreshold, champion: float | None, a: float, b: float
) -> None:
    assert spec.greater_is_better is not None
    worse, better = sorted((a, b)) if spec.greater_is_better else sorted((a, b), reverse=True)

    if _passes(spec, worse, champion):
        assert _passes(spec, better, champion)


@given(spec=thresholds(), champion=st.one_of(st.none(), values), candidate=values)
def test_lower_is_better_is_the_mirror_image_of_greater_is_better(
    spec: MetricThreshold, champion: float | None, candidate: float
) -> None:
    mirrored = spec.model_copy(
        update={
            "greater_is_better": not spec.greater_is_better,
            "threshold": None if spec.threshold is None else -spec.threshold,
        }
    )

    assert _passes(spec, candidate, champion) == _passes(
        mirrored, -candidate, None if champion is None else -champion
    )


@given(spec=thresholds(), candidate=values)
def test_without_a_champion_the_verdict_is_the_thresholds_verdict(
    spec: MetricThreshold, candidate: float
) -> None:
    assert spec.greater_is_better is not None
    if spec.threshold is None:
        expected = True
    elif spec.greater_is_better:
        expected = candidate >= spec.threshold
    else:
        expected = candidate <= spec.threshold

    assert _passes(spec, candidate, None) == expected


def test_large_regression_errors_read_as_plain_numbers_not_exponents() -> None:
    """rmse on prices: "rmse 21102 is worse than champion 20996", never "2.11e+04 ... 2.1e+04"."""
    passed, [criterion] = apply_gate(
        candidate={"rmse": 21101.8711},
        champion={"rmse": 20995.8033},
        gate=GateConfig(),
        task=Task.REGRESSION,
        n_classes=0,
    )

    assert not passed
    assert criterion.message == "rmse 21102 is worse than champion 20996 (+106)"
