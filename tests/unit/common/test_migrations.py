"""The registered migrations (`functions.common.migrations`): which keys each moves and where,
and what a moved document becomes."""

from __future__ import annotations

import json

import pytest

from functions.common import formats, layout
from functions.common.migrations import MIGRATIONS, QUARANTINE_LAYOUT
from tests.helpers import REPO


@pytest.mark.parametrize(
    ("key", "target"),
    [
        ("quarantine/churn/june.csv", "quarantine/files/churn/june.csv"),
        ("quarantine/churn/june.csv.reason.json", "quarantine/reasons/churn/june.csv.reason.json"),
        ("quarantine/churn/2024/06/june.jsonl", "quarantine/files/churn/2024/06/june.jsonl"),
        ("quarantine/files/churn/june.csv", None),
        ("quarantine/reasons/churn/june.csv.reason.json", None),
        ("quarantine/churn/", None),
        ("raw/churn/june.csv", None),
    ],
)
def test_old_quarantine_keys_map_to_where_todays_code_looks(key: str, target: str | None) -> None:
    assert QUARANTINE_LAYOUT.target(key) == target
    if target is not None and target.endswith(layout.REASON_SUFFIX):
        assert target == layout.reason_key(
            key.replace("quarantine/", "raw/", 1).removesuffix(layout.REASON_SUFFIX)
        )


def test_a_moved_reason_points_at_its_copys_new_key_and_is_stamped() -> None:
    reason = json.loads(
        (REPO / "tests/fixtures/formats/quarantine-reason/v1.json").read_text(encoding="utf-8")
    )
    old = {**reason, "quarantine_key": "quarantine/churn/late_nul.jsonl"}
    new_key = "quarantine/reasons/churn/late_nul.jsonl.reason.json"

    assert QUARANTINE_LAYOUT.rewrites(new_key)
    assert not QUARANTINE_LAYOUT.rewrites("quarantine/files/churn/late_nul.jsonl")
    assert QUARANTINE_LAYOUT.rewrite is not None
    moved = QUARANTINE_LAYOUT.rewrite(new_key, old)
    assert moved["quarantine_key"] == "quarantine/files/churn/late_nul.jsonl"
    assert moved[formats.FIELD] == formats.current(formats.QUARANTINE_REASON)
    assert {k: v for k, v in moved.items() if k not in ("quarantine_key", formats.FIELD)} == {
        k: v for k, v in old.items() if k != "quarantine_key"
    }


def test_migration_ids_are_unique_and_name_their_checkpoint_keys() -> None:
    ids = [migration.id for migration in MIGRATIONS]
    assert len(ids) == len(set(ids))
    assert layout.migration_checkpoint_key("quarantine-layout") == (
        "migrations/quarantine-layout/checkpoint.json"
    )
