"""Error records of a page: Playwright's events merged with the error_capture extension's.

A record is ``{type, message, url, line, column, stack, timestamp}`` (see
:class:`ErrorRecord`). Two sources feed it: the extension (content script in the page's
MAIN world plus ``chrome.webRequest`` in its service worker, kept per tab in
``chrome.storage.session``) and Playwright's own ``pageerror`` / ``console`` /
``requestfailed`` / ``response`` events (:class:`PageEvents`). :func:`merge_records`
de-duplicates them: one record per thrown error or ``console.error`` call, one per
failed URL. :func:`report_records` logs and counts what was captured.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypedDict, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from external_api.observability import get_logger, metrics_counter_inc

if TYPE_CHECKING:
    from playwright.async_api import ConsoleMessage, Page, Request, Response, Worker
    from playwright.async_api import Error as PlaywrightError

__all__ = [
    "RECORD_FIELDS",
    "ErrorRecord",
    "PageEvents",
    "merge_records",
    "read_extension_records",
    "redact_url",
    "report_records",
]

RecordType = Literal["error", "unhandledrejection", "console", "network", "http"]
RECORD_TYPES: tuple[str, ...] = ("error", "unhandledrejection", "console", "network", "http")
RECORD_FIELDS = ("type", "message", "url", "line", "column", "stack", "timestamp")
REDACTED = "[REDACTED]"
PAGE_ERRORS_METRIC = "workspace_browser_page_errors_total"

# Same rules as the extension's service worker (redactUrl there).
_SECRET_PARAM = re.compile(
    r"^(api[-_]?key|apikey|key|token|access[-_]?token|auth|password|secret|signature|sig)$",
    re.IGNORECASE,
)
_FRAME = re.compile(r"\(?((?:https?|file|blob|data):[^\s)]*?):(\d+):(\d+)\)?\s*$")
_RESOURCE_EVENT = "failed to load <"
_BROWSER_RESOURCE_CONSOLE = "Failed to load resource:"
_ABORTED = "net::ERR_ABORTED"

# Asks relay.js (through capture.js's DOM events) for the tab id of the page; -1 when
# the extension is not in this document (e.g. a Chromium error page).
_TAB_ID_JS = """() => new Promise((resolve) => {
  if (!window.__workspaceErrorCapture) { resolve(-1); return; }
  const name = "__workspace_error_capture__:tab";
  const timer = setTimeout(() => resolve(-1), 3000);
  document.addEventListener(`${name}-reply`, (event) => {
    clearTimeout(timer);
    resolve(Number(event.detail));
  }, { once: true });
  document.dispatchEvent(new CustomEvent(name));
})"""

_log = get_logger("browser.capture")


class ErrorRecord(TypedDict):
    """One captured error.

    Attributes:
        type: ``error`` (thrown), ``unhandledrejection``, ``console`` (``console.error``),
            ``network`` (a request that failed) or ``http`` (an answer with status >= 400).
        message: What happened, e.g. ``"TypeError: x is undefined"`` or
            ``"HTTP 404 (GET http://host/missing.png)"``.
        url: The script, or the requested URL for ``network``/``http`` (secrets redacted).
        line: 1-based line in ``url``, or ``None`` when unknown.
        column: 1-based column in ``url``, or ``None`` when unknown.
        stack: The JavaScript stack when there is one, else ``""``.
        timestamp: When it happened, seconds since the epoch.
    """

    type: RecordType
    message: str
    url: str
    line: int | None
    column: int | None
    stack: str
    timestamp: float


def redact_url(url: str) -> str:
    """Return ``url`` with user info and secret-looking query values replaced by ``[REDACTED]``.

    Secret parameters are ``api_key``, ``apikey``, ``key``, ``token``, ``access_token``,
    ``auth``, ``password``, ``secret``, ``signature`` and ``sig`` (any case). A URL without
    secrets is returned unchanged.
    """
    try:
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return url
    netloc = parts.netloc
    changed = False
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        netloc = (
            f"{REDACTED}:{REDACTED}@{hostport}" if ":" in userinfo else f"{REDACTED}@{hostport}"
        )
        changed = True
    if any(_SECRET_PARAM.match(name) for name, _ in pairs):
        pairs = [(name, REDACTED if _SECRET_PARAM.match(name) else value) for name, value in pairs]
        changed = True
    if not changed:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(pairs), parts.fragment))


def _position(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _normalize(raw: Mapping[str, Any], *, timestamp_in_ms: bool) -> ErrorRecord:
    """Coerce one record to the public shape: exactly :data:`RECORD_FIELDS`."""
    kind = raw.get("type")
    stamp = raw.get("timestamp")
    seconds = float(stamp) if isinstance(stamp, int | float) else time.time()
    if timestamp_in_ms and isinstance(stamp, int | float):
        seconds /= 1000
    return ErrorRecord(
        type=cast("RecordType", kind if kind in RECORD_TYPES else "error"),
        message=str(raw.get("message") or ""),
        url=redact_url(str(raw.get("url") or "")),
        line=_position(raw.get("line")),
        column=_position(raw.get("column")),
        stack=str(raw.get("stack") or ""),
        timestamp=seconds,
    )


def _top_frame(stack: str) -> tuple[str, int | None, int | None]:
    for line in stack.splitlines()[1:]:
        match = _FRAME.search(line)
        if match and "chrome-extension://" not in line:
            return match[1], int(match[2]), int(match[3])
    return "", None, None


class PageEvents:
    """Collects Playwright's own error events of one page as :class:`ErrorRecord` s.

    Attach it before navigating; ``records`` grows as events arrive. Chromium's own
    ``Failed to load resource`` console lines and aborted requests are left out (the
    first are covered by the ``http``/``network`` records, the second are not errors).
    """

    def __init__(self, page: Page) -> None:
        self.records: list[ErrorRecord] = []
        page.on("pageerror", self._on_page_error)
        page.on("console", self._on_console)
        page.on("requestfailed", self._on_request_failed)
        page.on("response", self._on_response)

    def _add(self, **fields: Any) -> None:
        self.records.append(_normalize({**fields, "timestamp": time.time()}, timestamp_in_ms=False))

    def _on_page_error(self, error: PlaywrightError) -> None:
        stack = error.stack or ""
        url, line, column = _top_frame(stack)
        message = f"{error.name}: {error.message}" if error.name else error.message
        self._add(type="error", message=message, url=url, line=line, column=column, stack=stack)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error" or message.text.startswith(_BROWSER_RESOURCE_CONSOLE):
            return
        where = message.location
        url = str(where.get("url", ""))
        # Playwright reports 0-based positions; records are 1-based like ErrorEvent.
        line = _position(int(where.get("lineNumber", -1)) + 1)
        column = _position(int(where.get("columnNumber", -1)) + 1)
        if url.startswith("chrome-extension://"):  # the extension's console.error wrapper
            url, line, column = "", None, None
        self._add(type="console", message=message.text, url=url, line=line, column=column)

    def _on_request_failed(self, request: Request) -> None:
        failure = request.failure or "request failed"
        if failure == _ABORTED:
            return
        url = redact_url(request.url)
        self._add(type="network", message=f"{failure} ({request.method} {url})", url=url)

    def _on_response(self, response: Response) -> None:
        if response.status < 400:
            return
        url = redact_url(response.url)
        method = response.request.method
        self._add(type="http", message=f"HTTP {response.status} ({method} {url})", url=url)


async def read_extension_records(
    page: Page, worker: Callable[[], Awaitable[Worker]]
) -> list[dict[str, Any]]:
    """Return the extension's raw records for ``page``'s tab, as the service worker keeps them.

    ``worker`` returns the extension's (running) service worker. Raw records also carry
    ``requestHeaders`` (redacted) on ``network``/``http`` records. An empty list when the
    extension is not present in the page's current document.
    """
    tab_id = await page.evaluate(_TAB_ID_JS)
    if not isinstance(tab_id, int) or tab_id < 0:
        return []
    service_worker = await worker()
    records = await service_worker.evaluate("(tab) => self.errorCapture.records(tab)", tab_id)
    return [dict(item) for item in records if isinstance(item, Mapping)]


def _key(record: ErrorRecord) -> tuple[str, str]:
    if record["type"] in ("network", "http"):
        return ("request", record["url"])
    if record["type"] in ("error", "unhandledrejection"):
        return ("exception", record["message"])
    return ("console", record["message"])


def _fill(target: ErrorRecord, other: ErrorRecord) -> None:
    """Complete ``target`` with what ``other`` (the same event, another source) knows."""
    if target["type"] == "network" and other["type"] == "http":
        target["type"], target["message"] = "http", other["message"]
    if not target["url"]:
        target["url"] = other["url"]
    if target["line"] is None and target["column"] is None:
        target["line"], target["column"] = other["line"], other["column"]
    if not target["stack"]:
        target["stack"] = other["stack"]


def merge_records(
    extension: Iterable[Mapping[str, Any]], playwright: Iterable[ErrorRecord], cap: int
) -> list[ErrorRecord]:
    """Merge the extension's records with Playwright's, de-duplicated, oldest first.

    The extension's thrown errors, rejections and console records are primary; a
    Playwright record with the same message completes one of them (each matches once,
    so an error thrown twice stays two records). Failed requests are one record per
    URL: the content script's ``failed to load <img>`` event, ``chrome.webRequest`` and
    Playwright's ``requestfailed``/``response`` collapse, preferring ``http`` with its
    status. At most ``cap`` records are returned (the newest).
    """
    merged: list[ErrorRecord] = []
    unmatched: dict[tuple[str, str], list[ErrorRecord]] = {}
    requests: dict[str, ErrorRecord] = {}
    normalized = [_normalize(item, timestamp_in_ms=True) for item in extension]
    primary = [r for r in normalized if not r["message"].startswith(_RESOURCE_EVENT)]
    secondary = [r for r in normalized if r["message"].startswith(_RESOURCE_EVENT)]
    for record in primary:
        merged.append(record)
        if _key(record)[0] == "request":
            requests.setdefault(record["url"], record)
        else:
            unmatched.setdefault(_key(record), []).append(record)
    for record in [*secondary, *playwright]:
        key = _key(record)
        if key[0] == "request" and record["url"] in requests:
            _fill(requests[record["url"]], record)
        elif key[0] != "request" and unmatched.get(key):
            _fill(unmatched[key].pop(0), record)
        else:
            merged.append(record)
            if key[0] == "request":
                requests[record["url"]] = record
    merged.sort(key=lambda record: record["timestamp"])
    return merged[-cap:]


def report_records(records: Iterable[ErrorRecord], page_url: str) -> None:
    """Log each captured record (without its stack) and count it by ``type`` in metrics."""
    for record in records:
        _log.warning(
            "browser.page_error",
            page=redact_url(page_url),
            error_type=record["type"],
            message=record["message"],
            source=record["url"],
            line=record["line"],
        )
        metrics_counter_inc(PAGE_ERRORS_METRIC, {"type": record["type"]})
