"""One drift check: the capture written since the previous check (or the configured window)
against the reference profile of the model version that served it, live performance from
labelled feedback, a classifier's label-free performance estimate from the captured
probabilities (beside the realized performance once labels arrive), a report under
`reports/drift/<model>/<check_id>/`, metrics, and, when the data drifted, performance dropped or
the estimate dropped, a `DriftDetected` event that may start retraining.

Order of effects (each check is safe to rerun): the retraining is claimed (cooldown, one
conditional write) and labelled feedback dropped as training rows; then the result and the
HTML report are written; then `DriftDetected` is published; last the monitor state moves the
next window's start. A failure before the last step leaves the window to the next check.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import single_metric
from aws_lambda_powertools.metrics import MetricUnit

from functions.adapters.bucket_window import (
    BucketWindow,
    SkippedLines,
    StoredObject,
    capture_records,
)
from functions.adapters.events import publish_event
from functions.adapters.registry.model_registry import ModelRegistry
from functions.adapters.storage import ObjectStore
from functions.common import formats
from functions.common.config.loading import MlopsConfig
from functions.common.errors import EventPublishError, ObjectNotFoundError
from functions.common.events import DRIFT_DETECTED, MONITOR_SOURCE, retrain_input
from functions.common.layout import (
    REFERENCE_PROFILE_FILE,
    REPORT_FILE,
    RESULT_FILE,
    drift_check_prefix,
    feedback_drop_key,
)
from functions.common.observability import logger, metrics
from functions.common.records import CaptureRecord, record_rows
from functions.ml.drift.engine import DriftAccumulator
from functions.ml.drift.estimate import (
    NO_CALIBRATION,
    EstimateAccumulator,
    PerformanceEstimate,
    unavailable,
)
from functions.ml.drift.performance import live_performance
from functions.ml.drift.report import DriftThresholds
from functions.monitor.sources import Feedback, feedback_rows
from functions.monitor.state import MonitorState, MonitorStore, iso

CHUNK_ROWS = 50_000
METRIC_SERVICE = "monitor"


def new_check_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


@dataclass
class MonitorService:
    """One model's check: `config` is that model's view (`MlopsConfig.for_model`), so its
    drift settings, dataset, reports, state (`MONITOR#<model>`) and registry partition are its
    own. `unnamed_capture`: capture lines without `model_name` (written before lines named
    their model) count as this model's, true for the default model only."""

    config: MlopsConfig
    bucket: str
    objects: ObjectStore
    models: ModelRegistry
    state: MonitorStore
    unnamed_capture: bool = True

    @classmethod
    def create(
        cls, config: MlopsConfig, bucket: str, table_name: str, model: str | None = None
    ) -> MonitorService:
        """The check of `model` (default: the config's default model)."""
        view = config.for_model(model)
        models = ModelRegistry(table_name)
        return cls(
            config=view,
            bucket=bucket,
            objects=ObjectStore(),
            models=models,
            state=MonitorStore(models, view.model_name),
            unnamed_capture=view.model_name == config.default_model,
        )

    def owns(self, record: Mapping[str, Any]) -> bool:
        """Whether a capture record is of this model's traffic."""
        name = record.get("model_name")
        return name == self.config.model_name or (name is None and self.unnamed_capture)


