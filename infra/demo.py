"""`mlops demo`: the lifecycle on the local cloud, end to end, with nothing but this repo.

Synthesizes the app, deploys it into the Docker-free local cloud, drops a realistic churn
table and one bad file under `raw/<dataset>/`, waits for both pipeline executions and shows
what happened: rows in and out, the dataset version, and the quarantine reason. Later stages
(training, serving, drift) extend this script as they land.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from functions.common.config import MlopsConfig, load_config
from functions.ml import sample_data
from infra.local import lambda_runtime
from infra.local.cloud import REPO_ROOT, LocalCloud
from infra.local.synth import synthesize

GOOD_FILE = "customers-2026-11.csv"
BAD_FILE = "semicolon_separated.csv"


@dataclass(frozen=True)
class Drop:
    key: str
    body: bytes
    expect: str  # SUCCEEDED or FAILED


class DemoFailed(RuntimeError):
    """An execution ended differently from what the demo expects."""


def run(
    console: Console,
    *,
    rows: int = 5_000,
    cdk_out: Path | None = None,
    state_dir: Path | None = None,
) -> dict[str, Any]:
    """Run the demo; returns a summary (also printed). Raises DemoFailed on a surprise."""
    config = load_config()
    cdk_out = cdk_out or REPO_ROOT / ".mlops" / "demo" / "cdk.out"
    state_dir = state_dir or REPO_ROOT / ".mlops" / "demo"
    prefix = f"raw/{config.dataset.name}/"
    good = sample_data.encode(sample_data.churn_frame(rows, seed=11))
    drops = [
        Drop(prefix + GOOD_FILE, good, "SUCCEEDED"),
        Drop(prefix + BAD_FILE, sample_data.bad_files()[BAD_FILE], "FAILED"),
    ]

    # The demo shows results; function log lines go to their log groups and a file instead.
    lambda_runtime.SETTINGS.echo_function_output = False
    logging.getLogger("infra.local").setLevel(logging.ERROR)
    function_log = state_dir / "function-logs.txt"
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    )
    with progress:
        step = progress.add_task("Synthesizing the CDK app (cdk-nag included)", total=None)
        started = time.monotonic()
        synthesize(REPO_ROOT, cdk_out, {"commit": "demo"})
        timings = {"synth_s": time.monotonic() - started}
        progress.update(step, description="Synthesized", completed=1, total=1)

        step = progress.add_task("Deploying the template into the local cloud", total=None)
        started = time.monotonic()
        with LocalCloud.start(cdk_out=cdk_out, mode="inprocess", state_dir=state_dir) as cloud:
            timings["deploy_s"] = time.monotonic() - started
            progress.update(step, description="Deployed", completed=1, total=1)
            step = progress.add_task(f"Dropping 2 files under {prefix}", total=None)
            started = time.monotonic()
            results = _drop_and_wait(cloud, drops)
            timings["pipeline_s"] = time.monotonic() - started
            progress.update(step, description="Both executions ended", completed=1, total=1)
            summary = _summarise(cloud, config, drops, results)
            _save_function_logs(cloud, function_log)
    summary["function_logs"] = str(function_log.relative_to(REPO_ROOT))
    summary["timings"] = {name: round(value, 1) for name, value in timings.items()}
    _show(console, summary)
    for drop, result in zip(drops, results, strict=True):
        if result["status"] != drop.expect:
            raise DemoFailed(f"{drop.key}: expected {drop.expect}, got {result['status']}")
    return summary


def _drop_and_wait(cloud: LocalCloud, drops: list[Drop]) -> list[dict[str, Any]]:
    s3 = cloud.client("s3")
    bucket = cloud.outputs["DataBucketName"]
    names = []
    for drop in drops:
        put = s3.put_object(Bucket=bucket, Key=drop.key, Body=drop.body)
        names.append(
            cloud.execution_name_for_object(bucket, drop.key, put.get("VersionId"), put["ETag"])
        )
    return [cloud.wait_for_execution(name, timeout=300) for name in names]


def _save_function_logs(cloud: LocalCloud, path: Path) -> None:
    """Every function's log lines (as CloudWatch Logs has them) in one file."""
    logs = cloud.client("logs")
    lines: list[str] = []
    groups = logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix="/aws/lambda/")
    for page in groups:
        for group in page["logGroups"]:
            events = logs.get_paginator("filter_log_events").paginate(
                logGroupName=group["logGroupName"]
            )
            lines.extend(e["message"] for events_page in events for e in events_page["events"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def _summarise(
    cloud: LocalCloud, config: MlopsConfig, drops: list[Drop], results: list[dict[str, Any]]
) -> dict[str, Any]:
    s3 = cloud.client("s3")
    bucket = cloud.outputs["DataBucketName"]
    good, bad = results
    dataset = json.loads(good.get("output", "{}")).get("dataset", {})
    manifest = (
        json.loads(s3.get_object(Bucket=bucket, Key=dataset["manifest_key"])["Body"].read())
        if "manifest_key" in dataset
        else {}
    )
    reason_key = "quarantine/" + drops[1].key.removeprefix("raw/") + ".reason.json"
    reason = json.loads(s3.get_object(Bucket=bucket, Key=reason_key)["Body"].read())
    return {
        "dataset": config.dataset.name,
        "good": {
            "key": drops[0].key,
            "status": good["status"],
            "data_version": dataset.get("data_version"),
            "rows_in": manifest.get("rows", {}).get("in"),
            "rows_out": manifest.get("rows", {}).get("out"),
            "cleaning": manifest.get("cleaning", {}),
            "manifest_key": dataset.get("manifest_key"),
        },
        "bad": {
            "key": drops[1].key,
            "status": bad["status"],
            "error": bad.get("error") or reason.get("error"),
            "quarantine_reason": reason,
            "reason_key": reason_key,
        },
        "alerts_sent": len(cloud.sent_notifications()),
        "outputs": cloud.outputs,
    }


def _show(console: Console, summary: dict[str, Any]) -> None:
    good, bad = summary["good"], summary["bad"]
    table = Table(title=f"Dataset {summary['dataset']!r}: what the pipeline did", show_lines=True)
    table.add_column("drop", overflow="fold")
    table.add_column("execution")
    table.add_column("result", overflow="fold")
    table.add_row(
        good["key"],
        _status(good["status"]),
        f"data version [bold]{good['data_version']}[/bold]\n"
        f"rows in {good['rows_in']} -> rows out {good['rows_out']}\n"
        f"{_cleaning_line(good['cleaning'])}\n"
        f"{good['manifest_key']}",
    )
    reason = bad["quarantine_reason"]
    table.add_row(
        bad["key"],
        _status(bad["status"]),
        f"{bad['error']}: [bold]{reason.get('code')}[/bold]\n{reason.get('message')}\n"
        f"reason: {bad['reason_key']}",
    )
    console.print(table)
    console.print(
        Panel.fit(
            f"alerts published to the SNS topic: {summary['alerts_sent']}\n"
            f"function logs: {summary['function_logs']}\n"
            f"timings (s): {summary['timings']}",
            title="local cloud",
        )
    )


def _cleaning_line(cleaning: dict[str, Any]) -> str:
    missing = sum(cleaning.get("missing_markers_replaced", {}).values())
    dropped = ", ".join(cleaning.get("columns_dropped", [])) or "none"
    return (
        f"{cleaning.get('duplicate_rows_dropped', 0)} duplicate rows dropped, "
        f"{missing} missing markers standardised, columns dropped: {dropped}"
    )


def _status(status: str) -> str:
    colour = "green" if status == "SUCCEEDED" else "red"
    return f"[{colour}]{status}[/{colour}]"
