"""One Chromium launch: start it with the extension, check its health, stop it completely.

A launch gets a private temp directory (the *marker*): the profile, and Chromium's
config home, so every process of the launch — crashpad handlers included — has it in
its command line. :meth:`Launch.stop` closes the context, then kills whatever still
carries the marker, then removes the directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from browser.processes import browser_pid, is_alive, pids_with_marker
from browser.settings import BrowserSettings
from external_api.errors import ApiError

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Playwright, Worker

__all__ = [
    "BASE_ARGS",
    "EXTENSION_DIR",
    "Launch",
    "chromium_executable",
    "kill_leftovers",
    "launch",
    "start_playwright",
]

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
"""Switches of every launch (no background traffic: a closed network refuses it)."""


async def _refuse_close(reason: str | None = None) -> None:
    raise ApiError(
        "the shared browser context cannot be closed by a caller: close your page, "
        "or call get_browser().close() to stop the browser"
    )


@dataclass
class Launch:
    """A running Chromium: its persistent context, processes and extension.

    Attributes:
        context: The persistent context; its ``close`` refuses (see :meth:`stop`).
        workdir: The launch's private directory (the process marker).
        pid: The main browser process, when found.
        extension_origin: ``chrome-extension://<id>/`` of the error_capture extension.
        disconnected: Set when Playwright reports the context closed (Chromium gone).
    """

    context: BrowserContext
    workdir: Path
    pid: int | None
    extension_origin: str
    close_context: Callable[[], Awaitable[None]]
    disconnected: bool = False

    @property
    def marker(self) -> str:
        """The string every process of this launch has in its command line."""
        return str(self.workdir)

    def healthy(self) -> bool:
        """Whether Chromium still runs and Playwright is still connected to it."""
        return not self.disconnected and self.pid is not None and is_alive(self.pid)

    async def extension_worker(self, timeout: float) -> Worker:
        """Return the extension's service worker, waiting up to ``timeout`` s for it to start."""
        return await extension_worker(self.context, self.extension_origin, timeout)

    async def stop(self) -> None:
        """Close the context, kill every process left with the marker, remove the workdir."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.close_context(), 10)
        await kill_leftovers(self.marker)
        shutil.rmtree(self.workdir, ignore_errors=True)


async def extension_worker(context: BrowserContext, origin: str, timeout: float) -> Worker:
    """Return ``context``'s service worker whose URL starts with ``origin``, waiting for it."""
    for worker in context.service_workers:
        if worker.url.startswith(origin):
            return worker
    started: Worker = await context.wait_for_event(
        "serviceworker",
        predicate=lambda worker: worker.url.startswith(origin),
        timeout=timeout * 1000,
    )
    return started


async def kill_leftovers(marker: str, grace: float = 3.0) -> None:
    """SIGTERM, then SIGKILL, every live process with ``marker`` in its command line."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids_with_marker(marker):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)
        for _ in range(int(grace / 0.05)):
            if not pids_with_marker(marker):
                return
            await asyncio.sleep(0.05)


async def start_playwright() -> Playwright:
    """Start Playwright's driver, or say how to install Playwright."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        raise ApiError(
            "Playwright is not installed: `pip install 'workspace-toolkit[browser]'`"
        ) from None
    return await async_playwright().start()


def launch_args(settings: BrowserSettings) -> list[str]:
    """The Chromium switches of a launch with ``settings``."""
    args = [
        *BASE_ARGS,
        f"--disable-extensions-except={EXTENSION_DIR}",
        f"--load-extension={EXTENSION_DIR}",
    ]
    if os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    if settings.cdp_port:
        args.append(f"--remote-debugging-port={settings.cdp_port}")
    return [*args, *settings.extra_args]


def chromium_executable(settings: BrowserSettings) -> Path:
    """Return the Chromium to launch.

    Raises:
        ApiError: when none is found; the message says what to install or set.
    """
    executable = settings.resolved_executable()
    if executable is None:
        raise ApiError(
            "no Chromium found: install one (Debian: `apt-get install chromium`) or set "
            "WORKSPACE_BROWSER_EXECUTABLE to its path"
        )
    return executable


async def launch(playwright: Playwright, settings: BrowserSettings, executable: Path) -> Launch:
    """Launch ``executable`` in a persistent context with the extension; set its cap."""
    workdir = Path(tempfile.mkdtemp(prefix="workspace-browser-"))
    # CHROME_CONFIG_HOME puts even the crashpad handlers' argv under the workdir.
    env: dict[str, str | float | bool] = {
        **os.environ,
        "CHROME_CONFIG_HOME": str(workdir / "config"),
    }
    try:
        context = await playwright.chromium.launch_persistent_context(
            str(workdir / "profile"),
            executable_path=str(executable),
            headless=settings.headless,
            args=launch_args(settings),
            env=env,
            timeout=settings.launch_timeout * 1000,
        )
    except BaseException:
        await kill_leftovers(str(workdir))
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    running = Launch(context, workdir, browser_pid(str(workdir)), "", context.close)
    context.on("close", lambda _: setattr(running, "disconnected", True))
    context.close = _refuse_close  # type: ignore[method-assign]  # guard the shared context
    worker = await extension_worker(context, "chrome-extension://", settings.launch_timeout)
    running.extension_origin = "/".join(worker.url.split("/")[:3]) + "/"
    await worker.evaluate("(n) => self.errorCapture.setMaxRecords(n)", settings.max_errors)
    return running
