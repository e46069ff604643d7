"""Alembic environment: runs on the connection handed over by ``core.migrate``.

It imports nothing of the application. ``config.attributes``: ``connection`` (required),
``schema`` (of the version table), and, for comparing models with a database only,
``target_metadata`` and ``include_object`` (default None: running migrations needs neither).
"""

from __future__ import annotations

from alembic import context

config = context.config

context.configure(
    connection=config.attributes["connection"],
    target_metadata=config.attributes.get("target_metadata"),
    include_object=config.attributes.get("include_object"),
    version_table_schema=config.attributes.get("schema"),
    compare_type=True,
    compare_server_default=False,
)

with context.begin_transaction():
    context.run_migrations()
