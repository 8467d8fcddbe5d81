"""Pytest fixtures for the fake upstreams; import them into a conftest.py (see ``tests/fakes``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from external_api.config import reset_settings
from tests.fakes import FakeUpstreams

# Variables the tests must not inherit from the developer's shell or a .env file.
ISOLATED_VARIABLES = (
    "WORKSPACE_ENV",
    "WORKSPACE_SECRETS_DIR",
    "WORKSPACE_REQUIRED_SECRETS",
    "LLM_GATEWAY_BASE_URL",
    "WORKSPACE_YAHOO_FINANCE_TIMEOUT",
    "WORKSPACE_TWITTER_TIMEOUT",
    "WORKSPACE_BOOKING_TIMEOUT",
)


@pytest.fixture(scope="session")
def fake_upstreams() -> Iterator[FakeUpstreams]:
    """The three fake upstreams, started once per test session."""
    with FakeUpstreams() as upstreams:
        yield upstreams


@pytest.fixture
def upstreams(
    fake_upstreams: FakeUpstreams, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeUpstreams]:
    """The fakes reset to normal answers, with the environment pointing every source at them."""
    fake_upstreams.reset()
    for name in ISOLATED_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in fake_upstreams.env().items():
        monkeypatch.setenv(name, value)
    reset_settings()
    yield fake_upstreams
    fake_upstreams.reset()
    reset_settings()
