"""`mlops train-local`: the ingest, train and evaluate stages' own code on a local file, with
no cloud at all, so a pull request that changes model code can show its metrics.

The file is validated and cleaned against the config's dataset contract exactly as a drop
under raw/ is (`ingest_file`), trained by the train stage's `fit_manifests` (split, fit, ONNX
export, parity, reference profile) and scored on the held-out rows by the evaluate stage's
`score` and gate (against no champion, or a given champion ONNX model). Everything lands in
one output directory.

The one module of the CLI that imports stages' own logic (`functions.train.logic`,
`functions.evaluate.logic`): running exactly that code, without the cloud, is its purpose."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pandas as pd

from functions.common.config.loading import MlopsConfig
from functions.common.contracts import EvaluationResult, TrainingRun
from functions.common.layout import (
    EVALUATION_FILE,
    HOLDOUT_FILE,
    METRICS_FILE,
    MODEL_CARD_FILE,
    MODEL_CARD_JSON_FILE,
    MODEL_FILE,
    REFERENCE_PROFILE_FILE,
    RUN_FILE,
    SIGNATURE_FILE,
)
from functions.evaluate.logic import judge
from functions.ml.ingestion import build_manifest, ingest_file
from functions.ml.model_card.document import model_card_document
from functions.ml.model_card.render import render_model_card
from functions.ml.onnx_model import OnnxModel, Signature
from functions.ml.readers.limits import ReadLimits
from functions.ml.schema import contract_from_config
from functions.train.logic import (
    Stopwatch,
    estimator_label,
    fit_manifests,
    library_versions,
    model_factory,
    new_run_id,
    now,
)

CODE_VERSION = "local"


class ChampionNotFoundError(FileNotFoundError):
    """The champion model, or the signature.json that must sit beside it, is missing."""


@dataclass(frozen=True)
class LocalRun:
    out_dir: Path
    run: TrainingRun
    evaluation: EvaluationResult
    durations: dict[str, float]

    def path(self, name: str) -> Path:
        return self.out_dir / name


def load_champion(path: Path) -> OnnxModel:
    """A champion model file with its `signature.json` beside it (a previous train-local
    output directory, or a registered version's files copied locally)."""
    signature_path = path.parent / SIGNATURE_FILE
    if not path.is_file() or not signature_path.is_file():
        raise ChampionNotFoundError(
            f"champion {path} needs the model file and {SIGNATURE_FILE} beside it"
        )
    signature = Signature.from_dict(json.loads(signature_path.read_text(encoding="utf-8")))
    return OnnxModel(path.read_bytes(), signature)


def train_local(
    data: Path,
    out_dir: Path,
    *,
    config: MlopsConfig,
    champion: Path | None = None,
    model_name: str | None = None,
    config_dir: Path | None = None,
) -> LocalRun:
    """Ingest, train and evaluate `data` into `out_dir`, for `model_name` (the default model when
    None). A factory's `[train] code` folder is read relative to `config_dir` (the config
    file's folder; the working directory when None).

    Raises:
        DataRejectedError: the file fails ingestion's validation (the same reason a drop
            would be quarantined with).
        ParityError: scikit-learn and ONNX disagree on held-out rows.
        ChampionNotFoundError: `champion` or its signature is missing.
        ModelCodeError: the factory cannot be loaded or builds no model.
        UnconvertibleStepError: a pipeline step has no ONNX converter.
    """
    started_at, started = now(), time.perf_counter()
    config = config.for_model(model_name)
    code_dir = (config_dir or Path.cwd()) / config.train.code if config.train.code else None
    factory = model_factory(config, code_dir)
    champion_model = load_champion(champion) if champion is not None else None
    stopwatch = Stopwatch()
    dataset = config.dataset
    with TemporaryDirectory(prefix="train-local-") as tmp:
        result = ingest_file(
            data,
            name=data.name,
            dataset=dataset,
            contract=contract_from_config(dataset),
            out_dir=Path(tmp),
            limits=ReadLimits.of(config.ingest),
        )
        frame = pd.read_parquet(result.data_path)
    manifest = build_manifest(
        result,
        dataset=dataset.name,
        source={"file": str(data)},
        curated_prefix="",
        created_at=started_at,
        code_version=CODE_VERSION,
    )
    stopwatch.lap("load", started)
    task, candidate = fit_manifests(
        frame, [manifest], config=config, stopwatch=stopwatch, factory=factory
    )
    lap = time.perf_counter()
    holdout = candidate.split.test
    model = OnnxModel(candidate.onnx_bytes, candidate.signature)
    judged = judge(model, champion_model, holdout, config)
    candidate_eval, champion_eval = judged.candidate, judged.champion
    passed, criteria = judged.passed, judged.criteria
    stopwatch.lap("evaluate", lap)

    run_id = new_run_id()
    run = TrainingRun(
        run_id=run_id,
        model_name=config.model_name,
        task=task.value,
        estimator=estimator_label(config),
        params=candidate.fitted.params,
        data_version=result.data_version,
        data_versions=[result.data_version],
        rows_train=len(candidate.split.train),
        rows_test=len(holdout),
        run_prefix="",
        onnx_key=MODEL_FILE,
        onnx_sha256=hashlib.sha256(candidate.onnx_bytes).hexdigest(),
        holdout_key=HOLDOUT_FILE,
        signature_key=SIGNATURE_FILE,
        reference_profile_key=REFERENCE_PROFILE_FILE,
        run_record_key=RUN_FILE,
        started_at=started_at,
        code_version=CODE_VERSION,
    )
    evaluation = EvaluationResult(
        run_id=run_id,
        metrics=candidate_eval.metrics,
        champion_metrics=champion_eval.metrics if champion_eval else None,
        criteria=criteria,
        passed=passed,
        failed=[c.message for c in criteria if not c.passed],
        evaluation_key=EVALUATION_FILE,
    )
    stopwatch.durations["total"] = round(time.perf_counter() - started, 4)
    record: dict[str, Any] = {
        **run.model_dump(mode="json"),
        "status": "evaluated",
        "source": str(data),
        "finished_at": now(),
        "search": candidate.fitted.search,
        "split": candidate.split.describe(),
        "parity": candidate.parity.to_dict(),
        "durations": stopwatch.durations,
        "library_versions": library_versions(),
        "model_code": factory.describe() if factory else None,
        "cleaning": manifest["cleaning"],
    }
    signature = candidate.signature.to_dict()
    shared: dict[str, Any] = {
        "model_name": config.model_name,
        "version": None,
        "run": record,
        "evaluation": evaluation.model_dump(mode="json"),
        "signature": signature,
        "importance": candidate.reference_profile.get("importance"),
        "insight": judged.insight,
    }
    card = render_model_card(
        **shared,
        candidate_eval=candidate_eval.to_dict(),
        champion_eval=champion_eval.to_dict() if champion_eval else None,
        sensitive=config.dataset.sensitive,
    )
    card_document = model_card_document(**shared, path=str(out_dir), card_key=MODEL_CARD_FILE)

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MODEL_FILE).write_bytes(candidate.onnx_bytes)
    holdout.to_parquet(out_dir / HOLDOUT_FILE, index=False)
    _write_json(out_dir / SIGNATURE_FILE, signature)
    _write_json(out_dir / REFERENCE_PROFILE_FILE, candidate.reference_profile)
    _write_json(out_dir / METRICS_FILE, candidate_eval.metrics)
    _write_json(
        out_dir / EVALUATION_FILE,
        {
            "result": evaluation.model_dump(mode="json"),
            "candidate": candidate_eval.to_dict(),
            "champion": champion_eval.to_dict() if champion_eval else None,
            "insight": judged.insight,
        },
    )
    _write_json(out_dir / RUN_FILE, record)
    (out_dir / MODEL_CARD_FILE).write_text(card, encoding="utf-8")
    _write_json(out_dir / MODEL_CARD_JSON_FILE, card_document)
    return LocalRun(out_dir, run, evaluation, stopwatch.durations)


def _write_json(path: Path, document: Any) -> None:
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
