"""The insight keys: `[model] calibrate`, `[model_card]`, `[dataset] fairness_attributes`
(audit-only columns kept in the curated data, never features) and `[gate.fairness]`, with
the errors a user sees for a bad combination."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.common.config.base import ConfigError
from functions.common.config.dataset import FeatureType
from functions.common.config.loading import MlopsConfig, load_config
from functions.ml.schema import contract_from_config
from functions.train.logic import feature_schema
from tests.helpers.config import PORTFOLIO

CHURN = """
[dataset]
name = "churn"
target = "churned"
task = "classification"

[dataset.features]
age = "numeric"
plan = "categorical"
"""

PRICES = """
[dataset]
name = "prices"
target = "price"
task = "regression"
"""


def _load(tmp_path: Path, text: str) -> MlopsConfig:
    path = tmp_path / "mlops.toml"
    path.write_text(text)
    return load_config(path)


def test_insight_keys_and_an_audit_only_fairness_attribute(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        CHURN.replace(
            "[dataset.features]",
            'fairness_attributes = ["gender", "plan"]\n'
            'sensitive = { plan = "hash" }\n[dataset.features]',
        )
        + """
[model]
calibrate = "isotonic"

[model_card]
slice_features = ["plan", "gender"]
quantile_feature = "age"
min_slice_rows = 50

[gate.fairness]
max_demographic_parity_difference = 0.1
""",
    )
    assert config.model.calibrate == "isotonic"
    assert config.gate.fairness.bounds == {"demographic_parity_difference": 0.1}
    assert (config.model_card.quantile_bins, config.model_card.min_slice_rows) == (5, 50)
    # plan is a feature (and hashed); gender is audit-only: curated, not fitted on
    assert config.dataset.audit_columns == ["gender"]
    contract = contract_from_config(config.dataset)
    assert contract is not None
    assert contract.features == {
        "age": FeatureType.NUMERIC,
        "plan": FeatureType.CATEGORICAL,
        "gender": FeatureType.CATEGORICAL,
    }
    curated = {name: kind.value for name, kind in contract.column_types.items()}
    assert feature_schema(curated, "churned", config.dataset.audit_columns) == {
        "age": FeatureType.NUMERIC,
        "plan": FeatureType.CATEGORICAL,
    }


def test_a_model_of_a_portfolio_overrides_calibrate_and_its_card(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        PORTFOLIO.replace(
            'estimator = "random_forest"',
            'estimator = "random_forest"\ncalibrate = "sigmoid"\n'
            "model_card = { quantile_bins = 3 }",
        ),
    )
    churn = config.for_model("churn")
    assert (churn.model.calibrate, churn.model_card.quantile_bins) == ("sigmoid", 3)
    assert config.for_model("prices").model.calibrate is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (PRICES + '[model]\ncalibrate = "sigmoid"\n', "model.calibrate 'sigmoid' calibrates a"),
        (
            CHURN + '[model]\nestimator = "lightgbm"\ncalibrate = "sigmoid"\n',
            "not available for lightgbm",
        ),
        (CHURN + '[model]\ncalibrate = "platt"\n', "model.calibrate"),
        (CHURN + "[gate.fairness]\nmax_equalized_odds_difference = 0.2\n", "lists no column"),
        (CHURN + '[model_card]\nslice_features = ["nope"]\n', "not in dataset.features"),
        (CHURN + '[model_card]\nquantile_feature = "plan"\n', "is categorical"),
        (CHURN + "[model_card]\nmin_slice_rows = 0\n", "model_card.min_slice_rows"),
        (
            CHURN.replace(
                "[dataset.features]", 'fairness_attributes = ["churned"]\n[dataset.features]'
            ),
            "names the target",
        ),
        (CHURN + "[gate.fairness]\nmax_demographic_parity_difference = 1.5\n", "gate.fairness"),
    ],
)
def test_bad_insight_keys_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, text)
