"""Names shared by the SageMaker training job, the Lambda steps around it and the CDK app:
the folders SageMaker gives a training container, the channels and the job names. No
third-party imports: the CDK app reads these at synth."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT_ENV = "MLOPS_SAGEMAKER_ROOT"
"""Where the SageMaker layout is (`/opt/ml` in a training job); the local cloud and the tests
point it at a temporary folder."""
DEFAULT_ROOT = "/opt/ml"
JOB_PREFIX_ENV = "SAGEMAKER_JOB_PREFIX"
"""Every training job's name starts with this (the state machine may only touch those)."""
CURATED_ROOT = "curated/"
TRAIN_CHANNEL = "train"
SPEC_CHANNEL = "spec"
SPEC_FILE = "job.json"
MAX_JOB_NAME = 63
"""SageMaker's limit on a training job name."""


def sagemaker_prefix(model_name: str) -> str:
    """Where training jobs read their spec and write their output: `models/<name>/sagemaker/`."""
    return f"models/{model_name}/sagemaker/"


@dataclass(frozen=True)
class SageMakerLayout:
    """The folders SageMaker gives a training container, under `root` (`/opt/ml`)."""

    root: Path

    @classmethod
    def from_env(cls, root: str | os.PathLike[str] | None = None) -> SageMakerLayout:
        return cls(Path(root or os.environ.get(ROOT_ENV) or DEFAULT_ROOT))

    @property
    def hyperparameters(self) -> Path:
        return self.root / "input" / "config" / "hyperparameters.json"

    @property
    def resource_config(self) -> Path:
        return self.root / "input" / "config" / "resourceconfig.json"

    def channel(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def failure(self) -> Path:
        """SageMaker reports this file's text as the job's FailureReason."""
        return self.root / "output" / "failure"
