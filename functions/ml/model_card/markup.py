"""The card's HTML pieces: every value from data escaped, numbers formatted, tables; which
slices and groups a card may show."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any


def esc(value: Any) -> str:
    return escape(str(value), quote=True)


def fmt_number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return esc(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return esc(value)
    return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.{digits}g}"


def fmt_value(value: Any) -> str:
    """Any JSON value as escaped text a person reads: yes/no, none, numbers with separators,
    lists comma-separated, mappings as `key: value` (one line per key when values nest)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "none"
    if isinstance(value, int | float):
        return fmt_number(value)
    if isinstance(value, Mapping):
        nested = any(isinstance(item, Mapping) for item in value.values())
        items = [f"{esc(key)}: {fmt_value(item)}" for key, item in value.items()]
        return ("<br>" if nested else ", ").join(items) or "&ndash;"
    if isinstance(value, list | tuple):
        return ", ".join(fmt_value(item) for item in value) or "&ndash;"
    return esc(value)


def html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], css: str = "") -> str:
    """`headers` are plain text (escaped here); cells are HTML already escaped by the caller."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(rows_cell for rows_cell in row) + "</tr>" for row in rows)
    attr = f' class="{css}"' if css else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def td(html_text: str, css: str = "") -> str:
    return f'<td class="{css}">{html_text}</td>' if css else f"<td>{html_text}</td>"


def mapping_table(mapping: Mapping[str, Any], key: str = "name", value: str = "value") -> str:
    rows = [[td(esc(k)), td(fmt_value(v))] for k, v in mapping.items()]
    return html_table([key, value], rows)


def finite(*values: Any) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def visible(entries: Any, min_rows: Any) -> tuple[list[Mapping[str, Any]], int]:
    """The slices (or groups) of `entries` a card may show, and how many it must not: an entry
    of fewer than `min_rows` rows is suppressed here too, whatever the evaluate stage did, so
    no card singles out a small group."""
    shown = [entry for entry in entries or [] if isinstance(entry, Mapping)]
    if not isinstance(min_rows, int):
        return shown, 0
    kept = [e for e in shown if not (finite(e.get("rows")) and e["rows"] < min_rows)]
    return kept, len(shown) - len(kept)
