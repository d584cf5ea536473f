"""Predict's pydantic-free view of the deployed config reads what `MlopsConfig.for_model`
gives, from the JSON the stack deploys, with the same defaults, and refuses what pydantic's
fields refuse for the keys it reads."""

from __future__ import annotations

import json
import tomllib
import typing
from typing import Any

import pytest
from annotated_types import Ge, Gt, Le, MaxLen

from functions.common.config.base import ConfigError
from functions.common.config.dataset import DatasetConfig
from functions.common.config.loading import CONFIG_JSON_ENV, MlopsConfig, parse_config
from functions.common.config.serving import DriftConfig, ServingConfig
from functions.common.config.serving_view import (
    FEEDBACK_LOOKBACK,
    HASH_SALT,
    PROJECT_NAME,
    SERVING_RULES,
    Rule,
    ServingSettings,
    ServingView,
    serving_view,
)
from functions.common.config.stages import ProjectConfig
from infra.cdk.config import SYNTH_ONLY_SECTIONS, SYNTH_ONLY_STAGE_KEYS
from tests.helpers import REPO
from tests.helpers.config import PORTFOLIO, with_challenger


def _deployed_json(config: MlopsConfig) -> str:
    """The config as the stack puts it in `MLOPS_CONFIG_JSON` (`DeployConfig.config_json`)."""
    exclude: dict[str, Any] = dict.fromkeys(SYNTH_ONLY_SECTIONS | {"dataset"}, True)
    exclude["stages"] = {"__all__": set(SYNTH_ONLY_STAGE_KEYS)}
    return config.model_dump_json(exclude=exclude, exclude_defaults=True)


def _configs() -> dict[str, MlopsConfig]:
    repo = (REPO / "mlops.toml").read_text()
    overrides = with_challenger(
        repo.replace(
            "[serving]\n", '[serving]\nmodel_cache_mb = 100\nunseen_categories = "reject"\n'
        ),
        drift="feedback_lookback_hours = 12",
    ).replace(
        "[models.churn-rf]\n",
        "[models.churn-rf]\nserving = { capture_sample_rate = 0.25, candidate_share = 0.1, "
        'alias_ttl_seconds = 5, max_batch_rows = 20, unseen_categories = "accept" }\n',
    )
    sensitive = repo.replace(
        "[dataset.features]", '[dataset.sensitive]\nregion = "hash"\n\n[dataset.features]'
    ).replace("[dataset]\n", '[dataset]\nhash_salt = "pepper"\n', 1)
    texts = {"repo": repo, "overrides": overrides, "portfolio": PORTFOLIO, "sensitive": sensitive}
    return {
        name: parse_config(tomllib.loads(text)).for_stage("dev") for name, text in texts.items()
    }


CONFIGS = _configs()


def _expected(config: MlopsConfig, model: str) -> dict[str, Any]:
    view = config.for_model(model)
    return {
        "serving": {name: getattr(view.serving, name) for name in SERVING_RULES},
        "sensitive": dict(view.dataset.sensitive),
        "hash_salt": view.dataset.hash_salt,
        "feedback_lookback_hours": view.drift.feedback_lookback_hours,
    }


def _actual(view: ServingView, model: str) -> dict[str, Any]:
    served = view.for_model(model)
    return {
        "serving": {name: getattr(served.serving, name) for name in SERVING_RULES},
        "sensitive": dict(served.sensitive),
        "hash_salt": served.hash_salt,
        "feedback_lookback_hours": served.feedback_lookback_hours,
    }


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("as_deployed", [True, False], ids=["deployed", "full"])
def test_every_model_s_view_is_what_for_model_gives(name: str, as_deployed: bool) -> None:
    config = CONFIGS[name]
    text = _deployed_json(config) if as_deployed else config.to_json()
    view = serving_view({CONFIG_JSON_ENV: text})
    assert view.project_name == config.project.name
    assert view.default_model == config.default_model
    assert list(view.model_names) == config.model_names
    assert view.feedback_lookback_hours == config.drift.feedback_lookback_hours
    assert view.serving.model_cache_bytes == config.serving.model_cache_bytes
    assert view.serving.max_body_bytes == config.serving.max_body_bytes
    for model in config.model_names:
        assert _actual(view, model) == _expected(config, model), model
    assert view.for_model(None) == view.for_model(config.default_model)


def test_the_overrides_are_read_from_the_model_s_own_tables() -> None:
    view = serving_view({CONFIG_JSON_ENV: _deployed_json(CONFIGS["overrides"])})
    challenger = view.for_model("churn-rf")
    assert (challenger.serving.capture_sample_rate, challenger.serving.candidate_share) == (
        0.25,
        0.1,
    )
    assert challenger.feedback_lookback_hours == 12
    assert challenger.serving.unseen_categories == "accept"
    assert view.for_model("churn").serving.unseen_categories == "reject"
    assert view.serving.model_cache_bytes == 100 * 1024 * 1024
    sensitive = serving_view({CONFIG_JSON_ENV: _deployed_json(CONFIGS["sensitive"])})
    assert (sensitive.for_model().sensitive, sensitive.for_model().hash_salt) == (
        {"region": "hash"},
        "pepper",
    )


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {"ge": None, "le": None, "gt": None}
    for item in metadata:
        if isinstance(item, Ge):
            found["ge"] = item.ge
        elif isinstance(item, Le):
            found["le"] = item.le
        elif isinstance(item, Gt):
            found["gt"] = item.gt
        elif isinstance(item, MaxLen):
            found["le"] = item.max_length
    return found


