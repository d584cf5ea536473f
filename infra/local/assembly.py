"""Reading a synthesized cloud assembly (`cdk.out/`): stacks, their templates and assets."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STACK_ARTIFACT = "aws:cloudformation:stack"
ASSET_MANIFEST_ARTIFACT = "cdk:asset-manifest"


class AssemblyError(RuntimeError):
    """cdk.out is missing, unreadable or lacks the requested stack."""


@dataclass(frozen=True)
class StackArtifact:
    """One stack of the assembly with everything the local deployer reads."""

    name: str
    template: dict[str, Any]
    template_path: Path
    file_assets: dict[str, Path] = field(default_factory=dict)
    """S3 object key (e.g. `<hash>.zip`) -> the asset's directory or file in cdk.out."""
    image_assets: dict[str, Path] = field(default_factory=dict)
    """Image tag (the asset hash) -> the Docker build context in cdk.out."""
    image_dockerfiles: dict[str, str] = field(default_factory=dict)
    """Image tag -> its Dockerfile, relative to its build context (default `Dockerfile`)."""
    image_build_args: dict[str, dict[str, str]] = field(default_factory=dict)
    """Image tag -> the build arguments its asset passes (`--build-arg`)."""

    def asset_path(self, object_key: str) -> Path | None:
        return self.file_assets.get(object_key)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AssemblyError(
            f"{path}: not found (synthesize first: python -m infra.cdk.app)"
        ) from None
    except json.JSONDecodeError as exc:
        raise AssemblyError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise AssemblyError(f"{path}: expected a JSON object")
    return data


def stack_names(cdk_out: Path) -> list[str]:
    manifest = _read_json(cdk_out / "manifest.json")
    return [
        str(artifact.get("displayName") or artifact.get("properties", {}).get("stackName") or key)
        for key, artifact in manifest.get("artifacts", {}).items()
        if artifact.get("type") == STACK_ARTIFACT
    ]


def load_stack(cdk_out: Path, stack_name: str | None = None) -> StackArtifact:
    """The stack named `stack_name` (its artifact id or stack name), or the only stack."""
    cdk_out = Path(cdk_out)
    manifest = _read_json(cdk_out / "manifest.json")
    artifacts: dict[str, Any] = manifest.get("artifacts", {})
    stacks = {
        key: artifact
        for key, artifact in artifacts.items()
        if artifact.get("type") == STACK_ARTIFACT
    }
    if not stacks:
        raise AssemblyError(f"{cdk_out}: the assembly contains no stack")
    key = _pick_stack(stacks, stack_name, cdk_out)
    artifact = stacks[key]
    properties = artifact.get("properties", {})
    name = str(properties.get("stackName") or key)
    template_path = cdk_out / properties["templateFile"]
    file_assets: dict[str, Path] = {}
    image_assets: dict[str, Path] = {}
    dockerfiles: dict[str, str] = {}
    build_args: dict[str, dict[str, str]] = {}
    for dependency in artifact.get("dependencies", []):
        dep = artifacts.get(dependency, {})
        if dep.get("type") == ASSET_MANIFEST_ARTIFACT:
            _read_asset_manifest(
                cdk_out / dep["properties"]["file"],
                file_assets,
                image_assets,
                dockerfiles,
                build_args,
            )
    return StackArtifact(
        name=name,
        template=_read_json(template_path),
        template_path=template_path,
        file_assets=file_assets,
        image_assets=image_assets,
        image_dockerfiles=dockerfiles,
        image_build_args=build_args,
    )


def _pick_stack(stacks: dict[str, Any], stack_name: str | None, cdk_out: Path) -> str:
    if stack_name is None:
        if len(stacks) == 1:
            return next(iter(stacks))
        raise AssemblyError(f"{cdk_out}: several stacks ({', '.join(stacks)}); name one")
    for key, artifact in stacks.items():
        if stack_name in (key, artifact.get("properties", {}).get("stackName")):
            return key
    raise AssemblyError(f"{cdk_out}: no stack {stack_name!r} (found: {', '.join(stacks)})")


def _read_asset_manifest(
    path: Path,
    file_assets: dict[str, Path],
    image_assets: dict[str, Path],
    dockerfiles: dict[str, str],
    build_args: dict[str, dict[str, str]],
) -> None:
    manifest = _read_json(path)
    for asset in manifest.get("files", {}).values():
        source = path.parent / asset["source"]["path"]
        for destination in asset.get("destinations", {}).values():
            file_assets[destination["objectKey"]] = source
    for asset_hash, asset in manifest.get("dockerImages", {}).items():
        directory = asset.get("source", {}).get("directory")
        if directory:
            dockerfile = str(asset["source"].get("dockerFile") or "Dockerfile")
            tags = [asset_hash] + [
                str(destination.get("imageTag", asset_hash))
                for destination in asset.get("destinations", {}).values()
            ]
            for tag in tags:
                image_assets[tag] = path.parent / directory
                dockerfiles[tag] = dockerfile
                build_args[tag] = {
                    str(k): str(v)
                    for k, v in (asset["source"].get("dockerBuildArgs") or {}).items()
                }
