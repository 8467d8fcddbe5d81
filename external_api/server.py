"""The function server: every registered function over HTTP (aiohttp).

Routes (fixed by the design): ``GET /livez``, ``GET /readyz`` (503 while draining),
``GET /metrics``, ``GET /functions``, ``POST /functions/{name}``, ``POST /execute`` (the
workspace protocol) and ``GET /openapi.json``. :func:`create_app` builds the application
for a :class:`ServerOptions`; :func:`serve` runs it until SIGTERM/SIGINT and drains
in-flight calls first. The request pipeline (auth, limits, error envelope, metrics,
access logs) lives in :mod:`external_api.server_middleware`; the OpenAPI document in
:mod:`external_api.server_openapi`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, ValidationError

from external_api import __version__
from external_api.config import ConfigurationError, Settings
from external_api.errors import ApiError, BadRequest, InvalidParams, Overloaded, UpstreamTimeout
from external_api.function_utils import FunctionRegistry, default_registry
from external_api.observability import (
    BUILD_INFO,
    FUNCTION_CALLS,
    FUNCTION_DURATION,
    get_logger,
    labelled,
    start_span,
)
from external_api.server_middleware import (
    REQUEST_ID,
    error_headers,
    make_pipeline_middleware,
)
from external_api.server_openapi import openapi_document
from external_api.specs import field_errors_from_validation

__all__ = ["STATE", "ServerOptions", "ServerState", "create_app", "serve"]

MIB = 1024 * 1024
_log = get_logger("external_api.server")


@dataclass(frozen=True)
class ServerOptions:
    """How the function server runs.

    Attributes:
        host: Address to bind; loopback by default.
        port: TCP port (0 picks a free one).
        token: Bearer token required on every route but the probes; ``None`` = no auth.
        call_timeout: Seconds one function call may take before the answer is 504.
        max_concurrency: Function calls in flight at most; more get 503 + ``Retry-After``.
        max_body_bytes: Largest request body accepted (413 above).
        grace_period: Seconds in-flight calls get to finish after SIGTERM.
        allow_unauthenticated: Permit binding a non-loopback address without a token.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = field(default=None, repr=False)
    call_timeout: float = 60.0
    max_concurrency: int = 64
    max_body_bytes: int = MIB
    grace_period: float = 30.0
    allow_unauthenticated: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> ServerOptions:
        """Options from ``settings`` (``FUNC_SERVER_PORT``, ``WORKSPACE_SERVER_TOKEN``).

        ``overrides`` whose value is ``None`` are ignored, so CLI flags can be passed as is.
        """
        token = settings.server_token.get_secret_value() if settings.server_token else None
        values: dict[str, Any] = {"port": settings.func_server_port or 8080, "token": token}
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)

    def check(self) -> None:
        """Raise ``ConfigurationError`` for unsafe or impossible options (what to change)."""
        if not self.token and not self.allow_unauthenticated and not _is_loopback(self.host):
            raise ConfigurationError(
                f"refusing to listen on {self.host!r} without a token: anyone who can reach "
                "it could call every function. Set WORKSPACE_SERVER_TOKEN (env or secrets "
                "file), bind 127.0.0.1, or pass --allow-unauthenticated if something in "
                "front of the server authenticates callers."
            )
        for name in ("call_timeout", "grace_period"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be a positive number of seconds.")
        if self.max_concurrency < 1 or self.max_body_bytes < 1:
            raise ConfigurationError("max_concurrency and max_body_bytes must be at least 1.")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ServerState:
    """Mutable per-application state: draining flag and in-flight call accounting."""

    options: ServerOptions
    registry: FunctionRegistry
    draining: bool = False
    in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()


STATE = web.AppKey("state", ServerState)


class _ExecuteRequest(BaseModel):
    """The workspace protocol's request body."""

    model_config = ConfigDict(extra="ignore")

    request_id: str | None = None
    function_name: str
    parameters: dict[str, Any] | None = None
    caller_name: str | None = None


async def _read_json(request: web.Request) -> Any:
    body = await request.read()
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(
            f"the request body is not valid JSON ({error}): send a JSON object "
            "with Content-Type: application/json.",
        ) from None


def _call_timeout(request: web.Request, default: float) -> float:
    raw = request.headers.get("X-Request-Timeout")
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise BadRequest(f"X-Request-Timeout must be a positive number of seconds, not {raw!r}.")
    return min(value, default)


async def _with_deadline(call: Awaitable[Any], timeout: float) -> Any:
    """Await ``call`` for at most ``timeout`` seconds (``asyncio.TimeoutError`` after).

    ``asyncio.timeout`` (3.11+) runs the call in the handler's own task; ``wait_for``
    on 3.10 wraps it in a new one.
    """
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await call
    return await asyncio.wait_for(call, timeout)  # pragma: no cover - Python 3.10


async def _run_function(request: web.Request, name: str, arguments: Any) -> Any:
    """Run ``name`` under the concurrency limit and deadline; count it in the metrics."""
    state = request.app[STATE]
    entry = state.registry.get(name)
    if state.in_flight >= state.options.max_concurrency:
        labelled(FUNCTION_CALLS, name, "Overloaded").inc()
        raise Overloaded(
            f"the server is running {state.in_flight} calls, its limit: retry shortly.",
            retry_after=1,
        )
    timeout = _call_timeout(request, state.options.call_timeout)
    state.in_flight += 1
    state.idle.clear()
    outcome = "ok"
    started = time.perf_counter()
    try:
        with start_span(f"function {name}", "internal", {"workspace.function": name}):
            return await _with_deadline(entry.invoke(arguments), timeout)
    except asyncio.TimeoutError:
        outcome = UpstreamTimeout.type_name
        raise UpstreamTimeout(
            f"{name} did not finish within {timeout:g} s: try again, narrow the query, or "
            "ask for a longer deadline (X-Request-Timeout, up to the server's limit).",
            details={"function": name, "timeout": timeout},
        ) from None
    except ApiError as error:
        outcome = error.type_name
        raise
    except Exception:
        outcome = "error"
        raise
    finally:
        state.in_flight -= 1
        if state.in_flight == 0:
            state.idle.set()
        labelled(FUNCTION_CALLS, name, outcome).inc()
        labelled(FUNCTION_DURATION, name).observe(time.perf_counter() - started)


async def livez(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 while serving, 503 once draining for shutdown."""
    if request.app[STATE].draining:
        return web.json_response({"status": "draining"}, status=503)
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of the default registry."""
    body = await asyncio.to_thread(generate_latest)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def list_functions(request: web.Request) -> web.Response:
    """The specs of every function; ``?format=openai`` gives OpenAI tool definitions."""
    registry = request.app[STATE].registry
    specs = await asyncio.to_thread(registry.specs)
    if request.query.get("format") == "openai":
        return web.json_response({"tools": [spec.openai_tool() for spec in specs]})
    return web.json_response({"functions": [spec.as_dict() for spec in specs]})


async def call_function(request: web.Request) -> web.Response:
    """``POST /functions/{name}``: JSON object of arguments → ``{"result": ...}``."""
    name = request.match_info["name"]
    arguments = await _read_json(request)
    result = await _run_function(request, name, arguments)
    return web.json_response({"result": result})


async def execute(request: web.Request) -> web.Response:
    """``POST /execute``: ``{request_id, function_name, parameters, caller_name}``.

    Answers ``{request_id, result, is_error: false}`` or, with the error's HTTP status,
    ``{request_id, message, is_error: true, error: {type, message, details}}``.
    """
    request_id = request[REQUEST_ID]
    try:
        body = await _read_json(request)
        try:
            call = _ExecuteRequest.model_validate(body)
        except ValidationError as error:
            raise InvalidParams(
                "the body must be {request_id, function_name, parameters, caller_name}.",
                field_errors=field_errors_from_validation(error),
            ) from None
        request_id = call.request_id or request_id
        with _log_bound(caller_name=call.caller_name, function=call.function_name):
            result = await _run_function(request, call.function_name, call.parameters or {})
    except ApiError as error:
        reply = {
            "request_id": request_id,
            "message": error.message,
            "is_error": True,
            "error": error.to_payload(),
        }
        return web.json_response(reply, status=error.status, headers=error_headers(error))
    return web.json_response({"request_id": request_id, "result": result, "is_error": False})


def _log_bound(**values: str | None) -> Any:
    return structlog.contextvars.bound_contextvars(
        **{key: value for key, value in values.items() if value is not None}
    )


async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of this server, generated from the function specs."""
    state = request.app[STATE]
    specs = await asyncio.to_thread(state.registry.specs)
    return web.json_response(openapi_document(specs, secured=bool(state.options.token)))


def create_app(
    options: ServerOptions | None = None, registry: FunctionRegistry | None = None
) -> web.Application:
    """Return the function server application for ``options`` serving ``registry``.

    ``registry`` defaults to :func:`~external_api.function_utils.default_registry`.
    """
    options = options or ServerOptions()
    app = web.Application(
        client_max_size=options.max_body_bytes,
        middlewares=[make_pipeline_middleware(options.token, options.max_body_bytes)],
    )
    app[STATE] = ServerState(options=options, registry=registry or default_registry())
    BUILD_INFO.labels(__version__).set(1)
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/functions", list_functions)
    app.router.add_post("/functions/{name:.+}", call_function)
    app.router.add_post("/execute", execute)
    app.router.add_get("/openapi.json", openapi)
    return app


async def serve(
    options: ServerOptions,
    registry: FunctionRegistry | None = None,
    *,
    reuse_port: bool = False,
    on_started: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set), then drain and return.

    Shutdown: ``/readyz`` answers 503 at once, in-flight calls get ``grace_period``
    seconds to finish (the listener stays open meanwhile), then the server closes.

    Args:
        options: See :class:`ServerOptions`; checked first (``ConfigurationError``).
        registry: Functions to serve; default the process-wide registry.
        reuse_port: Set ``SO_REUSEPORT`` so several worker processes share the port.
        on_started: Called with the bound port once the server accepts connections.
        stop: An event that, when set, starts the same shutdown as SIGTERM.
        handle_signals: Install the SIGTERM/SIGINT handlers (main thread only).
    """
    options.check()
    app = create_app(options, registry)
    state = app[STATE]
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    # Load the data sources and browser functions now, off the loop, not on the first call.
    loaded = await asyncio.to_thread(state.registry.functions)
    for label, error in state.registry.load_errors.items():
        _log.warning("functions not loaded", provider=label, error=error)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port, reuse_port=reuse_port)
    try:
        await site.start()
        port = _bound_port(runner)
        _log.info(
            "serving", host=options.host, port=port, version=__version__, functions=len(loaded)
        )
        if on_started is not None:
            on_started(port)
        await stop.wait()
        state.draining = True
        _log.info("draining", in_flight=state.in_flight, grace_period=options.grace_period)
        try:
            await asyncio.wait_for(state.idle.wait(), options.grace_period)
        except asyncio.TimeoutError:
            _log.warning("grace period over", abandoned_calls=state.in_flight)
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        await runner.cleanup()
    _log.info("stopped")


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    raise RuntimeError("the server has no TCP address")  # pragma: no cover - TCPSite always has
