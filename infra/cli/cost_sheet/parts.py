"""The parts of the cost sheet: named inputs with where each comes from, lines (a formula over
inputs, evaluated as written), figures (sums of lines), the sheet itself, and the measured inputs
`make bench` records (`bench/cost_inputs.json`). `infra.cli.cost_sheet.sheet` builds the sheet
from them."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from infra.cli.cost_sheet.formula import evaluate, names
from infra.cli.cost_sheet.prices import PriceList

REPO = Path(__file__).resolve().parents[3]
MEASURED_FILE = REPO / "bench" / "cost_inputs.json"

Source = Literal["template", "config", "measured", "price", "option", "constant", "figure"]


class MeasuredInputsError(ValueError):
    """The measured inputs file is missing, unreadable, or lacks a figure the sheet needs."""


@dataclass(frozen=True)
class Input:
    name: str
    value: float
    unit: str
    source: Source
    where: str


@dataclass(frozen=True)
class Line:
    item: str
    formula: str
    inputs: tuple[Input, ...]
    usd: float


@dataclass
class Figure:
    key: str
    title: str
    note: str
    lines: list[Line] = field(default_factory=list)

    @property
    def usd(self) -> float:
        return sum(line.usd for line in self.lines)


@dataclass(frozen=True)
class Measured:
    date: str
    machine: str
    command: str
    source: str
    figures: dict[str, tuple[float, str, str]]
    """name -> (value, unit, what)."""


@dataclass
class Sheet:
    stack: str
    stage: str
    template: str
    prices: PriceList
    measured: Measured
    volumes: dict[str, float]
    figures: dict[str, Figure]
    notes: list[str]

    def prices_used(self) -> set[str]:
        """The names of the price file's prices some line of the sheet multiplies."""
        return {
            i.name.removeprefix("price_")
            for figure in self.figures.values()
            for line in figure.lines
            for i in line.inputs
            if i.source == "price" and i.name.startswith("price_")
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "stage": self.stage,
            "template": self.template,
            "prices": {
                "file": self.prices.source,
                "date": self.prices.date.isoformat(),
                "region": self.prices.region,
                "currency": self.prices.currency,
            },
            "measured": {
                "file": self.measured.source,
                "date": self.measured.date,
                "machine": self.measured.machine,
                "command": self.measured.command,
            },
            "volumes": self.volumes,
            "figures": {
                key: {
                    "title": figure.title,
                    "note": figure.note,
                    "usd": figure.usd,
                    "lines": [
                        {
                            "item": line.item,
                            "formula": line.formula,
                            "usd": line.usd,
                            "inputs": [
                                {
                                    "name": i.name,
                                    "value": i.value,
                                    "unit": i.unit,
                                    "source": i.source,
                                    "where": i.where,
                                }
                                for i in line.inputs
                            ],
                        }
                        for line in figure.lines
                    ],
                }
                for key, figure in self.figures.items()
            },
            "notes": self.notes,
        }


def load_measured(path: Path | None = None) -> Measured:
    path = path or MEASURED_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        figures = {
            str(name): (float(entry["value"]), str(entry["unit"]), str(entry["what"]))
            for name, entry in raw["figures"].items()
        }
        return Measured(
            date=str(raw["date"]),
            machine=str(raw["machine"]),
            command=str(raw["command"]),
            source=shown(path),
            figures=figures,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise MeasuredInputsError(
            f"{path}: {exc.__class__.__name__}: {exc} (write it with `python bench/cost_inputs.py`)"
        ) from None


def shown(path: Path) -> str:
    """A path as the sheet shows it: relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


class Inputs:
    """The named inputs of every formula, each with its provenance."""

    def __init__(self, prices: PriceList, measured: Measured) -> None:
        self.prices = prices
        self.measured = measured
        self.known: dict[str, Input] = {}

    def add(self, name: str, value: float, unit: str, source: Source, where: str) -> None:
        self.known[name] = Input(name, float(value), unit, source, where)

    def price(self, name: str) -> None:
        price = self.prices[name]
        self.add(f"price_{name}", price.usd, f"USD/{price.unit}", "price", name)

    def measure(self, name: str) -> None:
        if name not in self.measured.figures:
            raise MeasuredInputsError(
                f"{self.measured.source}: no figure {name!r} (rerun `python bench/cost_inputs.py`)"
            )
        value, unit, what = self.measured.figures[name]
        self.add(name, value, unit, "measured", what)

    def line(self, item: str, formula: str) -> Line:
        used = sorted(names(formula))
        missing = [name for name in used if name not in self.known]
        for name in missing:
            if name.startswith("price_"):
                self.prices[name.removeprefix("price_")]  # raises PriceFileError naming it
        if missing:
            raise KeyError(f"formula {formula!r} uses unknown inputs {missing}")
        inputs = tuple(self.known[name] for name in used)
        return Line(item, formula, inputs, evaluate(formula, {i.name: i.value for i in inputs}))