@dataclass
class _VersionWindow:
    """The rows one model version served in the window, accumulated in chunks."""

    version: int
    accumulator: DriftAccumulator | None
    note: str | None = None
    rows: int = 0
    buffer: dict[str, list[Any]] = field(default_factory=dict)
    predictions: list[Any] = field(default_factory=list)
    estimator: EstimateAccumulator | None = None
    no_estimate: str | None = None
    """Why the version's performance cannot be estimated (when `estimator` is None)."""
    scored: list[Any] = field(default_factory=list)
    probabilities: list[list[float]] = field(default_factory=list)
    classes: tuple[str, ...] | None = None

    def add(self, record: CaptureRecord) -> None:
        """A capture record's rows, read as columns (an error record has none)."""
        rows = record["rows"]
        if not rows:
            return
        self.rows += rows
        self._add_scores(record)
        if self.accumulator is None:
            return
        columns = record["columns"]
        for name, buffered in self.buffer.items():
            values = columns.get(name)
            buffered.extend(values if values is not None else [None] * rows)
        self.predictions.extend(record["predictions"])
        if len(self.predictions) >= CHUNK_ROWS:
            self.flush()

    def _add_scores(self, record: CaptureRecord) -> None:
        """The record's predictions and probabilities for the estimate, buffered while the
        records name the same classes."""
        if self.estimator is None:
            return
        probabilities = record.get("probabilities")
        if probabilities is None:
            self.estimator.add(record["predictions"], None)
            return
        classes = record.get("classes")
        key = tuple(str(c) for c in classes) if classes is not None else None
        if key != self.classes or len(self.scored) >= CHUNK_ROWS:
            self._flush_scores()
            self.classes = key
        self.scored.extend(record["predictions"])
        self.probabilities.extend(probabilities)

    def _flush_scores(self) -> None:
        if self.estimator is not None and self.scored:
            self.estimator.add(self.scored, self.probabilities, self.classes)
        self.scored, self.probabilities = [], []

    def flush(self) -> None:
        self._flush_scores()
        if self.accumulator is not None and self.predictions:
            self.accumulator.add(self.buffer, self.predictions)
            self.buffer = {name: [] for name in self.buffer}
            self.predictions = []

    def estimate(self, tolerance: float | None, min_rows: int) -> PerformanceEstimate:
        """The version's label-free performance estimate over the window."""
        if self.estimator is None:
            return unavailable(self.no_estimate or NO_CALIBRATION, self.rows)
        return self.estimator.result(tolerance=tolerance, min_rows=min_rows)


@dataclass
class _Joined:
    """A feedback row joined to the capture record of the prediction it labels."""

    feedback: Feedback
    version: int | None = None
    prediction: Any = None
    features: dict[str, Any] | None = None


