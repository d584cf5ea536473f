"""`[serving] model_cache_mb`: the per-container model cache's cap, a key of the one function
(no model may override it), below the function's memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.common.config.base import ConfigError
from functions.common.config.loading import load_config
from functions.common.config.serving import ServingConfig
from tests.helpers.config import TWO_MODELS

MODELS = TWO_MODELS


def test_the_cap_defaults_to_a_64th_of_the_memory_and_is_set_in_megabytes() -> None:
    assert ServingConfig(memory_mb=2048).model_cache_bytes == 32 * 2**20
    assert ServingConfig(model_cache_mb=100).model_cache_bytes == 100 * 2**20


def test_a_cap_not_below_the_memory_is_refused() -> None:
    with pytest.raises(ValueError, match="model_cache_mb 1024 must be below serving.memory_mb"):
        ServingConfig(model_cache_mb=1024, memory_mb=1024)


def test_a_model_may_not_set_the_functions_cache(tmp_path: Path) -> None:
    path = tmp_path / "mlops.toml"
    path.write_text(MODELS + "\n[models.churn-b.serving]\nmodel_cache_mb = 64\n")
    with pytest.raises(ConfigError, match="serving.model_cache_mb belong"):
        load_config(path)
    path.write_text(MODELS + "\n[serving]\nmodel_cache_mb = 64\n")
    assert load_config(path).serving.model_cache_mb == 64
