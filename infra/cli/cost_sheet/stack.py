"""What the cost sheet reads from a synthesized template: the functions with their memory,
ephemeral storage and architecture, the billed-by-the-month resources (keys, alarms and the
metrics they evaluate, dashboards, provisioned concurrency), the schedules, capture's buffering
and retention. Reading the template, not the config, keeps the sheet from drifting from what
is deployed."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SECONDS_PER_MONTH = 2_629_800.0
"""365.25 days / 12, in seconds."""
DAYS_PER_MONTH = SECONDS_PER_MONTH / 86_400

CAPTURE_PREFIX = "capture/"


class TemplateError(ValueError):
    """The template lacks what the sheet needs, or holds a schedule it cannot count."""


@dataclass(frozen=True)
class FunctionFacts:
    logical_id: str
    service: str
    memory_mb: int
    ephemeral_mb: int
    architecture: str


@dataclass(frozen=True)
class StackFacts:
    source: str
    functions: dict[str, FunctionFacts]
    """By service (the function's POWERTOOLS_SERVICE_NAME: predict, ingest, train, ...)."""
    kms_keys: int
    alarms: int
    alarm_metrics: int
    dashboards: int
    provisioned_concurrency: int
    """On the predict function's alias."""
    drift_schedule: str
    retrain_schedule: str | None
    capture_buffer_mb: int
    capture_buffer_seconds: int
    capture_expiration_days: int
    state_machine_types: dict[str, str]

    def function(self, service: str) -> FunctionFacts:
        try:
            return self.functions[service]
        except KeyError:
            known = ", ".join(sorted(self.functions))
            raise TemplateError(f"{self.source}: no {service} function (has: {known})") from None


def read_template(path: Path) -> StackFacts:
    try:
        template = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TemplateError(f"{path}: {exc}") from None
    return stack_facts(template, str(path))


def _input(target: dict[str, Any]) -> dict[str, Any]:
    """The constant input a rule target passes (`{}` when none, or not a JSON object)."""
    try:
        found = json.loads(target.get("Input") or "{}")
    except (TypeError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def stack_facts(template: dict[str, Any], source: str) -> StackFacts:
    resources: dict[str, dict[str, Any]] = template.get("Resources") or {}

    def of_type(kind: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource.get("Properties") or {}
            for logical_id, resource in resources.items()
            if resource.get("Type") == kind
        }

    functions: dict[str, FunctionFacts] = {}
    for logical_id, props in of_type("AWS::Lambda::Function").items():
        service = ((props.get("Environment") or {}).get("Variables") or {}).get(
            "POWERTOOLS_SERVICE_NAME"
        )
        if not service:
            continue  # CDK's own deployment-time helpers (bucket notifications)
        functions[str(service)] = FunctionFacts(
            logical_id=logical_id,
            service=str(service),
            memory_mb=int(props.get("MemorySize", 128)),
            ephemeral_mb=int((props.get("EphemeralStorage") or {}).get("Size", 512)),
            architecture=str((props.get("Architectures") or ["x86_64"])[0]),
        )
    alarms = of_type("AWS::CloudWatch::Alarm")
    alarm_metrics = sum(
        sum(1 for metric in props["Metrics"] if "MetricStat" in metric) if "Metrics" in props else 1
        for props in alarms.values()
    )
    predict = functions.get("predict")
    provisioned = sum(
        int(
            (props.get("ProvisionedConcurrencyConfig") or {}).get(
                "ProvisionedConcurrentExecutions", 0
            )
        )
        for props in of_type("AWS::Lambda::Alias").values()
        if predict is not None and props.get("FunctionName") == {"Ref": predict.logical_id}
    )
    machines = of_type("AWS::StepFunctions::StateMachine")
    drift_schedule = retrain_schedule = None
    checked = 0
    for props in of_type("AWS::Events::Rule").values():
        if "ScheduleExpression" not in props:
            continue
        for target in props.get("Targets") or []:
            arn = target.get("Arn")
            if not isinstance(arn, dict) or arn.get("Ref") not in machines:
                continue
            started = _input(target)
            # The drift checks' schedule (the one checking the most models: `[drift]
            # schedule`), or a retraining cadence.
            if isinstance(started.get("models"), list) and len(started["models"]) > checked:
                drift_schedule, checked = str(props["ScheduleExpression"]), len(started["models"])
            elif "retrain" in started:
                retrain_schedule = str(props["ScheduleExpression"])
    if drift_schedule is None:
        raise TemplateError(f"{source}: no schedule rule starts the drift checks")
    streams = list(of_type("AWS::KinesisFirehose::DeliveryStream").values())
    if len(streams) != 1:
        raise TemplateError(f"{source}: expected one capture delivery stream, found {len(streams)}")
    destination = streams[0].get("ExtendedS3DestinationConfiguration") or {}
    buffering = destination.get("BufferingHints") or {}
    return StackFacts(
        source=source,
        functions=functions,
        kms_keys=len(of_type("AWS::KMS::Key")),
        alarms=len(alarms),
        alarm_metrics=alarm_metrics,
        dashboards=len(of_type("AWS::CloudWatch::Dashboard")),
        provisioned_concurrency=provisioned,
        drift_schedule=drift_schedule,
        retrain_schedule=retrain_schedule,
        capture_buffer_mb=int(buffering.get("SizeInMBs", 5)),
        capture_buffer_seconds=int(buffering.get("IntervalInSeconds", 300)),
        capture_expiration_days=_capture_expiration(of_type("AWS::S3::Bucket"), source),
        state_machine_types={
            logical_id: str(props.get("StateMachineType", "STANDARD"))
            for logical_id, props in machines.items()
        },
    )


def _capture_expiration(buckets: dict[str, dict[str, Any]], source: str) -> int:
    for props in buckets.values():
        for rule in (props.get("LifecycleConfiguration") or {}).get("Rules") or []:
            if rule.get("Prefix") == CAPTURE_PREFIX and "ExpirationInDays" in rule:
                return int(rule["ExpirationInDays"])
    raise TemplateError(f"{source}: no lifecycle rule expires {CAPTURE_PREFIX}")


_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3_600, "day": 86_400}
_CRON_FIELDS = (  # (low, high, names)
    (0, 59, ()),
    (0, 23, ()),
    (1, 31, ()),
    (1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    (1, 7, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)


def runs_per_month(expression: str) -> float:
    """How often an EventBridge schedule fires in an average month: `rate(...)` exactly,
    `cron(...)` by counting its fields (`*`, `?`, lists, ranges, steps, names)."""
    rate = _RATE.match(expression)
    if rate:
        seconds = int(rate.group(1)) * _UNIT_SECONDS[rate.group(2).rstrip("s")]
        return SECONDS_PER_MONTH / seconds
    if expression.startswith("cron(") and expression.endswith(")"):
        fields = expression[5:-1].split()
        if len(fields) != 6:
            raise TemplateError(f"schedule {expression!r}: a cron needs six fields")
        minute, hour, dom, month, dow = (
            _count(field, *spec, expression)
            for field, spec in zip(fields[:5], _CRON_FIELDS, strict=True)
        )
        if fields[2] not in ("*", "?"):
            days = float(dom)
        elif fields[4] not in ("*", "?"):
            days = dow * DAYS_PER_MONTH / 7
        else:
            days = DAYS_PER_MONTH
        return minute * hour * days * month / 12
    raise TemplateError(f"schedule {expression!r} is neither rate(...) nor cron(...)")


def _count(field: str, low: int, high: int, names: tuple[str, ...], expression: str) -> int:
    if field in ("*", "?"):
        return high - low + 1
    values: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() else 1
        if span == "*":
            start, end = low, high
        else:
            first, _, last = span.partition("-")
            start = _number(first, names, low, expression)
            end = _number(last, names, low, expression) if last else (high if step_text else start)
        values.update(range(start, end + 1, step))
    return len(values)


def _number(text: str, names: tuple[str, ...], low: int, expression: str) -> int:
    if text.isdigit():
        return int(text)
    if text.upper() in names:
        return names.index(text.upper()) + low
    raise TemplateError(f"schedule {expression!r}: cannot count {text!r} (L, W and # are not)")
