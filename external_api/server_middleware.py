"""The function server's request pipeline: request ids, auth, limits, errors, metrics, logs.

One aiohttp middleware (:func:`pipeline_middleware`) wraps every request:

- takes the request id from ``X-Request-ID`` (when it is a sane token) or makes one,
  binds it to the log context and echoes it back;
- with a server token configured, requires ``Authorization: Bearer <token>`` on every
  route except the probes (compared in constant time);
- answers every failure with the JSON error envelope ``{"error": {"type", "message",
  "details"}, "request_id"}`` — an unexpected exception becomes a 500 that quotes the
  request id and never shows a traceback;
- records the RED metrics by route *template* and writes one JSON access-log line;
- runs the request in an OpenTelemetry server span (a no-op without tracing).
"""

from __future__ import annotations

import hmac
import math
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from aiohttp import web

from external_api.errors import (
    ApiError,
    AuthError,
    MethodNotAllowed,
    NotFound,
    Overloaded,
    PayloadTooLarge,
    RateLimited,
)
from external_api.observability import (
    HTTP_IN_PROGRESS,
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS,
    get_logger,
    labelled,
    start_span,
)

__all__ = [
    "PROBE_ROUTES",
    "REQUEST_ID",
    "error_headers",
    "error_response",
    "make_pipeline_middleware",
    "route_template",
]

REQUEST_ID = web.RequestKey("request_id", str)
"""Where the pipeline stores each request's id (``request[REQUEST_ID]``)."""
PROBE_ROUTES = frozenset({"/livez", "/readyz"})
UNMATCHED_ROUTE = "<unmatched>"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_log = get_logger("external_api.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_RETRYABLE = (RateLimited, Overloaded)


def error_headers(error: ApiError) -> dict[str, str]:
    """Return the extra headers of an error response (``Retry-After``, ``WWW-Authenticate``)."""
    headers: dict[str, str] = {}
    retry_after = getattr(error, "retry_after", None)
    if isinstance(error, _RETRYABLE) and retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(float(retry_after))))
    elif isinstance(error, _RETRYABLE):
        headers["Retry-After"] = "1"
    if isinstance(error, AuthError):
        headers["WWW-Authenticate"] = 'Bearer realm="workspace"'
    return headers


def error_response(
    error: ApiError, request_id: str, extra: Mapping[str, Any] | None = None
) -> web.Response:
    """Return the JSON error envelope for ``error`` with its status and headers."""
    body = {**(extra or {}), "error": error.to_payload(), "request_id": request_id}
    return web.json_response(body, status=error.status, headers=error_headers(error))


def route_template(request: web.Request) -> str:
    """Return the matched route's template (``/functions/{name}``), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


def _request_id(request: web.Request) -> str:
    given = request.headers.get("X-Request-ID", "")
    return given if _REQUEST_ID.match(given) else os.urandom(16).hex()


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is over the server's limit of {limit} bytes: send less data per call.",
        details={"limit": limit},
    )


def _from_http_exception(exc: web.HTTPException, request: web.Request, limit: int) -> ApiError:
    if exc.status == 413:
        return _too_large(limit)
    if exc.status == 404:
        return NotFound(
            f"no route {request.method} {request.path}: the routes are listed in "
            "GET /openapi.json (functions are called with POST /functions/{name}).",
            details={"path": request.path},
        )
    if exc.status == 405:
        return MethodNotAllowed(
            f"{request.method} is not allowed on {request.path}.",
            details={"allowed": sorted(getattr(exc, "allowed_methods", ()) or ())},
        )
    error = ApiError(exc.reason or f"HTTP {exc.status}")
    error.status = exc.status  # type: ignore[misc]  # per-instance status of a mapped HTTP error
    return error


def _check_token(request: web.Request, token: str) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise AuthError(
            "this server requires a token: send `Authorization: Bearer <token>` with the "
            "value of WORKSPACE_SERVER_TOKEN."
        )
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise AuthError("the bearer token is wrong: use the server's WORKSPACE_SERVER_TOKEN.")


def make_pipeline_middleware(token: str | None, max_body_bytes: int) -> Any:
    """Return the one middleware of the function server (see the module docstring).

    Args:
        token: The bearer token every non-probe route requires; ``None`` turns auth off.
        max_body_bytes: Bodies announced larger than this are refused with 413 before
            being read (the application's ``client_max_size`` catches the others).
    """
    # Resolved now (after the process configured logging), not on every request.
    access_log = structlog.get_logger("external_api.server").bind(logger="external_api.server")

    @web.middleware
    async def pipeline_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = _request_id(request)
        request[REQUEST_ID] = request_id
        route = route_template(request)
        method = request.method
        in_progress = labelled(HTTP_IN_PROGRESS, route, method)
        in_progress.inc()
        started = time.perf_counter()
        try:
            with (
                structlog.contextvars.bound_contextvars(request_id=request_id),
                start_span(
                    f"{method} {route}",
                    "server",
                    {"http.request.method": method, "http.route": route},
                ) as span,
            ):
                response = await _guarded(request, handler, token, route, max_body_bytes)
                if span is not None:
                    span.set_attribute("http.response.status_code", response.status)
        finally:
            in_progress.dec()
        elapsed = time.perf_counter() - started
        labelled(HTTP_REQUESTS, route, method, str(response.status)).inc()
        labelled(HTTP_REQUEST_DURATION, route, method).observe(elapsed)
        response.headers["X-Request-ID"] = request_id
        log = access_log.debug if route in PROBE_ROUTES else access_log.info
        log(
            "request",
            request_id=request_id,
            method=method,
            route=route,
            path=request.path,
            status=response.status,
            duration_ms=round(elapsed * 1000, 3),
            remote=request.remote,
        )
        return response

    return pipeline_middleware


async def _guarded(
    request: web.Request, handler: Handler, token: str | None, route: str, limit: int
) -> web.StreamResponse:
    request_id = request[REQUEST_ID]
    try:
        if token is not None and route not in PROBE_ROUTES:
            _check_token(request, token)
        if (request.content_length or 0) > limit:
            raise _too_large(limit)
        return await handler(request)
    except ApiError as error:
        return error_response(error, request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(_from_http_exception(exc, request, limit), request_id)
    except Exception:
        _log.exception("unhandled error", request_id=request_id, route=route)
        failure = ApiError(
            f"internal server error; the server log has the details under request id "
            f"{request_id}: quote it when reporting the problem.",
            details={"request_id": request_id},
        )
        return error_response(failure, request_id)
