"""The floor pipeline: the least any JSON predict API must do for a `POST /v1/predict` body,
against which `bench/predict.py` judges the handler.

orjson parse of the same body, the same column conversion the handler uses
(`functions.ml.onnx_input.onnx_inputs`, the conversion training uses), `session.run`, and an
orjson dump of the same response document (model, version, alias, request id, predictions,
probabilities, classes). No validation, no routing, no metrics, no logging, no capture.

This file is the yardstick of the serving targets: it is committed before any optimisation of
the handler and is not changed afterwards.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from functions.ml.onnx_input import onnx_inputs


class FloorPipeline:
    """One model's floor: `answer(body)` turns a v1 request body into the response bytes."""

    def __init__(
        self,
        session: Any,
        signature: dict[str, Any],
        *,
        model_name: str,
        model_version: int,
        alias: str = "production",
    ) -> None:
        self.session = session
        self.inputs = signature["inputs"]
        self.names = [spec["name"] for spec in self.inputs]
        self.outputs = [output["name"] for output in signature["onnx_outputs"]]
        self.classes = signature.get("classes")
        self.model_name = model_name
        self.model_version = model_version
        self.alias = alias

    def answer(self, body: str | bytes, request_id: str) -> bytes:
        instances = orjson.loads(body)["instances"]
        columns = {name: [row.get(name) for row in instances] for name in self.names}
        feed = onnx_inputs(columns, self.inputs)
        outputs = self.session.run(self.outputs, feed)
        response: dict[str, Any] = {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "alias": self.alias,
            "request_id": request_id,
        }
        if self.classes is None:
            response["predictions"] = np.asarray(outputs[0], dtype=np.float64).reshape(-1)
        else:
            response["predictions"] = np.asarray(outputs[0]).reshape(-1).tolist()
            response["probabilities"] = np.asarray(outputs[1], dtype=np.float64)
            response["classes"] = self.classes
        return orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
