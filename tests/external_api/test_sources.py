"""The three data sources against their fake upstreams: results, nulls and every fault scenario."""

from __future__ import annotations

from typing import Any

import pytest

from external_api.data_sources.client import ApiClient
from external_api.data_sources.yahoo_finance import ChartResult, YahooFinance
from external_api.errors import (
    ApiError,
    AuthError,
    InvalidParams,
    NotFound,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
)
from tests.fakes import FakeUpstreams
from tests.fakes.booking import UNSUBSCRIBED_KEY

CHART = ("YahooFinance/get_stock_chart", {"symbol": "AAPL", "range": "5d"})
USER = ("Twitter/get_user", {"username": "NASA"})
HOTELS = (
    "Booking/search_hotels",
    {
        "dest_id": "-1746443",
        "search_type": "city",
        "arrival_date": "2026-06-01",
        "departure_date": "2026-06-03",
        "currency_code": "EUR",
    },
)
CALLS = {"yahoo": CHART, "twitter": USER, "booking": HOTELS}


# ---------------------------------------------------------------- Yahoo Finance
async def test_chart_returns_bars_meta_and_events(
    client: ApiClient, upstreams: FakeUpstreams
) -> None:
    result = await client.acall_api(*CHART)
    assert result["symbol"] == "AAPL"
    assert result["currency"] == "USD"
    assert result["timezone"] == "America/New_York"
    assert len(result["bars"]) == 5
    assert result["bars"][0] == {
        "timestamp": 1_700_000_000,
        "open": 189.0,
        "high": 190.5,
        "low": 187.5,
        "close": 190.1,
        "volume": 51_000_000,
    }
    assert result["dividends"] == [{"date": 1_700_172_800, "amount": 0.24}]
    assert result["splits"][0]["ratio"] == "4:1"
    sent = upstreams.yahoo.requests[-1]
    assert sent.path == "/v8/finance/chart/AAPL"
    assert sent.query == {
        "interval": "1d",
        "range": "5d",
        "includePrePost": "false",
        "events": "div,splits",
    }
    assert sent.headers["User-Agent"].startswith("workspace-toolkit/")


async def test_chart_nulls_inside_arrays_become_none(
    client: ApiClient, upstreams: FakeUpstreams
) -> None:
    upstreams.yahoo.set_scenario("nulls")
    bars = (await client.acall_api(*CHART))["bars"]
    assert bars[1] == {
        "timestamp": 1_700_086_400,
        "open": None,
        "high": None,
        "low": None,
        "close": None,
        "volume": None,
    }
    assert bars[3]["close"] is None
    assert bars[3]["open"] == 188.2


async def test_chart_symbol_is_url_quoted_and_periods_are_sent(
    client: ApiClient, upstreams: FakeUpstreams
) -> None:
    query = {"symbol": "^GSPC", "period1": 1_699_000_000, "period2": 1_701_000_000}
    result = await client.acall_api("YahooFinance/get_stock_chart", query)
    assert result["symbol"] == "^GSPC"
    sent = upstreams.yahoo.requests[-1]
    assert sent.path == "/v8/finance/chart/^GSPC"
    assert sent.query["period1"] == "1699000000"
    assert "range" not in sent.query


async def test_unknown_symbol_is_not_found_with_yahoos_description(client: ApiClient) -> None:
    with pytest.raises(NotFound, match="No data found, symbol may be delisted"):
        await client.acall_api("YahooFinance/get_stock_chart", {"symbol": "NOPE"})


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"symbol": "AAPL", "range": "5d", "period1": 1, "period2": 2}, "range"),
        ({"symbol": "AAPL", "period1": 1}, "period2"),
        ({"symbol": "AAPL", "interval": "7m"}, "interval"),
        ({"symbol": ""}, "symbol"),
        ({"symbol": "AAPL", "unknown": 1}, "unknown"),
    ],
)
async def test_chart_argument_errors_name_the_field(
    client: ApiClient, upstreams: FakeUpstreams, query: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidParams) as caught:
        await client.acall_api("YahooFinance/get_stock_chart", query)
    assert field in [item["field"] for item in caught.value.field_errors]
    assert upstreams.yahoo.requests == []