def run_check(
    svc: MonitorService, *, window_hours: int | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Run one check now; returns the result document (also written to S3)."""
    cfg, drift = svc.config, svc.config.drift
    now = now or datetime.now(UTC)
    check_id = new_check_id(now)
    previous = svc.state.load()
    # S3 lists LastModified to the second: the window ends one whole second before now, so an
    # object listed at or before `end` was written before the check began, and an object
    # written during this second falls in the next window (none is read twice or missed).
    end = now.replace(microsecond=0) - timedelta(seconds=1)
    start = _window_start(previous, end, window_hours or drift.window_hours, drift.max_window_hours)
    window = BucketWindow(svc.objects, svc.bucket)
    skipped = SkippedLines({})

    feedback_objects = window.feedback_objects(start, end)
    joined = {
        (f.request_id, f.row): _Joined(f) for f in feedback_rows(window, feedback_objects, skipped)
    }
    capture_objects = window.capture_objects(start, end)
    versions = _scan(svc, window, capture_objects, joined, skipped)
    unmatched = [j for j in joined.values() if j.version is None]
    if unmatched and drift.feedback_lookback_hours:
        older = window.capture_objects(
            start - timedelta(hours=drift.feedback_lookback_hours), start
        )
        _join_only(svc, window, older, joined, skipped)

    version_results = [
        _version_result(svc, group) for group in sorted(versions.values(), key=lambda v: -v.rows)
    ]
    performance = _performance(svc, joined.values())
    estimate = _estimate(version_results, performance)
    verdict = _verdict(version_results)
    keys = {
        "result_key": drift_check_prefix(cfg.model_name, check_id) + RESULT_FILE,
        "report_key": drift_check_prefix(cfg.model_name, check_id) + REPORT_FILE,
    }
    result: dict[str, Any] = {
        "check_id": check_id,
        "model_name": cfg.model_name,
        "checked_at": iso(now),
        "window": {
            "start": iso(start),
            "end": iso(end),
            "objects": len(capture_objects),
            "rows": sum(v.rows for v in versions.values()),
            "feedback_objects": len(feedback_objects),
            "feedback_rows": len(joined),
            "skipped": skipped.counts,
        },
        "verdict": verdict,
        "versions": version_results,
        "performance": performance,
        "estimate": estimate,
        **keys,
    }
    triggers = _triggers(result)
    result["retrain"] = _retrain(svc, check_id, now, previous, triggers, joined.values())
    _write_reports(svc, result)
    if triggers:
        _publish(svc, result, triggers, previous)
    svc.state.record_check(check_id, end)
    _emit_metrics(result)
    logger.info(
        "Drift check done",
        extra={
            "check_id": check_id,
            "verdict": verdict,
            "rows": result["window"]["rows"],
            "performance": (performance or {}).get("verdict"),
            "estimate": (estimate or {}).get("verdict"),
            "retrain": result["retrain"],
        },
    )
    return result


def summary(result: Mapping[str, Any]) -> dict[str, Any]:
    """What an invocation returns (the CLI prints it)."""
    first = result["versions"][0]["report"] if result["versions"] else None
    return {
        "model": result["model_name"],
        "check_id": result["check_id"],
        "verdict": result["verdict"],
        "rows": result["window"]["rows"],
        "drifted": list(first["drifted"]) if first else [],
        "data_quality": list(first.get("data_quality") or []) if first else [],
        "decision": first.get("decision") if first else None,
        "result_key": result["result_key"],
        "report_key": result["report_key"],
        "retrain": result["retrain"],
        "performance_verdict": (result["performance"] or {}).get("verdict"),
        "performance": result["performance"],
        "estimate": result.get("estimate"),
    }


def _window_start(
    previous: MonitorState, now: datetime, window_hours: int | None, max_hours: int
) -> datetime:
    earliest = now - timedelta(hours=max_hours)
    if window_hours:
        return max(now - timedelta(hours=window_hours), earliest)
    if previous.last_check_end is None:
        return earliest
    return min(max(previous.last_check_end, earliest), now)


def _scan(
    svc: MonitorService,
    window: BucketWindow,
    objects: list[StoredObject],
    joined: dict[tuple[str, int], _Joined],
    skipped: SkippedLines,
) -> dict[int, _VersionWindow]:
    versions: dict[int, _VersionWindow] = {}
    for record in capture_records(window, objects, skipped):
        if not svc.owns(record):
            skipped.add("capture record of another model")
            continue
        version = record["model_version"]
        group = versions.get(version)
        if group is None:
            group = versions[version] = _open_version(svc, version)
        group.add(record)
        _join(record, joined)
    for group in versions.values():
        group.flush()
    return versions


def _join_only(
    svc: MonitorService,
    window: BucketWindow,
    objects: list[StoredObject],
    joined: dict[tuple[str, int], _Joined],
    skipped: SkippedLines,
) -> None:
    for record in capture_records(window, objects, skipped):
        if svc.owns(record):
            _join(record, joined)


def _join(record: CaptureRecord, joined: dict[tuple[str, int], _Joined]) -> None:
    request_id = str(record.get("request_id"))
    first = record["first_row"]
    if not joined or not any(
        (request_id, row) in joined for row in range(first, first + record["rows"])
    ):
        return
    for row, features, prediction in record_rows(record):
        match = joined.get((request_id, row))
        if match is not None:
            match.version = record["model_version"]
            match.prediction = prediction
            match.features = features


def _open_version(svc: MonitorService, version: int) -> _VersionWindow:
    """The window of one served version, against that version's reference profile (and its
    calibration, for the label-free estimate)."""
    registered = svc.models.get_version(svc.config.model_name, version)
    if registered is None:
        return _VersionWindow(version, None, f"version {version} is not in the registry")
    try:
        profile = formats.read(
            formats.REFERENCE_PROFILE,
            svc.objects.get_json(svc.bucket, registered.prefix + REFERENCE_PROFILE_FILE),
        )
    except ObjectNotFoundError:
        return _VersionWindow(version, None, f"version {version} has no reference profile")
    accumulator = DriftAccumulator(
        profile,
        thresholds=DriftThresholds.from_config(svc.config.drift),
        sensitive=svc.config.dataset.sensitive,
    )
    group = _VersionWindow(version, accumulator)
    group.buffer = {name: [] for name in profile["features"]}
    if profile.get("task") != "classification":
        group.no_estimate = "regression: no label-free estimate (it needs class probabilities)"
    elif profile.get("calibration"):
        group.estimator = EstimateAccumulator(profile["calibration"])
    return group


def _version_result(svc: MonitorService, group: _VersionWindow) -> dict[str, Any]:
    report = group.accumulator.report().to_dict() if group.accumulator is not None else None
    drift = svc.config.drift
    estimate = group.estimate(drift.estimate_tolerance, drift.min_rows).to_dict()
    if group.accumulator is None and group.note:
        estimate = unavailable(group.note, group.rows).to_dict()
    return {
        "model_version": group.version,
        "rows": group.rows,
        "report": report,
        "estimate": estimate,
        "note": group.note,
    }


def _estimate(
    versions: list[dict[str, Any]], performance: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The label-free estimate of the version that served the most rows, with the realized
    metrics beside it (`realized`, `errors`: estimate minus realized) when the feedback's
    live performance is of the same version."""
    if not versions:
        return None
    first = versions[0]
    estimate = {**first["estimate"], "model_version": first["model_version"]}
    estimate["realized"], estimate["errors"] = None, {}
    if (
        performance
        and performance.get("model_version") == first["model_version"]
        and performance.get("metrics")
    ):
        realized = performance["metrics"]
        estimate["realized"] = {"rows": performance["rows"], "metrics": realized}
        estimate["errors"] = {
            name: value - realized[name]
            for name, value in estimate["metrics"].items()
            if name in realized
        }
    return estimate


