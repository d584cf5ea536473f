"""The template `mlops predeploy` compares the new synthesis with: the one deployed.

- `--aws`: the stack's current template from CloudFormation (`GetTemplate`, the original, as
  CDK sent it); a stack that does not exist yet is a first deploy, nothing to compare;
- `--against PATH`: a cloud assembly directory (`cdk.out`) or a template file;
- `--against-revision REV`: that git revision synthesized for the same stage and config, in a
  temporary `git worktree` that shares this checkout's build caches (`.mlops/build`);
- none of them: the last synthesis in this checkout (`cdk.out/`, what `make synth` and
  `mlops local up` write, what the local cloud runs), if there is one.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from infra.cdk.config import REPO_ROOT
from infra.cdk.layers import BUILD_ROOT
from infra.local.synth import SynthError, synthesize

DEFAULT_REGION = "us-east-1"
LAST_SYNTH = REPO_ROOT / "cdk.out"


class DeployedTemplateError(Exception):
    """The deployed template cannot be read; one sentence for the user."""


@dataclass(frozen=True)
class Deployed:
    description: str
    """Where the template came from, or why there is none."""
    template: dict[str, Any] | None
    """None: nothing deployed to compare with (a first deploy)."""
    region: str = DEFAULT_REGION
    """The region whose resource schemas decide what replaces."""


def local_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def read_template(path: Path, stack: str) -> dict[str, Any]:
    """`<stack>.template.json` of a cloud assembly directory, or a template file."""
    file = path / f"{stack}.template.json" if path.is_dir() else path
    if not file.is_file():
        where = f"{path} has no {stack}.template.json" if path.is_dir() else f"{path} not found"
        raise DeployedTemplateError(where)
    try:
        template = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DeployedTemplateError(f"cannot read {file} as a JSON template: {exc}") from None
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise DeployedTemplateError(f"{file} is not a CloudFormation template (no Resources)")
    return template


def from_path(path: Path, stack: str) -> Deployed:
    return Deployed(f"{path}", read_template(path, stack), local_region())


def from_aws(stack: str) -> Deployed:
    """The stack's current template on CloudFormation (credentials and region as boto3 finds
    them); none when the stack does not exist."""
    session = boto3.session.Session()
    region = session.region_name or DEFAULT_REGION
    try:
        body = session.client("cloudformation").get_template(
            StackName=stack, TemplateStage="Original"
        )["TemplateBody"]
    except ClientError as exc:
        message = str(exc.response.get("Error", {}).get("Message", exc))
        if "does not exist" in message:
            return Deployed(
                f"stack {stack} does not exist in {region} (first deploy)", None, region
            )
        raise DeployedTemplateError(f"cannot read stack {stack}'s template: {message}") from None
    except BotoCoreError as exc:
        raise DeployedTemplateError(f"cannot reach AWS to read stack {stack}: {exc}") from None
    # boto3 decodes a JSON template body into a dict; a YAML one (not CDK's) stays text.
    template = body if isinstance(body, dict) else _yaml_template(str(body), stack)
    return Deployed(f"AWS stack {stack} ({region})", dict(template), region)


def _yaml_template(body: str, stack: str) -> dict[str, Any]:
    from cfnlint.decode.cfn_yaml import loads

    try:
        template = loads(body)
    except Exception as exc:  # cfn-lint's YAML decoder raises several error types
        raise DeployedTemplateError(f"cannot read stack {stack}'s template: {exc}") from None
    if not isinstance(template, dict):
        raise DeployedTemplateError(f"stack {stack}'s template is not a mapping")
    return dict(template)


def from_revision(revision: str, stack: str, stage: str, commit_label: str) -> Deployed:
    """`revision` synthesized for `stage` with this checkout's config, in a temporary git
    worktree (removed afterwards) that reuses this checkout's build caches; stamped with
    `commit_label`, as the new synthesis is, so the stamp alone changes nothing."""
    with TemporaryDirectory(prefix="predeploy-revision-") as tmp:
        out = Path(tmp) / "cdk.out"
        commit = synthesize_revision(revision, out, {"stage": stage, "commit": commit_label})
        template = read_template(out, stack)
    return Deployed(f"revision {revision} ({commit[:12]})", template, local_region())


def synthesize_revision(revision: str, out: Path, context: dict[str, str]) -> str:
    """Synthesize git `revision` (its own code, this checkout's config) into `out`, in a
    temporary git worktree (removed afterwards; the assembly keeps copies of the code) that
    reuses this checkout's build caches; returns the commit."""
    commit = resolve_revision(revision)
    with TemporaryDirectory(prefix="revision-") as tmp:
        worktree = Path(tmp) / "checkout"
        _git("worktree", "add", "--detach", "--quiet", str(worktree), commit)
        try:
            (worktree / ".mlops").mkdir(exist_ok=True)
            if BUILD_ROOT.is_dir():
                (worktree / ".mlops" / "build").symlink_to(BUILD_ROOT, target_is_directory=True)
            synthesize(worktree, out, context)
        except SynthError as exc:
            raise DeployedTemplateError(f"revision {revision} does not synthesize: {exc}") from None
        finally:
            _git("worktree", "remove", "--force", str(worktree), check=False)
    return commit


def resolve_revision(revision: str) -> str:
    """The full commit `revision` names in this checkout's git history."""
    commit = _git("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}", check=False)
    if not commit.strip():
        raise DeployedTemplateError(f"no git revision {revision!r} in {REPO_ROOT}")
    return commit.strip()


def from_last_synth(stack: str, new_cdk_out: Path | None) -> Deployed:
    """The last synthesis in this checkout's cdk.out, unless that is the new template."""
    template_file = LAST_SYNTH / f"{stack}.template.json"
    hint = "name the deployed one with --aws, --against or --against-revision"
    if new_cdk_out is not None and new_cdk_out.resolve() == LAST_SYNTH.resolve():
        return Deployed(f"the new template is the last synthesis itself; {hint}", None)
    if not template_file.is_file():
        return Deployed(f"no earlier synthesis of {stack} in {LAST_SYNTH}; {hint}", None)
    return Deployed(
        f"the last synthesis ({template_file})",
        read_template(template_file, stack),
        local_region(),
    )


def _git(*args: str, check: bool = True) -> str:
    result = subprocess.run(
        ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=120
    )
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise DeployedTemplateError(
            f"git {args[0]} failed: {detail[-1] if detail else f'exit {result.returncode}'}"
        )
    return result.stdout
