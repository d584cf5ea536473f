"""Many models on one pipeline, on the local cloud: a drop trains every model of its dataset
in one execution (a Map over the models), one model's gate rejection or crash leaves the
others' promotions intact, and a retrain request trains only the model it names."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.cli.predict_client import SigningCredentials
from infra.local import LocalCloud
from tests.e2e.test_faults import Pipeline, churn_csv
from tests.e2e.test_iam import client_as
from tests.helpers.portfolio import CHURN_MODELS, portfolio_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pipeline(synth_with_config: Callable[[str], Path]) -> Iterator[Pipeline]:
    with LocalCloud.start(synth_with_config(portfolio_config()), mode="server", port=0) as cloud:
        yield Pipeline(cloud)


def _outcomes(pipeline: Pipeline, execution: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each model's outcome, as the Map state left it (a failed execution has no output)."""
    (exited,) = [
        json.loads(event["stateExitedEventDetails"]["output"])
        for event in pipeline.cloud.execution_history(execution)
        if event["type"] == "MapStateExited"
    ]
    return {outcome["model"]: outcome for outcome in exited["models"]["outcomes"]}


def _runs(pipeline: Pipeline, model: str) -> list[dict[str, Any]]:
    return pipeline.models.list_runs(model)


def _alerts(pipeline: Pipeline, execution: dict[str, Any]) -> list[dict[str, Any]]:
    messages = [json.loads(n["Message"]) for n in pipeline.cloud.sent_notifications()]
    return [m for m in messages if m.get("execution") == execution["executionArn"]]


@pytest.fixture(scope="module")
def dropped(pipeline: Pipeline) -> dict[str, Any]:
    return pipeline.drop("raw/churn/models-first.csv", churn_csv(seed=51))


def test_a_drop_trains_every_model_of_its_dataset_in_one_execution(
    pipeline: Pipeline, dropped: dict[str, Any]
) -> None:
    outcomes = _outcomes(pipeline, dropped)
    assert list(outcomes) == list(CHURN_MODELS)
    assert {m: o["status"] for m, o in outcomes.items()} == {
        "churn": "promoted",
        "churn-strict": "rejected",
        "churn-broken": "failed",
    }
    # One ingestion, its version trained on by each model that trained.
    (version,) = pipeline.datasets.list_versions("churn")
    for model in ("churn", "churn-strict"):
        assert outcomes[model]["training"]["model_name"] == model
        assert outcomes[model]["training"]["data_version"] == version.data_version
        assert outcomes[model]["training"]["run_prefix"].startswith(f"models/{model}/runs/")
    assert outcomes["churn"]["registered"]["version"] == 1
    # The prices dataset got nothing: no model of it ran.
    assert pipeline.models.list_versions("prices") == []


def test_one_models_rejection_or_crash_leaves_the_others_promotion_intact(
    pipeline: Pipeline, dropped: dict[str, Any]
) -> None:
    alias = pipeline.models.get_alias("churn")
    assert alias is not None and alias.version == 1
    assert alias.execution == dropped["executionArn"]
    # The rejected challenger: its own run and gate decision, no version, no alias.
    (strict,) = _runs(pipeline, "churn-strict")
    assert strict["status"] == "rejected" and strict["gate_passed"] is False
    assert pipeline.models.list_versions("churn-strict") == []
    assert pipeline.models.get_alias("churn-strict") is None
    # The broken one failed in training: a failed run with its error, no version.
    (broken,) = _runs(pipeline, "churn-broken")
    assert broken["status"] == "failed" and "'C' parameter" in broken["error"]
    assert broken["execution"] == dropped["executionArn"]
    assert pipeline.models.list_versions("churn-broken") == []
    assert pipeline.models.get_alias("churn-broken") is None
    # The execution fails so the failure is seen, after every model was done; each failure
    # and rejection was notified with its model.
    assert dropped["status"] == "FAILED"
    assert dropped["error"] == "ModelsFailed"
    assert '["churn","churn-strict","churn-broken"]' in dropped["cause"]
    assert '["promoted","rejected","failed"]' in dropped["cause"]
    alerts = _alerts(pipeline, dropped)
    (failure,) = [a for a in alerts if "error" in a]
    assert failure["model"] == "churn-broken"
    assert "'C' parameter" in failure["cause"] and "Traceback" not in failure["cause"]
    (rejection,) = [a for a in alerts if a.get("decision") == "rejected"]
    assert rejection["model"] == "churn-strict"
    assert any("roc_auc" in criterion for criterion in rejection["failed_criteria"])


