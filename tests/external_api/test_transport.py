"""The transport: Retry-After handling, deadlines, gateway routing, redaction and metrics."""

from __future__ import annotations

import asyncio
import email.utils
import json

import aiohttp
import pytest
import structlog
from prometheus_client import REGISTRY

from external_api.config import reset_settings
from external_api.data_sources.client import ApiClient
from external_api.data_sources.transport import (
    Redactor,
    Response,
    RetryPolicy,
    Transport,
    parse_retry_after,
)
from external_api.data_sources.twitter import Twitter
from external_api.data_sources.yahoo_finance import YahooFinance
from external_api.errors import ApiError, AuthError, RateLimited, UpstreamError, UpstreamTimeout
from tests.fakes import FakeUpstreams
from tests.fakes.booking import KEY as BOOKING_KEY
from tests.fakes.twitter import TOKEN as TWITTER_TOKEN

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "0"}, 0.0),
        ({"Retry-After": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"Retry-After": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),
        ({"x-rate-limit-reset": str(int(NOW + 12))}, 12.0),
        ({"X-RateLimit-Reset": "5"}, 5.0),
        ({"Retry-After": "soon", "x-rate-limit-reset": "3"}, 3.0),
        ({"x-ratelimit-reset": "later"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == expected


def test_redactor_hides_every_secret_and_ignores_trivial_ones() -> None:
    redact = Redactor(["top-secret-key", None, "", "ab"])
    assert redact("key=top-secret-key&x=ab") == "key=***&x=ab"


def test_malformed_json_excerpt_is_redacted() -> None:
    body = b'{"echo": "top-secret-key"'
    response = Response(500, {}, body, "http://x/y", Redactor(["top-secret-key"]))
    with pytest.raises(UpstreamError) as caught:
        response.json()
    assert caught.value.body_excerpt == '{"echo": "***"'


async def test_retry_after_longer_than_allowed_stops_retrying(upstreams: FakeUpstreams) -> None:
    upstreams.yahoo.set_scenario("429")
    upstreams.yahoo.retry_after = "5"
    source = YahooFinance(transport=Transport(RetryPolicy(retry_after_max=1.0)))
    with pytest.raises(RateLimited, match="retry after 5 s") as caught:
        await source.get_stock_chart("AAPL")
    assert caught.value.retry_after == 5.0
    assert len(upstreams.yahoo.requests) == 1  # honoured: no retry before Retry-After
    await source.transport.aclose()


async def test_retry_after_past_the_deadline_stops_retrying(
    upstreams: FakeUpstreams, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKSPACE_TWITTER_TIMEOUT", "1")
    reset_settings()
    upstreams.twitter.set_scenario("429")
    upstreams.twitter.retry_after = "3"  # x-rate-limit-reset = now + 3 (epoch seconds)
    source = Twitter()
    with pytest.raises(RateLimited) as caught:
        await source.get_user("NASA")
    assert caught.value.retry_after is not None
    assert 1.0 < caught.value.retry_after <= 3.0
    assert len(upstreams.twitter.requests) == 1
    await source.transport.aclose()


async def test_timeouts_are_retried_within_the_deadline(
    upstreams: FakeUpstreams, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKSPACE_YAHOO_FINANCE_TIMEOUT", "5")
    reset_settings()
    upstreams.yahoo.set_scenario("slow")
    policy = RetryPolicy(attempts=2, backoff=0.01, attempt_timeout=0.2)
    source = YahooFinance(transport=Transport(policy))
    with pytest.raises(UpstreamTimeout):
        await source.search("apple")
    assert len(upstreams.yahoo.requests) == 2
    await source.transport.aclose()


async def test_unreachable_upstream_is_upstream_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSPACE_YAHOO_FINANCE_BASE_URL", "http://127.0.0.1:9")
    reset_settings()
    source = YahooFinance(transport=Transport(RetryPolicy(attempts=2, backoff=0.01)))
    try:
        with pytest.raises(UpstreamError, match="could not reach YahooFinance"):
            await source.search("apple")
    finally:
        reset_settings()
        await source.transport.aclose()


async def test_refused_connections_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKSPACE_YAHOO_FINANCE_BASE_URL", "http://127.0.0.1:9")
    reset_settings()
    source = YahooFinance(transport=Transport(RetryPolicy(attempts=3, backoff=0.01)))
    try:
        with structlog.testing.capture_logs() as events, pytest.raises(UpstreamError):
            await source.search("apple")
    finally:
        reset_settings()
        await source.transport.aclose()
    attempts = [e["attempt"] for e in events if e["event"] == "upstream connection error"]
    assert attempts == [1, 2, 3]


async def test_unresolvable_host_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    # RFC 6761: names under .invalid never resolve, so this fails the same way every time.
    monkeypatch.setenv("WORKSPACE_YAHOO_FINANCE_BASE_URL", "http://workspace-toolkit.invalid")
    reset_settings()
    source = YahooFinance(transport=Transport(RetryPolicy(attempts=3, backoff=0.01)))
    try:
        with (
            structlog.testing.capture_logs() as events,
            pytest.raises(UpstreamError, match="check the base URL setting"),
        ):
            await source.search("apple")
    finally:
        reset_settings()
        await source.transport.aclose()
    attempts = [e["attempt"] for e in events if e["event"] == "upstream connection error"]
    assert attempts == [1]


async def test_gateway_mode_sends_x_original_host(
    client: ApiClient, upstreams: FakeUpstreams, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WORKSPACE_TWITTER_BASE_URL")
    monkeypatch.setenv("LLM_GATEWAY_BASE_URL", upstreams.twitter.url + "/")
    reset_settings()
    user = await client.acall_api("Twitter/get_user", {"username": "NASA"})
    assert user["username"] == "NASA"
    sent = upstreams.twitter.requests[-1]
    assert sent.headers["X-Original-Host"] == "api.twitter.com"
    assert sent.path == "/2/users/by/username/NASA"
    assert sent.query["user.fields"].startswith("created_at")


async def test_direct_mode_sends_no_x_original_host(
    client: ApiClient, upstreams: FakeUpstreams
) -> None:
    await client.acall_api("Twitter/get_user", {"username": "NASA"})
    assert "X-Original-Host" not in upstreams.twitter.requests[-1].headers


def sample(source: str, endpoint: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "workspace_upstream_requests_total",
        {"source": source, "endpoint": endpoint, "outcome": outcome},
    )
    return value or 0.0


async def test_upstream_metrics_count_outcomes(client: ApiClient, upstreams: FakeUpstreams) -> None:
    ok = sample("YahooFinance", "search", "ok")
    failed = sample("YahooFinance", "search", "UpstreamError")
    await client.acall_api("YahooFinance/search", {"query": "apple"})
    upstreams.yahoo.set_scenario("500")
    with pytest.raises(UpstreamError):
        await client.acall_api("YahooFinance/search", {"query": "apple"})
    assert sample("YahooFinance", "search", "ok") == ok + 1
    assert sample("YahooFinance", "search", "UpstreamError") == failed + 1


# ---------------------------------------------------------------- secrets never leak
async def failing_calls(client: ApiClient, upstreams: FakeUpstreams) -> list[ApiError]:
    """Calls that fail in every way a secret could leak, returning the errors."""
    errors: list[ApiError] = []
    scenarios = [
        (upstreams.booking, "echo_key", "Booking/search_destination", {"query": "Berlin"}),
        (upstreams.booking, "malformed", "Booking/search_destination", {"query": "Berlin"}),
        (upstreams.booking, "403", "Booking/search_destination", {"query": "Berlin"}),
        (upstreams.twitter, "401", "Twitter/get_user", {"username": "NASA"}),
        (upstreams.twitter, "reset", "Twitter/get_user", {"username": "NASA"}),
        (upstreams.twitter, "429", "Twitter/get_user", {"username": "NASA"}),
    ]
    for server, scenario, name, query in scenarios:
        server.set_scenario(scenario)
        with pytest.raises(ApiError) as caught:
            await client.acall_api(name, query)
        errors.append(caught.value)
        server.reset()
    return errors


async def test_secrets_never_appear_in_errors_or_logs(
    client: ApiClient, upstreams: FakeUpstreams, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = (BOOKING_KEY, TWITTER_TOKEN)
    structlog.configure(
        processors=[structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(),
    )
    try:
        with structlog.testing.capture_logs() as events:
            errors = await failing_calls(client, upstreams)
        failing_text = "".join(
            f"{error}\n{error!r}\n{json.dumps(error.to_payload())}\n" for error in errors
        )
        events_text = json.dumps(events, default=str)
        await failing_calls(client, upstreams)  # again, rendered to the real output
        output = capsys.readouterr()
    finally:
        structlog.reset_defaults()
    assert "internal error for key ***" in failing_text  # the echo was redacted
    assert any(event.get("outcome") == "AuthError" for event in events)
    for secret in secrets:
        assert secret not in failing_text
        assert secret not in events_text
        assert secret not in output.out + output.err


async def test_missing_key_is_auth_error_before_any_request(
    upstreams: FakeUpstreams, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WORKSPACE_BOOKING_API_KEY")
    reset_settings()
    with pytest.raises(AuthError, match="set WORKSPACE_BOOKING_API_KEY") as caught:
        await ApiClient().acall_api("Booking/search_destination", {"query": "Berlin"})
    assert caught.value.details == {"variable": "WORKSPACE_BOOKING_API_KEY"}
    assert upstreams.booking.requests == []


async def test_session_is_closed_by_aclose() -> None:
    transport = Transport()
    session = await transport.session()
    assert await transport.session() is session  # pooled
    await transport.aclose()
    assert session.closed
    await transport.aclose()  # idempotent
    fresh = await transport.session()
    assert fresh is not session
    await transport.aclose()


def test_session_is_closed_when_its_loop_shuts_down() -> None:
    transport = Transport()

    async def main() -> aiohttp.ClientSession:
        return await transport.session()

    session = asyncio.run(main())
    assert session.closed
