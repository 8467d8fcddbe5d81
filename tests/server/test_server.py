"""The function server over real HTTP: routes, bad input, limits, auth, metrics, logs."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from external_api import __version__
from external_api.config import ConfigurationError
from external_api.server import ServerOptions, create_app
from tests.server.conftest import OPTIONS, TOKEN, ServerThread
from tests.server.functions import SECRET_IN_EXCEPTION, TOOLS


async def request(
    method: str, url: str, *, raw: Any = None, **kwargs: Any
) -> tuple[int, dict[str, str], Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=raw, **kwargs) as response,
    ):
        text = await response.text()
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = text
        return response.status, dict(response.headers), body


def assert_envelope(body: Any, type_name: str) -> dict[str, Any]:
    assert set(body) == {"error", "request_id"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"type", "message", "details"}
    assert error["type"] == type_name
    assert error["message"]
    return error


async def test_probes(server: ServerThread) -> None:
    assert (await request("GET", f"{server.url}/livez"))[::2] == (200, {"status": "ok"})
    assert (await request("GET", f"{server.url}/readyz"))[::2] == (200, {"status": "ready"})


async def test_functions_lists_specs(server: ServerThread) -> None:
    status, _, body = await request("GET", f"{server.url}/functions")
    assert status == 200
    specs = {spec["name"]: spec for spec in body["functions"]}
    assert set(specs) == {entry.name for entry in TOOLS.functions()}
    add = specs["Test/add"]
    assert add["description"] == "Add two integers."
    assert add["parameters"]["required"] == ["a"]
    assert add["parameters"]["properties"]["b"] == {
        "type": "integer",
        "default": 1,
        "description": "The second addend.",
    }
    status, _, body = await request("GET", f"{server.url}/functions?format=openai")
    names = {tool["function"]["name"] for tool in body["tools"]}
    assert "Test__add" in names


async def test_call_function_ok(server: ServerThread) -> None:
    status, headers, body = await request(
        "POST", f"{server.url}/functions/Test/add", json={"a": 2, "b": 40}
    )
    assert (status, body) == (200, {"result": 42})
    assert headers["Content-Type"].startswith("application/json")
    status, _, body = await request(
        "POST", f"{server.url}/functions/Test/point", json={"x": 1, "y": 2, "when": "2024-02-29"}
    )
    assert body == {"result": {"point": {"x": 1, "y": 2}, "when": "2024-02-29"}}


async def test_url_encoded_name(server: ServerThread) -> None:
    status, _, body = await request("POST", f"{server.url}/functions/Test%2Fadd", json={"a": 1})
    assert (status, body) == (200, {"result": 2})


async def test_malformed_json_is_400(server: ServerThread) -> None:
    status, _, body = await request(
        "POST",
        f"{server.url}/functions/Test/add",
        raw=b'{"a": 1',
        headers={"Content-Type": "application/json"},
    )
    assert status == 400
    assert "not valid JSON" in assert_envelope(body, "BadRequest")["message"]


async def test_body_over_one_mib_is_413(server: ServerThread) -> None:
    big = json.dumps({"text": "x" * (1024 * 1024)}).encode()
    status, _, body = await request(
        "POST", f"{server.url}/functions/Test/echo", raw=io.BytesIO(big)
    )
    assert status == 413
    assert assert_envelope(body, "PayloadTooLarge")["details"] == {"limit": 1024 * 1024}


async def test_chunked_body_over_limit_is_413(server: ServerThread) -> None:
    async def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 65536

    status, _, body = await request("POST", f"{server.url}/functions/Test/echo", raw=chunks())
    assert status == 413
    assert_envelope(body, "PayloadTooLarge")


async def test_invalid_arguments_are_422_per_field(server: ServerThread) -> None:
    status, _, body = await request(
        "POST", f"{server.url}/functions/Test/add", json={"b": "many", "c": 1}
    )
    assert status == 422
    error = assert_envelope(body, "InvalidParams")
    fields = {item["field"]: item["type"] for item in error["details"]["fields"]}
    assert fields == {"a": "missing", "b": "int_parsing", "c": "extra_forbidden"}
    status, _, body = await request("POST", f"{server.url}/functions/Test/add", json=[1, 2])
    assert status == 422
    assert_envelope(body, "InvalidParams")


async def test_unknown_function_is_404_with_suggestion(server: ServerThread) -> None:
    status, _, body = await request("POST", f"{server.url}/functions/Test/ad", json={})
    assert status == 404
    error = assert_envelope(body, "UnknownEndpoint")
    assert "Test/add" in error["details"]["suggestions"]


async def test_unknown_route_and_method(server: ServerThread) -> None:
    status, _, body = await request("GET", f"{server.url}/nope")
    assert status == 404
    assert_envelope(body, "NotFound")
    status, _, body = await request("GET", f"{server.url}/execute")
    assert status == 405
    assert_envelope(body, "MethodNotAllowed")


async def test_timeout_is_504(server: ServerThread) -> None:
    status, _, body = await request(
        "POST",
        f"{server.url}/functions/Test/sleep",
        json={"seconds": 30},
        headers={"X-Request-Timeout": "0.2"},
    )
    assert status == 504
    assert assert_envelope(body, "UpstreamTimeout")["details"]["timeout"] == 0.2
    status, _, body = await request(
        "POST",
        f"{server.url}/functions/Test/sleep",
        json={"seconds": 0},
        headers={"X-Request-Timeout": "soon"},
    )
    assert status == 400


async def test_over_concurrency_limit_is_503(server: ServerThread) -> None:
    limit = server.options.max_concurrency
    url = f"{server.url}/functions/Test/sleep"
    async with aiohttp.ClientSession() as session:
        slow = [asyncio.create_task(session.post(url, json={"seconds": 1.0})) for _ in range(limit)]
        while not await asyncio.to_thread(
            _in_flight_reached, server, limit
        ):  # polls another process's state
            pass
        async with session.post(url, json={"seconds": 0}) as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "1"
            assert_envelope(await response.json(), "Overloaded")
        for response in await asyncio.gather(*slow):
            assert response.status == 200
            response.release()


def _in_flight_reached(server: ServerThread, limit: int) -> bool:
    import urllib.request

    with urllib.request.urlopen(f"{server.url}/metrics") as response:  # noqa: S310  # http://127.0.0.1
        for family in text_string_to_metric_families(response.read().decode()):
            if family.name == "workspace_http_requests_in_progress":
                for sample in family.samples:
                    if sample.labels.get("route") == "/functions/{name}" and sample.value >= limit:
                        return True
    return False


async def test_rate_limited_is_429_with_retry_after(server: ServerThread) -> None:
    status, headers, body = await request(
        "POST", f"{server.url}/functions/Test/rate_limited", json={"retry_after": 2.5}
    )
    assert status == 429
    assert headers["Retry-After"] == "3"
    assert assert_envelope(body, "RateLimited")["details"]["retry_after"] == 2.5


async def test_upstream_error_is_502(server: ServerThread) -> None:
    status, _, body = await request("POST", f"{server.url}/functions/Test/upstream_error", json={})
    assert status == 502
    assert assert_envelope(body, "UpstreamError")["details"]["status"] == 500


async def test_unexpected_exception_is_500_without_traceback(server: ServerThread) -> None:
    with capture_logs() as logs:
        status, headers, body = await request(
            "POST",
            f"{server.url}/functions/Test/boom",
            json={},
            headers={"X-Request-ID": "req-500"},
        )
    assert status == 500
    error = assert_envelope(body, "ApiError")
    assert body["request_id"] == headers["X-Request-ID"] == "req-500"
    assert "req-500" in error["message"]
    text = json.dumps(body)
    assert SECRET_IN_EXCEPTION not in text
    assert "Traceback" not in text
    assert "RuntimeError" not in text
    logged = [entry for entry in logs if entry["event"] == "unhandled error"]
    assert logged
    assert logged[0]["request_id"] == "req-500"


async def test_request_id_echoed_or_generated(server: ServerThread) -> None:
    _, headers, _ = await request("GET", f"{server.url}/livez", headers={"X-Request-ID": "abc-123"})
    assert headers["X-Request-ID"] == "abc-123"
    _, headers, _ = await request(
        "GET", f"{server.url}/livez", headers={"X-Request-ID": "bad id\t!"}
    )
    assert len(headers["X-Request-ID"]) == 32
    assert headers["X-Request-ID"] != "bad id\t!"


async def test_execute_protocol(server: ServerThread) -> None:
    payload = {
        "request_id": "r-1",
        "function_name": "Test/echo",
        "parameters": {"text": "hi", "times": 2},
        "caller_name": "agent-007",
    }
    with capture_logs() as logs:
        status, _, body = await request("POST", f"{server.url}/execute", json=payload)
    assert (status, body) == (
        200,
        {"request_id": "r-1", "result": {"text": "hi hi"}, "is_error": False},
    )
    access = [entry for entry in logs if entry["event"] == "request"]
    assert access[0]["route"] == "/execute"
    status, _, body = await request(
        "POST", f"{server.url}/execute", json={**payload, "parameters": {"times": "x"}}
    )
    assert status == 422
    assert body["request_id"] == "r-1"
    assert body["is_error"] is True
    assert body["message"] == body["error"]["message"]
    assert {item["field"] for item in body["error"]["details"]["fields"]} == {"text", "times"}


async def test_execute_bad_bodies(server: ServerThread) -> None:
    status, _, body = await request("POST", f"{server.url}/execute", json={"parameters": {}})
    assert status == 422
    assert body["is_error"] is True
    assert body["error"]["details"]["fields"][0]["field"] == "function_name"
    status, _, body = await request("POST", f"{server.url}/execute", raw=b"not json")
    assert status == 400
    assert body["error"]["type"] == "BadRequest"
    status, _, body = await request(
        "POST", f"{server.url}/execute", json={"request_id": "r-2", "function_name": "Nope/x"}
    )
    assert (status, body["request_id"], body["error"]["type"]) == (404, "r-2", "UnknownEndpoint")
    status, headers, body = await request(
        "POST",
        f"{server.url}/execute",
        json={"function_name": "Test/rate_limited", "parameters": {}},
    )
    assert (status, headers["Retry-After"]) == (429, "3")


async def test_openapi_document(server: ServerThread) -> None:
    status, _, doc = await request("GET", f"{server.url}/openapi.json")
    assert status == 200
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["version"] == __version__
    operation = doc["paths"]["/functions/Test/echo"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["text"]
    assert "security" not in doc
    for path in ("/livez", "/readyz", "/metrics", "/functions", "/execute"):
        assert path in doc["paths"]


async def test_metrics_parse_and_use_route_templates(server: ServerThread) -> None:
    await request("POST", f"{server.url}/functions/Test/add", json={"a": 1})
    await request("POST", f"{server.url}/functions/Test/add", json={})
    await request("GET", f"{server.url}/no/such/path")
    status, headers, text = await request("GET", f"{server.url}/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(text)}
    routes = {s.labels["route"] for s in families["workspace_http_requests"].samples}
    assert "/functions/{name}" in routes
    assert "<unmatched>" in routes
    assert not any("Test/add" in route or "/no/such" in route for route in routes)
    calls = {
        (s.labels["function"], s.labels["outcome"]): s.value
        for s in families["workspace_function_calls"].samples
        if s.name == "workspace_function_calls_total"
    }
    assert calls[("Test/add", "ok")] >= 1
    assert calls[("Test/add", "InvalidParams")] >= 1
    build = list(families["workspace_build_info"].samples)
    assert [(s.labels, s.value) for s in build] == [({"version": __version__}, 1.0)]
    assert "workspace_http_request_duration_seconds" in families
    assert "workspace_http_requests_in_progress" in families


async def test_auth_required_except_probes(secured_server: ServerThread) -> None:
    url = secured_server.url
    assert (await request("GET", f"{url}/livez"))[0] == 200
    assert (await request("GET", f"{url}/readyz"))[0] == 200
    for method, path in [
        ("GET", "/functions"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
        ("POST", "/execute"),
        ("POST", "/functions/Test/add"),
    ]:
        status, headers, body = await request(method, f"{url}{path}")
        assert status == 401, path
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert_envelope(body, "AuthError")
    status, _, body = await request(
        "GET", f"{url}/functions", headers={"Authorization": "Bearer wrong"}
    )
    assert status == 401
    assert "wrong" in body["error"]["message"]
    status, _, body = await request(
        "POST",
        f"{url}/functions/Test/add",
        json={"a": 1},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert (status, body) == (200, {"result": 2})
    status, _, doc = await request(
        "GET", f"{url}/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert doc["security"] == [{"bearer": []}]


PUBLIC = "0.0.0.0"  # noqa: S104  # the address under test


def test_refuses_public_bind_without_token() -> None:
    with pytest.raises(ConfigurationError, match="WORKSPACE_SERVER_TOKEN"):
        ServerOptions(host=PUBLIC).check()
    ServerOptions(host=PUBLIC, token="t").check()
    ServerOptions(host=PUBLIC, allow_unauthenticated=True).check()
    ServerOptions(host="::1").check()
    ServerOptions(host="localhost").check()
    with pytest.raises(ConfigurationError, match=r"example\.com"):
        ServerOptions(host="example.com").check()
    with pytest.raises(ConfigurationError, match="call_timeout"):
        ServerOptions(call_timeout=0).check()
    with pytest.raises(ConfigurationError, match="max_concurrency"):
        ServerOptions(max_concurrency=0).check()


def test_create_app_defaults_to_the_default_registry() -> None:
    from external_api.function_utils import default_registry
    from external_api.server import STATE

    app = create_app()
    assert app[STATE].registry is default_registry()
    assert app[STATE].options == ServerOptions()


def _broken_provider() -> list[Any]:
    raise ImportError("No module named 'missing_dependency'")


async def test_provider_failures_are_logged_at_startup() -> None:
    from external_api.function_utils import FunctionRegistry

    registry = FunctionRegistry()
    registry.add_provider("broken", _broken_provider)
    with capture_logs() as logs, ServerThread(OPTIONS, registry) as running:
        status, _, body = await request("GET", f"{running.url}/functions")
    assert (status, body) == (200, {"functions": []})
    warning = next(entry for entry in logs if entry["event"] == "functions not loaded")
    assert warning["provider"] == "broken"
    assert "missing_dependency" in warning["error"]
    serving = next(entry for entry in logs if entry["event"] == "serving")
    assert serving["functions"] == 0
