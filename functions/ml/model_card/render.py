"""The model card as one HTML document: its sections (`sections`, `insight`) under one inline
style."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.ml.model_card.insight import (
    calibration_section,
    fairness_section,
    importance_section,
    slices_section,
    thresholds_section,
)
from functions.ml.model_card.markup import esc
from functions.ml.model_card.sections import (
    confusion_section,
    curves_section,
    data_section,
    gate_section,
    header_section,
    libraries_section,
    metrics_section,
    parameters_section,
    signature_section,
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1f2328;
background:#f6f8fa}
main{max-width:980px;margin:0 auto;padding:24px}
section,header{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px 20px;
margin-bottom:16px}
h1{margin:0 0 8px;font-size:1.6em}h2{margin:0 0 12px;font-size:1.2em}
table{border-collapse:collapse;margin:4px 0 8px}
th,td{border:1px solid #d0d7de;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600}
.pass,.better{color:#1a7f37}.fail,.worse{color:#cf222e}
.badge.pass{background:#dafbe1}.badge.fail{background:#ffebe9}
dl{display:grid;grid-template-columns:max-content auto;gap:4px 16px;margin:0}
dt{font-weight:600}dd{margin:0}
.charts{display:flex;flex-wrap:wrap;gap:16px}
svg{background:#fff;border:1px solid #d0d7de;border-radius:4px}
svg text{font-size:11px;fill:#57606a}
.axis{stroke:#57606a;stroke-width:1}.grid{stroke:#eaeef2;stroke-width:1}
.chance{stroke:#8c959f;stroke-dasharray:4 4}
.candidate{stroke:#0969da;fill:none;stroke-width:2}
.champion{stroke:#8c959f;fill:none;stroke-width:1.5;stroke-dasharray:6 3}
.dot{fill:#0969da;fill-opacity:.55}
.cm td{min-width:48px}
.bar.candidate{fill:#0969da;stroke:none}.bar.champion{fill:#8c959f;stroke:none}
.whisker{stroke:#1f2328;stroke-width:1.5}
.marker{stroke-dasharray:none}.marker.candidate{fill:#0969da}.marker.champion{fill:#8c959f}
.s-precision{stroke:#0969da;fill:none;stroke-width:2}
.s-recall{stroke:#bc4c00;fill:none;stroke-width:2}
.s-f1{stroke:#1a7f37;fill:none;stroke-width:2}
.key{display:inline-block;width:18px;margin:0 4px 3px 6px;border-top:3px solid;
vertical-align:middle}
span.s-precision{border-color:#0969da}span.s-recall{border-color:#bc4c00}
span.s-f1{border-color:#1a7f37}
.legend{white-space:nowrap}.flag{color:#9a6700;font-weight:600}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.92em}
"""


def render_model_card(
    *,
    model_name: str,
    version: int | None,
    run: Mapping[str, Any],
    evaluation: Mapping[str, Any],
    candidate_eval: Mapping[str, Any],
    champion_eval: Mapping[str, Any] | None,
    signature: Mapping[str, Any],
    promoted: bool | None = None,
    created_at: str | None = None,
    importance: Mapping[str, Any] | None = None,
    champion_importance: Mapping[str, Any] | None = None,
    insight: Mapping[str, Any] | None = None,
    sensitive: Mapping[str, str] | None = None,
) -> str:
    """The card as an HTML document.

    `run`: the TrainingRun dump, plus optional `split` (Split.describe), `durations`,
    `search`, `parity`. `evaluation`: the EvaluationResult dump. `candidate_eval` and
    `champion_eval`: `Evaluation.to_dict()`. `signature`: `Signature.to_dict()`. `promoted`
    defaults to whether the gate passed; `created_at` to the run's start. `importance` and
    `champion_importance`: the permutation importances stored in the candidate's and the
    champion's reference profiles. `insight`: the evaluation document's `insight` (slices,
    fairness, calibration, thresholds of the candidate and the champion). Each insight
    section is left out when its data is absent. `sensitive`: `[dataset] sensitive` (column
    -> hash | drop): the signature lists no category of those columns.
    """
    promoted = bool(evaluation.get("passed")) if promoted is None else promoted
    champion_version = evaluation.get("champion_version")
    label = f"{model_name} v{version}" if version is not None else f"{model_name} (unregistered)"
    sections = [
        header_section(model_name, version, promoted, created_at or run.get("started_at"), run),
        metrics_section(evaluation, candidate_eval, champion_eval),
        gate_section(evaluation),
        confusion_section(candidate_eval, champion_eval, champion_version),
        curves_section(candidate_eval, champion_eval),
        importance_section(importance, champion_importance, champion_version),
        slices_section(insight, champion_version),
        fairness_section(insight, champion_version, signature.get("classes")),
        calibration_section(insight, champion_version),
        thresholds_section(insight),
        data_section(run),
        parameters_section(run),
        signature_section(signature, sensitive),
        libraries_section(signature, run),
    ]
    body = "\n".join(section for section in sections if section)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Model card: {esc(label)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
