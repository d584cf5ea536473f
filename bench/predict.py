"""What the predict function costs on top of the floor a JSON API can reach, with capture on as
deployed.

A logistic regression is trained on churn rows (functions.ml), exported to ONNX and registered
as version 1 of `churn` (production) in a moto server run in ANOTHER process (as the function
reaches AWS: over HTTP; `AWS_ENDPOINT_URL`), as the register stage leaves it. Capture is the
deployed switch: `CAPTURE_STREAM` names a Firehose stream in that server, and `[serving]
capture_sample_rate` is 1.0 (on, as deployed) or 0.0 (off). Until capture leaves the request
path, capture on includes Firehose's `put_record_batch` round trip to the moto server.

The floor pipeline (`bench/floor.py`): orjson parse of the same body, the same column conversion
(`onnx_inputs`), `session.run` on the function's session (one thread, as the function loads it),
orjson dump of the same response. The model is trained in a child process, so that the bench's
process holds what the function's does (no scikit-learn, no OpenMP threads). Warm figures are
medians of `--repeats` requests through `lambda_handler` (API Gateway proxy event in, response out;
stdout, where the function's logs and metrics go, is /dev/null, written to as Lambda's pipe),
measured side by side with the floor (called alternately) in blocks: capture on, capture off,
repeated `--rounds` times, each block a fresh container (config and service rebuilt, model
loaded and warmed outside the clock). Ratios are per round, and their median is judged:

(a) warm 1 row, handler / floor, capture on. Target <= 3x.
(b) 1,000 rows, handler rows/s / floor rows/s, capture on. Target >= 0.8. Also printed: bare
    `session.run` on ready tensors (the unreachable bound) and the same rows as v2 tensors.
(c) capture on vs off: 1 row, on / off time, target <= 1.15x; 1,000 rows, on rows/s / off
    rows/s, target >= 0.9.
(d) cold start, each in a fresh interpreter, nothing imported before the clock: importing the
    predict handler, whose init resolves the alias, fetches the model and its signature, checks
    its sha256 and creates the session (from the moto server in another process), vs two floors
    from the same model bytes: ORT only (`import onnxruntime, numpy` + session) and ORT+boto3
    (`import onnxruntime, numpy, boto3` + session). Targets <= 2.0x and <= 1.3x. The handler runs
    with the environment the stack gives it (`infra.cdk.cold_start`: config in
    `MLOPS_CONFIG_JSON`, pydantic plugins off, botocore's data trimmed to its services).

Exits non-zero when a target is missed.

    python bench/predict.py [--repeats 200] [--rounds 3] [--cold 9] [--model random_forest]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# This checkout's code, whatever an installed copy of the project says (`pip install -e` of
# another checkout), and the floor beside this file.
sys.path[:0] = [str(REPO), str(REPO / "bench")]
BUCKET, TABLE, MODEL, STREAM = "bench-data", "bench-registry", "churn", "bench-capture"
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

MOTO_SERVER_SCRIPT = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
host, port = server.get_host_and_port()
print(f"http://{host}:{port}", flush=True)
sys.stdin.read()  # until the bench closes the pipe
server.stop()
"""

# Each script starts its clock first: nothing but `time` (built in) is imported before it.
HANDLER_SCRIPT = """
import time
start = time.perf_counter()
from functions.predict import handler, logic
assert logic.service().store.loaded is not None, "model not loaded at init"
print(time.perf_counter() - start)
"""

ORT_SCRIPT = """
import time
start = time.perf_counter()
import sys
import numpy, onnxruntime
with open(sys.argv[1], "rb") as file:
    onnx = file.read()
session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
print(time.perf_counter() - start)
"""

ORT_BOTO3_SCRIPT = ORT_SCRIPT.replace(
    "import numpy, onnxruntime", "import numpy, onnxruntime, boto3"
)


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
    """The data bucket and the registry table, as the stack creates them: S3 and DynamoDB
    clients (wherever the environment points boto3)."""
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


