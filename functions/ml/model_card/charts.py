"""The card's inline SVG charts: curves on the unit square (ROC, precision-recall, reliability,
metrics by threshold), a scatter (residuals) and horizontal bars with spread whiskers
(importances), each with its grid, axes and labels. Every label fits its chart: long names are
shortened with an ellipsis (the full name stays in the element's tooltip)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from functions.ml.model_card.markup import esc, finite

_WIDTH, _HEIGHT, _MARGIN = 360, 300, 44
_TITLE_CHARS = 52
"""About as many 11px characters as the chart's width holds."""


def fit(text: str, chars: int) -> str:
    """`text` shortened to at most `chars` characters, an ellipsis marking a cut."""
    return text if len(text) <= chars else text[: max(chars - 1, 1)] + "\u2026"


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten apart) inside `[low, high]`:
    about `count` steps, the ends included when they are round."""
    span = high - low
    if not math.isfinite(span) or span <= 0:
        return [low]
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    first = math.ceil(low / step - 1e-9)
    values = []
    for i in range(first, math.floor(high / step + 1e-9) + 1):
        value = i * step
        values.append(0.0 if abs(value) < step * 1e-9 else value)
    return values


def tick_label(value: float) -> str:
    """A tick value in at most about six characters: `250k`, `1.2M`, `0.25`, `5e-5`."""
    size = abs(value)
    for limit, unit, suffix in (
        (1e12, 1e12, "T"),
        (1e9, 1e9, "G"),
        (1e6, 1e6, "M"),
        (1e4, 1e3, "k"),
    ):
        if size >= limit:
            return f"{value / unit:.3g}{suffix}"
    if size and size < 1e-3:
        mantissa, exponent = f"{value:.1e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return f"{value:.4g}" if size >= 1000 else f"{value:.3g}"


def _scale(low: float, high: float, start: float, end: float) -> Any:
    span = (high - low) or 1.0
    return lambda value: start + (float(value) - low) / span * (end - start)


def _x_grid(x_range: tuple[float, float], sx: Any, top: float, bottom: float) -> list[str]:
    """The vertical grid lines at the x axis's round ticks, each labelled below the axis."""
    parts = []
    for value in ticks(*x_range):
        x = sx(value)
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle">{tick_label(value)}</text>'
        )
    return parts


def _frame(
    title: str,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float],
    y_range: tuple[float, float],
) -> str:
    y_ticks = [(value, tick_label(value)) for value in ticks(*y_range)]
    # Room for the longest y tick label (about 6.5 px a character at 11 px) and the axis title.
    left = max(_MARGIN, 26 + round(6.5 * max(len(label) for _, label in y_ticks)))
    top, right, bottom = 28, _WIDTH - 16, _HEIGHT - _MARGIN
    sx = _scale(*x_range, left, right)
    sy = _scale(*y_range, bottom, top)
    parts = [f"<title>{esc(title)}</title>"]
    parts += _x_grid(x_range, sx, top, bottom)
    for y_value, label in y_ticks:
        y = sy(y_value)
        parts.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    parts.append(f'<line class="axis" x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}"/>')
    parts.append(f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{bottom}"/>')
    parts.append(
        f'<text x="{_WIDTH / 2}" y="16" text-anchor="middle">{esc(fit(title, _TITLE_CHARS))}</text>'
    )
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
    series: Sequence[tuple[str, Sequence[Any], Sequence[Any]]],
    x_label: str,
    y_label: str,
    *,
    diagonal: bool = False,
    markers: bool = False,
) -> str:
    """Curves on the unit square, one polyline per `(css class, xs, ys)` (the first drawn on
    top); `diagonal` adds the dashed y = x line (chance for ROC, perfect calibration for a
    reliability curve), `markers` a dot on each point."""
    unit = (0.0, 1.0)
    parts = [_frame(title, x_label, y_label, unit, unit)]
    sx = _scale(0.0, 1.0, _MARGIN, _WIDTH - 12)
    sy = _scale(0.0, 1.0, _HEIGHT - _MARGIN, 28)
    if diagonal:
        parts.append(
            f'<line class="chance" x1="{sx(0):.1f}" y1="{sy(0):.1f}" '
            f'x2="{sx(1):.1f}" y2="{sy(1):.1f}"/>'
        )
    for css, xs, ys in reversed(series):
        points = " ".join(
            f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, ys, strict=False) if finite(x, y)
        )
        parts.append(f'<polyline class="{css}" points="{points}"/>')
        if markers:
            parts.extend(
                f'<circle class="{css} marker" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3"/>'
                for x, y in zip(xs, ys, strict=False)
                if finite(x, y)
            )
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


