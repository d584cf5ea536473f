"""Data and prediction drift: a live window of feature values against the model's reference
profile (`functions.ml.reference_profile`), and live performance from feedback labels. Pure and
cheap: numpy at import, scipy only for the small-window tests, never pandas (the monitoring
function must stay small and fast).

A window is streamed through `DriftAccumulator` in chunks of any size with bounded memory
(sufficient statistics per column; raw values only while the window is small); `compare` is one
chunk. Per feature:

- numeric: PSI over the profile's quantile bins, Wasserstein distance normed by the reference
  std (binned, or exact against the profile's row sample for small windows); small windows are
  tested against that sample with KS and Brown-Forsythe (spread), Bonferroni-combined (binned
  chi-square when the sample lacks the column);
- categorical: Jensen-Shannon distance (base 2) over category shares, chi-square test; values
  never seen in training are counted (`unseen`) and pooled into one extra category;
- every feature: absolute change of the null share (binomial test) and the share of present
  values outside the training [min, max] (numeric).

Verdicts. Windows of at least `large_window` rows use effect sizes only (p-values shrink with
the sample size and flag every trivial shift). Smaller windows (down to `min_rows`) need both a
Benjamini-Hochberg-significant test (alpha across all features) and the same effect-size floor.
Below `min_rows` the report is `insufficient_data`.

Each feature's effects are of two kinds: distribution drift (PSI, Wasserstein, JS distance) and
data-quality breaks (null share change, share outside the training range, share of unseen
categories). The dataset drifts when the share of features with distribution drift at `minor`
or worse reaches `share`; or a critical feature's distribution drift is `major` (critical:
`critical_features` when configured, else the features carrying the top half of the served
model's permutation importance, stored in the reference profile; an old profile without
importances has none); or a data-quality break reaches `data_quality_fail`, whatever the share.
`DriftReport.decision` states the rule as applied. Prediction drift is reported beside the
features and is not part of that verdict.

docs/drift.md has the measured detection table (which shift is flagged at which window size),
the false-positive rates, the reasons for each threshold and the streaming memory bound.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from functions.ml.onnx_input import MISSING_CATEGORY, category

if TYPE_CHECKING:
    from functions.common.config import DriftConfig

Severity = Literal["none", "minor", "major"]
EffectKind = Literal["distribution", "quality"]
QualityFail = Literal["minor", "major", "never"]
Verdict = Literal["drift", "no_drift", "insufficient_data"]
Sensitive = Literal["hash", "drop"]
_RANK = {"none": 0, "minor": 1, "major": 2}
PREDICTION = "prediction"
UNSEEN = "<unseen>"
OTHER = "<other>"
MAX_UNSEEN_CATEGORIES = 10_000
"""Distinct unseen categories counted one by one per column; the rest share one bucket."""
HISTOGRAM_LABELS = 20
CRITICAL_IMPORTANCE_SHARE = 0.5
"""Without `critical_features`, the features carrying this share of the importance are critical."""
Column = Sequence[Any] | np.ndarray  # values of one column; None / NaN = missing


@dataclass(frozen=True)
class DriftThresholds:
    """(minor, major) effect-size thresholds and the window rules. Defaults and why:

    - `min_rows` 100: below it even a 20-point change of a share is within noise.
    - `large_window` 1000: from here the effect sizes' own noise (PSI ~ bins/n ~ 0.01, JS
      distance ~ 0.03) sits well below the thresholds, so p-values are no longer needed;
      Evidently switches at the same size.
    - `psi` 0.1 / 0.25: the credit-scoring convention (< 0.1 stable, > 0.25 shifted); a +0.5
      sd mean shift of a normal feature gives about 0.25.
    - `wasserstein` 0.1 / 0.25 (in reference std): Evidently's default 0.1; a quarter of a
      std moves most decision boundaries.
    - `js` 0.1 / 0.2 (distance, base 2): Evidently's default 0.1; 0.2 is roughly a 20-point
      move of the largest category.
    - `null_share` 0.05 / 0.2 (absolute): a 5-point jump of missing values is usually a broken
      upstream field; 20 points means the model is mostly imputing it.
    - `out_of_range` 0.05 / 0.2: a training range holds all training values, so by chance at
      most ~2/rows of a window falls outside; 5% outside is extrapolation, 20% a new regime.
    - `alpha` 0.05: Benjamini-Hochberg false discovery rate across the tests of one window.
    - `share` 0.3: Evidently's dataset-drift default is 0.5; 0.3 flags a third of the features.
    - `data_quality_fail` major: a data-quality break (null share, out of range, unseen
      categories; the share of unseen categories is judged by the `out_of_range` limits) this
      severe makes the dataset drift whatever the share; `never` only reports the breaks.
    - `psi_epsilon` 1e-4: the floor of a bin share in PSI (an empty bin adds ~0.9, not inf).
    """

    min_rows: int = 100
    large_window: int = 1_000
    alpha: float = 0.05
    psi: tuple[float, float] = (0.1, 0.25)
    wasserstein: tuple[float, float] = (0.1, 0.25)
    js: tuple[float, float] = (0.1, 0.2)
    null_share: tuple[float, float] = (0.05, 0.2)
    out_of_range: tuple[float, float] = (0.05, 0.2)
    share: float = 0.3
    critical_features: frozenset[str] = frozenset()
    data_quality_fail: QualityFail = "major"
    psi_epsilon: float = 1e-4

    @classmethod
    def from_config(cls, cfg: DriftConfig) -> DriftThresholds:
        """The thresholds of the `[drift]` config section (`[dataset] sensitive` is passed to
        `compare` / `DriftAccumulator` separately)."""
        return cls(
            min_rows=cfg.min_rows,
            large_window=cfg.large_window,
            alpha=cfg.alpha,
            psi=cfg.psi,
            wasserstein=cfg.wasserstein,
            js=cfg.js,
            null_share=cfg.null_share,
            out_of_range=cfg.out_of_range,
            share=cfg.share,
            critical_features=frozenset(cfg.critical_features),
            data_quality_fail=cfg.data_quality_fail,
        )


@dataclass(frozen=True)
class FeatureDrift:
    """One column's statistics and verdict; `p_values` are the small-window tests' p-values
    before the Benjamini-Hochberg correction (empty for large windows). `score` is the headline
    statistic for dashboards (numeric: `wasserstein_normed`, categorical: `js_distance`; None
    when not computed). `histogram` is for the HTML report:

    - numeric: `{"edges", "reference", "current", "below", "above"}`, counts per profile bin;
      window values below / above the training range are counted in the outer bins too;
    - categorical: `{"labels", "reference", "current"}`, counts of at most 20 labels: the
      categories with the largest share in either distribution, then `<other>` (the remaining
      categories) and `<unseen>` (categories the profile does not list).

    `severity` is the worst of `distribution` (PSI, Wasserstein, JS distance) and `quality`
    (null share, out of range, unseen categories); `quality_breaks` says what broke."""

    name: str
    kind: str
    severity: Severity = "none"
    distribution: Severity = "none"
    quality: Severity = "none"
    quality_breaks: tuple[str, ...] = ()
    statistics: dict[str, float | int | None] = field(default_factory=dict)
    p_values: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    score: float | None = None
    histogram: dict[str, Any] | None = None


@dataclass(frozen=True)
class DriftReport:
    """`drifted` are the features with distribution drift (`drifted_share` of the judged
    ones), `data_quality` those with a data-quality break; `critical` the critical features
    and `critical_source` where they come from (`critical_features`, `importance` or `none`);
    `decision` the verdict's rule as applied, in one sentence."""

    verdict: Verdict
    rows: int
    method: Literal["effect_size", "p_value", "none"]
    drifted_share: float
    drifted: tuple[str, ...]
    features: dict[str, FeatureDrift]
    prediction: FeatureDrift | None
    skipped: tuple[str, ...]
    notes: tuple[str, ...]
    thresholds: DriftThresholds
    data_quality: tuple[str, ...] = ()
    critical: tuple[str, ...] = ()
    critical_source: Literal["critical_features", "importance", "none"] = "none"
    decision: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (`json.dumps(..., allow_nan=False)` works): non-finite numbers -> None."""
        data = asdict(self)
        data["thresholds"]["critical_features"] = sorted(self.thresholds.critical_features)
        return _json_safe(data)


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
        self._windows: dict[str, _NumericWindow | _CategoricalWindow | None] = {}
        for name, profile in reference["features"].items():
            if name in self._skipped:
                continue
            if profile.get("type") != "numeric":
                self._windows[name] = _CategoricalWindow(profile)
            elif sensitive.get(name) == "hash":
                # capture holds hashes; a numeric profile (trained before the column was
                # marked sensitive) has nothing to compare them with
                self._windows[name] = None
            else:
                self._samples[name] = _finite_sample(samples.get(name))
                keep = len(self._samples[name]) >= 2
                self._windows[name] = _NumericWindow(profile.get("edges") or [], keep)
        self._prediction_profile = _prediction_profile(reference.get("predictions"))
        self._prediction: _NumericWindow | _CategoricalWindow | None = None
        if self._prediction_profile is not None and "class_shares" not in self._prediction_profile:
            self._prediction = _NumericWindow(self._prediction_profile["edges"], False)
        elif self._prediction_profile is not None:
            self._prediction = _CategoricalWindow(self._prediction_profile)
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
            if isinstance(window, _NumericWindow)
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
                if isinstance(window, _NumericWindow):
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
        features: dict[str, _Measured] = {}
        for name, window in self._windows.items():
            profile = self._reference["features"][name]
            if window is None:
                note = "hash needs a categorical profile"
                features[name] = _Measured(name, "skipped", {}, [], notes=[note])
            elif isinstance(window, _NumericWindow):
                sample = self._samples[name]
                features[name] = _numeric(name, profile, window, sample, thresholds, large)
            else:
                features[name] = _categorical(name, profile, window, thresholds, large)
        if not large:
            _gate_by_tests(features.values(), thresholds.alpha)
        judged = {name: measured.result() for name, measured in features.items()}
        prediction = self._prediction_drift(large)
        importance = self._reference.get("importance")
        return _report(judged, prediction, rows, large, self._skipped, thresholds, importance)

    def _prediction_drift(self, large: bool) -> FeatureDrift | None:
        profile = self._prediction_profile
        if not self._predictions_seen or not self._reference.get("predictions"):
            return None
        thresholds = self._thresholds
        if isinstance(self._prediction, _CategoricalWindow) and profile is not None:
            measured = _categorical(PREDICTION, profile, self._prediction, thresholds, large)
        elif isinstance(self._prediction, _NumericWindow) and profile is not None:
            measured = _numeric(
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


LOWER_IS_BETTER = frozenset({"rmse", "mae"})


@dataclass(frozen=True)
class LivePerformance:
    """The serving model's metrics on the labelled rows of a window, against its evaluation
    metrics (`reference`); `changes` are live minus reference, `dropped` the metrics worse by
    more than the tolerance."""

    rows: int
    verdict: Literal["ok", "drop", "insufficient_data"]
    metrics: dict[str, float]
    reference: dict[str, float]
    changes: dict[str, float]
    dropped: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, as `DriftReport.to_dict`."""
        return _json_safe(asdict(self))


