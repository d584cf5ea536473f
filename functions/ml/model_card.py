"""The model card: one self-contained HTML file per model version, readable offline.

Inline CSS and inline SVG charts only: no scripts, no external URLs, no images to fetch. Every
string that comes from data (names, categories, parameters, messages) goes through
`html.escape`. Needs only the standard library (and `GREATER_IS_BETTER`), so any stage can
render it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from functions.ml.metrics import GREATER_IS_BETTER

MAX_CATEGORIES_SHOWN = 40
_SIGNATURE_HEADERS = ["input", "type", "nullable", "categories seen in training"]
_WIDTH, _HEIGHT, _MARGIN = 360, 300, 44

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
) -> str:
    """The card as an HTML document.

    `run`: the TrainingRun dump, plus optional `split` (Split.describe), `durations`,
    `search`, `parity`. `evaluation`: the EvaluationResult dump. `candidate_eval` and
    `champion_eval`: `Evaluation.to_dict()`. `signature`: `Signature.to_dict()`. `promoted`
    defaults to whether the gate passed; `created_at` to the run's start.
    """
    promoted = bool(evaluation.get("passed")) if promoted is None else promoted
    label = f"{model_name} v{version}" if version is not None else f"{model_name} (unregistered)"
    sections = [
        _header(model_name, version, promoted, created_at or run.get("started_at"), run),
        _metrics(evaluation, candidate_eval, champion_eval),
        _gate(evaluation),
        _confusion(candidate_eval, champion_eval, evaluation.get("champion_version")),
        _curves(candidate_eval, champion_eval),
        _data(run),
        _parameters(run),
        _signature(signature),
        _libraries(signature, run),
    ]
    body = "\n".join(section for section in sections if section)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Model card: {_e(label)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _e(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return _e(value)
    return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.{digits}g}"


def _value(value: Any) -> str:
    """Any JSON value as escaped text a person reads: yes/no, none, numbers with separators,
    lists comma-separated, mappings as `key: value` (one line per key when values nest)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "none"
    if isinstance(value, int | float):
        return _number(value)
    if isinstance(value, Mapping):
        nested = any(isinstance(item, Mapping) for item in value.values())
        items = [f"{_e(key)}: {_value(item)}" for key, item in value.items()]
        return ("<br>" if nested else ", ").join(items) or "&ndash;"
    if isinstance(value, list | tuple):
        return ", ".join(_value(item) for item in value) or "&ndash;"
    return _e(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], css: str = "") -> str:
    """`headers` are plain text (escaped here); cells are HTML already escaped by the caller."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(rows_cell for rows_cell in row) + "</tr>" for row in rows)
    attr = f' class="{css}"' if css else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(html_text: str, css: str = "") -> str:
    return f'<td class="{css}">{html_text}</td>' if css else f"<td>{html_text}</td>"


def _mapping_table(mapping: Mapping[str, Any], key: str = "name", value: str = "value") -> str:
    rows = [[_cell(_e(k)), _cell(_value(v))] for k, v in mapping.items()]
    return _table([key, value], rows)


def _header(
    name: str, version: int | None, promoted: bool, created: Any, run: Mapping[str, Any]
) -> str:
    badge = (
        '<span class="badge pass">promoted</span>'
        if promoted
        else '<span class="badge fail">not promoted</span>'
    )
    shown_version = f"version {_e(version)}" if version is not None else "unregistered candidate"
    facts = {
        "Created": created,
        "Task": run.get("task"),
        "Estimator": run.get("estimator"),
        "Run": run.get("run_id"),
        "Code version": run.get("code_version"),
    }
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts.items() if v is not None)
    return (
        f"<header>\n<h1>{_e(name)} &middot; {shown_version}</h1>\n<p>{badge}</p>\n"
        f"<dl>{items}</dl>\n</header>"
    )


def _metrics(
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
                _cell(f"{_e(metric)}<br><small>{direction}</small>"),
                _cell(_number(value), "num"),
                _cell(_number(base), "num"),
                _cell(delta, f"num {css}".strip()),
            ]
        )
    rows_note = ""
    if candidate_eval.get("rows"):
        rows_note = f"<p>On {_number(candidate_eval['rows'])} held-out rows.</p>"
    notes = "".join(f"<li>{_e(note)}</li>" for note in candidate_eval.get("notes") or [])
    table = _table(["metric", "candidate", champion_title, "delta"], rows)
    notes_html = f"<ul>{notes}</ul>" if notes else ""
    return f'<section id="metrics">\n<h2>Metrics</h2>\n{rows_note}{table}{notes_html}\n</section>'


def _gate(evaluation: Mapping[str, Any]) -> str:
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
                _cell("pass" if ok else "fail", "pass" if ok else "fail"),
                _cell(_e(criterion.get("metric", ""))),
                _cell(_e(criterion.get("kind", ""))),
                _cell(_number(criterion.get("bound")), "num"),
                _cell(_e(criterion.get("message", ""))),
            ]
        )
    table = _table(["result", "metric", "criterion", "bound", "detail"], rows) if rows else ""
    return f'<section id="gate">\n<h2>Gate {verdict}</h2>\n{table}\n</section>'


def _confusion_table(confusion: Mapping[str, Any], title: str) -> str:
    """A heat map: each cell shaded by its count relative to the largest count of the matrix."""
    labels = [str(label) for label in confusion.get("labels", [])]
    matrix = confusion.get("matrix", [])
    largest = max((count for counts in matrix for count in counts), default=0) or 1
    headers = ["true \\ predicted", *labels]
    rows = [
        [f"<th>{_e(label)}</th>", *(_heat_cell(count, largest) for count in counts)]
        for label, counts in zip(labels, matrix, strict=False)
    ]
    return f"<div><h3>{_e(title)}</h3>{_table(headers, rows, 'cm')}</div>"


def _heat_cell(count: Any, largest: float) -> str:
    shade = float(count) / largest if _finite(count) else 0.0
    ink = "#fff" if shade > 0.55 else "#1f2328"
    style = f"background:rgba(9,105,218,{0.9 * shade:.3f});color:{ink}"
    return f'<td class="num" style="{style}">{_number(count)}</td>'


def _confusion(
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


def _curves(candidate_eval: Mapping[str, Any], champion_eval: Mapping[str, Any] | None) -> str:
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
        charts.append(_scatter("Residuals", residuals["predicted"], residuals["residual"]))
    if not charts:
        return ""
    captions = []
    positive = curves.get("positive_class")
    if positive:
        captions.append(f"Positive class: <code>{_e(positive)}</code>.")
    if per_class:
        captions.append("One vs rest: each class's probability against all other classes.")
        total = curves.get("classes_with_curves_of") or len(per_class)
        if total > len(per_class):
            captions.append(
                f"Curves for the {len(per_class)} classes with the most held-out rows, of "
                f"{_number(total)}."
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
        charts.append(_line_chart(f"{title}{suffix}", series, x_label, y_label))
    return champion_drawn


def _scale(low: float, high: float, start: float, end: float) -> Any:
    span = (high - low) or 1.0
    return lambda value: start + (float(value) - low) / span * (end - start)


def _frame(
    title: str,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
) -> str:
    left, top = _MARGIN, 28
    right, bottom = _WIDTH - 12, _HEIGHT - _MARGIN
    sx = _scale(*x_range, left, right)
    sy = _scale(*y_range, bottom, top)
    parts = [f"<title>{_e(title)}</title>"]
    for i in range(5):
        fraction = i / 4
        x_value = x_range[0] + fraction * (x_range[1] - x_range[0])
        y_value = y_range[0] + fraction * (y_range[1] - y_range[0])
        x, y = sx(x_value), sy(y_value)
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}"/>')
        parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle">{x_value:.3g}</text>'
        )
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{y_value:.3g}</text>')
    parts.append(f'<line class="axis" x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}"/>')
    parts.append(f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{bottom}"/>')
    parts.append(f'<text x="{_WIDTH / 2}" y="16" text-anchor="middle">{_e(title)}</text>')
    parts.append(
        f'<text x="{(left + right) / 2}" y="{_HEIGHT - 8}" text-anchor="middle">'
        f"{_e(x_label)}</text>"
    )
    parts.append(
        f'<text x="12" y="{(top + bottom) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 12 {(top + bottom) / 2})">{_e(y_label)}</text>'
    )
    return "".join(parts)


def _svg(content: str, title: str) -> str:
    return (
        f'<svg width="{_WIDTH}" height="{_HEIGHT}" viewBox="0 0 {_WIDTH} {_HEIGHT}" '
        f'role="img" aria-label="{_e(title)}">{content}</svg>'
    )


def _line_chart(
    title: str,
    series: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    x_label: str,
    y_label: str,
) -> str:
    unit = (0.0, 1.0)
    parts = [_frame(title, x_label, y_label, unit, unit)]
    sx = _scale(0.0, 1.0, _MARGIN, _WIDTH - 12)
    sy = _scale(0.0, 1.0, _HEIGHT - _MARGIN, 28)
    if title.startswith("ROC"):
        parts.append(
            f'<line class="chance" x1="{sx(0):.1f}" y1="{sy(0):.1f}" '
            f'x2="{sx(1):.1f}" y2="{sy(1):.1f}"/>'
        )
    for css, xs, ys in reversed(series):
        points = " ".join(
            f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys, strict=False) if _finite(x, y)
        )
        parts.append(f'<polyline class="{css}" points="{points}"/>')
    return _svg("".join(parts), title)


def _scatter(title: str, xs: Sequence[float], ys: Sequence[float]) -> str:
    pairs = [(float(x), float(y)) for x, y in zip(xs, ys, strict=False) if _finite(x, y)]
    if not pairs:
        return ""
    x_range = _padded([x for x, _ in pairs])
    limit = max(abs(y) for _, y in pairs) or 1.0
    y_range = (-limit * 1.05, limit * 1.05)
    parts = [_frame(title, "predicted", "residual (true - predicted)", x_range, y_range)]
    sx = _scale(*x_range, _MARGIN, _WIDTH - 12)
    sy = _scale(*y_range, _HEIGHT - _MARGIN, 28)
    parts.append(
        f'<line class="chance" x1="{_MARGIN}" y1="{sy(0):.1f}" x2="{_WIDTH - 12}" '
        f'y2="{sy(0):.1f}"/>'
    )
    parts.extend(
        f'<circle class="dot" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5"/>' for x, y in pairs
    )
    return _svg("".join(parts), title)


def _padded(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    pad = (high - low) * 0.05 or 1.0
    return low - pad, high + pad


def _finite(*values: Any) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def _data(run: Mapping[str, Any]) -> str:
    facts = {
        "Data version (trigger)": run.get("data_version"),
        "Data versions in the training set": ", ".join(map(str, run.get("data_versions") or [])),
        "Training rows": run.get("rows_train"),
        "Held-out rows": run.get("rows_test"),
    }
    rows = [[_cell(_e(k)), _cell(_value(v))] for k, v in facts.items() if v not in (None, "")]
    split = run.get("split")
    split_html = f"<h3>Split</h3>{_mapping_table(split)}" if isinstance(split, Mapping) else ""
    durations = run.get("durations")
    durations_html = (
        f"<h3>Durations (seconds)</h3>{_mapping_table(durations, 'step', 'seconds')}"
        if isinstance(durations, Mapping)
        else ""
    )
    return (
        f'<section id="data">\n<h2>Data</h2>\n{_table(["", "value"], rows)}{split_html}'
        f"{durations_html}\n</section>"
    )


def _parameters(run: Mapping[str, Any]) -> str:
    params = run.get("params") or {}
    parts = [f"<h2>Parameters</h2>{_mapping_table(params, 'hyperparameter')}"]
    search = run.get("search")
    if isinstance(search, Mapping) and search.get("candidates"):
        metric = str(search.get("metric", "score"))
        rows = [
            [
                _cell(_number(candidate.get("rank"))),
                _cell(_value(candidate.get("params"))),
                _cell(_number(candidate.get("mean_score")), "num"),
                _cell(_number(candidate.get("std_score")), "num"),
            ]
            for candidate in sorted(search["candidates"], key=lambda c: c.get("rank", 0))
        ]
        parts.append(
            f"<h3>Grid search ({_e(search.get('cv_folds'))}-fold cross-validation, "
            f"{_e(metric)})</h3>" + _table(["rank", "parameters", f"mean {metric}", "std"], rows)
        )
    parity = run.get("parity")
    if isinstance(parity, Mapping):
        parts.append(f"<h3>ONNX parity on the held-out rows</h3>{_mapping_table(parity)}")
    return '<section id="parameters">\n' + "".join(parts) + "\n</section>"


def _signature(signature: Mapping[str, Any]) -> str:
    rows = []
    for spec in signature.get("inputs") or []:
        categories = [str(c) for c in spec.get("categories") or []]
        shown = ", ".join(f"<code>{_e(c)}</code>" for c in categories[:MAX_CATEGORIES_SHOWN])
        if len(categories) > MAX_CATEGORIES_SHOWN:
            shown += f" and {len(categories) - MAX_CATEGORIES_SHOWN} more"
        rows.append(
            [
                _cell(f"<code>{_e(spec.get('name', ''))}</code>"),
                _cell(_e(spec.get("type", ""))),
                _cell("yes" if spec.get("nullable") else "no"),
                _cell(shown or "&ndash;"),
            ]
        )
    classes = signature.get("classes")
    classes_html = (
        "<p>Classes (probability order): "
        + ", ".join(f"<code>{_e(c)}</code>" for c in classes)
        + "</p>"
        if classes
        else ""
    )
    target = _e(signature.get("target", ""))
    return (
        f'<section id="signature">\n<h2>Input signature</h2>\n<p>Target: <code>{target}</code>'
        f" ({_e(signature.get('task', ''))}). Categories unseen in training are accepted and "
        "encoded as none of the known ones; missing values are imputed.</p>"
        f"{classes_html}{_table(_SIGNATURE_HEADERS, rows)}"
        "\n</section>"
    )


def _libraries(signature: Mapping[str, Any], run: Mapping[str, Any]) -> str:
    versions = dict(signature.get("library_versions") or run.get("library_versions") or {})
    opset = signature.get("opset")
    if opset:
        versions["ONNX opset"] = ", ".join(f"{k} {v}" for k, v in opset.items())
    if not versions:
        return ""
    return (
        '<section id="libraries">\n<h2>Library versions</h2>\n'
        f"{_mapping_table(versions, 'library', 'version')}\n</section>"
    )
