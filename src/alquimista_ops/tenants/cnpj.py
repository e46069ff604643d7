"""CNPJ: 14 digits whose last two are check digits."""

from __future__ import annotations

import random

_W1 = (5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
_W2 = (6, *_W1)


def _digit(digits: list[int], weights: tuple[int, ...]) -> int:
    remainder = sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
    return 0 if remainder < 2 else 11 - remainder


def check_digits(base12: str) -> str:
    digits = [int(c) for c in base12]
    first = _digit(digits, _W1)
    second = _digit([*digits, first], _W2)
    return f"{first}{second}"


def format_cnpj(digits: str) -> str:
    if len(digits) != 14:
        return digits
    return f"{digits[:2]}.{digits[2:5]}.{digits[5:8]}/{digits[8:12]}-{digits[12:]}"


def generate(rng: random.Random) -> str:
    base = f"{rng.randrange(10**8):08d}0001"
    return base + check_digits(base)
