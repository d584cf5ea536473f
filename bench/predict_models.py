"""Many models behind one predict function.

Ten churn classifiers (logistic regressions, random forests, histogram gradient boosting and a
LightGBM, different sizes) are trained (functions.ml), exported to ONNX and registered as
version 1 (production) of models `m00`..`m09` in AWS faked in process by moto, as the register
stage leaves them, with a config naming the ten (`[models.<name>]`, `m00` the default). Every
request goes through `lambda_handler` (API Gateway proxy event in, response out, Powertools
logging and metrics included, their output discarded). Capture is off.

(a) warm single-row predict latency: requests cycling over the ten models (all loaded) vs the
    same requests to one model. Target <= 1.1x.
(b) memory per loaded model: the process's resident memory (RSS) after loading each model,
    per model and against its ONNX size (what `[serving] model_cache_mb` counts).
(c) first request to a model not yet loaded (registry read, ONNX fetch from moto, sha256,
    session), for the default model's size (`m00`, the logistic regression `mlops.toml`
    trains) and for the others. Target < 200 ms for the default model's size.

Medians of `--repeats` runs (for (c): `--cold` fresh caches). Exits non-zero when a target is
missed. LightGBM needs `lightgbm` and `onnxmltools` (the model-code requirements); without
them the tenth model is another histogram gradient boosting, and the output says so.

    python bench/predict_models.py [--repeats 300] [--cold 7]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from predict import (  # noqa: E402
    BUCKET,
    ENV,
    FEATURES,
    Context,
    create_stores,
    proxy_event,
    register_version,
)

# (estimator, params): m00 is the repo's default model (logistic regression).
MODELS: list[tuple[str, dict[str, Any]]] = [
    ("logistic_regression", {"C": 1.0, "max_iter": 1000}),
    ("logistic_regression", {"C": 0.1, "max_iter": 1000}),
    ("random_forest", {"n_estimators": 20, "max_depth": 6}),
    ("random_forest", {"n_estimators": 50, "max_depth": 8}),
    ("random_forest", {"n_estimators": 100, "max_depth": 10}),
    ("hist_gradient_boosting", {"max_iter": 50}),
    ("hist_gradient_boosting", {"max_iter": 100}),
    ("hist_gradient_boosting", {"max_iter": 200, "max_depth": 6}),
    ("logistic_regression", {"C": 10.0, "max_iter": 1000}),
    ("lightgbm", {"n_estimators": 100, "num_leaves": 31}),
]
NAMES = [f"m{index:02d}" for index in range(len(MODELS))]


def lightgbm_available() -> bool:
    try:
        import lightgbm  # noqa: F401
        import onnxmltools  # noqa: F401
    except ImportError:
        return False
    return True


def _register_lightgbm_converter() -> None:
    from lightgbm import LGBMClassifier
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes

    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        convert_lightgbm,
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )


def train_all() -> tuple[list[tuple[bytes, dict[str, Any]]], list[dict[str, Any]], str]:
    """The ten models (ONNX bytes, signature), request rows, and what the tenth one is."""
    from sklearn.base import clone

    from functions.common.config.dataset import Task
    from functions.common.config.loading import load_config
    from functions.common.config.training import ModelConfig
    from functions.ml.onnx_model import export_onnx
    from functions.ml.sample_data import churn_frame
    from functions.ml.training import fit_model, model_frame, target_array

    schema = load_config(REPO / "mlops.toml").dataset.features
    assert schema is not None
    frame = churn_frame(2_000, seed=11, duplicate_share=0.0)
    with_lightgbm = lightgbm_available()
    if with_lightgbm:
        _register_lightgbm_converter()
    trained = []
    for estimator, params in MODELS:
        if estimator == "lightgbm":
            base = fit_model(
                frame,
                target="churned",
                task=Task.CLASSIFICATION,
                schema=schema,
                model=ModelConfig(params={"max_iter": 100}),
                estimator="hist_gradient_boosting",
            ).pipeline
            if with_lightgbm:
                from lightgbm import LGBMClassifier

                pipeline = clone(base).set_params(
                    model=LGBMClassifier(**params, random_state=11, verbose=-1)
                )
                pipeline.fit(
                    model_frame(frame, schema),
                    target_array(frame, "churned", Task.CLASSIFICATION),
                )
            else:
                pipeline = base
        else:
            pipeline = fit_model(
                frame,
                target="churned",
                task=Task.CLASSIFICATION,
                schema=schema,
                model=ModelConfig(params=params),
                estimator=estimator,
            ).pipeline
        onnx, signature = export_onnx(
            pipeline, schema=schema, target="churned", task=Task.CLASSIFICATION, train=frame
        )
        trained.append((onnx, signature.to_dict()))
    rows = [
        {k: (None if v != v else (v.item() if hasattr(v, "item") else v)) for k, v in r.items()}
        for r in churn_frame(50, seed=12, duplicate_share=0.0)[FEATURES].to_dict("records")
    ]
    tenth = "lightgbm (onnxmltools)" if with_lightgbm else "hist_gradient_boosting (no lightgbm)"
    return trained, rows, tenth


def register_all(trained: list[tuple[bytes, dict[str, Any]]]) -> None:
    s3, ddb = create_stores()
    for name, (onnx, signature) in zip(NAMES, trained, strict=True):
        prefix = f"models/{name}/1/"
        s3.put_object(Bucket=BUCKET, Key=prefix + "model.onnx", Body=onnx)
        s3.put_object(Bucket=BUCKET, Key=prefix + "signature.json", Body=json.dumps(signature))
        register_version(ddb, name, onnx)


def portfolio_config() -> str:
    """mlops.toml with the ten models, `m00` the default, as the function's config JSON."""
    from functions.common.config.loading import parse_config

    raw = tomllib.loads((REPO / "mlops.toml").read_text())
    raw["project"]["default_model"] = NAMES[0]
    raw["model"].pop("name", None)
    raw["serving"] = {**raw.get("serving", {}), "alias_ttl_seconds": 3600}
    raw["models"] = {name: {"dataset": "churn"} for name in NAMES}
    return parse_config(raw).for_stage("dev").to_json()


