"""The card's insight sections: what the model relies on (permutation importances, candidate
and champion side by side), where it fails (slices, worst first), whether it treats groups
alike (fairness), whether its probabilities can be trusted (calibration) and how precision,
recall and F1 move with the decision threshold. Each is an empty string when its data is
absent.

Inputs: `importance` as the train stage stores it in the reference profile
(`functions.ml.importance.permutation_importances`), and the evaluation document's `insight`
(`{"candidate": Insight, "champion": Insight | None}`, written by the evaluate stage). Slice
and group labels arrive as the evaluate stage wrote them (a hashed sensitive value as its
`sha256:` digest); every one is escaped here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from functions.ml.metrics import GREATER_IS_BETTER
from functions.ml.model_card.charts import bar_chart, line_chart
from functions.ml.model_card.markup import esc, finite, fmt_number, html_table, td, visible

MAX_IMPORTANCE_BARS = 15
"""The chart shows the candidate's most important features; the table lists every one."""
MAX_SLICE_ROWS = 25
"""The slices table lists the worst ones; the rest are counted."""
_THRESHOLD_SERIES = (("precision", "precision"), ("recall", "recall"), ("f1", "F1"))


def _champion_title(champion_version: Any) -> str:
    return f"champion v{champion_version}" if champion_version is not None else "champion"


def _insights(insight: Mapping[str, Any] | None) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    insight = insight or {}
    return insight.get("candidate") or {}, insight.get("champion") or {}


def _mean_spread(importance: Mapping[str, Any] | None, name: str) -> tuple[Any, Any]:
    if not importance:
        return None, None
    return (importance.get("features") or {}).get(name), (importance.get("std") or {}).get(name)


def _with_spread(mean: Any, spread: Any) -> str:
    if mean is None:
        return "&ndash;"
    return fmt_number(mean) + (f" &plusmn; {fmt_number(spread)}" if finite(spread) else "")


def importance_section(
    candidate: Mapping[str, Any] | None,
    champion: Mapping[str, Any] | None,
    champion_version: Any = None,
) -> str:
    """Bars of the candidate's and the champion's permutation importances (mean loss of the
    primary metric when a feature is shuffled; whiskers: one standard deviation over the
    repeats), most important (to the candidate) first."""
    features = dict((candidate or {}).get("features") or {})
    if not features:
        return ""
    ranked = sorted(features, key=lambda name: -float(features[name] or 0.0))
    mine = [(_mean_spread(candidate, name)) for name in ranked]
    theirs = [(_mean_spread(champion, name)) for name in ranked]
    has_champion = any(mean is not None for mean, _ in theirs)
    champion_title = _champion_title(champion_version)
    series: list[tuple[str, Sequence[Any], Sequence[Any]]] = [
        ("candidate", [m for m, _ in mine], [s for _, s in mine])
    ]
    if has_champion:
        series.append(("champion", [m for m, _ in theirs], [s for _, s in theirs]))
    shown = MAX_IMPORTANCE_BARS
    metric = str((candidate or {}).get("metric", "metric"))
    chart = bar_chart(
        "Permutation importance",
        ranked[:shown],
        [(css, values[:shown], spreads[:shown]) for css, values, spreads in series],
        f"loss of {metric} when shuffled",
    )
    headers = ["feature", "candidate"] + ([champion_title] if has_champion else [])
    rows = [
        [td(f"<code>{esc(name)}</code>"), td(_with_spread(*mine[i]), "num")]
        + ([td(_with_spread(*theirs[i]), "num")] if has_champion else [])
        for i, name in enumerate(ranked)
    ]
    facts = candidate or {}
    captions = [
        f"How much {esc(metric)} worsens when one feature's values are shuffled on "
        f"{fmt_number(facts.get('rows'))} held-out rows: mean of {fmt_number(facts.get('repeats'))}"
        " shuffles, &plusmn; their standard deviation (the whiskers). Near zero or negative: the "
        "model does not rely on the feature."
    ]
    if has_champion:
        captions.append(f"Blue: candidate; grey: {esc(champion_title)}.")
    if len(ranked) > shown:
        captions.append(f"The chart shows the {shown} most important of {len(ranked)} features.")
    caption = "".join(f"<p>{text}</p>" for text in captions)
    return (
        f'<section id="importance">\n<h2>Feature importance</h2>\n{caption}'
        f'<div class="charts">{chart}</div>{html_table(headers, rows)}\n</section>'
    )


