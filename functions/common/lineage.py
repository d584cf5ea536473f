"""OpenLineage run events, built as plain JSON documents (no I/O): what a pipeline stage, a
batch job or a drift check read and wrote, for lineage tools (Marquez, DataHub, OpenMetadata).

Each run emits START then COMPLETE, or FAIL with the `errorMessage` run facet. Datasets are
objects or prefixes of the data bucket: namespace `s3://<bucket>`, name the object key or the
prefix, with the `version` facet (the data version, run id or model version) and, where the
bundle knows the columns, the `schema` facet. A step of a Step Functions execution names that
execution as its `parent` run. The events are stored as JSON under `lineage/` (`event_key`)
and, with `[lineage] url`, also posted to an OpenLineage endpoint (the adapter's job).

Facets follow the OpenLineage spec 2-0-2 and the facet schema versions in `FACET_SCHEMAS`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

SPEC_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
RUN_EVENT_SCHEMA_URL = f"{SPEC_URL}#/$defs/RunEvent"

FACET_SCHEMAS: Mapping[str, str] = {
    "parent": "1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
    "nominalTime": "1-0-1/NominalTimeRunFacet.json#/$defs/NominalTimeRunFacet",
    "processing_engine": "1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet",
    "errorMessage": "1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet",
    "jobType": "2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet",
    "documentation": "1-1-0/DocumentationJobFacet.json#/$defs/DocumentationJobFacet",
    "schema": "1-2-0/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet",
    "version": "1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet",
}
"""Each facet the bundle writes (by its key in `facets`) and its schema, under
https://openlineage.io/spec/facets/."""

EventType = Literal["START", "COMPLETE", "FAIL"]

LINEAGE_ENGINE = "mlops-bundle"
"""The `processing_engine` facet's name; its version is the deployed code's."""

RUN_NAMESPACE = uuid.UUID("8b4c4a0e-3d55-5f55-9f4c-2b8d1d6f7a10")
"""The UUID namespace of the run ids derived from a name (`run_id_for`)."""

MAX_ERROR_CHARS = 2_000

Reader = Callable[[str], Mapping[str, Any] | None]
"""Reads a JSON document of the data bucket by key; None when it cannot be read."""


def facet(kind: str, producer: str, /, **fields: Any) -> dict[str, Any]:
    """A facet stamped with its producer and its schema URL (`FACET_SCHEMAS[kind]`)."""
    return {
        "_producer": producer,
        "_schemaURL": f"https://openlineage.io/spec/facets/{FACET_SCHEMAS[kind]}",
        **fields,
    }


def run_id_for(*parts: str) -> str:
    """A run id (a UUID, as the spec requires) that is the same for the same `parts`: the
    parent run of a Step Functions execution, or a batch job's run across its functions."""
    return str(uuid.uuid5(RUN_NAMESPACE, "\n".join(parts)))


def new_run_id() -> str:
    return str(uuid.uuid4())


def iso_time(moment: datetime | None = None) -> str:
    """An ISO 8601 UTC timestamp with milliseconds and `Z`."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class Dataset:
    """One dataset of the data bucket: an object key or a prefix (ending in `/`)."""

    name: str
    version: str | None = None
    fields: Sequence[tuple[str, str]] = ()
    """(column, type) pairs: the schema facet, in column order."""

    def to_json(self, namespace: str, producer: str) -> dict[str, Any]:
        facets: dict[str, Any] = {}
        if self.fields:
            facets["schema"] = facet(
                "schema",
                producer,
                fields=[
                    {"name": name, "type": kind, "ordinal_position": position}
                    for position, (name, kind) in enumerate(self.fields, start=1)
                ],
            )
        if self.version is not None:
            facets["version"] = facet("version", producer, datasetVersion=self.version)
        return {"namespace": namespace, "name": self.name, "facets": facets}


def manifest_fields(manifest: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A curated dataset version's columns (features then target) and their types, from its
    manifest's `schema`."""
    schema = manifest.get("schema") or {}
    return [(str(name), str(kind)) for name, kind in schema.items()]


def signature_fields(signature: Mapping[str, Any], *, target: bool = True) -> list[tuple[str, str]]:
    """A model's input columns from its signature, typed `<type>:<ONNX type>`
    (`numeric:float`), then, with `target`, its target typed `target:<task>` (the held-out
    rows and a registered version's training columns carry it)."""
    fields = [
        (str(item["name"]), f"{item.get('type')}:{item.get('onnx_type')}")
        for item in signature.get("inputs") or []
        if isinstance(item, Mapping) and "name" in item
    ]
    if target and signature.get("target"):
        fields.append((str(signature["target"]), f"target:{signature.get('task')}"))
    return fields


