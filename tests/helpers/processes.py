"""Commands the tests run in a child process, to their end, failing the test when one fails."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from typing import Any

import pytest


def run_to_success(command: Sequence[str], **options: Any) -> subprocess.CompletedProcess[str]:
    """`command` run to its end with its output captured as text (`options`: more of
    `subprocess.run`'s, such as cwd, env, input, timeout); a non-zero exit fails the calling
    test with the command, its exit code and the ends of its output."""
    result = subprocess.run(list(command), capture_output=True, text=True, check=False, **options)
    if result.returncode != 0:
        where = f" in {options['cwd']}" if options.get("cwd") else ""
        pytest.fail(
            f"`{shlex.join(command)[:300]}`{where} failed ({result.returncode}):\n"
            f"{result.stdout[-2000:]}\n{result.stderr[-4000:]}",
            pytrace=False,
        )
    return result
