"""The docs site's generated parts: the configuration reference lists every config key, and
the committed OpenAPI document is the one the code serves."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from functions.common.config.loading import MlopsConfig

HOOKS = Path(__file__).resolve().parents[3] / "docs" / "hooks"
TABLE_KEYS = {
    "stages": "stage",
    "metrics": "metric",
    "datasets": "dataset",
    "models": "model",
}  # a table of sections: its key's name


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_hooks_{name}", HOOKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _keys(model: type[BaseModel], path: str) -> list[str]:
    """Every key under `model`, dotted; a table of sections is `<path>.<key>`."""
    keys = []
    for name, field in model.model_fields.items():
        key = f"{path}.{name}" if path else name
        keys.append(key)
        annotation: Any = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += _keys(annotation, key)
        elif get_origin(annotation) is dict:
            value = get_args(annotation)[1]
            if isinstance(value, type) and issubclass(value, BaseModel):
                keys += _keys(value, f"{key}.<{TABLE_KEYS[name]}>")
    return keys


def test_the_configuration_reference_lists_every_config_key() -> None:
    text = _load("reference").config_reference()
    keys = _keys(MlopsConfig, "")
    sections = [key for key in keys if "." not in key]
    nested = [key for key in keys if "." in key]
    assert len(nested) > 100
    missing = [key for key in nested if f"| `{key}` |" not in text]
    assert not missing, missing
    headed = [s for s in sections if f"### `[{s}" not in text]
    assert not headed, headed


def test_the_configuration_reference_gives_type_default_allowed_values_and_description() -> None:
    text = _load("reference").config_reference()
    row = next(line for line in text.splitlines() if line.startswith("| `serving.auth` |"))
    cells = [cell.strip() for cell in row.strip("|").split(" | ")]
    assert cells == [
        "`serving.auth`",
        "string",
        '`"iam"`',
        "`none` / `iam` / `api_key`",
        "API Gateway authorization: SigV4 (IAM) by default, or API keys with a usage plan.",
    ]
    assert "| `dataset.target` | string | required |" in text
    assert "| `ingest.memory_mb` | integer | `2048` | >= 512, <= 10,240 |" in text


def test_the_committed_openapi_document_is_the_one_the_code_builds() -> None:
    module = _load("openapi_document")
    committed = module.OUT.read_text(encoding="utf-8")
    assert committed == module.render(), "docs/openapi.json is stale: run `make openapi`"
    document = json.loads(committed)
    assert set(document["paths"]) >= {"/v1/predict", "/v1/model", "/openapi.json"}
    rendered = _load("reference").openapi_reference(document)
    for path in document["paths"]:
        assert f"`{path}`" in rendered
