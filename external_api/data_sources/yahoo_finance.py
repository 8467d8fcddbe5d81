"""Yahoo Finance: price charts (``/v8/finance/chart/{symbol}``) and symbol search.

Wire format (Yahoo's unofficial but stable JSON API): a chart answer is
``{"chart": {"result": [{"meta", "timestamp", "indicators": {"quote": [{open, high,
low, close, volume}]}, "events"}], "error": null}}``; the arrays may hold ``null``
(no trade in that bar), which becomes ``None`` here, never a crash. Errors come as
``{"chart": {"result": null, "error": {"code", "description"}}}`` with HTTP 404
(unknown symbol → :class:`~external_api.errors.NotFound`) or 400/422 (bad arguments
→ :class:`~external_api.errors.InvalidParams`).
"""

from __future__ import annotations

import importlib
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field

from external_api.data_sources.base import DataSource, endpoint
from external_api.data_sources.transport import Response
from external_api.errors import FieldError, InvalidParams, NotFound, UpstreamError

__all__ = ["Bar", "ChartResult", "Dividend", "SearchResult", "Split", "YahooFinance"]

Interval = Literal[
    "1m", "2m", "5m", "15m", "30m", "60m", "90m", "1h", "1d", "5d", "1wk", "1mo", "3mo"
]
Range = Literal["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"]


class Bar(BaseModel):
    """One price bar; a value Yahoo reports as ``null`` is ``None``."""

    timestamp: int
    open: float | None = None
    high: float | None = None
    low: float | None = None
    close: float | None = None
    volume: int | None = None


class Dividend(BaseModel):
    """A dividend payment (``date`` in epoch seconds)."""

    date: int
    amount: float


class Split(BaseModel):
    """A stock split, e.g. ``numerator=4, denominator=1`` for ``4:1``."""

    date: int
    numerator: float
    denominator: float
    ratio: str = ""


class ChartResult(BaseModel):
    """A price chart of one symbol."""

    symbol: str
    currency: str | None = None
    timezone: str | None = None
    exchange: str | None = None
    instrument_type: str | None = None
    interval: str | None = None
    range: str | None = None
    regular_market_price: float | None = None
    bars: list[Bar] = Field(default_factory=list)
    dividends: list[Dividend] = Field(default_factory=list)
    splits: list[Split] = Field(default_factory=list)

    def to_dataframe(self) -> Any:
        """The bars as a ``pandas.DataFrame`` indexed by UTC time (needs the ``data`` extra).

        Raises:
            ImportError: when pandas is not installed, saying what to install.
        """
        try:
            pandas = importlib.import_module("pandas")
        except ImportError as error:  # pragma: no cover - pandas is in the dev environment
            raise ImportError(
                "ChartResult.to_dataframe() needs pandas: pip install 'workspace-toolkit[data]'"
            ) from error
        columns = ["open", "high", "low", "close", "volume"]
        frame = pandas.DataFrame(
            [bar.model_dump() for bar in self.bars], columns=["timestamp", *columns]
        )
        frame.index = pandas.to_datetime(frame.pop("timestamp"), unit="s", utc=True)
        frame.index.name = "time"
        return frame


class SearchQuote(BaseModel):
    """A symbol matching a search."""

    symbol: str
    name: str | None = None
    exchange: str | None = None
    quote_type: str | None = None


class SearchNews(BaseModel):
    """A news item matching a search."""

    title: str
    publisher: str | None = None
    link: str | None = None
    published_at: int | None = None


class SearchResult(BaseModel):
    """Symbols and news matching a query."""

    query: str
    quotes: list[SearchQuote] = Field(default_factory=list)
    news: list[SearchNews] = Field(default_factory=list)


