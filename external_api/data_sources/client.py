"""``ApiClient``: the process-wide entry point to every data source.

Contract:

- ``ApiClient()`` returns the same instance in every thread (creation is locked).
- Sources are discovered without importing them: the modules of
  ``external_api.data_sources`` (``yahoo_finance`` → source ``YahooFinance``, class of
  the same name) and the entry-point group ``external_api.data_sources``
  (``Name = "package.module:Class"``). Each source is imported once, on first use; an
  import failure is recorded in :attr:`ApiClient.load_errors` and raised as
  :class:`~external_api.errors.SourceUnavailable` when that source is called, never
  breaking the other sources.
- ``acall_api("Source/endpoint", query)`` validates and calls, returning a JSON dict;
  ``call_api`` is its synchronous twin, usable from any thread (it runs the call on an
  event loop thread owned by the client) and refusing to run inside a running loop.
- Failures are :class:`~external_api.errors.ApiError` subclasses.
- Creating the client reads the settings (an invalid setting fails here, clearly) and,
  unless the application configured structlog itself, configures logging for the
  profile (console lines in dev, JSON in staging/prod, on stderr).
"""

from __future__ import annotations

import asyncio
import atexit
import importlib
import importlib.metadata
import pkgutil
import threading
import traceback
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import structlog

from external_api.config import get_settings
from external_api.data_sources.base import DataSource
from external_api.data_sources.transport import Transport
from external_api.errors import SourceUnavailable, UnknownEndpoint
from external_api.observability import get_logger
from external_api.specs import FunctionSpec

__all__ = ["ENTRY_POINT_GROUP", "ApiClient", "SourceInfo"]

ENTRY_POINT_GROUP = "external_api.data_sources"
_PACKAGE = "external_api.data_sources"
_NOT_SOURCES = frozenset({"base", "client", "transport"})
_T = TypeVar("_T")
_log = get_logger("external_api.client")


@dataclass(frozen=True)
class SourceInfo:
    """Where a discovered source lives: ``target`` is ``"module:Class"``; ``origin`` says who."""

    name: str
    target: str
    origin: str  # "builtin" or "entry point <distribution>"


def _module_to_source(module: str) -> str:
    return "".join(part.title() for part in module.split("_"))


def discover() -> dict[str, SourceInfo]:
    """Find every source without importing any (built-in modules, then entry points).

    A built-in source wins over an entry point of the same name.
    """
    package = importlib.import_module(_PACKAGE)
    found: dict[str, SourceInfo] = {}
    for module in pkgutil.iter_modules(package.__path__):
        if module.name.startswith("_") or module.name in _NOT_SOURCES or module.ispkg:
            continue
        name = _module_to_source(module.name)
        found[name] = SourceInfo(name, f"{_PACKAGE}.{module.name}:{name}", "builtin")
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry.dist.name if entry.dist is not None else "unknown distribution"
        found.setdefault(entry.name, SourceInfo(entry.name, entry.value, f"entry point {dist}"))
    return found


