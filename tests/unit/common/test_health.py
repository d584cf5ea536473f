"""The health check every handler answers (`functions.common.health`): what `mlops smoke`
invokes each function with after a deploy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from functions.common.health import HEALTH_CHECK, answers_health_check, is_health_check


def _resident_mb() -> float:
    status = Path("/proc/self/status").read_text(encoding="ascii")
    (line,) = [line for line in status.splitlines() if line.startswith("VmRSS:")]
    return int(line.split()[1]) / 1024


class Context:
    function_name = "mlops-dev-ingest"
    memory_limit_in_mb = "2048"


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from functions.common.config.loading import CONFIG_JSON_ENV, deployed_config, load_config
    from functions.common.settings import stage_settings

    monkeypatch.setenv("DATA_BUCKET", "bucket")
    monkeypatch.setenv("REGISTRY_TABLE", "table")
    monkeypatch.setenv("STAGE", "dev")
    monkeypatch.setenv("CODE_VERSION", "abc123")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "ingest")
    monkeypatch.setenv(CONFIG_JSON_ENV, load_config().for_stage("dev").to_json())
    stage_settings.cache_clear()
    deployed_config.cache_clear()
    yield
    stage_settings.cache_clear()
    deployed_config.cache_clear()


def test_a_handler_answers_the_health_check_without_running(deployed: None) -> None:
    calls: list[Any] = []

    @answers_health_check
    def handler(event: Any, context: Any) -> dict[str, Any]:
        calls.append(event)
        return {"ran": True}

    report = handler(dict(HEALTH_CHECK), Context())

    assert calls == []
    assert report["healthy"] is True
    assert (report["service"], report["stage"], report["code_version"]) == (
        "ingest",
        "dev",
        "abc123",
    )
    assert report["project"] == "mlops"
    assert report["memory_limit_mb"] == 2048
    # the process's peak so far: at least what it holds now (this test process is the suite's,
    # so its size says nothing about a function's)
    assert report["peak_memory_mb"] >= _resident_mb() - 1
    json.dumps(report)
    assert handler({"detail": {}}, Context()) == {"ran": True}
    assert calls == [{"detail": {}}]


def test_a_missing_setting_fails_the_health_check_as_it_would_fail_an_event(
    deployed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import ValidationError

    from functions.common.settings import stage_settings

    monkeypatch.delenv("REGISTRY_TABLE")
    stage_settings.cache_clear()

    with pytest.raises(ValidationError, match="REGISTRY_TABLE"):
        answers_health_check(lambda event, context: None)(dict(HEALTH_CHECK), Context())


@pytest.mark.parametrize(
    "event", [None, [], "health-check", {"mlops": "other"}, {"source": "aws.s3"}]
)
def test_only_the_health_check_event_is_one(event: Any) -> None:
    assert not is_health_check(event)
    assert is_health_check({"mlops": "health-check", "extra": 1})
