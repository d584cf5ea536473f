"""Intrinsic functions and resource ordering, as the local deployer resolves them."""

from __future__ import annotations

from typing import Any

import pytest

from infra.local.deployer import dependency_order
from infra.local.intrinsics import Resolver, StackContext, TemplateError
from infra.local.resources import DeployError
from infra.local.resources.base import Created

TEMPLATE: dict[str, Any] = {
    "Parameters": {
        "Stage": {"Type": "String", "Default": "dev"},
        "Zones": {"Type": "CommaDelimitedList", "Default": "a,b"},
        "BootstrapVersion": {
            "Type": "AWS::SSM::Parameter::Value<String>",
            "Default": "/cdk-bootstrap/hnb659fds/version",
        },
    },
    "Conditions": {
        "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
        "IsDev": {"Fn::Not": [{"Condition": "IsProd"}]},
        "DevInUsEast": {
            "Fn::And": [
                {"Condition": "IsDev"},
                {"Fn::Equals": [{"Ref": "AWS::Region"}, "us-east-1"]},
            ]
        },
    },
    "Mappings": {"Sizes": {"dev": {"Memory": 512}}},
    "Resources": {"Bucket": {"Type": "AWS::S3::Bucket"}, "Later": {"Type": "AWS::SNS::Topic"}},
}


@pytest.fixture
def resolver() -> Resolver:
    created = {
        "Bucket": Created(ref="my-bucket", attributes={"Arn": "arn:aws:s3:::my-bucket"}),
    }
    return Resolver(TEMPLATE, StackContext(stack_name="mlops-dev"), created.get)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"Ref": "AWS::AccountId"}, "123456789012"),
        ({"Ref": "AWS::Region"}, "us-east-1"),
        ({"Ref": "AWS::Partition"}, "aws"),
        ({"Ref": "AWS::URLSuffix"}, "amazonaws.com"),
        ({"Ref": "AWS::StackName"}, "mlops-dev"),
        ({"Ref": "Bucket"}, "my-bucket"),
        ({"Fn::GetAtt": ["Bucket", "Arn"]}, "arn:aws:s3:::my-bucket"),
        ({"Fn::GetAtt": "Bucket.Arn"}, "arn:aws:s3:::my-bucket"),
        ({"Fn::Join": ["", [{"Fn::GetAtt": ["Bucket", "Arn"]}, "/*"]]}, "arn:aws:s3:::my-bucket/*"),
        (
            {"Fn::Sub": "${AWS::StackName}-${Bucket}-${Bucket.Arn}"},
            "mlops-dev-my-bucket-arn:aws:s3:::my-bucket",
        ),
        (
            {"Fn::Sub": ["${Name}/${AWS::Region}", {"Name": {"Ref": "Bucket"}}]},
            "my-bucket/us-east-1",
        ),
        ({"Fn::Sub": "literal ${!NotAVariable}"}, "literal ${NotAVariable}"),
        ({"Fn::Select": [1, {"Fn::Split": [":", "a:b:c"]}]}, "b"),
        ({"Fn::Select": ["0", {"Ref": "Zones"}]}, "a"),
        ({"Fn::If": ["IsProd", "big", "small"]}, "small"),
        ({"Fn::If": ["DevInUsEast", {"Ref": "Stage"}, "other"]}, "dev"),
        ({"Fn::FindInMap": ["Sizes", {"Ref": "Stage"}, "Memory"]}, 512),
        ({"Fn::Base64": "hi"}, "aGk="),
        ({"Fn::ToJsonString": {"a": [1]}}, '{"a":[1]}'),
    ],
)
def test_intrinsic_resolves_like_cloudformation(
    resolver: Resolver, value: Any, expected: Any
) -> None:
    assert resolver.resolve(value, "test") == expected


def test_no_value_removes_the_property_or_list_item(resolver: Resolver) -> None:
    value = {"Keep": 1, "Drop": {"Ref": "AWS::NoValue"}, "List": [1, {"Ref": "AWS::NoValue"}]}
    assert resolver.resolve(value, "test") == {"Keep": 1, "List": [1]}


def test_condition_functions_evaluate(resolver: Resolver) -> None:
    assert resolver.condition("IsProd") is False
    assert resolver.condition("IsDev") is True


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"Fn::ImportValue": "SharedBucket"}, "Fn::ImportValue is not supported"),
        ({"Ref": "Nope"}, "unknown resource 'Nope'"),
        ({"Ref": "Later"}, "'Later' is not created yet"),
        ({"Fn::GetAtt": ["Bucket", "WebsiteURL"]}, "Fn::GetAtt Bucket.WebsiteURL is not emulated"),
        ({"Ref": "BootstrapVersion"}, "SSM parameter 'BootstrapVersion'"),
    ],
)
def test_unresolvable_values_fail_naming_the_place(
    resolver: Resolver, value: Any, message: str
) -> None:
    with pytest.raises(TemplateError, match="Res.Properties.X") as error:
        resolver.resolve(value, "Res.Properties.X")
    assert message in str(error.value)


def test_resources_come_after_what_they_reference_or_depend_on() -> None:
    resources = {
        "Rule": {"Type": "T", "Properties": {"Targets": [{"Arn": {"Ref": "Machine"}}]}},
        "Machine": {
            "Type": "T",
            "Properties": {"Definition": {"Fn::Sub": "${Fn.Arn}"}},
            "DependsOn": "Policy",
        },
        "Fn": {"Type": "T", "Properties": {"Role": {"Fn::GetAtt": ["Role", "Arn"]}}},
        "Policy": {"Type": "T", "Properties": {"Roles": [{"Ref": "Role"}]}},
        "Role": {"Type": "T"},
    }
    order = dependency_order(resources)
    assert order.index("Role") < order.index("Fn") < order.index("Machine") < order.index("Rule")
    assert order.index("Policy") < order.index("Machine")


def test_a_reference_cycle_fails_naming_the_resources() -> None:
    resources = {
        "A": {"Type": "T", "Properties": {"X": {"Ref": "B"}}},
        "B": {"Type": "T", "DependsOn": ["A"]},
        "C": {"Type": "T"},
    }
    with pytest.raises(DeployError, match="dependency cycle among: A, B"):
        dependency_order(resources)
