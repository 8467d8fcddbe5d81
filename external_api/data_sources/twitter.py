"""X (Twitter) API v2: recent tweet search and user lookup, with a bearer token.

Wire format (https://docs.x.com/x-api): ``GET /2/tweets/search/recent`` answers
``{"data": [tweets], "includes": {"users": [...]}, "meta": {"result_count",
"newest_id", "oldest_id", "next_token"}}`` (authors via ``expansions=author_id``);
``GET /2/users/by/username/{username}`` answers ``{"data": user}``, or HTTP **200**
with an ``errors`` array of problems (``resource-not-found``) for an unknown user,
which becomes :class:`~external_api.errors.NotFound`. HTTP 400 answers are problem
documents (``{"errors": [...], "title": "Invalid Request", "detail", "type"}``) →
:class:`~external_api.errors.InvalidParams`. 429 answers carry ``x-rate-limit-limit``,
``x-rate-limit-remaining`` and ``x-rate-limit-reset`` (epoch seconds), which the
transport honours.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from pydantic import BaseModel, Field

from external_api.data_sources.base import DataSource, endpoint
from external_api.data_sources.transport import Response
from external_api.errors import FieldError, InvalidParams, NotFound, UpstreamError

__all__ = ["Tweet", "TweetSearchResult", "Twitter", "TwitterUser"]

TWEET_FIELDS = "created_at,author_id,public_metrics,lang,conversation_id"
USER_FIELDS = "created_at,description,public_metrics,verified,profile_image_url"
NOT_FOUND_TYPE = "https://api.twitter.com/2/problems/resource-not-found"


class TwitterUser(BaseModel):
    """An X account."""

    id: str
    username: str
    name: str
    created_at: str | None = None
    description: str | None = None
    verified: bool | None = None
    profile_image_url: str | None = None
    public_metrics: dict[str, int] | None = None


class Tweet(BaseModel):
    """A post, with its author when X included it."""

    id: str
    text: str
    author_id: str | None = None
    created_at: str | None = None
    lang: str | None = None
    conversation_id: str | None = None
    public_metrics: dict[str, int] | None = None
    author: TwitterUser | None = None


class TweetSearchResult(BaseModel):
    """One page of search results; pass ``next_token`` back for the next page."""

    tweets: list[Tweet] = Field(default_factory=list)
    result_count: int = 0
    newest_id: str | None = None
    oldest_id: str | None = None
    next_token: str | None = None


class Twitter(DataSource):
    """Posts and accounts on X (Twitter) through the X API v2 (bearer token required)."""

    name = "Twitter"
    default_base_url = "https://api.twitter.com"
    requires_api_key = True

    def auth_headers(self) -> dict[str, str]:
        """``Authorization: Bearer <WORKSPACE_TWITTER_API_KEY>``."""
        return {"Authorization": f"Bearer {self.api_key()}"}

    @endpoint
    async def search_tweets(
        self,
        query: Annotated[str, Field(min_length=1, max_length=512)],
        max_results: Annotated[int, Field(ge=10, le=100)] = 10,
        next_token: str | None = None,
    ) -> TweetSearchResult:
        """Search posts from the last seven days.

        Args:
            query: X search query, e.g. "from:NASA -is:retweet" (up to 512 characters).
            max_results: Posts per page, 10 to 100.
            next_token: The next_token of a previous page, to continue.
        """
        params = {
            "query": query,
            "max_results": max_results,
            "next_token": next_token,
            "expansions": "author_id",
            "tweet.fields": TWEET_FIELDS,
            "user.fields": USER_FIELDS,
        }
        payload = await self.request("search_tweets", "/2/tweets/search/recent", params=params)
        users = {
            user["id"]: TwitterUser.model_validate(user)
            for user in (payload.get("includes") or {}).get("users") or []
        }
        tweets = []
        for item in payload.get("data") or []:
            tweet = Tweet.model_validate(item)
            tweet.author = users.get(tweet.author_id or "")
            tweets.append(tweet)
        meta = payload.get("meta") or {}
        return TweetSearchResult(
            tweets=tweets,
            result_count=meta.get("result_count", len(tweets)),
            newest_id=meta.get("newest_id"),
            oldest_id=meta.get("oldest_id"),
            next_token=meta.get("next_token"),
        )

    @endpoint
    async def get_user(
        self, username: Annotated[str, Field(pattern=r"^@?[A-Za-z0-9_]{1,15}$")]
    ) -> TwitterUser:
        """Look up an account by its username.

        Args:
            username: The handle, with or without the leading @ (1-15 letters, digits, _).
        """
        handle = username.removeprefix("@")
        path = f"/2/users/by/username/{quote(handle, safe='')}"
        payload = await self.request("get_user", path, params={"user.fields": USER_FIELDS})
        return TwitterUser.model_validate(payload["data"])

    def check_payload(self, endpoint_name: str, payload: Any) -> None:
        """A 200 answer with ``errors`` and no ``data`` is an error (unknown user → NotFound)."""
        if not isinstance(payload, dict):
            raise UpstreamError(f"X answered {endpoint_name} with a non-object JSON body.")
        errors = payload.get("errors") or []
        if "data" in payload or not errors:
            return
        first = errors[0] if isinstance(errors[0], dict) else {}
        detail = first.get("detail") or first.get("title") or "unknown error"
        if first.get("type") == NOT_FOUND_TYPE or first.get("title") == "Not Found Error":
            raise NotFound(
                f"X: {detail}",
                details={"resource_type": first.get("resource_type"), "value": first.get("value")},
            )
        raise UpstreamError(f"X answered with an error: {detail}", body_excerpt=str(detail))

    def raise_for_response(self, endpoint_name: str, response: Response) -> None:
        """Map X's HTTP 400 problem documents to InvalidParams naming each parameter."""
        if response.status == 400:
            try:
                problem = response.json()
            except UpstreamError:
                problem = {}
            if isinstance(problem, dict) and problem.get("errors"):
                fields = [
                    FieldError(
                        field=_field_name(item),
                        message=str(item.get("message") or item.get("detail") or "invalid"),
                    )
                    for item in problem["errors"]
                    if isinstance(item, dict)
                ]
                listed = "; ".join(f"{item['field']}: {item['message']}" for item in fields)
                raise InvalidParams(
                    f"X rejected the request ({problem.get('title', 'Invalid Request')}): "
                    f"{listed or problem.get('detail', '')}",
                    field_errors=fields,
                )
        super().raise_for_response(endpoint_name, response)


def _field_name(problem: dict[str, Any]) -> str:
    parameters = problem.get("parameters")
    if isinstance(parameters, dict) and parameters:
        return str(next(iter(parameters)))
    return str(problem.get("parameter") or "(request)")
