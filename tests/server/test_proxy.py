"""FunctionProxy against a real server: round trips, styles, settings and error mapping."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import RawTestServer

from external_api.config import ConfigurationError, reset_settings
from external_api.errors import (
    ApiError,
    AuthError,
    InvalidParams,
    RateLimited,
    UnknownEndpoint,
    UpstreamError,
    UpstreamTimeout,
)
from external_api.function_utils import FunctionProxy
from tests.server.conftest import TOKEN, ServerThread

pytestmark = pytest.mark.usefixtures("clean_settings")


@pytest.fixture
def proxy(server: ServerThread, monkeypatch: pytest.MonkeyPatch) -> FunctionProxy:
    monkeypatch.setenv("FUNC_SERVER_PORT", str(server.port))
    monkeypatch.setenv("AGENT_NAME", "agent-under-test")
    reset_settings()
    return FunctionProxy(timeout=5)


def test_sync_round_trip_by_name_and_attribute(proxy: FunctionProxy, server: ServerThread) -> None:
    assert proxy.base_url == server.url
    assert proxy.caller_name == "agent-under-test"
    assert proxy.call("Test/add", a=1, b=2) == 3
    assert proxy.Test.add(a=5) == 6
    assert proxy.Test.point(x=1, y=2) == {"point": {"x": 1, "y": 2}, "when": None}
    assert "timeout=5" in repr(proxy)


async def test_async_round_trip(proxy: FunctionProxy) -> None:
    assert await proxy.acall("Test/echo", text="a", times=3) == {"text": "a a a"}
    assert await proxy.Test.echo.acall(text="b", unit="line", times=2) == {"text": "b\nb"}
    async with proxy as session_proxy:
        results = [await session_proxy.acall("Test/add", a=n) for n in range(3)]
    assert results == [1, 2, 3]


async def test_sync_call_inside_a_running_loop(proxy: FunctionProxy) -> None:
    assert proxy.call("Test/add", a=41) == 42
    with pytest.raises(InvalidParams):
        proxy.call("Test/add")


def test_errors_come_back_as_their_class(proxy: FunctionProxy) -> None:
    with pytest.raises(InvalidParams) as invalid:
        proxy.call("Test/add", a="x")
    assert [item["field"] for item in invalid.value.field_errors] == ["a"]
    with pytest.raises(UnknownEndpoint, match="Test/add"):
        proxy.call("Test/ad", a=1)
    with pytest.raises(RateLimited) as limited:
        proxy.Test.rate_limited(retry_after=7)
    assert limited.value.retry_after == 7
    with pytest.raises(UpstreamError) as upstream:
        proxy.Test.upstream_error()
    assert upstream.value.status_code == 500
    with pytest.raises(ApiError, match="request id"):
        proxy.Test.boom()


def test_timeouts(proxy: FunctionProxy) -> None:
    with pytest.raises(UpstreamTimeout, match=r"within 0\.3 s"):
        proxy.with_timeout(0.3).Test.sleep(seconds=5)
    with pytest.raises(ValueError, match="positive"):
        proxy.with_timeout(0)


def test_token_from_settings(secured_server: ServerThread, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUNC_SERVER_PORT", str(secured_server.port))
    reset_settings()
    with pytest.raises(AuthError, match="requires a token"):
        FunctionProxy().call("Test/add", a=1)
    monkeypatch.setenv("WORKSPACE_SERVER_TOKEN", TOKEN)
    reset_settings()
    assert FunctionProxy().call("Test/add", a=1) == 2


def test_token_from_secrets_file(
    secured_server: ServerThread, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "WORKSPACE_SERVER_TOKEN").write_text(TOKEN + "\n")
    monkeypatch.setenv("WORKSPACE_SECRETS_DIR", str(secrets))
    reset_settings()
    assert FunctionProxy(secured_server.url).call("Test/add", a=2) == 3
    with pytest.raises(AuthError, match="wrong"):
        FunctionProxy(secured_server.url, token="wrong").call("Test/add", a=1)


def test_missing_or_invalid_port_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ApiError, match="FUNC_SERVER_PORT is not set"):
        FunctionProxy()
    monkeypatch.setenv("FUNC_SERVER_PORT", "http")
    reset_settings()
    with pytest.raises(ConfigurationError, match="FUNC_SERVER_PORT"):
        FunctionProxy()


def test_unreachable_server() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ApiError, match="cannot reach the function server"):
        FunctionProxy(f"http://127.0.0.1:{port}").call("Test/add", a=1)


def test_error_envelope_without_protocol_fields(server: ServerThread) -> None:
    # /livez/execute is no route: the server's 404 envelope comes back as its error.
    with pytest.raises(ApiError, match="no route"):
        FunctionProxy(f"{server.url}/livez").call("Test/add", a=1)


async def test_non_protocol_reply() -> None:
    async def bad_gateway(request: web.BaseRequest) -> web.Response:
        return web.Response(status=502, text="<html>502 Bad Gateway</html>")

    async def bare_error(request: web.BaseRequest) -> web.Response:
        return web.json_response({"message": "gateway says no"}, status=503)

    async with RawTestServer(bad_gateway) as html, RawTestServer(bare_error) as bare:
        with pytest.raises(ApiError, match="not the workspace protocol") as caught:
            await FunctionProxy(str(html.make_url(""))).acall("Test/add", a=1)
        assert caught.value.details == {"status": 502}
        with pytest.raises(ApiError, match="gateway says no"):
            await FunctionProxy(str(bare.make_url(""))).acall("Test/add", a=1)


def test_private_attributes_are_not_functions(proxy: FunctionProxy) -> None:
    with pytest.raises(AttributeError):
        proxy._private  # noqa: B018  # the lookup itself must fail
    with pytest.raises(AttributeError):
        proxy.Test._private  # noqa: B018
