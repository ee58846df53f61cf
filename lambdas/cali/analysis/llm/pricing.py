"""Model prices per million tokens, for the cost shown on each alert and the daily budget."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens."""

    input_per_million: float
    output_per_million: float


DEFAULT_PRICES: Mapping[str, ModelPrice] = {
    # Public list prices (USD / 1M tokens). Override with LLM_PRICES for other models or
    # negotiated rates; an unknown model costs 0 and the result is flagged.
    "gpt-4o-mini": ModelPrice(0.15, 0.60),
    "gpt-4o": ModelPrice(2.50, 10.00),
    "gpt-4.1": ModelPrice(2.00, 8.00),
    "gpt-4.1-mini": ModelPrice(0.40, 1.60),
    "gpt-4.1-nano": ModelPrice(0.10, 0.40),
    "gpt-5": ModelPrice(1.25, 10.00),
    "gpt-5-mini": ModelPrice(0.25, 2.00),
    "gpt-5-nano": ModelPrice(0.05, 0.40),
}

_DATED_SNAPSHOT = re.compile(r"^-\d{4}-\d{2}-\d{2}$")


def price_for(model: str, prices: Mapping[str, ModelPrice]) -> ModelPrice | None:
    """Exact name, or a dated snapshot of it (``gpt-4o-mini-2024-07-18``)."""
    if model in prices:
        return prices[model]
    for name, price in prices.items():
        if model.startswith(name) and _DATED_SNAPSHOT.match(model[len(name) :]):
            return price
    return None
