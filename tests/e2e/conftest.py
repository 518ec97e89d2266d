"""A real superpos server on a free loopback port, shared by the end-to-end tests."""

from __future__ import annotations

import os
import socket
import tempfile

import pytest

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server_url():
    """The app on the CPU, or on the device named by SUPERPOS_TEST_DEVICE (``cuda``, to run the API tests on a GPU)."""
    import app

    blocks = app.build_app(os.environ.get("SUPERPOS_TEST_DEVICE", "cpu"))
    blocks.launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        css=app.CSS,
        max_file_size=app.MAX_FILE_SIZE,
    )
    yield blocks.local_url
    blocks.close()


CHROMIUM = os.environ.get("SUPERPOS_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright, with a fresh profile (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), f"browser tests need Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=FLAGS, viewport={"width": 1280, "height": 1000}
        )
        yield context
        context.close()


@pytest.fixture
def page(browser):
    """A fresh tab for one test (a module may keep one page for all its tests with a fixture of its own)."""
    page = browser.new_page()
    yield page
    page.close()
