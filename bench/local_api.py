"""The local API over HTTP with concurrent clients: requests/s and p50/p99 latency, steady and
while a model promotion happens.

Synthesizes the app (the repo's config, with alias TTL 2 s and a gate of absolute thresholds so
that a second drop is promoted too), deploys it into the local cloud with its API adapter on a
free loopback port, and drops two churn tables: versions 1 and 2 are trained and promoted, then
production is rolled back to version 1. Two runs, loopback only:

1. steady: `--clients` threads each send `--requests` single-row `POST /v1/predict` requests
   (bounded in count and by `--max-seconds`);
2. load under promotion: `--clients` threads for `--seconds`, single-row and 100-row requests
   alternating; halfway, version 2 is promoted (`ModelRegistry.promote`, as `mlops models
   promote` does). Printed: requests/s, p50/p99 per request size, errors, and which version
   answered when (the switch is seen within the alias TTL).

3. concurrency sweep: single-row `POST /v1/predict` at 1, 4 and 16 concurrent clients
   (`--sweep`), `--sweep-requests` requests per level shared among its clients: p50 and p99
   latency and requests/s at each level. Capture is on as deployed (`[serving]
   capture_sample_rate = 1.0`, the stack's capture stream).

Each prints throughput, latency percentiles and the error count; any error (a non-200, a
dropped connection, an answer from neither version) fails the bench. The predict function
runs in function workers, as deployed (several at once, up to the local cap per function: see
infra/local/workers.py), so this measures the emulator and the handler together, not API
Gateway.

    python bench/local_api.py [--clients 8] [--requests 200] [--max-seconds 120] [--seconds 30]
                              [--sweep 1,4,16] [--sweep-requests 480]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from functions.adapters.registry.model_registry import ModelRegistry
from functions.ml import sample_data
from infra.cli.predict_client import signed_request
from infra.local import LocalCloud, lambda_config
from infra.local.synth import synthesize

REPO = Path(__file__).resolve().parents[1]
MODEL = "churn"
TTL_SECONDS = 2
BATCH_ROWS = 100
# Absolute thresholds only, so that the second drop is promoted too.
GATE = """[gate.metrics.roc_auc]
threshold = 0.75

[gate.metrics.f1_macro]
threshold = 0.6