class _LoopThread:
    """A daemon thread running one event loop, for the synchronous ``call_api``."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="workspace-api-client", daemon=True
        )
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self, transport: Transport) -> None:
        if self.loop.is_closed():
            return
        self.run(transport.aclose())
        self.run(self.loop.shutdown_asyncgens())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


class ApiClient:
    """One client for every data source (see the module docstring for the contract).

    Attributes:
        load_errors: Source name → why it failed to import (filled on first use).
    """

    _instance: ClassVar[ApiClient | None] = None
    _instance_lock: ClassVar[threading.Lock] = threading.Lock()

    _initialised: bool
    load_errors: dict[str, str]

    def __new__(cls) -> ApiClient:
        """Return the process-wide instance, creating it once under a lock."""
        instance = cls._instance
        if instance is None:
            with cls._instance_lock:
                instance = cls._instance
                if instance is None:
                    instance = super().__new__(cls)
                    instance._setup()
                    cls._instance = instance
        return instance

    def _setup(self) -> None:
        settings = get_settings()  # fail early, with the message naming the bad variable
        if not structlog.is_configured():
            settings.configure_logging()
        self.transport = Transport()
        self.load_errors = {}
        self._infos = discover()
        self._sources: dict[str, DataSource] = {}
        self._load_lock = threading.RLock()
        self._loop_thread: _LoopThread | None = None
        self._loop_lock = threading.Lock()

    @classmethod
    def reset(cls) -> None:
        """Drop the process-wide instance (stopping its loop thread); for tests and reloads."""
        with cls._instance_lock:
            instance, cls._instance = cls._instance, None
        if instance is not None:
            instance.close()

    def close(self) -> None:
        """Stop the client's event-loop thread and close its session (idempotent)."""
        with self._loop_lock:
            thread, self._loop_thread = self._loop_thread, None
        if thread is not None:
            thread.stop(self.transport)

    async def aclose(self) -> None:
        """Close the session of the running event loop."""
        await self.transport.aclose()

    # ------------------------------------------------------------------ sources
    def sources(self) -> list[str]:
        """The names of every discovered source (loaded or not), sorted."""
        return sorted(self._infos)

    def source_info(self, name: str) -> SourceInfo:
        """Where source ``name`` comes from.

        Raises:
            UnknownEndpoint: no such source; the message lists the known ones.
        """
        if name not in self._infos:
            raise UnknownEndpoint(
                f"no data source named {name!r}; known sources: {', '.join(self.sources())}.",
                details={"source": name, "sources": self.sources()},
            )
        return self._infos[name]

    def source(self, name: str) -> Any:
        """The loaded source ``name`` for the typed API (imported on first use).

        Raises:
            UnknownEndpoint: no such source.
            SourceUnavailable: it failed to import; the message says why.
        """
        loaded = self._sources.get(name)
        if loaded is not None:
            return loaded
        info = self.source_info(name)
        with self._load_lock:
            if name not in self._sources and name not in self.load_errors:
                self._load(info)
        if name in self.load_errors:
            raise SourceUnavailable(
                f"data source {name!r} ({info.origin}, {info.target}) failed to load: "
                f"{self.load_errors[name]}. Fix or reinstall it; the other sources still work.",
                details={"source": name, "target": info.target},
            )
        return self._sources[name]

    def _load(self, info: SourceInfo) -> None:
        module_name, _, attr = info.target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in (attr or info.name).split("."):
                obj = getattr(obj, part)
            if not (isinstance(obj, type) and issubclass(obj, DataSource)):
                raise TypeError(f"{info.target} is not a DataSource subclass")
            if obj.name != info.name:
                raise TypeError(f"{info.target} is named {obj.name!r}, expected {info.name!r}")
            obj.specs()
            self._sources[info.name] = obj(transport=self.transport)
        except Exception as error:  # a broken source must never break the client
            summary = "".join(traceback.format_exception_only(type(error), error)).strip()
            self.load_errors[info.name] = summary
            _log.error("data source failed to load", source=info.name, error=summary)

    def endpoints(self) -> list[FunctionSpec]:
        """The specs of every endpoint of every source that loads (``Source/endpoint``)."""
        specs: list[FunctionSpec] = []
        for name in self.sources():
            try:
                source = self.source(name)
            except SourceUnavailable:
                continue
            specs.extend(source.specs().values())
        return specs

    def describe(self) -> str:
        """A Markdown description of every source and endpoint, for agents and humans."""
        lines = ["# Data sources", ""]
        lines.append('Call with `ApiClient().call_api("Source/endpoint", query={...})`.')
        for name in self.sources():
            lines += ["", f"## {name}", ""]
            try:
                source = self.source(name)
            except SourceUnavailable as error:
                lines.append(f"*Unavailable:* {error.message}")
                continue
            lines.append(source.summary())
            for spec in source.specs().values():
                lines += ["", f"### `{spec.name}`", "", spec.description, ""]
                lines += _parameter_table(spec)
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ calls
    def _split(self, name: str) -> tuple[DataSource, str]:
        source_name, slash, endpoint_name = str(name).partition("/")
        if not slash or not source_name or not endpoint_name:
            raise UnknownEndpoint(
                f"{name!r} is not an endpoint name: use 'Source/endpoint', e.g. "
                "'YahooFinance/get_stock_chart'; known sources: " + ", ".join(self.sources()),
                details={"name": name},
            )
        source = self.source(source_name)
        source.spec(endpoint_name)
        return source, endpoint_name

    async def acall_api(self, name: str, query: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Call endpoint ``name`` (``"Source/endpoint"``) with ``query``; return a JSON dict.

        Raises:
            UnknownEndpoint: unknown source or endpoint.
            InvalidParams: the arguments do not match the endpoint's parameters.
            ApiError: any other failure, as its subclass.
        """
        source, endpoint_name = self._split(name)
        return await source.call(endpoint_name, query)

    def call_api(self, name: str, query: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Synchronous :meth:`acall_api`, usable from any thread without an event loop.

        Raises:
            RuntimeError: when called inside a running event loop (use ``acall_api``).
            ApiError: as :meth:`acall_api`.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "ApiClient.call_api() blocks, so it cannot run inside a running event loop: "
                f"use `await ApiClient().acall_api({name!r}, query=...)` there instead."
            )
        source, endpoint_name = self._split(name)
        return self._runner().run(source.call(endpoint_name, query))

    def _runner(self) -> _LoopThread:
        with self._loop_lock:
            if self._loop_thread is None:
                self._loop_thread = _LoopThread()
            return self._loop_thread


def _parameter_table(spec: FunctionSpec) -> list[str]:
    schema = spec.parameters_schema()
    required = set(schema.get("required", []))
    rows = ["| parameter | type | required | description |", "|---|---|---|---|"]
    for pname, prop in schema.get("properties", {}).items():
        kind = prop.get("type") or " | ".join(
            str(option.get("type", "?")) for option in prop.get("anyOf", [])
        )
        description = str(prop.get("description", "")).replace("\n", " ").replace("|", "\\|")
        if "default" in prop and prop["default"] is not None:
            description += f" (default `{prop['default']}`)"
        rows.append(
            f"| `{pname}` | {kind} | {'yes' if pname in required else 'no'} | {description} |"
        )
    return rows


@atexit.register
def _close_at_exit() -> None:
    instance = ApiClient._instance
    if instance is not None:
        instance.close()
