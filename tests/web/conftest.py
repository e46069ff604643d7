"""Browser tests: the real app served by uvicorn on a free port, driven by Playwright in the
Debian Chromium (/usr/bin/chromium, headless). The browser is installed from Debian's packages
when missing; Playwright never downloads a browser."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from alquimista_ops.core.clock import utctoday
from tests.conftest import seeded

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def ensure_chromium() -> None:
    if os.path.exists(CHROMIUM):
        return
    if shutil.which("apt-get") and os.geteuid() == 0:
        # one installer at a time: the suite's xdist workers all get here on a new machine
        # (the second apt-get failed on dpkg's lock), and the later ones find it installed
        with open(os.path.join(tempfile.gettempdir(), "opdash-chromium.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not os.path.exists(CHROMIUM):
                env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
                apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]
                subprocess.run([*apt, "update", "-qq"], check=False, env=env)
                subprocess.run([*apt, "install", "-y", "-qq", "chromium"], check=True, env=env)
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: install the Debian package 'chromium'")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    ensure_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


class Session:
    """One browser context (its own cookies) that records console errors."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.base_url = base_url
        self.context = browser.new_context(viewport={"width": 1366, "height": 900}, locale="pt-BR")
        self.page = self.context.new_page()
        self.console_errors: list[str] = []
        self.page.on(
            "console",
            lambda msg: self.console_errors.append(msg.text) if msg.type == "error" else None,
        )
        self.page.on("pageerror", lambda exc: self.console_errors.append(str(exc)))

    def goto(self, path: str) -> Any:
        response = self.page.goto(self.base_url + path)
        self.page.wait_for_load_state("networkidle")
        return response

    def sign_in(self, email: str, password: str) -> None:
        self.goto("/login")
        self.page.fill("#username", email)
        self.page.fill("#password", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_load_state("networkidle")

    def menu(self) -> list[str]:
        return [
            a.get_attribute("href").split("?")[0]
            for a in self.page.query_selector_all("nav.menu a")
        ]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def web(browser: Any, live_server: str) -> Iterator[Any]:
    sessions: list[Session] = []

    def open_session() -> Session:
        session = Session(browser, live_server)
        sessions.append(session)
        return session

    yield open_session
    for session in sessions:
        session.close()


@pytest.fixture(scope="module")
def demo_data(engine: Any, runtime: Any) -> Iterator[Any]:
    """The seeded data set, ending today: the pages offer periods that end today (7, 30 and 90
    days), so with the API tests' fixed date a 7-day page showed no data a week later."""
    yield from seeded(engine, runtime, utctoday())
