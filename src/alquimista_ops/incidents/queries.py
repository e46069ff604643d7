"""SQL for incidents: operational events of severity warning or worse."""

from __future__ import annotations

from functools import cache
from typing import Any

import sqlalchemy as sa

from alquimista_ops.core.reads import Query
from alquimista_ops.core.schema import INCIDENT_SEVERITIES, open_incidents, tenants
from alquimista_ops.core.schema import operational_events as ev
from alquimista_ops.core.types import (
    UTCDateTime,
    UUIDType,
    bigint_or_zero,
    kind_column,
    typed_null,
)

# Rendered as literals: an IN of bound values would be expanded on every execution.
_IS_INCIDENT = ev.c.severity.in_([sa.literal_column(f"'{s}'") for s in INCIDENT_SEVERITIES])

_PAGE_COLUMNS = (
    ev.c.id,
    ev.c.tenant_id,
    ev.c.severity,
    ev.c.title,
    ev.c.description,
    ev.c.event_category,
    ev.c.created_at,
    ev.c.resolved_at,
)
_ORDER = (ev.c.created_at.desc(), ev.c.id)


def _counter_columns(total_filter: list[Any] | None) -> list[sa.ColumnElement[Any]]:
    count = sa.func.count()
    return [
        (count.filter(*total_filter) if total_filter else count).label("total"),
        sa.func.count().filter(ev.c.resolved_at.is_(None)).label("open"),
        sa.func.count().filter(ev.c.resolved_at.is_not(None)).label("resolved"),
        sa.func.count()
        .filter(ev.c.resolved_at.is_(None), ev.c.severity == "critical")
        .label("critical_open"),
    ]


def _status(status: str) -> str:
    """open, resolved or all (anything else): the statement shapes stay bounded."""
    return status if status in ("open", "resolved") else "all"


def _filters(status: str, by_severity: bool) -> list[Any]:
    """The status/severity conditions (``severity`` bound) on top of the incident ones."""
    conditions: list[Any] = []
    if status == "open":
        conditions.append(ev.c.resolved_at.is_(None))
    elif status == "resolved":
        conditions.append(ev.c.resolved_at.is_not(None))
    if by_severity:
        conditions.append(ev.c.severity == sa.bindparam("severity"))
    return conditions


# The tenant's (``tid``) latest ``limit`` incidents (any status), latest first.
RECENT_FOR_TENANT = Query(
    sa.select(*_PAGE_COLUMNS)
    .where(_IS_INCIDENT, ev.c.tenant_id == sa.bindparam("tid"))
    .order_by(*_ORDER)
    .limit(sa.bindparam("limit"))
)


# -- a tenant's incidents: one page, its total and the counters in one statement --------------
COUNTERS, INCIDENT = 0, 1


@cache
def _tenant_incidents(status: str, by_severity: bool) -> Query:
    mine = [_IS_INCIDENT, ev.c.tenant_id == sa.bindparam("tid")]
    filters = _filters(status, by_severity)
    page = (
        sa.select(*_PAGE_COLUMNS)
        .where(*mine, *filters)
        .order_by(*_ORDER)
        .limit(sa.bindparam("limit"))
        .offset(sa.bindparam("offset"))
        .subquery("page")
    )
    incidents = sa.select(
        kind_column(INCIDENT),
        *page.c,
        *(
            typed_null(sa.Integer(), name)
            for name in ("total", "open", "resolved", "critical_open")
        ),
    )
    counters = sa.select(
        kind_column(COUNTERS),
        typed_null(UUIDType, "id"),
        typed_null(UUIDType, "tenant_id"),
        typed_null(sa.String(), "severity"),
        typed_null(sa.String(), "title"),
        typed_null(sa.Text(), "description"),
        typed_null(sa.String(), "event_category"),
        typed_null(UTCDateTime(), "created_at"),
        typed_null(UTCDateTime(), "resolved_at"),
        *_counter_columns(filters),
    ).where(*mine)
    both = sa.union_all(incidents, counters)
    c = both.selected_columns
    return Query(both.order_by(c.kind, c.created_at.desc(), c.id))


def tenant_incidents(status: str, by_severity: bool) -> Query:
    """One page (``limit``, ``offset``) of the tenant's (``tid``) incidents (``status``: open,
    resolved or all; optionally of one ``severity``), latest first, after the counters row
    (kind ``COUNTERS``): ``total`` (incidents matching the filters), ``open``, ``resolved``
    and ``critical_open`` (of all the tenant's incidents)."""
    return _tenant_incidents(_status(status), by_severity)


# The platform's open incidents and how many of them are critical (``open``,
# ``critical_open``), from the running counts the database's triggers keep (``open_incidents``,
# migration 0010; counting them on their partial index was the largest of the staff landing's
# statements).
OPEN_COUNTERS = Query(
    sa.select(
        bigint_or_zero(sa.func.sum(open_incidents.c.open)).label("open"),
        bigint_or_zero(
            sa.func.sum(open_incidents.c.open).filter(open_incidents.c.severity == "critical")
        ).label("critical_open"),
    )
)


@cache
def _recent_all_tenants(status: str) -> Query:
    return Query(
        sa.select(
            ev.c.id,
            ev.c.tenant_id,
            tenants.c.name.label("tenant_name"),
            ev.c.severity,
            ev.c.title,
            ev.c.event_category,
            ev.c.created_at,
            ev.c.resolved_at,
        )
        .select_from(ev.outerjoin(tenants, tenants.c.id == ev.c.tenant_id))
        .where(_IS_INCIDENT, *_filters(status, False))
        .order_by(*_ORDER)
        .limit(sa.bindparam("limit"))
    )


def recent_all_tenants(status: str) -> Query:
    """The latest ``limit`` incidents of every tenant (and of the platform), of ``status``,
    with the tenant's name."""
    return _recent_all_tenants(_status(status))
