"""One registered model version loaded for scoring: its ONNX bytes checked against the
registered sha256 before onnxruntime sees them, its signature, and an onnxruntime session, all
held in one immutable `ServingModel`. The predict API (`functions.predict.model_store`) and
batch scoring load versions through `load_version`, this one path."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import onnxruntime as ort

from functions.adapters.registry.serving_reads import PRODUCTION
from functions.common import formats
from functions.common.errors import ArtifactIntegrityError
from functions.common.layout import SIGNATURE_FILE
from functions.serving.features import FeatureSpec, feature_specs


class Registered(Protocol):
    """A registered version as serving reads it: `ModelRegistry`'s contract `ModelVersion`
    (batch scoring, shadow) or `ServingRegistry`'s plain `RegisteredVersion` (predict)."""

    @property
    def prefix(self) -> str: ...
    @property
    def onnx_key(self) -> str: ...
    @property
    def onnx_sha256(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def data_version(self) -> str: ...
    @property
    def created_at(self) -> str: ...
    @property
    def metrics(self) -> Mapping[str, float]: ...


class VersionReader(Protocol):
    """What `load_version` reads registered versions with (`ModelRegistry`,
    `ServingRegistry`)."""

    def get_version(self, model: str, version: int) -> Registered | None: ...


@dataclass(frozen=True)
class ServingModel:
    """One loaded version: everything a request needs, swapped as a whole."""

    name: str
    version: int
    registered: Registered
    promoted_at: str | None
    signature: Mapping[str, Any]
    specs: tuple[FeatureSpec, ...]
    session: Any
    output_names: tuple[str, ...]
    alias: str = PRODUCTION
    revision: int = 0
    """The alias's revision when loaded; for `candidate`, it names the rollout."""
    size: int = 0
    """Bytes of its ONNX file (what the serving cache charges it)."""

    @property
    def classes(self) -> list[str] | None:
        classes = self.signature.get("classes")
        return list(classes) if classes is not None else None


def onnx_session(onnx: bytes) -> Any:
    return ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])


def single_thread_session(onnx: bytes) -> Any:
    """A session scoring on the calling thread only (one intra-op thread, no pool): what the
    predict function loads, one per model. A per-session thread pool would keep threads per
    loaded model, pay their start at every load, and wake them at every switch of model; a
    request is one small batch on the function's share of a vCPU."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx, sess_options=options, providers=["CPUExecutionProvider"])


def load_version(
    *,
    model_name: str,
    version: int,
    registry: VersionReader,
    fetch_bytes: Callable[[str], bytes],
    fetch_json: Callable[[str], Any],
    session_factory: Callable[[bytes], Any] = onnx_session,
    alias: str = PRODUCTION,
    revision: int = 0,
    promoted_at: str | None = None,
) -> ServingModel:
    """One registered version loaded: its ONNX bytes checked against the registered sha256
    before onnxruntime sees them, its signature and a session. Serving (`ModelStore`) and batch
    scoring load versions through this one path.

    Raises:
        LookupError: the version is not registered.
        ArtifactIntegrityError: the file does not match its checksum; `args[1]` holds the key
            and both digests.
    """
    registered = registry.get_version(model_name, version)
    if registered is None:
        raise LookupError(f"{alias} points at unregistered version {version}")
    onnx = fetch_bytes(registered.onnx_key)
    digest = hashlib.sha256(onnx).hexdigest()
    if digest != registered.onnx_sha256:
        raise ArtifactIntegrityError(
            f"model {model_name!r} version {version}: {registered.onnx_key} has sha256 "
            f"{digest}, registered {registered.onnx_sha256}",
            {
                "key": registered.onnx_key,
                "sha256": digest,
                "expected_sha256": registered.onnx_sha256,
            },
        )
    signature = formats.content(formats.SIGNATURE, fetch_json(registered.prefix + SIGNATURE_FILE))
    return ServingModel(
        name=model_name,
        version=version,
        registered=registered,
        promoted_at=promoted_at,
        signature=signature,
        specs=feature_specs(signature),
        session=session_factory(onnx),
        output_names=tuple(output["name"] for output in signature["onnx_outputs"]),
        alias=alias,
        revision=revision,
        size=len(onnx),
    )
