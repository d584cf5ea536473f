"""What a warm function worker adds to an invocation, against running the function in the
local cloud's own process, side by side in one run.

Synthesizes the app, then starts the local cloud twice in server mode on the same cdk.out:
once with functions in-process (the old local cloud), once with function workers (the
default). In each, after a warm-up, `--invocations` health-check invocations
(`functions.common.health`: the handler answers without other work) of the predict function
(a zip function with the serving layer) and of the ingest function (an image function) go
through the Invoke API, and `--invocations` `GET /v1/health` requests through the local API.
Printed: p50 and p90 per path and mode, and the difference of the p50s, which must stay at or
under `LIMIT_MS` (exit 1 otherwise).

    python bench/workers.py [--invocations 300]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from functions.common.health import HEALTH_CHECK
from infra.cli.predict_client import signed_request
from infra.local import LocalCloud, lambda_config
from infra.local.synth import synthesize

REPO = Path(__file__).resolve().parents[1]
LIMIT_MS = 5.0
WARM_UP = 20


def _latencies(call: Any, count: int) -> list[float]:
    for _ in range(WARM_UP):
        call()
    measured = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        measured.append((time.perf_counter() - started) * 1000)
    return measured


def measure(cdk_out: Path, functions: str, count: int) -> dict[str, list[float]]:
    with LocalCloud.start(
        cdk_out,
        mode="server",
        port=0,
        api_port=0,
        functions=functions,  # type: ignore[arg-type]
    ) as cloud:
        client = cloud.client("lambda")
        payload = json.dumps(HEALTH_CHECK).encode()

        def invoke(name: str) -> Any:
            def call() -> None:
                response = client.invoke(FunctionName=name, Payload=payload)
                answer = json.loads(response["Payload"].read())
                assert answer.get("healthy"), answer

            return call

        def api() -> None:
            request = signed_request(f"{cloud.api_url}/v1/health", "GET", None, {})
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()

        return {
            "invoke predict (zip)": _latencies(
                invoke(cloud.function_name("ServingPredictFunction")), count
            ),
            "invoke ingest (image)": _latencies(
                invoke(cloud.function_name("PipelineIngestFunction")), count
            ),
            "GET /v1/health via the API": _latencies(api, count),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invocations", type=int, default=300)
    args = parser.parse_args()
    logging.getLogger("infra.local").setLevel(logging.ERROR)
    lambda_config.SETTINGS.echo_function_output = False
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        cdk_out = Path(tmp) / "cdk.out"
        synthesize(REPO, cdk_out, {"commit": "bench"})
        results = {
            mode: measure(cdk_out, mode, args.invocations) for mode in ("inprocess", "workers")
        }
    print(f"{args.invocations} warm invocations per path (p50 / p90, ms)")
    print(f"{'path':<30} {'in-process':>18} {'workers':>18} {'added p50':>10}")
    worst = 0.0
    for path in results["inprocess"]:
        inprocess, worker = (np.array(results[mode][path]) for mode in ("inprocess", "workers"))
        added = float(np.median(worker) - np.median(inprocess))
        worst = max(worst, added)
        print(
            f"{path:<30} {np.median(inprocess):8.2f} / {np.percentile(inprocess, 90):6.2f}"
            f"  {np.median(worker):8.2f} / {np.percentile(worker, 90):6.2f} {added:+9.2f}"
        )
    verdict = "ok" if worst <= LIMIT_MS else "MISSED"
    print(f"worst added p50: {worst:+.2f} ms (target <= {LIMIT_MS:.0f} ms): {verdict}")
    return 0 if worst <= LIMIT_MS else 1


if __name__ == "__main__":
    sys.exit(main())
