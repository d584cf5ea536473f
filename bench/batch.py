"""Batch inference on the local cloud against bare `session.run`: rows/s of a whole job (1M rows
in 10 files: 4 CSV, 3 Parquet, 3 JSON Lines) through the batch state machine (plan, Distributed
Map over the row ranges, score, finalize), and rows/s of `InferenceSession.run` over the same
rows in one process, with its inputs prepared beforehand (the floor: scoring alone, no reading,
checking or writing). The ratio is printed; no target is set.

Synthesizes the app with the repo's config, deploys it into the local cloud (functions in
workers, as deployed), trains and promotes the churn model with one drop, then runs the job.
The map's items are scored by up to the local cap of batch-score workers at once (max(2,
cores): infra/local/workers.py), on this machine's cores: the job's rows/s is what those give,
which the AWS estimate on the benchmarks page (docs/benchmarks.md) scales by the concurrency.

    python bench/batch.py [--rows 1000000] [--files 10]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import onnxruntime as ort
import pandas as pd

from functions.common.contracts import model_outcome
from functions.ml import sample_data
from functions.ml.onnx_input import onnx_inputs
from infra.local import LocalCloud
from infra.local.synth import synthesize

REPO = Path(__file__).resolve().parents[1]
FEATURES = [*sample_data.NUMERIC_FEATURES, *sample_data.CATEGORICAL_FEATURES]
FORMATS = ("csv", "parquet", "jsonl", "csv", "parquet", "jsonl", "csv", "parquet", "jsonl", "csv")
RUN_CHUNK_ROWS = 50_000


def _promote(cloud: LocalCloud) -> None:
    bucket = cloud.outputs["DataBucketName"]
    put = cloud.client("s3").put_object(
        Bucket=bucket,
        Key="raw/churn/bench.csv",
        Body=sample_data.encode(sample_data.churn_frame(5_000, seed=1)),
    )
    name = cloud.execution_name_for_object(
        bucket, "raw/churn/bench.csv", put.get("VersionId"), put["ETag"]
    )
    ended = cloud.wait_for_execution(name, timeout=300)
    if model_outcome(json.loads(ended["output"]))["status"] != "promoted":
        raise SystemExit(f"the bench model was not promoted: {ended.get('output')}")


def _frames(rows: int, files: int) -> list[pd.DataFrame]:
    per_file = rows // files
    return [
        sample_data.churn_frame(per_file, seed=100 + i, first_id=i * per_file, duplicate_share=0)[
            ["customer_id", *FEATURES]
        ]
        for i in range(files)
    ]


def _run_job(cloud: LocalCloud, frames: list[pd.DataFrame]) -> tuple[float, dict]:
    s3, bucket = cloud.client("s3"), cloud.outputs["DataBucketName"]
    for index, frame in enumerate(frames):
        file_format = FORMATS[index % len(FORMATS)]
        s3.put_object(
            Bucket=bucket,
            Key=f"batch/in/churn/bench/part-{index:02d}.{file_format}",
            Body=sample_data.encode(frame, file_format),
        )
    arn = cloud.outputs["BatchStateMachineArn"]
    started = time.perf_counter()
    execution = cloud.client("stepfunctions").start_execution(
        stateMachineArn=arn, name="bench", input=json.dumps({"job": "bench"})
    )
    ended = cloud.wait_for_execution(execution["executionArn"], timeout=900)
    seconds = time.perf_counter() - started
    if ended["status"] != "SUCCEEDED":
        raise SystemExit(f"the batch job ended {ended['status']}: {ended.get('cause')}")
    manifest = json.loads(
        s3.get_object(Bucket=bucket, Key="batch/out/churn/bench/manifest.json")["Body"].read()
    )
    return seconds, manifest


def _bare(cloud: LocalCloud, frames: list[pd.DataFrame], version: int) -> tuple[float, int]:
    """`session.run` over the same rows, inputs built beforehand; returns (seconds, rows)."""
    s3, bucket = cloud.client("s3"), cloud.outputs["DataBucketName"]
    prefix = f"models/churn/{version}/"
    onnx = s3.get_object(Bucket=bucket, Key=prefix + "model.onnx")["Body"].read()
    signature = json.loads(
        s3.get_object(Bucket=bucket, Key=prefix + "signature.json")["Body"].read()
    )
    session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    names = [output["name"] for output in signature["onnx_outputs"]]
    table = pd.concat(frames, ignore_index=True)[FEATURES]
    columns = {name: table[name].to_numpy() for name in FEATURES}
    feeds = [
        onnx_inputs(
            {name: values[start : start + RUN_CHUNK_ROWS] for name, values in columns.items()},
            signature["inputs"],
        )
        for start in range(0, len(table), RUN_CHUNK_ROWS)
    ]
    started = time.perf_counter()
    for feed in feeds:
        session.run(names, feed)
    return time.perf_counter() - started, len(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        cdk_out = Path(tmp) / "cdk.out"
        started = time.perf_counter()
        synthesize(REPO, cdk_out)
        frames = _frames(args.rows, args.files)
        with LocalCloud.start(cdk_out, mode="server", port=0) as cloud:
            _promote(cloud)
            print(f"setup (synth, deploy, train, data): {time.perf_counter() - started:.1f} s")
            job_seconds, manifest = _run_job(cloud, frames)
            bare_seconds, rows = _bare(cloud, frames, manifest["model_version"])
    scored = manifest["scored"] + manifest["rejected"]
    if scored != rows or manifest["status"] != "succeeded":
        print(f"error: the job scored {scored} of {rows} rows ({manifest['status']})")
        return 1
    job_rate, bare_rate = rows / job_seconds, rows / bare_seconds
    items = manifest["items"]
    work = manifest["timings"]["score_seconds"]
    print(
        f"batch job on the local cloud: {rows:,} rows in {args.files} files, {items} items: "
        f"{job_seconds:.1f} s, {job_rate:,.0f} rows/s (item work {work:.1f} s)"
    )
    print(
        f"bare session.run, same rows, one process: {bare_seconds:.2f} s, {bare_rate:,.0f} rows/s"
    )
    print(f"ratio (batch job / bare session.run): {job_rate / bare_rate:.3f}")
    print(f"plan (count rows of every file, write items): {manifest['timings']['plan_seconds']} s")
    print(f"per item: {rows / items:,.0f} rows in {work / items:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
