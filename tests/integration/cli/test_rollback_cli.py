"""`mlops rollback --aws`: the release synthesized, its template compared with the stack's on
CloudFormation (moto), then deployed by `npx` (here a script on PATH that records its
arguments and the assembly it was given) and smoke-tested (the stack's API is a small HTTP
server answering the health routes)."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from infra.cli.main import app
from tests.helpers import REPO

pytestmark = pytest.mark.slow

REGISTRY = "RegistryTableDB777839"  # the registry table's logical id (tests/infra/stateful.json)
ARCHIVE = {"Type": "AWS::S3::Bucket", "Properties": {}}
HEAD = subprocess.run(
    ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
).stdout.strip()


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        body = json.dumps({"status": "ok" if self.status == 200 else "broken"}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[tuple[str, type[_Health]]]:
    """The stack's API: answers every health route with `handler.status`."""
    handler = type("Health", (_Health,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", handler
    server.shutdown()
    server.server_close()


@pytest.fixture
def npx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake `npx` first on PATH: records its arguments and the template of the stack it
    deploys into `npx.json`; exits with the number in `npx-exit` (0 without it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "npx.json"
    script = bin_dir / "npx"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, pathlib, sys\n"
        "args = sys.argv[1:]\n"
        "app = pathlib.Path(args[args.index('--app') + 1])\n"
        "stack = args[args.index('--app') + 2]\n"
        "template = json.loads((app / f'{stack}.template.json').read_text())\n"
        f"record = pathlib.Path({str(record)!r})\n"
        "record.write_text(json.dumps({'args': args, 'template': template}))\n"
        f"code = pathlib.Path({str(tmp_path / 'npx-exit')!r})\n"
        "sys.exit(int(code.read_text()) if code.exists() else 0)\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("MLOPS_LOCAL_STATE_DIR", str(tmp_path / "no-local-cloud"))
    return record


def _deploy_stack(api_url: str, *extra: tuple[str, dict[str, Any]]) -> None:
    """The stack as deployed: the registry table (as the release defines its keys), the
    outputs the smoke test reads, and `extra` resources."""
    key = [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    table = {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "KeySchema": key,
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
        },
    }
    template = {
        "Resources": {REGISTRY: table, **dict(extra)},
        "Outputs": {
            "RegistryTableName": {"Value": {"Ref": REGISTRY}},
            "ApiUrl": {"Value": api_url},
        },
    }
    boto3.client("cloudformation").create_stack(
        StackName="mlops-dev", TemplateBody=json.dumps(template)
    )


def _rollback(*options: str, answer: str | None = None) -> Any:
    arguments = ["rollback", "--aws", "--stage", "dev", "--to", "HEAD", *options]
    return CliRunner().invoke(app, arguments, input=answer, env={"COLUMNS": "250"})


def test_rollback_deploys_the_release_with_the_pinned_cdk_cli_then_smoke_tests_it(
    mocked_aws: None, npx: Path, api: tuple[str, type[_Health]]
) -> None:
    _deploy_stack(api[0])

    result = _rollback("--yes")

    assert result.exit_code == 0, result.output
    recorded = json.loads(npx.read_text())
    args = recorded["args"]
    assert args[0] == "--yes" and args[2:4] == ["deploy", "--app"]
    assert args[5:] == ["mlops-dev", "--require-approval", "never"]
    assert f"CDK_CLI := {args[1]}\n" in (REPO / "Makefile").read_text()
    functions = [
        resource["Properties"]["Environment"]["Variables"]
        for resource in recorded["template"]["Resources"].values()
        if resource["Type"] == "AWS::Lambda::Function"
        and "CODE_VERSION" in resource["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert functions and {env["CODE_VERSION"] for env in functions} == {HEAD[:12]}
    assert "no resource replaced or deleted" in result.output
    assert "pass API GET /v1/health" in result.output
    assert "pass alias production" in result.output


def test_a_rollback_that_deletes_a_stateful_resource_is_refused_unless_allowed(
    mocked_aws: None, npx: Path, api: tuple[str, type[_Health]]
) -> None:
    _deploy_stack(api[0], ("LegacyArchive", ARCHIVE))

    refused = _rollback("--yes")
    declined = _rollback("--allow-replacement", "LegacyArchive", answer="n\n")

    assert refused.exit_code == 1, refused.output
    assert "LegacyArchive" in refused.output and "holds data" in refused.output
    assert "rollback refused: nothing deployed" in refused.output
    assert declined.exit_code == 1, declined.output
    assert "allowed: LegacyArchive" in declined.output
    assert "not confirmed: nothing deployed" in declined.output
    assert not npx.exists()
    assert "smoke test of" not in refused.output + declined.output


def test_a_failing_smoke_test_after_the_rollback_exits_non_zero(
    mocked_aws: None, npx: Path, api: tuple[str, type[_Health]]
) -> None:
    _deploy_stack(api[0])
    api[1].status = 500

    result = _rollback(answer="y\n")

    assert result.exit_code == 1, result.output
    assert npx.exists()
    assert "FAIL API GET /v1/health: HTTP 500" in result.output
    assert "the smoke test fails after the rollback" in result.output


def test_a_failed_cdk_deploy_stops_before_the_smoke_test(
    mocked_aws: None, npx: Path, api: tuple[str, type[_Health]]
) -> None:
    _deploy_stack(api[0])
    npx.with_name("npx-exit").write_text("3")

    result = _rollback("--yes")

    assert result.exit_code == 1, result.output
    assert "cdk deploy exited 3" in result.output
    assert "smoke test of" not in result.output


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        (["--aws"], 2, "say which release to roll back to with --to REV"),
        (["--aws", "--to", "no-such-release-xyz"], 1, "no git revision 'no-such-release-xyz'"),
        (["--aws", "--to", "HEAD", "--stage", "nowhere"], 2, "nowhere"),
    ],
    ids=["no-revision", "unknown-revision", "unknown-stage"],
)
def test_a_rollback_that_cannot_start_says_why(
    mocked_aws: None,
    npx: Path,
    api: tuple[str, type[_Health]],
    arguments: list[str],
    code: int,
    message: str,
) -> None:
    _deploy_stack(api[0])

    result = CliRunner().invoke(app, ["rollback", *arguments], env={"COLUMNS": "400"})

    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not npx.exists()


def test_a_stack_that_does_not_exist_has_nothing_to_roll_back(mocked_aws: None, npx: Path) -> None:
    result = _rollback("--yes")

    assert result.exit_code == 1, result.output
    assert "stack mlops-dev does not exist" in result.output
