"""The measured inputs of the cost sheet (`mlops cost`): durations, bytes and request counts of
the stack's own functions on the local cloud, written to `bench/cost_inputs.json`.

The stack is synthesized and deployed on the local cloud (function workers, IAM enforced), as
`mlops demo` does, then, each phase measured on its own:

(a) retraining: the demo's good drop (`--rows` churn rows, the default dataset) goes through
    the pipeline: ingest, train, evaluate, register (promoted). Recorded: each function's
    Duration from its REPORT log line, the execution's state transitions (its history's
    `...StateEntered` events), the S3, DynamoDB and EventBridge requests made meanwhile, the
    bytes logged, and what the data bucket holds afterwards;
(b) predictions: `--requests` one-row requests, then 5 requests of 1,000 rows, over HTTP
    against the local REST API: the predict function's median Duration for each, the bytes
    it logs per request, and the bytes captured per row (the capture objects Firehose wrote);
(c) a drift check on the traffic of (b), invoked as `mlops drift run` does: Duration, the
    requests it made, the rows it compared, the capture bytes it read, the bytes it logged.

Custom metrics: the distinct metrics (namespace, name, dimension values) the functions
published in CloudWatch embedded metric format during each phase.

Requests are counted at the local cloud's AWS call boundary (`infra.local.faults` counters that
fail nothing). Durations are this machine's (x86_64, Python 3.13 workers, moto over HTTP):
stand-ins for Lambda's arm64, which the sheet says. The machine may be shared and busy: the
figures are honest and dated, not precise.

    python bench/cost_inputs.py [--rows 5000] [--requests 100] [--out bench/cost_inputs.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from functions.common import layout
from functions.common.config.loading import load_config
from functions.ml import sample_data
from infra.cli.demo import GOOD_FILE, Drop, _Demo, _http, request_rows
from infra.local import faults, lambda_config
from infra.local.cloud import LocalCloud
from infra.local.synth import synthesize

REPO = Path(__file__).resolve().parents[1]

OUT = REPO / "bench" / "cost_inputs.json"
LOG_EVENT_OVERHEAD = 26  # bytes CloudWatch Logs counts per event on top of its message

COUNTED = {
    "s3_put_requests": (
        "s3.PutObject",
        "s3.CopyObject",
        "s3.ListObjectsV2",
        "s3.ListObjectVersions",
        "s3.CreateMultipartUpload",
        "s3.UploadPart",
        "s3.CompleteMultipartUpload",
    ),
    "s3_get_requests": ("s3.GetObject", "s3.HeadObject"),
    "dynamodb_write_requests": (
        "dynamodb.PutItem",
        "dynamodb.UpdateItem",
        "dynamodb.DeleteItem",
        "dynamodb.BatchWriteItem",
        "dynamodb.TransactWriteItems",
    ),
    "dynamodb_read_requests": (
        "dynamodb.GetItem",
        "dynamodb.Query",
        "dynamodb.Scan",
        "dynamodb.BatchGetItem",
    ),
    "events_published": ("eventbridge.PutEvents",),
}


class Counters:
    """Counts of AWS calls by operation, at the local cloud's call boundary."""

    def __init__(self) -> None:
        self.faults = {
            operation: faults.inject(operation, before=lambda: None)
            for operations in COUNTED.values()
            for operation in operations
        }

    def snapshot(self) -> dict[str, int]:
        return {
            name: sum(self.faults[operation].failed for operation in operations)
            for name, operations in COUNTED.items()
        }

    @contextmanager
    def counting(self, into: dict[str, Any]) -> Iterator[None]:
        before = self.snapshot()
        yield
        after = self.snapshot()
        into.update({name: after[name] - before[name] for name in after})


