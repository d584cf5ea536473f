"""The deployed REST API as the local adapter (`infra.local.api_adapter`) serves it, read
from moto: its resource tree and methods (the routes, with path parameters and greedy
`{proxy+}` segments, literal segments winning), each method's integrated function, API key
requirement, authorization type and request body model (when a validator checks the body),
the values of the enabled API keys of the usage plans that include the API's stage, and the
API's binary media types (`binaryMediaTypes`, wildcards allowed: `image/*`, `*/*`)."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_INTEGRATION_ARN = "/functions/"


@dataclass(frozen=True)
class Method:
    http_method: str
    function: str
    """ARN of the integrated function (alias or version qualified, as the template says)."""
    resource_id: str
    api_key_required: bool = False
    authorization: str = "NONE"
    body_schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class Route:
    resource_path: str
    """API Gateway's `resource`, e.g. `/v2/models/{name}`."""
    methods: dict[str, Method] = field(default_factory=dict)

    def match(self, path: str) -> dict[str, str] | None:
        """Path parameters if `path` matches this resource, else None."""
        pattern = [part for part in self.resource_path.split("/") if part]
        parts = [part for part in path.split("/") if part]
        if pattern and pattern[-1].endswith("+}"):
            head = len(pattern) - 1
            if len(parts) <= head:
                return None
            parts = [*parts[:head], "/".join(parts[head:])]
        if len(pattern) != len(parts):
            return None
        params: dict[str, str] = {}
        for expected, actual in zip(pattern, parts, strict=True):
            if expected.startswith("{") and expected.endswith("}"):
                params[expected[1:-1].rstrip("+")] = actual
            elif expected != actual:
                return None
        return params


@dataclass
class RestApi:
    api_id: str
    stage: str
    routes: list[Route]
    api_keys: set[str]
    binary_media_types: tuple[str, ...] = ()

    def is_binary(self, media_type: str | None) -> bool:
        """Whether `media_type` (a Content-Type or an Accept media range, parameters
        ignored, case-insensitive) matches one of the API's binary media types."""
        kind = (media_type or "").split(";", 1)[0].strip().lower()
        return bool(kind) and any(
            fnmatch.fnmatchcase(kind, pattern.lower()) for pattern in self.binary_media_types
        )

    def find(self, path: str) -> tuple[Route, dict[str, str]] | None:
        # Literal segments win over parameters, as in API Gateway.
        matches = [
            (route, params) for route in self.routes if (params := route.match(path)) is not None
        ]
        if not matches:
            return None
        return min(matches, key=lambda match: len(match[1]))


def load_rest_api(client: Callable[[str], Any], api_id: str, stage: str) -> RestApi:
    """The API as deployed in moto: its resources, methods, integrations, models and keys."""
    apigw = client("apigateway")
    resources = apigw.get_resources(restApiId=api_id, limit=500)["items"]
    validators = {
        v["id"]: v for v in apigw.get_request_validators(restApiId=api_id).get("items", [])
    }
    routes = []
    for resource in resources:
        methods = {}
        for http_method in resource.get("resourceMethods") or {}:
            described = apigw.get_method(
                restApiId=api_id, resourceId=resource["id"], httpMethod=http_method
            )
            uri = (described.get("methodIntegration") or {}).get("uri", "")
            if _INTEGRATION_ARN not in uri:
                continue
            function = uri.split(_INTEGRATION_ARN, 1)[1].removesuffix("/invocations")
            methods[http_method] = Method(
                http_method=http_method,
                function=function,
                resource_id=resource["id"],
                api_key_required=bool(described.get("apiKeyRequired")),
                authorization=described.get("authorizationType", "NONE"),
                body_schema=_body_schema(apigw, api_id, described, validators),
            )
        if methods:
            routes.append(Route(resource["path"], methods))
    binary = apigw.get_rest_api(restApiId=api_id).get("binaryMediaTypes") or []
    return RestApi(api_id, stage, routes, _api_keys(apigw, api_id, stage), tuple(binary))


def _body_schema(
    apigw: Any, api_id: str, method: dict[str, Any], validators: dict[str, Any]
) -> dict[str, Any] | None:
    validator = validators.get(method.get("requestValidatorId") or "")
    model = (method.get("requestModels") or {}).get("application/json")
    if not validator or not validator.get("validateRequestBody") or not model:
        return None
    schema = apigw.get_model(restApiId=api_id, modelName=model)["schema"]
    return dict(json.loads(schema)) if isinstance(schema, str) else dict(schema)


def _api_keys(apigw: Any, api_id: str, stage: str) -> set[str]:
    """Values of the enabled keys of the usage plans that include this API's stage."""
    values = set()
    for plan in apigw.get_usage_plans().get("items", []):
        stages = plan.get("apiStages") or []
        if not any(s.get("apiId") == api_id and s.get("stage") == stage for s in stages):
            continue
        for key in apigw.get_usage_plan_keys(usagePlanId=plan["id"]).get("items", []):
            described = apigw.get_api_key(apiKey=key["id"], includeValue=True)
            if described.get("enabled", True) and described.get("value"):
                values.add(described["value"])
    return values
