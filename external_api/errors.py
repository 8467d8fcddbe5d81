"""The one exception hierarchy of workspace-toolkit.

Every failure a caller can act on is an :class:`ApiError` subclass with a message that
says what to do next. Each class carries the HTTP status the function server answers
with and a stable ``type`` name used in the JSON error envelope
``{"error": {"type", "message", "details"}}``, so an error can cross the wire and come
back as the same class (see :func:`error_from_payload`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

__all__ = [
    "ApiError",
    "AuthError",
    "BadRequest",
    "ConfigurationError",
    "FieldError",
    "InvalidParams",
    "MethodNotAllowed",
    "NotFound",
    "Overloaded",
    "PayloadTooLarge",
    "RateLimited",
    "SourceUnavailable",
    "UnknownEndpoint",
    "UpstreamError",
    "UpstreamTimeout",
    "error_from_payload",
]

JSONDict = dict[str, Any]


class ApiError(Exception):
    """Base class: a failure with a clear message and JSON-compatible ``details``.

    Attributes:
        message: What went wrong and what to do about it.
        details: Extra machine-readable facts (JSON-compatible; never secrets).
    """

    status: ClassVar[int] = 500
    type_name: ClassVar[str] = "ApiError"

    def __init__(self, message: str, *, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: JSONDict = dict(details or {})

    def to_payload(self) -> JSONDict:
        """Return the JSON error envelope body: ``{"type", "message", "details"}``."""
        return {"type": self.type_name, "message": self.message, "details": self.details}

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.details))


def _rebuild(cls: type[ApiError], message: str, details: JSONDict) -> ApiError:
    error = cls.__new__(cls)
    ApiError.__init__(error, message, details=details)
    error.__dict__.update(_attributes_from_details(cls, details))
    return error


def _attributes_from_details(cls: type[ApiError], details: JSONDict) -> JSONDict:
    if issubclass(cls, RateLimited):
        return {"retry_after": details.get("retry_after")}
    if issubclass(cls, UpstreamError):
        return {"status_code": details.get("status"), "body_excerpt": details.get("body", "")}
    if issubclass(cls, InvalidParams):
        return {"field_errors": [FieldError(**item) for item in details.get("fields", [])]}
    return {}


class FieldError(dict[str, Any]):
    """One invalid argument: ``{"field": "a.b", "message": "...", "type": "..."}``."""

    def __init__(self, field: str, message: str, type: str = "value_error") -> None:
        super().__init__(field=field, message=message, type=type)


class InvalidParams(ApiError):
    """The arguments are wrong; ``field_errors`` lists each bad field (HTTP 422)."""

    status = 422
    type_name = "InvalidParams"

    def __init__(
        self,
        message: str,
        *,
        field_errors: Sequence[FieldError] = (),
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.field_errors = list(field_errors)
        merged = {**(details or {}), "fields": [dict(item) for item in self.field_errors]}
        super().__init__(message, details=merged)


class AuthError(ApiError):
    """Credentials are missing or rejected; the message names the setting to fix (HTTP 401)."""

    status = 401
    type_name = "AuthError"


class NotFound(ApiError):
    """The upstream has no such resource (unknown symbol, user, ...) (HTTP 404)."""

    status = 404
    type_name = "NotFound"


class UnknownEndpoint(ApiError):
    """No source or endpoint by that name; the message lists what exists (HTTP 404)."""

    status = 404
    type_name = "UnknownEndpoint"


class RateLimited(ApiError):
    """The upstream is rate limiting; retry after ``retry_after`` seconds (HTTP 429)."""

    status = 429
    type_name = "RateLimited"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, details={**(details or {}), "retry_after": retry_after})


class UpstreamError(ApiError):
    """The upstream answered with an error; ``status_code`` and a short body excerpt (HTTP 502)."""

    status = 502
    type_name = "UpstreamError"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        body_excerpt: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.status_code = status_code
        self.body_excerpt = body_excerpt
        super().__init__(
            message, details={**(details or {}), "status": status_code, "body": body_excerpt}
        )


class UpstreamTimeout(ApiError):
    """The upstream did not answer within the deadline (HTTP 504)."""

    status = 504
    type_name = "UpstreamTimeout"


class SourceUnavailable(ApiError):
    """A data source failed to load (import error); the message says why (HTTP 503)."""

    status = 503
    type_name = "SourceUnavailable"


class BadRequest(ApiError):
    """The request itself is malformed (not JSON, bad header value) (HTTP 400)."""

    status = 400
    type_name = "BadRequest"


class PayloadTooLarge(ApiError):
    """The request body exceeds the server's limit (HTTP 413)."""

    status = 413
    type_name = "PayloadTooLarge"


class MethodNotAllowed(ApiError):
    """The route exists but not for this HTTP method (HTTP 405)."""

    status = 405
    type_name = "MethodNotAllowed"


class Overloaded(RateLimited):
    """Too many calls in flight on the function server; retry after ``retry_after`` s (HTTP 503)."""

    status = 503
    type_name = "Overloaded"


class ConfigurationError(ApiError, ValueError):
    """The settings are invalid; the message names each variable and what to set."""

    type_name = "ConfigurationError"


_BY_TYPE: dict[str, type[ApiError]] = {
    cls.type_name: cls
    for cls in (
        ApiError,
        InvalidParams,
        AuthError,
        NotFound,
        UnknownEndpoint,
        RateLimited,
        UpstreamError,
        UpstreamTimeout,
        SourceUnavailable,
        BadRequest,
        PayloadTooLarge,
        MethodNotAllowed,
        Overloaded,
        ConfigurationError,
    )
}


def error_from_payload(payload: Mapping[str, Any]) -> ApiError:
    """Rebuild the matching :class:`ApiError` subclass from an error envelope body.

    Unknown ``type`` names come back as a plain :class:`ApiError`, keeping the message.
    """
    cls = _BY_TYPE.get(str(payload.get("type", "")), ApiError)
    details = payload.get("details") or {}
    return _rebuild(cls, str(payload.get("message", "unknown error")), dict(details))