class Logs:
    """The functions' log groups (by service), read back after a phase."""

    def __init__(self, cloud: LocalCloud, template: Path) -> None:
        self.logs = cloud.client("logs")
        names = [
            group["logGroupName"]
            for page in self.logs.get_paginator("describe_log_groups").paginate()
            for group in page["logGroups"]
        ]
        resources = json.loads(template.read_text())["Resources"]
        self.groups: dict[str, str] = {}
        for resource in resources.values():
            props = resource.get("Properties") or {}
            variables = (props.get("Environment") or {}).get("Variables") or {}
            logical = ((props.get("LoggingConfig") or {}).get("LogGroup") or {}).get("Ref")
            if resource["Type"] == "AWS::Lambda::Function" and logical:
                (group,) = [name for name in names if logical in name]
                self.groups[variables["POWERTOOLS_SERVICE_NAME"]] = group

    def messages(self, service: str, since_ms: int, until_ms: int) -> list[str]:
        pages = self.logs.get_paginator("filter_log_events").paginate(
            logGroupName=self.groups[service], startTime=since_ms, endTime=until_ms
        )
        return [event["message"] for page in pages for event in page["events"]]

    def durations_ms(self, service: str, since_ms: int, until_ms: int) -> list[float]:
        return [
            float(line.split("\tDuration: ")[1].split(" ms")[0])
            for line in self.messages(service, since_ms, until_ms)
            if line.startswith("REPORT ")
        ]

    def logged_bytes(self, services: list[str], since_ms: int, until_ms: int) -> int:
        return sum(
            len(message.encode()) + LOG_EVENT_OVERHEAD
            for service in services
            for message in self.messages(service, since_ms, until_ms)
        )

    def metrics(self, services: list[str], since_ms: int, until_ms: int) -> set[str]:
        """Distinct metrics published in embedded metric format: namespace/name{dims}."""
        found: set[str] = set()
        for service in services:
            for message in self.messages(service, since_ms, until_ms):
                if not message.startswith('{"_aws"'):
                    continue
                record = json.loads(message)
                for directive in record["_aws"]["CloudWatchMetrics"]:
                    for dimensions in directive["Dimensions"]:
                        labels = ",".join(f"{d}={record.get(d)}" for d in dimensions)
                        for metric in directive["Metrics"]:
                            found.add(f"{directive['Namespace']}/{metric['Name']}{{{labels}}}")
        return found


def now_ms() -> int:
    return int(time.time() * 1000)


def figure(value: float, unit: str, what: str) -> dict[str, Any]:
    return {
        "value": round(value, 3) if isinstance(value, float) else value,
        "unit": unit,
        "what": what,
    }


def retraining(
    cloud: LocalCloud, demo: _Demo, logs: Logs, counters: Counters, rows: int
) -> dict[str, Any]:
    config = load_config()
    body = sample_data.encode(sample_data.churn_frame(rows, seed=11))
    drop = Drop("good data", layout.drops_prefix(config.dataset.name) + GOOD_FILE, body, "promoted")
    counts: dict[str, Any] = {}
    since = now_ms()
    with counters.counting(counts):
        (outcome,) = demo.drop([drop])
        cloud.wait_idle(60)
    until = now_ms() + 1
    if outcome["outcome"] != "promoted":
        raise SystemExit(f"the good drop was {outcome['outcome']}, not promoted: {outcome}")
    execution = cloud.executions()[0]
    transitions = sum(
        1 for event in cloud.execution_history(execution) if event["type"].endswith("StateEntered")
    )
    services = ["ingest", "train", "evaluate", "register"]
    figures = {
        f"retrain_{service}_ms": figure(
            sum(logs.durations_ms(service, since, until)),
            "ms",
            f"Duration of the {service} function on one pipeline run ({rows:,} rows)",
        )
        for service in services
    }
    figures["retrain_invocations"] = figure(
        sum(len(logs.durations_ms(service, since, until)) for service in services),
        "invocations",
        "function invocations of one pipeline run",
    )
    figures["retrain_state_transitions"] = figure(
        transitions, "transitions", "states entered by one pipeline run (its execution history)"
    )
    for name, count in counts.items():
        figures[f"retrain_{name}"] = figure(count, "requests", f"{name} during one pipeline run")
    figures["retrain_log_bytes"] = figure(
        logs.logged_bytes(services, since, until),
        "bytes",
        "bytes logged by the pipeline's functions during one run (26 bytes per event included)",
    )
    figures["retrain_drop_bytes"] = figure(
        len(body), "bytes", f"the drop: {rows:,} churn rows, CSV"
    )
    figures["retrain_custom_metrics"] = figure(
        len(logs.metrics(services, since, until)),
        "metrics",
        "distinct custom metrics the pipeline's functions published during one run",
    )
    s3 = cloud.client("s3")
    stored = sum(
        version["Size"]
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=demo.bucket)
        for version in page.get("Versions", [])
    )
    figures["stored_bytes"] = figure(
        stored, "bytes", "what the data bucket holds after one pipeline run (every version)"
    )
    table = cloud.client("dynamodb").describe_table(TableName=cloud.outputs["RegistryTableName"])
    items = [
        item
        for page in cloud.client("dynamodb")
        .get_paginator("scan")
        .paginate(TableName=table["Table"]["TableName"])
        for item in page["Items"]
    ]
    figures["registry_bytes"] = figure(
        len(json.dumps(items).encode()),
        "bytes",
        "the registry table's items after one pipeline run (their JSON size, an estimate)",
    )
    return figures


