"""The card's inline SVG charts: curves on the unit square (ROC, precision-recall) and a scatter
(residuals), each with its grid, axes and labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from functions.ml.model_card.markup import esc, finite

_WIDTH, _HEIGHT, _MARGIN = 360, 300, 44


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
    parts = [f"<title>{esc(title)}</title>"]
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
    parts.append(f'<text x="{_WIDTH / 2}" y="16" text-anchor="middle">{esc(title)}</text>')
    parts.append(
        f'<text x="{(left + right) / 2}" y="{_HEIGHT - 8}" text-anchor="middle">'
        f"{esc(x_label)}</text>"
    )
    parts.append(
        f'<text x="12" y="{(top + bottom) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 12 {(top + bottom) / 2})">{esc(y_label)}</text>'
    )
    return "".join(parts)


def _svg(content: str, title: str) -> str:
    return (
        f'<svg width="{_WIDTH}" height="{_HEIGHT}" viewBox="0 0 {_WIDTH} {_HEIGHT}" '
        f'role="img" aria-label="{esc(title)}">{content}</svg>'
    )


def line_chart(
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
            f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys, strict=False) if finite(x, y)
        )
        parts.append(f'<polyline class="{css}" points="{points}"/>')
    return _svg("".join(parts), title)


def scatter(title: str, xs: Sequence[float], ys: Sequence[float]) -> str:
    pairs = [(float(x), float(y)) for x, y in zip(xs, ys, strict=False) if finite(x, y)]
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
