"""moto's Step Functions interpreter: real execution, JSONata, and quieter logs.

moto runs ASL only with config `{"stepfunctions": {"execute_state_machine": True}}`, chosen
per request: state machines created before it is on live in the other backend and never run.
Its JSONata module evaluates through a JVM bridge it does not ship; the pure-Python
`jsonata-python` evaluator takes its place. moto's interpreter logs an ERROR for every failed
state, including the expected Fail state of a pipeline that rejects a bad file.
"""

from __future__ import annotations

import json
import logging
from typing import Any

EXECUTE = {"execute_state_machine": True}
"""The config moto needs to run state machines (server mode: POST /moto-api/config)."""
_STATE_LOGGER = "moto.stepfunctions.parser.asl.component.eval_component"


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
    """Plug the JSONata evaluator in, name Lambda API errors as AWS does, and silence
    expected-failure logs (idempotent)."""
    from moto.stepfunctions.parser.asl.jsonata import jsonata as moto_jsonata

    name_lambda_api_errors()
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
