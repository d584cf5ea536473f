"""`mlops smoke`: check a deployed stack works, without changing its data.

1. Every project function initialises: each is invoked with the health-check event
   (`functions.common.health`), which its handler answers after its real imports and init,
   so an import error, a missing setting or a config that does not parse fails here, on the
   real account, not at the first drop. The answer says how much memory the init took: a
   function whose init alone uses over `MEMORY_HEADROOM` of its memory has no room to work.
2. The API's health routes answer (`/v1/health`, `/v2/health/live`, `/v2/health/ready`);
   `ready` may be false before a first model is promoted (reported, not a failure).
3. Alias `production` of every configured model resolves to a registered version whose ONNX
   file's sha256 is the one registered. No model yet (a first deploy) passes, and says so.
   With several models, each check names its model (`alias production of <model>`).
4. When the default model is promoted, the API is ready with it (`/v2/health/ready`).

Nothing is written: health checks emit no log or metric, the API routes and the registry
reads are side-effect free.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.adapters.registry.model_registry import ModelRegistry
from functions.common.config.loading import MlopsConfig
from functions.common.health import HEALTH_CHECK
from infra.cli.predict_client import PredictError, call_api
from infra.cli.target import Target, TargetError

MEMORY_HEADROOM = 0.5
"""Share of a function's memory its init may use before the smoke test fails it."""
PROJECT_HANDLERS = "functions."
API_HEALTH_ROUTES = ("/v1/health", "/v2/health/live", "/v2/health/ready")


@dataclass
class SmokeResult:
    check: str
    passed: bool
    detail: str
    notes: list[str] = field(default_factory=list)


def run_smoke(
    config: MlopsConfig, target: Target, stage: str, state_dir: Path | None = None
) -> list[SmokeResult]:
    """Every check against `target` (the local cloud, or the stage's stack on AWS)."""
    results = [*_functions(config, target, stage, state_dir)]
    api = _api(target)
    results.extend(api)
    checks = [_production_model(config, target, model) for model in config.model_names]
    results.extend(checks)
    production = checks[config.model_names.index(config.default_model)]
    results.extend(_serving_production(api, production))
    return results


def _serving_production(api: list[SmokeResult], production: SmokeResult) -> list[SmokeResult]:
    """4. When a model is promoted, the API serves it: a promoted model the API cannot load
    (predict may not read the registry or the model file) fails here."""
    if not production.passed or not production.detail.startswith("version "):
        return []
    ready = next((r for r in api if r.check == "API GET /v2/health/ready"), None)
    if ready is None or ready.notes != ["no model is loaded yet"]:
        return []
    return [
        SmokeResult(
            "API serves production",
            False,
            f"production is {production.detail.split(':')[0]}, but the API answers not ready: "
            "predict cannot load it (read its logs: a permission, the model file)",
        )
    ]


# 1. functions


def stack_functions(
    config: MlopsConfig, target: Target, stage: str, state_dir: Path | None
) -> dict[str, str]:
    """Logical id -> function name of the stack's Lambda functions."""
    kind = "AWS::Lambda::Function"
    if target.kind == "local":
        stack = json.loads((state_dir or Path(".mlops/local")).joinpath("stack.json").read_text())
        return {
            logical: str(resource["physical_id"])
            for logical, resource in stack.get("resources", {}).items()
            if resource.get("type") == kind and resource.get("physical_id")
        }
    pages = (
        target.client("cloudformation")
        .get_paginator("list_stack_resources")
        .paginate(StackName=config.stack_name(stage))
    )
    return {
        str(item["LogicalResourceId"]): str(item["PhysicalResourceId"])
        for page in pages
        for item in page["StackResourceSummaries"]
        if item["ResourceType"] == kind
    }


def _functions(
    config: MlopsConfig, target: Target, stage: str, state_dir: Path | None
) -> list[SmokeResult]:
    client = target.client("lambda")
    results = []
    for logical_id, name in sorted(stack_functions(config, target, stage, state_dir).items()):
        try:
            configuration = client.get_function_configuration(FunctionName=name)
        except ClientError as exc:
            results.append(SmokeResult(f"function {logical_id}", False, _aws_error(exc)))
            continue
        handler = str(
            configuration.get("Handler")
            or (
                configuration.get("ImageConfigResponse", {}).get("ImageConfig", {}).get("Command")
                or [""]
            )[0]
        )
        if not handler.startswith(PROJECT_HANDLERS):
            continue  # CDK's own handlers (custom resources) expect CloudFormation's events
        results.append(_health(client, logical_id, name))
    return results


