"""`mlops rollback --to REV`: when `mlops smoke` fails after a deploy, put the previous
release's template and code back.

1. REV is synthesized for the stage, with its own code and this checkout's config
   (`deployed_template.synthesize_revision`), its functions stamped with its commit;
2. its template is compared with the deployed one (the comparison of `mlops predeploy`): a
   resource holding data that CloudFormation would replace or delete refuses the rollback
   unless `--allow-replacement` names it;
3. after a confirmation (`--yes` skips it), it is deployed: on `--local` the running local
   cloud updates in place to it (`mlops local update`); on `--aws`, `npx <CDK_CLI> deploy`,
   the CDK CLI pinned in the Makefile;
4. `mlops smoke` runs against the result.

Data and stored formats written by the newer release stay as they are: nothing is migrated
back. There is no record of what was deployed before: REV is named by the operator.

Exit codes: 0 rolled back and the smoke test passed; 1 refused, the deploy or the smoke test
failed, or the target cannot be reached; 2 bad arguments or config.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Annotated, Any

import typer
from rich.markup import escape

from functions.common.config.base import ConfigError
from functions.common.config.loading import MlopsConfig, load_config
from infra.cdk.config import REPO_ROOT
from infra.cdk.predeploy import check_template_changes
from infra.cli.common import (
    AllowReplacementOption,
    LocalOption,
    StageOption,
    StateDirOption,
    console,
    fail,
)
from infra.cli.deployed_template import (
    Deployed,
    DeployedTemplateError,
    from_aws,
    from_path,
    read_template,
    resolve_revision,
    synthesize_revision,
)
from infra.cli.predeploy import print_changes
from infra.cli.target import TargetError, resolve_target
from infra.cli.target import state_dir as local_state_dir
from infra.local import updates
from infra.local.deployer import TEMPLATE_FILE

MAKEFILE = REPO_ROOT / "Makefile"
NO_REVISION = (
    "say which release to roll back to with --to REV (a commit or tag): the one deployed "
    "before this deploy, e.g. from `git log --oneline`, the release tags (`git tag "
    "--sort=-creatordate`) or the release pinned in tests/e2e/upgrade_from.txt; the code "
    "running now is the `code ...` that `mlops smoke` prints for each function"
)
LOCAL_UPDATE_SECONDS = 600.0


def cdk_cli(makefile: Path = MAKEFILE) -> str:
    """The CDK CLI package `make deploy` runs (`CDK_CLI := aws-cdk@X` in the Makefile)."""
    try:
        found = re.search(r"^CDK_CLI\s*:?=\s*(\S+)", makefile.read_text(encoding="utf-8"), re.M)
    except OSError as exc:
        raise RollbackError(f"cannot read the CDK CLI pin from {makefile}: {exc}") from None
    if found is None:
        raise RollbackError(f"{makefile} pins no CDK_CLI")
    return found.group(1)


class RollbackError(Exception):
    """The rollback cannot go on; one sentence for the user."""


def rollback(
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="REV",
            help="The release to go back to: a git commit or tag of this repository.",
            show_default=False,
        ),
    ] = None,
    allow_replacement: AllowReplacementOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Deploy without asking (CI).")] = False,
    local: LocalOption = None,
    stage: StageOption = "dev",
    state_dir: StateDirOption = None,
) -> None:
    """Roll the stack back to release --to: synthesize it (its own code, this config), show
    what CloudFormation would replace or delete (a resource holding data refuses, unless
    --allow-replacement names it), ask, deploy it (the running local cloud updates in place;
    on AWS, cdk deploy with the Makefile's pinned CDK CLI), then run `mlops smoke`. Data and
    stored formats written since stay. Exit 1 if refused or the deploy or smoke test fails."""
    if not to:
        raise fail(NO_REVISION, 2)
    try:
        config = load_config()
        config.stage(stage)
    except ConfigError as exc:
        raise fail(str(exc), 2) from None
    directory = local_state_dir(state_dir)
    try:
        target = resolve_target(config, local=local, stage=stage, local_state=directory)
        commit = resolve_revision(to)
        stack, deployed = _deployed(config, stage, directory, local=target.kind == "local")
        console.print(f"rollback of {target.description} to {to} ({commit[:12]})", style="bold")
        allowed, where = allow_replacement or [], target.description
        if target.kind == "local":
            out = directory / "rollback" / f"{commit[:12]}-{_stamp()}" / "cdk.out"
            _prepare(to, commit, out, stack, stage, deployed, allowed, yes, where)
            _update_local(directory, out, stack)
        else:
            with TemporaryDirectory(prefix="rollback-") as tmp:
                out = Path(tmp) / "cdk.out"
                _prepare(to, commit, out, stack, stage, deployed, allowed, yes, where)
                _cdk_deploy(out, stack)
    except (TargetError, DeployedTemplateError, RollbackError) as exc:
        raise fail(str(exc)) from None
    _smoke(local=target.kind == "local", stage=stage, state_dir=state_dir)


def _deployed(
    config: MlopsConfig, stage: str, directory: Path, *, local: bool
) -> tuple[str, Deployed]:
    """The stack's name and its deployed template: the running local cloud's (its state dir),
    or the AWS stack's."""
    stack = config.stack_name(stage)
    if not local:
        deployed = from_aws(stack)
        if deployed.template is None:
            raise RollbackError(f"nothing to roll back: {deployed.description}")
        return stack, deployed
    try:
        running = str(json.loads((directory / "stack.json").read_text(encoding="utf-8"))["stack"])
    except (OSError, ValueError, KeyError) as exc:
        raise RollbackError(f"cannot read the local cloud's stack in {directory}: {exc}") from None
    if running != stack:
        raise RollbackError(
            f"the local cloud runs stack {running}, not {stack}: pass the --stage it runs"
        )
    template = directory / TEMPLATE_FILE
    if not template.is_file():
        raise RollbackError(
            f"{template} not found: the local cloud was started by an older release; restart "
            "it with `mlops local up`"
        )
    return stack, from_path(template, stack)


def _prepare(
    revision: str,
    commit: str,
    out: Path,
    stack: str,
    stage: str,
    deployed: Deployed,
    allowed: list[str],
    yes: bool,
    where: str,
) -> None:
    """Synthesize `revision` into `out`, compare with `deployed`, refuse or ask; `where` names
    the target in the messages."""
    with console.status(f"synthesizing {revision} ({commit[:12]}) for stage {stage}..."):
        synthesize_revision(commit, out, {"stage": stage, "commit": commit[:12]})
    try:
        result, verdict = check_template_changes(
            read_template(out, stack),
            deployed.template,
            deployed.description,
            allowed=allowed,
            region=deployed.region,
        )
    except ValueError as exc:  # a region cfn-lint has no resource schemas for
        raise RollbackError(str(exc)) from None
    print_changes(verdict)
    status = "[green]pass[/green]" if result.passed else "[red]FAIL[/red]"
    console.print(f"{status} {result.name}: {escape(result.figure)}", highlight=False)
    for problem in result.problems:
        console.print(f"  [red]-[/red] {escape(problem)}", highlight=False)
    if not result.passed:
        raise RollbackError(f"rollback refused: nothing deployed, {where} unchanged")
    if not yes and not typer.confirm(f"Deploy {revision} ({commit[:12]}) to {where}?"):
        raise RollbackError(f"not confirmed: nothing deployed, {where} unchanged")


def _update_local(directory: Path, out: Path, stack: str) -> None:
    """The local cloud running on `directory` updates in place to `out` (kept: its functions
    run from it); then the synthesis of an earlier rollback, no longer run, is removed."""
    from infra.local.cli import print_update

    try:
        with console.status(f"updating stack {stack} in the running local cloud..."):
            result = updates.request(directory, out.resolve(), stack, LOCAL_UPDATE_SECONDS)
    except updates.UpdateRequestError as exc:
        raise RollbackError(str(exc)) from None
    print_update(result)
    if not result.get("ok"):
        raise RollbackError("the local cloud's stack update failed")
    for earlier in out.parents[1].iterdir():
        if earlier != out.parent:
            shutil.rmtree(earlier, ignore_errors=True)


def _cdk_deploy(out: Path, stack: str) -> None:
    """`npx <CDK_CLI> deploy` of `out`'s stack; CloudFormation undoes a failed update."""
    command = [
        *("npx", "--yes", cdk_cli(), "deploy", "--app", str(out), stack),
        *("--require-approval", "never"),
    ]
    console.print(f"$ {escape(' '.join(command))}", highlight=False, soft_wrap=True)
    try:
        code = subprocess.run(command, check=False).returncode
    except OSError as exc:
        raise RollbackError(f"cannot run npx (install Node.js): {exc}") from None
    if code != 0:
        raise RollbackError(
            f"cdk deploy exited {code}: the stack is as CloudFormation left it (a failed "
            "update rolls itself back); the smoke test did not run"
        )


def _smoke(**options: Any) -> None:
    """`mlops smoke` against the rolled-back stack; exit 1 when it fails."""
    from infra.cli.main import smoke

    try:
        smoke(**options)
    except typer.Exit as exc:
        if exc.exit_code:
            console.print("[red]the smoke test fails after the rollback[/red]", highlight=False)
        raise


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
