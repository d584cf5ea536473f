"""`mlops predeploy`: the pre-deploy checks (`infra.cdk.predeploy`) on one synthesis of the
stage, and the template changes against the deployed template (`infra.cli.deployed_template`),
printed for people (a table of what would be replaced or deleted, then one line per check) or
as one JSON document (`--json`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from rich.markup import escape
from rich.table import Table

from infra.cdk.config import REPO_ROOT
from infra.cdk.predeploy import CheckResult, check_template_changes, run_checks
from infra.cdk.replacements import Verdict
from infra.cli.common import console
from infra.cli.deployed_template import (
    Deployed,
    DeployedTemplateError,
    from_aws,
    from_last_synth,
    from_path,
    from_revision,
    read_template,
)
from infra.local.synth import SynthError, synthesize

# The commit stamped on the synthesized functions (`CODE_VERSION`): the same on both sides of a
# comparison with a git revision.
SYNTH_COMMIT = "predeploy"


class PredeployError(Exception):
    """The checks could not run (no synthesis, no readable deployed template)."""


def deployed_template(
    stack: str,
    stage: str,
    *,
    aws: bool,
    against: Path | None,
    against_revision: str | None,
    cdk_out: Path | None,
) -> Deployed:
    """The one source the options name (the caller made sure at most one is given)."""
    try:
        if aws:
            return from_aws(stack)
        if against is not None:
            return from_path(against, stack)
        if against_revision is not None:
            return from_revision(against_revision, stack, stage, SYNTH_COMMIT)
        return from_last_synth(stack, cdk_out)
    except DeployedTemplateError as exc:
        raise PredeployError(str(exc)) from None


def run_predeploy(
    stack: str,
    stage: str,
    deployed: Deployed,
    *,
    allowed: Sequence[str],
    cdk_out: Path | None,
    template_only: bool,
) -> tuple[list[CheckResult], Verdict]:
    """Synthesize the stage once (unless `cdk_out` holds it), run the checks on it and compare
    its template with `deployed`."""
    with TemporaryDirectory(prefix="predeploy-synth-") as tmp:
        out = cdk_out or Path(tmp) / "cdk.out"
        if cdk_out is None:
            try:
                synthesize(REPO_ROOT, out, {"stage": stage, "commit": SYNTH_COMMIT})
            except SynthError as exc:
                raise PredeployError(str(exc)) from None
        try:
            new = read_template(out, stack)
        except DeployedTemplateError as exc:
            raise PredeployError(f"{exc} (synthesize stage {stage} into it)") from None
        results = [] if template_only else run_checks(stage, out)
    try:
        template, verdict = check_template_changes(
            new, deployed.template, deployed.description, allowed=allowed, region=deployed.region
        )
    except ValueError as exc:  # a region cfn-lint has no resource schemas for
        raise PredeployError(str(exc)) from None
    return [*results, template], verdict


def print_changes(verdict: Verdict) -> None:
    if not verdict.changes:
        return
    table = Table(title="resources CloudFormation would replace or delete")
    for column in ("logical id", "type", "action", "why"):
        table.add_column(column, overflow="fold")
    for change in verdict.changes:
        action: str = change.action
        if change.loses_data:
            colour = "red" if change in verdict.refused else "yellow"
            action = f"[{colour}]{action} (holds data)[/{colour}]"
        table.add_row(change.logical_id, change.type, action, escape("; ".join(change.why)))
    console.print(table)


def json_document(
    stack: str, deployed: Deployed, results: list[CheckResult], verdict: Verdict
) -> str:
    document: dict[str, Any] = {
        "stack": stack,
        "against": deployed.description,
        "passed": all(result.passed for result in results),
        "checks": [
            {
                "name": r.name,
                "passed": r.passed,
                "figure": r.figure,
                "problems": r.problems,
            }
            for r in results
        ],
        "template_changes": verdict.to_json(),
    }
    return json.dumps(document, indent=2)
