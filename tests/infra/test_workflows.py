"""The GitHub Actions workflows, read as data (GitHub itself cannot run here): what triggers
them, which Makefile targets their jobs call, how the deploy jobs get AWS credentials, and what
zizmor and GitHub's workflow schema say of them (the checks `make lint` runs)."""

from __future__ import annotations

import itertools
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from functions.common.config.loading import load_config
from infra.cdk import checks

WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"
CI_WORKFLOW = "./.github/workflows/ci.yml"
PINNED = re.compile(r"\s*(- )?uses: [\w.-]+/[\w./-]+@[0-9a-f]{40}  # v\d+\.\d+\.\d+\s*")


def _workflow(name: str) -> dict[str, Any]:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the bare key `on` as the boolean true.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return dict(workflow)


@pytest.fixture(scope="module")
def ci() -> dict[str, Any]:
    return _workflow("ci.yml")


@pytest.fixture(scope="module")
def cd() -> dict[str, Any]:
    return _workflow("cd.yml")


def _commands(job: dict[str, Any]) -> list[str]:
    """Every line the job's steps run, once per combination of its matrix."""
    matrix = job.get("strategy", {}).get("matrix", {})
    combinations = [
        dict(zip(matrix, values, strict=True)) for values in itertools.product(*matrix.values())
    ]
    lines = [
        line.strip()
        for step in job.get("steps", [])
        for line in str(step.get("run", "")).splitlines()
        if line.strip()
    ]
    commands = []
    for values in combinations:
        for line in lines:
            for key, value in values.items():
                line = re.sub(r"\$\{\{\s*matrix\." + key + r"\s*\}\}", str(value), line)
            commands.append(line)
    return commands


def _jobs_running(workflow: dict[str, Any], command: str) -> dict[str, dict[str, Any]]:
    return {
        name: job
        for name, job in workflow["jobs"].items()
        if any(line.startswith(command) for line in _commands(job))
    }


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def _all_jobs(*workflows: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, job) for workflow in workflows for name, job in workflow["jobs"].items()]


def test_ci_runs_on_every_push_and_pull_request_read_only_one_run_per_ref(
    ci: dict[str, Any],
) -> None:
    """Every push: on main and version tags CD calls CI, on every other branch CI runs itself."""
    assert {"push", "pull_request", "workflow_call"} <= set(ci["on"])
    assert not (ci["on"]["push"] or {}).get("branches"), "CI must run on every branch"
    assert ci["permissions"] == {"contents": "read"}
    assert "github.ref" in ci["concurrency"]["group"]


def test_ci_lints_tests_and_synthesizes_every_configured_stage(ci: dict[str, Any]) -> None:
    assert _jobs_running(ci, "make lint")
    assert _jobs_running(ci, "make test")
    synthesized = {
        line for _, job in _all_jobs(ci) for line in _commands(job) if line.startswith("make synth")
    }
    assert synthesized == {f"make synth STAGE={stage}" for stage in load_config().stages}
    assert {"dev", "prod"} <= set(load_config().stages)


def test_ci_sets_up_python_311_and_313_and_node_20_with_a_pip_cache(
    ci: dict[str, Any],
) -> None:
    """3.11 runs everything (the last version listed is the default `python`); 3.13, the
    Lambda runtime's, compiles the serving layer's bytecode in synth."""
    for name, job in ci["jobs"].items():
        setups = {
            step["uses"].split("@")[0]: step.get("with", {})
            for step in job["steps"]
            if "uses" in step
        }
        if any(line.startswith("make ") for line in _commands(job)):
            python = setups["actions/setup-python"]
            assert python["python-version"].split() == ["3.13", "3.11"], name
            assert python["cache"] == "pip", name
        if "actions/setup-node" in setups:
            assert str(setups["actions/setup-node"]["node-version"]) == "20", name


