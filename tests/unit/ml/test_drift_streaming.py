"""A window streamed in chunks through `DriftAccumulator` (functions/ml/drift/engine.py): the same
report as the whole window at once, in bounded memory."""

from __future__ import annotations

import json
import math
from functools import cache
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.ml.drift.engine import DriftAccumulator, compare
from functions.ml.drift.report import DriftReport, DriftThresholds, FeatureDrift
from functions.ml.drift.windows import MAX_UNSEEN_CATEGORIES
from functions.ml.sample_data import NUMERIC_FEATURES, churn_frame
from tests.helpers.drift import churn_reference, window_columns
from tests.helpers.models import CHURN_SCHEMA


@cache
def _reference() -> dict[str, Any]:
    return churn_reference(churn_frame(5_000, seed=1))


@cache
def _window(rows: int, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Churn columns with a drifted age (so that some statistics are far from zero) and
    predictions."""
    frame = churn_frame(rows, seed=300 + seed)
    columns = window_columns(frame)
    columns["age"] = columns["age"] + 5.0
    predictions = np.where(np.random.default_rng(seed).random(rows) < 0.4, "yes", "no")
    return columns, predictions


def _streamed(
    columns: dict[str, np.ndarray], predictions: np.ndarray, cuts: list[int], **kwargs: Any
) -> DriftReport:
    accumulator = DriftAccumulator(_reference(), **kwargs)
    bounds = [0, *sorted(set(cuts)), len(predictions)]
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        chunk = {name: values[start:stop] for name, values in columns.items()}
        accumulator.add(chunk, predictions[start:stop])
    assert accumulator.rows == len(predictions)
    return accumulator.report()


def _assert_same_feature(ours: FeatureDrift | None, theirs: FeatureDrift | None) -> None:
    assert ours is not None and theirs is not None
    assert (ours.severity, ours.notes, ours.histogram) == (
        theirs.severity,
        theirs.notes,
        theirs.histogram,
    )
    assert ours.statistics.keys() == theirs.statistics.keys()
    for name, value in ours.statistics.items():
        assert value == pytest.approx(theirs.statistics[name], rel=1e-12, abs=1e-12), name
    assert ours.p_values == pytest.approx(theirs.p_values, rel=1e-12, abs=1e-12)
    assert ours.score == pytest.approx(theirs.score, rel=1e-12, abs=1e-12)


def _assert_same_report(ours: DriftReport, theirs: DriftReport) -> None:
    assert (ours.verdict, ours.rows, ours.method, ours.drifted) == (
        theirs.verdict,
        theirs.rows,
        theirs.method,
        theirs.drifted,
    )
    assert ours.features.keys() == theirs.features.keys()
    for name in ours.features:
        _assert_same_feature(ours.features[name], theirs.features[name])
    _assert_same_feature(ours.prediction, theirs.prediction)


@pytest.mark.parametrize("rows", [600, 3_000])  # below and above large_window (1,000)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_chunked_windows_give_the_report_of_the_whole_window(
    rows: int, data: st.DataObject
) -> None:
    cuts = data.draw(st.lists(st.integers(1, rows - 1), max_size=12), label="cuts")
    columns, predictions = _window(rows)

    streamed = _streamed(columns, predictions, cuts)

    whole = compare(_reference(), columns, predictions=predictions)
    _assert_same_report(streamed, whole)
    assert whole.features["age"].severity != "none"


def test_a_window_crossing_large_window_while_streaming_is_judged_as_large() -> None:
    columns, predictions = _window(3_000)

    streamed = _streamed(columns, predictions, [400, 999, 1_000, 1_001, 2_500])

    assert streamed.method == "effect_size"
    assert all(not feature.p_values for feature in streamed.features.values())
    _assert_same_report(streamed, compare(_reference(), columns, predictions=predictions))


def test_a_million_rows_in_chunks_keep_no_raw_values() -> None:
    accumulator = DriftAccumulator(_reference())
    retained = []
    for seed in range(20):
        frame = churn_frame(50_000, seed=500 + seed)
        accumulator.add({name: frame[name].to_numpy() for name in CHURN_SCHEMA})
        retained.append(accumulator.retained_values)

    report = accumulator.report()

    assert accumulator.rows == 1_000_000
    assert retained == [0] * 20
    assert report.verdict == "no_drift" and report.drifted == ()


def test_raw_values_are_kept_only_while_the_window_is_small() -> None:
    columns, _ = _window(1_500)
    accumulator = DriftAccumulator(_reference())

    accumulator.add({name: values[:900] for name, values in columns.items()})
    small = accumulator.retained_values
    accumulator.add({name: values[900:] for name, values in columns.items()})

    present = sum(int(np.isfinite(columns[name][:900]).sum()) for name in NUMERIC_FEATURES)
    assert small == present  # the numeric values the exact small-window tests need
    assert accumulator.retained_values == 0


def test_a_column_missing_from_a_chunk_counts_as_missing_for_that_chunk() -> None:
    columns, predictions = _window(2_000)
    accumulator = DriftAccumulator(_reference())

    accumulator.add({name: values[:1_500] for name, values in columns.items()})
    accumulator.add({name: values[1_500:] for name, values in columns.items() if name != "region"})

    region = accumulator.report().features["region"]
    nulls_in_first = sum(value is None for value in columns["region"][:1_500])
    assert region.statistics["null_share"] == pytest.approx((nulls_in_first + 500) / 2_000)
    assert region.severity == "major"


def test_predictions_missing_from_a_chunk_count_as_missing() -> None:
    columns, predictions = _window(2_000)
    accumulator = DriftAccumulator(_reference())

    accumulator.add({name: values[:1_000] for name, values in columns.items()})
    accumulator.add({name: values[1_000:] for name, values in columns.items()}, predictions[1_000:])

    prediction = accumulator.report().prediction
    assert prediction is not None
    assert prediction.statistics["null_share"] == 0.5
    assert prediction.severity == "major"
    assert DriftAccumulator(_reference()).report().prediction is None


def test_many_distinct_unseen_categories_are_pooled_beyond_the_limit() -> None:
    rows = MAX_UNSEEN_CATEGORIES + 2_000
    accumulator = DriftAccumulator(_reference())
    names = np.array([f"town-{i}" for i in range(rows)], dtype=object)

    for start in range(0, rows, 5_000):
        accumulator.add({"region": names[start : start + 5_000]})
        accumulator.add({"region": names[start : start + 5_000]})  # each town twice

    region = accumulator.report().features["region"]
    assert region.statistics["unseen"] == 2 * rows
    assert region.statistics["unseen_categories"] == MAX_UNSEEN_CATEGORIES + 1
    assert "lower bound" in " ".join(region.notes)
    assert region.severity == "major"
    assert region.histogram is not None and region.histogram["current"][-1] == 2 * rows


def test_chunks_of_different_lengths_are_rejected() -> None:
    accumulator = DriftAccumulator(_reference())

    with pytest.raises(ValueError, match="different lengths"):
        accumulator.add({"age": [40.0] * 10}, predictions=["yes"] * 9)
    assert accumulator.rows == 0


def test_empty_chunks_and_an_empty_accumulator_report_insufficient_data() -> None:
    accumulator = DriftAccumulator(_reference(), thresholds=DriftThresholds(min_rows=10))
    accumulator.add({})
    accumulator.add({"age": np.array([]), "region": []})

    report = accumulator.report()

    assert (report.verdict, report.rows, report.features) == ("insufficient_data", 0, {})
    text = json.dumps(report.to_dict(), allow_nan=False)
    assert "NaN" not in text and not math.isnan(report.drifted_share)
