"""`mlops predeploy` on the real synthesized templates: the code against its own committed
revision replaces nothing, and a construct renamed since the deployed template (a modified
copy of the synthesized one) is refused until `--allow-replacement` names it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infra.cli import deployed_template
from infra.cli.main import app

TABLE = "RegistryTableDB777839"
OLD_TABLE = "RegistryTableOld0A1B2C3D"


def _predeploy(stage: str, cloud_assembly: Path, *options: str) -> Any:
    return CliRunner().invoke(
        app,
        ["predeploy", "--stage", stage, "--template-only", "--cdk-out", str(cloud_assembly)]
        + list(options),
    )


@pytest.mark.slow
def test_the_code_against_its_own_revision_replaces_nothing() -> None:
    # Both sides synthesized by the command: this checkout, and HEAD in a temporary worktree.
    result = CliRunner().invoke(
        app,
        ["predeploy", "--stage", "prod", "--template-only", "--against-revision", "HEAD", "--json"],
    )

    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["against"].startswith("revision HEAD (")
    assert document["template_changes"]["changes"] == []


def test_a_renamed_table_is_refused_then_allowed(cloud_assembly: Path, tmp_path: Path) -> None:
    # The deployed template had the registry table under another logical id (as before a
    # construct was renamed or moved): the new template deletes it and creates an empty one.
    text = (cloud_assembly / "mlops-prod.template.json").read_text(encoding="utf-8")
    deployed = tmp_path / "deployed.template.json"
    deployed.write_text(text.replace(TABLE, OLD_TABLE), encoding="utf-8")

    refused = _predeploy("prod", cloud_assembly, "--against", str(deployed))
    allowed = _predeploy(
        "prod", cloud_assembly, "--against", str(deployed), "--allow-replacement", OLD_TABLE
    )

    assert refused.exit_code == 1, refused.output
    output = " ".join(refused.output.split())
    assert "resources CloudFormation would replace or delete" in output
    assert (
        f"{OLD_TABLE} (AWS::DynamoDB::Table) would be deleted (no longer in the template: a "
        "renamed or moved construct starts empty); the old one is kept, outside the stack "
        "(DeletionPolicy Retain)"
    ) in output
    assert "--allow-replacement LOGICAL_ID" in output
    assert allowed.exit_code == 0, allowed.output
    assert f"allowed: {OLD_TABLE}" in " ".join(allowed.output.split())


def test_without_a_source_the_last_synth_in_the_checkout_is_compared(
    cloud_assembly: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    last_synth = tmp_path / "cdk.out"
    last_synth.mkdir()
    template = json.loads((cloud_assembly / "mlops-dev.template.json").read_text())
    template["Resources"]["RenamedLogs1234ABCD"] = {"Type": "AWS::Logs::LogGroup"}
    (last_synth / "mlops-dev.template.json").write_text(json.dumps(template))
    monkeypatch.setattr(deployed_template, "LAST_SYNTH", last_synth)

    compared = _predeploy("dev", cloud_assembly)
    itself = _predeploy("dev", last_synth)

    assert compared.exit_code == 1, compared.output
    assert f"against the last synthesis ({last_synth}" in " ".join(compared.output.split())
    assert "RenamedLogs1234ABCD (AWS::Logs::LogGroup) would be deleted" in compared.output
    assert itself.exit_code == 0, itself.output
    assert "the new template is the last synthesis itself" in " ".join(itself.output.split())
