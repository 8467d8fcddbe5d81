"""The ``DataSource`` base class: typed async endpoints, their specs, validation and requests.

A source is a subclass with a ``name`` (``"YahooFinance"``), a ``default_base_url``
and async methods marked with :func:`endpoint`. Each endpoint's contract — name
``Source/endpoint``, description, JSON Schema with per-parameter descriptions, pydantic
validation — is derived by :meth:`FunctionSpec.from_callable
<external_api.specs.FunctionSpec.from_callable>` from its signature and Google-style
docstring. Endpoints return pydantic models (the typed API); :meth:`DataSource.call`
validates a JSON query, runs the endpoint and returns a JSON-compatible dict.

Requests go through :meth:`DataSource.request`, which uses the one
:class:`~external_api.data_sources.transport.Transport`, reads the source's settings
(``WORKSPACE_<SOURCE>_*``) on every call, maps error answers to
:class:`~external_api.errors.ApiError` subclasses (sources refine this in
:meth:`~DataSource.raise_for_response` / :meth:`~DataSource.check_payload`) and records
``workspace_upstream_requests_total`` and the latency histogram.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel

from external_api.config import Settings, SourceSettings, get_settings, source_env_key
from external_api.data_sources.transport import Response, Transport, error_for_status
from external_api.errors import ApiError, AuthError, UnknownEndpoint
from external_api.observability import UPSTREAM_LATENCY, UPSTREAM_REQUESTS, get_logger
from external_api.specs import FunctionSpec

__all__ = ["DataSource", "endpoint", "to_json"]

F = TypeVar("F", bound=Callable[..., Any])
_MARK = "__workspace_endpoint__"
_log = get_logger("external_api.data_sources")


def endpoint(func: F) -> F:
    """Mark an async method of a :class:`DataSource` as a public endpoint."""
    setattr(func, _MARK, True)
    return func


def to_json(result: Any) -> dict[str, Any]:
    """Return an endpoint's result as a JSON-compatible dict (pydantic models are dumped)."""
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    if isinstance(result, dict):
        return result
    raise TypeError(f"an endpoint must return a pydantic model or a dict, not {type(result)}")


