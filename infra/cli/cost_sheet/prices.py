"""The price file (`infra/cli/cost_sheet/prices.toml`): list prices of one region on one date."""

from __future__ import annotations

import datetime
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PRICES_FILE = Path(__file__).resolve().parent / "prices.toml"


class PriceFileError(ValueError):
    """The price file is missing, unreadable, undated, or a price is malformed or unknown."""


@dataclass(frozen=True)
class Price:
    name: str
    usd: float
    unit: str
    what: str


@dataclass(frozen=True)
class PriceList:
    date: datetime.date
    region: str
    currency: str
    source: str
    """The file the prices come from (for the sheet's provenance)."""
    prices: dict[str, Price]
    sagemaker_instance_hour: dict[str, float]
    sources: dict[str, str]

    @property
    def source_name(self) -> str:
        """The price file as the sheet names it: relative to the repository when inside it."""
        path = Path(self.source).resolve()
        root = PRICES_FILE.parents[3]
        return str(path.relative_to(root)) if path.is_relative_to(root) else self.source

    def __getitem__(self, name: str) -> Price:
        try:
            return self.prices[name]
        except KeyError:
            raise PriceFileError(f"{self.source}: no price {name!r}") from None

    def instance_hour(self, instance_type: str) -> float:
        try:
            return self.sagemaker_instance_hour[instance_type]
        except KeyError:
            known = ", ".join(sorted(self.sagemaker_instance_hour))
            raise PriceFileError(
                f"{self.source}: no SageMaker training price for {instance_type} "
                f"(priced: {known}); add it to [sagemaker_training_instance_hour]"
            ) from None


def load_prices(path: Path | None = None) -> PriceList:
    """The price file, checked: dated, a region and currency, every price a positive `usd`
    with a `unit` and `what`. Raises PriceFileError naming the file and the problem."""
    path = path or PRICES_FILE
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PriceFileError(f"{path}: {exc}") from None
    return parse_prices(raw, str(path))


def parse_prices(raw: dict[str, Any], source: str) -> PriceList:
    for key in ("date", "region", "currency"):
        if key not in raw:
            raise PriceFileError(f"{source}: `{key}` is missing")
    date = raw["date"]
    if isinstance(date, str):
        try:
            date = datetime.date.fromisoformat(date)
        except ValueError:
            raise PriceFileError(f"{source}: date {raw['date']!r} is not YYYY-MM-DD") from None
    if not isinstance(date, datetime.date):
        raise PriceFileError(f"{source}: date {raw['date']!r} is not YYYY-MM-DD")
    prices: dict[str, Price] = {}
    for name, entry in (raw.get("prices") or {}).items():
        where = f"{source}: prices.{name}"
        if not isinstance(entry, dict) or set(entry) != {"usd", "unit", "what"}:
            raise PriceFileError(f"{where} needs exactly `usd`, `unit` and `what`")
        usd = entry["usd"]
        if isinstance(usd, bool) or not isinstance(usd, int | float) or usd <= 0:
            raise PriceFileError(f"{where}.usd must be a positive number, not {usd!r}")
        prices[name] = Price(name, float(usd), str(entry["unit"]), str(entry["what"]))
    instances: dict[str, float] = {}
    for instance, usd in (raw.get("sagemaker_training_instance_hour") or {}).items():
        if isinstance(usd, bool) or not isinstance(usd, int | float) or usd <= 0:
            raise PriceFileError(
                f"{source}: sagemaker_training_instance_hour.{instance} must be a positive "
                f"number, not {usd!r}"
            )
        instances[instance] = float(usd)
    return PriceList(
        date=date,
        region=str(raw["region"]),
        currency=str(raw["currency"]),
        source=source,
        prices=prices,
        sagemaker_instance_hour=instances,
        sources={str(k): str(v) for k, v in (raw.get("sources") or {}).items()},
    )