def live_performance(
    task: str,
    labels: Column,
    predictions: Column,
    *,
    reference_metrics: Mapping[str, float],
    tolerance: float,
    min_rows: int,
) -> LivePerformance:
    """Live metrics from feedback `labels` and the captured `predictions` of the same rows.
    Classification: accuracy and f1_macro (over every class seen in either), comparing classes
    by `class_label` (1, 1.0, "1", True are one class); regression: rmse and mae. Rows missing
    a label or a prediction are left out. Only the metrics in `reference_metrics` are compared:
    a drop is live < reference - tolerance (classification) or live > reference * (1 +
    tolerance) (rmse, mae). Fewer than `min_rows` labelled rows: `insufficient_data`."""
    if len(labels) != len(predictions):
        raise ValueError(f"{len(labels)} labels but {len(predictions)} predictions")
    task = str(getattr(task, "value", task))
    if task == "classification":
        rows, metrics = _classification_metrics(labels, predictions)
    elif task == "regression":
        rows, metrics = _regression_metrics(labels, predictions)
    else:
        raise ValueError(f"unknown task {task!r}")
    reference = {name: float(value) for name, value in reference_metrics.items()}
    notes = [f"{len(labels) - rows} row(s) without a label or a prediction left out"]
    notes = notes if rows < len(labels) else []
    if rows < min_rows:
        notes.append(f"{rows} labelled rows < min_rows {min_rows}")
        return LivePerformance(rows, "insufficient_data", metrics, reference, {}, (), tuple(notes))
    compared = [name for name in metrics if name in reference]
    notes += [f"{name} is not measured live" for name in reference if name not in metrics]
    changes = {name: metrics[name] - reference[name] for name in compared}
    dropped = tuple(
        name
        for name in compared
        if (
            metrics[name] > reference[name] * (1 + tolerance)
            if name in LOWER_IS_BETTER
            else metrics[name] < reference[name] - tolerance
        )
    )
    verdict: Literal["ok", "drop"] = "drop" if dropped else "ok"
    return LivePerformance(rows, verdict, metrics, reference, changes, dropped, tuple(notes))


