"""Evidently's DataDriftPreset on a reference and a current Parquet file, for bench/drift.py.

Runs in `.venv-evidently` (bench/requirements-evidently.txt), never in the project venv: Evidently
pins its own pandas and is a benchmark-only dependency. The preset keeps its defaults (per-column
test chosen by column type and size; its 0.5 share of drifted columns for the dataset); the
column types are given explicitly so neither side guesses them. Prints one JSON line: seconds
for `Report.run` (Dataset construction included, Parquet reading not) and, per column,
Evidently's own drift verdict with its method, score and threshold.

    .venv-evidently/bin/python bench/drift_evidently.py REF.parquet CUR.parquet \
        --numeric a,b --categorical c
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib.metadata import version

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

VALUE_DRIFT = "evidently:metric_v2:ValueDrift"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference")
    parser.add_argument("current")
    parser.add_argument("--numeric", required=True, help="comma-separated column names")
    parser.add_argument("--categorical", required=True, help="comma-separated column names")
    args = parser.parse_args()
    numeric, categorical = args.numeric.split(","), args.categorical.split(",")
    reference = pd.read_parquet(args.reference, columns=numeric + categorical)
    current = pd.read_parquet(args.current, columns=numeric + categorical)
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)

    started = time.perf_counter()
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    seconds = time.perf_counter() - started

    result = snapshot.dict()
    scores = {
        metric["config"]["column"]: metric["value"]
        for metric in result["metrics"]
        if metric["config"].get("type") == VALUE_DRIFT
    }
    columns = {}
    for test in result["tests"]:
        params = test["metric_config"]["params"]
        if params.get("type") != VALUE_DRIFT:
            continue
        columns[params["column"]] = {
            "drift": test["status"] == "FAIL",
            "method": params["method"],
            "score": scores.get(params["column"]),
            "threshold": params["threshold"],
        }
    missing = sorted(set(numeric + categorical) - set(columns))
    if missing:
        print(f"no drift verdict from Evidently for: {', '.join(missing)}", file=sys.stderr)
        return 1
    print(json.dumps({"seconds": seconds, "version": version("evidently"), "columns": columns}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
