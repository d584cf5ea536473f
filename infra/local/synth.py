"""Synthesizing the CDK app (`python -m infra.app`) when cdk.out is missing or stale."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

# Paths the app reads, as in cdk.json's "watch"; the local cloud is not part of the app.
_DEFAULT_WATCH = ["infra/**", "functions/**", "layers/**", "mlops.toml", "cdk.json"]
_NOT_WATCHED = ("infra/local/", "infra/cli.py")


class SynthError(RuntimeError):
    """`python -m infra.app` failed; the message ends with its error output."""


def synthesize(repo_root: Path, out_dir: Path, context: dict[str, str] | None = None) -> None:
    """Run the CDK app in a subprocess (jsii and node stay out of this process). The local
    cloud deploys one stack: stage `dev` unless the context names another."""
    context = {"stage": "dev", **(context or {})}
    env = {
        **os.environ,
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


def is_stale(cdk_out: Path, repo_root: Path) -> bool:
    """True if cdk.out has no manifest or a watched source file is newer than it."""
    manifest = cdk_out / "manifest.json"
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    return any(path.stat().st_mtime > built for path in _watched_files(repo_root))


def _watched_files(repo_root: Path) -> Iterator[Path]:
    patterns = _DEFAULT_WATCH
    cdk_json = repo_root / "cdk.json"
    if cdk_json.exists():
        patterns = json.loads(cdk_json.read_text()).get("watch", {}).get("include") or patterns
        patterns = [*patterns, "cdk.json"]
    for pattern in patterns:
        # Python 3.11's glob matches only directories with a trailing "**".
        base, _, rest = pattern.partition("/**")
        paths = (
            (repo_root / base).rglob("*")
            if pattern.endswith("/**") and not rest
            else (repo_root.glob(pattern))
        )
        for path in paths:
            relative = path.relative_to(repo_root).as_posix()
            if (
                path.is_file()
                and "__pycache__" not in relative
                and not relative.startswith(_NOT_WATCHED)
            ):
                yield path
