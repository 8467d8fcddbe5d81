"""The function registry and the client-side :class:`FunctionProxy`.

A function is described once — its signature and docstring, through
:meth:`FunctionSpec.from_callable <external_api.specs.FunctionSpec.from_callable>` — and
can then be called in-process (:meth:`FunctionRegistry.acall`), through the ``workspace``
CLI, or remotely on the function server through a :class:`FunctionProxy`.

The default registry (:func:`default_registry`) holds everything :func:`expose` decorates,
every data-source endpoint under ``Source/endpoint`` and, when the ``browser`` extra is
installed, ``Browser/visit`` and ``Browser/screenshot``. Data sources and browser
functions are registered lazily, on the first listing or call, so importing this module
loads neither.
"""

from __future__ import annotations

import asyncio
import difflib
import importlib
import importlib.util
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import aiohttp
from pydantic_core import to_jsonable_python

from external_api.errors import ApiError, UnknownEndpoint, UpstreamTimeout, error_from_payload
from external_api.specs import FunctionSpec

__all__ = [
    "FunctionProxy",
    "FunctionRegistry",
    "RegisteredFunction",
    "default_registry",
    "expose",
]

F = TypeVar("F", bound=Callable[..., Any])
Invoker = Callable[[Mapping[str, Any]], Awaitable[Any]]
Provider = Callable[[], Iterable["RegisteredFunction"]]


@dataclass(frozen=True)
class RegisteredFunction:
    """One callable entry: its spec and the coroutine that runs it with JSON arguments.

    ``invoke(arguments)`` validates ``arguments`` (raising ``InvalidParams``), runs the
    function and returns its result converted to JSON-compatible data.
    """

    spec: FunctionSpec
    invoke: Invoker

    @property
    def name(self) -> str:
        """The public name, e.g. ``"YahooFinance/get_stock_chart"``."""
        return self.spec.name


def _invoker_for(spec: FunctionSpec) -> Invoker:
    """Return the invoker of an exposed callable: validate, run (threads for sync), jsonify."""

    async def invoke(arguments: Mapping[str, Any]) -> Any:
        kwargs = spec.validate(arguments)
        if spec.is_async:
            result = await spec.func(**kwargs)
        else:
            result = await asyncio.to_thread(spec.func, **kwargs)
        return to_jsonable_python(result)

    return invoke


