"""Static checks of the synthesized templates: cfn-lint (in the main venv) and checkov (in
`.venv-checks`, built by `make checks-venv`: its pins conflict with the main venv's). And of
the GitHub workflows, which cannot run here: zizmor (offline) and check-jsonschema with its
vendored GitHub workflow schema, both in `.venv-checks` too.

`python -m infra.cdk.checks [cdk.out]` prints what all of them report; `make lint` runs the
workflow checks; tests/infra/test_template_checks.py and tests/infra/test_workflows.py assert
on the same results."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.cdk.config import REPO_ROOT

CHECKS_BIN = REPO_ROOT / ".venv-checks" / "bin"
CHECKOV = CHECKS_BIN / "checkov"
ZIZMOR = CHECKS_BIN / "zizmor"
CHECK_JSONSCHEMA = CHECKS_BIN / "check-jsonschema"
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
ZIZMOR_ARGS = ("--offline", "--persona=pedantic")
"""Offline: no GitHub API. Pedantic: every audit zizmor has, its low-confidence findings too;
a finding is acknowledged only in place, by a `# zizmor: ignore[rule]` comment with a reason."""
WORKFLOW_SCHEMA = "vendor.github-workflows"
CHECKOV_SKIPS = REPO_ROOT / "infra" / "cdk" / "checkov-skips.yaml"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"


@dataclass(frozen=True)
class Finding:
    tool: str
    rule: str
    """cfn-lint rule (E3001, W3005, ...) or checkov check id (CKV_AWS_117, ...)."""
    level: str
    """cfn-lint: Error, Warning or Informational; checkov: failed."""
    template: str
    resource: str
    """Logical id of the resource; for a workflow, `line N`."""
    message: str


def stack_templates(assembly: Path) -> dict[str, Path]:
    """Stack name -> template file of every CloudFormation stack in a cloud assembly."""
    manifest = json.loads((assembly / "manifest.json").read_text())
    return {
        name: assembly / artifact["properties"]["templateFile"]
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }


def cfn_lint(templates: list[Path]) -> list[Finding]:
    result = subprocess.run(
        [str(CFN_LINT), "--format", "json", "--", *map(str, templates)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # Exit status is a bit mask of the levels found (2 errors, 4 warnings, 8 informational);
    # 1 means cfn-lint itself failed.
    if result.returncode & 1:
        raise RuntimeError(f"cfn-lint failed: {result.stderr or result.stdout}")
    return [
        Finding(
            tool="cfn-lint",
            rule=match["Rule"]["Id"],
            level=match["Level"],
            template=Path(match["Filename"]).name,
            resource="/".join(str(part) for part in match["Location"]["Path"][:2]),
            message=match["Message"],
        )
        for match in json.loads(result.stdout or "[]")
    ]


def checkov(templates: list[Path]) -> list[Finding]:
    """Every failed checkov check, unskipped: the skip list is applied by the caller, so a
    skip that no longer matches a failure shows up as stale."""
    _require(CHECKOV)
    files = [arg for template in templates for arg in ("--file", str(template))]
    # An empty working directory: no stray .checkov.yaml changes what runs.
    with tempfile.TemporaryDirectory() as cwd:
        result = subprocess.run(
            [str(CHECKOV), *files, "--framework", "cloudformation", "--output", "json"]
            + ["--quiet", "--compact", "--skip-download"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=cwd,
        )
    if result.returncode not in (0, 1):
        raise RuntimeError(f"checkov failed ({result.returncode}): {result.stderr}")
    reports: Any = json.loads(result.stdout)
    findings = []
    for report in reports if isinstance(reports, list) else [reports]:
        for check in report.get("results", {}).get("failed_checks", []):
            findings.append(
                Finding(
                    tool="checkov",
                    rule=check["check_id"],
                    level="failed",
                    template=Path(check["file_path"]).name,
                    resource=check["resource"],
                    message=check["check_name"],
                )
            )
    return findings


def _require(tool: Path) -> None:
    if not tool.exists():
        raise FileNotFoundError(f"{tool} is missing: run `make checks-venv`")


def workflow_files(workflows: Path = WORKFLOWS) -> list[Path]:
    return sorted([*workflows.glob("*.yml"), *workflows.glob("*.yaml")])


def zizmor(workflows: Path = WORKFLOWS) -> list[Finding]:
    """Every finding zizmor reports on the workflows that no ignore comment acknowledges."""
    _require(ZIZMOR)
    result = subprocess.run(
        [str(ZIZMOR), *ZIZMOR_ARGS, "--format", "json", "--no-exit-codes"]
        + [str(file) for file in workflow_files(workflows)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    if result.returncode:
        raise RuntimeError(f"zizmor failed ({result.returncode}): {result.stderr}")
    findings = []
    for finding in json.loads(result.stdout):
        locations = finding["locations"]
        (primary, *_) = [at for at in locations if at["symbolic"]["kind"] == "Primary"] or locations
        findings.append(
            Finding(
                tool="zizmor",
                rule=finding["ident"],
                level=finding["determinations"]["severity"],
                template=Path(primary["symbolic"]["key"]["Local"]["verbatim_path"]).name,
                resource=f"line {primary['concrete']['location']['start_point']['row'] + 1}",
                message=f"{finding['desc']}: {primary['symbolic']['annotation']}",
            )
        )
    return findings


def workflow_schema(workflows: Path = WORKFLOWS) -> list[Finding]:
    """Every place a workflow breaks GitHub's workflow schema (check-jsonschema's vendored
    copy: no network)."""
    _require(CHECK_JSONSCHEMA)
    files = workflow_files(workflows)
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", WORKFLOW_SCHEMA, "-o", "json"]
        + [str(file) for file in files],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode not in (0, 1) or not result.stdout.strip():
        raise RuntimeError(f"check-jsonschema failed ({result.returncode}): {result.stderr}")
    report = json.loads(result.stdout)
    return [
        Finding(
            tool="check-jsonschema",
            rule="schema",
            level="error",
            template=Path(error["filename"]).name,
            resource=error["path"],
            message=error.get("best_deep_match", error)["message"],
        )
        for error in report.get("errors", [])
    ] + [
        Finding(
            tool="check-jsonschema",
            rule="parse",
            level="error",
            template=Path(error.get("filename", "?")).name,
            resource="",
            message=error.get("message", str(error)),
        )
        for error in report.get("parse_errors", [])
    ]


@dataclass(frozen=True)
class Skip:
    """A checkov check accepted with a written reason, on the resources whose logical ids
    start with one of `resources` (every resource when empty)."""

    reason: str
    resources: tuple[str, ...] = ()

    def covers(self, finding: Finding) -> bool:
        logical_id = finding.resource.rsplit(".", 1)[-1]
        return not self.resources or logical_id.startswith(self.resources)


def checkov_skips() -> dict[str, Skip]:
    """Check id -> why it is accepted (a reason, or a mapping of `reason` and `resources`)."""
    skips = yaml.safe_load(CHECKOV_SKIPS.read_text()) or {}
    return {
        str(check): (
            Skip(str(entry["reason"]).strip(), tuple(entry.get("resources", ())))
            if isinstance(entry, dict)
            else Skip(str(entry).strip())
        )
        for check, entry in skips.items()
    }


def main() -> None:
    assembly = Path(sys.argv[1] if len(sys.argv) > 1 else REPO_ROOT / "cdk.out")
    templates = list(stack_templates(assembly).values())
    skips = checkov_skips()
    found = cfn_lint(templates) + checkov(templates) + zizmor() + workflow_schema()
    for finding in found:
        skip = skips.get(finding.rule)
        covered = skip is not None and skip.covers(finding)
        skipped = " (skipped: see infra/cdk/checkov-skips.yaml)" if covered else ""
        print(
            f"{finding.tool} {finding.level} {finding.rule} {finding.template} "
            f"{finding.resource}: {finding.message}{skipped}"
        )


if __name__ == "__main__":
    main()
