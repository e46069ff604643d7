"""Bounded query parameters shared by the routes: pagination and date periods."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import Depends, Query

from alquimista_ops.core.clock import utctoday
from alquimista_ops.core.errors import ValidationFailed

MAX_RANGE_DAYS = 366
PERIOD_DAYS = {"7d": 7, "30d": 30, "90d": 90}
PeriodName = Literal["7d", "30d", "90d"]


@dataclass(frozen=True, slots=True)
class Period:
    start: date
    end: date  # inclusive
    label: str

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def dates(self) -> tuple[date, ...]:
        """Every day of the period, in order (built once per start and length: the usage
        routes walk them on every request, and building 90 dates was ~5 % of the 90-day
        overview's CPU, profiled)."""
        return _dates(self.start, self.days)

    def as_dict(self) -> dict[str, object]:
        return {"label": self.label, "from": self.start, "to": self.end, "days": self.days}


@functools.lru_cache(maxsize=64)
def _dates(start: date, days: int) -> tuple[date, ...]:
    return tuple(start + timedelta(days=i) for i in range(days))


def resolve_period(
    period: str | None, start: date | None, end: date | None, *, today: date | None = None
) -> Period:
    today = today or utctoday()
    if start is not None or end is not None:
        if period is not None:
            raise ValidationFailed(
                "Pass either period or from/to, not both", details={"field": "period"}
            )
        if start is None or end is None:
            missing = "from" if start is None else "to"
            raise ValidationFailed(
                f"'{missing}' is required with a date range", details={"field": missing}
            )
        if end < start:
            raise ValidationFailed("'to' is before 'from'", details={"field": "to"})
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise ValidationFailed(
                f"A date range covers at most {MAX_RANGE_DAYS} days", details={"field": "to"}
            )
        return Period(start, end, "custom")
    name = period or "30d"
    if name not in PERIOD_DAYS:
        raise ValidationFailed("period must be one of 7d, 30d, 90d", details={"field": "period"})
    days = PERIOD_DAYS[name]
    return Period(today - timedelta(days=days - 1), today, name)


async def period_param(  # async: pure, so no thread-pool hop
    period: Annotated[PeriodName | None, Query(description="7d, 30d or 90d (default 30d)")] = None,
    start: Annotated[date | None, Query(alias="from", description="First day (YYYY-MM-DD)")] = None,
    end: Annotated[date | None, Query(alias="to", description="Last day (YYYY-MM-DD)")] = None,
) -> Period:
    return resolve_period(period, start, end)


PeriodDep = Annotated[Period, Depends(period_param)]


@dataclass(frozen=True, slots=True)
class Page:
    limit: int
    offset: int


MAX_OFFSET = 1_000_000


def page_param(default: int, maximum: int) -> Any:
    # Plain defaults (not Annotated): the bounds are closure values that string annotations
    # could not resolve.
    async def dependency(  # async: pure, so no thread-pool hop
        limit: int = Query(default, ge=1, le=maximum, description=f"At most {maximum}"),
        offset: int = Query(0, ge=0, le=MAX_OFFSET),
    ) -> Page:
        return Page(limit, offset)

    return Depends(dependency)
