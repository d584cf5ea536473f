"""What the predict API does, behind the thin handler: score validated batches with the serving
model, shape v1 and Open Inference Protocol v2 answers, capture predictions, store feedback.

Nothing here imports pandas, pyarrow or scikit-learn: the ONNX graph carries the preprocessing
and `functions.ml.onnx_input` converts values exactly as training did.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from aws_lambda_powertools.metrics import MetricUnit

from functions.adapters.registry.serving_reads import PRODUCTION, ServingRegistry
from functions.adapters.storage import ObjectStore
from functions.common.config.serving_view import ServingSettings, ServingView, serving_view
from functions.common.observability import logger
from functions.common.observability import request_metrics as metrics
from functions.common.sensitive import SensitiveColumns
from functions.ml.onnx_input import Prediction, predict_columns
from functions.predict.capture_log import CaptureLog
from functions.predict.model_store import MODEL_DIMENSION, PINNED, ModelStore
from functions.predict.models import ModelCache, Served
from functions.predict.prefetch import PrefetchedRegistry, answer, object_key
from functions.predict.rollout import RolloutPolicy
from functions.serving.binary import EXTENSION, InferenceAnswer, encode_output
from functions.serving.instances import instances_batch
from functions.serving.model import ServingModel
from functions.serving.tensors import infer_batch, requested_outputs
from functions.serving.values import Batch

if TYPE_CHECKING:
    from functions.common.records import FeedbackItem
    from functions.predict.feedback import FeedbackStore

SCORING_FAILED = "scoring_failed"
"""The `error` of a capture record whose scoring raised (the request answered 5xx)."""


@dataclass(frozen=True)
class PredictSettings:
    """The function's environment (read once per container). Plain `os.environ`, not
    pydantic-settings: its import alone would add to every cold start."""

    data_bucket: str
    registry_table: str
    stage: str = "dev"
    code_version: str = "unknown"
    capture_stream: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> PredictSettings:
        missing = [name for name in ("DATA_BUCKET", "REGISTRY_TABLE") if not env.get(name)]
        if missing:
            raise RuntimeError(f"environment variable(s) not set: {', '.join(missing)}")
        return cls(
            data_bucket=env["DATA_BUCKET"],
            registry_table=env["REGISTRY_TABLE"],
            stage=env.get("STAGE") or "dev",
            code_version=env.get("CODE_VERSION") or "unknown",
            capture_stream=env.get("CAPTURE_STREAM") or None,
        )


class FeedbackWriter(Protocol):
    """What the feedback routes store labels with (`functions.predict.feedback.FeedbackStore`)."""

    def store(
        self, items: list[FeedbackItem], lookback_hours: int | None = None
    ) -> dict[str, int]: ...


class LazyFeedback:
    """The container's `FeedbackStore`, its module imported and the store built on the first
    feedback request: the scoring routes and init never need it."""

    def __init__(self, bucket: str, objects: ObjectStore, lookback_hours: int) -> None:
        self._args = (bucket, objects, lookback_hours)
        self._store: FeedbackStore | None = None

    def store(self, items: list[FeedbackItem], lookback_hours: int | None = None) -> dict[str, int]:
        if self._store is None:
            from functions.predict.feedback import FeedbackStore

            self._store = FeedbackStore(*self._args)
        return self._store.store(items, lookback_hours=lookback_hours)


@dataclass(kw_only=True)
class Service:
    """The adapters and settings of one container."""

    settings: PredictSettings
    serving: ServingSettings
    """`[serving]` of the stack (the request body limit); each model's own is `Served.serving`."""
    models: ModelCache
    registry: ServingRegistry
    capture: CaptureLog | None
    """Capture's writer (stdout, for the log subscription); None when capture is off."""
    feedback: FeedbackWriter
    config: ServingView | None = None
    """The deployed config's view the service was built from."""
    sample: random.Random = field(default_factory=random.Random)

    @property
    def store(self) -> ModelStore:
        """The default model's store."""
        return self.models.served().store

    def should_capture(self, served: Served) -> bool:
        rate = served.serving.capture_sample_rate
        return self.capture is not None and (rate >= 1.0 or self.sample.random() < rate)


