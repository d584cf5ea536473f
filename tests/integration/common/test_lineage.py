"""OpenLineage events on moto: stored under lineage/ in the data bucket, posted by the
openlineage-python client to an HTTP endpoint when `[lineage] url` is set (a local server in a
thread receives them), and never failing the step when the endpoint or the bucket refuses them.
Every event seen is checked against the spec's JSON schemas."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openlineage.client  # noqa: F401 - the client the functions post with (requirements.txt)
import pytest

from functions.adapters.lineage import EMIT_FAILURES_METRIC, LineageEmitter, traced
from functions.common import formats
from functions.common.config.loading import deployed_config
from functions.common.lineage import Dataset, RunEnd, RunSpec
from functions.common.observability import metrics
from functions.common.settings import stage_settings
from functions.ingest.handler import lambda_handler as ingest_handler
from functions.ml.sample_data import churn_frame, encode
from tests.helpers.lambda_context import lambda_context
from tests.helpers.openlineage import assert_valid

if TYPE_CHECKING:
    from tests.helpers.cloud import Cloud

REPO = Path(__file__).resolve().parents[3]
EVENT = REPO / "events" / "s3_object_created.json"


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, Any]]]
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, json.loads(body)))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[tuple[str, type[_Receiver]]]:
    """An OpenLineage HTTP endpoint on this machine: (its URL, what it received)."""
    receiver = type("Receiver", (_Receiver,), {"received": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", receiver
    server.shutdown()
    server.server_close()


def _stored(cloud: Cloud) -> list[dict[str, Any]]:
    events = []
    for key in cloud.keys("lineage/"):
        document = json.loads(cloud.body(key))
        assert_valid(document)
        events.append(formats.content(formats.LINEAGE_EVENT, document))
    return events


def _spec() -> RunSpec:
    return RunSpec(
        job="churn.train",
        job_type="TASK",
        description="Fit a candidate",
        inputs=(Dataset("curated/churn/d1/", "d1"),),
        parent="arn:aws:states:us-east-1:123456789012:execution:mlops-dev-pipeline:e1",
    )


def _failures() -> float:
    values = metrics.metric_set.get(EMIT_FAILURES_METRIC, {}).get("Value", [])
    return float(sum(values))


def test_a_step_stores_start_and_complete_under_lineage(cloud: Cloud) -> None:
    emitter = LineageEmitter(cloud.bucket, namespace="mlops-dev", code_version="test1234")
    step = traced(
        lambda n: n + 1,
        lambda _: _spec(),
        lambda _, result, __: RunEnd(outputs=(Dataset("models/churn/runs/r1/", f"r{result}"),)),
        emitter=lambda: emitter,
    )
    assert step(1) == 2
    keys = cloud.keys("lineage/")
    assert len(keys) == 2 and all("/churn.train/" in key for key in keys)
    start, complete = sorted(_stored(cloud), key=lambda e: e["eventType"] != "START")
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == complete["run"]["runId"]
    assert keys[0].startswith(f"lineage/dt={start['eventTime'][:10]}/churn.train/")
    assert complete["outputs"][0]["name"] == "models/churn/runs/r1/"
    assert complete["outputs"][0]["facets"]["version"]["datasetVersion"] == "r2"
    assert complete["inputs"][0]["namespace"] == f"s3://{cloud.bucket}"


def test_a_failing_step_stores_fail_with_its_error_and_raises_it(cloud: Cloud) -> None:
    emitter = LineageEmitter(cloud.bucket, namespace="mlops-dev", code_version="test1234")

    def work(_: int) -> int:
        raise ValueError("no rows left after cleaning")

    step = traced(work, lambda _: _spec(), lambda *_: RunEnd(), emitter=lambda: emitter)
    with pytest.raises(ValueError, match="no rows left"):
        step(1)
    kinds = {e["eventType"]: e for e in _stored(cloud)}
    assert set(kinds) == {"START", "FAIL"}
    error = kinds["FAIL"]["run"]["facets"]["errorMessage"]
    assert error["message"] == "ValueError: no rows left after cleaning"
    assert error["programmingLanguage"] == "PYTHON"


def test_with_a_url_the_client_posts_each_event_to_the_endpoint(
    cloud: Cloud, endpoint: tuple[str, type[_Receiver]]
) -> None:
    url, receiver = endpoint
    emitter = LineageEmitter(cloud.bucket, namespace="ns", code_version="c1", url=url)
    run = emitter.run("churn.evaluate", job_type="TASK", description="d")
    run.start()
    run.complete(outputs=[Dataset("models/churn/runs/r1/evaluation.json", "r1")])
    assert [path for path, _ in receiver.received] == ["/api/v1/lineage"] * 2
    posted = [event for _, event in receiver.received]
    for event in posted:
        assert_valid(event)
    assert [e["eventType"] for e in posted] == ["START", "COMPLETE"]
    # The same events as the bucket's record (which adds only its format version).
    assert sorted(posted, key=lambda e: e["eventType"]) == sorted(
        _stored(cloud), key=lambda e: e["eventType"]
    )


def test_an_endpoint_that_refuses_is_logged_and_counted_and_the_bucket_keeps_the_event(
    cloud: Cloud, endpoint: tuple[str, type[_Receiver]]
) -> None:
    url, receiver = endpoint
    receiver.status = 400  # a client error: not retried
    emitter = LineageEmitter(cloud.bucket, namespace="ns", code_version="c1", url=url)
    before = _failures()
    step = traced(lambda n: n * 2, lambda _: _spec(), lambda *_: RunEnd(), emitter=lambda: emitter)
    assert step(21) == 42
    assert len(receiver.received) == 2
    assert _failures() == before + 2
    assert {e["eventType"] for e in _stored(cloud)} == {"START", "COMPLETE"}


def test_an_unreachable_endpoint_and_a_missing_bucket_never_fail_the_step(
    cloud: Cloud, endpoint: tuple[str, type[_Receiver]]
) -> None:
    url, _ = endpoint
    closed = url.rsplit(":", 1)[0] + ":9"  # discard port: nothing listens
    emitter = LineageEmitter("no-such-bucket", namespace="ns", code_version="c1", url=closed)
    before = _failures()
    step = traced(lambda n: n - 1, lambda _: _spec(), lambda *_: RunEnd(), emitter=lambda: emitter)
    assert step(1) == 0
    assert _failures() == before + 4  # two events, each neither stored nor posted


def test_an_ingested_drop_is_traced_from_its_raw_object_to_its_curated_version(
    cloud: Cloud, endpoint: tuple[str, type[_Receiver]], tmp_path: Path, monkeypatch: Any
) -> None:
    """The ingest handler with `[lineage] url`: the raw object version in, the curated version
    out with the manifest's columns, in the bucket and at the endpoint."""
    url, receiver = endpoint
    config = tmp_path / "mlops.toml"
    config.write_text(
        (REPO / "mlops.toml").read_text() + f'\n[lineage]\nurl = "{url}"\nnamespace = "acme"\n'
    )
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    deployed_config.cache_clear()
    stage_settings.cache_clear()
    body = encode(churn_frame(300, seed=4))
    put = cloud.s3.put_object(Bucket=cloud.bucket, Key="raw/churn/lineage.csv", Body=body)
    event = json.loads(EVENT.read_text())
    event["detail"]["bucket"]["name"] = cloud.bucket
    event["detail"]["object"].update(
        {"key": "raw/churn/lineage.csv", "size": len(body), "etag": put["ETag"].strip('"')}
    )
    event["detail"]["object"]["version-id"] = put["VersionId"]
    execution = "arn:aws:states:us-east-1:123456789012:execution:mlops-dev-pipeline:drop-9"
    event["execution"] = {"id": execution}
    result = ingest_handler(event, lambda_context("ingest", memory_mb=2048))

    stored = {e["eventType"]: e for e in _stored(cloud)}
    assert set(stored) == {"START", "COMPLETE"}
    complete = stored["COMPLETE"]
    assert complete["job"] == {**complete["job"], "namespace": "acme", "name": "ingest.churn"}
    assert complete["run"]["facets"]["parent"]["job"]["name"] == "mlops-dev-pipeline"
    (raw,) = complete["inputs"]
    assert raw["name"] == "raw/churn/lineage.csv"
    assert raw["facets"]["version"]["datasetVersion"] == put["VersionId"]
    (curated,) = complete["outputs"]
    assert curated["name"] == result["curated_prefix"]
    assert curated["facets"]["version"]["datasetVersion"] == result["data_version"]
    manifest = json.loads(cloud.body(result["manifest_key"]))
    schema = [(f["name"], f["type"]) for f in curated["facets"]["schema"]["fields"]]
    assert schema == list(manifest["schema"].items())
    assert [e for _, e in receiver.received] == [stored["START"], stored["COMPLETE"]]
