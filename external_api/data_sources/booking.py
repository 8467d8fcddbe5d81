"""Booking.com hotel search through the booking-com15 API on RapidAPI.

Wire format (https://rapidapi.com/DataCrawler/api/booking-com15): requests carry
``X-RapidAPI-Key`` and ``X-RapidAPI-Host: booking-com15.p.rapidapi.com``; answers are
the envelope ``{"status": true, "message": "Success", "timestamp": ..., "data": ...}``.
``status: false`` envelopes (with a message string or a list of ``{field: message}``)
become :class:`~external_api.errors.InvalidParams` or
:class:`~external_api.errors.UpstreamError`. RapidAPI itself answers 403
``{"message": "You are not subscribed to this API."}`` (→ :class:`AuthError`) and 429
``{"message": "Too many requests"}`` (retried, then :class:`RateLimited`).
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from external_api.data_sources.base import DataSource, endpoint
from external_api.data_sources.transport import Response
from external_api.errors import AuthError, FieldError, InvalidParams, UpstreamError

__all__ = ["Booking", "Destination", "DestinationResult", "Hotel", "HotelSearchResult"]

RAPIDAPI_HOST = "booking-com15.p.rapidapi.com"


class Destination(BaseModel):
    """A place to search hotels in; pass ``dest_id`` and ``search_type`` to search_hotels."""

    dest_id: str
    search_type: str
    name: str | None = None
    label: str | None = None
    city_name: str | None = None
    country: str | None = None
    region: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    nr_hotels: int | None = None


class DestinationResult(BaseModel):
    """Destinations matching a query."""

    destinations: list[Destination] = Field(default_factory=list)


class Hotel(BaseModel):
    """A hotel offer for the searched stay."""

    hotel_id: int
    name: str
    review_score: float | None = None
    review_count: int | None = None
    review_word: str | None = None
    price: float | None = None
    currency: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    property_class: float | None = None
    photo_urls: list[str] = Field(default_factory=list)


class HotelSearchResult(BaseModel):
    """One page of hotels."""

    hotels: list[Hotel] = Field(default_factory=list)
    summary: str | None = None


class Booking(DataSource):
    """Hotel destinations and offers from Booking.com via RapidAPI (RapidAPI key required)."""

    name = "Booking"
    default_base_url = f"https://{RAPIDAPI_HOST}"
    requires_api_key = True

    def auth_headers(self) -> dict[str, str]:
        """``X-RapidAPI-Key`` (``WORKSPACE_BOOKING_API_KEY``) and ``X-RapidAPI-Host``."""
        return {"X-RapidAPI-Key": self.api_key(), "X-RapidAPI-Host": RAPIDAPI_HOST}

    @endpoint
    async def search_destination(
        self, query: Annotated[str, Field(min_length=1, max_length=200)]
    ) -> DestinationResult:
        """Find destinations (cities, regions, hotels, landmarks) by name.

        Args:
            query: Place name, e.g. Berlin.
        """
        payload = await self.request(
            "search_destination", "/api/v1/hotels/searchDestination", params={"query": query}
        )
        destinations = [
            Destination.model_validate(_stringify_id(item))
            for item in payload.get("data") or []
            if isinstance(item, dict) and item.get("dest_id") is not None
        ]
        return DestinationResult(destinations=destinations)

    @endpoint
    async def search_hotels(
        self,
        dest_id: Annotated[str, Field(min_length=1)],
        search_type: Annotated[str, Field(min_length=1)],
        arrival_date: datetime.date,
        departure_date: datetime.date,
        adults: Annotated[int, Field(ge=1, le=30)] = 1,
        room_qty: Annotated[int, Field(ge=1, le=30)] = 1,
        page_number: Annotated[int, Field(ge=1)] = 1,
        currency_code: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD",
    ) -> HotelSearchResult:
        """Search hotel offers at a destination for a stay.

        Args:
            dest_id: The dest_id of a Booking/search_destination result.
            search_type: Its search_type, e.g. CITY.
            arrival_date: Check-in date, YYYY-MM-DD.
            departure_date: Check-out date, YYYY-MM-DD, after arrival_date.
            adults: Number of adults.
            room_qty: Number of rooms.
            page_number: Result page, from 1.
            currency_code: ISO 4217 currency of the prices, e.g. EUR.
        """
        if departure_date <= arrival_date:
            raise InvalidParams(
                "Booking/search_hotels: departure_date must be after arrival_date.",
                field_errors=[FieldError("departure_date", "must be after arrival_date")],
            )
        params = {
            "dest_id": dest_id,
            "search_type": search_type.upper(),
            "arrival_date": arrival_date.isoformat(),
            "departure_date": departure_date.isoformat(),
            "adults": adults,
            "room_qty": room_qty,
            "page_number": page_number,
            "currency_code": currency_code,
        }
        payload = await self.request("search_hotels", "/api/v1/hotels/searchHotels", params=params)
        data = payload.get("data") or {}
        hotels = [_hotel(item) for item in data.get("hotels") or [] if isinstance(item, dict)]
        meta = data.get("meta") or []
        summary = meta[0].get("title") if meta and isinstance(meta[0], dict) else None
        return HotelSearchResult(hotels=[h for h in hotels if h is not None], summary=summary)

    def check_payload(self, endpoint_name: str, payload: Any) -> None:
        """Raise for ``status: false`` envelopes: field messages → InvalidParams."""
        if not isinstance(payload, dict):
            raise UpstreamError(f"Booking answered {endpoint_name} with a non-object JSON body.")
        if payload.get("status") is not False:
            return
        message = payload.get("message")
        if isinstance(message, list) and message and all(isinstance(m, dict) for m in message):
            fields = [FieldError(str(k), str(v)) for item in message for k, v in item.items()]
            listed = "; ".join(f"{item['field']}: {item['message']}" for item in fields)
            raise InvalidParams(f"Booking rejected the arguments: {listed}", field_errors=fields)
        raise UpstreamError(
            f"Booking answered status false: {message}; check the arguments or retry later.",
            body_excerpt=str(message)[:300],
        )

    def raise_for_response(self, endpoint_name: str, response: Response) -> None:
        """RapidAPI's 403 (not subscribed) and 401 (bad key) → AuthError naming the fix."""
        if response.status in (401, 403):
            try:
                body = response.json()
            except UpstreamError:
                body = {}
            said = body.get("message") if isinstance(body, dict) else None
            raise AuthError(
                f"RapidAPI refused the Booking request (HTTP {response.status}: "
                f"{said or 'forbidden'}): set {self.key_variable()} to a RapidAPI key that is "
                "subscribed to booking-com15.",
                details={"status": response.status},
            )
        super().raise_for_response(endpoint_name, response)


def _stringify_id(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "dest_id": str(item["dest_id"])}


def _hotel(item: dict[str, Any]) -> Hotel | None:
    prop = item.get("property") or {}
    hotel_id = item.get("hotel_id") or prop.get("id")
    if hotel_id is None or not prop.get("name"):
        return None
    gross = ((prop.get("priceBreakdown") or {}).get("grossPrice")) or {}
    return Hotel(
        hotel_id=hotel_id,
        name=prop["name"],
        review_score=prop.get("reviewScore"),
        review_count=prop.get("reviewCount"),
        review_word=prop.get("reviewScoreWord"),
        price=gross.get("value"),
        currency=gross.get("currency") or prop.get("currency"),
        latitude=prop.get("latitude"),
        longitude=prop.get("longitude"),
        property_class=prop.get("propertyClass"),
        photo_urls=[url for url in prop.get("photoUrls") or [] if isinstance(url, str)],
    )