def _health(client: Any, logical_id: str, name: str) -> SmokeResult:
    check = f"function {logical_id}"
    try:
        response = client.invoke(FunctionName=name, Payload=json.dumps(HEALTH_CHECK).encode())
    except (ClientError, BotoCoreError) as exc:
        return SmokeResult(check, False, f"invoke failed: {_aws_error(exc)}")
    try:
        answer = json.loads(response["Payload"].read() or b"null")
    except ValueError:
        answer = None
    if response.get("FunctionError") or not isinstance(answer, dict) or "healthy" not in answer:
        error = answer if isinstance(answer, dict) else {}
        kind = error.get("errorType") or response.get("FunctionError") or "no health report"
        return SmokeResult(check, False, f"{kind}: {error.get('errorMessage', answer)}")
    peak, limit = int(answer.get("peak_memory_mb") or 0), int(answer.get("memory_limit_mb") or 0)
    figure = (
        f"{answer.get('service')} initialised under Python {answer.get('python')}, code "
        f"{answer.get('code_version')}; init peak {peak} of {limit} MB"
    )
    if limit and peak > MEMORY_HEADROOM * limit:
        return SmokeResult(
            check,
            False,
            f"{figure}: the init alone uses over {MEMORY_HEADROOM:.0%} of the function's memory, "
            "leaving too little to work with; raise its memory_mb",
        )
    return SmokeResult(check, True, figure)


# 2. API


def _api(target: Target) -> list[SmokeResult]:
    url = target.outputs.get("ApiUrl")
    if not url:
        return [SmokeResult("API health", False, "the stack has no ApiUrl output")]
    results = []
    for route in API_HEALTH_ROUTES:
        check = f"API GET {route}"
        try:
            status, body = call_api(url, "GET", route)
        except PredictError as exc:
            results.append(SmokeResult(check, False, str(exc)))
            continue
        if status == 200:
            results.append(SmokeResult(check, True, f"HTTP 200 {_short(body)}"))
        elif route == "/v2/health/ready" and status == 503:
            results.append(
                SmokeResult(check, True, "HTTP 503: not ready", ["no model is loaded yet"])
            )
        else:
            results.append(SmokeResult(check, False, f"HTTP {status} {_short(body)}"))
    return results


# 3. production model


def _production_model(config: MlopsConfig, target: Target, model: str) -> SmokeResult:
    check = "alias production" + (f" of {model}" if len(config.models) > 1 else "")
    try:
        registry = ModelRegistry(target.output("RegistryTableName"), target.client("dynamodb"))
        alias = registry.get_alias(model)
        if alias is None:
            return SmokeResult(
                check,
                True,
                f"no model of {model!r} promoted yet",
                ["a first deploy has no model until a drop is trained and promoted"],
            )
        version = registry.get_version(model, alias.version)
        if version is None:
            return SmokeResult(
                check, False, f"points at version {alias.version}, which is not registered"
            )
        body = (
            target.client("s3")
            .get_object(Bucket=target.output("DataBucketName"), Key=version.onnx_key)["Body"]
            .read()
        )
    except (ClientError, BotoCoreError, TargetError) as exc:
        return SmokeResult(check, False, _aws_error(exc))
    digest = hashlib.sha256(body).hexdigest()
    if digest != version.onnx_sha256:
        return SmokeResult(
            check,
            False,
            f"version {version.version}: {version.onnx_key} has sha256 {digest[:16]}..., "
            f"registered {version.onnx_sha256[:16]}...",
        )
    return SmokeResult(
        check,
        True,
        f"version {version.version} of {model!r}: {version.onnx_key} "
        f"({len(body):,} bytes) matches its registered sha256",
    )


def _aws_error(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code')}: {error.get('Message')}"
    return str(exc)


def _short(body: Any) -> str:
    text = json.dumps(body, default=str) if not isinstance(body, str) else body
    return text if len(text) <= 120 else text[:117] + "..."
