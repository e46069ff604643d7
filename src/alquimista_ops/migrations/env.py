"""Alembic environment: runs on the connection handed over by ``core.migrate``."""

from __future__ import annotations

from alembic import context

from alquimista_ops.core.schema import compared, metadata

config = context.config
connection = config.attributes["connection"]
schema = config.attributes.get("schema")


context.configure(
    connection=connection,
    include_object=compared,
    target_metadata=metadata,
    version_table_schema=schema,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    compare_server_default=False,
)

with context.begin_transaction():
    context.run_migrations()