def test_a_retrain_request_trains_only_the_model_it_names(
    pipeline: Pipeline, dropped: dict[str, Any]
) -> None:
    before = {model: len(_runs(pipeline, model)) for model in CHURN_MODELS}
    execution = pipeline.start(
        "retrain-strict", {"retrain": {"model": "churn-strict", "reason": "drift check x"}}
    )
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    output = json.loads(execution["output"])
    assert output["targets"]["models"] == ["churn-strict"]
    assert output["models"]["statuses"] == ["rejected"]
    after = {model: len(_runs(pipeline, model)) for model in CHURN_MODELS}
    assert after == {**before, "churn-strict": before["churn-strict"] + 1}
    assert pipeline.models.get_alias("churn").version == 1  # type: ignore[union-attr]


def test_a_retrain_request_naming_no_model_retrains_the_default_model(
    pipeline: Pipeline, dropped: dict[str, Any]
) -> None:
    before = {model: len(_runs(pipeline, model)) for model in CHURN_MODELS}
    execution = pipeline.start("retrain-default", {"retrain": {"reason": "manual"}})
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    output = json.loads(execution["output"])
    (outcome,) = output["models"]["outcomes"]
    assert (outcome["model"], outcome["status"]) == ("churn", "promoted")
    assert outcome["registered"]["version"] == 2
    after = {model: len(_runs(pipeline, model)) for model in CHURN_MODELS}
    assert after == {**before, "churn": before["churn"] + 1}


def test_a_retrain_request_naming_an_unknown_model_fails_naming_the_models(
    pipeline: Pipeline, dropped: dict[str, Any]
) -> None:
    execution = pipeline.start("retrain-unknown", {"retrain": {"model": "nope"}})
    # One model trained: the execution fails with its error.
    assert (execution["status"], execution["error"]) == ("FAILED", "ConfigError")
    assert "model 'nope' is not configured" in execution["cause"]
    (failure,) = [a for a in _alerts(pipeline, execution) if "error" in a]
    assert failure["model"] == "nope"
    assert "model 'nope' is not configured" in failure["cause"]
    assert "churn, churn-strict, churn-broken, prices" in failure["cause"]


@pytest.mark.iam_denials
def test_the_training_side_roles_may_read_the_configured_models_only(
    pipeline: Pipeline, dropped: dict[str, Any]
) -> None:
    """Each policy names exactly the models its function serves: the register role reads a
    configured model's alias, and is denied one of a model the config does not have."""
    from botocore.exceptions import ClientError

    from infra.local.authz import principals

    cloud = pipeline.cloud
    role = cloud.client("iam").get_role(RoleName=cloud.role_name("PipelineRegisterFunctionRole"))
    session = principals.session_credentials(
        role["Role"]["Arn"], "model-reader", "lambda.amazonaws.com"
    )
    dynamodb = client_as(
        cloud,
        "dynamodb",
        SigningCredentials(session.access_key_id, session.secret_access_key, session.session_token),
    )
    table = cloud.outputs["RegistryTableName"]

    def alias(model: str) -> dict[str, Any]:
        key = {"pk": {"S": f"MODEL#{model}"}, "sk": {"S": "ALIAS#production"}}
        return dict(dynamodb.get_item(TableName=table, Key=key))

    production = pipeline.models.get_alias("churn")
    assert production is not None
    assert alias("churn")["Item"]["version"]["N"] == str(production.version)
    assert "Item" not in alias("churn-strict")
    with pytest.raises(ClientError) as denied:
        alias("someone-elses")
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "dynamodb:GetItem" in denied.value.response["Error"]["Message"]
