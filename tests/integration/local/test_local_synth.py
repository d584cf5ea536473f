"""When `mlops local up` synthesizes: cdk.out missing, or older than a file the app reads."""

from __future__ import annotations

import json
import os
from pathlib import Path

from infra.local.synth import is_stale


def _repo(tmp_path: Path) -> tuple[Path, Path]:
    repo = tmp_path / "repo"
    (repo / "infra" / "constructs").mkdir(parents=True)
    (repo / "infra" / "local").mkdir()
    (repo / "cdk.json").write_text(json.dumps({"watch": {"include": ["infra/**", "mlops.toml"]}}))
    (repo / "mlops.toml").write_text("")
    (repo / "infra" / "constructs" / "pipeline.py").write_text("")
    (repo / "infra" / "local" / "cloud.py").write_text("")
    cdk_out = repo / "cdk.out"
    cdk_out.mkdir()
    return repo, cdk_out


def _age(path: Path, seconds: float) -> None:
    stamp = path.stat().st_mtime - seconds
    os.utime(path, (stamp, stamp))


def test_a_missing_assembly_is_stale(tmp_path: Path) -> None:
    repo, cdk_out = _repo(tmp_path)
    assert is_stale(cdk_out, repo)


def test_an_assembly_newer_than_the_app_is_fresh(tmp_path: Path) -> None:
    repo, cdk_out = _repo(tmp_path)
    for path in repo.rglob("*"):
        if path.is_file():
            _age(path, 60)
    (cdk_out / "manifest.json").write_text("{}")
    assert not is_stale(cdk_out, repo)


def test_a_changed_construct_makes_it_stale_but_the_local_cloud_does_not(tmp_path: Path) -> None:
    repo, cdk_out = _repo(tmp_path)
    (cdk_out / "manifest.json").write_text("{}")
    _age(cdk_out / "manifest.json", 30)
    for path in repo.rglob("*"):
        if path.is_file() and path.name != "manifest.json":
            _age(path, 60)
    (repo / "infra" / "local" / "cloud.py").write_text("# edited")
    assert not is_stale(cdk_out, repo)
    (repo / "infra" / "constructs" / "pipeline.py").write_text("# edited")
    assert is_stale(cdk_out, repo)
