"""Safe rollout through the predict Lambda against moto, with real ONNX models: a share of
requests is answered by alias `candidate` (and says so), both versions' counters land in the
registry, and the rollout ends once: a healthy candidate is promoted, a failing one dropped.
After a SnapStart restore the alias is re-resolved at once."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from functions.adapters.registry.aliases import CANDIDATE, PRODUCTION
from functions.adapters.registry.model_registry import ModelRegistry
from functions.adapters.storage import ObjectStore
from functions.ml.onnx_input import predict_columns
from functions.predict.model_store import ModelStore
from functions.predict.rollout import RolloutPolicy
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
    """The API with a rollout policy; seeded routing, stats flushed every 5 requests."""

    def configure(**serving: Any) -> Api:
        serving_config(**{"candidate_share": 0.5, "candidate_min_requests": 1000, **serving})
        api.reset()
        store = api.logic.service().store
        store.random = random.Random(7)
        store.timer = lambda: api.now
        store.flush_requests = 5
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


def test_counters_of_both_versions_reach_the_registry(
    rollout_api: Callable[..., Api], cloud: Cloud, models: dict[int, Trained]
) -> None:
    start_canary(cloud, models[1], models[2])
    api = rollout_api()
    registry = ModelRegistry(cloud.table)
    rollout = registry.get_alias(MODEL, CANDIDATE).revision  # type: ignore[union-attr]

    answers = [predict(api, models[1].rows[:2])[1] for _ in range(10)]
    api.call("POST", "/v1/predict", {"instances": [{"age": "old"}]})  # a 4xx: not counted

    stats = {(s.alias, s.version): s for s in registry.serving_stats(MODEL, rollout)}
    by_candidate = sum(1 for body in answers if body["alias"] == CANDIDATE)
    assert stats[(CANDIDATE, 2)].requests == by_candidate
    assert stats[(PRODUCTION, 1)].requests == 10 - by_candidate
    assert all(s.errors == 0 for s in stats.values())
    assert sum(stats[(CANDIDATE, 2)].latency_histogram) == by_candidate


def test_a_healthy_candidate_is_promoted_once_it_served_enough(
    rollout_api: Callable[..., Api],
    cloud: Cloud,
    models: dict[int, Trained],
    promotions: Callable[[], list[dict[str, Any]]],
) -> None:
    start_canary(cloud, models[1], models[2])
    api = rollout_api(candidate_min_requests=8)
    registry = ModelRegistry(cloud.table)

    for _ in range(100):
        assert predict(api, models[1].rows[:3])[0] == 200
        if registry.get_alias(MODEL, CANDIDATE) is None:
            break

    production = registry.get_alias(MODEL)
    assert production is not None and production.version == 2
    assert registry.get_alias(MODEL, CANDIDATE) is None
    promotion = registry.history(MODEL)[-1]
    assert (promotion.kind, promotion.from_version, promotion.to_version) == ("promote", 1, 2)
    assert promotion.reason.startswith("rollout: candidate version 2 promoted")
    assert promotion.execution == "predict:rollout"
    assert [(c.kind, c.to_version) for c in registry.history(MODEL, CANDIDATE)] == [
        ("promote", 2),
        ("drop", None),
    ]
    decision = registry.get_rollout_decision(MODEL, 1)
    assert decision is not None and decision.outcome == "promote"
    assert decision.candidate.requests >= 8
    status, body = predict(api, models[1].rows[:1])  # this container follows at once
    assert (status, body["model_version"], body["alias"]) == (200, 2, PRODUCTION)
    (event,) = [e for e in promotions() if e["alias"] == PRODUCTION]
    assert (event["version"], event["previous_version"]) == (2, 1)
    assert event["reason"].startswith("rollout: candidate version 2 promoted")


def test_a_failing_candidate_is_dropped_and_production_stays(
    rollout_api: Callable[..., Api], cloud: Cloud, models: dict[int, Trained]
) -> None:
    start_canary(cloud, models[1], broken(models[2]))
    api = rollout_api(candidate_min_requests=5)
    registry = ModelRegistry(cloud.table)

    statuses = []
    for _ in range(100):
        statuses.append(predict(api, models[1].rows[:3])[0])
        if registry.get_alias(MODEL, CANDIDATE) is None:
            break

    assert 500 in statuses and 200 in statuses  # the candidate failed, production answered
    production = registry.get_alias(MODEL)
    assert production is not None and production.version == 1
    assert [c.kind for c in registry.history(MODEL)] == ["promote"]
    drop = registry.history(MODEL, CANDIDATE)[-1]
    assert (drop.kind, drop.from_version, drop.to_version) == ("drop", 2, None)
    assert drop.reason.startswith("rollout: candidate version 2 dropped: error rate 100.0%")
    decision = registry.get_rollout_decision(MODEL, 1)
    assert decision is not None and decision.outcome == "drop"
    assert decision.candidate.errors == decision.candidate.requests
    answers = [predict(api, models[1].rows[:1]) for _ in range(10)]
    assert {(s, b["model_version"], b["alias"]) for s, b in answers} == {(200, 1, PRODUCTION)}


def test_a_candidate_without_traffic_is_dropped_when_time_is_up(
    rollout_api: Callable[..., Api], cloud: Cloud, models: dict[int, Trained]
) -> None:
    start_canary(cloud, models[1], models[2])
    api = rollout_api(candidate_share=0.01, candidate_max_minutes=30)
    store = api.logic.service().store
    store.wall_clock = lambda: datetime.now(UTC) + timedelta(minutes=31)
    store.random = random.Random(0)  # 0.844..., 0.757...: production answers the first ones
    registry = ModelRegistry(cloud.table)

    for _ in range(5):
        predict(api, models[1].rows[:1])

    assert registry.get_alias(MODEL, CANDIDATE) is None
    assert registry.get_alias(MODEL).version == 1  # type: ignore[union-attr]
    drop = registry.history(MODEL, CANDIDATE)[-1]
    assert drop.kind == "drop" and "served no request" in drop.reason


def _container(cloud: Cloud, policy: RolloutPolicy, seed: int) -> ModelStore:
    objects = ObjectStore()
    store = ModelStore(
        model_name=MODEL,
        registry=ModelRegistry(cloud.table),
        fetch_bytes=lambda key: objects.get_bytes(cloud.bucket, key),
        fetch_json=lambda key: objects.get_json(cloud.bucket, key),
        ttl_seconds=60,
        policy=policy,
        sample=random.Random(seed),
        timer=lambda: 0.0,
    )
    store.flush_requests = 1_000
    return store


def test_two_containers_judging_at_once_record_one_decision(
    cloud: Cloud, models: dict[int, Trained]
) -> None:
    start_canary(cloud, models[1], models[2])
    policy = RolloutPolicy(share=0.5, min_requests=4, max_minutes=60)
    containers = [_container(cloud, policy, seed) for seed in (1, 2)]
    rows = models[1].rows[:2]
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    for store in containers:
        for _ in range(10):
            model = store.route()
            with store.observed(model):
                predict_columns(model.session, columns, model.signature)
    for store in containers:
        store.flush_requests = 1  # both flush and judge with the next request

    for store in containers:
        model = store.route()
        with store.observed(model):
            predict_columns(model.session, columns, model.signature)

    registry = ModelRegistry(cloud.table)
    assert [c.kind for c in registry.history(MODEL)] == ["promote", "promote"]
    assert [c.kind for c in registry.history(MODEL, CANDIDATE)] == ["promote", "drop"]
    decision = registry.get_rollout_decision(MODEL, 1)
    assert decision is not None and decision.candidate.requests >= 4
    for store in containers:  # both converge at their next request
        assert store.current().version == 2 and store.candidate is None


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
