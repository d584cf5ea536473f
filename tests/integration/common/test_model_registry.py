"""The model registry against moto: runs, version numbers that never repeat, versions that are
never overwritten, and an alias that moves only when it is where the mover expects it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.adapters.events import publish_model_promoted
from functions.adapters.registry.aliases import CANDIDATE, PRODUCTION
from functions.adapters.registry.model_registry import ModelRegistry
from functions.common import formats
from functions.common.contracts import AliasChange, ModelVersion, RolloutDecision, ServingStats
from functions.common.errors import (
    EventPublishError,
    ModelRegistryError,
    NothingToRollBackError,
    RegistryError,
    RunNotFoundError,
    StalePromotionError,
    VersionExistsError,
    VersionNotFoundError,
)
from functions.common.events import MODEL_PROMOTED, REGISTRY_SOURCE, model_promoted_detail

if TYPE_CHECKING:
    from tests.helpers.cloud import Cloud

MODEL = "churn"


@pytest.fixture
def serialized_dynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    """DynamoDB applies each write and each transaction atomically; moto's backend does not
    under threads (a transaction snapshots and restores whole tables, so a concurrent one can
    lose writes or fail with "dictionary changed size during iteration"). One lock around the
    backend's operations gives DynamoDB's guarantees, so the races below test this code."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.RLock()
    # The handler too: it renders ReturnValues from the live item after the backend returns.
    for owner in (DynamoDBBackend, DynamoHandler):
        for name in ("get_item", "put_item", "update_item", "query", "transact_write_items"):
            original = getattr(owner, name)

            def locked(
                self: Any, *args: Any, _call: Callable[..., Any] = original, **kw: Any
            ) -> Any:
                with lock:
                    return _call(self, *args, **kw)

            monkeypatch.setattr(owner, name, locked)


@pytest.fixture
def registry(cloud: Cloud) -> ModelRegistry:
    return ModelRegistry(cloud.table)


def _run(run_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "model_name": MODEL,
        "status": "trained",
        "params": {"C": 1.0, "max_iter": 1000, "class_weight": None},
        "metrics": {"roc_auc": 0.8125, "f1_macro": 0.7, "log_loss": float("nan")},
        "data_versions": ["aaaa", "bbbb"],
        "durations": {"fit_s": 1.5, "export_s": 0.25},
        **fields,
    }


def _version(number: int, run_id: str = "r1", auc: float = 0.8) -> ModelVersion:
    return ModelVersion(
        model_name=MODEL,
        version=number,
        prefix=f"models/{MODEL}/{number}/",
        onnx_key=f"models/{MODEL}/{number}/model.onnx",
        onnx_sha256="ab" * 32,
        run_id=run_id,
        data_version="aaaa",
        data_versions=["aaaa"],
        metrics={"roc_auc": auc},
        created_at=f"2026-01-0{number}T00:00:00.000Z",
        model_card_key=f"reports/{MODEL}/{number}/model_card.html",
        promoted=False,
    )


def _registered(registry: ModelRegistry, *numbers: int) -> None:
    for number in numbers:
        registry.put_version(_version(number, run_id=f"r{number}"))


