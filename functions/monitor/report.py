"""The drift check's HTML report: one self-contained page (inline CSS and SVG, no scripts, no
external resources) from the check's result document (`result.json`).

Everything taken from the document is escaped: feature names and category labels are user data.
Standard library only, so the monitoring function pays nothing for it at cold start.

A feature's `histogram` (absent in older results) is drawn as reference vs current shares:
numeric `{"edges", "reference", "current", "below", "above"}` with bins labelled by edge range,
categorical `{"labels", "reference", "current"}`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from functions.ml.drift.presentation import SEVERITY_RANK, STATISTICS, ranked_features

MAX_BARS = 40
_CHART_HEIGHT = 120
_BAR_WIDTH = 12
_GROUP_WIDTH = 2 * _BAR_WIDTH + 10
_LEFT = 56
_LABEL_ANGLE = 40
_WIDE_GLYPHS = frozenset("MWmw@%")
MAX_LABEL_CHARS = 80
"""Bin labels up to this long are drawn whole; longer ones are shortened, whole in a tooltip."""
_FILL = {"reference": "#8c959f", "current": "#0969da"}
_BADGES = {
    *SEVERITY_RANK,
    "drift",
    "no_drift",
    "insufficient_data",
    "ok",
    "drop",
    "unavailable",
}

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1200px;
padding:1.5rem;color:#1f2328}
h1{font-size:1.5rem;margin:0 0 .5rem}h2{font-size:1.2rem;margin:2rem 0 .5rem}
h3{font-size:1rem;margin:0 0 .25rem}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem;margin:.5rem 0}
dl.facts dt{font-weight:600}dl.facts dd{margin:0}
table{border-collapse:collapse;margin:.5rem 0;font-size:13px}
th,td{border-bottom:1px solid #d0d7de;padding:.25rem .5rem;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;border-radius:1em;padding:.05rem .6rem;font-weight:600;color:#fff}
.drift,.major,.drop{background:#cf222e}.minor{background:#bf8700}
.no_drift,.ok,.none{background:#1a7f37}.insufficient_data,.unavailable{background:#6e7781}
.charts{display:flex;flex-wrap:wrap;gap:1rem}
figure{margin:0;border:1px solid #d0d7de;border-radius:6px;padding:.5rem}
figcaption{font-size:12px;color:#57606a}
svg text{font-size:10px;fill:#57606a}
ul.notes{margin:.25rem 0;color:#57606a}
"""


def render_html(result: Mapping[str, Any]) -> str:
    """The report page of one drift check (`result.json` as a mapping)."""
    model = _text(result.get("model_name"))
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Drift check {model} {_text(result.get('check_id'))}</title>",
        f"<style>{_CSS}</style></head><body>",
        _header(result),
        _performance(result.get("performance")),
        _estimate(result.get("estimate")),
    ]
    versions = result.get("versions") or []
    if not versions:
        parts.append("<h2>Data drift</h2><p>No model version served traffic in the window.</p>")
    for version in versions:
        parts.append(_version_section(version))
    parts.append("</body></html>")
    return "\n".join(parts)


def _header(result: Mapping[str, Any]) -> str:
    window = result.get("window") or {}
    verdict = result.get("verdict")
    facts = [
        ("check", _text(result.get("check_id"))),
        ("checked at", _text(result.get("checked_at"))),
        ("window", f"{_text(window.get('start'))} to {_text(window.get('end'))}"),
        ("rows", f"{_count(window.get('rows'))} in {_count(window.get('objects'))} object(s)"),
        ("retrain", _retrain(result.get("retrain"))),
    ]
    return (
        f"<header><h1>Drift check of {_text(result.get('model_name'))} "
        f"{_badge(verdict)}</h1>{_facts(facts)}</header>"
    )


def _retrain(retrain: Mapping[str, Any] | None) -> str:
    if not retrain:
        return "not decided"
    feedback = f"{_count(retrain.get('feedback_rows'))} feedback row(s)"
    if retrain.get("note"):
        feedback += f" ({_text(retrain['note'])})"
    if retrain.get("requested"):
        text = f"requested: {_text(retrain.get('reason'))}"
        if retrain.get("execution"):
            text += f" (execution {_text(retrain['execution'])})"
        return f"{text}; {feedback}"
    if retrain.get("skipped"):
        return f"not requested: {_text(retrain['skipped'])}; {feedback}"
    return f"not requested; {feedback}"


