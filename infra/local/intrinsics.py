"""CloudFormation intrinsic functions, pseudo-parameters, parameters and conditions, resolved
the way CloudFormation does at deploy time (enough for what CDK synthesizes)."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class TemplateError(RuntimeError):
    """The template uses something the local cloud cannot resolve; the message says where."""


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Any = _NoValue()
"""`Ref: AWS::NoValue`: the enclosing property or list item is removed."""


@dataclass(frozen=True)
class StackContext:
    stack_name: str
    account_id: str = ACCOUNT_ID
    region: str = REGION
    partition: str = "aws"
    url_suffix: str = "amazonaws.com"

    @property
    def stack_id(self) -> str:
        return (
            f"arn:{self.partition}:cloudformation:{self.region}:{self.account_id}:stack/"
            f"{self.stack_name}/00000000-0000-0000-0000-000000000000"
        )

    def pseudo_parameters(self) -> dict[str, Any]:
        return {
            "AWS::AccountId": self.account_id,
            "AWS::Region": self.region,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": self.url_suffix,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": self.stack_id,
            "AWS::NoValue": NO_VALUE,
            "AWS::NotificationARNs": [],
        }


class Deployed(Protocol):
    """What a created resource offers to `Ref` and `Fn::GetAtt`."""

    @property
    def ref(self) -> str: ...

    def attribute(self, name: str) -> Any: ...


class Resolver:
    """Resolves one template's values against pseudo-parameters, parameters, conditions and
    the resources created so far (`lookup` returns None for a resource not created yet)."""

    def __init__(
        self,
        template: dict[str, Any],
        context: StackContext,
        lookup: Callable[[str], Deployed | None],
        parameters: dict[str, Any] | None = None,
        ssm_lookup: Callable[[str], str] | None = None,
    ) -> None:
        self._template = template
        self._context = context
        self._pseudo = context.pseudo_parameters()
        self._lookup = lookup
        self._parameter_overrides = parameters or {}
        self._ssm_lookup = ssm_lookup
        self._parameter_cache: dict[str, Any] = {}
        self._condition_cache: dict[str, bool] = {}

    def resolve(self, value: Any, where: str) -> Any:
        """`value` with every intrinsic replaced; `where` names the place for error messages."""
        if isinstance(value, list):
            items = [self.resolve(item, where) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            [(key, argument)] = value.items()
            if key == "Ref":
                return self._ref(argument, where)
            if key.startswith("Fn::"):
                return self._function(key, argument, where)
        resolved = {key: self.resolve(item, f"{where}.{key}") for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    def condition(self, name: str, where: str = "Conditions") -> bool:
        if name not in self._condition_cache:
            conditions = self._template.get("Conditions", {})
            if name not in conditions:
                raise TemplateError(f"{where}: unknown condition {name!r}")
            self._condition_cache[name] = _truth(self, conditions[name], f"Conditions.{name}")
        return self._condition_cache[name]

    def _ref(self, name: Any, where: str) -> Any:
        if not isinstance(name, str):
            raise TemplateError(f"{where}: Ref takes a name, got {name!r}")
        if name in self._pseudo:
            return self._pseudo[name]
        if name in self._template.get("Parameters", {}):
            return self._parameter(name, where)
        return self._deployed(name, where).ref

    def _deployed(self, logical_id: str, where: str) -> Deployed:
        if logical_id not in self._template.get("Resources", {}):
            raise TemplateError(f"{where}: reference to unknown resource {logical_id!r}")
        deployed = self._lookup(logical_id)
        if deployed is None:
            raise TemplateError(f"{where}: resource {logical_id!r} is not created yet")
        return deployed

    def _get_att(self, argument: Any, where: str) -> Any:
        if isinstance(argument, str):
            logical_id, _, attribute = argument.partition(".")
        else:
            logical_id, attribute = argument[0], self.resolve(argument[1], where)
        try:
            return self._deployed(logical_id, where).attribute(attribute)
        except KeyError:
            raise TemplateError(
                f"{where}: Fn::GetAtt {logical_id}.{attribute} is not emulated locally"
            ) from None

    def _parameter(self, name: str, where: str) -> Any:
        if name in self._parameter_cache:
            return self._parameter_cache[name]
        spec = self._template["Parameters"][name]
        kind = str(spec.get("Type", "String"))
        if name in self._parameter_overrides:
            value = self._parameter_overrides[name]
        elif kind.startswith("AWS::SSM::Parameter::Value"):
            if self._ssm_lookup is None:
                raise TemplateError(f"{where}: SSM parameter {name!r} cannot be resolved here")
            value = self._ssm_lookup(str(spec["Default"]))
        elif "Default" in spec:
            value = spec["Default"]
        else:
            raise TemplateError(f"{where}: parameter {name!r} has no value and no default")
        if kind == "CommaDelimitedList" or kind.startswith("List<"):
            value = value if isinstance(value, list) else str(value).split(",")
        self._parameter_cache[name] = value
        return value

    def _function(self, key: str, argument: Any, where: str) -> Any:
        handler = _FUNCTIONS.get(key)
        if handler is None:
            raise TemplateError(f"{where}: intrinsic {key} is not supported by the local cloud")
        return handler(self, argument, f"{where}.{key}")

    def _sub(self, argument: Any, where: str) -> str:
        if isinstance(argument, str):
            text, variables = argument, {}
        else:
            text, variables = argument[0], self.resolve(argument[1], where)

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return _text(variables[name], where)
            if "." in name:
                return _text(self._get_att(name, where), where)
            return _text(self._ref(name, where), where)

        return _SUB_VARIABLE.sub(replace, text)

    def _if(self, argument: Any, where: str) -> Any:
        name, if_true, if_false = argument
        return self.resolve(if_true if self.condition(name, where) else if_false, where)

    def _find_in_map(self, argument: Any, where: str) -> Any:
        map_name, top, second = (self.resolve(part, where) for part in argument[:3])
        try:
            return self._template["Mappings"][map_name][top][second]
        except KeyError:
            raise TemplateError(f"{where}: no mapping {map_name}.{top}.{second}") from None


def _text(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise TemplateError(f"{where}: cannot use {value!r} inside a string")


def _join(resolver: Resolver, argument: Any, where: str) -> str:
    delimiter, items = argument
    values = resolver.resolve(items, where)
    return str(delimiter).join(_text(item, where) for item in values)


def _select(resolver: Resolver, argument: Any, where: str) -> Any:
    index, items = resolver.resolve(argument[0], where), resolver.resolve(argument[1], where)
    try:
        return items[int(index)]
    except (IndexError, ValueError, TypeError):
        raise TemplateError(f"{where}: cannot select {index!r} from {items!r}") from None


def _split(resolver: Resolver, argument: Any, where: str) -> list[str]:
    delimiter, text = argument
    return str(resolver.resolve(text, where)).split(delimiter)


def _equals(resolver: Resolver, argument: Any, where: str) -> bool:
    left, right = (resolver.resolve(item, where) for item in argument)
    return bool(left == right)


def _not(resolver: Resolver, argument: Any, where: str) -> bool:
    return not _truth(resolver, argument[0], where)


def _and(resolver: Resolver, argument: Any, where: str) -> bool:
    return all(_truth(resolver, item, where) for item in argument)


def _or(resolver: Resolver, argument: Any, where: str) -> bool:
    return any(_truth(resolver, item, where) for item in argument)


def _truth(resolver: Resolver, value: Any, where: str) -> bool:
    if isinstance(value, dict) and set(value) == {"Condition"}:
        return resolver.condition(value["Condition"], where)
    result = resolver.resolve(value, where)
    if not isinstance(result, bool):
        raise TemplateError(f"{where}: expected a boolean condition, got {result!r}")
    return result


def _contains(resolver: Resolver, argument: Any, where: str) -> bool:
    items, item = (resolver.resolve(part, where) for part in argument)
    return item in items


_FUNCTIONS: dict[str, Callable[[Resolver, Any, str], Any]] = {
    "Fn::GetAtt": lambda r, a, w: r._get_att(a, w),
    "Fn::Sub": lambda r, a, w: r._sub(a, w),
    "Fn::Join": _join,
    "Fn::Select": _select,
    "Fn::Split": _split,
    "Fn::If": lambda r, a, w: r._if(a, w),
    "Fn::Equals": _equals,
    "Fn::Not": _not,
    "Fn::And": _and,
    "Fn::Or": _or,
    "Fn::Contains": _contains,
    "Fn::FindInMap": lambda r, a, w: r._find_in_map(a, w),
    "Fn::Base64": lambda r, a, w: base64.b64encode(_text(r.resolve(a, w), w).encode()).decode(),
    "Fn::GetAZs": lambda r, a, w: [f"{r._context.region}{zone}" for zone in "abcdef"],
    "Fn::Length": lambda r, a, w: len(r.resolve(a, w)),
    "Fn::ToJsonString": lambda r, a, w: json.dumps(r.resolve(a, w), separators=(",", ":")),
}


def references(value: Any) -> Iterator[str]:
    """Names a value refers to through Ref, Fn::GetAtt and Fn::Sub (resources, parameters and
    pseudo-parameters alike; the caller keeps the resources)."""
    if isinstance(value, list):
        for item in value:
            yield from references(item)
    elif isinstance(value, dict):
        for key, argument in value.items():
            if key == "Ref" and isinstance(argument, str):
                yield argument
            elif key == "Fn::GetAtt":
                yield argument.partition(".")[0] if isinstance(argument, str) else argument[0]
            elif key == "Fn::Sub":
                yield from _sub_references(argument)
            else:
                yield from references(argument)


def _sub_references(argument: Any) -> Iterator[str]:
    text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
    yield from references(variables)
    for name in _SUB_VARIABLE.findall(text):
        if not name.startswith("!") and name not in variables:
            yield name.partition(".")[0]
