"""Writes docs/openapi.json: the document `GET /openapi.json` serves, for the churn example
model of mlops.toml with the default `[serving]` settings. The serving page renders it
(docs/hooks/reference.py); a unit test checks the committed file equals what the code builds.

    make openapi        # or: .venv/bin/python docs/hooks/openapi_document.py
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "docs" / "openapi.json"

_CATEGORIES = {
    "contract": ["month-to-month", "one year", "two year"],
    "payment_method": ["bank transfer", "credit card", "electronic check", "mailed check"],
    "internet_service": ["dsl", "fiber optic", "no"],
    "region": ["east", "north", "south", "west"],
}
_NUMERIC = ["age", "tenure_months", "monthly_charges", "total_charges", "support_calls"]
_ALIASES = {"monthly_charges": ["Monthly Charges ($)"]}


def example_model() -> Any:
    """What the document reads of a loaded model: its name, version and signature inputs."""
    inputs = [
        {"name": name, "type": "numeric", "categories": [], "aliases": _ALIASES.get(name, [])}
        for name in _NUMERIC
    ] + [
        {"name": name, "type": "categorical", "categories": values, "aliases": []}
        for name, values in _CATEGORIES.items()
    ]
    signature = {"task": "classification", "inputs": inputs, "classes": ["no", "yes"]}
    return SimpleNamespace(name="churn", version=1, signature=signature)


def build() -> dict[str, Any]:
    from functions.common.config.loading import load_config
    from functions.common.config.serving import ServingConfig
    from functions.predict.openapi import document

    return document(example_model(), ServingConfig(), load_config(REPO / "mlops.toml").model_names)


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT.relative_to(REPO)}")
