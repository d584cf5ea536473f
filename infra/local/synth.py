"""Synthesizing the CDK app (`python -m infra.app`) when cdk.out is missing or stale
(`infra.synth_inputs`: another config, or a changed config or source)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from functions.common.config import CONFIG_ENV
from infra.synth_inputs import config_in_use, stale_reason

__all__ = ["SynthError", "stale_reason", "synthesize"]


class SynthError(RuntimeError):
    """`python -m infra.app` failed; the message ends with its error output."""


def synthesize(repo_root: Path, out_dir: Path, context: dict[str, str] | None = None) -> None:
    """Run the CDK app in a subprocess (jsii and node stay out of this process) on the config
    this process uses (`$MLOPS_CONFIG` resolved here, else `./mlops.toml`). The local cloud
    deploys one stack: stage `dev` unless the context names another."""
    context = {"stage": "dev", **(context or {})}
    env = {
        **os.environ,
        CONFIG_ENV: str(config_in_use()),
        "CDK_OUTDIR": str(out_dir),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": os.environ.get(
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20"
        ),
    }
    env["CDK_CONTEXT_JSON"] = json.dumps(context)
    result = subprocess.run(
        [sys.executable, "-m", "infra.app"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-25:])
        raise SynthError(f"python -m infra.app failed (exit {result.returncode}):\n{tail}")