@dataclass(frozen=True)
class Job:
    """A job: its namespace and name (`<model>.train`, `ingest.<dataset>`, ...), what kind of
    job it is (`jobType`: `TASK` for a pipeline step, `JOB` for a batch job or a check), and
    what it does (the `documentation` facet)."""

    namespace: str
    name: str
    job_type: str
    description: str


@dataclass(frozen=True)
class Parent:
    """The run a step belongs to: the Step Functions execution (its ARN)."""

    execution_arn: str

    @property
    def job_name(self) -> str:
        """The state machine's name (`arn:aws:states:<region>:<account>:execution:<machine>:
        <execution>`), or the ARN itself when it has another shape."""
        parts = self.execution_arn.split(":")
        return parts[6] if len(parts) >= 8 and parts[5] == "execution" else self.execution_arn

    @property
    def run_id(self) -> str:
        return run_id_for("execution", self.execution_arn)


@dataclass(frozen=True)
class RunContext:
    """What every event of one run shares."""

    job: Job
    run_id: str
    producer: str
    code_version: str
    bucket: str
    parent: Parent | None = None
    nominal_time: str | None = None
    inputs: Sequence[Dataset] = field(default_factory=tuple)
    """The datasets known at START; COMPLETE may name more."""

    @property
    def dataset_namespace(self) -> str:
        return f"s3://{self.bucket}"


def run_event(
    context: RunContext,
    event_type: EventType,
    *,
    inputs: Iterable[Dataset] | None = None,
    outputs: Iterable[Dataset] = (),
    error: BaseException | None = None,
    at: datetime | None = None,
    nominal: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """One OpenLineage RunEvent of `context`'s run. `inputs` defaults to the context's.
    A FAIL event carries `error` as the `errorMessage` facet (type and message); `nominal`
    (start, end) is the period the run covers, when known only at its end (a drift check's
    window), else the context's nominal start time is used."""
    producer = context.producer
    run_facets: dict[str, Any] = {
        "processing_engine": facet(
            "processing_engine",
            producer,
            name=LINEAGE_ENGINE,
            version=context.code_version,
        ),
    }
    if nominal is not None:
        run_facets["nominalTime"] = facet(
            "nominalTime", producer, nominalStartTime=nominal[0], nominalEndTime=nominal[1]
        )
    elif context.nominal_time is not None:
        run_facets["nominalTime"] = facet(
            "nominalTime", producer, nominalStartTime=context.nominal_time
        )
    if context.parent is not None:
        run_facets["parent"] = facet(
            "parent",
            producer,
            run={"runId": context.parent.run_id},
            job={"namespace": context.job.namespace, "name": context.parent.job_name},
        )
    if error is not None:
        message = f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]
        run_facets["errorMessage"] = facet(
            "errorMessage", producer, message=message, programmingLanguage="PYTHON"
        )
    job_facets = {
        "jobType": facet(
            "jobType",
            producer,
            processingType="BATCH",
            integration="MLOPS_BUNDLE",
            jobType=context.job.job_type,
        ),
        "documentation": facet("documentation", producer, description=context.job.description),
    }
    namespace = context.dataset_namespace
    return {
        "eventType": event_type,
        "eventTime": iso_time(at),
        "producer": producer,
        "schemaURL": RUN_EVENT_SCHEMA_URL,
        "run": {"runId": context.run_id, "facets": run_facets},
        "job": {"namespace": context.job.namespace, "name": context.job.name, "facets": job_facets},
        "inputs": [
            d.to_json(namespace, producer) for d in (context.inputs if inputs is None else inputs)
        ],
        "outputs": [d.to_json(namespace, producer) for d in outputs],
    }


def producer_uri(code_version: str) -> str:
    """The events' `producer`: this bundle at the deployed code version (a URN)."""
    return f"urn:mlops-bundle:code:{code_version or 'unknown'}"


@dataclass(frozen=True)
class RunSpec:
    """What a step's run is before its work: job, kind, inputs known and parent execution."""

    job: str
    job_type: str
    description: str
    inputs: Sequence[Dataset] = ()
    parent: str | None = None
    nominal_time: str | None = None


@dataclass(frozen=True)
class RunEnd:
    """What a finished step read and wrote (`inputs` None: those of its `RunSpec`)."""

    outputs: Sequence[Dataset] = ()
    inputs: Sequence[Dataset] | None = None
    nominal: tuple[str, str] | None = None
    """The period the run covered (start, end), when the step knows it only at its end."""
