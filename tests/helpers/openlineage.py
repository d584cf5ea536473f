"""Validation of OpenLineage events against the spec's JSON schemas kept in
`tests/data/openlineage/` (Apache-2.0, see its NOTICE), offline: every `$ref` resolves to those
files through a `referencing` registry, never over the network.

An event is valid when it is a RunEvent of the spec and each of its facets (run, job, dataset)
validates against the facet schema its `_schemaURL` names, under the key that schema defines
(`parent` for ParentRunFacet, ...): a facet of an unknown schema is invalid."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

SCHEMAS = Path(__file__).resolve().parents[1] / "data" / "openlineage"
SPEC_ID = "https://openlineage.io/spec/2-0-2/OpenLineage.json"


@cache
def _documents() -> dict[str, dict[str, Any]]:
    files = [SCHEMAS / "OpenLineage.json", *sorted((SCHEMAS / "facets").glob("*.json"))]
    documents = {}
    for path in files:
        document = json.loads(path.read_text(encoding="utf-8"))
        documents[document["$id"]] = document
    return documents


@cache
def _registry() -> Registry[Any]:
    resources = [(uri, Resource.from_contents(doc)) for uri, doc in _documents().items()]
    return Registry().with_resources(resources)


def _validator(ref: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": ref}, registry=_registry(), format_checker=FormatChecker())


def _facets(event: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    """(where, key, facet) of every facet of `event`."""
    for part in ("run", "job"):
        for key, value in (event.get(part, {}).get("facets") or {}).items():
            yield part, key, value
    for side in ("inputs", "outputs"):
        for dataset in event.get(side) or []:
            for key, value in (dataset.get("facets") or {}).items():
                yield f"{side} {dataset.get('name')}", key, value


def problems(event: Mapping[str, Any]) -> list[str]:
    """Every way `event` breaks the spec (empty: valid)."""
    found = [
        f"event: {error.message} at {list(error.absolute_path)}"
        for error in _validator(f"{SPEC_ID}#/$defs/RunEvent").iter_errors(event)
    ]
    documents = _documents()
    for where, key, value in _facets(event):
        url = str(value.get("_schemaURL", "")) if isinstance(value, Mapping) else ""
        document = documents.get(url.split("#", 1)[0])
        if document is None:
            found.append(f"{where} facet {key!r}: no schema of the spec at {url!r}")
            continue
        if key not in document.get("properties", {}):
            found.append(f"{where} facet {key!r}: {url} defines {list(document['properties'])}")
            continue
        found.extend(
            f"{where} facet {key!r}: {error.message}"
            for error in _validator(document["$id"]).iter_errors({key: value})
        )
    return found


def assert_valid(event: Mapping[str, Any]) -> None:
    found = problems(event)
    assert not found, f"invalid OpenLineage event {json.dumps(event)[:300]}: {found}"


def stored_events(s3: Any, bucket: str, job: str | None = None) -> list[dict[str, Any]]:
    """Every event under `lineage/` in `bucket` (of `job` only, when given), each checked
    against the spec and stored at its run's key, without the stored format's version."""
    from functions.common import formats

    events = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="lineage/"):
        for item in page.get("Contents", []):
            if job is not None and f"/{job}/" not in item["Key"]:
                continue
            document = json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
            assert_valid(document)
            event = formats.content(formats.LINEAGE_EVENT, document)
            assert item["Key"].endswith(f"/{event['run']['runId']}-{event['eventType']}.json")
            events.append(event)
    return events
