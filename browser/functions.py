"""The browser's functions, as the function server exposes them (``Browser/visit``, ...).

Each function has an async form (``avisit``, ``ascreenshot``) for event loops and a
blocking form (``visit``, ``screenshot``) for any thread; both run on the shared
browser (:func:`browser.global_browser.get_browser`) and return JSON-compatible dicts.
The URL policy (:func:`browser.url_policy.check_url`) is enforced before the browser
is touched, so a refused URL never launches Chromium.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, get_args
from urllib.parse import urlsplit

from browser.capture import (
    PageEvents,
    merge_records,
    read_extension_records,
    redact_url,
    report_records,
)
from browser.global_browser import GlobalBrowser, get_browser
from browser.url_policy import check_url
from external_api.errors import FieldError, InvalidParams, UpstreamError, UpstreamTimeout
from external_api.observability import metrics_counter_inc

if TYPE_CHECKING:
    from playwright.async_api import Page, Response

__all__ = ["WaitUntil", "ascreenshot", "avisit", "screenshot", "visit"]

WaitUntil = Literal["commit", "domcontentloaded", "load", "networkidle"]
VISITS_METRIC = "workspace_browser_visits_total"

Job = Callable[["Page"], Awaitable[dict[str, Any]]]


def _check_arguments(wait_until: str, timeout: float | None) -> None:
    problems = []
    if wait_until not in get_args(WaitUntil):
        allowed = ", ".join(get_args(WaitUntil))
        problems.append(FieldError("wait_until", f"must be one of {allowed}", "literal_error"))
    if timeout is not None and not timeout > 0:
        problems.append(FieldError("timeout", "must be a number of seconds > 0", "greater_than"))
    if problems:
        raise InvalidParams(
            "invalid browser arguments: "
            + "; ".join(f"{p['field']} {p['message']}" for p in problems),
            field_errors=problems,
        )


async def _open(page: Page, url: str, wait_until: WaitUntil) -> Response | None:
    """Navigate ``page`` to ``url``; translate navigation failures into clear errors."""
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    try:
        return await page.goto(url, wait_until=wait_until)
    except PlaywrightTimeout:
        raise UpstreamTimeout(
            f"{redact_url(url)} did not reach {wait_until!r} in time; pass a larger timeout "
            "or an earlier wait_until such as 'domcontentloaded'"
        ) from None
    except PlaywrightError as error:
        reason = error.message.splitlines()[0]
        raise UpstreamError(f"could not open {redact_url(url)}: {reason}") from None


async def _title(page: Page) -> str:
    """The page's title; waits out a navigation the page started itself."""
    from playwright.async_api import Error as PlaywrightError

    for _ in range(3):
        try:
            return await page.title()
        except PlaywrightError:  # "execution context was destroyed": a navigation is running
            await page.wait_for_load_state()
    return await page.title()


def _visit_job(browser: GlobalBrowser, url: str, wait_until: WaitUntil) -> Job:
    async def job(page: Page) -> dict[str, Any]:
        events = PageEvents(page)
        response = await _open(page, url, wait_until)
        if browser.settings.settle:
            await asyncio.sleep(browser.settings.settle)
        if wait_until in ("domcontentloaded", "load"):  # a navigation the page started itself
            await page.wait_for_load_state(wait_until)
        title = await _title(page)
        extension = await read_extension_records(page, browser.extension_worker)
        errors = merge_records(extension, events.records, browser.settings.max_errors)
        report_records(errors, page.url)
        return {
            "url": redact_url(page.url),
            "status": response.status if response is not None else None,
            "title": title,
            "errors": [dict(record) for record in errors],
        }

    return job


def _screenshot_job(
    browser: GlobalBrowser, url: str, wait_until: WaitUntil, full_page: bool, save: bool
) -> Job:
    async def job(page: Page) -> dict[str, Any]:
        response = await _open(page, url, wait_until)
        result: dict[str, Any] = {
            "url": redact_url(page.url),
            "status": response.status if response is not None else None,
            "title": await _title(page),
        }
        if save:
            host = (urlsplit(page.url).hostname or "page").replace(":", "_")
            name = f"{time.strftime('%Y%m%dT%H%M%S')}-{host}-{uuid.uuid4().hex[:8]}.png"
            path = browser.settings.screenshot_dir / name
            # Playwright creates the folder and writes the file off the event loop.
            await page.screenshot(path=path, full_page=full_page, type="png")
            result["path"] = str(path)
        else:
            png = await page.screenshot(full_page=full_page, type="png")
            result["png_base64"] = base64.b64encode(png).decode("ascii")
        return result

    return job