def class_label(value: Any) -> str | None:
    """A class as feedback and predictions are compared: integral numbers, their text and
    booleans (also "true" / "false") as the integer's text, anything else as `str()`; None,
    NaN and "" are missing (None)."""
    if value is None or isinstance(value, float | np.floating) and math.isnan(value):
        return None
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, int | np.integer):
        return str(int(value))
    text = str(value).strip()
    if not text:
        return None
    if text.lower() in ("true", "false"):
        return "1" if text.lower() == "true" else "0"
    number = _float_or_none(text)
    if number is not None and math.isfinite(number) and number.is_integer():
        return str(int(number))
    return text


def _classification_metrics(labels: Column, predictions: Column) -> tuple[int, dict[str, float]]:
    pairs = [
        (label, predicted)
        for label, predicted in zip(
            map(class_label, _as_list(labels)), map(class_label, _as_list(predictions)), strict=True
        )
        if label is not None and predicted is not None
    ]
    if not pairs:
        return 0, {}
    truth = np.array([label for label, _ in pairs], dtype=object)
    guess = np.array([predicted for _, predicted in pairs], dtype=object)
    f1 = []
    for label in set(truth.tolist()) | set(guess.tolist()):
        actual, predicted = truth == label, guess == label
        true_positives = int(np.sum(actual & predicted))
        f1.append(2 * true_positives / (int(actual.sum()) + int(predicted.sum())))
    return len(pairs), {"accuracy": float(np.mean(truth == guess)), "f1_macro": float(np.mean(f1))}


