"""A checklist result shared by ``deploy validate`` and ``smoke-test``."""

from __future__ import annotations

from dataclasses import dataclass

import typer


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str = ""
    skipped: bool = False

    def line(self) -> str:
        mark = "SKIP" if self.skipped else "PASS" if self.passed else "FAIL"
        return f"{mark}  {self.name}" + (f" — {self.detail}" if self.detail else "")


def report(checks: list[Check], title: str) -> int:
    """Print one line per check and a summary; the exit code is 1 when any check failed."""
    for check in checks:
        typer.echo(check.line())
    failed = sum(1 for c in checks if not c.passed and not c.skipped)
    skipped = sum(1 for c in checks if c.skipped)
    ran = len(checks) - skipped
    summary = f"{title}: {ran - failed} of {ran} checks passed"
    typer.echo(summary + (f" ({skipped} skipped)" if skipped else ""))
    return 1 if failed else 0