def predictions(cloud: LocalCloud, demo: _Demo, logs: Logs, requests: int) -> dict[str, Any]:
    url = cloud.api_url
    _http(url, "POST", "v1/predict", {"instances": request_rows(1, seed=1)})  # warm
    singles = [request_rows(1, seed=100 + index) for index in range(requests)]
    since = now_ms()
    for rows in singles:
        answer = _http(url, "POST", "v1/predict", {"instances": rows})
        if answer["status"] != 200:
            raise SystemExit(f"the predict API answered {answer['status']}: {answer['body']}")
    middle = now_ms() + 1
    batches = [request_rows(1_000, seed=900 + index) for index in range(5)]
    for rows in batches:
        answer = _http(url, "POST", "v1/predict", {"instances": rows})
        if answer["status"] != 200:
            raise SystemExit(f"the predict API answered {answer['status']}: {answer['body']}")
    until = now_ms() + 1
    cloud.wait_idle(60)
    single = logs.durations_ms("predict", since, middle)
    batch = logs.durations_ms("predict", middle, until)
    captured = [
        s3_object
        for page in cloud.client("s3")
        .get_paginator("list_objects_v2")
        .paginate(Bucket=demo.bucket, Prefix=layout.CAPTURE_PREFIX)
        for s3_object in page.get("Contents", [])
    ]
    s3 = cloud.client("s3")
    # Columnar records: one line per request; the bytes are spread over the rows captured.
    lines = sum(
        s3.get_object(Bucket=demo.bucket, Key=s3_object["Key"])["Body"].read().count(b"\n")
        for s3_object in captured
    )
    captured_bytes = sum(s3_object["Size"] for s3_object in captured)
    total_rows = requests + 5 * 1_000 + 1
    captured_single = sum(
        len(message.encode()) + LOG_EVENT_OVERHEAD
        for message in logs.messages("predict", since, middle)
        if message.startswith('{"record":"capture"')
    )
    return {
        "predict_single_row_ms": figure(
            statistics.median(single),
            "ms",
            f"median Duration, one-row request, warm ({len(single)})",
        ),
        "predict_1k_rows_ms": figure(
            statistics.median(batch),
            "ms",
            f"median Duration, 1,000-row request, warm ({len(batch)})",
        ),
        "predict_log_bytes_per_request": figure(
            (logs.logged_bytes(["predict"], since, middle) - captured_single) / len(single),
            "bytes",
            "bytes the predict function logs per one-row request besides its capture lines "
            "(26 bytes per event included; capture has lines of its own on the sheet)",
        ),
        "predict_custom_metrics": figure(
            len(logs.metrics(["predict"], since, until)),
            "metrics",
            "distinct custom metrics the predict function published",
        ),
        "capture_bytes_per_row": figure(
            captured_bytes / total_rows,
            "bytes",
            f"capture bytes per row: {captured_bytes:,} bytes in {lines:,} lines (one a "
            f"request) for {total_rows:,} rows predicted",
        ),
    }


