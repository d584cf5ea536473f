"""The model card as JSON other tools read: the Model Card Toolkit's schema (version 0.0.2,
kept with its license under tests/data/model_card_toolkit/), sections `model_details`,
`model_parameters`, `quantitative_analysis` and `considerations`.

The schema allows no property at its top level beyond those sections and `schema_version`, so
the document carries no `format_version`: its version is `schema_version`. Every value the
schema types as a string is one (metric values included, as the toolkit writes them). The
schema's graphics are base64 PNG images: the card's charts are SVG, so the document has none
and points to the HTML card instead. Slice and group labels are those of the evaluation
document (hashed where the dataset's sensitive columns are), so the JSON shows no raw value
the HTML card hides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.ml.model_card.markup import finite, visible

SCHEMA_VERSION = "0.0.2"
_FAIRNESS = ("demographic_parity_difference", "equalized_odds_difference")


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _metric(kind: str, value: Any, slice_name: str | None = None, **bounds: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": kind, "value": _text(value)}
    if slice_name is not None:
        entry["slice"] = slice_name
    if bounds:
        entry["confidence_interval"] = {k: _text(v) for k, v in bounds.items()}
    return entry


def model_card_document(
    *,
    model_name: str,
    version: int | None,
    path: str | None,
    card_key: str | None,
    run: Mapping[str, Any],
    evaluation: Mapping[str, Any],
    signature: Mapping[str, Any],
    importance: Mapping[str, Any] | None = None,
    insight: Mapping[str, Any] | None = None,
    created_at: str | None = None,
) -> dict[str, Any]:
    """The Model Card Toolkit document of one model version (inputs as `render_model_card`'s;
    `path`: where the version's files are, `card_key`: the HTML card's key)."""
    candidate = (insight or {}).get("candidate") or {}
    return {
        "schema_version": SCHEMA_VERSION,
        "model_details": _details(model_name, version, run, evaluation, created_at, path, card_key),
        "model_parameters": _parameters(run, signature),
        "quantitative_analysis": {
            "performance_metrics": [
                *_overall(evaluation),
                *_importances(importance),
                *_slices(candidate),
                *_fairness(candidate),
                *_calibration(candidate),
            ]
        },
        "considerations": _considerations(evaluation, candidate),
    }


def _details(
    name: str,
    version: int | None,
    run: Mapping[str, Any],
    evaluation: Mapping[str, Any],
    created_at: str | None,
    path: str | None,
    card_key: str | None,
) -> dict[str, Any]:
    task, estimator = run.get("task", "model"), run.get("estimator", "estimator")
    champion = evaluation.get("champion_version")
    verdict = "passed" if evaluation.get("passed") else "failed"
    against = f"champion version {champion}" if champion is not None else "no champion"
    details: dict[str, Any] = {
        "name": name,
        "overview": f"{task} model ({estimator}) trained by run {run.get('run_id', '?')}.",
        "documentation": (
            f"The promotion gate {verdict} against {against}. The HTML model card"
            + (f" ({card_key})" if card_key else "")
            + " draws the curves, importances, slices, fairness and calibration."
        ),
    }
    version_info: dict[str, Any] = {"name": str(version) if version is not None else "candidate"}
    date = str(created_at or run.get("started_at") or "")[:10]
    if len(date) == 10:
        version_info["date"] = date
    if champion is not None:
        version_info["diff"] = f"compared against version {champion}: " + ", ".join(
            f"{metric} {_text(value)} vs {_text(base)}"
            for metric, value in (evaluation.get("metrics") or {}).items()
            if finite(value, base := (evaluation.get("champion_metrics") or {}).get(metric))
        )
    details["version"] = version_info
    if path:
        details["path"] = path
    return details


def _parameters(run: Mapping[str, Any], signature: Mapping[str, Any]) -> dict[str, Any]:
    params = run.get("params") or {}
    inputs = [spec for spec in signature.get("inputs") or [] if isinstance(spec, Mapping)]
    classes = signature.get("classes")
    versions = ", ".join(str(v) for v in run.get("data_versions") or [])
    return {
        "model_architecture": f"{run.get('estimator', 'estimator')} "
        + ", ".join(f"{k}={v}" for k, v in params.items()),
        "data": [
            {
                "name": "training",
                "description": f"{run.get('rows_train', '?')} rows of data versions "
                f"{versions or run.get('data_version', '?')}",
            },
            {"name": "held-out", "description": f"{run.get('rows_test', '?')} rows"},
        ],
        "input_format": "one row per prediction: "
        + ", ".join(f"{spec.get('name')} ({spec.get('type')})" for spec in inputs),
        "input_format_map": [
            {"key": str(spec.get("name")), "value": str(spec.get("type"))} for spec in inputs
        ],
        "output_format": (
            f"the predicted class of {', '.join(map(str, classes))} and its probabilities"
            if classes
            else f"a number: the predicted {signature.get('target', 'target')}"
        ),
    }


def _overall(evaluation: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        _metric(metric, value)
        for metric, value in (evaluation.get("metrics") or {}).items()
        if finite(value)
    ]


def _importances(importance: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not importance:
        return []
    metric = importance.get("metric", "metric")
    spreads = importance.get("std") or {}
    found = []
    for name, mean in (importance.get("features") or {}).items():
        if not finite(mean):
            continue
        spread = spreads.get(name)
        bounds = (
            {"lower_bound": mean - spread, "upper_bound": mean + spread} if finite(spread) else {}
        )
        found.append(
            _metric(f"permutation importance ({metric} loss)", mean, f"feature {name}", **bounds)
        )
    return found


def _slices(insight: Mapping[str, Any]) -> list[dict[str, Any]]:
    metric = str(insight.get("metric", "metric"))
    return [
        _metric(metric, row["value"], f"{row.get('feature')} = {row.get('slice')}")
        for row in _slice_rows(insight)[0]
        if finite(row.get("value"))
    ]


def _slice_rows(insight: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], int]:
    """The slices shown (none below the minimum rows) and how many are suppressed."""
    slices = insight.get("slices") or {}
    rows, hidden = visible(slices.get("rows"), slices.get("min_rows"))
    return rows, (slices.get("suppressed") or 0) + hidden


def _fairness(insight: Mapping[str, Any]) -> list[dict[str, Any]]:
    attributes = (insight.get("fairness") or {}).get("attributes") or {}
    return [
        _metric(key, found[key], f"attribute {name}")
        for name, found in attributes.items()
        for key in _FAIRNESS
        if finite(found.get(key))
    ]


def _calibration(insight: Mapping[str, Any]) -> list[dict[str, Any]]:
    brier = (insight.get("calibration") or {}).get("brier")
    return [_metric("brier_score", brier)] if finite(brier) else []


def _considerations(evaluation: Mapping[str, Any], insight: Mapping[str, Any]) -> dict[str, Any]:
    limitations = []
    slices = insight.get("slices") or {}
    metric = insight.get("metric", "metric")
    rows, suppressed = _slice_rows(insight)
    for row in rows[:5]:
        value, overall = row.get("value"), row.get("overall")
        if finite(value, overall) and value != overall:
            note = " (a small slice)" if row.get("flag") == "small" else ""
            limitations.append(
                {
                    "description": f"{metric} on {row.get('feature')} = {row.get('slice')} is "
                    f"{_text(value)} against {_text(overall)} overall{note}."
                }
            )
    if suppressed:
        limitations.append(
            {
                "description": f"{suppressed} slices with fewer than "
                f"{slices.get('min_rows')} rows are not reported."
            }
        )
    fairness_gate = [
        c
        for c in evaluation.get("criteria") or []
        if "fairness" in str(c.get("kind", ""))
        or any(word in str(c.get("metric", "")) for word in ("parity", "odds"))
    ]
    mitigation = (
        "; ".join(str(c.get("message", "")) for c in fairness_gate)
        or "no fairness criterion in the promotion gate"
    )
    risks = [
        {
            "name": f"{name}: demographic parity difference "
            f"{_text(found.get('demographic_parity_difference'))}, equalized odds difference "
            f"{_text(found.get('equalized_odds_difference'))}",
            "mitigation_strategy": mitigation,
        }
        for name, found in ((insight.get("fairness") or {}).get("attributes") or {}).items()
    ]
    tradeoffs = []
    scored = [p for p in insight.get("thresholds") or [] if finite(p.get("f1"), p.get("threshold"))]
    if scored:
        best = max(scored, key=lambda p: p["f1"])
        tradeoffs.append(
            {
                "description": f"At threshold {_text(best['threshold'])} F1 is highest "
                f"({_text(best['f1'])}: precision {_text(best.get('precision'))}, recall "
                f"{_text(best.get('recall'))}); a lower threshold trades precision for recall."
            }
        )
    considerations: dict[str, Any] = {}
    for key, value in (
        ("limitations", limitations),
        ("tradeoffs", tradeoffs),
        ("ethical_considerations", risks),
    ):
        if value:
            considerations[key] = value
    return considerations
