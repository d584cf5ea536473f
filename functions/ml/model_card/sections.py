"""The card's sections, one function each: header, metrics, gate, confusion matrix, curves,
data, parameters, input signature, library versions (an empty string when a section has
nothing to show)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from functions.ml.metrics import GREATER_IS_BETTER
from functions.ml.model_card.charts import line_chart, scatter
from functions.ml.model_card.markup import (
    esc,
    finite,
    fmt_number,
    fmt_value,
    html_table,
    mapping_table,
    td,
)

MAX_CATEGORIES_SHOWN = 40
_SIGNATURE_HEADERS = ["input", "type", "nullable", "categories seen in training"]


def header_section(
    name: str, version: int | None, promoted: bool, created: Any, run: Mapping[str, Any]
) -> str:
    # An unregistered candidate (`mlops train-local`) is never promoted: its badge is the gate's.
    passed, failed = (
        ("promoted", "not promoted") if version is not None else ("gate passed", "gate failed")
    )
    badge = (
        f'<span class="badge pass">{passed}</span>'
        if promoted
        else f'<span class="badge fail">{failed}</span>'
    )
    shown_version = f"version {esc(version)}" if version is not None else "unregistered candidate"
    facts = {
        "Created": created,
        "Task": run.get("task"),
        "Estimator": run.get("estimator"),
        "Run": run.get("run_id"),
        "Code version": run.get("code_version"),
    }
    items = "".join(
        f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts.items() if v is not None
    )
    return (
        f"<header>\n<h1>{esc(name)} &middot; {shown_version}</h1>\n<p>{badge}</p>\n"
        f"<dl>{items}</dl>\n</header>"
    )


def metrics_section(
    evaluation: Mapping[str, Any],
    candidate_eval: Mapping[str, Any],
    champion_eval: Mapping[str, Any] | None,
) -> str:
    candidate = dict(candidate_eval.get("metrics") or evaluation.get("metrics") or {})
    champion = dict(
        evaluation.get("champion_metrics") or (champion_eval or {}).get("metrics") or {}
    )
    champion_version = evaluation.get("champion_version")
    champion_title = f"champion v{champion_version}" if champion_version is not None else "champion"
    rows = []
    for metric, value in candidate.items():
        base = champion.get(metric)
        delta, css = "&ndash;", ""
        if isinstance(value, int | float) and isinstance(base, int | float):
            difference = value - base
            delta = f"{difference:+.4f}"
            greater = GREATER_IS_BETTER.get(metric)
            if greater is not None and difference:
                css = "better" if (difference > 0) == greater else "worse"
        greater = GREATER_IS_BETTER.get(metric)
        direction = "" if greater is None else ("higher" if greater else "lower") + " is better"
        rows.append(
            [
                td(f"{esc(metric)}<br><small>{direction}</small>"),
                td(fmt_number(value), "num"),
                td(fmt_number(base), "num"),
                td(delta, f"num {css}".strip()),
            ]
        )
    rows_note = ""
    if candidate_eval.get("rows"):
        rows_note = f"<p>On {fmt_number(candidate_eval['rows'])} held-out rows.</p>"
    notes = "".join(f"<li>{esc(note)}</li>" for note in candidate_eval.get("notes") or [])
    table = html_table(["metric", "candidate", champion_title, "delta"], rows)
    notes_html = f"<ul>{notes}</ul>" if notes else ""
    return f'<section id="metrics">\n<h2>Metrics</h2>\n{rows_note}{table}{notes_html}\n</section>'


def gate_section(evaluation: Mapping[str, Any]) -> str:
    criteria = evaluation.get("criteria") or []
    verdict = (
        '<span class="badge pass">passed</span>'
        if evaluation.get("passed")
        else '<span class="badge fail">failed</span>'
    )
    rows = []
    for criterion in criteria:
        ok = bool(criterion.get("passed"))
        rows.append(
            [
                td("pass" if ok else "fail", "pass" if ok else "fail"),
                td(esc(criterion.get("metric", ""))),
                td(esc(criterion.get("kind", ""))),
                td(fmt_number(criterion.get("bound")), "num"),
                td(esc(criterion.get("message", ""))),
            ]
        )
    table = html_table(["result", "metric", "criterion", "bound", "detail"], rows) if rows else ""
    return f'<section id="gate">\n<h2>Gate {verdict}</h2>\n{table}\n</section>'


def _confusion_table(confusion: Mapping[str, Any], title: str) -> str:
    """A heat map: each cell shaded by its count relative to the largest count of the matrix."""
    labels = [str(label) for label in confusion.get("labels", [])]
    matrix = confusion.get("matrix", [])
    largest = max((count for counts in matrix for count in counts), default=0) or 1
    headers = ["true \\ predicted", *labels]
    rows = [
        [f"<th>{esc(label)}</th>", *(_heat_cell(count, largest) for count in counts)]
        for label, counts in zip(labels, matrix, strict=False)
    ]
    return f"<div><h3>{esc(title)}</h3>{html_table(headers, rows, 'cm')}</div>"


def _heat_cell(count: Any, largest: float) -> str:
    shade = float(count) / largest if finite(count) else 0.0
    ink = "#fff" if shade > 0.55 else "#1f2328"
    style = f"background:rgba(9,105,218,{0.9 * shade:.3f});color:{ink}"
    return f'<td class="num" style="{style}">{fmt_number(count)}</td>'


def confusion_section(
    candidate_eval: Mapping[str, Any],
    champion_eval: Mapping[str, Any] | None,
    champion_version: Any,
) -> str:
    tables = []
    if candidate_eval.get("confusion_matrix"):
        tables.append(_confusion_table(candidate_eval["confusion_matrix"], "candidate"))
    if champion_eval and champion_eval.get("confusion_matrix"):
        title = f"champion v{champion_version}" if champion_version is not None else "champion"
        tables.append(_confusion_table(champion_eval["confusion_matrix"], title))
    if not tables:
        return ""
    return (
        '<section id="confusion">\n<h2>Confusion matrix</h2>\n'
        f'<div class="charts">{"".join(tables)}</div>\n</section>'
    )


def curves_section(
    candidate_eval: Mapping[str, Any], champion_eval: Mapping[str, Any] | None
) -> str:
    """ROC and PR charts (binary: of the positive class; multiclass: one-vs-rest per class),
    the champion's curve beside the candidate's where it has one; residuals for regression.
    The legend names only the series drawn."""
    curves = candidate_eval.get("curves") or {}
    other = (champion_eval or {}).get("curves") or {}
    charts: list[str] = []
    champion_drawn = _roc_and_pr(charts, "", curves, other)
    theirs = {str(entry.get("class")): entry for entry in other.get("per_class") or []}
    per_class = curves.get("per_class") or []
    for entry in per_class:
        label = str(entry.get("class"))
        drawn = _roc_and_pr(charts, f": {label} vs rest", entry, theirs.get(label) or {})
        champion_drawn = drawn or champion_drawn
    if "residuals" in curves:
        residuals = curves["residuals"]
        charts.append(scatter("Residuals", residuals["predicted"], residuals["residual"]))
    if not charts:
        return ""
    captions = []
    positive = curves.get("positive_class")
    if positive:
        captions.append(f"Positive class: <code>{esc(positive)}</code>.")
    if per_class:
        captions.append("One vs rest: each class's probability against all other classes.")
        total = curves.get("classes_with_curves_of") or len(per_class)
        if total > len(per_class):
            captions.append(
                f"Curves for the {len(per_class)} classes with the most held-out rows, of "
                f"{fmt_number(total)}."
            )
    if champion_drawn:
        captions.append("Solid: candidate; dashed: champion.")
    caption = "".join(f"<p>{text}</p>" for text in captions)
    return (
        f'<section id="curves">\n<h2>Curves</h2>\n{caption}'
        f'<div class="charts">{"".join(charts)}</div>\n</section>'
    )


def _roc_and_pr(
    charts: list[str], suffix: str, mine: Mapping[str, Any], theirs: Mapping[str, Any]
) -> bool:
    """Append the ROC and PR charts of `mine` (with `theirs` as the champion's series where
    present) to `charts`; whether a champion series was drawn."""
    champion_drawn = False
    for key, title, (x, x_label), (y, y_label) in (
        ("roc", "ROC curve", ("fpr", "false positive rate"), ("tpr", "true positive rate")),
        ("pr", "Precision-recall curve", ("recall", "recall"), ("precision", "precision")),
    ):
        if key not in mine:
            continue
        series = [("candidate", mine[key][x], mine[key][y])]
        if key in theirs:
            series.append(("champion", theirs[key][x], theirs[key][y]))
            champion_drawn = True
        charts.append(
            line_chart(f"{title}{suffix}", series, x_label, y_label, diagonal=key == "roc")
        )
    return champion_drawn


def data_section(run: Mapping[str, Any]) -> str:
    facts = {
        "Data version (trigger)": run.get("data_version"),
        "Data versions in the training set": ", ".join(map(str, run.get("data_versions") or [])),
        "Training rows": run.get("rows_train"),
        "Held-out rows": run.get("rows_test"),
    }
    rows = [[td(esc(k)), td(fmt_value(v))] for k, v in facts.items() if v not in (None, "")]
    split = run.get("split")
    split_html = f"<h3>Split</h3>{mapping_table(split)}" if isinstance(split, Mapping) else ""
    durations = run.get("durations")
    durations_html = (
        f"<h3>Durations (seconds)</h3>{mapping_table(durations, 'step', 'seconds')}"
        if isinstance(durations, Mapping)
        else ""
    )
    return (
        f'<section id="data">\n<h2>Data</h2>\n{html_table(["", "value"], rows)}{split_html}'
        f"{durations_html}\n</section>"
    )


def parameters_section(run: Mapping[str, Any]) -> str:
    params = run.get("params") or {}
    parts = [f"<h2>Parameters</h2>{mapping_table(params, 'hyperparameter')}"]
    search = run.get("search")
    if isinstance(search, Mapping) and search.get("candidates"):
        metric = str(search.get("metric", "score"))
        rows = [
            [
                td(fmt_number(candidate.get("rank"))),
                td(fmt_value(candidate.get("params"))),
                td(fmt_number(candidate.get("mean_score")), "num"),
                td(fmt_number(candidate.get("std_score")), "num"),
            ]
            for candidate in sorted(search["candidates"], key=lambda c: c.get("rank", 0))
        ]
        parts.append(
            f"<h3>Grid search ({esc(search.get('cv_folds'))}-fold cross-validation, "
            f"{esc(metric)})</h3>"
            + html_table(["rank", "parameters", f"mean {metric}", "std"], rows)
        )
    parity = run.get("parity")
    if isinstance(parity, Mapping):
        parts.append(f"<h3>ONNX parity on the held-out rows</h3>{mapping_table(parity)}")
    return '<section id="parameters">\n' + "".join(parts) + "\n</section>"


def signature_section(
    signature: Mapping[str, Any], sensitive: Mapping[str, str] | None = None
) -> str:
    """The model's inputs; a `[dataset] sensitive` column's categories are counted, never
    listed (the card is read by people the raw values are kept from)."""
    rows = []
    for spec in signature.get("inputs") or []:
        categories = [str(c) for c in spec.get("categories") or []]
        mode = (sensitive or {}).get(str(spec.get("name")))
        if mode is not None and categories:
            shown = f"{len(categories)} (not shown: <code>[dataset] sensitive</code> {esc(mode)})"
        else:
            shown = ", ".join(f"<code>{esc(c)}</code>" for c in categories[:MAX_CATEGORIES_SHOWN])
        if mode is None and len(categories) > MAX_CATEGORIES_SHOWN:
            shown += f" and {len(categories) - MAX_CATEGORIES_SHOWN} more"
        rows.append(
            [
                td(f"<code>{esc(spec.get('name', ''))}</code>"),
                td(esc(spec.get("type", ""))),
                td("yes" if spec.get("nullable") else "no"),
                td(shown or "&ndash;"),
            ]
        )
    classes = signature.get("classes")
    classes_html = (
        "<p>Classes (probability order): "
        + ", ".join(f"<code>{esc(c)}</code>" for c in classes)
        + "</p>"
        if classes
        else ""
    )
    target = esc(signature.get("target", ""))
    return (
        f'<section id="signature">\n<h2>Input signature</h2>\n<p>Target: <code>{target}</code>'
        f" ({esc(signature.get('task', ''))}). Categories unseen in training are accepted and "
        "encoded as none of the known ones; missing values are imputed.</p>"
        f"{classes_html}{html_table(_SIGNATURE_HEADERS, rows)}"
        "\n</section>"
    )


def libraries_section(signature: Mapping[str, Any], run: Mapping[str, Any]) -> str:
    versions = dict(signature.get("library_versions") or run.get("library_versions") or {})
    opset = signature.get("opset")
    if opset:
        versions["ONNX opset"] = ", ".join(f"{k} {v}" for k, v in opset.items())
    if not versions:
        return ""
    return (
        '<section id="libraries">\n<h2>Library versions</h2>\n'
        f"{mapping_table(versions, 'library', 'version')}\n</section>"
    )
