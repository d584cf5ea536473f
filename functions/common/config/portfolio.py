"""The portfolio: several datasets (`[datasets.<name>]`) and several models (`[models.<name>]`),
each model naming its dataset and overriding what it needs of the top-level sections.

A config without these tables is the single-model config: one dataset (`[dataset]`) and one
model named `[model] name` or after the dataset. Either way, the validated config carries the
normalised tables (`datasets`, `models`), and `MlopsConfig.for_model(name)` gives one model's
view: its dataset as `dataset`, and `model`, `gate`, `drift`, `serving`, `batch` and `train`
with its overrides merged over the top-level sections (nested tables key by key).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, model_validator

from functions.common.config.base import NAME_PATTERN, Section

MODEL_SECTIONS = ("gate", "drift", "serving", "batch", "train", "model_card")
"""Sections a model may override (`[models.<name>.<section>]`)."""

STACK_KEYS: dict[str, frozenset[str]] = {
    "serving": frozenset(
        {
            "auth",
            "throttle_rate_limit",
            "throttle_burst_limit",
            "memory_mb",
            "timeout_seconds",
            "snapstart",
            "provisioned_concurrency",
            "max_body_bytes",
            "default_model",
            "model_cache_mb",
        }
    ),
    "drift": frozenset({"memory_mb", "timeout_seconds"}),
    # The Distributed Map's tolerance is written in the one batch state machine.
    "batch": frozenset(
        {"max_concurrency", "memory_mb", "timeout_seconds", "tolerated_failure_percentage"}
    ),
    "train": frozenset(
        {
            "backend",
            "sagemaker",
            "memory_mb",
            "timeout_seconds",
            "ephemeral_storage_mb",
            "reserved_concurrency",
            "code",
        }
    ),
}
"""Keys of those sections that belong to a function or the stack, not to one model: every
model shares the one function, so a model may not override them."""

FACTORY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
"""`package.module:function`."""


class ModelEntry(Section):
    """One model of the portfolio (`[models.<name>]`): its dataset, the `[model]` keys it sets
    (estimator or factory, params, grid ...) and its overrides of `MODEL_SECTIONS`."""

    dataset: Annotated[str, Field(pattern=NAME_PATTERN)]
    """The dataset it trains on (a key of `[datasets]`, or `[dataset] name`)."""
    estimator: str | None = None
    factory: Annotated[str, Field(pattern=FACTORY_PATTERN)] | None = None
    params: dict[str, Any] | None = None
    grid: dict[str, list[Any]] | None = None
    cv_folds: int | None = None
    test_size: float | None = None
    seed: int | None = None
    reference_sample_rows: int | None = None
    parity_tolerance: float | None = None
    calibrate: str | None = None
    gate: dict[str, Any] | None = None
    drift: dict[str, Any] | None = None
    serving: dict[str, Any] | None = None
    batch: dict[str, Any] | None = None
    train: dict[str, Any] | None = None
    model_card: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _no_stack_keys(self) -> ModelEntry:
        for section, keys in STACK_KEYS.items():
            bad = sorted(set(getattr(self, section) or {}) & keys)
            if bad:
                raise ValueError(
                    f"{section}.{', '.join(bad)} belong(s) to the stack, not to one model "
                    f"(every model shares the one function): set them in [{section}]"
                )
        return self

    def model_settings(self) -> dict[str, Any]:
        """The `[model]` keys this model sets."""
        names = (
            "estimator",
            "factory",
            "params",
            "grid",
            "cv_folds",
            "test_size",
            "seed",
            "reference_sample_rows",
            "parity_tolerance",
            "calibrate",
        )
        return {name: value for name in names if (value := getattr(self, name)) is not None}

    def overrides(self) -> dict[str, dict[str, Any]]:
        return {
            name: value for name in MODEL_SECTIONS if (value := getattr(self, name)) is not None
        }


def normalise(raw: Any) -> Any:
    """Before validation: fill `datasets` and `models` from the single-model form, name each
    dataset after its key, and fill `dataset` with the default model's dataset (what code that
    serves one model reads). Refuses mixing `[dataset]` with `[datasets.<name>]`."""
    if not isinstance(raw, dict):
        return raw
    raw = dict(raw)
    single = raw.get("dataset")
    datasets = _datasets(raw.get("datasets"), single)
    if datasets is None:
        return raw  # the missing [dataset] is reported by the field's own validation
    raw["datasets"] = datasets
    models = raw["models"] = _models(raw.get("models"), raw.get("model"), datasets)
    project = raw.get("project") if isinstance(raw.get("project"), dict) else {}
    default = project.get("default_model")
    entry = models.get(default) if default in models else next(iter(models.values()))
    if isinstance(entry, dict) and isinstance(entry.get("dataset"), str):
        raw["dataset"] = datasets.get(entry["dataset"], single)
    return raw


def _datasets(datasets: Any, single: Any) -> dict[str, Any] | None:
    """`[datasets.<name>]` named after their keys, or the one `[dataset]`."""
    if datasets is None:
        return {str(single.get("name")): single} if isinstance(single, dict) else None
    if not isinstance(datasets, dict) or not datasets:
        raise ValueError("datasets must be a table of [datasets.<name>] tables")
    named = {}
    for key, table in datasets.items():
        if not isinstance(table, dict):
            raise ValueError(f"datasets.{key} must be a table")
        if table.get("name", key) != key:
            raise ValueError(f"datasets.{key}.name is {table['name']!r}: leave it out")
        named[key] = {**table, "name": key}
    if single is None:
        return named
    name = single.get("name") if isinstance(single, dict) else None
    if list(named) == [name]:
        return {str(name): single}  # one dataset: `dataset` is the one to keep
    if named.get(str(name)) != single:
        raise ValueError("use either [dataset] (one dataset) or [datasets.<name>], not both")
    return named


def _models(models: Any, model: Any, datasets: dict[str, Any]) -> dict[str, Any]:
    """`[models.<name>]`, or the single model (`[model] name`, or the dataset's name)."""
    model = model if isinstance(model, dict) else {}
    if models is None:
        if len(datasets) != 1:
            raise ValueError(
                "several datasets need [models.<name>] tables naming which dataset each trains on"
            )
        (dataset_name,) = datasets
        return {str(model.get("name") or dataset_name): {"dataset": dataset_name}}
    if not isinstance(models, dict) or not models:
        raise ValueError("models must be a table of [models.<name>] tables")
    if model.get("name") is not None and model["name"] not in models:
        raise ValueError(
            "model.name names one model; with [models.<name>] tables, the table key is the name"
        )
    return models


def check_names(
    models: dict[str, ModelEntry], datasets: dict[str, Any], default: str | None
) -> None:
    """Every model name is a safe name (an S3 prefix, a registry partition, a URL segment) and
    names a configured dataset; the default model is one of them."""
    bad = [name for name in models if not re.match(NAME_PATTERN, name)]
    if bad:
        raise ValueError(
            f"model names must be 2-32 lowercase letters, digits or '-', starting with a "
            f"letter (they become S3 prefixes, registry keys and URL segments): {bad}"
        )
    unknown = {name: m.dataset for name, m in models.items() if m.dataset not in datasets}
    if unknown:
        raise ValueError(
            f"models name datasets that are not configured: {unknown} "
            f"(configured: {', '.join(sorted(datasets))})"
        )
    if default is not None and default not in models:
        raise ValueError(
            f"project.default_model {default!r} is not one of the models: {', '.join(models)}"
        )
