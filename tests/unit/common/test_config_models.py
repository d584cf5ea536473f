"""Many models in one config: `[datasets.<name>]` and `[models.<name>]`, each model's merged
view, and the errors a user sees for a bad portfolio."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.common.config.base import ConfigError
from functions.common.config.dataset import Task
from functions.common.config.loading import MlopsConfig, load_config
from tests.helpers import REPO
from tests.helpers.config import PORTFOLIO


def _load(tmp_path: Path, text: str) -> MlopsConfig:
    path = tmp_path / "mlops.toml"
    path.write_text(text)
    return load_config(path)


def test_each_model_sees_its_dataset_and_its_overrides_over_the_shared_sections(
    tmp_path: Path,
) -> None:
    config = _load(tmp_path, PORTFOLIO)
    assert config.model_names == ["churn", "churn-lgbm", "prices"]
    assert config.models_of("churn") == ["churn", "churn-lgbm"]
    assert config.default_model == "churn-lgbm"
    assert config.model_name == "churn-lgbm"
    assert config.dataset.name == "churn"  # the default model's dataset

    churn = config.for_model("churn")
    assert (churn.model_name, churn.estimator, churn.model.test_size) == (
        "churn",
        "random_forest",
        0.25,
    )
    assert churn.model.params == {"n_estimators": 50}
    assert churn.gate.metrics["roc_auc"].threshold == 0.7

    lgbm = config.for_model("churn-lgbm")
    assert lgbm.model.factory == "churn_features:build"
    roc = lgbm.gate.metrics["roc_auc"]
    assert (roc.threshold, roc.min_absolute_change) == (None, 0.01)  # its metrics, not merged
    assert lgbm.drift.schedule == "rate(1 day)"

    prices = config.for_model("prices")
    assert prices.dataset.task is Task.REGRESSION
    assert prices.drift.schedule == "rate(6 hours)"
    assert set(prices.gate.metrics) == {"rmse"}
    assert config.for_model(None) == lgbm


def test_a_deployed_function_gets_the_same_portfolio_back_from_json(tmp_path: Path) -> None:
    config = _load(tmp_path, PORTFOLIO)
    again = MlopsConfig.model_validate_json(config.to_json())
    assert again == config
    assert again.for_model("prices") == config.for_model("prices")
    assert again.for_model("prices").for_model("prices") == config.for_model("prices")


def test_the_single_model_config_is_one_model_named_after_its_dataset(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        '[dataset]\nname = "sales"\ntarget = "amount"\ntask = "regression"\n',
    )
    assert config.model_names == ["sales"]
    assert config.for_model("sales").dataset == config.dataset
    named = _load(
        tmp_path,
        '[dataset]\nname = "sales"\ntarget = "amount"\ntask = "regression"\n'
        '[model]\nname = "sales-v2"\n',
    )
    assert named.model_names == ["sales-v2"] and named.model_name == "sales-v2"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('dataset = "prices"\nestimator = "ridge"', 'dataset = "sales"'), "not configured"),
        (
            ("[models.churn]\n", '[models.Bad_Name]\ndataset = "churn"\n\n[models.churn]\n'),
            "model names must be",
        ),
        (('default_model = "churn-lgbm"', 'default_model = "nope"'), "not one of the models"),
        (('estimator = "ridge"', 'estimator = "logistic_regression"'), "models.prices"),
        (('schedule = "rate(6 hours)"', "memory_mb = 4096"), "belong(s) to the stack"),
        (
            ('factory = "churn_features:build"', 'factory = "x:y"\nestimator = "random_forest"'),
            "estimator or factory",
        ),
        (('factory = "churn_features:build"', 'factory = "no colon"'), "factory"),
    ],
)
def test_a_bad_portfolio_names_the_model_and_the_problem(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    old, new = change
    assert old in PORTFOLIO
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _load(tmp_path, PORTFOLIO.replace(old, new, 1))


def test_mixing_the_single_dataset_table_with_named_datasets_is_refused(tmp_path: Path) -> None:
    text = '[dataset]\nname = "other"\ntarget = "y"\ntask = "regression"\n' + PORTFOLIO
    with pytest.raises(ConfigError, match="either"):
        _load(tmp_path, text)


def test_an_unknown_model_names_the_configured_ones(tmp_path: Path) -> None:
    config = _load(tmp_path, PORTFOLIO)
    with pytest.raises(ConfigError, match="churn, churn-lgbm, prices"):
        config.for_model("fraud")


def test_a_model_naming_another_estimator_does_not_inherit_the_shared_hyperparameters(
    tmp_path: Path,
) -> None:
    text = (
        '[datasets.churn]\ntarget = "churned"\ntask = "classification"\n'
        "[model]\nparams = { C = 0.5, max_iter = 500 }\ntest_size = 0.3\n"
        '[models.churn]\ndataset = "churn"\n'
        '[models.churn-tuned]\ndataset = "churn"\nparams = { C = 2.0 }\n'
        '[models.churn-rf]\ndataset = "churn"\nestimator = "random_forest"\n'
    )
    config = _load(tmp_path, text)
    assert config.for_model("churn").model.params == {"C": 0.5, "max_iter": 500}
    assert config.for_model("churn-tuned").model.params == {"C": 2.0}  # its own, whole
    forest = config.for_model("churn-rf")
    assert (forest.estimator, forest.model.params, forest.model.test_size) == (
        "random_forest",
        {},
        0.3,
    )


def test_the_configuration_page_example_passes_config_check(tmp_path: Path) -> None:
    from functions.ml.config_check import check_training_config

    page = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    example = page.split("## Many models", 1)[1].split("```toml", 1)[1].split("```", 1)[0]
    config = _load(tmp_path, example)
    check_training_config(config, "docs/configuration.md")
    assert config.model_names == ["churn", "churn-lgbm", "prices"]
