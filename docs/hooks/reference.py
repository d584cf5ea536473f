"""mkdocs hook: the generated parts of the docs site.

- `<!-- config-reference -->` on a page becomes the reference of every `mlops.toml` key (type,
  default, allowed values, description), read from the config model itself;
- `<!-- openapi-reference -->` becomes the routes of the committed `docs/openapi.json` as
  tables, followed by the document itself (no JavaScript, nothing fetched).

The config model's fields are described by their attribute docstrings, read from the source.
"""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
import types
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from functions.common.config.loading import MlopsConfig  # the root config model

REPO = Path(__file__).resolve().parents[2]

CONFIG_MARKER = "<!-- config-reference -->"
OPENAPI_MARKER = "<!-- openapi-reference -->"
OPENAPI_FILE = REPO / "docs" / "openapi.json"


def on_page_markdown(markdown: str, **_: Any) -> str:
    if CONFIG_MARKER in markdown:
        markdown = markdown.replace(CONFIG_MARKER, config_reference())
    if OPENAPI_MARKER in markdown:
        document = json.loads(OPENAPI_FILE.read_text(encoding="utf-8"))
        markdown = markdown.replace(OPENAPI_MARKER, openapi_reference(document))
    return markdown


# --- the config reference ------------------------------------------------------------------


def config_reference(root: type[BaseModel] = MlopsConfig) -> str:
    """Markdown: one table per section (`[dataset]`, `[train.sagemaker]`, `[gate.metrics.<metric>]`,
    ...), one row per key, named by its dotted path."""
    out: list[str] = []
    for name, field in root.model_fields.items():
        for path, model in _sections(name, field.annotation):
            out.append(_section(path, model))
    return "\n\n".join(out)


def _sections(path: str, annotation: Any) -> list[tuple[str, type[BaseModel]]]:
    """The section tables under `path`: the model itself, then its nested sections."""
    model, path = _nested(path, annotation)
    if model is None:
        return []
    found = [(path, model)]
    for name, field in model.model_fields.items():
        found += _sections(f"{path}.{name}", field.annotation)
    return found


_TABLE_KEYS = {"stages": "stage", "metrics": "metric", "datasets": "dataset", "models": "model"}


