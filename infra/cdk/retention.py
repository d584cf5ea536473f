"""Retention of every resource that holds data in a retaining stage (`removal_policy =
"retain"`, prod): each keeps `DeletionPolicy` and `UpdateReplacePolicy` Retain, so neither
deleting the stack nor a replacement or deletion by an update deletes its data. A destroying
stage (dev) keeps what its constructs chose: its data may go with the stack.

Applied as an aspect on the stack, so a resource a construct adds later is covered by the same
definition (`STATEFUL_RESOURCE_TYPES`) that `mlops predeploy` and the template snapshot use."""

from __future__ import annotations

import jsii
from aws_cdk import CfnResource, IAspect, RemovalPolicy
from constructs import IConstruct

from infra.cdk.config import DeployConfig
from infra.cdk.replacements import STATEFUL_RESOURCE_TYPES


@jsii.implements(IAspect)
class StatefulRetention:
    def __init__(self, deploy: DeployConfig) -> None:
        self._retain = deploy.removal_policy == RemovalPolicy.RETAIN

    def visit(self, node: IConstruct) -> None:
        if (
            self._retain
            and isinstance(node, CfnResource)
            and node.cfn_resource_type in STATEFUL_RESOURCE_TYPES
        ):
            node.apply_removal_policy(RemovalPolicy.RETAIN)