def drift_check(cloud: LocalCloud, demo: _Demo, logs: Logs, counters: Counters) -> dict[str, Any]:
    s3 = cloud.client("s3")
    captured = [
        s3_object
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=demo.bucket, Prefix=layout.CAPTURE_PREFIX
        )
        for s3_object in page.get("Contents", [])
    ]
    time.sleep(1.1)  # a check's window ends one whole second before it starts
    counts: dict[str, Any] = {}
    since = now_ms()
    with counters.counting(counts):
        response = cloud.client("lambda").invoke(
            FunctionName=cloud.outputs["DriftFunctionName"],
            Payload=json.dumps({"source": "mlops.cli"}).encode(),
        )
        payload = json.loads(response["Payload"].read())
        cloud.wait_idle(60)
    until = now_ms() + 1
    if response.get("FunctionError"):
        raise SystemExit(f"the drift check failed: {payload}")
    check = demo._json(payload["result_key"])  # noqa: SLF001
    figures = {
        "drift_check_ms": figure(
            sum(logs.durations_ms("monitor", since, until)), "ms", "Duration of one drift check"
        ),
        "drift_window_rows": figure(
            int(check["window"]["rows"]),
            "rows",
            "captured rows the check compared",
        ),
        "drift_capture_bytes_read": figure(
            sum(s3_object["Size"] for s3_object in captured),
            "bytes",
            f"capture the check's window held ({check['window'].get('objects')} objects)",
        ),
        "drift_capture_objects": figure(
            int(check["window"].get("objects") or 0),
            "objects",
            "capture objects in the check's window (the local Firehose writes one per request)",
        ),
        "drift_log_bytes": figure(
            logs.logged_bytes(["monitor"], since, until),
            "bytes",
            "bytes the drift function logged during one check (26 bytes per event included)",
        ),
        "drift_custom_metrics": figure(
            len(logs.metrics(["monitor"], since, until)),
            "metrics",
            "distinct custom metrics one drift check published",
        ),
    }
    for name, count in counts.items():
        figures[f"drift_{name}"] = figure(count, "requests", f"{name} during one drift check")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    lambda_config.SETTINGS.echo_function_output = False
    logging.getLogger("infra.local").setLevel(logging.ERROR)
    work = REPO / ".bench" / "cost"
    cdk_out = work / "cdk.out"
    started = time.monotonic()
    synthesize(REPO, cdk_out, {"commit": "bench"})
    figures: dict[str, Any] = {}
    with LocalCloud.start(
        cdk_out=cdk_out, mode="server", port=0, state_dir=work, api_port=0, prewarm=True
    ) as cloud:
        counters = Counters()
        logs = Logs(cloud, cdk_out / f"{load_config().stack_name('dev')}.template.json")
        demo = _Demo(cloud, work)
        figures.update(retraining(cloud, demo, logs, counters, args.rows))
        figures.update(predictions(cloud, demo, logs, args.requests))
        figures.update(drift_check(cloud, demo, logs, counters))
        faults.clear()
    document = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}, "
        f"Python {platform.python_version()} "
        "(the local cloud's function workers: Python 3.13)",
        "command": " ".join(["python bench/cost_inputs.py", *sys.argv[1:]]),
        "note": "durations on this machine's x86_64 stand in for Lambda's arm64; the local cloud "
        "runs the stack's own functions against moto over HTTP",
        "figures": dict(sorted(figures.items())),
    }
    args.out.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    for name, entry in document["figures"].items():
        print(f"{name:36} {entry['value']:>14,} {entry['unit']:12} {entry['what']}")
    print(f"wrote {args.out} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
