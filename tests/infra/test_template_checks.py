"""Static checks of every synthesized stack (mlops-dev and mlops-prod): cdk-nag acknowledgements
with reasons, cfn-lint without errors, checkov without failures other than the written skips."""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from infra.cdk.checks import Finding, Skip, cfn_lint, checkov, checkov_skips, stack_templates

STACKS = {"mlops-dev", "mlops-prod"}
SECURITY_PAGE = Path(__file__).resolve().parents[2] / "docs" / "security.md"
MIN_REASON = 40


@pytest.fixture(scope="module")
def templates(cloud_assembly: Path) -> list[Path]:
    found = stack_templates(cloud_assembly)
    assert set(found) == STACKS
    return list(found.values())


@pytest.fixture(scope="module")
def checkov_failures(templates: list[Path]) -> list[Finding]:
    return checkov(templates)


def _listing(findings: list[Finding]) -> str:
    return "\n".join(f"{f.rule} {f.template} {f.resource}: {f.message}" for f in findings)


def test_every_stack_acknowledges_nag_findings_only_with_a_reason(cloud_assembly: Path) -> None:
    for stack in STACKS:
        metadata = json.loads((cloud_assembly / f"{stack}.metadata.json").read_text())
        for path, entries in metadata.items():
            for entry in entries:
                if entry["type"] != "aws:cdk:acknowledged-rules":
                    continue
                for rule, reason in entry["data"].items():
                    assert rule.startswith("Annotation::AwsSolutions-"), (stack, path, rule)
                    assert len(reason) >= MIN_REASON, f"{stack} {path} {rule}: {reason!r}"


@pytest.fixture(scope="module")
def cfn_lint_findings(templates: list[Path]) -> list[Finding]:
    return cfn_lint(templates)


def test_cfn_lint_finds_no_errors(cfn_lint_findings: list[Finding]) -> None:
    findings = cfn_lint_findings
    errors = [f for f in findings if f.level == "Error"]
    assert not errors, "cfn-lint errors:\n" + _listing(errors)
    others = Counter((f.rule, f.level, f.template) for f in findings)
    if others:
        warnings.warn(
            "cfn-lint (not failing): "
            + "; ".join(f"{rule} {level} x{n} in {t}" for (rule, level, t), n in others.items()),
            stacklevel=1,
        )


def test_the_security_page_counts_the_cfn_lint_warnings_each_stack_has(
    cfn_lint_findings: list[Finding],
) -> None:
    warned = Counter((f.rule, f.template) for f in cfn_lint_findings if f.level != "Error")
    assert {rule for rule, _ in warned} == {"W3005"}, warned
    per_stack = set(warned.values())
    assert len(per_stack) == 1 and len(warned) == len(STACKS), warned
    stated = re.search(r"(\d+) W3005 warnings", " ".join(SECURITY_PAGE.read_text().split()))
    assert stated is not None and int(stated.group(1)) == per_stack.pop()


def test_checkov_fails_no_check_that_is_not_skipped_with_a_reason(
    checkov_failures: list[Finding],
) -> None:
    skips = checkov_skips()
    unskipped = [f for f in checkov_failures if not (f.rule in skips and skips[f.rule].covers(f))]
    assert not unskipped, "fix these or skip them in infra/cdk/checkov-skips.yaml:\n" + _listing(
        unskipped
    )


@pytest.fixture(scope="module")
def shadow_checkov_failures(
    shadow_template: dict[str, Any], tmp_path_factory: Any
) -> list[Finding]:
    """Of the dev template with `[serving] shadow = true` (its resources exist only then)."""
    path = tmp_path_factory.mktemp("shadow-checkov") / "mlops-dev.template.json"
    path.write_text(json.dumps(shadow_template))
    return checkov([path])


def test_every_checkov_skip_has_a_reason_and_still_matches_a_failure(
    checkov_failures: list[Finding], shadow_checkov_failures: list[Finding]
) -> None:
    for check, skip in checkov_skips().items():
        assert check.startswith("CKV"), check
        assert len(skip.reason) >= MIN_REASON, f"{check}: reason too thin: {skip.reason!r}"
        failures = [f for f in checkov_failures + shadow_checkov_failures if f.rule == check]
        assert failures, f"{check} no longer fails: remove its skip"
        for prefix in skip.resources:
            scoped = Skip(skip.reason, (prefix,))
            assert any(scoped.covers(f) for f in failures), f"{check}: {prefix} no longer fails"
