"""The one HTTP transport of the data sources: sessions, deadlines, retries, gateway, redaction.

Contract:

- One pooled ``aiohttp.ClientSession`` per event loop, created on first use and closed
  when that loop shuts down its async generators (``asyncio.run`` and pytest-asyncio
  do) or by :meth:`Transport.aclose`.
- Every call runs under one overall deadline (the source's ``timeout``); each attempt
  gets what is left of it (or ``RetryPolicy.attempt_timeout`` if smaller).
- Retries (tenacity) happen only on 429, 502, 503, 504, timeouts and connection
  errors, with exponential backoff and jitter, honouring ``Retry-After`` (seconds or
  an HTTP date) and ``x-rate-limit-reset`` / ``x-ratelimit-reset`` (epoch seconds or
  seconds to wait); a wait that would pass the deadline ends the retries.
- Gateway mode: with ``LLM_GATEWAY_BASE_URL`` set, the request goes to the gateway
  (same path and query) with ``X-Original-Host: <upstream host>``.
- Secrets given with a request never appear in a log line or an error message.
- Failures are :class:`~external_api.errors.ApiError` subclasses; other statuses are
  returned as :class:`Response` for the source to interpret.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential, wait_random

from external_api import __version__
from external_api.config import source_env_key
from external_api.errors import (
    ApiError,
    AuthError,
    NotFound,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from external_api.observability import get_logger

__all__ = [
    "USER_AGENT",
    "Redactor",
    "Response",
    "RetryPolicy",
    "Transport",
    "error_for_status",
    "parse_retry_after",
]

USER_AGENT = f"workspace-toolkit/{__version__} aiohttp/{aiohttp.__version__}"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
EXCERPT_CHARS = 300
_log = get_logger("external_api.transport")


class Redactor:
    """Replaces every known secret in a text with ``***`` (empty secrets are ignored)."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """Return ``text`` with each secret replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how fast to retry (all in seconds).

    Attributes:
        attempts: Maximum attempts per call, the first included.
        backoff: First backoff; it doubles per retry, with jitter up to the same amount.
        backoff_max: Cap of one computed backoff.
        retry_after_max: Longest ``Retry-After`` honoured; longer ones end the retries.
        attempt_timeout: Cap of one attempt (``None``: the rest of the deadline).
    """

    attempts: int = 4
    backoff: float = 0.2
    backoff_max: float = 5.0
    retry_after_max: float = 30.0
    attempt_timeout: float | None = None


@dataclass(frozen=True)
class Response:
    """An upstream answer that the transport did not turn into an error."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str
    redact: Redactor = field(default_factory=Redactor, repr=False)

    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def excerpt(self) -> str:
        """A short, redacted excerpt of the body, safe for messages and logs."""
        return self.redact(self.text()[:EXCERPT_CHARS])

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            UpstreamError: when the body is not valid JSON.
        """
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise UpstreamError(
                f"the upstream at {self.redact(self.url)} answered HTTP {self.status} with a "
                "body that is not valid JSON; retry later or check the base URL setting.",
                status_code=self.status,
                body_excerpt=self.excerpt(),
            ) from None


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` or ``x-rate-limit-reset`` / ``x-ratelimit-reset``.

    ``Retry-After`` is seconds or an HTTP date; the reset headers are epoch seconds
    (X API) or, when small, seconds to wait. Returns ``None`` if none is usable.
    """
    now = time.time() if now is None else now
    lowered = {key.lower(): value for key, value in headers.items()}
    raw = lowered.get("retry-after")
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(raw)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                return max(0.0, when.timestamp() - now)
    for name in ("x-rate-limit-reset", "x-ratelimit-reset"):
        raw = lowered.get(name)
        try:
            value = float(raw) if raw else None
        except ValueError:
            value = None
        if value is not None:
            return max(0.0, value - now) if value > 1_000_000_000 else max(0.0, value)
    return None


def error_for_status(response: Response, *, source: str, key_variable: str) -> ApiError:
    """The generic error for an HTTP error ``response`` of ``source``.

    ``key_variable`` names the setting holding the source's credential, so an auth
    failure says what to fix.
    """
    status, excerpt = response.status, response.excerpt()
    if status in (401, 403):
        return AuthError(
            f"{source} rejected the request (HTTP {status}): check the credential in "
            f"{key_variable} and the subscription it belongs to.",
            details={"status": status, "body": excerpt},
        )
    if status == 404:
        return NotFound(
            f"{source} has no such resource (HTTP 404): check the arguments.",
            details={"status": status, "body": excerpt},
        )
    if status == 429:
        retry_after = parse_retry_after(response.headers)
        wait = f"retry after {retry_after:.0f} s" if retry_after is not None else "retry later"
        return RateLimited(
            f"{source} is rate limiting these requests (HTTP 429): {wait}.",
            retry_after=retry_after,
        )
    return UpstreamError(
        f"{source} answered HTTP {status}; retry later, or report it if it persists.",
        status_code=status,
        body_excerpt=excerpt,
    )


# Connection failures that retrying cannot fix: a host name that does not resolve, a
# TLS/certificate failure, a malformed URL. Resets, refusals and disconnects are retried.
_PERMANENT_CLIENT_ERRORS = (
    aiohttp.ClientConnectorDNSError,
    aiohttp.ClientSSLError,
    aiohttp.InvalidURL,
)


