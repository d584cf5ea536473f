"""The card's insight sections: permutation importances of the candidate and the champion side
by side with their spread, slices worst first with flags and the suppressed count, fairness per
attribute, the reliability curve with the Brier score, and precision/recall/F1 by threshold;
every label escaped, and a section left out when its part of the evaluation is absent."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from functions.ml.model_card.render import render_model_card
from tests.helpers.imports import loaded_by_importing
from tests.helpers.model_card import (
    LONG_FEATURE,
    TINY_SLICE,
    card_inputs,
    importance,
    insight,
    multiclass_card_inputs,
)

HOSTILE = '<script>alert("x")</script>"><img src=x onerror=alert(1)>'


class _Sections(HTMLParser):
    """Per `<section id=...>`: its text, the rows of its tables (cell texts), and the titles,
    `<text>` labels and element classes of its SVGs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: dict[str, list[str]] = {}
        self.rows: dict[str, list[list[str]]] = {}
        self.svg_labels: dict[str, list[str]] = {}
        self.classes: dict[str, list[str]] = {}
        self.tags: list[str] = []
        self._section: str | None = None
        self._cell: list[str] | None = None
        self._in_text = False
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self._section = found.get("id")
        if self._section is None:
            return
        if found.get("class"):
            self.classes.setdefault(self._section, []).append(str(found["class"]))
        if tag == "tr":
            self.rows.setdefault(self._section, []).append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "text":
            self._in_text = True
            self.svg_labels.setdefault(self._section, []).append("")
        elif tag == "title":
            self._in_title = True

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        if self._section and found.get("class"):
            self.classes.setdefault(self._section, []).append(str(found["class"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._section = None
        elif tag in ("td", "th") and self._cell is not None and self._section:
            self.rows[self._section][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "text":
            self._in_text = False
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._section is None:
            return
        self.text.setdefault(self._section, []).append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._in_text and not self._in_title:
            self.svg_labels[self._section][-1] += data


def _sections(**overrides: Any) -> _Sections:
    inputs = {**card_inputs(), **overrides}
    parser = _Sections()
    parser.feed(render_model_card(**inputs))
    return parser


def _text(parsed: _Sections, section: str) -> str:
    return " ".join(" ".join(parsed.text.get(section, [])).split())


def test_a_full_card_draws_every_chart_and_no_script() -> None:
    html = render_model_card(**card_inputs())
    parsed = _sections()

    titles = re.findall(r'<svg [^>]*aria-label="([^"]+)"', html)
    assert titles == [
        "ROC curve",
        "Precision-recall curve",
        "Permutation importance",
        "Reliability curve",
        "Metrics by threshold",
    ]
    assert {"importance", "slices", "fairness", "calibration", "thresholds"} <= set(parsed.text)
    assert "script" not in parsed.tags and not re.search(r"https?://", html)


def test_importances_of_candidate_and_champion_side_by_side_with_their_spread() -> None:
    parsed = _sections()
    rows = parsed.rows["importance"]
    classes = parsed.classes["importance"]

    # Most important to the candidate first, in the chart and in the table.
    labels = [label for label in parsed.svg_labels["importance"] if label.isidentifier()]
    assert labels[:2] == ["tenure_months", "plan"]
    assert [row[0] for row in rows[1:3]] == ["tenure_months", "plan"]
    assert rows[0] == ["feature", "candidate", "champion v2"]
    assert rows[1][1:] == ["0.1200 ± 0.0260", "0.0840 ± 0.0188"]
    assert classes.count("bar candidate") == 5 and classes.count("bar champion") == 5
    assert classes.count("whisker") == 10
    # A long feature name is shortened in the chart; the table and the tooltip keep it whole.
    shortened = [label for label in parsed.svg_labels["importance"] if label.endswith("…")]
    assert len(shortened) == 1 and len(shortened[0]) <= 22
    assert LONG_FEATURE in _text(parsed, "importance")


def test_without_a_champion_only_the_candidate_is_drawn() -> None:
    parsed = _sections(**card_inputs(champion=False))

    assert "bar champion" not in parsed.classes["importance"]
    assert parsed.rows["importance"][0] == ["feature", "candidate"]
    assert parsed.rows["slices"][0] == ["feature", "slice", "rows", "roc_auc", "overall", "flag"]
    assert "champion" not in _text(parsed, "calibration")


def test_the_chart_shows_the_top_features_and_the_table_all_of_them() -> None:
    names = [f"feature_{i:02d}" for i in range(20)]
    parsed = _sections(importance=importance(features=names), champion_importance=None)

    assert parsed.classes["importance"].count("bar candidate") == 15
    assert len(parsed.rows["importance"]) == 21
    assert "15 most important of 20 features" in _text(parsed, "importance")


def test_slices_are_listed_worst_first_with_flags_and_the_suppressed_count() -> None:
    parsed = _sections()
    header, *rows = parsed.rows["slices"]
    text = _text(parsed, "slices")

    assert header == ["feature", "slice", "rows", "roc_auc", "overall", "champion v2", "flag"]
    assert [(row[0], row[1]) for row in rows] == [
        ("plan", "premium"),
        ("region", "sha256:1a2b3c4d"),
        ("tenure_months", "[12.5, 40.0)"),
        ("plan", "basic"),
        ("tenure_months", "[40.0, 72.0]"),
    ]
    assert rows[0][2:] == ["40", "0.5500", "0.8000", "0.5200", "small"]
    assert [row[-1] for row in rows[1:]] == ["", "", "", ""]
    assert "3 slices suppressed: fewer than 30 rows" in text
    assert "fewer than 90 rows" in text
    classes = parsed.classes["slices"]
    assert classes.count("num worse") == 3 and classes.count("num better") == 2


def test_a_regression_slice_with_a_higher_error_reads_as_worse() -> None:
    regression = insight("regression")
    regression["slices"]["rows"] = [
        {
            "feature": "plan",
            "kind": "category",
            "slice": "premium",
            "rows": 200,
            "value": 12.0,
            "overall": 8.0,
            "flag": None,
        }
    ]
    parsed = _sections(insight={"candidate": regression, "champion": None})

    assert parsed.rows["slices"][0][3] == "rmse"
    assert "num worse" in parsed.classes["slices"]
    # Regression has no fairness, calibration or thresholds: those sections are left out.
    assert not {"fairness", "calibration", "thresholds"} & set(parsed.text)


def test_fairness_per_attribute_with_the_champions_differences_and_groups() -> None:
    parsed = _sections()
    rows = parsed.rows["fairness"]
    text = _text(parsed, "fairness")

    assert rows[1] == ["gender", "0.1200", "0.0900", "0.2000", "0.1700"]
    assert rows[2] == ["age_band", "0.0500", "0.0500", "0.0700", "0.0700"]
    assert ["female", "140", "0.3000", "0.7000", "0.1000"] in rows
    assert ["sha256:9f8e7d6c", "200", "0.3500", "0.8000", "0.1200"] in rows
    assert "1 small group(s) suppressed" in text
    # The card names the class the rates count (the signature's second class).
    assert "The positive class is yes" in text


def test_calibration_draws_the_reliability_curve_and_the_brier_scores() -> None:
    parsed = _sections()
    rows = parsed.rows["calibration"]
    classes = parsed.classes["calibration"]

    assert rows[1:] == [["candidate", "0.1800", "isotonic"], ["champion v2", "0.1500", "isotonic"]]
    assert "chance" in classes, "the perfect-calibration diagonal"
    assert classes.count("candidate marker") == 7 and classes.count("champion marker") == 7


def test_the_threshold_chart_draws_three_series_and_names_the_best_f1() -> None:
    parsed = _sections()
    points = card_inputs()["insight"]["candidate"]["thresholds"]
    best = max(points, key=lambda p: p["f1"])

    assert {"s-precision", "s-recall", "s-f1"} <= set(parsed.classes["thresholds"])
    assert f"Best F1 {best['f1']:.4f} at threshold {best['threshold']:.4f}" in _text(
        parsed, "thresholds"
    )


def test_absent_parts_render_as_nothing() -> None:
    none_at_all = _sections(insight=None, importance=None, champion_importance=None)
    empty = insight()
    empty.update(fairness=None, calibration=None, thresholds=None)
    empty["slices"] = {"min_rows": 30, "suppressed": 0, "rows": []}
    empty_parts = _sections(insight={"candidate": empty, "champion": None})

    insight_sections = {"importance", "slices", "fairness", "calibration", "thresholds"}
    assert not insight_sections & set(none_at_all.text)
    assert not {"slices", "fairness", "calibration", "thresholds"} & set(empty_parts.text)


def test_only_suppressed_slices_still_say_so() -> None:
    only = insight()
    only["slices"] = {"min_rows": 30, "suppressed": 1, "rows": []}
    parsed = _sections(insight={"candidate": only, "champion": None})

    assert "1 slice suppressed" in _text(parsed, "slices")
    assert "slices" not in parsed.rows


def test_names_slices_and_groups_from_data_are_escaped() -> None:
    hostile = insight()
    hostile["slices"]["rows"][0].update(feature=HOSTILE, slice=HOSTILE)
    hostile["fairness"]["attributes"] = {HOSTILE: hostile["fairness"]["attributes"]["gender"]}
    hostile["fairness"]["attributes"][HOSTILE]["groups"][0]["group"] = HOSTILE
    hostile["calibration"]["method"] = HOSTILE
    html = render_model_card(
        **{
            **card_inputs(),
            "importance": importance(features=[HOSTILE, "plan"]),
            "insight": {"candidate": hostile, "champion": None},
        }
    )
    parsed = _Sections()
    parsed.feed(html)

    assert "script" not in parsed.tags and "img" not in parsed.tags
    for section in ("importance", "slices", "fairness", "calibration"):
        assert HOSTILE in _text(parsed, section), section
    assert "&lt;script&gt;" in html


def test_a_multiclass_card_calibrates_the_top_label_and_has_no_threshold_chart() -> None:
    parsed = _sections(**multiclass_card_inputs())

    assert "confidence of the predicted class" in _text(parsed, "calibration")
    assert "fraction correct" in parsed.svg_labels["calibration"]
    assert "thresholds" not in parsed.text
    assert parsed.rows["slices"][0][3] == "f1_macro"


def test_the_json_document_needs_neither_pandas_nor_sklearn() -> None:
    loaded = loaded_by_importing(
        ["functions.ml.model_card.document"], ("pandas", "sklearn", "scipy", "numpy")
    )

    assert loaded == []


def test_a_slice_or_group_below_the_minimum_rows_is_suppressed_by_the_card_too() -> None:
    leaky = insight()
    leaky["slices"]["rows"].insert(0, dict(TINY_SLICE))
    leaky["fairness"]["attributes"]["gender"]["groups"].append(
        {
            "group": "a-group-of-two",
            "rows": 2,
            "selection_rate": 1.0,
            "true_positive_rate": 1.0,
            "false_positive_rate": 0.0,
        }
    )
    parsed = _sections(insight={"candidate": leaky, "champion": None})
    html = render_model_card(**{**card_inputs(), "insight": {"candidate": leaky, "champion": None}})

    assert "only-three-customers" not in html and "a-group-of-two" not in html
    assert "4 slices suppressed" in _text(parsed, "slices")
    assert "1 small group(s) suppressed" in _text(parsed, "fairness")
