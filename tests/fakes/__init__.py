"""Local fake upstreams speaking the real wire formats of Yahoo Finance, X API v2 and booking-com15.

Each fake is an aiohttp app on a free 127.0.0.1 port (modules ``yahoo``, ``twitter``,
``booking``; each cites the documentation it follows). :class:`FakeUpstreams` runs all
three on one background event-loop thread, so synchronous code (``call_api``) and
async tests in any event loop can use them.

Use in tests (the easy way — the pytest fixtures of :mod:`tests.fakes.fixtures`)::

    # in your conftest.py
    from tests.fakes.fixtures import fake_upstreams, upstreams  # noqa: F401  (fixtures)

    def test_something(upstreams):            # env points every source at the fakes
        upstreams.twitter.set_scenario("429_then_ok")
        result = ApiClient().call_api("Twitter/get_user", query={"username": "NASA"})
        assert len(upstreams.twitter.requests) == 2

``upstreams`` (function scope) resets every fake to normal answers, sets
``WORKSPACE_<SOURCE>_BASE_URL`` / ``_API_KEY`` for all three sources and rebuilds the
settings (``external_api.config.reset_settings``); ``fake_upstreams`` is the shared
session-scoped server. Without pytest: ``with FakeUpstreams() as up: os.environ.update(up.env())``.

Scenarios: ``server.set_scenario(name)``; see ``tests/fakes/_server.py`` for the common
ones (``429_then_ok``, ``429``, ``500``, ``503``, ``slow``, ``reset``, ``malformed``,
``401``, ``403``, ...) plus ``nulls`` (Yahoo), ``errors_200`` (X), ``status_false``
(Booking). ``server.requests`` lists what each fake received (method, path, query, headers).
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType

from aiohttp import web

from tests.fakes._server import FakeServer, RecordedRequest
from tests.fakes.booking import KEY as BOOKING_KEY
from tests.fakes.booking import FakeBooking
from tests.fakes.twitter import TOKEN as TWITTER_TOKEN
from tests.fakes.twitter import FakeTwitter
from tests.fakes.yahoo import FakeYahoo

__all__ = ["FakeServer", "FakeUpstreams", "RecordedRequest"]


class FakeUpstreams:
    """The three fakes, served from one background event-loop thread."""

    def __init__(self) -> None:
        self.yahoo = FakeYahoo()
        self.twitter = FakeTwitter()
        self.booking = FakeBooking()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="fake-upstreams", daemon=True
        )
        self._runners: list[web.AppRunner] = []

    @property
    def servers(self) -> tuple[FakeServer, ...]:
        return (self.yahoo, self.twitter, self.booking)

    def start(self) -> FakeUpstreams:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)
        return self

    async def _start(self) -> None:
        for server in self.servers:
            runner = web.AppRunner(server.app, handle_signals=False, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            server.url = f"http://{host}:{port}"
            self._runners.append(runner)

    def stop(self) -> None:
        async def cleanup() -> None:
            for runner in self._runners:
                await runner.cleanup()

        asyncio.run_coroutine_threadsafe(cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()

    def reset(self) -> None:
        """Every fake back to normal answers, request logs cleared."""
        for server in self.servers:
            server.reset()

    def env(self) -> dict[str, str]:
        """Environment variables pointing the three sources at the fakes (with valid keys)."""
        return {
            "WORKSPACE_YAHOO_FINANCE_BASE_URL": self.yahoo.url,
            "WORKSPACE_TWITTER_BASE_URL": self.twitter.url,
            "WORKSPACE_TWITTER_API_KEY": TWITTER_TOKEN,
            "WORKSPACE_BOOKING_BASE_URL": self.booking.url,
            "WORKSPACE_BOOKING_API_KEY": BOOKING_KEY,
        }

    def __enter__(self) -> FakeUpstreams:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
