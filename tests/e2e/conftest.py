"""The real CDK app, synthesized once per session into a temporary cdk.out (by running
`python -m infra.cdk.app` in a subprocess, as `cdk synth` would), and local clouds deployed
from it. `synth_with_config` synthesizes it with a test config of its own."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
import requests

from infra.cli.predict_client import signed_headers
from infra.local import LocalCloud
from infra.local.authz import usage
from infra.local.authz.enforcer import ENFORCER
from infra.local.synth import SynthError, synthesize

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cdk_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "cdk.out"
    try:
        synthesize(REPO_ROOT, out)
    except SynthError as exc:
        pytest.fail(str(exc), pytrace=False)
    return out


@pytest.fixture(scope="session")
def synth_with_config(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Path]]:
    """Synthesizes the app with the given mlops.toml text (the functions get it too, as
    `MLOPS_CONFIG_JSON`), the folders of `beside` (name -> source) copied next to the config
    (a `[train] code` folder is relative to it); returns the cdk.out directory. A config with
    folders beside it is written inside the repository (under `.mlops/`, removed afterwards),
    as a user's is: the training images' build context is the repository."""
    inside = REPO_ROOT / ".mlops" / "e2e-configs"

    def synth(config_text: str, beside: Mapping[str, Path] | None = None) -> Path:
        tmp = tmp_path_factory.mktemp("configured")
        if beside:
            inside.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=inside))
        config = tmp / "mlops.toml"
        config.write_text(config_text)
        for name, source in (beside or {}).items():
            shutil.copytree(source, tmp / name)
        previous = os.environ.get("MLOPS_CONFIG")
        os.environ["MLOPS_CONFIG"] = str(config)
        try:
            synthesize(REPO_ROOT, tmp / "cdk.out")
        except SynthError as exc:
            pytest.fail(str(exc), pytrace=False)
        finally:
            if previous is None:
                os.environ.pop("MLOPS_CONFIG")
            else:
                os.environ["MLOPS_CONFIG"] = previous
        return tmp / "cdk.out"

    yield synth
    shutil.rmtree(inside, ignore_errors=True)


class SignedAsOperator(requests.auth.AuthBase):
    """`requests` auth: SigV4 for execute-api with the local operator's credentials (the API's
    methods use IAM authorization)."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        raw = request.body
        body = raw.encode() if isinstance(raw, str) else raw if isinstance(raw, bytes) else None
        headers = {name: str(value) for name, value in request.headers.items()}
        request.headers.update(
            signed_headers(str(request.url), str(request.method), body or None, headers)
        )
        return request


@pytest.fixture(scope="session")
def operator_auth() -> requests.auth.AuthBase:
    return SignedAsOperator()


@pytest.fixture(scope="module")
def local_cloud(cdk_out: Path) -> Iterator[LocalCloud]:
    """The stack deployed in-process (moto's mock, no sockets), shared by a test module:
    tests use their own object keys."""
    with LocalCloud.start(cdk_out, mode="server", port=0) as cloud:
        yield cloud


@pytest.fixture
def drop(local_cloud: LocalCloud) -> Callable[[str, bytes], str]:
    """Puts a file in the data bucket; returns the name of the execution it starts."""

    def put(key: str, body: bytes) -> str:
        bucket = local_cloud.outputs["DataBucketName"]
        response = local_cloud.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
        return local_cloud.execution_name_for_object(
            bucket, key, response.get("VersionId"), response["ETag"]
        )

    return put


# IAM enforced: no test may be denied a call unless it says so (`iam_denials`), and the whole
# suite's unused grants are the ones docs/local-cloud.md lists.

USAGE_REPORT = REPO_ROOT / ".mlops" / "iam-usage.json"
DOCS = REPO_ROOT / "docs" / "local-cloud.md"
E2E_DIR = Path(__file__).resolve().parent
_outcomes: dict[str, str] = {}
# The e2e suite's own tally: the clouds other suites deploy in the same session (a probe app
# in tests/integration) have grants of their own, which this suite never uses.
E2E_TALLY = usage.Tally()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    # The hook runs for every item of the session: an e2e test's setup, call and teardown
    # (where its module's cloud stops) add to E2E_TALLY.
    if Path(str(item.path)).resolve().parent != E2E_DIR:
        return (yield)
    with usage.tallying(E2E_TALLY):
        return (yield)


@pytest.fixture(autouse=True)
def no_unexpected_denial(request: pytest.FixtureRequest) -> Iterator[None]:
    before = len(ENFORCER.denials)
    yield
    new = ENFORCER.denials[before:]
    if new and request.node.get_closest_marker("iam_denials") is None:
        listed = "\n".join(f"  {denial.operation}: {denial.message}" for denial in new)
        pytest.fail(f"the local cloud denied {len(new)} call(s):\n{listed}", pytrace=False)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if Path(str(report.fspath)).resolve().parent == E2E_DIR:
        if report.failed or (report.when == "call" and report.outcome != "passed"):
            _outcomes[report.nodeid] = report.outcome
        else:
            _outcomes.setdefault(report.nodeid, report.outcome)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not E2E_TALLY.granted:
        return
    E2E_TALLY.write(USAGE_REPORT)
    ran = {Path(nodeid.split("::")[0]).name for nodeid in _outcomes}
    every_module = {path.name for path in E2E_DIR.glob("test_*.py")}
    whole_suite = (
        ran == every_module
        and not session.config.option.keyword
        and not session.config.option.markexpr
        and all(outcome == "passed" for outcome in _outcomes.values())
    )
    if not whole_suite:
        return
    problems = usage.check(E2E_TALLY, usage.documented(DOCS.read_text(encoding="utf-8")))
    if problems:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        text = "\n".join(problems)
        if reporter is not None:
            reporter.write_line(f"\nleast privilege (report: {USAGE_REPORT}):\n{text}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
