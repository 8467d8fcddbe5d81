"""Fixtures of the external_api tests: the fake upstreams and a fast-retrying client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from external_api.data_sources.client import ApiClient
from external_api.data_sources.transport import RetryPolicy
from tests.fakes.fixtures import fake_upstreams, upstreams

__all__ = ["fake_upstreams", "upstreams"]

FAST = RetryPolicy(attempts=4, backoff=0.01, backoff_max=0.05)


@pytest.fixture
def client(upstreams: object) -> Iterator[ApiClient]:
    """The process-wide ApiClient with short backoffs, its env pointing at the fakes."""
    api = ApiClient()
    saved, api.transport.policy = api.transport.policy, FAST
    yield api
    api.transport.policy = saved