def test_runs_are_recorded_updated_and_listed_newest_first(registry: ModelRegistry) -> None:
    for run_id in ("20260101T000000Z-a", "20260103T000000Z-c", "20260102T000000Z-b"):
        registry.put_run(_run(run_id))
    registry.put_run({**_run("20260104T000000Z-d"), "model_name": "other"})

    registry.update_run(MODEL, "20260102T000000Z-b", status="registered", version=3)

    listed = registry.list_runs(MODEL)
    assert [run["run_id"] for run in listed] == [
        "20260103T000000Z-c",
        "20260102T000000Z-b",
        "20260101T000000Z-a",
    ]
    assert [run["run_id"] for run in registry.list_runs(MODEL, limit=2)] == [
        "20260103T000000Z-c",
        "20260102T000000Z-b",
    ]
    run = registry.get_run(MODEL, "20260102T000000Z-b")
    assert run is not None
    assert (run["status"], run["version"]) == ("registered", 3)
    assert "updated_at" in run
    # Nested values come back as they went in (a NaN, which DynamoDB cannot store, as None).
    assert run["params"] == {"C": 1.0, "max_iter": 1000, "class_weight": None}
    assert run["metrics"] == {"roc_auc": 0.8125, "f1_macro": 0.7, "log_loss": None}
    assert run["data_versions"] == ["aaaa", "bbbb"]
    assert registry.get_run(MODEL, "nope") is None


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**15), 10**15)
    | st.floats(min_value=-1e100, max_value=1e100).filter(lambda x: x == 0 or abs(x) > 1e-100)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fields=st.dictionaries(st.sampled_from(["params", "metrics", "search", "notes"]), _json_values)
)
def test_a_run_record_comes_back_as_it_was_written(
    registry: ModelRegistry, fields: dict[str, Any]
) -> None:
    record = {"run_id": "r-prop", "model_name": MODEL, **fields}

    registry.put_run(record)

    # Numbers may come back as int or float (1.0 as 1): equal either way. The item carries
    # its format version (functions.common.formats).
    assert registry.get_run(MODEL, "r-prop") == formats.stamp(formats.RUN_ITEM, record)


def test_numbers_dynamodb_cannot_hold_are_stored_as_null_or_zero(registry: ModelRegistry) -> None:
    registry.put_run(
        _run("r1", metrics={"nan": float("nan"), "inf": float("-inf"), "tiny": 1e-200})
    )

    run = registry.get_run(MODEL, "r1")

    assert run is not None and run["metrics"] == {"nan": None, "inf": None, "tiny": 0}


def test_updating_an_unknown_run_fails_without_creating_it(registry: ModelRegistry) -> None:
    with pytest.raises(RunNotFoundError, match="no training run r9"):
        registry.update_run(MODEL, "r9", status="registered")
    assert registry.get_run(MODEL, "r9") is None
    with pytest.raises(ValueError, match="run_id"):
        registry.put_run({"model_name": MODEL})


def test_version_numbers_count_up_per_model_and_never_repeat(registry: ModelRegistry) -> None:
    assert [registry.allocate_version(MODEL) for _ in range(3)] == [1, 2, 3]
    assert registry.allocate_version("other") == 1
    # A number whose registration failed is gone: the next one is 4, not 3 again.
    assert registry.allocate_version(MODEL) == 4


def test_concurrent_allocations_hand_out_distinct_numbers(
    registry: ModelRegistry, serialized_dynamodb: None
) -> None:
    with ThreadPoolExecutor(8) as pool:
        numbers = list(pool.map(lambda _: registry.allocate_version(MODEL), range(80)))
    assert sorted(numbers) == list(range(1, 81))


def test_a_version_is_never_overwritten(registry: ModelRegistry) -> None:
    registry.put_version(_version(1, run_id="first", auc=0.8))

    with pytest.raises(VersionExistsError, match="version 1 of churn"):
        registry.put_version(_version(1, run_id="second", auc=0.9))

    stored = registry.get_version(MODEL, 1)
    assert stored == _version(1, run_id="first", auc=0.8)
    assert registry.get_version(MODEL, 2) is None


def test_versions_are_listed_in_number_order(registry: ModelRegistry) -> None:
    _registered(registry, 10, 2, 1)
    assert [v.version for v in registry.list_versions(MODEL)] == [1, 2, 10]
    assert registry.list_versions("other") == []


def test_the_first_promotion_expects_no_alias(registry: ModelRegistry) -> None:
    _registered(registry, 1)
    assert registry.get_alias(MODEL) is None

    change = registry.promote(
        MODEL, 1, expected_current=None, reason="first model", execution="exec-1"
    )

    assert (change.kind, change.from_version, change.to_version) == ("promote", None, 1)
    state = registry.get_alias(MODEL)
    assert state is not None
    assert (state.version, state.previous_version, state.reason, state.execution) == (
        1,
        None,
        "first model",
        "exec-1",
    )
    assert state.updated_at == change.at
    version = registry.get_version(MODEL, 1)
    assert version is not None and version.promoted is True
    assert registry.history(MODEL) == [change]


