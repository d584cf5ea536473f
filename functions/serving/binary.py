"""The Open Inference Protocol's binary tensor data extension (Triton's `binary_tensor_data`):
a request body is its JSON inference request followed by the raw data of the inputs that carry
`parameters.binary_data_size`, in their order; `Inference-Header-Content-Length` gives the
JSON's byte count. Outputs asked for with `parameters.binary_data` (or the request's
`parameters.binary_data_output`) come back the same way.

Binary data is little-endian, row major, without padding: a numeric element in its datatype's
size (FP32 is 4 bytes), a BYTES element as a 4-byte unsigned length and then its bytes.

Through API Gateway a body arrives intact only when its Content-Type is one of the API's
binary media types, `application/octet-stream` (the extension's own media type): it then
reaches the function base64-encoded. Any other body is passed as UTF-8 text, bytes that are
not UTF-8 replaced, so binary tensor data in a text body is refused rather than read mangled.
Likewise a binary answer reaches the client only when the first media type of its Accept
header is `application/octet-stream`; for any other client the outputs are sent as JSON.

Pure: numpy and the standard library."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from functions.serving.body import (
    JSON_MEDIA_TYPE,
    decoded_body,
    json_document,
    media_type,
)
from functions.serving.errors import RequestError, type_name, unprocessable

BINARY_MEDIA_TYPE = "application/octet-stream"
INFERENCE_HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSION = "binary_tensor_data"

NUMERIC_DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(code)
    for name, code in {
        "FP16": "<f2",
        "FP32": "<f4",
        "FP64": "<f8",
        "INT8": "i1",
        "INT16": "<i2",
        "INT32": "<i4",
        "INT64": "<i8",
        "UINT8": "u1",
        "UINT16": "<u2",
        "UINT32": "<u4",
        "UINT64": "<u8",
    }.items()
}
_LENGTH_BYTES = 4


@dataclass(frozen=True)
class InferenceBody:
    """A v2 inference request: its JSON `document` and the binary tensor data after it."""

    document: Any
    binary: bytes = b""


def check_inference_content_type(content_type: str | None) -> None:
    """415 unless the body is JSON (`application/json`, `application/*+json`, or no
    Content-Type, as Triton and tritonclient send) or binary (`application/octet-stream`)."""
    kind = media_type(content_type)
    if not kind or kind == BINARY_MEDIA_TYPE or kind == JSON_MEDIA_TYPE:
        return
    if kind.startswith("application/") and kind.endswith("+json"):
        return
    raise RequestError(
        415,
        "unsupported_media_type",
        f"Content-Type is {content_type!r:.60}; send the inference request as "
        f"{JSON_MEDIA_TYPE}, or as {BINARY_MEDIA_TYPE} with binary tensor data",
        "Content-Type",
    )


def inference_body(
    body: str | None,
    *,
    base64_encoded: bool,
    content_type: str | None,
    json_length: str | None,
    max_bytes: int,
) -> InferenceBody:
    """The JSON inference request and the binary tensor data after it, from an API Gateway
    proxy event's body (`base64_encoded`: its `isBase64Encoded`) and headers.

    Without `Inference-Header-Content-Length` (`json_length`) the whole body is JSON. With it,
    the first `json_length` bytes are; the rest is binary tensor data, accepted only from a
    base64-encoded body (sent as application/octet-stream): a text body's bytes beyond UTF-8
    did not survive API Gateway. 415 for another Content-Type, 413 over `max_bytes`, 400 for a
    header that is not a byte count within the body, or JSON that is not JSON."""
    check_inference_content_type(content_type)
    raw = decoded_body(body, base64_encoded=base64_encoded, max_bytes=max_bytes)
    if json_length is None:
        return InferenceBody(json_document(raw))
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    text = json_length.strip()
    length = int(text) if text.isdigit() and len(text) <= 12 else -1
    if not 0 < length <= size:
        raise RequestError(
            400,
            "invalid_header",
            f"{INFERENCE_HEADER_LENGTH} is {json_length!r:.40}; it must be the byte count of "
            f"the JSON at the start of the body (1 to {size} bytes)",
            INFERENCE_HEADER_LENGTH,
        )
    if length == size:
        return InferenceBody(json_document(raw))
    if not isinstance(raw, bytes) or not base64_encoded:
        raise RequestError(
            415,
            "unsupported_media_type",
            f"the body has {size - length} bytes of binary tensor data after its {length}-byte "
            f"JSON ({INFERENCE_HEADER_LENGTH}) but its Content-Type is "
            f"{content_type or 'missing'}: send it as {BINARY_MEDIA_TYPE}, the API's binary "
            "media type (any other body reaches the API as text, its binary bytes replaced)",
            "Content-Type",
        )
    return InferenceBody(json_document(raw[:length]), raw[length:])


def binary_size(tensor: dict[str, Any], where: str) -> int | None:
    """The tensor's `parameters.binary_data_size`, or None when its data is JSON."""
    parameters = tensor.get("parameters")
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise unprocessable(
            "invalid_type",
            f"{where}.parameters must be an object, not {type_name(parameters)}",
            f"{where}.parameters",
        )
    size = parameters.get("binary_data_size")
    if size is None:
        return None
    if type(size) is not int or size < 0:
        raise unprocessable(
            "invalid_type",
            f"{where}.parameters.binary_data_size must be a byte count, not {size!r:.40}",
            f"{where}.parameters.binary_data_size",
        )
    return size


