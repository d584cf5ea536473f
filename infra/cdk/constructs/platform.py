"""What the lifecycle constructs (pipeline, serving, monitoring, batch) are all built on."""

from __future__ import annotations

from typing import NamedTuple

from aws_cdk import aws_sns as sns

from infra.cdk.config import DeployConfig
from infra.cdk.constructs.data_lake import DataLake
from infra.cdk.constructs.registry import Registry


class Platform(NamedTuple):
    """The stage's deployment settings and the shared resources its functions use: the data
    lake, the registry and the alerts topic (unpacks in that order)."""

    deploy: DeployConfig
    data_lake: DataLake
    registry: Registry
    alerts: sns.ITopic

    def stage_environment(self) -> dict[str, str]:
        """The variables every function reads through `functions.common.settings`."""
        return {
            "DATA_BUCKET": self.data_lake.bucket.bucket_name,
            "REGISTRY_TABLE": self.registry.table.table_name,
            "STAGE": self.deploy.stage,
            "CODE_VERSION": self.deploy.commit,
        }
