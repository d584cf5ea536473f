"""Your own model code: loading a factory from the `[train] code` folder, what it must return,
and a pipeline step without an ONNX converter failing with a clear error."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from functions.common.config.dataset import FeatureType, Task
from functions.common.config.training import ModelConfig
from functions.ml import sample_data
from functions.ml.features import model_frame
from functions.ml.model_code import FeatureContract, ModelCodeError, load_factory
from functions.ml.onnx_model import UnconvertibleStepError, export_onnx
from functions.ml.training import fit_model, split_dataset

SCHEMA = dict.fromkeys(sample_data.NUMERIC_FEATURES, FeatureType.NUMERIC) | dict.fromkeys(
    sample_data.CATEGORICAL_FEATURES, FeatureType.CATEGORICAL
)
CONTRACT = FeatureContract.from_schema(
    SCHEMA, task=Task.CLASSIFICATION, target="churned", seed=1, params={"C": 0.5}
)


@pytest.fixture
def code(tmp_path: Path) -> Iterator[Path]:
    """A model code folder; the packages it held are forgotten afterwards."""
    folder = tmp_path / "code"
    folder.mkdir()
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        del sys.modules[name]
    if str(folder.resolve()) in sys.path:
        sys.path.remove(str(folder.resolve()))


def _module(folder: Path, package: str, source: str) -> None:
    (folder / package).mkdir()
    (folder / package / "__init__.py").write_text("")
    (folder / package / "factory.py").write_text(source)


def _fit(factory_spec: str, folder: Path) -> tuple[object, object]:
    frame = sample_data.churn_frame(600, seed=2)
    split = split_dataset(frame, target="churned", task=Task.CLASSIFICATION, test_size=0.2, seed=1)
    fitted = fit_model(
        split.train,
        target="churned",
        task=Task.CLASSIFICATION,
        schema=SCHEMA,
        model=ModelConfig(factory=factory_spec, seed=1, params={"C": 0.5}),
        estimator="logistic_regression",
        factory=load_factory(factory_spec, folder),
    )
    return fitted, split


def test_a_factory_gets_the_contract_and_its_estimator_trains(code: Path) -> None:
    _module(
        code,
        "mine",
        "from sklearn.linear_model import LogisticRegression\n"
        "SEEN = []\n"
        "def build(contract):\n"
        "    SEEN.append(contract)\n"
        "    return LogisticRegression(max_iter=3000, **contract.params)\n",
    )
    fitted, split = _fit("mine.factory:build", code)

    seen = sys.modules["mine.factory"].SEEN[0]  # type: ignore[attr-defined]
    assert seen.numeric == sample_data.NUMERIC_FEATURES
    assert seen.categorical == sample_data.CATEGORICAL_FEATURES
    assert seen.task is Task.CLASSIFICATION and seen.seed == 1
    # A bare estimator goes behind the built-in preprocessing and keeps its parameters.
    assert fitted.pipeline.named_steps["model"].C == 0.5  # type: ignore[attr-defined]
    assert "preprocess" in fitted.pipeline.named_steps  # type: ignore[attr-defined]
    assert load_factory("mine.factory:build", code).module_file.startswith(str(code.resolve()))


def test_a_missing_module_is_named_with_the_folder(code: Path) -> None:
    with pytest.raises(ModelCodeError, match=r"module 'nowhere.factory' not found in .*code"):
        load_factory("nowhere.factory:build", code)


def test_a_module_importing_a_missing_package_names_that_package(code: Path) -> None:
    _module(code, "needs", "import not_a_package_here\ndef build(contract): ...\n")
    with pytest.raises(ModelCodeError, match="imports 'not_a_package_here', which is not"):
        load_factory("needs.factory:build", code)


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelCodeError, match=r"folder .*absent \(train.code\) does not exist"):
        load_factory("mine.factory:build", tmp_path / "absent")


def test_a_missing_or_uncallable_function_is_named(code: Path) -> None:
    _module(code, "odd", "build = 42\n")
    with pytest.raises(ModelCodeError, match="has no 'make'"):
        load_factory("odd.factory:make", code)
    with pytest.raises(ModelCodeError, match="'build' is a int, not a function"):
        load_factory("odd.factory:build", code)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("return 'a model'", r"returned a builtins.str, not an unfitted scikit-learn estimator"),
        (
            "from sklearn.linear_model import LinearRegression\n    return LinearRegression()",
            "without predict_proba",
        ),
        ("raise RuntimeError('no data for me')", "raised RuntimeError: no data for me"),
    ],
)
def test_what_a_factory_returns_must_be_a_model(code: Path, body: str, message: str) -> None:
    _module(code, "bad", f"def build(contract):\n    {body}\n")
    with pytest.raises(ModelCodeError, match=message):
        _fit("bad.factory:build", code)


def test_a_step_without_an_onnx_converter_fails_naming_it_and_how_to_register_one() -> None:
    frame = sample_data.churn_frame(300, seed=4)
    numeric = list(sample_data.NUMERIC_FEATURES)
    pipeline = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        (
                            "logs",
                            Pipeline(
                                [
                                    ("impute", SimpleImputer(strategy="median")),
                                    ("log", FunctionTransformer(np.log1p)),
                                ]
                            ),
                            numeric,
                        ),
                        (
                            "cats",
                            OneHotEncoder(handle_unknown="ignore"),
                            list(sample_data.CATEGORICAL_FEATURES),
                        ),
                    ]
                ),
            ),
            ("model", LogisticRegression(max_iter=500)),
        ]
    )
    pipeline.fit(model_frame(frame, SCHEMA), frame["churned"].astype(str))

    with pytest.raises(UnconvertibleStepError) as caught:
        export_onnx(
            pipeline, schema=SCHEMA, target="churned", task=Task.CLASSIFICATION, train=frame
        )

    assert caught.value.step == "features__logs__log"
    message = str(caught.value)
    assert "'features__logs__log' (sklearn.preprocessing._function_transformer." in message
    assert "skl2onnx.update_registered_converter" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
