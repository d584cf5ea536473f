"""Model card inputs for tests: a binary classifier's evaluation scored on synthetic rows, its
permutation importances as the train stage stores them, and the evaluation document's
`insight` as the evaluate stage writes it (every part of the contract present), so a card
with every section and chart renders."""

from __future__ import annotations

from typing import Any

import numpy as np

from functions.common.config.dataset import Task
from functions.common.contracts import Criterion, EvaluationResult
from functions.ml.metrics import evaluate_predictions
from tests.helpers.training import training_run

LONG_FEATURE = "monthly_charges_including_every_optional_add_on_service"
TINY_SLICE = {
    "feature": "plan",
    "kind": "category",
    "slice": "only-three-customers",
    "rows": 3,
    "value": 0.1,
    "overall": 0.8,
    "flag": "small",
}
"""A slice below the minimum rows (30) that an evaluation should not hold."""


def scored(seed: int) -> dict[str, Any]:
    """`Evaluation.to_dict()` of a noisy binary classifier on 300 rows."""
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(300) < 0.4, "yes", "no")
    score = np.clip(0.3 * (y == "yes") + 0.7 * rng.random(300), 0, 1)
    return evaluate_predictions(
        task=Task.CLASSIFICATION,
        y_true=y,
        labels=np.where(score > 0.5, "yes", "no"),
        probabilities=np.column_stack([1 - score, score]),
        classes=["no", "yes"],
    ).to_dict()


def multiclass_scored(seed: int, classes: list[str]) -> dict[str, Any]:
    """`Evaluation.to_dict()` of a noisy three-class classifier on 240 rows."""
    rng = np.random.default_rng(seed)
    y = rng.choice(classes, size=240, p=[0.45, 0.35, 0.2])
    scores = rng.random((240, 3)) + 1.2 * (y[:, None] == np.array(classes))
    probabilities = scores / scores.sum(axis=1, keepdims=True)
    return evaluate_predictions(
        task=Task.CLASSIFICATION,
        y_true=y,
        labels=np.array(classes)[probabilities.argmax(axis=1)],
        probabilities=probabilities,
        classes=classes,
    ).to_dict()


def importance(scale: float = 1.0, *, features: list[str] | None = None) -> dict[str, Any]:
    """Permutation importances in the shape `permutation_importances` returns."""
    names = features or ["tenure_months", "plan", LONG_FEATURE, "region", "age"]
    means = {name: scale * 0.12 / (i + 1) - 0.004 * i for i, name in enumerate(names)}
    return {
        "method": "permutation",
        "metric": "roc_auc",
        "rows": 300,
        "repeats": 3,
        "seed": 42,
        "features": means,
        "std": {name: abs(mean) * 0.2 + 0.002 for name, mean in means.items()},
        "critical": names[:1],
        "critical_share": 0.5,
    }


def insight(task: str = "binary", *, shift: float = 0.0) -> dict[str, Any]:
    """One model's `Insight` (the evaluation document's contract), every part present that the
    task has: slices worst first (one flagged small, some suppressed, a hashed sensitive
    value), fairness on two attributes, calibration and (binary) thresholds."""
    metric = {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "rmse"}[task]
    slices = [
        ("plan", "category", "premium", 40, 0.55),
        ("region", "category", "sha256:1a2b3c4d", 95, 0.66),
        ("tenure_months", "quantile", "[12.5, 40.0)", 120, 0.74),
        ("plan", "category", "basic", 160, 0.83),
        ("tenure_months", "quantile", "[40.0, 72.0]", 150, 0.88),
    ]
    rows = [
        {
            "feature": feature,
            "kind": kind,
            "slice": label,
            "rows": n,
            "value": value + shift,
            "overall": 0.8 + shift,
            "flag": "small" if n < 90 else None,
        }
        for feature, kind, label, n, value in slices
    ]
    curve = [
        {"mean_predicted": p, "fraction_positive": min(1.0, p * 0.8 + 0.05 + shift), "rows": 50}
        for p in (0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95)
    ]
    thresholds = []
    for step in range(1, 10):
        t = step / 10
        precision, recall = 0.35 + 0.6 * t, 0.98 - 0.9 * t**2
        f1 = 2 * precision * recall / (precision + recall)
        thresholds.append({"threshold": t, "precision": precision, "recall": recall, "f1": f1})
    fairness = {
        "attributes": {
            "gender": {
                "demographic_parity_difference": 0.12 + shift,
                "equalized_odds_difference": 0.2 + shift,
                "groups": [
                    {
                        "group": "female",
                        "rows": 140,
                        "selection_rate": 0.3,
                        "true_positive_rate": 0.7,
                        "false_positive_rate": 0.1,
                    },
                    {
                        "group": "male",
                        "rows": 160,
                        "selection_rate": 0.42,
                        "true_positive_rate": 0.9,
                        "false_positive_rate": 0.15,
                    },
                ],
                "suppressed": 0,
            },
            "age_band": {
                "demographic_parity_difference": 0.05,
                "equalized_odds_difference": 0.07,
                "groups": [
                    {
                        "group": "sha256:9f8e7d6c",
                        "rows": 200,
                        "selection_rate": 0.35,
                        "true_positive_rate": 0.8,
                        "false_positive_rate": 0.12,
                    }
                ],
                "suppressed": 1,
            },
        }
    }
    return {
        "task": task,
        "metric": metric,
        "slices": {"min_rows": 30, "suppressed": 3, "rows": rows},
        "fairness": fairness if task != "regression" else None,
        "calibration": None
        if task == "regression"
        else {"brier": 0.18 + shift, "method": "isotonic", "curve": curve},
        "thresholds": thresholds if task == "binary" else None,
    }


