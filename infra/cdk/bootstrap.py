"""The deploy bootstrap: a separate CDK app with one stack, `<project>-deploy-bootstrap`, that
lets GitHub Actions deploy this repo without long-lived keys. Deployed once per account, by
someone with admin credentials, after `cdk bootstrap`:

    npx aws-cdk@2 deploy --app ".venv/bin/python -m infra.cdk.bootstrap" -c github_repo=owner/repo

It creates GitHub's OIDC provider and a deploy role that only workflows of `github_repo` on
`main`, on a `v*` tag or in environment `prod` can assume. The role may do nothing but assume
the CDK bootstrap roles (which do the deploying), read the project stacks' outputs and
resources, run the smoke test (`mlops smoke --aws`): invoke the project's functions with
the health-check event, GET the API's health routes, read alias production and its model;
and run `mlops migrate --aws --apply` (list quarantine/ and migrations/, write under
migrations/, Scan the registry, act as the erasure role).
Context: `github_repo` (required), `@aws-cdk/core:bootstrapQualifier` (default `hnb659fds`,
as `cdk bootstrap --qualifier`). `make synth` does not touch this app."""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks
from constructs import Construct

from functions.common.config.base import ConfigError
from functions.common.config.loading import load_config
from functions.common.layout import (
    BATCH_PREFIX,
    MIGRATIONS_PREFIX,
    MODELS_PREFIX,
    QUARANTINE_PREFIX,
)
from infra.cdk.config import REPO_ROOT
from infra.cdk.nag import acknowledge

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
STS_AUDIENCE = "sts.amazonaws.com"
REPO_CONTEXT = "github_repo"
QUALIFIER_CONTEXT = "@aws-cdk/core:bootstrapQualifier"
CDK_BOOTSTRAP_ROLES = ("deploy", "file-publishing", "image-publishing", "lookup")
"""The roles `cdk bootstrap` creates that the CDK CLI assumes to deploy, publish assets and
look up context; not `cfn-exec`, which only CloudFormation can assume."""
_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
_QUALIFIER = re.compile(r"[a-z0-9]{1,10}")


def _feature_flags() -> dict[str, Any]:
    """cdk.json's context, so `python3 -m infra.cdk.bootstrap` synthesizes what `cdk synth` does."""
    cdk_json = REPO_ROOT / "cdk.json"
    if not cdk_json.exists():
        return {}
    return dict(json.loads(cdk_json.read_text()).get("context", {}))


class BootstrapError(Exception):
    """The bootstrap app lacks or got a bad context value; one sentence for the user."""


def github_subjects(repo: str) -> list[str]:
    """The OIDC `sub` claims allowed to deploy: the main branch (dev), version tags (dev, then
    prod) and jobs in environment `prod`, whose claim names the environment instead of the ref."""
    return [
        f"repo:{repo}:ref:refs/heads/main",
        f"repo:{repo}:ref:refs/tags/v*",
        f"repo:{repo}:environment:prod",
    ]


