"""The error every refused request raises: an HTTP status, a machine code, a sentence naming
the field and the problem, and the field's path (`instances[3].age`)."""

from __future__ import annotations

from typing import Any


class RequestError(Exception):
    """A request the API refuses: `status` (4xx), `code`, a message naming the problem, and
    the offending `field` (a path into the body) when there is one."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def body(self, *, open_inference: bool = False) -> dict[str, Any]:
        return error_body(self.code, self.message, self.field, open_inference=open_inference)


def error_body(
    code: str, message: str, field: str | None = None, *, open_inference: bool, **details: Any
) -> dict[str, Any]:
    """An error answer. v1: `{"error": code, "message": ..., "field"?}`. Open Inference
    Protocol routes (`/v2...`): the protocol's `{"error": message}`, with the same stable code
    as `code` (and `field`), so a protocol client shows the sentence and a program can still
    branch on the code."""
    document: dict[str, Any] = (
        {"error": message, "code": code} if open_inference else {"error": code, "message": message}
    )
    if field is not None:
        document["field"] = field
    document.update(details)
    return document


def unprocessable(code: str, message: str, field: str | None = None) -> RequestError:
    return RequestError(422, code, message, field)


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
