"""The shared browser: one Playwright Chromium per process, used from any thread or loop.

:func:`get_browser` returns the process's :class:`GlobalBrowser`. It starts lazily: the
first operation starts a dedicated owner thread with its own event loop, and that loop
alone does every Playwright call (Playwright is not thread-safe). Async callers
(``await browser.run(job)``) from any loop and sync callers (``browser.run_sync(job)``)
from any thread are both served by handing ``job`` to the owner loop.

Chromium runs from ``WORKSPACE_BROWSER_EXECUTABLE`` (or the first Chromium on ``PATH``)
in a persistent context, which is what lets the ``error_capture`` extension load.
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
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from browser.processes import browser_pid, is_alive, pids_with_marker
from browser.settings import BrowserSettings, load_settings
from external_api.errors import ApiError, UpstreamError, UpstreamTimeout
from external_api.observability import get_logger, metrics_counter_inc

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Page, Playwright, Worker

__all__ = ["EXTENSION_DIR", "GlobalBrowser", "get_browser", "reset_browser"]

T = TypeVar("T")

EXTENSION_DIR = Path(__file__).resolve().parent / "browser_extension" / "error_capture"
"""The unpacked error_capture extension loaded into every launch."""

BASE_ARGS = (
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-quic",
)
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
        self._context: BrowserContext | None = None
        self._close_context: Callable[[], Awaitable[None]] | None = None
        self._launch_lock: asyncio.Lock | None = None
        self._slots: asyncio.Semaphore | None = None
        self._workdir: Path | None = None
        self._pid: int | None = None
        self._disconnected = False
        self._extension_origin = ""

    # ------------------------------------------------------------------ facts

    @property
    def browser_pid(self) -> int | None:
        """The PID of the running Chromium browser process, or ``None`` before launch."""
        return self._pid

    @property
    def process_marker(self) -> str | None:
        """The launch's private directory; every Chromium process of it has it in argv."""
        return str(self._workdir) if self._workdir else None

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
        self._submit(self._ensure_context()).result()

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
        return await self.extension_worker_of(await self._ensure_context())

    async def extension_worker_of(self, context: BrowserContext) -> Worker:
        """Return ``context``'s extension service worker, waiting for it to (re)start."""
        for worker in context.service_workers:
            if worker.url.startswith(self._extension_origin):
                return worker
        started: Worker = await context.wait_for_event(
            "serviceworker",
            predicate=lambda worker: worker.url.startswith(self._extension_origin),
            timeout=self.settings.timeout * 1000,
        )
        return started

    async def _new_page(self) -> Page:
        context = await self._ensure_context()
        try:
            page = await context.new_page()
        except Exception as error:
            if not _is_playwright_error(error):
                raise
            # Chromium died between the health check and now: relaunch once.
            self._disconnected = True
            page = await (await self._ensure_context()).new_page()
        page.on("crash", self._on_page_crash)
        return page

    def _on_page_crash(self, page: Page) -> None:
        _log.warning("browser.page_crashed", url=page.url)
        metrics_counter_inc(PAGE_CRASHES_METRIC, {})
        task = asyncio.ensure_future(page.close())
        task.add_done_callback(lambda done: done.cancelled() or done.exception())

    def _healthy(self) -> bool:
        return (
            self._context is not None
            and not self._disconnected
            and self._pid is not None
            and is_alive(self._pid)
        )

    async def _ensure_context(self) -> BrowserContext:
        if self._launch_lock is None:
            self._launch_lock = asyncio.Lock()
        async with self._launch_lock:
            if self._context is not None and self._healthy():
                return self._context
            reason = "first" if self._context is None else "relaunch"
            if self._context is not None:
                _log.warning("browser.relaunch", previous_pid=self._pid)
                await self._teardown()
            try:
                context = await asyncio.wait_for(self._launch(), self.settings.launch_timeout)
            except BaseException:
                await self._teardown()
                raise
            metrics_counter_inc(LAUNCHES_METRIC, {"reason": reason})
            return context

    def _launch_args(self) -> list[str]:
        args = [*BASE_ARGS, f"--disable-extensions-except={EXTENSION_DIR}"]
        args.append(f"--load-extension={EXTENSION_DIR}")
        if os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
        if self.settings.cdp_port:
            args.append(f"--remote-debugging-port={self.settings.cdp_port}")
        return [*args, *self.settings.extra_args]

    async def _launch(self) -> BrowserContext:
        executable = self.settings.resolved_executable()
        if executable is None:
            raise ApiError(
                "no Chromium found: install one (Debian: `apt-get install chromium`) or set "
                "WORKSPACE_BROWSER_EXECUTABLE to its path"
            )
        try:
            from playwright.async_api import async_playwright
        except ImportError:
            raise ApiError(
                "Playwright is not installed: `pip install 'workspace-toolkit[browser]'`"
            ) from None
        if self._playwright is None:
            self._playwright = await async_playwright().start()
        self._workdir = Path(tempfile.mkdtemp(prefix="workspace-browser-"))
        self._disconnected = False
        # CHROME_CONFIG_HOME puts even the crashpad handlers' argv under the workdir.
        env: dict[str, str | float | bool] = {
            **os.environ,
            "CHROME_CONFIG_HOME": str(self._workdir / "config"),
        }
        context = await self._playwright.chromium.launch_persistent_context(
            str(self._workdir / "profile"),
            executable_path=str(executable),
            headless=self.settings.headless,
            args=self._launch_args(),
            env=env,
            timeout=self.settings.launch_timeout * 1000,
        )
        self._context, self._close_context = context, context.close
        context.on("close", self._on_context_closed)
        context.close = self._refuse_close  # type: ignore[method-assign]  # guard the shared context
        self.launch_count += 1
        self._pid = browser_pid(str(self._workdir))
        self._extension_origin = "chrome-extension://"
        worker = await self.extension_worker_of(context)
        self._extension_origin = "/".join(worker.url.split("/")[:3]) + "/"
        await worker.evaluate("(n) => self.errorCapture.setMaxRecords(n)", self.settings.max_errors)
        _log.info(
            "browser.launched",
            pid=self._pid,
            executable=str(executable),
            headless=self.settings.headless,
            cdp=self.cdp_endpoint,
        )
        return context

    async def _refuse_close(self, reason: str | None = None) -> None:
        raise ApiError(
            "the shared browser context cannot be closed by a caller: close your page, "
            "or call get_browser().close() to stop the browser"
        )

    def _on_context_closed(self, _context: BrowserContext) -> None:
        self._disconnected = True

    async def _teardown(self) -> None:
        """Close the current launch and make sure none of its processes survive."""
        close, workdir = self._close_context, self._workdir
        self._context = self._close_context = None
        if close is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(close(), 10)
        if workdir is not None:
            await self._kill_leftovers(str(workdir))
            shutil.rmtree(workdir, ignore_errors=True)
        self._workdir = self._pid = None

    @staticmethod
    async def _kill_leftovers(marker: str, grace: float = 3.0) -> None:
        signals = [signal.SIGTERM, signal.SIGKILL]
        for signum in signals:
            for pid in pids_with_marker(marker):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signum)
            for _ in range(int(grace / 0.05)):
                if not pids_with_marker(marker):
                    return
                await asyncio.sleep(0.05)

    async def _shutdown(self) -> None:
        await self._teardown()
        if self._playwright is not None:
            with contextlib.suppress(Exception):
                await self._playwright.stop()
        self._playwright = None
        self._slots = self._launch_lock = None
        _log.info("browser.closed")

    def _forget_launch(self) -> None:
        """Reset per-loop state after the owner loop stopped; kill what a failed close left."""
        if self._workdir is not None:
            asyncio.run(self._kill_leftovers(str(self._workdir)))
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._playwright = self._context = self._close_context = None
        self._slots = self._launch_lock = None
        self._pid = self._workdir = None


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
