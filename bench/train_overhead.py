"""What the train stage costs on top of fitting the model.

Generates a seeded curated Parquet file (50k rows x 20 features, numeric and categorical, some
missing values, as ingestion writes them) and publishes it as ingestion would, against AWS
faked in process by moto: `curated/bench/<version>/data.parquet` and its `manifest.json` in a
versioned data bucket, the version registered in the registry table. Then times, in one process:

(a) the real train handler, `functions.train.handler.lambda_handler`, on the pipeline state
    Ingest leaves: look the version up in the registry, download and read the curated data,
    split, fit (hist_gradient_boosting classification), export ONNX, check parity, score the
    held-out rows, build the reference profile, upload every artifact (model, signature,
    holdout, profile, run.json) and put the run record, with Powertools logging and metrics
    (their output is discarded);
(b) a bare `pipeline.fit` of the same pipeline (`build_pipeline`) on the same training rows
    (`split_dataset` with the config's seed and test size; each run record's hash of the
    held-out rows is checked against this split).

Only the handler call and the fit are timed: not the data generation, the moto setup, nor the
reading back of the run record. Each is run `--repeats` times, alternating (every handler call
is a new training run; moto's state persists), and the fastest run of each is compared (the one
least disturbed by other processes). Exits non-zero when (a) takes more than 1.5x (b).
Every handler run prints the step durations it recorded in its run record (`fit` includes the
split), `other` (handler time outside its stopwatch: registry query, run record, Powertools)
and the time spent inside S3 and DynamoDB calls (moto in process; it overlaps `load`, `write`
and `other`; a deployed function pays network round trips instead).
`--threads N` caps scikit-learn's OpenMP threads (default: all cores, as in the function).
On a machine shared with busy processes, OpenMP's spinning threads slow single fits at
random; `--threads 1` gives steady figures there (`OMP_WAIT_POLICY=PASSIVE` steadies them
too, but slows a two-thread fit even on a quiet machine, flattering the ratio).

    python bench/train_overhead.py [--rows 50000] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from moto import mock_aws
from threadpoolctl import threadpool_limits

from functions.adapters import aws
from functions.adapters.datasets import DatasetRegistry
from functions.adapters.registry.model_registry import ModelRegistry
from functions.adapters.storage import ObjectStore
from functions.common.config.dataset import DatasetConfig, FeatureType, Task
from functions.common.config.loading import MlopsConfig, deployed_config
from functions.common.config.training import ModelConfig
from functions.common.contracts import DatasetRef, SourceObject
from functions.common.layout import DATA_FILE, MANIFEST_FILE
from functions.common.settings import stage_settings
from functions.ml.features import model_frame, target_array
from functions.ml.training import build_pipeline, split_dataset

REPO = Path(__file__).resolve().parents[1]

LIMIT = 1.5
NUMERIC, CATEGORICAL = 12, 8
DATASET = "bench"
TARGET = "label"
ESTIMATOR = "hist_gradient_boosting"
TASK = Task.CLASSIFICATION
BUCKET = "bench-dev-data"
TABLE = "bench-dev-registry"
CODE_VERSION = "bench"


@dataclass
class FakeContext:
    """The Lambda context attributes Powertools reads."""

    function_name: str = "bench-dev-train"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 3008
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:bench-dev-train"
    aws_request_id: str = "5d7b4a1e-0000-4000-8000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


class AwsClock:
    """Seconds spent inside API calls of the clients it is attached to (request signing, moto
    and response parsing; not the body streaming of a download)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.seconds, self.calls = 0.0, 0

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-call", self._start)
        client.meta.events.register("after-call", self._stop)

    def _start(self, context: dict[str, Any], **_: Any) -> None:
        context["bench_started"] = time.perf_counter()

    def _stop(self, context: dict[str, Any], **_: Any) -> None:
        self.seconds += time.perf_counter() - context.pop("bench_started")
        self.calls += 1


