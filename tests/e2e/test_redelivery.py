"""Redelivery and races on the local cloud: whatever is delivered, posted or retried twice
leaves one dataset version, one feedback object and one model version; drops and promotions
at the same moment leave a registry whose versions and production history add up. The cloud
runs in server mode so that `mlops models ...` reaches it as it does from another shell."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from functions.adapters.registry.aliases import PRODUCTION
from functions.common.contracts import model_outcome
from functions.common.errors import StalePromotionError
from infra.cli.main import app as cli_app
from infra.cli.predict_client import signed_request
from infra.local import LocalCloud, eventbridge, faults, workers
from tests.e2e.test_faults import MODEL, Pipeline, churn_csv
from tests.helpers.config import ABSOLUTE_GATE, repo_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("redelivery-state")


@pytest.fixture(scope="module")
def pipeline(synth_with_config: Callable[[str], Path], state_dir: Path) -> Iterator[Pipeline]:
    cdk_out = synth_with_config(repo_config(gate=ABSOLUTE_GATE))
    with (
        LocalCloud.start(cdk_out, mode="server", port=0, state_dir=state_dir) as cloud,
        faults.shorter_retry_waits(0.02),
    ):
        try:
            yield Pipeline(cloud)
        finally:
            faults.clear()


@pytest.fixture(scope="module")
def first(pipeline: Pipeline) -> dict[str, Any]:
    """A drop trained and promoted: the dataset and model the other tests start from."""
    execution = pipeline.drop("raw/churn/redelivery-first.csv", churn_csv(seed=41))
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    return execution


def _invoke(pipeline: Pipeline, stage: str, payload: Any) -> dict[str, Any]:
    response = pipeline.cloud.client("lambda").invoke(
        FunctionName=pipeline.function_name(stage), Payload=json.dumps(payload).encode()
    )
    assert "FunctionError" not in response, response["Payload"].read()
    result: dict[str, Any] = json.loads(response["Payload"].read())
    return result


def _scheduled_input(pipeline: Pipeline, execution: dict[str, Any], state: str) -> Any:
    """The payload the state's (last) invocation received."""
    events = pipeline.sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
    current, payload = None, None
    for event in events:
        if event["type"] == "TaskStateEntered":
            current = event["stateEnteredEventDetails"]["name"]
        elif current == state and event["type"] == "LambdaFunctionScheduled":
            payload = json.loads(event["lambdaFunctionScheduledEventDetails"]["input"])
    return payload


def test_the_same_object_event_delivered_twice_is_one_execution_and_one_version(
    pipeline: Pipeline, first: dict[str, Any]
) -> None:
    event = json.loads(first["input"])
    key = event["detail"]["object"]["key"]
    before = pipeline.snapshot()
    (rule,) = [
        name
        for logical, name in pipeline.cloud.deployment.of_type("AWS::Events::Rule").items()  # type: ignore[union-attr]
        if "RawDropRule" in logical
    ]
    eventbridge.find_rule(rule).send_to_targets(event)
    pipeline.cloud.wait_idle()

    last = [d for d in pipeline.cloud.deliveries if d.rule == rule][-1]
    assert last.outcome == "duplicate"
    named = [e for e in pipeline.cloud.executions() if e["name"] == first["name"]]
    assert len(named) == 1
    assert pipeline.snapshot() == before

    # The ingest function itself, handed the same event twice (a retried task).
    again = [_invoke(pipeline, "Ingest", event) for _ in range(2)]
    dataset = json.loads(first["output"])["dataset"]
    assert {result["data_version"] for result in again} == {dataset["data_version"]}
    assert all(result["already_ingested"] for result in again)
    assert [v.source.key for v in pipeline.datasets.list_versions("churn")].count(key) == 1
    assert pipeline.snapshot() == before


def test_the_same_feedback_posted_twice_at_once_is_stored_once(
    pipeline: Pipeline, first: dict[str, Any]
) -> None:
    api = pipeline.cloud.api_url.rstrip("/")
    rows = [json.loads(line) for line in _rows_json()]
    predicted = _post(f"{api}/v1/predict", {"instances": rows})
    item = {"request_id": predicted["request_id"], "row": 0, "label": "yes"}
    barrier = threading.Barrier(2)

    def post() -> dict[str, Any]:
        barrier.wait()
        return _post(f"{api}/v1/feedback", {"feedback": [item]})

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: post(), range(2)))
    later = _post(f"{api}/v1/feedback", {"feedback": [item]})

    assert sorted(a["stored"] for a in answers) == [0, 1]
    assert sorted(a["duplicates"] for a in answers) == [0, 1]
    assert later == {"stored": 0, "duplicates": 1, "unmatched": 0}
    listed = pipeline.s3.list_objects_v2(Bucket=pipeline.bucket, Prefix="feedback/")
    keys = [o["Key"] for o in listed.get("Contents", []) if predicted["request_id"] in o["Key"]]
    assert len(keys) == 1


