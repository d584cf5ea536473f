"""What the predict function costs on top of onnxruntime.

A logistic regression is trained on churn rows (functions.ml), exported to ONNX and registered
as version 1 of `churn` (production) in AWS faked in process by moto, as the register stage
leaves it. Capture is off (CAPTURE_STREAM unset): its cost is a Firehose round trip, not CPU.

(a) warm single-row request through `lambda_handler` (API Gateway proxy event in, response
    out, Powertools logging and metrics included, their output discarded) vs the floor in the
    same process: json.loads + np.asarray per input + session.run + json.dumps. Target <= 5x.
(b) 1,000-row batch, rows/s through the handler vs bare `session.run` on ready tensors.
    Target >= 0.75. Also printed: the same rows as Open Inference Protocol v2 tensors, and
    what parsing, validating and converting them costs at best outside `session.run`.
(c) cold start, each in a fresh interpreter, from the first import to ready: importing and
    initialising the predict handler against in-process moto (alias lookup, model fetch, hash
    check, session; moto's own setup and seeding happen before the clock starts) vs bare
    `import onnxruntime, numpy, boto3` + session creation from the same bytes. Target <= 1.3x.
    The handler runs with the environment the stack gives it (`infra.cdk.cold_start`): config in
    `MLOPS_CONFIG_JSON`, pydantic plugins off, and botocore's data trimmed to its services
    (`MLOPS_BOTOCORE_DATA`; the copy is written from this interpreter's botocore by the code
    that writes the serving layer's).

Medians of `--repeats` runs. Exits non-zero when a target is missed.

    python bench/predict.py [--repeats 200] [--cold 9] [--model random_forest]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BUCKET, TABLE, MODEL = "bench-data", "bench-registry", "churn"
FEATURES = [
    "age",
    "tenure_months",
    "monthly_charges",
    "total_charges",
    "support_calls",
    "contract",
    "payment_method",
    "internet_service",
    "region",
]
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "DATA_BUCKET": BUCKET,
    "REGISTRY_TABLE": TABLE,
    "STAGE": "bench",
    "CODE_VERSION": "bench",
    "POWERTOOLS_SERVICE_NAME": "predict",
    "POWERTOOLS_METRICS_NAMESPACE": "bench",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "MLOPS_CONFIG": str(REPO / "mlops.toml"),
}

SEED_SCRIPT = """
import json, sys, boto3
from moto import mock_aws
mock = mock_aws(); mock.start()
state = json.load(open(sys.argv[1]))
s3 = boto3.client("s3"); ddb = boto3.client("dynamodb")
s3.create_bucket(Bucket=state["bucket"])
ddb.create_table(TableName=state["table"], BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                          {"AttributeName": "sk", "AttributeType": "S"}],
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
               {"AttributeName": "sk", "KeyType": "RANGE"}])
for key, path in state["objects"].items():
    s3.put_object(Bucket=state["bucket"], Key=key, Body=open(path, "rb").read())
for item in state["items"]:
    ddb.put_item(TableName=state["table"], Item=item)
"""

HANDLER_SCRIPT = (
    SEED_SCRIPT
    + """
import time
start = time.perf_counter()
from functions.predict import handler, logic
assert logic.service().store.loaded is not None, "model not loaded at init"
print(json.dumps({"seconds": time.perf_counter() - start}))
"""
)

BARE_SCRIPT = """
import json, sys, time
start = time.perf_counter()
import onnxruntime, numpy, boto3
onnx = open(sys.argv[1], "rb").read()
session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


ESTIMATOR_PARAMS: dict[str, dict[str, Any]] = {
    "logistic_regression": {"C": 1.0, "max_iter": 1000},
    "random_forest": {"n_estimators": 100, "random_state": 11},
    "hist_gradient_boosting": {"max_iter": 100, "random_state": 11},
}


def train(
    workdir: Path, estimator: str = "logistic_regression"
) -> tuple[bytes, dict[str, Any], list[dict[str, Any]]]:
    from functions.common.config.dataset import Task
    from functions.common.config.loading import load_config
    from functions.common.config.training import ModelConfig
    from functions.ml.onnx_model import export_onnx
    from functions.ml.sample_data import churn_frame
    from functions.ml.training import fit_model

    schema = load_config(REPO / "mlops.toml").dataset.features
    assert schema is not None
    frame = churn_frame(2_000, seed=11, duplicate_share=0.0)
    fitted = fit_model(
        frame,
        target="churned",
        task=Task.CLASSIFICATION,
        schema=schema,
        model=ModelConfig(params=ESTIMATOR_PARAMS[estimator]),
        estimator=estimator,
    )
    onnx, signature = export_onnx(
        fitted.pipeline, schema=schema, target="churned", task=Task.CLASSIFICATION, train=frame
    )
    rows = [
        {k: (None if v != v else (v.item() if hasattr(v, "item") else v)) for k, v in r.items()}
        for r in churn_frame(1_000, seed=12, duplicate_share=0.0)[FEATURES].to_dict("records")
    ]
    return onnx, signature.to_dict(), rows