class YahooFinance(DataSource):
    """Stock, ETF, index and currency prices and symbol search from Yahoo Finance (no key)."""

    name = "YahooFinance"
    default_base_url = "https://query1.finance.yahoo.com"

    @endpoint
    async def get_stock_chart(
        self,
        symbol: Annotated[str, Field(min_length=1, max_length=32)],
        interval: Interval = "1d",
        range: Range | None = None,
        period1: int | None = None,
        period2: int | None = None,
        include_pre_post: bool = False,
        events: str = "div,splits",
    ) -> ChartResult:
        """Get the price bars of a symbol, for a range or between two times.

        Args:
            symbol: Ticker, e.g. AAPL, ^GSPC, BTC-USD, EURUSD=X.
            interval: Bar size.
            range: How far back from now; default 1mo unless period1/period2 are given.
            period1: Start as epoch seconds (use with period2 instead of range).
            period2: End as epoch seconds.
            include_pre_post: Include pre- and post-market bars.
            events: Corporate events to include, comma-separated: div, splits.
        """
        if range is not None and (period1 is not None or period2 is not None):
            raise InvalidParams(
                "YahooFinance/get_stock_chart: give either range or period1/period2, not both.",
                field_errors=[FieldError("range", "conflicts with period1/period2")],
            )
        if (period1 is None) != (period2 is None):
            raise InvalidParams(
                "YahooFinance/get_stock_chart: period1 and period2 go together; give both.",
                field_errors=[FieldError("period1" if period1 is None else "period2", "missing")],
            )
        params: dict[str, Any] = {
            "interval": interval,
            "range": range if range or period1 is not None else "1mo",
            "period1": period1,
            "period2": period2,
            "includePrePost": include_pre_post,
            "events": events or None,
        }
        path = f"/v8/finance/chart/{quote(symbol, safe='')}"
        payload = await self.request("get_stock_chart", path, params=params)
        return _parse_chart(symbol, payload)

    @endpoint
    async def search(
        self,
        query: Annotated[str, Field(min_length=1, max_length=200)],
        quotes_count: Annotated[int, Field(ge=0, le=50)] = 10,
        news_count: Annotated[int, Field(ge=0, le=50)] = 0,
    ) -> SearchResult:
        """Search symbols (and news) by company name or ticker.

        Args:
            query: Search text, e.g. apple.
            quotes_count: How many symbols to return.
            news_count: How many news items to return.
        """
        params = {"q": query, "quotesCount": quotes_count, "newsCount": news_count}
        payload = await self.request("search", "/v1/finance/search", params=params)
        quotes = [
            SearchQuote(
                symbol=item["symbol"],
                name=item.get("longname") or item.get("shortname"),
                exchange=item.get("exchDisp") or item.get("exchange"),
                quote_type=item.get("quoteType"),
            )
            for item in payload.get("quotes") or []
            if isinstance(item, dict) and item.get("symbol")
        ]
        news = [
            SearchNews(
                title=item["title"],
                publisher=item.get("publisher"),
                link=item.get("link"),
                published_at=item.get("providerPublishTime"),
            )
            for item in payload.get("news") or []
            if isinstance(item, dict) and item.get("title")
        ]
        return SearchResult(query=query, quotes=quotes, news=news)

    def raise_for_response(self, endpoint_name: str, response: Response) -> None:
        """Map Yahoo's ``chart.error`` bodies: 404 → NotFound, 400/422 → InvalidParams."""
        if response.status in (400, 404, 422):
            try:
                error = (response.json().get("chart") or {}).get("error") or {}
            except (UpstreamError, AttributeError):  # not a Yahoo error body: generic mapping
                error = {}
            description = str(error.get("description") or "")
            if description and response.status == 404:
                raise NotFound(
                    f"YahooFinance: {description} (check the symbol, e.g. with "
                    "YahooFinance/search).",
                    details={"code": error.get("code")},
                )
            if description:
                raise InvalidParams(f"YahooFinance rejected the arguments: {description}")
        super().raise_for_response(endpoint_name, response)


def _column(values: Any, index: int) -> Any:
    if isinstance(values, list) and index < len(values):
        return values[index]
    return None


def _parse_chart(symbol: str, payload: Any) -> ChartResult:
    results = (payload.get("chart") or {}).get("result") if isinstance(payload, dict) else None
    if not results:
        raise NotFound(f"YahooFinance has no chart data for {symbol!r}; check the symbol.")
    result = results[0]
    meta = result.get("meta") or {}
    timestamps = result.get("timestamp") or []
    quotes = (result.get("indicators") or {}).get("quote") or [{}]
    quote_columns = quotes[0] or {}
    bars = []
    for index, timestamp in enumerate(timestamps):
        if timestamp is None:
            continue
        values = {key: _column(quote_columns.get(key), index) for key in Bar.model_fields}
        values["timestamp"] = timestamp
        bars.append(Bar.model_validate(values))
    events = result.get("events") or {}
    dividends = [
        Dividend(date=item["date"], amount=item["amount"])
        for item in (events.get("dividends") or {}).values()
        if item.get("amount") is not None
    ]
    splits = [
        Split(
            date=item["date"],
            numerator=item["numerator"],
            denominator=item["denominator"],
            ratio=item.get("splitRatio", ""),
        )
        for item in (events.get("splits") or {}).values()
        if item.get("numerator") and item.get("denominator")
    ]
    return ChartResult(
        symbol=meta.get("symbol") or symbol,
        currency=meta.get("currency"),
        timezone=meta.get("exchangeTimezoneName") or meta.get("timezone"),
        exchange=meta.get("exchangeName"),
        instrument_type=meta.get("instrumentType"),
        interval=meta.get("dataGranularity"),
        range=meta.get("range") or None,
        regular_market_price=meta.get("regularMarketPrice"),
        bars=bars,
        dividends=sorted(dividends, key=lambda item: item.date),
        splits=sorted(splits, key=lambda item: item.date),
    )
