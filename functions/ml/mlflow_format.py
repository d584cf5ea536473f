"""A registered version in MLflow's model format, so that MLflow users load it with
`mlflow.pyfunc.load_model(path)` (or `mlflow.onnx.load_model`) and nothing of this project.

The folder (`mlflow_files` returns its files by name):

    MLmodel                    flavors `onnx` and `python_function` (loader `mlflow.onnx`),
                               the signature in MLflow's schema, the input example's info,
                               `mlflow_version`, `model_uuid`, `utc_time_created`
    model.onnx                 the version's graph, adapted to MLflow's ONNX wrapper (below)
    input_example.json         two rows in pandas' "split" orient: typical values, then every
                               feature missing
    serving_input_example.json the same rows as `mlflow models serve` takes them
                               (`{"dataframe_split": ...}`)
    requirements.txt, python_env.yaml, conda.yaml
                               the environment: mlflow, and the onnx and onnxruntime versions
                               that exported and checked the model

MLflow's ONNX wrapper feeds a DataFrame to a graph with several inputs one column each, as
1-D arrays (`df[name].values`), and turns each output into one DataFrame column of length n.
The version's own graph takes `[n, 1]` inputs and gives classifiers' probabilities as one
`[n, classes]` output, so the graph written here differs from it only at its edges: each input
is `[n]` and an `Unsqueeze` makes it the `[n, 1]` the preprocessing takes (a model with a single
input keeps `[n, 1]`: the wrapper feeds it the DataFrame's 2-D values), and the probabilities
become one `[n]` output per class, `probability_<class>` (a `Gather` of the class's column),
beside `label`. Every operator between is the version's, so the predictions are the same.

The signature declares numeric features `double` (MLflow then accepts int and float columns,
and its wrapper casts them to the graph's float32) and categorical ones `string`. A missing
value is NaN in a numeric column and `""` in a categorical one, the model's own convention:
MLflow hands a string column to onnxruntime as it is, and onnxruntime refuses None in a string
tensor.

Pure: the standard library and `onnx` (which the training image and the CLI carry), no MLflow
and no YAML library; the YAML files are written as block YAML with every string quoted.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

MLFLOW_VERSION = "3.17.2"
"""The MLflow release whose model format the folder follows (`mlflow_version`, and the mlflow
pin of its environment)."""
MLMODEL_FILE = "MLmodel"
MLFLOW_MODEL_FILE = "model.onnx"
INPUT_EXAMPLE_FILE = "input_example.json"
SERVING_INPUT_EXAMPLE_FILE = "serving_input_example.json"
REQUIREMENTS_FILE = "requirements.txt"
PYTHON_ENV_FILE = "python_env.yaml"
CONDA_FILE = "conda.yaml"
MLFLOW_FILES = (
    MLMODEL_FILE,
    MLFLOW_MODEL_FILE,
    INPUT_EXAMPLE_FILE,
    SERVING_INPUT_EXAMPLE_FILE,
    REQUIREMENTS_FILE,
    PYTHON_ENV_FILE,
    CONDA_FILE,
)
PROBABILITY_PREFIX = "probability_"
"""A classifier's output for class c is the column `probability_<c>`."""
_COLUMN_SUFFIX = "__column"
"""The `[n, 1]` tensor an input's `Unsqueeze` makes is named `<input>__column`."""
_MLFLOW_TYPES = {"float": "float", "double": "double", "string": "string", "int64": "long"}
_FALLBACK_PINS = {"onnx": "1.23.2", "onnxruntime": "1.32.0"}
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}

__all__ = [
    "MLFLOW_FILES",
    "MLFLOW_VERSION",
    "mlflow_files",
    "mlflow_graph",
    "mlflow_signature",
    "version_uuid",
    "input_example",
    "yaml_text",
]


