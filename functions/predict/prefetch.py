"""The default model's registry and bucket reads of init, started before numpy and onnxruntime
are imported, so that their waits on DynamoDB and S3 overlap those imports.

`start()` (called by the handler module before it imports the rest of the function, in Lambda's
init only) runs, on one thread, the reads the default model's store makes when init loads it:
alias `production`, that version's item, its ONNX file and its signature. Each answer (or the
error raised) is kept once. While init loads the model, `answer(key, read)` hands the kept
answer of `key` out instead of reading again (an error kept is raised there, so the store logs
and counts it as if it had been raised by its own read), or reads when nothing is kept;
`discard()` ends init: from then on every read goes to AWS. The store therefore resolves and
checks the same items and bytes through the same code; they were read up to the length of the
imports earlier (its alias TTL counts from its own check). Nothing here imports numpy or
onnxruntime.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from functions.adapters.registry.serving_reads import (
    PRODUCTION,
    AliasPointer,
    RegisteredVersion,
    ServingRegistry,
)
from functions.adapters.storage import ObjectStore
from functions.common.config.serving_view import serving_view
from functions.common.layout import SIGNATURE_FILE

T = TypeVar("T")

_answers: dict[Hashable, tuple[bool, Any]] = {}
_lock = threading.Lock()
_thread: threading.Thread | None = None


def alias_key(model: str, alias: str) -> Hashable:
    return ("alias", model, alias)


def version_key(model: str, version: int) -> Hashable:
    return ("version", model, version)


def object_key(kind: str, key: str) -> Hashable:
    return (kind, key)


def _keep(key: Hashable, read: Callable[[], T]) -> T:
    try:
        value = read()
    except Exception as error:
        with _lock:
            _answers[key] = (False, error)
        raise
    with _lock:
        _answers[key] = (True, value)
    return value


def _read_default_model(table: str, bucket: str) -> None:
    try:
        model = serving_view().default_model
        registry, objects = ServingRegistry(table), ObjectStore()
        state = _keep(alias_key(model, PRODUCTION), lambda: registry.get_alias(model, PRODUCTION))
        if state is None:
            return
        version = _keep(
            version_key(model, state.version), lambda: registry.get_version(model, state.version)
        )
        if version is None:
            return
        _keep(
            object_key("bytes", version.onnx_key),
            lambda: objects.get_bytes(bucket, version.onnx_key),
        )
        signature = version.prefix + SIGNATURE_FILE
        _keep(object_key("json", signature), lambda: objects.get_json(bucket, signature))
    except Exception:  # kept for the store's own read, which raises and logs it
        return


def start(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Start the reads when this is Lambda's init of a deployed function (the environment the
    handler's `_initialise` loads the model in); returns whether they started."""
    global _thread
    table, bucket = environ.get("REGISTRY_TABLE"), environ.get("DATA_BUCKET")
    if not environ.get("AWS_LAMBDA_FUNCTION_NAME") or not bucket or not table or _thread:
        return False
    _thread = threading.Thread(
        target=_read_default_model, args=(table, bucket), name="init-prefetch", daemon=True
    )
    _thread.start()
    return True


class PrefetchedRegistry(ServingRegistry):
    """`ServingRegistry` whose alias and version reads take the kept answers first."""

    def get_alias(self, model: str, alias: str = PRODUCTION) -> AliasPointer | None:
        read = super().get_alias
        return answer(alias_key(model, alias), lambda: read(model, alias))

    def get_version(self, model: str, version: int) -> RegisteredVersion | None:
        read = super().get_version
        return answer(version_key(model, version), lambda: read(model, version))


def answer(key: Hashable, read: Callable[[], T]) -> T:
    """The kept answer of `key` (waiting for the reads to end), handed out once, else `read()`."""
    thread = _thread
    if thread is not None:
        thread.join()
    with _lock:
        kept = _answers.pop(key, None)
    if kept is None:
        return read()
    ok, value = kept
    if ok:
        return value  # type: ignore[no-any-return]
    raise value


def discard() -> None:
    """End of init: what was not handed out is dropped, and reads go to AWS from now on."""
    global _thread
    thread = _thread
    if thread is not None:
        thread.join()
    with _lock:
        _answers.clear()
        _thread = None
