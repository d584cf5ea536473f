"""The drift check's OpenLineage run (`<model>.drift-check`): the capture window (and the
feedback read with it) and each served version's reference profile in, the check's report
folder out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.common.layout import (
    CAPTURE_PREFIX,
    FEEDBACK_PREFIX,
    REFERENCE_PROFILE_FILE,
    drift_check_prefix,
    version_prefix,
)
from functions.common.lineage import Dataset, Reader, RunEnd, RunSpec

CHECK = "JOB"


def check_begin(model: str) -> RunSpec:
    return RunSpec(
        job=f"{model}.drift-check",
        job_type=CHECK,
        description="Compare the traffic captured in a window (and the labels fed back) with "
        "the served versions' reference profiles",
    )


def check_end(model: str, result: Mapping[str, Any], _read: Reader | None = None) -> RunEnd:
    """What the check read (the window, versioned `<start>/<end>`, and the profiles of the
    versions it saw) and wrote (`reports/drift/<model>/<check>/`); the window is the run's
    nominal time."""
    window = result["window"]
    span = f"{window['start']}/{window['end']}"
    inputs = [Dataset(CAPTURE_PREFIX, version=span)]
    if window.get("feedback_objects"):
        inputs.append(Dataset(FEEDBACK_PREFIX, version=span))
    for served in result.get("versions") or []:
        if served.get("report") is not None:
            version = int(served["model_version"])
            key = version_prefix(model, version) + REFERENCE_PROFILE_FILE
            inputs.append(Dataset(key, version=str(version)))
    check_id = str(result["check_id"])
    report = Dataset(drift_check_prefix(model, check_id), version=check_id)
    return RunEnd(inputs=tuple(inputs), outputs=(report,), nominal=(window["start"], window["end"]))
