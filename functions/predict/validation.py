"""Request bodies of the predict API, checked against the serving model's signature.

Pure (numpy only): every problem is a `RequestError` with an HTTP status, a machine code, a
sentence naming the field and the problem, and the field's path (`instances[3].age`). Values are
checked here and converted by `functions.ml.onnx_input` (the conversion training uses).

A feature is named by its normalised name (the signature's `name`) or by any of its `aliases`:
the column names the data producer wrote, which ingestion normalised (`Monthly Charges ($)` for
`monthly_charges`). Giving one feature under two names is refused (`duplicate_feature`).

Rules per feature value:

- null: allowed for every feature; the graph imputes it, as in training.
- numeric: a JSON number (int or float). Booleans are not numbers; strings are refused (no
  silent parsing); NaN, Infinity and values beyond float32's range (about 3.4e38) are refused.
- categorical: a string (`""` means missing, as in training). An integer or finite float is
  accepted as its decimal string (`3` -> `"3"`), the way `onnx_input.category` converts it;
  booleans, objects and lists are refused. A category not seen in training is counted (and
  encoded as none of the known ones) or refused with 422, per `[serving] unseen_categories`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import orjson

from functions.ml.onnx_input import (
    CATEGORICAL,
    MISSING_CATEGORY,
    NamedTwiceError,
    by_feature_name,
)

FLOAT32_MAX = float(np.finfo(np.float32).max)
_NUMBER_TYPES = frozenset({int, float})
_NUMBER_OR_NULL_TYPES = _NUMBER_TYPES | {type(None)}
_STRING_TYPES = frozenset({str, type(None)})
_MAX_LISTED_CATEGORIES = 20
JSON_MEDIA_TYPE = "application/json"


class RequestError(Exception):
    """A request the API refuses: `status` (4xx), `code`, a message naming the problem, and
    the offending `field` (a path into the body) when there is one."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        document: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.field is not None:
            document["field"] = self.field
        return document


def _unprocessable(code: str, message: str, field: str | None = None) -> RequestError:
    return RequestError(422, code, message, field)


@dataclass(frozen=True)
class FeatureSpec:
    """One model input, from `signature.json`: `aliases` are the producer's names for it."""

    name: str
    kind: str
    categories: frozenset[str]
    aliases: tuple[str, ...] = ()

    @property
    def categorical(self) -> bool:
        return self.kind == CATEGORICAL


def feature_specs(signature: Mapping[str, Any]) -> tuple[FeatureSpec, ...]:
    return tuple(
        FeatureSpec(
            name=spec["name"],
            kind=spec["type"],
            categories=frozenset(spec.get("categories") or ()),
            aliases=tuple(spec.get("aliases") or ()),
        )
        for spec in signature["inputs"]
    )


@lru_cache(maxsize=8)
def alias_names(specs: tuple[FeatureSpec, ...]) -> dict[str, str]:
    """Alias -> feature name, for every feature's aliases (empty when none was renamed)."""
    return {alias: spec.name for spec in specs for alias in spec.aliases}


def feature_names(names: Sequence[str], specs: Sequence[FeatureSpec]) -> list[str]:
    """Given column names (a header, a Parquet schema) as feature names: an alias becomes its
    feature's name, any other name stays. Raises NamedTwiceError when two name one feature."""
    aliases = alias_names(tuple(specs))
    by_feature_name(dict.fromkeys(names), aliases)
    return [aliases.get(name, name) for name in names]


def _twice(name: str, one: str, other: str, field: str) -> RequestError:
    return _unprocessable(
        "duplicate_feature",
        str(NamedTwiceError(name, one, other)),
        field,
    )


