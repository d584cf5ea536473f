"""NannyML's CBPE on the reference and analysis Parquet files bench/cbpe.py writes.

Runs in `.venv-nannyml` (bench/requirements-nannyml.txt), never in the project venv: NannyML
needs Python below 3.13 and is a benchmark-only dependency. Usage telemetry is off:
bench/cbpe.py starts this with NML_DISABLE_USAGE_LOGGING=1, and this refuses to run without it.
CBPE keeps its defaults (its own isotonic calibration on the reference); its chunks are the
analysis file's windows (contiguous, of one size: `chunk_size` is that size). Binary: the
columns `proba` (of class 1), `predicted`, `label`; multiclass: a `proba_<class>` column per
class instead of `proba`. Prints one JSON line: seconds for fit and estimate, and per window
the estimated accuracy and F1 (macro, multiclass), and ROC AUC (binary).

    NML_DISABLE_USAGE_LOGGING=1 .venv-nannyml/bin/python bench/cbpe_nannyml.py REF.parquet \
        ANALYSIS.parquet
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from importlib.metadata import version

import pandas as pd

BINARY_METRICS = ["accuracy", "roc_auc", "f1"]
MULTICLASS_METRICS = ["accuracy", "f1"]


def main() -> int:
    if os.environ.get("NML_DISABLE_USAGE_LOGGING") != "1":
        print("set NML_DISABLE_USAGE_LOGGING=1: NannyML sends usage telemetry", file=sys.stderr)
        return 2
    import nannyml as nml

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference")
    parser.add_argument("analysis")
    args = parser.parse_args()
    reference = pd.read_parquet(args.reference)
    analysis = pd.read_parquet(args.analysis)
    windows = list(dict.fromkeys(analysis["window"]))
    sizes = analysis["window"].value_counts()
    if sizes.nunique() != 1 or not analysis["window"].is_monotonic_increasing:
        print("windows must be contiguous and of one size", file=sys.stderr)
        return 1

    scores = sorted(c for c in reference.columns if c.startswith("proba_"))
    multiclass = bool(scores)
    metrics = MULTICLASS_METRICS if multiclass else BINARY_METRICS
    started = time.perf_counter()
    estimator = nml.CBPE(
        y_pred_proba={c.removeprefix("proba_"): c for c in scores} if multiclass else "proba",
        y_pred="predicted",
        y_true="label",
        problem_type="classification_multiclass" if multiclass else "classification_binary",
        metrics=metrics,
        chunk_size=int(sizes.iloc[0]),
    )
    estimator.fit(reference)
    estimated = estimator.estimate(analysis).filter(period="analysis").to_df()
    seconds = time.perf_counter() - started

    per_window = {}
    for index, window in enumerate(windows):
        row = estimated.iloc[index]
        per_window[str(window)] = {metric: float(row[(metric, "value")]) for metric in metrics}
    print(json.dumps({"seconds": seconds, "version": version("nannyml"), "windows": per_window}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
