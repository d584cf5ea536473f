"""The health check every function answers: `HEALTH_CHECK` as the event, and the function
returns `report(context)` instead of doing its work. It has no side effect: nothing is read
or written in AWS, no log or metric is emitted.

Answering proves what a deploy can break before the first real event: the handler's module
and everything it imports loaded (the init phase ran), the function's settings and its
config parse, and the init left room in the function's memory (`peak_memory_mb`). `mlops
smoke` invokes every function with it after a deploy.
"""

from __future__ import annotations

import functools
import os
import platform
import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

HEALTH_CHECK = {"mlops": "health-check"}
"""The event: an S3 notification, a pipeline state or an API request never has this shape."""

Handler = TypeVar("Handler", bound=Callable[..., Any])


def is_health_check(event: Any) -> bool:
    return isinstance(event, dict) and event.get("mlops") == HEALTH_CHECK["mlops"]


def report(context: Any) -> dict[str, Any]:
    """What the function is, as it runs: its settings and config parsed (raising, as a real
    invocation would, when they do not), and the memory its process has used so far."""
    # Imported here: only a health check reads them (pydantic-settings alone would add to
    # every cold start of a function that reads no stage settings).
    from functions.common.config.loading import deployed_config
    from functions.common.settings import stage_settings

    settings = stage_settings()
    config = deployed_config()
    return {
        "healthy": True,
        "function": getattr(context, "function_name", None),
        "service": os.environ.get("POWERTOOLS_SERVICE_NAME"),
        "stage": settings.stage,
        "code_version": settings.code_version,
        "project": config.project.name,
        "python": platform.python_version(),
        "peak_memory_mb": round(_peak_memory_mb()),
        "memory_limit_mb": int(getattr(context, "memory_limit_in_mb", 0) or 0),
    }


def _peak_memory_mb() -> float:
    """The process's peak resident memory: VmHWM where /proc has it (it starts again at exec;
    getrusage's maximum also counts the parent's memory before the exec), else getrusage's."""
    try:
        with Path("/proc/self/status").open(encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def answers_health_check(handler: Handler) -> Handler:
    """Wrap a Lambda handler: a health-check event gets `report(context)`, anything else goes
    to `handler`. Put it outermost, so a health check emits no log line or metric."""

    @functools.wraps(handler)
    def wrapper(event: Any, context: Any) -> Any:
        if is_health_check(event):
            return report(context)
        return handler(event, context)

    return wrapper  # type: ignore[return-value]
