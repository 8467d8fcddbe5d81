"""The client side of the function server: :class:`FunctionProxy`.

Re-exported by :mod:`external_api.function_utils` (import it from there). A proxy calls
functions on a running server with the workspace protocol (``POST /execute``) and
raises the :class:`~external_api.errors.ApiError` subclass the server reported.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Mapping
from typing import Any

import aiohttp
from pydantic_core import to_jsonable_python

from external_api.errors import ApiError, UpstreamTimeout, error_from_payload

__all__ = ["FunctionProxy"]


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
