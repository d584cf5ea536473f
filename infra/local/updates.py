"""Stack updates requested of a running `mlops local up` (moto's state lives in that process):
`mlops local update` writes a request into the state dir, the running cloud applies it
(`LocalCloud.update`) and writes the result next to it."""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.local.assembly import AssemblyError
from infra.local.cloud import LocalCloud
from infra.local.deployer import write_atomically
from infra.local.resources import DeployError

RUNNING = "local-up.json"
REQUEST = "update-request.json"
RESULT = "update-result.json"


class UpdateRequestError(RuntimeError):
    """No running local cloud to update, or it did not answer; one sentence for the user."""


@dataclass(frozen=True)
class Running:
    state_dir: Path
    pid: int


def announce(state_dir: Path) -> Running:
    """Say in the state dir that this process serves update requests."""
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / REQUEST).unlink(missing_ok=True)
    _write(state_dir / RUNNING, {"pid": os.getpid()})
    return Running(state_dir, os.getpid())


def retire(state_dir: Path) -> None:
    (state_dir / RUNNING).unlink(missing_ok=True)


def serve(cloud: LocalCloud, running: Running) -> dict[str, Any] | None:
    """Apply a pending update request, if any; its result (also written to the state dir)."""
    request_file = running.state_dir / REQUEST
    if not request_file.is_file():
        return None
    try:
        request = json.loads(request_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # still being written
    request_file.unlink(missing_ok=True)
    result: dict[str, Any] = {"id": request.get("id")}
    try:
        deployment = cloud.update(request["cdk_out"], request.get("stack"))
    except (AssemblyError, DeployError, ValueError, KeyError) as exc:
        result.update(ok=False, error=str(exc))
    else:
        result.update(
            ok=True,
            seconds=round(deployment.seconds, 2),
            changes={
                key: resource.change if resource.created is not None else resource.status
                for key, resource in deployment.resources.items()
            },
            removed=deployment.removed,
        )
    _write(running.state_dir / RESULT, result)
    return result


def request(state_dir: Path, cdk_out: Path, stack: str, timeout: float) -> dict[str, Any]:
    """Ask the local cloud running on `state_dir` to update to `cdk_out`; its result."""
    pid = _running_pid(state_dir)
    ident = uuid.uuid4().hex
    (state_dir / RESULT).unlink(missing_ok=True)
    _write(state_dir / REQUEST, {"id": ident, "cdk_out": str(cdk_out), "stack": stack})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result: dict[str, Any] = json.loads((state_dir / RESULT).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            result = {}
        if result.get("id") == ident:
            return result
        if not _alive(pid):
            raise UpdateRequestError(f"the local cloud (pid {pid}) stopped before updating")
        time.sleep(0.2)
    raise UpdateRequestError(f"the local cloud (pid {pid}) did not update within {timeout:.0f} s")


def _running_pid(state_dir: Path) -> int:
    try:
        pid = int(json.loads((state_dir / RUNNING).read_text(encoding="utf-8"))["pid"])
    except (OSError, ValueError, KeyError):
        pid = 0
    if not pid or not _alive(pid):
        raise UpdateRequestError(
            f"no local cloud is running on {state_dir}: start it with `mlops local up` "
            "(an update changes a running cloud; a new one deploys the current code anyway)"
        )
    return pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write(path: Path, data: dict[str, Any]) -> None:
    write_atomically(path, json.dumps(data, indent=2, default=str))