def test_a_promotion_with_the_right_expectation_moves_the_alias(registry: ModelRegistry) -> None:
    _registered(registry, 1, 2)
    registry.promote(MODEL, 1, expected_current=None, reason="first")

    change = registry.promote(MODEL, 2, expected_current=1, reason="better auc")

    state = registry.get_alias(MODEL)
    assert state is not None and (state.version, state.previous_version) == (2, 1)
    assert (change.from_version, change.to_version, change.revision) == (1, 2, 2)
    version = registry.get_version(MODEL, 2)
    assert version is not None and version.previous_version == 1


@pytest.mark.parametrize("expected", [None, 2])
def test_a_stale_expectation_changes_nothing_and_names_the_actual_version(
    registry: ModelRegistry, expected: int | None
) -> None:
    _registered(registry, 1, 2, 3)
    registry.promote(MODEL, 1, expected_current=None, reason="first")

    with pytest.raises(StalePromotionError, match="production of churn is version 1") as info:
        registry.promote(MODEL, 3, expected_current=expected, reason="late")

    assert (info.value.expected, info.value.actual) == (expected, 1)
    state = registry.get_alias(MODEL)
    assert state is not None and state.version == 1
    assert len(registry.history(MODEL)) == 1
    version = registry.get_version(MODEL, 3)
    assert version is not None and version.promoted is False


def test_promoting_an_unregistered_version_changes_nothing(registry: ModelRegistry) -> None:
    _registered(registry, 1)
    registry.promote(MODEL, 1, expected_current=None, reason="first")

    with pytest.raises(VersionNotFoundError, match="no registered version 7"):
        registry.promote(MODEL, 7, expected_current=1, reason="typo")

    state = registry.get_alias(MODEL)
    assert state is not None and state.version == 1
    assert len(registry.history(MODEL)) == 1
    assert registry.get_version(MODEL, 7) is None


def test_promoting_the_current_version_again_is_refused(registry: ModelRegistry) -> None:
    _registered(registry, 1)
    registry.promote(MODEL, 1, expected_current=None, reason="first")
    with pytest.raises(ModelRegistryError, match="already production"):
        registry.promote(MODEL, 1, expected_current=1, reason="again")
    assert len(registry.history(MODEL)) == 1


def test_two_racing_promotions_one_wins_and_history_has_one_entry(
    registry: ModelRegistry, serialized_dynamodb: None
) -> None:
    _registered(registry, 1, 2, 3)
    registry.promote(MODEL, 1, expected_current=None, reason="first")
    start = threading.Barrier(2)

    def promote(version: int) -> AliasChange | StalePromotionError:
        racer = ModelRegistry(registry.table_name, boto3.client("dynamodb"))
        start.wait()
        try:
            return racer.promote(MODEL, version, expected_current=1, reason=f"race {version}")
        except StalePromotionError as stale:
            return stale

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(promote, [2, 3]))

    wins = [o for o in outcomes if isinstance(o, AliasChange)]
    losses = [o for o in outcomes if isinstance(o, StalePromotionError)]
    assert len(wins) == 1 and len(losses) == 1
    assert losses[0].actual == wins[0].to_version
    state = registry.get_alias(MODEL)
    assert state is not None and state.version == wins[0].to_version
    assert [c.to_version for c in registry.history(MODEL)] == [1, wins[0].to_version]


