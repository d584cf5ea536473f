"""The whole config (`MlopsConfig`: every section, checked against each other, and each stage's
merged config) and where it is read from: the TOML file, or the JSON a deployed function gets.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from functions.common.config.alerts import AlertsConfig
from functions.common.config.base import ConfigError, Section
from functions.common.config.dataset import DataLakeConfig, DatasetConfig, IngestConfig, Task
from functions.common.config.insight import ModelCardConfig
from functions.common.config.lineage import LineageConfig
from functions.common.config.portfolio import ModelEntry, check_names, normalise
from functions.common.config.serving import BatchConfig, DriftConfig, ServingConfig
from functions.common.config.serving_view import CONFIG_JSON_ENV
from functions.common.config.stages import ProjectConfig, StageConfig
from functions.common.config.training import ESTIMATORS, GateConfig, ModelConfig, TrainConfig

CONFIG_ENV = "MLOPS_CONFIG"
DEFAULT_CONFIG_FILE = "mlops.toml"


class MlopsConfig(Section):
    project: ProjectConfig = ProjectConfig()
    stages: dict[str, StageConfig] = Field(default_factory=lambda: {"dev": StageConfig()})
    dataset: DatasetConfig
    """The default model's dataset (in a model's view, the model's own)."""
    datasets: dict[str, DatasetConfig] = Field(default_factory=dict)
    """Every dataset by name (`[datasets.<name>]`, or the one `[dataset]`)."""
    models: dict[str, ModelEntry] = Field(default_factory=dict)
    """Every model by name (`[models.<name>]`, or the one model of a single-model config)."""
    model: ModelConfig = ModelConfig()
    gate: GateConfig = GateConfig()
    drift: DriftConfig = DriftConfig()
    serving: ServingConfig = ServingConfig()
    ingest: IngestConfig = IngestConfig()
    train: TrainConfig = TrainConfig()
    data_lake: DataLakeConfig = DataLakeConfig()
    batch: BatchConfig = BatchConfig()
    alerts: AlertsConfig = AlertsConfig()
    lineage: LineageConfig = LineageConfig()
    model_card: ModelCardConfig = ModelCardConfig()
    _views: dict[str, MlopsConfig] = PrivateAttr(default_factory=dict)
    """`for_model`'s views, kept: a function resolves a model's view once per container."""

    def __eq__(self, other: object) -> bool:
        # the views cache is not part of the value
        return isinstance(other, MlopsConfig) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]

    @model_validator(mode="before")
    @classmethod
    def _portfolio(cls, raw: Any) -> Any:
        return normalise(raw)

    @model_validator(mode="after")
    def _models_name_datasets(self) -> MlopsConfig:
        check_names(self.models, self.datasets, self.project.default_model)
        return self

    @model_validator(mode="after")
    def _estimator_fits_task(self) -> MlopsConfig:
        if len(self.models) > 1:
            return self  # each model's view is checked (parse_config)
        allowed = ESTIMATORS[self.dataset.task]
        if self.model.estimator is not None and self.model.estimator not in allowed:
            raise ValueError(
                f"model.estimator {self.model.estimator!r} is not available for "
                f"{self.dataset.task.value}; choose one of: {', '.join(allowed)}"
            )
        return self

    @model_validator(mode="after")
    def _insight_fits_task(self) -> MlopsConfig:
        if len(self.models) > 1:
            return self  # each model's view is checked (parse_config)
        if self.model.calibrate is not None and self.dataset.task is Task.REGRESSION:
            raise ValueError(
                f"model.calibrate {self.model.calibrate!r} calibrates a classifier's "
                "probabilities; this dataset's task is regression: remove it"
            )
        if self.model.calibrate is not None and self.model.estimator in ("lightgbm", "xgboost"):
            raise ValueError(
                f"model.calibrate is not available for {self.model.estimator}: its calibrated "
                "ONNX export does not reproduce its probabilities"
            )
        if self.gate.fairness.bounds and not self.dataset.fairness_attributes:
            raise ValueError(
                "gate.fairness bounds a disparity across dataset.fairness_attributes, which "
                "lists no column"
            )
        if self.gate.fairness.bounds and self.dataset.task is Task.REGRESSION:
            raise ValueError(
                "gate.fairness bounds classification disparities (demographic parity, "
                "equalized odds); this dataset's task is regression"
            )
        card = self.model_card
        features = self.dataset.features
        named = [*(card.slice_features or []), *filter(None, [card.quantile_feature])]
        columns = {**(features or {}), **dict.fromkeys(self.dataset.audit_columns, "categorical")}
        unknown = [name for name in named if features is not None and name not in columns]
        if unknown:
            raise ValueError(
                f"model_card names column(s) not in dataset.features or "
                f"dataset.fairness_attributes: {unknown}"
            )
        if (
            features is not None
            and card.quantile_feature is not None
            and columns[card.quantile_feature] != "numeric"
        ):
            raise ValueError(
                f"model_card.quantile_feature {card.quantile_feature!r} is categorical; "
                "quantile bins need a numeric feature"
            )
        return self

    @model_validator(mode="after")
    def _drift_columns_are_features(self) -> MlopsConfig:
        critical = self.drift.critical_features
        features = self.dataset.features
        unknown = [name for name in critical if features is not None and name not in features]
        if unknown:
            raise ValueError(
                f"drift.critical_features names column(s) not in dataset.features: {unknown}"
            )
        dropped = [name for name in critical if self.dataset.sensitive.get(name) == "drop"]
        if dropped:
            raise ValueError(
                f"drift.critical_features names column(s) dataset.sensitive drops: {dropped}"
            )
        return self

    @model_validator(mode="after")
    def _capture_kept_for_the_drift_check(self) -> MlopsConfig:
        hours = self.drift.max_window_hours + self.drift.feedback_lookback_hours
        if self.data_lake.capture_retention_days * 24 < hours:
            raise ValueError(
                f"data_lake.capture_retention_days {self.data_lake.capture_retention_days} "
                f"expires capture the drift check still reads (drift.max_window_hours + "
                f"feedback_lookback_hours = {hours} hours)"
            )
        return self

    @property
    def model_name(self) -> str:
        """The model this config is about: a view's own model, else the default model."""
        return self.model.name or self.default_model

    @property
    def default_model(self) -> str:
        """`[project] default_model`, else the first (or only) model."""
        return self.project.default_model or next(iter(self.models))

    @property
    def model_names(self) -> list[str]:
        return list(self.models)

    def models_of(self, dataset: str) -> list[str]:
        """The models trained on `dataset`, in config order."""
        return [name for name, entry in self.models.items() if entry.dataset == dataset]

    def for_model(self, name: str | None = None) -> MlopsConfig:
        """One model's view (the default model's when `name` is None): its dataset as
        `dataset`, its `[model]` keys and its overrides of gate, drift, serving, batch and train
        merged over the top-level sections (nested tables key by key, except that a model's
        `gate.metrics`, `params` and `grid` replace the top-level ones, and a model that names
        its `estimator` or `factory` does not inherit `[model]`'s `params` and `grid`: they
        belong to another estimator), as a single-model config.
        Raises ConfigError naming the configured models when `name` is not one."""
        name = name or self.default_model
        cached = self._views.get(name)
        if cached is not None:
            return cached
        entry = self.models.get(name)
        if entry is None:
            raise ConfigError(
                f"model {name!r} is not configured (models: {', '.join(self.models)})"
            )
        base = self.model_dump(mode="json", exclude_unset=False)
        settings = entry.model_settings()
        model = dict(base["model"])
        if "estimator" in settings:
            model["factory"] = None
        if "factory" in settings:
            model["estimator"] = None
        if {"estimator", "factory"} & set(settings):  # another estimator: not [model]'s params
            model["params"], model["grid"] = {}, None
        base["model"] = {**model, **settings, "name": name}
        for section, values in entry.overrides().items():
            base[section] = _merged(base.get(section) or {}, values)
        if entry.gate is not None and "metrics" in entry.gate:  # a model names all its metrics
            base["gate"]["metrics"] = entry.gate["metrics"]
        if entry.dataset != self.dataset.name:  # else keep `dataset` (a copy may update it)
            base["dataset"] = base["datasets"][entry.dataset]
        base["datasets"] = {entry.dataset: base["dataset"]}
        base["models"] = {name: entry.model_dump(mode="json", exclude_none=True)}
        base["project"] = {**base["project"], "default_model": name}
        try:
            view = MlopsConfig.model_validate(base)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, f"[models.{name}]", prefix=f"models.{name}")) from None
        self._views[name] = view
        view._views[name] = view
        return view

    @property
    def estimator(self) -> str:
        return self.model.estimator or ESTIMATORS[self.dataset.task][0]

    @field_validator("stages")
    @classmethod
    def _stage_names(cls, value: dict[str, StageConfig]) -> dict[str, StageConfig]:
        bad = [name for name in value if not re.match(r"^[a-z][a-z0-9]{0,15}$", name)]
        if bad:
            raise ValueError(f"stage names must be short lowercase words: {bad}")
        return value

    def stage(self, name: str) -> StageConfig:
        try:
            return self.stages[name]
        except KeyError:
            known = ", ".join(sorted(self.stages)) or "none"
            raise ConfigError(
                f"stage {name!r} is not configured under [stages] (known: {known})"
            ) from None

    def for_stage(self, name: str) -> MlopsConfig:
        """The config a stage deploys with: its `[stages.<name>.<section>]` overrides merged
        over the base sections (nested tables merge key by key), validated again; errors name
        `stages.<name>.<section>.<key>`. The result keeps every stage's own settings but no
        overrides, so it is what the stage's functions receive."""
        stage = self.stage(name)
        base = self.model_dump(mode="json", exclude_unset=False)
        for section, values in stage.overrides().items():
            base[section] = _merged(base.get(section) or {}, values)
        base["stages"] = {
            key: {
                "removal_policy": s.removal_policy,
                "log_retention_days": s.log_retention_days,
                "registry_table": s.registry_table,
            }
            for key, s in self.stages.items()
        }
        try:
            return MlopsConfig.model_validate(base)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, f"[stages.{name}]", prefix=f"stages.{name}")) from None

    def stack_name(self, stage: str) -> str:
        return f"{self.project.name}-{stage}"

    def to_json(self) -> str:
        return self.model_dump_json(exclude_defaults=False)