def _regression_metrics(labels: Column, predictions: Column) -> tuple[int, dict[str, float]]:
    truth, _ = _floats(labels)
    guess, _ = _floats(predictions)
    kept = np.isfinite(truth) & np.isfinite(guess)
    if not kept.any():
        return 0, {}
    with np.errstate(over="ignore", invalid="ignore"):  # huge values: inf, reported as None
        error = guess[kept] - truth[kept]
        rmse = float(np.sqrt(np.mean(error**2)))
        mae = float(np.mean(np.abs(error)))
    return int(kept.sum()), {"rmse": rmse, "mae": mae}


def _as_list(values: Column) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


class _NumericWindow:
    """Sufficient statistics of one numeric column of the window against the profile edges."""

    def __init__(self, edges: Sequence[float], keep_values: bool) -> None:
        self.edges = np.asarray(edges, dtype=np.float64)
        self.counts = np.zeros(max(len(self.edges) - 1, 0), dtype=np.int64)
        self.rows = self.present = self.invalid = self.below = self.above = 0
        self.excess_below = self.excess_above = self.total = 0.0
        self.values: list[np.ndarray] | None = [] if keep_values else None

    @property
    def retained(self) -> int:
        return sum(len(chunk) for chunk in self.values) if self.values is not None else 0

    def add(self, values: Column) -> None:
        array, invalid = _floats(values)
        present = array[~np.isnan(array)]
        self.rows += len(array)
        self.invalid += invalid
        self.present += len(present)
        with np.errstate(over="ignore", invalid="ignore"):
            self.total += float(present.sum())
        if self.values is not None:
            self.values.append(present)
        if not len(self.edges):
            return
        low, high = self.edges[0], self.edges[-1]
        below, above = present[present < low], present[present > high]
        self.below += len(below)
        self.above += len(above)
        self.excess_below += _finite_sum(low - below)
        self.excess_above += _finite_sum(above - high)
        self.counts += _bin_counts(self.edges, present)

    def add_missing(self, rows: int) -> None:
        self.rows += rows

    def forget_values(self) -> None:
        self.values = None

    def histogram(self, reference_counts: Sequence[int]) -> dict[str, Any]:
        return {
            "edges": self.edges.tolist(),
            "reference": [int(count) for count in reference_counts],
            "current": self.counts.tolist(),
            "below": self.below,
            "above": self.above,
        }


