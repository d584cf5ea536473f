"""The local API over HTTP with concurrent clients: requests/s and p50/p99 latency.

Synthesizes the app, deploys it into the local cloud with its API adapter on a free loopback
port, drops a churn table so a model is trained and promoted, then runs `--clients` threads
that each send `--requests` single-row `POST /v1/predict` requests (bounded in count and in
time, loopback only) and prints throughput, latency percentiles and the error count. The
local cloud runs one Lambda invocation at a time (see infra/local/lambda_runtime.py), so this
measures the emulator and the handler together, not API Gateway.

    python bench/local_api.py [--clients 8] [--requests 200] [--max-seconds 120]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from functions.ml import sample_data
from infra.local import LocalCloud, lambda_runtime
from infra.local.synth import synthesize

REPO = Path(__file__).resolve().parents[1]


def _row() -> dict[str, Any]:
    frame = sample_data.churn_frame(20, seed=5).drop(columns=["customer_id", "churned"])
    record = frame.iloc[0].to_dict()
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in record.items()}


def _client(
    url: str, body: bytes, count: int, deadline: float, latencies: list[float], errors: list[str]
) -> None:
    request_headers = {"Content-Type": "application/json"}
    for _ in range(count):
        if time.monotonic() > deadline:
            return
        started = time.perf_counter()
        request = urllib.request.Request(url, data=body, headers=request_headers, method="POST")
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=200, help="per client")
    parser.add_argument("--max-seconds", type=float, default=120.0)
    args = parser.parse_args()
    lambda_runtime.SETTINGS.echo_function_output = False
    logging.getLogger("infra.local").setLevel(logging.ERROR)

    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        cdk_out = Path(tmp) / "cdk.out"
        synthesize(REPO, cdk_out, {"commit": "bench"})
        with LocalCloud.start(cdk_out, mode="inprocess", api_port=0) as cloud:
            bucket = cloud.outputs["DataBucketName"]
            body = sample_data.encode(sample_data.churn_frame(3_000, seed=9))
            put = cloud.client("s3").put_object(Bucket=bucket, Key="raw/churn/b.csv", Body=body)
            name = cloud.execution_name_for_object(
                bucket, "raw/churn/b.csv", put.get("VersionId"), put["ETag"]
            )
            execution = cloud.wait_for_execution(name, timeout=300)
            if json.loads(execution.get("output") or "{}").get("status") != "promoted":
                print(f"no model was promoted: {execution['status']}", file=sys.stderr)
                return 1
            url = cloud.api_url.rstrip("/") + "/v1/predict"
            request = json.dumps({"instances": [_row()]}).encode()
            warm_latencies: list[float] = []
            _client(url, request, 20, time.monotonic() + 30, warm_latencies, [])  # warm up
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
            elapsed = time.perf_counter() - started

    done = np.array(latencies) * 1000
    print(
        f"local API, {args.clients} concurrent clients, single-row POST /v1/predict over HTTP "
        f"(loopback): {len(done)} requests in {elapsed:.1f} s = {len(done) / elapsed:,.0f} "
        f"requests/s; latency p50 {np.percentile(done, 50):.1f} ms, "
        f"p99 {np.percentile(done, 99):.1f} ms; errors {len(errors)}"
    )
    if errors:
        print(f"first errors: {errors[:3]}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
