"""Where OpenLineage run events go: the data bucket, `lineage/dt=<day>/<job>/<run id>-<event
type>.json` (the record, stamped with its format version), and, with `[lineage] url`, an
OpenLineage HTTP endpoint through the openlineage-python client's HTTP transport.

Emission never fails the step it describes: an event that cannot be built, stored or posted is
logged and counted (the `LineageEmitFailures` metric) and the step goes on. `traced` wraps a
step's work in its START, then COMPLETE or FAIL, events."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar

from aws_lambda_powertools.metrics import MetricUnit

from functions.adapters.storage import ObjectStore
from functions.common import formats
from functions.common.config.loading import deployed_config
from functions.common.layout import lineage_event_key
from functions.common.lineage import (
    Dataset,
    EventType,
    Job,
    Parent,
    Reader,
    RunContext,
    RunEnd,
    RunSpec,
    new_run_id,
    producer_uri,
    run_event,
)
from functions.common.observability import logger, metrics
from functions.common.settings import stage_settings

EMIT_FAILURES_METRIC = "LineageEmitFailures"
HTTP_TIMEOUT_SECONDS = 5.0
HTTP_RETRY = {"total": 2, "backoff_factor": 0.3, "allowed_methods": ["POST"]}
"""At most three attempts of 5 s per event: a refused connection gives up within a second, an
endpoint that never answers delays each event (a step emits two) by up to 15 s."""


def post_transport(url: str) -> Any:
    """The openlineage-python client's HTTP transport to `url` (events go to
    `<url>/api/v1/lineage`). Imported on first use: a function without `[lineage] url` never
    loads the client."""
    from openlineage.client.transport.http import HttpConfig, HttpTransport

    return HttpTransport(HttpConfig(url=url, timeout=HTTP_TIMEOUT_SECONDS, retry=dict(HTTP_RETRY)))


class LineageEmitter:
    """Stores each event under `lineage/` in `bucket` and posts it to `url` when set."""

    def __init__(
        self,
        bucket: str,
        *,
        namespace: str,
        code_version: str,
        url: str | None = None,
        store: ObjectStore | None = None,
    ) -> None:
        self.bucket = bucket
        self.namespace = namespace
        self.code_version = code_version
        self.url = url
        self.store = store or ObjectStore()
        self._transport: Any = None
        self._lock = threading.Lock()

    def emit(self, event: Mapping[str, Any]) -> bool:
        """Store `event` (and post it, with a URL). True when every destination took it; a
        failure is logged and counted, never raised."""
        stored = self._store(event)
        posted = self._post(event) if self.url else True
        return stored and posted

    def _store(self, event: Mapping[str, Any]) -> bool:
        try:
            key = lineage_event_key(
                str(event["eventTime"])[:10],
                str(event["job"]["name"]),
                str(event["run"]["runId"]),
                str(event["eventType"]),
            )
            self.store.put_json(self.bucket, key, formats.stamp(formats.LINEAGE_EVENT, event))
        except Exception:  # noqa: BLE001 - lineage never fails the step
            _failed("stored", event)
            return False
        return True

    def _post(self, event: Mapping[str, Any]) -> bool:
        try:
            with self._lock:
                if self._transport is None:
                    self._transport = post_transport(str(self.url))
                transport = self._transport
            transport.emit(dict(event))
        except Exception:  # noqa: BLE001 - the bucket's copy is the record
            _failed("posted", event)
            return False
        return True

    def read_json(self, key: str) -> Mapping[str, Any] | None:
        """A JSON document of the bucket (a manifest, a signature) for a schema facet; None
        (logged) when it cannot be read."""
        try:
            document = self.store.get_json(self.bucket, key)
        except Exception:  # noqa: BLE001 - a facet less, not a failed step
            logger.warning("Lineage: cannot read %s for a schema facet", key, exc_info=True)
            return None
        return document if isinstance(document, Mapping) else None

    def run(
        self,
        job_name: str,
        *,
        job_type: str,
        description: str,
        inputs: Sequence[Dataset] = (),
        parent: str | None = None,
        nominal_time: str | None = None,
        run_id: str | None = None,
    ) -> LineageRun:
        """One run of job `job_name` (no event emitted yet: `start`)."""
        context = RunContext(
            job=Job(self.namespace, job_name, job_type, description),
            run_id=run_id or new_run_id(),
            producer=producer_uri(self.code_version),
            code_version=self.code_version,
            bucket=self.bucket,
            parent=Parent(parent) if parent else None,
            nominal_time=nominal_time,
            inputs=tuple(inputs),
        )
        return LineageRun(self, context)


def _failed(action: str, event: Mapping[str, Any]) -> None:
    logger.warning(
        "Lineage event not %s",
        action,
        extra={
            "lineage_job": (event.get("job") or {}).get("name"),
            "lineage_event": event.get("eventType"),
        },
        exc_info=True,
    )
    metrics.add_metric(name=EMIT_FAILURES_METRIC, unit=MetricUnit.Count, value=1)


@dataclass
class LineageRun:
    """The events of one run: `start`, then `complete` or `fail`."""

    emitter: LineageEmitter
    context: RunContext
    emitted: list[dict[str, Any]] = field(default_factory=list)

    def start(self) -> None:
        self._emit("START")

    def complete(
        self,
        inputs: Sequence[Dataset] | None = None,
        outputs: Sequence[Dataset] = (),
        nominal: tuple[str, str] | None = None,
    ) -> None:
        self._emit("COMPLETE", inputs=inputs, outputs=outputs, nominal=nominal)

    def fail(self, error: BaseException, inputs: Sequence[Dataset] | None = None) -> None:
        self._emit("FAIL", inputs=inputs, error=error)

    def _emit(
        self,
        event_type: EventType,
        *,
        inputs: Sequence[Dataset] | None = None,
        outputs: Sequence[Dataset] = (),
        error: BaseException | None = None,
        nominal: tuple[str, str] | None = None,
    ) -> None:
        try:
            event = run_event(
                self.context,
                event_type,
                inputs=inputs,
                outputs=outputs,
                error=error,
                at=datetime.now(UTC),
                nominal=nominal,
            )
        except Exception:  # noqa: BLE001 - lineage never fails the step
            _failed("built", {"job": {"name": self.context.job.name}, "eventType": event_type})
            return
        self.emitted.append(event)
        self.emitter.emit(event)


@contextmanager
def never_failing(action: str) -> Iterator[None]:
    """Runs lineage work whose failure is logged and counted, never raised (`action` names
    it in the log)."""
    try:
        yield
    except Exception:  # noqa: BLE001 - lineage never fails the step
        _failed(action, {})


def deployed_emitter() -> LineageEmitter:
    """The emitter of this function: its data bucket, `[lineage]` and stage (one per
    container, and per configuration when that changes)."""
    settings = stage_settings()
    config = deployed_config()
    lineage = config.lineage
    return _emitter(
        settings.data_bucket,
        lineage.namespace or f"{config.project.name}-{settings.stage}",
        settings.code_version,
        lineage.url,
    )


@cache
def _emitter(bucket: str, namespace: str, code_version: str, url: str | None) -> LineageEmitter:
    return LineageEmitter(bucket, namespace=namespace, code_version=code_version, url=url)


Event = TypeVar("Event")
Result = TypeVar("Result")


def traced(
    work: Callable[[Event], Result],
    begin: Callable[[Event], RunSpec],
    end: Callable[[Event, Result, Reader], RunEnd],
    *,
    emitter: Callable[[], LineageEmitter] = deployed_emitter,
) -> Callable[[Event], Result]:
    """`work` emitting its run's events: START (`begin`'s inputs), then COMPLETE with what
    `end` says it read and wrote, or FAIL with the error when `work` raised (the error is
    raised on). A failure of the lineage itself is logged and counted, never raised."""

    def run(event: Event) -> Result:
        lineage: LineageRun | None = None
        try:
            spec = begin(event)
            lineage = emitter().run(
                spec.job,
                job_type=spec.job_type,
                description=spec.description,
                inputs=spec.inputs,
                parent=spec.parent,
                nominal_time=spec.nominal_time,
            )
            lineage.start()
        except Exception:  # noqa: BLE001 - lineage never fails the step
            _failed("started", {"eventType": "START"})
        try:
            result = work(event)
        except Exception as error:
            if lineage is not None:
                lineage.fail(error)
            raise
        if lineage is not None:
            try:
                finished = end(event, result, lineage.emitter.read_json)
            except Exception:  # noqa: BLE001 - lineage never fails the step
                _failed("described", {"eventType": "COMPLETE"})
                finished = RunEnd()
            lineage.complete(finished.inputs, finished.outputs, finished.nominal)
        return result

    return run
