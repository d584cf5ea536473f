"""Every stored format reads at every version kept in the field: each fixture under
tests/fixtures/formats/<format>/v<N>.json(l) (documents as that version's writers wrote them)
goes through today's reader and still gives what the monitor, the CLI and serving use; a
format's current version without a fixture fails here, so a bump cannot land without one; a
document from a newer release is refused, naming it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from functions.batch.contracts import BatchItemResult, BatchManifest, BatchPlan, Reject
from functions.common import formats
from functions.common.contracts import (
    AliasChange,
    AliasState,
    EvaluationResult,
    ModelVersion,
    RolloutDecision,
)
from functions.common.records import capture_record, feedback_item, record_rows
from functions.ml.drift.engine import DriftAccumulator
from functions.ml.drift.estimate import EstimateAccumulator
from functions.ml.onnx_model import Signature
from functions.serving.features import feature_specs
from tests.helpers import REPO

FIXTURES = REPO / "tests" / "fixtures" / "formats"
_NAME = re.compile(r"^v([1-9][0-9]*)\.jsonl?$")


def _fixtures() -> list[tuple[str, int, Path]]:
    found = []
    for folder in sorted(FIXTURES.iterdir()):
        for path in sorted(folder.iterdir()):
            match = _NAME.match(path.name)
            assert match, f"{path.relative_to(REPO)} is not named v<N>.json or v<N>.jsonl"
            found.append((folder.name, int(match.group(1)), path))
    return found


def _documents(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return [json.loads(text)]


def _manifest(doc: dict[str, Any]) -> None:
    assert doc["dataset"] and doc["data_version"] and doc["target"]
    assert doc["files"] and all(key.startswith("curated/") for key in doc["files"])
    assert doc["schema"] and doc["task"] in ("classification", "regression")


def _dataset_version(doc: dict[str, Any]) -> None:
    assert doc["manifest_key"].endswith("/manifest.json") and doc["rows"] > 0
    assert doc["source_key"].startswith("raw/")


def _reason(doc: dict[str, Any]) -> None:
    # `mlops drops show` prints these; erasure finds the copy by quarantine_key.
    assert doc["code"] and doc["message"] and doc["source"]["key"].startswith("raw/")
    assert doc["quarantine_key"].startswith("quarantine/files/")


def _run(doc: dict[str, Any]) -> None:
    assert doc["run_id"] and doc["model_name"]
    for key in ("onnx_key", "signature_key", "holdout_key", "reference_profile_key"):
        assert doc[key].startswith(f"models/{doc['model_name']}/runs/{doc['run_id']}/")
    assert len(doc["onnx_sha256"]) == 64


def _run_item(doc: dict[str, Any]) -> None:
    _run(doc)
    assert doc["status"]


def _model_version(doc: dict[str, Any]) -> None:
    version = ModelVersion.model_validate(
        {k: doc[k] for k in ModelVersion.model_fields if k in doc}
    )
    assert version.onnx_key.startswith(version.prefix) and version.metrics


def _metadata(doc: dict[str, Any]) -> None:
    # `mlops models show` prints these beside the version item.
    assert doc["version"] >= 1 and doc["metrics"] and doc["signature"]["inputs"]


def _history(doc: dict[str, Any]) -> None:
    change = AliasChange.model_validate(
        {**{k: doc.get(k) for k in AliasChange.model_fields}, "kind": doc["change"]}
    )
    assert change.to_version and change.revision >= 1 and change.reason


def _capture(doc: dict[str, Any]) -> None:
    # The drift check reads the columns; feedback joins on (request_id, row).
    record = capture_record(doc)
    assert record is not None and record["model_version"] >= 1
    assert isinstance(record["request_id"], str) and record["first_row"] >= 0
    if record["error"] is None:
        assert record["columns"] and record["rows"] >= 1
        assert all(len(values) == record["rows"] for values in record["columns"].values())
        assert [row for row, _, _ in record_rows(record)] == list(
            range(record["first_row"], record["first_row"] + record["rows"])
        )
    else:
        assert record["rows"] == 0 and record["predictions"] == []


def _feedback(doc: dict[str, Any]) -> None:
    item = feedback_item(doc)
    assert item is not None and item["label"] is not None
    # The version field is bookkeeping, never taken for a feature, and neither is `served`.
    assert not item["features"] or formats.FIELD not in item["features"]
    assert not item["features"] or "served" not in item["features"]
    # What the row was served, for a rollout's accuracy test (None: not known).
    served = formats.read(formats.FEEDBACK_RECORD, doc)["served"]
    assert served is None or {"model_name", "alias", "rollout", "prediction"} <= set(served)


def _drift_result(doc: dict[str, Any]) -> None:
    assert doc["verdict"] in ("drift", "no_drift", "insufficient_data")
    assert doc["check_id"] and doc["result_key"].endswith(f"{doc['check_id']}/result.json")
    assert all(v["model_version"] >= 1 and "report" in v for v in doc["versions"])
    # `mlops drift show` and the report read the estimate (none before version 2).
    assert all("estimate" in v for v in doc["versions"]) and "estimate" in doc


def _batch_manifest(doc: dict[str, Any]) -> None:
    manifest = BatchManifest.model_validate(doc)
    assert manifest.rows == manifest.scored + manifest.rejected + manifest.not_scored
    # `mlops batch show` finds the job's files under its model's folders.
    inputs = f"batch/in/{manifest.model_name}/{manifest.job}/"
    outputs = f"batch/out/{manifest.model_name}/{manifest.job}/"
    for file in manifest.per_file:
        assert file.key.startswith(inputs)
        assert all(key.startswith(outputs) for key in [*file.outputs, *file.rejects])
    assert all(item.model == manifest.model_name for item in manifest.failed_items)


def _profile(doc: dict[str, Any]) -> None:
    # The drift check builds its accumulator from the profile as read.
    accumulator = DriftAccumulator(doc)
    assert accumulator.rows == 0 and doc["features"] and doc["predictions"]
    if "importance" in doc:
        assert set(doc["importance"]["critical"]) <= set(doc["features"])
    if "calibration" in doc:
        # The label-free estimate calibrates captured probabilities with these maps.
        estimate = EstimateAccumulator(doc["calibration"])
        assert estimate.classes == doc["predictions"]["classes"] and estimate.reference


def _checkpoint(doc: dict[str, Any]) -> None:
    # A rerun of `mlops migrate --apply` resumes from these.
    assert doc["migration"] and doc["run_id"] and isinstance(doc["finished"], bool)
    assert doc["moved"] >= 0 and "last_key" in doc


def _audit(doc: dict[str, Any]) -> None:
    assert doc["who"] and doc["release"] and doc["status"] in ("completed", "interrupted")
    assert all(change["from"] and change["to"] and change["at"] for change in doc["changes"])


def _evaluation(doc: dict[str, Any]) -> None:
    # The register stage renders the model card from these three parts.
    result = EvaluationResult.model_validate(doc["result"])
    assert result.evaluation_key.endswith(f"{result.run_id}/evaluation.json")
    assert doc["candidate"]["metrics"] == result.metrics and "champion" in doc
    # The model card draws the insight (version 1: none, read as null).
    insight = doc["insight"]
    if insight is not None:
        for measured in filter(None, (insight["candidate"], insight["champion"])):
            assert measured["task"] in ("binary", "multiclass", "regression")
            assert {"slices", "fairness", "calibration", "thresholds"} <= set(measured)
            assert all(
                row["rows"] >= measured["slices"]["min_rows"] for row in measured["slices"]["rows"]
            )


def _erasure_audit(doc: dict[str, Any]) -> None:
    # The subject only as a salted hash, never its value.
    assert doc["erasure_id"] and doc["who"] and doc["at"] and isinstance(doc["verified"], bool)
    assert doc["subject"]["hash"].startswith("sha256:") and doc["subject"]["salt"]
    assert "value" not in doc["subject"]
    assert all(key["key"] and key["action"] for key in doc["keys"])


def _training_set(doc: dict[str, Any]) -> None:
    # The train stage skips a training set a judged run already trained on.
    assert doc["run_id"] and doc["recorded_at"]


def _counter(doc: dict[str, Any]) -> None:
    assert type(doc["last_version"]) is int and doc["last_version"] >= 1


def _alias(doc: dict[str, Any]) -> None:
    # Serving, the batch plan and `mlops models` follow the alias to its version.
    state = AliasState.model_validate({k: doc.get(k) for k in AliasState.model_fields})
    assert state.version >= 1 and state.revision >= 1 and state.alias


def _serving_stats(doc: dict[str, Any]) -> None:
    # The rollout decision compares these counters of candidate and production.
    assert doc["alias"] and doc["version"] >= 1 and doc["requests"] >= doc["errors"] >= 0
    assert doc["latency_ms_sum"] >= 0
    assert all(doc[k] >= 0 for k in doc if k.startswith("latency_bucket_"))
    # The latency test's sums (0 for a version 1 item: its requests carry none).
    assert 0 <= doc["latency_count"] <= doc["requests"] - doc["errors"]
    assert doc["log_latency_sq_sum"] >= 0 and isinstance(doc["log_latency_sum"], int | float)
    # The accuracy test's sums, from feedback (0 when no label was counted).
    assert 0 <= doc["misses"] <= doc["labeled"] and doc["log_abs_error_sq_sum"] >= 0


def _rollout_decision(doc: dict[str, Any]) -> None:
    decision = RolloutDecision.model_validate(
        {k: doc[k] for k in RolloutDecision.model_fields if k in doc}
    )
    assert decision.reason and decision.candidate.version == decision.candidate_version
    # The sequential test's record (none for a version 1 decision, decided by fixed rules).
    assert all(t.lower < 0 < t.upper and t.candidate_n >= 0 for t in decision.tests)
    assert not decision.tests or {t.metric for t in decision.tests} == {"error_rate", "latency"}


def _contract_item(doc: dict[str, Any]) -> None:
    # Every later drop of the dataset is checked against this frozen contract.
    contract = json.loads(doc["contract"])
    assert contract["target"] and contract["features"] and doc["inferred_from"].startswith("raw/")


def _classes_item(doc: dict[str, Any]) -> None:
    classes = json.loads(doc["classes"])
    assert len(classes) >= 2 and classes == sorted(classes) and doc["data_version"]


def _monitor_state(doc: dict[str, Any]) -> None:
    # The next check's window starts at last_check_end; the cooldown from last_retrain_at.
    for name in ("last_check_end", "last_retrain_at"):
        if name in doc:
            assert datetime.fromisoformat(doc[name].replace("Z", "+00:00"))
    assert doc["last_check_id"]


def _batch_plan(doc: dict[str, Any]) -> None:
    plan = BatchPlan.model_validate(doc)
    assert plan.items_key.startswith(f"batch/out/{plan.job}/") and plan.model_version >= 1


def _batch_item_result(doc: dict[str, Any]) -> None:
    # The finalize step sums these into the job's manifest.
    result = BatchItemResult.model_validate(doc)
    assert result.rows == result.scored + result.rejected and result.end > result.start
    assert result.output_key.startswith(f"batch/out/{result.job}/")


def _signature(doc: dict[str, Any]) -> None:
    # Evaluation and serving build the model's inputs from it.
    signature = Signature.from_dict(doc)
    assert signature.inputs and signature.onnx_inputs and signature.onnx_outputs
    served = formats.content(formats.SIGNATURE, doc)
    assert formats.FIELD not in served, "never shown in the model's API descriptions"
    assert [spec.name for spec in feature_specs(served)] == [i["name"] for i in signature.inputs]


def _reject(doc: dict[str, Any]) -> None:
    # `mlops batch show` prints the first rejects: file, row, field, error, reason.
    reject = Reject.model_validate(doc)
    assert reject.input_key.startswith("batch/in/") and reject.row >= 0
    assert reject.error and reject.reason and reject.problems


def _lineage_event(doc: dict[str, Any]) -> None:
    # Lineage tools and the tests read the spec's RunEvent: valid with the stamp, and without.
    from tests.helpers.openlineage import assert_valid

    assert_valid(doc)
    event = formats.content(formats.LINEAGE_EVENT, doc)
    assert_valid(event)
    assert event["eventType"] in {"START", "COMPLETE", "FAIL"} and event["job"]["name"]


RELIED_ON: dict[str, Callable[[dict[str, Any]], None]] = {
    formats.DATASET_MANIFEST: _manifest,
    formats.DATASET_VERSION_ITEM: _dataset_version,
    formats.QUARANTINE_REASON: _reason,
    formats.RUN_RECORD: _run,
    formats.RUN_ITEM: _run_item,
    formats.MODEL_VERSION_ITEM: _model_version,
    formats.VERSION_METADATA: _metadata,
    formats.ALIAS_HISTORY_ITEM: _history,
    formats.CAPTURE_RECORD: _capture,
    formats.FEEDBACK_RECORD: _feedback,
    formats.DRIFT_RESULT: _drift_result,
    formats.BATCH_MANIFEST: _batch_manifest,
    formats.REFERENCE_PROFILE: _profile,
    formats.MIGRATION_CHECKPOINT: _checkpoint,
    formats.MIGRATION_AUDIT: _audit,
    formats.EVALUATION: _evaluation,
    formats.ERASURE_AUDIT: _erasure_audit,
    formats.TRAINING_SET_ITEM: _training_set,
    formats.VERSION_COUNTER_ITEM: _counter,
    formats.ALIAS_ITEM: _alias,
    formats.SERVING_STATS_ITEM: _serving_stats,
    formats.ROLLOUT_DECISION_ITEM: _rollout_decision,
    formats.DATASET_CONTRACT_ITEM: _contract_item,
    formats.DATASET_CLASSES_ITEM: _classes_item,
    formats.MONITOR_STATE_ITEM: _monitor_state,
    formats.BATCH_PLAN: _batch_plan,
    formats.BATCH_ITEM_RESULT: _batch_item_result,
    formats.SIGNATURE: _signature,
    formats.BATCH_REJECT: _reject,
    formats.LINEAGE_EVENT: _lineage_event,
}


def test_every_format_has_a_fixture_of_every_version_and_what_users_rely_on() -> None:
    kept = {(name, version) for name, version, _ in _fixtures()}
    assert {name for name, _ in kept} <= set(formats.FORMATS), "a fixture of no known format"
    assert set(RELIED_ON) == set(formats.FORMATS)
    missing = [
        f"{name}/v{version}"
        for name, known in formats.FORMATS.items()
        for version in range(1, known.current + 1)
        if (name, version) not in kept
    ]
    assert not missing, f"no fixture under tests/fixtures/formats for {missing}"


@pytest.mark.parametrize(
    ("name", "version", "path"), _fixtures(), ids=lambda v: v.name if isinstance(v, Path) else v
)
def test_every_fixture_reads_in_the_current_shape(name: str, version: int, path: Path) -> None:
    for document in _documents(path):
        assert formats.version_of(name, document) == version
        current = formats.read(name, document)
        assert current[formats.FIELD] == formats.current(name)
        RELIED_ON[name](current)
        # What today's writers stamp reads the same as what they wrote before the stamp.
        if version == formats.current(name):
            assert formats.read(name, formats.stamp(name, document)) == current


def test_a_version_1_profile_reads_as_current_without_importance_or_calibration() -> None:
    [v1] = _documents(FIXTURES / formats.REFERENCE_PROFILE / "v1.json")
    current = formats.read(formats.REFERENCE_PROFILE, v1)
    assert current[formats.FIELD] == 3 and "importance" not in current
    assert "calibration" not in current
    assert v1[formats.FIELD] == 1, "reading never changes the stored document"


def test_a_document_without_the_field_is_version_1_and_stamping_sets_the_current() -> None:
    assert formats.version_of(formats.DRIFT_RESULT, {"verdict": "drift"}) == 1
    stamped = formats.stamp(formats.REFERENCE_PROFILE, {"rows": 3})
    assert stamped == {"rows": 3, formats.FIELD: formats.current(formats.REFERENCE_PROFILE)}


@pytest.mark.parametrize("name", sorted(formats.FORMATS))
def test_a_document_from_a_newer_release_is_refused_naming_it(name: str) -> None:
    newer = formats.current(name) + 1
    with pytest.raises(formats.FormatVersionError) as refused:
        formats.read(name, {formats.FIELD: newer})
    message = str(refused.value)
    assert name in message and f"{formats.FIELD} {newer}" in message
    assert "newer release" in message


@pytest.mark.parametrize("value", [0, -1, "2", 1.5, True, None])
def test_a_version_that_is_not_a_version_is_refused(value: Any) -> None:
    with pytest.raises(formats.FormatVersionError, match="is not a version"):
        formats.read(formats.BATCH_MANIFEST, {formats.FIELD: value})


def test_a_newer_capture_or_feedback_record_is_refused_not_misread() -> None:
    [capture, *_] = _documents(FIXTURES / formats.CAPTURE_RECORD / "v1.jsonl")
    with pytest.raises(formats.FormatVersionError, match="capture-record"):
        capture_record({**capture, formats.FIELD: formats.current(formats.CAPTURE_RECORD) + 1})
    [feedback] = _documents(FIXTURES / formats.FEEDBACK_RECORD / "v1.json")
    with pytest.raises(formats.FormatVersionError, match="feedback-record"):
        feedback_item({**feedback, formats.FIELD: formats.current(formats.FEEDBACK_RECORD) + 1})


def test_a_format_needs_one_upgrade_per_earlier_version() -> None:
    with pytest.raises(ValueError, match="2 versions need 1 upgrades, not 0"):
        formats.StoredFormat("example", "nowhere", ("first", "second"))
    with pytest.raises(ValueError, match="no stored format is named 'nothing'"):
        formats.current("nothing")


def test_the_docs_table_names_every_format_at_its_current_version() -> None:
    text = (REPO / "docs" / "pipeline.md").read_text(encoding="utf-8")
    section = text.split("## Stored formats", 1)[1]
    rows = re.findall(r"^\| `([a-z-]+)` \| [^|]+ \| (\d+) \|", section, re.M)
    assert {name: int(version) for name, version in rows} == {
        name: known.current for name, known in formats.FORMATS.items()
    }
