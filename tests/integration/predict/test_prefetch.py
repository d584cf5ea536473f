"""Init's prefetch against moto: the default model's four reads run once, on their own thread,
and the store loads from their answers as it would from its own reads (errors included);
after init, every read goes to AWS again."""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from functions.adapters import storage
from functions.adapters.registry import serving_reads
from functions.adapters.registry.serving_reads import PRODUCTION
from functions.common.layout import alias_sort_key, model_key
from functions.predict import logic, prefetch
from tests.helpers.models import MODEL, Trained
from tests.helpers.registry import publish

if TYPE_CHECKING:
    from tests.helpers.cloud import Cloud

Calls = collections.Counter[tuple[str, str]]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """The registry and bucket reads made, by read and by thread."""
    calls: Calls = collections.Counter()
    targets = (
        (serving_reads.ServingRegistry, ("get_alias", "get_version")),
        (storage.ObjectStore, ("get_bytes", "get_json")),
    )
    for owner, names in targets:
        for name in names:
            original = getattr(owner, name)

            def counted(
                self: Any, *args: Any, _original: Callable[..., Any] = original, _name: str = name
            ) -> Any:
                calls[(_name, threading.current_thread().name)] += 1
                return _original(self, *args)

            monkeypatch.setattr(owner, name, counted)
    return calls


@pytest.fixture
def init(
    cloud: Cloud, serving_config: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """Lambda's init environment; the service and the prefetch's state reset around the test."""
    serving_config()
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "mlops-dev-predict")
    logic.service.cache_clear()
    prefetch.discard()
    yield {
        "AWS_LAMBDA_FUNCTION_NAME": "mlops-dev-predict",
        "DATA_BUCKET": cloud.bucket,
        "REGISTRY_TABLE": cloud.table,
    }
    prefetch.discard()
    logic.service.cache_clear()


def test_the_store_loads_from_the_reads_made_once_beside_the_imports(
    init: dict[str, str], cloud: Cloud, models: dict[int, Trained], reads: Calls
) -> None:
    publish(cloud, models[1])
    assert prefetch.start(init)
    store = logic.service().store
    model = store.refresh()
    prefetch.discard()
    assert model is not None and model.version == 1
    assert model.signature == models[1].signature
    assert reads == {
        ("get_alias", "init-prefetch"): 1,
        ("get_version", "init-prefetch"): 1,
        ("get_bytes", "init-prefetch"): 1,
        ("get_json", "init-prefetch"): 1,
    }
    # After init, a refresh reads the registry itself and sees the new version.
    publish(cloud, models[2])
    model = store.refresh(force=True)
    assert model is not None and model.version == 2
    assert reads[("get_alias", "MainThread")] == 1
    assert reads[("get_bytes", "MainThread")] == 1


def test_nothing_is_read_ahead_outside_lambda_s_init(init: dict[str, str], reads: Calls) -> None:
    assert not prefetch.start({**init, "AWS_LAMBDA_FUNCTION_NAME": ""})
    assert not prefetch.start({**init, "DATA_BUCKET": ""})
    assert reads == {}


def test_a_read_that_failed_ahead_fails_the_store_s_read_and_is_logged(
    init: dict[str, str],
    cloud: Cloud,
    models: dict[int, Trained],
    reads: Calls,
    caplog: pytest.LogCaptureFixture,
) -> None:
    publish(cloud, models[1])
    key = {"pk": {"S": model_key(MODEL)}, "sk": {"S": alias_sort_key(PRODUCTION)}}
    item = cloud.dynamodb.get_item(TableName=cloud.table, Key=key)["Item"]
    broken = {**item, "version": {"S": "one"}}
    cloud.dynamodb.put_item(TableName=cloud.table, Item=broken)
    assert prefetch.start(init)
    store = logic.service().store
    with caplog.at_level(logging.ERROR):
        assert store.refresh() is None
    prefetch.discard()
    assert "Could not read the model alias" in caplog.text
    assert "field 'version' is not a valid int" in caplog.text
    assert reads == {("get_alias", "init-prefetch"): 1}  # the error, handed over, not re-read
    cloud.dynamodb.put_item(TableName=cloud.table, Item=item)
    model = store.refresh(force=True)
    assert model is not None and model.version == 1


def test_nothing_promoted_yet_is_answered_as_the_registry_answers(
    init: dict[str, str], reads: Calls
) -> None:
    assert prefetch.start(init)
    assert logic.service().store.refresh() is None
    prefetch.discard()
    assert reads == {("get_alias", "init-prefetch"): 1}