@cache
def service() -> Service:
    """The container's Service, built on first use (clients are created lazily; each model's
    store on its first request)."""
    settings = PredictSettings.from_env()
    config = serving_view()
    objects = ObjectStore()
    bucket = settings.data_bucket
    registry = PrefetchedRegistry(settings.registry_table)

    def fetch_bytes(key: str) -> bytes:
        return answer(object_key("bytes", key), lambda: objects.get_bytes(bucket, key))

    def fetch_json(key: str) -> Any:
        return answer(object_key("json", key), lambda: objects.get_json(bucket, key))

    def served(name: str) -> Served:
        view = config.for_model(name)
        return Served(
            name=name,
            store=ModelStore(
                model_name=name,
                registry=registry,
                fetch_bytes=fetch_bytes,
                fetch_json=fetch_json,
                ttl_seconds=view.serving.alias_ttl_seconds,
                policy=RolloutPolicy.from_serving(view.serving),
            ),
            serving=view.serving,
            sensitive=SensitiveColumns(view.sensitive, view.hash_salt),
            feedback_lookback_hours=view.feedback_lookback_hours,
        )

    # CAPTURE_STREAM names the delivery stream the log group's subscription feeds: capture is
    # on when the stack deployed one.
    capture = CaptureLog() if settings.capture_stream else None
    if capture is None:
        logger.debug("CAPTURE_STREAM is not set: predictions are not captured")
    return Service(
        settings=settings,
        serving=config.serving,
        models=ModelCache(
            names=config.model_names,
            default=config.default_model,
            make=served,
            cap_bytes=config.serving.model_cache_bytes,
        ),
        registry=registry,
        capture=capture,
        feedback=LazyFeedback(bucket, objects, config.feedback_lookback_hours),
        config=config,
    )


def json_array(values: np.ndarray) -> Any:
    """An output array ready for the API's JSON encoder (orjson with OPT_SERIALIZE_NUMPY):
    numeric arrays as they are (NaN and infinities become null), strings as a list."""
    if values.dtype.kind in "fiub":
        return np.ascontiguousarray(values)
    return values.tolist()


def _score(
    svc: Service, served: Served, model: ServingModel, batch: Batch, request_id: str, route: str
) -> Prediction:
    """Score `batch` and capture the request (also when scoring fails, then re-raised)."""
    started = time.perf_counter()
    try:
        prediction = predict_columns(model.session, batch.columns, model.signature)
    except Exception as error:
        capture(svc, served, model, batch, None, request_id, route, started, error)
        raise
    capture(svc, served, model, batch, prediction, request_id, route, started)
    return prediction


def _record_request(model: ServingModel, batch: Batch, started: float, route: str) -> None:
    metrics.add_metadata(key="model_version", value=str(model.version))
    metrics.add_metadata(key="route", value=route)
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="PredictedRows", unit=MetricUnit.Count, value=batch.rows)
    if batch.unseen:
        metrics.add_metric(
            name="UnseenCategories", unit=MetricUnit.Count, value=sum(batch.unseen.values())
        )
    elapsed = (time.perf_counter() - started) * 1000
    metrics.add_metric(name="PredictLatency", unit=MetricUnit.Milliseconds, value=elapsed)


def _served(svc: Service, name: str | None) -> Served:
    """The request's model (the default one when `name` is None); from here on the request's
    metrics carry its `model` dimension.

    Raises:
        ModelNotFoundError: `name` is not a configured model (nothing is read).
    """
    served = svc.models.served(name)
    metrics.add_dimension(name=MODEL_DIMENSION, value=served.name)
    metrics.add_metadata(key="model_name", value=served.name)
    return served


def _model(svc: Service, served: Served, version: int | None, *, routed: bool) -> ServingModel:
    """The version answering: `version` when given (any registered one), else the candidate or
    production as the rollout routes (`routed`), or production. The cache is then fitted under
    its cap, this model kept."""
    if version is not None:
        model = svc.models.pinned(served.name, version)
        svc.models.fit((served.name, version) if model.alias == PINNED else served.name)
        return model
    model = served.store.route() if routed else served.store.current()
    svc.models.fit(served.name)
    return model


def _batch_limits(served: Served) -> dict[str, Any]:
    return {
        "max_rows": served.serving.max_batch_rows,
        "reject_unseen": served.serving.unseen_categories == "reject",
    }


