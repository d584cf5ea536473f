"""The Open Inference Protocol v2 body (`{"inputs": [tensor, ...], "outputs"?, "id"?}`) as a
validated `Batch`: one `[n]` or `[n, 1]` tensor per feature, its data as JSON or as binary
tensor data after the JSON (`functions.serving.binary`); and the outputs it asks for."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from functions.ml.onnx_input import NamedTwiceError
from functions.serving.binary import binary_size, bytes_tensor, numeric_tensor
from functions.serving.body import batch_list
from functions.serving.errors import RequestError, type_name, unprocessable
from functions.serving.features import FeatureSpec
from functions.serving.values import Batch, check_columns


def _twice(name: str, one: str, other: str, field: str) -> RequestError:
    return unprocessable(
        "duplicate_feature",
        str(NamedTwiceError(name, one, other)),
        field,
    )


V2_NUMERIC_TYPES = frozenset(
    {
        "FP16",
        "FP32",
        "FP64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
    }
)
V2_BYTES = "BYTES"


def infer_batch(
    document: Any,
    specs: Sequence[FeatureSpec],
    *,
    max_rows: int,
    reject_unseen: bool,
    binary: bytes = b"",
) -> tuple[Batch, str | None]:
    """An Open Inference Protocol v2 request (`{"inputs": [{"name", "shape", "datatype",
    "data"}], "id"?}`), one `[n]` or `[n, 1]` tensor per feature, as a Batch and its id.

    An input with `parameters.binary_data_size` takes its data from `binary` (the bytes after
    the JSON), in input order: its size must be exactly what its shape and datatype make
    (400 `binary_size_mismatch` naming it), and the sizes must add up to `binary`'s length."""
    inputs = batch_list(document, "inputs", max_rows=len(specs) + 8, item="input tensor")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise unprocessable("invalid_type", "'id' must be a string", "id")
    by_name = {spec.name: spec for spec in specs}
    by_name.update((alias, spec) for spec in specs for alias in spec.aliases)
    tensors: dict[str, tuple[int, Any]] = {}
    offset = 0
    for index, tensor in enumerate(inputs):
        name, data, offset = _tensor(tensor, index, by_name, max_rows, binary, offset)
        if name in tensors:
            given = inputs[tensors[name][0]]["name"]
            if given != tensor["name"]:
                raise _twice(name, given, tensor["name"], f"inputs[{index}].name")
            raise unprocessable(
                "duplicate_input",
                f"inputs[{index}].name {name!r} is given twice",
                f"inputs[{index}].name",
            )
        tensors[name] = (index, data)
    if offset != len(binary):
        raise RequestError(
            400,
            "binary_size_mismatch",
            f"the body has {len(binary)} bytes of binary tensor data after its JSON but the "
            f"binary_data_size of the inputs add up to {offset}",
            "inputs",
        )
    missing = [spec.name for spec in specs if spec.name not in tensors]
    if missing:
        raise unprocessable(
            "missing_feature", f"'inputs' has no tensor for feature {missing[0]!r}", "inputs"
        )
    lengths = {len(data) for _, data in tensors.values()}
    if len(lengths) > 1:
        raise unprocessable(
            "shape_mismatch",
            f"'inputs' tensors have different row counts: {sorted(lengths)}; all need the same",
            "inputs",
        )
    columns, unseen = check_columns(
        ((spec, tensors[spec.name][1], _tensor_field(tensors[spec.name][0])) for spec in specs),
        reject_unseen=reject_unseen,
    )
    return Batch(columns=columns, rows=lengths.pop(), unseen=unseen), request_id


def _tensor_field(index: int) -> Callable[[int], str]:
    """A value is named by its tensor and position: `inputs[<tensor>].data[i]`."""
    return lambda position: f"inputs[{index}].data[{position}]"