def slices_section(insight: Mapping[str, Any] | None, champion_version: Any = None) -> str:
    """The candidate's metric on each slice (a category of a categorical feature, a quantile
    bin of the configured numeric one), worst first as the evaluate stage ordered them, the
    champion's value on the same slice beside it; small slices flagged, suppressed ones
    counted."""
    candidate, champion = _insights(insight)
    slices = candidate.get("slices") or {}
    min_rows = slices.get("min_rows")
    rows_in, hidden = visible(slices.get("rows"), min_rows)
    suppressed = (slices.get("suppressed") or 0) + hidden
    if not rows_in and not suppressed:
        return ""
    metric = str(candidate.get("metric", "metric"))
    greater = GREATER_IS_BETTER.get(metric)
    theirs = {
        (row.get("feature"), row.get("slice")): row.get("value")
        for row in (champion.get("slices") or {}).get("rows") or []
    }
    has_champion = bool(theirs)
    rows = []
    for row in rows_in[:MAX_SLICE_ROWS]:
        value: Any = row.get("value")
        overall: Any = row.get("overall")
        css = ""
        if finite(value, overall) and greater is not None and value != overall:
            css = "better" if (value > overall) == greater else "worse"
        flag = row.get("flag")
        cells = [
            td(f"<code>{esc(row.get('feature', ''))}</code>"),
            td(esc(row.get("slice", ""))),
            td(fmt_number(row.get("rows")), "num"),
            td(fmt_number(value), f"num {css}".strip()),
            td(fmt_number(overall), "num"),
        ]
        if has_champion:
            cells.append(td(fmt_number(theirs.get((row.get("feature"), row.get("slice")))), "num"))
        cells.append(td(f'<span class="flag">{esc(flag)}</span>' if flag else ""))
        rows.append(cells)
    headers = ["feature", "slice", "rows", metric, "overall"]
    headers += [_champion_title(champion_version)] if has_champion else []
    headers.append("flag")
    small = 3 * min_rows if isinstance(min_rows, int) else None
    notes = [
        f"{esc(metric)} of the candidate on each slice of the held-out rows, worst first. "
        f"<em>small</em>: fewer than {fmt_number(small)} rows, a noisy estimate."
    ]
    if len(rows_in) > MAX_SLICE_ROWS:
        notes.append(f"The {MAX_SLICE_ROWS} worst of {len(rows_in)} slices.")
    if suppressed:
        plural = "slice" if suppressed == 1 else "slices"
        notes.append(
            f"{fmt_number(suppressed)} {plural} suppressed: fewer than "
            f"{fmt_number(min_rows)} rows (not shown, so no small group can be singled out)."
        )
    table = html_table(headers, rows) if rows else ""
    caption = "".join(f"<p>{text}</p>" for text in notes)
    return f'<section id="slices">\n<h2>Slices</h2>\n{caption}{table}\n</section>'


def fairness_section(
    insight: Mapping[str, Any] | None,
    champion_version: Any = None,
    classes: Sequence[Any] | None = None,
) -> str:
    """Per attribute: the demographic parity and equalized odds differences (fairlearn's
    definitions; the champion's beside them), then each group's selection and error rates.
    `classes`: the signature's classes; the second is the positive class the rates count."""
    candidate, champion = _insights(insight)
    attributes = (candidate.get("fairness") or {}).get("attributes") or {}
    if not attributes:
        return ""
    theirs = (champion.get("fairness") or {}).get("attributes") or {}
    has_champion = bool(theirs)
    champion_title = _champion_title(champion_version)
    summary_rows, details = [], []
    min_rows = (candidate.get("slices") or {}).get("min_rows")
    for name, found in attributes.items():
        other = theirs.get(name) or {}
        row = [td(f"<code>{esc(name)}</code>")]
        for key in ("demographic_parity_difference", "equalized_odds_difference"):
            row.append(td(fmt_number(found.get(key)), "num"))
            if has_champion:
                row.append(td(fmt_number(other.get(key)), "num"))
        summary_rows.append(row)
        shown, hidden = visible(found.get("groups"), min_rows)
        groups = [
            [
                td(esc(group.get("group", ""))),
                td(fmt_number(group.get("rows")), "num"),
                td(fmt_number(group.get("selection_rate")), "num"),
                td(fmt_number(group.get("true_positive_rate")), "num"),
                td(fmt_number(group.get("false_positive_rate")), "num"),
            ]
            for group in shown
        ]
        suppressed = (found.get("suppressed") or 0) + hidden
        note = f"<p>{fmt_number(suppressed)} small group(s) suppressed.</p>" if suppressed else ""
        details.append(
            f"<h3><code>{esc(name)}</code></h3>"
            + html_table(
                ["group", "rows", "selection rate", "true positive rate", "false positive rate"],
                groups,
            )
            + note
        )
    headers = ["attribute"]
    for label in ("demographic parity difference", "equalized odds difference"):
        headers += [label, f"{label} ({champion_title})"] if has_champion else [label]
    return (
        '<section id="fairness">\n<h2>Fairness</h2>\n<p>Demographic parity difference: the '
        "largest gap in selection rate between groups. Equalized odds difference: the larger of "
        "the largest gaps in true and false positive rate. 0 is parity."
        + (
            f" The positive class is <code>{esc(classes[1])}</code>: a group's selection rate is "
            "the share of its rows predicted as it."
            if classes and len(classes) == 2
            else ""
        )
        + "</p>"
        f"{html_table(headers, summary_rows)}{''.join(details)}\n</section>"
    )


