"""The label-free performance estimate against the truth, side by side with NannyML's CBPE.

A synthetic binary task with known truth: P(y = 1 | x) is a fixed logistic function of four
features. A gradient-boosted classifier is trained on unshifted rows; its held-out rows give
the calibration, as the train stage's reference profile does (`fit_calibration`). Then
`--windows` windows of `--rows` rows each move the inputs further and further (covariate
shift: the features' distribution changes, P(y | x) does not): the most informative feature
is squeezed towards the decision boundary, another is moved and a third moved and squeezed,
so realized accuracy falls from window to window. Each window's labels are
drawn from the truth, so its realized accuracy is known.

Each window is estimated as the drift check estimates it (`EstimateAccumulator` on the
window's predictions and probabilities, in the check's chunks), and by NannyML's CBPE (its
defaults, in `.venv-nannyml`, a child process with NML_DISABLE_USAGE_LOGGING=1) on the same
reference and the same windows. The targets, on our estimate: mean absolute error against
realized accuracy at most 3 points over the windows, largest error at most 6. NannyML's
errors are printed beside ours, not judged.

    .venv/bin/python bench/cbpe.py [--rows 5000] [--windows 10] [--no-nannyml]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from functions.ml.drift.estimate import EstimateAccumulator, fit_calibration  # noqa: E402

NANNYML_PYTHON = REPO / ".venv-nannyml" / "bin" / "python"
MAX_MEAN_ERROR = 0.03
MAX_ERROR = 0.06
CHUNK_ROWS = 1_000
SEED = 7


def features(rows: int, shift: float, rng: np.random.Generator) -> np.ndarray:
    """`rows` inputs at `shift` (0: the training distribution, 1: the furthest window)."""
    x = rng.normal(size=(rows, 4))
    x[:, 0] *= 1.0 - 0.8 * shift  # squeezed towards the boundary: accuracy falls
    x[:, 2] -= 1.0 * shift
    x[:, 3] = x[:, 3] * (1.0 - 0.5 * shift) + 0.5 * shift
    return x


def truth(x: np.ndarray) -> np.ndarray:
    """P(y = 1 | x), the same in every window."""
    logit = 2.2 * x[:, 0] - 1.2 * x[:, 1] + 0.8 * x[:, 2] * x[:, 3] - 0.4 * x[:, 2]
    return 1.0 / (1.0 + np.exp(-logit))


def labels(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (rng.random(len(x)) < truth(x)).astype(np.int64)


def build(rows: int, windows: int) -> dict[str, Any]:
    """The model, its held-out rows and the shifted windows."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(SEED)
    train_x = features(20_000, 0.0, rng)
    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=SEED)
    model.fit(train_x, labels(train_x, rng))
    held_x = features(10_000, 0.0, rng)
    held = {"proba": model.predict_proba(held_x)[:, 1], "label": labels(held_x, rng)}
    shifts = np.linspace(0.0, 1.0, windows)
    scored = []
    for shift in shifts:
        x = features(rows, float(shift), rng)
        proba = model.predict_proba(x)[:, 1]
        scored.append({"shift": float(shift), "proba": proba, "label": labels(x, rng)})
    return {"held": held, "windows": scored}


def ours(data: dict[str, Any]) -> tuple[list[dict[str, float]], float]:
    """Our estimate of each window, as the drift check makes it; and the seconds it took."""
    held = data["held"]
    started = time.perf_counter()
    probabilities = np.column_stack([1 - held["proba"], held["proba"]])
    calibration = fit_calibration(probabilities, ["0", "1"], held["label"].astype(str), seed=0)
    assert calibration is not None
    estimates = []
    for window in data["windows"]:
        accumulator = EstimateAccumulator(calibration)
        proba = window["proba"]
        for start in range(0, len(proba), CHUNK_ROWS):
            part = proba[start : start + CHUNK_ROWS]
            predicted = np.where(part >= 0.5, "1", "0").tolist()
            accumulator.add(predicted, np.column_stack([1 - part, part]).tolist(), ["0", "1"])
        estimates.append(accumulator.metrics())
    return estimates, time.perf_counter() - started


