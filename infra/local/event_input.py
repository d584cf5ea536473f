"""What an EventBridge target receives: the event, or its `Input`, `InputPath` or
`InputTransformer` rendering (moto applies only the transformer, and not for S3 events)."""

from __future__ import annotations

import json
import re
from typing import Any

from jsonpath_ng.ext import parse as parse_jsonpath

_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.\-]+)>")


def target_input(target: dict[str, Any], event: dict[str, Any], rule_arn: str = "") -> Any:
    """The payload EventBridge delivers to `target` for `event` (a JSON value, or text)."""
    if target.get("Input") is not None:
        try:
            return json.loads(target["Input"])
        except json.JSONDecodeError:
            return target["Input"]
    if target.get("InputPath"):
        return json_path(event, target["InputPath"])
    transformer = target.get("InputTransformer")
    if transformer:
        values = {
            name: json_path(event, path)
            for name, path in (transformer.get("InputPathsMap") or {}).items()
        }
        values.setdefault("aws.events.rule-arn", rule_arn)
        values.setdefault("aws.events.rule-name", rule_arn.rpartition("/")[2])
        values.setdefault("aws.events.event", event)
        values.setdefault("aws.events.event.json", event)
        values.setdefault("aws.events.event.ingestion-time", event.get("time"))
        return render_template(transformer["InputTemplate"], values)
    return event


def json_path(event: dict[str, Any], path: str) -> Any:
    matches = parse_jsonpath(path).find(event)
    if not matches:
        return None
    if len(matches) == 1:
        return matches[0].value
    return [match.value for match in matches]


def render_template(template: str, values: dict[str, Any]) -> Any:
    """EventBridge's substitution: in a JSON template a placeholder inside quotes takes the
    value's text and one outside quotes takes its JSON; a text template takes raw text."""
    probe = _PLACEHOLDER.sub(lambda m: "0" if m.group(1) in values else m.group(0), template)
    try:
        json.loads(probe)
    except json.JSONDecodeError:
        return _PLACEHOLDER.sub(lambda m: _raw(values, m), template)
    rendered = _render_json(template, values)
    return json.loads(rendered)


def _raw(values: dict[str, Any], match: re.Match[str]) -> str:
    name = match.group(1)
    if name not in values:
        return match.group(0)
    value = values[name]
    return value if isinstance(value, str) else json.dumps(value)


def _render_json(template: str, values: dict[str, Any]) -> str:
    out: list[str] = []
    in_string = False
    index = 0
    while index < len(template):
        char = template[index]
        match = _PLACEHOLDER.match(template, index) if char == "<" else None
        if match and match.group(1) in values:
            out.append(_placeholder(values[match.group(1)], in_string))
            index = match.end()
            continue
        if char == "\\" and in_string:
            out.append(template[index : index + 2])
            index += 2
            continue
        if char == '"':
            in_string = not in_string
        out.append(char)
        index += 1
    return "".join(out)


def _placeholder(value: Any, in_string: bool) -> str:
    if not in_string:
        return json.dumps(value)
    text = value if isinstance(value, str) else json.dumps(value)
    return json.dumps(text)[1:-1]
