"""The model card: one self-contained, offline-readable HTML file that escapes what it shows."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest

from functions.common.config.dataset import Task
from functions.ml.metrics import evaluate_predictions
from functions.ml.model_card.charts import tick_label, ticks
from functions.ml.model_card.render import render_model_card
from tests.helpers.imports import loaded_by_importing
from tests.helpers.model_card import card_inputs, multiclass_scored

VOID = {"meta", "br", "line", "polyline", "circle", "path", "rect", "img", "link", "input"}
SPECIES = ["Gentoo penguin", "adélie", "Chinstrap <b>"]
HOSTILE = '<script>alert("pwned")</script>"><img src=x onerror=alert(1)>'


class _Collector(HTMLParser):
    """Tags, attributes and text of a document; checks that every element is closed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.open: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.open or self.open[-1] != tag:
            self.errors.append(f"unexpected </{tag}> (open: {self.open[-3:]})")
            return
        self.open.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Collector:
    parser = _Collector()
    parser.feed(html)
    parser.close()
    assert not parser.errors, parser.errors
    assert not parser.open, f"unclosed: {parser.open}"
    return parser


def _evaluation(task: Task, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    if task is Task.REGRESSION:
        y = rng.normal(50, 10, 300)
        return evaluate_predictions(
            task=task, y_true=y, labels=y + rng.normal(0, 4, 300), probabilities=None, classes=None
        ).to_dict()
    y = np.where(rng.random(300) < 0.4, "yes", "no")
    score = np.clip(0.3 * (y == "yes") + 0.7 * rng.random(300), 0, 1)
    return evaluate_predictions(
        task=task,
        y_true=y,
        labels=np.where(score > 0.5, "yes", "no"),
        probabilities=np.column_stack([1 - score, score]),
        classes=["no", "yes"],
    ).to_dict()


def _multiclass_evaluation(seed: int) -> dict[str, Any]:
    return multiclass_scored(seed, SPECIES)


def _card(
    task: Task = Task.CLASSIFICATION,
    *,
    name: str = "churn",
    champion: bool = True,
    multiclass: bool = False,
    split: dict[str, Any] | None = None,
) -> str:
    evaluate = _multiclass_evaluation if multiclass else (lambda seed: _evaluation(task, seed))
    candidate = evaluate(0)
    champion_eval = evaluate(1) if champion else None
    metric = "roc_auc" if task is Task.CLASSIFICATION else "rmse"
    evaluation = {
        "run_id": "20261126T225300Z-1a2b3c",
        "metrics": candidate["metrics"],
        "champion_version": 2 if champion else None,
        "champion_metrics": champion_eval["metrics"] if champion_eval else None,
        "criteria": [
            {
                "metric": metric,
                "kind": "threshold",
                "candidate": candidate["metrics"][metric],
                "champion": None,
                "bound": 0.75,
                "greater_is_better": True,
                "passed": True,
                "message": f"{metric} 0.81 >= threshold 0.75",
            }
        ],
        "passed": True,
        "failed": [],
        "evaluation_key": "models/churn/runs/x/evaluation.json",
    }
    run = {
        "run_id": "20261126T225300Z-1a2b3c",
        "model_name": name,
        "task": task.value,
        "estimator": "logistic_regression",
        "params": {"C": 1.0, "max_iter": 1000, "class_weight": None},
        "data_version": "abc123",
        "data_versions": ["abc000", "abc123"],
        "rows_train": 1200,
        "rows_test": 300,
        "started_at": "2026-11-26T22:53:00Z",
        "code_version": "1a2b3c4d",
        "split": split or {"seed": 42, "stratified": True, "test_rows_sha256": "f" * 64},
        "durations": {"fit": 1.25, "export": 0.1},
        "search": {
            "metric": "roc_auc",
            "cv_folds": 3,
            "candidates": [
                {"params": {"C": 0.1}, "mean_score": 0.8, "std_score": 0.01, "rank": 2},
                {"params": {"C": 1.0}, "mean_score": 0.81, "std_score": 0.02, "rank": 1},
            ],
        },
        "parity": {"rows": 300, "max_abs_difference": 1e-7, "passed": True},
    }
    signature = {
        "task": task.value,
        "target": "churned",
        "inputs": [
            {"name": "age", "type": "numeric", "categories": [], "nullable": True},
            {
                "name": "region",
                "type": "categorical",
                "categories": ["east", "north", HOSTILE],
                "nullable": True,
            },
        ],
        "classes": (SPECIES if multiclass else ["no", "yes"])
        if task is Task.CLASSIFICATION
        else None,
        "library_versions": {"scikit-learn": "1.9.1", "onnxruntime": "1.32.0"},
        "opset": {"ai.onnx": 17, "ai.onnx.ml": 3},
    }
    return render_model_card(
        model_name=name,
        version=3,
        run=run,
        evaluation=evaluation,
        candidate_eval=candidate,
        champion_eval=champion_eval,
        signature=signature,
    )


def test_the_card_is_self_contained_html() -> None:
    html = _card()
    parsed = _parse(html)

    assert html.startswith("<!DOCTYPE html>")
    assert {"html", "head", "body", "style", "table", "svg"} <= set(parsed.tags)
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(parsed.tags)
    assert not re.search(r"https?://", html)
    assert not any(
        name in {"src", "href"} or name.startswith("on") for name, _ in parsed.attributes
    )


def test_the_card_shows_metrics_gate_confusion_matrix_and_curves() -> None:
    html = _card()
    text = " ".join(_parse(html).text)
    candidate = _evaluation(Task.CLASSIFICATION, 0)

    assert "churn" in text and "version 3" in text and "promoted" in text
    assert f"{candidate['metrics']['roc_auc']:.4f}" in text
    assert "champion v2" in text
    assert "roc_auc 0.81 >= threshold 0.75" in text
    assert "true \\ predicted" in text
    assert html.count("<svg") == 2  # ROC and precision-recall
    assert "ROC curve" in text and "Precision-recall curve" in text
    for fact in ("abc000", "abc123", "max_iter", "test_rows_sha256", "scikit-learn", "1.9.1"):
        assert fact in text


def test_a_regression_card_plots_residuals_and_has_no_confusion_matrix() -> None:
    html = _card(Task.REGRESSION, champion=False)
    text = " ".join(_parse(html).text)

    assert "Residuals" in text
    assert html.count("<svg") == 1 and html.count("<circle") > 100
    assert "Confusion matrix" not in text
    assert "rmse" in text


def test_hostile_strings_are_escaped() -> None:
    html = _card(name=HOSTILE)
    parsed = _parse(html)

    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert HOSTILE in " ".join(parsed.text)
    assert "&lt;script&gt;" in html


def test_the_renderer_needs_neither_pandas_nor_sklearn() -> None:
    loaded = loaded_by_importing(
        ["functions.ml.model_card.render", "functions.ml.gate"],
        ("pandas", "sklearn", "scipy", "onnxruntime"),
    )

    assert loaded == []


class _Sections(HTMLParser):
    """Per `<section id=...>`: its visible text, its `<td>` cells (text and style) and the
    `<svg>` titles and classes drawn in it."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text: dict[str, list[str]] = {}
        self.cells: dict[str, list[dict[str, str]]] = {}
        self.charts: dict[str, list[str]] = {}
        self.drawn: dict[str, set[str]] = {}
        self._section = ""
        self._cell: dict[str, str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "section":
            self._section = attributes.get("id", "")
        elif tag == "td":
            self._cell = {"style": attributes.get("style", ""), "text": ""}
            self.cells.setdefault(self._section, []).append(self._cell)
        elif tag == "svg":
            self.charts.setdefault(self._section, []).append(attributes.get("aria-label", ""))
        if "class" in attributes:
            self.drawn.setdefault(self._section, set()).add(attributes["class"])

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.setdefault(self._section, []).append(data)
        if self._cell is not None:
            self._cell["text"] += data

    def visible(self, section: str) -> str:
        return " ".join(" ".join(self.text.get(section, [])).split())


def _shade(style: str) -> float:
    match = re.search(r"background:\s*rgba\([^)]*,\s*([\d.]+)\)", style)
    assert match, f"no heat-map shade in {style!r}"
    return float(match.group(1))


def test_a_multiclass_card_has_a_confusion_heat_map_and_roc_and_pr_per_class() -> None:
    html = _card(multiclass=True)
    _parse(html)
    sections = _Sections(html)
    candidate = _multiclass_evaluation(0)["confusion_matrix"]

    confusion = sections.visible("confusion")
    for label in SPECIES:
        assert label in confusion
    counts = [count for row in candidate["matrix"] for count in row]
    cells = sections.cells["confusion"][: len(counts)]
    assert [int(cell["text"].replace(",", "")) for cell in cells] == counts
    shades = [_shade(cell["style"]) for cell in cells]
    # The darkest cell is the largest count, the lightest the smallest.
    assert counts[shades.index(max(shades))] == max(counts)
    assert counts[shades.index(min(shades))] == min(counts)

    charts = sections.charts["curves"]
    for label in SPECIES:
        assert f"ROC curve: {label} vs rest" in charts
        assert f"Precision-recall curve: {label} vs rest" in charts
    assert len(charts) == 2 * len(SPECIES)
    assert {"candidate", "champion"} <= sections.drawn["curves"]


def test_the_curves_legend_names_only_the_series_it_draws() -> None:
    for task in (Task.CLASSIFICATION, Task.REGRESSION):
        sections = _Sections(_card(task, champion=True))
        legend = sections.visible("curves")
        for series in ("candidate", "champion"):
            if f": {series}" in legend:
                assert series in sections.drawn["curves"], (task, series)
    assert "champion" in _Sections(_card(Task.CLASSIFICATION)).visible("curves")


def test_split_and_parameter_values_read_as_words_not_python_reprs() -> None:
    split = {
        "rows_train": 180,
        "rows_test": 60,
        "test_size": 0.25,
        "seed": 7,
        "stratified": False,
        "fallback_reason": None,
        "class_counts": {
            "train": {"Gentoo penguin": 80, "adélie": 100},
            "test": {"Gentoo penguin": 27, "adélie": 33},
        },
        "test_rows_sha256": "e" * 64,
    }
    sections = _Sections(_card(split=split))
    data = sections.visible("data")
    parameters = sections.visible("parameters")

    for shown in (data, parameters):
        for python in ("False", "True", "None", "{", "}"):
            assert python not in shown, (python, shown)
    rows = {
        cells[0]["text"]: cells[1]["text"]
        for cells in zip(sections.cells["data"][::2], sections.cells["data"][1::2], strict=True)
    }
    assert rows["stratified"] == "no"
    assert rows["fallback_reason"] == "none"
    assert "train: Gentoo penguin: 80, adélie: 100" in " ".join(rows["class_counts"].split())
    assert "class_weight none" in parameters
    assert "C: 0.1" in parameters


@pytest.mark.parametrize(
    ("low", "high", "labels"),
    [
        (0.0, 1.0, ["0", "0.2", "0.4", "0.6", "0.8", "1"]),
        (-2.3e5, 6.98e5, ["-200k", "0", "200k", "400k", "600k"]),
        (1.2e6, 3.4e6, ["1.5M", "2M", "2.5M", "3M"]),
        (0.0001, 0.0009, ["2e-4", "4e-4", "6e-4", "8e-4"]),
        (0.0, 7000.0, ["0", "2000", "4000", "6000"]),
    ],
)
def test_axis_ticks_are_round_and_their_labels_short(
    low: float, high: float, labels: list[str]
) -> None:
    values = ticks(low, high)
    assert all(low <= value <= high for value in values)
    assert [tick_label(value) for value in values] == labels


def test_the_signature_lists_no_category_of_a_sensitive_column() -> None:
    inputs = card_inputs()
    plain = render_model_card(**inputs)
    assert "<code>premium</code>" in plain
    hidden = render_model_card(**inputs, sensitive={"plan": "hash"})
    section = hidden.split('<section id="signature">', 1)[1].split("</section>", 1)[0]
    assert "premium" not in section and "basic" not in section
    assert "2 (not shown: <code>[dataset] sensitive</code> hash)" in section
