"""The cost sheet's figures move as their formulas say when one price, one template property,
one config key or one volume changes, and what it shows is what it computed."""

from __future__ import annotations

import dataclasses
import math

import pytest

from functions.common.config.loading import load_config
from infra.cli.cost_sheet.formula import FormulaError, evaluate
from infra.cli.cost_sheet.parts import load_measured
from infra.cli.cost_sheet.prices import Price, PriceList, load_prices
from infra.cli.cost_sheet.stack import SECONDS_PER_MONTH, runs_per_month
from tests.helpers import REPO
from tests.helpers.cost import dev_template, line_usd, resource, sheet

PER_MILLION = "per_million_predictions"
GIB = 1024**3


def _with_price(name: str, usd: float) -> PriceList:
    prices = load_prices()
    changed = dict(prices.prices)
    changed[name] = dataclasses.replace(prices.prices[name], usd=usd)
    return dataclasses.replace(prices, prices=changed)


def test_every_line_is_its_formula_over_its_inputs() -> None:
    result = sheet()
    for figure in result.figures.values():
        assert figure.lines
        for line in figure.lines:
            values = {i.name: i.value for i in line.inputs}
            assert line.usd == evaluate(line.formula, values)
            assert {i.source for i in line.inputs} <= {
                "template", "config", "measured", "price", "option", "constant", "figure",
            }  # fmt: skip


def test_a_doubled_lambda_price_doubles_the_predict_duration_line_and_nothing_else() -> None:
    base = sheet()
    price = load_prices()["lambda_arm64_gb_second"].usd
    doubled = sheet(prices=_with_price("lambda_arm64_gb_second", 2 * price))
    before = line_usd(base, PER_MILLION, "Lambda duration (predict)")
    after = line_usd(doubled, PER_MILLION, "Lambda duration (predict)")
    assert after == pytest.approx(2 * before)
    assert doubled.figures[PER_MILLION].usd - base.figures[PER_MILLION].usd == pytest.approx(
        after - before
    )


def test_the_predict_duration_line_is_requests_times_billed_seconds_times_gb() -> None:
    result = sheet()
    measured = load_measured().figures["predict_single_row_ms"][0]
    price = load_prices()["lambda_arm64_gb_second"].usd
    expected = 1_000_000 * math.ceil(measured) / 1000 * 1024 / 1024 * price
    assert line_usd(result, PER_MILLION, "Lambda duration (predict)") == pytest.approx(expected)


def test_the_predict_functions_memory_in_the_template_scales_its_duration_line() -> None:
    template = dev_template()
    base = line_usd(sheet(template), PER_MILLION, "Lambda duration (predict)")
    resource(template, "ServingPredictFunction")["MemorySize"] = 3072
    assert line_usd(sheet(template), PER_MILLION, "Lambda duration (predict)") == pytest.approx(
        3 * base
    )


def test_ephemeral_storage_above_512_mb_is_billed_by_its_own_price() -> None:
    template = dev_template()
    resource(template, "ServingPredictFunction")["EphemeralStorage"] = {"Size": 512 + 1024}
    base = line_usd(sheet(), PER_MILLION, "Lambda duration (predict)")
    larger = line_usd(sheet(template), PER_MILLION, "Lambda duration (predict)")
    ms = math.ceil(load_measured().figures["predict_single_row_ms"][0])
    extra = 1_000_000 * ms / 1000 * 1.0 * load_prices()["lambda_ephemeral_gb_second"].usd
    assert larger - base == pytest.approx(extra)


def test_firehose_bills_each_captured_row_rounded_up_to_5_kb() -> None:
    row_bytes = load_measured().figures["capture_bytes_per_row"][0]
    assert row_bytes < 5 * 1024  # so one record of one row is billed as 5 KB
    expected = 1_000_000 * 5 * 1024 / GIB * load_prices()["firehose_direct_put_gb"].usd
    assert line_usd(sheet(), PER_MILLION, "Capture: Firehose") == pytest.approx(expected)


def test_half_the_capture_sample_rate_halves_every_capture_line() -> None:
    config = load_config(REPO / "mlops.toml")
    half = config.model_copy(
        update={"serving": config.serving.model_copy(update={"capture_sample_rate": 0.5})}
    )
    for item in (
        "Capture: CloudWatch Logs",
        "Capture: Firehose",
        "Capture: S3 PUTs",
        "Capture: S3 storage",
    ):
        assert line_usd(sheet(config=half), PER_MILLION, item) == pytest.approx(
            line_usd(sheet(), PER_MILLION, item) / 2
        )


