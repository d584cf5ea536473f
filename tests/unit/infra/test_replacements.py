"""What CloudFormation would replace or delete between two templates (`mlops predeploy`), on
small hand-written template pairs, with the replacement rules of cfn-lint's resource schemas."""

from __future__ import annotations

import copy
from typing import Any

from infra.cdk.replacements import Change, compare_templates, create_only_paths, judge


def _template(**resources: dict[str, Any]) -> dict[str, Any]:
    return {"Resources": copy.deepcopy(resources)}


BUCKET = {
    "Type": "AWS::S3::Bucket",
    "DeletionPolicy": "Retain",
    "UpdateReplacePolicy": "Retain",
    "Properties": {"VersioningConfiguration": {"Status": "Enabled"}},
}
TABLE = {
    "Type": "AWS::DynamoDB::Table",
    "Properties": {
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    },
}
FUNCTION = {
    "Type": "AWS::Lambda::Function",
    "Properties": {
        "Code": {"S3Bucket": "assets", "S3Key": "aaaa.zip"},
        "Handler": "functions.predict.handler.lambda_handler",
        "Runtime": "python3.13",
        "Environment": {"Variables": {"TABLE": {"Ref": "Table"}}},
    },
}


def _actions(changes: list[Change]) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {change.logical_id: (change.action, change.why) for change in changes}


def test_the_same_template_changes_nothing() -> None:
    template = _template(Data=BUCKET, Table=TABLE, Fn=FUNCTION)

    assert compare_templates(template, copy.deepcopy(template)) == []


def test_a_renamed_bucket_is_a_deletion_refused_until_allowed() -> None:
    old = _template(DataDE92A33D=BUCKET)
    new = _template(Data1234ABCD=BUCKET)

    changes = compare_templates(old, new)

    assert _actions(changes) == {"DataDE92A33D": ("delete", ("removed from the template",))}
    verdict = judge(changes)
    assert not verdict.passed
    (refused,) = verdict.refused
    assert refused.describe() == (
        "DataDE92A33D (AWS::S3::Bucket) would be deleted (no longer in the template: a renamed "
        "or moved construct starts empty); the old one is kept, outside the stack "
        "(DeletionPolicy Retain)"
    )
    allowed = judge(changes, ["DataDE92A33D"])
    assert allowed.passed
    assert [c.logical_id for c in allowed.allowed] == ["DataDE92A33D"]


def test_a_changed_table_key_replaces_the_table() -> None:
    old = _template(Table=TABLE)
    new = _template(Table=TABLE)
    new["Resources"]["Table"]["Properties"]["KeySchema"].append(
        {"AttributeName": "sk", "KeyType": "RANGE"}
    )

    changes = compare_templates(old, new)

    assert _actions(changes) == {"Table": ("replace", ("KeySchema",))}
    (refused,) = judge(changes).refused
    assert "the old one is deleted with its data (UpdateReplacePolicy Delete)" in (
        refused.describe()
    )


def test_a_lambda_code_change_is_an_update_not_a_replacement() -> None:
    old = _template(Table=TABLE, Fn=FUNCTION)
    new = _template(Table=TABLE, Fn=FUNCTION)
    new["Resources"]["Fn"]["Properties"]["Code"]["S3Key"] = "bbbb.zip"
    new["Resources"]["Fn"]["Properties"]["MemorySize"] = 1024

    assert compare_templates(old, new) == []


def test_a_function_renamed_by_property_is_replaced_but_holds_no_data() -> None:
    old = _template(Fn=FUNCTION)
    new = _template(Fn=FUNCTION)
    new["Resources"]["Fn"]["Properties"]["FunctionName"] = "predict"

    changes = compare_templates(old, new)

    assert _actions(changes) == {"Fn": ("replace", ("FunctionName",))}
    assert judge(changes).passed


