"""When `mlops local up` synthesizes: cdk.out missing, or synthesized from another config file,
or a config or source file the app reads changed since (by content, not modification time)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from infra.cdk.synth_inputs import STAMP_FILE, synth_inputs, write_stamp
from infra.local.synth import stale_reason


def _repo(tmp_path: Path) -> tuple[Path, Path]:
    repo = tmp_path / "repo"
    (repo / "infra" / "constructs").mkdir(parents=True)
    (repo / "infra" / "local").mkdir()
    (repo / "cdk.json").write_text(json.dumps({"watch": {"include": ["infra/**", "mlops.toml"]}}))
    (repo / "mlops.toml").write_text("[dataset]\nname = 'churn'\n")
    (repo / "infra" / "constructs" / "pipeline.py").write_text("")
    (repo / "infra" / "local" / "cloud.py").write_text("")
    cdk_out = repo / "cdk.out"
    cdk_out.mkdir()
    return repo, cdk_out


def _synthesized(repo: Path, cdk_out: Path, config: Path) -> None:
    """What the CDK app leaves behind: a manifest and the record of its inputs."""
    (cdk_out / "manifest.json").write_text("{}")
    write_stamp(cdk_out, synth_inputs(repo, config))


def test_a_missing_assembly_is_stale(tmp_path: Path) -> None:
    repo, cdk_out = _repo(tmp_path)
    assert stale_reason(cdk_out, repo, repo / "mlops.toml") == f"{cdk_out} holds no assembly"


def test_an_assembly_without_a_record_of_its_inputs_is_stale(tmp_path: Path) -> None:
    repo, cdk_out = _repo(tmp_path)
    (cdk_out / "manifest.json").write_text("{}")
    reason = stale_reason(cdk_out, repo, repo / "mlops.toml")
    assert reason is not None and "no record of the config and sources" in reason


def test_a_changed_construct_makes_it_stale_but_the_local_cloud_does_not(tmp_path: Path) -> None:
    repo, cdk_out = _repo(tmp_path)
    config = repo / "mlops.toml"
    _synthesized(repo, cdk_out, config)
    assert stale_reason(cdk_out, repo, config) is None
    (repo / "infra" / "local" / "cloud.py").write_text("# edited")
    assert stale_reason(cdk_out, repo, config) is None
    (repo / "infra" / "constructs" / "pipeline.py").write_text("# edited")
    assert stale_reason(cdk_out, repo, config) == (
        f"the CDK app's sources changed since {cdk_out} was synthesized"
    )


def test_another_config_file_makes_it_stale_even_when_older(tmp_path: Path) -> None:
    repo, cdk_out = _repo(tmp_path)
    _synthesized(repo, cdk_out, repo / "mlops.toml")
    other = tmp_path / "wine.toml"
    other.write_text("[dataset]\nname = 'wine'\n")
    os.utime(other, (0, 0))
    assert stale_reason(cdk_out, repo, other) == (
        f"{cdk_out} was synthesized from {(repo / 'mlops.toml').resolve()}; the config in use "
        f"is {other.resolve()}"
    )


def test_an_edit_of_the_config_makes_it_stale_whatever_its_time(tmp_path: Path) -> None:
    repo, cdk_out = _repo(tmp_path)
    config = tmp_path / "outside.toml"
    config.write_text("[dataset]\nname = 'churn'\n")
    _synthesized(repo, cdk_out, config)
    stamp = json.loads((cdk_out / STAMP_FILE).read_text())
    assert stamp["config"] == str(config.resolve())
    config.write_text("[dataset]\nname = 'wine'\n")
    os.utime(config, (0, 0))
    assert stale_reason(cdk_out, repo, config) == (
        f"{config.resolve()} changed since {cdk_out} was synthesized"
    )


def test_an_edit_of_the_model_code_makes_it_stale(tmp_path: Path) -> None:
    repo, cdk_out = _repo(tmp_path)
    config = repo / "mlops.toml"
    config.write_text("[dataset]\nname = 'churn'\n[train]\ncode = 'mycode'\n")
    (repo / "mycode" / "churn_model").mkdir(parents=True)
    factory = repo / "mycode" / "churn_model" / "build.py"
    factory.write_text("def make(contract): ...\n")
    _synthesized(repo, cdk_out, config)
    assert stale_reason(cdk_out, repo, config) is None
    cache = repo / "mycode" / "churn_model" / "__pycache__"
    cache.mkdir()
    (cache / "build.cpython-311.pyc").write_bytes(b"bytecode")
    assert stale_reason(cdk_out, repo, config) is None  # bytecode is not the code
    factory.write_text("def make(contract): raise ValueError('edited')\n")
    assert stale_reason(cdk_out, repo, config) == (
        f"the model code ([train] code) changed since {cdk_out} was synthesized"
    )