def mlflow_files(
    onnx_bytes: bytes,
    signature: Mapping[str, Any],
    *,
    profile: Mapping[str, Any] | None = None,
    python_version: str,
    created_at: datetime | None = None,
    model_uuid: str | None = None,
) -> dict[str, bytes]:
    """The MLflow model folder of a version: file name -> bytes (`MLFLOW_FILES`).

    `onnx_bytes` and `signature` are the version's `model.onnx` and `signature.json` content;
    `profile` its reference profile (the input example's typical values; without one, the
    signature's first category and 0.0); `python_version` the Python the environment names.
    `created_at` (default now) and `model_uuid` (default random) make the output
    reproducible when given."""
    import onnx

    graph = mlflow_graph(onnx_bytes, signature)
    model_bytes = graph.SerializeToString()
    created = (created_at or datetime.now(UTC)).astimezone(UTC)
    example = input_example(signature, profile)
    versions = signature.get("library_versions") or {}
    pins = {name: versions.get(name) or default for name, default in _FALLBACK_PINS.items()}
    requirements = [f"mlflow=={MLFLOW_VERSION}", *(f"{n}=={v}" for n, v in pins.items())]
    mlmodel = {
        "artifact_path": None,
        "flavors": {
            "onnx": {
                "code": None,
                "data": MLFLOW_MODEL_FILE,
                "onnx_session_options": None,
                "onnx_version": onnx.__version__,
                "providers": ["CPUExecutionProvider"],
            },
            "python_function": {
                "data": MLFLOW_MODEL_FILE,
                "env": {"conda": CONDA_FILE, "virtualenv": PYTHON_ENV_FILE},
                "loader_module": "mlflow.onnx",
                "python_version": python_version,
            },
        },
        "mlflow_version": MLFLOW_VERSION,
        "model_size_bytes": len(model_bytes),
        "model_uuid": model_uuid or uuid.uuid4().hex,
        "saved_input_example_info": {
            "artifact_path": INPUT_EXAMPLE_FILE,
            "pandas_orient": "split",
            "serving_input_path": SERVING_INPUT_EXAMPLE_FILE,
            "type": "dataframe",
        },
        "signature": {
            name: json.dumps(specs) for name, specs in mlflow_signature(signature).items()
        }
        | {"params": None},
        "utc_time_created": created.strftime("%Y-%m-%d %H:%M:%S.%f"),
    }
    python_env = {
        "python": python_version,
        "build_dependencies": ["pip", "setuptools", "wheel"],
        "dependencies": [f"-r {REQUIREMENTS_FILE}"],
    }
    conda = {
        "channels": ["conda-forge"],
        "dependencies": [f"python={python_version}", "pip", {"pip": requirements}],
        "name": "mlflow-env",
    }
    return {
        MLMODEL_FILE: yaml_text(mlmodel).encode(),
        MLFLOW_MODEL_FILE: model_bytes,
        INPUT_EXAMPLE_FILE: _json(example).encode(),
        SERVING_INPUT_EXAMPLE_FILE: _json({"dataframe_split": example}, indent=2).encode(),
        REQUIREMENTS_FILE: ("\n".join(requirements) + "\n").encode(),
        PYTHON_ENV_FILE: yaml_text(python_env).encode(),
        CONDA_FILE: yaml_text(conda).encode(),
    }


def version_uuid(model: str, version: int, onnx_sha256: str) -> str:
    """The `model_uuid` of a registered version: the same whenever its folder is written
    (by the register stage, or rebuilt by the CLI), different for every model, version and
    graph."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"mlops:{model}/{version}/{onnx_sha256}").hex


def mlflow_signature(signature: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """MLflow's column-based signature of the adapted graph: `inputs` (one `double` or
    `string` column per feature, in order) and `outputs` (`label` and `probability_<class>`
    for classifiers; the prediction for regressors), each spec as MLflow writes a `ColSpec`."""
    inputs = [
        {
            "type": "string" if spec["type"] == "categorical" else "double",
            "name": spec["name"],
            "required": True,
        }
        for spec in signature["inputs"]
    ]
    outputs_onnx = signature["onnx_outputs"]
    label = outputs_onnx[0]
    outputs = [{"type": _MLFLOW_TYPES.get(label["elem_type"], "string"), "name": label["name"]}]
    classes = signature.get("classes")
    if classes is not None:
        elem = outputs_onnx[1]["elem_type"] if len(outputs_onnx) > 1 else "float"
        outputs += [
            {"type": _MLFLOW_TYPES.get(elem, "float"), "name": PROBABILITY_PREFIX + str(c)}
            for c in classes
        ]
    return {"inputs": inputs, "outputs": [{**spec, "required": True} for spec in outputs]}


def mlflow_graph(onnx_bytes: bytes, signature: Mapping[str, Any]) -> Any:
    """The version's graph with the edges MLflow's ONNX wrapper feeds and reads (module
    docstring): an `onnx.ModelProto`. Raises ValueError when the graph's inputs or outputs are
    not the ones the signature names."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    names = [value.name for value in graph.input]
    expected = [spec["name"] for spec in signature["onnx_inputs"]]
    if names != expected:
        raise ValueError(f"the graph's inputs {names} are not the signature's {expected}")
    outputs = [value.name for value in graph.output]
    expected = [spec["name"] for spec in signature["onnx_outputs"]]
    if outputs != expected:
        raise ValueError(f"the graph's outputs {outputs} are not the signature's {expected}")
    front: list[Any] = []
    if len(graph.input) > 1:
        graph.initializer.append(
            helper.make_tensor("mlflow_unsqueeze_axes", TensorProto.INT64, [1], [1])
        )
        renamed = {value.name: value.name + _COLUMN_SUFFIX for value in graph.input}
        _rename_inputs(graph.node, renamed)
        for value in graph.output:
            if value.name in renamed:  # an input passed straight through
                value.name = renamed[value.name]
        flat = []
        for value in graph.input:
            elem = value.type.tensor_type.elem_type
            flat.append(helper.make_tensor_value_info(value.name, elem, [None]))
            front.append(
                helper.make_node(
                    "Unsqueeze",
                    [value.name, "mlflow_unsqueeze_axes"],
                    [renamed[value.name]],
                    name=f"mlflow_unsqueeze_{len(front)}",
                )
            )
        del graph.input[:]
        graph.input.extend(flat)
    classes = signature.get("classes")
    if classes is not None and len(graph.output) > 1:
        probabilities = graph.output[1]
        elem = probabilities.type.tensor_type.elem_type
        per_class = []
        for index, label in enumerate(classes):
            position = f"mlflow_class_{index}"
            graph.initializer.append(helper.make_tensor(position, TensorProto.INT64, [], [index]))
            name = PROBABILITY_PREFIX + str(label)
            graph.node.append(
                helper.make_node(
                    "Gather", [probabilities.name, position], [name], axis=1, name=f"{position}_of"
                )
            )
            per_class.append(helper.make_tensor_value_info(name, elem, [None]))
        kept = graph.output[0]
        del graph.output[:]
        graph.output.extend([kept, *per_class])
    if front:
        nodes = [*front, *graph.node]
        del graph.node[:]
        graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return model