def card_inputs(*, champion: bool = True) -> dict[str, Any]:
    """Keyword arguments of `render_model_card` for a registered binary classifier with every
    section: curves, importances (and the champion's), slices, fairness, calibration and
    thresholds."""
    candidate = scored(0)
    champion_eval = scored(1) if champion else None
    criterion = Criterion(
        metric="roc_auc",
        kind="threshold",
        candidate=candidate["metrics"]["roc_auc"],
        bound=0.5,
        greater_is_better=True,
        passed=True,
        message="roc_auc >= threshold 0.5",
    )
    evaluation = EvaluationResult(
        run_id="20261126T225300Z-1a2b3c",
        metrics=candidate["metrics"],
        champion_version=2 if champion else None,
        champion_metrics=champion_eval["metrics"] if champion_eval else None,
        criteria=[criterion],
        passed=True,
        failed=[],
        evaluation_key="models/churn/runs/x/evaluation.json",
    ).model_dump(mode="json")
    run = training_run(
        "churn",
        "20261126T225300Z-1a2b3c",
        data_version="abc123",
        data_versions=["abc000", "abc123"],
        rows_train=1200,
        rows_test=300,
        started_at="2026-11-26T22:53:00Z",
    ).model_dump(mode="json")
    signature = {
        "task": "classification",
        "target": "churned",
        "inputs": [
            {"name": "tenure_months", "type": "numeric", "categories": [], "nullable": True},
            {
                "name": "plan",
                "type": "categorical",
                "categories": ["basic", "premium"],
                "nullable": True,
            },
        ],
        "classes": ["no", "yes"],
        "library_versions": {"scikit-learn": "1.9.1"},
    }
    return {
        "model_name": "churn",
        "version": 3,
        "run": run,
        "evaluation": evaluation,
        "candidate_eval": candidate,
        "champion_eval": champion_eval,
        "signature": signature,
        "created_at": "2026-11-27T08:00:00.000Z",
        "importance": importance(),
        "champion_importance": importance(0.7) if champion else None,
        "insight": {
            "candidate": insight(),
            "champion": insight(shift=-0.03) if champion else None,
        },
    }


def regression_card_inputs(scale: float = 1.0) -> dict[str, Any]:
    """`card_inputs` of a regressor without a champion: residuals, importances and slices (a
    regression's insight has no fairness, calibration or thresholds); `scale` multiplies the
    target (house prices: 1e4)."""
    rng = np.random.default_rng(7)
    y = rng.normal(50, 10, 300) * scale
    candidate = evaluate_predictions(
        task=Task.REGRESSION,
        y_true=y,
        labels=y + rng.normal(0, 4, 300) * scale,
        probabilities=None,
        classes=None,
    ).to_dict()
    inputs = card_inputs(champion=False)
    return {
        **inputs,
        "run": {**inputs["run"], "task": "regression", "estimator": "ridge"},
        "evaluation": {**inputs["evaluation"], "metrics": candidate["metrics"]},
        "candidate_eval": candidate,
        "signature": {**inputs["signature"], "task": "regression", "classes": None},
        "importance": {**importance(scale), "metric": "rmse"},
        "insight": {"candidate": insight("regression"), "champion": None},
    }


CLASSES = ["Gentoo penguin with a long class name", "adélie", "Chinstrap <b>"]


def multiclass_card_inputs() -> dict[str, Any]:
    """`card_inputs` of a three-class classifier with a champion: one-vs-rest curves per class
    (long and hostile class names), importances, slices, fairness and the top-label
    reliability curve (a multi-class insight has no thresholds)."""
    inputs = card_inputs()
    evaluations = [multiclass_scored(seed, CLASSES) for seed in (3, 4)]
    candidate, champion = evaluations
    return {
        **inputs,
        "evaluation": {
            **inputs["evaluation"],
            "metrics": candidate["metrics"],
            "champion_metrics": champion["metrics"],
        },
        "candidate_eval": candidate,
        "champion_eval": champion,
        "signature": {**inputs["signature"], "classes": CLASSES},
        "importance": {**importance(), "metric": "f1_macro"},
        "champion_importance": {**importance(0.7), "metric": "f1_macro"},
        "insight": {
            "candidate": insight("multiclass"),
            "champion": insight("multiclass", shift=-0.03),
        },
    }
