"""The registered migrations (`functions.common.migrations`): which keys each moves and where,
and what a moved document becomes."""

from __future__ import annotations

import json

import pytest

from functions.common import formats, layout
from functions.common.migrations import QUARANTINE_LAYOUT, batch_layout, migrations
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
    ids = [migration.id for migration in migrations(["churn"], "churn")]
    assert len(ids) == len(set(ids))
    assert layout.migration_checkpoint_key("quarantine-layout") == (
        "migrations/quarantine-layout/checkpoint.json"
    )


BATCH_LAYOUT = batch_layout(["churn", "churn-rf"], "churn")


@pytest.mark.parametrize(
    ("key", "target"),
    [
        # A job of the layout before model folders moves under the default model ...
        ("batch/in/june/customers.csv", "batch/in/churn/june/customers.csv"),
        ("batch/in/june/2024/06/part-1.csv", "batch/in/churn/june/2024/06/part-1.csv"),
        ("batch/out/june/manifest.json", "batch/out/churn/june/manifest.json"),
        ("batch/out/june/_plan/plan.json", "batch/out/churn/june/_plan/plan.json"),
        ("batch/out/june/rejects/a-0-5.jsonl", "batch/out/churn/june/rejects/a-0-5.jsonl"),
        # ... also one named like a model: its files are right in the folder, and `_plan`
        # is no job name.
        ("batch/in/churn/customers.csv", "batch/in/churn/churn/customers.csv"),
        ("batch/out/churn-rf/manifest.json", "batch/out/churn/churn-rf/manifest.json"),
        ("batch/out/churn/_items/000001.json", "batch/out/churn/churn/_items/000001.json"),
        # Today's layout, and what is no job, stay.
        ("batch/in/churn/june/customers.csv", None),
        ("batch/in/churn-rf/june/_START", None),
        ("batch/out/churn/june/manifest.json", None),
        ("batch/out/churn-rf/june/_plan/plan.json", None),
        ("batch/in/stray.csv", None),
        # A marker's copy would start the job again: it stays.
        ("batch/in/june/_START", None),
        ("batch/in/june/", None),
        ("raw/churn/june.csv", None),
    ],
)
def test_old_batch_jobs_move_under_the_default_model(key: str, target: str | None) -> None:
    assert BATCH_LAYOUT.target(key) == target
    if target is not None:
        assert BATCH_LAYOUT.target(target) is None, "a moved object is not moved again"


def test_a_moved_batch_manifest_is_stamped_with_its_keys_under_the_model() -> None:
    manifest = json.loads(
        (REPO / "tests/fixtures/formats/batch-manifest/v1.json").read_text(encoding="utf-8")
    )
    failed = {
        "job": manifest["job"],
        "item": 3,
        "key": f"batch/in/{manifest['job']}/customers.csv",
        "format": "csv",
        "start": 0,
        "end": 500,
        "size": 1000,
        "output_stem": "customers",
        "model_version": 1,
    }
    old = {**manifest, "failed_items": [failed]}
    new_key = f"batch/out/churn/{manifest['job']}/manifest.json"

    assert BATCH_LAYOUT.rewrites(new_key)
    assert not BATCH_LAYOUT.rewrites(f"batch/out/churn/{manifest['job']}/_plan/plan.json")
    assert BATCH_LAYOUT.rewrite is not None
    moved = BATCH_LAYOUT.rewrite(new_key, old)
    assert moved[formats.FIELD] == formats.current(formats.BATCH_MANIFEST) == 2
    [item] = moved["failed_items"]
    assert item == {
        **failed,
        "model": "churn",
        "key": f"batch/in/churn/{manifest['job']}/customers.csv",
    }
    [file] = moved["per_file"]
    assert file["key"] == f"batch/in/churn/{manifest['job']}/customers.csv"
    assert file["outputs"] == [
        key.replace("batch/out/", "batch/out/churn/") for key in manifest["per_file"][0]["outputs"]
    ]
    assert file["rejects"][0].startswith(f"batch/out/churn/{manifest['job']}/rejects/")
    assert moved["status"] == manifest["status"] and moved["rows"] == manifest["rows"]
