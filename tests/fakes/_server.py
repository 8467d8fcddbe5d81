"""The machinery shared by the fake upstreams: an aiohttp app, a request log, fault scenarios.

A fake answers like its real upstream unless a fault scenario is switched on
(``server.scenario = "503"``); the scenario applies to every request until reset.
Scenarios common to all fakes (each fake supplies the upstream's own error bodies):

``ok``            normal answers (the default)
``429_then_ok``   the first request gets 429 with ``Retry-After: 0``, the rest are normal
``429``           every request gets 429 (``retry_after`` header value is configurable)
``500`` / ``503`` every request gets that status; ``503_then_ok`` fails once
``slow``          answers after ``slow_seconds`` (default 2 s, longer than test timeouts)
``reset``         the connection is aborted without an answer
``malformed``     200 with a body that is not valid JSON
``401`` / ``403`` the upstream's authentication / authorisation failure
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
COMMON_SCENARIOS = (
    "ok",
    "429_then_ok",
    "429",
    "500",
    "503",
    "503_then_ok",
    "slow",
    "reset",
    "malformed",
    "401",
    "403",
)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A JSON answer with the upstream's usual content type."""
    return web.Response(
        body=json.dumps(body).encode(),
        status=status,
        headers=headers,
        content_type="application/json",
        charset="utf-8",
    )


class FakeServer:
    """Base of a fake upstream; subclasses add routes and the upstream's error bodies."""

    name = "fake"
    scenarios: tuple[str, ...] = COMMON_SCENARIOS

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[RecordedRequest] = []
        self.scenario = "ok"
        self.retry_after = "0"
        self.slow_seconds = 2.0
        self.latency = 0.0
        self._faults_served = 0
        self.app = web.Application(middlewares=[self._middleware])
        self.add_routes(self.app.router)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Add the upstream's routes (subclasses)."""
        raise NotImplementedError

    def reset(self) -> None:
        """Back to normal answers; forget the recorded requests."""
        self.requests.clear()
        self.scenario = "ok"
        self.retry_after = "0"
        self.slow_seconds = 2.0
        self.latency = 0.0
        self._faults_served = 0

    def set_scenario(self, scenario: str) -> None:
        """Switch the fault scenario (see the module docstring)."""
        if scenario not in self.scenarios:
            raise ValueError(
                f"{self.name} has no scenario {scenario!r}; use one of {self.scenarios}"
            )
        self.scenario = scenario
        self._faults_served = 0

    # upstream-specific error bodies -------------------------------------------------
    def too_many_requests(self) -> web.Response:
        """The upstream's 429 answer."""
        return web.Response(
            text="Too Many Requests", status=429, headers={"Retry-After": self.retry_after}
        )

    def server_error(self, status: int) -> web.Response:
        """The upstream's 5xx answer."""
        return json_response({"error": "Internal Server Error"}, status=status)

    def unauthorized(self, status: int) -> web.Response:
        """The upstream's 401/403 answer."""
        return json_response({"error": "Unauthorized"}, status=status)

    # ------------------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append(
            RecordedRequest(
                request.method, request.path, dict(request.query), dict(request.headers)
            )
        )
        if self.latency:
            await asyncio.sleep(self.latency)
        fault = self._fault(request)
        if fault is not None:
            return await fault
        return await handler(request)

    def _fault(self, request: web.Request) -> Awaitable[web.StreamResponse] | None:
        scenario = self.scenario
        if scenario in ("429_then_ok", "503_then_ok"):
            if self._faults_served >= 1:
                return None
            self._faults_served += 1
            scenario = scenario.removesuffix("_then_ok")
        if scenario == "ok" or scenario not in COMMON_SCENARIOS:
            return None  # a fake's own scenarios are read by its handlers
        return self._serve_fault(scenario, request)

    async def _serve_fault(self, scenario: str, request: web.Request) -> web.StreamResponse:
        if scenario == "429":
            return self.too_many_requests()
        if scenario in ("500", "503"):
            return self.server_error(int(scenario))
        if scenario in ("401", "403"):
            return self.unauthorized(int(scenario))
        if scenario == "slow":
            await asyncio.sleep(self.slow_seconds)
            return await self.normal(request)
        if scenario == "reset":
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        assert scenario == "malformed", scenario
        return web.Response(body=b'{"truncated": [1, 2', content_type="application/json")

    async def normal(self, request: web.Request) -> web.StreamResponse:
        """Answer ``request`` normally (used after a ``slow`` delay)."""
        handler: Handler = request.match_info.handler
        return await handler(request)
