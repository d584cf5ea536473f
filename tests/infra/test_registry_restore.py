"""The switch to a restored registry table (`[stages.<stage>] registry_table`, what
`mlops restore --registry` prints): every function's `REGISTRY_TABLE`, every registry grant and
the `RegistryTableName` output name the restored table, encrypted with the stack's key, while
the stack's own table stays as it was (nothing replaced, nothing deleted). The default config's
template is guarded by the snapshot test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.cdk.app import build_app

REPO = Path(__file__).resolve().parents[2]
RESTORED = "mlops-dev-RegistryTable1A2B3C-XYZ-restored-20261202T063000Z"


@pytest.fixture(scope="module")
def switched(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The dev stack synthesized with a restored table configured and a customer key."""
    directory = tmp_path_factory.mktemp("restored")
    config = directory / "mlops.toml"
    text = (REPO / "mlops.toml").read_text()
    assert "[stages.dev]\n" in text
    config.write_text(
        text.replace("[stages.dev]\n", f'[stages.dev]\nregistry_table = "{RESTORED}"\n', 1)
        + "\n[data_lake]\nkms_key = true\n"
    )
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MLOPS_CONFIG", str(config))
        app = build_app(outdir=str(directory / "cdk.out"), context={"commit": "abc"})
        template: dict[str, Any] = app.synth().get_stack_by_name("mlops-dev").template
    return template


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def _registry_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    statements = []
    for policy in _of_type(template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            actions = [actions] if isinstance(actions, str) else actions
            if any(action.startswith("dynamodb:") for action in actions):
                statements.append(statement)
    return statements


def test_every_function_uses_the_restored_table(
    switched: dict[str, Any], template_json: dict[str, Any]
) -> None:
    (table_id,) = _of_type(template_json, "AWS::DynamoDB::Table")
    default_env = {
        name: function["Properties"]["Environment"]["Variables"].get("REGISTRY_TABLE")
        for name, function in _of_type(template_json, "AWS::Lambda::Function").items()
        if "Environment" in function["Properties"]
    }
    users = {name for name, table in default_env.items() if table == {"Ref": table_id}}
    assert len(users) >= 5, "the stage functions read the registry"

    for name in users:
        variables = switched["Resources"][name]["Properties"]["Environment"]["Variables"]
        assert variables["REGISTRY_TABLE"] == RESTORED, name
        assert RESTORED not in variables["MLOPS_CONFIG_JSON"], "synth-only key"
    assert switched["Outputs"]["RegistryTableName"]["Value"] == RESTORED


def test_every_registry_grant_names_the_restored_table_only(
    switched: dict[str, Any], template_json: dict[str, Any]
) -> None:
    (table_id,) = _of_type(template_json, "AWS::DynamoDB::Table")
    statements = _registry_statements(switched)
    assert len(statements) == len(_registry_statements(template_json))
    for statement in statements:
        resources = json.dumps(statement["Resource"])
        assert f":table/{RESTORED}" in resources, statement
        assert table_id not in resources, statement


def test_the_restored_table_is_read_with_the_stacks_key(switched: dict[str, Any]) -> None:
    (key_id,) = [k for k in _of_type(switched, "AWS::KMS::Key") if k.startswith("DataKey")]
    checked = 0
    for policy in _of_type(switched, "AWS::IAM::Policy").values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        if any(statement in _registry_statements(switched) for statement in statements):
            key_actions = [
                s["Action"] for s in statements if json.dumps(s["Resource"]).count(key_id)
            ]
            assert any("kms:Decrypt" in json.dumps(actions) for actions in key_actions)
            checked += 1
    assert checked >= 5


def test_the_stacks_own_table_stays_as_it_was(
    switched: dict[str, Any], template_json: dict[str, Any]
) -> None:
    (default_id,) = _of_type(template_json, "AWS::DynamoDB::Table")
    (owned_id,) = _of_type(switched, "AWS::DynamoDB::Table")
    assert owned_id == default_id
    default, owned = template_json["Resources"][default_id], switched["Resources"][owned_id]
    assert {k: v for k, v in owned.items() if k != "Properties"} == {
        k: v for k, v in default.items() if k != "Properties"
    }
    without_key = {k: v for k, v in owned["Properties"].items() if k != "SSESpecification"}
    assert without_key == {
        k: v for k, v in default["Properties"].items() if k != "SSESpecification"
    }
