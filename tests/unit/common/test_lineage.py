"""OpenLineage run events as built for each step: valid against the spec's JSON schemas (kept
in tests/data/openlineage, checked offline), with the facets a lineage tool reads, and the
chain of datasets from a model version back to the raw object."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from functions.common import formats
from functions.common.contracts import (
    DatasetRef,
    EvaluationResult,
    ExecutionInfo,
    ModelVersion,
    PipelineState,
    SourceObject,
    TrainingRun,
    TrainingSkipped,
)
from functions.common.layout import lineage_event_key
from functions.common.lineage import (
    Dataset,
    Job,
    Parent,
    RunContext,
    manifest_fields,
    run_event,
    run_id_for,
)
from functions.common.lineage_steps import (
    evaluate_begin,
    evaluate_end,
    ingest_begin,
    ingest_end,
    register_begin,
    register_end,
    train_begin,
    train_end,
)
from tests.helpers.openlineage import assert_valid, problems

REPO = Path(__file__).resolve().parents[3]
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:mlops-dev-pipeline:drop-1"
MANIFEST = json.loads((REPO / "tests/fixtures/formats/dataset-manifest/v1.json").read_text())
SIGNATURE = json.loads((REPO / "tests/fixtures/formats/signature/v1.json").read_text())


def _context(**overrides: Any) -> RunContext:
    fields: dict[str, Any] = {
        "job": Job("mlops-dev", "churn.train", "TASK", "Fit a candidate"),
        "run_id": "3f0e4b8e-8d2a-4c39-9a39-1d1f5c7b5f11",
        "producer": "urn:mlops-bundle:code:test1234",
        "code_version": "test1234",
        "bucket": "mlops-dev-data",
        "inputs": (Dataset("curated/churn/05049ee7a1bbbf45/", "05049ee7a1bbbf45"),),
    }
    return RunContext(**{**fields, **overrides})


def test_start_complete_and_fail_events_are_valid_run_events() -> None:
    context = _context(parent=Parent(EXECUTION), nominal_time="2026-12-03T06:00:00.000Z")
    fields = manifest_fields(MANIFEST)
    output = Dataset("models/churn/runs/r1/", "r1", fields)
    events = [
        run_event(context, "START"),
        run_event(context, "COMPLETE", outputs=[output]),
        run_event(context, "FAIL", error=ValueError("no rows left after cleaning")),
    ]
    for event in events:
        assert_valid(event)
    start, complete, fail = events
    assert {start["run"]["runId"], complete["run"]["runId"], fail["run"]["runId"]} == {
        context.run_id
    }
    assert complete["outputs"][0]["namespace"] == "s3://mlops-dev-data"
    schema = complete["outputs"][0]["facets"]["schema"]["fields"]
    assert [f["name"] for f in schema] == list(MANIFEST["schema"])
    assert complete["outputs"][0]["facets"]["version"]["datasetVersion"] == "r1"
    assert fail["run"]["facets"]["errorMessage"]["message"] == (
        "ValueError: no rows left after cleaning"
    )
    assert "errorMessage" not in complete["run"]["facets"]
    parent = start["run"]["facets"]["parent"]
    assert parent["job"]["name"] == "mlops-dev-pipeline"
    assert parent["run"]["runId"] == run_id_for("execution", EXECUTION)
    assert start["job"]["facets"]["jobType"]["jobType"] == "TASK"


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda e: e["run"].update(runId="not-a-uuid"), "is not a 'uuid'"),
        (lambda e: e.update(eventType="DONE"), "'DONE' is not one of"),
        (lambda e: e["run"]["facets"]["parent"].pop("_producer"), "'_producer' is a required"),
        (lambda e: e["run"]["facets"]["parent"].pop("run"), "'run' is a required property"),
        (
            lambda e: e["run"]["facets"].update(nominal=e["run"]["facets"]["parent"]),
            "facet 'nominal'",
        ),
        (
            lambda e: e["inputs"][0]["facets"]["version"].update(_schemaURL="https://x/y.json"),
            "no schema of the spec",
        ),
    ],
)
def test_the_schema_check_finds_a_broken_event(damage: Any, expected: str) -> None:
    event = copy.deepcopy(run_event(_context(parent=Parent(EXECUTION)), "START"))
    assert_valid(event)
    damage(event)
    found = problems(event)
    assert any(expected in problem for problem in found), found


def _source() -> SourceObject:
    return SourceObject(bucket="b", key="raw/churn/jan.csv", version_id="v-1", etag="e1")


def _training(run_id: str = "20261203T060000Z-aaaaaa") -> TrainingRun:
    prefix = f"models/churn/runs/{run_id}/"
    return TrainingRun(
        run_id=run_id,
        model_name="churn",
        task="classification",
        estimator="logistic_regression",
        params={},
        data_version="d2",
        data_versions=["d1", "d2"],
        rows_train=80,
        rows_test=20,
        run_prefix=prefix,
        onnx_key=prefix + "model.onnx",
        onnx_sha256="0" * 64,
        holdout_key=prefix + "holdout.parquet",
        signature_key=prefix + "signature.json",
        reference_profile_key=prefix + "reference_profile.json",
        run_record_key=prefix + "run.json",
        started_at="2026-12-03T06:00:00Z",
        code_version="test1234",
    )


def _reader(documents: dict[str, Any]) -> Any:
    return documents.get


def _events(context: RunContext, begin: Any, end: Any) -> list[dict[str, Any]]:
    context = RunContext(**{**context.__dict__, "inputs": tuple(begin.inputs)})
    return [
        run_event(context, "START"),
        run_event(context, "COMPLETE", inputs=end.inputs, outputs=end.outputs),
    ]


def test_the_steps_chain_a_model_version_back_to_its_raw_objects() -> None:
    """register's input is train's output, train's inputs are ingest's outputs, and ingest's
    input is the raw object, each a dataset of the bucket with its version."""
    execution = ExecutionInfo(id=EXECUTION)
    ref = DatasetRef(
        dataset="churn",
        data_version="d2",
        manifest_key="curated/churn/d2/manifest.json",
        curated_prefix="curated/churn/d2/",
        rows=100,
        source=_source(),
        created_at="2026-12-03T06:00:00Z",
    )
    training = _training()
    evaluation = EvaluationResult(
        run_id=training.run_id,
        metrics={"roc_auc": 0.8},
        champion_version=3,
        criteria=[],
        passed=True,
        failed=[],
        evaluation_key=training.run_prefix + "evaluation.json",
    )
    version = ModelVersion(
        model_name="churn",
        version=4,
        prefix="models/churn/4/",
        onnx_key="models/churn/4/model.onnx",
        onnx_sha256="0" * 64,
        run_id=training.run_id,
        data_version="d2",
        data_versions=["d1", "d2"],
        metrics={},
        created_at="2026-12-03T06:01:00Z",
        model_card_key="reports/churn/4/model_card.html",
        promoted=True,
    )
    read = _reader(
        {
            "curated/churn/d1/manifest.json": MANIFEST,
            "curated/churn/d2/manifest.json": MANIFEST,
            training.signature_key: SIGNATURE,
            "models/churn/4/signature.json": SIGNATURE,
        }
    )
    state = PipelineState(execution=execution, dataset=ref, training=training)
    context = _context(parent=Parent(EXECUTION))
    steps = {
        "ingest": _events(
            context, ingest_begin(_source(), "churn", EXECUTION), ingest_end(ref, read)
        ),
        "train": _events(context, train_begin(state, "churn"), train_end("churn", training, read)),
        "evaluate": _events(context, evaluate_begin(state), evaluate_end(state, evaluation, read)),
        "register": _events(context, register_begin(state), register_end(state, version, read)),
    }
    for events in steps.values():
        for event in events:
            assert_valid(event)

    def names(step: str, side: str) -> set[str]:
        return {d["name"] for d in steps[step][-1][side]}

    assert names("register", "outputs") == {"models/churn/4/"}
    assert names("register", "inputs") <= names("train", "outputs")
    assert names("train", "inputs") == {"curated/churn/d1/", "curated/churn/d2/"}
    assert "curated/churn/d2/" in names("ingest", "outputs")
    assert names("ingest", "inputs") == {"raw/churn/jan.csv"}
    raw = steps["ingest"][-1]["inputs"][0]["facets"]["version"]["datasetVersion"]
    assert raw == "v-1"  # the object version trained on
    evaluated = names("evaluate", "inputs")
    assert {training.run_prefix, training.holdout_key, "models/churn/3/"} == evaluated
    trained = steps["train"][-1]["outputs"][0]["facets"]["schema"]["fields"]
    assert [f["name"] for f in trained] == list(MANIFEST["schema"])
    registered = steps["register"][-1]["outputs"][0]["facets"]["schema"]["fields"]
    assert registered[0]["name"] == SIGNATURE["inputs"][0]["name"]
    assert registered[-1]["name"] == SIGNATURE["target"]


def test_a_skipped_training_reads_its_versions_and_writes_nothing() -> None:
    skipped = TrainingSkipped(
        run_id="r2", same_as="r1", data_version="d1", data_versions=["d1"], training_key="k"
    )
    end = train_end("churn", skipped, _reader({}))
    assert [d.name for d in end.inputs or []] == ["curated/churn/d1/"]
    assert end.outputs == ()


def test_a_folder_marker_ingests_nothing() -> None:
    from functions.common.contracts import IngestSkipped

    skipped = IngestSkipped(reason="folder_marker", message="m", source=_source())
    assert ingest_end(skipped, _reader({})).outputs == ()


def test_events_are_stored_by_day_job_and_run() -> None:
    event = run_event(_context(), "COMPLETE")
    key = lineage_event_key(
        event["eventTime"][:10], event["job"]["name"], event["run"]["runId"], "COMPLETE"
    )
    assert key.startswith(f"lineage/dt={event['eventTime'][:10]}/churn.train/")
    assert key.endswith(f"{event['run']['runId']}-COMPLETE.json")


def test_the_stored_event_format_is_registered_and_stays_valid() -> None:
    event = run_event(_context(), "START")
    stored = formats.stamp(formats.LINEAGE_EVENT, event)
    assert stored["format_version"] == 1
    assert_valid(stored)  # the stamp is an extra property the spec allows
    assert formats.content(formats.LINEAGE_EVENT, stored) == event


def _config(lineage: str) -> Any:
    import tomllib

    from functions.common.config.loading import parse_config

    text = (REPO / "mlops.toml").read_text() + "\n[lineage]\n" + lineage
    return parse_config(tomllib.loads(text), "mlops.toml")


def test_lineage_config_takes_an_http_url_and_a_namespace() -> None:
    config = _config('url = "https://marquez.example:5000"\nnamespace = "acme"\n')
    assert config.lineage.url == "https://marquez.example:5000"
    assert config.lineage.namespace == "acme"
    assert _config("").lineage.url is None  # the bucket only


@pytest.mark.parametrize(
    ("lineage", "expected"),
    [
        ('url = "marquez:5000"', "is not an http(s) URL"),
        ('url = "ftp://marquez"', "is not an http(s) URL"),
        ('namespace = ""', "namespace"),
        ('endpoint = "x"', "endpoint"),
    ],
)
def test_a_bad_lineage_config_names_the_key(lineage: str, expected: str) -> None:
    from functions.common.config.base import ConfigError

    with pytest.raises(ConfigError, match=re.escape(expected)) as error:
        _config(lineage + "\n")
    assert "lineage" in str(error.value)


def test_a_drift_check_reads_its_window_and_profiles_and_covers_the_window() -> None:
    from functions.monitor.lineage import check_begin, check_end

    result = {
        "check_id": "20261203T060000Z-ab12",
        "window": {
            "start": "2026-12-03T05:00:00Z",
            "end": "2026-12-03T05:59:59Z",
            "feedback_objects": 2,
        },
        "versions": [
            {"model_version": 3, "report": {"verdict": "drift"}},
            {"model_version": 9, "report": None, "note": "version 9 is not in the registry"},
        ],
    }
    end = check_end("churn", result)
    context = RunContext(
        **{**_context().__dict__, "job": Job("ns", check_begin("churn").job, "JOB", "d")}
    )
    event = run_event(
        context, "COMPLETE", inputs=end.inputs, outputs=end.outputs, nominal=end.nominal
    )
    assert_valid(event)
    assert event["job"]["name"] == "churn.drift-check"
    assert [d["name"] for d in event["inputs"]] == [
        "capture/",
        "feedback/",
        "models/churn/3/reference_profile.json",  # the version without a profile read none
    ]
    assert event["inputs"][0]["facets"]["version"]["datasetVersion"] == (
        "2026-12-03T05:00:00Z/2026-12-03T05:59:59Z"
    )
    assert [d["name"] for d in event["outputs"]] == ["reports/drift/churn/20261203T060000Z-ab12/"]
    nominal = event["run"]["facets"]["nominalTime"]
    assert (nominal["nominalStartTime"], nominal["nominalEndTime"]) == (
        "2026-12-03T05:00:00Z",
        "2026-12-03T05:59:59Z",
    )
