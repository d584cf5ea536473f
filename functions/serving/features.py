"""The model's inputs as its signature names them (`signature.json`), and the producer's names.

A feature is named by its normalised name (the signature's `name`) or by any of its `aliases`:
the column names the data producer wrote, which ingestion normalised (`Monthly Charges ($)` for
`monthly_charges`). Giving one feature under two names is refused (`duplicate_feature`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from functions.ml.onnx_input import CATEGORICAL, by_feature_name


@dataclass(frozen=True)
class FeatureSpec:
    """One model input, from `signature.json`: `aliases` are the producer's names for it."""

    name: str
    kind: str
    categories: frozenset[str]
    aliases: tuple[str, ...] = ()

    @property
    def categorical(self) -> bool:
        return self.kind == CATEGORICAL


def feature_specs(signature: Mapping[str, Any]) -> tuple[FeatureSpec, ...]:
    return tuple(
        FeatureSpec(
            name=spec["name"],
            kind=spec["type"],
            categories=frozenset(spec.get("categories") or ()),
            aliases=tuple(spec.get("aliases") or ()),
        )
        for spec in signature["inputs"]
    )


@lru_cache(maxsize=8)
def alias_names(specs: tuple[FeatureSpec, ...]) -> dict[str, str]:
    """Alias -> feature name, for every feature's aliases (empty when none was renamed)."""
    return {alias: spec.name for spec in specs for alias in spec.aliases}


def feature_names(names: Sequence[str], specs: Sequence[FeatureSpec]) -> list[str]:
    """Given column names (a header, a Parquet schema) as feature names: an alias becomes its
    feature's name, any other name stays. Raises NamedTwiceError when two name one feature."""
    aliases = alias_names(tuple(specs))
    by_feature_name(dict.fromkeys(names), aliases)
    return [aliases.get(name, name) for name in names]
