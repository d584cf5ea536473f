"""`GET /openapi.json` stays the document it was: the builder's output for a small trained model
(classifier, default serving settings), with unseen categories refused, with producer aliases,
and with no model, compared with the recorded documents in `snapshots/`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from functions.common.config.serving import ServingConfig
from functions.predict import openapi
from functions.serving.model import ServingModel

SNAPSHOTS = Path(__file__).parent / "snapshots"


def _with_aliases(model: ServingModel) -> ServingModel:
    inputs = [dict(spec) for spec in model.signature["inputs"]]
    inputs[0]["aliases"] = ["Tenure (months)", "tenure months"]
    inputs[-1]["aliases"] = ["Region"]
    return dataclasses.replace(model, signature={**model.signature, "inputs": inputs})


CASES: dict[str, tuple[Callable[[ServingModel], ServingModel | None], dict[str, Any]]] = {
    "openapi-default": (lambda model: model, {}),
    "openapi-reject-unseen": (lambda model: model, {"unseen_categories": "reject"}),
    "openapi-aliases": (_with_aliases, {"unseen_categories": "reject", "max_batch_rows": 50}),
    "openapi-no-model": (lambda model: None, {}),
}


def documents(make_service: Callable[..., Any]) -> dict[str, dict[str, Any]]:
    model = make_service().store.current()
    return {
        name: openapi.document(pick(model), ServingConfig(**serving))
        for name, (pick, serving) in CASES.items()
    }


@pytest.mark.parametrize("name", list(CASES))
def test_the_document_is_the_recorded_one(make_service: Callable[..., Any], name: str) -> None:
    recorded = json.loads((SNAPSHOTS / f"{name}.json").read_text(encoding="utf-8"))
    assert documents(make_service)[name] == recorded
