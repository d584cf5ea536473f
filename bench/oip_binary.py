"""Open Inference Protocol with binary tensor data: the batch ratio of the predict function.

The default model (a logistic regression on churn rows, as bench/predict.py trains and
registers it in moto, capture off) scores 1,000 rows. Side by side, in one run, medians of
`--repeats` runs each:

- bare `session.run` on the ready arrays (`[n, 1]` float32 per numeric input, `[n, 1]` str
  per categorical input): the ceiling;
- `lambda_handler` with `POST /v2/models/churn/infer`, the body base64-encoded in the proxy
  event as API Gateway passes `application/octet-stream`: the numeric inputs as binary tensor
  data (FP32, little-endian) and the categorical ones as JSON strings (the layout the target
  is stated for: numbers skip JSON); every input binary (the strings length-prefixed BYTES);
  and both with binary outputs for a client that Accepts them;
- the same rows as JSON v2 tensors, for reference;
- the route's own code without the Powertools resolver and decorators around it
  (`inference_body` + `logic.infer_v2`, what a lean dispatch of the route runs).

The ratio is rows/s through the handler with numeric binary inputs over rows/s of bare
`session.run` on the same arrays. Target >= 0.5. Exits non-zero when it is missed.

    python bench/oip_binary.py [--repeats 40] [--rows 1000]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from predict import ENV, MODEL, Context, median_seconds, proxy_event, register, train, v2_event

TARGET = 0.5
NUMERIC = "numeric binary, categorical JSON"
ROUTE = "route code only (numeric binary), no resolver"


def binary_event(
    signature: dict[str, Any], rows: list[dict[str, Any]], *, strings: bool = True
) -> dict[str, Any]:
    """The rows as binary tensors (the categorical ones too when `strings`, else as JSON
    data), in the proxy event API Gateway makes of an application/octet-stream request."""
    import numpy as np

    inputs, chunks = [], []
    for spec in signature["inputs"]:
        values = [row[spec["name"]] for row in rows]
        tensor: dict[str, Any] = {"name": spec["name"], "shape": [len(rows), 1]}
        if spec["type"] == "categorical" and not strings:
            inputs.append({**tensor, "datatype": "BYTES", "data": values})
            continue
        if spec["type"] == "categorical":
            encoded = [("" if v is None else str(v)).encode() for v in values]
            chunk = b"".join(len(item).to_bytes(4, "little") + item for item in encoded)
            datatype = "BYTES"
        else:
            chunk = np.array([np.nan if v is None else v for v in values], "<f4").tobytes()
            datatype = "FP32"
        chunks.append(chunk)
        inputs.append(
            {**tensor, "datatype": datatype, "parameters": {"binary_data_size": len(chunk)}}
        )
    header = json.dumps({"inputs": inputs, "parameters": {"binary_data_output": True}}).encode()
    event = proxy_event("")
    event["body"] = base64.b64encode(header + b"".join(chunks)).decode()
    event["isBase64Encoded"] = True
    event["headers"] = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }
    event["multiValueHeaders"] = {name: [value] for name, value in event["headers"].items()}
    event["path"] = f"/v2/models/{MODEL}/infer"
    event["resource"] = "/v2/models/{name}/infer"
    event["pathParameters"] = {"name": MODEL}
    event["requestContext"]["resourcePath"] = event["resource"]
    return event


def accepting_binary(event: dict[str, Any]) -> dict[str, Any]:
    accepted = copy.deepcopy(event)
    accepted["headers"]["Accept"] = "application/octet-stream"
    accepted["multiValueHeaders"]["Accept"] = ["application/octet-stream"]
    return accepted


def measure(
    signature: dict[str, Any], onnx: bytes, rows: list[dict[str, Any]], repeats: int
) -> dict[str, float]:
    import numpy as np
    import onnxruntime as ort

    from functions.predict import handler

    session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    outputs = [output["name"] for output in signature["onnx_outputs"]]
    feed = {
        spec["name"]: (
            np.array([["" if r[spec["name"]] is None else r[spec["name"]]] for r in rows], object)
            if spec["type"] == "categorical"
            else np.array(
                [[np.nan if r[spec["name"]] is None else r[spec["name"]]] for r in rows]
            ).astype(np.float32)
        )
        for spec in signature["inputs"]
    }
    from functions.predict import logic
    from functions.serving.binary import inference_body

    numeric = binary_event(signature, rows, strings=False)
    events = {
        NUMERIC: numeric,
        "numeric binary, binary outputs": accepting_binary(numeric),
        "every input binary": binary_event(signature, rows),
        "every input binary, binary outputs": accepting_binary(binary_event(signature, rows)),
        "JSON tensors": v2_event(signature, rows),
    }
    context = Context()

    def through_handler(event: dict[str, Any]) -> None:
        response = handler.lambda_handler(event, context)
        assert response["statusCode"] == 200, response["body"][:300]

    def route_code() -> None:
        headers = numeric["headers"]
        request = inference_body(
            numeric["body"],
            base64_encoded=True,
            content_type=headers["Content-Type"],
            json_length=headers["Inference-Header-Content-Length"],
            max_bytes=10 * 2**20,
        )
        logic.infer_v2(MODEL, request.document, "bench", binary=request.binary)

    results: dict[str, float] = {}
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        for event in events.values():
            for _ in range(10):
                through_handler(event)
        # Interleaved rounds, so that a slower moment of the machine weighs on every figure.
        rounds = 5
        for _ in range(rounds):
            results.setdefault("bare", 0.0)
            results["bare"] += median_seconds(lambda: session.run(outputs, feed), repeats) / rounds
            for name, event in events.items():
                results.setdefault(name, 0.0)
                results[name] += (
                    median_seconds(lambda event=event: through_handler(event), repeats) / rounds
                )
            results.setdefault(ROUTE, 0.0)
            results[ROUTE] += median_seconds(route_code, repeats) / rounds
    # The answers carry the same labels as bare session.run.
    expected = session.run(outputs, feed)[0].reshape(-1).tolist()
    for name in (NUMERIC, "every input binary"):
        answer = handler.lambda_handler(events[name], context)
        assert json.loads(answer["body"])["outputs"][0]["data"] == expected, name
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--rows", type=int, default=1_000)
    args = parser.parse_args()
    os.environ.update(ENV)
    from moto import mock_aws

    with tempfile.TemporaryDirectory(prefix="bench-oip-") as tmp, mock_aws():
        workdir = Path(tmp)
        onnx, signature, rows = train(workdir)
        rows = (rows * (args.rows // len(rows) + 1))[: args.rows]
        register(onnx, signature, workdir)
        results = measure(signature, onnx, rows, args.repeats)
    bare = results.pop("bare")
    count = len(rows)
    print(f"{count:,} rows, default model (logistic_regression), medians of {args.repeats}")
    print(f"  bare session.run: {count / bare:,.0f} rows/s ({bare * 1e3:.2f} ms)")
    ratio = 0.0
    for name, seconds in results.items():
        this = bare / seconds
        if name == NUMERIC:
            ratio = this
        where = name if name == ROUTE else f"handler, {name}"
        print(
            f"  {where}: {count / seconds:,.0f} rows/s ({seconds * 1e3:.2f} ms),"
            f" ratio {this:.2f} of bare"
        )
    print(f"batch ratio with binary inputs (handler, {NUMERIC}): {ratio:.2f} (target >= {TARGET})")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
