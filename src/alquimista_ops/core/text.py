from __future__ import annotations

import unicodedata


def fold(value: str) -> str:
    """Lower-case, accent-free form used for case- and accent-insensitive search."""
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower().strip()
