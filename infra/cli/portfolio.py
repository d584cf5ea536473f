"""`mlops models list`: every configured model at a glance, read from the registry table and
the data bucket: its dataset, the production version (and a candidate in rollout), the last
training run, the last drift check's verdict, and a status; a version in shadow is shown beside
production.

Status: `serving` (a production version), `canary` (a production version and a candidate in
rollout), `not promoted` (trained, no production version yet), `not trained` (no run yet).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.adapters.registry.aliases import CANDIDATE, PRODUCTION
from functions.common import formats
from functions.common.errors import ObjectNotFoundError
from functions.common.layout import RESULT_FILE, drift_check_prefix
from infra.cli.common import Session

SERVING, CANARY, NOT_PROMOTED, NOT_TRAINED = "serving", "canary", "not promoted", "not trained"
SHADOW = "shadow"
"""Alias `shadow` (`mlops models shadow`): shown beside production, not a status."""


def run_status(run: Mapping[str, Any]) -> str | None:
    """The run's status; a run the gate rejected reads `rejected`, also when it was recorded
    as `evaluated` with `gate_passed` false (as the evaluate stage once recorded it)."""
    if run.get("gate_passed") is False and run.get("status") in (None, "evaluated"):
        return "rejected"
    status = run.get("status")
    return None if status is None else str(status)


def model_summary(session: Session, model: str) -> dict[str, Any]:
    """One model's row of `mlops models list` (also its JSON record)."""
    registry = session.registry
    production = registry.get_alias(model, PRODUCTION)
    candidate = registry.get_alias(model, CANDIDATE)
    shadow = registry.get_alias(model, SHADOW)
    runs = registry.list_runs(model, limit=1)
    last_run = runs[0] if runs else None
    if production is not None:
        status = CANARY if candidate is not None else SERVING
    else:
        status = NOT_PROMOTED if last_run is not None else NOT_TRAINED
    return {
        "model": model,
        "dataset": session.portfolio.models[model].dataset,
        "status": status,
        "production_version": production.version if production else None,
        "candidate_version": candidate.version if candidate else None,
        "shadow_version": shadow.version if shadow else None,
        "last_run": None
        if last_run is None
        else {
            "run_id": last_run.get("run_id"),
            "status": run_status(last_run),
            "started_at": last_run.get("started_at"),
            "version": last_run.get("version"),
        },
        "last_drift": _last_drift(session, model),
    }


def _last_drift(session: Session, model: str) -> dict[str, Any] | None:
    """The model's last drift check (the monitor's state names it): its id, when, its verdict;
    None before the first check. A check whose result.json is gone reads as verdict None."""
    check_id = session.registry.last_check_id(model)
    if check_id is None:
        return None
    key = drift_check_prefix(model, check_id) + RESULT_FILE
    try:
        document = session.store().get_json(session.bucket, key)
        result = formats.read(formats.DRIFT_RESULT, document)
    except ObjectNotFoundError:
        return {"check_id": check_id, "checked_at": None, "verdict": None}
    return {
        "check_id": check_id,
        "checked_at": result.get("checked_at"),
        "verdict": result.get("verdict"),
    }
