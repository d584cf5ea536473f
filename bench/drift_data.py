"""The data bench/drift.py compares on (seeded): the reference and current windows' columns,
drawn from five numeric families and three categorical ones, with known shifts (`SHIFTS`) in
some columns; the reference profile built from a reference window; Parquet files of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

Draw = Callable[[np.random.Generator, int], np.ndarray]


@dataclass(frozen=True)
class Spec:
    """One column: how its values are drawn and the share of them missing."""

    name: str
    draw: Draw
    null_share: float = 0.0


def _normal(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(50.0, 10.0, n)


def _lognormal(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.lognormal(3.0, 0.5, n)


def _gamma(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.gamma(2.0, 15.0, n)


def _uniform(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(0.0, 100.0, n)


def _counts(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.poisson(8.0, n).astype(np.float64)


def _choice(labels: list[str], shares: list[float]) -> Draw:
    pool = np.array(labels, dtype=object)
    return lambda rng, n: rng.choice(pool, size=n, p=shares)


FAMILIES = (_normal, _lognormal, _gamma, _uniform, _counts)
NUMERIC = [
    Spec(f"num_{i:02d}", FAMILIES[i % 5], null_share=0.02 if i % 4 == 2 else 0.0) for i in range(20)
]
PLAN = ["basic", "standard", "premium"]
REGIONS = ["north", "south", "east", "west"]
CHANNELS = ["web", "app", "store", "phone", "partner", "email"]
CATEGORICAL = [
    Spec("plan", _choice(PLAN, [0.5, 0.3, 0.2])),
    Spec("region", _choice(REGIONS, [0.4, 0.3, 0.2, 0.1])),
    Spec("channel", _choice(CHANNELS, [0.3, 0.25, 0.2, 0.1, 0.1, 0.05]), null_share=0.01),
]
SPECS = NUMERIC + CATEGORICAL


def _mean_shift(sds: float) -> Callable[..., np.ndarray]:
    return lambda values, rng, ref: values + sds * ref["std"]


def _scale(factor: float) -> Callable[..., np.ndarray]:
    return lambda values, rng, ref: ref["mean"] + factor * (values - ref["mean"])


def _more_nulls(share: float) -> Callable[..., np.ndarray]:
    def shift(values: np.ndarray, rng: np.random.Generator, ref: dict[str, float]) -> np.ndarray:
        out = values.copy()
        out[rng.random(len(out)) < share] = np.nan
        return out

    return shift


def _redraw(labels: list[str], shares: list[float]) -> Callable[..., np.ndarray]:
    return lambda values, rng, ref: _choice(labels, shares)(rng, len(values))


def _new_category(label: str, share: float) -> Callable[..., np.ndarray]:
    def shift(values: np.ndarray, rng: np.random.Generator, ref: dict[str, float]) -> np.ndarray:
        out = values.copy()
        out[rng.random(len(out)) < share] = label
        return out

    return shift


# column -> (the truth, as printed; how the current window differs from the reference)
SHIFTS: dict[str, tuple[str, Callable[..., np.ndarray]]] = {
    "num_00": ("mean +0.05 sd", _mean_shift(0.05)),
    "num_05": ("mean +0.25 sd", _mean_shift(0.25)),
    "num_01": ("mean +1 sd (lognormal)", _mean_shift(1.0)),
    "num_10": ("scale x1.5 about the mean", _scale(1.5)),
    "num_02": ("nulls 2% -> 12%", _more_nulls(0.10)),
    "plan": ("shares 50/30/20 -> 36/38/26", _redraw(PLAN, [0.36, 0.38, 0.26])),
    "region": ("new category, 5% of rows", _new_category("central", 0.05)),
}


def _moments(spec: Spec) -> dict[str, float]:
    """The column's population mean and std (from 1M draws of a separate stream)."""
    population = spec.draw(np.random.default_rng(0), 1_000_000)
    return {"mean": float(population.mean()), "std": float(population.std())}


def draw(rows: int, seed: int, shifted: bool = False) -> dict[str, np.ndarray]:
    """Every column (float64 with NaN, or object arrays of str with None); with `shifted`, the
    `SHIFTS` applied against the population mean and std of each column."""
    columns: dict[str, np.ndarray] = {}
    for index, spec in enumerate(SPECS):
        rng = np.random.default_rng([seed, index])
        values = spec.draw(rng, rows)
        if shifted and spec.name in SHIFTS:
            moments = _moments(spec) if spec in NUMERIC else {}
            values = SHIFTS[spec.name][1](values, rng, moments)
        missing = rng.random(rows) < spec.null_share
        if values.dtype == object:
            values[missing] = None
        else:
            values = np.where(missing, np.nan, values)
        columns[spec.name] = values
    return columns


def build_profile(reference: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
    """The profile as training stores it; the target and held-out predictions are synthetic
    (a logistic in one feature), since only the features are compared here."""
    import pandas as pd

    from functions.common.config.dataset import FeatureType, Task
    from functions.ml.onnx_input import Prediction
    from functions.ml.reference_profile import reference_profile

    rng = np.random.default_rng(seed)
    score = np.nan_to_num((reference["num_05"] - 50.0) / 10.0)
    churn = rng.random(len(score)) < 1 / (1 + np.exp(-score))
    frame = pd.DataFrame(reference).assign(churned=np.where(churn, "yes", "no"))
    held_out = 1 / (1 + np.exp(-rng.normal(size=20_000)))
    predictions = Prediction(
        labels=np.where(held_out >= 0.5, "yes", "no"),
        probabilities=np.column_stack([1 - held_out, held_out]),
        classes=("no", "yes"),
    )
    schema = {spec.name: FeatureType.NUMERIC for spec in NUMERIC} | {
        spec.name: FeatureType.CATEGORICAL for spec in CATEGORICAL
    }
    return reference_profile(
        frame,
        schema=schema,
        target="churned",
        predictions=predictions,
        task=Task.CLASSIFICATION,
        sample_rows=2_000,
        seed=seed,
    )


def write_parquet(columns: dict[str, np.ndarray], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({name: pa.array(values, from_pandas=True) for name, values in columns.items()})
    pq.write_table(table, path)