def register(onnx: bytes, signature: dict[str, Any]) -> None:
    """Version 1 in the bucket and the registry (as the register stage leaves it), and the
    capture stream (as the stack creates it)."""
    import boto3

    s3, ddb = create_stores()
    prefix = f"models/{MODEL}/1/"
    s3.put_object(Bucket=BUCKET, Key=prefix + "model.onnx", Body=onnx)
    s3.put_object(Bucket=BUCKET, Key=prefix + "signature.json", Body=json.dumps(signature))
    register_version(ddb, MODEL, onnx)
    boto3.client("firehose").create_delivery_stream(
        DeliveryStreamName=STREAM,
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/bench-capture",
            "BucketARN": f"arn:aws:s3:::{BUCKET}",
            "Prefix": "capture/",
        },
    )


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto server in another process; yields its endpoint."""
    process = subprocess.Popen(
        [sys.executable, "-c", MOTO_SERVER_SCRIPT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(timeout=30)


def median_seconds(func: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def pytest_approx(rows: list[list[float]]) -> Any:
    """`rows` as a value equal to any list of rows with the same shape and values within
    1e-6 (float32 outputs widened the same way or not)."""
    import numpy as np

    class Approx:
        def __eq__(self, other: object) -> bool:
            return isinstance(other, list) and bool(
                np.shape(other) == np.shape(rows) and np.allclose(other, rows, atol=1e-6)
            )

        __hash__ = None  # type: ignore[assignment]

    return Approx()


def paired_medians(
    first: Callable[[], Any], second: Callable[[], Any], repeats: int
) -> tuple[float, float]:
    """Median seconds of `first` and of `second`, called alternately (so that the machine's
    load weighs on both alike)."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for func, spent in ((first, times[0]), (second, times[1])):
            start = time.perf_counter()
            func()
            spent.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