class DeployBootstrapStack(cdk.Stack):
    def __init__(
        self, scope: Construct, *, project: str, github_repo: str, qualifier: str, **kwargs: Any
    ) -> None:
        name = f"{project}-deploy-bootstrap"
        super().__init__(
            scope,
            name,
            stack_name=name,
            description=f"GitHub Actions OIDC deploy role for {github_repo} ({project})",
            **kwargs,
        )
        cdk.Tags.of(self).add("project", project)

        # The native CloudFormation resource: no custom-resource Lambda, and IAM no longer
        # needs thumbprints for GitHub's provider.
        provider = iam.OidcProviderNative(
            self,
            "GitHubOidcProvider",
            url=f"https://{GITHUB_OIDC_HOST}",
            client_ids=[STS_AUDIENCE],
        )
        self.role = iam.Role(
            self,
            "DeployRole",
            description=f"Assumed by GitHub Actions of {github_repo} to run `cdk deploy`",
            assumed_by=iam.WebIdentityPrincipal(
                provider.oidc_provider_arn,
                conditions={
                    "StringEquals": {f"{GITHUB_OIDC_HOST}:aud": STS_AUDIENCE},
                    "StringLike": {f"{GITHUB_OIDC_HOST}:sub": github_subjects(github_repo)},
                },
            ),
            max_session_duration=cdk.Duration.hours(1),
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="AssumeCdkBootstrapRoles",
                actions=["sts:AssumeRole"],
                resources=[
                    f"arn:{self.partition}:iam::{self.account}:role/"
                    f"cdk-{qualifier}-{role}-role-{self.account}-{self.region}"
                    for role in CDK_BOOTSTRAP_ROLES
                ],
            )
        )
        project_stacks = f"arn:{self.partition}:cloudformation:{self.region}:{self.account}:stack/"
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadProjectStacks",
                # GetTemplate: `mlops predeploy --aws` compares the deployed template.
                actions=[
                    "cloudformation:DescribeStacks",
                    "cloudformation:GetTemplate",
                    "cloudformation:ListStackResources",
                ],
                resources=[f"{project_stacks}{project}-*/*"],
            )
        )
        acknowledge(
            self.role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudformation:<AWS::Region>:"
            f"<AWS::AccountId>:stack/{project}-*/*]",
            "Read-only DescribeStacks, GetTemplate and ListStackResources on this project's "
            f"stacks ({project}-<stage>): a stack ARN ends in an id CloudFormation generates at "
            "creation, so it cannot be named in advance.",
        )
        self._smoke_test_permissions(project)
        self._migrate_permissions(project)
        cdk.CfnOutput(self, "DeployRoleArn", value=self.role.role_arn)

    def _migrate_permissions(self, project: str) -> None:
        """What `mlops migrate --aws --apply` needs after a deploy (`infra.cli.migrate`): list
        the data bucket's quarantine/, batch/ and migrations/, read and write its checkpoints
        and audit records under migrations/, move batch jobs to their model's folder under
        batch/ (read, write, delete), count the registry table's items per format (Scan), and
        act as the stack's erasure role, which alone may move objects under quarantine/."""
        role, partition, account = self.role, self.partition, self.account
        tables = f"arn:{partition}:dynamodb:{self.region}:{account}:table/{project}-*"
        role.add_to_policy(
            iam.PolicyStatement(
                sid="MigrateCountFormats", actions=["dynamodb:Scan"], resources=[tables]
            )
        )
        bucket = f"arn:{partition}:s3:::{project}-*"
        for statement in (
            iam.PolicyStatement(
                sid="MigrateListDataBucket",
                actions=["s3:ListBucket"],
                resources=[bucket],
                conditions={
                    "StringLike": {
                        "s3:prefix": [
                            f"{QUARANTINE_PREFIX}*",
                            f"{BATCH_PREFIX}*",
                            f"{MIGRATIONS_PREFIX}*",
                        ]
                    }
                },
            ),
            iam.PolicyStatement(
                sid="MigrateRecords",
                actions=["s3:GetObject", "s3:PutObject"],
                resources=[f"{bucket}/{MIGRATIONS_PREFIX}*"],
            ),
            iam.PolicyStatement(
                sid="MigrateBatchLayout",
                actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                resources=[f"{bucket}/{BATCH_PREFIX}*"],
            ),
            iam.PolicyStatement(
                sid="MigrateActAsErasureRole",
                actions=["sts:AssumeRole"],
                resources=[f"arn:{partition}:iam::{account}:role/{project}-*"],
            ),
        ):
            role.add_to_policy(statement)
        for resource, reason in {
            f"s3:::{project}-*": (
                "mlops migrate lists the data bucket under quarantine/, batch/ and migrations/ "
                "only (an s3:prefix condition); the bucket name is generated from the stack name."
            ),
            f"s3:::{project}-*/{BATCH_PREFIX}*": (
                "mlops migrate moves batch jobs of the layout before model folders into their "
                "model's folder, under batch/ only; the bucket name is generated from the stack "
                "name."
            ),
            f"s3:::{project}-*/{MIGRATIONS_PREFIX}*": (
                "mlops migrate reads and writes its checkpoints and audit records under "
                "migrations/ only; the bucket name is generated from the stack name."
            ),
            f"iam::<AWS::AccountId>:role/{project}-*": (
                "mlops migrate acts as the stack's erasure role (the only project role that "
                "trusts the account; its name is generated from the stack name) to move objects "
                "under quarantine/, which the bucket policy reserves to ingest and that role."
            ),
        }.items():
            acknowledge(
                role, f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:{resource}]", reason
            )

    def _smoke_test_permissions(self, project: str) -> None:
        """What `mlops smoke --aws` needs after a deploy (`infra.cli.smoke`): invoke each function
        with the health-check event, GET the API's health routes, read alias production and
        its model file. Resource names are generated by CloudFormation from the stack name
        (`<project>-<stage>-...`), so they are matched by that prefix."""
        region, account, partition = self.region, self.account, self.partition
        functions = f"arn:{partition}:lambda:{region}:{account}:function:{project}-*"
        routes = [
            f"arn:{partition}:execute-api:{region}:{account}:*/*/GET/v1/health",
            f"arn:{partition}:execute-api:{region}:{account}:*/*/GET/v2/health/*",
        ]
        tables = f"arn:{partition}:dynamodb:{region}:{account}:table/{project}-*"
        models = f"arn:{partition}:s3:::{project}-*/{MODELS_PREFIX}*"
        for sid, actions, resources in (
            (
                "SmokeTestInvokeProjectFunctions",
                ["lambda:GetFunctionConfiguration", "lambda:InvokeFunction"],
                [functions],
            ),
            ("SmokeTestApiHealthRoutes", ["execute-api:Invoke"], routes),
            ("SmokeTestReadProductionAlias", ["dynamodb:GetItem"], [tables]),
            ("SmokeTestReadModelFiles", ["s3:GetObject"], [models]),
        ):
            self.role.add_to_policy(
                iam.PolicyStatement(sid=sid, actions=actions, resources=resources)
            )
        ack = {
            f"lambda:<AWS::Region>:<AWS::AccountId>:function:{project}-*": (
                "The smoke test invokes every function of the project's stacks with the "
                "side-effect-free health-check event; their names are generated by "
                f"CloudFormation from the stack name ({project}-<stage>-...)."
            ),
            "execute-api:<AWS::Region>:<AWS::AccountId>:*/*/GET/v1/health": (
                "The smoke test GETs the API's health routes only; the API id and stage are "
                "generated at deploy."
            ),
            "execute-api:<AWS::Region>:<AWS::AccountId>:*/*/GET/v2/health/*": (
                "The smoke test GETs the API's health routes only (live, ready); the API id and "
                "stage are generated at deploy."
            ),
            f"dynamodb:<AWS::Region>:<AWS::AccountId>:table/{project}-*": (
                "The smoke test reads alias production and its version record (GetItem only); "
                f"the registry table's name is generated from the stack name ({project}-<stage>)."
            ),
        }
        for resource, reason in ack.items():
            acknowledge(
                self.role, f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:{resource}]", reason
            )
        acknowledge(
            self.role,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{project}-*/{MODELS_PREFIX}*]",
            "The smoke test reads the production model's ONNX file to verify its checksum "
            "(GetObject under models/ only); the bucket name is generated from the stack name.",
        )