def _verdict(versions: list[dict[str, Any]]) -> str:
    verdicts = [v["report"]["verdict"] for v in versions if v["report"] is not None]
    if "drift" in verdicts:
        return "drift"
    return "no_drift" if "no_drift" in verdicts else "insufficient_data"


def _performance(svc: MonitorService, joined: Iterable[_Joined]) -> dict[str, Any] | None:
    """Live metrics of the version with the most labelled predictions, against its own
    evaluation metrics."""
    by_version: dict[int, list[_Joined]] = {}
    unlabelled = 0
    for item in joined:
        if item.version is None:
            unlabelled += 1
        else:
            by_version.setdefault(item.version, []).append(item)
    if not by_version:
        return None
    version, rows = max(by_version.items(), key=lambda pair: len(pair[1]))
    registered = svc.models.get_version(svc.config.model_name, version)
    performance = live_performance(
        svc.config.dataset.task.value,
        [item.feedback.label for item in rows],
        [item.prediction for item in rows],
        reference_metrics=registered.metrics if registered is not None else {},
        tolerance=svc.config.drift.performance_tolerance,
        min_rows=svc.config.drift.min_feedback_rows,
    ).to_dict()
    performance["model_version"] = version
    performance["unmatched_feedback"] = unlabelled
    return performance


def _triggers(result: Mapping[str, Any]) -> list[str]:
    triggers = []
    if result["verdict"] == "drift":
        drifted = sorted(
            {
                name
                for v in result["versions"]
                if v["report"]
                for name in [*v["report"]["drifted"], *(v["report"].get("data_quality") or [])]
            }
        )
        triggers.append(f"data drift in {', '.join(drifted)}")
    performance = result["performance"]
    if performance and performance.get("verdict") == "drop":
        triggers.append(f"live performance dropped ({', '.join(performance['dropped'])})")
    estimate = result.get("estimate")
    if estimate and estimate.get("verdict") == "drop":
        triggers.append(
            f"estimated performance dropped without labels ({', '.join(estimate['dropped'])})"
        )
    return triggers


def _retrain(
    svc: MonitorService,
    check_id: str,
    now: datetime,
    previous: MonitorState,
    triggers: list[str],
    joined: Iterable[_Joined],
) -> dict[str, Any]:
    drift, dataset = svc.config.drift, svc.config.dataset
    decision: dict[str, Any] = {
        "requested": False,
        "reason": "; ".join(triggers) or None,
        "skipped": None,
        "via": None,
        "feedback_rows": 0,
        "feedback_key": None,
        "execution": None,
    }
    if not triggers:
        return decision
    if not drift.auto_retrain:
        decision["skipped"] = "auto_retrain is off"
        return decision
    cooldown = timedelta(hours=drift.cooldown_hours)
    if not svc.state.claim_retrain(check_id, now, cooldown):
        until = (previous.last_retrain_at or now) + cooldown
        decision["skipped"] = (
            f"cooldown: the last retraining was started at "
            f"{iso(previous.last_retrain_at or now)}; next possible after {iso(until)}"
        )
        return decision
    decision["requested"] = True
    decision["via"] = "pipeline"
    rows = _training_rows(svc, joined) if drift.retrain_with_feedback else []
    if rows and dataset.sensitive:
        # Captured features hold hashes or nothing of these columns, and a drop without a
        # contract column is quarantined: the rows would not retrain anything.
        decision["note"] = (
            f"{len(rows)} labelled row(s) not used: capture holds no raw value of the "
            f"sensitive column(s) {', '.join(sorted(dataset.sensitive))}; retraining on the "
            "curated data only"
        )
        rows = []
    decision["feedback_rows"] = len(rows)
    if len(rows) >= dataset.min_rows:
        # The labelled rows become a drop: ingested, validated and versioned like any data,
        # and the drop starts the pipeline (append mode trains on it with the curated data).
        key = feedback_drop_key(dataset.name, check_id)
        body = b"".join(json.dumps(row, default=str).encode() + b"\n" for row in rows)
        svc.objects.put_bytes(svc.bucket, key, body, content_type="application/x-ndjson")
        decision.update(via="feedback_drop", feedback_key=key)
    elif rows:
        decision["note"] = (
            f"{len(rows)} labelled row(s) < dataset.min_rows {dataset.min_rows}: "
            "retraining on the curated data only"
        )
    return decision


