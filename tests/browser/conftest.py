"""Headless Chromium for the browser tests: Debian's /usr/bin/chromium driven by the Python
`playwright` package (no browser download). bin/test installs the chromium package when missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.db import connections

CHROMIUM = os.environ.get("FORGET_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENS_DIR = Path(__file__).resolve().parents[2] / "var" / "screens"


@pytest.fixture
def page(monkeypatch):
    """A fresh browser page; the browser is closed after the test.

    Playwright's sync API keeps an asyncio loop running in this thread, and Django refuses
    database calls from a thread with a running loop. The test itself (reading the database to
    check what the pages did) is synchronous code, so the guard is lifted for the browser's
    lifetime only; the flag is restored before the database is flushed.
    """
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (bin/test does it when run as root)")
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        context.set_default_timeout(15_000)
        try:
            yield context.new_page()
        finally:
            context.close()
            browser.close()
            # Django keeps connections in an asgiref Local, which hands code running beside an
            # event loop (Playwright's) its own storage: the test body got a second connection.
            # Close it here, or it outlives the test and the test database cannot be dropped.
            connections.close_all()


@pytest.fixture
def screens_dir() -> Path:
    SCREENS_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENS_DIR
