"""A fake Yahoo Finance speaking its chart and search wire format.

Follows the JSON that ``query1.finance.yahoo.com`` serves (undocumented officially; the
shape every public client — yfinance, yahoo-finance2 — parses):

- ``GET /v8/finance/chart/{symbol}?interval=&range=`` or ``&period1=&period2=``,
  ``includePrePost``, ``events=div,splits`` → ``{"chart": {"result": [{"meta": {...},
  "timestamp": [...], "indicators": {"quote": [{"open", "high", "low", "close",
  "volume"}], "adjclose": [...]}, "events": {"dividends", "splits"}}], "error": null}}``.
- unknown symbol → 404 ``{"chart": {"result": null, "error": {"code": "Not Found",
  "description": "No data found, symbol may be delisted"}}}``; a bad interval → 422
  ``{"chart": {"result": null, "error": {"code": "Unprocessable Entity", ...}}}``.
- ``GET /v1/finance/search?q=&quotesCount=&newsCount=`` → ``{"explains": [], "count",
  "quotes": [...], "news": [...], "nav": [], "lists": [], "totalTime"}``.
- 429 is plain text ``Too Many Requests``; auth failures come in the ``finance.error`` shape.

Extra scenario: ``nulls`` — bars whose prices and volumes are ``null`` inside the arrays.
"""

from __future__ import annotations

from aiohttp import web

from tests.fakes._server import COMMON_SCENARIOS, FakeServer, json_response

SYMBOLS = {"AAPL": ("Apple Inc.", "USD", "NMS"), "^GSPC": ("S&P 500", "USD", "SNP")}
VALID_INTERVALS = (
    "1m",
    "2m",
    "5m",
    "15m",
    "30m",
    "60m",
    "90m",
    "1h",
    "1d",
    "5d",
    "1wk",
    "1mo",
    "3mo",
)
BASE_TIME = 1_700_000_000
DAY = 86_400


def chart_payload(symbol: str, interval: str, range_: str, with_nulls: bool) -> dict[str, object]:
    """A chart answer of five daily bars (two with nulls when ``with_nulls``)."""
    name, currency, exchange = SYMBOLS[symbol]
    timestamps = [BASE_TIME + i * DAY for i in range(5)]
    opens: list[float | None] = [189.0, 190.5, 191.0, 188.2, 192.3]
    closes: list[float | None] = [190.1, 190.9, 188.5, 192.0, 193.4]
    volumes: list[int | None] = [51_000_000, 48_200_000, 60_100_000, 45_000_000, 52_300_000]
    if with_nulls:
        opens[1] = closes[1] = volumes[1] = None
        closes[3] = None
    highs = [None if o is None else o + 1.5 for o in opens]
    lows = [None if o is None else o - 1.5 for o in opens]
    return {
        "chart": {
            "result": [
                {
                    "meta": {
                        "currency": currency,
                        "symbol": symbol,
                        "exchangeName": exchange,
                        "fullExchangeName": exchange,
                        "instrumentType": "EQUITY",
                        "firstTradeDate": 345479400,
                        "regularMarketTime": timestamps[-1],
                        "hasPrePostMarketData": True,
                        "gmtoffset": -18000,
                        "timezone": "EST",
                        "exchangeTimezoneName": "America/New_York",
                        "regularMarketPrice": 193.4,
                        "longName": name,
                        "chartPreviousClose": 188.0,
                        "priceHint": 2,
                        "dataGranularity": interval,
                        "range": range_,
                        "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "ytd", "max"],
                    },
                    "timestamp": timestamps,
                    "events": {
                        "dividends": {str(timestamps[2]): {"amount": 0.24, "date": timestamps[2]}},
                        "splits": {
                            str(timestamps[0]): {
                                "date": timestamps[0],
                                "numerator": 4.0,
                                "denominator": 1.0,
                                "splitRatio": "4:1",
                            }
                        },
                    },
                    "indicators": {
                        "quote": [
                            {
                                "open": opens,
                                "high": highs,
                                "low": lows,
                                "close": closes,
                                "volume": volumes,
                            }
                        ],
                        "adjclose": [{"adjclose": closes}],
                    },
                }
            ],
            "error": None,
        }
    }


def chart_error(code: str, description: str, status: int) -> web.Response:
    """Yahoo's chart error envelope."""
    return json_response(
        {"chart": {"result": None, "error": {"code": code, "description": description}}}, status
    )


class FakeYahoo(FakeServer):
    """Fake ``query1.finance.yahoo.com``."""

    name = "yahoo"
    scenarios = (*COMMON_SCENARIOS, "nulls")

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v8/finance/chart/{symbol}", self.chart)
        router.add_get("/v1/finance/search", self.search)

    async def chart(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"]
        interval = request.query.get("interval", "1d")
        if interval not in VALID_INTERVALS:
            return chart_error(
                "Unprocessable Entity",
                f"Invalid input - interval={interval} is not supported. Valid intervals: "
                f"[{', '.join(VALID_INTERVALS)}]",
                422,
            )
        if "range" not in request.query and not (
            "period1" in request.query and "period2" in request.query
        ):
            return chart_error("Bad Request", "Missing range or period1/period2", 400)
        if symbol not in SYMBOLS:
            return chart_error("Not Found", "No data found, symbol may be delisted", 404)
        range_ = request.query.get("range", "")
        return json_response(chart_payload(symbol, interval, range_, self.scenario == "nulls"))

    async def search(self, request: web.Request) -> web.Response:
        query = request.query.get("q", "").lower()
        quotes_count = int(request.query.get("quotesCount", "6"))
        news_count = int(request.query.get("newsCount", "8"))
        quotes = [
            {
                "exchange": exchange,
                "shortname": name,
                "quoteType": "EQUITY" if symbol == "AAPL" else "INDEX",
                "symbol": symbol,
                "index": "quotes",
                "score": 29000.0,
                "typeDisp": "Equity",
                "longname": name,
                "exchDisp": "NASDAQ" if exchange == "NMS" else exchange,
                "isYahooFinance": True,
            }
            for symbol, (name, _, exchange) in SYMBOLS.items()
            if query and (query in name.lower() or query in symbol.lower())
        ][:quotes_count]
        news = [
            {
                "uuid": "2f1e6b3c-0000-4000-8000-000000000001",
                "title": f"News about {query}",
                "publisher": "Reuters",
                "link": "https://finance.yahoo.com/news/example.html",
                "providerPublishTime": BASE_TIME,
                "type": "STORY",
            }
        ][:news_count]
        return json_response(
            {
                "explains": [],
                "count": len(quotes) + len(news),
                "quotes": quotes,
                "news": news,
                "nav": [],
                "lists": [],
                "researchReports": [],
                "totalTime": 25,
            }
        )

    def unauthorized(self, status: int) -> web.Response:
        return json_response(
            {
                "finance": {
                    "result": None,
                    "error": {"code": "Unauthorized", "description": "Invalid Crumb"},
                }
            },
            status,
        )