async def test_yahoo_422_body_becomes_invalid_params(upstreams: FakeUpstreams) -> None:
    source = YahooFinance()
    with pytest.raises(InvalidParams, match="interval=7m is not supported"):
        await source.request("get_stock_chart", "/v8/finance/chart/AAPL", params={"interval": "7m"})
    with pytest.raises(NotFound, match="has no such resource"):
        await source.request("get_stock_chart", "/v8/finance/nothing-here")
    await source.transport.aclose()


async def test_search_returns_quotes_and_news(client: ApiClient, upstreams: FakeUpstreams) -> None:
    result = await client.acall_api(
        "YahooFinance/search", {"query": "apple", "quotes_count": 5, "news_count": 1}
    )
    assert result["quotes"] == [
        {"symbol": "AAPL", "name": "Apple Inc.", "exchange": "NASDAQ", "quote_type": "EQUITY"}
    ]
    assert result["news"][0]["publisher"] == "Reuters"
    assert upstreams.yahoo.requests[-1].query == {
        "q": "apple",
        "quotesCount": "5",
        "newsCount": "1",
    }


async def test_typed_api_and_dataframe(client: ApiClient, upstreams: FakeUpstreams) -> None:
    upstreams.yahoo.set_scenario("nulls")
    chart = await client.source("YahooFinance").get_stock_chart("AAPL", range="5d")
    assert isinstance(chart, ChartResult)
    frame = chart.to_dataframe()
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert len(frame) == 5
    assert str(frame.index.tz) == "UTC"
    assert frame["close"].isna().sum() == 2


# ---------------------------------------------------------------- X / Twitter
async def test_get_user(client: ApiClient, upstreams: FakeUpstreams) -> None:
    user = await client.acall_api("Twitter/get_user", {"username": "@NASA"})
    assert user["id"] == "11348282"
    assert user["username"] == "NASA"
    assert user["public_metrics"]["followers_count"] == 89_000_000
    sent = upstreams.twitter.requests[-1]
    assert sent.path == "/2/users/by/username/NASA"
    assert sent.headers["Authorization"] == "Bearer fake-x-bearer-token-0123456789"


async def test_unknown_user_answered_200_with_errors_is_not_found(client: ApiClient) -> None:
    with pytest.raises(NotFound, match=r"Could not find user with username: \[nobody_here\]"):
        await client.acall_api("Twitter/get_user", {"username": "nobody_here"})


async def test_errors_200_scenario_is_not_found(
    client: ApiClient, upstreams: FakeUpstreams
) -> None:
    upstreams.twitter.set_scenario("errors_200")
    with pytest.raises(NotFound) as caught:
        await client.acall_api(*USER)
    assert caught.value.details["resource_type"] == "user"


async def test_search_tweets_expands_authors_and_pages(
    client: ApiClient, upstreams: FakeUpstreams
) -> None:
    first = await client.acall_api("Twitter/search_tweets", {"query": "space", "max_results": 10})
    assert first["result_count"] == 10
    assert first["next_token"] == "page1"
    authors = {tweet["author"]["username"] for tweet in first["tweets"]}
    assert authors == {"NASA", "XDevelopers"}
    sent = upstreams.twitter.requests[-1].query
    assert sent["expansions"] == "author_id"
    assert sent["max_results"] == "10"
    last = await client.acall_api(
        "Twitter/search_tweets", {"query": "space", "max_results": 10, "next_token": "page2"}
    )
    assert last["result_count"] == 5
    assert last["next_token"] is None
    empty = await client.acall_api("Twitter/search_tweets", {"query": "nothing-matches"})
    assert empty == {
        "tweets": [],
        "result_count": 0,
        "newest_id": None,
        "oldest_id": None,
        "next_token": None,
    }


async def test_max_results_is_validated_before_sending(
    client: ApiClient, upstreams: FakeUpstreams
) -> None:
    with pytest.raises(InvalidParams) as caught:
        await client.acall_api("Twitter/search_tweets", {"query": "space", "max_results": 5})
    assert caught.value.field_errors[0]["field"] == "max_results"
    assert upstreams.twitter.requests == []


