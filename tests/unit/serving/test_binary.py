"""The binary tensor data extension's readers: BYTES elements (the vectorised reader agrees
with reading element by element on any body, well formed or not), numeric tensors, the body's
split into JSON and binary data, and binary outputs."""

from __future__ import annotations

import base64
import random

import numpy as np
import pytest

from functions.serving.binary import (
    InferenceAnswer,
    accepts_binary,
    bytes_tensor,
    encode_output,
    inference_body,
    numeric_tensor,
)
from functions.serving.errors import RequestError


def _encoded(values: list[str]) -> bytes:
    return b"".join(len(v.encode()).to_bytes(4, "little") + v.encode() for v in values)


def _read(data: bytes, rows: int) -> list[str] | tuple[int, str, str | None]:
    try:
        return bytes_tensor(data, rows, "inputs[2]", "contract")
    except RequestError as error:
        return error.status, error.code, error.field


def _one_by_one(data: bytes, rows: int) -> list[str] | None:
    """The format read naively: None when it is not `rows` well-formed UTF-8 elements."""
    values, position = [], 0
    for _ in range(rows):
        if position + 4 > len(data):
            return None
        length = int.from_bytes(data[position : position + 4], "little")
        if position + 4 + length > len(data):
            return None
        try:
            values.append(data[position + 4 : position + 4 + length].decode())
        except UnicodeDecodeError:
            return None
        position += 4 + length
    return values if position == len(data) else None


def test_bytes_elements_read_as_element_by_element_on_any_body() -> None:
    generator = random.Random(7)
    alphabet = "ab \u00e9\u4e2d\x00-"
    for trial in range(3_000):
        rows = generator.randint(1, 30)
        longest = 300 if trial % 40 == 0 else 8
        values = [
            "".join(generator.choice(alphabet) for _ in range(generator.randint(0, longest)))
            for _ in range(rows)
        ]
        data = bytearray(_encoded(values))
        if generator.random() < 0.3:  # a byte changed: a length, or text
            data[generator.randrange(len(data))] = generator.randrange(256)
        if generator.random() < 0.1:
            data = data[:-1]
        expected = _one_by_one(bytes(data), rows)
        read = _read(bytes(data), rows)
        if expected is None:
            assert isinstance(read, tuple) and read[0] in (400, 422), (values, read)
        else:
            assert read == expected


def test_a_size_that_elements_do_not_fill_is_400_naming_the_field() -> None:
    data = _encoded(["one year", "two year"])
    assert _read(data + b"\x00", 2) == (
        400,
        "binary_size_mismatch",
        "inputs[2].parameters.binary_data_size",
    )
    assert _read(data, 3)[:2] == (400, "binary_size_mismatch")
    assert _read(_encoded(["ok"])[:-1] + b"\xff", 1) == (422, "invalid_type", "inputs[2].data[0]")


def test_numeric_tensors_take_exactly_shape_times_the_datatype_size() -> None:
    data = np.array([1.5, -2.0, 3.25], "<f8").tobytes()
    assert numeric_tensor(data, "FP64", 3, "inputs[0]", "age").tolist() == [1.5, -2.0, 3.25]
    assert numeric_tensor(data, "INT16", 12, "inputs[0]", "age").dtype == np.dtype("<i2")
    with pytest.raises(RequestError) as refused:
        numeric_tensor(data, "FP32", 3, "inputs[0]", "age")
    assert refused.value.status == 400
    assert "'age'" in refused.value.message and "12 (3 x 4)" in refused.value.message


def _body(raw: bytes, length: int | str | None, **kwargs: object) -> object:
    options = {"base64_encoded": True, "content_type": "application/octet-stream"} | kwargs
    body = base64.b64encode(raw).decode() if options["base64_encoded"] else raw.decode()
    return inference_body(
        body,
        base64_encoded=bool(options["base64_encoded"]),
        content_type=options["content_type"],  # type: ignore[arg-type]
        json_length=None if length is None else str(length),
        max_bytes=1_000,
    )


def test_the_body_splits_at_the_inference_header_length() -> None:
    header = b'{"inputs": []}'
    request = _body(header + b"\x01\x02", len(header))
    assert request.document == {"inputs": []} and request.binary == b"\x01\x02"  # type: ignore[attr-defined]
    assert _body(header, None).binary == b""  # type: ignore[attr-defined]
    for length in (0, len(header) + 3, "-1", "abc", " "):
        with pytest.raises(RequestError) as refused:
            _body(header + b"\x01\x02", length)
        assert (refused.value.status, refused.value.code) == (400, "invalid_header")
    with pytest.raises(RequestError) as refused:
        _body(header + b"\x01\x02", len(header), base64_encoded=False, content_type=None)
    assert (refused.value.status, refused.value.field) == (415, "Content-Type")
    with pytest.raises(RequestError) as refused:
        _body(header, None, content_type="text/csv")
    assert refused.value.status == 415


def test_binary_outputs_and_who_accepts_them() -> None:
    labels = np.array(["no", "yes", "\u00e9"], dtype=object)
    assert encode_output(labels, "BYTES") == _encoded(["no", "yes", "\u00e9"])
    probabilities = np.array([[0.25, 0.75]])
    assert np.frombuffer(encode_output(probabilities, "FP32"), "<f4").tolist() == [0.25, 0.75]
    body, length = InferenceAnswer({"outputs": []}, b"\x09").body(lambda d: '{"outputs":[]}')
    assert (body, length) == (b'{"outputs":[]}\x09', 14)
    assert accepts_binary("application/octet-stream, application/json")
    assert accepts_binary("Application/Octet-Stream;q=0.9")
    assert not accepts_binary("application/json, application/octet-stream")
    assert not accepts_binary(None) and not accepts_binary("*/*")
