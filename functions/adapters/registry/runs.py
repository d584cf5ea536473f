"""Training runs in the registry table (keys: `functions.common.layout`).

- training run: every field of the run record is a top-level attribute; run ids sort by time,
  so a reverse query lists the newest first.
- training set: the run that trained on that set of data versions with that config and code
  (`functions.train.logic.training_key`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.adapters.registry.items import (
    KEY_ATTRIBUTES,
    ConditionFailed,
    ModelTable,
    attributes,
    item_key,
    now,
    translated,
)
from functions.common import formats
from functions.common.errors import RunNotFoundError
from functions.common.layout import (
    RUN_PREFIX,
    run_sort_key,
    runs_key,
    training_set_sort_key,
)


class TrainingRuns(ModelTable):
    """The training runs of one registry table."""

    def put_run(self, run: Mapping[str, Any]) -> None:
        """Record a training run (`run_id` and `model_name` are required; any other JSON-like
        fields are kept as given). Writing the same run id again replaces the record."""
        run_id, model = run.get("run_id"), run.get("model_name")
        if not run_id or not model:
            raise ValueError("a run record needs `run_id` and `model_name`")
        fields = {name: value for name, value in run.items() if name not in KEY_ATTRIBUTES}
        item = {
            **item_key(runs_key(model), run_sort_key(run_id)),
            "kind": {"S": "training_run"},
            **attributes(formats.stamp(formats.RUN_ITEM, fields)),
        }
        with translated("put_item", self.table_name):
            self._dynamodb.put_item(TableName=self.table_name, Item=item)

    def update_run(self, model: str, run_id: str, **fields: Any) -> None:
        """Set `fields` on a recorded run (others are kept); `updated_at` is set too.

        Raises:
            RunNotFoundError: no run `run_id` is recorded for `model`.
        """
        reserved = (KEY_ATTRIBUTES | {"run_id", "model_name"}) & fields.keys()
        if reserved:
            raise ValueError(f"cannot update key fields of a run: {sorted(reserved)}")
        fields.setdefault("updated_at", now())
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = attributes({f":v{i}": value for i, value in enumerate(fields.values())})
        assignments = ", ".join(f"#f{i} = :v{i}" for i in range(len(names)))
        try:
            with translated("update_item", self.table_name):
                self._dynamodb.update_item(
                    TableName=self.table_name,
                    Key=item_key(runs_key(model), run_sort_key(run_id)),
                    UpdateExpression=f"SET {assignments}",
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
        except ConditionFailed:
            raise RunNotFoundError(f"no training run {run_id} is recorded for {model}") from None

    def get_run(self, model: str, run_id: str) -> dict[str, Any] | None:
        found = self._get(runs_key(model), run_sort_key(run_id))
        return formats.read(formats.RUN_ITEM, found) if found else None

    def list_runs(self, model: str, limit: int = 50) -> list[dict[str, Any]]:
        """The `limit` newest runs of `model`, newest first."""
        runs = self._query(runs_key(model), RUN_PREFIX, newest_first=True, limit=limit)
        return [formats.read(formats.RUN_ITEM, run) for run in runs]

    def record_training_set(self, model: str, training_key: str, run_id: str) -> None:
        """Remember that run `run_id` trained on the training set `training_key`."""
        item = {
            **item_key(runs_key(model), training_set_sort_key(training_key)),
            "kind": {"S": "training_set"},
            **attributes(
                formats.stamp(formats.TRAINING_SET_ITEM, {"run_id": run_id, "recorded_at": now()})
            ),
        }
        with translated("put_item", self.table_name):
            self._dynamodb.put_item(TableName=self.table_name, Item=item)

    def judged_run_for(self, model: str, training_key: str) -> dict[str, Any] | None:
        """The run that trained on `training_key` and reached its outcome (registered, or
        rejected by the gate), or None: a run still in flight, or one whose evaluation or
        registration failed, does not count. Read with Query only: the train stage may not
        read single items."""
        found = self._query(runs_key(model), training_set_sort_key(training_key))
        if not found:
            return None
        run_id = str(formats.read(formats.TRAINING_SET_ITEM, found[0])["run_id"])
        runs = [
            formats.read(formats.RUN_ITEM, run)
            for run in self._query(runs_key(model), run_sort_key(run_id))
        ]
        judged = [
            r
            for r in runs
            if r.get("run_id") == run_id
            and (
                r.get("status") == "registered"
                or (r.get("status") == "evaluated" and r.get("gate_passed") is False)
            )
        ]
        return judged[0] if judged else None