def _by_feature_name(instances: list[Any], aliases: Mapping[str, str]) -> list[Any]:
    """The rows, those with an alias among their keys keyed by feature name instead."""
    rows = []
    for index, row in enumerate(instances):
        if type(row) is dict and not aliases.keys().isdisjoint(row):
            try:
                row = by_feature_name(row, aliases)
            except NamedTwiceError as error:
                raise _unprocessable(
                    "duplicate_feature", str(error), f"instances[{index}].{error.second}"
                ) from None
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Batch:
    """Validated rows as columns (feature -> values; None or NaN is missing), ready for
    `onnx_inputs`, and how many values of each feature were categories unseen in training."""

    columns: dict[str, Any]
    rows: int
    unseen: dict[str, int]

    def row(self, index: int) -> dict[str, Any]:
        """One row as the model saw it (JSON-ready: missing is None)."""
        return {name: _plain(values[index]) for name, values in self.columns.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, np.floating):
        value = float(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_content_type(content_type: str | None, *, missing_ok: bool = False) -> None:
    """415 unless the body is declared JSON (`application/json` or `application/*+json`).
    `missing_ok`: no Content-Type at all means JSON (Open Inference Protocol routes: Triton,
    KServe and their reference client, tritonclient, send none)."""
    kind = media_type(content_type)
    if missing_ok and not kind:
        return
    if kind != JSON_MEDIA_TYPE and not (kind.startswith("application/") and kind.endswith("+json")):
        shown = f"{content_type!r}" if content_type else "missing"
        raise RequestError(
            415,
            "unsupported_media_type",
            f"Content-Type is {shown}; send the body as application/json",
            "Content-Type",
        )


def parse_json(
    body: str | None, *, base64_encoded: bool, max_bytes: int, json_length: str | None = None
) -> Any:
    """The JSON document of a request body (413 when larger than `max_bytes`, 400 when not
    JSON). `json_length` is the Open Inference Protocol's `Inference-Header-Content-Length`
    header when sent: the JSON must then be the whole body (binary tensor data after it is a
    415; a value that is not the body's byte count, 400).

    orjson parses standard JSON; a body it refuses is parsed again by the standard library,
    which also takes the `NaN` and `Infinity` literals (refused later, per value, with the
    field they are in) and words the error of a body that is not JSON."""
    if body is None or body == "":
        raise RequestError(400, "malformed_json", "the request body is empty; send a JSON object")
    raw: bytes | str
    if base64_encoded:
        try:
            raw = base64.b64decode(body, validate=True)
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
    if json_length is not None:
        _check_json_length(json_length, size)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _stdlib_json(raw)


INFERENCE_HEADER_LENGTH = "Inference-Header-Content-Length"


def _check_json_length(value: str, size: int) -> None:
    length = int(value) if value.strip().isdigit() else -1
    if 0 <= length < size:
        raise RequestError(
            415,
            "unsupported_media_type",
            f"the body has {size - length} bytes of binary tensor data after its {length}-byte "
            "JSON; send every tensor as JSON (tritonclient: binary_data=False)",
            INFERENCE_HEADER_LENGTH,
        )
    if length != size:
        raise RequestError(
            400,
            "invalid_header",
            f"{INFERENCE_HEADER_LENGTH} is {value!r:.40}; it must be the byte count of the "
            f"JSON at the start of the body ({size} bytes)",
            INFERENCE_HEADER_LENGTH,
        )


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


def _type_name(value: Any) -> str:
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


def batch_list(document: Any, key: str, *, max_rows: int, item: str = "instance") -> list[Any]:
    """`document[key]`, a non-empty list of at most `max_rows` items."""
    if not isinstance(document, dict):
        raise _unprocessable(
            "invalid_body",
            f"the body must be a JSON object with an {key!r} list, not {_type_name(document)}",
        )
    if key not in document:
        raise _unprocessable("missing_field", f"the body has no {key!r} list", key)
    items = document[key]
    if not isinstance(items, list):
        raise _unprocessable(
            "invalid_type", f"{key!r} must be a list of {item}s, not {_type_name(items)}", key
        )
    if not items:
        raise _unprocessable("empty_batch", f"{key!r} is empty; send at least one {item}", key)
    if len(items) > max_rows:
        raise RequestError(
            413,
            "too_many_rows",
            f"{key!r} has {len(items)} {item}s; the limit is {max_rows} per request",
            key,
        )
    return items


def instances_batch(
    document: Any,
    specs: Sequence[FeatureSpec],
    *,
    max_rows: int,
    reject_unseen: bool,
) -> Batch:
    """The v1 body `{"instances": [{feature: value, ...}, ...]}` as a validated Batch.

    Checked a column at a time, with C-level passes (`itemgetter`, `set(map(type, ...))`, one
    float64 matrix of the numeric features); only when one of them finds a problem are the
    rows walked, by `_checked_rows`, to name it (`instances[i].feature`)."""
    instances = batch_list(document, "instances", max_rows=max_rows)
    aliases = alias_names(tuple(specs))
    if aliases:
        instances = _by_feature_name(instances, aliases)
    layout = _layout(tuple(specs))
    if set(map(type, instances)) != {dict} or set(map(len, instances)) != {len(specs)}:
        return _checked_rows(instances, specs, reject_unseen=reject_unseen)
    try:
        rows = list(map(layout.values_of, instances))
    except KeyError:  # as many keys as features, so an unknown one instead of a feature
        return _checked_rows(instances, specs, reject_unseen=reject_unseen)
    by_feature = list(zip(*rows, strict=True))
    numeric = _numeric_matrix([by_feature[index] for index in layout.numeric], len(rows))
    if numeric is None:
        return _checked_rows(instances, specs, reject_unseen=reject_unseen)
    columns: dict[str, Any] = {}
    unseen: dict[str, int] = {}
    numeric_rows = iter(numeric)
    for spec, values in zip(specs, by_feature, strict=True):
        name = spec.name
        if not spec.categorical:
            columns[name] = next(numeric_rows)
            continue
        columns[name], count = _categorical(
            list(values),
            spec,
            lambda i, name=name: f"instances[{i}].{name}",  # type: ignore[misc]
            reject_unseen=reject_unseen,
        )
        if count:
            unseen[name] = count
    return Batch(columns=columns, rows=len(rows), unseen=unseen)


@dataclass(frozen=True)
class _Layout:
    """Where the numeric features are, and a getter of a row's values in signature order."""

    numeric: tuple[int, ...]
    values_of: Callable[[dict[str, Any]], tuple[Any, ...]]


@lru_cache(maxsize=8)
def _layout(specs: tuple[FeatureSpec, ...]) -> _Layout:
    names = tuple(spec.name for spec in specs)
    numeric = tuple(index for index, spec in enumerate(specs) if not spec.categorical)
    if len(names) >= 2:
        return _Layout(numeric, itemgetter(*names))
    # itemgetter of a single name returns the value, not a 1-tuple
    return _Layout(numeric, lambda row: tuple(row[name] for name in names))


def _numeric_matrix(columns: list[tuple[Any, ...]], rows: int) -> np.ndarray | None:
    """The numeric features' values as float64, one row per feature (NaN for null), or None
    when a value is not a number, or not finite within float32's range."""
    values = list(chain.from_iterable(columns))
    kinds = set(map(type, values))
    if not kinds <= _NUMBER_OR_NULL_TYPES:
        return None
    try:
        flat = np.array(values, dtype=np.float64)  # null -> NaN
    except OverflowError:  # an integer beyond float64
        return None
    bad = ~(np.abs(flat) <= FLOAT32_MAX)
    if bad.any() and (
        type(None) not in kinds
        or any(values[index] is not None for index in np.flatnonzero(bad).tolist())
    ):
        return None
    return flat.reshape(len(columns), rows)


def _checked_rows(
    instances: list[Any], specs: Sequence[FeatureSpec], *, reject_unseen: bool
) -> Batch:
    """`instances_batch` a row and a value at a time: slower, and names the first problem
    (rows before features, features in signature order)."""
    expected = {spec.name for spec in specs}
    for index, row in enumerate(instances):
        if type(row) is not dict:
            raise _unprocessable(
                "invalid_instance",
                f"instances[{index}] must be an object of feature values, not {_type_name(row)}",
                f"instances[{index}]",
            )
        if row.keys() != expected:
            _explain_keys(row, specs, index)
    columns: dict[str, Any] = {}
    unseen: dict[str, int] = {}
    for spec in specs:
        name = spec.name
        values = [row[name] for row in instances]
        columns[name], count = check_column(
            values,
            spec,
            lambda i, name=name: f"instances[{i}].{name}",  # type: ignore[misc]
            reject_unseen=reject_unseen,
        )
        if count:
            unseen[name] = count
    return Batch(columns=columns, rows=len(instances), unseen=unseen)


def _explain_keys(row: Mapping[str, Any], specs: Sequence[FeatureSpec], index: int) -> None:
    for spec in specs:
        if spec.name not in row:
            raise _unprocessable(
                "missing_feature",
                f"instances[{index}] has no value for feature {spec.name!r} "
                "(send null for a missing value)",
                f"instances[{index}].{spec.name}",
            )
    names = {spec.name for spec in specs}
    unknown = sorted(str(key) for key in row if key not in names)
    raise _unprocessable(
        "unknown_feature",
        f"instances[{index}] has unknown feature {unknown[0]!r}; the model takes: "
        f"{', '.join(spec.name for spec in specs)}",
        f"instances[{index}].{unknown[0]}",
    )


def check_column(
    values: list[Any],
    spec: FeatureSpec,
    field_of: Callable[[int], str],
    *,
    reject_unseen: bool,
) -> tuple[Any, int]:
    """One feature's values checked: (values for `onnx_inputs`, count of unseen categories)."""
    if spec.categorical:
        return _categorical(values, spec, field_of, reject_unseen=reject_unseen)
    return _numeric(values, spec, field_of), 0


def _numeric(values: list[Any], spec: FeatureSpec, field_of: Callable[[int], str]) -> np.ndarray:
    kinds = set(map(type, values))
    if not kinds <= _NUMBER_TYPES | {type(None)}:
        for index, value in enumerate(values):
            if type(value) not in _NUMBER_TYPES and value is not None:
                raise _unprocessable(
                    "invalid_type",
                    f"{field_of(index)} must be a number (feature {spec.name!r} is numeric), "
                    f"not {_type_name(value)}",
                    field_of(index),
                )
    try:
        array = np.array(values, dtype=np.float64)
    except OverflowError:
        array = np.array([_float_or_inf(value) for value in values], dtype=np.float64)
    bad = ~(np.abs(array) <= FLOAT32_MAX)
    if bad.any():
        for index in np.flatnonzero(bad).tolist():
            if values[index] is not None:
                raise _unprocessable(
                    "invalid_number",
                    f"{field_of(index)} must be a finite number within float32 range "
                    f"(|x| <= 3.4e38), not {values[index]!r:.40}",
                    field_of(index),
                )
    return array


def _float_or_inf(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _categorical(
    values: list[Any],
    spec: FeatureSpec,
    field_of: Callable[[int], str],
    *,
    reject_unseen: bool,
) -> tuple[list[Any], int]:
    distinct = _distinct(values)
    # The types of the distinct values are those of all values: no JSON value other than a
    # string equals a string, and none other than null equals null.
    if distinct is None or not set(map(type, distinct)) <= _STRING_TYPES:
        values = [_category(value, spec, field_of, index) for index, value in enumerate(values)]
        distinct = set(values)
    known = spec.categories
    if not known:
        return values, 0
    surprises = distinct.difference(known)
    surprises.discard(None)
    surprises.discard(MISSING_CATEGORY)
    if not surprises:
        return values, 0
    unseen = 0
    for index, value in enumerate(values):
        if value is None or value in known or value == MISSING_CATEGORY:
            continue
        if reject_unseen:
            raise _unprocessable(
                "unseen_category",
                f"{field_of(index)} is {value!r:.60}, a category the model did not see in "
                f"training; known: {_listed(known)}",
                field_of(index),
            )
        unseen += 1
    return values, unseen


def _distinct(values: list[Any]) -> set[Any] | None:
    try:
        return set(values)
    except TypeError:  # an array or an object among them
        return None


def _category(value: Any, spec: FeatureSpec, field_of: Callable[[int], str], index: int) -> Any:
    kind = type(value)
    if value is None or kind is str:
        return value
    if kind is int or (kind is float and math.isfinite(value)):
        return str(value)
    raise _unprocessable(
        "invalid_type",
        f"{field_of(index)} must be a string (feature {spec.name!r} is categorical), "
        f"not {_type_name(value) if kind is not float else 'a non-finite number'}",
        field_of(index),
    )


def _listed(categories: frozenset[str]) -> str:
    ordered = sorted(categories)
    shown = ", ".join(repr(value) for value in ordered[:_MAX_LISTED_CATEGORIES])
    more = len(ordered) - _MAX_LISTED_CATEGORIES
    return shown + (f" and {more} more" if more > 0 else "")


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
) -> tuple[Batch, str | None]:
    """An Open Inference Protocol v2 request (`{"inputs": [{"name", "shape", "datatype",
    "data"}], "id"?}`), one `[n]` or `[n, 1]` tensor per feature, as a Batch and its id."""
    inputs = batch_list(document, "inputs", max_rows=len(specs) + 8, item="input tensor")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise _unprocessable("invalid_type", "'id' must be a string", "id")
    by_name = {spec.name: spec for spec in specs}
    by_name.update((alias, spec) for spec in specs for alias in spec.aliases)
    tensors: dict[str, tuple[int, list[Any]]] = {}
    for index, tensor in enumerate(inputs):
        name, data = _tensor(tensor, index, by_name, max_rows)
        if name in tensors:
            given = inputs[tensors[name][0]]["name"]
            if given != tensor["name"]:
                raise _twice(name, given, tensor["name"], f"inputs[{index}].name")
            raise _unprocessable(
                "duplicate_input",
                f"inputs[{index}].name {name!r} is given twice",
                f"inputs[{index}].name",
            )
        tensors[name] = (index, data)
    missing = [spec.name for spec in specs if spec.name not in tensors]
    if missing:
        raise _unprocessable(
            "missing_feature", f"'inputs' has no tensor for feature {missing[0]!r}", "inputs"
        )
    lengths = {len(data) for _, data in tensors.values()}
    if len(lengths) > 1:
        raise _unprocessable(
            "shape_mismatch",
            f"'inputs' tensors have different row counts: {sorted(lengths)}; all need the same",
            "inputs",
        )
    columns: dict[str, Any] = {}
    unseen: dict[str, int] = {}
    for spec in specs:
        index, data = tensors[spec.name]
        columns[spec.name], count = check_column(
            data,
            spec,
            lambda i, index=index: f"inputs[{index}].data[{i}]",  # type: ignore[misc]
            reject_unseen=reject_unseen,
        )
        if count:
            unseen[spec.name] = count
    return Batch(columns=columns, rows=lengths.pop(), unseen=unseen), request_id


def _tensor(
    tensor: Any, index: int, by_name: Mapping[str, FeatureSpec], max_rows: int
) -> tuple[str, list[Any]]:
    where = f"inputs[{index}]"
    if not isinstance(tensor, dict):
        raise _unprocessable(
            "invalid_input", f"{where} must be a tensor object, not {_type_name(tensor)}", where
        )
    for key in ("name", "shape", "datatype", "data"):
        if key not in tensor:
            raise _unprocessable("missing_field", f"{where} has no {key!r}", f"{where}.{key}")
    name, datatype, shape = tensor["name"], tensor["datatype"], tensor["shape"]
    if not isinstance(name, str) or name not in by_name:
        raise _unprocessable(
            "unknown_feature",
            f"{where}.name {name!r:.60} is not a model input; inputs: {', '.join(by_name)}",
            f"{where}.name",
        )
    spec = by_name[name]
    allowed = {V2_BYTES} if spec.categorical else V2_NUMERIC_TYPES
    if not isinstance(datatype, str) or datatype not in allowed:
        wanted = V2_BYTES if spec.categorical else "FP32 (or another numeric datatype)"
        raise _unprocessable(
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
        raise _unprocessable(
            "invalid_shape",
            f"{where}.shape must be [n] or [n, 1], not {shape!r:.60}",
            f"{where}.shape",
        )
    rows = shape[0]
    if rows == 0:
        raise _unprocessable(
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
    data = _flat(tensor["data"], where, rows)
    if len(data) != rows:
        raise _unprocessable(
            "shape_mismatch",
            f"{where}.data has {len(data)} values but shape {shape} needs {rows}",
            f"{where}.data",
        )
    return spec.name, data


def _flat(data: Any, where: str, rows: int) -> list[Any]:
    if not isinstance(data, list):
        raise _unprocessable(
            "invalid_type",
            f"{where}.data must be an array, not {_type_name(data)}",
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
            raise _unprocessable(
                "invalid_shape",
                f"{where}.data nests deeper than the shape [n, 1] allows",
                f"{where}.data",
            )
    return flat
