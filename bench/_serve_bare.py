"""Serve ``bench/bare_app.py`` exactly as ``alquimista-ops serve`` serves the application
(same server, options and worker count). Usage: _serve_bare.py bare_app:app --port P --workers N"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alquimista_ops.core.server import run_server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    run_server(args.target, factory=False, host=args.host, port=args.port, workers=args.workers)


if __name__ == "__main__":
    main()
