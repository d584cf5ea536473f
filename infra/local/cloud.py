"""`LocalCloud`: deploy a synthesized stack into moto and drive it, in one of two modes.

- `server` (the default): moto's HTTP server on host:port in a thread of this process (what
  `mlops local up` runs); clients use the endpoint. Functions run in function workers
  (`infra.local.workers`), processes of their own that reach the cloud through
  `AWS_ENDPOINT_URL`, as Lambda runs them (`functions="workers"`).
- `inprocess` (a debugging aid): moto's `mock_aws` intercepts boto3 in this process; no socket
  is opened, and functions run in this process (`functions="inprocess"`, also possible in
  server mode): quick to step through, but not what Lambda runs.

Either mode can also serve the REST API over HTTP (`api_port=` at start, or `start_api()`;
`api_url` starts it on a free port when first asked): the stack output `ApiUrl` is then the
adapter's URL, in `outputs` and in outputs.json.

One cloud per process at a time: moto's backends and the hooks are process-wide.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import boto3
from botocore.config import Config

from infra.local import eventbridge, hooks, lambda_runtime, workers
from infra.local.api_adapter import ApiAdapter
from infra.local.api_routes import load_rest_api
from infra.local.assembly import load_stack
from infra.local.authz import usage
from infra.local.authz.enforcer import ENFORCER
from infra.local.deployer import Deployer, Deployment, write_state
from infra.local.eventbridge import DISPATCHER, Delivery
from infra.local.intrinsics import ACCOUNT_ID, REGION
from infra.local.lambda_config import REGISTRY, SETTINGS
from infra.local.lambda_inprocess import ISOLATED_PREFIX
from infra.local.server import DEFAULT_HOST, MotoServer

if TYPE_CHECKING:
    from infra.cdk.function_env import HostEnvironment

REPO_ROOT = Path(__file__).resolve().parents[2]
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
Mode = Literal["server", "inprocess"]
Functions = Literal["workers", "inprocess"]

_active_lock = threading.Lock()
_active: LocalCloud | None = None


class LocalCloud:
    """A deployed local cloud. Start it with `LocalCloud.start(...)`, use it as a context
    manager (or call `stop()`)."""

    def __init__(self, mode: Mode, region: str = REGION, functions: Functions = "workers") -> None:
        self.mode = mode
        self.functions = functions
        self.region = region
        self.account_id = ACCOUNT_ID
        self.endpoint: str | None = None
        self.deployment: Deployment | None = None
        self._server: MotoServer | None = None
        self._mock: Any = None
        self._clients: dict[str, Any] = {}
        self._api: ApiAdapter | None = None
        self._state_dir: Path | None = None
        self._code_root = REPO_ROOT
        self.enforce_iam = False

    @classmethod
    def start(
        cls,
        cdk_out: str | Path = "cdk.out",
        stack_name: str | None = None,
        mode: Mode = "server",
        port: int = 0,
        host: str = DEFAULT_HOST,
        state_dir: str | Path | None = None,
        code_root: str | Path = REPO_ROOT,
        api_port: int | None = None,
        functions: Functions | None = None,
        prewarm: bool = False,
        enforce_iam: bool | None = None,
    ) -> LocalCloud:
        """Start moto (server or in-process), install the hooks and deploy the stack.
        `state_dir`, if given, receives outputs.json and stack.json. `api_port` (0: a free
        one) also serves the REST API over HTTP on `host` (see `start_api`). `functions`:
        `workers` (the server mode's default) or `inprocess` (the in-process mode's, and its
        only choice). `prewarm`: with workers, initialize one environment of every function
        as soon as it is deployed, as Lambda's proactive initialization may (the first
        invocations then skip their cold start). `enforce_iam` (default: with workers)
        authorizes every call a function, a state machine or a rule target makes against its
        role's policies and the resource's (`infra.local.authz`); the operator's calls (this
        process's `client`, the CLI) are not evaluated."""
        global _active
        functions = functions or ("workers" if mode == "server" else "inprocess")
        if mode == "inprocess" and functions == "workers":
            raise ValueError("function workers reach the cloud over HTTP: use mode='server'")
        with _active_lock:
            if _active is not None:
                raise RuntimeError("a local cloud is already running in this process")
            cloud = cls(mode, functions=functions)
            _active = cloud
        try:
            if state_dir is not None:
                # A previous run's files must not describe this cloud before it is deployed.
                for name in ("outputs.json", "stack.json"):
                    (Path(state_dir) / name).unlink(missing_ok=True)
            SETTINGS.prewarm = prewarm
            cloud.enforce_iam = functions == "workers" if enforce_iam is None else enforce_iam
            cloud._boot(Path(cdk_out), stack_name, port, host, Path(code_root))
            if api_port is not None:
                cloud.start_api(port=api_port, host=host)
            if state_dir is not None:
                cloud._state_dir = Path(state_dir)
                write_state(cloud._require_deployment(), cloud._state_dir, cloud.endpoint)
        except BaseException:
            cloud.stop()
            raise
        return cloud

    def _boot(
        self, cdk_out: Path, stack_name: str | None, port: int, host: str, code_root: Path
    ) -> None:
        stack = load_stack(cdk_out, stack_name)
        hooks.install()
        _reset_function_state()
        SETTINGS.code_root = code_root
        if self.mode == "server":
            self._server = MotoServer(host, port)
            self.endpoint = self._server.start()
        # This process's own calls (the deployer, the API adapter, the Step Functions
        # interpreter, tests) reach moto's backends directly, in both modes; function workers
        # and other processes (the CLI, `aws`) come over HTTP to the same backends.
        from moto import mock_aws

        self._mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self._mock.start(reset=False)
        SETTINGS.endpoint_url = self.endpoint
        SETTINGS.workers = self.functions == "workers"
        ENFORCER.reset(self.enforce_iam, self.account_id, self.region)
        workers.WORKERS.endpoint = self.endpoint
        workers.WORKERS.echo_output = SETTINGS.echo_function_output
        self._code_root = code_root
        self.deployment = Deployer(stack, self.client, code_root).deploy()

    def update(self, cdk_out: str | Path, stack_name: str | None = None) -> Deployment:
        """Update the deployed stack in place to the template (and code) in `cdk_out`, as a
        CloudFormation stack update does (`Deployer.update`): unchanged resources and their
        data are kept, changed ones updated or replaced, removed ones deleted unless
        retained. A running REST API serves the updated routes; the state dir is rewritten.
        Returns the new deployment (its resources' `change`, and `removed`)."""
        previous = self._require_deployment()
        stack = load_stack(Path(cdk_out), stack_name or previous.stack_name)
        if stack.name != previous.stack_name:
            raise ValueError(f"{cdk_out} holds stack {stack.name}, not {previous.stack_name}")
        DISPATCHER.wait_idle(timeout=30.0)
        deployment = Deployer(stack, self.client, self._code_root).update(previous)
        self.deployment = deployment
        if self._api is not None:
            apis = deployment.of_type("AWS::ApiGateway::RestApi")
            stages = list(deployment.of_type("AWS::ApiGateway::Stage").values())
            (api_id,) = apis.values()
            self._api.api = load_rest_api(self.client, api_id, stages[0] if stages else "local")
            deployment.outputs["ApiUrl"] = self._api.url
        if self._state_dir is not None:
            write_state(deployment, self._state_dir, self.endpoint)
        return deployment

    def stop(self, grace_seconds: float = 10.0) -> None:
        """Let queued deliveries and running executions finish (up to `grace_seconds`), then
        stop moto. Safe to call twice."""
        global _active
        deadline = time.monotonic() + grace_seconds
        if self._api is not None:
            self._api.stop()
            self._api = None
        DISPATCHER.wait_idle(timeout=grace_seconds)
        while self.deployment is not None and self._running() and time.monotonic() < deadline:
            time.sleep(0.1)
        if ENFORCER.enabled and self.deployment is not None:
            usage.record(self.deployment, ENFORCER.take_used(), self.account_id)
        workers.WORKERS.reset()
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._mock is not None:
            self._mock.stop()
            self._mock = None
        SETTINGS.endpoint_url = None
        SETTINGS.workers = False
        ENFORCER.enabled = False
        SETTINGS.prewarm = False
        self._clients.clear()
        with _active_lock:
            if _active is self:
                _active = None

    def __enter__(self) -> LocalCloud:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def outputs(self) -> dict[str, Any]:
        return dict(self._require_deployment().outputs)

    def start_api(self, port: int = 0, host: str = DEFAULT_HOST) -> str:
        """Serve the stack's REST API over HTTP (as `sam local start-api`) on host:port
        (0: a free port); returns its base URL, which becomes the `ApiUrl` output. Starting
        it again returns the running one's URL."""
        if self._api is not None:
            return self._api.url
        deployment = self._require_deployment()
        apis = deployment.of_type("AWS::ApiGateway::RestApi")
        if not apis:
            raise LookupError("the stack has no REST API (AWS::ApiGateway::RestApi)")
        if len(apis) > 1:
            raise LookupError(f"the stack has several REST APIs: {', '.join(apis)}")
        (api_id,) = apis.values()
        stages = list(deployment.of_type("AWS::ApiGateway::Stage").values())
        rest_api = load_rest_api(self.client, api_id, stages[0] if stages else "local")
        self._api = ApiAdapter(rest_api, self.client, self.account_id, self.region)
        url = self._api.start(host=host, port=port)
        _pass_through_moto(url)
        deployment.outputs["ApiUrl"] = url
        if self._state_dir is not None:
            write_state(deployment, self._state_dir, self.endpoint)
        return url

    @property
    def api_url(self) -> str:
        """Base URL of the REST API over HTTP, started on a free port if not running."""
        return self.start_api()

    def client(self, service: str) -> Any:
        """A boto3 client for this cloud (fake credentials): its calls reach moto's backends
        in this process, in either mode."""
        if service not in self._clients:
            self._clients[service] = boto3.session.Session().client(
                service,  # type: ignore[call-overload]
                region_name=self.region,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                config=Config(retries={"mode": "standard", "max_attempts": 3}),
            )
        return self._clients[service]

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until every queued EventBridge delivery is done (executions may still run)."""
        if not DISPATCHER.wait_idle(timeout):
            raise TimeoutError(f"EventBridge deliveries still pending after {timeout} s")

    @property
    def deliveries(self) -> list[Delivery]:
        return list(DISPATCHER.deliveries)

    def fire_schedule(self, rule: str) -> dict[str, Any]:
        """Deliver a scheduled event for a schedule rule (name, ARN or logical id) now."""
        rules = self._require_deployment().of_type("AWS::Events::Rule")
        return eventbridge.fire_schedule(rules.get(rule, rule))

    @property
    def pipeline_arn(self) -> str:
        outputs = self.outputs
        if "PipelineStateMachineArn" in outputs:
            return str(outputs["PipelineStateMachineArn"])
        machines = list(self._require_deployment().of_type("AWS::StepFunctions::StateMachine"))
        if len(machines) != 1:
            raise LookupError("no PipelineStateMachineArn output and not exactly one state machine")
        return self._require_deployment().physical_id(machines[0])

    def executions(self, state_machine_arn: str | None = None) -> list[dict[str, Any]]:
        """Executions of a state machine (the pipeline by default), newest first."""
        paginator = self.client("stepfunctions").get_paginator("list_executions")
        pages = paginator.paginate(stateMachineArn=state_machine_arn or self.pipeline_arn)
        return [execution for page in pages for execution in page["executions"]]

    def execution_history(self, execution: dict[str, Any]) -> list[dict[str, Any]]:
        """Every history event of an execution (as `list_executions` or `describe_execution`
        returns it), oldest first."""
        pages = (
            self.client("stepfunctions")
            .get_paginator("get_execution_history")
            .paginate(executionArn=execution["executionArn"])
        )
        return [event for page in pages for event in page["events"]]

    def wait_for_execution(
        self, execution: str, timeout: float = 60.0, state_machine_arn: str | None = None
    ) -> dict[str, Any]:
        """`describe_execution` once the execution (ARN, or name under the pipeline) has ended;
        an execution that does not exist yet (delivery still queued) is waited for too."""
        arn = (
            execution
            if execution.startswith("arn:")
            else self._execution_arn(execution, state_machine_arn)
        )
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        status = "not started"
        while time.monotonic() < deadline:
            try:
                described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
            except sfn.exceptions.ExecutionDoesNotExist:
                described = {"status": "not started"}
            status = described["status"]
            if status in TERMINAL:
                return described
            time.sleep(0.1)
        raise TimeoutError(f"execution {arn} still {status} after {timeout} s")

    @staticmethod
    def execution_name_for_object(
        bucket: str, key: str, version_id: str | None = None, etag: str | None = None
    ) -> str:
        """The name of the execution a drop of this object version starts (see eventbridge)."""
        detail = {
            "bucket": {"name": bucket},
            "object": {"key": key, "eTag": (etag or "").strip('"')},
        }
        if version_id:
            detail["object"]["version-id"] = version_id
        return eventbridge.execution_name("", {"source": "aws.s3", "detail": detail})

    def drop(self, key: str, body: bytes, timeout: float = 120.0) -> dict[str, Any]:
        """Put `body` at `key` in the data bucket and wait for the pipeline execution the drop
        starts; returns it described (`describe_execution`)."""
        bucket = str(self.outputs["DataBucketName"])
        put = self.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
        name = self.execution_name_for_object(bucket, key, put.get("VersionId"), put["ETag"])
        return self.wait_for_execution(name, timeout=timeout)

    def wait_for_executions(
        self, count: int, timeout: float = 60.0, state_machine_arn: str | None = None
    ) -> list[dict[str, Any]]:
        """Wait until `count` executions exist and all have ended; returns them described."""
        deadline = time.monotonic() + timeout
        self.wait_idle(timeout)
        while len(found := self.executions(state_machine_arn)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(found)} of {count} executions after {timeout} s")
            time.sleep(0.1)
        remaining = lambda: max(0.1, deadline - time.monotonic())  # noqa: E731
        return [self.wait_for_execution(e["executionArn"], remaining()) for e in found]

    def sent_notifications(self, topic_arn: str | None = None) -> list[dict[str, Any]]:
        """Messages published to a topic (the alerts topic by default), oldest first."""
        from moto.sns.models import sns_backends

        arn = topic_arn or str(self.outputs["AlertsTopicArn"])
        topic = sns_backends[self.account_id][self.region].topics[arn]
        return [
            {"MessageId": message_id, "Message": message, "Subject": subject}
            for message_id, message, subject, *_ in topic.sent_notifications
        ]

    def function_name(self, logical_id: str) -> str:
        """The deployed name of the function whose logical id is, or starts with,
        `logical_id` (e.g. `PipelineIngestFunction`)."""
        return self._deployed_name("AWS::Lambda::Function", logical_id, "functions")

    @contextlib.contextmanager
    def edited_function(self, logical_id: str) -> Iterator[HostEnvironment]:
        """While open, the function runs from a copy of its deployment (as built for this
        machine) that the caller may change: remove a package, replace a file. Invocations
        then start new workers from the copy, as after a deploy; on exit the deployment is
        the original again. The copy shares files with the original (hard links): delete or
        replace files, never write into one in place."""
        from infra.cdk.function_env import HostEnvironment

        name = self.function_name(logical_id)
        original = REGISTRY.get(name)
        if original is None or original.host is None:
            raise LookupError(f"function {name} has no deployment built for workers")
        host = original.host
        (REPO_ROOT / ".mlops").mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="edited-", dir=REPO_ROOT / ".mlops") as tmp:
            root = Path(tmp)
            copies = {}
            for index, path in enumerate((host.task_root, *host.layers, *host.site_packages)):
                copies[path] = root / f"{index}-{path.name}"
                shutil.copytree(path, copies[path], symlinks=True, copy_function=os.link)
            edited = HostEnvironment(
                host.python,
                copies[host.task_root],
                tuple(copies[path] for path in host.layers),
                tuple(copies[path] for path in host.site_packages),
            )
            REGISTRY.register(name, dataclasses.replace(original, host=edited))
            try:
                yield edited
            finally:
                REGISTRY.register(name, original)

    def role_name(self, logical_id: str) -> str:
        """The deployed name of the role whose logical id is, or starts with, `logical_id`
        (e.g. `PipelineIngestFunctionRole`)."""
        return self._deployed_name("AWS::IAM::Role", logical_id, "roles")

    def _deployed_name(self, resource_type: str, logical_id: str, kind: str) -> str:
        """The deployed name of the one resource of `resource_type` whose logical id is, or
        starts with, `logical_id`; LookupError naming `kind` when not exactly one."""
        deployed = self._require_deployment().of_type(resource_type)
        found = [name for key, name in deployed.items() if key.startswith(logical_id)]
        if len(found) != 1:
            raise LookupError(f"{len(found)} {kind} match {logical_id!r}: {sorted(deployed)}")
        return found[0]

    @contextlib.contextmanager
    def role_policies_changed(self, logical_id: str, edit: Any) -> Iterator[None]:
        """While open, the role's inline policies are `edit(documents)` (it changes the
        documents, by policy name, in place); on exit they are the deployed ones again."""
        import json

        if not self.enforce_iam:
            raise RuntimeError("IAM is not enforced in this cloud: start it with enforce_iam")
        iam = self.client("iam")
        name = self.role_name(logical_id)
        saved = {
            policy: iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
            for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]
        }
        documents = {policy: json.loads(json.dumps(document)) for policy, document in saved.items()}
        edit(documents)
        self._put_policies(name, documents)
        try:
            yield
        finally:
            self._put_policies(name, saved)

    def _put_policies(self, role: str, documents: dict[str, Any]) -> None:
        import json

        iam = self.client("iam")
        for policy, document in documents.items():
            iam.put_role_policy(
                RoleName=role, PolicyName=policy, PolicyDocument=json.dumps(document)
            )

    def _execution_arn(self, name: str, state_machine_arn: str | None) -> str:
        machine = state_machine_arn or self.pipeline_arn
        return machine.replace(":stateMachine:", ":execution:") + f":{name}"

    def _running(self) -> bool:
        from moto.stepfunctions.responses import get_backend

        try:
            backend = get_backend(self.account_id, self.region)
            return any(
                execution.status == "RUNNING"
                for machine in backend.state_machines
                for execution in machine.executions
            )
        except Exception:
            return False

    def _require_deployment(self) -> Deployment:
        if self.deployment is None:
            raise RuntimeError("the local cloud is not deployed")
        return self.deployment


def _reset_function_state() -> None:
    """A new cloud is a cold start for every function: clear the lru_caches of the loaded
    `functions.*` modules (cached boto3 clients, `deployed_config`, `stage_settings`, ...),
    forget resolved handlers and queued deliveries. Other module-level state survives."""
    lambda_runtime.reset()
    workers.WORKERS.reset()
    DISPATCHER.reset()
    from functions.adapters.aws import reset_clients

    reset_clients()
    for name, module in list(sys.modules.items()):
        if name.startswith(ISOLATED_PREFIX):
            del sys.modules[name]
        elif name == "functions" or name.startswith("functions."):
            for value in list(vars(module).values()):
                if callable(getattr(value, "cache_clear", None)) and hasattr(value, "cache_info"):
                    value.cache_clear()


def _pass_through_moto(url: str) -> None:
    """Let this process's HTTP calls to `url` through moto's mock, which patches `requests`
    too and would answer a path such as `/v2/models/lambda.amazonaws.com/ready` itself
    (its AWS URL patterns match anywhere after the host). The mock restores its config when
    it stops, so the entry lasts as long as this cloud."""
    from moto.core.config import default_user_config

    config: dict[str, Any] = default_user_config  # type: ignore[assignment]
    core = dict(config.get("core") or {})
    passthrough = dict(core.get("passthrough") or {})
    passthrough["urls"] = [*passthrough.get("urls", []), re.escape(url)]
    core["passthrough"] = passthrough
    config["core"] = core