def generate(path: Path, rows: int, seed: int = 0) -> dict[str, FeatureType]:
    """A curated Parquet file (float64 / string columns, nulls for missing) with a learnable
    target; returns its feature schema."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    logit = np.zeros(rows)
    schema: dict[str, FeatureType] = {}
    for i in range(NUMERIC):
        values = rng.normal(0.0, 1.0 + i, rows) * (10.0 if i % 3 == 0 else 1.0)
        logit += values / (1.0 + i) * (0.6 if i % 2 else -0.4) / (10.0 if i % 3 == 0 else 1.0)
        values[rng.random(rows) < 0.03] = np.nan
        columns[f"num_{i:02d}"] = values
        schema[f"num_{i:02d}"] = FeatureType.NUMERIC
    for i in range(CATEGORICAL):
        levels = np.array([f"level_{j}" for j in range(3 + 4 * i)])
        codes = rng.integers(0, len(levels), rows)
        logit += (codes % 3 - 1) * 0.3
        values = levels[codes].astype(object)
        values[rng.random(rows) < 0.03] = None
        columns[f"cat_{i:02d}"] = values
        schema[f"cat_{i:02d}"] = FeatureType.CATEGORICAL
    columns[TARGET] = np.where(rng.random(rows) < 1.0 / (1.0 + np.exp(-logit)), "yes", "no")
    arrow_schema = pa.schema(
        [
            (name, pa.float64() if kind is FeatureType.NUMERIC else pa.string())
            for name, kind in schema.items()
        ]
        + [(TARGET, pa.string())]
    )
    table = pa.Table.from_pydict(columns, schema=arrow_schema)
    pq.write_table(table, path, compression="zstd")
    return schema


def bench_config(schema: dict[str, FeatureType]) -> MlopsConfig:
    return MlopsConfig(
        dataset=DatasetConfig(name=DATASET, target=TARGET, task=TASK, features=schema),
        model=ModelConfig(estimator=ESTIMATOR),
    )


def set_environment(config: MlopsConfig) -> None:
    """The environment the deployed train function gets, with fake credentials (moto)."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_LAMBDA_FUNCTION_NAME"):
        os.environ.pop(name, None)
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "DATA_BUCKET": BUCKET,
            "REGISTRY_TABLE": TABLE,
            "STAGE": "dev",
            "CODE_VERSION": CODE_VERSION,
            "POWERTOOLS_SERVICE_NAME": "train",
            "POWERTOOLS_METRICS_NAMESPACE": "bench",
            "MLOPS_CONFIG_JSON": config.to_json(),
        }
    )
    deployed_config.cache_clear()
    stage_settings.cache_clear()
    aws.reset_clients()


