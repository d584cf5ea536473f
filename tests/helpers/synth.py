"""CDK apps synthesized in a child interpreter, as `cdk synth` runs them, and what their cloud
assemblies record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.helpers import REPO


def synth_in_child(
    app: Sequence[str], outdir: Path, extra: Mapping[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python <app>` run from the repository root into the cloud assembly `outdir`, with Node's
    end-of-life warning silenced; `extra` sets more variables (None unsets one). Its exit code and
    output are the caller's to check."""
    command = [sys.executable, *app]
    env = {
        **os.environ,
        "CDK_OUTDIR": str(outdir),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def acknowledged_rules(assembly: Path, stack: str) -> dict[str, str]:
    """The cdk-nag rules `stack` of the cloud assembly acknowledges, with their reasons."""
    metadata = json.loads((assembly / f"{stack}.metadata.json").read_text())
    return {
        rule: reason
        for entries in metadata.values()
        for entry in entries
        if entry["type"] == "aws:cdk:acknowledged-rules"
        for rule, reason in entry["data"].items()
    }
