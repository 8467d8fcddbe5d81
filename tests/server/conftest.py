"""Fixtures of the function server tests: real servers on free loopback ports."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest
import structlog

from external_api.config import reset_settings
from external_api.function_utils import FunctionRegistry
from external_api.observability import configure_logging
from external_api.server import ServerOptions, serve
from tests.fakes.fixtures import fake_upstreams, upstreams  # noqa: F401  # fixtures used here
from tests.server.functions import TOOLS

TOKEN = "test-token-5b9c1e"


class ServerThread:
    """The real function server (``serve``) on its own event loop in a thread."""

    def __init__(self, options: ServerOptions, registry: FunctionRegistry) -> None:
        self.options = options
        self.registry = registry
        self.port = 0
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="function-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:
            self._error = error
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        def started(port: int) -> None:
            self.port = port
            self._started.set()

        await serve(
            self.options, self.registry, on_started=started, stop=self._stop, handle_signals=False
        )

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self._started.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)


OPTIONS = ServerOptions(port=0, call_timeout=2.0, max_concurrency=4, grace_period=5.0)


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    """An open server (no token) serving the test functions."""
    with ServerThread(OPTIONS, TOOLS) as running:
        yield running


@pytest.fixture(scope="module")
def secured_server() -> Iterator[ServerThread]:
    """A server that requires ``Authorization: Bearer TOKEN``."""
    with ServerThread(replace(OPTIONS, token=TOKEN), TOOLS) as running:
        yield running


@pytest.fixture
def clean_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Settings read from a clean environment (no server variables, empty secrets dir)."""
    for name in ("FUNC_SERVER_PORT", "WORKSPACE_SERVER_TOKEN", "AGENT_NAME", "WORKSPACE_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORKSPACE_SECRETS_DIR", str(tmp_path_factory.mktemp("secrets")))
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    reset_settings()
    yield
    reset_settings()


@pytest.fixture(scope="module")
def product_server() -> Iterator[ServerThread]:
    """A server over the default registry: every data source and browser function."""
    from external_api.function_utils import default_registry

    with ServerThread(OPTIONS, default_registry()) as running:
        yield running


@pytest.fixture(autouse=True)
def restore_logging_config() -> Iterator[None]:
    """The CLI configures structlog for the process; give every test the config it found."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture(scope="session", autouse=True)
def server_logs_to_stderr() -> None:
    """In-process servers bind their access log when created: send it to stderr, as `serve` does.

    (structlog's default would print to stdout, mixing with the CLI output under test.)
    """
    configure_logging("console")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.__stderr__))
