"""A local cloud deployed from the synthesized app and serving a promoted model, reached as a
user reaches it: the data bucket, and the `mlops` CLI against the cloud's state directory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from typer.testing import CliRunner, Result

from functions.common.contracts import model_outcome
from functions.ml import sample_data
from infra.cli.main import app
from infra.local import LocalCloud


def mlops(
    state_dir: Path, *args: str, code: int | None = 0, catch_exceptions: bool = False
) -> Result:
    """`mlops ...` against the local cloud whose state is in `state_dir`, at 200 columns; its
    exit code must be `code` (None: any)."""
    result = CliRunner().invoke(
        app,
        [*args, "--state-dir", str(state_dir)],
        env={"COLUMNS": "200"},
        catch_exceptions=catch_exceptions,
    )
    assert code is None or result.exit_code == code, result.output
    return result


class Served:
    """A running local cloud and its state directory (where `mlops --state-dir` finds it)."""

    def __init__(self, cloud: LocalCloud, state_dir: Path) -> None:
        self.cloud = cloud
        self.state_dir = state_dir
        self.bucket = cloud.outputs["DataBucketName"]
        self.s3 = cloud.client("s3")
        self.exit_code = 0

    def get(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def keys(self, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def cli(self, *args: str, code: int | None = 0) -> str:
        """`mlops ...` against this cloud, as a user runs it from another shell: its output; its
        exit code must be `code` (None: any, kept in `exit_code`)."""
        result = mlops(self.state_dir, *args, code=code, catch_exceptions=True)
        self.exit_code = result.exit_code
        return result.output


S = TypeVar("S", bound=Served)


@contextmanager
def serving_first_model(cdk_out: Path, kind: type[S], drop: bytes | None = None) -> Iterator[S]:
    """The app of `cdk_out` deployed in server mode (API on a free port, state beside
    `cdk_out`), as a `kind`, once the pipeline promoted the model trained on `drop` (default:
    2,000 churn rows) dropped as raw/churn/first.csv."""
    state_dir = cdk_out.parent / "state"
    if drop is None:
        drop = sample_data.encode(sample_data.churn_frame(2_000, seed=31))
    with LocalCloud.start(cdk_out, mode="server", port=0, api_port=0, state_dir=state_dir) as cloud:
        first = cloud.drop("raw/churn/first.csv", drop, timeout=180)
        assert model_outcome(json.loads(first["output"]))["status"] == "promoted"
        yield kind(cloud, state_dir)
