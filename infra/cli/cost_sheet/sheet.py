"""The cost sheet: what a stack costs idle per month, per million predictions, per retraining,
per drift check, and a month at given volumes.

Every figure is a sum of lines; every line is a formula over named inputs, evaluated as
written (`infra.cli.cost_sheet.formula`), and every input says where it comes from: the synthesized
template, the config, a measured figure (`bench/cost_inputs.json`, `make bench`), the price
file (`infra/cli/cost_sheet/prices.toml`), an option, or a constant of AWS's billing rules
(the parts: `infra.cli.cost_sheet.parts`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from functions.common.config.loading import MlopsConfig
from infra.cli.cost_sheet.parts import (
    Figure,
    Inputs,
    Line,
    Measured,
    Sheet,
    shown,
)
from infra.cli.cost_sheet.prices import PriceList
from infra.cli.cost_sheet.stack import DAYS_PER_MONTH, SECONDS_PER_MONTH, StackFacts, runs_per_month

PIPELINE_FUNCTIONS = ("ingest", "train", "evaluate", "register")


def build_sheet(
    *,
    stack: str,
    stage: str,
    facts: StackFacts,
    config: MlopsConfig,
    prices: PriceList,
    measured: Measured,
    predictions_per_month: float,
    retrains_per_month: float | None = None,
) -> Sheet:
    """The sheet of `stack` (template `facts`, the stage's merged `config`) at the given monthly
    volumes; retrainings default to the template's retrain schedule, else one a month."""
    inputs = Inputs(prices, measured)
    add, price, measure = inputs.add, inputs.price, inputs.measure
    for name in prices.prices:
        price(name)
    add("gib", 1024**3, "bytes", "constant", "bytes in a GB as AWS bills storage and transfer")
    add("seconds_per_month", SECONDS_PER_MONTH, "s", "constant", "365.25 days / 12")
    add("hours_per_month", SECONDS_PER_MONTH / 3600, "h", "constant", "365.25 days / 12")
    add("days_per_month", DAYS_PER_MONTH, "days", "constant", "365.25 / 12")
    add(
        "firehose_record_bytes",
        5 * 1024,
        "bytes",
        "constant",
        "Firehose bills each record rounded up to 5 KB",
    )
    add(
        "log_event_bytes",
        26,
        "bytes",
        "constant",
        "CloudWatch Logs bills each event's message plus 26 bytes",
    )
    add(
        "lambda_included_ephemeral_mb",
        512,
        "MB",
        "constant",
        "Lambda's ephemeral storage included in the price",
    )
    add(
        "xray_reservoir_per_second",
        1,
        "traces/s",
        "constant",
        "X-Ray's default sampling rule: the first request each second",
    )
    add(
        "xray_sampled_share",
        0.05,
        "share",
        "constant",
        "X-Ray's default sampling rule: 5% of the other requests",
    )
    add(
        "dynamodb_units_per_request",
        1,
        "units",
        "constant",
        "one request unit per item up to 1 KB written or 4 KB read",
    )

    for service in ("predict", "monitor", *PIPELINE_FUNCTIONS):
        if service not in facts.functions:
            continue
        function = facts.functions[service]
        where = function.logical_id
        add(f"{service}_memory_mb", function.memory_mb, "MB", "template", f"{where} MemorySize")
        add(
            f"{service}_ephemeral_mb",
            function.ephemeral_mb,
            "MB",
            "template",
            f"{where} EphemeralStorage",
        )
    add("kms_keys", facts.kms_keys, "keys", "template", "AWS::KMS::Key resources")
    add(
        "alarm_metrics",
        facts.alarm_metrics,
        "metrics",
        "template",
        f"metrics of the {facts.alarms} AWS::CloudWatch::Alarm resources",
    )
    add(
        "dashboards",
        facts.dashboards,
        "dashboards",
        "template",
        "AWS::CloudWatch::Dashboard resources",
    )
    add(
        "provisioned_concurrency",
        facts.provisioned_concurrency,
        "environments",
        "template",
        "predict alias ProvisionedConcurrencyConfig",
    )
    add(
        "drift_checks_per_month",
        runs_per_month(facts.drift_schedule),
        "checks",
        "template",
        f"drift schedule {facts.drift_schedule}",
    )
    add(
        "capture_buffer_mb",
        facts.capture_buffer_mb,
        "MB",
        "template",
        "capture stream BufferingHints.SizeInMBs",
    )
    add(
        "capture_buffer_seconds",
        facts.capture_buffer_seconds,
        "s",
        "template",
        "capture stream BufferingHints.IntervalInSeconds",
    )
    add(
        "capture_expiration_days",
        facts.capture_expiration_days,
        "days",
        "template",
        "lifecycle rule expiring capture/",
    )
    add(
        "capture_sample_rate",
        config.serving.capture_sample_rate,
        "share",
        "config",
        "serving.capture_sample_rate",
    )
    add(
        "alias_ttl_seconds",
        config.serving.alias_ttl_seconds,
        "s",
        "config",
        "serving.alias_ttl_seconds",
    )
    add(
        "access_log_bytes_per_request",
        ACCESS_LOG_BYTES,
        "bytes",
        "constant",
        "API access log line (the stage's format with typical values)",
    )

    if retrains_per_month is None:
        if facts.retrain_schedule:
            retrains_per_month = runs_per_month(facts.retrain_schedule)
            add(
                "retrains_per_month",
                retrains_per_month,
                "runs",
                "template",
                f"retrain schedule {facts.retrain_schedule}",
            )
        else:
            add("retrains_per_month", 1, "runs", "option", "--retrains-per-month (default 1)")
    else:
        add("retrains_per_month", retrains_per_month, "runs", "option", "--retrains-per-month")
    add(
        "predictions_per_month",
        predictions_per_month,
        "predictions",
        "option",
        "--predictions-per-month",
    )
    add("predictions", 1_000_000, "predictions", "constant", "one million one-row requests")
    for name in (
        "predict_single_row_ms", "predict_log_bytes_per_request", "predict_custom_metrics",
        "capture_bytes_per_row", "retrain_invocations", "retrain_state_transitions",
        "retrain_s3_put_requests", "retrain_s3_get_requests", "retrain_dynamodb_write_requests",
        "retrain_dynamodb_read_requests", "retrain_events_published", "retrain_log_bytes",
        "retrain_custom_metrics", "stored_bytes", "registry_bytes", "drift_check_ms",
        "drift_s3_get_requests", "drift_s3_put_requests", "drift_capture_objects",
        "drift_dynamodb_read_requests", "drift_dynamodb_write_requests",
        "drift_events_published", "drift_log_bytes", "drift_custom_metrics", "drift_window_rows",
    ):  # fmt: skip
        measure(name)
    line = inputs.line

    duration = (
        "ceil({ms}) / 1000 * ({f}_memory_mb / 1024 * price_lambda_arm64_gb_second"
        " + max(0, {f}_ephemeral_mb - lambda_included_ephemeral_mb) / 1024"
        " * price_lambda_ephemeral_gb_second)"
    )
    predictions = Figure(
        "per_million_predictions",
        "Per million predictions",
        "one-row requests through the REST API, the predict function and capture",
        _prediction_lines(line, duration, "predict_single_row_ms", "predictions", ""),
    )
    measure("predict_1k_rows_ms")
    add("rows_per_request", 1_000, "rows", "constant", "the batched requests measured")
    batched = Figure(
        "per_million_rows_batched",
        "Per million predictions in 1,000-row requests",
        "the same rows sent 1,000 to a request: per-request charges shrink, capture does not",
        _prediction_lines(
            line,
            duration,
            "predict_1k_rows_ms",
            "predictions / rows_per_request",
            " / rows_per_request",
        ),  # fmt: skip
    )

    retraining = Figure(
        "per_retraining",
        "Per retraining",
        f"one pipeline run on the default dataset as measured ({_rows(measured)}), "
        f"training backend {config.train.backend}",
    )
    for service in PIPELINE_FUNCTIONS:
        if service == "train" and config.train.backend == "sagemaker":
            continue
        if service not in facts.functions:
            continue
        measure(f"retrain_{service}_ms")
        retraining.lines.append(
            line(
                f"Lambda duration ({service})",
                duration.format(ms=f"retrain_{service}_ms", f=service),
            )
        )
    if config.train.backend == "sagemaker":
        sagemaker = config.train.sagemaker
        measure("retrain_train_ms")
        add(
            "sagemaker_instance_hour",
            prices.instance_hour(sagemaker.instance_type),
            "USD/instance-hour",
            "price",
            f"sagemaker_training_instance_hour {sagemaker.instance_type}",
        )
        add("sagemaker_volume_gb", sagemaker.volume_gb, "GB", "config", "train.sagemaker.volume_gb")
        retraining.lines.append(
            line(
                f"SageMaker training ({sagemaker.instance_type}; the Lambda train duration "
                "stands in for the billed seconds)",
                "retrain_train_ms / 3600000 * (sagemaker_instance_hour + sagemaker_volume_gb"
                " * price_sagemaker_training_volume_gb_month / hours_per_month)",
            )
        )
    retraining.lines += [
        line("Lambda requests", "retrain_invocations * price_lambda_request"),
        line(
            "Step Functions state transitions",
            "retrain_state_transitions * price_step_functions_standard_transition",
        ),
        line("S3 PUT, COPY, LIST requests", "retrain_s3_put_requests * price_s3_put_request"),
        line("S3 GET, HEAD requests", "retrain_s3_get_requests * price_s3_get_request"),
        line(
            "DynamoDB writes",
            "retrain_dynamodb_write_requests * dynamodb_units_per_request"
            " * price_dynamodb_write_request_unit",
        ),
        line(
            "DynamoDB reads",
            "retrain_dynamodb_read_requests * dynamodb_units_per_request"
            " * price_dynamodb_read_request_unit",
        ),
        line(
            "EventBridge custom events", "retrain_events_published * price_eventbridge_custom_event"
        ),
        line("CloudWatch Logs", "retrain_log_bytes / gib * price_cloudwatch_logs_ingested_gb"),
        line(
            "Custom metrics (each billed for the hour it is published)",
            "retrain_custom_metrics / hours_per_month * price_cloudwatch_custom_metric_month",
        ),
    ]

    drift = Figure(
        "per_drift_check",
        "Per drift check",
        f"one scheduled check, measured on a window of {_window_rows(measured):,} captured rows; "
        "capture objects read as Firehose writes them with steady traffic",
        [
            line("Lambda duration (monitor)", duration.format(ms="drift_check_ms", f="monitor")),
            line("Lambda request", "price_lambda_request"),
            line(
                "S3 GETs of the capture objects since the previous check",
                "seconds_per_month / drift_checks_per_month / capture_buffer_seconds"
                " * price_s3_get_request",
            ),
            line(
                "S3 GETs of the model's reference and the registry's artifacts",
                "(drift_s3_get_requests - drift_capture_objects) * price_s3_get_request",
            ),
            line("S3 PUT, LIST requests", "drift_s3_put_requests * price_s3_put_request"),
            line(
                "DynamoDB reads and writes",
                "dynamodb_units_per_request * (drift_dynamodb_read_requests"
                " * price_dynamodb_read_request_unit + drift_dynamodb_write_requests"
                " * price_dynamodb_write_request_unit)",
            ),
            line(
                "EventBridge custom events",
                "drift_events_published * price_eventbridge_custom_event",
            ),
            line("CloudWatch Logs", "drift_log_bytes / gib * price_cloudwatch_logs_ingested_gb"),
            line(
                "Custom metrics (each billed for the hour it is published)",
                "drift_custom_metrics / hours_per_month * price_cloudwatch_custom_metric_month",
            ),
        ],
    )
    add("drift_check_usd", drift.usd, "USD", "figure", "per drift check")

    idle = Figure(
        "idle_per_month",
        "Idle per month",
        "no predictions and no retraining: what the stack's resources and schedules cost",
        [
            line("KMS keys", "kms_keys * price_kms_key_month"),
            line("CloudWatch alarms", "alarm_metrics * price_cloudwatch_alarm_metric_month"),
            line("CloudWatch dashboards", "dashboards * price_cloudwatch_dashboard_month"),
            line("Scheduled drift checks", "drift_checks_per_month * drift_check_usd"),
            line(
                "Provisioned concurrency (predict)",
                "provisioned_concurrency * predict_memory_mb / 1024 * seconds_per_month"
                " * price_lambda_arm64_provisioned_gb_second",
            ),
            line(
                "S3 storage of one retraining's data and model",
                "stored_bytes / gib * price_s3_standard_gb_month",
            ),
            line(
                "Registry table storage and point-in-time recovery",
                "registry_bytes / gib * (price_dynamodb_storage_gb_month"
                " + price_dynamodb_pitr_gb_month)",
            ),
        ],
    )
    add("idle_usd", idle.usd, "USD", "figure", "idle per month")
    add("per_million_predictions_usd", predictions.usd, "USD", "figure", "per million predictions")
    add("per_retraining_usd", retraining.usd, "USD", "figure", "per retraining")

    monthly = Figure(
        "monthly",
        "A month at the given volumes",
        "idle, plus the predictions and retrainings given (--predictions-per-month, "
        "--retrains-per-month)",
        [
            line("Idle", "idle_usd"),
            line("Predictions", "predictions_per_month / 1000000 * per_million_predictions_usd"),
            line("Retrainings", "retrains_per_month * per_retraining_usd"),
            line(
                "Custom metrics of the predict function (published every hour with traffic)",
                "min(1, predictions_per_month) * predict_custom_metrics"
                " * price_cloudwatch_custom_metric_month",
            ),
            line(
                "Capture objects at the buffer interval (traffic in every interval, at most)",
                "min(predictions_per_month * capture_sample_rate, seconds_per_month"
                " / capture_buffer_seconds) * price_s3_put_request",
            ),
        ],
    )
    notes = [
        f"List prices for {prices.region} as of {prices.date.isoformat()} "
        f"({prices.source_name}); free tier excluded; check the prices before relying on a figure.",
        f"Durations and bytes measured by `{measured.command.strip()}` on {measured.date} "
        f"({measured.machine}): x86_64 durations stand in for Lambda's arm64.",
        "Not included: data transfer out of AWS, SNS alert deliveries, messages in the dead-letter "
        "queues (they cost nothing while empty), batch inference jobs, the CLI's own requests.",
    ]
    return Sheet(
        stack=stack,
        stage=stage,
        template=shown(Path(facts.source)),
        prices=prices,
        measured=measured,
        volumes={
            "predictions_per_month": predictions_per_month,
            "retrains_per_month": inputs.known["retrains_per_month"].value,
        },
        figures={f.key: f for f in (idle, predictions, batched, retraining, drift, monthly)},
        notes=notes,
    )


def _prediction_lines(
    line: Callable[[str, str], Line], duration: str, ms: str, requests: str, per_request: str
) -> list[Line]:
    """The lines of a million predicted rows sent as `requests` requests (an expression of
    `predictions`), each taking `ms`; `per_request` divides a monthly row count into requests."""
    monthly = f"predictions_per_month{per_request}"
    return [
        line("API Gateway REST requests", f"{requests} * price_api_gateway_rest_request"),
        line("Lambda requests (predict)", f"{requests} * price_lambda_request"),
        line("Lambda duration (predict)", f"{requests} * " + duration.format(ms=ms, f="predict")),
        line(
            "Capture: CloudWatch Logs ingestion of the capture lines (one a request)",
            f"(predictions * capture_bytes_per_row + {requests} * log_event_bytes)"
            " * capture_sample_rate / gib * price_cloudwatch_logs_ingested_gb",
        ),
        line(
            "Capture: Firehose ingestion (at most one record a request, rounded up to 5 KB)",
            f"{requests} * capture_sample_rate * ceil(predictions / ({requests})"
            " * capture_bytes_per_row / firehose_record_bytes) * firehose_record_bytes / gib"
            " * price_firehose_direct_put_gb",
        ),
        line(
            "Capture: S3 PUTs of full buffers",
            "predictions * capture_sample_rate * capture_bytes_per_row"
            " / (capture_buffer_mb * 1048576) * price_s3_put_request",
        ),
        line(
            "Capture: S3 storage until the lifecycle rule expires it",
            "predictions * capture_sample_rate * capture_bytes_per_row / gib"
            " * capture_expiration_days / days_per_month * price_s3_standard_gb_month",
        ),
        line(
            "CloudWatch Logs: predict function and API access log (per request)",
            f"{requests} * (predict_log_bytes_per_request + access_log_bytes_per_request)"
            " / gib * price_cloudwatch_logs_ingested_gb",
        ),
        line(
            "X-Ray traces (default sampling at the monthly volume)",
            f"{requests} * (min({monthly}, xray_reservoir_per_second * seconds_per_month)"
            f" + xray_sampled_share * max(0, {monthly} - xray_reservoir_per_second"
            f" * seconds_per_month)) / max(1, {monthly}) * price_xray_trace_recorded",
        ),
        line(
            "Registry: alias lookups (one per alias_ttl_seconds, one warm instance)",
            f"{requests} * min(1, seconds_per_month / alias_ttl_seconds / max(1, {monthly}))"
            " * dynamodb_units_per_request * price_dynamodb_read_request_unit",
        ),
    ]


ACCESS_LOG_BYTES = 300
"""The API stage's access log line with typical values (request id, ip, user, caller, time,
method, path, status, protocol, length as JSON) and CloudWatch's 26 bytes per event."""


def _rows(measured: Measured) -> str:
    what = measured.figures.get("retrain_ingest_ms", (0.0, "", ""))[2]
    return what.rpartition("(")[2].rstrip(")") or "see bench/cost_inputs.json"


def _window_rows(measured: Measured) -> int:
    return int(measured.figures["drift_window_rows"][0])
