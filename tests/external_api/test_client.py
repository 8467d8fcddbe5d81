"""ApiClient: one instance per process, discovery without import, lazy loading, sync/async calls."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import external_api
from external_api.data_sources.client import ApiClient, discover
from external_api.errors import (
    InvalidParams,
    NotFound,
    SourceUnavailable,
    UnknownEndpoint,
)
from tests.fakes import FakeUpstreams

REPO = Path(__file__).resolve().parents[2]

THIRD_PARTY = textwrap.dedent(
    '''
    """A third-party source for the tests: counts its instances."""
    from external_api.data_sources.base import DataSource, endpoint

    class Counting(DataSource):
        """Counts how often it is instantiated."""

        name = "Counting"
        instances = 0

        def __init__(self, **kwargs):
            type(self).instances += 1
            super().__init__(**kwargs)

        @endpoint
        async def echo(self, text: str) -> dict:
            """Echo the text back.

            Args:
                text: What to echo.
            """
            return {"text": text}
    '''
)


def write_distribution(root: Path, name: str, entry_points: dict[str, str]) -> None:
    """A real installed distribution: a dist-info with METADATA and entry_points.txt."""
    info = root / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", encoding="utf-8"
    )
    lines = [f"{key} = {value}" for key, value in entry_points.items()]
    (info / "entry_points.txt").write_text(
        "[external_api.data_sources]\n" + "\n".join(lines) + "\n", encoding="utf-8"
    )


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Third-party sources via entry points: one that works, one that raises on import."""
    (tmp_path / "ws_counting_source.py").write_text(THIRD_PARTY, encoding="utf-8")
    (tmp_path / "ws_broken_source.py").write_text(
        'raise RuntimeError("broken on purpose: missing native library")\n', encoding="utf-8"
    )
    write_distribution(
        tmp_path,
        "ws_plugins",
        {
            "Counting": "ws_counting_source:Counting",
            "Broken": "ws_broken_source:Broken",
            "Misnamed": "ws_counting_source:Counting",
            "NotASource": "ws_counting_source:endpoint",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ApiClient.reset()
    yield tmp_path
    ApiClient.reset()
    for module in ("ws_counting_source", "ws_broken_source"):
        sys.modules.pop(module, None)


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    return result.stdout


def test_import_external_api_imports_no_source_module() -> None:
    code = (
        "import json, sys, external_api\n"
        "before = sorted(m for m in sys.modules if m.startswith('external_api'))\n"
        "client = external_api.ApiClient()\n"
        "names = client.sources()\n"
        "after = sorted(m for m in sys.modules if m.startswith('external_api.data_sources.'))\n"
        "client.source('Twitter')\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('external_api.data_sources.'))\n"
        "print(json.dumps([before, names, after, loaded]))\n"
    )
    before, names, after, loaded = json.loads(run_python(code))
    assert before == ["external_api"]
    assert {"YahooFinance", "Twitter", "Booking"} <= set(names)
    sources = {"yahoo_finance", "twitter", "booking"}
    assert not {m.rsplit(".", 1)[1] for m in after} & sources
    assert {m.rsplit(".", 1)[1] for m in loaded} & sources == {"twitter"}


def test_lazy_public_names() -> None:
    assert external_api.ApiClient is ApiClient
    assert external_api.get_settings().env in ("dev", "staging", "prod")
    assert issubclass(external_api.ApiError, Exception)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = external_api.nope  # module __getattr__ raises


def test_threads_get_one_instance_and_each_source_loads_once(plugins: Path) -> None:
    barrier = threading.Barrier(16)

    def create_and_load(_: int) -> tuple[int, int]:
        barrier.wait()
        client = ApiClient()
        return id(client), id(client.source("Counting"))

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(create_and_load, range(16)))
    assert len({client for client, _ in results}) == 1
    assert len({source for _, source in results}) == 1
    counting = sys.modules["ws_counting_source"].Counting
    assert counting.instances == 1


def test_entry_point_sources_are_discovered_without_import(plugins: Path) -> None:
    found = discover()
    assert found["Counting"].origin == "entry point ws_plugins"
    assert found["YahooFinance"].origin == "builtin"
    assert "ws_counting_source" not in sys.modules
    assert "ws_broken_source" not in sys.modules


def test_broken_third_party_source_is_reported_not_fatal(
    plugins: Path, upstreams: FakeUpstreams
) -> None:
    client = ApiClient()
    assert "Broken" in client.sources()
    with pytest.raises(SourceUnavailable, match="broken on purpose") as caught:
        client.call_api("Broken/anything", query={})
    assert "entry point ws_plugins" in caught.value.message
    assert caught.value.status == 503
    assert "RuntimeError: broken on purpose" in client.load_errors["Broken"]
    assert "Misnamed" not in client.load_errors  # loaded (and failing) only on first use
    names = [spec.name for spec in client.endpoints()]
    assert "is named 'Counting', expected 'Misnamed'" in client.load_errors["Misnamed"]
    assert "is not a DataSource subclass" in client.load_errors["NotASource"]
    assert "Counting/echo" in names
    assert "YahooFinance/get_stock_chart" in names
    assert not [name for name in names if name.startswith("Broken/")]
    assert "*Unavailable:* data source 'Broken'" in client.describe()
    assert client.call_api("Counting/echo", query={"text": "hi"}) == {"text": "hi"}
    chart = client.call_api("YahooFinance/get_stock_chart", query={"symbol": "AAPL"})
    assert chart["symbol"] == "AAPL"


def test_call_api_from_many_threads(client: ApiClient, upstreams: FakeUpstreams) -> None:
    def call(index: int) -> str:
        symbol = "AAPL" if index % 2 else "^GSPC"
        result = ApiClient().call_api("YahooFinance/get_stock_chart", query={"symbol": symbol})
        return str(result["symbol"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        symbols = list(pool.map(call, range(24)))
    assert symbols.count("AAPL") == 12
    assert symbols.count("^GSPC") == 12
    assert len(upstreams.yahoo.requests) == 24


def test_call_api_raises_api_errors(client: ApiClient, upstreams: FakeUpstreams) -> None:
    with pytest.raises(NotFound):
        client.call_api("YahooFinance/get_stock_chart", query={"symbol": "NOPE"})
    with pytest.raises(InvalidParams):
        client.call_api("YahooFinance/get_stock_chart", query={"symbol": 1})
    with pytest.raises(InvalidParams, match="must be a JSON object"):
        client.call_api("YahooFinance/get_stock_chart", query=["AAPL"])  # type: ignore[arg-type]  # wrong on purpose


async def test_call_api_inside_a_running_loop_points_to_acall_api(client: ApiClient) -> None:
    with pytest.raises(RuntimeError, match=r"use `await ApiClient\(\).acall_api"):
        client.call_api("YahooFinance/get_stock_chart", query={"symbol": "AAPL"})


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("get_stock_chart", "is not an endpoint name: use 'Source/endpoint'"),
        ("Nope/get", "no data source named 'Nope'; known sources: Booking"),
        ("YahooFinance/nope", "its endpoints are: YahooFinance/get_stock_chart"),
        ("/x", "is not an endpoint name"),
    ],
)
async def test_unknown_endpoints_list_what_exists(
    client: ApiClient, name: str, message: str
) -> None:
    with pytest.raises(UnknownEndpoint) as caught:
        await client.acall_api(name)
    assert message in caught.value.message
    assert caught.value.status == 404


def test_endpoints_are_function_specs(client: ApiClient) -> None:
    specs = {spec.name: spec for spec in client.endpoints()}
    assert {
        "YahooFinance/get_stock_chart",
        "YahooFinance/search",
        "Twitter/search_tweets",
        "Twitter/get_user",
        "Booking/search_destination",
        "Booking/search_hotels",
    } <= set(specs)
    schema = specs["Twitter/search_tweets"].parameters_schema()
    assert schema["required"] == ["query"]
    assert schema["properties"]["max_results"]["minimum"] == 10
    assert schema["properties"]["max_results"]["maximum"] == 100
    assert "Posts per page" in schema["properties"]["max_results"]["description"]
    chart = specs["YahooFinance/get_stock_chart"].parameters_schema()
    assert "1wk" in json.dumps(chart["properties"]["interval"])
    assert specs["Booking/search_hotels"].description.startswith("Search hotel offers")
    assert specs["YahooFinance/search"].openai_tool()["function"]["name"] == "YahooFinance__search"


def test_describe_is_markdown_for_agents(client: ApiClient) -> None:
    text = client.describe()
    assert text.startswith("# Data sources\n")
    assert "## YahooFinance" in text
    assert "### `Twitter/get_user`" in text
    assert "| `max_results` | integer | no | Posts per page, 10 to 100. (default `10`) |" in text
    assert "| `symbol` | string | yes |" in text


def test_reset_gives_a_new_instance_and_close_is_idempotent(upstreams: FakeUpstreams) -> None:
    first = ApiClient()
    first.call_api("YahooFinance/search", query={"query": "apple"})
    ApiClient.reset()
    second = ApiClient()
    assert second is not first
    first.close()
    assert second.call_api("YahooFinance/search", query={"query": "apple"})["quotes"]


async def test_sessions_are_per_event_loop(client: ApiClient, upstreams: FakeUpstreams) -> None:
    here = await client.transport.session()
    assert await client.transport.session() is here

    def other_loop() -> bool:
        async def main() -> bool:
            there = await client.transport.session()
            await client.acall_api("YahooFinance/search", {"query": "apple"})
            return there is not here

        return asyncio.run(main())

    assert await asyncio.to_thread(other_loop)
    await client.aclose()
    assert here.closed


def doc_example() -> str:
    """The source example of docs/data-sources.md (the first Python block after its heading)."""
    text = (REPO / "docs" / "data-sources.md").read_text(encoding="utf-8")
    section = text.split("## Adding a source", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


async def test_the_documented_example_source_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiohttp import web

    from external_api.config import reset_settings

    async def current(request: web.Request) -> web.Response:
        if request.headers.get("X-Api-Key") != "weather-key":
            return web.json_response({"error": "bad key"}, status=401)
        return web.json_response({"temp_c": 21.5, "q": request.query["q"]})

    app = web.Application()
    app.router.add_get("/v1/current", current)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    (tmp_path / "weather_plugin.py").write_text(doc_example(), encoding="utf-8")
    write_distribution(tmp_path, "weather_plugin", {"WeatherNow": "weather_plugin:WeatherNow"})
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("WORKSPACE_WEATHER_NOW_BASE_URL", f"http://{host}:{port}")
    monkeypatch.setenv("WORKSPACE_WEATHER_NOW_API_KEY", "weather-key")
    reset_settings()
    ApiClient.reset()
    try:
        client = ApiClient()
        result = await client.acall_api("WeatherNow/current", {"city": "Berlin"})
        assert result == {"city": "Berlin", "temperature_c": 21.5}
        spec = next(spec for spec in client.endpoints() if spec.name == "WeatherNow/current")
        assert spec.parameters_schema()["properties"]["city"]["description"] == (
            "City name, e.g. Berlin."
        )
        await client.aclose()
    finally:
        ApiClient.reset()
        reset_settings()
        sys.modules.pop("weather_plugin", None)
        await runner.cleanup()
