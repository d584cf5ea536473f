"""SageMaker training jobs on the local cloud: a substitution, not an emulation.

moto's Step Functions interpreter does not run the `sagemaker:createTrainingJob.sync`
integration (and moto's SageMaker runs no containers). The local cloud substitutes that one
task: it lays out what SageMaker gives a training container in a temporary folder,

    input/config/hyperparameters.json   the task's HyperParameters (string values)
    input/config/resourceconfig.json    one host, algo-1
    input/config/inputdataconfig.json   the channels
    input/data/<channel>/...            each channel's objects, copied from the local S3
                                        (S3Prefix: keys under the prefix; ManifestFile: the
                                        manifest's keys), by their path relative to it
    model/                              what the job leaves here becomes model.tar.gz

runs the training image's `train` program in this process with the root pointed there (the
module the program runs, `python -m <module>`, read from the program itself, and that module's
`main(root)`, the function its `python -m` run calls), tars `model/` to
`<S3OutputPath><job>/output/model.tar.gz` and returns a DescribeTrainingJob-shaped result
(`TrainingJobStatus` Completed, `ModelArtifacts.S3ModelArtifacts`), as the .sync integration
does. A failing entry point (or a channel that cannot be copied) fails the task with
`States.TaskFailed` and the job's description (`FailureReason` from `output/failure`) as the
cause, so Catch runs. Each substitution is logged: "local cloud: SageMaker training job <name>
run in-process (substituted)". Not substituted: the image itself (the repo's `functions/`
package and this interpreter's packages stand in for it), instance types, volumes,
MaxRuntimeInSeconds, and every other SageMaker API.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from infra.cdk.config import REPO_ROOT

log = logging.getLogger("infra.local.sagemaker")

SUBSTITUTED = "local cloud: SageMaker training job %s run in-process (substituted)"
ACCESS_DENIED = "SageMaker.AmazonSageMakerException"
"""How Step Functions names a SageMaker API error that SageMaker's SDK does not model (an
AccessDeniedException)."""
SAGEMAKER_SERVICE = "sagemaker.amazonaws.com"
TRAINING_PROGRAM = REPO_ROOT / "layers" / "training" / "train"
"""The training image's `train` program (SageMaker runs `docker run <image> train`)."""
_RUNS_MODULE = re.compile(r"^\s*exec\s+python3?\s+-m\s+([\w.]+)", re.MULTILINE)


def entry_point(program: Path = TRAINING_PROGRAM) -> Any:
    """The `main` of the module the training program runs (`exec python -m <module>`)."""
    found = _RUNS_MODULE.search(program.read_text(encoding="utf-8"))
    if found is None:
        raise ValueError(f"{program} runs no `python -m <module>`: nothing to substitute")
    return importlib.import_module(found.group(1)).main


def _job_s3_client(
    parameters: dict[str, Any], state_credentials: Any, region: str, account: str
) -> Any:
    """With IAM enforced: authorize the state machine's role to create the job and pass its
    role (raises AccessDenied), and return an S3 client with the job role's credentials, with
    which SageMaker reads the channels and writes the model. None when not enforced."""
    import boto3

    from infra.local.authz import principals
    from infra.local.authz.enforcer import ENFORCER
    from infra.local.authz.needs import Needed
    from infra.local.sfn_engine import task_credentials

    if not ENFORCER.enabled or state_credentials is None:
        return None
    session = task_credentials(state_credentials)
    caller = principals.from_access_key(session.access_key_id, account)
    name = str(parameters.get("TrainingJobName", ""))
    job = f"arn:aws:sagemaker:{region}:{account}:training-job/{name.lower()}"
    role = str(parameters.get("RoleArn", ""))
    if caller is not None:
        ENFORCER.check(
            caller,
            [
                Needed("sagemaker:CreateTrainingJob", job),
                Needed("iam:PassRole", role, {"iam:PassedToService": SAGEMAKER_SERVICE}),
                Needed("sagemaker:DescribeTrainingJob", job),
            ],
            "sagemaker.CreateTrainingJob",
        )
    job_session = principals.session_credentials(role, name, SAGEMAKER_SERVICE, source_arn=job)
    return boto3.client(
        "s3",
        region_name=region,
        aws_access_key_id=job_session.access_key_id,
        aws_secret_access_key=job_session.secret_access_key,
        aws_session_token=job_session.session_token,
    )


