"""API Gateway REST APIs: the API, its resource tree and methods (with their Lambda proxy
integrations, request validators and models), deployment, stage, usage plans and API keys,
all created in moto. moto does not run AWS_PROXY integrations: `infra.local.api_adapter`
serves the routes of this tree over HTTP and invokes the integrated functions."""

from __future__ import annotations

import json
from typing import Any

from infra.local.resources.base import (
    Created,
    DeployContext,
    ResourceSpec,
    names,
    present,
    tags,
    unapplied,
)

_REST_API = {"Name", "Description", "EndpointConfiguration", "Tags", "Policy", "BinaryMediaTypes"}
_METHOD = names(
    "RestApiId ResourceId HttpMethod AuthorizationType ApiKeyRequired Integration "
    "RequestValidatorId RequestModels RequestParameters"
)
_STAGE = names(
    "RestApiId StageName DeploymentId Description TracingEnabled Tags MethodSettings "
    "AccessLogSetting"
)


def rest_api(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    request: dict[str, Any] = {"name": p.get("Name") or ctx.physical_name(spec)}
    request.update(present(p, {"Description": "description"}))
    if "EndpointConfiguration" in p:
        request["endpointConfiguration"] = {"types": p["EndpointConfiguration"].get("Types", [])}
    if tags(p):
        request["tags"] = {tag["Key"]: tag["Value"] for tag in tags(p)}
    client = ctx.client("apigateway")
    created = client.create_rest_api(**request)
    if p.get("BinaryMediaTypes"):
        # moto's CreateRestApi drops binaryMediaTypes; UpdateRestApi adds them (AWS reads the
        # type from the path, moto from the value: both are given).
        client.update_rest_api(
            restApiId=created["id"],
            patchOperations=[
                {"op": "add", "path": f"/binaryMediaTypes/{kind.replace('/', '~1')}", "value": kind}
                for kind in p["BinaryMediaTypes"]
            ],
        )
    return Created(
        ref=created["id"],
        attributes={"RootResourceId": created["rootResourceId"], "RestApiId": created["id"]},
        notes=unapplied(p, _REST_API),
    )


def resource(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    created = ctx.client("apigateway").create_resource(
        restApiId=p["RestApiId"], parentId=p["ParentId"], pathPart=p["PathPart"]
    )
    return Created(ref=created["id"], attributes={"ResourceId": created["id"]})


def method(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    client = ctx.client("apigateway")
    where = {"restApiId": p["RestApiId"], "resourceId": p["ResourceId"]}
    http_method = str(p["HttpMethod"])
    request: dict[str, Any] = {
        **where,
        "httpMethod": http_method,
        "authorizationType": p.get("AuthorizationType", "NONE"),
        "apiKeyRequired": bool(p.get("ApiKeyRequired", False)),
    }
    request.update(
        present(p, {"RequestValidatorId": "requestValidatorId", "RequestModels": "requestModels"})
    )
    if "RequestParameters" in p:
        request["requestParameters"] = {k: bool(v) for k, v in p["RequestParameters"].items()}
    client.put_method(**request)
    notes = unapplied(p, _METHOD)
    integration = p.get("Integration")
    if integration:
        client.put_integration(
            **where,
            httpMethod=http_method,
            type=integration["Type"],
            integrationHttpMethod=integration.get("IntegrationHttpMethod", "POST"),
            uri=integration.get("Uri", ""),
        )
        if integration["Type"] != "AWS_PROXY":
            notes.append(f"integration type {integration['Type']} is not served locally")
    if p.get("AuthorizationType") == "AWS_IAM":
        notes.append("IAM (SigV4) authorization is checked only with IAM enforced")
    return Created(ref=f"{p['ResourceId']}-{http_method}", notes=notes)


def request_validator(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    created = ctx.client("apigateway").create_request_validator(
        restApiId=p["RestApiId"],
        name=p.get("Name") or ctx.physical_name(spec),
        validateRequestBody=bool(p.get("ValidateRequestBody", False)),
        validateRequestParameters=bool(p.get("ValidateRequestParameters", False)),
    )
    return Created(ref=created["id"], attributes={"RequestValidatorId": created["id"]})


def model(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    name = p.get("Name") or ctx.physical_name(spec, separator="").replace("-", "")
    schema = p.get("Schema", {})
    ctx.client("apigateway").create_model(
        restApiId=p["RestApiId"],
        name=name,
        contentType=p.get("ContentType", "application/json"),
        schema=schema if isinstance(schema, str) else json.dumps(schema),
    )
    return Created(ref=name)


def deployment(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    request: dict[str, Any] = {"restApiId": p["RestApiId"]}
    request.update(present(p, {"Description": "description", "StageName": "stageName"}))
    created = ctx.client("apigateway").create_deployment(**request)
    return Created(ref=created["id"], attributes={"DeploymentId": created["id"]})


def stage(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    request: dict[str, Any] = {
        "restApiId": p["RestApiId"],
        "stageName": p["StageName"],
        "deploymentId": p["DeploymentId"],
        "tracingEnabled": bool(p.get("TracingEnabled", False)),
    }
    request.update(present(p, {"Description": "description"}))
    if tags(p):
        request["tags"] = {tag["Key"]: tag["Value"] for tag in tags(p)}
    if ctx.previous(spec) is not None:
        ctx.client("apigateway").update_stage(
            restApiId=p["RestApiId"],
            stageName=p["StageName"],
            patchOperations=[
                {"op": "replace", "path": "/deploymentId", "value": str(p["DeploymentId"])}
            ],
        )
    else:
        ctx.client("apigateway").create_stage(**request)
    notes = unapplied(p, _STAGE)
    if p.get("MethodSettings"):
        notes.append("method settings (throttling, execution logging) recorded, not applied")
    if p.get("AccessLogSetting"):
        notes.append("access logging recorded, not applied")
    return Created(ref=str(p["StageName"]))


def usage_plan(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    request: dict[str, Any] = {"name": p.get("UsagePlanName") or ctx.physical_name(spec)}
    request.update(present(p, {"Description": "description"}))
    if p.get("ApiStages"):
        request["apiStages"] = [{"apiId": s["ApiId"], "stage": s["Stage"]} for s in p["ApiStages"]]
    if p.get("Throttle"):
        request["throttle"] = {
            "burstLimit": int(p["Throttle"].get("BurstLimit", 0)),
            "rateLimit": float(p["Throttle"].get("RateLimit", 0)),
        }
    created = ctx.client("apigateway").create_usage_plan(**request)
    notes = ["throttling and quotas are recorded, not enforced locally"] if "Throttle" in p else []
    return Created(ref=created["id"], attributes={"Id": created["id"]}, notes=notes)


def api_key(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    request: dict[str, Any] = {
        "name": p.get("Name") or ctx.physical_name(spec),
        "enabled": bool(p.get("Enabled", True)),
    }
    request.update(present(p, {"Value": "value", "Description": "description"}))
    created = ctx.client("apigateway").create_api_key(**request)
    return Created(ref=created["id"], attributes={"APIKeyId": created["id"]})


def usage_plan_key(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    created = ctx.client("apigateway").create_usage_plan_key(
        usagePlanId=p["UsagePlanId"], keyId=p["KeyId"], keyType=p.get("KeyType", "API_KEY")
    )
    return Created(ref=created["id"])