@contextlib.contextmanager
def _counted(kind: str) -> Iterator[None]:
    """Count one ``kind`` operation in metrics by outcome (``ok`` or ``error``)."""
    try:
        yield
    except Exception:
        metrics_counter_inc(VISITS_METRIC, {"kind": kind, "outcome": "error"})
        raise
    metrics_counter_inc(VISITS_METRIC, {"kind": kind, "outcome": "ok"})


def _prepare_visit(
    url: str, wait_until: WaitUntil, timeout: float | None
) -> tuple[GlobalBrowser, Job]:
    _check_arguments(wait_until, timeout)
    browser = get_browser()
    return browser, _visit_job(browser, check_url(url, browser.settings), wait_until)


def _prepare_screenshot(
    url: str, full_page: bool, save: bool, wait_until: WaitUntil, timeout: float | None
) -> tuple[GlobalBrowser, Job]:
    _check_arguments(wait_until, timeout)
    browser = get_browser()
    target = check_url(url, browser.settings)
    return browser, _screenshot_job(browser, target, wait_until, full_page, save)


async def avisit(
    url: str, wait_until: WaitUntil = "load", timeout: float | None = None
) -> dict[str, Any]:
    """Open a URL in the shared browser and report its status, title and JavaScript errors.

    Args:
        url: The page to open (http or https; see WORKSPACE_BROWSER_ALLOWED_HOSTS).
        wait_until: When navigation counts as done: commit, domcontentloaded, load or
            networkidle.
        timeout: Seconds the whole visit may take (default WORKSPACE_BROWSER_TIMEOUT).

    Returns:
        ``{"url", "status", "title", "errors"}``: the final URL, the HTTP status of the
        first response (None when there was none), the title, and the captured errors,
        each ``{type, message, url, line, column, stack, timestamp}``.

    Raises:
        InvalidParams: the URL is refused by the policy, or an argument is invalid.
        UpstreamTimeout: the page did not load in time.
        UpstreamError: the page could not be opened (DNS, refused connection, crash).
    """
    browser, job = _prepare_visit(url, wait_until, timeout)
    with _counted("visit"):
        return await browser.run(job, timeout=timeout)


async def ascreenshot(
    url: str,
    full_page: bool = False,
    save: bool = False,
    wait_until: WaitUntil = "load",
    timeout: float | None = None,
) -> dict[str, Any]:
    """Open a URL in the shared browser and take a PNG screenshot of it.

    Args:
        url: The page to open (http or https; see WORKSPACE_BROWSER_ALLOWED_HOSTS).
        full_page: Capture the whole scrollable page instead of the viewport.
        save: Save the PNG under WORKSPACE_BROWSER_SCREENSHOT_DIR and return its path
            instead of the image itself.
        wait_until: When navigation counts as done: commit, domcontentloaded, load or
            networkidle.
        timeout: Seconds the whole operation may take (default WORKSPACE_BROWSER_TIMEOUT).

    Returns:
        ``{"url", "status", "title", "png_base64"}``, or ``{"url", "status", "title",
        "path"}`` when ``save`` is true.

    Raises:
        InvalidParams: the URL is refused by the policy, or an argument is invalid.
        UpstreamTimeout: the page did not load in time.
        UpstreamError: the page could not be opened.
    """
    browser, job = _prepare_screenshot(url, full_page, save, wait_until, timeout)
    with _counted("screenshot"):
        return await browser.run(job, timeout=timeout)


def visit(url: str, wait_until: WaitUntil = "load", timeout: float | None = None) -> dict[str, Any]:
    """Blocking form of :func:`avisit` (same arguments, result and errors); any thread."""
    browser, job = _prepare_visit(url, wait_until, timeout)
    with _counted("visit"):
        return browser.run_sync(job, timeout=timeout)


def screenshot(
    url: str,
    full_page: bool = False,
    save: bool = False,
    wait_until: WaitUntil = "load",
    timeout: float | None = None,
) -> dict[str, Any]:
    """Blocking form of :func:`ascreenshot` (same arguments, result and errors); any thread."""
    browser, job = _prepare_screenshot(url, full_page, save, wait_until, timeout)
    with _counted("screenshot"):
        return browser.run_sync(job, timeout=timeout)
