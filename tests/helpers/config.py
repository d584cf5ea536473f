"""The repository's mlops.toml as the end-to-end tests deploy it: the user's config with the
gate, the drift table or serving keys a test needs instead; and a portfolio config (two
datasets, three models)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from tests.helpers import REPO

PORTFOLIO = """
[project]
default_model = "churn-lgbm"

[datasets.churn]
target = "churned"
task = "classification"

[datasets.prices]
target = "price"
task = "regression"

[model]
test_size = 0.25

[gate.metrics.roc_auc]
threshold = 0.7

[drift]
schedule = "rate(1 day)"

[models.churn]
dataset = "churn"
estimator = "random_forest"
params = { n_estimators = 50 }

[models.churn-lgbm]
dataset = "churn"
factory = "churn_features:build"

[models.churn-lgbm.gate.metrics.roc_auc]
min_absolute_change = 0.01

[models.prices]
dataset = "prices"
estimator = "ridge"

[models.prices.gate]
metrics = { rmse = { threshold = 10.0 } }

[models.prices.drift]
schedule = "rate(6 hours)"
"""
"""Two datasets and three models: `churn` and `churn-lgbm` (a factory) share dataset churn,
`prices` trains on dataset prices; `churn-lgbm` is the default model."""


# Absolute thresholds only (no improvement over the champion required): every good run is
# promoted, so a second good drop is promoted too.
ABSOLUTE_GATE = """[gate.metrics.roc_auc]
threshold = 0.75

[gate.metrics.f1_macro]
threshold = 0.6

"""


def repo_config(
    *,
    gate: str | None = None,
    drift: str | None = None,
    serving: Mapping[str, int | float | str] | None = None,
) -> str:
    """The text of the repository's mlops.toml with its [gate.*] tables replaced by `gate`, its
    [drift] table by `drift` (None: as they are), and the keys of `serving` set first in its
    [serving] table."""
    text = (REPO / "mlops.toml").read_text()
    if gate is not None:
        head, rest = text.split("[gate.metrics.roc_auc]")
        text = head + gate + rest[rest.index("[drift]") :]
    if drift is not None:
        head, rest = text.split("[drift]")
        text = head + drift + "\n" + rest[rest.index("[serving]") :]
    assert "[serving]\n" in text
    keys = "".join(f"{key} = {json.dumps(value)}\n" for key, value in (serving or {}).items())
    return text.replace("[serving]\n", "[serving]\n" + keys)


CHALLENGER = "churn-rf"
"""The second model of `with_challenger`'s config."""


def with_challenger(text: str | None = None, *, drift: str = "") -> str:
    """The repository's mlops.toml (or `text`) with two models on its dataset: `churn` (the
    default model, `[model]` as it is) and the challenger `churn-rf` (C = 0.5), with `drift`
    as its `[models.churn-rf.drift]` table's keys when given."""
    tables = f'[models.churn]\ndataset = "churn"\n\n[models.{CHALLENGER}]\ndataset = "churn"\n'
    tables += "params = { C = 0.5 }\n\n"
    if drift:
        tables += f"[models.{CHALLENGER}.drift]\n{drift.strip()}\n\n"
    text = text if text is not None else (REPO / "mlops.toml").read_text()
    assert "[serving]\n" in text
    return text.replace("[serving]\n", tables + "[serving]\n", 1)


TWO_MODELS = """
[datasets.churn]
target = "churned"
task = "classification"

[models.churn-a]
dataset = "churn"

[models.churn-b]
dataset = "churn"
"""
"""A config of two models on one dataset (`churn-a`, `churn-b`), every section at its defaults."""
