"""Config for the CDK app: the validated `mlops.toml` plus synth-time context (stage, commit)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from functions.common.config.loading import CONFIG_JSON_ENV, MlopsConfig, config_path, load_config
from functions.common.config.stages import StageConfig

if TYPE_CHECKING:
    from aws_cdk import RemovalPolicy

REPO_ROOT = Path(__file__).resolve().parents[2]
LAMBDA_ENV_LIMIT_BYTES = 4096
SYNTH_ONLY_SECTIONS = frozenset({"alerts"})
"""Config sections only synth reads (the alarms' runbook links): left out of the functions'
config, which Lambda's 4 KB of environment variables must hold."""
SYNTH_ONLY_STAGE_KEYS = frozenset({"registry_table"})
"""Keys of `[stages.<stage>]` only synth reads (the functions get the table's name as
`REGISTRY_TABLE`), left out of the functions' config likewise."""


@dataclass(frozen=True)
class DeployConfig:
    """Everything a stack needs to know: the pipeline config and where it is deployed."""

    config: MlopsConfig
    stage: str
    commit: str
    open_api_reason: str | None = None
    """Why the serving API may run without auth (`[serving] auth = "none"`); CDK context
    `api_auth_none_reason`. Without it, such a config fails synth."""

    @property
    def stage_config(self) -> StageConfig:
        return self.config.stage(self.stage)

    @property
    def removal_policy(self) -> RemovalPolicy:
        # Imported here: tools that only need REPO_ROOT (layer builds, pre-deploy checks, the
        # local cloud) do not start the CDK's jsii runtime.
        from aws_cdk import RemovalPolicy

        if self.stage_config.removal_policy == "destroy":
            return RemovalPolicy.DESTROY
        return RemovalPolicy.RETAIN

    @property
    def stack_name(self) -> str:
        return self.config.stack_name(self.stage)

    @property
    def config_json(self) -> str:
        """The config as the functions receive it (without `SYNTH_ONLY_SECTIONS`: those keep
        their defaults there; without keys at their defaults, and without `dataset`, which
        validation restores from `datasets`), checked against Lambda's 4 KB env limit."""
        exclude: dict[str, Any] = dict.fromkeys(SYNTH_ONLY_SECTIONS | {"dataset"}, True)
        exclude["stages"] = {"__all__": set(SYNTH_ONLY_STAGE_KEYS)}
        text = self.config.model_dump_json(exclude=exclude, exclude_defaults=True)
        size = len(CONFIG_JSON_ENV) + len(text.encode())
        if size > LAMBDA_ENV_LIMIT_BYTES - 512:
            raise ValueError(
                f"config is {size} bytes as JSON; Lambda environment variables are capped at "
                f"{LAMBDA_ENV_LIMIT_BYTES} bytes in total: shorten feature lists or move them"
            )
        return text


def deploy_config(
    stage: str, commit: str, config_file: str | None = None, open_api_reason: str | None = None
) -> DeployConfig:
    """The stage's merged config; a config that fails `mlops config check` (any stage, the
    ML checks included: hyperparameters, gate metrics) fails synth here."""
    from functions.ml.config_check import check_training_config

    base = load_config(config_file)
    check_training_config(base, str(config_path(config_file)))
    config = base.for_stage(stage)
    return DeployConfig(
        config=config, stage=stage, commit=commit, open_api_reason=open_api_reason or None
    )
