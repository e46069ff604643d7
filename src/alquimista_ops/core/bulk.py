"""Bulk loading: COPY on PostgreSQL, batched executemany on SQLite."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alquimista_ops.core.db import is_postgres

COPY_CHUNK_ROWS = 50_000


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (date, uuid.UUID, int, float, Decimal)):
        return str(value)
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def bulk_insert(
    conn: Connection, table: sa.Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """Insert ``rows`` (tuples in ``columns`` order) as fast as the database allows."""
    if is_postgres(conn):
        return _copy(conn, table, columns, rows)
    count = 0
    batch: list[dict[str, Any]] = []
    statement = sa.insert(table)
    for row in rows:
        batch.append(dict(zip(columns, row, strict=True)))
        if len(batch) >= 5_000:
            conn.execute(statement, batch)
            count += len(batch)
            batch = []
    if batch:
        conn.execute(statement, batch)
        count += len(batch)
    return count


def _copy(
    conn: Connection, table: sa.Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    driver_conn = conn.connection.driver_connection
    assert driver_conn is not None
    cols = ", ".join(f'"{c}"' for c in columns)
    count = 0
    with driver_conn.cursor() as cur, cur.copy(f'COPY "{table.name}" ({cols}) FROM STDIN') as copy:
        buffer = io.StringIO()
        pending = 0
        for row in rows:
            buffer.write("\t".join(_copy_text(v) for v in row))
            buffer.write("\n")
            pending += 1
            if pending >= COPY_CHUNK_ROWS:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
                count += pending
                pending = 0
        if pending:
            copy.write(buffer.getvalue())
            count += pending
    return count
