"""End-to-end fixtures: the browser's fixtures (real Chromium, local site) plus a real server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from browser.global_browser import GlobalBrowser
from external_api.function_utils import default_registry
from tests.browser.conftest import (  # noqa: F401  # fixtures shared with the browser tests
    _chromium_for_browser_tests,
    closed_port,
    screenshot_dir,
    shared_browser,
    site,
)
from tests.server.conftest import OPTIONS, ServerThread


@pytest.fixture(scope="module")
def browser_server(request: pytest.FixtureRequest) -> Iterator[ServerThread]:
    """The function server over the default registry, the shared browser already running."""
    assert isinstance(request.getfixturevalue("shared_browser"), GlobalBrowser)
    with ServerThread(replace(OPTIONS, call_timeout=60.0), default_registry()) as running:
        yield running
