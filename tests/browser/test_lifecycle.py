"""The shared browser's lifecycle against real Chromium: sharing, healing, closing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from browser import avisit, visit
from browser.global_browser import GlobalBrowser
from browser.processes import descendants, is_alive, pids_with_marker, process_state
from browser.settings import load_settings
from external_api.errors import ApiError, UpstreamError, UpstreamTimeout
from tests.browser.conftest import MAX_PAGES
from tests.browser.helpers import poll
from tests.browser.site import Site
from tests.ports import free_port

pytestmark = pytest.mark.browser


def chromium_related_descendants() -> list[int]:
    """Our descendants that are Chromium or the Playwright driver (any state, zombies too)."""
    found = []
    for pid in descendants(os.getpid()):
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"chrom" in cmdline or b"playwright" in cmdline or process_state(pid) == "Z":
                found.append(pid)
    return found


def launch_gone(marker: str) -> bool:
    """Whether no process of the launch is left and its private directory is removed."""
    return pids_with_marker(marker) == [] and not Path(marker).exists()


def cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


async def test_threads_and_tasks_share_one_browser(
    shared_browser: GlobalBrowser, site: Site
) -> None:
    pid, launches = shared_browser.browser_pid, shared_browser.launch_count
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=6) as pool:
        from_threads = [
            loop.run_in_executor(pool, visit, site.url(f"/slow?ms=200&thread={i}"))
            for i in range(6)
        ]
        from_tasks = [avisit(site.url(f"/slow?ms=200&task={i}")) for i in range(6)]
        results = await asyncio.gather(*from_threads, *from_tasks)
    assert [(r["status"], r["title"], r["errors"]) for r in results] == [
        (200, "Hello slow", [])
    ] * 12
    assert len({r["url"] for r in results}) == 12
    assert (shared_browser.browser_pid, shared_browser.launch_count) == (pid, launches)
    assert 2 <= shared_browser.peak_pages <= MAX_PAGES
    assert shared_browser.open_pages == 0


def test_page_cap_makes_callers_wait_and_then_time_out(shared_browser: GlobalBrowser) -> None:
    async def job(page: Any) -> bool:
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(MAX_PAGES - 1):
                await stack.enter_async_context(shared_browser.page())
            assert shared_browser.open_pages == MAX_PAGES
            with pytest.raises(UpstreamTimeout, match=r"no free browser page within 0\.2 s"):
                async with shared_browser.page(timeout=0.2):
                    pass
        async with shared_browser.page(timeout=5) as again:  # a slot is free again
            return bool(again.is_closed())

    assert shared_browser.run_sync(job) is False


def test_job_failures_become_project_errors(
    shared_browser: GlobalBrowser, closed_port: int
) -> None:
    async def navigate_refused(page: Any) -> None:
        await page.goto(f"http://127.0.0.1:{closed_port}/")

    async def wait_for_nothing(page: Any) -> None:
        await page.wait_for_selector("#never", timeout=200)

    async def sleep_long(page: Any) -> None:
        await asyncio.sleep(30)

    async def buggy(page: Any) -> None:
        raise ValueError("a bug in the job")

    with pytest.raises(UpstreamError, match=r"failed in the browser: .*ERR_CONNECTION_REFUSED"):
        shared_browser.run_sync(navigate_refused)
    with pytest.raises(UpstreamTimeout, match="timed out"):
        shared_browser.run_sync(wait_for_nothing)
    with pytest.raises(UpstreamTimeout, match=r"took longer than 0\.3 s"):
        shared_browser.run_sync(sleep_long, timeout=0.3)
    with pytest.raises(ValueError, match="a bug in the job"):
        shared_browser.run_sync(buggy)
    assert shared_browser.open_pages == 0


async def test_cancelled_caller_cancels_its_job(shared_browser: GlobalBrowser) -> None:
    started = threading.Event()

    async def sleep_long(page: Any) -> None:
        started.set()
        await asyncio.sleep(30)

    task = asyncio.ensure_future(shared_browser.run(sleep_long))
    await poll(lambda: asyncio.sleep(0, started.is_set()), bool)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    async def open_pages() -> int:
        return shared_browser.open_pages

    await poll(open_pages, lambda count: count == 0)


def test_callers_cannot_close_the_shared_context(shared_browser: GlobalBrowser, site: Site) -> None:
    launches = shared_browser.launch_count

    async def close_everything(page: Any) -> None:
        await page.context.close()

    async def close_own_page(page: Any) -> None:
        await page.close()

    with pytest.raises(ApiError, match="cannot be closed by a caller"):
        shared_browser.run_sync(close_everything)
    shared_browser.run_sync(close_own_page)
    assert visit(site.url("/hello"))["status"] == 200
    assert shared_browser.launch_count == launches


async def test_page_is_only_handed_out_on_the_browser_loop(shared_browser: GlobalBrowser) -> None:
    with pytest.raises(ApiError, match="own loop"):
        async with shared_browser.page():
            pass


def test_blocking_calls_on_the_browser_thread_are_refused(shared_browser: GlobalBrowser) -> None:
    async def noop(page: Any) -> None:
        return None

    async def title(page: Any) -> str:
        return str(await page.title())

    async def job(page: Any) -> str:
        with pytest.raises(ApiError, match="deadlock"):
            shared_browser.run_sync(noop)
        with pytest.raises(ApiError, match="deadlock"):
            shared_browser.close()
        return await shared_browser.run(title)  # the async form works from inside a job

    assert shared_browser.run_sync(job) == ""


def test_page_crash_closes_only_that_page(shared_browser: GlobalBrowser, site: Site) -> None:
    pid, launches = shared_browser.browser_pid, shared_browser.launch_count

    async def job(page: Any) -> tuple[str, bool]:
        async with shared_browser.page() as other:
            # Another site (localhost vs 127.0.0.1), so Chromium gives it its own renderer.
            await other.goto(site.url("/hello?name=other").replace("127.0.0.1", "localhost"))
            await page.goto(site.url("/hello?name=victim"))
            crashed = asyncio.Event()
            page.on("crash", lambda _: crashed.set())
            cdp = await page.context.new_cdp_session(page)
            with contextlib.suppress(Exception):  # the target dies before it can answer
                await asyncio.wait_for(cdp.send("Page.crash"), 5)
            await asyncio.wait_for(crashed.wait(), 10)

            async def page_closed() -> bool:
                return bool(page.is_closed())

            await poll(page_closed, bool)
            return str(await other.title()), bool(other.is_closed())

    assert shared_browser.run_sync(job) == ("Hello other", False)
    assert visit(site.url("/hello?name=after"))["title"] == "Hello after"
    assert (shared_browser.browser_pid, shared_browser.launch_count) == (pid, launches)


async def test_killed_chromium_is_relaunched_once_for_many_callers(
    shared_browser: GlobalBrowser, site: Site
) -> None:
    old_pid, old_marker = shared_browser.browser_pid, shared_browser.process_marker
    launches = shared_browser.launch_count
    assert old_pid is not None
    assert old_marker is not None
    os.kill(old_pid, signal.SIGKILL)
    results = await asyncio.gather(*(avisit(site.url(f"/hello?name={i}")) for i in range(6)))
    assert [r["title"] for r in results] == [f"Hello {i}" for i in range(6)]
    assert shared_browser.launch_count == launches + 1
    new_pid = shared_browser.browser_pid
    assert new_pid is not None
    assert new_pid != old_pid
    assert is_alive(new_pid)
    assert launch_gone(old_marker)


def test_cdp_port_is_off_by_default(shared_browser: GlobalBrowser) -> None:
    assert shared_browser.cdp_endpoint is None
    assert shared_browser.browser_pid is not None
    assert b"--remote-debugging-port" not in cmdline(shared_browser.browser_pid)


async def test_cdp_port_lets_other_clients_attach() -> None:
    port = free_port()
    browser = GlobalBrowser(load_settings(cdp_port=port))
    try:
        await asyncio.get_running_loop().run_in_executor(None, browser.start)
        assert browser.cdp_endpoint == f"http://127.0.0.1:{port}"
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{browser.cdp_endpoint}/json/version") as response,
        ):
            info = await response.json()
        assert "Chrome/" in info["Browser"]
        assert info["webSocketDebuggerUrl"].startswith(f"ws://127.0.0.1:{port}/devtools/browser/")
        marker = browser.process_marker
        assert marker is not None
    finally:
        await asyncio.get_running_loop().run_in_executor(None, browser.close)
    assert launch_gone(marker)


def test_close_stops_every_chromium_process_and_next_use_relaunches(
    shared_browser: GlobalBrowser, site: Site
) -> None:
    visit(site.url("/hello"))
    marker, launches = shared_browser.process_marker, shared_browser.launch_count
    assert marker is not None
    assert len(pids_with_marker(marker)) > 3
    assert chromium_related_descendants()
    shared_browser.close()
    assert launch_gone(marker)
    assert chromium_related_descendants() == []
    assert "workspace-browser" not in {thread.name for thread in threading.enumerate()}
    shared_browser.close()  # twice is fine
    assert visit(site.url("/hello?name=again"))["title"] == "Hello again"
    assert shared_browser.launch_count == launches + 1


def test_close_fails_running_operations_clearly(shared_browser: GlobalBrowser) -> None:
    started = threading.Event()

    async def sleep_long(page: Any) -> None:
        started.set()
        await asyncio.sleep(30)

    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(shared_browser.run_sync, sleep_long)
        assert started.wait(30)
        shared_browser.close()
        with pytest.raises(ApiError, match="closed while this operation ran"):
            running.result(timeout=30)


def test_interpreter_exit_stops_chromium(site: Site) -> None:
    script = (
        "import sys\n"
        "from browser import get_browser, visit\n"
        "result = visit(sys.argv[1])\n"
        "browser = get_browser()\n"
        "print('RESULT', browser.process_marker, result['status'], flush=True)\n"
    )
    env = {**os.environ, "WORKSPACE_BROWSER_SETTLE": "0"}
    done = subprocess.run(
        [sys.executable, "-c", script, site.url("/hello")],
        capture_output=True,
        text=True,
        timeout=90,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    marker, status = line.split()[1:]
    assert status == "200"
    assert launch_gone(marker)
    assert "Traceback" not in done.stderr
    assert "Exception ignored" not in done.stderr
