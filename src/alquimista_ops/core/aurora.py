"""Seam for building the PostgreSQL URL from the Aurora secret (AURORA_SECRET_ARN).

The Secrets Manager lookup itself is implemented by the AWS adapter; until then the seam
refuses clearly instead of guessing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alquimista_ops.core.settings import Settings


def database_url_from_secret(settings: Settings) -> str:
    raise RuntimeError(
        "AURORA_SECRET_ARN is set but building the database URL from Secrets Manager is not "
        "available in this build; set DATABASE_URL instead"
    )
