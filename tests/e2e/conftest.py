"""Browser fixtures for the end-to-end tests (Playwright driving Debian's headless chromium).

* ``browser``: one chromium per test session, launched from ``/usr/bin/chromium`` (or
  ``$TOKMAP_CHROMIUM``); never ``playwright install``. Without chromium or playwright every test
  using it is skipped with the reason shown, unless ``TOKMAP_REQUIRE_E2E=1`` (CI), where a missing
  browser fails the test instead.
* ``page``: a fresh page (1280x1000) in its own context; page errors collect in
  ``page.errors`` so a test can assert the page ran cleanly.
* ``launch_blocks``: ``url = launch_blocks(demo)`` launches any ``gr.Blocks`` on a free local
  port (no thread lock) and closes it after the test.
* ``screenshot``: ``screenshot(page, "name")`` saves ``tests/e2e/screenshots/name.png`` (git-ignored)
  and returns its path.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

CHROMIUM = os.environ.get("TOKMAP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage", "--disable-extensions", "--mute-audio"]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"


def browser_missing() -> str | None:
    """Why the end-to-end tests cannot run here, or None when they can."""
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return (f"headless chromium not found at {CHROMIUM}: install it with "
                "`apt-get install -y chromium fonts-dejavu-core` (or set TOKMAP_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: `pip install -r requirements-dev.txt` (never `playwright install`)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def browser() -> Iterator:
    reason = browser_missing()
    if reason:
        if os.environ.get("TOKMAP_REQUIRE_E2E") == "1":
            pytest.fail(f"TOKMAP_REQUIRE_E2E=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(30_000)
    new_page = context.new_page()
    new_page.errors = []
    new_page.on("pageerror", lambda err: new_page.errors.append(str(err)))
    yield new_page
    context.close()


@pytest.fixture
def launch_blocks() -> Iterator[Callable[..., str]]:
    launched = []

    def _launch(demo, **launch_kwargs) -> str:
        port = free_port()
        demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True,
                    **launch_kwargs)
        launched.append(demo)
        return f"http://127.0.0.1:{port}/"

    yield _launch
    for demo in launched:
        demo.close()


@pytest.fixture
def screenshot() -> Callable[..., Path]:
    def _shot(page, name: str, full_page: bool = True) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return _shot
