"""The shared browser: one Playwright Chromium per process, used from any thread or loop.

:func:`get_browser` returns the process's :class:`GlobalBrowser`. It starts lazily: the
first operation starts a dedicated owner thread with its own event loop, and that loop
alone does every Playwright call (Playwright is not thread-safe). Async callers
(``await browser.run(job)``) from any loop and sync callers (``browser.run_sync(job)``)
from any thread are both served by handing ``job`` to the owner loop.

Chromium runs from ``WORKSPACE_BROWSER_EXECUTABLE`` (or the first Chromium on ``PATH``)
in a persistent context, which is what lets the ``error_capture`` extension load
(:mod:`browser.launch` owns one launch; this module owns sharing and healing).
Lifecycle guarantees:

- pages come from :meth:`GlobalBrowser.page`, capped at ``max_pages`` at once, each
  operation bounded by ``timeout``; the shared context cannot be closed by a caller;
- if Chromium dies, the next operation relaunches it (one relaunch, however many
  callers are waiting); a crashed page is closed alone;
- :meth:`GlobalBrowser.close` (also run at interpreter exit) stops Playwright and
  every Chromium process of the launch, found by the launch's private directory.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import shutil
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from browser.launch import (
    Launch,
    chromium_executable,
    kill_leftovers,
    launch,
    start_playwright,
)
from browser.settings import BrowserSettings, load_settings
from external_api.errors import ApiError, UpstreamError, UpstreamTimeout
from external_api.observability import get_logger, metrics_counter_inc

if TYPE_CHECKING:
    from playwright.async_api import Page, Playwright, Worker

__all__ = ["GlobalBrowser", "get_browser", "reset_browser"]

T = TypeVar("T")

LAUNCHES_METRIC = "workspace_browser_launches_total"
PAGE_CRASHES_METRIC = "workspace_browser_page_crashes_total"

_log = get_logger("browser.global_browser")


def _playwright_failure(error: Exception, what: str) -> ApiError:
    """Translate a Playwright exception into the project's error hierarchy."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    message = str(getattr(error, "message", error)).splitlines()[0]
    if isinstance(error, PlaywrightTimeout):
        return UpstreamTimeout(f"{what} timed out: {message}")
    return UpstreamError(f"{what} failed in the browser: {message}")


def _closed_error() -> ApiError:
    return ApiError("the browser was closed while this operation ran; retry it")


def _is_playwright_error(error: BaseException) -> bool:
    return type(error).__module__.startswith("playwright.")


