"""The CDK app: `python3 -m infra.cdk.app` (or `cdk synth`) writes cdk.out/ without Docker or AWS
credentials. Context: `stage` (one stack, `<project>-<stage>`; without it, one stack per stage
configured under `[stages]`), `commit` (the code version stamped into every function; the
Makefile passes it, the app itself runs no git). Beside the assembly it records the config file
and sources it read (`infra.cdk.synth_inputs`), so `mlops local up` can tell a stale one."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from functions.common.config.base import ConfigError
from functions.common.config.loading import load_config
from infra.cdk.config import REPO_ROOT, deploy_config
from infra.cdk.layers import LayerBuildError
from infra.cdk.stacks.mlops_stack import MlopsStack
from infra.cdk.synth_inputs import synth_inputs, write_stamp


def _cdk_json_context() -> dict[str, Any]:
    """cdk.json's context, so `python3 -m infra.cdk.app` synthesizes what `cdk synth` does."""
    cdk_json = REPO_ROOT / "cdk.json"
    if not cdk_json.exists():
        return {}
    return dict(json.loads(cdk_json.read_text()).get("context", {}))


def build_app(outdir: str | None = None, context: dict[str, Any] | None = None) -> cdk.App:
    if outdir is None and "CDK_OUTDIR" not in os.environ:
        outdir = str(REPO_ROOT / "cdk.out")
    app = cdk.App(outdir=outdir, context={**_cdk_json_context(), **(context or {})})
    commit = str(app.node.try_get_context("commit") or "unknown")
    reason = app.node.try_get_context("api_auth_none_reason")
    stage = app.node.try_get_context("stage")
    for name in [str(stage)] if stage else list(load_config().stages):
        deploy = deploy_config(stage=name, commit=commit, open_api_reason=reason and str(reason))
        MlopsStack(app, deploy=deploy)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app


def main() -> None:
    inputs = synth_inputs(REPO_ROOT)  # before reading them: an edit during synth makes it stale
    try:
        app = build_app()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except LayerBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    app.synth()
    write_stamp(Path(app.outdir), inputs)


if __name__ == "__main__":
    main()