MEMORY_SCRIPT = """
import gc, os, sys
from functions.serving.model import onnx_session
def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
warm = onnx_session(open(sys.argv[1], "rb").read())
onnx = open(sys.argv[2], "rb").read()
gc.collect()
before = rss()
held = onnx_session(onnx)
gc.collect()
print(rss() - before)
"""


def session_memory(trained: list[tuple[bytes, dict[str, Any]]]) -> dict[str, int]:
    """Each model's resident memory: a fresh interpreter (onnxruntime imported, one warm-up
    session of another model made) measures its RSS before and after holding the session."""
    import subprocess
    import tempfile

    grown = {}
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        paths = []
        for name, (onnx, _) in zip(NAMES, trained, strict=True):
            path = Path(tmp) / f"{name}.onnx"
            path.write_bytes(onnx)
            paths.append(path)
        for name, path in zip(NAMES, paths, strict=True):
            warm = paths[1] if path == paths[0] else paths[0]
            result = subprocess.run(
                [sys.executable, "-c", MEMORY_SCRIPT, str(warm), str(path)],
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                capture_output=True,
                text=True,
                check=True,
            )
            grown[name] = int(result.stdout.strip().splitlines()[-1])
    return grown


def events(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    body = json.dumps({"instances": rows[:1]})
    made = {}
    for name in NAMES:
        event = proxy_event(body)
        event["path"] = f"/v1/models/{name}/predict"
        event["resource"] = "/v1/models/{name}/predict"
        event["pathParameters"] = {"name": name}
        event["requestContext"]["resourcePath"] = event["resource"]
        made[name] = event
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--cold", type=int, default=7)
    args = parser.parse_args()
    os.environ.update(ENV)
    os.environ.pop("MLOPS_CONFIG", None)
    from moto import mock_aws

    with mock_aws():
        trained, rows, tenth = train_all()
        register_all(trained)
        os.environ["MLOPS_CONFIG_JSON"] = portfolio_config()
        from functions.predict import handler, logic

        context = Context()
        by_name = events(rows)
        sizes = {name: len(onnx) for name, (onnx, _) in zip(NAMES, trained, strict=True)}
        print(f"10 models: {', '.join(f'{e}' for e, _ in MODELS[:-1])}, and {tenth}")

        def call(name: str) -> None:
            response = handler.lambda_handler(by_name[name], context)
            assert response["statusCode"] == 200, response["body"][:300]

        sink = io.StringIO()
        with contextlib.redirect_stdout(sink):
            # (b) and (c) first: each model's first request in a fresh cache.
            # The default model last: its first request is measured in a warm container whose
            # clients exist, as a model's first request is after init.
            cache = logic.service().models
            firsts: dict[str, list[float]] = {name: [] for name in NAMES}
            for _ in range(args.cold):
                logic.service.cache_clear()
                cache = logic.service().models
                for name in [*NAMES[1:], NAMES[0]]:
                    start = time.perf_counter()
                    call(name)
                    firsts[name].append(time.perf_counter() - start)
            assert set(cache.loaded) == set(NAMES), cache.loaded
            # (a) warm: all ten loaded. Each round, one request to each model in turn
            # (cycling), then ten in a row to one of them (as if it were the only model).
            for _ in range(20):
                for name in NAMES:
                    call(name)
            cycling: dict[str, list[float]] = {name: [] for name in NAMES}
            alone: dict[str, list[float]] = {name: [] for name in NAMES}
            for round_ in range(max(args.repeats // len(NAMES), len(NAMES))):
                for name in NAMES:
                    start = time.perf_counter()
                    call(name)
                    cycling[name].append(time.perf_counter() - start)
                name = NAMES[round_ % len(NAMES)]
                for _ in range(len(NAMES)):
                    start = time.perf_counter()
                    call(name)
                    alone[name].append(time.perf_counter() - start)
    many = sum(statistics.median(cycling[name]) for name in NAMES)
    one = sum(statistics.median(alone[name]) for name in NAMES)
    ratio = many / one
    print(
        f"(a) warm single-row predict, mean over the ten models of each one's median:"
        f" cycling over 10 models {many / len(NAMES) * 1e6:.0f} us, the same model in a row"
        f" {one / len(NAMES) * 1e6:.0f} us, ratio {ratio:.2f}x (target <= 1.1x); default"
        f" model {statistics.median(cycling[NAMES[0]]) * 1e6:.0f} us cycling,"
        f" {statistics.median(alone[NAMES[0]]) * 1e6:.0f} us alone"
    )
    grown = session_memory(trained)
    print(
        "(b) memory per loaded model (RSS growth of a fresh process holding its session,"
        " after a warm-up session) vs ONNX size:"
    )
    for (estimator, _), name in zip(MODELS, NAMES, strict=True):
        label = tenth if estimator == "lightgbm" else estimator
        growth = grown[name]
        print(
            f"    {name} {label:<38} ONNX {sizes[name] / 1024:8.1f} KiB, RSS +"
            f"{growth / 1024:8.1f} KiB ({growth / sizes[name]:.1f}x)"
        )
    total = sum(grown.values())
    print(
        f"    all ten: ONNX {sum(sizes.values()) / 2**20:.2f} MiB, RSS +{total / 2**20:.2f} MiB"
        f" ({total / sum(sizes.values()):.1f}x)"
    )
    first_default = statistics.median(firsts[NAMES[0]])
    print(
        f"(c) first request to a model not yet loaded: default-size model ({NAMES[0]},"
        f" {sizes[NAMES[0]] / 1024:.1f} KiB) {first_default * 1e3:.1f} ms (target < 200 ms);"
        f" the largest ({max(sizes, key=sizes.__getitem__)},"
        f" {max(sizes.values()) / 1024:.0f} KiB)"
        f" {statistics.median(firsts[max(sizes, key=sizes.__getitem__)]) * 1e3:.1f} ms"
    )
    return 1 if ratio > 1.1 or first_default >= 0.2 else 0


if __name__ == "__main__":
    sys.exit(main())
