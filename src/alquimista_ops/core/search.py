"""The free-text ``search`` parameter: bounded length and charset, folded for matching.

Allowed: letters (any script, with accents), digits, spaces and ``. , ' " & ( ) / - + @``.
Anything else (``< > ; = * % _ \\ ` `` control characters …) is refused with a 400 naming the
field, so markup and SQL fragments never reach a query; allowed quotes are matched literally
(every query binds the value as a parameter).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from alquimista_ops.core.errors import ValidationFailed
from alquimista_ops.core.text import fold

MAX_SEARCH_LENGTH = 100
_ALLOWED_PUNCTUATION = set(".,'\"&()/-+@ ")
_DIGITS_ONLY = re.compile(r"^[\d./\- ]+$")


@dataclass(frozen=True, slots=True)
class SearchTerm:
    raw: str
    folded: str  # lower-case, accent-free, for name matching
    digits: str | None  # the digits, when the term looks like (part of) a CNPJ


def parse_search(value: str | None, field: str = "search") -> SearchTerm | None:
    if value is None:
        return None
    text = unicodedata.normalize("NFC", value).strip()
    if not text:
        return None
    if len(text) > MAX_SEARCH_LENGTH:
        raise ValidationFailed(
            f"'{field}' is longer than {MAX_SEARCH_LENGTH} characters", details={"field": field}
        )
    for char in text:
        if char.isalnum() or char in _ALLOWED_PUNCTUATION:
            continue
        raise ValidationFailed(
            f"'{field}' contains a character that is not allowed: {char!r}",
            details={
                "field": field,
                "allowed": "letters, digits, spaces and . , ' \" & ( ) / - + @",
            },
        )
    digits = re.sub(r"\D", "", text) if _DIGITS_ONLY.match(text) else None
    return SearchTerm(raw=text, folded=fold(text), digits=digits or None)