def _rows_json() -> list[str]:
    return [
        json.dumps(
            {
                "age": 52,
                "tenure_months": 19,
                "monthly_charges": 90.22,
                "total_charges": 1702.3,
                "support_calls": 1,
                "contract": "two year",
                "payment_method": "credit card",
                "internet_service": "fiber optic",
                "region": None,
            }
        )
    ]


def _post(url: str, document: Any) -> dict[str, Any]:
    request = signed_request(
        url, "POST", json.dumps(document).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def test_a_register_step_retried_after_its_response_was_lost_registers_one_version(
    pipeline: Pipeline, first: dict[str, Any]
) -> None:
    register = pipeline.function_name("Register")
    data_version = json.loads(first["output"])["dataset"]["data_version"]
    before = pipeline.snapshot()
    # The invocation runs to the end (version registered, production moved), then the answer
    # is lost on the way back: Step Functions sees a Lambda service error and retries.
    with faults.inject(
        "lambda.Invoke", "ServiceException", times=1, match=register, response_lost=True
    ):
        execution = pipeline.retrain("register-response-lost", data_version)

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert pipeline.attempts(execution, "Register") == ["Lambda.ServiceException", "succeeded"]
    model = model_outcome(json.loads(execution["output"]))["registered"]
    after = pipeline.snapshot()
    assert [v for v in after["versions"] if v not in before["versions"]] == [model["version"]]
    assert after["history"] == before["history"] + 1
    assert after["alias"] == (model["version"], before["alias"][1] + 1)

    # Invoked again by hand with the same state: still that one version, no new move.
    state = _scheduled_input(pipeline, execution, "Register")
    assert _invoke(pipeline, "Register", state)["version"] == model["version"]
    assert pipeline.snapshot() == after


def test_two_drops_at_once_leave_versions_and_history_that_add_up(
    pipeline: Pipeline, first: dict[str, Any]
) -> None:
    before = pipeline.snapshot()
    drops = {"raw/churn/together-a.csv": 42, "raw/churn/together-b.csv": 43}
    barrier = threading.Barrier(len(drops))

    def drop(key: str) -> dict[str, Any]:
        barrier.wait()
        return pipeline.drop(key, churn_csv(seed=drops[key]))

    with ThreadPoolExecutor(len(drops)) as pool:
        executions = list(pool.map(drop, drops))

    # Ingest ran twice at once, in two workers, as two Lambda environments would.
    ingest = pipeline.function_name("Ingest")
    runs = [(start, end) for name, start, end in workers.WORKERS.intervals if name == ingest]
    (first_start, first_end), (second_start, _) = sorted(runs)[-2:]
    assert second_start < first_end, "the two ingest invocations overlap in time"
    after = pipeline.snapshot()
    assert len(after["datasets"]) == len(before["datasets"]) + 2
    versions = pipeline.models.list_versions(MODEL)
    assert [v.version for v in versions] == list(range(1, len(versions) + 1))
    promoted = []
    for execution in executions:
        if execution["status"] == "SUCCEEDED":
            output = model_outcome(json.loads(execution["output"]))
            assert output["status"] in {"promoted", "rejected"}
            if output["status"] == "promoted":
                promoted.append(output["registered"]["version"])
        else:
            # Lost the race to the other drop: registered, not promoted, and reported.
            assert execution["error"] == "StalePromotionError", execution
            assert pipeline.failure_alerts(execution)
    _assert_history_adds_up(pipeline)
    history = pipeline.models.history(MODEL)
    # The two executions run at once: either may promote first.
    assert sorted(c.to_version for c in history[before["history"] :]) == sorted(promoted)


def _assert_history_adds_up(pipeline: Pipeline) -> None:
    history = pipeline.models.history(MODEL)
    assert [c.revision for c in history] == list(range(1, len(history) + 1))
    for earlier, later in zip(history, history[1:], strict=False):
        assert later.from_version == earlier.to_version
    registered = {v.version for v in pipeline.models.list_versions(MODEL)}
    assert {c.to_version for c in history} <= registered
    alias = pipeline.models.get_alias(MODEL)
    assert alias is not None
    assert (alias.version, alias.revision) == (history[-1].to_version, history[-1].revision)


def test_two_promotions_racing_one_wins_the_other_is_refused(
    pipeline: Pipeline, first: dict[str, Any], state_dir: Path
) -> None:
    data_version = json.loads(first["output"])["dataset"]["data_version"]
    for name in ("race-a", "race-b"):
        assert pipeline.retrain(name, data_version)["status"] == "SUCCEEDED"
    registry = pipeline.models
    current = registry.get_alias(MODEL)
    assert current is not None
    contenders = [v.version for v in registry.list_versions(MODEL) if v.version != current.version]
    contenders = contenders[-2:]
    history_before = len(registry.history(MODEL))
    barrier = threading.Barrier(2)

    def promote(version: int) -> Any:
        barrier.wait()
        try:
            return registry.promote(MODEL, version, expected_current=current.version, reason="race")
        except StalePromotionError as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(promote, contenders))

    refused = [o for o in outcomes if isinstance(o, StalePromotionError)]
    won = [o for o in outcomes if not isinstance(o, StalePromotionError)]
    assert len(won) == 1 and len(refused) == 1
    assert refused[0].expected == current.version
    assert refused[0].actual == won[0].to_version
    assert len(registry.history(MODEL)) == history_before + 1
    assert registry.get_alias(MODEL).version == won[0].to_version  # type: ignore[union-attr]
    _assert_history_adds_up(pipeline)

    # `mlops models promote` losing the same race: another promotion lands while its
    # transaction is on the way; it changes nothing and says why.
    winner = won[0].to_version
    loser = next(v for v in contenders if v != winner)

    def rollback_first() -> None:
        registry.rollback(MODEL, reason="meanwhile, elsewhere")

    with faults.inject(
        "dynamodb.TransactWriteItems", match='"cli:', times=1, before=rollback_first
    ):
        result = CliRunner().invoke(
            cli_app,
            ["models", "promote", str(loser), "--reason", "race", "--state-dir", str(state_dir)],
            env={"COLUMNS": "200"},
        )
    assert result.exit_code == 1, result.output
    assert f"{PRODUCTION} of {MODEL} is version {current.version}" in result.output
    assert f"not version {winner} as expected" in result.output
    assert registry.get_alias(MODEL).version == current.version  # type: ignore[union-attr]
    assert len(registry.history(MODEL)) == history_before + 2
    _assert_history_adds_up(pipeline)