def _describe(error: ValidationError, source: str, prefix: str = "") -> str:
    lines = [f"{source}: invalid config"]
    for item in error.errors():
        key = (
            ".".join(
                [prefix, *(str(part) for part in item["loc"])]
                if prefix
                else [str(part) for part in item["loc"]]
            )
            or "(top level)"
        )
        lines.append(f"  {key}: {item['msg']}")
    return "\n".join(lines)


def _merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The config file in use: `path`, else `$MLOPS_CONFIG`, else `./mlops.toml`."""
    return Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_FILE)


def load_config(path: str | os.PathLike[str] | None = None) -> MlopsConfig:
    """Read and validate the TOML config; raise ConfigError naming file, key and problem."""
    import tomllib  # here: deployed functions read JSON, their cold start skips the parser

    file = config_path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"{file}: config file not found (set {CONFIG_ENV} or create it)"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    return parse_config(raw, source=str(file))


def parse_config(raw: dict[str, Any], source: str = "config") -> MlopsConfig:
    """Validate the config and every stage's merged config (a bad override fails here too)."""
    try:
        config = MlopsConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None
    for name in config.stages:
        try:
            for model in config.for_stage(name).models:
                config.for_stage(name).for_model(model)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace(f"[stages.{name}]", source, 1)) from None
    for model in config.models:
        try:
            config.for_model(model)
        except ConfigError as exc:
            raise ConfigError(str(exc).replace(f"[models.{model}]", source, 1)) from None
    return config


def deployed_model_config(model: str | None) -> MlopsConfig:
    """One model's view of the deployed config (`MlopsConfig.for_model`; None: the default
    model): what a stage working on one model reads. Raises ConfigError naming the
    configured models when `model` is not one."""
    return deployed_config().for_model(model)


@lru_cache(maxsize=1)
def deployed_config() -> MlopsConfig:
    """The config inside a deployed function (from `MLOPS_CONFIG_JSON`), or the file locally."""
    text = os.environ.get(CONFIG_JSON_ENV)
    if text is None:
        return load_config()
    try:
        return MlopsConfig.model_validate_json(text)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, f"${CONFIG_JSON_ENV}")) from None
