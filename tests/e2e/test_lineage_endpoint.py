"""`[lineage] url` on the local cloud: the deployed functions, each with only the packages of
its deployment (the training image's carries openlineage-python), post every run event to an
OpenLineage HTTP endpoint (a server in a thread here), the same events the bucket keeps. A bad
drop's ingestion ends FAIL with the validation error; the good drop's four steps each post
START and COMPLETE under the configured namespace."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from functions.ml.sample_data import bad_files, churn_frame, encode
from infra.local import LocalCloud
from tests.helpers.config import repo_config
from tests.helpers.openlineage import assert_valid, stored_events

pytestmark = pytest.mark.slow

RECEIVED: list[tuple[str, dict[str, Any]]] = []


class _Endpoint(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        RECEIVED.append((self.path, json.loads(body)))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


class Run:
    def __init__(self, cloud: LocalCloud) -> None:
        self.cloud = cloud
        self.bucket = str(cloud.outputs["DataBucketName"])
        self.s3 = cloud.client("s3")

    def drop(self, key: str, body: bytes) -> dict[str, Any]:
        put = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
        name = self.cloud.execution_name_for_object(
            self.bucket, key, put.get("VersionId"), put["ETag"]
        )
        return self.cloud.wait_for_execution(name, timeout=300)


@pytest.fixture(scope="module")
def run(
    synth_with_config: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Run, dict[str, Any], dict[str, Any]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    config = repo_config() + f'\n[lineage]\nurl = "{url}"\nnamespace = "acme-ml"\n'
    cdk_out: Path = synth_with_config(config)
    state = tmp_path_factory.mktemp("lineage-state")
    try:
        with LocalCloud.start(cdk_out, mode="server", port=0, state_dir=state) as cloud:
            handle = Run(cloud)
            good = handle.drop("raw/churn/lineage.csv", encode(churn_frame(1_500, seed=31)))
            bad_name, bad_body = next(iter(bad_files().items()))
            bad = handle.drop(f"raw/churn/{bad_name}", bad_body)
            yield handle, good, bad
    finally:
        server.shutdown()
        server.server_close()


def test_every_event_is_posted_to_the_endpoint_as_the_bucket_keeps_it(
    run: tuple[Run, dict[str, Any], dict[str, Any]],
) -> None:
    handle, good, bad = run
    assert good["status"] == "SUCCEEDED" and bad["status"] == "FAILED"
    assert {path for path, _ in RECEIVED} == {"/api/v1/lineage"}
    posted = [event for _, event in RECEIVED]
    for event in posted:
        assert_valid(event)
    stored = stored_events(handle.s3, handle.bucket)
    key = lambda e: (e["run"]["runId"], e["eventType"])  # noqa: E731
    assert sorted(posted, key=key) == sorted(stored, key=key)
    assert {e["job"]["namespace"] for e in posted} == {"acme-ml"}
    jobs: dict[str, list[str]] = {}
    for event in posted:
        jobs.setdefault(event["job"]["name"], []).append(event["eventType"])
    for job in ("churn.train", "churn.evaluate", "churn.register"):
        assert sorted(jobs[job]) == ["COMPLETE", "START"], job
    assert sorted(jobs["ingest.churn"]) == ["COMPLETE", "FAIL", "START", "START"]
    (fail,) = [e for e in posted if e["eventType"] == "FAIL"]
    assert fail["run"]["facets"]["errorMessage"]["message"].startswith("DataValidationError")
    assert fail["run"]["facets"]["parent"]["run"]["runId"] != next(
        e["run"]["facets"]["parent"]["run"]["runId"]
        for e in posted
        if e["job"]["name"] == "churn.register"
    ), "each drop's execution is its own parent run"