_BAR_LABEL_CHARS = 22
_BAR_LEFT, _BAR_WIDTH, _BAR_BAND = 160, 560, 26


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[Any], Sequence[Any]]],
    x_label: str,
) -> str:
    """Horizontal bars, one band per label and one bar per `(css class, values, spreads)` in
    it (side by side), each with a whisker of +- its spread; the axis spans zero and every
    whisker. A missing value draws no bar. Empty when nothing is drawn."""
    drawn = [
        (float(v), float(s) if finite(s) else 0.0)
        for _, values, spreads in series
        for v, s in zip(values, spreads, strict=False)
        if finite(v)
    ]
    if not labels or not drawn:
        return ""
    low = min(0.0, *(v - s for v, s in drawn))
    high = max(0.0, *(v + s for v, s in drawn))
    pad = (high - low) * 0.05 or 1.0
    x_range = (low - (pad if low < 0 else 0.0), high + pad)
    top, bottom = 28, 28 + _BAR_BAND * len(labels)
    height = bottom + _MARGIN
    left, right = _BAR_LEFT, _BAR_WIDTH - 16
    sx = _scale(*x_range, left, right)
    parts = [f"<title>{esc(title)}</title>"]
    parts += _x_grid(x_range, sx, top, bottom)
    bar = (_BAR_BAND - 8) / max(len(series), 1)
    for row, label in enumerate(labels):
        y0 = top + row * _BAR_BAND + 4
        parts.append(
            f'<text x="{left - 6}" y="{y0 + (_BAR_BAND - 8) / 2 + 4:.1f}" text-anchor="end">'
            f"<title>{esc(label)}</title>{esc(fit(label, _BAR_LABEL_CHARS))}</text>"
        )
        for index, (css, values, spreads) in enumerate(series):
            found: Any = values[row] if row < len(values) else None
            if not finite(found):
                continue
            value = float(found)
            spread_found: Any = spreads[row] if row < len(spreads) else None
            spread = float(spread_found) if finite(spread_found) else 0.0
            y = y0 + index * bar
            start, end = sorted((sx(0.0), sx(value)))
            parts.append(
                f'<rect class="bar {css}" x="{start:.1f}" y="{y:.1f}" '
                f'width="{max(end - start, 0.5):.1f}" height="{bar - 1:.1f}"/>'
            )
            if spread:
                middle = y + (bar - 1) / 2
                x1, x2 = sx(value - spread), sx(value + spread)
                parts.append(
                    f'<line class="whisker" x1="{x1:.1f}" y1="{middle:.1f}" x2="{x2:.1f}" '
                    f'y2="{middle:.1f}"/>'
                )
    parts.append(
        f'<line class="axis" x1="{sx(0.0):.1f}" y1="{top}" x2="{sx(0.0):.1f}" y2="{bottom}"/>'
    )
    parts.append(f'<line class="axis" x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}"/>')
    parts.append(
        f'<text x="{_BAR_WIDTH / 2}" y="16" text-anchor="middle">'
        f"{esc(fit(title, _BAR_WIDTH // 7))}</text>"
    )
    parts.append(
        f'<text x="{(left + right) / 2}" y="{height - 8}" text-anchor="middle">'
        f"{esc(fit(x_label, (right - left) // 6))}</text>"
    )
    return (
        f'<svg width="{_BAR_WIDTH}" height="{height}" viewBox="0 0 {_BAR_WIDTH} {height}" '
        f'role="img" aria-label="{esc(title)}">{"".join(parts)}</svg>'
    )