"""


def _config_text() -> str:
    text = (REPO / "mlops.toml").read_text()
    head, rest = text.split("[gate.metrics.roc_auc]")
    text = head + GATE + rest[rest.index("[drift]") :]
    return text.replace("[serving]\n", f"[serving]\nalias_ttl_seconds = {TTL_SECONDS}\n")


def _rows(count: int) -> list[dict[str, Any]]:
    frame = sample_data.churn_frame(max(count, 20), seed=5).drop(columns=["customer_id", "churned"])
    return [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in record.items()}
        for record in frame.head(count).to_dict(orient="records")
    ]


def _row() -> dict[str, Any]:
    return _rows(1)[0]


def _client(
    url: str, body: bytes, count: int, deadline: float, latencies: list[float], errors: list[str]
) -> None:
    request_headers = {"Content-Type": "application/json"}
    for _ in range(count):
        if time.monotonic() > deadline:
            return
        started = time.perf_counter()
        request = signed_request(url, "POST", body, request_headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:
            errors.append(str(exc))
            continue
        latencies.append(time.perf_counter() - started)
        if status != 200:
            errors.append(f"HTTP {status}")


@dataclass(frozen=True)
class Reply:
    started: float
    seconds: float
    rows: int
    status: int
    version: int | None


def _load_client(
    url: str, bodies: list[tuple[int, bytes]], first: int, deadline: float, replies: list[Reply]
) -> None:
    """Alternates the request bodies until the deadline; keeps every reply."""
    request_headers = {"Content-Type": "application/json"}
    sent = first
    while time.monotonic() < deadline:
        rows, body = bodies[sent % len(bodies)]
        sent += 1
        started = time.monotonic()
        request = signed_request(url, "POST", body, request_headers)
        version = None
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, version = response.status, json.loads(response.read())["model_version"]
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (OSError, ValueError, KeyError):
            status = 0
        replies.append(Reply(started, time.monotonic() - started, rows, status, version))


def _drop(cloud: LocalCloud, key: str, table: bytes) -> dict[str, Any]:
    bucket = cloud.outputs["DataBucketName"]
    put = cloud.client("s3").put_object(Bucket=bucket, Key=key, Body=table)
    name = cloud.execution_name_for_object(bucket, key, put.get("VersionId"), put["ETag"])
    execution = cloud.wait_for_execution(name, timeout=300)
    output: dict[str, Any] = json.loads(execution.get("output") or "{}")
    return output


def _serving_version(api_url: str) -> int | None:
    with urllib.request.urlopen(
        signed_request(api_url + "v1/health", "GET", None, {}), timeout=30
    ) as response:
        version = json.loads(response.read()).get("model_version")
    return int(version) if version is not None else None


def _wait_for_version(api_url: str, version: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _serving_version(api_url) == version:
            return True
        time.sleep(0.2)
    return False


def _steady(url: str, args: argparse.Namespace) -> tuple[list[float], list[str], float]:
    """`--clients` threads of `--requests` single-row requests each."""
    request = json.dumps({"instances": [_row()]}).encode()
    _client(url, request, 20, time.monotonic() + 30, [], [])  # warm up
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + args.max_seconds
    threads = [
        threading.Thread(
            target=_client, args=(url, request, args.requests, deadline, latencies, errors)
        )
        for _ in range(args.clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors, time.perf_counter() - started


def _sweep(url: str, levels: list[int], total: int, max_seconds: float) -> list[str]:
    """Single-row requests at each level of concurrency, `total` requests per level shared
    among its clients; prints each level's figures and returns the errors."""
    request = json.dumps({"instances": [_row()]}).encode()
    errors: list[str] = []
    for clients in levels:
        latencies: list[float] = []
        deadline = time.monotonic() + max_seconds
        per_client = max(total // clients, 1)
        threads = [
            threading.Thread(
                target=_client, args=(url, request, per_client, deadline, latencies, errors)
            )
            for _ in range(clients)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        done = np.array(latencies) * 1000
        if not len(done):
            errors.append(f"{clients} clients: no request answered")
            continue
        print(
            f"  {clients:>2} concurrent clients: {len(done)} single-row requests in {elapsed:.1f}"
            f" s = {len(done) / elapsed:,.0f} requests/s; latency p50"
            f" {np.percentile(done, 50):.1f} ms, p99 {np.percentile(done, 99):.1f} ms"
        )
    return errors


def _under_promotion(
    url: str, registry: ModelRegistry, args: argparse.Namespace
) -> tuple[list[Reply], float, float]:
    """`--clients` threads for `--seconds`, single-row and 100-row requests alternating;
    version 2 is promoted halfway. Returns the replies, the promotion's time and the run's
    start (time.monotonic)."""
    bodies = [
        (1, json.dumps({"instances": [_row()]}).encode()),
        (BATCH_ROWS, json.dumps({"instances": _rows(BATCH_ROWS)}).encode()),
    ]
    replies: list[Reply] = []
    started = time.monotonic()
    deadline = started + args.seconds
    threads = [
        threading.Thread(target=_load_client, args=(url, bodies, index, deadline, replies))
        for index in range(args.clients)
    ]
    for thread in threads:
        thread.start()
    time.sleep(args.seconds / 2)
    registry.promote(MODEL, 2, expected_current=1, reason="bench: promotion under load")
    promoted = time.monotonic()
    for thread in threads:
        thread.join()
    return replies, promoted, started


def _percentiles(replies: list[Reply], rows: int) -> str:
    done = np.array([reply.seconds for reply in replies if reply.rows == rows]) * 1000
    if not len(done):
        return f"{rows}-row: none"
    return f"{rows}-row p50 {np.percentile(done, 50):.1f} ms, p99 {np.percentile(done, 99):.1f} ms"


def _report_under_promotion(
    replies: list[Reply], promoted: float, started: float, args: argparse.Namespace
) -> list[str]:
    """Prints the run's figures; returns its errors."""
    ok = [reply for reply in replies if reply.status == 200 and reply.version in (1, 2)]
    errors = [
        f"HTTP {reply.status} (version {reply.version})"
        for reply in replies
        if reply.status != 200 or reply.version not in (1, 2)
    ]
    elapsed = max(reply.started + reply.seconds for reply in replies) - started
    rows = sum(reply.rows for reply in ok)
    print(
        f"local API under promotion, {args.clients} concurrent clients for {args.seconds:.0f} s, "
        f"single-row and {BATCH_ROWS}-row POST /v1/predict alternating (loopback): "
        f"{len(replies)} requests in {elapsed:.1f} s = {len(replies) / elapsed:,.0f} requests/s "
        f"({rows / elapsed:,.0f} rows/s); latency {_percentiles(replies, 1)}; "
        f"{_percentiles(replies, BATCH_ROWS)}; errors {len(errors)}"
    )
    first = {1: [r for r in ok if r.version == 1], 2: [r for r in ok if r.version == 2]}
    after = promoted - started
    summary = [f"version 2 promoted at +{after:.1f} s (alias TTL {TTL_SECONDS} s)"]
    if first[1]:
        last_v1 = max(r.started + r.seconds for r in first[1]) - promoted
        summary.append(f"version 1 answered {len(first[1])} requests, the last {last_v1:+.2f} s")
    if first[2]:
        first_v2 = min(r.started + r.seconds for r in first[2]) - promoted
        summary.append(f"version 2 answered {len(first[2])}, the first {first_v2:+.2f} s")
    else:
        errors.append("version 2 never answered")
    print("  " + "; ".join(summary) + " (times from the promotion)")
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200, help="per client, steady run")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="steady run")
    parser.add_argument("--seconds", type=float, default=30.0, help="run under promotion")
    parser.add_argument(
        "--sweep", default="1,4,16", help="concurrent clients of each level, comma separated"
    )
    parser.add_argument(
        "--sweep-requests", type=int, default=480, help="requests per level of the sweep"
    )
    args = parser.parse_args()
    lambda_config.SETTINGS.echo_function_output = False
    logging.getLogger("infra.local").setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        config = Path(tmp) / "mlops.toml"
        config.write_text(_config_text())
        os.environ["MLOPS_CONFIG"] = str(config)
        cdk_out = Path(tmp) / "cdk.out"
        synthesize(REPO, cdk_out, {"commit": "bench"})
        with LocalCloud.start(cdk_out, mode="server", port=0, api_port=0) as cloud:
            tables = [
                sample_data.churn_frame(3_000, seed=9),
                sample_data.churn_frame(3_000, seed=10, first_id=50_000),
            ]
            for number, table in enumerate(tables, start=1):
                output = _drop(cloud, f"raw/churn/{number}.csv", sample_data.encode(table))
                # the pipeline's output: one outcome per model trained on the dataset
                statuses = (output.get("models") or {}).get("statuses") or [output.get("status")]
                if statuses != ["promoted"]:
                    print(f"drop {number}: no model was promoted: {output}", file=sys.stderr)
                    return 1
            registry = ModelRegistry(
                cloud.outputs["RegistryTableName"], dynamodb=cloud.client("dynamodb")
            )
            registry.rollback(MODEL, reason="bench: serve version 1 before the load")
            if not _wait_for_version(cloud.api_url, 1, timeout=TTL_SECONDS + 30):
                print("version 1 is not served after the rollback", file=sys.stderr)
                return 1
            url = cloud.api_url.rstrip("/") + "/v1/predict"
            latencies, errors, elapsed = _steady(url, args)
            print(
                "local API concurrency sweep, single-row POST /v1/predict over HTTP (loopback),"
                " function workers, capture on as deployed:"
            )
            levels = [int(level) for level in args.sweep.split(",") if level.strip()]
            errors += _sweep(url, levels, args.sweep_requests, args.max_seconds)
            replies, promoted, started = _under_promotion(url, registry, args)

    done = np.array(latencies) * 1000
    print(
        f"local API, {args.clients} concurrent clients, single-row POST /v1/predict over HTTP "
        f"(loopback): {len(done)} requests in {elapsed:.1f} s = {len(done) / elapsed:,.0f} "
        f"requests/s; latency p50 {np.percentile(done, 50):.1f} ms, "
        f"p99 {np.percentile(done, 99):.1f} ms; errors {len(errors)}"
    )
    errors += _report_under_promotion(replies, promoted, started, args)
    if errors:
        print(f"first errors: {errors[:3]}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
