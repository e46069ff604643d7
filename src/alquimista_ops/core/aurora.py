"""Seam for building the PostgreSQL URL from the Aurora secret (AURORA_SECRET_ARN).

The Secrets Manager lookup lives in the AWS adapter (``alquimista_ops.aws.aurora``, needs the
``aws`` extra); it is imported only when the setting is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alquimista_ops.core.settings import Settings


def database_url_from_secret(settings: Settings) -> str:
    from alquimista_ops.aws import aurora

    return aurora.database_url_from_secret(settings)
