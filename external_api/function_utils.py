"""The function registry and the client-side :class:`FunctionProxy`.

A function is described once — its signature and docstring, through
:meth:`FunctionSpec.from_callable <external_api.specs.FunctionSpec.from_callable>` — and
can then be called in-process (:meth:`FunctionRegistry.acall`), through the ``workspace``
CLI, or remotely on the function server through a :class:`FunctionProxy` (defined in
:mod:`external_api.function_proxy`, exported here).

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
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from pydantic_core import to_jsonable_python

from external_api.errors import UnknownEndpoint
from external_api.function_proxy import FunctionProxy
from external_api.observability import start_span
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
    """Every data-source endpoint, called through the one ``ApiClient`` in a client span."""
    from external_api.data_sources.client import ApiClient

    client = ApiClient()

    def invoker(endpoint: str) -> Invoker:
        source, _, name = endpoint.partition("/")
        attributes = {"workspace.source": source, "workspace.endpoint": name}

        async def invoke(arguments: Mapping[str, Any]) -> Any:
            with start_span(f"upstream {endpoint}", "client", attributes):
                return await client.acall_api(endpoint, dict(arguments))

        return invoke

    return [RegisteredFunction(spec, invoker(spec.name)) for spec in client.endpoints()]


_BROWSER_FUNCTIONS = {"Browser/visit": "avisit", "Browser/screenshot": "ascreenshot"}


def _browser_functions() -> list[RegisteredFunction]:
    """``Browser/visit`` and ``Browser/screenshot`` when the ``browser`` extra is installed.

    They are registered from the async forms (``avisit``, ``ascreenshot``), which carry
    the full documentation and run on the server's event loop.
    """
    if importlib.util.find_spec("playwright") is None:
        return []
    functions = importlib.import_module("browser.functions")
    entries = []
    for name, attribute in _BROWSER_FUNCTIONS.items():
        spec = FunctionSpec.from_callable(getattr(functions, attribute), name=name)
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
