"""Fixtures of the console's browser tests (``tests/console/harness.py``): Chromium, a real
gateway process per test module, and the screenshots folder."""

from tests.console.harness import browser, gateway, prerequisites, screenshots

__all__ = ["browser", "gateway", "prerequisites", "screenshots"]
