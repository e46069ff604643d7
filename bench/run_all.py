"""Run every benchmark script of this directory (``make bench``) and print their figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = ("seed_large.py",)


def main() -> int:
    here = Path(__file__).resolve().parent
    status = 0
    for script in BENCHMARKS:
        print(f"== {script}", flush=True)
        status |= subprocess.call([sys.executable, str(here / script)])
    return status


if __name__ == "__main__":
    sys.exit(main())
