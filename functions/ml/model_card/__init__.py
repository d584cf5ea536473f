"""The model card: one self-contained HTML file per model version, readable offline.

Inline CSS and inline SVG charts only: no scripts, no external URLs, no images to fetch. Every
string that comes from data (names, categories, parameters, messages) goes through
`html.escape`. Needs only the standard library (and `GREATER_IS_BETTER`), so any stage can
render it.

Modules: `render` (`render_model_card`: the document and its style), `sections` (one function
per section of the card), `charts` (the inline SVG charts), `markup` (escaping, numbers and
tables).
"""
