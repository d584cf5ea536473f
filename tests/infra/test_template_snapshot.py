"""What a deployed stack's owner must be able to rely on from one release to the next.

1. Both stages' templates equal their snapshots (`tests/infra/snapshots/`), normalized for
   asset hashes, which change with every source edit. A change to the template is deliberate:
   rewrite the snapshots with `make snapshots` and review the diff.
2. The stateful resources (buckets, tables, keys, queues, streams, log groups) keep their
   logical ids, their retention policies and the properties whose change makes
   CloudFormation replace them: a replaced bucket or table is a new, empty one, and the old
   one is deleted or orphaned. `stateful.json` records them; changing a row needs the data
   migration that goes with it, and the row changes in the same commit.
3. In prod every one of them keeps DeletionPolicy and UpdateReplacePolicy Retain: deleting
   the stack, or an update that replaces or removes one, leaves its data in place.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from infra.cdk.replacements import STATEFUL_RESOURCE_TYPES

HERE = Path(__file__).resolve().parent
SNAPSHOTS = HERE / "snapshots"
STATEFUL = HERE / "stateful.json"
STACKS = ("mlops-dev", "mlops-prod")
UPDATE = os.environ.get("MLOPS_UPDATE_SNAPSHOTS") == "1"

# The resources that hold data, and the properties CloudFormation cannot change in place: the
# one definition `mlops predeploy` and the prod retention use too.
REPLACED_ON_CHANGE = STATEFUL_RESOURCE_TYPES

_ASSET_HASH = re.compile(r"[0-9a-f]{64}")
# A Lambda version's and an API deployment's logical ids end in a hash of what they publish.
_PUBLISHED_HASH = re.compile(r"((?:CurrentVersion|ApiDeployment)[0-9A-F]{8})[0-9a-f]{32}")


def normalized(template: dict[str, Any]) -> dict[str, Any]:
    text = json.dumps(template, sort_keys=True)
    text = _ASSET_HASH.sub("<asset-hash>", text)
    text = _PUBLISHED_HASH.sub(r"\1<hash>", text)
    return dict(json.loads(text))


def stateful(template: dict[str, Any]) -> dict[str, Any]:
    """Logical id -> type, retention policies and replacement-forcing properties."""
    found: dict[str, Any] = {}
    for logical_id, resource in sorted(template["Resources"].items()):
        kind = resource["Type"]
        if kind not in REPLACED_ON_CHANGE:
            continue
        properties = resource.get("Properties", {})
        found[logical_id] = {
            "Type": kind,
            "DeletionPolicy": resource.get("DeletionPolicy", "Delete"),
            "UpdateReplacePolicy": resource.get("UpdateReplacePolicy", "Delete"),
            **{name: properties[name] for name in REPLACED_ON_CHANGE[kind] if name in properties},
        }
    return found


def _template(cloud_assembly: Path, stack: str) -> dict[str, Any]:
    return dict(json.loads((cloud_assembly / f"{stack}.template.json").read_text()))


def _compare(path: Path, actual: Any, what: str) -> None:
    text = json.dumps(actual, indent=1, sort_keys=True) + "\n"
    if UPDATE:
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing: run `make snapshots`"
    expected = json.loads(path.read_text(encoding="utf-8"))
    if expected != actual:
        pytest.fail(f"{what} ({path.name}):\n{_difference(expected, actual)}", pytrace=False)


def _difference(expected: Any, actual: Any, where: str = "") -> str:
    if isinstance(expected, dict) and isinstance(actual, dict):
        lines = []
        for key in sorted(set(expected) | set(actual)):
            if key not in actual:
                lines.append(f"  removed {where}/{key}")
            elif key not in expected:
                lines.append(f"  added   {where}/{key}")
            elif expected[key] != actual[key]:
                lines.append(_difference(expected[key], actual[key], f"{where}/{key}"))
        return "\n".join(lines[:40])
    return f"  changed {where}: {json.dumps(expected)[:300]} -> {json.dumps(actual)[:300]}"


@pytest.mark.parametrize("stack", STACKS)
def test_the_template_equals_its_snapshot_apart_from_asset_hashes(
    cloud_assembly: Path, stack: str
) -> None:
    actual = normalized(_template(cloud_assembly, stack))
    _compare(SNAPSHOTS / f"{stack}.template.json", actual, f"{stack} differs from its snapshot")


def test_stateful_resources_keep_their_ids_and_replacement_forcing_properties(
    cloud_assembly: Path,
) -> None:
    actual = {stack: stateful(_template(cloud_assembly, stack)) for stack in STACKS}
    _compare(
        STATEFUL,
        actual,
        "a stateful resource would be replaced or lost on upgrade (its data with it); "
        "ship the migration with the change",
    )


def test_every_stateful_resource_is_retained_in_prod(cloud_assembly: Path) -> None:
    resources = _template(cloud_assembly, "mlops-prod")["Resources"]
    stateful_ids = [i for i, r in resources.items() if r["Type"] in STATEFUL_RESOURCE_TYPES]
    unretained = {
        logical_id: (policies["DeletionPolicy"], policies["UpdateReplacePolicy"])
        for logical_id, policies in stateful({"Resources": resources}).items()
        if {policies["DeletionPolicy"], policies["UpdateReplacePolicy"]} - {"Retain", "Snapshot"}
    }
    assert len(stateful_ids) >= 20, "the buckets, table, key, queues, stream and log groups"
    assert unretained == {}, "prod must keep these resources' data on delete and replacement"


def test_a_renamed_bucket_or_changed_table_key_is_caught() -> None:
    template: dict[str, Any] = {
        "Resources": {
            "DataLakeDataDE92A33D": {
                "Type": "AWS::S3::Bucket",
                "DeletionPolicy": "Retain",
                "Properties": {"BucketName": "data", "VersioningConfiguration": {}},
            },
            "Topic": {"Type": "AWS::SNS::Topic", "Properties": {}},
        }
    }
    before = stateful(template)
    assert before == {
        "DataLakeDataDE92A33D": {
            "Type": "AWS::S3::Bucket",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Delete",
            "BucketName": "data",
        }
    }
    template["Resources"]["DataLakeDataDE92A33D"]["Properties"]["VersioningConfiguration"] = {
        "Status": "Enabled"
    }
    assert stateful(template) == before, "an in-place update is not a replacement"
    moved = {"DataLakeData1234ABCD": template["Resources"].pop("DataLakeDataDE92A33D")}
    assert stateful({"Resources": moved}) != before
    assert normalized({"Resources": {"FnCurrentVersionE111E191" + "a" * 32: {}}}) == {
        "Resources": {"FnCurrentVersionE111E191<hash>": {}}
    }
