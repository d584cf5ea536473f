"""Safe rollout through the predict Lambda against moto, with real ONNX models: a share of
requests is answered by alias `candidate` (and says so), the store names the running rollout
(what capture records carry), and predict writes no counter: the canary function counts and
judges from the capture stream (tests/integration/canary). After a SnapStart restore the alias
is re-resolved at once."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from functions.adapters.registry.aliases import CANDIDATE, PRODUCTION
from functions.adapters.registry.model_registry import ModelRegistry
from functions.ml.onnx_input import predict_columns
from tests.helpers.models import MODEL, Trained
from tests.helpers.predict_api import Api
from tests.helpers.registry import publish

if TYPE_CHECKING:
    from tests.helpers.cloud import Cloud


def start_canary(cloud: Cloud, production: Trained, candidate: Trained) -> int:
    """Publish `production` behind alias production, register `candidate` as the next
    version and point alias `candidate` at it."""
    publish(cloud, production)
    version = publish(cloud, candidate, promote=False)
    ModelRegistry(cloud.table).promote(
        MODEL, version.version, expected_current=None, reason="canary", alias=CANDIDATE
    )
    return version.version


def broken(trained: Trained) -> Trained:
    """A model whose signature names an output its graph lacks: every session.run fails."""
    signature = copy.deepcopy(trained.signature)
    signature["onnx_outputs"][0]["name"] = "no_such_output"
    return Trained(trained.onnx, signature, trained.rows)


@pytest.fixture
def rollout_api(api: Api, serving_config: Callable[..., None]) -> Callable[..., Api]:
    """The API with a rollout policy and seeded routing."""

    def configure(**serving: Any) -> Api:
        serving_config(**{"candidate_share": 0.5, "candidate_min_requests": 1000, **serving})
        api.reset()
        store = api.logic.service().store
        store.random = random.Random(7)
        return api

    return configure


def predict(api: Api, rows: list[dict[str, Any]]) -> tuple[int, Any]:
    return api.call("POST", "/v1/predict", {"instances": rows})


def test_both_versions_answer_and_say_which(
    rollout_api: Callable[..., Api], cloud: Cloud, models: dict[int, Trained]
) -> None:
    start_canary(cloud, models[1], models[2])
    api = rollout_api()
    rows = models[1].rows[:5]

    answers = [predict(api, rows) for _ in range(20)]

    assert all(status == 200 for status, _ in answers)
    served = [(body["model_version"], body["alias"]) for _, body in answers]
    assert set(served) == {(1, PRODUCTION), (2, CANDIDATE)}
    for trained, version in ((models[1], 1), (models[2], 2)):
        session = api.logic.service().store
        model = session.loaded if version == 1 else session.candidate
        reference = predict_columns(
            model.session, {k: [r[k] for r in rows] for k in rows[0]}, trained.signature
        )
        answered = [body for _, body in answers if body["model_version"] == version]
        assert all(body["predictions"] == reference.labels.tolist() for body in answered)
    status, body = api.call("POST", f"/v2/models/{MODEL}/infer", {"inputs": _v2_inputs(rows[:1])})
    assert status == 200 and body["parameters"]["alias"] in (PRODUCTION, CANDIDATE)


def _v2_inputs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    inputs = []
    for name, value in rows[0].items():
        text = isinstance(value, str) or value is None and name in ("contract", "region")
        inputs.append(
            {
                "name": name,
                "shape": [1, 1],
                "datatype": "BYTES" if text else "FP32",
                "data": [value],
            }
        )
    return inputs


def test_the_store_names_the_rollout_and_predict_writes_no_counter(
    rollout_api: Callable[..., Api], cloud: Cloud, models: dict[int, Trained]
) -> None:
    start_canary(cloud, models[1], models[2])
    api = rollout_api()
    registry = ModelRegistry(cloud.table)
    rollout = registry.get_alias(MODEL, CANDIDATE).revision  # type: ignore[union-attr]

    answers = [predict(api, models[1].rows[:2]) for _ in range(10)]

    assert {status for status, _ in answers} == {200}
    assert api.logic.service().store.rollout == rollout
    assert registry.serving_stats(MODEL, rollout) == []  # off the request path
    registry.drop_alias(MODEL, CANDIDATE, expected=2, reason="ended")
    api.logic.service().store.refresh(force=True)
    assert api.logic.service().store.rollout is None


def test_after_a_snapstart_restore_the_moved_alias_answers_at_once(
    api: Api, cloud: Cloud, models: dict[int, Trained]
) -> None:
    from functions.predict import handler, snapstart

    assert handler._reload_after_restore in snapstart.after_restore_hooks
    publish(cloud, models[1])
    assert predict(api, models[1].rows[:1])[1]["model_version"] == 1  # loaded, "snapshotted"
    publish(cloud, models[2])  # the alias moves while the snapshot sleeps
    assert predict(api, models[1].rows[:1])[1]["model_version"] == 1  # TTL not passed yet

    for hook in snapstart.after_restore_hooks:
        hook()

    status, body = predict(api, models[1].rows[:1])
    assert (status, body["model_version"]) == (200, 2)