def create_stores() -> tuple[Any, Any]:
    """The data bucket and the registry table in moto, as the stack creates them: S3 and
    DynamoDB clients."""
    import boto3

    s3, ddb = boto3.client("s3"), boto3.client("dynamodb")
    s3.create_bucket(Bucket=BUCKET)
    ddb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
    )
    return s3, ddb


def register_version(ddb: Any, model: str, onnx: bytes) -> None:
    """Version 1 of `model` registered and promoted, as the register stage leaves it (its
    files under `models/<model>/1/` are the caller's)."""
    from functions.adapters.registry.model_registry import ModelRegistry
    from functions.common.contracts import ModelVersion

    prefix = f"models/{model}/1/"
    registry = ModelRegistry(TABLE, ddb)
    registry.put_version(
        ModelVersion(
            model_name=model,
            version=1,
            prefix=prefix,
            onnx_key=prefix + "model.onnx",
            onnx_sha256=hashlib.sha256(onnx).hexdigest(),
            run_id="bench",
            data_version="d",
            data_versions=["d"],
            metrics={"roc_auc": 0.8},
            created_at="2026-01-01T00:00:00Z",
            model_card_key="reports/x",
            promoted=False,
        )
    )
    registry.promote(model, 1, expected_current=None, reason="bench")


