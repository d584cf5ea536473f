"""What the train stage costs on top of fitting the model.

Generates a seeded curated Parquet file (50k rows x 20 features, numeric and categorical, some
missing values, as ingestion writes them) in a temporary directory, then times in one process:

(a) the train stage's pure path: read the Parquet file, split, fit (hist_gradient_boosting
    classification), export ONNX, check parity, score the held-out rows, build the reference
    profile and write every artifact (model, signature, holdout, profile, run record);
(b) a bare `pipeline.fit` of the same pipeline on the same training rows.

Each is run `--repeats` times, alternating, and the fastest run of each is compared (the one
least disturbed by other processes). Exits non-zero when (a) takes more than 1.5x (b).
`--threads N` caps scikit-learn's OpenMP threads (default: all cores, as in the function).
On a machine shared with busy processes, OpenMP's spinning threads slowed single fits 10-20x
at random here; `--threads 1` gives steady figures there (`OMP_WAIT_POLICY=PASSIVE` steadies
them too, but slows a two-thread fit twofold even on a quiet machine, flattering the ratio).

    python bench/train_overhead.py [--rows 50000] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # runnable as a plain script from any directory

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from functions.common.config import FeatureType, ModelConfig, Task  # noqa: E402
from functions.ml.features import model_frame, target_array  # noqa: E402
from functions.ml.onnx_model import OnnxModel, check_parity, export_onnx  # noqa: E402
from functions.ml.reference_profile import reference_profile  # noqa: E402
from functions.ml.training import build_pipeline, fit_model, split_dataset  # noqa: E402

LIMIT = 1.5
NUMERIC, CATEGORICAL = 12, 8
TARGET = "label"
ESTIMATOR = "hist_gradient_boosting"
TASK = Task.CLASSIFICATION


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


def stage_path(data: Path, out: Path, schema: dict[str, FeatureType]) -> dict[str, float]:
    """The train stage's work, step by step; returns seconds per step."""
    laps: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        laps[name] = now - clock
        clock = now

    config = ModelConfig()
    frame = pd.read_parquet(data)
    lap("read")
    split = split_dataset(
        frame, target=TARGET, task=TASK, test_size=config.test_size, seed=config.seed
    )
    lap("split")
    fit = fit_model(
        split.train, target=TARGET, task=TASK, schema=schema, model=config, estimator=ESTIMATOR
    )
    lap("fit")
    onnx_bytes, signature = export_onnx(
        fit.pipeline, schema=schema, target=TARGET, task=TASK, train=split.train
    )
    lap("export")
    model = OnnxModel(onnx_bytes, signature)
    parity = check_parity(fit.pipeline, model, split.test, tolerance=config.parity_tolerance)
    lap("parity")
    predictions = model.predict(split.test)
    profile = reference_profile(
        split.train,
        schema=schema,
        target=TARGET,
        predictions=predictions,
        task=TASK,
        sample_rows=config.reference_sample_rows,
        seed=config.seed,
    )
    lap("profile")
    (out / "model.onnx").write_bytes(onnx_bytes)
    (out / "signature.json").write_text(json.dumps(signature.to_dict()))
    split.test.to_parquet(out / "holdout.parquet", index=False)
    (out / "reference_profile.json").write_text(json.dumps(profile, allow_nan=False))
    record = {
        "params": fit.params,
        "split": split.describe(),
        "parity": parity.to_dict(),
        "fit_seconds": fit.fit_seconds,
    }
    (out / "run.json").write_text(json.dumps(record))
    lap("write")
    return laps


def bare_fit(train: pd.DataFrame, schema: dict[str, FeatureType]) -> float:
    """Seconds of `pipeline.fit` alone, on rows already in model form."""
    features = model_frame(train, schema)
    y = target_array(train, TARGET, TASK)
    config = ModelConfig()
    pipeline = build_pipeline(
        task=TASK, estimator=ESTIMATOR, params=config.params, schema=schema, seed=config.seed
    )
    started = time.perf_counter()
    pipeline.fit(features, y)
    return time.perf_counter() - started


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
        data = Path(tmp) / "data.parquet"
        schema = generate(data, args.rows)
        frame = pd.read_parquet(data)
        config = ModelConfig()
        train = split_dataset(
            frame, target=TARGET, task=TASK, test_size=config.test_size, seed=config.seed
        ).train
        print(
            f"{args.rows} rows x {len(schema)} features ({NUMERIC} numeric, {CATEGORICAL} "
            f"categorical), {ESTIMATOR}, {len(train)} training rows, "
            f"{args.threads or 'all'} OpenMP thread(s)"
        )
        bare_fit(train.head(2_000), schema)  # warm-up: imports, thread pools
        ours: list[float] = []
        bare: list[float] = []
        steps: list[dict[str, float]] = []
        for repeat in range(args.repeats):
            bare.append(bare_fit(train, schema))
            out = Path(tmp) / f"run-{repeat}"
            out.mkdir()
            started = time.perf_counter()
            steps.append(stage_path(data, out, schema))
            ours.append(time.perf_counter() - started)
            detail = ", ".join(f"{k} {v:.2f}" for k, v in steps[-1].items())
            print(
                f"  run {repeat + 1}: bare fit {bare[-1]:.2f} s, "
                f"stage path {ours[-1]:.2f} s ({detail})"
            )

    stage, fit = min(ours), min(bare)
    ratio = stage / fit
    best = steps[ours.index(stage)]
    print("fastest stage path: " + ", ".join(f"{k} {v:.2f} s" for k, v in best.items()))
    print(
        f"stage path {stage:.2f} s, bare pipeline.fit {fit:.2f} s, ratio {ratio:.2f} "
        f"(limit {LIMIT}; medians {statistics.median(ours):.2f} / {statistics.median(bare):.2f} s)"
    )
    if ratio > LIMIT:
        print(f"FAIL: the train stage costs {ratio:.2f}x a bare fit (limit {LIMIT}x)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