class FunctionRegistry:
    """Named functions with their specs; thread-safe, with lazily loaded providers.

    A *provider* is a zero-argument callable returning :class:`RegisteredFunction` items;
    it runs once, on the first lookup or listing (so that data sources and the browser
    are only imported when functions are actually needed). A provider that raises is
    recorded in :attr:`load_errors` and skipped; the other functions stay available.
    """

    def __init__(self) -> None:
        self._functions: dict[str, RegisteredFunction] = {}
        self._providers: list[tuple[str, Provider]] = []
        self._lock = threading.RLock()
        self.load_errors: dict[str, str] = {}

    def register(self, entry: RegisteredFunction, *, replace: bool = False) -> None:
        """Add ``entry``; a second function with the same name raises ``ValueError``."""
        with self._lock:
            if entry.name in self._functions and not replace:
                raise ValueError(
                    f"a function named {entry.name!r} is already registered: pick another "
                    "name with expose(name=...) or pass replace=True."
                )
            self._functions[entry.name] = entry

    @overload
    def expose(self, func: F, /) -> F: ...
    @overload
    def expose(self, /, *, name: str | None = None) -> Callable[[F], F]: ...
    def expose(self, func: Callable[..., Any] | None = None, /, *, name: str | None = None) -> Any:
        """Register a plain or async function under ``name`` (default: its ``__name__``).

        Usable as ``@registry.expose`` or ``@registry.expose(name="Tools/add")``; the
        function itself is returned unchanged. Every parameter needs a type annotation.
        """

        def decorate(target: F) -> F:
            spec = FunctionSpec.from_callable(target, name=name)
            self.register(RegisteredFunction(spec, _invoker_for(spec)))
            return target

        return decorate if func is None else decorate(func)

    def add_provider(self, label: str, provider: Provider) -> None:
        """Register ``provider`` (run lazily, once) under ``label`` for error reports."""
        with self._lock:
            self._providers.append((label, provider))

    def _load_providers(self) -> None:
        with self._lock:
            pending, self._providers = self._providers, []
            for label, provider in pending:
                try:
                    entries = list(provider())
                except Exception as error:  # a broken provider must not hide the others
                    self.load_errors[label] = f"{type(error).__name__}: {error}"
                    continue
                for entry in entries:
                    self.register(entry)

    def functions(self) -> list[RegisteredFunction]:
        """Return every registered function, sorted by name (loads pending providers)."""
        self._load_providers()
        with self._lock:
            return [self._functions[name] for name in sorted(self._functions)]

    def specs(self) -> list[FunctionSpec]:
        """Return the specs of every registered function, sorted by name."""
        return [entry.spec for entry in self.functions()]

    def get(self, name: str) -> RegisteredFunction:
        """Return the function ``name``.

        Raises:
            UnknownEndpoint: naming the closest registered names.
        """
        with self._lock:
            found = self._functions.get(name)
        if found is not None:
            return found
        names = [entry.name for entry in self.functions()]
        if name in names:
            return self._functions[name]
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownEndpoint(
            f"no function named {name!r}.{hint} List them with `workspace functions` "
            "or GET /functions.",
            details={"name": name, "suggestions": close},
        )

    async def acall(self, name: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Validate ``arguments`` for ``name``, run it and return its JSON-compatible result."""
        return await self.get(name).invoke(dict(arguments or {}))

    def call(self, name: str, /, **arguments: Any) -> Any:
        """Synchronous :meth:`acall` (from code that is not inside an event loop)."""
        return asyncio.run(self.acall(name, arguments))


def _data_source_functions() -> list[RegisteredFunction]:
    """Every data-source endpoint, called through the one ``ApiClient``."""
    from external_api.data_sources.client import ApiClient

    client = ApiClient()

    def invoker(endpoint: str) -> Invoker:
        async def invoke(arguments: Mapping[str, Any]) -> Any:
            return await client.acall_api(endpoint, dict(arguments))

        return invoke

    return [RegisteredFunction(spec, invoker(spec.name)) for spec in client.endpoints()]


def _browser_functions() -> list[RegisteredFunction]:
    """``Browser/visit`` and ``Browser/screenshot`` when the ``browser`` extra is installed."""
    if importlib.util.find_spec("playwright") is None:
        return []
    try:
        functions = importlib.import_module("browser.functions")
    except ModuleNotFoundError as error:
        if error.name == "browser.functions":
            return []
        raise
    entries = []
    for attribute in ("visit", "screenshot"):
        func = getattr(functions, attribute, None)
        if func is not None:
            spec = FunctionSpec.from_callable(func, name=f"Browser/{attribute}")
            entries.append(RegisteredFunction(spec, _invoker_for(spec)))
    return entries


_default: FunctionRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> FunctionRegistry:
    """Return the process-wide registry (data sources and browser registered lazily)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = FunctionRegistry()
            _default.add_provider("data sources", _data_source_functions)
            _default.add_provider("browser", _browser_functions)
        return _default


@overload
def expose(func: F, /) -> F: ...
@overload
def expose(*, name: str | None = None) -> Callable[[F], F]: ...
def expose(func: Callable[..., Any] | None = None, /, *, name: str | None = None) -> Any:
    """Register a function in the :func:`default_registry` (see :meth:`FunctionRegistry.expose`).

    Example::

        @expose(name="Tools/add")
        def add(a: int, b: int = 1) -> int:
            '''Add two integers.'''
            return a + b
    """
    registry = default_registry()
    return registry.expose(name=name) if func is None else registry.expose(func)


class _RemoteName:
    """Attribute-style access: ``proxy.YahooFinance.get_stock_chart(symbol="AAPL")``."""

    def __init__(self, proxy: FunctionProxy, name: str) -> None:
        self._proxy = proxy
        self._name = name

    def __getattr__(self, part: str) -> _RemoteName:
        if part.startswith("_"):
            raise AttributeError(part)
        return _RemoteName(self._proxy, f"{self._name}/{part}")

    def __call__(self, **arguments: Any) -> Any:
        return self._proxy.call(self._name, **arguments)

    async def acall(self, **arguments: Any) -> Any:
        """Call this function asynchronously (see :meth:`FunctionProxy.acall`)."""
        return await self._proxy.acall(self._name, **arguments)


class FunctionProxy:
    """Call functions on a running function server, sync or async, by name or attribute.

    ``proxy.call("YahooFinance/get_stock_chart", symbol="AAPL")`` and
    ``proxy.YahooFinance.get_stock_chart(symbol="AAPL")`` are the same call;
    ``await proxy.acall(...)`` / ``await proxy.YahooFinance.get_stock_chart.acall(...)``
    are their async twins. Calls use the workspace protocol (``POST /execute``), send
    ``AGENT_NAME`` as the caller name, and raise the :class:`~external_api.errors.ApiError`
    subclass the server reported (``InvalidParams``, ``UnknownEndpoint``, ...).

    Args:
        base_url: The server's URL; default ``http://127.0.0.1:$FUNC_SERVER_PORT``.
        token: Bearer token; default ``WORKSPACE_SERVER_TOKEN`` (env or secrets file).
        timeout: Seconds a call may take, end to end; the server is told the same.
        caller_name: Sent as ``caller_name``; default ``AGENT_NAME``.

    Raises:
        ApiError: at construction, when no ``base_url`` is given and ``FUNC_SERVER_PORT``
            is unset or not a port number.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        caller_name: str | None = None,
    ) -> None:
        from external_api.config import get_settings

        settings = get_settings()
        if base_url is None:
            base_url = _base_url_from_port(settings.func_server_port)
        if token is None and settings.server_token is not None:
            token = settings.server_token.get_secret_value()
        if timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.caller_name = caller_name if caller_name is not None else settings.agent_name
        self._token = token
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"FunctionProxy({self.base_url!r}, timeout={self.timeout})"

    def __getattr__(self, name: str) -> _RemoteName:
        if name.startswith("_"):
            raise AttributeError(name)
        return _RemoteName(self, name)

    async def __aenter__(self) -> FunctionProxy:
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def with_timeout(self, timeout: float) -> FunctionProxy:
        """Return a proxy to the same server whose calls time out after ``timeout`` seconds."""
        return FunctionProxy(
            self.base_url, token=self._token, timeout=timeout, caller_name=self.caller_name
        )

    def call(self, name: str, /, **arguments: Any) -> Any:
        """Call ``name`` with ``arguments`` and return its result (blocking).

        Works inside a running event loop too (the call then runs on a helper thread),
        but prefer ``await proxy.acall(...)`` there.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._call_once(name, arguments))
        result: list[Any] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                result.append(asyncio.run(self._call_once(name, arguments)))
            except BaseException as error:  # handed to the calling thread
                errors.append(error)

        worker = threading.Thread(target=run, name=f"FunctionProxy {name}")
        worker.start()
        worker.join()
        if errors:
            raise errors[0]
        return result[0]

    async def acall(self, name: str, /, **arguments: Any) -> Any:
        """Call ``name`` with ``arguments`` and return its result."""
        if self._session is not None:
            return await self._post(self._session, name, arguments)
        return await self._call_once(name, arguments)

    async def _call_once(self, name: str, arguments: Mapping[str, Any]) -> Any:
        async with aiohttp.ClientSession() as session:
            return await self._post(session, name, arguments)

    async def _post(
        self, session: aiohttp.ClientSession, name: str, arguments: Mapping[str, Any]
    ) -> Any:
        request_id = uuid.uuid4().hex
        headers = {"X-Request-ID": request_id, "X-Request-Timeout": f"{self.timeout:g}"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        body = {
            "request_id": request_id,
            "function_name": name,
            "parameters": to_jsonable_python(dict(arguments)),
            "caller_name": self.caller_name,
        }
        url = f"{self.base_url}/execute"
        try:
            async with session.post(
                url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout)
            ) as response:
                text = await response.text()
                status = response.status
        except asyncio.TimeoutError:
            raise UpstreamTimeout(
                f"{name}: no answer from the function server within {self.timeout:g} s; "
                "raise the timeout with FunctionProxy(timeout=...) or .with_timeout(...).",
                details={"function": name, "timeout": self.timeout},
            ) from None
        except aiohttp.ClientError as error:
            raise ApiError(
                f"cannot reach the function server at {self.base_url} ({error}): start it "
                "with `workspace serve` or point FUNC_SERVER_PORT / base_url at it.",
                details={"url": self.base_url},
            ) from None
        return _result_or_raise(name, status, text)


def _result_or_raise(name: str, status: int, text: str) -> Any:
    """Decode an ``/execute`` reply: the result, or the reported error raised as its class."""
    import json

    try:
        reply = json.loads(text)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise ApiError(
            f"{name}: the function server answered HTTP {status} with a body that is not "
            f"the workspace protocol: {text[:200]!r}",
            details={"status": status},
        )
    if status < 400 and not reply.get("is_error"):
        return reply.get("result")
    envelope = reply.get("error")
    if isinstance(envelope, dict):
        raise error_from_payload(envelope)
    raise ApiError(
        str(reply.get("message") or f"{name}: HTTP {status}"), details={"status": status}
    )


def _base_url_from_port(port: int | None) -> str:
    """Return ``http://127.0.0.1:<port>``, or raise a clear error when no port is configured.

    Settings already reject a ``FUNC_SERVER_PORT`` that is not a port number.
    """
    if port is None:
        raise ApiError(
            "FUNC_SERVER_PORT is not set, so there is no function server to call: set it to "
            "the port `workspace serve` listens on (e.g. FUNC_SERVER_PORT=8080), or pass "
            "FunctionProxy(base_url=...)."
        )
    return f"http://127.0.0.1:{port}"