class GlobalBrowser:
    """One lazily started, self-healing Chromium shared by every caller in the process.

    Args:
        settings: The browser settings; default :func:`browser.settings.load_settings`.
    """

    def __init__(self, settings: BrowserSettings | None = None) -> None:
        self.settings = settings or load_settings()
        self.launch_count = 0
        self.open_pages = 0
        self.peak_pages = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._atexit_registered = False
        # Owner-loop state: touched only by coroutines running on self._loop.
        self._playwright: Playwright | None = None
        self._launch: Launch | None = None
        self._launch_lock: asyncio.Lock | None = None
        self._slots: asyncio.Semaphore | None = None

    # ------------------------------------------------------------------ facts

    @property
    def browser_pid(self) -> int | None:
        """The PID of the running Chromium browser process, or ``None`` before launch."""
        return self._launch.pid if self._launch else None

    @property
    def process_marker(self) -> str | None:
        """The launch's private directory; every Chromium process of it has it in argv."""
        return self._launch.marker if self._launch else None

    @property
    def cdp_endpoint(self) -> str | None:
        """``http://127.0.0.1:<port>`` for other processes to attach, when a CDP port is set."""
        port = self.settings.cdp_port
        return f"http://127.0.0.1:{port}" if port else None

    # ------------------------------------------------------------------ owner thread

    def _owner_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=self._serve, args=(loop,), name="workspace-browser", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
                if not self._atexit_registered:
                    atexit.register(self.close)
                    self._atexit_registered = True
            return self._loop

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    def _on_owner_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._owner_loop())

    # ------------------------------------------------------------------ public operations

    async def run(self, job: Callable[[Page], Awaitable[T]], *, timeout: float | None = None) -> T:
        """Run ``job(page)`` on a fresh page of the shared browser; return its result.

        Callable from any event loop in any thread. The page is closed afterwards.

        Raises:
            UpstreamTimeout: no free page, or the job, within ``timeout`` seconds
                (default ``WORKSPACE_BROWSER_TIMEOUT``).
            UpstreamError: Playwright or Chromium failed (e.g. the page crashed).
        """
        if self._on_owner_thread():
            return await self._run_owned(job, timeout)
        loop = self._owner_loop()
        future = asyncio.run_coroutine_threadsafe(self._run_owned(job, timeout), loop)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            if self._loop is not loop:  # close() stopped the loop under the job
                raise _closed_error() from None
            future.cancel()  # our caller was cancelled: cancel the job too
            raise

    def run_sync(self, job: Callable[[Page], Awaitable[T]], *, timeout: float | None = None) -> T:
        """Blocking twin of :meth:`run`, callable from any thread but the browser's own."""
        if self._on_owner_thread():
            raise ApiError("run_sync() on the browser's own thread would deadlock: await run().")
        try:
            return self._submit(self._run_owned(job, timeout)).result()
        except concurrent.futures.CancelledError:
            raise _closed_error() from None

    def start(self) -> None:
        """Launch Chromium now instead of on first use (e.g. to warm up a server)."""
        self._submit(self._ensure_launch()).result()

    def close(self) -> None:
        """Stop Playwright and every Chromium process of this browser; safe to call twice.

        Operations still running fail. A later operation starts a new browser.
        """
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or thread is None:
                return
            if threading.current_thread() is thread:
                raise ApiError("close() on the browser's own thread would deadlock: use aclose().")
            self._loop = self._thread = None
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=60)
        except Exception as error:  # still stop the loop; the processes are killed below
            _log.warning("browser.close_failed", error=repr(error))
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
            self._forget_launch()

    # ------------------------------------------------------------------ owner-loop internals

    async def _run_owned(self, job: Callable[[Page], Awaitable[T]], timeout: float | None) -> T:
        limit = timeout if timeout is not None else self.settings.timeout
        async with self.page(timeout=limit) as page:
            try:
                return await asyncio.wait_for(job(page), limit)
            except asyncio.TimeoutError:
                raise UpstreamTimeout(
                    f"the browser operation took longer than {limit:g} s; pass a larger "
                    "timeout or raise WORKSPACE_BROWSER_TIMEOUT"
                ) from None
            except ApiError:
                raise
            except Exception as error:
                if _is_playwright_error(error):
                    raise _playwright_failure(error, "the browser operation") from error
                raise

    @contextlib.asynccontextmanager
    async def page(self, *, timeout: float | None = None) -> AsyncIterator[Page]:
        """Yield a new page of the shared browser and close it afterwards.

        Only for coroutines running on the browser's own loop, i.e. inside a job given
        to :meth:`run` / :meth:`run_sync`. Waits up to ``timeout`` seconds for a free
        page when ``max_pages`` are open.

        Raises:
            ApiError: when used from another loop.
            UpstreamTimeout: when no page becomes free in time.
        """
        if not self._on_owner_thread():
            raise ApiError(
                "GlobalBrowser.page() works only on the browser's own loop: put the work in "
                "`async def job(page)` and call `await browser.run(job)` or `run_sync(job)`."
            )
        limit = timeout if timeout is not None else self.settings.timeout
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.settings.max_pages)
        slots = self._slots
        try:
            await asyncio.wait_for(slots.acquire(), limit)
        except asyncio.TimeoutError:
            raise UpstreamTimeout(
                f"no free browser page within {limit:g} s: all {self.settings.max_pages} are "
                "in use; retry later or raise WORKSPACE_BROWSER_MAX_PAGES"
            ) from None
        try:
            page = await self._new_page()
            self.open_pages += 1
            self.peak_pages = max(self.peak_pages, self.open_pages)
            try:
                page.set_default_timeout(limit * 1000)
                yield page
            finally:
                self.open_pages -= 1
                with contextlib.suppress(Exception):
                    await page.close()
        finally:
            slots.release()

    async def extension_worker(self) -> Worker:
        """Return the error_capture extension's running service worker (browser loop only)."""
        return await (await self._ensure_launch()).extension_worker(self.settings.timeout)

    async def _new_page(self) -> Page:
        running = await self._ensure_launch()
        try:
            page = await running.context.new_page()
        except Exception as error:
            if not _is_playwright_error(error):
                raise
            # Chromium died between the health check and now: relaunch once.
            running.disconnected = True
            page = await (await self._ensure_launch()).context.new_page()
        page.on("crash", self._on_page_crash)
        return page

    def _on_page_crash(self, page: Page) -> None:
        _log.warning("browser.page_crashed", url=page.url)
        metrics_counter_inc(PAGE_CRASHES_METRIC, {})
        task = asyncio.ensure_future(page.close())
        task.add_done_callback(lambda done: done.cancelled() or done.exception())

    async def _ensure_launch(self) -> Launch:
        if self._launch_lock is None:
            self._launch_lock = asyncio.Lock()
        async with self._launch_lock:
            previous = self._launch
            if previous is not None and previous.healthy():
                return previous
            if previous is not None:
                _log.warning("browser.relaunch", previous_pid=previous.pid)
                self._launch = None
                await previous.stop()
            executable = chromium_executable(self.settings)
            if self._playwright is None:
                self._playwright = await start_playwright()
            running = await asyncio.wait_for(
                launch(self._playwright, self.settings, executable), self.settings.launch_timeout
            )
            self._launch = running
            self.launch_count += 1
            metrics_counter_inc(LAUNCHES_METRIC, {"reason": "relaunch" if previous else "first"})
            _log.info(
                "browser.launched",
                pid=running.pid,
                executable=str(executable),
                headless=self.settings.headless,
                cdp=self.cdp_endpoint,
            )
            return running

    async def _shutdown(self) -> None:
        running, self._launch = self._launch, None
        if running is not None:
            await running.stop()
        if self._playwright is not None:
            with contextlib.suppress(Exception):
                await self._playwright.stop()
        self._playwright = None
        self._slots = self._launch_lock = None
        _log.info("browser.closed")

    def _forget_launch(self) -> None:
        """Reset per-loop state after the owner loop stopped; kill what a failed close left."""
        if self._launch is not None:
            asyncio.run(kill_leftovers(self._launch.marker))
            shutil.rmtree(self._launch.workdir, ignore_errors=True)
        self._playwright = self._launch = None
        self._slots = self._launch_lock = None


_default: GlobalBrowser | None = None
_default_lock = threading.Lock()


def get_browser() -> GlobalBrowser:
    """Return the process-wide :class:`GlobalBrowser` (created on first call, started lazily)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = GlobalBrowser()
        return _default


def reset_browser() -> None:
    """Close the process-wide browser and forget it.

    The next :func:`get_browser` reads the settings again (e.g. after changing
    ``WORKSPACE_BROWSER_*`` variables).
    """
    global _default
    with _default_lock:
        previous, _default = _default, None
    if previous is not None:
        previous.close()
