"""One helper for every lifecycle function: runtime, architecture, memory, timeout, logging,
tracing, environment and a least-privilege role live here, so constructs never repeat them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk import Duration, IgnoreMode, Size
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from functions.common.config.loading import CONFIG_JSON_ENV, config_path
from infra.cdk.cold_start import FUNCTION_ENVIRONMENT
from infra.cdk.config import REPO_ROOT
from infra.cdk.constructs.data_lake import data_key
from infra.cdk.constructs.platform import Platform
from infra.cdk.layers import build_function_code
from infra.cdk.nag import acknowledge

TRAINING_DOCKERFILE = "layers/training/Dockerfile"

# The training image's build context is the repo root, narrowed to what the Dockerfile copies:
# Docker-style ignore rules, everything excluded first, then the needed paths let back in.
TRAINING_IMAGE_CONTEXT = [
    "*",
    "!functions",
    "!functions/**",
    "!layers/training",
    "!layers/training/**",
    "**/__pycache__",
    "**/*.pyc",
]


MODEL_CODE_ARG = "MODEL_CODE"
"""The training Dockerfiles' build argument: the `[train] code` folder, relative to the repo."""


def model_code_folder(code: str | None, config_dir: Path | None = None) -> str | None:
    """`[train] code` (relative to the config file's folder, `config_dir`: the config in use's
    by default) as a path relative to the repo root, the images' build context; None without
    one. Raises ValueError for a folder that is missing or outside the repository."""
    if code is None:
        return None
    base = config_dir or config_path().resolve().parent
    folder = (base / code).resolve()
    if not folder.is_dir():
        raise ValueError(f"train.code {code!r}: {folder} is not a folder")
    if not folder.is_relative_to(REPO_ROOT):
        raise ValueError(
            f"train.code {code!r}: {folder} is outside the repository ({REPO_ROOT}), which is "
            "the training images' build context"
        )
    return folder.relative_to(REPO_ROOT).as_posix()


def training_image_build(code: str | None) -> dict[str, Any]:
    """The training images' build context rules and build arguments for the model code
    folder `code` (from `model_code_folder`): the folder is let into the context and copied
    to `model_code/` beside `functions/`."""
    if code is None:
        return {"exclude": TRAINING_IMAGE_CONTEXT}
    return {
        "exclude": [
            *TRAINING_IMAGE_CONTEXT[:-2],
            f"!{code}",
            f"!{code}/**",
            *TRAINING_IMAGE_CONTEXT[-2:],
        ],
        "build_args": {MODEL_CODE_ARG: code},
    }


@dataclass(frozen=True)
class FunctionSpec:
    """What differs between stage functions; everything else is a shared default."""

    name: str
    handler: str
    """Dotted path of the handler, e.g. `functions.ingest.handler.lambda_handler`."""
    memory_mb: int = 1024
    timeout_seconds: int = 300
    ephemeral_storage_mb: int = 512
    environment: dict[str, str] = field(default_factory=dict)
    reserved_concurrency: int | None = None
    """At most this many instances at once (Lambda's reserved concurrency); None: the
    account's unreserved pool."""