@contextlib.contextmanager
def stdout_to_devnull() -> Iterator[None]:
    """File descriptor 1 on /dev/null: the function's log and metric lines are written (a
    system call each, as to Lambda's pipe) and dropped."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


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


def deployed_environment(workdir: Path, capture_sample_rate: float) -> dict[str, str]:
    """What the stack adds to the predict function's environment, made here, with `[serving]
    capture_sample_rate` set."""
    import botocore

    from functions.adapters.aws import SLIM_DATA_ENV
    from functions.common.config.loading import CONFIG_JSON_ENV, load_config
    from infra.cdk.cold_start import FUNCTION_ENVIRONMENT, SLIM_DATA_DIR, write_slim_data

    data = write_slim_data(Path(botocore.__file__).parent, workdir / SLIM_DATA_DIR)
    config = json.loads(load_config(REPO / "mlops.toml").for_stage("dev").to_json())
    config["serving"]["capture_sample_rate"] = capture_sample_rate
    return {
        **FUNCTION_ENVIRONMENT,
        CONFIG_JSON_ENV: json.dumps(config),
        SLIM_DATA_ENV: str(data),
        "CAPTURE_STREAM": STREAM,
    }


def fresh_container(environment: dict[str, str]) -> None:
    """The predict function as a new container would start with `environment`: its config
    and service rebuilt, the model loaded."""
    from functions.common.config.loading import deployed_config
    from functions.predict import logic

    os.environ.update(environment)
    deployed_config.cache_clear()
    logic.service.cache_clear()
    with stdout_to_devnull():
        logic.service().store.refresh()


def warm_block(
    environment: dict[str, str],
    floor: Any,
    bodies: tuple[str, str],
    repeats: int,
) -> dict[str, float]:
    """Median seconds of one block, in a fresh container: the handler and the floor at 1 row
    and at 1,000 rows."""
    from functions.predict import handler

    fresh_container(environment)
    context = Context()
    one, many = bodies
    one_event, many_event = proxy_event(one), proxy_event(many)

    def through_handler(event: dict[str, Any]) -> None:
        response = handler.lambda_handler(event, context)
        assert response["statusCode"] == 200, response["body"][:300]

    with stdout_to_devnull():
        for _ in range(20):
            through_handler(one_event)
            floor.answer(one, "bench")
        answer = json.loads(handler.lambda_handler(many_event, context)["body"])
        floor_answer = json.loads(floor.answer(many, answer["request_id"]))
        assert answer.pop("probabilities") == pytest_approx(floor_answer.pop("probabilities"))
        assert answer == floor_answer, "the handler and the floor answer differently"
        batch_repeats = max(repeats // 5, 20)
        handler_one, floor_one = paired_medians(
            lambda: through_handler(one_event), lambda: floor.answer(one, "bench"), repeats
        )
        handler_many, floor_many = paired_medians(
            lambda: through_handler(many_event), lambda: floor.answer(many, "bench"), batch_repeats
        )
    return {
        "handler_one": handler_one,
        "floor_one": floor_one,
        "handler_many": handler_many,
        "floor_many": floor_many,
    }


def bounds(
    signature: dict[str, Any], onnx: bytes, rows: list[dict[str, Any]], repeats: int
) -> tuple[float, float]:
    """Median seconds of 1,000 rows as v2 tensors through the handler (the current
    container), and of bare `session.run` on ready tensors."""
    import numpy as np

    from functions.ml.onnx_input import onnx_inputs
    from functions.predict import handler
    from functions.serving.model import single_thread_session

    session = single_thread_session(onnx)
    outputs = [output["name"] for output in signature["onnx_outputs"]]
    columns = {spec["name"]: [row[spec["name"]] for row in rows] for spec in signature["inputs"]}
    feed = onnx_inputs(columns, signature["inputs"])
    tensors_event = v2_event(signature, rows)
    context = Context()
    runs = max(repeats // 5, 20)
    with stdout_to_devnull():
        v2 = median_seconds(lambda: handler.lambda_handler(tensors_event, context), runs)
    bare = median_seconds(lambda: session.run(outputs, feed), runs)
    assert np.asarray(session.run(outputs, feed)[1]).shape == (len(rows), 2)
    return v2, bare


def cold(runs: int, environment: dict[str, str], onnx_file: Path) -> dict[str, float]:
    """Median seconds of each cold start, the three scripts alternating, each run in a fresh
    interpreter."""
    env = {
        **ENV,
        **environment,
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "AWS_LAMBDA_FUNCTION_NAME": "bench-predict",
    }
    times: dict[str, list[float]] = {"handler": [], "ort": [], "ort_boto3": []}
    scripts = {"handler": HANDLER_SCRIPT, "ort": ORT_SCRIPT, "ort_boto3": ORT_BOTO3_SCRIPT}
    for _ in range(runs):
        for name, script in scripts.items():
            result = subprocess.run(
                [sys.executable, "-c", script, str(onnx_file)],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            times[name].append(float(result.stdout.strip().splitlines()[-1]))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cold", type=int, default=9)
    parser.add_argument(
        "--model",
        choices=sorted(ESTIMATOR_PARAMS),
        default="logistic_regression",
        help="estimator of the served model (the targets are set for logistic_regression)",
    )
    parser.add_argument("--train-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.update(ENV)
    if args.train_to is not None:  # the child process that trains (see below)
        onnx, signature, rows = train(args.train_to, args.model)
        (args.train_to / "model.onnx").write_bytes(onnx)
        (args.train_to / "trained.json").write_text(json.dumps([signature, rows]))
        return 0

    from floor import FloorPipeline

    from functions.serving.model import single_thread_session

    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp, moto_server() as endpoint:
        workdir = Path(tmp)
        # Trained in another process: scikit-learn's and OpenMP's threads and imports stay out
        # of the process that serves, as in the function.
        subprocess.run(
            [sys.executable, __file__, "--model", args.model, "--train-to", str(workdir)],
            check=True,
        )
        onnx = (workdir / "model.onnx").read_bytes()
        signature, rows = json.loads((workdir / "trained.json").read_text())
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        print(f"model: {args.model}; moto server (another process) at {endpoint}")
        register(onnx, signature)
        session = single_thread_session(onnx)  # the function's session, for the floor too
        floor = FloorPipeline(session, signature, model_name=MODEL, model_version=1)
        bodies = (json.dumps({"instances": rows[:1]}), json.dumps({"instances": rows}))
        capture_on = deployed_environment(workdir, 1.0)
        capture_off = {**capture_on, **deployed_environment(workdir, 0.0)}
        blocks: list[tuple[dict[str, float], dict[str, float]]] = [
            (
                warm_block(capture_on, floor, bodies, args.repeats),
                warm_block(capture_off, floor, bodies, args.repeats),
            )
            for _ in range(args.rounds)
        ]
        v2, bare = bounds(signature, onnx, rows, args.repeats)
        figures = cold(
            args.cold, {**capture_on, "AWS_ENDPOINT_URL": endpoint}, workdir / "model.onnx"
        )

    def median_of(figure: Callable[[dict[str, float], dict[str, float]], float]) -> float:
        return statistics.median(figure(on, off) for on, off in blocks)

    n = len(rows)
    on_one = median_of(lambda on, off: on["handler_one"])
    off_one = median_of(lambda on, off: off["handler_one"])
    floor_one = median_of(lambda on, off: on["floor_one"])
    on_many = median_of(lambda on, off: on["handler_many"])
    off_many = median_of(lambda on, off: off["handler_many"])
    floor_many = median_of(lambda on, off: on["floor_many"])
    ratio_a = median_of(lambda on, off: on["handler_one"] / on["floor_one"])
    ratio_b = median_of(lambda on, off: on["floor_many"] / on["handler_many"])
    ratio_c1 = median_of(lambda on, off: on["handler_one"] / off["handler_one"])
    ratio_c2 = median_of(lambda on, off: off["handler_many"] / on["handler_many"])
    off_a = median_of(lambda on, off: off["handler_one"] / off["floor_one"])
    off_b = median_of(lambda on, off: off["floor_many"] / off["handler_many"])
    print(
        f"(a) warm 1 row, capture on: handler {on_one * 1e6:.0f} us, floor {floor_one * 1e6:.0f}"
        f" us, ratio {ratio_a:.2f}x (target <= 3x); capture off: {off_one * 1e6:.0f} us,"
        f" {off_a:.2f}x"
    )
    print(
        f"(b) 1,000 rows, capture on: handler {n / on_many:,.0f} rows/s ({on_many * 1e3:.2f} ms),"
        f" floor pipeline {n / floor_many:,.0f} rows/s ({floor_many * 1e3:.2f} ms), ratio"
        f" {ratio_b:.2f} (target >= 0.8); capture off: {n / off_many:,.0f} rows/s, {off_b:.2f}"
    )
    print(
        f"    bare session.run {n / bare:,.0f} rows/s ({bare * 1e3:.2f} ms): floor pipeline"
        f" {bare / floor_many:.2f} of it, handler {bare / on_many:.2f}; the same rows as v2"
        f" tensors (POST /v2/models/{MODEL}/infer, capture on): {n / v2:,.0f} rows/s"
        f" ({v2 * 1e3:.2f} ms), {bare / v2:.2f} of bare"
    )
    print(
        f"(c) capture on vs off: 1 row {ratio_c1:.2f}x (target <= 1.15x); 1,000 rows"
        f" {ratio_c2:.2f} of capture-off rows/s (target >= 0.9)"
    )
    handler_cold, ort_cold, boto3_cold = figures["handler"], figures["ort"], figures["ort_boto3"]
    ratio_d1, ratio_d2 = handler_cold / ort_cold, handler_cold / boto3_cold
    print(
        f"(d) cold start: handler {handler_cold * 1e3:.0f} ms; ORT-only floor"
        f" {ort_cold * 1e3:.0f} ms, ratio {ratio_d1:.2f}x (target <= 2.0x); ORT+boto3 floor"
        f" {boto3_cold * 1e3:.0f} ms, ratio {ratio_d2:.2f}x (target <= 1.3x)"
    )
    missed = [
        name
        for name, ok in (
            ("a", ratio_a <= 3),
            ("b", ratio_b >= 0.8),
            ("c 1 row", ratio_c1 <= 1.15),
            ("c 1,000 rows", ratio_c2 >= 0.9),
            ("d ORT-only", ratio_d1 <= 2.0),
            ("d ORT+boto3", ratio_d2 <= 1.3),
        )
        if not ok
    ]
    if missed:
        print(f"missed: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