async def test_x_400_problem_becomes_invalid_params(upstreams: FakeUpstreams) -> None:
    source = ApiClient().source("Twitter")
    with pytest.raises(InvalidParams) as caught:
        await source.request(
            "search_tweets", "/2/tweets/search/recent", params={"query": "a"} | {"max_results": 5}
        )
    assert caught.value.field_errors[0]["field"] == "max_results"
    assert "Invalid Request" in caught.value.message


async def test_missing_bearer_token_names_the_variable(
    client: ApiClient, upstreams: FakeUpstreams, monkeypatch: pytest.MonkeyPatch
) -> None:
    from external_api.config import reset_settings

    monkeypatch.delenv("WORKSPACE_TWITTER_API_KEY")
    reset_settings()
    with pytest.raises(AuthError, match="WORKSPACE_TWITTER_API_KEY"):
        await client.acall_api(*USER)
    assert upstreams.twitter.requests == []


# ---------------------------------------------------------------- Booking
async def test_search_destination(client: ApiClient, upstreams: FakeUpstreams) -> None:
    result = await client.acall_api("Booking/search_destination", {"query": "Berlin"})
    first, second = result["destinations"]
    assert first["dest_id"] == "-1746443"
    assert first["search_type"] == "city"
    assert second["dest_id"] == "2279"
    sent = upstreams.booking.requests[-1]
    assert sent.headers["X-RapidAPI-Host"] == "booking-com15.p.rapidapi.com"
    assert sent.headers["X-RapidAPI-Key"] == "fake-rapidapi-key-0123456789abcdef"


async def test_search_hotels(client: ApiClient, upstreams: FakeUpstreams) -> None:
    result = await client.acall_api(*HOTELS)
    assert result["summary"] == "1,811 properties"
    assert len(result["hotels"]) == 3
    assert result["hotels"][0]["price"] == 120.5
    assert result["hotels"][0]["currency"] == "EUR"
    sent = upstreams.booking.requests[-1].query
    assert sent["search_type"] == "CITY"
    assert sent["arrival_date"] == "2026-06-01"
    assert sent["adults"] == "1"


async def test_departure_must_follow_arrival(client: ApiClient) -> None:
    query = {**HOTELS[1], "departure_date": "2026-05-01"}
    with pytest.raises(InvalidParams, match="departure_date must be after arrival_date"):
        await client.acall_api("Booking/search_hotels", query)


async def test_status_false_with_field_messages_is_invalid_params(
    client: ApiClient, upstreams: FakeUpstreams
) -> None:
    with pytest.raises(InvalidParams) as caught:
        await client.acall_api("Booking/search_hotels", {**HOTELS[1], "dest_id": "0"})
    assert caught.value.field_errors == [
        {"field": "dest_id", "message": "dest_id is invalid", "type": "value_error"}
    ]


async def test_status_false_scenario_is_upstream_error(
    client: ApiClient, upstreams: FakeUpstreams
) -> None:
    upstreams.booking.set_scenario("status_false")
    with pytest.raises(UpstreamError, match="Something went wrong"):
        await client.acall_api("Booking/search_destination", {"query": "Berlin"})


async def test_not_subscribed_key_is_auth_error(
    client: ApiClient, upstreams: FakeUpstreams, monkeypatch: pytest.MonkeyPatch
) -> None:
    from external_api.config import reset_settings

    monkeypatch.setenv("WORKSPACE_BOOKING_API_KEY", UNSUBSCRIBED_KEY)
    reset_settings()
    with pytest.raises(AuthError, match="You are not subscribed to this API") as caught:
        await client.acall_api(*HOTELS)
    assert "WORKSPACE_BOOKING_API_KEY" in caught.value.message


# ---------------------------------------------------------------- fault scenarios, every source
@pytest.mark.parametrize("fake", ["yahoo", "twitter", "booking"])
async def test_429_then_success_is_retried(
    client: ApiClient, upstreams: FakeUpstreams, fake: str
) -> None:
    server = getattr(upstreams, fake)
    server.set_scenario("429_then_ok")
    result = await client.acall_api(*CALLS[fake])
    assert result
    assert len(server.requests) == 2