class DataSource:
    """Base class of a data source; see the module docstring for the contract.

    Class attributes to set in a subclass:
        name: The public source name (``Source`` in ``Source/endpoint``).
        default_base_url: Used when ``WORKSPACE_<SOURCE>_BASE_URL`` is unset.
        requires_api_key: Whether calls need ``WORKSPACE_<SOURCE>_API_KEY``.
    """

    name: ClassVar[str] = ""
    default_base_url: ClassVar[str] = ""
    requires_api_key: ClassVar[bool] = False
    _specs_cache: ClassVar[dict[str, FunctionSpec]]

    def __init__(self, *, transport: Transport | None = None, settings: Settings | None = None):
        if not self.name:
            raise TypeError(f"{type(self).__qualname__} must set the class attribute `name`.")
        self.transport = transport or Transport()
        self._settings = settings

    # ------------------------------------------------------------------ contract
    @classmethod
    def specs(cls) -> dict[str, FunctionSpec]:
        """The endpoint specs by short name (``get_stock_chart``), in definition order."""
        cached: dict[str, FunctionSpec] | None = cls.__dict__.get("_specs_cache")
        if cached is None:
            cached = {}
            for klass in reversed(cls.__mro__):
                for attr, value in vars(klass).items():
                    if callable(value) and getattr(value, _MARK, False):
                        cached[attr] = FunctionSpec.from_callable(value, name=f"{cls.name}/{attr}")
            cls._specs_cache = cached
        return cached

    @classmethod
    def spec(cls, endpoint_name: str) -> FunctionSpec:
        """The spec of one endpoint.

        Raises:
            UnknownEndpoint: listing the endpoints this source has.
        """
        specs = cls.specs()
        if endpoint_name not in specs:
            known = ", ".join(f"{cls.name}/{name}" for name in specs) or "none"
            raise UnknownEndpoint(
                f"{cls.name} has no endpoint {endpoint_name!r}; its endpoints are: {known}.",
                details={"source": cls.name, "endpoints": list(specs)},
            )
        return specs[endpoint_name]

    @classmethod
    def summary(cls) -> str:
        """The first paragraph of the class docstring."""
        return (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")

    async def call(self, endpoint_name: str, arguments: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validate ``arguments`` against the endpoint's spec, run it, return a JSON dict.

        Raises:
            UnknownEndpoint: no such endpoint.
            InvalidParams: per-field validation errors.
            ApiError: whatever the endpoint raises.
        """
        spec = self.spec(endpoint_name)
        kwargs = spec.validate(arguments)
        return to_json(await spec.func(self, **kwargs))

    # ------------------------------------------------------------------ settings
    @property
    def settings(self) -> Settings:
        """The package settings (read on each access unless given to the constructor)."""
        return self._settings if self._settings is not None else get_settings()

    @property
    def config(self) -> SourceSettings:
        """This source's ``WORKSPACE_<SOURCE>_*`` settings."""
        return self.settings.source(self.name)

    @property
    def base_url(self) -> str:
        """``WORKSPACE_<SOURCE>_BASE_URL`` or :attr:`default_base_url`."""
        return (self.config.base_url or self.default_base_url).rstrip("/")

    @classmethod
    def key_variable(cls) -> str:
        """The name of the variable holding this source's API key."""
        return f"WORKSPACE_{source_env_key(cls.name)}_API_KEY"

    def api_key(self) -> str:
        """The API key.

        Raises:
            AuthError: when it is not set, naming the variable to set.
        """
        secret = self.config.api_key
        if secret is None or not secret.get_secret_value():
            raise AuthError(
                f"{self.name} needs an API key: set {self.key_variable()} (environment, .env "
                f"or a file named {self.key_variable().lower()} in the secrets directory "
                f"{self.settings.secrets_dir}).",
                details={"variable": self.key_variable()},
            )
        return secret.get_secret_value()

    def auth_headers(self) -> dict[str, str]:
        """Headers carrying the credential (override; the default sends none)."""
        return {}

    # ------------------------------------------------------------------ requests
    async def request(
        self,
        endpoint_name: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        method: str = "GET",
    ) -> Any:
        """Send ``method path`` to the upstream and return its JSON body.

        ``None`` parameters are dropped; booleans become ``true``/``false``.

        Raises:
            ApiError: a subclass for every failure (auth, not found, rate limit, ...).
        """
        started = time.monotonic()
        outcome = "ok"
        try:
            headers = self.auth_headers()
            config = self.config
            response = await self.transport.request(
                method,
                self.base_url + path,
                source=self.name,
                timeout=config.timeout,
                params=_query(params or {}),
                headers=headers,
                secrets=[config.api_key.get_secret_value() if config.api_key else None],
                gateway=self.settings.llm_gateway_base_url,
            )
            self.raise_for_response(endpoint_name, response)
            payload = response.json()
            self.check_payload(endpoint_name, payload)
            return payload
        except ApiError as error:
            outcome = error.type_name
            raise
        finally:
            elapsed = time.monotonic() - started
            UPSTREAM_REQUESTS.labels(self.name, endpoint_name, outcome).inc()
            UPSTREAM_LATENCY.labels(self.name, endpoint_name).observe(elapsed)
            (_log.debug if outcome == "ok" else _log.warning)(
                "upstream call",
                source=self.name,
                endpoint=endpoint_name,
                outcome=outcome,
                duration_s=round(elapsed, 4),
            )

    def raise_for_response(self, endpoint_name: str, response: Response) -> None:
        """Raise the error an HTTP error answer means (override to read upstream bodies)."""
        if response.status >= 400:
            raise error_for_status(response, source=self.name, key_variable=self.key_variable())

    def check_payload(self, endpoint_name: str, payload: Any) -> None:
        """Raise if a successful answer's JSON is an error in disguise (default: nothing)."""


def _query(params: Mapping[str, Any]) -> dict[str, str]:
    query: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        query[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return query
