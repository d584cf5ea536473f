"""What the model card's insight costs against the train stage's time.

On the default dataset (the repository's `mlops.toml`: churn, logistic regression; the demo's
5,000 rows of `sample_data.churn_frame`), times side by side in one process:

(a) the train stage's core, `functions.train.logic.fit_candidate`: split, fit, export ONNX,
    parity check, permutation importances, reference profile (what the train handler runs
    between reading the curated data and writing the artifacts);
(b) what the evaluate stage adds for insight, `functions.ml.insight.model_insight` for the
    candidate and for the champion (here a second model, as evaluate measures both) on the
    held-out rows, from their ONNX predictions (which evaluate computes for its metrics
    anyway): slices of the four categorical features and five quantile bins of
    `tenure_months`, fairness across `region` (fairlearn), calibration and thresholds.

The first run of each pays the imports (skl2onnx, fairlearn), as a new function container
does; then each runs `--repeats` times, alternating, and the fastest of each is compared (the
one least disturbed by other processes). The card "stays fast" when (b) adds at most the train
stage's time again, insight / train <= 1.0 (the two together at most 2x training); exits
non-zero when the fastest runs miss it. Both ratios, cold and warm, are printed.

    python bench/insight.py [--rows 5000] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]

LIMIT = 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from functions.common.config.dataset import Task
    from functions.common.config.loading import MlopsConfig, load_config
    from functions.ml.insight import InsightSettings, Privacy, model_insight, scores_of
    from functions.ml.onnx_model import OnnxModel
    from functions.ml.sample_data import TARGET, churn_frame
    from functions.train.logic import Candidate, Stopwatch, fit_candidate

    config = load_config(REPO / "mlops.toml")
    schema = config.dataset.features
    assert schema is not None
    frame = churn_frame(args.rows, seed=11)
    settings = InsightSettings(
        quantile_feature="tenure_months",
        fairness_attributes=["region"],
        privacy=Privacy(min_rows=config.model_card.min_slice_rows),
    )

    def train(model_config: MlopsConfig) -> tuple[float, Candidate]:
        started = time.perf_counter()
        candidate = fit_candidate(
            frame,
            target=TARGET,
            task=Task.CLASSIFICATION,
            schema=dict(schema),
            config=model_config,
            stopwatch=Stopwatch(),
        )
        return time.perf_counter() - started, candidate

    def insight(candidate: Candidate, champion: OnnxModel) -> float:
        holdout = candidate.split.test
        models = [OnnxModel(candidate.onnx_bytes, candidate.signature), champion]
        predictions = [model.predict(holdout) for model in models]  # evaluate's own scoring
        y_true = holdout[TARGET].to_numpy()
        started = time.perf_counter()
        for model, prediction in zip(models, predictions, strict=True):
            model_insight(
                holdout,
                scores_of(
                    Task.CLASSIFICATION,
                    y_true,
                    prediction.labels,
                    prediction.probabilities,
                    model.signature.classes,
                ),
                schema=model.signature.schema,
                settings=settings,
            )
        return time.perf_counter() - started

    with threadpool_limits(args.threads):
        cold_train, candidate = train(config)
        # the champion: the same model with another regularisation
        champion_config = config.model_copy(
            update={"model": config.model.model_copy(update={"params": {"C": 0.05}})}
        )
        _, trained_champion = train(champion_config)
        champion = OnnxModel(trained_champion.onnx_bytes, trained_champion.signature)
        cold_insight = insight(candidate, champion)
        trains, insights = [], []
        for _ in range(args.repeats):
            seconds, candidate = train(config)
            trains.append(seconds)
            insights.append(insight(candidate, champion))
    rows = len(candidate.split.test)
    print(f"default dataset: {args.rows} churn rows, {rows} held out; threads {args.threads}")
    print(
        f"cold (imports):   train {cold_train:.3f} s, insight {cold_insight:.3f} s, "
        f"ratio {cold_insight / cold_train:.2f}"
    )
    train_s, insight_s = min(trains), min(insights)
    ratio = insight_s / train_s
    print(
        f"fastest of {args.repeats}: train {train_s:.3f} s, insight (candidate + champion) "
        f"{insight_s:.3f} s, ratio {ratio:.2f} (limit {LIMIT:.1f}: train + insight <= 2x train)"
    )
    if ratio > LIMIT:
        print(f"FAIL: insight adds {ratio:.2f}x the train stage's time, more than {LIMIT:.1f}x")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
