"""moto's Step Functions interpreter: real execution, JSONata, and quieter logs.

moto runs ASL only with config `{"stepfunctions": {"execute_state_machine": True}}`, chosen
per request: state machines created before it is on live in the other backend and never run.
Its JSONata module evaluates through a JVM bridge it does not ship; the pure-Python
`jsonata-python` evaluator takes its place. moto's interpreter logs an ERROR for every failed
state, including the expected Fail state of a pipeline that rejects a bad file. moto's
Distributed Map counts failed child workflows but never fails the Map Run: here it fails with
`States.ExceedToleratedFailureThreshold` when they exceed the state's
`ToleratedFailurePercentage`, as AWS does (logged with the counts); its parser also refuses
an integer percentage (`"ToleratedFailurePercentage": 0`, valid ASL and what CDK writes), so
definitions are given a decimal one (`0.0`) before moto parses them.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from infra.local import sagemaker

EXECUTE = {"execute_state_machine": True}
"""The config moto needs to run state machines (server mode: POST /moto-api/config)."""
_STATE_LOGGER = "moto.stepfunctions.parser.asl.component.eval_component"
log = logging.getLogger("infra.local.sfn_engine")


def evaluate_jsonata(expression: str) -> Any:
    """Evaluate a JSONata expression the way moto's JVM bridge does: no input document, and a
    result reduced to plain JSON values."""
    import jsonata
    from moto.stepfunctions.parser.asl.jsonata.jsonata import JSONataException

    try:
        result = jsonata.Jsonata(expression).evaluate(None)
    except Exception as exc:
        raise JSONataException("UNKNOWN", str(exc)) from exc
    return json.loads(json.dumps(result, default=_plain))


def _plain(value: Any) -> Any:
    # jsonata-python's explicit null and sequence types are not JSON-serialisable as such.
    if type(value).__name__ == "NullValue":
        return None
    if isinstance(value, list | tuple):
        return list(value)
    raise TypeError(f"JSONata result of type {type(value).__name__} is not JSON")


class _ExpectedFailures(logging.Filter):
    """Drops the interpreter's ERROR for a state failing with an ASL error (a Fail state, a
    task error a Catch handles) and for `IsPresent` probes; interpreter crashes are still
    logged."""

    # `IsPresent` on an absent path raises NoSuchJsonPathError inside the interpreter by
    # design (the Choice then takes its other branch); a real missing path still fails the
    # execution with States.Runtime, visible in its status and history.
    EXPECTED = ("Exception=FailureEventException", "Exception=NoSuchJsonPathError")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("%s at") or not str(
            record.args[0] if isinstance(record.args, tuple) and record.args else ""
        ).startswith(self.EXPECTED)


_FILTER = _ExpectedFailures()


def install() -> None:
    """Plug the JSONata evaluator in, name Lambda API errors as AWS does, substitute SageMaker
    training jobs (`infra.local.sagemaker`), and silence expected-failure logs (idempotent)."""
    from moto.stepfunctions.parser.asl.jsonata import jsonata as moto_jsonata

    name_lambda_api_errors()
    sign_task_calls_with_role()
    sagemaker.install()
    enforce_tolerated_failures()
    accept_integer_tolerance()
    moto_jsonata._eval_jsonata = evaluate_jsonata  # type: ignore[attr-defined]
    state_logger = logging.getLogger(_STATE_LOGGER)
    if _FILTER not in state_logger.filters:
        state_logger.addFilter(_FILTER)


_TASK_CLIENT_MODULES = (
    "state_map.result_writer.resource_eval.resource_eval_s3",
    "state_map.item_reader.eval.resource_eval_s3",
    "state_task.lambda_eval_utils",
    "state_task.service.state_task_service_unsupported",
    "state_task.service.state_task_service_glue",
    "state_task.service.state_task_service_events",
    "state_task.service.state_task_service_ecs",
    "state_task.service.state_task_service_sqs",
    "state_task.service.state_task_service_sfn",
    "state_task.service.state_task_service_dynamodb",
    "state_task.service.state_task_service_batch",
    "state_task.service.state_task_service_sns",
    "state_task.service.state_task_service_aws_sdk",
)
"""moto's modules whose task integrations make AWS calls (each imports `boto_client_for`)."""
STATES_SERVICE = "states.amazonaws.com"
SESSION_NAME = "StepFunctions"