def test_a_promotion_whose_read_went_stale_is_refused_by_the_transaction(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The alias is read, then another promoter moves it, then the write: the condition in the
    transaction, not the earlier read, refuses it."""
    _registered(registry, 1, 2, 3)
    registry.promote(MODEL, 1, expected_current=None, reason="first")
    other = ModelRegistry(registry.table_name)
    real_get_alias = registry.get_alias
    interleaved = iter([True])

    def get_alias_then_lose_the_race(model: str, alias: str = "production") -> Any:
        state = real_get_alias(model, alias)
        if next(interleaved, False):
            other.promote(MODEL, 2, expected_current=1, reason="the other promoter")
        return state

    monkeypatch.setattr(registry, "get_alias", get_alias_then_lose_the_race)

    with pytest.raises(StalePromotionError, match="is version 2, not version 1") as info:
        registry.promote(MODEL, 3, expected_current=1, reason="loser")

    assert info.value.actual == 2
    assert [c.to_version for c in registry.history(MODEL)] == [1, 2]
    version = registry.get_version(MODEL, 3)
    assert version is not None and version.promoted is False


def test_rollback_steps_back_through_promotions_and_is_recorded(registry: ModelRegistry) -> None:
    _registered(registry, 1, 2, 3)
    registry.promote(MODEL, 1, expected_current=None, reason="first")
    registry.promote(MODEL, 2, expected_current=1, reason="second")
    registry.promote(MODEL, 3, expected_current=2, reason="third")

    back = registry.rollback(MODEL, reason="3 misbehaves", execution="cli:ops")
    again = registry.rollback(MODEL, reason="2 too")

    assert (back.kind, back.from_version, back.to_version) == ("rollback", 3, 2)
    assert (again.from_version, again.to_version) == (2, 1)
    state = registry.get_alias(MODEL)
    assert state is not None and (state.version, state.reason) == (1, "2 too")
    history = registry.history(MODEL)
    assert [(c.kind, c.from_version, c.to_version) for c in history] == [
        ("promote", None, 1),
        ("promote", 1, 2),
        ("promote", 2, 3),
        ("rollback", 3, 2),
        ("rollback", 2, 1),
    ]
    assert [c.revision for c in history] == [1, 2, 3, 4, 5]
    assert history[3].execution == "cli:ops"
    with pytest.raises(NothingToRollBackError, match="no earlier version"):
        registry.rollback(MODEL, reason="nothing left")


def test_after_a_rollback_a_new_promotion_is_what_the_next_rollback_undoes(
    registry: ModelRegistry,
) -> None:
    _registered(registry, 1, 2, 3)
    registry.promote(MODEL, 1, expected_current=None, reason="first")
    registry.promote(MODEL, 2, expected_current=1, reason="second")
    registry.rollback(MODEL, reason="bad")
    registry.promote(MODEL, 3, expected_current=1, reason="third")

    change = registry.rollback(MODEL, reason="bad too")

    assert (change.from_version, change.to_version) == (3, 1)


def test_rollback_without_a_production_version_is_a_clear_error(registry: ModelRegistry) -> None:
    with pytest.raises(NothingToRollBackError, match="churn has no production version"):
        registry.rollback(MODEL, reason="nothing")
    _registered(registry, 1)
    registry.promote(MODEL, 1, expected_current=None, reason="first")
    with pytest.raises(NothingToRollBackError, match="is version 1 and has no earlier"):
        registry.rollback(MODEL, reason="nothing before 1")


def test_aliases_are_independent(registry: ModelRegistry) -> None:
    _registered(registry, 1, 2)
    registry.promote(MODEL, 1, expected_current=None, reason="prod")
    registry.promote(MODEL, 2, expected_current=None, reason="canary", alias="staging")

    production, staging = registry.get_alias(MODEL), registry.get_alias(MODEL, "staging")
    assert production is not None and production.version == 1
    assert staging is not None and staging.version == 2
    assert [c.alias for c in registry.history(MODEL)] == ["production"]


def test_aws_failures_are_registry_errors(cloud: Cloud) -> None:
    missing = ModelRegistry("no-such-table")
    with pytest.raises(RegistryError, match="ResourceNotFoundException"):
        missing.allocate_version(MODEL)
    with pytest.raises(RegistryError, match="ResourceNotFoundException"):
        missing.promote(MODEL, 1, expected_current=None, reason="x")


def test_model_promoted_reaches_a_queue_through_an_eventbridge_rule(
    registry: ModelRegistry,
) -> None:
    sqs, events = boto3.client("sqs"), boto3.client("events")
    queue_url = sqs.create_queue(QueueName="promotions")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(
        Name="model-promoted",
        EventPattern=json.dumps({"source": [REGISTRY_SOURCE], "detail-type": [MODEL_PROMOTED]}),
    )
    events.put_targets(Rule="model-promoted", Targets=[{"Id": "queue", "Arn": queue_arn}])
    _registered(registry, 1, 2)
    registry.promote(MODEL, 1, expected_current=None, reason="first")
    change = registry.promote(MODEL, 2, expected_current=1, reason="better", execution="exec-2")

    event_id = publish_model_promoted(
        model_promoted_detail(change, metrics={"roc_auc": 0.9}, run_id="r2")
    )

    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
    event = json.loads(messages[0]["Body"])
    assert event["id"] == event_id
    assert (event["source"], event["detail-type"]) == ("mlops.registry", "ModelPromoted")
    assert event["detail"] == {
        "model": "churn",
        "alias": "production",
        "version": 2,
        "previous_version": 1,
        "kind": "promote",
        "revision": 2,
        "metrics": {"roc_auc": 0.9},
        "run_id": "r2",
        "execution": "exec-2",
        "reason": "better",
        "at": change.at,
    }


def test_a_refused_event_raises(cloud: Cloud) -> None:
    class Refusing:
        def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            return {
                "FailedEntryCount": 1,
                "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try later"}],
            }

    with pytest.raises(EventPublishError, match="InternalFailure: try later"):
        publish_model_promoted({"model": MODEL}, events=Refusing())


# Alias `candidate` and rollouts


def _rollout(registry: ModelRegistry, *numbers: int) -> None:
    """Versions `numbers` registered, 1 in production and 2 the rollout's candidate."""
    _registered(registry, *numbers)
    registry.promote(MODEL, 1, expected_current=None, reason="first")
    registry.promote(MODEL, 2, expected_current=None, reason="canary", alias=CANDIDATE)


def _decision(outcome: str, production: int | None = 1, rollout: int = 1) -> RolloutDecision:
    return RolloutDecision(
        model_name=MODEL,
        rollout=rollout,
        outcome=outcome,  # type: ignore[arg-type]
        candidate_version=2,
        production_version=production,
        reason=f"rollout: {outcome}",
        candidate=ServingStats(alias=CANDIDATE, version=2, requests=10),
        decided_at="2026-01-05T00:00:00.000Z",
    )


def test_a_candidate_is_not_a_promotion_and_can_be_dropped(registry: ModelRegistry) -> None:
    _registered(registry, 1, 2)
    registry.promote(MODEL, 1, expected_current=None, reason="first")
    registry.promote(MODEL, 2, expected_current=None, reason="try 2", alias=CANDIDATE)

    assert registry.get_version(MODEL, 2).promoted is False  # type: ignore[union-attr]
    with pytest.raises(StalePromotionError):
        registry.drop_alias(MODEL, CANDIDATE, expected=1, reason="wrong version")
    drop = registry.drop_alias(MODEL, CANDIDATE, expected=2, reason="changed my mind")

    assert (drop.kind, drop.from_version, drop.to_version, drop.revision) == ("drop", 2, None, 2)
    assert registry.get_alias(MODEL, CANDIDATE) is None
    again = registry.promote(MODEL, 2, expected_current=None, reason="again", alias=CANDIDATE)
    assert again.revision == 3  # the history keeps counting after a drop
    assert [(c.kind, c.to_version) for c in registry.history(MODEL, CANDIDATE)] == [
        ("promote", 2),
        ("drop", None),
        ("promote", 2),
    ]
    with pytest.raises(ModelRegistryError, match="cannot be dropped"):
        registry.drop_alias(MODEL, PRODUCTION, expected=1, reason="no")


def test_serving_stats_add_up_across_capture_objects_each_counted_once(
    registry: ModelRegistry,
) -> None:
    expires = 2_000_000_000
    for n, latency in enumerate((3.0, 40.0)):
        served = ServingStats(
            alias=CANDIDATE,
            version=2,
            requests=2,
            errors=1,
            latency_ms_sum=latency,
            latency_histogram=[1, 0, 0, 1, 0, 0, 0, 0, 0],
            latency_count=1,
            log_latency_sum=1.5,
            log_latency_sq_sum=2.25,
        )
        assert registry.count_capture_object(
            MODEL, f"capture/o{n}", {4: [served]}, expires_at=expires
        )
    assert not registry.count_capture_object(
        MODEL, "capture/o1", {4: [served]}, expires_at=expires
    ), "an object counted already adds nothing"
    production = ServingStats(alias=PRODUCTION, version=1, requests=5)
    registry.count_capture_object(
        MODEL,
        "capture/o2",
        {4: [production], 5: [production.model_copy(update={"requests": 9})]},
        expires_at=expires,
    )

    stats = {(s.alias, s.version): s for s in registry.serving_stats(MODEL, 4)}

    candidate = stats[(CANDIDATE, 2)]
    assert (candidate.requests, candidate.errors, candidate.latency_ms_sum) == (4, 2, 43.0)
    assert candidate.latency_histogram == [2, 0, 0, 2, 0, 0, 0, 0, 0]
    assert (candidate.latency_count, candidate.log_latency_sum) == (2, 3.0)
    assert stats[(PRODUCTION, 1)].requests == 5  # rollout 5's counters are apart


@pytest.mark.parametrize("outcome", ["promote", "drop"])
def test_concluding_a_rollout_moves_the_aliases_and_records_it(
    registry: ModelRegistry, outcome: str
) -> None:
    _rollout(registry, 1, 2)

    changes = registry.conclude_rollout(_decision(outcome), execution="test")

    expected_production = 2 if outcome == "promote" else 1
    assert registry.get_alias(MODEL).version == expected_production  # type: ignore[union-attr]
    assert registry.get_alias(MODEL, CANDIDATE) is None
    assert [c.kind for c in changes] == (["promote", "drop"] if outcome == "promote" else ["drop"])
    assert registry.history(MODEL)[-1].reason == (
        "rollout: promote" if outcome == "promote" else "first"
    )
    assert registry.get_rollout_decision(MODEL, 1) == _decision(outcome)
    with pytest.raises(StalePromotionError):
        registry.conclude_rollout(_decision(outcome))


def test_a_rollout_whose_production_moved_is_not_concluded(registry: ModelRegistry) -> None:
    _rollout(registry, 1, 2, 3)
    registry.promote(MODEL, 3, expected_current=1, reason="hotfix")

    with pytest.raises(StalePromotionError):
        registry.conclude_rollout(_decision("promote"))

    assert registry.get_alias(MODEL).version == 3  # type: ignore[union-attr]
    assert registry.get_alias(MODEL, CANDIDATE).version == 2  # type: ignore[union-attr]
    assert registry.get_rollout_decision(MODEL, 1) is None


def test_racing_containers_conclude_a_rollout_exactly_once(
    registry: ModelRegistry, serialized_dynamodb: None
) -> None:
    _rollout(registry, 1, 2)
    barrier = threading.Barrier(8)

    def conclude(index: int) -> list[AliasChange] | StalePromotionError:
        barrier.wait()
        try:
            return registry.conclude_rollout(_decision("promote" if index % 2 else "drop"))
        except StalePromotionError as lost:
            return lost

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(conclude, range(8)))

    wins = [o for o in outcomes if isinstance(o, list)]
    assert len(wins) == 1
    decision = registry.get_rollout_decision(MODEL, 1)
    assert decision is not None
    assert [c.kind for c in registry.history(MODEL, CANDIDATE)] == ["promote", "drop"]
    promotions = 1 if decision.outcome == "promote" else 0
    assert len(registry.history(MODEL)) == 1 + promotions
