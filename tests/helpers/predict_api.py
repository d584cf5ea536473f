"""API Gateway proxy events for the predict handler, built from `events/api_predict.json`, and
a client invoking the handler with them."""

from __future__ import annotations

import copy
import json
from typing import Any

from tests.helpers import REPO
from tests.helpers.lambda_context import lambda_context

TEMPLATE = json.loads((REPO / "events" / "api_predict.json").read_text())
CONTEXT = lambda_context("predict", request=2, remaining_ms=10_000)


def api_event(
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: str | None = None,
    headers: dict[str, str] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The sample event sent as `method path` with a JSON `body` (or the `raw` body text);
    without `request_id` it keeps the sample's."""
    event = copy.deepcopy(TEMPLATE)
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["path"] = path
    event["pathParameters"] = {"proxy": path.lstrip("/")}
    if request_id is not None:
        event["requestContext"]["requestId"] = request_id
    event["body"] = raw if raw is not None else (None if body is None else json.dumps(body))
    if headers is not None:
        event["headers"] = headers
        event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    return event


class Api:
    """Invoke `lambda_handler` with proxy events; `clock` drives the alias TTL."""

    def __init__(self, handler: Any, logic: Any) -> None:
        self.handler = handler
        self.logic = logic
        self.now = 0.0
        self.template = copy.deepcopy(TEMPLATE)
        self._ids = 0

    def event(self, method: str, path: str, body: Any = None, **kwargs: Any) -> dict[str, Any]:
        self._ids += 1
        return api_event(method, path, body, request_id=f"req-{self._ids:06d}", **kwargs)

    def reset(self) -> None:
        """A fresh container: config and service rebuilt from the environment."""
        from functions.common.config.loading import deployed_config

        deployed_config.cache_clear()
        self.logic.service.cache_clear()
        self.logic.service().models.clock = lambda: self.now

    def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        response = self.handler.lambda_handler(self.event(method, path, body, **kwargs), CONTEXT)
        return response["statusCode"], json.loads(response["body"])
