"""The model card as a browser lays it out: headless Chromium (the OS package; `make test`
installs it where it is missing) loads a card with every chart type, and each `<svg>` chart has
a non-empty box and every `<text>` label lies inside its chart and inside the window's width,
so no label is clipped. The card has no script: the test page wraps it with one that measures
the laid-out page and writes the figures into the DOM, which `--dump-dom` prints.

Without Chromium the test skips, saying why; under CI (the `CI` variable set) it fails."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from functions.ml.model_card.render import render_model_card
from tests.helpers.model_card import (
    CLASSES,
    card_inputs,
    multiclass_card_inputs,
    regression_card_inputs,
)

WINDOW = (1280, 900)
_MEASURE = """
<svg id="control" width="120" height="40"><text x="-30" y="20">clipped on purpose</text></svg>
<pre id="measurements"></pre>
<script>
const slack = 0.5;
const charts = [...document.querySelectorAll("svg")].map((svg) => {
  const box = svg.getBoundingClientRect();
  const labels = [...svg.querySelectorAll("text")].map((text) => {
    const r = text.getBoundingClientRect();
    return {
      text: [...text.childNodes].filter((node) => node.nodeType === Node.TEXT_NODE)
        .map((node) => node.data).join(""),
      width: r.width,
      inside: r.left >= box.left - slack && r.right <= box.right + slack
        && r.top >= box.top - slack && r.bottom <= box.bottom + slack,
      in_window: r.left >= -slack && r.right <= window.innerWidth + slack,
    };
  });
  return {id: svg.id, title: svg.getAttribute("aria-label"), width: box.width,
          height: box.height, labels: labels};
});
document.getElementById("measurements").textContent = JSON.stringify(
  {window: window.innerWidth, charts: charts});
</script>
"""


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    reason = "Chromium is not installed (`make chromium` installs the OS package)"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _measure(card: str, tmp_path: Path) -> dict[str, Any]:
    """Load `card` (wrapped with the measuring script) in headless Chromium; its figures."""
    assert "<script" not in card, "the card itself runs no script"
    page = tmp_path / "card.html"
    page.write_text(card.replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    done = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found = re.search(r'<pre id="measurements">(.*?)</pre>', done.stdout, re.S)
    assert found and found.group(1), f"no measurements (exit {done.returncode}): {done.stderr}"
    measured: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return measured


def _problems(charts: list[dict[str, Any]]) -> list[str]:
    problems = []
    for chart in charts:
        name = chart["title"] or chart["id"]
        if not (chart["width"] > 0 and chart["height"] > 0):
            problems.append(f"{name}: empty box {chart['width']}x{chart['height']}")
        for label in chart["labels"]:
            if not label["text"].strip():
                continue
            if label["width"] <= 0:
                problems.append(f"{name}: label {label['text']!r} has no width")
            if not label["inside"]:
                problems.append(f"{name}: label {label['text']!r} is clipped by its chart")
            if not label["in_window"]:
                problems.append(f"{name}: label {label['text']!r} is outside the window")
    return problems


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        (
            card_inputs,
            [
                "ROC curve",
                "Precision-recall curve",
                "Permutation importance",
                "Reliability curve",
                "Metrics by threshold",
            ],
        ),
        (regression_card_inputs, ["Residuals", "Permutation importance"]),
        # Targets in the hundreds of thousands: tick labels stay short and inside the chart.
        (lambda: regression_card_inputs(1e4), ["Residuals", "Permutation importance"]),
        (
            multiclass_card_inputs,
            [
                *(
                    f"{curve}: {label} vs rest"
                    for label in CLASSES
                    for curve in ("ROC curve", "Precision-recall curve")
                ),
                "Permutation importance",
                "Reliability curve",
            ],
        ),
    ],
    ids=[
        "binary-with-champion",
        "regression",
        "regression-large-values",
        "multiclass-with-champion",
    ],
)
def test_every_chart_has_a_box_and_no_clipped_label(
    tmp_path: Path, inputs: Any, expected: list[str]
) -> None:
    measured = _measure(render_model_card(**inputs()), tmp_path)
    *charts, control = measured["charts"]

    assert measured["window"] == WINDOW[0]
    assert [chart["title"] for chart in charts] == expected
    assert all(len(chart["labels"]) >= 5 for chart in charts)
    assert _problems(charts) == []
    # The measurement sees clipping: the control chart, at the page's left edge, has a label
    # that starts left of its box, and so of the window.
    assert _problems([control]) == [
        "control: label 'clipped on purpose' is clipped by its chart",
        "control: label 'clipped on purpose' is outside the window",
    ]