def _tensor(
    tensor: Any,
    index: int,
    by_name: Mapping[str, FeatureSpec],
    max_rows: int,
    binary: bytes,
    offset: int,
) -> tuple[str, Any, int]:
    """The tensor's feature name, its values (a list, or an array read from binary data) and
    the offset of the next binary tensor."""
    where = f"inputs[{index}]"
    if not isinstance(tensor, dict):
        raise unprocessable(
            "invalid_input", f"{where} must be a tensor object, not {type_name(tensor)}", where
        )
    size = binary_size(tensor, where)
    for key in ("name", "shape", "datatype", "data")[: 3 if size is not None else 4]:
        if key not in tensor:
            raise unprocessable("missing_field", f"{where} has no {key!r}", f"{where}.{key}")
    name, datatype, shape = tensor["name"], tensor["datatype"], tensor["shape"]
    if not isinstance(name, str) or name not in by_name:
        raise unprocessable(
            "unknown_feature",
            f"{where}.name {name!r:.60} is not a model input; inputs: {', '.join(by_name)}",
            f"{where}.name",
        )
    spec = by_name[name]
    allowed = {V2_BYTES} if spec.categorical else V2_NUMERIC_TYPES
    if not isinstance(datatype, str) or datatype not in allowed:
        wanted = V2_BYTES if spec.categorical else "FP32 (or another numeric datatype)"
        raise unprocessable(
            "invalid_datatype",
            f"{where}.datatype is {datatype!r:.40}; input {name!r} takes {wanted}",
            f"{where}.datatype",
        )
    if (
        not isinstance(shape, list)
        or len(shape) not in (1, 2)
        or not all(type(size) is int and size >= 0 for size in shape)
        or (len(shape) == 2 and shape[1] != 1)
    ):
        raise unprocessable(
            "invalid_shape",
            f"{where}.shape must be [n] or [n, 1], not {shape!r:.60}",
            f"{where}.shape",
        )
    rows = shape[0]
    if rows == 0:
        raise unprocessable(
            "empty_batch",
            f"{where}.shape is {shape!r:.60}: the tensor has no rows",
            f"{where}.shape",
        )
    if rows > max_rows:
        raise RequestError(
            413,
            "too_many_rows",
            f"{where}.shape says {rows} rows; the limit is {max_rows}",
            f"{where}.shape",
        )
    if size is not None:
        if "data" in tensor:
            raise unprocessable(
                "invalid_input",
                f"{where} has both data and parameters.binary_data_size; give one",
                f"{where}.data",
            )
        if offset + size > len(binary):
            raise RequestError(
                400,
                "binary_size_mismatch",
                f"input {name!r}: {where}.parameters.binary_data_size is {size} bytes but only "
                f"{len(binary) - offset} bytes of binary tensor data are left after the JSON",
                f"{where}.parameters.binary_data_size",
            )
        chunk = binary[offset : offset + size]
        if datatype == V2_BYTES:
            return spec.name, bytes_tensor(chunk, rows, where, name), offset + size
        return spec.name, numeric_tensor(chunk, datatype, rows, where, name), offset + size
    data = _flat(tensor["data"], where, rows)
    if len(data) != rows:
        raise unprocessable(
            "shape_mismatch",
            f"{where}.data has {len(data)} values but shape {shape} needs {rows}",
            f"{where}.data",
        )
    return spec.name, data, offset


def requested_outputs(document: dict[str, Any], names: Sequence[str]) -> list[tuple[str, bool]]:
    """The outputs to answer, in order, each with whether it is asked for as binary data:
    `outputs` (every one of `names` when absent), `outputs[i].parameters.binary_data`, else
    the request's `parameters.binary_data_output`."""
    default = bool(_flag(document.get("parameters"), "binary_data_output", "parameters"))
    wanted = document.get("outputs")
    if wanted is None:
        return [(name, default) for name in names]
    if not isinstance(wanted, list):
        raise unprocessable(
            "invalid_type",
            f"'outputs' must be a list of output objects, not {type_name(wanted)}",
            "outputs",
        )
    chosen: list[tuple[str, bool]] = []
    for index, output in enumerate(wanted):
        where = f"outputs[{index}]"
        if not isinstance(output, dict):
            raise unprocessable(
                "invalid_output", f"{where} must be an object, not {type_name(output)}", where
            )
        name = output.get("name")
        if not isinstance(name, str) or name not in names:
            raise unprocessable(
                "unknown_output",
                f"{where}.name {name!r:.60} is not a model output; outputs: {', '.join(names)}",
                f"{where}.name",
            )
        if any(name == given for given, _ in chosen):
            raise unprocessable(
                "duplicate_output", f"{where}.name {name!r} is asked twice", f"{where}.name"
            )
        flag = _flag(output.get("parameters"), "binary_data", f"{where}.parameters")
        chosen.append((name, default if flag is None else flag))
    return chosen


def _flag(parameters: Any, key: str, where: str) -> Any:
    """A boolean parameter (None when not given)."""
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise unprocessable(
            "invalid_type", f"{where} must be an object, not {type_name(parameters)}", where
        )
    value = parameters.get(key)
    if value is not None and not isinstance(value, bool):
        raise unprocessable(
            "invalid_type",
            f"{where}.{key} must be true or false, not {type_name(value)}",
            f"{where}.{key}",
        )
    return value


def _flat(data: Any, where: str, rows: int) -> list[Any]:
    if not isinstance(data, list):
        raise unprocessable(
            "invalid_type",
            f"{where}.data must be an array, not {type_name(data)}",
            f"{where}.data",
        )
    if len(data) > rows or list not in set(map(type, data)):
        return data
    flat: list[Any] = []
    for value in data:
        if type(value) is not list:
            flat.append(value)
        elif len(value) == 1 and type(value[0]) is not list:
            flat.append(value[0])
        else:
            raise unprocessable(
                "invalid_shape",
                f"{where}.data nests deeper than the shape [n, 1] allows",
                f"{where}.data",
            )
    return flat