def _curve(calibration: Mapping[str, Any]) -> tuple[list[Any], list[Any]]:
    points = [p for p in calibration.get("curve") or [] if isinstance(p, Mapping)]
    return [p.get("mean_predicted") for p in points], [p.get("fraction_positive") for p in points]


def calibration_section(insight: Mapping[str, Any] | None, champion_version: Any = None) -> str:
    """The reliability curve (mean predicted probability against the observed fraction of
    positives per bin; the diagonal is perfect calibration) and the Brier score, the
    champion's beside the candidate's."""
    candidate, champion = _insights(insight)
    mine, theirs = candidate.get("calibration"), champion.get("calibration")
    if not mine:
        return ""
    multiclass = candidate.get("task") == "multiclass"
    series = [("candidate", *_curve(mine))]
    if theirs:
        series.append(("champion", *_curve(theirs)))
    chart = line_chart(
        "Reliability curve",
        series,
        "mean predicted probability" + (" (top label)" if multiclass else ""),
        "fraction positive" if not multiclass else "fraction correct",
        diagonal=True,
        markers=True,
    )
    facts = [[td("candidate"), td(fmt_number(mine.get("brier")), "num"), td(_method(mine))]]
    if theirs:
        facts.append(
            [
                td(esc(_champion_title(champion_version))),
                td(fmt_number(theirs.get("brier")), "num"),
                td(_method(theirs)),
            ]
        )
    scope = (
        "the confidence of the predicted class against how often it is right (multiclass Brier "
        "score over every class)"
        if multiclass
        else "the positive class's probability"
    )
    legend = " Solid: candidate; dashed: champion." if theirs else ""
    return (
        '<section id="calibration">\n<h2>Calibration</h2>\n'
        f"<p>Reliability of {scope}: points on the dashed diagonal are calibrated. Brier score: "
        f"mean squared error of the probabilities, lower is better.{legend}</p>"
        f'<div class="charts">{chart}</div>'
        f"{html_table(['model', 'Brier score', 'calibration'], facts)}\n</section>"
    )


def _method(calibration: Mapping[str, Any]) -> str:
    method = calibration.get("method")
    return f"<code>{esc(method)}</code>" if method else "none (the estimator's probabilities)"


def thresholds_section(insight: Mapping[str, Any] | None) -> str:
    """Precision, recall and F1 of the candidate by decision threshold (binary classifiers),
    with the threshold of the best F1."""
    candidate, _ = _insights(insight)
    points = [p for p in candidate.get("thresholds") or [] if isinstance(p, Mapping)]
    if not points:
        return ""
    xs = [p.get("threshold") for p in points]
    series = [(f"s-{key}", xs, [p.get(key) for p in points]) for key, _ in _THRESHOLD_SERIES]
    chart = line_chart("Metrics by threshold", series, "threshold", "value")
    legend = ", ".join(
        f'<span class="legend"><span class="key s-{key}"></span>{label}</span>'
        for key, label in _THRESHOLD_SERIES
    )
    scored = [p for p in points if finite(p.get("f1"), p.get("threshold"))]
    best = max(scored, key=lambda p: p["f1"], default=None)
    best_note = (
        f" Best F1 {fmt_number(best['f1'])} at threshold {fmt_number(best['threshold'])} "
        f"(precision {fmt_number(best.get('precision'))}, recall {fmt_number(best.get('recall'))})."
        if best
        else ""
    )
    return (
        '<section id="thresholds">\n<h2>Threshold analysis</h2>\n'
        f"<p>The candidate's precision, recall and F1 when the positive class is predicted at "
        f"or above each threshold: {legend}.{best_note}</p>"
        f'<div class="charts">{chart}</div>\n</section>'
    )
