"""`[serving] canary_*`: the rollout's sequential test from config, validated, overridable per
model, and read by the canary function as its test's parameters."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from functions.canary.logic import canary_of
from functions.common.config.base import ConfigError
from functions.common.config.loading import load_config
from functions.common.config.serving import ServingConfig
from functions.ml.sequential import ACCURACY, ERROR_RATE, LATENCY
from tests.helpers.config import TWO_MODELS

MODELS = TWO_MODELS


def test_the_defaults_make_the_documented_test() -> None:
    canary = canary_of(ServingConfig())
    error, latency = canary.design(ERROR_RATE), canary.design(LATENCY)
    assert (error.alpha, error.beta, error.effect) == (0.025, pytest.approx(0.2), 0.01)
    assert latency.effect == pytest.approx(math.log(1.2))
    assert error.upper == pytest.approx(math.log(0.8 / 0.025))
    assert error.lower == pytest.approx(math.log(0.2 / 0.975))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("canary_alpha", 0.0),
        ("canary_alpha", 0.3),
        ("canary_power", 1.0),
        ("canary_power", 0.4),
        ("canary_min_effect_error_rate", 0.0),
        ("canary_min_effect_latency", -0.1),
        ("canary_min_effect_accuracy", 0.0),
        ("canary_min_effect_accuracy", 0.6),
        ("canary_min_effect_abs_error", 0.0),
    ],
)
def test_a_value_outside_its_range_is_refused_naming_the_key(
    tmp_path: Path, key: str, value: float
) -> None:
    path = tmp_path / "mlops.toml"
    path.write_text(MODELS + f"\n[serving]\n{key} = {value}\n")
    with pytest.raises(ConfigError, match=key):
        load_config(path)


def test_a_model_sets_its_own_test(tmp_path: Path) -> None:
    path = tmp_path / "mlops.toml"
    path.write_text(MODELS + "\n[models.churn-b.serving]\ncanary_alpha = 0.01\n")
    config = load_config(path)
    assert config.for_model("churn-a").serving.canary_alpha == 0.05
    assert canary_of(config.for_model("churn-b").serving).design(ERROR_RATE).alpha == 0.005


def test_a_model_that_tests_accuracy_shares_alpha_three_ways(tmp_path: Path) -> None:
    path = tmp_path / "mlops.toml"
    path.write_text(
        MODELS + "\n[models.churn-b.serving]\ncanary_accuracy = true\n"
        "canary_min_effect_accuracy = 0.05\n"
    )
    config = load_config(path)
    assert canary_of(config.for_model("churn-a").serving).metrics == (ERROR_RATE, LATENCY)
    canary = canary_of(config.for_model("churn-b").serving)
    assert canary.metrics == (ERROR_RATE, LATENCY, ACCURACY)
    assert canary.design(ACCURACY).effect == 0.05
    assert canary.design(ERROR_RATE).alpha == pytest.approx(0.05 / 3)
