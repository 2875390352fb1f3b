"""End-to-end tests in headless Debian chromium via Playwright (fixtures in conftest.py)."""
