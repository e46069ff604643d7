"""Column types and SQL helpers shared by the schema and the queries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A ``timestamptz`` read and written as an aware UTC datetime (a naive one is taken as
    UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


JSONType = postgresql.JSONB()
UUIDType = sa.Uuid(as_uuid=True)


def typed_null(type_: Any, name: str) -> sa.ColumnElement[Any]:
    """A NULL column of ``type_`` named ``name``, for the branches of a UNION ALL that have no
    value there: typed, so that PostgreSQL matches the union's column types."""
    return sa.cast(sa.null(), type_).label(name)


def kind_column(value: int) -> sa.ColumnElement[int]:
    """The ``kind`` column that tells a UNION ALL's branches apart (a literal, not a bound
    value, so the statement stays the same for every execution)."""
    return sa.literal_column(str(value), sa.Integer()).label("kind")


def bigint_or_zero(value: sa.ColumnElement[Any]) -> sa.ColumnElement[int]:
    """An integer figure (a sum of integers, say) as a BIGINT, 0 for NULL: PostgreSQL's SUM of
    a BIGINT is a NUMERIC, which the driver decodes into a Decimal, several times slower than
    an integer."""
    return sa.cast(sa.func.coalesce(value, 0), sa.BigInteger())


def double_or_zero(value: sa.ColumnElement[Any]) -> sa.ColumnElement[float]:
    """A NUMERIC figure that an answer shows as a rounded float (a weighted sum for an average,
    a cost) as a double, 0 for NULL: decoded several times faster than a Decimal, and the cast
    rounds to the nearest double as ``float(Decimal)`` does. Cast once summed, not before."""
    return sa.cast(sa.func.coalesce(value, 0), sa.Float())


def utc_date(value: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The UTC calendar day of a ``UTCDateTime`` column, in SQL (the timestamp at time zone UTC,
    cast to a date; the zone written as a literal, not a bound value)."""
    return sa.cast(sa.func.timezone(sa.literal_column("'UTC'"), value), sa.Date())
