"""The real CDK app, synthesized once per session into a temporary cdk.out (by running
`python -m infra.app` in a subprocess, as `cdk synth` would), and local clouds deployed
from it. `synth_with_config` synthesizes it with a test config of its own."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infra.local import LocalCloud
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
def synth_with_config(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Synthesizes the app with the given mlops.toml text (the functions get it too, as
    `MLOPS_CONFIG_JSON`); returns the cdk.out directory."""

    def synth(config_text: str) -> Path:
        tmp = tmp_path_factory.mktemp("configured")
        config = tmp / "mlops.toml"
        config.write_text(config_text)
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

    return synth


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
