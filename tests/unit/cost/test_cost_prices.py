"""The price file is dated, names its region, and holds exactly the prices the sheet's
formulas multiply: none missing, none unused."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from functions.common.config.loading import load_config
from infra.cli.cost_sheet.prices import PRICES_FILE, PriceFileError, load_prices, parse_prices
from tests.helpers import REPO
from tests.helpers.cost import dev_template, resource, sheet


def test_the_price_file_is_dated_for_us_east_1_and_not_in_the_future() -> None:
    prices = load_prices()
    assert prices.region == "us-east-1"
    assert prices.currency == "USD"
    assert prices.date <= datetime.date.today()
    assert prices.sources
    text = PRICES_FILE.read_text()
    assert "list prices" in text and "free tier" in text


def test_every_price_is_used_by_a_formula_and_every_used_price_exists() -> None:
    config = load_config(REPO / "mlops.toml")
    sagemaker = config.model_copy(
        update={"train": config.train.model_copy(update={"backend": "sagemaker"})}
    )
    template = dev_template()
    resource(template, "ServingLive")["ProvisionedConcurrencyConfig"] = {
        "ProvisionedConcurrentExecutions": 1
    }
    used = sheet(template).prices_used() | sheet(config=sagemaker).prices_used()
    assert used == set(load_prices().prices)
    # The default SageMaker instance type is priced.
    assert load_prices().instance_hour(config.train.sagemaker.instance_type) > 0


def test_a_price_the_sheet_needs_missing_from_the_file_is_named() -> None:
    prices = load_prices()
    thinner = {k: v for k, v in prices.prices.items() if k != "api_gateway_rest_request"}
    with pytest.raises(PriceFileError, match="no price 'api_gateway_rest_request'"):
        sheet(prices=type(prices)(**{**prices.__dict__, "prices": thinner}))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"date": None}, "`date` is missing"),
        ({"date": "December 2026"}, "is not YYYY-MM-DD"),
        ({"prices": {"x": {"usd": -1, "unit": "GB", "what": "x"}}}, "must be a positive number"),
        ({"prices": {"x": {"usd": 1, "unit": "GB"}}}, "needs exactly `usd`, `unit` and `what`"),
    ],
)
def test_a_malformed_price_file_is_refused_with_the_problem(
    change: dict[str, object], problem: str
) -> None:
    raw: dict[str, object] = {"date": "2026-12-02", "region": "us-east-1", "currency": "USD"}
    raw.update(change)
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(PriceFileError, match=problem):
        parse_prices(raw, "prices.toml")


def test_an_unpriced_sagemaker_instance_type_is_named(tmp_path: Path) -> None:
    with pytest.raises(PriceFileError, match=r"no SageMaker training price for ml\.p5\.48xlarge"):
        load_prices().instance_hour("ml.p5.48xlarge")
