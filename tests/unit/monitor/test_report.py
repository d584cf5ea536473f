"""The drift check's HTML report (functions/monitor/report.py)."""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest

from functions.ml.drift.engine import compare
from functions.ml.drift.presentation import ranked_features
from functions.ml.sample_data import CATEGORICAL_FEATURES, NUMERIC_FEATURES, churn_frame
from functions.monitor.report import render_html
from tests.helpers.drift import churn_reference, window_columns

HOSTILE = "<script>alert('x')</script>"


class Page(HTMLParser):
    """The tags of a page, the text of each chart's bars (`<title>` in a `<rect>`) and the text
    a reader sees."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.bars: list[dict[str, Any]] = []
        self.text: list[str] = []
        self._in_bar_title = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "rect" and dict(attrs).get("height") is not None:
            self.bars.append({**dict(attrs), "title": ""})
        self._in_bar_title = tag == "title" and bool(self.bars) and self.tags[-2][0] == "rect"

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_bar_title = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_bar_title:
            self.bars[-1]["title"] += data

    def visible(self) -> str:
        return " ".join(self.text)

    def bar(self, label: str, kind: str) -> float:
        (height,) = [
            float(bar["height"])
            for bar in self.bars
            if bar.get("class") == kind and bar["title"].startswith(f"{label}: {kind}")
        ]
        return height


@cache
def _reference() -> dict[str, Any]:
    return churn_reference(churn_frame(3_000, seed=1), sample_rows=1_000)


@cache
def _checked() -> dict[str, Any]:
    """A check of 1,500 live rows whose charges and tenure rose by half a standard deviation."""
    window = window_columns(churn_frame(1_500, seed=101))
    for name in ("monthly_charges", "total_charges", "tenure_months"):
        window[name] = window[name] + 0.5 * _reference()["features"][name]["std"]
    predictions = np.where(np.random.default_rng(3).random(1_500) < 0.6, "yes", "no")
    report = compare(_reference(), window, predictions=predictions).to_dict()
    old = compare(_reference(), window_columns(churn_frame(300, seed=102))).to_dict()
    return {
        "check_id": "20261127T013000Z-ab12cd",
        "model_name": "churn",
        "checked_at": "2026-11-27T01:30:00Z",
        "window": {
            "start": "2026-11-26T01:30:00Z",
            "end": "2026-11-27T01:30:00Z",
            "objects": 12,
            "rows": 1_800,
        },
        "verdict": report["verdict"],
        "versions": [
            {"model_version": 3, "rows": 1_500, "report": report},
            {"model_version": 2, "rows": 300, "report": old},
        ],
        "performance": {
            "rows": 640,
            "verdict": "drop",
            "metrics": {"roc_auc": 0.71, "f1_macro": 0.62},
            "reference": {"roc_auc": 0.84, "f1_macro": 0.66},
            "changes": {"roc_auc": -0.13, "f1_macro": -0.04},
            "dropped": ["roc_auc"],
            "notes": ["labels joined by request id"],
        },
        "retrain": {
            "requested": True,
            "reason": "data drift and a performance drop",
            "skipped": None,
            "feedback_rows": 640,
            "feedback_key": "feedback/churn/20261127.parquet",
            "execution": "arn:aws:states:us-east-1:123:execution:pipeline:drift-20261127",
        },
        "result_key": "reports/drift/churn/20261127T013000Z-ab12cd/result.json",
        "report_key": "reports/drift/churn/20261127T013000Z-ab12cd/report.html",
    }


def _result() -> dict[str, Any]:
    return copy.deepcopy(_checked())


def _one_feature(feature: dict[str, Any], **report: Any) -> dict[str, Any]:
    result = _result()
    result["versions"] = [
        {
            "model_version": 1,
            "rows": 500,
            "report": {
                "verdict": "drift",
                "method": "p_value",
                "drifted": [feature["name"]],
                "features": {feature["name"]: feature},
                "prediction": None,
                **report,
            },
        }
    ]
    return result


def test_the_report_shows_the_check_its_verdict_and_every_feature() -> None:
    result = _result()
    assert result["verdict"] == "drift"

    page = Page(render_html(result))

    text = page.visible()
    assert "Drift check of churn" in text and "20261127T013000Z-ab12cd" in text
    assert "drift" in [t.strip() for t in page.text]
    assert "2026-11-26T01:30:00Z to 2026-11-27T01:30:00Z" in text
    assert "1,800 in 12 object(s)" in text
    assert "requested: data drift and a performance drop" in text
    for name in (*NUMERIC_FEATURES, *CATEGORICAL_FEATURES, "prediction"):
        assert name in text
    assert "Model version 3" in text and "Model version 2" in text
    assert "roc_auc" in text and "-0.1300" in text and "0.8400" in text


def test_features_are_listed_most_severe_first() -> None:
    report = _result()["versions"][0]["report"]
    html = render_html(_result())

    ranked = ranked_features(report)
    order = [({"major": 0, "minor": 1, "none": 2}[f["severity"]], -f["score"]) for f in ranked]
    assert order == sorted(order)
    assert {f["name"] for f in ranked[:3]} == {"monthly_charges", "total_charges", "tenure_months"}
    table = html.split("Model version 3")[1].split("</table>")[0]
    positions = [table.index(f"<td>{feature['name']}</td>") for feature in ranked]
    assert positions == sorted(positions)


def test_a_higher_score_ranks_first_within_a_severity() -> None:
    report = {
        "features": {
            "a": {"name": "a", "severity": "minor", "score": 0.2},
            "b": {"name": "b", "severity": "minor", "score": 0.6},
            "c": {"name": "c", "severity": "minor", "score": None},
            "d": {"name": "d", "severity": "major"},
        }
    }

    assert [feature["name"] for feature in ranked_features(report)] == ["d", "b", "a", "c"]


def test_every_feature_and_the_prediction_get_a_chart() -> None:
    result = _result()
    report = result["versions"][0]["report"]
    report["prediction"]["histogram"] = {
        "labels": ["no", "yes"],
        "reference": [400, 100],
        "current": [600, 900],
    }

    latest = render_html(result).split("Model version 2")[0]

    page = Page(latest)
    headings = re.findall(r"<figure><h3>([^<]*)</h3>", latest)
    assert headings == [feature["name"] for feature in ranked_features(report)] + ["prediction"]
    assert page.bar("yes", "current") > page.bar("yes", "reference")
    assert page.bar("month-to-month", "reference") > 0


def test_numeric_bins_are_labelled_by_their_edge_range() -> None:
    feature = {
        "name": "age",
        "kind": "numeric",
        "severity": "major",
        "statistics": {"psi": 0.4},
        "histogram": {
            "edges": [18.0, 30.0, 45.0, 80.0],
            "reference": [10, 30, 60],
            "current": [50, 30, 20],
            "below": 3,
            "above": 0,
        },
    }

    page = Page(render_html(_one_feature(feature)))

    assert page.bar("18 to 30", "current") > page.bar("18 to 30", "reference")
    assert page.bar("45 to 80", "reference") > page.bar("45 to 80", "current")
    assert "3 value(s) below the training minimum, 0 above the maximum" in page.visible()


def test_bar_heights_follow_the_shares_not_the_counts() -> None:
    feature = {
        "name": "contract",
        "kind": "categorical",
        "severity": "major",
        "histogram": {
            "labels": ["month-to-month", "one year", "<unseen>"],
            "reference": [550, 450, 0],
            "current": [40, 40, 20],
        },
    }

    page = Page(render_html(_one_feature(feature)))

    # Reference 55% vs current 40%: the reference bar is taller although it counts 550 vs 40.
    reference, current = (
        page.bar("month-to-month", "reference"),
        page.bar("month-to-month", "current"),
    )
    assert reference > current
    assert current == page.bar("one year", "current")
    assert reference / current == pytest.approx(0.55 / 0.40, rel=0.01)
    assert page.bar("<unseen>", "reference") == 0
    assert page.bar("<unseen>", "current") > 0


def test_labels_and_names_from_the_data_appear_as_text_never_as_markup() -> None:
    feature = {
        "name": '<img src=x onerror="alert(1)">',
        "kind": "categorical",
        "severity": "minor",
        "notes": [HOSTILE],
        "histogram": {"labels": [HOSTILE, "b"], "reference": [1, 1], "current": [3, 1]},
    }
    result = _one_feature(feature)
    result["model_name"] = "</title><script>steal()</script>"

    html = render_html(result)
    page = Page(html)

    tags = {tag for tag, _ in page.tags}
    assert "script" not in tags and "img" not in tags
    assert HOSTILE in page.visible()
    assert '<img src=x onerror="alert(1)">' in page.visible()
    assert "&lt;script&gt;" in html
    assert page.bar(HOSTILE, "current") > page.bar(HOSTILE, "reference")


def test_the_page_opens_offline() -> None:
    html = render_html(_result())

    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert "url(" not in html and " src=" not in html
    addresses = set(re.findall(r"https?://[^\"'\s<>]+", html))
    assert addresses <= {"http://www.w3.org/2000/svg"}  # the SVG namespace, never fetched


def test_older_results_without_histograms_scores_or_performance_still_render() -> None:
    result = _result()
    result["performance"] = None
    result["retrain"] = {
        "requested": False,
        "reason": None,
        "skipped": "a retrain ran 3 hours ago",
        "feedback_rows": 0,
        "feedback_key": None,
        "execution": None,
    }
    for version in result["versions"]:
        for feature in version["report"]["features"].values():
            feature.pop("histogram", None)
            feature.pop("score", None)
        version["report"]["prediction"] = None

    html = render_html(result)
    page = Page(html)

    assert "<figure" not in html and not page.bars
    assert "Not measured: no labelled feedback" in page.visible()
    assert "not requested: a retrain ran 3 hours ago; 0 feedback row(s)" in page.visible()
    assert "monthly_charges" in page.visible()


def test_a_window_too_small_to_judge_renders_its_reason() -> None:
    result = _result()
    small = compare(_reference(), window_columns(churn_frame(40, seed=7))).to_dict()
    result.update(verdict="insufficient_data", performance=None)
    result["versions"] = [{"model_version": 3, "rows": 40, "report": small}]

    page = Page(render_html(json.loads(json.dumps(result))))

    assert "insufficient data" in page.visible()
    assert "40 rows < min_rows 100" in page.visible()


def test_a_version_without_a_reference_profile_says_why_it_was_not_compared() -> None:
    result = _result()
    result["versions"].append(
        {
            "model_version": 7,
            "rows": 25,
            "report": None,
            "note": "version 7 has no reference profile",
        }
    )
    result["performance"]["model_version"] = 3
    result["retrain"]["note"] = "12 labelled row(s) < dataset.min_rows 100"

    text = Page(render_html(result)).visible()

    assert "Model version 7" in text
    assert "25 row(s), not compared: version 7 has no reference profile" in text
    assert "640 labelled row(s) of model version 3" in text
    assert "12 labelled row(s) < dataset.min_rows 100" in text


def test_the_report_states_the_decision_rule_and_the_data_quality_breaks() -> None:
    window = window_columns(churn_frame(1_000, seed=103))
    window["age"] = np.where(np.arange(1_000) % 2 == 0, np.nan, window["age"])
    report = compare(_reference(), window).to_dict()
    result = _result()
    result["versions"] = [{"model_version": 4, "rows": 1_000, "report": report}]

    text = Page(render_html(result)).visible()

    assert report["verdict"] == "drift" and report["data_quality"] == ["age"]
    assert report["decision"] in text
    assert "0 of 9 features drifted (share 0.00 < 0.3)" in text
    assert "Data-quality breaks: age" in text
    assert re.search(r"age: null share 5\d\.\d% \(training \d\.\d%\) \(major\)", text)


def test_bin_labels_are_shown_whole_and_fit_inside_the_chart() -> None:
    long_label = "Two year contract, paperless billing (électronique)"
    feature = {
        "name": "contract",
        "kind": "categorical",
        "severity": "major",
        "histogram": {
            "labels": [long_label, "month-to-month", "<unseen>"],
            "reference": [300, 600, 0],
            "current": [100, 500, 40],
        },
    }
    numeric = {
        "name": "total_charges",
        "kind": "numeric",
        "severity": "minor",
        "histogram": {
            "edges": [-0.0123456, 1234.5678, 98765.4321],
            "reference": [10, 20],
            "current": [20, 10],
        },
    }
    result = _one_feature(feature)
    result["versions"][0]["report"]["features"]["total_charges"] = numeric

    html = render_html(result)

    for svg in re.findall(r"<svg.*?</svg>", html, flags=re.S):
        height = float(re.search(r'viewBox="0 0 [\d.]+ ([\d.]+)"', svg).group(1))  # type: ignore[union-attr]
        labels = re.findall(
            r'<text x="([\d.]+)" y="([\d.]+)" text-anchor="end" '
            r'transform="rotate\(-(\d+) [\d.]+ [\d.]+\)">([^<]*)</text>',
            svg,
        )
        assert labels
        for x, y, angle, text in labels:
            # A 10px font averages at least 5px a glyph: the rotated label's far end must lie
            # inside the drawing, not past its left or bottom edge.
            length = 5.0 * len(text)
            radians = np.radians(float(angle))
            assert float(x) - length * np.cos(radians) >= 0, text
            assert float(y) + length * np.sin(radians) <= height, text
            assert "\u2026" not in text
    shown = Page(html).visible()
    assert long_label in shown
    assert "-0.0123 to 1.23e+03" in shown and "1.23e+03 to 9.88e+04" in shown


def test_the_estimate_is_shown_beside_the_realized_metrics_or_why_there_is_none() -> None:
    result = _result()
    result["estimate"] = {
        "rows": 1_200,
        "verdict": "drop",
        "method": "cbpe",
        "metrics": {"accuracy": 0.7123, "roc_auc": 0.8011},
        "reference": {"accuracy": 0.8, "roc_auc": 0.85},
        "changes": {"accuracy": -0.0877, "roc_auc": -0.0489},
        "dropped": ["accuracy"],
        "notes": [],
        "model_version": 4,
        "realized": {"rows": 300, "metrics": {"accuracy": 0.7}},
        "errors": {"accuracy": 0.0123},
    }
    page = render_html(result)
    section = page[page.index("Estimated performance") :]
    assert "1,200 row(s) of model version 4" in section
    row = section[
        section.index("<td>accuracy") : section.index("</tr>", section.index("<td>accuracy"))
    ]
    assert all(figure in row for figure in ("0.7123", "0.8000", "-0.0877", "0.7000", "+0.0123"))
    assert 'class="badge drop"' in row
    result["estimate"] = {
        **result["estimate"],
        "verdict": "unavailable",
        "metrics": {},
        "notes": ["regression: no label-free estimate"],
    }
    assert "regression: no label-free estimate" in render_html(result)
