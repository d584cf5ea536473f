"""The drift report: the thresholds it is judged by, a feature's result, the report of one
window (how it is shown: `functions.ml.drift.presentation`)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from functions.common.config.serving import DriftConfig

Severity = Literal["none", "minor", "major"]
EffectKind = Literal["distribution", "quality"]
QualityFail = Literal["minor", "major", "never"]
Verdict = Literal["drift", "no_drift", "insufficient_data"]
Sensitive = Literal["hash", "drop"]


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
        return json_safe(data)


def severity_of(value: float | None, limits: tuple[float, float]) -> Severity:
    if value is None or math.isnan(value):
        return "none"
    if value >= limits[1]:
        return "major"
    return "minor" if value >= limits[0] else "none"


def json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
