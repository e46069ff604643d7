"""Bulk loading with PostgreSQL's COPY."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy.engine import Connection
from sqlalchemy.schema import AddConstraint, CreateIndex, DropConstraint, DropIndex

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
    """Insert ``rows`` (tuples in ``columns`` order) with ``COPY``."""
    return _copy(conn, table, columns, rows)


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


def copy_text(
    conn: Connection, table: sa.Table, columns: Sequence[str], chunks: Iterable[str]
) -> int:
    """COPY pre-formatted text into ``table`` (PostgreSQL only).

    Each chunk holds whole lines in COPY text format (tab-separated, ``\\N`` for NULL, each line
    ending with a newline); the caller is responsible for escaping. Returns the number of rows.
    """
    driver_conn = conn.connection.driver_connection
    assert driver_conn is not None
    cols = ", ".join(f'"{c}"' for c in columns)
    count = 0
    statement = f'COPY "{table.name}" ({cols}) FROM STDIN'
    # A writer thread sends the data while this thread formats the next chunks, so the server
    # ingests while Python generates.
    with (
        driver_conn.cursor() as cur,
        cur.copy(statement, writer=QueuedLibpqWriter(cur)) as copy,
    ):
        for chunk in chunks:
            if chunk:
                copy.write(chunk)
                count += chunk.count("\n")
    return count


@contextmanager
def bulk_load(conn: Connection, tables: Sequence[sa.Table]) -> Iterator[None]:
    """Load many rows into (empty) ``tables`` without per-row index and foreign key upkeep.

    The tables' secondary indexes and foreign keys are dropped first and rebuilt once at the
    end (one sort per index, one join per foreign key, which also validates every row), then
    the tables are analysed. It runs in the caller's transaction: on error the rollback
    restores the dropped objects.
    """
    foreign_keys = [
        c for t in tables for c in t.constraints if isinstance(c, sa.ForeignKeyConstraint)
    ]
    # A primary key is rebuilt too (which re-checks uniqueness) unless another table refers to it.
    primary_keys = [t.primary_key for t in tables if not _is_referenced(t)]
    indexes = [index for t in tables for index in sorted(t.indexes, key=lambda i: str(i.name))]
    conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '256MB'")
    for fk in foreign_keys:
        conn.execute(DropConstraint(fk))
    for pk in primary_keys:
        conn.execute(DropConstraint(pk))
    for index in indexes:
        conn.execute(DropIndex(index))
    yield
    for pk in primary_keys:
        conn.execute(AddConstraint(pk))
    for index in indexes:
        conn.execute(CreateIndex(index))
    for fk in foreign_keys:
        conn.execute(AddConstraint(fk))
    for table in tables:
        conn.exec_driver_sql(f'ANALYZE "{table.name}"')


def _is_referenced(table: sa.Table) -> bool:
    return any(
        fk.referred_table is table
        for other in table.metadata.tables.values()
        for fk in other.foreign_key_constraints
    )