def _nested(path: str, annotation: Any) -> tuple[type[BaseModel] | None, str]:
    """The section model a field holds and the section's path: a table of sections
    (`stages: dict[str, StageConfig]`) is `stages.<stage>`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, path
    if get_origin(annotation) is dict:
        value = get_args(annotation)[1]
        if isinstance(value, type) and issubclass(value, BaseModel):
            key = _TABLE_KEYS.get(path.rsplit(".", 1)[-1], "name")
            return value, f"{path}.<{key}>"
    return None, path


def _section(path: str, model: type[BaseModel]) -> str:
    lines = [f"### `[{path}]`", ""]
    if "__doc__" in vars(model) and model.__doc__:
        lines += [" ".join(inspect.cleandoc(model.__doc__).split()), ""]
    docs = attribute_docstrings(model)
    lines += ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
    for name, field in model.model_fields.items():
        nested, where = _nested(f"{path}.{name}", field.annotation)
        if nested is not None:
            described = _cell(field.description or docs.get(name, ""))
            lines.append(f"| `{path}.{name}` | table | | | `[{where}]`, below. {described} |")
            continue
        cells = [
            f"`{path}.{name}`",
            _type(field.annotation),
            _default(field),
            ", ".join(_allowed(field.annotation, list(field.metadata))),
            field.description or docs.get(name, ""),
        ]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines)


def attribute_docstrings(model: type[BaseModel]) -> dict[str, str]:
    """The docstring under each field of `model` (and of its base models), by field name."""
    found: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            source = textwrap.dedent(inspect.getsource(cls))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0]
        assert isinstance(body, ast.ClassDef)
        statements = body.body
        for here, after in zip(statements, statements[1:], strict=False):
            if (
                isinstance(here, ast.AnnAssign)
                and isinstance(here.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                found[here.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return found


def _type(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is type(None):
        return "none"
    if origin is Annotated:
        return _type(args[0])
    if origin in (Union, types.UnionType):
        return " or ".join(_type(arg) for arg in args)
    if origin is Literal:
        return "string" if all(isinstance(arg, str) for arg in args) else "value"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "string"
    if origin is dict:
        return f"table of {_type(args[1])}"
    if origin is list:
        return f"list of {_type(args[0])}"
    if origin is tuple:
        return f"[{', '.join(_type(arg) for arg in args)}]"
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if annotation is Any:
        return "any"
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _allowed(annotation: Any, metadata: list[Any]) -> list[str]:
    """Allowed values: literal choices, enum values, bounds and patterns (of the value, or of a
    table's or list's values, `value:` in front)."""
    origin, args = get_origin(annotation), get_args(annotation)
    found = [_constraint(item) for item in metadata]
    if origin is Annotated:
        found += _allowed(args[0], list(args[1:]))
    elif origin in (Union, types.UnionType):
        for arg in args:
            found += _allowed(arg, [])
    elif origin is Literal:
        found.append(" / ".join(f"`{arg}`" for arg in args))
    elif isinstance(annotation, type) and issubclass(annotation, Enum):
        found.append(" / ".join(f"`{member.value}`" for member in annotation))
    elif origin in (dict, list):
        found += [f"values: {item}" for item in _allowed(args[-1], [])]
    elif origin is tuple:
        inner = {item for arg in args for item in _allowed(arg, [])}
        found += [f"each {item}" for item in sorted(inner)]
    return [item for item in found if item]


_BOUNDS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))


def _constraint(item: Any) -> str:
    parts = [
        f"{symbol} {_number(getattr(item, name))}"
        for name, symbol in _BOUNDS
        if getattr(item, name, None) is not None
    ]
    for name, what in (("min_length", "length >="), ("max_length", "length <=")):
        if getattr(item, name, None) is not None:
            parts.append(f"{what} {getattr(item, name)}")
    if getattr(item, "pattern", None):
        parts.append(f"matches `{item.pattern}`")
    if get_origin(item) is Annotated or hasattr(item, "metadata"):
        parts += [_constraint(inner) for inner in getattr(item, "metadata", [])]
    return ", ".join(part for part in parts if part)


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and abs(value) >= 10_000 else str(value)


def _default(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        return "(table)"
    return f"`{json.dumps(value, default=_plain)}`"


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    raise TypeError(type(value))


def _cell(text: str) -> str:
    """One table cell: a pipe outside code is escaped (Markdown's tables leave pipes inside
    code spans alone)."""
    parts = text.replace("\n", " ").split("`")
    return "`".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))


# --- the OpenAPI reference -----------------------------------------------------------------


def openapi_reference(document: dict[str, Any]) -> str:
    """The routes as a table, each operation's responses, then the whole document."""
    lines = [
        f"Document: `{document['info']['title']}`, OpenAPI {document['openapi']}.",
        "",
        "| method | path | operation | summary | responses |",
        "|---|---|---|---|---|",
    ]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = ", ".join(
                f"{code} {response.get('description', '')}".strip()
                for code, response in operation.get("responses", {}).items()
            )
            lines.append(
                "| "
                + " | ".join(
                    _cell(cell)
                    for cell in (
                        method.upper(),
                        f"`{path}`",
                        f"`{operation.get('operationId', '')}`",
                        operation.get("summary", ""),
                        responses,
                    )
                )
                + " |"
            )
    lines += ["", "Schemas: " + ", ".join(f"`{n}`" for n in document["components"]["schemas"])]
    body = json.dumps(document, indent=2)
    lines += ["", '??? example "The whole document (`openapi.json`)"', "", "    ```json"]
    lines += [f"    {line}" if line else "" for line in body.splitlines()]
    lines += ["    ```", ""]
    return "\n".join(lines)
