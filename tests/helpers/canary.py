"""Capture records in the contract's format (`capture-record` version 2), one per request, as
the capture pipeline delivers them under capture/: what the canary function reads."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from functions.adapters.registry.aliases import CANDIDATE, PRODUCTION

MODEL = "churn"


def record(
    rollout: int | None,
    alias: str,
    version: int,
    *,
    request: str,
    latency_ms: float | None = 2.0,
    error: str | None = None,
    first_row: int = 0,
) -> dict[str, Any]:
    rows = 0 if error else 2
    return {
        "record": "capture",
        "format_version": 2,
        "request_id": request,
        "timestamp": "2026-12-02T20:00:00.123Z",
        "model_name": MODEL,
        "model_version": version,
        "alias": alias,
        "route": "v1",
        "rollout": rollout,
        "first_row": first_row,
        "rows": rows,
        "request_rows": rows,
        "columns": {} if error else {"age": [30, 40], "plan": ["a", "b"]},
        "predictions": [] if error else [0, 1],
        "probabilities": None,
        "classes": None,
        "latency_ms": latency_ms,
        "error": error,
    }


def traffic(
    rollout: int,
    requests: int,
    *,
    share: float,
    candidate_error: float,
    seed: int,
    start: int = 0,
    slowdown: float = 1.0,
) -> list[dict[str, Any]]:
    """`requests` captured requests split by `share`: production never fails, the
    candidate fails with `candidate_error`; latencies log-normal around 2 ms."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(start, start + requests):
        to_candidate = rng.random() < share
        latency = float(np.exp(np.log(2.0) + 0.3 * rng.standard_normal()))
        if to_candidate:
            failed = rng.random() < candidate_error
            out.append(
                record(
                    rollout,
                    CANDIDATE,
                    2,
                    request=f"r{i}",
                    latency_ms=latency * slowdown,
                    error="scoring_failed" if failed else None,
                )
            )
        else:
            out.append(record(rollout, PRODUCTION, 1, request=f"r{i}", latency_ms=latency))
    return out


def jsonl(records: list[dict[str, Any]]) -> bytes:
    """Records as a capture object's body: one JSON line each."""
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def feedback(
    rollout: int | None, alias: str, version: int, *, request: str, label: Any, prediction: Any
) -> dict[str, Any]:
    """A feedback record (`feedback-record` version 2) as the predict API stores it for a
    labeled row whose capture it found."""
    return {
        "request_id": request,
        "row": 0,
        "label": label,
        "features": None,
        "received_at": "2026-12-02T21:00:00.000Z",
        "served": {
            "model_name": MODEL,
            "model_version": version,
            "alias": alias,
            "rollout": rollout,
            "prediction": prediction,
        },
        "format_version": 2,
    }


def labeled_traffic(
    rollout: int, requests: int, *, share: float, candidate_miss: float, seed: int, start: int = 0
) -> list[dict[str, Any]]:
    """Feedback for `requests` labeled requests split by `share`: production's predictions are
    right 80 % of the time, the candidate's miss with `candidate_miss`."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(start, start + requests):
        to_candidate = rng.random() < share
        miss = rng.random() < (candidate_miss if to_candidate else 0.2)
        alias, version = (CANDIDATE, 2) if to_candidate else (PRODUCTION, 1)
        out.append(
            feedback(
                rollout,
                alias,
                version,
                request=f"r{i}",
                label="yes",
                prediction="no" if miss else "yes",
            )
        )
    return out