class _LifecycleFunction(Construct):
    """What every function shares: its own log group, a role that may write only to it, the
    environment, and the runtime settings (arm64, JSON logs, active tracing)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, platform: Platform, spec: FunctionSpec
    ) -> None:
        super().__init__(scope, construct_id)
        deploy = platform.deploy
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=retention(deploy.stage_config.log_retention_days),
            encryption_key=data_key(self, deploy),
            removal_policy=deploy.removal_policy,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{spec.name} stage of {deploy.stack_name}",
        )
        # Explicit grant instead of the AWSLambdaBasicExecutionRole managed policy: it is
        # scoped to this function's own log group.
        self.log_group.grant_write(self.role)
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "Active X-Ray tracing: xray:PutTraceSegments and xray:PutTelemetryRecords support "
            "no resource-level permissions.",
        )
        environment = {
            **platform.stage_environment(),
            "POWERTOOLS_SERVICE_NAME": spec.name,
            "POWERTOOLS_METRICS_NAMESPACE": deploy.config.project.name,
            "POWERTOOLS_LOG_LEVEL": "INFO",
            CONFIG_JSON_ENV: deploy.config_json,
            **FUNCTION_ENVIRONMENT,
            **spec.environment,
        }
        self._common: dict[str, Any] = {
            "architecture": lambda_.Architecture.ARM_64,
            "memory_size": spec.memory_mb,
            "timeout": Duration.seconds(spec.timeout_seconds),
            "ephemeral_storage_size": Size.mebibytes(spec.ephemeral_storage_mb),
            "environment": environment,
            "role": self.role,
            "log_group": self.log_group,
            "logging_format": lambda_.LoggingFormat.JSON,
            "tracing": lambda_.Tracing.ACTIVE,
            "description": f"{spec.name} stage ({deploy.config.project.name}, {deploy.stage})",
            "reserved_concurrent_executions": spec.reserved_concurrency,
        }


class StageFunction(_LifecycleFunction):
    """A lifecycle function in the training image (pandas, scikit-learn, skl2onnx, onnx,
    onnxruntime: far over the 250 MB zip limit, so a container image)."""

    def __init__(
        self, scope: Construct, construct_id: str, *, platform: Platform, spec: FunctionSpec
    ) -> None:
        super().__init__(scope, construct_id, platform=platform, spec=spec)
        self.function = lambda_.DockerImageFunction(
            self,
            "Function",
            code=lambda_.DockerImageCode.from_image_asset(
                directory=str(REPO_ROOT),
                file=TRAINING_DOCKERFILE,
                cmd=[spec.handler],
                platform=ecr_assets.Platform.LINUX_ARM64,
                ignore_mode=IgnoreMode.DOCKER,
                **training_image_build(model_code_folder(platform.deploy.config.train.code)),
            ),
            **self._common,
        )


class ZipStageFunction(_LifecycleFunction):
    """A function shipped as a zip of the repo's `functions/` package (Python 3.13) plus
    layers for its third-party packages: for stages that stay under the 250 MB zip limit
    (predict: onnxruntime, numpy, powertools; never pandas or scikit-learn)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        platform: Platform,
        spec: FunctionSpec,
        layers: list[lambda_.ILayerVersion],
        snap_start: bool = False,
    ) -> None:
        super().__init__(scope, construct_id, platform=platform, spec=spec)
        self.function = lambda_.Function(
            self,
            "Function",
            runtime=lambda_.Runtime.PYTHON_3_13,
            handler=spec.handler,
            # The `functions/` package with bytecode of the runtime's Python (infra.cdk.layers).
            code=lambda_.Code.from_asset(str(build_function_code().directory)),
            layers=layers,
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snap_start else None,
            **self._common,
        )
        acknowledge(
            self.function,
            "AwsSolutions-L1",
            "Python 3.13 on purpose: the layer's wheels (onnxruntime, numpy, pydantic-core) "
            "are built for cp313 aarch64 and tests cover it; moving on is a deliberate upgrade.",
        )


_RETENTIONS = [
    (1, "ONE_DAY"),
    (3, "THREE_DAYS"),
    (5, "FIVE_DAYS"),
    (7, "ONE_WEEK"),
    (14, "TWO_WEEKS"),
    (30, "ONE_MONTH"),
    (60, "TWO_MONTHS"),
    (90, "THREE_MONTHS"),
    (120, "FOUR_MONTHS"),
    (150, "FIVE_MONTHS"),
    (180, "SIX_MONTHS"),
    (365, "ONE_YEAR"),
    (400, "THIRTEEN_MONTHS"),
    (545, "EIGHTEEN_MONTHS"),
    (731, "TWO_YEARS"),
    (1096, "THREE_YEARS"),
    (1827, "FIVE_YEARS"),
    (2192, "SIX_YEARS"),
    (2557, "SEVEN_YEARS"),
    (2922, "EIGHT_YEARS"),
    (3288, "NINE_YEARS"),
]


def retention(days: int) -> logs.RetentionDays:
    """The shortest CloudWatch retention that keeps logs at least `days` days."""
    for value, name in _RETENTIONS:
        if value >= days:
            return logs.RetentionDays[name]
    return logs.RetentionDays.TEN_YEARS
