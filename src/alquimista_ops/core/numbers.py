"""Request-weighted ratios and rounding used by every usage figure."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def rate(part: Any, whole: Any, digits: int = 2) -> float:
    """Percentage of part in whole (0 when whole is 0)."""
    whole_f = float(whole or 0)
    if whole_f == 0:
        return 0.0
    return round(float(part or 0) * 100.0 / whole_f, digits)


def weighted_avg(weighted_sum: Any, weight: Any, digits: int = 2) -> float:
    weight_f = float(weight or 0)
    if weight_f == 0:
        return 0.0
    return round(float(weighted_sum or 0) / weight_f, digits)


_CENT = Decimal("0.01")


def money(value: Any) -> float:
    if isinstance(value, Decimal):  # most values (numeric sums): no round trip through text
        return float(value.quantize(_CENT)) if value else 0.0
    return float(Decimal(str(value or 0)).quantize(_CENT))
