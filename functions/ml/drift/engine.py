"""The drift check of one window: `compare` a window at once, or stream it in chunks through
`DriftAccumulator`, into a `DriftReport` (see the package docstring for the rules)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from functions.ml.drift.categorical import measure_categorical
from functions.ml.drift.columns import Column, finite_sample
from functions.ml.drift.correction import gate_by_tests
from functions.ml.drift.effects import Measured
from functions.ml.drift.numeric import measure_numeric
from functions.ml.drift.report import DriftReport, DriftThresholds, FeatureDrift, Sensitive
from functions.ml.drift.verdict import dataset_report
from functions.ml.drift.windows import CategoricalWindow, NumericWindow

PREDICTION = "prediction"


def compare(
    reference: Mapping[str, Any],
    current: Mapping[str, Column],
    *,
    predictions: Column | None = None,
    thresholds: DriftThresholds = DriftThresholds(),  # noqa: B008 (frozen, immutable)
    sensitive: Mapping[str, Sensitive] | None = None,
) -> DriftReport:
    """Drift of the live window `current` (column -> values; None/NaN = missing) against the
    reference profile, per feature of the profile and for `predictions` (labels or values).
    `sensitive` is `[dataset] sensitive`: a `hash` column's window and profile both hold
    hashes already (`functions.common.sensitive.hash_value`, applied by capture and training)
    and are compared as categories; a `drop` column is skipped."""
    accumulator = DriftAccumulator(reference, thresholds=thresholds, sensitive=sensitive)
    accumulator.add(current, predictions)
    return accumulator.report()


class DriftAccumulator:
    """A window streamed in chunks: `add` each chunk, then `report` (the same report as
    `compare` on the concatenated window). Memory per column is bounded and independent of the
    window's length: numeric columns keep bin counts against the profile edges and a few sums,
    categorical ones a count per category (at most the profile's categories plus
    `MAX_UNSEEN_CATEGORIES` unseen ones). The raw present values of numeric columns, needed by
    the exact small-window tests, are kept only while the window has fewer than `large_window`
    rows (`retained_values`)."""

    def __init__(
        self,
        reference: Mapping[str, Any],
        *,
        thresholds: DriftThresholds = DriftThresholds(),  # noqa: B008 (frozen, immutable)
        sensitive: Mapping[str, Sensitive] | None = None,
    ) -> None:
        sensitive = sensitive or {}
        self._reference = reference
        self._thresholds = thresholds
        self._rows = 0
        self._skipped = tuple(
            name for name in reference["features"] if sensitive.get(name) == "drop"
        )
        samples = _sample_columns(reference.get("sample") or {})
        self._samples: dict[str, np.ndarray] = {}
        self._windows: dict[str, NumericWindow | CategoricalWindow | None] = {}
        for name, profile in reference["features"].items():
            if name in self._skipped:
                continue
            if profile.get("type") != "numeric":
                self._windows[name] = CategoricalWindow(profile)
            elif sensitive.get(name) == "hash":
                # capture holds hashes; a numeric profile (trained before the column was
                # marked sensitive) has nothing to compare them with
                self._windows[name] = None
            else:
                self._samples[name] = finite_sample(samples.get(name))
                keep = len(self._samples[name]) >= 2
                self._windows[name] = NumericWindow(profile.get("edges") or [], keep)
        self._prediction_profile = _prediction_profile(reference.get("predictions"))
        self._prediction: NumericWindow | CategoricalWindow | None = None
        if self._prediction_profile is not None and "class_shares" not in self._prediction_profile:
            self._prediction = NumericWindow(self._prediction_profile["edges"], False)
        elif self._prediction_profile is not None:
            self._prediction = CategoricalWindow(self._prediction_profile)
        self._predictions_seen = False

    @property
    def rows(self) -> int:
        """Rows added so far."""
        return self._rows

    @property
    def retained_values(self) -> int:
        """Raw values held for the exact small-window tests (0 once the window is large)."""
        return sum(
            window.retained
            for window in self._windows.values()
            if isinstance(window, NumericWindow)
        )

    def add(self, columns: Mapping[str, Column], predictions: Column | None = None) -> None:
        """One chunk of the window: column -> values, all of one length (a profile feature
        missing from the chunk counts as all-missing), and the predictions of its rows."""
        lengths = {len(values) for values in columns.values()}
        if predictions is not None:
            lengths.add(len(predictions))
        if len(lengths) > 1:
            raise ValueError(f"window columns have different lengths: {sorted(lengths)}")
        rows = lengths.pop() if lengths else 0
        if not rows:
            return
        for name, window in self._windows.items():
            values = columns.get(name)
            if window is None:
                continue
            if values is None:
                window.add_missing(rows)
            else:
                window.add(values)
        if self._prediction is not None:
            if predictions is None:
                self._prediction.add_missing(rows)
            else:
                self._prediction.add(predictions)
        self._predictions_seen |= predictions is not None
        self._rows += rows
        if self._rows >= self._thresholds.large_window:
            for window in self._windows.values():
                if isinstance(window, NumericWindow):
                    window.forget_values()

    def report(self) -> DriftReport:
        """The drift report of the rows added so far."""
        thresholds, rows = self._thresholds, self._rows
        if rows < thresholds.min_rows:
            note = f"{rows} rows < min_rows {thresholds.min_rows}"
            return DriftReport(
                "insufficient_data",
                rows,
                "none",
                0.0,
                (),
                {},
                None,
                self._skipped,
                (note,),
                thresholds,
                decision=f"insufficient data: {note}",
            )
        large = rows >= thresholds.large_window
        features: dict[str, Measured] = {}
        for name, window in self._windows.items():
            profile = self._reference["features"][name]
            if window is None:
                note = "hash needs a categorical profile"
                features[name] = Measured(name, "skipped", {}, [], notes=[note])
            elif isinstance(window, NumericWindow):
                sample = self._samples[name]
                features[name] = measure_numeric(name, profile, window, sample, thresholds, large)
            else:
                features[name] = measure_categorical(name, profile, window, thresholds, large)
        if not large:
            gate_by_tests(features.values(), thresholds.alpha)
        judged = {name: measured.result() for name, measured in features.items()}
        prediction = self._prediction_drift(large)
        importance = self._reference.get("importance")
        return dataset_report(
            judged, prediction, rows, large, self._skipped, thresholds, importance
        )

    def _prediction_drift(self, large: bool) -> FeatureDrift | None:
        profile = self._prediction_profile
        if not self._predictions_seen or not self._reference.get("predictions"):
            return None
        thresholds = self._thresholds
        if isinstance(self._prediction, CategoricalWindow) and profile is not None:
            measured = measure_categorical(PREDICTION, profile, self._prediction, thresholds, large)
        elif isinstance(self._prediction, NumericWindow) and profile is not None:
            measured = measure_numeric(
                PREDICTION, profile, self._prediction, np.array([]), thresholds, large
            )
        else:
            return FeatureDrift(PREDICTION, "skipped", notes=("no prediction profile",))
        if not large:
            measured.gated = True
            measured.rejected = {
                test for test, p in measured.p_values.items() if p <= thresholds.alpha
            }
        return measured.result()


def _prediction_profile(profile: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The predictions' profile in the shape of a feature profile (None if it has none)."""
    if not profile:
        return None
    if "class_shares" in profile:
        rows = int(profile.get("rows") or 0)
        counts = {label: share * rows for label, share in profile["class_shares"].items()}
        return {"counts": counts, "null_share": 0.0, "class_shares": profile["class_shares"]}
    if profile.get("edges"):
        edges = profile["edges"]
        return {**profile, "min": edges[0], "max": edges[-1], "null_share": 0.0}
    return None


def _sample_columns(sample: Mapping[str, Any]) -> dict[str, list[Any]]:
    records = sample.get("records") or []
    return {name: [record.get(name) for record in records] for name in sample.get("columns", [])}