@pytest.mark.parametrize("fake", ["yahoo", "twitter", "booking"])
async def test_429_exhausted_is_rate_limited(
    client: ApiClient, upstreams: FakeUpstreams, fake: str
) -> None:
    server = getattr(upstreams, fake)
    server.set_scenario("429")
    with pytest.raises(RateLimited, match="HTTP 429") as caught:
        await client.acall_api(*CALLS[fake])
    assert caught.value.retry_after == 0
    assert len(server.requests) == client.transport.policy.attempts


@pytest.mark.parametrize("fake", ["yahoo", "twitter", "booking"])
async def test_500_is_not_retried(client: ApiClient, upstreams: FakeUpstreams, fake: str) -> None:
    server = getattr(upstreams, fake)
    server.set_scenario("500")
    with pytest.raises(UpstreamError) as caught:
        await client.acall_api(*CALLS[fake])
    assert caught.value.status_code == 500
    assert len(server.requests) == 1


@pytest.mark.parametrize("fake", ["yahoo", "twitter", "booking"])
async def test_503_is_retried_then_reported(
    client: ApiClient, upstreams: FakeUpstreams, fake: str
) -> None:
    server = getattr(upstreams, fake)
    server.set_scenario("503")
    with pytest.raises(UpstreamError) as caught:
        await client.acall_api(*CALLS[fake])
    assert caught.value.status_code == 503
    assert len(server.requests) == client.transport.policy.attempts
    server.set_scenario("503_then_ok")
    assert await client.acall_api(*CALLS[fake])


@pytest.mark.parametrize("fake", ["yahoo", "twitter", "booking"])
async def test_slower_than_the_timeout_is_upstream_timeout(
    client: ApiClient, upstreams: FakeUpstreams, fake: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from external_api.config import reset_settings

    variable = {"yahoo": "YAHOO_FINANCE", "twitter": "TWITTER", "booking": "BOOKING"}[fake]
    monkeypatch.setenv(f"WORKSPACE_{variable}_TIMEOUT", "0.3")
    reset_settings()
    getattr(upstreams, fake).set_scenario("slow")
    with pytest.raises(UpstreamTimeout, match=f"WORKSPACE_{variable}_TIMEOUT"):
        await client.acall_api(*CALLS[fake])


@pytest.mark.parametrize("fake", ["yahoo", "twitter", "booking"])
async def test_connection_reset_is_retried_then_upstream_error(
    client: ApiClient, upstreams: FakeUpstreams, fake: str
) -> None:
    server = getattr(upstreams, fake)
    server.set_scenario("reset")
    with pytest.raises(UpstreamError, match="could not reach") as caught:
        await client.acall_api(*CALLS[fake])
    assert caught.value.status_code is None
    # aiohttp itself re-sends once when a pooled keep-alive connection is dropped, so each
    # of our attempts reaches the server once or twice.
    attempts = client.transport.policy.attempts
    assert attempts <= len(server.requests) <= 2 * attempts


@pytest.mark.parametrize("fake", ["yahoo", "twitter", "booking"])
async def test_malformed_json_is_upstream_error(
    client: ApiClient, upstreams: FakeUpstreams, fake: str
) -> None:
    getattr(upstreams, fake).set_scenario("malformed")
    with pytest.raises(UpstreamError, match="not valid JSON") as caught:
        await client.acall_api(*CALLS[fake])
    assert caught.value.body_excerpt == '{"truncated": [1, 2'


@pytest.mark.parametrize("fake", ["yahoo", "twitter", "booking"])
@pytest.mark.parametrize("status", ["401", "403"])
async def test_auth_failures_are_auth_errors_naming_the_key(
    client: ApiClient, upstreams: FakeUpstreams, fake: str, status: str
) -> None:
    getattr(upstreams, fake).set_scenario(status)
    with pytest.raises(AuthError, match=f"HTTP {status}") as caught:
        await client.acall_api(*CALLS[fake])
    variable = {"yahoo": "YAHOO_FINANCE", "twitter": "TWITTER", "booking": "BOOKING"}[fake]
    assert f"WORKSPACE_{variable}_API_KEY" in caught.value.message
    assert isinstance(caught.value, ApiError)
