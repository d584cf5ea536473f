"""A request's body before its values: the declared media type, the JSON document (size
limit) and the top-level list of rows."""

from __future__ import annotations

import binascii
import json
from typing import Any

import orjson

from functions.serving.errors import RequestError, type_name, unprocessable

JSON_MEDIA_TYPE = "application/json"


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_content_type(content_type: str | None) -> None:
    """415 unless the body is declared JSON (`application/json` or `application/*+json`)."""
    kind = media_type(content_type)
    if kind != JSON_MEDIA_TYPE and not (kind.startswith("application/") and kind.endswith("+json")):
        shown = f"{content_type!r}" if content_type else "missing"
        raise RequestError(
            415,
            "unsupported_media_type",
            f"Content-Type is {shown}; send the body as application/json",
            "Content-Type",
        )


def parse_json(body: str | None, *, base64_encoded: bool, max_bytes: int) -> Any:
    """The JSON document of a request body (413 when larger than `max_bytes`, 400 when empty
    or not JSON; `json_document`)."""
    return json_document(decoded_body(body, base64_encoded=base64_encoded, max_bytes=max_bytes))


def decoded_body(body: str | None, *, base64_encoded: bool, max_bytes: int) -> bytes | str:
    """A proxy event's body as bytes (base64-encoded) or as its text when that is ASCII (no
    copy); 400 when empty or not base64, 413 when larger than `max_bytes`."""
    if body is None or body == "":
        raise RequestError(400, "malformed_json", "the request body is empty; send a JSON object")
    raw: bytes | str
    if base64_encoded:
        try:
            # strict: only the base64 alphabet and padding, as b64decode's `validate`.
            raw = binascii.a2b_base64(body, strict_mode=True)
        except (binascii.Error, ValueError):
            raise RequestError(400, "malformed_body", "the body is not valid base64") from None
        size = len(raw)
    elif body.isascii():  # O(1) in CPython: then characters are bytes, and no copy is needed
        raw, size = body, len(body)
    else:
        raw = body.encode("utf-8", errors="surrogatepass")
        size = len(raw)
    if size > max_bytes:
        raise RequestError(
            413,
            "body_too_large",
            f"the body has {size} bytes; the limit is {max_bytes} bytes",
        )
    return raw


def json_document(raw: bytes | str) -> Any:
    """The JSON document of `raw` (400 `malformed_json` when it is none).

    orjson parses standard JSON; a body it refuses is parsed again by the standard library,
    which also takes the `NaN` and `Infinity` literals (refused later, per value, with the
    field they are in) and words the error of a body that is not JSON."""
    if not raw:
        raise RequestError(400, "malformed_json", "the JSON document is empty; send an object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _stdlib_json(raw)


def _stdlib_json(raw: bytes | str) -> Any:
    try:
        document = json.loads(raw)
        # `\ud800` and its kind (an unpaired surrogate) parse, but are no character: no answer,
        # log or capture of them could be encoded.
        json.dumps(document, ensure_ascii=False).encode()
        return document
    except UnicodeEncodeError:
        raise RequestError(
            400,
            "malformed_json",
            "the body is not valid JSON: a string has an unpaired surrogate (\\ud800-\\udfff)",
        ) from None
    except json.JSONDecodeError as error:
        raise RequestError(
            400,
            "malformed_json",
            f"the body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}",
        ) from None
    except (ValueError, RecursionError) as error:
        # Invalid UTF-8, integers beyond Python's digit limit, or nesting too deep.
        raise RequestError(400, "malformed_json", f"the body is not valid JSON: {error}") from None


def batch_list(document: Any, key: str, *, max_rows: int, item: str = "instance") -> list[Any]:
    """`document[key]`, a non-empty list of at most `max_rows` items."""
    if not isinstance(document, dict):
        raise unprocessable(
            "invalid_body",
            f"the body must be a JSON object with an {key!r} list, not {type_name(document)}",
        )
    if key not in document:
        raise unprocessable("missing_field", f"the body has no {key!r} list", key)
    items = document[key]
    if not isinstance(items, list):
        raise unprocessable(
            "invalid_type", f"{key!r} must be a list of {item}s, not {type_name(items)}", key
        )
    if not items:
        raise unprocessable("empty_batch", f"{key!r} is empty; send at least one {item}", key)
    if len(items) > max_rows:
        raise RequestError(
            413,
            "too_many_rows",
            f"{key!r} has {len(items)} {item}s; the limit is {max_rows} per request",
            key,
        )
    return items