def test_one_more_alarm_in_the_template_costs_one_alarm_price_a_month() -> None:
    template = dev_template()
    alarm = next(r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm")
    template["Resources"]["ExtraAlarm"] = alarm
    difference = (
        sheet(template).figures["idle_per_month"].usd - sheet().figures["idle_per_month"].usd
    )
    assert difference == pytest.approx(load_prices()["cloudwatch_alarm_metric_month"].usd)


def test_provisioned_concurrency_on_the_predict_alias_is_billed_all_month() -> None:
    template = dev_template()
    resource(template, "ServingLive")["ProvisionedConcurrencyConfig"] = {
        "ProvisionedConcurrentExecutions": 2
    }
    expected = (
        2 * 1.0 * SECONDS_PER_MONTH * (load_prices()["lambda_arm64_provisioned_gb_second"].usd)
    )
    assert line_usd(sheet(template), "idle_per_month", "Provisioned") == pytest.approx(expected)
    assert line_usd(sheet(), "idle_per_month", "Provisioned") == 0


def test_a_drift_schedule_four_times_as_often_runs_four_times_the_checks() -> None:
    template = dev_template()
    resource(template, "MonitoringDriftSchedule")["ScheduleExpression"] = "rate(6 hours)"
    daily, quarter = sheet(), sheet(template)
    checks = {
        i.name: i.value
        for s in (daily, quarter)
        for line in s.figures["idle_per_month"].lines
        for i in line.inputs
        if i.name == "drift_checks_per_month"
    }
    assert runs_per_month("rate(6 hours)") == pytest.approx(4 * runs_per_month("rate(1 day)"))
    # Each check reads a quarter of the capture objects: the per-check figure shrinks with it.
    reads_daily = line_usd(daily, "per_drift_check", "S3 GETs of the capture")
    reads_quarter = line_usd(quarter, "per_drift_check", "S3 GETs of the capture")
    assert reads_quarter == pytest.approx(reads_daily / 4)
    assert checks  # the input is shown with the line


def test_cron_schedules_are_counted_field_by_field() -> None:
    days = SECONDS_PER_MONTH / 86_400
    assert runs_per_month("cron(0 12 * * ? *)") == pytest.approx(days)
    assert runs_per_month("cron(0/15 * ? * MON-FRI *)") == pytest.approx(4 * 24 * days * 5 / 7)
    assert runs_per_month("cron(0 6 1,15 * ? *)") == pytest.approx(2)
    assert runs_per_month("cron(30 2 ? JAN-MAR MON *)") == pytest.approx(days / 7 * 3 / 12)


def test_the_monthly_total_is_idle_plus_volumes_times_the_unit_figures() -> None:
    result = sheet(predictions_per_month=5_000_000, retrains_per_month=4)
    figures = result.figures
    fixed = line_usd(result, "monthly", "Custom metrics") + line_usd(
        result, "monthly", "Capture objects"
    )
    assert figures["monthly"].usd == pytest.approx(
        figures["idle_per_month"].usd
        + 5 * figures[PER_MILLION].usd
        + 4 * figures["per_retraining"].usd
        + fixed
    )


def test_x_ray_traces_every_request_below_one_a_second_and_5_percent_above() -> None:
    price = load_prices()["xray_trace_recorded"].usd
    slow = line_usd(sheet(predictions_per_month=1_000_000), PER_MILLION, "X-Ray")
    assert slow == pytest.approx(1_000_000 * price)
    busy = line_usd(sheet(predictions_per_month=1e9), PER_MILLION, "X-Ray")
    reservoir = SECONDS_PER_MONTH
    share = (reservoir + 0.05 * (1e9 - reservoir)) / 1e9
    assert busy == pytest.approx(1_000_000 * share * price)


def test_the_sagemaker_backend_prices_instance_hours_instead_of_the_train_function() -> None:
    config = load_config(REPO / "mlops.toml")
    sagemaker = config.model_copy(
        update={"train": config.train.model_copy(update={"backend": "sagemaker"})}
    )
    result = sheet(config=sagemaker)
    items = [line.item for line in result.figures["per_retraining"].lines]
    assert "Lambda duration (train)" not in items
    train_ms = load_measured().figures["retrain_train_ms"][0]
    hourly = load_prices().instance_hour(sagemaker.train.sagemaker.instance_type)
    volume = (
        30 * load_prices()["sagemaker_training_volume_gb_month"].usd / (SECONDS_PER_MONTH / 3600)
    )
    assert line_usd(result, "per_retraining", "SageMaker training") == pytest.approx(
        train_ms / 3_600_000 * (hourly + volume)
    )


def test_a_formula_is_arithmetic_only() -> None:
    assert evaluate("ceil(a / b) * max(1, c) - min(2, 3)", {"a": 5, "b": 2, "c": 4}) == 10
    for bad in ("__import__('os')", "a.real", "a ** 2", "[a][0]", "missing + 1"):
        with pytest.raises(FormulaError):
            evaluate(bad, {"a": 1.0})


def test_price_records_need_usd_unit_and_what() -> None:
    assert isinstance(load_prices()["lambda_request"], Price)


def test_batching_1000_rows_divides_per_request_charges_but_not_captured_bytes() -> None:
    result = sheet()
    batched = "per_million_rows_batched"
    assert line_usd(result, batched, "API Gateway") == pytest.approx(
        line_usd(result, PER_MILLION, "API Gateway") / 1000
    )
    # One capture record a request: Firehose's 5 KB rounding is paid per request, not per row.
    row_bytes = load_measured().figures["capture_bytes_per_row"][0]
    firehose = load_prices()["firehose_direct_put_gb"].usd
    expected = 1_000 * math.ceil(1_000 * row_bytes / 5120) * 5120 / GIB * firehose
    assert line_usd(result, batched, "Capture: Firehose") == pytest.approx(expected)
    assert line_usd(result, batched, "Capture: Firehose") < line_usd(
        result, PER_MILLION, "Capture: Firehose"
    )
    logs = load_prices()["cloudwatch_logs_ingested_gb"].usd
    assert line_usd(result, batched, "Capture: CloudWatch Logs") == pytest.approx(
        (1_000_000 * row_bytes + 1_000 * 26) / GIB * logs
    )
    ms = math.ceil(load_measured().figures["predict_1k_rows_ms"][0])
    price = load_prices()["lambda_arm64_gb_second"].usd
    assert line_usd(result, batched, "Lambda duration (predict)") == pytest.approx(
        1_000 * ms / 1000 * 1.0 * price
    )