def test_redundant_deliveries_of_one_file_train_once(
    pipeline: Pipeline, first: dict[str, Any]
) -> None:
    """The same bytes put again (a new S3 version) and the first event replayed (a new
    execution) hold the same training set, config and code: each is skipped as unchanged."""
    event = json.loads(first["input"])
    key = event["detail"]["object"]["key"]
    trained_before = [r for r in pipeline.models.list_runs(MODEL) if r.get("status") != "skipped"]
    before = pipeline.snapshot()

    reput = pipeline.drop(key, pipeline.body(key, event["detail"]["object"]["version-id"]))
    replay = pipeline.start("redelivery-replay", event)

    # Retrain requests of other tests may have trained on the same set since: any such run.
    same_set = {
        r["run_id"]
        for r in trained_before
        if r.get("data_versions")
        == model_outcome(json.loads(first["output"]))["training"]["data_versions"]
    }
    for execution in (reput, replay):
        assert execution["status"] == "SUCCEEDED", execution.get("cause")
        output = model_outcome(json.loads(execution["output"]))
        assert output["status"] == "skipped", output
        assert output["training"]["skipped"] == "unchanged"
        assert output["training"]["same_as"] in same_set
        assert pipeline.attempts(execution, "Evaluate") == []
    trained_after = [r for r in pipeline.models.list_runs(MODEL) if r.get("status") != "skipped"]
    assert len(trained_after) == len(trained_before)
    skipped = [r for r in pipeline.models.list_runs(MODEL) if r.get("status") == "skipped"]
    assert [r["skipped"] for r in skipped] == ["unchanged", "unchanged"]
    assert pipeline.snapshot() == before
