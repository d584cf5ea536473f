"""The two registry reads a serving function makes, without pydantic: where an alias points
(`get_alias`) and a registered version (`get_version`), as plain named tuples (immutable, and
cheaper to define at import than frozen dataclasses).

`ModelRegistry` returns the same items as the pydantic contracts `AliasState` and
`ModelVersion` (`functions.common.contracts`), which the writers (register stage, CLI, canary)
validate. The predict function only reads them, and importing pydantic and building those
models would be a fifth of its cold start, so `ServingRegistry` reads the same items (the same
stored formats, upgraded by `functions.common.formats`) and checks each field as the contract
does: required fields present, integers as integers (a whole float, as DynamoDB numbers come
back, is one), strings as strings, metrics as floats, flags as booleans (or 0 and 1). A field
that fails raises `RegistryError` naming the item and the field (where the contract raised its
validation error). The attribute names and values are the contracts'
(`tests/integration/predict/test_serving_reads.py` compares both readers on the same items).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from functions.adapters.registry.items import ModelTable
from functions.common import formats
from functions.common.errors import RegistryError
from functions.common.layout import alias_sort_key, model_key, version_sort_key

PRODUCTION = "production"
CANDIDATE = "candidate"

_MISSING = object()


class AliasPointer(NamedTuple):
    """Where a model's alias points now (the fields of contract `AliasState`)."""

    model_name: str
    alias: str
    version: int
    previous_version: int | None
    updated_at: str
    execution: str | None
    reason: str
    revision: int


class RegisteredVersion(NamedTuple):
    """A registered model version (the fields of contract `ModelVersion`)."""

    model_name: str
    version: int
    prefix: str
    onnx_key: str
    onnx_sha256: str
    run_id: str
    data_version: str
    data_versions: tuple[str, ...]
    metrics: Mapping[str, float]
    created_at: str
    model_card_key: str
    promoted: bool
    previous_version: int | None = None
    code_version: str | None = None


def _integer(value: Any) -> int | None:
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    return None


def _number(value: Any) -> float | None:
    return float(value) if type(value) in (int, float) else None


def _text(value: Any) -> str | None:
    return value if type(value) is str else None


def _flag(value: Any) -> bool | None:
    if type(value) is bool:
        return value
    return bool(value) if type(value) is int and value in (0, 1) else None


def _texts(value: Any) -> tuple[str, ...] | None:
    if type(value) is not list or any(type(item) is not str for item in value):
        return None
    return tuple(value)


def _metrics(value: Any) -> dict[str, float] | None:
    if type(value) is not dict:
        return None
    numbers = {key: _number(item) for key, item in value.items()}
    if any(number is None for number in numbers.values()):
        return None
    return numbers  # type: ignore[return-value]


_READERS: dict[str, Any] = {
    "int": _integer,
    "int | None": _integer,
    "str": _text,
    "str | None": _text,
    "bool": _flag,
    "tuple[str, ...]": _texts,
    "Mapping[str, float]": _metrics,
}


def _plain(kind: Any, item: str, found: Mapping[str, Any], defaults: bool) -> Any:
    """An instance of named tuple `kind` from `found`, each field checked by its type.
    Missing fields are an error, except (`defaults`) those with a default; with `defaults`
    False a missing field is None where the type allows it (as the alias contract reads
    them)."""
    values: dict[str, Any] = {}
    for name in kind._fields:
        # the annotation's text (NamedTuple keeps `from __future__` annotations as ForwardRef)
        annotation = str(getattr(kind.__annotations__[name], "__forward_arg__", ""))
        raw = found.get(name, _MISSING)
        if raw is _MISSING:
            if defaults and name in kind._field_defaults:
                values[name] = kind._field_defaults[name]
                continue
            raw = None
        if raw is None and annotation.endswith("| None"):
            values[name] = None
            continue
        value = _READERS[annotation](raw)
        if value is None:
            problem = "missing" if raw is None else f"not a valid {annotation}: {raw!r}"
            raise RegistryError(f"{item}: field {name!r} is {problem}")
        values[name] = value
    return kind(**values)


class ServingRegistry(ModelTable):
    """The alias and version reads of the model registry (one registry table)."""

    def get_alias(self, model: str, alias: str = PRODUCTION) -> AliasPointer | None:
        pointer: AliasPointer | None = self._plain_item(
            model,
            alias_sort_key(alias),
            formats.ALIAS_ITEM,
            AliasPointer,
            f"alias {alias!r} of model {model!r}",
        )
        return pointer

    def get_version(self, model: str, version: int) -> RegisteredVersion | None:
        registered: RegisteredVersion | None = self._plain_item(
            model,
            version_sort_key(version),
            formats.MODEL_VERSION_ITEM,
            RegisteredVersion,
            f"version {version} of model {model!r}",
        )
        return registered

    def _plain_item(self, model: str, sk: str, stored: str, kind: type[Any], item: str) -> Any:
        """The item at `sk` of `model` (stored format `stored`) as named tuple `kind`, or None.
        An alias reads missing optional fields as None (`AliasState`'s reader does); a version
        takes its fields' defaults."""
        found = self._get(model_key(model), sk)
        if not found:
            return None
        return _plain(kind, item, formats.read(stored, found), defaults=kind is RegisteredVersion)
