"""Lambda functions, layers, versions and aliases. moto gets a small placeholder zip and the
deployer records where the real code is (the asset directory in cdk.out, or the repo for image
functions) and, for function workers, the deployment rebuilt for this machine
(`infra.cdk.function_env`: the runtime's Python, the code, only the function's packages). See
`infra.local.lambda_runtime`."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.local.lambda_config import SETTINGS, FunctionCode

if TYPE_CHECKING:
    from infra.cdk.function_env import HostEnvironment
from infra.local.resources.base import (
    Created,
    DeployContext,
    DeployError,
    ResourceSpec,
    present,
    tags,
    unapplied,
)

_PASSED_THROUGH = tuple(
    (
        "Handler Runtime Timeout MemorySize Environment Description Architectures "
        "EphemeralStorage ImageConfig Layers TracingConfig LoggingConfig"
    ).split()
)
_FUNCTION = {
    *_PASSED_THROUGH,
    *"FunctionName Code PackageType Role Tags ReservedConcurrentExecutions".split(),
}


def function(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    name = p.get("FunctionName") or ctx.physical_name(spec, max_length=64)
    code, moto_code = _code(ctx, spec)
    layers = tuple(
        content
        for arn in p.get("Layers") or []
        if (content := ctx.functions.layer(str(arn))) is not None
    )
    code = dataclasses.replace(code, layers=layers)
    code = dataclasses.replace(code, host=_host(ctx, spec, code))
    request: dict[str, Any] = {
        "FunctionName": name,
        "Role": p["Role"],
        "Code": moto_code,
        "PackageType": p.get("PackageType", "Zip"),
    }
    request.update({key: p[key] for key in _PASSED_THROUGH if key in p})
    if tags(p):
        request["Tags"] = {tag["Key"]: tag["Value"] for tag in tags(p)}
    if ctx.previous(spec) is not None:
        created = _update_function(ctx, request)
    else:
        created = ctx.client("lambda").create_function(**request)
    if "ReservedConcurrentExecutions" in p:
        ctx.client("lambda").put_function_concurrency(
            FunctionName=name, ReservedConcurrentExecutions=int(p["ReservedConcurrentExecutions"])
        )
    elif ctx.previous(spec) is not None:
        ctx.client("lambda").delete_function_concurrency(FunctionName=name)
    log_group = (p.get("LoggingConfig") or {}).get("LogGroup")
    if log_group:
        _log_to(created["FunctionArn"], str(log_group))
    ctx.functions.register(name, code)
    if code.host is not None and SETTINGS.prewarm:
        from infra.local.lambda_runtime import prewarm

        prewarm([name])
    notes = unapplied(p, _FUNCTION)
    runtime = str(p.get("Runtime") or "python")
    if not runtime.startswith("python"):
        notes.append(f"runtime {runtime} cannot run locally: only Python handlers are invoked")
    if p.get("Layers") and code.host is None:
        notes.append(
            "layers are not mounted: handlers import from this interpreter's packages; "
            "environment paths under /opt name files of the layers' builds"
        )
    return Created(ref=name, attributes={"Arn": created["FunctionArn"]}, notes=notes)


def _update_function(ctx: DeployContext, request: dict[str, Any]) -> dict[str, Any]:
    """UpdateFunctionConfiguration and UpdateFunctionCode, as CloudFormation updates a
    function; its next invocation gets a new execution environment (the worker pool retires
    the ones of the old code and configuration when the function's spec changes)."""
    client = ctx.client("lambda")
    name = request["FunctionName"]
    code_keys = ("Code", "PackageType", "Tags", "Architectures")
    configuration = {key: value for key, value in request.items() if key not in code_keys}
    configuration.setdefault("Environment", {"Variables": {}})
    configuration.setdefault("Layers", [])
    client.update_function_configuration(**configuration)
    code = {**request["Code"], **present(request, {"Architectures": "Architectures"})}
    client.update_function_code(FunctionName=name, **code)
    return dict(client.get_function(FunctionName=name)["Configuration"])


def _log_to(arn: str, log_group: str) -> None:
    """The function's logs go to the log group its LoggingConfig names, as on Lambda (moto
    writes them to /aws/lambda/<name>)."""
    from moto.awslambda.models import lambda_backends

    _, _, _, region, account, _, function_name = arn.split(":", 6)
    lambda_backends[account][region].get_function(function_name).logs_group_name = log_group


def _host(ctx: DeployContext, spec: ResourceSpec, code: FunctionCode) -> HostEnvironment | None:
    """The function's deployment built for this machine, for workers (None without them)."""
    if not SETTINGS.workers:
        return None
    from infra.cdk.function_env import (
        RUNTIME_PROVIDED,
        FunctionEnvError,
        HostEnvironment,
        describe_function,
        host_environment,
    )
    from infra.cdk.layers import (
        build_packages,
        host_platforms,
        missing_python_message,
        runtime_python,
    )

    raw = ctx.stack.template.get("Resources", {}).get(spec.logical_id, {})
    try:
        described = describe_function(ctx.stack, spec.logical_id, raw)
        if described is not None:
            return host_environment(described)
    except FunctionEnvError as exc:
        raise DeployError(f"{spec.logical_id} ({spec.type}): {exc}") from None
    # Not the project's (CDK's own handlers, a test's probe): its code and layers as they
    # are, and what the runtime provides.
    runtime = str(spec.properties.get("Runtime") or "")
    version = runtime.removeprefix("python") if runtime.startswith("python") else "3.13"
    python = runtime_python(version)
    if python is None:
        raise DeployError(f"{spec.logical_id} ({spec.type}): {missing_python_message(version)}")
    provided = build_packages(RUNTIME_PROVIDED, "runtime-provided-runtime-host", host_platforms())
    return HostEnvironment(python, code.root, code.layers, (provided,))


def _code(ctx: DeployContext, spec: ResourceSpec) -> tuple[FunctionCode, dict[str, Any]]:
    p = spec.properties
    source = p["Code"]
    if p.get("PackageType") == "Image":
        command = (p.get("ImageConfig") or {}).get("Command") or []
        if not command:
            raise DeployError(
                f"{spec.logical_id} ({spec.type}): an image function needs ImageConfig.Command "
                "(its handler, e.g. cmd=['functions.x.handler.lambda_handler']) to run locally"
            )
        return FunctionCode("image", ctx.code_root, str(command[0])), {
            "ImageUri": source["ImageUri"]
        }
    handler = str(p.get("Handler", ""))
    if "ZipFile" in source:
        directory = _inline(str(source["ZipFile"]), str(p.get("Runtime", "python")))
        return FunctionCode("zip", directory, handler), {"ZipFile": placeholder_zip(directory)}
    asset = ctx.stack.asset_path(str(source.get("S3Key", ""))) or _metadata_asset(ctx, spec)
    if asset is None or not asset.exists():
        raise DeployError(
            f"{spec.logical_id} ({spec.type}): code asset {source.get('S3Key')!r} not found in "
            f"{ctx.stack.template_path.parent}"
        )
    directory = asset if asset.is_dir() else _unzip(asset)
    return FunctionCode("zip", directory, handler), {"ZipFile": placeholder_zip(directory)}


def _metadata_asset(ctx: DeployContext, spec: ResourceSpec) -> Path | None:
    path = spec.metadata.get("aws:asset:path")
    return ctx.stack.template_path.parent / path if path else None


def _inline(code: str, runtime: str) -> Path:
    suffix = ".py" if runtime.startswith("python") else ".js"
    directory = SETTINGS.scratch_dir / f"inline-{hashlib.sha256(code.encode()).hexdigest()[:16]}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"index{suffix}").write_text(code, encoding="utf-8")
    return directory


def _unzip(archive: Path) -> Path:
    data = archive.read_bytes()
    directory = SETTINGS.scratch_dir / f"asset-{hashlib.sha256(data).hexdigest()[:16]}"
    if not directory.exists():
        with zipfile.ZipFile(io.BytesIO(data)) as bundle:
            bundle.extractall(directory)
    return directory


def placeholder_zip(source: Path) -> bytes:
    """What moto stores as the function's code: a note pointing at the real code."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("LOCAL_CODE.txt", f"The local cloud runs this function from {source}\n")
    return buffer.getvalue()


def layer_version(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    name = p.get("LayerName") or ctx.physical_name(spec, max_length=64)
    request: dict[str, Any] = {
        "LayerName": name,
        "Content": {"ZipFile": placeholder_zip(Path(str(p.get("Content", {}).get("S3Key", ""))))},
    }
    for key in ("CompatibleRuntimes", "CompatibleArchitectures", "Description", "LicenseInfo"):
        if key in p:
            request[key] = p[key]
    arn = ctx.client("lambda").publish_layer_version(**request)["LayerVersionArn"]
    content = _layer_content(ctx, spec)
    if content is not None:
        ctx.functions.register_layer(arn, content)
    return Created(
        ref=arn,
        attributes={"LayerVersionArn": arn},
        notes=[
            "layer contents are not mounted: this interpreter's packages stand in for them; "
            "functions' environment paths under /opt name files of this build"
        ],
    )


def _layer_content(ctx: DeployContext, spec: ResourceSpec) -> Path | None:
    """The layer's files as Lambda would mount them under /opt (None if the asset is not in
    the cloud assembly)."""
    content = spec.properties.get("Content") or {}
    asset = ctx.stack.asset_path(str(content.get("S3Key", ""))) or _metadata_asset(ctx, spec)
    if asset is None or not asset.exists():
        return None
    return asset if asset.is_dir() else _unzip(asset)


def version(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    request = {"FunctionName": p["FunctionName"]}
    request.update(present(p, {"Description": "Description"}))
    created = ctx.client("lambda").publish_version(**request)
    return Created(
        ref=created["FunctionArn"],
        attributes={"Version": created["Version"], "FunctionArn": created["FunctionArn"]},
    )


def alias(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    request = {
        "FunctionName": p["FunctionName"],
        "Name": p["Name"],
        "FunctionVersion": p["FunctionVersion"],
    }
    request.update(present(p, {"Description": "Description"}))
    client = ctx.client("lambda")
    if ctx.previous(spec) is not None:
        created = client.update_alias(**request)
    else:
        created = client.create_alias(**request)
    return Created(ref=created["AliasArn"], attributes={"AliasArn": created["AliasArn"]})


def permission(ctx: DeployContext, spec: ResourceSpec) -> Created:
    """A statement of the function's resource-based policy, as Lambda writes it for
    AddPermission: the local cloud evaluates it when a service or another account invokes the
    function (`infra.local.authz`)."""
    from infra.local.authz import stack

    p = spec.properties
    function = str(p["FunctionName"])
    arn = function if function.startswith("arn:") else ctx.arn("lambda", f"function:{function}")
    principal = str(p["Principal"])
    statement: dict[str, Any] = {
        "Sid": spec.logical_id,
        "Effect": "Allow",
        "Principal": (
            {"Service": principal}
            if principal.endswith(".amazonaws.com")
            else ("*" if principal == "*" else {"AWS": principal})
        ),
        "Action": p["Action"],
        "Resource": arn,
    }
    condition: dict[str, dict[str, str]] = {}
    if "SourceArn" in p:
        condition.setdefault("ArnLike", {})["AWS:SourceArn"] = str(p["SourceArn"])
    if "SourceAccount" in p:
        condition.setdefault("StringEquals", {})["AWS:SourceAccount"] = str(p["SourceAccount"])
    if "PrincipalOrgID" in p:
        condition.setdefault("StringEquals", {})["aws:PrincipalOrgID"] = str(p["PrincipalOrgID"])
    if "FunctionUrlAuthType" in p:
        condition.setdefault("StringEquals", {})["lambda:FunctionUrlAuthType"] = str(
            p["FunctionUrlAuthType"]
        )
    if condition:
        statement["Condition"] = condition
    if ctx.previous(spec) is not None:
        stack.remove_function_permission(arn, spec.logical_id)
    stack.add_function_permission(arn, statement)
    return Created(
        ref=spec.logical_id,
        notes=unapplied(
            p,
            {
                "FunctionName",
                "Principal",
                "Action",
                "SourceArn",
                "SourceAccount",
                "PrincipalOrgID",
                "FunctionUrlAuthType",
            },
        ),
    )


def event_invoke_config(ctx: DeployContext, spec: ResourceSpec) -> Created:
    """How Lambda handles the function's asynchronous invocations: retries after an error and
    where the record of one that failed every attempt goes. Recorded with moto (the function's
    `event_invoke_config`); the local cloud's EventBridge deliveries follow it
    (`infra.local.eventbridge`)."""
    p = spec.properties
    function = str(p["FunctionName"])
    if p.get("Qualifier", "$LATEST") != "$LATEST":
        raise DeployError(
            f"{spec.logical_id}: only $LATEST is invoked locally, not {p['Qualifier']!r}"
        )
    request: dict[str, Any] = {"FunctionName": function}
    for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
        if key in p:
            request[key] = int(p[key])
    request.update(present(p, {"DestinationConfig": "DestinationConfig"}))
    ctx.client("lambda").put_function_event_invoke_config(**request)
    notes = unapplied(
        p,
        {"FunctionName", "Qualifier", "MaximumRetryAttempts", "DestinationConfig"},
    )
    if (p.get("DestinationConfig") or {}).get("OnSuccess"):
        notes.append("on-success destination recorded, not applied")
    return Created(ref=f"{function}:$LATEST", notes=notes)
