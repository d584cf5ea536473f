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
    sagemaker.install()
    enforce_tolerated_failures()
    accept_integer_tolerance()
    moto_jsonata._eval_jsonata = evaluate_jsonata  # type: ignore[attr-defined]
    state_logger = logging.getLogger(_STATE_LOGGER)
    if _FILTER not in state_logger.filters:
        state_logger.addFilter(_FILTER)


def name_lambda_api_errors() -> None:
    """A Lambda API error (throttling, service errors) fails the task as AWS names it,
    `Lambda.<Code>`, so retry rules on `Lambda.ServiceException` and the like match; moto's
    engine names every one `Exception` (idempotent)."""
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
        error = f"Lambda.{ex.response['Error']['Code']}"
        cause = str(ex.response["Error"].get("Message", ""))
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
