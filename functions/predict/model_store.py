"""The serving model of a warm container: alias `production` resolved through the registry,
its ONNX bytes checked against the registered sha256 before onnxruntime sees them, and an
onnxruntime session, all held in one immutable `ServingModel`.

The alias is re-checked at most every `ttl_seconds`. A new version replaces the current one
with a single attribute assignment, so a request that picked up a `ServingModel` at its start
finishes with that version's session and signature, never a mix. A version whose bytes do not
match its recorded hash is refused: the previous version keeps serving, an error is logged and
metric `ModelIntegrityFailures` is published (it is tried again at the next check, so the metric
keeps firing while production points at a bad file).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import onnxruntime as ort
from aws_lambda_powertools.metrics import MetricUnit

from functions.common.contracts import ModelVersion
from functions.common.model_registry import PRODUCTION, ModelRegistry
from functions.common.observability import logger, metrics
from functions.predict.validation import FeatureSpec, feature_specs

SIGNATURE_FILE = "signature.json"
INTEGRITY_FAILURES = "ModelIntegrityFailures"
REFRESH_FAILURES = "ModelRefreshFailures"
MODELS_LOADED = "ModelsLoaded"


class NoModelError(Exception):
    """No version of the model is promoted (or none could be loaded) yet."""


@dataclass(frozen=True)
class ServingModel:
    """One loaded version: everything a request needs, swapped as a whole."""

    name: str
    version: int
    registered: ModelVersion
    promoted_at: str | None
    signature: Mapping[str, Any]
    specs: tuple[FeatureSpec, ...]
    session: Any
    output_names: tuple[str, ...]

    @property
    def classes(self) -> list[str] | None:
        classes = self.signature.get("classes")
        return list(classes) if classes is not None else None


def _session(onnx: bytes) -> Any:
    return ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])


class ModelStore:
    """The current serving model, re-resolved from the registry at most every `ttl_seconds`.

    `fetch_bytes(key)` and `fetch_json(key)` read objects of the data bucket.
    """

    def __init__(
        self,
        *,
        model_name: str,
        registry: ModelRegistry,
        fetch_bytes: Callable[[str], bytes],
        fetch_json: Callable[[str], Any],
        ttl_seconds: float,
        alias: str = PRODUCTION,
        session_factory: Callable[[bytes], Any] = _session,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.model_name = model_name
        self.alias = alias
        self.ttl_seconds = ttl_seconds
        self._registry = registry
        self._fetch_bytes = fetch_bytes
        self._fetch_json = fetch_json
        self._session_factory = session_factory
        self.clock = clock
        self._model: ServingModel | None = None
        self._checked_at: float | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> ServingModel | None:
        """The model in use now, without checking the alias."""
        return self._model

    def current(self) -> ServingModel:
        """The model to answer a request with (re-checking the alias when due).

        Raises:
            NoModelError: nothing is promoted yet, or the promoted version could not load.
        """
        model = self.refresh()
        if model is None:
            raise NoModelError(f"no model is promoted yet (model {self.model_name!r})")
        return model

    def _due(self) -> bool:
        checked = self._checked_at
        return checked is None or self.clock() - checked >= self.ttl_seconds

    def refresh(self, force: bool = False) -> ServingModel | None:
        """Re-resolve the alias if due (always when `force`); returns the model in use after.

        While one thread refreshes, the others keep answering with the current model (they
        wait only when there is none yet)."""
        if not force and not self._due():
            return self._model
        if not self._lock.acquire(blocking=force or self._model is None):
            return self._model
        try:
            if force or self._due():
                started = self.clock()
                self._resolve()
                # Recorded only now (a thread that finds no check due must find the model
                # too), as of the start of the check (a move during it is seen next time).
                self._checked_at = started
        finally:
            self._lock.release()
        return self._model

    def _resolve(self) -> None:
        try:
            state = self._registry.get_alias(self.model_name, self.alias)
        except Exception:
            # The registry is unreachable: keep serving what is loaded, try at the next check.
            logger.exception("Could not read the model alias", extra={"alias": self.alias})
            metrics.add_metric(name=REFRESH_FAILURES, unit=MetricUnit.Count, value=1)
            return
        current = self._model
        if state is None:
            if current is None:
                logger.info("No model is promoted yet", extra={"model": self.model_name})
            return
        if current is not None and current.version == state.version:
            return
        try:
            loaded = self._load(state.version, state.updated_at)
        except Exception:
            logger.exception(
                "Could not load the promoted model version",
                extra={"model": self.model_name, "version": state.version},
            )
            metrics.add_metric(name=REFRESH_FAILURES, unit=MetricUnit.Count, value=1)
            return
        if loaded is not None:
            self._model = loaded
            metrics.add_metric(name=MODELS_LOADED, unit=MetricUnit.Count, value=1)
            logger.info(
                "Serving model version",
                extra={
                    "model": self.model_name,
                    "version": loaded.version,
                    "previous_version": current.version if current else None,
                },
            )

    def _load(self, version: int, promoted_at: str | None) -> ServingModel | None:
        registered = self._registry.get_version(self.model_name, version)
        if registered is None:
            raise LookupError(f"{self.alias} points at unregistered version {version}")
        onnx = self._fetch_bytes(registered.onnx_key)
        digest = hashlib.sha256(onnx).hexdigest()
        if digest != registered.onnx_sha256:
            serving = self._model.version if self._model else None
            logger.error(
                "Model file does not match its registered checksum; refusing it",
                extra={
                    "model": self.model_name,
                    "version": version,
                    "key": registered.onnx_key,
                    "sha256": digest,
                    "expected_sha256": registered.onnx_sha256,
                    "serving_version": serving,
                },
            )
            metrics.add_metric(name=INTEGRITY_FAILURES, unit=MetricUnit.Count, value=1)
            return None
        signature = self._fetch_json(registered.prefix + SIGNATURE_FILE)
        session = self._session_factory(onnx)
        return ServingModel(
            name=self.model_name,
            version=version,
            registered=registered,
            promoted_at=promoted_at,
            signature=signature,
            specs=feature_specs(signature),
            session=session,
            output_names=tuple(output["name"] for output in signature["onnx_outputs"]),
        )
