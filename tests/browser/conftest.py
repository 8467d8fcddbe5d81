"""Fixtures of the browser tests: the Chromium check, the local site, the shared browser."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser.global_browser import GlobalBrowser, get_browser, reset_browser
from browser.settings import load_settings
from external_api.config import ConfigurationError
from tests.browser.site import Site
from tests.ports import free_port

MAX_PAGES = 4


def chromium_problem() -> str | None:
    """Why the browser tests cannot run here, or ``None`` when they can."""
    try:
        import playwright.async_api  # noqa: F401  # only checking that it is installed
    except ImportError:
        return "Playwright is missing: install the `browser` extra (uv sync --all-extras)."
    try:
        executable = load_settings().resolved_executable()
    except ConfigurationError as error:
        return str(error)
    if executable is None:
        return (
            "No Chromium found: install it (apt-get install -y chromium) or set "
            "WORKSPACE_BROWSER_EXECUTABLE."
        )
    return None


def require_chromium(problem: str | None, *, ci: bool) -> None:
    """Fail (under CI) or skip (elsewhere) with ``problem`` when there is one."""
    if problem is None:
        return
    if ci:
        pytest.fail(f"CI=true and the browser tests cannot run: {problem}", pytrace=False)
    pytest.skip(problem)


@pytest.fixture(autouse=True)
def _chromium_for_browser_tests(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("browser") is not None:
        require_chromium(chromium_problem(), ci=os.environ.get("CI", "").lower() == "true")


@pytest.fixture(scope="session")
def closed_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def site(closed_port: int) -> Iterator[Site]:
    served = Site(closed_port)
    served.start()
    yield served
    served.stop()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="session")
def shared_browser(screenshot_dir: Path) -> Iterator[GlobalBrowser]:
    """The process-wide browser, configured for the tests through its variables.

    The variables are set only while the browser reads its settings, so no other test
    sees them.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WORKSPACE_BROWSER_MAX_PAGES", str(MAX_PAGES))
        patch.setenv("WORKSPACE_BROWSER_TIMEOUT", "30")
        patch.setenv("WORKSPACE_BROWSER_SETTLE", "0.3")
        patch.setenv("WORKSPACE_BROWSER_ALLOWED_HOSTS", "127.0.0.1")
        patch.setenv("WORKSPACE_BROWSER_SCREENSHOT_DIR", str(screenshot_dir))
        reset_browser()
        browser = get_browser()
    browser.start()
    yield browser
    reset_browser()
