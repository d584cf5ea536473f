from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.cdk.app import build_app

STACK = "mlops-dev"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def cloud_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real app synthesized once (cdk-nag runs as part of it and fails synth on findings)."""
    outdir = tmp_path_factory.mktemp("cdk.out")
    build_app(outdir=str(outdir), context={"commit": "abc123def456"}).synth()
    return outdir


@pytest.fixture(scope="session")
def template_json(cloud_assembly: Path) -> dict[str, Any]:
    return json.loads((cloud_assembly / f"{STACK}.template.json").read_text())


@pytest.fixture(scope="session")
def template(template_json: dict[str, Any]) -> Template:
    return Template.from_json(template_json)


@pytest.fixture(scope="session")
def resources(template_json: dict[str, Any]) -> Callable[[str], dict[str, dict[str, Any]]]:
    """`resources("AWS::S3::Bucket")` -> {logical id: resource} in the synthesized template."""

    def of_type(kind: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in template_json["Resources"].items()
            if resource["Type"] == kind
        }

    return of_type


@pytest.fixture
def use_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """`use_config(old, new, count=-1)`: the repository's mlops.toml with `old` replaced by
    `new` (the first `count` times), written under tmp_path and set as `MLOPS_CONFIG` for the
    test; returns its path."""

    def write(old: str, new: str, count: int = -1) -> Path:
        config = tmp_path / "mlops.toml"
        config.write_text((REPO / "mlops.toml").read_text().replace(old, new, count))
        monkeypatch.setenv("MLOPS_CONFIG", str(config))
        return config

    return write


SAGEMAKER_TRAIN = '[train]\nbackend = "sagemaker"\n\n[ingest]'


@pytest.fixture(scope="session")
def sagemaker_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The app synthesized with `[train] backend = "sagemaker"` (cdk-nag included)."""
    tmp = tmp_path_factory.mktemp("sagemaker")
    config = tmp / "mlops.toml"
    config.write_text((REPO / "mlops.toml").read_text().replace("[ingest]", SAGEMAKER_TRAIN, 1))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_CONFIG", str(config))
        build_app(outdir=str(tmp / "cdk.out"), context={"commit": "abc123def456"}).synth()
    return tmp / "cdk.out"


SHADOW_ON = "[serving]\nshadow = true\ncanary_accuracy = true\n"


@pytest.fixture(scope="session")
def shadow_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The dev template synthesized with `[serving] shadow = true` and `canary_accuracy =
    true`, the serving options that add resources (cdk-nag included)."""
    tmp = tmp_path_factory.mktemp("shadow")
    config = tmp / "mlops.toml"
    config.write_text((REPO / "mlops.toml").read_text().replace("[serving]\n", SHADOW_ON, 1))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_CONFIG", str(config))
        build_app(outdir=str(tmp / "cdk.out"), context={"commit": "abc123def456"}).synth()
    return dict(json.loads((tmp / "cdk.out" / f"{STACK}.template.json").read_text()))


@pytest.fixture(scope="session")
def portfolio_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The app synthesized with the portfolio config (`tests.helpers.portfolio`: two
    datasets, four models; cdk-nag included)."""
    from tests.helpers.portfolio import portfolio_config

    tmp = tmp_path_factory.mktemp("portfolio")
    config = tmp / "mlops.toml"
    config.write_text(portfolio_config())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_CONFIG", str(config))
        build_app(outdir=str(tmp / "cdk.out"), context={"commit": "abc123def456"}).synth()
    template: dict[str, Any] = json.loads((tmp / "cdk.out" / f"{STACK}.template.json").read_text())
    return template