class _Retryable(Exception):
    """Internal: a failed attempt that may be retried; ``error`` is what the caller gets."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass
class _LoopState:
    session: aiohttp.ClientSession
    closer: AsyncGenerator[None, None]


async def _close_on_shutdown(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """An async generator the loop finalises in ``shutdown_asyncgens``: closes ``session``."""
    try:
        yield
    finally:
        await session.close()


class Transport:
    """Sends HTTP requests for the data sources (see the module docstring for the contract)."""

    def __init__(self, policy: RetryPolicy | None = None) -> None:
        self.policy = policy or RetryPolicy()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )

    async def session(self) -> aiohttp.ClientSession:
        """The pooled session of the running event loop (created on first use)."""
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None or state.session.closed:
            session = aiohttp.ClientSession(
                headers={"User-Agent": USER_AGENT},
                connector=aiohttp.TCPConnector(limit=100, limit_per_host=0),
            )
            closer = _close_on_shutdown(session)
            await closer.__anext__()
            state = _LoopState(session, closer)
            self._loops[loop] = state
        return state.session

    async def aclose(self) -> None:
        """Close the session of the running event loop, if any."""
        state = self._loops.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await state.session.close()
            await state.closer.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        source: str,
        timeout: float,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        secrets: Iterable[str | None] = (),
        gateway: str | None = None,
    ) -> Response:
        """Send one logical request (with retries) and return the upstream's answer.

        Args:
            method: HTTP method.
            url: Absolute upstream URL.
            source: Source name, for messages and logs.
            timeout: Overall deadline in seconds, retries included.
            params: Query parameters.
            headers: Extra headers (credentials go here).
            secrets: Values to redact from every log line and message.
            gateway: Gateway base URL; when set the request goes there.

        Raises:
            RateLimited: 429 after the retries (with ``retry_after``).
            UpstreamError: 502/503/504 or connection errors after the retries.
            UpstreamTimeout: the deadline passed.
        """
        redact = Redactor(secrets)
        deadline = time.monotonic() + timeout
        target, extra = _route(url, gateway)
        send_headers = {**(headers or {}), **extra}
        policy = self.policy

        def wait(state: RetryCallState) -> float:
            outcome = state.outcome
            error = outcome.exception() if outcome is not None else None
            if (
                isinstance(error, _Retryable)
                and isinstance(error.error, RateLimited)
                and error.error.retry_after is not None
            ):
                return error.error.retry_after
            return float(backoff(state))

        backoff = wait_exponential(multiplier=policy.backoff, max=policy.backoff_max) + wait_random(
            0, policy.backoff
        )

        def past_deadline(state: RetryCallState) -> bool:
            upcoming = state.upcoming_sleep
            too_late = time.monotonic() + upcoming >= deadline
            return too_late or upcoming > policy.retry_after_max

        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda error: isinstance(error, _Retryable)),
            stop=stop_after_attempt(policy.attempts) | stop_when(past_deadline),
            wait=wait,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    number = attempt.retry_state.attempt_number
                    return await self._attempt(
                        method, target, params, send_headers, deadline, source, redact, number
                    )
        except _Retryable as failure:
            raise failure.error from None
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    async def _attempt(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str],
        deadline: float,
        source: str,
        redact: Redactor,
        number: int,
    ) -> Response:
        remaining = deadline - time.monotonic()
        if self.policy.attempt_timeout is not None:
            remaining = min(remaining, self.policy.attempt_timeout)
        if remaining <= 0:
            raise _timeout(source, url, redact)
        session = await self.session()
        started = time.monotonic()

        def log(event: str, **values: Any) -> None:  # bound only when there is a warning
            _log.warning(
                event, source=source, method=method, url=redact(url), attempt=number, **values
            )

        try:
            client_timeout = aiohttp.ClientTimeout(total=remaining, connect=min(remaining, 5.0))
            async with session.request(
                method, url, params=params, headers=headers, timeout=client_timeout
            ) as raw:
                body = await raw.read()
                response = Response(raw.status, dict(raw.headers), body, str(raw.url), redact)
        except asyncio.TimeoutError:
            log("upstream timeout", elapsed=round(time.monotonic() - started, 3))
            raise _Retryable(_timeout(source, url, redact)) from None
        except aiohttp.ClientError as exc:
            reason = redact(f"{type(exc).__name__}: {exc}")
            log("upstream connection error", error=reason)
            unreachable = UpstreamError(
                f"could not reach {source} at {redact(url)} ({reason}); check the base URL "
                "setting and the network, then retry.",
            )
            if isinstance(exc, _PERMANENT_CLIENT_ERRORS):
                raise unreachable from None
            raise _Retryable(unreachable) from None
        if response.status in RETRY_STATUSES:
            error = error_for_status(response, source=source, key_variable="its API key")
            log("upstream asks to retry", status=response.status)
            raise _Retryable(error)
        return response


class stop_when(stop_base):  # noqa: N801 - named like tenacity's own stop conditions
    """A tenacity stop condition from a predicate on the retry state."""

    def __init__(self, predicate: Callable[[RetryCallState], bool]) -> None:
        self.predicate = predicate

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.predicate(retry_state)


def _timeout(source: str, url: str, redact: Redactor) -> UpstreamTimeout:
    variable = f"WORKSPACE_{source_env_key(source)}_TIMEOUT"
    return UpstreamTimeout(
        f"{source} did not answer {redact(url)} within the deadline; retry later or raise "
        f"{variable} (seconds).",
    )


def _route(url: str, gateway: str | None) -> tuple[str, dict[str, str]]:
    """Return the URL to send to and the extra headers (``X-Original-Host`` in gateway mode)."""
    if not gateway:
        return url, {}
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return gateway.rstrip("/") + path, {"X-Original-Host": parts.netloc}