def publish(data: Path, schema: dict[str, FeatureType], rows: int) -> DatasetRef:
    """Create the bucket and the table (in moto), put the curated file and its manifest where
    ingestion puts them and register the version; returns it as Ingest returns it."""
    s3, dynamodb = aws.client("s3"), aws.client("dynamodb")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    dynamodb.create_table(
        TableName=TABLE,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    version = hashlib.sha256(data.read_bytes()).hexdigest()[:16]
    prefix = f"curated/{DATASET}/{version}/"
    created_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    source = SourceObject(bucket=BUCKET, key=f"raw/{DATASET}/bench.parquet")
    manifest = {
        "dataset": DATASET,
        "data_version": version,
        "created_at": created_at,
        "code_version": CODE_VERSION,
        "source": source.model_dump(mode="json"),
        "format": "parquet",
        "files": [prefix + DATA_FILE],
        "target": TARGET,
        "task": TASK.value,
        "schema": {name: kind.value for name, kind in schema.items()}
        | {TARGET: FeatureType.CATEGORICAL.value},
        "rows": {"in": rows, "out": rows},
    }
    store = ObjectStore()
    store.upload_file(data, BUCKET, prefix + DATA_FILE)
    store.put_json(BUCKET, prefix + MANIFEST_FILE, manifest)
    ref = DatasetRef(
        dataset=DATASET,
        data_version=version,
        manifest_key=prefix + MANIFEST_FILE,
        curated_prefix=prefix,
        rows=rows,
        source=source,
        created_at=created_at,
    )
    registered, _ = DatasetRegistry(TABLE).register_version(ref, code_version=CODE_VERSION)
    return registered


@contextmanager
def discarded_stdout() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null: Powertools' log lines and metrics are still
    written (the handler's cost is unchanged), just not shown."""
    sys.stdout.flush()
    saved = os.dup(1)
    with Path(os.devnull).open("wb") as null:
        os.dup2(null.fileno(), 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def bare_fit(train: pd.DataFrame, schema: dict[str, FeatureType], config: MlopsConfig) -> float:
    """Seconds of `pipeline.fit` alone, on rows already in model form."""
    features = model_frame(train, schema)
    y = target_array(train, TARGET, TASK)
    pipeline = build_pipeline(
        task=TASK,
        estimator=config.estimator,
        params=config.model.params,
        schema=schema,
        seed=config.model.seed,
    )
    started = time.perf_counter()
    pipeline.fit(features, y)
    return time.perf_counter() - started


def recorded_steps(
    result: dict[str, Any], handler_seconds: float, held_out: str
) -> dict[str, float]:
    """The step durations in the run's record, plus `other`: the handler's time outside its
    stopwatch. Checks that the run held out the rows the bare fit held out."""
    record = ModelRegistry(TABLE).get_run(result["model_name"], result["run_id"])
    if record is None or record["split"]["test_rows_sha256"] != held_out:
        raise SystemExit(f"run {result['run_id']}: no record, or not the bare fit's split")
    steps = dict(record["durations"])
    steps["other"] = handler_seconds - steps.pop("total")
    return steps


def describe(steps: dict[str, float]) -> str:
    return ", ".join(f"{name} {seconds:.2f}" for name, seconds in steps.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="OpenMP threads (all)")
    args = parser.parse_args()

    with (
        threadpool_limits(limits=args.threads, user_api="openmp"),
        tempfile.TemporaryDirectory(prefix="bench-train-") as tmp,
    ):
        data = Path(tmp) / DATA_FILE
        schema = generate(data, args.rows)
        config = bench_config(schema)
        set_environment(config)
        # Powertools reads its variables when the handler module is first imported.
        from functions.train.handler import lambda_handler

        split = split_dataset(
            pd.read_parquet(data),
            target=TARGET,
            task=TASK,
            test_size=config.model.test_size,
            seed=config.model.seed,
        )
        train, held_out = split.train, split.describe()["test_rows_sha256"]
        print(
            f"{args.rows} rows x {len(schema)} features ({NUMERIC} numeric, {CATEGORICAL} "
            f"categorical), {ESTIMATOR}, {len(train)} training rows, "
            f"{args.threads or 'all'} OpenMP thread(s); S3 and DynamoDB: moto, in process"
        )
        bare_fit(train.head(2_000), schema, config)  # warm-up: imports, thread pools
        ours: list[float] = []
        bare: list[float] = []
        steps: list[dict[str, float]] = []
        with mock_aws():
            state = {
                "dataset": publish(data, schema, args.rows).model_dump(mode="json"),
                "execution": {"id": "bench"},
            }
            clock = AwsClock()
            clock.attach(aws.client("s3"))
            clock.attach(aws.client("dynamodb"))
            for repeat in range(args.repeats):
                bare.append(bare_fit(train, schema, config))
                clock.reset()
                with discarded_stdout():
                    started = time.perf_counter()
                    result = lambda_handler(state, FakeContext())
                    ours.append(time.perf_counter() - started)
                aws_seconds, aws_calls = clock.seconds, clock.calls
                steps.append(recorded_steps(result, ours[-1], held_out))
                print(
                    f"  run {repeat + 1}: bare fit {bare[-1]:.2f} s, handler {ours[-1]:.2f} s "
                    f"({describe(steps[-1])}; {aws_seconds:.2f} s in {aws_calls} "
                    "S3/DynamoDB calls)"
                )

    handler, fit = min(ours), min(bare)
    ratio = handler / fit
    print(f"fastest handler run: {describe(steps[ours.index(handler)])} (s)")
    print(
        f"train handler {handler:.2f} s, bare pipeline.fit {fit:.2f} s, ratio {ratio:.2f} "
        f"(limit {LIMIT}; medians {statistics.median(ours):.2f} / {statistics.median(bare):.2f} s)"
    )
    if ratio > LIMIT:
        print(f"FAIL: the train handler costs {ratio:.2f}x a bare fit (limit {LIMIT}x)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
