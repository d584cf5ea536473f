"""CloudWatch metric alarms, created in moto (their state is not evaluated locally)."""

from __future__ import annotations

from typing import Any

from infra.local.resources.base import Created, DeployContext, ResourceSpec, names, unapplied

_ALARM = names(
    "AlarmName AlarmDescription AlarmActions OKActions InsufficientDataActions "
    "MetricName Namespace Statistic Dimensions Period EvaluationPeriods Threshold "
    "ComparisonOperator TreatMissingData DatapointsToAlarm"
)
_PASSED = _ALARM - {"AlarmName"}


def alarm(ctx: DeployContext, spec: ResourceSpec) -> Created:
    p = spec.properties
    name = p.get("AlarmName") or ctx.physical_name(spec, max_length=255)
    request: dict[str, Any] = {"AlarmName": name}
    request.update({key: p[key] for key in _PASSED if key in p})
    for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
        if key in request:
            request[key] = int(request[key])
    if "Threshold" in request:
        request["Threshold"] = float(request["Threshold"])
    ctx.client("cloudwatch").put_metric_alarm(**request)
    notes = unapplied(p, _ALARM)
    notes.append("alarm state is not evaluated locally: actions never fire")
    return Created(
        ref=name, attributes={"Arn": ctx.arn("cloudwatch", f"alarm:{name}")}, notes=notes
    )


def dashboard(ctx: DeployContext, spec: ResourceSpec) -> Created:
    """A dashboard, stored in moto as written (its widgets are not rendered locally)."""
    p = spec.properties
    name = p.get("DashboardName") or ctx.physical_name(spec, max_length=255)
    ctx.client("cloudwatch").put_dashboard(DashboardName=name, DashboardBody=p["DashboardBody"])
    notes = unapplied(p, {"DashboardName", "DashboardBody"})
    return Created(ref=name, attributes={}, notes=notes)
