"""A fake booking-com15 API on RapidAPI, following https://rapidapi.com/DataCrawler/api/booking-com15.

- Auth (RapidAPI's gateway): ``X-RapidAPI-Key`` must be a subscribed key and
  ``X-RapidAPI-Host: booking-com15.p.rapidapi.com``; a missing or unknown key → 401
  ``{"message": "Invalid API key. Go to https://docs.rapidapi.com/docs/keys for more info."}``,
  an unsubscribed one → 403 ``{"message": "You are not subscribed to this API."}``,
  429 → ``{"message": "Too many requests"}``.
- Answers are the envelope ``{"status": true, "message": "Success", "timestamp": <ms>,
  "data": ...}``; bad arguments give ``{"status": false, "message": [{"<param>":
  "<problem>"}], "timestamp": ...}`` with HTTP 200.
- ``GET /api/v1/hotels/searchDestination?query=`` → ``data``: list of destinations.
- ``GET /api/v1/hotels/searchHotels?dest_id=&search_type=&arrival_date=&departure_date=
  &adults=&room_qty=&page_number=&currency_code=`` → ``data``: ``{"hotels": [{"hotel_id",
  "accessibilityLabel", "property": {...}}], "meta": [{"title"}]}``.

Extra scenarios: ``status_false`` — every answer is ``{"status": false, "message": "..."}``;
``echo_key`` — a misbehaving upstream that answers 500 quoting the caller's key back.
"""

from __future__ import annotations

import time

from aiohttp import web

from tests.fakes._server import COMMON_SCENARIOS, FakeServer, json_response

KEY = "fake-rapidapi-key-0123456789abcdef"
UNSUBSCRIBED_KEY = "fake-rapidapi-key-unsubscribed"
HOST = "booking-com15.p.rapidapi.com"
DESTINATIONS = [
    {
        "dest_id": "-1746443",
        "search_type": "city",
        "dest_type": "city",
        "name": "Berlin",
        "label": "Berlin, Berlin Federal State, Germany",
        "city_name": "Berlin",
        "country": "Germany",
        "region": "Berlin Federal State",
        "latitude": 52.51965,
        "longitude": 13.406387,
        "nr_hotels": 1811,
        "hotels": 1811,
        "cc1": "de",
        "lc": "en",
        "roundtrip": "GgAgACgBMgJlbjoGQmVybGluQABKAFAA",
        "type": "ci",
        "image_url": "https://cf.bstatic.com/xdata/images/city/150x150/613092.jpg",
    },
    {
        "dest_id": 2279,
        "search_type": "landmark",
        "dest_type": "landmark",
        "name": "Brandenburg Gate",
        "label": "Brandenburg Gate, Berlin, Germany",
        "city_name": "Berlin",
        "country": "Germany",
        "latitude": 52.516266,
        "longitude": 13.377775,
        "nr_hotels": 640,
        "hotels": 640,
        "cc1": "de",
        "lc": "en",
        "type": "ll",
    },
]


def envelope(data: object) -> dict[str, object]:
    """booking-com15's success envelope."""
    return {
        "status": True,
        "message": "Success",
        "timestamp": int(time.time() * 1000),
        "data": data,
    }


def hotel(index: int, currency: str) -> dict[str, object]:
    """One searchHotels item."""
    return {
        "hotel_id": 1000 + index,
        "accessibilityLabel": f"Hotel {index}. 4 out of 5 stars.",
        "property": {
            "id": 1000 + index,
            "name": f"Hotel Berlin Mitte {index}",
            "reviewScore": 8.0 + index / 10,
            "reviewCount": 1200 + index,
            "reviewScoreWord": "Very Good",
            "propertyClass": 4,
            "latitude": 52.52 + index / 1000,
            "longitude": 13.40,
            "currency": "EUR",
            "countryCode": "de",
            "photoUrls": [f"https://cf.bstatic.com/xdata/images/hotel/square60/{index}.jpg"],
            "priceBreakdown": {"grossPrice": {"currency": currency, "value": 120.5 + index}},
            "checkinDate": "2026-06-01",
            "checkoutDate": "2026-06-03",
        },
    }


class FakeBooking(FakeServer):
    """Fake ``booking-com15.p.rapidapi.com``."""

    name = "booking"
    scenarios = (*COMMON_SCENARIOS, "status_false", "echo_key")

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/api/v1/hotels/searchDestination", self.search_destination)
        router.add_get("/api/v1/hotels/searchHotels", self.search_hotels)

    def check_key(self, request: web.Request) -> web.Response | None:
        if self.scenario == "echo_key":
            key = request.headers.get("X-RapidAPI-Key")
            return json_response({"message": f"internal error for key {key}"}, 500)
        key = request.headers.get("X-RapidAPI-Key")
        if key == UNSUBSCRIBED_KEY:
            return self.unauthorized(403)
        if key != KEY or request.headers.get("X-RapidAPI-Host") != HOST:
            return self.unauthorized(401)
        return None

    def status_false(self) -> web.Response:
        return json_response(
            {
                "status": False,
                "message": "Something went wrong",
                "timestamp": int(time.time() * 1000),
            }
        )

    async def search_destination(self, request: web.Request) -> web.Response:
        denied = self.check_key(request)
        if denied is not None:
            return denied
        if self.scenario == "status_false":
            return self.status_false()
        query = request.query.get("query", "").lower()
        if not query:
            return json_response(
                {"status": False, "message": [{"query": "query is required"}], "timestamp": 0}
            )
        return json_response(
            envelope([d for d in DESTINATIONS if query in str(d["label"]).lower()])
        )

    async def search_hotels(self, request: web.Request) -> web.Response:
        denied = self.check_key(request)
        if denied is not None:
            return denied
        if self.scenario == "status_false":
            return self.status_false()
        q = request.query
        problems = [
            {name: f"{name} is required"}
            for name in ("dest_id", "search_type", "arrival_date", "departure_date")
            if not q.get(name)
        ]
        if q.get("search_type") and q["search_type"] != q["search_type"].upper():
            problems.append({"search_type": "search_type must be uppercase, e.g. CITY"})
        if q.get("dest_id") == "0":
            problems.append({"dest_id": "dest_id is invalid"})
        if problems:
            return json_response(
                {"status": False, "message": problems, "timestamp": int(time.time() * 1000)}
            )
        page = int(q.get("page_number", "1"))
        currency = q.get("currency_code", "USD")
        hotels = [hotel((page - 1) * 3 + i, currency) for i in range(3)]
        return json_response(
            envelope({"hotels": hotels, "meta": [{"title": "1,811 properties"}], "appear": []})
        )

    def too_many_requests(self) -> web.Response:
        return json_response(
            {"message": "Too many requests"}, 429, {"Retry-After": self.retry_after}
        )

    def server_error(self, status: int) -> web.Response:
        return json_response(
            {
                "messages": "The API is unreachable, please contact the API provider",
                "info": "Your Client (working) ---> Gateway (working) ---> API (not working)",
            },
            status,
        )

    def unauthorized(self, status: int) -> web.Response:
        if status == 403:
            return json_response({"message": "You are not subscribed to this API."}, 403)
        return json_response(
            {
                "message": "Invalid API key. Go to "
                "https://docs.rapidapi.com/docs/keys for more info."
            },
            401,
        )
