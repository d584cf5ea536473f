"""Where a batch job's files live in the data bucket, and the names a job may have: the
contract between the batch state machine (which reads `batch/in/<job>/` and writes
`batch/out/<job>/`), and the `mlops batch` command (which uploads a job and reads its
manifest back)."""

from __future__ import annotations

BATCH_IN = "batch/in/"
"""A job's input files: `batch/in/<job>/`."""
BATCH_OUT = "batch/out/"
"""A job's outputs, rejects, items and manifest: `batch/out/<job>/`."""
JOB_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$"
"""A job's name: 1-80 letters, digits, '.', '_' or '-', starting with a letter or digit."""


def job_inputs(job: str) -> str:
    return f"{BATCH_IN}{job}/"


def job_outputs(job: str) -> str:
    return f"{BATCH_OUT}{job}/"


def items_key(job: str) -> str:
    return f"{job_outputs(job)}_plan/items.json"


def item_result_key(job: str, item: int) -> str:
    return f"{job_outputs(job)}_items/{item:06d}.json"


def manifest_key(job: str) -> str:
    return f"{job_outputs(job)}manifest.json"