def _training_rows(svc: MonitorService, joined: Iterable[_Joined]) -> list[dict[str, Any]]:
    target, sensitive = svc.config.dataset.target, svc.config.dataset.sensitive
    rows = []
    for item in joined:
        features = item.features or item.feedback.features
        if features:
            kept = {k: v for k, v in features.items() if k != target and k not in sensitive}
            rows.append({**kept, target: item.feedback.label})
    return rows


def _write_reports(svc: MonitorService, result: dict[str, Any]) -> None:
    from functions.monitor.report import render_html

    svc.objects.put_json(
        svc.bucket, result["result_key"], formats.stamp(formats.DRIFT_RESULT, result)
    )
    svc.objects.put_bytes(
        svc.bucket,
        result["report_key"],
        render_html(result).encode(),
        content_type="text/html; charset=utf-8",
    )


def _publish(
    svc: MonitorService, result: dict[str, Any], triggers: list[str], previous: MonitorState
) -> None:
    retrain = result["retrain"]
    detail = {
        "model": result["model_name"],
        "check_id": result["check_id"],
        "verdict": result["verdict"],
        "drifted": summary(result)["drifted"],
        "performance": (result["performance"] or {}).get("verdict"),
        "estimate": (result.get("estimate") or {}).get("verdict"),
        "reason": "; ".join(triggers),
        "report_key": result["report_key"],
        "result_key": result["result_key"],
        "retrain": retrain,
        "pipeline_input": retrain_input(
            result["model_name"], f"drift check {result['check_id']}: {'; '.join(triggers)}"
        ),
    }
    try:
        publish_event(DRIFT_DETECTED, detail, MONITOR_SOURCE)
    except EventPublishError:
        if retrain["via"] == "pipeline":
            svc.state.release_retrain(result["check_id"], previous)
        raise


def _emit_metrics(result: Mapping[str, Any]) -> None:
    """The check's metrics, each with the `model` dimension (beside Powertools' `service`)."""
    model = result["model_name"]
    metrics.add_dimension(name="model", value=model)
    window = result["window"]
    metrics.add_metric(name="DriftCheckRows", unit=MetricUnit.Count, value=window["rows"])
    if result["verdict"] != "insufficient_data":
        metrics.add_metric(
            name="DatasetDrift", unit=MetricUnit.Count, value=int(result["verdict"] == "drift")
        )
    if result["versions"] and result["versions"][0]["report"]:
        report = result["versions"][0]["report"]
        metrics.add_metric(
            name="DriftedFeatureShare", unit=MetricUnit.Percent, value=100 * report["drifted_share"]
        )
        for name, feature in report["features"].items():
            score = feature.get("score")
            if score is None:
                continue
            with single_metric(
                name="FeatureDriftScore",
                unit=MetricUnit.NoUnit,
                value=float(score),
                default_dimensions={"service": METRIC_SERVICE, "model": model, "feature": name},
            ):
                pass
    performance = result["performance"]
    if performance and performance.get("verdict") != "insufficient_data":
        _performance_metrics("Live", "PerformanceDrop", performance)
    estimate = result.get("estimate")
    if estimate and estimate.get("verdict") in ("ok", "drop"):
        _performance_metrics("Estimated", "EstimatedPerformanceDrop", estimate)
    if result["retrain"]["requested"]:
        metrics.add_metric(name="RetrainsRequested", unit=MetricUnit.Count, value=1)


def _performance_metrics(prefix: str, drop: str, measured: Mapping[str, Any]) -> None:
    """Each of `measured`'s metrics as `<prefix><Metric>` (accuracy: `LiveAccuracy`) and
    whether it dropped as `drop` (0 or 1)."""
    for name, value in measured["metrics"].items():
        metrics.add_metric(
            name=f"{prefix}{''.join(p.capitalize() for p in name.split('_'))}",
            unit=MetricUnit.NoUnit,
            value=float(value),
        )
    metrics.add_metric(name=drop, unit=MetricUnit.Count, value=int(measured["verdict"] == "drop"))
