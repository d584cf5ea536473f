"""Prediction capture off the request path: what each way of capturing adds to a request, that
every record arrives, and what it costs.

1. Latency added to one request, side by side in one run, at 1 row and 100 rows per request
   (churn rows, the columns and predictions as the serving path holds them):
   (a) the log line: the columnar record serialised by orjson and written to stdout
       (`functions.predict.logic.capture`, written here to /dev/null, as Lambda's runtime
       takes the line from the process's stdout pipe);
   (b) the previous design: one dict per row, one JSON line each, and a synchronous
       `put_record_batch` to Firehose, here moto's server in another process over loopback
       (a real Firehose endpoint adds a network round trip on top);
   (c) an in-process buffer flushed by a background thread with `put_record_batch` (what a
       Lambda extension would do): the request pays the serialisation and the append; the
       flush runs beside it, and every buffered record is counted once flushed.
   Printed: median and p99 per request, and the ratios (b)/(a) and (c)/(a). Floor: the log
   line adds at most a fifth of what the synchronous put adds, at both sizes.
2. Every record arrives (`--sustained SECONDS`, default 20; 0 skips it): the app deployed in
   the local cloud (function workers, the log subscription, Firehose's processing), a model
   trained and promoted from a drop, then clients send 1-row and 100-row requests for the
   given time; the capture records under capture/ are counted against the requests answered
   (request ids and rows) after the traffic, polling until Firehose's buffer would have
   flushed (its interval). Every answered request must be there, with all its rows.
3. Cost per million requests at 1 and 100 rows, from the measured line sizes: CloudWatch Logs
   ingestion (the line plus 26 bytes an event) and Firehose ingestion of what the
   subscription puts (at most one record a request, rounded up to 5 KB), against the previous
   design's Firehose ingestion (one record per row, each rounded up to 5 KB). Prices from
   infra/cli/cost_sheet/prices.toml.

    python bench/capture.py [--requests 2000] [--sustained 20]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import orjson

from functions.common.config.serving import ServingConfig
from functions.common.contracts import model_outcome
from functions.common.observability import metrics
from functions.common.sensitive import SensitiveColumns
from functions.ml import sample_data
from functions.ml.onnx_input import Prediction
from functions.predict import logic
from functions.predict.capture_log import CaptureLog, record_lines
from functions.predict.models import Served
from functions.serving.values import Batch

REPO = Path(__file__).resolve().parents[1]
PRICES = REPO / "infra" / "cli" / "cost_sheet" / "prices.toml"
STREAM = "bench-capture"
SIZES = (1, 100)
FLOOR = 5.0
"""(b)/(a) at least this, at every size."""
FIREHOSE_RECORD_BYTES = 5 * 1024
EVENT_OVERHEAD_BYTES = 26


def _batch(rows: int) -> tuple[Batch, Prediction]:
    frame = sample_data.churn_frame(max(rows, 20), seed=3, duplicate_share=0.0).head(rows)
    features = frame.drop(columns=["customer_id", "churned"])
    columns: dict[str, Any] = {}
    for name in features.columns:
        values = features[name]
        if values.dtype.kind in "fi":
            columns[name] = values.to_numpy(dtype=np.float32)
        else:
            columns[name] = [None if v != v else v for v in values.tolist()]
    rng = np.random.default_rng(rows)
    first = rng.random(rows).astype(np.float32)
    prediction = Prediction(
        labels=np.where(first > 0.5, "no", "yes").astype(object),
        probabilities=np.stack([first, 1 - first], axis=1),
    )
    return Batch(columns=columns, rows=rows, unseen={}), prediction


class _Model:
    name, version, alias, classes = "churn", 1, "production", ["no", "yes"]


NAME, CFG, PLAIN = "churn", ServingConfig(), SensitiveColumns()
NO: Any = None  # no model store: no rollout runs


def _served() -> Served:
    """The default model, no sensitive columns, capture on (rate 1.0)."""
    return Served(name=NAME, store=NO, serving=CFG, sensitive=PLAIN, feedback_lookback_hours=24)


_SERVED = _served()


def _service(out: Any) -> logic.Service:
    return logic.Service(
        settings=logic.PredictSettings(data_bucket="b", registry_table="t"),
        serving=ServingConfig(),
        models=None,  # type: ignore[arg-type]
        registry=None,  # type: ignore[arg-type]
        capture=CaptureLog(out),
        feedback=None,  # type: ignore[arg-type]
    )


def _per_row_lines(batch: Batch, prediction: Prediction, request_id: str) -> list[bytes]:
    """The previous design's records: one dict per row (format capture-record 1)."""
    labels = prediction.labels.tolist()
    probabilities = (
        prediction.probabilities.tolist() if prediction.probabilities is not None else None
    )
    return [
        orjson.dumps(
            {
                "request_id": request_id,
                "row": row,
                "timestamp": "2026-12-02T00:00:00.000Z",
                "model_name": "churn",
                "model_version": 1,
                "features": batch.row(row),
                "prediction": labels[row],
                "probabilities": probabilities[row] if probabilities is not None else None,
                "format_version": 1,
            },
            option=orjson.OPT_APPEND_NEWLINE,
        )
        for row in range(batch.rows)
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _moto_server() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, url
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("moto's server did not start")


def _firehose(url: str) -> Any:
    kw = {
        "endpoint_url": url,
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    s3 = boto3.client("s3", **kw)
    s3.create_bucket(Bucket="bench")
    client = boto3.client("firehose", **kw)
    client.create_delivery_stream(
        DeliveryStreamName=STREAM,
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": "arn:aws:s3:::bench",
            "Prefix": "capture/",
        },
    )
    return client


def _put(client: Any, lines: list[bytes]) -> None:
    for start in range(0, len(lines), 500):
        client.put_record_batch(
            DeliveryStreamName=STREAM,
            Records=[{"Data": line} for line in lines[start : start + 500]],
        )


class _Buffer:
    """An in-process buffer flushed every `interval` seconds by a background thread."""

    def __init__(self, client: Any, interval: float = 0.05) -> None:
        self.client = client
        self.lines: list[bytes] = []
        self.lock = threading.Lock()
        self.flushed = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self.thread.start()

    def add(self, line: bytes) -> None:
        with self.lock:
            self.lines.append(line)

    def _flush(self) -> None:
        with self.lock:
            lines, self.lines = self.lines, []
        if lines:
            _put(self.client, lines)
            self.flushed += len(lines)

    def _run(self, interval: float) -> None:
        while not self.stopped.wait(interval):
            self._flush()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join()
        self._flush()


def _timed(action: Callable[[int], None], requests: int) -> np.ndarray:
    for index in range(min(50, requests)):
        action(index)  # warm up
    spent = np.empty(requests)
    for index in range(requests):
        started = time.perf_counter()
        action(index)
        spent[index] = time.perf_counter() - started
    return spent * 1000


def _line(batch: Batch, prediction: Prediction, request_id: str) -> bytes:
    out = io.StringIO()
    logic.capture(_service(out), _SERVED, _Model(), batch, prediction, request_id, "v1", 0.0)  # type: ignore[arg-type]
    return out.getvalue().encode()


def _size(rows: int, svc: logic.Service, client: Any, requests: int) -> tuple[list[str], int]:
    """Part 1 at one request size; returns failures and the log line's bytes."""
    failures: list[str] = []
    batch, prediction = _batch(rows)
    size = len(_line(batch, prediction, "r"))
    model: Any = _Model()

    def log_line(i: int) -> None:
        logic.capture(svc, _SERVED, model, batch, prediction, f"a{i}", "v1", 0.0)
        metrics.clear_metrics()  # the handler publishes them once per request (in the clock)

    def synchronous(i: int) -> None:
        _put(client, _per_row_lines(batch, prediction, f"b{i}"))

    buffer = _Buffer(client)

    def buffered(i: int) -> None:
        for line in record_lines(
            {"record": "capture", "request_id": f"c{i}"},
            dict(batch.columns),
            prediction.labels.tolist(),
            prediction.probabilities,
            rows,
        ):
            buffer.add(line)

    logged = _timed(log_line, requests)
    put = _timed(synchronous, requests)
    flushed = _timed(buffered, requests)
    buffer.close()
    expected = requests + min(50, requests)
    if buffer.flushed != expected:
        failures.append(f"buffer: {buffer.flushed} of {expected} records flushed")
    a, b, c = (float(np.percentile(x, 50)) for x in (logged, put, flushed))
    print(
        f"capture, {rows}-row requests ({requests} each, {size:,} bytes a log line): (a) log "
        f"line p50 {a:.3f} ms p99 {np.percentile(logged, 99):.3f} ms; (b) per-row records + "
        f"synchronous put_record_batch (moto, loopback) p50 {b:.3f} ms p99 "
        f"{np.percentile(put, 99):.3f} ms; (c) buffer + background flush p50 {c:.3f} ms p99 "
        f"{np.percentile(flushed, 99):.3f} ms ({buffer.flushed:,} records flushed); "
        f"(b)/(a) {b / a:.1f}x, (c)/(a) {c / a:.2f}x (floor: (b)/(a) >= {FLOOR:.0f}x)"
    )
    if b / a < FLOOR:
        failures.append(f"{rows} rows: (b)/(a) {b / a:.1f}x < {FLOOR}x")
    return failures, size


def latency(requests: int) -> tuple[list[str], dict[int, int]]:
    """Part 1; returns failures and the log line's bytes per request, by size."""
    failures: list[str] = []
    line_bytes: dict[int, int] = {}
    process, url = _moto_server()
    try:
        client = _firehose(url)
        with Path(os.devnull).open("w") as devnull:
            svc = _service(devnull)
            for rows in SIZES:
                found, line_bytes[rows] = _size(rows, svc, client, requests)
                failures += found
    finally:
        process.terminate()
        process.wait(timeout=10)
    return failures, line_bytes


def cost(line_bytes: dict[int, int]) -> None:
    """Part 3."""
    prices = tomllib.loads(PRICES.read_text())["prices"]
    logs_gb = float(prices["cloudwatch_logs_ingested_gb"]["usd"])
    firehose_gb = float(prices["firehose_direct_put_gb"]["usd"])
    gib = 1024**3
    for rows, size in line_bytes.items():
        old_row = len(_per_row_lines(*_batch(1), "r")[0])
        logs = 1e6 * (size + EVENT_OVERHEAD_BYTES) / gib * logs_gb
        firehose = (
            1e6
            * math.ceil(size / FIREHOSE_RECORD_BYTES)
            * FIREHOSE_RECORD_BYTES
            / gib
            * firehose_gb
        )
        old = (
            1e6
            * rows
            * math.ceil(old_row / FIREHOSE_RECORD_BYTES)
            * FIREHOSE_RECORD_BYTES
            / gib
            * firehose_gb
        )
        print(
            f"capture cost per million {rows}-row requests: log line {size:,} B -> CloudWatch "
            f"Logs ingestion ${logs:,.2f} + Firehose (<= one 5 KB record a request) "
            f"${firehose:,.2f} = ${logs + firehose:,.2f}; previous design, Firehose only "
            f"({rows} records of {old_row:,} B, each billed as 5 KB) ${old:,.2f}"
        )


def sustained(seconds: float) -> list[str]:
    """Part 2: every record arrives through the local cloud."""
    import local_api  # bench/local_api.py: the same deployment

    from infra.cli.predict_client import signed_request
    from infra.local import LocalCloud, lambda_config
    from infra.local.synth import synthesize

    lambda_config.SETTINGS.echo_function_output = False
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-capture-") as tmp:
        config = Path(tmp) / "mlops.toml"
        config.write_text(local_api._config_text())
        os.environ["MLOPS_CONFIG"] = str(config)
        cdk_out = Path(tmp) / "cdk.out"
        synthesize(REPO, cdk_out, {"commit": "bench"})
        with LocalCloud.start(cdk_out, mode="server", port=0, api_port=0) as cloud:
            table = sample_data.churn_frame(3_000, seed=9)
            described = cloud.drop("raw/churn/1.csv", sample_data.encode(table), timeout=600)
            output = json.loads(described.get("output") or "{}")
            if described["status"] != "SUCCEEDED" or model_outcome(output)["status"] != "promoted":
                return [f"no model was promoted: {described['status']}"]
            url = cloud.api_url.rstrip("/") + "/v1/predict"
            bodies = [
                (rows, json.dumps({"instances": local_api._rows(rows)}).encode()) for rows in SIZES
            ]
            answered: dict[str, int] = {}
            lock = threading.Lock()
            deadline = time.monotonic() + seconds

            def client(first: int) -> None:
                import urllib.request

                sent = first
                while time.monotonic() < deadline:
                    rows, body = bodies[sent % len(bodies)]
                    sent += 1
                    request = signed_request(
                        url, "POST", body, {"Content-Type": "application/json"}
                    )
                    try:
                        with urllib.request.urlopen(request, timeout=30) as response:
                            reply = json.loads(response.read())
                    except OSError as exc:
                        failures.append(str(exc))
                        continue
                    with lock:
                        answered[reply["request_id"]] = rows

            threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started
            bucket = cloud.outputs["DataBucketName"]
            s3 = cloud.client("s3")
            found: dict[str, int] = {}
            wait_until = time.monotonic() + 65  # Firehose's buffer interval (60 s) and a margin
            while time.monotonic() < wait_until:
                found = {}
                for page in s3.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix="capture/"
                ):
                    for item in page.get("Contents", []):
                        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                        for line in body.splitlines():
                            record = json.loads(line)
                            found[record["request_id"]] = (
                                found.get(record["request_id"], 0) + record["rows"]
                            )
                if all(found.get(rid) == rows for rid, rows in answered.items()):
                    break
                time.sleep(2)
            missing = [rid for rid, rows in answered.items() if found.get(rid) != rows]
            rows_sent = sum(answered.values())
            print(
                f"capture through the local cloud: {len(answered):,} requests answered in "
                f"{elapsed:.0f} s ({rows_sent:,} rows, 1-row and 100-row alternating, 4 clients); "
                f"{len(answered) - len(missing):,} captured whole under capture/, "
                f"{len(missing)} missing or incomplete"
            )
            if missing:
                failures.append(f"{len(missing)} requests' capture records did not all arrive")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--sustained", type=float, default=20.0, help="seconds; 0 skips it")
    args = parser.parse_args()
    failures, line_bytes = latency(args.requests)
    cost(line_bytes)
    if args.sustained > 0:
        failures += sustained(args.sustained)
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
