"""The versions of every stored format: each document and record the bundle writes to the data
bucket or the registry table carries its format's version in one field, `format_version` (a
DynamoDB item: the attribute of that name), set on write by `stamp`; every reader goes through
`read`, which brings a document of any version still in the field to the current shape in
memory and refuses one written by a newer release, naming it.

A document written before formats were versioned has no field: it is version 1, today's shape
without the stamp, so nothing in the field needs rewriting for the stamp. A change to a format
bumps its version: it appends a line to the format's `changes` and, in the same commit, the
upgrade from the previous version (a pure function, document to document) and a fixture of the
new version under `tests/fixtures/formats/<name>/` (a test fails without one). What must be
rewritten in the bucket or the table rather than read as is (a key that moved) is a migration,
not an upgrade.

No third-party imports: the CLI and every function read through this module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

FIELD = "format_version"
"""The one field (or item attribute) that holds a stored document's format version."""

Upgrade = Callable[[dict[str, Any]], dict[str, Any]]


class FormatVersionError(ValueError):
    """A stored document's format version is not one this code reads: written by a newer
    release, or not a version at all."""


@dataclass(frozen=True)
class StoredFormat:
    """One stored format: `changes[i]` says what version i + 1 is (or changed), and
    `upgrades[i]` turns a version i + 1 document into a version i + 2 one."""

    name: str
    stored: str
    """Where documents of this format are stored."""
    changes: tuple[str, ...]
    upgrades: tuple[Upgrade, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.changes or len(self.upgrades) != len(self.changes) - 1:
            raise ValueError(
                f"format {self.name}: {len(self.changes)} versions need "
                f"{len(self.changes) - 1} upgrades, not {len(self.upgrades)}"
            )

    @property
    def current(self) -> int:
        return len(self.changes)


def _unchanged(document: dict[str, Any]) -> dict[str, Any]:
    return document


def _under_model(key: Any, model: Any) -> Any:
    """A batch key of the layout before model folders (`batch/{in,out}/<job>/...`) under
    `model`'s folder, as `mlops migrate` moved it."""
    for prefix in ("batch/in/", "batch/out/"):
        if isinstance(key, str) and isinstance(model, str) and key.startswith(prefix):
            return f"{prefix}{model}/{key.removeprefix(prefix)}"
    return key


def _batch_manifest_2(document: dict[str, Any]) -> dict[str, Any]:
    """Batch manifest 1 -> 2: a version 1 job had one model (`model_name`) and no model
    folder: each failed item names the model, and the keys of the job's files are those under
    the model's folder (`batch/{in,out}/<model>/<job>/`, where `mlops migrate` moves them)."""
    model = document.get("model_name")
    failed = [
        {**item, "model": model, "key": _under_model(item.get("key"), model)}
        if isinstance(item, dict)
        else item
        for item in document.get("failed_items") or []
    ]
    files = [
        {
            **file,
            "key": _under_model(file.get("key"), model),
            "outputs": [_under_model(key, model) for key in file.get("outputs") or []],
            "rejects": [_under_model(key, model) for key in file.get("rejects") or []],
        }
        if isinstance(file, dict)
        else file
        for file in document.get("per_file") or []
    ]
    unreadable = [
        {**entry, "key": _under_model(entry.get("key"), model)}
        if isinstance(entry, dict)
        else entry
        for entry in document.get("unreadable") or []
    ]
    upgraded = {"failed_items": failed, "per_file": files, "unreadable": unreadable}
    return {**document, **{name: value for name, value in upgraded.items() if name in document}}


def _capture_record_2(document: dict[str, Any]) -> dict[str, Any]:
    """Capture record 1 -> 2: a version 1 line (one predicted row: `row`, `features`,
    `prediction`, `probabilities`) as a one-row columnar record of production's traffic."""
    features = document.get("features")
    probabilities = document.get("probabilities")
    return {
        "record": "capture",
        "request_id": document.get("request_id"),
        "timestamp": document.get("timestamp"),
        "model_name": document.get("model_name"),
        "model_version": document.get("model_version"),
        "alias": "production",
        "route": None,
        "rollout": None,
        "first_row": document.get("row", 0),
        "rows": 1,
        "request_rows": None,
        "columns": (
            {name: [value] for name, value in features.items()}
            if isinstance(features, dict)
            else None
        ),
        "predictions": [document.get("prediction")],
        "probabilities": [probabilities] if probabilities is not None else None,
        "classes": None,
        "latency_ms": None,
        "error": None,
    }


def _serving_stats_2(document: dict[str, Any]) -> dict[str, Any]:
    """Serving stats 1 -> 2: the latency and accuracy tests' sums, none for the requests
    counted then."""
    zero = ("latency_count", "log_latency_sum", "log_latency_sq_sum", "labeled", "misses")
    return {**dict.fromkeys(zero, 0), "log_abs_error_sum": 0, "log_abs_error_sq_sum": 0, **document}


def _feedback_record_2(document: dict[str, Any]) -> dict[str, Any]:
    """Feedback record 1 -> 2: what the labeled request was served is not known."""
    return {"served": None, **document}


def _drift_result_2(document: dict[str, Any]) -> dict[str, Any]:
    """Drift result 1 -> 2: no performance was estimated without labels then."""
    versions = [
        {"estimate": None, **version} if isinstance(version, dict) else version
        for version in document.get("versions") or []
    ]
    return {"estimate": None, **document, "versions": versions}


def _rollout_decision_2(document: dict[str, Any]) -> dict[str, Any]:
    """Rollout decision 1 -> 2: decided by fixed rules then, so no test and not expired."""
    return {"tests": [], "expired": False, **document}


def _evaluation_2(document: dict[str, Any]) -> dict[str, Any]:
    """Evaluation 1 -> 2: no insight was measured then."""
    return {"insight": None, **document}


REFERENCE_PROFILE = "reference-profile"
DATASET_MANIFEST = "dataset-manifest"
DATASET_VERSION_ITEM = "dataset-version-item"
QUARANTINE_REASON = "quarantine-reason"
RUN_RECORD = "run-record"
RUN_ITEM = "run-item"
MODEL_VERSION_ITEM = "model-version-item"
VERSION_METADATA = "version-metadata"
ALIAS_HISTORY_ITEM = "alias-history-item"
CAPTURE_RECORD = "capture-record"
FEEDBACK_RECORD = "feedback-record"
DRIFT_RESULT = "drift-result"
BATCH_MANIFEST = "batch-manifest"
MIGRATION_CHECKPOINT = "migration-checkpoint"
MIGRATION_AUDIT = "migration-audit"
EVALUATION = "evaluation"
ERASURE_AUDIT = "erasure-audit"
TRAINING_SET_ITEM = "training-set-item"
VERSION_COUNTER_ITEM = "version-counter-item"
ALIAS_ITEM = "alias-item"
SERVING_STATS_ITEM = "serving-stats-item"
ROLLOUT_DECISION_ITEM = "rollout-decision-item"
DATASET_CONTRACT_ITEM = "dataset-contract-item"
DATASET_CLASSES_ITEM = "dataset-classes-item"
MONITOR_STATE_ITEM = "monitor-state-item"
BATCH_PLAN = "batch-plan"
BATCH_ITEM_RESULT = "batch-item-result"
SIGNATURE = "signature"
BATCH_REJECT = "batch-reject"
LINEAGE_EVENT = "lineage-event"

_FIRST = "the shape written before formats were versioned (no `format_version`: read as 1)"

FORMATS: Mapping[str, StoredFormat] = {
    f.name: f
    for f in (
        StoredFormat(DATASET_MANIFEST, "curated/<dataset>/<data version>/manifest.json", (_FIRST,)),
        StoredFormat(
            DATASET_VERSION_ITEM,
            "registry table: pk DATASET#<dataset>, sk VERSION#<data version>",
            (_FIRST,),
        ),
        StoredFormat(
            QUARANTINE_REASON, "quarantine/reasons/<dataset>/<file>.reason.json", (_FIRST,)
        ),
        StoredFormat(RUN_RECORD, "models/<model>/runs/<run id>/run.json", (_FIRST,)),
        StoredFormat(
            SIGNATURE,
            "models/<model>/runs/<run id>/signature.json (and each version's copy)",
            (_FIRST,),
        ),
        StoredFormat(RUN_ITEM, "registry table: pk RUNS#<model>, sk RUN#<run id>", (_FIRST,)),
        StoredFormat(
            MODEL_VERSION_ITEM, "registry table: pk MODEL#<model>, sk VERSION#<version>", (_FIRST,)
        ),
        StoredFormat(VERSION_METADATA, "models/<model>/<version>/metadata.json", (_FIRST,)),
        StoredFormat(
            ALIAS_HISTORY_ITEM,
            "registry table: pk MODEL#<model>, sk HISTORY#<alias>#<revision>",
            (_FIRST,),
        ),
        StoredFormat(
            CAPTURE_RECORD,
            "capture/dt=<day>/... (JSON lines: the predict function's log lines, through its "
            "log subscription and Firehose)",
            (
                _FIRST + "; one line per predicted row",
                "columnar: one line per request (or per chunk of its rows), the inputs as "
                "`columns`, `predictions` and `probabilities` as arrays, with alias, route, "
                "rollout, scoring latency and error; a version 1 line is read as a one-row "
                "record of production's traffic",
            ),
            (_capture_record_2,),
        ),
        StoredFormat(
            FEEDBACK_RECORD,
            "feedback/dt=<day>/<request>-<row>.json",
            (
                _FIRST,
                "adds `served`: the model, version, alias, rollout and prediction of the "
                "labeled row, from its capture (null when none was found); a version 1 record "
                "reads with `served` null",
            ),
            (_feedback_record_2,),
        ),
        StoredFormat(
            DRIFT_RESULT,
            "reports/drift/<model>/<check>/result.json",
            (
                _FIRST,
                "adds `estimate` (the label-free performance estimate, beside the realized "
                "`performance`) and each version's `estimate`; a version 1 result had none",
            ),
            (_drift_result_2,),
        ),
        StoredFormat(
            BATCH_MANIFEST,
            "batch/out/<model>/<job>/manifest.json",
            (
                _FIRST,
                "a job is a folder of one model (batch/{in,out}/<model>/<job>/): each of "
                "`failed_items` names its `model`, and every file key is under the model's "
                "folder; a version 1 manifest is read with its keys under its `model_name`",
            ),
            (_batch_manifest_2,),
        ),
        StoredFormat(BATCH_PLAN, "batch/out/<model>/<job>/_plan/plan.json", (_FIRST,)),
        StoredFormat(
            BATCH_REJECT,
            "batch/out/<model>/<job>/rejects/<file stem>-<start>-<end>.jsonl (one JSON line "
            "per row)",
            (_FIRST,),
        ),
        StoredFormat(BATCH_ITEM_RESULT, "batch/out/<model>/<job>/_items/<item>.json", (_FIRST,)),
        StoredFormat(
            MIGRATION_CHECKPOINT,
            "migrations/<migration>/checkpoint.json",
            ("how far the last `mlops migrate --apply` run of a migration got",),
        ),
        StoredFormat(
            MIGRATION_AUDIT,
            "migrations/audit/<run id>.json",
            ("what one `mlops migrate --apply` run changed, who ran it, which release",),
        ),
        StoredFormat(
            EVALUATION,
            "models/<model>/runs/<run id>/evaluation.json (and each version's copy)",
            (
                _FIRST,
                "adds `insight` (`candidate` and `champion`: slices, fairness, calibration, "
                "thresholds, `functions.ml.insight`); a version 1 document reads with it null",
            ),
            (_evaluation_2,),
        ),
        StoredFormat(ERASURE_AUDIT, "audit/erasure/<erasure id>.json", (_FIRST,)),
        StoredFormat(
            TRAINING_SET_ITEM,
            "registry table: pk RUNS#<model>, sk TRAINSET#<training set key>",
            (_FIRST,),
        ),
        StoredFormat(
            VERSION_COUNTER_ITEM, "registry table: pk MODEL#<model>, sk COUNTER", (_FIRST,)
        ),
        StoredFormat(ALIAS_ITEM, "registry table: pk MODEL#<model>, sk ALIAS#<alias>", (_FIRST,)),
        StoredFormat(
            SERVING_STATS_ITEM,
            "registry table: pk MODEL#<model>, sk STATS#<rollout>#<alias>#<version>",
            (
                _FIRST,
                "counted from capture objects: adds `latency_count`, `log_latency_sum` and "
                "`log_latency_sq_sum` (the latency test's sums), and from feedback records "
                "`labeled`, `misses`, `log_abs_error_sum` and `log_abs_error_sq_sum` (the "
                "accuracy test's); a version 1 item reads with them at 0 (its requests carry "
                "no log-latency, and no label was counted)",
            ),
            (_serving_stats_2,),
        ),
        StoredFormat(
            ROLLOUT_DECISION_ITEM,
            "registry table: pk MODEL#<model>, sk ROLLOUT#<rollout>",
            (
                _FIRST,
                "decided by a sequential test: adds `tests` (each metric's statistic, "
                "boundaries and sample sizes) and `expired`; a version 1 decision reads with "
                "no tests, not expired",
            ),
            (_rollout_decision_2,),
        ),
        StoredFormat(
            DATASET_CONTRACT_ITEM, "registry table: pk DATASET#<dataset>, sk CONTRACT", (_FIRST,)
        ),
        StoredFormat(
            DATASET_CLASSES_ITEM, "registry table: pk DATASET#<dataset>, sk CLASSES", (_FIRST,)
        ),
        StoredFormat(MONITOR_STATE_ITEM, "registry table: pk MONITOR#<model>, sk STATE", (_FIRST,)),
        StoredFormat(
            LINEAGE_EVENT,
            "lineage/dt=<day>/<job>/<run id>-<event type>.json",
            (
                "an OpenLineage RunEvent (spec 2-0-2, its `schemaURL`) as emitted, stamped with "
                "`format_version`",
            ),
        ),
        StoredFormat(
            REFERENCE_PROFILE,
            "models/<model>/runs/<run id>/reference_profile.json (and each version's copy)",
            (
                "features, target, predictions and a sample of the training rows",
                "adds `importance` (permutation importance, critical features); a version 1 "
                "profile is read as is: the drift check then knows no importance and says so",
                "adds `calibration` (classifiers: isotonic maps of the held-out probabilities "
                "and the held-out metrics); a version 1 or 2 profile is read as is: the drift "
                "check then reports its label-free estimate as unavailable",
            ),
            (_unchanged, _unchanged),
        ),
    )
}
"""Every stored format, by name."""

ITEM_KINDS: Mapping[str, str] = {
    "dataset_version": DATASET_VERSION_ITEM,
    "training_run": RUN_ITEM,
    "model_version": MODEL_VERSION_ITEM,
    "alias_change": ALIAS_HISTORY_ITEM,
    "training_set": TRAINING_SET_ITEM,
    "version_counter": VERSION_COUNTER_ITEM,
    "alias": ALIAS_ITEM,
    "serving_stats": SERVING_STATS_ITEM,
    "rollout_decision": ROLLOUT_DECISION_ITEM,
    "dataset_contract": DATASET_CONTRACT_ITEM,
    "dataset_classes": DATASET_CLASSES_ITEM,
    "monitor": MONITOR_STATE_ITEM,
}
"""The registry table's versioned items, by their `kind` attribute."""


def stored_format(name: str) -> StoredFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"no stored format is named {name!r}") from None