def test_a_changed_type_is_a_replacement() -> None:
    old = _template(Queue={"Type": "AWS::SQS::Queue", "Properties": {}})
    new = _template(Queue={"Type": "AWS::SNS::Topic", "Properties": {}})

    assert _actions(compare_templates(old, new)) == {
        "Queue": ("replace", ("Type AWS::SQS::Queue -> AWS::SNS::Topic",))
    }


def test_a_create_only_ref_to_a_replaced_resource_replaces_it_too() -> None:
    # The table is replaced (new key), so its name (the queue name's Ref) changes: the queue
    # is replaced as CloudFormation would; the function's environment only updates.
    queue = {
        "Type": "AWS::SQS::Queue",
        "Properties": {"QueueName": {"Fn::Join": ["-", [{"Ref": "Table"}, "dlq"]]}},
    }
    old = _template(Table=TABLE, Queue=queue, Fn=FUNCTION)
    new = _template(Table=TABLE, Queue=queue, Fn=FUNCTION)
    new["Resources"]["Table"]["Properties"]["KeySchema"][0]["AttributeName"] = "id"

    actions = _actions(compare_templates(old, new))

    assert actions == {"Queue": ("replace", ("QueueName",)), "Table": ("replace", ("KeySchema",))}


def test_a_create_only_ref_moved_to_a_new_resource_is_a_replacement() -> None:
    # The bucket policy's bucket (create-only) now refers to a renamed, hence new, bucket.
    policy = {"Type": "AWS::S3::BucketPolicy", "Properties": {"Bucket": {"Ref": "DataOld"}}}
    old = _template(DataOld=BUCKET, Policy=policy)
    new = _template(DataNew=BUCKET, Policy=policy)
    new["Resources"]["Policy"]["Properties"]["Bucket"] = {"Ref": "DataNew"}

    assert _actions(compare_templates(old, new)) == {
        "DataOld": ("delete", ("removed from the template",)),
        "Policy": ("replace", ("Bucket",)),
    }


def test_an_unresolved_intrinsic_difference_may_replace_and_is_refused_on_data() -> None:
    log_group = {
        "Type": "AWS::Logs::LogGroup",
        "Properties": {"LogGroupName": {"Fn::Sub": "/mlops/${AWS::StackName}"}},
    }
    old = _template(Logs=log_group)
    new = _template(Logs=log_group)
    new["Resources"]["Logs"]["Properties"]["LogGroupName"] = {"Fn::Sub": "/mlops/${Stage}"}

    changes = compare_templates(old, new)

    assert _actions(changes) == {
        "Logs": ("may replace", ("LogGroupName (an intrinsic value not resolved here)",))
    }
    (refused,) = judge(changes).refused
    assert refused.describe().startswith("Logs (AWS::Logs::LogGroup) would be replaced, perhaps,")


def test_a_custom_resource_whose_properties_change_may_be_replaced() -> None:
    custom = {
        "Type": "Custom::S3BucketNotifications",
        "Properties": {"ServiceToken": "arn:handler", "NotificationConfiguration": {}},
    }
    old = _template(Notifications=custom)
    new = _template(Notifications=custom)
    new["Resources"]["Notifications"]["Properties"]["NotificationConfiguration"] = {
        "EventBridgeConfiguration": {}
    }

    changes = compare_templates(old, new)

    assert [(c.logical_id, c.action, c.stateful) for c in changes] == [
        ("Notifications", "may replace", False)
    ]
    assert judge(changes).passed


def test_an_allowance_naming_nothing_is_reported() -> None:
    verdict = judge([], ["RegistryTableDB777839"])

    assert verdict.passed
    assert verdict.unknown_allowances == ("RegistryTableDB777839",)


def test_the_rules_come_from_the_resource_schemas_plus_documented_replacements() -> None:
    bucket = create_only_paths("AWS::S3::Bucket", "eu-west-1")
    table = create_only_paths("AWS::DynamoDB::Table", "us-east-1")

    assert bucket is not None and "/properties/BucketName" in bucket
    assert table is not None and {"/properties/TableName", "/properties/KeySchema"} <= set(table)
    assert create_only_paths("AWS::Nothing::Here", "us-east-1") is None
