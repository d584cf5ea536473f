"""Which deployment an operator command talks to: the local cloud or a stack on AWS.

- local: the stack outputs from `<state dir>/outputs.json` and the moto endpoint from
  `<state dir>/stack.json` (both written by `mlops local up`), with fake credentials;
- aws: the outputs of CloudFormation stack `<project>-<stage>`, with the usual boto3
  credentials, region and `AWS_ENDPOINT_URL`.

Without a choice, the local cloud is used when its outputs file exists.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from functions.common.config.loading import MlopsConfig

STATE_DIR_ENV = "MLOPS_LOCAL_STATE_DIR"
DEFAULT_STATE_DIR = Path(".mlops/local")
LOCAL_REGION = "us-east-1"
_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5)


class TargetError(Exception):
    """The chosen deployment cannot be reached or is incomplete; one sentence for the user."""


@dataclass
class Target:
    kind: Literal["local", "aws"]
    description: str
    outputs: dict[str, str]
    session: boto3.session.Session
    endpoint_url: str | None = None
    _clients: dict[str, Any] = field(default_factory=dict, repr=False)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(
                service,  # type: ignore[call-overload]
                endpoint_url=self.endpoint_url,
                config=_CLIENT_CONFIG,
            )
        return self._clients[service]

    def output(self, name: str) -> str:
        try:
            return self.outputs[name]
        except KeyError:
            known = ", ".join(sorted(self.outputs)) or "none"
            raise TargetError(
                f"the {self.description} has no output {name} (outputs: {known})"
            ) from None


def state_dir(path: Path | None = None) -> Path:
    """The local cloud's state directory: `path`, else `$MLOPS_LOCAL_STATE_DIR`, else
    `.mlops/local`."""
    return path or Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)


def resolve_target(
    config: MlopsConfig, *, local: bool | None, stage: str, local_state: Path | None = None
) -> Target:
    """The local cloud (`local=True`), the AWS stack of `stage` (`local=False`), or the local
    cloud when its outputs file exists (`local=None`).

    Raises:
        TargetError: the local cloud is not running, or the stack does not exist.
        ConfigError: `stage` is not configured.
    """
    directory = state_dir(local_state)
    if local is None:
        local = (directory / "outputs.json").is_file()
    if local:
        return _local(directory)
    config.stage(stage)
    return _aws(config.stack_name(stage))


def _local(directory: Path) -> Target:
    outputs_file, stack_file = directory / "outputs.json", directory / "stack.json"
    not_running = "the local cloud is not running"
    if not outputs_file.is_file() or not stack_file.is_file():
        raise TargetError(
            f"{not_running}: {outputs_file} not found; start it with `mlops local up`"
        )
    try:
        outputs = json.loads(outputs_file.read_text(encoding="utf-8"))
        endpoint = json.loads(stack_file.read_text(encoding="utf-8")).get("endpoint")
    except (OSError, json.JSONDecodeError) as exc:
        raise TargetError(f"cannot read the local cloud's state in {directory}: {exc}") from None
    if not endpoint:
        raise TargetError(f"{not_running}: {stack_file} names no endpoint")
    address = urlsplit(endpoint)
    try:
        with socket.create_connection((address.hostname, address.port or 80), timeout=2):
            pass
    except OSError:
        raise TargetError(
            f"{not_running}: nothing answers at {endpoint}; start it with `mlops local up`"
        ) from None
    session = boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name=LOCAL_REGION,
    )
    return Target(
        kind="local",
        description=f"local cloud at {endpoint}",
        outputs={str(k): str(v) for k, v in outputs.items()},
        session=session,
        endpoint_url=endpoint,
    )


def _aws(stack_name: str) -> Target:
    session = boto3.session.Session()
    region = session.region_name or "no region"
    try:
        cloudformation = session.client("cloudformation", config=_CLIENT_CONFIG)
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        message = str(exc.response.get("Error", {}).get("Message", exc))
        if "does not exist" in message:
            raise TargetError(
                f"stack {stack_name} does not exist in {region}; deploy it first "
                f"(`npx aws-cdk@2 deploy {stack_name}`)"
            ) from None
        raise TargetError(f"cannot describe stack {stack_name} in {region}: {message}") from None
    except BotoCoreError as exc:
        raise TargetError(f"cannot reach AWS to describe stack {stack_name}: {exc}") from None
    outputs = {
        str(output["OutputKey"]): str(output["OutputValue"])
        for output in stacks[0].get("Outputs", [])
    }
    return Target(
        kind="aws",
        description=f"AWS stack {stack_name} ({region})",
        outputs=outputs,
        session=session,
    )