def _field_rule(model: Any, name: str) -> dict[str, Any]:
    info = model.model_fields[name]
    annotation = info.annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    optional = type(None) in typing.get_args(annotation)
    inner = args[0] if optional else annotation
    metadata = list(info.metadata)
    if typing.get_origin(inner) is typing.Annotated:  # `Annotated[int, Field(ge=1)] | None`
        inner, *extra = typing.get_args(inner)
        metadata += [item for field in extra for item in field.metadata]
    choices = typing.get_args(inner) if typing.get_origin(inner) is typing.Literal else ()
    return {
        "kind": str if choices else inner,
        "default": info.default,
        "choices": tuple(choices),
        "optional": optional,
        **_bounds(metadata),
    }


def _rule(rule: Rule) -> dict[str, Any]:
    return {
        "kind": rule.kind,
        "default": rule.default,
        "choices": rule.choices,
        "optional": rule.optional,
        "ge": rule.ge,
        "le": rule.le,
        "gt": rule.gt,
    }


@pytest.mark.parametrize(
    ("model", "name", "rule"),
    [(ServingConfig, name, rule) for name, rule in SERVING_RULES.items()]
    + [
        (DriftConfig, "feedback_lookback_hours", FEEDBACK_LOOKBACK),
        (DatasetConfig, "hash_salt", HASH_SALT),
        (ProjectConfig, "name", PROJECT_NAME),
    ],
)
def test_each_key_has_the_pydantic_field_s_default_and_rule(
    model: Any, name: str, rule: Rule
) -> None:
    expected = _field_rule(model, name)
    if name == "name":  # a pattern, not bounds: synth checks it; predict only prints it
        expected.update(ge=None, le=None)
    assert _rule(rule) == expected


def test_the_settings_defaults_are_the_rules_defaults() -> None:
    assert {name: getattr(ServingSettings(), name) for name in SERVING_RULES} == {
        name: rule.default for name, rule in SERVING_RULES.items()
    }


@pytest.mark.parametrize(
    ("serving", "message"),
    [
        ({"capture_sample_rate": 1.5}, "serving.capture_sample_rate 1.5: its value must be"),
        ({"capture_sample_rate": "all"}, "serving.capture_sample_rate must be float"),
        ({"alias_ttl_seconds": 0}, "serving.alias_ttl_seconds 0: its value must be >= 1"),
        ({"max_batch_rows": 2.5}, "serving.max_batch_rows must be int"),
        ({"unseen_categories": "drop"}, "serving.unseen_categories must be one of accept"),
        ({"candidate_share": 0.6}, "serving.candidate_share 0.6"),
        ({"max_body_bytes": True}, "serving.max_body_bytes must be int"),
        ({"model_cache_mb": 2048, "memory_mb": 1024}, "serving.model_cache_mb 2048 must be below"),
    ],
)
def test_a_value_pydantic_refuses_is_refused_naming_the_key(
    serving: dict[str, Any], message: str
) -> None:
    document = json.loads(CONFIGS["repo"].to_json())
    document["serving"].update(serving)
    with pytest.raises(ValueError):  # pydantic's ValidationError is a ValueError
        MlopsConfig.model_validate(document)
    with pytest.raises(ConfigError, match=f"MLOPS_CONFIG_JSON: {message}"):
        serving_view({CONFIG_JSON_ENV: json.dumps(document)})


def test_a_model_s_bad_override_or_sensitive_mode_is_refused_when_its_view_is_read() -> None:
    document = json.loads(_deployed_json(CONFIGS["overrides"]))
    document["models"]["churn-rf"]["serving"]["capture_sample_rate"] = -1
    view = serving_view({CONFIG_JSON_ENV: json.dumps(document)})
    with pytest.raises(ConfigError, match="models.churn-rf.serving.capture_sample_rate -1"):
        view.for_model("churn-rf")
    document = json.loads(_deployed_json(CONFIGS["sensitive"]))
    document["datasets"]["churn"]["sensitive"]["region"] = "mask"
    with pytest.raises(ConfigError, match="datasets.churn.sensitive.region must be one of"):
        serving_view({CONFIG_JSON_ENV: json.dumps(document)}).for_model()


def test_an_unknown_model_or_a_broken_document_is_a_config_error() -> None:
    view = serving_view({CONFIG_JSON_ENV: _deployed_json(CONFIGS["portfolio"])})
    with pytest.raises(ConfigError, match="model 'nope' is not configured"):
        view.for_model("nope")
    with pytest.raises(ConfigError, match="not valid JSON"):
        serving_view({CONFIG_JSON_ENV: "{"})
    with pytest.raises(ConfigError, match="no model is configured"):
        serving_view({CONFIG_JSON_ENV: "{}"})


def test_without_the_variable_the_config_file_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.common.config.loading import deployed_config, load_config

    monkeypatch.setenv("MLOPS_CONFIG", str(REPO / "mlops.toml"))
    deployed_config.cache_clear()
    try:
        view = serving_view({})
    finally:
        deployed_config.cache_clear()
    config = load_config(REPO / "mlops.toml")
    assert view.default_model == config.default_model
    assert _actual(view, config.default_model) == _expected(config, config.default_model)
