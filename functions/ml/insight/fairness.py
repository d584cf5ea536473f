"""Fairness of a binary classifier across the groups of each fairness attribute, in fairlearn's
definitions (`fairlearn.metrics`): the demographic parity difference (the largest gap in
selection rate, the share of rows predicted positive, between two groups) and the equalized
odds difference (the larger of the largest gaps in true positive rate and in false positive
rate), with each group's rates (`MetricFrame`).

Groups below the minimum size are suppressed: counted, never listed, and left out of the
differences too (their rates are noise, and a difference computed with them would reveal
them). An attribute with fewer than two listed groups has null (undefined) differences,
which fail a gate bound on them. A rate that is
undefined in a group (a true positive rate without positives) is null; fairlearn's
equalized odds difference then ignores that group's undefined rate."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from functions.ml.insight.groups import Privacy, category_labels
from functions.ml.insight.scores import Scores


def fairness_table(
    holdout: pd.DataFrame, scores: Scores, *, attributes: Sequence[str], privacy: Privacy
) -> dict[str, Any]:
    """`{"attributes": {attribute: {demographic_parity_difference, equalized_odds_difference,
    groups: [{group, rows, selection_rate, true_positive_rate, false_positive_rate}],
    suppressed}}}`, groups largest first."""
    missing = [name for name in attributes if name not in holdout.columns]
    if missing:
        raise ValueError(
            f"fairness attribute(s) {', '.join(missing)} not in the held-out rows (columns: "
            f"{', '.join(map(str, holdout.columns))}); a column added to "
            "dataset.fairness_attributes is kept from the next data version on"
        )
    return {
        "attributes": {
            name: _attribute(category_labels(holdout[name], name, privacy), scores, privacy)
            for name in attributes
        }
    }


def _attribute(labels: np.ndarray, scores: Scores, privacy: Privacy) -> dict[str, Any]:
    from fairlearn.metrics import (
        MetricFrame,
        count,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    counts = pd.Series(labels).value_counts()
    kept = [str(group) for group, rows in counts.items() if rows >= privacy.min_rows]
    mask = np.isin(labels, kept)
    y_true = scores.positive[mask].astype(int)
    y_pred = scores.predicted_positive[mask].astype(int)
    groups = labels[mask]
    # Undefined (null) unless two groups have at least the minimum rows: a bound on it then
    # fails the gate rather than passing on a difference nobody measured.
    result: dict[str, Any] = {
        "demographic_parity_difference": None,
        "equalized_odds_difference": None,
        "groups": [],
        "suppressed": len(counts) - len(kept),
    }
    if not kept:
        return result
    with warnings.catch_warnings():
        # a group without positives (or negatives) has an undefined rate: reported as null
        warnings.simplefilter("ignore")
        metric_frame = MetricFrame(
            metrics={
                "rows": count,
                "selection_rate": selection_rate,
                "true_positive_rate": true_positive_rate,
                "false_positive_rate": false_positive_rate,
            },
            y_true=y_true,
            y_pred=y_pred,
            sensitive_features=groups,
        )
        frame = metric_frame.by_group
        if len(kept) > 1:
            # fairlearn's own definitions, from the one MetricFrame (its
            # `demographic_parity_difference` and `equalized_odds_difference` each build
            # their own frames of the same rates): the between-groups difference of the
            # selection rate; the worse of those of the true and false positive rates
            gaps = metric_frame.difference(method="between_groups")
            result["demographic_parity_difference"] = _number(gaps["selection_rate"])
            result["equalized_odds_difference"] = _number(
                max(gaps["true_positive_rate"], gaps["false_positive_rate"])
            )
    result["groups"] = [
        {
            "group": group,
            "rows": int(frame.loc[group, "rows"]),
            "selection_rate": _number(frame.loc[group, "selection_rate"]),
            "true_positive_rate": _number(frame.loc[group, "true_positive_rate"]),
            "false_positive_rate": _number(frame.loc[group, "false_positive_rate"]),
        }
        for group in kept
    ]
    return result


def _number(value: Any) -> float | None:
    number = float(value)
    return number if np.isfinite(number) else None
