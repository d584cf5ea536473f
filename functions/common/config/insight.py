"""The model card's insight (`[model_card]`: slices of the held-out rows) and the gate's fairness
criteria (`[gate.fairness]`)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator

from functions.common.config.base import COLUMN_PATTERN, Section


class ModelCardConfig(Section):
    """Which slices of the held-out rows the evaluate stage measures (`functions.ml.insight`)."""

    slice_features: list[str] | None = None
    """Features whose every value is a slice; default: every categorical feature."""
    quantile_feature: str | None = None
    """A numeric feature cut into `quantile_bins` bins of about equal rows, each a slice."""
    quantile_bins: Annotated[int, Field(ge=2, le=20)] = 5
    min_slice_rows: Annotated[int, Field(ge=1, le=100_000)] = 30
    """A slice (or fairness group) with fewer held-out rows is suppressed: counted, never
    listed, so that no small group of rows can be singled out."""

    @field_validator("slice_features")
    @classmethod
    def _slice_names(cls, value: list[str] | None) -> list[str] | None:
        bad = [name for name in value or [] if not re.match(COLUMN_PATTERN, name)]
        if bad:
            raise ValueError(f"model_card.slice_features must be lower_snake_case names: {bad}")
        return value


class FairnessGateConfig(Section):
    """Bounds on fairlearn's disparity metrics of the candidate, per fairness attribute; a
    larger difference on any attribute rejects the candidate."""

    max_demographic_parity_difference: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    """Largest allowed gap in the rate of positive predictions between two groups."""
    max_equalized_odds_difference: Annotated[float, Field(ge=0.0, le=1.0)] | None = None
    """Largest allowed gap in true or false positive rate between two groups."""

    @property
    def bounds(self) -> dict[str, float]:
        """Metric name -> its configured maximum (only the configured ones)."""
        values = {
            "demographic_parity_difference": self.max_demographic_parity_difference,
            "equalized_odds_difference": self.max_equalized_odds_difference,
        }
        return {name: bound for name, bound in values.items() if bound is not None}
