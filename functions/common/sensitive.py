"""Sensitive columns (`[dataset] sensitive`): what capture, the reference profile and the drift
check may hold of them. A `hash` column is kept as `hash_value` of each value, a `drop` column
not at all. Serving still predicts with the real values; only what is stored changes.

One hash for every writer, so that training's reference profile and live capture agree:
`hash_value(v)` is the first 16 hex digits of SHA-256 over the value's categorical text (the
text `functions.ml.onnx_input.category` gives the model: strings as they are, numbers as
`str(value)`, so a numeric column hashes `42.0` as the model saw it), or of HMAC-SHA256 keyed
with `[dataset] hash_salt` when one is set. Missing stays the missing category `""`.

This is pseudonymisation, not anonymisation: anyone who knows the salt (it is in the config)
can hash candidate values and compare. The salt keeps this project's hashes from matching
plain SHA-256 tables or another project's hashes; for values that must not be recoverable
(few distinct values, guessable ones), use `drop`. Standard library only: the predict function
imports this module on every cold start.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["hash", "drop"]
MISSING = ""
"""The missing category (`functions.ml.onnx_input.MISSING_CATEGORY`)."""
HASH_CHARS = 16


def category_text(value: Any) -> str:
    """A value as categorical text, exactly as `onnx_input.category` converts it (without
    importing numpy): None and NaN are missing, strings stay, anything else is `str(value)`."""
    if value is None:
        return MISSING
    if isinstance(value, str):
        return value if type(value) is str else str(value)
    # float, or a numpy scalar (they carry a dtype): NaN is missing
    if isinstance(value, float) or hasattr(value, "dtype"):
        try:
            if math.isnan(value):
                return MISSING
        except TypeError:
            pass
    return str(value)


def hash_value(value: Any, salt: str = "") -> str:
    """The stored form of one value of a `hash` column (missing stays `""`)."""
    text = category_text(value)
    if text == MISSING:
        return MISSING
    data = text.encode()
    if salt:
        return hmac.new(salt.encode(), data, hashlib.sha256).hexdigest()[:HASH_CHARS]
    return hashlib.sha256(data).hexdigest()[:HASH_CHARS]


@dataclass(frozen=True)
class SensitiveColumns:
    """The `[dataset] sensitive` map and salt, applied to rows before they are stored."""

    modes: Mapping[str, Mode] = field(default_factory=dict)
    salt: str = ""

    @property
    def hashed(self) -> frozenset[str]:
        return frozenset(name for name, mode in self.modes.items() if mode == "hash")

    @property
    def dropped(self) -> frozenset[str]:
        return frozenset(name for name, mode in self.modes.items() if mode == "drop")

    def __bool__(self) -> bool:
        return bool(self.modes)

    def stored(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """`row` as it may be stored: `hash` columns hashed, `drop` columns left out."""
        if not self.modes:
            return dict(row)
        stored = {}
        for name, value in row.items():
            mode = self.modes.get(name)
            if mode is None:
                stored[name] = value
            elif mode == "hash":
                stored[name] = hash_value(value, self.salt)
        return stored
