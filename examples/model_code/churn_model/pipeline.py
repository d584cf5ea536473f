"""The factory: `churn_model.pipeline:build` (`[model] factory`).

It gets the feature contract and returns an unfitted Pipeline that reads the feature frame
itself: the engineered ratio `total_charges / tenure_months` (imputed where tenure is 0),
every numeric column imputed, every categorical column one-hot encoded, then LightGBM.
`[model] params` go to the LightGBM estimator.
"""

from __future__ import annotations

from typing import Any

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from churn_model.ratio import Ratio

NUMERATOR = "total_charges"
DENOMINATOR = "tenure_months"


def build(contract: Any) -> Pipeline:
    """The churn pipeline for `contract` (a `functions.ml.model_code.FeatureContract`)."""
    from lightgbm import LGBMClassifier, LGBMRegressor

    missing = [name for name in (NUMERATOR, DENOMINATOR) if name not in contract.numeric]
    if missing:
        raise ValueError(f"the churn pipeline needs the numeric column(s) {missing}")
    branches: list[tuple[str, Any, list[str]]] = [
        (
            "charge_per_month",
            Pipeline([("ratio", Ratio()), ("impute", SimpleImputer(strategy="median"))]),
            [NUMERATOR, DENOMINATOR],
        ),
        (
            "numeric",
            SimpleImputer(strategy="median", keep_empty_features=True),
            list(contract.numeric),
        ),
    ]
    if contract.categorical:
        branches.append(
            (
                "categorical",
                Pipeline(
                    [
                        (
                            "impute",
                            SimpleImputer(
                                missing_values="", strategy="constant", fill_value="__missing__"
                            ),
                        ),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                list(contract.categorical),
            )
        )
    estimator = LGBMClassifier if contract.task.value == "classification" else LGBMRegressor
    params = {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 15, **contract.params}
    model = estimator(random_state=contract.seed, verbose=-1, **params)
    return Pipeline(
        [("features", ColumnTransformer(branches, sparse_threshold=0.0)), ("model", model)]
    )