def test_ci_trains_locally_on_pull_requests_that_change_model_code_and_keeps_the_metrics(
    ci: dict[str, Any],
) -> None:
    (name, job), *others = _jobs_running(ci, "make train-local DATA=").items()
    assert others == []
    (gate,) = _needs(job)
    assert f"needs.{gate}.outputs." in job["if"]
    detector = ci["jobs"][gate]
    assert detector["if"] == "github.event_name == 'pull_request'"
    diff = " ".join(_commands(detector))
    assert "functions/ml" in diff and "functions/train" in diff
    uploads = [step for step in job["steps"] if step.get("uses", "").startswith("actions/upload-")]
    assert uploads and uploads[0]["with"]["if-no-files-found"] == "error", name


def test_cd_deploys_dev_from_main_and_prod_from_version_tags(cd: dict[str, Any]) -> None:
    assert set(cd["on"]) == {"push"}
    assert cd["on"]["push"] == {"branches": ["main"], "tags": ["v*"]}
    (dev_name, dev), *more_dev = _jobs_running(cd, "make deploy STAGE=dev").items()
    (prod_name, prod), *more_prod = _jobs_running(cd, "make deploy STAGE=prod").items()
    assert more_dev == [] and more_prod == []
    assert "if" not in dev, "dev follows main and every version tag"
    assert prod["if"] == "startsWith(github.ref, 'refs/tags/v')"
    assert prod_name != dev_name


def test_prod_waits_for_approval_in_environment_prod_after_tests_and_dev(
    cd: dict[str, Any],
) -> None:
    (dev_name,) = _jobs_running(cd, "make deploy STAGE=dev")
    ((prod_name, prod),) = _jobs_running(cd, "make deploy STAGE=prod").items()
    (checks_name,) = [name for name, job in cd["jobs"].items() if job.get("uses") == CI_WORKFLOW]
    assert prod["environment"] == "prod"
    assert {dev_name, checks_name} <= set(_needs(prod))
    assert checks_name in _needs(cd["jobs"][dev_name])
    # The deploy role trusts `environment:prod` but no other environment.
    assert "environment" not in cd["jobs"][dev_name]
    assert "required reviewers" in (WORKFLOWS / "cd.yml").read_text().lower()


def test_each_push_to_main_or_a_version_tag_runs_the_suite_once_before_it_deploys(
    ci: dict[str, Any], cd: dict[str, Any]
) -> None:
    """CD calls CI as a reusable workflow for its checks, and CI on its own skips the pushes CD
    handles: every commit is linted, tested and synthesized once, and deploys only after."""
    assert not _jobs_running(cd, "make test"), "CD runs the tests itself"
    (checks_job,) = [name for name, job in cd["jobs"].items() if job.get("uses") == CI_WORKFLOW]
    assert "workflow_call" in ci["on"]
    assert ci["on"]["push"] == {"branches-ignore": ["main"], "tags-ignore": ["v*"]}
    assert cd["on"]["push"] == {"branches": ["main"], "tags": ["v*"]}
    deploys = [job for _, job in _all_jobs(cd) if "make deploy" in " ".join(_commands(job))]
    assert deploys and all(checks_job in _needs(job) for job in deploys)


def test_only_deploy_jobs_may_request_an_oidc_token(ci: dict[str, Any], cd: dict[str, Any]) -> None:
    assert cd["permissions"] == {"contents": "read"}
    for name, job in _all_jobs(ci, cd):
        deploys = any(line.startswith("make deploy") for line in _commands(job))
        permissions = job.get("permissions", {})
        if deploys:
            assert permissions == {"id-token": "write", "contents": "read"}, name
        else:
            assert "id-token" not in permissions, name


def test_deploy_credentials_come_from_oidc_and_a_variable_never_from_keys(
    cd: dict[str, Any],
) -> None:
    for workflow in WORKFLOWS.glob("*.yml"):
        text = workflow.read_text()
        assert "aws-access-key-id" not in text, workflow.name
        assert "aws-secret-access-key" not in text, workflow.name
        assert "secrets." not in text, workflow.name
    for name, job in cd["jobs"].items():
        if not any(line.startswith("make deploy") for line in _commands(job)):
            continue
        uses = [step["uses"] for step in job["steps"] if "uses" in step]
        (credentials,) = [
            step for step in job["steps"] if "configure-aws-credentials" in step.get("uses", "")
        ]
        assert credentials["with"]["role-to-assume"].startswith("${{ vars."), name
        # No action runs after the credentials are in the environment.
        assert uses.index(credentials["uses"]) == len(uses) - 1, name