def predict_instances(document: Any, request_id: str, name: str | None = None) -> dict[str, Any]:
    """`POST /v1/predict` (the default model) and `POST /v1/models/{name}/predict`."""
    started = time.perf_counter()
    svc = service()
    served = _served(svc, name)
    model = _model(svc, served, None, routed=True)
    batch = instances_batch(document, model.specs, **_batch_limits(served))
    prediction = _score(svc, served, model, batch, request_id, "v1")
    result: dict[str, Any] = {
        "model_name": model.name,
        "model_version": model.version,
        "alias": model.alias,
        "request_id": request_id,
        "predictions": json_array(prediction.labels),
    }
    if prediction.probabilities is not None:
        result["probabilities"] = json_array(prediction.probabilities)
        result["classes"] = model.classes
    if batch.unseen:
        result["unseen_categories"] = batch.unseen
    _record_request(model, batch, started, "v1")
    return result


def infer_v2(
    name: str,
    document: Any,
    request_id: str,
    version: int | None = None,
    *,
    binary: bytes = b"",
    binary_outputs: bool = False,
) -> dict[str, Any] | InferenceAnswer:
    """`POST /v2/models/{name}/infer` and `POST /v2/models/{name}/versions/{v}/infer` (Open
    Inference Protocol v2). `binary`: the binary tensor data after the JSON. The outputs asked
    for as binary data come back as an InferenceAnswer when `binary_outputs` (the client takes
    a binary answer), else as JSON like the others."""
    started = time.perf_counter()
    svc = service()
    served = _served(svc, name)
    model = _model(svc, served, version, routed=True)
    batch, given_id = infer_batch(document, model.specs, **_batch_limits(served), binary=binary)
    wanted = requested_outputs(document, model.output_names)
    prediction = _score(svc, served, model, batch, request_id, "v2")
    if prediction.probabilities is not None:
        tensors = [(prediction.labels, "BYTES"), (prediction.probabilities, "FP32")]
    else:
        tensors = [(prediction.labels.reshape(-1, 1), "FP32")]
    produced = dict(zip(model.output_names, tensors, strict=False))
    outputs = []
    tail: list[bytes] = []
    for output, as_binary in wanted:
        values, datatype = produced[output]
        tensor: dict[str, Any] = {"name": output, "shape": list(values.shape), "datatype": datatype}
        if as_binary and binary_outputs:
            tail.append(encode_output(values, datatype))
            tensor["parameters"] = {"binary_data_size": len(tail[-1])}
        else:
            tensor["data"] = json_array(values.reshape(-1))
        outputs.append(tensor)
    _record_request(model, batch, started, "v2")
    result: dict[str, Any] = {
        "model_name": model.name,
        "model_version": str(model.version),
        "id": given_id or request_id,
        "outputs": outputs,
        "parameters": {"alias": model.alias},
    }
    if batch.unseen:
        result["parameters"]["unseen_categories"] = batch.unseen
    return InferenceAnswer(result, b"".join(tail)) if tail else result


def server_metadata() -> dict[str, Any]:
    """`GET /v2`: the Open Inference Protocol's server metadata (the extensions served)."""
    svc = service()
    project = svc.config.project_name if svc.config is not None else serving_view().project_name
    return {
        "name": f"{project}-predict",
        "version": svc.settings.code_version,
        "extensions": [EXTENSION],
    }


def model_info(name: str | None = None) -> dict[str, Any]:
    """`GET /v1/model` (the default model) and `GET /v1/models/{name}`: the serving version,
    its input schema (each input's normalised `name` and its `aliases`, the producer's names,
    accepted too), classes and metrics."""
    svc = service()
    model = _model(svc, _served(svc, name), None, routed=False)
    signature = model.signature
    return {
        "model_name": model.name,
        "model_version": model.version,
        "task": signature.get("task"),
        "target": signature.get("target"),
        "promoted_at": model.promoted_at,
        "created_at": model.registered.created_at,
        "run_id": model.registered.run_id,
        "data_version": model.registered.data_version,
        "signature": {
            "inputs": [
                {
                    "name": spec["name"],
                    "type": spec["type"],
                    "categories": list(spec.get("categories") or []),
                    "nullable": bool(spec.get("nullable", True)),
                    "aliases": list(spec.get("aliases") or []),
                }
                for spec in signature["inputs"]
            ],
        },
        "classes": model.classes,
        "metrics": dict(model.registered.metrics),
    }


