"""The serving model of a warm container: alias `production` resolved through the registry,
its ONNX bytes checked against the registered sha256 before onnxruntime sees them, and an
onnxruntime session, all held in one immutable `ServingModel`.

The alias is re-checked at most every `ttl_seconds`. A new version replaces the current one
with a single attribute assignment, so a request that picked up a `ServingModel` at its start
finishes with that version's session and signature, never a mix. A version whose bytes do not
match its recorded hash is refused: the previous version keeps serving, an error is logged and
metric `ModelIntegrityFailures` is published (it is tried again at the next check, so the metric
keeps firing while production points at a bad file).

With a rollout policy (`[serving] candidate_share > 0`), alias `candidate` is followed the same
way (same checksum check, same TTL). `route()` answers a request with the candidate with
probability `candidate_share`, else with production; `rollout` is the running rollout's id (the
candidate alias's revision), which capture records carry so that the canary function can count
and judge the rollout from the capture stream (the store itself counts and writes nothing).
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import single_metric
from aws_lambda_powertools.metrics import MetricUnit

from functions.adapters.registry.serving_reads import (
    CANDIDATE,
    PRODUCTION,
    AliasPointer,
    ServingRegistry,
)
from functions.common.errors import ArtifactIntegrityError
from functions.common.observability import logger, metrics
from functions.predict.rollout import RolloutPolicy
from functions.serving.model import ServingModel, load_version, single_thread_session

INTEGRITY_FAILURES = "ModelIntegrityFailures"
REFRESH_FAILURES = "ModelRefreshFailures"
MODELS_LOADED = "ModelsLoaded"


MODEL_DIMENSION = "model"
PINNED = "version"
"""The `alias` of a version asked for by number (`/v2/models/{name}/versions/{v}`)."""


class NoModelError(Exception):
    """No version of the model is promoted (or none could be loaded) yet."""


class VersionNotFoundError(LookupError):
    """A version asked for by number is not registered."""


class VersionRefusedError(Exception):
    """A version asked for by number does not match its registered checksum."""


def model_metric(name: str, model: str, value: float = 1) -> None:
    """Publish one count with the `model` dimension beside the function's defaults, at once
    (its own EMF line): a model's events are never attributed to another model served by the
    same invocation."""
    try:
        with single_metric(
            name=name,
            unit=MetricUnit.Count,
            value=value,
            default_dimensions=metrics.default_dimensions,
        ) as metric:
            metric.add_dimension(name=MODEL_DIMENSION, value=model)
    except Exception:  # a metric must never fail a request
        logger.debug("Could not publish a model metric", exc_info=True)


class ModelStore:
    """The current serving model, re-resolved from the registry at most every `ttl_seconds`.

    `fetch_bytes(key)` and `fetch_json(key)` read objects of the data bucket.
    """

    def __init__(
        self,
        *,
        model_name: str,
        registry: ServingRegistry,
        fetch_bytes: Callable[[str], bytes],
        fetch_json: Callable[[str], Any],
        ttl_seconds: float,
        alias: str = PRODUCTION,
        session_factory: Callable[[bytes], Any] = single_thread_session,
        clock: Callable[[], float] = time.monotonic,
        policy: RolloutPolicy | None = None,
        sample: random.Random | None = None,
    ) -> None:
        self.model_name = model_name
        self.alias = alias
        self.ttl_seconds = ttl_seconds
        self._registry = registry
        self._fetch_bytes = fetch_bytes
        self._fetch_json = fetch_json
        self._session_factory = session_factory
        self.clock = clock
        self.policy = policy or RolloutPolicy()
        self.random = sample or random.Random()
        self._model: ServingModel | None = None
        self._candidate: ServingModel | None = None
        self._checked_at: float | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> ServingModel | None:
        """The model in use now, without checking the alias."""
        return self._model

    @property
    def candidate(self) -> ServingModel | None:
        """The candidate in rollout now (None without one, or without a rollout policy)."""
        return self._candidate

    @property
    def rollout(self) -> int | None:
        """The running rollout's id (the candidate alias's revision) while a candidate is
        served, else None: what predict stamps as `rollout` on the capture records of
        production's and the candidate's answers alike."""
        candidate = self._candidate
        return candidate.revision if candidate is not None else None

    def route(self) -> ServingModel:
        """The model to answer a prediction with: the candidate for a `policy.share` of
        requests while one is in rollout, else production (as `current`)."""
        model = self.current()
        candidate = self._candidate
        if candidate is not None and self.random.random() < self.policy.share:
            return candidate
        return model

    def after_restore(self) -> None:
        """After a SnapStart restore: a fresh random sequence (every restored copy would
        repeat the snapshot's) and the aliases re-resolved at once, not after the TTL."""
        self.random.seed()
        self.refresh(force=True)

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
            candidate = (
                self._registry.get_alias(self.model_name, CANDIDATE) if self.policy.active else None
            )
        except Exception:
            # The registry is unreachable: keep serving what is loaded, try at the next check.
            logger.exception("Could not read the model alias", extra={"alias": self.alias})
            model_metric(REFRESH_FAILURES, self.model_name)
            return
        if state is None:
            if self._model is None:
                logger.info("No model is promoted yet", extra={"model": self.model_name})
        else:
            self._model = self._follow(state, self._model, self._candidate) or self._model
        if candidate is None or (self._model and candidate.version == self._model.version):
            self._candidate = None
        else:
            self._candidate = self._follow(candidate, self._candidate, self._model)

    def _follow(
        self, state: AliasPointer, current: ServingModel | None, other: ServingModel | None
    ) -> ServingModel | None:
        """The model `state` points at: `current` when unchanged, the other alias's loaded
        model when it is that version (a promoted candidate is not loaded twice), else loaded
        now (None when that fails: it is logged and counted)."""
        for loaded in (current, other):
            if loaded is not None and loaded.version == state.version:
                if loaded is current and loaded.revision == state.revision:
                    return loaded
                return dataclasses.replace(
                    loaded, alias=state.alias, revision=state.revision, promoted_at=state.updated_at
                )
        try:
            model = self._load(state)
        except Exception:
            logger.exception(
                "Could not load the model version of an alias",
                extra={"model": self.model_name, "alias": state.alias, "version": state.version},
            )
            model_metric(REFRESH_FAILURES, self.model_name)
            return None
        if model is not None:
            model_metric(MODELS_LOADED, self.model_name)
            logger.info(
                "Serving model version",
                extra={
                    "model": self.model_name,
                    "alias": state.alias,
                    "version": model.version,
                    "previous_version": current.version if current else None,
                },
            )
        return model

    def _load(self, state: AliasPointer) -> ServingModel | None:
        try:
            return self._checked(
                state.version, state.alias, revision=state.revision, promoted_at=state.updated_at
            )
        except ArtifactIntegrityError:
            return None

    def _checked(
        self, version: int, alias: str, *, revision: int = 0, promoted_at: str | None = None
    ) -> ServingModel:
        """`load_version`, a checksum mismatch logged and counted before it is raised."""
        try:
            return load_version(
                model_name=self.model_name,
                version=version,
                registry=self._registry,
                fetch_bytes=self._fetch_bytes,
                fetch_json=self._fetch_json,
                session_factory=self._session_factory,
                alias=alias,
                revision=revision,
                promoted_at=promoted_at,
            )
        except ArtifactIntegrityError as error:
            serving = self._model.version if self._model else None
            logger.error(
                "Model file does not match its registered checksum; refusing it",
                extra={
                    "model": self.model_name,
                    "alias": alias,
                    "version": version,
                    **error.args[1],
                    "serving_version": serving,
                },
            )
            model_metric(INTEGRITY_FAILURES, self.model_name)
            raise

    def pinned(self, version: int) -> ServingModel:
        """Version `version` asked for by number: the loaded production or candidate when it
        is that version, else loaded now from the registry (checksum checked, as any).

        Raises:
            VersionNotFoundError: the version is not registered.
            VersionRefusedError: its file does not match its registered checksum.
        """
        for loaded in (self._model, self._candidate):
            if loaded is not None and loaded.version == version:
                return loaded
        try:
            return self._checked(version, PINNED)
        except LookupError:
            raise VersionNotFoundError(
                f"model {self.model_name!r} has no registered version {version}"
            ) from None
        except ArtifactIntegrityError:
            raise VersionRefusedError(
                f"model {self.model_name!r} version {version}: its file does not match its "
                "registered sha256; refused"
            ) from None

    @property
    def loaded_bytes(self) -> int:
        """ONNX bytes of the versions this store holds (production and candidate)."""
        held = {id(m): m.size for m in (self._model, self._candidate) if m is not None}
        return sum(held.values())
