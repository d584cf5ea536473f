"""The label-free performance estimate against the truth, side by side with NannyML's CBPE.

Two synthetic tasks with known truth, binary (P(y = 1 | x) a fixed logistic function of four
features) and three classes (a fixed softmax of the same features). For each, a
gradient-boosted classifier is trained on unshifted rows; its held-out rows give the
calibration, as the train stage's reference profile does (`fit_calibration`). Then
`--windows` windows of `--rows` rows each move the inputs further and further (covariate
shift: the features' distribution changes, P(y | x) does not): the most informative feature
is squeezed towards the decision boundary, another is moved and a third moved and squeezed,
so realized accuracy falls from window to window. Each window's labels are drawn from the
truth, so its realized accuracy is known.

Each window is estimated as the drift check estimates it (`EstimateAccumulator` on the
window's predictions and probabilities, in the check's chunks), and by NannyML's CBPE (its
defaults, in `.venv-nannyml`, a child process with NML_DISABLE_USAGE_LOGGING=1) on the same
reference and the same windows. The targets, on our estimate and on each task: mean absolute
error against realized accuracy at most 3 points over the windows, largest error at most 6.
NannyML's errors are printed beside ours, not judged.

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

from functions.ml.drift.estimate import EstimateAccumulator, fit_calibration

REPO = Path(__file__).resolve().parents[1]

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


def truth(x: np.ndarray, classes: int) -> np.ndarray:
    """P(y = c | x) for each class c (rows x classes), the same in every window."""
    if classes == 2:
        logit = 2.2 * x[:, 0] - 1.2 * x[:, 1] + 0.8 * x[:, 2] * x[:, 3] - 0.4 * x[:, 2]
        positive = 1.0 / (1.0 + np.exp(-logit))
        return np.column_stack([1.0 - positive, positive])
    logits = np.column_stack(
        [
            2.0 * x[:, 0] + 0.5 * x[:, 2] * x[:, 3],
            -1.0 * x[:, 0] + 1.5 * x[:, 1],
            -1.0 * x[:, 0] - 1.5 * x[:, 1] + 0.5 * x[:, 2],
        ]
    )
    odds = np.exp(logits - logits.max(axis=1, keepdims=True))
    return odds / odds.sum(axis=1, keepdims=True)


def labels(x: np.ndarray, classes: list[str], rng: np.random.Generator) -> np.ndarray:
    """Labels drawn from the truth."""
    cumulative = np.cumsum(truth(x, len(classes)), axis=1)
    drawn = (rng.random(len(x))[:, None] > cumulative).sum(axis=1)
    return np.asarray(classes, dtype=object)[np.minimum(drawn, len(classes) - 1)]


def build(rows: int, windows: int, classes: list[str]) -> dict[str, Any]:
    """The model, its held-out rows and the shifted windows, with their probabilities."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(SEED)
    train_x = features(20_000, 0.0, rng)
    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, random_state=SEED)
    model.fit(train_x, labels(train_x, classes, rng).astype(str))
    assert list(model.classes_) == classes
    held_x = features(10_000, 0.0, rng)
    held = {"proba": model.predict_proba(held_x), "label": labels(held_x, classes, rng)}
    scored = []
    for shift in np.linspace(0.0, 1.0, windows):
        x = features(rows, float(shift), rng)
        window = {"proba": model.predict_proba(x), "label": labels(x, classes, rng)}
        scored.append({"shift": float(shift), **window})
    return {"classes": classes, "held": held, "windows": scored}


def predicted(proba: np.ndarray, classes: list[str]) -> np.ndarray:
    return np.asarray(classes, dtype=object)[np.argmax(proba, axis=1)]


def ours(data: dict[str, Any]) -> tuple[list[dict[str, float]], float]:
    """Our estimate of each window, as the drift check makes it; and the seconds it took."""
    classes, held = data["classes"], data["held"]
    started = time.perf_counter()
    calibration = fit_calibration(held["proba"], classes, held["label"], seed=0)
    assert calibration is not None
    estimates = []
    for window in data["windows"]:
        accumulator = EstimateAccumulator(calibration)
        proba = window["proba"]
        for start in range(0, len(proba), CHUNK_ROWS):
            part = proba[start : start + CHUNK_ROWS]
            accumulator.add(predicted(part, classes).tolist(), part.tolist(), classes)
        estimates.append(accumulator.metrics())
    return estimates, time.perf_counter() - started


def _frame(proba: np.ndarray, classes: list[str], **columns: Any) -> pd.DataFrame:
    """NannyML's columns: `proba` of class 1 (binary) or `proba_<class>`, and `predicted`."""
    if len(classes) == 2:
        scores = {"proba": proba[:, 1]}
    else:
        scores = {f"proba_{name}": proba[:, i] for i, name in enumerate(classes)}
    return pd.DataFrame({**columns, **scores, "predicted": predicted(proba, classes)})


def nannyml(data: dict[str, Any]) -> dict[str, Any] | None:
    """NannyML's CBPE on the same reference and windows; None when its venv is missing."""
    if not NANNYML_PYTHON.exists():
        print(f"no {NANNYML_PYTHON.relative_to(REPO)} (make bench builds it): NannyML skipped")
        return None
    classes, held = data["classes"], data["held"]
    reference = _frame(held["proba"], classes, label=held["label"])
    analysis = pd.concat(
        [_frame(w["proba"], classes, window=i) for i, w in enumerate(data["windows"])],
        ignore_index=True,
    )
    if len(classes) == 2:  # binary classes as the integers 0 and 1
        for frame in (reference, analysis):
            for column in ("predicted", "label"):
                if column in frame:
                    frame[column] = frame[column].astype(np.int64)
    with tempfile.TemporaryDirectory() as directory:
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
    """The table of one task's windows; whether our estimate met the targets."""
    classes = data["classes"]
    realized = [
        float(np.mean(predicted(w["proba"], classes) == w["label"])) for w in data["windows"]
    ]
    our_errors = [abs(e["accuracy"] - r) for e, r in zip(estimates, realized, strict=True)]
    theirs = [nml["windows"][str(i)]["accuracy"] for i in range(len(realized))] if nml else None
    task = "binary" if len(classes) == 2 else f"{len(classes)} classes"
    print(
        f"label-free accuracy estimate, {task}: {len(realized)} windows of "
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
        # NannyML's multiclass F1 is the macro average.
        names = {"accuracy": "accuracy", "f1": "f1" if len(classes) == 2 else "f1_macro"}
        if len(classes) == 2:
            names["roc_auc"] = "roc_auc"
        for metric, ours_name in names.items():
            apart = [
                abs(e[ours_name] - nml["windows"][str(i)][metric]) for i, e in enumerate(estimates)
            ]
            print(f"{ours_name} estimates, ours vs NannyML's: largest difference {max(apart):.1e}")
    passed = mean_error <= MAX_MEAN_ERROR and max_error <= MAX_ERROR
    print(f"CBPE targets ({task}) {'met' if passed else 'MISSED'}")
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000, help="rows per window")
    parser.add_argument("--windows", type=int, default=10)
    parser.add_argument("--no-nannyml", action="store_true", help="ours only")
    args = parser.parse_args()
    passed = True
    for classes in (["0", "1"], ["a", "b", "c"]):
        data = build(args.rows, args.windows, classes)
        estimates, seconds = ours(data)
        nml = None if args.no_nannyml else nannyml(data)
        passed = report(data, estimates, seconds, nml) and passed
        print()
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