def test_deploy_jobs_build_on_arm64_runners(cd: dict[str, Any]) -> None:
    deploy_jobs = [
        job
        for _, job in _all_jobs(cd)
        if any(line.startswith("make deploy") for line in _commands(job))
    ]
    assert len(deploy_jobs) == 2
    for job in deploy_jobs:
        assert job["runs-on"] == "ubuntu-24.04-arm"
        assert job["concurrency"]["cancel-in-progress"] is False


def test_every_action_is_pinned_to_a_commit_with_its_tag_in_a_comment() -> None:
    """A tag can be moved to other code; a commit cannot. The comment says which release."""
    lines = [
        (workflow.name, line)
        for workflow in checks.workflow_files()
        for line in workflow.read_text().splitlines()
        if re.match(r"\s*(- )?uses: ", line) and "uses: ./" not in line
    ]
    assert lines
    unpinned = [f"{name}: {line.strip()}" for name, line in lines if not PINNED.fullmatch(line)]
    assert not unpinned, "pin these as `owner/repo@<sha>  # vX.Y.Z`:\n" + "\n".join(unpinned)


def _listing(findings: list[checks.Finding]) -> str:
    return "\n".join(
        f"  {f.tool} {f.rule} {f.template} {f.resource}: {f.message}" for f in findings
    )


def test_zizmor_finds_nothing_that_is_not_acknowledged_in_place() -> None:
    """Every audit runs (pedantic persona, offline); a finding may only be acknowledged on its
    own line by a `# zizmor: ignore[rule]` comment that says why."""
    findings = checks.zizmor()
    assert not findings, "fix these or acknowledge each in place:\n" + _listing(findings)
    for workflow in checks.workflow_files():
        for number, line in enumerate(workflow.read_text().splitlines(), 1):
            ignore = re.search(r"# zizmor: ignore\[[\w,-]+\](.*)", line)
            if ignore:
                reason = ignore.group(1).strip(" :-")
                assert len(reason) > 10, f"{workflow.name}:{number} ignores without a reason"


def test_zizmor_names_the_file_and_line_of_an_action_pinned_to_a_tag(tmp_path: Path) -> None:
    lines = (checks.WORKFLOWS / "cd.yml").read_text().splitlines(keepends=True)
    (number,) = [i for i, line in enumerate(lines) if "configure-aws-credentials@" in line][:1]
    lines[number] = "      - uses: aws-actions/configure-aws-credentials@v5\n"
    (tmp_path / "cd.yml").write_text("".join(lines))
    findings = checks.zizmor(tmp_path)
    assert ("unpinned-uses", "cd.yml", f"line {number + 1}") in {
        (f.rule, f.template, f.resource) for f in findings
    }


def test_the_workflows_follow_githubs_workflow_schema() -> None:
    errors = checks.workflow_schema()
    assert not errors, _listing(errors)


def test_the_workflow_schema_check_names_a_missing_key(tmp_path: Path) -> None:
    text = (checks.WORKFLOWS / "ci.yml").read_text().replace("runs-on:", "run-on:", 1)
    (tmp_path / "ci.yml").write_text(text)
    (error, *_) = checks.workflow_schema(tmp_path)
    assert error.template == "ci.yml" and error.resource.startswith("$.jobs.")
    assert "runs-on" in error.message


def test_make_lint_runs_zizmor_offline_and_the_workflow_schema() -> None:
    dry_run = subprocess.run(
        ["make", "--dry-run", "--always-make", "lint"],
        cwd=checks.REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    # The checks venv is built when missing, then both tools run on the workflows.
    assert ".venv-checks/bin/python -m pip install" in dry_run
    zizmor = checks.ZIZMOR.relative_to(checks.REPO_ROOT)
    assert f"{zizmor} {' '.join(checks.ZIZMOR_ARGS)}" in dry_run
    assert f"check-jsonschema --builtin-schema {checks.WORKFLOW_SCHEMA}" in dry_run
