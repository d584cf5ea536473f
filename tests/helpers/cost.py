"""The cost sheet of the dev stack's committed template snapshot, with the committed measured
inputs and price file, or with any of them changed."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from functions.common.config.loading import MlopsConfig, load_config
from infra.cli.cost_sheet.parts import Measured, Sheet, load_measured
from infra.cli.cost_sheet.prices import PriceList, load_prices
from infra.cli.cost_sheet.sheet import build_sheet
from infra.cli.cost_sheet.stack import stack_facts
from tests.helpers import REPO

DEV_TEMPLATE = REPO / "tests" / "infra" / "snapshots" / "mlops-dev.template.json"


def dev_template() -> dict[str, Any]:
    """A fresh copy of the dev stack's template snapshot, to change."""
    return copy.deepcopy(_TEMPLATE)


def resource(template: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The properties (to change in place) of the resource whose logical id is `prefix` and
    CDK's 8-digit hash."""
    (found,) = [
        r for k, r in template["Resources"].items() if re.fullmatch(prefix + "[0-9A-F]{8}", k)
    ]
    properties: dict[str, Any] = found["Properties"]
    return properties


def sheet(
    template: dict[str, Any] | None = None,
    config: MlopsConfig | None = None,
    prices: PriceList | None = None,
    measured: Measured | None = None,
    predictions_per_month: float = 1_000_000,
    retrains_per_month: float | None = None,
) -> Sheet:
    return build_sheet(
        stack="mlops-dev",
        stage="dev",
        facts=stack_facts(template or _TEMPLATE, str(DEV_TEMPLATE)),
        config=(config or load_config(REPO / "mlops.toml")).for_stage("dev"),
        prices=prices or load_prices(),
        measured=measured or load_measured(),
        predictions_per_month=predictions_per_month,
        retrains_per_month=retrains_per_month,
    )


def line_usd(result: Sheet, figure: str, item: str) -> float:
    (found,) = [line.usd for line in result.figures[figure].lines if line.item.startswith(item)]
    return found


_TEMPLATE: dict[str, Any] = json.loads(DEV_TEMPLATE.read_text(encoding="utf-8"))
