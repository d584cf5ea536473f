"""The deployed config as the predict function reads it, without pydantic: the keys predict
uses (`[serving]`, each model's dataset `sensitive` and `hash_salt`, `[drift]
feedback_lookback_hours`, the project's name and models), each model's view merged as
`MlopsConfig.for_model` merges it.

The config in `MLOPS_CONFIG_JSON` was validated with the pydantic models
(`functions.common.config.loading`) when the CDK app synthesized the stack (every stage and
every model's view), and is written without the keys at their defaults
(`infra.cdk.config.DeployConfig.config_json`). Importing pydantic and building those models
would be a fifth of predict's cold start, so this module reads the JSON with the standard
library, into named tuples (cheaper to define at import than frozen dataclasses): each key
predict uses gets the same default as its pydantic field, and is checked by
the same rule (type, bounds, allowed values) that predict relies on, so a config edited by hand
in the function's environment fails init with a `ConfigError` naming the key, as pydantic's
validation would. Keys predict does not read are left to synth's validation. Without
`MLOPS_CONFIG_JSON` (tests, local runs), the config file is read and validated with pydantic
(`deployed_config`) and then read here the same way.

`tests/unit/common/test_serving_view.py` checks the defaults and rules against the pydantic
fields, and every view against `MlopsConfig.for_model`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from functions.common.config.errors import ConfigError

CONFIG_JSON_ENV = "MLOPS_CONFIG_JSON"
"""The variable holding the deployed config as JSON (set by the stack on every function)."""

_MAX_BODY_BYTES = 6 * 1024 * 1024 // 2  # `serving.LAMBDA_SYNC_PAYLOAD_BYTES // 2`


class Rule(NamedTuple):
    """A key's type and the bounds or values pydantic's field allows (None: unbounded)."""

    kind: type
    default: Any
    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    choices: tuple[str, ...] = ()
    optional: bool = False


SERVING_RULES: dict[str, Rule] = {
    "capture_sample_rate": Rule(float, 1.0, ge=0.0, le=1.0),
    "alias_ttl_seconds": Rule(int, 60, ge=1, le=3600),
    "max_batch_rows": Rule(int, 1_000, ge=1, le=10_000),
    "max_body_bytes": Rule(int, 1_048_576, ge=1_024, le=_MAX_BODY_BYTES),
    "unseen_categories": Rule(str, "accept", choices=("accept", "reject")),
    "memory_mb": Rule(int, 1024, ge=128, le=10240),
    "candidate_share": Rule(float, 0.0, ge=0.0, le=0.5),
    "model_cache_mb": Rule(int, None, ge=1, le=10240, optional=True),
}
"""The `[serving]` keys predict reads (`ServingConfig`'s fields of the same names)."""

FEEDBACK_LOOKBACK = Rule(int, 24 * 7, ge=0, le=24 * 93)
"""`[drift] feedback_lookback_hours`."""
HASH_SALT = Rule(str, "", le=128)
"""`[dataset] hash_salt` (`le`: its longest length)."""
SENSITIVE_MODES = ("hash", "drop")
PROJECT_NAME = Rule(str, "mlops")


def _checked(rule: Rule, value: Any, key: str) -> Any:
    """`value` as pydantic's field would accept it (an int for a float field becomes a float);
    a ConfigError naming `key` otherwise."""
    if value is None and rule.optional:
        return None
    if rule.kind is float and type(value) is int:
        value = float(value)
    if type(value) is not rule.kind:
        raise ConfigError(f"${CONFIG_JSON_ENV}: {key} must be {rule.kind.__name__}, not {value!r}")
    if rule.choices and value not in rule.choices:
        raise ConfigError(
            f"${CONFIG_JSON_ENV}: {key} must be one of {', '.join(rule.choices)}, not {value!r}"
        )
    size: Any = len(value) if isinstance(value, str) else value
    bounds = {">=": rule.ge, ">": rule.gt, "<=": rule.le}
    if (
        (rule.ge is not None and size < rule.ge)
        or (rule.gt is not None and size <= rule.gt)
        or (rule.le is not None and size > rule.le)
    ):
        allowed = ", ".join(f"{op} {bound}" for op, bound in bounds.items() if bound is not None)
        what = "length" if isinstance(value, str) else "value"
        raise ConfigError(f"${CONFIG_JSON_ENV}: {key} {value!r}: its {what} must be {allowed}")
    return value


def _read(rule: Rule, table: Mapping[str, Any], name: str, key: str) -> Any:
    return _checked(rule, table[name], key) if name in table else rule.default


def _table(document: Mapping[str, Any], name: str, key: str) -> Mapping[str, Any]:
    table = document.get(name)
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise ConfigError(f"${CONFIG_JSON_ENV}: {key} must be a table, not {table!r}")
    return table


class ServingSettings(NamedTuple):
    """`[serving]` as predict reads it (a model's view: its overrides merged)."""

    capture_sample_rate: float = 1.0
    alias_ttl_seconds: int = 60
    max_batch_rows: int = 1_000
    max_body_bytes: int = 1_048_576
    unseen_categories: str = "accept"
    memory_mb: int = 1024
    candidate_share: float = 0.0
    model_cache_mb: int | None = None

    @classmethod
    def from_table(cls, table: Mapping[str, Any], key: str = "serving") -> ServingSettings:
        """`table` read with the rules of `SERVING_RULES`; errors name `key.<name>`."""
        values = {
            name: _read(rule, table, name, f"{key}.{name}") for name, rule in SERVING_RULES.items()
        }
        settings = cls(**values)
        problem = cache_problem(settings.model_cache_mb, settings.memory_mb)
        if problem is not None:
            raise ConfigError(f"${CONFIG_JSON_ENV}: {problem}")
        return settings

    @property
    def model_cache_bytes(self) -> int:
        return model_cache_bytes(self.model_cache_mb, self.memory_mb)


def cache_problem(model_cache_mb: int | None, memory_mb: int) -> str | None:
    """Why `serving.model_cache_mb` does not fit `memory_mb` (`ServingConfig`'s rule too), or
    None when it fits."""
    if model_cache_mb is not None and model_cache_mb >= memory_mb:
        return (
            f"serving.model_cache_mb {model_cache_mb} must be below serving.memory_mb "
            f"{memory_mb} (the function needs memory besides its models)"
        )
    return None


def model_cache_bytes(model_cache_mb: int | None, memory_mb: int) -> int:
    """The serving cache's cap (`ServingConfig.model_cache_bytes` too): `model_cache_mb`, else
    1/64 of `memory_mb`."""
    if model_cache_mb is not None:
        return model_cache_mb * 1024 * 1024
    return memory_mb * 1024 * 1024 // 64


class ModelServing(NamedTuple):
    """One model's view, as predict serves it (`MlopsConfig.for_model(name)`'s keys)."""

    name: str
    serving: ServingSettings
    sensitive: Mapping[str, Literal["hash", "drop"]]
    """Its dataset's `sensitive` map (column -> `hash` | `drop`)."""
    hash_salt: str
    feedback_lookback_hours: int


class ServingView(NamedTuple):
    """The deployed config's keys that predict reads."""

    project_name: str
    default_model: str
    model_names: tuple[str, ...]
    serving: ServingSettings
    """The top-level `[serving]` (the stack's keys: body limit, model cache)."""
    feedback_lookback_hours: int
    model_tables: Mapping[str, Mapping[str, Any]]
    """`[models.<name>]` as deployed."""
    dataset_tables: Mapping[str, Mapping[str, Any]]
    """`[datasets.<name>]` as deployed."""
    document: Mapping[str, Any]
    """The whole deployed config."""

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> ServingView:
        """The view of a config as `MlopsConfig.model_dump(mode="json")` writes it (with or
        without the keys at their defaults)."""
        if not isinstance(document, dict):
            raise ConfigError(f"${CONFIG_JSON_ENV}: not a JSON object")
        models = _table(document, "models", "models")
        datasets = _table(document, "datasets", "datasets")
        if not models:
            raise ConfigError(f"${CONFIG_JSON_ENV}: models: no model is configured")
        project = _table(document, "project", "project")
        default = project.get("default_model")
        if default is not None and default not in models:
            raise ConfigError(
                f"${CONFIG_JSON_ENV}: project.default_model {default!r} is not one of the "
                f"models: {', '.join(models)}"
            )
        for name, entry in models.items():
            dataset = entry.get("dataset") if isinstance(entry, dict) else None
            if dataset not in datasets:
                raise ConfigError(
                    f"${CONFIG_JSON_ENV}: models.{name}.dataset {dataset!r} is not a "
                    f"configured dataset"
                )
        drift = _table(document, "drift", "drift")
        return cls(
            project_name=_read(PROJECT_NAME, project, "name", "project.name"),
            default_model=default if default is not None else next(iter(models)),
            model_names=tuple(models),
            serving=ServingSettings.from_table(_table(document, "serving", "serving")),
            feedback_lookback_hours=_read(
                FEEDBACK_LOOKBACK, drift, "feedback_lookback_hours", "drift.feedback_lookback_hours"
            ),
            model_tables=models,
            dataset_tables=datasets,
            document=document,
        )

    def for_model(self, name: str | None = None) -> ModelServing:
        """Model `name`'s view (the default model's when None): its `[models.<name>.serving]`
        and `.drift` merged key by key over the top-level sections, its dataset's keys.
        Raises ConfigError naming the configured models when `name` is not one."""
        name = name or self.default_model
        entry = self.model_tables.get(name)
        if entry is None:
            raise ConfigError(
                f"model {name!r} is not configured (models: {', '.join(self.model_tables)})"
            )
        prefix = f"models.{name}"
        serving = {
            **_table(self.document, "serving", "serving"),
            **_table(entry, "serving", f"{prefix}.serving"),
        }
        drift = {
            **_table(self.document, "drift", "drift"),
            **_table(entry, "drift", f"{prefix}.drift"),
        }
        dataset_key = f"datasets.{entry['dataset']}"
        dataset = _table(self.dataset_tables, entry["dataset"], dataset_key)
        sensitive = _table(dataset, "sensitive", f"{dataset_key}.sensitive")
        for column, mode in sensitive.items():
            if mode not in SENSITIVE_MODES:
                raise ConfigError(
                    f"${CONFIG_JSON_ENV}: {dataset_key}.sensitive.{column} must be one of "
                    f"{', '.join(SENSITIVE_MODES)}, not {mode!r}"
                )
        return ModelServing(
            name=name,
            serving=ServingSettings.from_table(serving, f"{prefix}.serving"),
            sensitive=dict(sensitive),  # each mode checked above
            hash_salt=_read(HASH_SALT, dataset, "hash_salt", f"{dataset_key}.hash_salt"),
            feedback_lookback_hours=_read(
                FEEDBACK_LOOKBACK,
                drift,
                "feedback_lookback_hours",
                f"{prefix}.drift.feedback_lookback_hours",
            ),
        )


def serving_view(environ: Mapping[str, str] = os.environ) -> ServingView:
    """The deployed config's view (from `MLOPS_CONFIG_JSON`), or the config file's (validated
    with pydantic, `deployed_config`) when the variable is not set. Not cached: the caller
    (predict's `service()`) reads it once per container."""
    text = environ.get(CONFIG_JSON_ENV)
    if text is None:
        from functions.common.config.loading import deployed_config

        text = deployed_config().to_json()
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"${CONFIG_JSON_ENV}: not valid JSON: {exc}") from None
    return ServingView.from_document(document)
