"""visit/screenshot against real Chromium: every record type and field, policy, errors."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest

from browser import ascreenshot, avisit, screenshot, visit
from browser.capture import RECORD_FIELDS, read_extension_records
from browser.global_browser import GlobalBrowser
from external_api.errors import InvalidParams, UpstreamError, UpstreamTimeout
from tests.browser.helpers import of_type, poll
from tests.browser.site import Site

pytestmark = pytest.mark.browser

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def errors_visit(shared_browser: GlobalBrowser, site: Site) -> tuple[dict[str, Any], float, float]:
    before = time.time()
    result = visit(site.url("/errors"), wait_until="networkidle")
    return result, before, time.time()


def test_visit_reports_url_status_title_and_well_formed_records(
    errors_visit: tuple[dict[str, Any], float, float], site: Site
) -> None:
    result, before, after = errors_visit
    assert result["url"] == site.url("/errors")
    assert result["status"] == 200
    assert result["title"] == "done"
    assert json.loads(json.dumps(result)) == result  # JSON-compatible as it is
    for record in result["errors"]:
        assert tuple(record) == RECORD_FIELDS
        assert before - 1 <= record["timestamp"] <= after + 1
    stamps = [record["timestamp"] for record in result["errors"]]
    assert stamps == sorted(stamps)


def test_thrown_error_record(errors_visit: tuple[dict[str, Any], float, float], site: Site) -> None:
    [record] = of_type(errors_visit[0], "error")
    assert record["message"] == "TypeError: thrown from a timer"
    assert record["url"] == site.url("/errors")
    assert (record["line"], record["column"]) == (5, 26)
    assert record["stack"].startswith("TypeError: thrown from a timer\n    at ")


def test_unhandled_rejection_record(
    errors_visit: tuple[dict[str, Any], float, float], site: Site
) -> None:
    [record] = of_type(errors_visit[0], "unhandledrejection")
    assert record["message"] == "Error: rejected promise"
    assert record["url"] == site.url("/errors")
    assert record["line"] == 6
    assert "rejected promise" in record["stack"]


def test_console_error_record_points_at_the_page_not_the_extension(
    errors_visit: tuple[dict[str, Any], float, float], site: Site
) -> None:
    [record] = of_type(errors_visit[0], "console")
    assert record["message"] == "console says 42"
    assert (record["url"], record["line"], record["column"]) == (site.url("/errors"), 4, 9)


def test_missing_image_is_one_http_record(
    errors_visit: tuple[dict[str, Any], float, float], site: Site
) -> None:
    records = [r for r in errors_visit[0]["errors"] if r["url"] == site.url("/missing.png")]
    assert len(records) == 1
    assert records[0]["type"] == "http"
    assert records[0]["message"] == f"HTTP 404 (GET {site.url('/missing.png')})"
    assert (records[0]["line"], records[0]["column"], records[0]["stack"]) == (None, None, "")


def test_refused_fetch_is_a_network_record(
    errors_visit: tuple[dict[str, Any], float, float], closed_port: int
) -> None:
    [record] = of_type(errors_visit[0], "network")
    assert record["url"] == f"http://127.0.0.1:{closed_port}/refused"
    assert "net::ERR_CONNECTION_REFUSED" in record["message"]


def test_http_error_record_has_secrets_redacted(
    errors_visit: tuple[dict[str, Any], float, float], site: Site
) -> None:
    [record] = [r for r in of_type(errors_visit[0], "http") if "/api/private" in r["url"]]
    assert record["url"] == site.url("/api/private?token=%5BREDACTED%5D&q=1")
    assert record["message"].startswith("HTTP 401 (GET ")
    assert "query-secret" not in json.dumps(errors_visit[0])


def test_each_error_is_reported_once(errors_visit: tuple[dict[str, Any], float, float]) -> None:
    kinds = sorted(record["type"] for record in errors_visit[0]["errors"])
    assert kinds == ["console", "error", "http", "http", "network", "unhandledrejection"]


def test_extension_records_redact_headers_cookies_and_keys(
    shared_browser: GlobalBrowser, site: Site
) -> None:
    async def job(page: Any) -> list[dict[str, Any]]:
        await page.goto(site.url("/errors"))
        await page.wait_for_function("document.title === 'done'")
        return await poll(
            lambda: read_extension_records(page, shared_browser.extension_worker),
            lambda records: any("/api/private" in r["url"] for r in records),
        )

    records = shared_browser.run_sync(job)
    # The content script's own records are there (Playwright would call a rejection "error").
    assert {"error", "unhandledrejection", "console"} <= {r["type"] for r in records}
    [private] = [r for r in records if "/api/private" in r["url"]]
    headers = {item["name"].lower(): item["value"] for item in private["requestHeaders"]}
    assert headers["authorization"] == "[REDACTED]"
    assert headers["x-api-key"] == "[REDACTED]"
    assert headers["cookie"] == "[REDACTED]"
    assert headers["x-trace"] == "visible"
    dumped = json.dumps(records)
    for secret in ("header-secret", "key-secret", "cookie-secret", "query-secret"):
        assert secret not in dumped


def test_extension_keeps_every_write_in_order(shared_browser: GlobalBrowser, site: Site) -> None:
    async def job(page: Any) -> list[dict[str, Any]]:
        await page.goto(site.url("/many?n=40"))
        return await poll(
            lambda: read_extension_records(page, shared_browser.extension_worker),
            lambda records: len(records) >= 40,
        )

    records = shared_browser.run_sync(job)
    assert [r["message"] for r in records] == [f"error {i}" for i in range(40)]


def test_extension_cap_drops_the_oldest_records(shared_browser: GlobalBrowser, site: Site) -> None:
    async def job(page: Any) -> list[dict[str, Any]]:
        worker = await shared_browser.extension_worker()
        await worker.evaluate("(n) => self.errorCapture.setMaxRecords(n)", 5)
        try:
            await page.goto(site.url("/many?n=12"))
            return await poll(
                lambda: read_extension_records(page, shared_browser.extension_worker),
                lambda records: bool(records) and records[-1]["message"] == "error 11",
            )
        finally:
            limit = shared_browser.settings.max_errors
            await worker.evaluate("(n) => self.errorCapture.setMaxRecords(n)", limit)

    records = shared_browser.run_sync(job)
    assert [r["message"] for r in records] == [f"error {i}" for i in range(7, 12)]


def test_extension_records_survive_navigation(shared_browser: GlobalBrowser, site: Site) -> None:
    async def job(page: Any) -> list[dict[str, Any]]:
        await page.goto(site.url("/navigate"))
        await page.wait_for_url("**/landing")
        return await poll(
            lambda: read_extension_records(page, shared_browser.extension_worker),
            lambda records: any("after navigation" in r["message"] for r in records),
        )

    records = shared_browser.run_sync(job)
    messages = {(r["type"], r["message"], r["url"]) for r in records}
    assert ("console", "before navigation", site.url("/navigate")) in messages
    assert ("error", "RangeError: after navigation", site.url("/landing")) in messages


async def test_avisit_follows_a_page_that_navigates_mid_way(
    shared_browser: GlobalBrowser, site: Site
) -> None:
    result = await avisit(site.url("/navigate"))
    assert result["url"] == site.url("/landing")
    assert result["status"] == 200
    assert result["title"] == "Landing"
    messages = [record["message"] for record in result["errors"]]
    assert messages == ["before navigation", "RangeError: after navigation"]


def test_screenshot_returns_base64_png(shared_browser: GlobalBrowser, site: Site) -> None:
    result = screenshot(site.url("/hello?name=png"))
    assert (result["status"], result["title"]) == (200, "Hello png")
    assert base64.b64decode(result["png_base64"]).startswith(PNG_SIGNATURE)
    assert "path" not in result


async def test_screenshot_can_save_to_the_screenshot_dir(
    shared_browser: GlobalBrowser, site: Site, screenshot_dir: Path
) -> None:
    result = await ascreenshot(site.url("/hello"), full_page=True, save=True)
    check_saved_png(Path(result["path"]), screenshot_dir)
    assert "png_base64" not in result


def check_saved_png(path: Path, screenshot_dir: Path) -> None:
    assert path.parent == screenshot_dir
    assert path.read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "chrome://version",
        "data:text/html,<h1>hi</h1>",
        "javascript:alert(1)",
        "http://localhost/",  # not on WORKSPACE_BROWSER_ALLOWED_HOSTS=127.0.0.1
        "/relative/path",
    ],
)
def test_refused_urls_never_reach_the_browser(shared_browser: GlobalBrowser, url: str) -> None:
    launches, pages = shared_browser.launch_count, shared_browser.peak_pages
    with pytest.raises(InvalidParams, match="refusing to open") as caught:
        visit(url)
    assert caught.value.field_errors[0]["field"] == "url"
    with pytest.raises(InvalidParams):
        screenshot(url)
    assert (shared_browser.launch_count, shared_browser.peak_pages) == (launches, pages)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"wait_until": "whenever"}, "wait_until"), ({"timeout": 0}, "timeout")],
)
def test_bad_arguments_are_invalid_params(
    shared_browser: GlobalBrowser, site: Site, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidParams) as caught:
        visit(site.url("/hello"), **kwargs)
    assert [item["field"] for item in caught.value.field_errors] == [field]


def test_refused_connection_is_an_upstream_error(
    shared_browser: GlobalBrowser, closed_port: int
) -> None:
    with pytest.raises(UpstreamError, match="ERR_CONNECTION_REFUSED"):
        visit(f"http://127.0.0.1:{closed_port}/")


async def test_slow_page_is_an_upstream_timeout(shared_browser: GlobalBrowser, site: Site) -> None:
    with pytest.raises(UpstreamTimeout, match=r"timed out|took longer|in time"):
        await avisit(site.url("/slow?ms=5000"), timeout=0.5)
