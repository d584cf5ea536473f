"""A small portfolio config for the pipeline's many-model tests: the repository's churn
dataset with three models (one promoted under an absolute gate, one its gate rejects, one
whose training fails), and a second dataset, `prices`, with a model of its own."""

from __future__ import annotations

from tests.helpers import REPO

CHURN_MODELS = ("churn", "churn-strict", "churn-broken")


def _churn_features() -> str:
    """The `[dataset.features]` table of the repository's mlops.toml, as the churn dataset's."""
    text = (REPO / "mlops.toml").read_text()
    table = text[text.index("[dataset.features]") :]
    table = table[: table.index("\n\n")]
    return table.replace("[dataset.features]", "[datasets.churn.features]")


def portfolio_config() -> str:
    """Two datasets, four models: `churn` (logistic regression, roc_auc >= 0.75: promoted on
    the sample data), `churn-strict` (roc_auc >= 0.999: rejected), `churn-broken` (C = -1,
    which scikit-learn refuses: its training fails) on `churn`; `prices` on `prices`."""
    return f"""[project]
name = "mlops"
default_model = "churn"

[stages.dev]
removal_policy = "destroy"
log_retention_days = 30

[datasets.churn]
target = "churned"
task = "classification"
mode = "append"
min_rows = 50

{_churn_features()}

[datasets.prices]
target = "price"
task = "regression"

[model]
test_size = 0.2
seed = 42

[models.churn]
dataset = "churn"
estimator = "logistic_regression"
params = {{ C = 1.0, max_iter = 1000 }}

[models.churn.gate.metrics.roc_auc]
threshold = 0.75

[models.churn-strict]
dataset = "churn"
estimator = "logistic_regression"
params = {{ C = 1.0, max_iter = 1000 }}

[models.churn-strict.gate.metrics.roc_auc]
threshold = 0.999

[models.churn-broken]
dataset = "churn"
estimator = "logistic_regression"
params = {{ C = -1.0 }}

[models.prices]
dataset = "prices"
estimator = "ridge"
"""