def task_credentials(state_credentials: Any) -> Any:
    """The credentials a task's calls are signed with: a session of the execution's role
    (or the task's `Credentials.RoleArn`) that Step Functions assumed."""
    from infra.local.authz import principals

    role = str(state_credentials.role_arn)
    return principals.session_credentials(
        role, SESSION_NAME, STATES_SERVICE, source_arn=_state_machine_of(role)
    )


def _state_machine_of(role: str) -> str | None:
    """The ARN of the state machine that runs with `role` (Step Functions assumes the role
    on its behalf: the trust policy's `aws:SourceArn`)."""
    from moto.stepfunctions.responses import get_backend

    from infra.local.authz.enforcer import ENFORCER

    for machine in list(get_backend(ENFORCER.account, ENFORCER.region).state_machines):
        if machine.roleArn == role:
            return str(machine.arn)
    return None


def sign_task_calls_with_role() -> None:
    """Step Functions calls Lambda, SNS, S3 (Distributed Map item readers and result writers)
    with the state machine's role; moto's interpreter signs them with a fixed key. Here each
    task's client carries the credentials of the execution role's session, so the call is
    authorized as that role (idempotent)."""
    import importlib

    import boto3
    from botocore.config import Config
    from moto.core.models import botocore_stubber
    from moto.stepfunctions.parser.asl.utils import boto_client
    from moto.stepfunctions.parser.asl.utils.boto_client import TimeoutSeconds, moto_server_port

    original = boto_client.boto_client_for
    if getattr(original, "_mlops_role", False):
        return

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        if state_credentials is None or not getattr(state_credentials, "role_arn", None):
            return original(region=region, service=service, state_credentials=state_credentials)
        credentials = task_credentials(state_credentials)
        kwargs: dict[str, Any] = {}
        if not botocore_stubber.enabled:
            kwargs["endpoint_url"] = f"http://localhost:{moto_server_port()}"
        return boto3.client(
            service,  # type: ignore[call-overload]
            region_name=region,
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
            config=Config(
                parameter_validation=False,
                retries={"max_attempts": 0, "total_max_attempts": 1},
                connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
            ),
            **kwargs,
        )

    boto_client_for._mlops_role = True  # type: ignore[attr-defined]
    boto_client.boto_client_for = boto_client_for
    prefix = "moto.stepfunctions.parser.asl.component.state.exec."
    for name in _TASK_CLIENT_MODULES:
        module = importlib.import_module(prefix + name)
        if getattr(module, "boto_client_for", None) is original:
            module.boto_client_for = boto_client_for  # type: ignore[attr-defined]


def sdk_cause(message: str, service: str, status: int, code: str, request_id: str) -> str:
    """An error as the AWS SDK for Java words it, which Step Functions quotes as a task's
    cause: `<message> (Service: AWSLambda; Status Code: 403; Error Code: ...; ...)`."""
    return (
        f"{message} (Service: {service}; Status Code: {status}; Error Code: {code}; "
        f"Request ID: {request_id}; Proxy: null)"
    )


_LAMBDA_MODELED: frozenset[str] | None = None


def _lambda_error_name(code: str) -> str:
    """Step Functions' name for a Lambda API error: `Lambda.<Code>` for the errors Lambda's
    API models, `Lambda.AWSLambdaException` for any other (an AccessDeniedException, as the
    SDK Step Functions uses names it)."""
    global _LAMBDA_MODELED
    if _LAMBDA_MODELED is None:
        import botocore.session

        model = botocore.session.get_session().get_service_model("lambda")
        _LAMBDA_MODELED = frozenset(model.shape_names)
    return f"Lambda.{code}" if code in _LAMBDA_MODELED else "Lambda.AWSLambdaException"