def list_models() -> dict[str, Any]:
    """`GET /v1/models`: every configured model with its production version (read from the
    registry, nothing loaded) and status: `ready` (a version is promoted), `no_model` (none
    yet) or `unavailable` (the registry could not be read; logged)."""
    svc = service()
    models = []
    for name in svc.models.names:
        entry: dict[str, Any] = {
            "name": name,
            "default": name == svc.models.default,
            "production_version": None,
            "promoted_at": None,
        }
        try:
            alias = svc.registry.get_alias(name, PRODUCTION)
        except Exception:
            logger.exception("Could not read a model's alias", extra={"model": name})
            entry["status"] = "unavailable"
        else:
            entry["status"] = "ready" if alias is not None else "no_model"
            if alias is not None:
                entry["production_version"] = alias.version
                entry["promoted_at"] = alias.updated_at
        entry["loaded"] = name in svc.models.loaded
        models.append(entry)
    return {"default_model": svc.models.default, "models": models}


def health() -> dict[str, Any]:
    """`GET /v1/health`: the function answers; `ready` says whether the default model is
    loaded."""
    svc = service()
    store = svc.store
    model = store.refresh()
    return {
        "status": "ok",
        "ready": model is not None,
        "model_name": store.model_name,
        "model_version": model.version if model else None,
        "stage": svc.settings.stage,
        "code_version": svc.settings.code_version,
    }


def v2_ready() -> bool:
    return service().store.refresh() is not None


def v2_metadata(name: str, version: int | None = None) -> dict[str, Any]:
    """`GET /v2/models/{name}` (production) and `GET /v2/models/{name}/versions/{v}`."""
    svc = service()
    model = _model(svc, _served(svc, name), version, routed=False)
    inputs = [
        {
            "name": spec.name,
            "datatype": "BYTES" if spec.categorical else "FP32",
            "shape": [-1, 1],
        }
        for spec in model.specs
    ]
    if model.classes:
        tensors = [("BYTES", [-1]), ("FP32", [-1, len(model.classes)])]
    else:
        tensors = [("FP32", [-1, 1])]
    outputs = [
        {"name": output, "datatype": datatype, "shape": shape}
        for output, (datatype, shape) in zip(model.output_names, tensors, strict=False)
    ]
    return {
        "name": model.name,
        "versions": [str(model.version)],
        "platform": "onnx",
        "inputs": inputs,
        "outputs": outputs,
        "parameters": {"classes": model.classes} if model.classes else {},
    }


def store_feedback(document: Any, name: str | None = None) -> dict[str, int]:
    """`POST /v1/feedback` (the default model) and `POST /v1/models/{name}/feedback`: labels
    checked against that model's classes and features."""
    from functions.predict.feedback import feedback_items

    svc = service()
    served = _served(svc, name)
    model = _model(svc, served, None, routed=False)
    items = feedback_items(
        document,
        max_items=served.serving.max_batch_rows,
        specs=model.specs,
        classes=model.classes,
    )
    counts = svc.feedback.store(items, lookback_hours=served.feedback_lookback_hours)
    metrics.add_metric(name="FeedbackStored", unit=MetricUnit.Count, value=counts["stored"])
    return counts


def capture(
    svc: Service,
    served: Served,
    model: ServingModel,
    batch: Batch,
    prediction: Prediction | None,
    request_id: str,
    route: str,
    started: float,
    error: BaseException | None = None,
) -> None:
    """Write the request's capture record to the function's log (`capture_log`), for a sample
    of requests: its rows and predictions, or, when scoring failed (`error`), an error record
    without rows. A failure to write is logged and counted (`CaptureFailures`), never raised:
    the prediction stands. Sensitive columns (`[dataset] sensitive`) are stored hashed or not
    at all."""
    if svc.capture is None or not svc.should_capture(served):
        return
    latency_ms = (time.perf_counter() - started) * 1000
    try:
        svc.capture.write(
            request_id=request_id,
            model_name=model.name,
            model_version=model.version,
            alias=model.alias,
            route=route,
            rollout=served.store.rollout if served.store is not None else None,
            columns=batch.columns,
            rows=batch.rows,
            labels=prediction.labels if prediction is not None else None,
            probabilities=prediction.probabilities if prediction is not None else None,
            classes=list(model.classes) if model.classes else None,
            latency_ms=latency_ms,
            sensitive=served.sensitive,
            error=None if error is None else SCORING_FAILED,
        )
    except Exception:
        logger.exception("Prediction capture failed", extra={"request_id": request_id})
        metrics.add_metric(name="CaptureFailures", unit=MetricUnit.Count, value=1)
        return
    if error is None:
        metrics.add_metric(name="CapturedRows", unit=MetricUnit.Count, value=batch.rows)
