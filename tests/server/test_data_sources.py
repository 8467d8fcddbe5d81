"""The product's functions behind the server: data sources against the fake upstreams,
browser functions registered, a hypothesis fuzz of every function, and OTel spans."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from browser.global_browser import reset_browser
from external_api import observability
from external_api.errors import NotFound, RateLimited
from external_api.function_utils import FunctionProxy, default_registry
from external_api.observability import configure_tracing
from tests.fakes import FakeUpstreams
from tests.server.conftest import ServerThread

ENDPOINTS = {
    "YahooFinance/get_stock_chart",
    "YahooFinance/search",
    "Twitter/search_tweets",
    "Twitter/get_user",
    "Booking/search_destination",
    "Booking/search_hotels",
}
# Each 5xx a function may declare: an upstream failure (502) or deadline (504).
DECLARED_STATUSES = {200, 404, 422, 429, 502, 504}


def post(url: str, body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
    request = urllib.request.Request(  # noqa: S310  # http://127.0.0.1 only
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request) as response:  # noqa: S310
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def execute(
    server: ServerThread, name: str, **parameters: Any
) -> tuple[int, dict[str, Any], dict[str, str]]:
    body = {"request_id": "r", "function_name": name, "parameters": parameters, "caller_name": "t"}
    return post(f"{server.url}/execute", json.dumps(body).encode())


def test_every_endpoint_and_browser_function_is_listed(product_server: ServerThread) -> None:
    with urllib.request.urlopen(f"{product_server.url}/functions") as response:  # noqa: S310
        names = {spec["name"] for spec in json.loads(response.read())["functions"]}
    assert names >= ENDPOINTS | {"Browser/visit", "Browser/screenshot"}
    visit = default_registry().get("Browser/visit").spec
    assert visit.is_async
    assert "url" in visit.parameters_schema()["required"]


def test_execute_against_the_fake_upstreams(
    product_server: ServerThread, upstreams: FakeUpstreams
) -> None:
    status, reply, _ = execute(
        product_server, "YahooFinance/get_stock_chart", symbol="AAPL", range="5d"
    )
    assert status == 200, reply
    assert reply["is_error"] is False
    assert reply["result"]["symbol"] == "AAPL"
    assert reply["result"]["bars"]
    assert {"timestamp", "open", "high", "low", "close", "volume"} <= set(
        reply["result"]["bars"][0]
    )

    upstreams.twitter.set_scenario("429")
    status, reply, headers = execute(product_server, "Twitter/get_user", username="NASA")
    assert (status, reply["error"]["type"]) == (429, "RateLimited")
    assert int(headers["Retry-After"]) >= 1

    upstreams.twitter.set_scenario("500")
    status, reply, _ = execute(product_server, "Twitter/search_tweets", query="python")
    assert (status, reply["error"]["type"]) == (502, "UpstreamError")

    upstreams.twitter.set_scenario("errors_200")
    status, reply, _ = execute(product_server, "Twitter/get_user", username="nobody")
    assert (status, reply["error"]["type"]) == (404, "NotFound")

    status, reply, _ = execute(product_server, "Booking/search_hotels", dest_id="-2092174")
    assert status == 422
    assert reply["error"]["details"]["fields"]


def test_proxy_maps_upstream_errors(product_server: ServerThread, upstreams: FakeUpstreams) -> None:
    proxy = FunctionProxy(product_server.url, token="", timeout=30)
    result = proxy.YahooFinance.search(query="apple")
    assert isinstance(result, dict)
    upstreams.twitter.set_scenario("errors_200")
    with pytest.raises(NotFound):
        proxy.call("Twitter/get_user", username="nobody")
    upstreams.twitter.set_scenario("429")
    with pytest.raises(RateLimited):
        proxy.Twitter.get_user(username="NASA")


@pytest.fixture
def refuse_browser_urls(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Browser functions refuse every host, so the fuzz never launches Chromium."""
    monkeypatch.setenv("WORKSPACE_BROWSER_ALLOWED_HOSTS", "only.allowed.invalid")
    reset_browser()
    yield
    reset_browser()


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
BY_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "string": st.text(min_size=1, max_size=12),
    "integer": st.integers(min_value=-5, max_value=100),
    "boolean": st.booleans(),
    "number": st.floats(min_value=-1, max_value=100),
}


def arguments_for(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Mostly well-typed arguments (to reach the upstream), sometimes anything at all."""
    properties: dict[str, Any] = schema["properties"]
    typed = {name: BY_TYPE.get(prop.get("type", ""), JSON) for name, prop in properties.items()}
    required = {name: typed[name] for name in schema.get("required", [])}
    optional = {name: typed[name] for name in properties if name not in required}
    well_typed = st.fixed_dictionaries(required, optional=optional)
    anything = st.dictionaries(st.sampled_from([*properties, "unexpected"]), JSON, max_size=4)
    return st.one_of(well_typed, anything)


FUZZED = sorted(name for name in ENDPOINTS | {"Browser/visit", "Browser/screenshot"})


@pytest.mark.slow
@pytest.mark.parametrize("name", FUZZED)
@pytest.mark.usefixtures("upstreams", "refuse_browser_urls")
def test_fuzz_arguments_never_cause_undeclared_5xx(product_server: ServerThread, name: str) -> None:
    schema = default_registry().get(name).spec.parameters_schema()
    url = f"{product_server.url}/functions/{name}"

    @settings(
        max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(arguments_for(schema))
    def check(arguments: dict[str, Any]) -> None:
        status, body, _ = post(url, json.dumps(arguments).encode())
        assert status in DECLARED_STATUSES, (arguments, body)
        if status != 200:
            assert set(body["error"]) == {"type", "message", "details"}

    check()


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    assert configure_tracing(exporter=exporter)
    return exporter


def test_spans_for_server_function_and_upstream(
    spans: InMemorySpanExporter, product_server: ServerThread, upstreams: FakeUpstreams
) -> None:
    spans.clear()
    status, _, _ = execute(product_server, "YahooFinance/search", query="apple")
    assert status == 200
    finished = {span.name: span for span in spans.get_finished_spans()}
    server, function, upstream = (
        finished["POST /execute"],
        finished["function YahooFinance/search"],
        finished["upstream YahooFinance/search"],
    )
    assert server.kind == SpanKind.SERVER
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/execute"
    assert server.attributes["http.response.status_code"] == 200
    assert upstream.kind == SpanKind.CLIENT
    assert upstream.parent is not None
    assert function.parent is not None
    assert upstream.parent.span_id == function.context.span_id
    assert function.parent.span_id == server.context.span_id
    assert upstream.context.trace_id == server.context.trace_id


def test_failed_calls_mark_their_span(
    spans: InMemorySpanExporter, product_server: ServerThread, upstreams: FakeUpstreams
) -> None:
    spans.clear()
    upstreams.twitter.set_scenario("500")
    status, _, _ = execute(product_server, "Twitter/get_user", username="NASA")
    assert status == 502
    upstream = next(s for s in spans.get_finished_spans() if s.name == "upstream Twitter/get_user")
    assert not upstream.status.is_ok
    assert any(event.name == "exception" for event in upstream.events)


def test_tracing_is_off_without_endpoint_or_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from external_api.observability import start_span

    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert configure_tracing() is False
    monkeypatch.setitem(__import__("sys").modules, "opentelemetry", None)
    monkeypatch.setattr(observability, "_tracer", observability._UNKNOWN)
    with start_span("anything") as span:
        assert span is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
    assert configure_tracing() is False