def build_app(outdir: str | None = None, context: dict[str, Any] | None = None) -> cdk.App:
    if outdir is None and "CDK_OUTDIR" not in os.environ:
        outdir = str(REPO_ROOT / "cdk.out")
    app = cdk.App(outdir=outdir, context={**_feature_flags(), **(context or {})})
    repo = app.node.try_get_context(REPO_CONTEXT)
    if not repo:
        raise BootstrapError(
            f"the deploy bootstrap needs the GitHub repository allowed to deploy: "
            f"pass -c {REPO_CONTEXT}=<owner>/<repo>"
        )
    if not _REPO.fullmatch(str(repo)):
        raise BootstrapError(f"context {REPO_CONTEXT} must look like <owner>/<repo>, got {repo!r}")
    qualifier = str(
        app.node.try_get_context(QUALIFIER_CONTEXT) or cdk.DefaultStackSynthesizer.DEFAULT_QUALIFIER
    )
    if not _QUALIFIER.fullmatch(qualifier):
        raise BootstrapError(
            f"context {QUALIFIER_CONTEXT} must be 1-10 lowercase letters or digits (as "
            f"`cdk bootstrap --qualifier`), got {qualifier!r}"
        )
    DeployBootstrapStack(
        app, project=load_config().project.name, github_repo=str(repo), qualifier=qualifier
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def main() -> None:
    try:
        app = build_app()
    except (BootstrapError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    app.synth()


if __name__ == "__main__":
    main()