def size_mismatch(where: str, name: str, size: int, needed: str) -> RequestError:
    """400: an input's `binary_data_size` is not what its shape and datatype make."""
    field = f"{where}.parameters.binary_data_size"
    return RequestError(
        400,
        "binary_size_mismatch",
        f"input {name!r}: {field} is {size} bytes but {needed}",
        field,
    )


def numeric_tensor(data: bytes, datatype: str, rows: int, where: str, name: str) -> np.ndarray:
    """`rows` little-endian elements of `datatype` (exactly `rows` x its size in bytes)."""
    dtype = NUMERIC_DTYPES[datatype]
    if len(data) != rows * dtype.itemsize:
        raise size_mismatch(
            where,
            name,
            len(data),
            f"shape [{rows}] of {datatype} takes {rows * dtype.itemsize} "
            f"({rows} x {dtype.itemsize})",
        )
    return np.frombuffer(data, dtype=dtype)


def bytes_tensor(data: bytes, rows: int, where: str, name: str) -> list[str]:
    """`rows` BYTES elements, each a 4-byte little-endian length and that many bytes of UTF-8
    text; they must fill `data` exactly (400 naming the input otherwise, 422 for an element
    that is not UTF-8).

    The elements are found with numpy (the chain of lengths followed by pointer doubling, in
    log2(rows) gathers) and decoded in one pass; a body this cannot read (an element holding a
    NUL byte, or a problem to name) is read again element by element."""
    fast = _bytes_elements(data, rows)
    return fast if fast is not None else _bytes_elements_one_by_one(data, rows, where, name)


def _bytes_elements(data: bytes, rows: int) -> list[str] | None:
    """The elements when `data` is well formed and no element holds a NUL byte, else None."""
    size = len(data)
    if rows == 0 or size < _LENGTH_BYTES * rows:
        return None
    # following[p]: where the next element starts after one starting at offset p (the length
    # there read four ways, one per alignment); offsets where none can start lead past `size`.
    following = np.full(size + 1, size + 2**40, dtype=np.int64)
    for alignment in range(_LENGTH_BYTES):
        count = (size - alignment) // _LENGTH_BYTES
        following[alignment : alignment + _LENGTH_BYTES * count : _LENGTH_BYTES] = np.frombuffer(
            data, dtype="<u4", count=count, offset=alignment
        )
    following[: size - 3] += np.arange(_LENGTH_BYTES, size + 1, dtype=np.int64)
    following[size - 3 :] = size + 2**40
    chain = following.tolist()
    starts = []
    position = 0
    try:
        for _ in range(rows):
            starts.append(position)
            position = chain[position]
    except IndexError:
        return None
    if position != size:
        return None
    # Each element as a NUL then its bytes: one decode and one split make the strings.
    at = np.array(starts, dtype=np.int64)
    text = np.frombuffer(data, dtype=np.uint8).copy()
    text[at] = 0
    keep = np.ones(size, dtype=bool)
    for offset in (1, 2, 3):
        keep[at + offset] = False
    joined = text[keep]
    if np.count_nonzero(joined == 0) != rows:
        return None
    try:
        return joined.tobytes().decode("utf-8").split("\0")[1:]
    except UnicodeDecodeError:
        return None


def _bytes_elements_one_by_one(data: bytes, rows: int, where: str, name: str) -> list[str]:
    values: list[str] = []
    position, end = 0, len(data)
    view = memoryview(data)
    for index in range(rows):
        if position + _LENGTH_BYTES > end:
            raise size_mismatch(
                where, name, end, f"it ends before element {index} of {rows} (BYTES)"
            )
        length = int.from_bytes(view[position : position + _LENGTH_BYTES], "little")
        position += _LENGTH_BYTES
        if position + length > end:
            raise size_mismatch(
                where,
                name,
                end,
                f"element {index} of {rows} (BYTES) says {length} bytes, past its end",
            )
        try:
            values.append(str(view[position : position + length], "utf-8"))
        except UnicodeDecodeError:
            field = f"{where}.data[{index}]"
            raise unprocessable(
                "invalid_type",
                f"{field} (input {name!r}) is not UTF-8 text; a categorical value is a string",
                field,
            ) from None
        position += length
    if position != end:
        raise size_mismatch(
            where, name, end, f"its {rows} BYTES elements take {position} (length-prefixed)"
        )
    return values


def encode_output(values: np.ndarray, datatype: str) -> bytes:
    """An output tensor's binary data: BYTES as length-prefixed UTF-8, numbers little-endian
    in `datatype`'s size."""
    if datatype == "BYTES":
        encoded = [str(value).encode() for value in values.reshape(-1).tolist()]
        return b"".join(len(item).to_bytes(_LENGTH_BYTES, "little") + item for item in encoded)
    return np.ascontiguousarray(values.reshape(-1), dtype=NUMERIC_DTYPES[datatype]).tobytes()


def accepts_binary(accept: str | None) -> bool:
    """Whether API Gateway would pass a binary answer to this client: it looks at the first
    media type of the Accept header only."""
    first = (accept or "").split(",", 1)[0]
    return media_type(first) == BINARY_MEDIA_TYPE


@dataclass(frozen=True)
class InferenceAnswer:
    """A v2 inference answer with binary outputs: the JSON `header` (each binary output with
    `parameters.binary_data_size` and no `data`), then `tail`, their data in order."""

    header: dict[str, Any]
    tail: bytes

    def body(self, dumps: Any) -> tuple[bytes, int]:
        """The response body and its JSON's byte count (`Inference-Header-Content-Length`);
        `dumps` writes the JSON (the API's encoder)."""
        text = dumps(self.header)
        head = text.encode() if isinstance(text, str) else bytes(text)
        return head + self.tail, len(head)
