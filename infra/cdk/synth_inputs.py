"""What a synthesis reads, recorded in the assembly it writes.

The CDK app reads the config file in use (`$MLOPS_CONFIG`, else `mlops.toml`), `cdk.json` and
its own sources (cdk.json's `watch`: infra/cdk/, functions/, layers/). After synthesizing, it
writes `cdk.out/mlops-synth.json` with the config's resolved path and content hash, a hash
over the sources' contents, and one over the config's `[train] code` folder (the model code the
training images ship). `mlops local up` compares that record with what a synthesis would
read now (`stale_reason`): content, not modification times, so pointing `MLOPS_CONFIG` at
another (even older) file, or editing a source, makes the assembly stale.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from functions.common.config.loading import config_path

STAMP_FILE = "mlops-synth.json"

# Paths the app reads, as in cdk.json's "watch"; the local cloud and the CLI are never part of
# it, also under a broader include such as "infra/**".
_DEFAULT_WATCH = ["infra/cdk/**", "functions/**", "layers/**", "mlops.toml", "cdk.json"]
_NOT_WATCHED = ("infra/local/", "infra/cli/")


def config_in_use() -> Path:
    """The config file a synthesis started from this process reads, as an absolute path."""
    return config_path().resolve()


def synth_inputs(repo_root: Path, config_file: Path | None = None) -> dict[str, Any]:
    """The record of what a synthesis reads: the config file (path, sha256 of its content;
    None when it does not exist) and a sha256 over every watched source file's path and
    content."""
    config = (config_file or config_in_use()).resolve()
    try:
        config_sha256: str | None = hashlib.sha256(config.read_bytes()).hexdigest()
    except FileNotFoundError:
        config_sha256 = None
    sources = hashlib.sha256()
    for path in sorted(watched_files(repo_root)):
        sources.update(path.relative_to(repo_root).as_posix().encode() + b"\0")
        sources.update(hashlib.sha256(path.read_bytes()).digest())
    return {
        "config": str(config),
        "config_sha256": config_sha256,
        "sources_sha256": sources.hexdigest(),
        "model_code_sha256": _model_code_sha256(config),
    }


def _model_code_sha256(config: Path) -> str | None:
    """A sha256 over the files of the config's `[train] code` folder (the training images
    ship it), None without one; a config that does not parse has none here (synth says why)."""
    import tomllib

    try:
        code = tomllib.loads(config.read_text(encoding="utf-8")).get("train", {}).get("code")
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        return None
    if not isinstance(code, str):
        return None
    folder = config.parent / code
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def write_stamp(out_dir: Path, inputs: dict[str, Any]) -> None:
    """Record what a synthesis read (`synth_inputs`) in `out_dir/mlops-synth.json`."""
    (Path(out_dir) / STAMP_FILE).write_text(json.dumps(inputs, indent=2) + "\n", encoding="utf-8")


def stale_reason(cdk_out: Path, repo_root: Path, config_file: Path | None = None) -> str | None:
    """Why `cdk_out` does not hold what synthesizing now would write, or None when it does:
    no assembly, no record of its inputs, another config file, a changed config or source."""
    if not (cdk_out / "manifest.json").exists():
        return f"{cdk_out} holds no assembly"
    try:
        recorded = json.loads((cdk_out / STAMP_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return f"{cdk_out} has no record of the config and sources it was synthesized from"
    current = synth_inputs(repo_root, config_file)
    if recorded.get("config") != current["config"]:
        return (
            f"{cdk_out} was synthesized from {recorded.get('config')}; the config in use is "
            f"{current['config']}"
        )
    if recorded.get("config_sha256") != current["config_sha256"]:
        return f"{current['config']} changed since {cdk_out} was synthesized"
    if recorded.get("sources_sha256") != current["sources_sha256"]:
        return f"the CDK app's sources changed since {cdk_out} was synthesized"
    if recorded.get("model_code_sha256") != current["model_code_sha256"]:
        return f"the model code ([train] code) changed since {cdk_out} was synthesized"
    return None


def watched_files(repo_root: Path) -> Iterator[Path]:
    """The files the app reads besides the config: cdk.json's `watch` includes and cdk.json,
    without the local cloud and the CLI."""
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