def name_lambda_api_errors() -> None:
    """A Lambda API error (throttling, service errors, a denied invocation) fails the task as
    AWS names it (`_lambda_error_name`), so retry rules on `Lambda.ServiceException` and the
    like match; moto's engine names every one `Exception` (idempotent)."""
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.api import (
        HistoryEventType,
        LambdaFunctionFailedEventDetails,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
        CustomErrorName,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import (
        StateTaskLambda,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    original = StateTaskLambda._from_error
    if getattr(original, "_mlops_named", False):
        return

    def _from_error(self: Any, env: Any, ex: Exception) -> Any:
        if not isinstance(ex, ClientError):
            return original(self, env, ex)
        code = str(ex.response["Error"]["Code"])
        error = _lambda_error_name(code)
        cause = str(ex.response["Error"].get("Message", ""))
        if error == "Lambda.AWSLambdaException":
            metadata = ex.response.get("ResponseMetadata", {})
            cause = sdk_cause(
                cause,
                "AWSLambda",
                metadata.get("HTTPStatusCode", 400),
                code,
                metadata.get("RequestId", ""),
            )
        return FailureEvent(
            env=env,
            error_name=CustomErrorName(error),
            event_type=HistoryEventType.LambdaFunctionFailed,
            event_details=EventDetails(  # type: ignore[typeddict-item]
                lambdaFunctionFailedEventDetails=LambdaFunctionFailedEventDetails(
                    error=error, cause=cause
                )
            ),
        )

    _from_error._mlops_named = True  # type: ignore[attr-defined]
    StateTaskLambda._from_error = _from_error  # type: ignore[method-assign]


def exceeds_tolerance(failed: int, total: int, tolerated_percentage: float) -> bool:
    """AWS's rule: the Map Run fails when the share of failed items (in %) is above the
    tolerated percentage (with 0, any failed item fails it)."""
    return total > 0 and failed * 100.0 > tolerated_percentage * total


def enforce_tolerated_failures() -> None:
    """Fail a Distributed Map whose failed (or timed-out) child workflows exceed its
    `ToleratedFailurePercentage` (moto 5.2.5 leaves "failure toleration" as a TODO and lets
    the Map succeed whatever fails). `ToleratedFailureCount` is not enforced: the bundle's
    state machines do not use it (idempotent)."""
    from moto.stepfunctions.parser.api import HistoryEventType, MapRunFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
        StatesErrorName,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import (
        distributed_iteration_component as component,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    original = component.DistributedIterationComponent._map_run
    if getattr(original, "_mlops_tolerance", False):
        return

    def _map_run(self: Any, env: Any, eval_input: Any) -> None:
        original(self, env, eval_input)
        items = eval_input.map_run_record.item_counter
        failed = items.failed.get() + items.timed_out.get()
        total = items.total.get()
        tolerated = float(eval_input.tolerated_failure_percentage or 0.0)
        if not exceeds_tolerance(failed, total, tolerated):
            return
        cause = (
            f"{failed} of {total} items failed, above the tolerated {tolerated:g}% "
            f"(map state {eval_input.state_name})"
        )
        log.warning("Distributed Map run failed: %s", cause)
        error = StatesErrorName(typ=StatesErrorNameType.StatesExceedToleratedFailureThreshold)
        raise FailureEventException(
            failure_event=FailureEvent(
                env=env,
                error_name=error,
                event_type=HistoryEventType.MapRunFailed,
                event_details=EventDetails(  # type: ignore[typeddict-item]
                    mapRunFailedEventDetails=MapRunFailedEventDetails(
                        error=error.error_name, cause=cause
                    )
                ),
            )
        )

    _map_run._mlops_tolerance = True  # type: ignore[attr-defined]
    component.DistributedIterationComponent._map_run = _map_run  # type: ignore[method-assign]


_INTEGER_TOLERANCE = re.compile(r'("ToleratedFailurePercentage"\s*:\s*)(\d+)(?=\s*[,}])')


def decimal_tolerance(definition: str) -> str:
    """The definition with an integer `ToleratedFailurePercentage` written as a decimal."""
    return _INTEGER_TOLERANCE.sub(r"\1\2.0", definition)


class _ToleranceEnforced(logging.Filter):
    """moto's parser warns that tolerated failures have no effect; here they do."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "ToleratedFailurePercentage declarations" not in str(record.msg)


def accept_integer_tolerance() -> None:
    """Let moto's ASL parser read an integer `ToleratedFailurePercentage` (idempotent)."""
    from moto.stepfunctions.parser.asl.parse import asl_parser

    parser = asl_parser.AmazonStateLanguageParser
    original = parser.parse
    if getattr(original, "_mlops_decimal", False):
        return

    def parse(definition: str) -> Any:
        return original(decimal_tolerance(definition))

    parse._mlops_decimal = True  # type: ignore[attr-defined]
    parser.parse = staticmethod(parse)  # type: ignore[method-assign,assignment]
    preprocessor = logging.getLogger("moto.stepfunctions.parser.asl.parse.preprocessor")
    if not any(isinstance(f, _ToleranceEnforced) for f in preprocessor.filters):
        preprocessor.addFilter(_ToleranceEnforced())