def current(name: str) -> int:
    """The version `name` is written at today."""
    return stored_format(name).current


def version_of(name: str, document: Mapping[str, Any]) -> int:
    """The format version of a stored `name` document: 1 without the field.

    Raises:
        FormatVersionError: the field holds no positive whole number.
    """
    version = document.get(FIELD, 1)
    if type(version) is not int or version < 1:
        raise FormatVersionError(f"{name}: {FIELD} {version!r} is not a version (1, 2, ...)")
    return version


def read(name: str, document: Mapping[str, Any]) -> dict[str, Any]:
    """`document` (a stored `name` at any version this code knows) in the current shape, with
    `format_version` set to the current version; upgraded in memory, never rewritten.

    Raises:
        FormatVersionError: the document was written by a newer release (its version is
            above the current one), or its version is not a version.
    """
    known = stored_format(name)
    version = version_of(name, document)
    if version > known.current:
        raise FormatVersionError(
            f"{name} at {FIELD} {version} was written by a newer release of the bundle; "
            f"this code reads up to version {known.current}: upgrade it before reading"
        )
    upgraded = dict(document)
    for upgrade in known.upgrades[version - 1 :]:
        upgraded = upgrade(upgraded)
    upgraded[FIELD] = known.current
    return upgraded


def content(name: str, document: Mapping[str, Any]) -> dict[str, Any]:
    """`read`, without the version field: for a document embedded in another one or served
    as it is (a model's signature in its metadata and its API descriptions)."""
    current_shape = read(name, document)
    del current_shape[FIELD]
    return current_shape


def stamp(name: str, document: Mapping[str, Any]) -> dict[str, Any]:
    """`document` with `format_version` set to the version `name` is written at today."""
    return {**document, FIELD: current(name)}
