"""A fake X API v2 (tweet search and user lookup), following https://docs.x.com/x-api.

- Auth: ``Authorization: Bearer <token>``; anything else → 401
  ``{"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}``.
- ``GET /2/tweets/search/recent?query=&max_results=&next_token=&expansions=author_id``
  → ``{"data": [...], "includes": {"users": [...]}, "meta": {"newest_id", "oldest_id",
  "result_count", "next_token"}}``; ``max_results`` outside 10..100 → 400 problem
  ``{"errors": [{"parameters": {...}, "message"}], "title": "Invalid Request", "detail",
  "type": "https://api.twitter.com/2/problems/invalid-request"}``.
- ``GET /2/users/by/username/{username}`` → ``{"data": user}``, or **200** with
  ``{"errors": [{"value", "detail": "Could not find user with username: [..].", "title":
  "Not Found Error", "resource_type": "user", "parameter": "username", "resource_id",
  "type": "https://api.twitter.com/2/problems/resource-not-found"}]}``.
- Every answer carries ``x-rate-limit-limit``, ``x-rate-limit-remaining`` and
  ``x-rate-limit-reset`` (epoch seconds); 429 → ``{"title": "Too Many Requests",
  "detail": "Too Many Requests", "type": "about:blank", "status": 429}``.

Extra scenario: ``errors_200`` — every user lookup answers 200 with the ``errors`` array.
"""

from __future__ import annotations

import time

from aiohttp import web

from tests.fakes._server import COMMON_SCENARIOS, FakeServer, json_response

TOKEN = "fake-x-bearer-token-0123456789"
USERS = {
    "nasa": {
        "id": "11348282",
        "name": "NASA",
        "username": "NASA",
        "created_at": "2007-12-19T20:20:32.000Z",
        "description": "There's space for everybody.",
        "verified": True,
        "public_metrics": {
            "followers_count": 89000000,
            "following_count": 180,
            "tweet_count": 73000,
            "listed_count": 99000,
        },
    },
    "xdevelopers": {
        "id": "2244994945",
        "name": "Developers",
        "username": "XDevelopers",
        "created_at": "2013-12-14T04:35:55.000Z",
        "description": "The voice of the X Dev team.",
        "verified": True,
        "public_metrics": {
            "followers_count": 570000,
            "following_count": 2000,
            "tweet_count": 3800,
            "listed_count": 1700,
        },
    },
}
TWEETS = [
    {
        "id": f"17{i:017d}",
        "text": f"Post number {i} about space",
        "author_id": ("11348282" if i % 2 else "2244994945"),
        "created_at": f"2025-01-0{1 + i % 9}T12:00:00.000Z",
        "lang": "en",
        "edit_history_tweet_ids": [f"17{i:017d}"],
    }
    for i in range(25)
]


def problem(status: int, title: str, detail: str) -> dict[str, object]:
    """An RFC 7807 problem as X sends it for generic HTTP errors."""
    return {"title": title, "detail": detail, "type": "about:blank", "status": status}


class FakeTwitter(FakeServer):
    """Fake ``api.twitter.com`` (X API v2)."""

    name = "twitter"
    scenarios = (*COMMON_SCENARIOS, "errors_200")

    def __init__(self) -> None:
        super().__init__()
        self.token = TOKEN

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/2/tweets/search/recent", self.search_recent)
        router.add_get("/2/users/by/username/{username}", self.user_by_username)

    def rate_headers(self, remaining: int = 449) -> dict[str, str]:
        reset = int(time.time()) + int(float(self.retry_after))
        return {
            "x-rate-limit-limit": "450",
            "x-rate-limit-remaining": str(remaining),
            "x-rate-limit-reset": str(reset),
        }

    def authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    async def search_recent(self, request: web.Request) -> web.Response:
        if not self.authorised(request):
            return self.unauthorized(401)
        query = request.query.get("query", "")
        max_results = request.query.get("max_results", "10")
        errors = []
        if not query:
            errors.append(
                {
                    "parameters": {"query": []},
                    "message": "The `query` query parameter can not be empty",
                }
            )
        if not max_results.isdigit() or not 10 <= int(max_results) <= 100:
            errors.append(
                {
                    "parameters": {"max_results": [max_results]},
                    "message": f"The `max_results` query parameter value [{max_results}] "
                    "is not between 10 and 100",
                }
            )
        if errors:
            return json_response(
                {
                    "errors": errors,
                    "title": "Invalid Request",
                    "detail": "One or more parameters to your request was invalid.",
                    "type": "https://api.twitter.com/2/problems/invalid-request",
                },
                400,
                self.rate_headers(),
            )
        words = [w for w in query.lower().split() if not w.startswith(("-", "from:"))]
        matching = [t for t in TWEETS if all(w in str(t["text"]).lower() for w in words)]
        start = int(request.query.get("next_token", "page0").removeprefix("page") or 0) * int(
            max_results
        )
        page = matching[start : start + int(max_results)]
        if not page:
            return json_response({"meta": {"result_count": 0}}, headers=self.rate_headers())
        meta: dict[str, object] = {
            "newest_id": page[0]["id"],
            "oldest_id": page[-1]["id"],
            "result_count": len(page),
        }
        if start + len(page) < len(matching):
            meta["next_token"] = f"page{start // int(max_results) + 1}"
        body: dict[str, object] = {"data": page, "meta": meta}
        if request.query.get("expansions") == "author_id":
            authors = {t["author_id"] for t in page}
            body["includes"] = {"users": [u for u in USERS.values() if u["id"] in authors]}
        return json_response(body, headers=self.rate_headers())

    async def user_by_username(self, request: web.Request) -> web.Response:
        if not self.authorised(request):
            return self.unauthorized(401)
        username = request.match_info["username"]
        user = USERS.get(username.lower())
        if user is None or self.scenario == "errors_200":
            return json_response(
                {
                    "errors": [
                        {
                            "value": username,
                            "detail": f"Could not find user with username: [{username}].",
                            "title": "Not Found Error",
                            "resource_type": "user",
                            "parameter": "username",
                            "resource_id": username,
                            "type": "https://api.twitter.com/2/problems/resource-not-found",
                        }
                    ]
                },
                headers=self.rate_headers(),
            )
        return json_response({"data": user}, headers=self.rate_headers())

    def too_many_requests(self) -> web.Response:
        return json_response(
            problem(429, "Too Many Requests", "Too Many Requests"), 429, self.rate_headers(0)
        )

    def server_error(self, status: int) -> web.Response:
        title = "Service Unavailable" if status == 503 else "Internal Server Error"
        return json_response(problem(status, title, title), status)

    def unauthorized(self, status: int) -> web.Response:
        if status == 403:
            return json_response(
                {
                    "client_id": "12345",
                    "detail": "When authenticating requests to the Twitter API v2 endpoints, "
                    "you must use keys and tokens from a Twitter developer App that is "
                    "attached to a Project.",
                    "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
                    "title": "Client Forbidden",
                    "required_enrollment": "Appropriate Level of API Access",
                    "reason": "client-not-enrolled",
                    "type": "https://api.twitter.com/2/problems/client-forbidden",
                },
                403,
            )
        return json_response(problem(401, "Unauthorized", "Unauthorized"), 401)