def register(onnx: bytes, signature: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Register version 1 in moto (as the register stage would) and return what a fresh
    interpreter needs to recreate the same bucket objects and table items."""
    s3, ddb = create_stores()
    prefix = f"models/{MODEL}/1/"
    (workdir / "model.onnx").write_bytes(onnx)
    (workdir / "signature.json").write_text(json.dumps(signature))
    objects = {
        prefix + "model.onnx": str(workdir / "model.onnx"),
        prefix + "signature.json": str(workdir / "signature.json"),
    }
    for key, path in objects.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=Path(path).read_bytes())
    register_version(ddb, MODEL, onnx)
    items = ddb.scan(TableName=TABLE)["Items"]
    return {"bucket": BUCKET, "table": TABLE, "objects": objects, "items": items}


def median_seconds(func: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def proxy_event(body: str) -> dict[str, Any]:
    event = json.loads((REPO / "events" / "api_predict.json").read_text())
    event["body"] = body
    return event


class Context:
    function_name = "bench-predict"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench-predict"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def batch_floor(signature: dict[str, Any], rows: list[dict[str, Any]], repeats: int) -> Any:
    """What a 1,000-row request costs outside session.run however thin the handler: parsing
    the body, checking it and building the tensors (medians, seconds)."""
    from functions.ml.onnx_input import onnx_inputs
    from functions.serving.body import parse_json
    from functions.serving.features import feature_specs
    from functions.serving.instances import instances_batch

    body = json.dumps({"instances": rows})
    specs = feature_specs(signature)
    document = parse_json(body, base64_encoded=False, max_bytes=len(body))
    batch = instances_batch(document, specs, max_rows=len(rows), reject_unseen=False)
    runs = max(repeats // 5, 20)
    return (
        median_seconds(lambda: parse_json(body, base64_encoded=False, max_bytes=len(body)), runs),
        median_seconds(
            lambda: instances_batch(document, specs, max_rows=len(rows), reject_unseen=False),
            runs,
        ),
        median_seconds(lambda: onnx_inputs(batch.columns, signature["inputs"]), runs),
    )


def v2_event(signature: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The same rows as an Open Inference Protocol v2 request: one `[n, 1]` tensor per
    feature."""
    inputs = [
        {
            "name": spec["name"],
            "shape": [len(rows), 1],
            "datatype": "BYTES" if spec["type"] == "categorical" else "FP32",
            "data": [row[spec["name"]] for row in rows],
        }
        for spec in signature["inputs"]
    ]
    event = proxy_event(json.dumps({"inputs": inputs}))
    event["path"] = f"/v2/models/{MODEL}/infer"
    event["resource"] = "/v2/models/{name}/infer"
    event["pathParameters"] = {"name": MODEL}
    event["requestContext"]["resourcePath"] = event["resource"]
    return event


def warm(
    signature: dict[str, Any], onnx: bytes, rows: list[dict[str, Any]], repeats: int
) -> tuple[float, float, float, float, float]:
    import numpy as np
    import onnxruntime as ort

    from functions.predict import handler

    session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    outputs = [o["name"] for o in signature["onnx_outputs"]]
    kinds = {
        s["name"]: (object if s["type"] == "categorical" else np.float32)
        for s in signature["inputs"]
    }
    one = json.dumps({"instances": rows[:1]})
    batch = json.dumps({"instances": rows})
    one_event, batch_event = proxy_event(one), proxy_event(batch)
    tensors_event = v2_event(signature, rows)
    context = Context()

    def through_handler(event: dict[str, Any]) -> None:
        response = handler.lambda_handler(event, context)
        assert response["statusCode"] == 200, response["body"][:300]

    def floor() -> None:
        document = json.loads(one)["instances"]
        feed = {
            name: np.asarray([[row[name]] for row in document], dtype=kind)
            for name, kind in kinds.items()
        }
        labels, probabilities = session.run(outputs, feed)
        json.dumps({"predictions": labels.tolist(), "probabilities": probabilities.tolist()})

    feed_batch = {
        name: np.asarray(
            [
                [row[name] if row[name] is not None else ("" if kind is object else np.nan)]
                for row in rows
            ],
            dtype=kind,
        )
        for name, kind in kinds.items()
    }
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        for _ in range(20):
            through_handler(one_event)
            floor()
        single = median_seconds(lambda: through_handler(one_event), repeats)
        floor_single = median_seconds(floor, repeats)
        many = median_seconds(lambda: through_handler(batch_event), max(repeats // 5, 20))
        many_v2 = median_seconds(lambda: through_handler(tensors_event), max(repeats // 5, 20))
    bare_many = median_seconds(lambda: session.run(outputs, feed_batch), max(repeats // 5, 20))
    return single, floor_single, many, many_v2, bare_many


def deployed_environment(workdir: Path) -> dict[str, str]:
    """What the stack adds to the predict function's environment, made here."""
    import botocore

    from functions.adapters.aws import SLIM_DATA_ENV
    from functions.common.config.loading import CONFIG_JSON_ENV, load_config
    from infra.cdk.cold_start import FUNCTION_ENVIRONMENT, SLIM_DATA_DIR, write_slim_data

    data = write_slim_data(Path(botocore.__file__).parent, workdir / SLIM_DATA_DIR)
    config = load_config(REPO / "mlops.toml").for_stage("dev")
    return {
        **FUNCTION_ENVIRONMENT,
        CONFIG_JSON_ENV: config.to_json(),
        SLIM_DATA_ENV: str(data),
    }


def cold(
    state_file: Path, onnx_file: Path, runs: int, deployed: dict[str, str]
) -> tuple[float, float]:
    env = {
        **ENV,
        **deployed,
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "AWS_LAMBDA_FUNCTION_NAME": "bench-predict",
    }
    handler_times, bare_times = [], []
    for _ in range(runs):
        for script, arg, times in (
            (HANDLER_SCRIPT, state_file, handler_times),
            (BARE_SCRIPT, onnx_file, bare_times),
        ):
            result = subprocess.run(
                [sys.executable, "-c", script, str(arg)],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            times.append(json.loads(result.stdout.strip().splitlines()[-1])["seconds"])
    return statistics.median(handler_times), statistics.median(bare_times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--cold", type=int, default=9)
    parser.add_argument(
        "--model",
        choices=sorted(ESTIMATOR_PARAMS),
        default="logistic_regression",
        help="estimator of the served model (the targets are set for logistic_regression)",
    )
    args = parser.parse_args()
    os.environ.update(ENV)
    from moto import mock_aws

    failed = False
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp, mock_aws():
        workdir = Path(tmp)
        onnx, signature, rows = train(workdir, args.model)
        print(f"model: {args.model}")
        state = register(onnx, signature, workdir)
        state_file = workdir / "state.json"
        state_file.write_text(json.dumps(state))
        single, floor_single, many, many_v2, bare_many = warm(signature, onnx, rows, args.repeats)
        ratio_a = single / floor_single
        print(
            f"(a) single row: handler {single * 1e6:.0f} us, floor {floor_single * 1e6:.0f} us,"
            f" ratio {ratio_a:.2f}x (target <= 5x)"
        )
        rate, bare_rate = len(rows) / many, len(rows) / bare_many
        ratio_b = rate / bare_rate
        print(
            f"(b) 1,000 rows: handler {rate:,.0f} rows/s ({many * 1e3:.2f} ms), bare session.run"
            f" {bare_rate:,.0f} rows/s ({bare_many * 1e3:.2f} ms), ratio {ratio_b:.2f}"
            " (target >= 0.75)"
        )
        print(
            f"    the same rows as v2 tensors (POST /v2/models/{MODEL}/infer):"
            f" {len(rows) / many_v2:,.0f} rows/s ({many_v2 * 1e3:.2f} ms),"
            f" ratio {bare_many / many_v2:.2f}"
        )
        parse, check, tensors = batch_floor(signature, rows, args.repeats)
        outside = parse + check + tensors
        print(
            f"    outside session.run at best: parse {parse * 1e3:.2f} ms + validation"
            f" {check * 1e3:.2f} ms + onnx_inputs {tensors * 1e3:.2f} ms; ratio at most"
            f" {bare_many / (bare_many + outside):.2f}"
        )
        handler_cold, bare_cold = cold(
            state_file, workdir / "model.onnx", args.cold, deployed_environment(workdir)
        )
        ratio_c = handler_cold / bare_cold
        print(
            f"(c) cold start: handler {handler_cold * 1e3:.0f} ms, bare {bare_cold * 1e3:.0f} ms,"
            f" ratio {ratio_c:.2f}x (target <= 1.3x)"
        )
        failed = ratio_a > 5 or ratio_b < 0.75 or ratio_c > 1.3
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