_COUNTING_EDGES = 32


def _bin_counts(edges: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Values per profile bin (`edges[i] <= v < edges[i + 1]`, outer bins open-ended), as
    `bincount(searchsorted(edges[1:-1], v, side="right"))`. For the usual few bins (up to
    `_COUNTING_EDGES` inner edges), one vectorised comparison per inner edge instead of
    searchsorted."""
    inner = edges[1:-1]
    if len(inner) > _COUNTING_EDGES:
        bins = np.searchsorted(inner, present, side="right")
        return np.bincount(bins, minlength=len(edges) - 1)
    at_least = np.array([np.count_nonzero(present >= edge) for edge in inner], dtype=np.int64)
    return -np.diff(np.concatenate([[len(present)], at_least, [0]]))


class _CategoricalWindow:
    """Counts per category of one column (`""` = missing); distinct categories the profile does
    not list are counted one by one up to `MAX_UNSEEN_CATEGORIES`, then in `pooled`."""

    def __init__(self, profile: Mapping[str, Any]) -> None:
        self.known = _reference_counts(profile).keys() | {MISSING_CATEGORY}
        self.counts: Counter[str] = Counter()
        self.unseen_kept = 0
        self.pooled = 0

    def add(self, values: Column) -> None:
        raw = Counter(values.tolist() if isinstance(values, np.ndarray) else values)
        for value, count in raw.items():
            label = category(value)
            if label in self.counts or label in self.known:
                self.counts[label] += count
            elif self.unseen_kept < MAX_UNSEEN_CATEGORIES:
                self.unseen_kept += 1
                self.counts[label] += count
            else:
                self.pooled += count

    def add_missing(self, rows: int) -> None:
        self.counts[MISSING_CATEGORY] += rows


@dataclass
class _Measured:
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
            return max(severities, key=_RANK.__getitem__, default="none")

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


def _numeric(
    name: str,
    profile: Mapping[str, Any],
    window: _NumericWindow,
    sample: np.ndarray,
    thresholds: DriftThresholds,
    large: bool,
) -> _Measured:
    present = window.present
    measured = _null_change(name, "numeric", profile, window.rows, present, thresholds, large)
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
    measured.effects.append((None, _severity(outside, thresholds.out_of_range), "quality", what))
    if len(edges) == 2 and edges[0] == edges[-1]:
        measured.notes.append("constant in the reference: judged by the share of other values")
        return measured
    counts = window.counts
    psi = _psi(reference_counts, counts, thresholds.psi_epsilon)
    std = float(profile.get("std") or 0.0)
    excess = (window.excess_above + window.excess_below) / present
    distance = _binned_wasserstein(edges, reference_counts, counts, window.below, window.above)
    distance += excess
    if not large and window.values is not None:
        distance, p_value = _exact_tests(sample, np.concatenate(window.values))
        measured.p_values["distribution"] = p_value
    elif not large:
        measured.p_values["distribution"] = _chi_square(reference_counts, counts)
    normed = distance / std if std > 0 else math.inf
    mean = window.total / present
    stats.update(psi=psi, wasserstein_normed=normed, mean=mean if math.isfinite(mean) else None)
    measured.score = normed
    measured.effects.append(("distribution", _severity(psi, thresholds.psi), "distribution", ""))
    severity = _severity(normed, thresholds.wasserstein)
    measured.effects.append(("distribution", severity, "distribution", ""))
    return measured


def _categorical(
    name: str,
    profile: Mapping[str, Any],
    window: _CategoricalWindow,
    thresholds: DriftThresholds,
    large: bool,
) -> _Measured:
    counts = Counter(window.counts)
    nulls = counts.pop(MISSING_CATEGORY, 0)
    rows = sum(counts.values()) + window.pooled + nulls
    measured = _null_change(name, "categorical", profile, rows, rows - nulls, thresholds, large)
    reference = _reference_counts(profile)
    if profile.get("other"):
        reference[UNSEEN] = float(profile["other"])
    unseen_labels = [label for label in counts if label not in reference]
    unseen = sum(counts[label] for label in unseen_labels) + window.pooled
    distinct = len(unseen_labels) + bool(window.pooled)
    measured.statistics.update(unseen=unseen, unseen_categories=distinct)
    if rows > nulls:
        unseen_share = unseen / (rows - nulls)
        measured.statistics["unseen_share"] = unseen_share
        what = (
            f"{unseen_share:.1%} of values in {distinct} categor{'y' if distinct == 1 else 'ies'}"
        )
        what += " unseen in training"
        # a profile of more than 1000 categories counts the rest as `other`: expected unseen
        present_reference = float(profile.get("rows") or 0) - float(profile.get("nulls") or 0)
        other = float(profile.get("other") or 0) / present_reference if present_reference else 0
        severity = _severity(unseen_share - other, thresholds.out_of_range)
        measured.effects.append((None, severity, "quality", what))
    if window.pooled:
        measured.notes.append(
            f"more than {MAX_UNSEEN_CATEGORIES} distinct unseen categories: the rest are counted"
            " together (unseen_categories is a lower bound)"
        )
    if unseen and profile.get("other"):
        measured.notes.append("unseen includes categories beyond the profile's 1000 most frequent")
    if not reference:
        measured.notes.append("no values in the reference: only the null share is compared")
        return measured
    observed_counts = {label: float(counts[label]) for label in reference if label != UNSEEN}
    if unseen or UNSEEN in reference:
        observed_counts[UNSEEN] = float(unseen)
    measured.histogram = _category_histogram(reference, observed_counts)
    if rows == nulls:
        measured.notes.append("no values in the window: only the null share is compared")
        return measured
    labels = list(observed_counts)
    expected = np.array([reference.get(label, 0.0) for label in labels])
    observed = np.array([observed_counts[label] for label in labels])
    js = _js_distance(expected, observed)
    measured.statistics["js_distance"] = js
    measured.score = js
    measured.effects.append(("distribution", _severity(js, thresholds.js), "distribution", ""))
    if len(reference) == 1:
        measured.notes.append("a single category in the reference")
    if not large:
        measured.p_values["distribution"] = _chi_square(expected, observed)
    return measured


def _reference_counts(profile: Mapping[str, Any]) -> dict[str, float]:
    return {
        str(label): float(count)
        for label, count in (profile.get("counts") or {}).items()
        if label != MISSING_CATEGORY and count > 0
    }


def _category_histogram(
    reference: Mapping[str, float], current: Mapping[str, float]
) -> dict[str, Any]:
    """At most `HISTOGRAM_LABELS` bars: the largest categories by their larger share, then
    `<other>` and `<unseen>` (each only when not empty)."""
    reference_total = max(sum(reference.values()), 1.0)
    current_total = max(sum(current.values()), 1.0)
    named = [label for label in reference if label != UNSEEN]

    def largest_share(label: str) -> tuple[float, str]:
        share = max(reference[label] / reference_total, current.get(label, 0.0) / current_total)
        return -share, label

    named.sort(key=largest_share)
    pooled = [UNSEEN] if UNSEEN in current or UNSEEN in reference else []
    room = HISTOGRAM_LABELS - len(pooled)
    shown, rest = (named, []) if len(named) <= room else (named[: room - 1], named[room - 1 :])
    labels = [*shown, *([OTHER] if rest else []), *pooled]

    def bars(counts: Mapping[str, float]) -> list[int]:
        by_label = {label: counts.get(label, 0.0) for label in [*shown, *pooled]}
        by_label[OTHER] = sum(counts.get(label, 0.0) for label in rest)
        return [int(by_label[label]) for label in labels]

    return {"labels": labels, "reference": bars(reference), "current": bars(current)}


def _null_change(
    name: str,
    kind: str,
    profile: Mapping[str, Any],
    rows: int,
    present: int,
    thresholds: DriftThresholds,
    large: bool,
) -> _Measured:
    reference_share = float(profile.get("null_share") or 0.0)
    share = (rows - present) / rows if rows else 0.0
    change = abs(share - reference_share)
    measured = _Measured(
        name,
        kind,
        {"rows": rows, "null_share": share, "null_share_change": change},
        [
            (
                "nulls",
                _severity(change, thresholds.null_share),
                "quality",
                f"null share {share:.1%} (training {reference_share:.1%})",
            )
        ],
    )
    if not large:
        measured.p_values["nulls"] = _binomial(rows - present, rows, reference_share)
    if share == 1.0 and reference_share == 1.0:
        measured.notes.append("all values missing in both the reference and the window")
    return measured


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


def _gate_by_tests(features: Iterable[_Measured], alpha: float) -> None:
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


def _report(
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
        name for name in quality if fail != "never" and _RANK[judged[name].quality] >= _RANK[fail]
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


def _severity(value: float | None, limits: tuple[float, float]) -> Severity:
    if value is None or math.isnan(value):
        return "none"
    if value >= limits[1]:
        return "major"
    return "minor" if value >= limits[0] else "none"


def _psi(reference: np.ndarray, current: np.ndarray, epsilon: float) -> float:
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


def _chi_square(reference: np.ndarray, current: np.ndarray) -> float:
    """Two-sample chi-square p-value (reference counts vs window counts)."""
    from scipy import stats

    table = np.vstack([reference, current])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def _binomial(nulls: int, rows: int, share: float) -> float:
    from scipy import stats

    if rows == 0:
        return 1.0
    if share <= 0.0 or share >= 1.0:
        return 1.0 if nulls == round(share * rows) else 0.0
    return float(stats.binomtest(nulls, rows, share).pvalue)


def _js_distance(p: np.ndarray, q: np.ndarray) -> float:
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        right = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(math.sqrt(max((left + right) / 2, 0.0)))


def _floats(values: Column) -> tuple[np.ndarray, int]:
    """float64 (NaN for missing) and the number of non-numeric values (made missing)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiub":
        return values.astype(np.float64, copy=False).reshape(-1), 0
    try:
        return np.asarray(values, dtype=np.float64).reshape(-1), 0
    except (TypeError, ValueError):
        pass
    converted = [_float_or_none(value) for value in values]
    invalid = sum(
        value is None and raw is not None for value, raw in zip(converted, values, strict=True)
    )
    return np.array([math.nan if v is None else v for v in converted], dtype=np.float64), invalid


def _float_or_none(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _sample_columns(sample: Mapping[str, Any]) -> dict[str, list[Any]]:
    records = sample.get("records") or []
    return {name: [record.get(name) for record in records] for name in sample.get("columns", [])}


def _finite_sample(sample: list[Any] | None) -> np.ndarray:
    if not sample:
        return np.array([])
    array, _ = _floats(sample)
    return array[np.isfinite(array)]


def _finite_sum(values: np.ndarray) -> float:
    with np.errstate(over="ignore", invalid="ignore"):
        return float(values[np.isfinite(values)].sum()) if len(values) else 0.0


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
