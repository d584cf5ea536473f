"""What Lambda gives a function besides its code, and does with its role on its behalf: the
credentials of its execution role's session, the reserved environment variables, and the
calls Lambda makes as the role (writing the function's logs, sending an asynchronous
invocation's on-failure record), checked by the local cloud's IAM."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from infra.local.lambda_config import LambdaRuntimeError

log = logging.getLogger("infra.local.lambda")

LAMBDA_SERVICE = "lambda.amazonaws.com"


def credentials(function: Any) -> Any:
    """The credentials Lambda gives the function: a session of its execution role, named
    after the function, that Lambda assumed. Raises LambdaRuntimeError when the role's trust
    policy does not let Lambda assume it."""
    from infra.local.authz import principals

    try:
        return principals.session_credentials(
            str(function.role),
            function.function_name,
            LAMBDA_SERVICE,
            source_arn=_unqualified(function.function_arn),
        )
    except principals.AssumeRoleDenied as exc:
        raise LambdaRuntimeError(
            "InvalidParameterValueException",
            f"The role defined for the function cannot be assumed by Lambda: {exc}",
        ) from None


def _unqualified(arn: str) -> str:
    return ":".join(arn.split(":")[:7])


def save_logs(function: Any, logs: str) -> None:
    """Write an invocation's logs to the function's log group, as Lambda does with the
    function's role: a role that may not write there loses them (logged here)."""
    from infra.local.authz.enforcer import ENFORCER
    from infra.local.authz.needs import Needed

    stream = (
        f"arn:aws:logs:{function.region}:{ENFORCER.account}:log-group:"
        f"{function.logs_group_name}:log-stream:{function.function_name}"
    )
    needs = [Needed("logs:CreateLogStream", stream), Needed("logs:PutLogEvents", stream)]
    denial = role_denial(function, needs, "lambda.logs")
    if denial is not None:
        log.warning("function %s: its logs are lost: %s", function.function_name, denial.message)
        return
    with contextlib.suppress(Exception):
        function.save_logs(logs)


def role_denial(function: Any, needs: list[Any], operation: str) -> Any:
    """What Lambda does with the function's role on its behalf (write its logs, send an
    asynchronous invocation's on-failure record): the Denial when the role may not do all of
    `needs` (authz `Needed`), else None (also when IAM is not enforced)."""
    from infra.local.authz import principals
    from infra.local.authz.enforcer import ENFORCER

    if not ENFORCER.enabled:
        return None
    session = credentials(function)
    caller = principals.from_access_key(session.access_key_id, ENFORCER.account)
    if caller is None:
        return None
    return ENFORCER.authorize(caller, needs, operation)


def lambda_variables(function: Any, task_root: Path, handler: str) -> dict[str, str]:
    """The variables Lambda sets for a function, its role session's credentials among them."""
    region = function.region
    session = credentials(function)
    return {
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": session.access_key_id,
        "AWS_SECRET_ACCESS_KEY": session.secret_access_key,
        "AWS_SESSION_TOKEN": session.session_token,
        "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": function.logs_group_name,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.run_time or 'Image'}",
        "LAMBDA_TASK_ROOT": str(task_root),
        "_HANDLER": handler,
        # X-Ray is not emulated: keep the SDK from looking for a daemon.
        "AWS_XRAY_SDK_ENABLED": "false",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
