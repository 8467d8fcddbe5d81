"""Where the two halves meet: browser functions called over the function server.

Real Chromium visits a local page that throws, rejects and logs errors; the call goes
through ``POST /functions/Browser/visit``, the ``/execute`` protocol and a
``FunctionProxy``, exactly as an agent would make it.
"""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import pytest

from external_api.config import reset_settings
from external_api.errors import InvalidParams
from external_api.function_utils import FunctionProxy
from tests.browser.site import Site
from tests.server.conftest import ServerThread

pytestmark = pytest.mark.browser


async def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as response:
        payload: dict[str, Any] = await response.json()
        return response.status, payload


async def test_visit_over_http_returns_the_error_records(
    browser_server: ServerThread, site: Site
) -> None:
    status, body = await _post(
        f"{browser_server.url}/functions/Browser/visit",
        {"url": site.url("/errors"), "wait_until": "networkidle"},
    )
    assert status == 200, body
    result = body["result"]
    assert (result["url"], result["status"], result["title"]) == (site.url("/errors"), 200, "done")
    types = {record["type"] for record in result["errors"]}
    assert {"error", "unhandledrejection", "console", "network", "http"} <= types
    thrown = next(r for r in result["errors"] if "thrown from a timer" in r["message"])
    assert thrown["type"] == "error"


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "chrome://settings", "data:text/html,<h1>x</h1>"]
)
async def test_non_http_urls_are_refused_with_422(browser_server: ServerThread, url: str) -> None:
    status, body = await _post(f"{browser_server.url}/functions/Browser/visit", {"url": url})
    assert status == 422
    assert body["error"]["type"] == "InvalidParams"
    assert "http" in body["error"]["message"]


async def test_execute_protocol_screenshot(browser_server: ServerThread, site: Site) -> None:
    status, body = await _post(
        f"{browser_server.url}/execute",
        {
            "request_id": "e2e-1",
            "function_name": "Browser/screenshot",
            "parameters": {"url": site.url("/hello?name=e2e")},
            "caller_name": "e2e-agent",
        },
    )
    assert status == 200, body
    assert (body["request_id"], body["is_error"]) == ("e2e-1", False)
    png = base64.b64decode(body["result"]["png_base64"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_function_proxy_round_trip_and_error_class(
    browser_server: ServerThread, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FUNC_SERVER_PORT", str(browser_server.port))
    monkeypatch.delenv("WORKSPACE_SERVER_TOKEN", raising=False)
    reset_settings()
    try:
        proxy = FunctionProxy(timeout=60)
        result = proxy.call("Browser/visit", url=site.url("/hello?name=proxy"))
        assert (result["status"], result["title"]) == (200, "Hello proxy")
        with pytest.raises(InvalidParams, match="http"):
            proxy.call("Browser/visit", url="file:///etc/passwd")
    finally:
        reset_settings()
