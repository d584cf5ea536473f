"""Synthesizing the CDK app (`python -m infra.cdk.app`) when cdk.out is missing or stale
(`infra.cdk.synth_inputs`: another config, or a changed config or source)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from functions.common.config.loading import CONFIG_ENV
from infra.cdk.synth_inputs import config_in_use, stale_reason

__all__ = ["SynthError", "local_code_version", "stale_reason", "synthesize"]


class SynthError(RuntimeError):
    """`python -m infra.cdk.app` failed; the message ends with its error output."""


def local_code_version(repo_root: Path) -> str:
    """The code version stamped on the local cloud's functions (`CODE_VERSION`), unless the
    context names a commit: `local-` and a hash of every file under `functions/`, so it
    changes whenever the code the functions run changes (committed or not)."""
    digest = hashlib.sha256()
    for path in sorted((repo_root / "functions").rglob("*.py")):
        digest.update(path.relative_to(repo_root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return f"local-{digest.hexdigest()[:12]}"


def synthesize(repo_root: Path, out_dir: Path, context: dict[str, str] | None = None) -> None:
    """Run the CDK app in a subprocess (jsii and node stay out of this process) on the config
    this process uses (`$MLOPS_CONFIG` resolved here, else `./mlops.toml`). The local cloud
    deploys one stack: stage `dev` unless the context names another, stamped with
    `local_code_version` unless the context names a `commit`."""
    context = {"stage": "dev", "commit": local_code_version(repo_root), **(context or {})}
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
        [sys.executable, "-m", "infra.cdk.app"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-25:])
        raise SynthError(f"python -m infra.cdk.app failed (exit {result.returncode}):\n{tail}")
