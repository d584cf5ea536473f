"""Registry items and reason records as older releases left them (the fixtures under
tests/fixtures/formats, stored as they were) read through today's adapters on moto; today's
writers stamp the current version on each; an item from a newer release is refused, naming
it, instead of misread."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from functions.adapters.datasets import DatasetRegistry
from functions.adapters.registry.items import attributes
from functions.adapters.registry.model_registry import ModelRegistry
from functions.adapters.storage import ObjectStore, read_quarantine_reason
from functions.adapters.table import RegistryTable
from functions.common import formats
from functions.common.contracts import ModelVersion, ServingStats
from functions.common.layout import reason_key
from functions.monitor.state import MonitorStore, parse_iso
from tests.helpers import REPO

if TYPE_CHECKING:
    from tests.helpers.cloud import Cloud

FIXTURES = REPO / "tests" / "fixtures" / "formats"


def _fixture(name: str, version: int = 1) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / name / f"v{version}.json").read_text())
    return document


def _store_item(cloud: Cloud, item: dict[str, Any]) -> None:
    cloud.dynamodb.put_item(TableName=cloud.table, Item=attributes(item))


def _raw_item(cloud: Cloud, pk: str, sk: str) -> dict[str, Any]:
    key = {"pk": {"S": pk}, "sk": {"S": sk}}
    return dict(cloud.dynamodb.get_item(TableName=cloud.table, Key=key)["Item"])


def test_version_1_registry_items_read_through_todays_adapters(cloud: Cloud) -> None:
    run, version, history, dataset = (
        _fixture(formats.RUN_ITEM),
        _fixture(formats.MODEL_VERSION_ITEM),
        _fixture(formats.ALIAS_HISTORY_ITEM),
        _fixture(formats.DATASET_VERSION_ITEM),
    )
    for item in (run, version, history, dataset):
        assert formats.FIELD not in item
        _store_item(cloud, item)
    registry = ModelRegistry(cloud.table)

    found = registry.get_run(run["model_name"], run["run_id"])
    assert found is not None and found["onnx_sha256"] == run["onnx_sha256"]
    assert [r["run_id"] for r in registry.list_runs(run["model_name"])] == [run["run_id"]]
    registered = registry.get_version(version["model_name"], version["version"])
    assert registered is not None and registered.onnx_sha256 == version["onnx_sha256"]
    assert registered.promoted is True
    [change] = registry.history(history["model_name"])
    assert (change.kind, change.to_version, change.reason) == (
        "promote",
        history["to_version"],
        history["reason"],
    )
    ref = DatasetRegistry(cloud.table).get_version(dataset["dataset"], dataset["data_version"])
    assert ref is not None and ref.manifest_key == dataset["manifest_key"]
    assert ref.source.version_id == dataset["source_version_id"] and ref.rows == dataset["rows"]


def test_todays_writers_stamp_the_current_version_on_each_item(cloud: Cloud) -> None:
    registry = ModelRegistry(cloud.table)
    run = {k: v for k, v in _fixture(formats.RUN_ITEM).items() if k not in ("pk", "sk", "kind")}
    registry.put_run(run)
    fixture = _fixture(formats.MODEL_VERSION_ITEM)
    model = fixture["model_name"]
    registry.put_version(
        ModelVersion.model_validate({k: fixture[k] for k in ModelVersion.model_fields})
    )
    registry.promote(model, fixture["version"], expected_current=None, reason="first")
    datasets = DatasetRegistry(cloud.table)
    stored = _fixture(formats.DATASET_VERSION_ITEM)
    _store_item(cloud, stored)
    old = datasets.get_version(stored["dataset"], stored["data_version"])
    assert old is not None
    datasets.register_version(old.model_copy(update={"data_version": "f" * 16}), code_version="t")

    def stamped(pk: str, sk: str) -> str:
        return str(_raw_item(cloud, pk, sk)[formats.FIELD]["N"])

    assert stamped(f"RUNS#{model}", f"RUN#{run['run_id']}") == str(
        formats.current(formats.RUN_ITEM)
    )
    assert stamped(f"MODEL#{model}", "VERSION#00000001") == "1"
    assert stamped(f"MODEL#{model}", "HISTORY#production#00000001") == "1"
    assert stamped(f"DATASET#{stored['dataset']}", "VERSION#" + "f" * 16) == "1"


def test_an_item_from_a_newer_release_is_refused_naming_it(cloud: Cloud) -> None:
    version = _fixture(formats.MODEL_VERSION_ITEM)
    _store_item(cloud, {**version, formats.FIELD: 2})
    with pytest.raises(formats.FormatVersionError, match="model-version-item at format_version 2"):
        ModelRegistry(cloud.table).get_version(version["model_name"], version["version"])


def test_a_version_1_reason_record_is_found_where_drops_and_erasure_look(cloud: Cloud) -> None:
    reason = _fixture(formats.QUARANTINE_REASON)
    raw_key = reason["source"]["key"]
    store = ObjectStore(cloud.s3)
    store.put_json(cloud.bucket, reason_key(raw_key), reason)
    found = read_quarantine_reason(store, cloud.bucket, raw_key, reason["source"]["version_id"])
    assert found is not None and found["code"] == reason["code"]
    assert found[formats.FIELD] == formats.current(formats.QUARANTINE_REASON)


def _unstamped(name: str) -> dict[str, Any]:
    """The version 1 fixture as a release before formats were versioned stored it."""
    return {k: v for k, v in _fixture(name).items() if k != formats.FIELD}


def test_version_1_alias_counter_and_rollout_items_read_and_go_on(cloud: Cloud) -> None:
    alias, counter, stats, decision = (
        _unstamped(formats.ALIAS_ITEM),
        _unstamped(formats.VERSION_COUNTER_ITEM),
        _unstamped(formats.SERVING_STATS_ITEM),
        _unstamped(formats.ROLLOUT_DECISION_ITEM),
    )
    for item in (alias, counter, stats, decision):
        _store_item(cloud, item)
    registry = ModelRegistry(cloud.table)
    model = alias["model_name"]

    state = registry.get_alias(model, alias["alias"])
    assert state is not None and (state.version, state.revision) == (
        alias["version"],
        alias["revision"],
    )
    # The counter goes on from where the older release left it, and is stamped on the way.
    assert registry.allocate_version(model) == counter["last_version"] + 1
    assert _raw_item(cloud, counter["pk"], counter["sk"])[formats.FIELD] == {"N": "1"}
    rollout = int(stats["sk"].split("#")[1])
    served = ServingStats(alias=stats["alias"], version=stats["version"], requests=3, errors=0)
    registry.count_capture_object(model, "capture/o", {rollout: [served]}, expires_at=2**31)
    [summed] = registry.serving_stats(model, rollout)
    assert (summed.requests, summed.errors) == (stats["requests"] + 3, stats["errors"])
    assert summed.latency_count == 0  # a version 1 item's requests carry no log-latency
    current = str(formats.current(formats.SERVING_STATS_ITEM))
    assert _raw_item(cloud, stats["pk"], stats["sk"])[formats.FIELD] == {"N": current}
    decided = registry.get_rollout_decision(model, decision["rollout"])
    assert decided is not None and decided.outcome == decision["outcome"]
    assert decided.candidate.requests == decision["candidate"]["requests"]


def test_a_version_1_training_set_item_still_skips_a_judged_training_set(cloud: Cloud) -> None:
    training_set = _unstamped(formats.TRAINING_SET_ITEM)
    run = {**_fixture(formats.RUN_ITEM), "run_id": training_set["run_id"], "status": "registered"}
    run["sk"] = f"RUN#{training_set['run_id']}"
    _store_item(cloud, training_set)
    _store_item(cloud, run)
    model = run["model_name"]
    training_key = training_set["sk"].removeprefix("TRAINSET#")
    judged = ModelRegistry(cloud.table).judged_run_for(model, training_key)
    assert judged is not None and judged["run_id"] == training_set["run_id"]


@pytest.mark.parametrize("name", [formats.VERSION_COUNTER_ITEM, formats.SERVING_STATS_ITEM])
def test_an_item_updated_in_place_is_not_stamped_down_when_a_newer_release_wrote_it(
    cloud: Cloud, name: str
) -> None:
    item = {**_fixture(name), formats.FIELD: formats.current(name) + 1}
    _store_item(cloud, item)
    registry = ModelRegistry(cloud.table)
    model = item["pk"].removeprefix("MODEL#")
    above = formats.current(name)
    with pytest.raises(formats.FormatVersionError, match=f"{name} at format_version above {above}"):
        if name == formats.VERSION_COUNTER_ITEM:
            registry.allocate_version(model)
        else:
            rollout = int(item["sk"].split("#")[1])
            served = ServingStats(alias=item["alias"], version=item["version"], requests=1)
            registry.count_capture_object(model, "capture/o", {rollout: [served]}, expires_at=1)
    assert _raw_item(cloud, item["pk"], item["sk"]) == attributes(item), "left as it was"


def test_version_1_dataset_and_monitor_items_read_and_newer_ones_are_refused(
    cloud: Cloud,
) -> None:
    contract, classes, state = (
        _unstamped(formats.DATASET_CONTRACT_ITEM),
        _unstamped(formats.DATASET_CLASSES_ITEM),
        _unstamped(formats.MONITOR_STATE_ITEM),
    )
    for item in (contract, classes, state):
        _store_item(cloud, item)
    datasets = DatasetRegistry(cloud.table)
    dataset = contract["pk"].removeprefix("DATASET#")
    assert datasets.get_contract(dataset) == contract["contract"]
    assert datasets.get_classes(dataset) == json.loads(classes["classes"])
    monitor = MonitorStore(RegistryTable(cloud.table), state["pk"].removeprefix("MONITOR#"))
    loaded = monitor.load()
    assert loaded.last_check_id == state["last_check_id"]
    assert loaded.last_retrain_at == parse_iso(state["last_retrain_at"])
    # The next check's write stamps the state as it moves the window on.
    monitor.record_check("next-check", datetime.now(UTC))
    assert _raw_item(cloud, state["pk"], state["sk"])[formats.FIELD] == {"N": "1"}

    for name, item in (
        (formats.DATASET_CONTRACT_ITEM, contract),
        (formats.MONITOR_STATE_ITEM, state),
    ):
        _store_item(cloud, {**item, formats.FIELD: 2})
        with pytest.raises(formats.FormatVersionError, match=f"{name} at format_version 2"):
            if name == formats.MONITOR_STATE_ITEM:
                monitor.load()
            else:
                datasets.get_contract(dataset)