class TrainingJobFailed(Exception):
    """The substituted job ended Failed; `description` is its DescribeTrainingJob."""

    def __init__(self, description: dict[str, Any]) -> None:
        super().__init__(description["FailureReason"])
        self.description = description


def run_training_job(
    parameters: dict[str, Any], s3: Any, region: str, account: str
) -> dict[str, Any]:
    """Run one CreateTrainingJob request in-process; the job's description once it ended."""
    from functions.common.layout import SageMakerLayout

    name = parameters["TrainingJobName"]
    log.warning(SUBSTITUTED, name)
    started = _now()
    description: dict[str, Any] = {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:{region}:{account}:training-job/{name.lower()}",
        "AlgorithmSpecification": parameters.get("AlgorithmSpecification", {}),
        "RoleArn": parameters.get("RoleArn"),
        "HyperParameters": _strings(parameters.get("HyperParameters") or {}),
        "InputDataConfig": parameters.get("InputDataConfig", []),
        "OutputDataConfig": parameters.get("OutputDataConfig", {}),
        "ResourceConfig": parameters.get("ResourceConfig", {}),
        "StoppingCondition": parameters.get("StoppingCondition", {}),
        "CreationTime": started,
        "TrainingStartTime": started,
    }
    with TemporaryDirectory(prefix="sagemaker-") as tmp:
        layout = SageMakerLayout(Path(tmp))
        try:
            _write_config(layout, description)
            for channel in description["InputDataConfig"]:
                _copy_channel(s3, channel, layout.channel(channel["ChannelName"]))
        except Exception as exc:
            raise TrainingJobFailed(
                _ended(description, "Failed", f"ClientError: Data download failed: {exc}")
            ) from exc
        if entry_point()(str(layout.root)) != 0:
            reason = (
                layout.failure.read_text(encoding="utf-8")
                if layout.failure.is_file()
                else "AlgorithmError: the training program exited with an error"
            )
            raise TrainingJobFailed(_ended(description, "Failed", f"AlgorithmError: {reason}"))
        output = description["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        bucket, _, prefix = output.removeprefix("s3://").partition("/")
        key = f"{prefix}/{name}/output/model.tar.gz".lstrip("/")
        archive = Path(tmp) / "model.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            for path in sorted(layout.model_dir.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(layout.model_dir)), recursive=False)
        s3.upload_file(str(archive), bucket, key)
    finished = _ended(description, "Completed", None)
    finished["ModelArtifacts"] = {"S3ModelArtifacts": f"s3://{bucket}/{key}"}
    return finished


def _write_config(layout: Any, description: dict[str, Any]) -> None:
    config = layout.hyperparameters.parent
    config.mkdir(parents=True, exist_ok=True)
    layout.hyperparameters.write_text(json.dumps(description["HyperParameters"]))
    layout.resource_config.write_text(
        json.dumps(
            {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}
        )
    )
    channels = {
        channel["ChannelName"]: {
            "TrainingInputMode": "File",
            "S3DistributionType": channel["DataSource"]["S3DataSource"].get(
                "S3DataDistributionType", "FullyReplicated"
            ),
            **({"ContentType": channel["ContentType"]} if "ContentType" in channel else {}),
        }
        for channel in description["InputDataConfig"]
    }
    layout.input_data_config.write_text(json.dumps(channels))
    layout.model_dir.mkdir(parents=True, exist_ok=True)
    layout.failure.parent.mkdir(parents=True, exist_ok=True)


def _copy_channel(s3: Any, channel: dict[str, Any], target: Path) -> None:
    source = channel["DataSource"]["S3DataSource"]
    bucket, _, key = source["S3Uri"].removeprefix("s3://").partition("/")
    if source["S3DataType"] == "ManifestFile":
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        base = manifest[0]["prefix"]
        base_bucket, _, base_key = base.removeprefix("s3://").partition("/")
        objects = [(base_bucket, base_key + relative, relative) for relative in manifest[1:]]
    elif source["S3DataType"] == "S3Prefix":
        directory = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
        paginator = s3.get_paginator("list_objects_v2")
        objects = [
            (bucket, item["Key"], item["Key"][len(directory) :])
            for page in paginator.paginate(Bucket=bucket, Prefix=key)
            for item in page.get("Contents", [])
            if not item["Key"].endswith("/")
        ]
        if not objects:
            raise FileNotFoundError(f"no objects under {source['S3Uri']}")
    else:
        raise ValueError(f"S3DataType {source['S3DataType']} is not substituted locally")
    for object_bucket, object_key, relative in objects:
        local = target / relative
        local.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(object_bucket, object_key, str(local))


def _ended(description: dict[str, Any], status: str, reason: str | None) -> dict[str, Any]:
    ended = {
        **description,
        "TrainingJobStatus": status,
        "SecondaryStatus": status,
        "TrainingEndTime": _now(),
        "LastModifiedTime": _now(),
    }
    if reason is not None:
        ended["FailureReason"] = reason[:1024]
    return ended


def _strings(values: dict[str, Any]) -> dict[str, str]:
    # SageMaker hyperparameters are strings; a JSON value is passed as its JSON text.
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def install() -> None:
    """Have moto's interpreter run `sagemaker:createTrainingJob.sync` tasks through
    `run_training_job` (idempotent). Other SageMaker integrations stay unsupported."""
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
        CustomErrorName,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
        StatesErrorName,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import (
        state_task_factory,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for

    original = state_task_factory.state_task_service_for
    if getattr(original, "_mlops_sagemaker", False):
        return

    class StateTaskServiceSageMakerTraining(state_task_service.StateTaskService):  # type: ignore[misc]
        def _validate_service_integration_is_supported(self) -> None:
            action, condition = self.resource.api_action, self.resource.condition
            if action != "createTrainingJob" or condition != "sync":
                raise ValueError(
                    f"the local cloud substitutes only sagemaker:createTrainingJob.sync, not "
                    f"{self.resource.resource_arn}"
                )

        def _get_sfn_resource(self) -> str:
            return f"{self.resource.api_action}.{self.resource.condition}"

        def _eval_service_task(
            self,
            env: Any,
            resource_runtime_part: Any,
            normalised_parameters: dict[str, Any],
            state_credentials: Any,
        ) -> None:
            region = resource_runtime_part.region
            account = resource_runtime_part.account
            s3 = _job_s3_client(normalised_parameters, state_credentials, region, account)
            if s3 is None:
                s3 = boto_client_for(
                    region=region, service="s3", state_credentials=state_credentials
                )
            env.stack.append(run_training_job(normalised_parameters, s3, region, account))

        def _from_error(self, env: Any, ex: Exception) -> Any:
            from infra.local.authz.enforcer import AccessDenied
            from infra.local.sfn_engine import sdk_cause

            if isinstance(ex, AccessDenied):
                cause = sdk_cause(str(ex), "AmazonSageMaker", 400, "AccessDeniedException", "local")
                return self._task_failed(env, CustomErrorName(ACCESS_DENIED), cause)
            if not isinstance(ex, TrainingJobFailed):
                return super()._from_error(env=env, ex=ex)
            return self._task_failed(
                env,
                StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                json.dumps(ex.description),
            )

        def _task_failed(self, env: Any, error: Any, cause: str) -> Any:
            """The task's failure event (TaskFailed, with this task's resource): `error` is
            its error name, which a Catch or Retry matches."""
            return FailureEvent(
                env=env,
                error_name=error,
                event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(  # type: ignore[typeddict-item]
                    taskFailedEventDetails=TaskFailedEventDetails(
                        error=error.error_name,
                        cause=cause,
                        resource=self._get_sfn_resource(),
                        resourceType=self._get_sfn_resource_type(),
                    )
                ),
            )

    def state_task_service_for(service_name: str) -> Any:
        if service_name == "sagemaker":
            return StateTaskServiceSageMakerTraining()
        return original(service_name)

    state_task_service_for._mlops_sagemaker = True  # type: ignore[attr-defined]
    state_task_factory.state_task_service_for = state_task_service_for
    _fail_state_passes_states_errors()


def _fail_state_passes_states_errors() -> None:
    """A Fail state whose ErrorPath finds a `States.` error (the caught `States.TaskFailed`
    of a failed training job) ends the execution with that error, as on AWS; moto's Fail state
    accepts only custom error names and crashes the execution instead."""
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
        CustomErrorName,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
        StatesErrorName,
    )
    from moto.stepfunctions.parser.asl.component.state.fail import state_fail

    def error_name(value: str | None) -> Any:
        if value is not None and value.startswith("States."):
            return StatesErrorName.from_name(value)
        return CustomErrorName(value)

    state_fail.CustomErrorName = error_name  # type: ignore[misc,assignment]
