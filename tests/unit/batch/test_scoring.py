"""Checking and scoring one map item's rows (`functions/batch/scoring.py`): each bad row is
rejected on its own, with the predict API's own reasons, and the others are scored."""

from __future__ import annotations

from typing import Any

import numpy as np

from functions.batch.scoring import check_rows, score
from functions.serving.features import FeatureSpec

SPECS = (
    FeatureSpec("age", "numeric", frozenset()),
    FeatureSpec("contract", "categorical", frozenset({"monthly", "yearly"})),
)


def _present(rows: int) -> dict[str, list[bool]]:
    return {"age": [True] * rows, "contract": [True] * rows}


def test_good_rows_pass_and_each_bad_row_is_rejected_with_every_problem() -> None:
    columns = {
        "age": [30, "forty", 50, 1e39, None, True],
        "contract": ["monthly", "yearly", "yearly", "lifetime", None, "weekly"],
    }

    checked = check_rows(columns, _present(6), 6, SPECS, reject_unseen=True)

    assert checked.good == [0, 2, 4]
    errors = {
        row: [(p.field, p.error) for p in problems] for row, problems in checked.rejected.items()
    }
    assert errors == {
        1: [("age", "invalid_type")],
        3: [("age", "invalid_number"), ("contract", "unseen_category")],
        5: [("age", "invalid_type"), ("contract", "unseen_category")],
    }
    assert list(checked.columns["contract"]) == ["monthly", "yearly", None]
    assert list(checked.columns["age"])[:2] == [30.0, 50.0]
    assert "must be a number" in checked.rejected[1][0].reason


def test_unseen_categories_are_scored_and_counted_when_accepted() -> None:
    columns = {"age": [1, 2], "contract": ["monthly", "lifetime"]}

    checked = check_rows(columns, _present(2), 2, SPECS, reject_unseen=False)

    assert checked.good == [0, 1] and checked.unseen == {"contract": 1}


def test_a_missing_field_and_a_reader_problem_are_rejects() -> None:
    columns = {"age": [1, None, None], "contract": ["monthly", "yearly", None]}
    present = {"age": [True, False, False], "contract": [True, True, False]}

    checked = check_rows(
        columns,
        present,
        3,
        SPECS,
        reject_unseen=True,
        problems=[(2, None, "empty_row", "the line is empty")],
    )

    assert checked.good == [0]
    assert [(p.field, p.error) for p in checked.rejected[1]] == [("age", "missing_feature")]
    assert [(p.field, p.error) for p in checked.rejected[2]] == [(None, "empty_row")]


class _Session:
    """Scores `age > 40` as "yes"; counts its runs."""

    def __init__(self) -> None:
        self.runs = 0

    def run(self, names: list[str] | None, feed: dict[str, Any]) -> list[Any]:
        self.runs += 1
        yes = (feed["age"].reshape(-1) > 40).astype(float)
        labels = np.where(yes > 0, "yes", "no")
        return [labels, np.stack([1 - yes, yes], axis=1)]


SIGNATURE = {
    "inputs": [{"name": "age", "type": "numeric"}, {"name": "contract", "type": "categorical"}],
    "onnx_outputs": [{"name": "label"}, {"name": "probabilities"}],
    "classes": ["no", "yes"],
}


def test_large_items_are_scored_in_chunks_in_row_order(monkeypatch: Any) -> None:
    monkeypatch.setattr("functions.batch.scoring.SCORE_CHUNK_ROWS", 4)
    session = _Session()
    ages = np.array([10.0, 50.0] * 5)

    prediction = score(session, {"age": ages, "contract": ["monthly"] * 10}, 10, SIGNATURE)

    assert session.runs == 3
    assert list(prediction.labels) == ["no", "yes"] * 5
    assert prediction.probabilities is not None and prediction.probabilities.shape == (10, 2)
