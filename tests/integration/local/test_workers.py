"""Function workers (server mode): each invocation runs in a process that behaves like a Lambda
execution environment: the runtime's Python and only the function's code and what the runtime
provides, init once and reused while warm, reset after a timeout, running out of memory or an
exit, kept after a handled error, its own size-limited /tmp, several at once up to reserved
concurrency, and the Invoke API's payload limits. Every failure carries the error name Lambda
reports.

These tests start Python 3.13 processes: without Python 3.13 they fail, saying how to get it."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from infra.cdk.layers import missing_python_message, runtime_python
from infra.local import LocalCloud, worker_limits, workers

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _runtime_python() -> None:
    if runtime_python() is None:
        pytest.fail(missing_python_message(), pytrace=False)


Start = Callable[..., LocalCloud]


def _cloud(start_cloud: Start, cfn: Any, **functions: dict[str, Any]) -> LocalCloud:
    resources = {"Role": cfn.role(), **functions}
    outputs = {name: {"Value": {"Ref": name}} for name in functions}
    return start_cloud(resources, outputs, mode="server", port=0)


def _invoke(
    cloud: LocalCloud, name: str, event: Any = None, **kwargs: Any
) -> tuple[dict[str, Any], str | None]:
    response = cloud.client("lambda").invoke(
        FunctionName=cloud.outputs[name], Payload=json.dumps(event or {}).encode(), **kwargs
    )
    return json.loads(response["Payload"].read() or b"null"), response.get("FunctionError")


def test_a_worker_has_the_runtime_s_python_and_only_what_the_function_deploys(
    start_cloud: Start, cfn: Any
) -> None:
    cloud = _cloud(
        start_cloud, cfn, Env=cfn.function("environment", env={"POWERTOOLS_SERVICE_NAME": "env"})
    )

    seen, error = _invoke(cloud, "Env")

    assert error is None, seen
    assert seen["python"] == [3, 13]
    assert seen["pid"] != os.getpid()
    # The Lambda runtime provides the AWS SDK; the dev virtualenv is nowhere.
    assert seen["importable"] == {
        "pytest": False,
        "moto": False,
        "boto3": True,
        "infra": False,
        "functions": False,
    }
    assert seen["path"][0] == seen["task_root"]
    assert not [entry for entry in seen["path"] if ".venv" in entry]
    assert seen["service"] == "env"


def test_init_runs_once_and_a_warm_worker_is_reused_even_after_a_handled_error(
    start_cloud: Start, cfn: Any
) -> None:
    cloud = _cloud(start_cloud, cfn, Env=cfn.function("environment"), Fail=cfn.function("fail"))

    first, _ = _invoke(cloud, "Env")
    second, _ = _invoke(cloud, "Env")
    failed, error = _invoke(cloud, "Fail")
    fail_again, _ = _invoke(cloud, "Fail")

    assert (second["pid"], second["invocations"]) == (first["pid"], 2)
    assert error == "Unhandled"
    assert failed["errorType"] == "QuotaExceededError"
    assert failed["errorMessage"] == "quota of 3 drops per day reached"
    assert fail_again["errorType"] == "QuotaExceededError"
    (fail_worker,) = workers.WORKERS.workers_of(cloud.outputs["Fail"])
    assert fail_worker.invocations == 2, "the handled error kept the environment"
    logs = _log_lines(cloud, cloud.outputs["Env"])
    reports = [line for line in logs if line.startswith("REPORT")]
    assert len(reports) == 2
    assert "Init Duration" in reports[0] and "Init Duration" not in reports[1]


def test_a_timeout_kills_the_worker_as_lambda_reports_it(start_cloud: Start, cfn: Any) -> None:
    cloud = _cloud(start_cloud, cfn, Slow=cfn.function("sleep_for", timeout=1))

    result, error = _invoke(cloud, "Slow", {"seconds": 5})
    after, _ = _invoke(cloud, "Slow", {"seconds": 0})

    assert error == "Unhandled"
    assert result["errorType"] == "Sandbox.Timedout"
    assert result["errorMessage"].endswith("Error: Task timed out after 1.00 seconds")
    assert after["pid"] != result.get("pid"), "a new environment after the timeout"


def test_memory_over_memory_size_is_out_of_memory_and_resets_the_worker(
    start_cloud: Start, cfn: Any
) -> None:
    cloud = _cloud(start_cloud, cfn, Hungry=cfn.function("allocate", memory=128))

    small, _ = _invoke(cloud, "Hungry", {"mb": 10})
    result, error = _invoke(cloud, "Hungry", {"mb": 200})
    after, _ = _invoke(cloud, "Hungry", {"mb": 10})

    assert error == "Unhandled"
    assert result["errorType"] == "Runtime.OutOfMemory"
    assert result["errorMessage"].endswith("Error: Runtime exited with error: signal: killed")
    assert after["pid"] != small["pid"] and after["held_mb"] == 10
    report = [line for line in _log_lines(cloud, cloud.outputs["Hungry"]) if "REPORT" in line]
    assert "Max Memory Used: 128 MB" in report[1]


def test_an_exit_is_a_runtime_exit_error(start_cloud: Start, cfn: Any) -> None:
    cloud = _cloud(start_cloud, cfn, Exit=cfn.function("exit_now"))

    result, error = _invoke(cloud, "Exit", {"status": 7})

    assert error == "Unhandled"
    assert result["errorType"] == "Runtime.ExitError"
    assert result["errorMessage"].endswith("Runtime exited with error: exit status 7")


def test_an_import_error_fails_init_as_lambda_reports_it(start_cloud: Start, cfn: Any) -> None:
    cloud = _cloud(start_cloud, cfn, Broken=cfn.function("no_such_module.handler"))

    result, error = _invoke(cloud, "Broken")

    assert error == "Unhandled"
    assert result["errorType"] == "Runtime.ImportModuleError"
    assert result["errorMessage"] == (
        "Unable to import module 'no_such_module': No module named 'no_such_module'"
    )


def test_an_init_over_its_limit_is_retried_within_the_timeout(
    start_cloud: Start, cfn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(workers, "INIT_LIMIT_SECONDS", 1.0)
    slow_init = {"INIT_SECONDS": "1.5"}
    cloud = _cloud(
        start_cloud,
        cfn,
        Fits=cfn.function("slow_init_probe.handler", timeout=5, env=slow_init),
        TooSlow=cfn.function("slow_init_probe.handler", timeout=1, env=slow_init),
    )

    fits, fits_error = _invoke(cloud, "Fits")
    too_slow, too_slow_error = _invoke(cloud, "TooSlow")

    assert fits_error is None, fits
    assert too_slow_error == "Unhandled"
    assert too_slow["errorType"] == "Sandbox.Timedout"


def test_tmp_is_private_and_limited_to_the_ephemeral_storage(start_cloud: Start, cfn: Any) -> None:
    cloud = _cloud(start_cloud, cfn, Disk=cfn.function("write_tmp", ephemeral_storage=512))

    fits, _ = _invoke(cloud, "Disk", {"mb": 100, "literal": True})
    over, error = _invoke(cloud, "Disk", {"mb": 600, "literal": True})

    assert fits == {"written_mb": 100, "error": None}
    if worker_limits.sandbox().isolated:
        # A tmpfs of 512 MB at /tmp: the write fails as it does on Lambda.
        assert error is None
        assert over["error"] == "No space left on device"
        assert 500 <= over["written_mb"] <= 512
    else:
        assert over["errorType"] == "Runtime.EphemeralStorageExceeded"


def test_two_invocations_of_one_function_run_at_once(start_cloud: Start, cfn: Any) -> None:
    cloud = _cloud(start_cloud, cfn, Slow=cfn.function("sleep_for"))
    results: list[dict[str, Any]] = []

    def call() -> None:
        results.append(_invoke(cloud, "Slow", {"seconds": 1.5})[0])

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    first, second = sorted(results, key=lambda result: result["started"])
    assert first["pid"] != second["pid"]
    assert second["started"] < first["ended"], "the two invocations overlap in time"


def test_beyond_reserved_concurrency_an_invocation_is_throttled(
    start_cloud: Start, cfn: Any
) -> None:
    cloud = _cloud(start_cloud, cfn, Slow=cfn.function("sleep_for", reserved=1))
    # boto3 retries throttling by default; this client shows the first answer.
    client = boto3.client(
        "lambda",
        endpoint_url=cloud.endpoint,
        region_name=cloud.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )
    outcomes: list[str] = []

    def call() -> None:
        try:
            client.invoke(FunctionName=cloud.outputs["Slow"], Payload=b'{"seconds": 1.5}')
            outcomes.append("ran")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["TooManyRequestsException", "ran"]


def test_payloads_over_the_invoke_limits_are_refused(start_cloud: Start, cfn: Any) -> None:
    cloud = _cloud(
        start_cloud, cfn, Env=cfn.function("environment"), Big=cfn.function("large_result")
    )

    for invocation_type, size in (
        ("RequestResponse", 6 * 1024 * 1024 + 1),
        ("Event", 1024 * 1024 + 1),
    ):
        with pytest.raises(ClientError) as caught:
            _invoke(cloud, "Env", {"padding": "x" * size}, InvocationType=invocation_type)
        assert caught.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    result, error = _invoke(cloud, "Big", {"bytes": 7 * 1024 * 1024})
    assert error == "Unhandled"
    assert result["errorType"] == "Function.ResponseSizeTooLarge"


def _log_lines(cloud: LocalCloud, function_name: str) -> list[str]:
    logs = cloud.client("logs")
    group = f"/aws/lambda/{function_name}"
    events = logs.filter_log_events(logGroupName=group)["events"]
    return [line for event in events for line in event["message"].splitlines()]
