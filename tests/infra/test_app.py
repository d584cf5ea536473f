"""The app as users run it: stage naming, config errors, cdk-nag, the image build context."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from functions.common.config.loading import MlopsConfig
from tests.helpers.synth import acknowledged_rules, synth_in_child

REPO = Path(__file__).resolve().parents[2]


def _synth(
    tmp_path: Path, config: Path | None = None, context: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {}
    if config is not None:
        env["MLOPS_CONFIG"] = str(config)
    if context is not None:
        env["CDK_CONTEXT_JSON"] = json.dumps(context)
    return synth_in_child(["-m", "infra.cdk.app"], tmp_path / "cdk.out", env)


def test_nag_has_no_unacknowledged_findings_and_each_acknowledgement_has_a_reason(
    cloud_assembly: Path,
) -> None:
    report = json.loads((cloud_assembly / "validation-report.json").read_text())
    findings = [
        violation
        for plugin in report.get("pluginReports", [])
        for violation in plugin.get("violations", [])
    ]
    assert findings == []
    acknowledged = acknowledged_rules(cloud_assembly, "mlops-dev")
    assert "Annotation::AwsSolutions-S1" in acknowledged
    for rule, reason in acknowledged.items():
        assert rule.startswith("Annotation::AwsSolutions-"), rule
        assert len(reason) >= 40, f"{rule}: reason too thin: {reason!r}"


def test_training_image_context_holds_only_functions_and_training_layer(
    cloud_assembly: Path,
) -> None:
    assets = json.loads((cloud_assembly / "mlops-dev.assets.json").read_text())
    (image,) = assets["dockerImages"].values()
    context = cloud_assembly / image["source"]["directory"]
    top = {p.name for p in context.iterdir()}
    assert top == {"functions", "layers"}
    assert {p.name for p in (context / "layers").iterdir()} == {"training"}
    assert (context / "functions" / "ingest" / "handler.py").exists()
    assert image["source"]["dockerFile"] == "layers/training/Dockerfile"
    assert image["source"].get("platform") == "linux/arm64"


@pytest.mark.slow
def test_stage_context_names_the_stack_project_stage(tmp_path: Path) -> None:
    config = tmp_path / "mlops.toml"
    config.write_text((REPO / "mlops.toml").read_text().replace('name = "mlops"', 'name = "fraud"'))
    result = _synth(tmp_path, config, {"stage": "prod"})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cdk.out" / "fraud-prod.template.json").exists()


@pytest.mark.slow
def test_invalid_config_fails_synth_naming_file_key_and_problem(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text(
        (REPO / "mlops.toml").read_text().replace('task = "classification"', 'task = "ranking"')
    )
    result = _synth(tmp_path, config)
    assert result.returncode == 2
    assert str(config) in result.stderr
    assert "dataset.task" in result.stderr
    assert "classification" in result.stderr  # the allowed values are named
    assert not (tmp_path / "cdk.out" / "mlops-dev.template.json").exists()


@pytest.mark.slow
def test_unknown_stage_fails_synth_with_the_known_stages(tmp_path: Path) -> None:
    result = _synth(tmp_path, context={"stage": "qa"})
    assert result.returncode == 2
    assert "'qa'" in result.stderr and "dev" in result.stderr


def _settings(template: dict[str, Any]) -> dict[str, Any]:
    resources = template["Resources"].values()
    [predict] = [
        r
        for r in resources
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"]
        .get("Environment", {})
        .get("Variables", {})
        .get("POWERTOOLS_SERVICE_NAME")
        == "predict"
    ]
    schedules = [
        r["Properties"]["ScheduleExpression"]
        for r in resources
        if r["Type"] == "AWS::Events::Rule" and "ScheduleExpression" in r["Properties"]
    ]
    retention = {
        r["Properties"].get("RetentionInDays")
        for r in resources
        if r["Type"] == "AWS::Logs::LogGroup"
    }
    config = MlopsConfig.model_validate_json(
        predict["Properties"]["Environment"]["Variables"]["MLOPS_CONFIG_JSON"]
    )
    return {
        "memory": predict["Properties"]["MemorySize"],
        "schedules": schedules,
        "retention": retention,
        "config_schedule": config.drift.schedule,
    }


def test_without_a_stage_synth_yields_every_configured_stage_with_its_settings(
    tmp_path: Path,
) -> None:
    result = _synth(tmp_path)
    assert result.returncode == 0, result.stderr

    out = tmp_path / "cdk.out"
    dev = _settings(json.loads((out / "mlops-dev.template.json").read_text()))
    prod = _settings(json.loads((out / "mlops-prod.template.json").read_text()))
    assert dev["memory"] == 1024 and prod["memory"] == 2048
    assert dev["schedules"] == ["rate(1 day)"] and prod["schedules"] == ["rate(6 hours)"]
    assert 30 in dev["retention"] and 365 in prod["retention"]
    # The functions of each stack receive that stage's config.
    assert dev["config_schedule"] == "rate(1 day)" and prod["config_schedule"] == "rate(6 hours)"
