"""`mlops demo`: the lifecycle on the local cloud, end to end, with nothing but this repo.

Synthesizes the app and deploys it into the Docker-free local cloud, then:
1. drops a realistic churn table under `raw/<dataset>/`: ingested, trained, evaluated, gated
   and promoted as version 1 (no champion yet);
2. drops a bad file: quarantined with its reason, an alert sent;
3. drops a table whose labels are scrambled: the candidate trained on everything so far is
   judged against the champion on the same held-out rows and rejected by the gate.
Then it calls the serving API over HTTP (the local API adapter, as API Gateway would serve
it): a batch of three customers, one request with a wrong type (refused with a 4xx naming the
field) and `GET /v1/model`. Last, monitoring closes the loop: normal traffic, a drift check
(no drift); traffic after a price rise (monthly charges +60%, longer tenures, every customer
on a month-to-month contract), a drift check that flags those features, the `DriftDetected`
event that starts retraining by itself, and the gate's decision. It prints what happened at
each step and where the model card and the drift report are.
"""

from __future__ import annotations

import json
import logging
import math
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from functions.adapters.storage import ObjectStore, read_quarantine_reason
from functions.common import layout
from functions.common.config.loading import load_config
from functions.common.contracts import model_outcome
from functions.ml import sample_data
from infra.cli.demo_report import show
from infra.cli.predict_client import signed_request
from infra.local import lambda_config
from infra.local.cloud import REPO_ROOT, LocalCloud
from infra.local.synth import synthesize

GOOD_FILE = "customers-2026-11.csv"
BAD_FILE = "semicolon_separated.csv"
SCRAMBLED_FILE = "customers-2026-12-scrambled.csv"


@dataclass(frozen=True)
class Drop:
    label: str
    key: str
    body: bytes
    expect: str
    """The pipeline outcome the demo expects: promoted, quarantined or rejected."""


class DemoFailed(RuntimeError):
    """An execution ended differently from what the demo expects."""


def scrambled(rows: int, seed: int) -> bytes:
    """Churn rows whose labels were shuffled: any model trained on them gets worse."""
    frame = sample_data.churn_frame(rows, seed=seed, first_id=5_000_000)
    rng = np.random.default_rng(seed)
    frame[sample_data.TARGET] = rng.permutation(frame[sample_data.TARGET].to_numpy())
    return sample_data.encode(frame)


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
    prefix = layout.drops_prefix(config.dataset.name)
    good = sample_data.encode(sample_data.churn_frame(rows, seed=11))
    first = Drop("good data", prefix + GOOD_FILE, good, "promoted")
    later = [
        Drop("bad file", prefix + BAD_FILE, sample_data.bad_files()[BAD_FILE], "quarantined"),
        Drop("scrambled labels", prefix + SCRAMBLED_FILE, scrambled(rows * 2, 12), "rejected"),
    ]

    # The demo shows results; function log lines go to their log groups and a file instead.
    lambda_config.SETTINGS.echo_function_output = False
    logging.getLogger("infra.local").setLevel(logging.ERROR)
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    )
    timings: dict[str, float] = {}
    with progress:
        with _step(progress, "Synthesizing the CDK app (cdk-nag included)", timings, "synth"):
            synthesize(REPO_ROOT, cdk_out, {"commit": "demo"})
        started = time.monotonic()
        with LocalCloud.start(
            cdk_out=cdk_out,
            mode="server",
            port=0,
            state_dir=state_dir,
            api_port=0,
            prewarm=True,
        ) as cloud:
            timings["deploy"] = time.monotonic() - started
            demo = _Demo(cloud, state_dir)
            with _step(progress, f"Drop 1: {first.key} (ingest, train, gate)", timings, "first"):
                outcomes = demo.drop([first])
            label = "Drops 2 and 3: a bad file and scrambled labels"
            with _step(progress, label, timings, "later"):
                outcomes += demo.drop(later)
            with _step(progress, "Requests to the serving API over HTTP", timings, "serve"):
                serving = demo.serve()
            label = "Monitoring: normal traffic, drift check"
            with _step(progress, label, timings, "check_normal"):
                normal = demo.monitor(shifted=False)
            label = "Monitoring: shifted traffic, drift check, retraining by itself"
            with _step(progress, label, timings, "check_shifted"):
                shifted = demo.monitor(shifted=True)
            summary = demo.summarise(outcomes)
            summary["serving"] = serving
            summary["monitoring"] = {"normal": normal, "shifted": shifted}
    summary["timings"] = {name: round(value, 1) for name, value in timings.items()}
    show(console, summary)
    for outcome in outcomes:
        if outcome["outcome"] != outcome["expect"]:
            raise DemoFailed(
                f"{outcome['key']}: expected {outcome['expect']}, got {outcome['outcome']} "
                f"({outcome['status']}); see {summary['function_logs']}"
            )
    if serving["predict"]["status"] != 200 or not 400 <= serving["bad"]["status"] < 500:
        raise DemoFailed(
            f"the serving API answered {serving['predict']['status']} to a good batch and "
            f"{serving['bad']['status']} to a bad one; see {summary['function_logs']}"
        )
    if normal["check"]["verdict"] != "no_drift" or shifted["check"]["verdict"] != "drift":
        raise DemoFailed(
            f"drift checks said {normal['check']['verdict']} for normal traffic and "
            f"{shifted['check']['verdict']} for shifted traffic; see {summary['function_logs']}"
        )
    if shifted.get("retrain") is None:
        raise DemoFailed(f"drift started no retraining; see {summary['function_logs']}")
    return summary