def _rename_inputs(nodes: Any, renamed: Mapping[str, str]) -> None:
    """Rename the tensors `nodes` read, in subgraphs too (an `If` or `Loop` body reads the
    outer graph's tensors by name), except where a subgraph declares the name itself."""
    for node in nodes:
        node.input[:] = [renamed.get(name, name) for name in node.input]
        for attribute in node.attribute:
            for subgraph in [
                *([attribute.g] if attribute.HasField("g") else []),
                *attribute.graphs,
            ]:
                own = {v.name for v in subgraph.input} | {t.name for t in subgraph.initializer}
                own |= {name for inner in subgraph.node for name in inner.output}
                _rename_inputs(subgraph.node, {k: v for k, v in renamed.items() if k not in own})


def input_example(
    signature: Mapping[str, Any], profile: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Two rows in pandas' "split" orient (`{"columns", "data"}`): each feature's typical
    value (a numeric feature's training mean, to 4 significant digits; a categorical one's
    most frequent training category), then every feature missing (null; `""` for a
    categorical feature). Without a profile, 0.0 and the signature's first category."""
    features = (profile or {}).get("features") or {}
    columns: list[str] = []
    typical: list[Any] = []
    missing: list[Any] = []
    for spec in signature["inputs"]:
        name = spec["name"]
        stats = features.get(name) or {}
        columns.append(name)
        if spec["type"] == "categorical":
            counts = {k: v for k, v in (stats.get("counts") or {}).items() if k != ""}
            seen = spec.get("categories") or []
            value = max(sorted(counts), key=lambda k: counts[k]) if counts else None
            typical.append(value if value is not None else (seen[0] if seen else ""))
            missing.append("")
        else:
            mean = stats.get("mean")
            usable = isinstance(mean, int | float) and math.isfinite(mean)
            typical.append(float(f"{mean:.4g}") if usable else 0.0)
            missing.append(None)
    return {"columns": columns, "data": [typical, missing]}


def _json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, allow_nan=False)


def yaml_text(document: Mapping[str, Any]) -> str:
    """`document` (dicts, lists, str, int, float, bool, None) as block YAML: a string is plain
    when it is a simple word, path or version, else double-quoted (JSON's escapes, which YAML
    reads alike)."""
    return "".join(f"{line}\n" for line in _yaml_lines(document, 0))


def _yaml_lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            if _is_block(item):
                lines.append(f"{pad}{_scalar(str(key))}:")
                lines.extend(_yaml_lines(item, indent + 2 if isinstance(item, Mapping) else indent))
            else:
                lines.append(f"{pad}{_scalar(str(key))}: {_scalar(item)}")
        return lines
    for item in value:
        if isinstance(item, Mapping) and item:
            nested = _yaml_lines(item, indent + 2)
            lines.append(f"{pad}- {nested[0].lstrip()}")
            lines.extend(nested[1:])
        elif isinstance(item, Sequence) and not isinstance(item, str) and item:
            raise ValueError("a list directly inside a list is not written")
        else:
            lines.append(f"{pad}- {_scalar(item)}")
    return lines


def _is_block(value: Any) -> bool:
    return isinstance(value, Mapping | list | tuple) and len(value) > 0


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value} is not written to YAML")
        return repr(value)
    if isinstance(value, Mapping | list | tuple):
        return "{}" if isinstance(value, Mapping) else "[]"
    text = str(value)
    plain = (
        _PLAIN.match(text) and text.lower() not in _YAML_WORDS and not re.match(r"^[0-9.]+$", text)
    )
    return text if plain else json.dumps(text)
