"""What the stack does for its functions' cold starts, beyond loading the model at init.

`FUNCTION_ENVIRONMENT` goes into every function's environment. `PYDANTIC_DISABLE_PLUGINS`:
pydantic otherwise scans the entry points of every installed distribution the first time a
model class is built, looking for plugins; no function uses one.

The rest of this module trims botocore's data files to what one function's clients read.
Creating the predict function's first two clients (DynamoDB, S3) parses about 3 MB of JSON
from botocore's data directory: `endpoints.json` (every service in every partition) and the
service models, most of whose bytes are documentation; the trimmed copy (0.7 MB) holds only
what the function's clients read.

`write_slim_data(package, dest, services)` copies, from the data of botocore package `package`:

- for each of `services`, its newest API version's files, the service model without the
  `documentation` and `documentationUrl` strings of its operations and shapes (everything
  else unchanged); `examples-1.json` (documentation only) is left out;
- `endpoints.json` with only those services in each partition (the partitions' own data
  whole), `partitions.json`, `_retry.json` and `sdk-default-configuration.json` as they are;
- `VERSION`: the botocore version the files came from. `functions.adapters.aws` uses the copy
  only with that same version of botocore, so a model is never read by another release.

All JSON is written compact. The serving layer carries the copy for the botocore it ships
(`infra.layers`); the predict function reads it through `MLOPS_BOTOCORE_DATA`.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FUNCTION_ENVIRONMENT = {"PYDANTIC_DISABLE_PLUGINS": "__all__"}
PREDICT_SERVICES = ("dynamodb", "events", "firehose", "s3")
"""Every AWS service the predict function calls: the registry table, rollout events, the
capture stream, and models and feedback in the data bucket."""
SLIM_DATA_DIR = "mlops_botocore_data"
"""The copy's directory in the serving layer's `python/` (so /opt/python/... on Lambda)."""
VERSION_FILE = "VERSION"
_TOP_LEVEL = ("partitions", "_retry", "sdk-default-configuration")
_DOCUMENTATION = frozenset({"documentation", "documentationUrl"})
_LEFT_OUT = ("examples-",)


class BotocoreDataError(RuntimeError):
    """The source is not a botocore data directory, or lacks a requested service."""


def botocore_version(package: Path) -> str:
    """The version of the botocore package in directory `package` (not necessarily the one
    this interpreter imports: the layer's, built for another platform)."""
    text = (package / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
    if match is None:
        raise BotocoreDataError(f"{package}: no __version__ in __init__.py")
    return match.group(1)


def write_slim_data(package: Path, dest: Path, services: Iterable[str] = PREDICT_SERVICES) -> Path:
    """Write the trimmed copy of botocore package `package`'s data for `services` into
    `dest` (replaced if it exists) and return `dest`."""
    source = package / "data"
    wanted = sorted(set(services))
    if not (source / "endpoints.json").is_file():
        raise BotocoreDataError(f"{source}: not a botocore data directory (no endpoints.json)")
    missing = [name for name in wanted if not (source / name).is_dir()]
    if missing:
        raise BotocoreDataError(f"{source}: no service model for {', '.join(missing)}")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in _TOP_LEVEL:
        _write(dest / f"{name}.json", _read(source / f"{name}.json"))
    endpoints = _read(source / "endpoints.json")
    for partition in endpoints["partitions"]:
        partition["services"] = {
            name: value for name, value in partition["services"].items() if name in wanted
        }
    _write(dest / "endpoints.json", endpoints)
    for name in wanted:
        version = max(path for path in (source / name).iterdir() if path.is_dir())
        for path in sorted(version.iterdir()):
            stem = path.name.removesuffix(".gz").removesuffix(".json")
            if stem.startswith(_LEFT_OUT):
                continue
            document = _read(path)
            if stem == "service-2":
                document = _service_model_without_documentation(document)
            _write(dest / name / version.name / f"{stem}.json", document)
    (dest / VERSION_FILE).write_text(botocore_version(package) + "\n", encoding="utf-8")
    return dest


def _read(path: Path) -> Any:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return json.loads(raw)


def _write(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, separators=(",", ":")), encoding="utf-8")


def _service_model_without_documentation(model: dict[str, Any]) -> dict[str, Any]:
    """Documentation goes from operations and shapes only: botocore reads the documentation of
    other parts (`clientContextParams`) as required fields."""
    trimmed = {key: value for key, value in model.items() if key != "documentation"}
    for part in ("operations", "shapes"):
        if part in trimmed:
            trimmed[part] = _without_documentation(trimmed[part])
    return trimmed


def _without_documentation(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: _without_documentation(value)
            for key, value in node.items()
            # A string under these keys is documentation; a member of a structure may have
            # the same name, but its value is a shape reference (an object), kept.
            if not (key in _DOCUMENTATION and isinstance(value, str))
        }
    if isinstance(node, list):
        return [_without_documentation(value) for value in node]
    return node