class _step:  # noqa: N801 - used as a context manager, reads like a statement
    def __init__(self, progress: Progress, label: str, timings: dict[str, float], name: str):
        self.progress, self.label, self.timings, self.name = progress, label, timings, name

    def __enter__(self) -> None:
        self.task = self.progress.add_task(self.label, total=None)
        self.started = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.name] = time.monotonic() - self.started
        self.progress.update(self.task, completed=1, total=1)


class _Demo:
    def __init__(self, cloud: LocalCloud, state_dir: Path) -> None:
        self.cloud = cloud
        self.state_dir = state_dir
        self.s3 = cloud.client("s3")
        self.bucket = cloud.outputs["DataBucketName"]

    def drop(self, drops: list[Drop]) -> list[dict[str, Any]]:
        """Put the files, then wait for every execution they start."""
        names = []
        for drop in drops:
            put = self.s3.put_object(Bucket=self.bucket, Key=drop.key, Body=drop.body)
            names.append(
                self.cloud.execution_name_for_object(
                    self.bucket, drop.key, put.get("VersionId"), put["ETag"]
                )
            )
        return [
            self._outcome(drop, self.cloud.wait_for_execution(name, timeout=600))
            for drop, name in zip(drops, names, strict=True)
        ]

    def _outcome(self, drop: Drop, described: dict[str, Any]) -> dict[str, Any]:
        output = json.loads(described.get("output") or "{}")
        outcome: dict[str, Any] = {"label": drop.label, "key": drop.key, "expect": drop.expect}
        outcome["status"] = described["status"]
        if described["status"] == "FAILED":
            reason = read_quarantine_reason(ObjectStore(self.s3), self.bucket, drop.key)
            outcome["outcome"] = "quarantined" if reason is not None else "failed"
            if reason is not None:
                outcome["reason"] = reason
                outcome["reason_key"] = layout.reason_key(drop.key)
            return outcome
        output = _with_model_outcome(output)
        outcome["outcome"] = output.get("status", "unknown")
        outcome["output"] = output
        dataset = output.get("dataset", {})
        if "manifest_key" in dataset:
            outcome["manifest"] = self._json(dataset["manifest_key"])
        return outcome

    def summarise(self, outcomes: list[dict[str, Any]]) -> dict[str, Any]:
        promoted = [o for o in outcomes if o["outcome"] == "promoted"]
        card = None
        if promoted:
            model = promoted[-1]["output"]["registered"]
            card = self.state_dir / f"model_card_v{model['version']}.html"
            card.write_bytes(
                self.s3.get_object(Bucket=self.bucket, Key=model["model_card_key"])["Body"].read()
            )
        function_log = self.state_dir / "function-logs.txt"
        self._save_function_logs(function_log)
        return {
            "outcomes": outcomes,
            "model_card": str(card.relative_to(REPO_ROOT)) if card else None,
            "alerts_sent": len(self.cloud.sent_notifications()),
            "function_logs": str(function_log.relative_to(REPO_ROOT)),
            "outputs": self.cloud.outputs,
        }

    def serve(self) -> dict[str, Any]:
        """A batch of three customers, a request with a wrong type and the model summary, over
        HTTP against the local API."""
        url = self.cloud.api_url
        rows = request_rows(3, seed=13)
        bad_row = {**rows[0], "age": "forty"}
        return {
            "url": url,
            "rows": rows,
            "predict": _http(url, "POST", "v1/predict", {"instances": rows}),
            "bad_row": bad_row,
            "bad": _http(url, "POST", "v1/predict", {"instances": [bad_row]}),
            "model": _http(url, "GET", "v1/model"),
        }

    def monitor(self, *, shifted: bool) -> dict[str, Any]:
        """500 customers over HTTP, then a drift check run now (as `mlops drift run` does);
        for shifted traffic, the retraining the check started, waited for."""
        url = self.cloud.api_url
        seed = 600 if shifted else 500
        for batch in range(5):
            rows = request_rows(100, seed=seed + batch)
            if shifted:
                rows = [price_rise(row) for row in rows]
            answer = _http(url, "POST", "v1/predict", {"instances": rows})
            if answer["status"] != 200:
                raise DemoFailed(f"the serving API answered {answer['status']}: {answer['body']}")
        known = {e["executionArn"] for e in self.cloud.executions()}
        time.sleep(1.1)  # a check's window ends one whole second before it starts
        response = self.cloud.client("lambda").invoke(
            FunctionName=self.cloud.outputs["DriftFunctionName"],
            Payload=json.dumps({"source": "mlops.cli"}).encode(),
        )
        payload = json.loads(response["Payload"].read())
        if response.get("FunctionError"):
            raise DemoFailed(f"the drift check failed: {payload}")
        check = self._json(payload["result_key"])
        report = self.state_dir / f"drift_report_{check['check_id']}.html"
        report.write_bytes(
            self.s3.get_object(Bucket=self.bucket, Key=payload["report_key"])["Body"].read()
        )
        result: dict[str, Any] = {
            "check": check,
            "report": str(report.relative_to(REPO_ROOT)),
            "retrain": None,
        }
        if check["retrain"]["requested"]:
            self.cloud.wait_idle(60)
            started = [e for e in self.cloud.executions() if e["executionArn"] not in known]
            if started:
                described = self.cloud.wait_for_execution(started[0]["executionArn"], timeout=600)
                output = _with_model_outcome(json.loads(described.get("output") or "{}"))
                result["retrain"] = {
                    "input": json.loads(described["input"]),
                    "status": described["status"],
                    "outcome": output.get("status", described["status"].lower()),
                    "output": output,
                }
        return result

    def _json(self, key: str) -> Any:
        return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def _save_function_logs(self, path: Path) -> None:
        """Every function's log lines (as CloudWatch Logs has them) in one file."""
        logs = self.cloud.client("logs")
        lines: list[str] = []
        # Each function logs to the group its LoggingConfig names, as on Lambda.
        groups = logs.get_paginator("describe_log_groups").paginate()
        for page in groups:
            for group in page["logGroups"]:
                events = logs.get_paginator("filter_log_events").paginate(
                    logGroupName=group["logGroupName"]
                )
                lines.extend(e["message"] for p in events for e in p["events"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")


def request_rows(count: int, seed: int) -> list[dict[str, Any]]:
    """Realistic customers as a client sends them: the model's features, JSON values."""
    frame = sample_data.churn_frame(count, seed=seed, first_id=9_000_000, duplicate_share=0.0)
    features = [*sample_data.NUMERIC_FEATURES, *sample_data.CATEGORICAL_FEATURES]
    return [
        {name: _json_value(value) for name, value in record.items()}
        for record in frame[features].to_dict(orient="records")
    ]


def price_rise(row: dict[str, Any]) -> dict[str, Any]:
    """A customer after a price rise: charges up 60%, twice the tenure, month-to-month."""
    shifted = dict(row)
    for name, factor in (("monthly_charges", 1.6), ("tenure_months", 2.0)):
        if shifted.get(name) is not None:
            shifted[name] = round(shifted[name] * factor, 2)
    shifted["contract"] = "month-to-month"
    return shifted


def _json_value(value: Any) -> Any:
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and math.isnan(value) else value


def _http(base_url: str, method: str, path: str, document: Any = None) -> dict[str, Any]:
    """One request; returns its status and JSON body (4xx and 5xx included)."""
    body = None if document is None else json.dumps(document).encode()
    headers = {"Content-Type": "application/json"} if body is not None else {}
    request = signed_request(base_url + path, method, body, headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return {"status": response.status, "body": json.loads(response.read())}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "body": json.loads(exc.read() or b"null")}


def _with_model_outcome(output: dict[str, Any]) -> dict[str, Any]:
    """A pipeline execution's output with its one model's outcome (status, training,
    evaluation, registered version) beside the dataset; the demo trains one model."""
    return {**output, **model_outcome(output)} if "models" in output else output