def _performance(performance: Mapping[str, Any] | None) -> str:
    title = "<h2>Live performance</h2>"
    if not performance:
        return f"{title}<p>Not measured: no labelled feedback joined to the window.</p>"
    metrics = performance.get("metrics") or {}
    names = [*metrics, *(n for n in performance.get("reference") or {} if n not in metrics)]
    table = _metric_table(performance, names, "live", {})
    served = performance.get("model_version")
    of_version = f" of model version {_text(served)}" if served is not None else ""
    summary = (
        f"<p>{_badge(performance.get('verdict'))} on {_count(performance.get('rows'))} "
        f"labelled row(s){of_version}</p>"
    )
    return title + summary + table + _notes(performance.get("notes"))


def _metric_table(
    measured: Mapping[str, Any],
    names: Sequence[str],
    heading: str,
    extra: Mapping[str, Mapping[str, Any]],
) -> str:
    """Metrics against their reference and the change, a drop flagged; `extra` columns
    (heading -> values by metric) after them. Empty without metrics."""
    metrics = measured.get("metrics") or {}
    reference = measured.get("reference") or {}
    changes = measured.get("changes") or {}
    dropped = set(measured.get("dropped") or [])
    rows = []
    for name in names:
        flag = _badge("drop") if name in dropped else ""
        cells = "".join(
            _num_cell(values.get(name), signed=column.startswith("estimate"))
            for column, values in extra.items()
        )
        rows.append(
            f"<tr><td>{_text(name)} {flag}</td>{_num_cell(metrics.get(name))}"
            f"{_num_cell(reference.get(name))}{_num_cell(changes.get(name), signed=True)}"
            f"{cells}</tr>"
        )
    if not rows:
        return ""
    head = "".join(f"<th>{column}</th>" for column in extra)
    return (
        f"<table><thead><tr><th>metric</th><th>{heading}</th><th>reference</th><th>change</th>"
        f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _estimate(estimate: Mapping[str, Any] | None) -> str:
    """The label-free estimate of the version that served most rows, beside the realized
    metrics once feedback labelled its rows (absent in results before estimates)."""
    title = "<h2>Estimated performance (without labels)</h2>"
    if not estimate:
        return f"{title}<p>Not estimated: no model version served traffic in the window.</p>"
    realized = (estimate.get("realized") or {}).get("metrics") or {}
    table = _metric_table(
        estimate,
        list(estimate.get("metrics") or {}),
        "estimated",
        {"realized (labels)": realized, "estimate &minus; realized": estimate.get("errors") or {}},
    )
    served = estimate.get("model_version")
    of_version = f" of model version {_text(served)}" if served is not None else ""
    summary = (
        f"<p>{_badge(estimate.get('verdict'))} on {_count(estimate.get('rows'))} row(s)"
        f"{of_version}, confidence-based ({_text(estimate.get('method'))}): the expected "
        "confusion matrix of the calibrated probabilities of the captured predictions</p>"
    )
    return title + summary + table + _notes(estimate.get("notes"))


def _version_section(version: Mapping[str, Any]) -> str:
    report = version.get("report")
    if not report:
        why = version.get("note") or "no drift report"
        return (
            f"<section><h2>Model version {_text(version.get('model_version'))}</h2>"
            f"<p>{_count(version.get('rows'))} row(s), not compared: {_text(why)}</p></section>"
        )
    features = ranked_features(report)
    drifted = report.get("drifted") or []
    judged = [f for f in features if f.get("kind") != "skipped"]
    head = (
        f"<h2>Model version {_text(version.get('model_version'))} "
        f"{_badge(report.get('verdict'))}</h2>"
        f"<p>{_count(version.get('rows'))} row(s); {len(drifted)} of {len(judged)} feature(s) "
        f"drifted; judged by {_text(report.get('method'))}</p>"
    )
    if report.get("decision"):
        head += f'<p class="decision"><strong>Decision:</strong> {_text(report["decision"])}</p>'
    quality = report.get("data_quality") or []
    if quality:
        head += f"<p>Data-quality breaks: {_text(', '.join(map(str, quality)))}</p>"
    parts = [head, _notes(report.get("notes"))]
    skipped = report.get("skipped") or []
    if skipped:
        parts.append(f"<p>Not compared (sensitive): {_text(', '.join(map(str, skipped)))}</p>")
    prediction = report.get("prediction")
    rows = [*features, *([prediction] if prediction else [])]
    if rows:
        parts.append(_feature_table(rows, prediction))
        charts = [_chart_figure(f) for f in rows if f.get("histogram")]
        if charts:
            parts.append(f'<div class="charts">{"".join(charts)}</div>')
    return "<section>" + "".join(parts) + "</section>"


def _feature_table(features: Sequence[Mapping[str, Any]], prediction: Any) -> str:
    head = "".join(
        f"<th>{label}</th>"
        for label in (
            "feature",
            "kind",
            "severity",
            "data quality",
            "score",
            *(s[1] for s in STATISTICS),
        )
    )
    rows = []
    for feature in features:
        statistics = feature.get("statistics") or {}
        name = _text(feature.get("name"))
        if feature is prediction:
            name = f"<em>{name}</em> (prediction drift)"
        cells = [
            f"<td>{name}</td>",
            f"<td>{_text(feature.get('kind'))}</td>",
            f"<td>{_badge(feature.get('severity'))}</td>",
            f"<td>{_quality(feature)}</td>",
            _num_cell(feature.get("score")),
            *(_num_cell(statistics.get(key)) for key, _ in STATISTICS),
            f"<td>{_p_values(feature.get('p_values'))}</td>",
            f"<td>{_text('; '.join(map(str, feature.get('notes') or [])))}</td>",
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f"<table><thead><tr>{head}<th>p-values</th><th>notes</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _quality(feature: Mapping[str, Any]) -> str:
    """The feature's data-quality severity and what broke ("-" in results before it existed)."""
    if "quality" not in feature:
        return "-"
    breaks = feature.get("quality_breaks") or []
    detail = f" {_text('; '.join(map(str, breaks)))}" if breaks else ""
    return f"{_badge(feature.get('quality'))}{detail}"


def _p_values(p_values: Mapping[str, Any] | None) -> str:
    if not p_values:
        return ""
    return ", ".join(f"{_text(test)} {_number(value, '.3g')}" for test, value in p_values.items())


def _chart_figure(feature: Mapping[str, Any]) -> str:
    histogram = feature["histogram"]
    labels, reference, current = _bins(histogram)
    caption = [
        f'<span style="color:{_FILL["reference"]}">&#9632;</span> reference '
        f'<span style="color:{_FILL["current"]}">&#9632;</span> current'
    ]
    below, above = int(histogram.get("below") or 0), int(histogram.get("above") or 0)
    if below or above:
        caption.append(f"{below} value(s) below the training minimum, {above} above the maximum")
    if len(labels) > MAX_BARS:
        caption.append(f"first {MAX_BARS} of {len(labels)} bins shown")
        labels, reference, current = labels[:MAX_BARS], reference[:MAX_BARS], current[:MAX_BARS]
    return (
        f"<figure><h3>{_text(feature.get('name'))}</h3>"
        f"{_bar_chart(labels, reference, current)}"
        f"<figcaption>{'<br>'.join(caption)}</figcaption></figure>"
    )


def _bins(histogram: Mapping[str, Any]) -> tuple[list[str], list[float], list[float]]:
    """Bin labels and the reference and current shares per bin."""
    reference = [float(count or 0) for count in histogram.get("reference") or []]
    current = [float(count or 0) for count in histogram.get("current") or []]
    if "edges" in histogram:
        edges = list(histogram["edges"])
        labels = [
            f"{_short(edges[i])} to {_short(edges[i + 1])}" if i + 1 < len(edges) else "?"
            for i in range(len(reference))
        ]
    else:
        labels = [str(label) for label in histogram.get("labels") or []]
    size = min(len(labels), len(reference), len(current))
    return labels[:size], _shares(reference[:size]), _shares(current[:size])


def _bar_chart(labels: Sequence[str], reference: Sequence[float], current: Sequence[float]) -> str:
    """Inline SVG: per label a reference and a current bar, heights proportional to the share
    (the tallest bar of the chart is full height); the exact shares in each bar's tooltip."""
    top = max([*reference, *current, 0.0]) or 1.0
    shown = [_clip(label, MAX_LABEL_CHARS) for label in labels]
    reach = [_text_width(label) for label in shown]
    cos, sin = math.cos(math.radians(_LABEL_ANGLE)), math.sin(math.radians(_LABEL_ANGLE))
    # Each label is rotated about its end under its bar pair: it reaches left and down from
    # there, so the drawing grows to hold the longest one whole.
    left = max([_LEFT, *(r * cos - _BAR_WIDTH - i * _GROUP_WIDTH + 4 for i, r in enumerate(reach))])
    baseline = _CHART_HEIGHT + 22
    width = math.ceil(left + _GROUP_WIDTH * len(labels) + 10)
    height = math.ceil(baseline + max([0.0, *reach]) * sin + 8)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-size="10" '
        'font-family="system-ui,sans-serif">',
        f'<text x="0" y="10">{_percent(top)}</text>',
        f'<text x="0" y="{_CHART_HEIGHT + 10}">0%</text>',
        f'<line x1="{left - 2:.1f}" y1="{_CHART_HEIGHT + 10}" x2="{width - 5}" '
        f'y2="{_CHART_HEIGHT + 10}" stroke="#d0d7de"/>',
    ]
    for index, (label, short) in enumerate(zip(labels, shown, strict=True)):
        x = left + index * _GROUP_WIDTH
        text = _text(label)
        for offset, kind, share in ((0, "reference", reference), (1, "current", current)):
            bar = share[index] / top * _CHART_HEIGHT
            parts.append(
                f'<rect class="{kind}" fill="{_FILL[kind]}" x="{x + offset * _BAR_WIDTH:.1f}" '
                f'y="{_CHART_HEIGHT + 10 - bar:.1f}" width="{_BAR_WIDTH}" height="{bar:.1f}">'
                f"<title>{text}: {kind} {_percent(share[index])}</title></rect>"
            )
        anchor = f"{x + _BAR_WIDTH:.1f}"
        tooltip = f"<title>{text}</title>" if short != label else ""
        parts.append(
            f'<text x="{anchor}" y="{baseline}" text-anchor="end" '
            f'transform="rotate(-{_LABEL_ANGLE} {anchor} {baseline})">{tooltip}{_text(short)}'
            "</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _text_width(label: str) -> float:
    """A generous estimate of `label`'s width in pixels at the charts' 10px sans-serif font."""
    return sum(10.5 if c in _WIDE_GLYPHS else 7.8 if c.isupper() else 6.4 for c in label)


def _shares(counts: Sequence[float]) -> list[float]:
    total = sum(counts)
    return [count / total if total > 0 else 0.0 for count in counts]


def _facts(facts: Sequence[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
    return f'<dl class="facts">{items}</dl>'


def _notes(notes: Sequence[Any] | None) -> str:
    if not notes:
        return ""
    return '<ul class="notes">' + "".join(f"<li>{_text(note)}</li>" for note in notes) + "</ul>"


def _badge(value: Any) -> str:
    css = str(value) if str(value) in _BADGES else ""
    return f'<span class="badge {css}">{_text(value or "unknown").replace("_", " ")}</span>'


def _num_cell(value: Any, *, signed: bool = False) -> str:
    return f'<td class="num">{_number(value, "+.4f" if signed else ".4f")}</td>'


def _number(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _text(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:{spec}}" if math.isfinite(value) else "-"


def _count(value: Any) -> str:
    return _number(value, ",.0f")


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, int | float) else str(value)


def _percent(share: float) -> str:
    return f"{share:.1%}"


def _clip(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "\u2026"


def _text(value: Any) -> str:
    return escape("-" if value is None else str(value), quote=True)
