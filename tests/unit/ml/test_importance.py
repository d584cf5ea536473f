"""Permutation importances as the train stage stores them: on synthetic rows where one feature
alone decides the label, that feature ranks first, and its lead is larger than the spread of
the shuffles (the standard deviation the card draws as whiskers)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from functions.common.config.dataset import FeatureType, Task
from functions.common.config.loading import parse_config
from functions.train.logic import Stopwatch, fit_candidate

SCHEMA = {
    "signal": FeatureType.NUMERIC,
    "noise": FeatureType.NUMERIC,
    "plan": FeatureType.CATEGORICAL,
}


def _rows(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    signal = rng.normal(0, 1, rows)
    return pd.DataFrame(
        {
            "signal": signal,
            "noise": rng.normal(0, 1, rows),
            "plan": rng.choice(["basic", "plus", "premium"], size=rows),
            "churned": np.where(signal + rng.normal(0, 0.5, rows) > 0, "yes", "no"),
        }
    )


def test_the_informative_feature_ranks_first_beyond_the_spread_of_the_shuffles() -> None:
    config = parse_config(
        {
            "dataset": {
                "name": "synthetic",
                "target": "churned",
                "task": "classification",
                "features": {name: kind.value for name, kind in SCHEMA.items()},
            },
            "model": {"estimator": "logistic_regression", "seed": 7},
        }
    )
    candidate = fit_candidate(
        _rows(2_000, seed=11),
        target="churned",
        task=Task.CLASSIFICATION,
        schema=SCHEMA,
        config=config,
        stopwatch=Stopwatch(),
    )
    importance = candidate.reference_profile["importance"]
    means, spreads = importance["features"], importance["std"]

    assert (importance["metric"], importance["repeats"]) == ("roc_auc", 3)
    assert set(means) == set(spreads) == set(SCHEMA)
    assert max(means, key=means.__getitem__) == "signal"
    assert all(spread >= 0 for spread in spreads.values())
    assert spreads["signal"] > 0, "three different shuffles lose different amounts"
    runner_up = max(means[name] + 3 * spreads[name] for name in ("noise", "plan"))
    assert means["signal"] - 3 * spreads["signal"] > runner_up
    assert importance["critical"] == ["signal"]
