"""Capture the README screenshots from the real application.

Starts ``alquimista-ops dev`` on the embedded PostgreSQL server in a temporary VAR_DIR (demo data
loaded on first start), signs in with the printed demo accounts and saves one PNG per main page
(1366x900) beside this script, driving the Debian Chromium with Playwright.

    .venv/bin/python docs/screenshots/capture.py [--port 8087] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VIEWPORT = {"width": 1366, "height": 900}


def start_server(port: int, var_dir: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update({"VAR_DIR": var_dir, "ENV": "dev", "LOG_LEVEL": "WARNING", "REDIS_HOST": ""})
    tool = Path(sys.executable).with_name("alquimista-ops")
    process = subprocess.Popen(
        [str(tool), "dev", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    accounts: dict[str, str] = {}
    assert process.stdout is not None
    for line in process.stdout:
        print(line.rstrip())
        parts = line.split()
        if len(parts) == 3 and parts[0].isupper() and "@" in parts[1]:
            accounts[parts[0]] = f"{parts[1]} {parts[2]}"
        if line.startswith("Dashboard:"):
            break
    # keep reading the server's output so that it never blocks on a full pipe
    threading.Thread(target=lambda: [None for _ in process.stdout or []], daemon=True).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return process, accounts
        except OSError:
            time.sleep(0.3)
    process.terminate()
    raise SystemExit("the server did not start")


def sign_in(page: Any, base: str, credentials: str) -> None:
    email, password = credentials.split(" ", 1)
    page.goto(base + "/login")
    page.fill("#username", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def shoot(page: Any, base: str, path: str, name: str) -> None:
    if path:
        page.goto(base + path)
        page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)  # charts drawn (animation is off)
    page.screenshot(path=str(HERE / f"{name}.png"))
    print(f"saved {name}.png ({path or page.url})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8087)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    base = f"http://127.0.0.1:{args.port}"
    with tempfile.TemporaryDirectory(prefix="opdash-shots-") as var_dir:
        process, accounts = start_server(args.port, var_dir)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=args.chromium, args=["--no-sandbox", "--disable-gpu"]
                )
                tenant = browser.new_context(viewport=VIEWPORT, locale="pt-BR")
                page = tenant.new_page()
                page.goto(base + "/login")
                shoot(page, base, "", "login")
                sign_in(page, base, accounts["TENANT_ADMIN"])
                shoot(page, base, "/dashboard", "tenant-overview")
                shoot(page, base, "/dashboard/usage", "tenant-usage")
                tenant.close()

                staff = browser.new_context(viewport=VIEWPORT, locale="pt-BR")
                page = staff.new_page()
                sign_in(page, base, accounts["INTERNAL_ADMIN"])
                shoot(page, base, "/company", "company-overview")
                shoot(page, base, "/company/tenants?status=all", "tenants-list")
                page.click("#tenants-table tbody th a >> nth=0")
                page.wait_for_load_state("networkidle")
                shoot(page, base, "", "tenant-detail")
                shoot(page, base, "/company/usage", "usage-overview")
                shoot(page, base, "/company/billing", "billing")
                page.goto(base + "/company/operations")
                page.select_option("#command_type", "HEALTH_CHECK")
                page.click("#command-form button[type=submit]")
                page.locator("#command-history tbody tr >> nth=0").locator(
                    ".badge-SUCCESS"
                ).wait_for(timeout=30_000)
                shoot(page, base, "", "operations")
                staff.close()
                browser.close()
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