def nannyml(data: dict[str, Any]) -> dict[str, Any] | None:
    """NannyML's CBPE on the same reference and windows; None when its venv is missing."""
    if not NANNYML_PYTHON.exists():
        print(f"no {NANNYML_PYTHON.relative_to(REPO)} (make bench builds it): NannyML skipped")
        return None
    with tempfile.TemporaryDirectory() as directory:
        held = data["held"]
        reference = pd.DataFrame(
            {
                "proba": held["proba"],
                "predicted": (held["proba"] >= 0.5).astype(np.int64),
                "label": held["label"],
            }
        )
        analysis = pd.concat(
            [
                pd.DataFrame(
                    {
                        "window": index,
                        "proba": window["proba"],
                        "predicted": (window["proba"] >= 0.5).astype(np.int64),
                    }
                )
                for index, window in enumerate(data["windows"])
            ],
            ignore_index=True,
        )
        paths = [Path(directory) / "reference.parquet", Path(directory) / "analysis.parquet"]
        reference.to_parquet(paths[0])
        analysis.to_parquet(paths[1])
        completed = subprocess.run(
            [str(NANNYML_PYTHON), str(REPO / "bench" / "cbpe_nannyml.py"), *map(str, paths)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "NML_DISABLE_USAGE_LOGGING": "1"},
        )
    if completed.returncode != 0:
        raise SystemExit(f"NannyML failed:\n{completed.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def report(
    data: dict[str, Any], estimates: list[dict[str, float]], seconds: float, nml: Any
) -> bool:
    realized = [
        float(np.mean((w["proba"] >= 0.5).astype(np.int64) == w["label"])) for w in data["windows"]
    ]
    our_errors = [abs(e["accuracy"] - r) for e, r in zip(estimates, realized, strict=True)]
    theirs = [nml["windows"][str(i)]["accuracy"] for i in range(len(realized))] if nml else None
    print(
        f"label-free accuracy estimate: {len(realized)} windows of "
        f"{len(data['windows'][0]['proba']):,} rows, covariate shift 0 -> 1"
    )
    header = f"{'window':>6} {'shift':>6} {'realized':>9} {'ours':>7} {'error':>7}"
    if theirs:
        header += f" {'NannyML':>8} {'error':>7}"
    print(header)
    for index, (window, value) in enumerate(zip(data["windows"], realized, strict=True)):
        line = (
            f"{index:>6} {window['shift']:>6.2f} {value:>9.4f} "
            f"{estimates[index]['accuracy']:>7.4f} {estimates[index]['accuracy'] - value:>+7.4f}"
        )
        if theirs:
            line += f" {theirs[index]:>8.4f} {theirs[index] - value:>+7.4f}"
        print(line)
    mean_error, max_error = float(np.mean(our_errors)), float(max(our_errors))
    print(
        f"ours: mean absolute error {100 * mean_error:.2f} points (target <= "
        f"{100 * MAX_MEAN_ERROR:.0f}), largest {100 * max_error:.2f} (target <= "
        f"{100 * MAX_ERROR:.0f}); calibration and {len(realized)} estimates in {seconds:.2f} s"
    )
    if theirs:
        errors = [abs(t - r) for t, r in zip(theirs, realized, strict=True)]
        print(
            f"NannyML {nml['version']} CBPE: mean absolute error "
            f"{100 * float(np.mean(errors)):.2f} points, largest {100 * max(errors):.2f}; "
            f"fit and estimate in {nml['seconds']:.2f} s"
        )
        for metric in ("accuracy", "roc_auc", "f1"):
            apart = [
                abs(e.get(metric, np.nan) - nml["windows"][str(i)][metric])
                for i, e in enumerate(estimates)
            ]
            print(f"{metric} estimates, ours vs NannyML's: largest difference {max(apart):.1e}")
    passed = mean_error <= MAX_MEAN_ERROR and max_error <= MAX_ERROR
    print(f"CBPE targets {'met' if passed else 'MISSED'}")
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000, help="rows per window")
    parser.add_argument("--windows", type=int, default=10)
    parser.add_argument("--no-nannyml", action="store_true", help="ours only")
    args = parser.parse_args()
    data = build(args.rows, args.windows)
    estimates, seconds = ours(data)
    nml = None if args.no_nannyml else nannyml(data)
    return 0 if report(data, estimates, seconds, nml) else 1


if __name__ == "__main__":
    sys.exit(main())
