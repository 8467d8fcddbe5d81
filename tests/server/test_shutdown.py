"""`workspace serve` as a real subprocess: SIGTERM drains, JSON logs, OTLP spans, no secrets."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from external_api.errors import UpstreamError
from external_api.function_utils import FunctionProxy
from tests.fakes import FakeUpstreams

pytestmark = pytest.mark.slow

TOKEN = "sigterm-token-d41d8c"


class Collector:
    """A local OTLP/HTTP trace receiver (protobuf bodies on POST /v1/traces)."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []

    async def receive(self, request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        self.requests.append(message)
        return web.Response(content_type="application/x-protobuf", body=b"")

    def spans(self) -> list[Span]:
        return [
            span
            for message in self.requests
            for resource in message.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Collector, str]]:
    receiver = Collector()
    app = web.Application()
    app.router.add_post("/v1/traces", receiver.receive)
    async with TestServer(app, host="127.0.0.1") as server:
        yield receiver, str(server.make_url("")).rstrip("/")


async def _serve(
    repo_root: Path, env: dict[str, str], *, grace_period: str
) -> asyncio.subprocess.Process:
    """Start `workspace serve` on a free port with the test functions, logs on stderr."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "external_api",
        "serve",
        "--port",
        "0",
        "--grace-period",
        grace_period,
        "--load",
        "tests.server.functions",
        cwd=repo_root,
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )


async def _read_port(process: asyncio.subprocess.Process, lines: list[str]) -> int:
    assert process.stderr is not None
    while True:
        raw = await asyncio.wait_for(process.stderr.readline(), 20)
        if not raw:
            raise AssertionError("server exited early:\n" + "".join(lines))
        lines.append(raw.decode())
        record = json.loads(raw)
        if record["event"] == "serving":
            return int(record["port"])


async def _in_flight(url: str, at_least: int) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as session:
        while True:
            async with session.get(f"{url}/metrics") as response:
                text = await response.text()
            for line in text.splitlines():
                if (
                    line.startswith(
                        'workspace_http_requests_in_progress{method="POST",route="/execute"}'
                    )
                    and float(line.rsplit(" ", 1)[1]) >= at_least
                ):
                    return
            await asyncio.sleep(0.02)


async def test_sigterm_drains_in_flight_calls_and_exits_0(
    repo_root: Path,
    tmp_path: Path,
    collector: tuple[Collector, str],
    upstreams: FakeUpstreams,
) -> None:
    receiver, otlp_url = collector
    env = {
        **os.environ,
        **upstreams.env(),
        "WORKSPACE_SERVER_TOKEN": TOKEN,
        "WORKSPACE_LOG_FORMAT": "json",
        "WORKSPACE_SECRETS_DIR": str(tmp_path),
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    env.pop("FUNC_SERVER_PORT", None)
    process = await _serve(repo_root, env, grace_period="20")
    lines: list[str] = []
    try:
        port = await _read_port(process, lines)
        url = f"http://127.0.0.1:{port}"
        proxy = FunctionProxy(url, token=TOKEN, timeout=30)
        # upstream calls with API keys, failed and successful, all logged
        assert (await proxy.Twitter.get_user.acall(username="NASA"))["username"] == "NASA"
        assert await proxy.Booking.search_destination.acall(query="Paris")
        upstreams.twitter.set_scenario("500")
        with pytest.raises(UpstreamError):
            await proxy.Twitter.get_user.acall(username="NASA")
        calls = [asyncio.create_task(proxy.Test.sleep.acall(seconds=1.5)) for _ in range(3)]
        await _in_flight(url, 3)
        process.send_signal(signal.SIGTERM)
        async with aiohttp.ClientSession() as session:
            while True:
                async with session.get(f"{url}/readyz") as response:
                    if response.status == 503:
                        assert await response.json() == {"status": "draining"}
                        break
                await asyncio.sleep(0.01)
        assert not any(call.done() for call in calls), "readiness must turn 503 before calls end"
        assert await asyncio.gather(*calls) == [1.5, 1.5, 1.5]
        assert await asyncio.wait_for(process.wait(), 20) == 0
        assert process.stderr is not None
        lines += [line.decode() for line in (await process.stderr.read()).splitlines(True)]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    records = [json.loads(line) for line in lines if line.strip()]
    events = [record["event"] for record in records]
    assert events[0] == "serving"
    assert records[0]["functions"] >= 8  # the test functions and every data-source endpoint
    assert "draining" in events
    assert events[-1] == "stopped"
    access = [record for record in records if record["event"] == "request"]
    assert {record["route"] for record in access} >= {"/execute", "/metrics", "/readyz"} - {
        "/readyz"
    }
    assert all(len(record["request_id"]) == 32 for record in access)
    assert all(record["level"] in {"info", "debug", "warning"} for record in records)
    secrets = [TOKEN, upstreams.env()["WORKSPACE_TWITTER_API_KEY"]]
    secrets.append(upstreams.env()["WORKSPACE_BOOKING_API_KEY"])
    assert any(record.get("source") == "Twitter" for record in records)  # upstream calls logged
    for line in lines:
        for secret in secrets:
            assert secret not in line
    # the exit flushed the spans to the OTLP collector: named by route template,
    # with the function's span inside the server span
    spans = {span.name: span for span in receiver.spans()}
    assert spans["POST /execute"].kind == Span.SpanKind.SPAN_KIND_SERVER
    assert "function Test/sleep" in spans
    function_span: Any = spans["function Test/sleep"]
    assert function_span.parent_span_id


async def test_grace_period_expiry_still_exits_0(repo_root: Path, tmp_path: Path) -> None:
    env = {**os.environ, "WORKSPACE_LOG_FORMAT": "json", "WORKSPACE_SECRETS_DIR": str(tmp_path)}
    for name in ("WORKSPACE_SERVER_TOKEN", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        env.pop(name, None)
    process = await _serve(repo_root, env, grace_period="0.5")
    lines: list[str] = []
    try:
        port = await _read_port(process, lines)
        proxy = FunctionProxy(f"http://127.0.0.1:{port}", token="", timeout=30)
        call = asyncio.create_task(proxy.Test.sleep.acall(seconds=30))
        await asyncio.sleep(0.3)
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 15) == 0
        assert process.stderr is not None
        tail = (await process.stderr.read()).decode()
        assert '"abandoned_calls": 1' in tail
        with pytest.raises(Exception):  # noqa: B017, PT011  # the connection is cut: any client error
            await call
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_cli_refuses_public_bind_without_token(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from external_api.cli import main
    from external_api.config import reset_settings

    monkeypatch.delenv("WORKSPACE_SERVER_TOKEN", raising=False)
    monkeypatch.setenv("WORKSPACE_SECRETS_DIR", str(tmp_path))
    reset_settings()
    try:
        assert main(["serve", "--host", "0.0.0.0"]) == 2  # noqa: S104  # the address under test
    finally:
        reset_settings()
    assert "refusing to listen on '0.0.0.0' without a token" in capsys.readouterr().err


def test_workers_need_a_fixed_port(capsys: pytest.CaptureFixture[str]) -> None:
    from external_api.cli import main

    assert main(["serve", "--port", "0", "--workers", "2"]) == 2
    assert "--workers needs a fixed --port" in capsys.readouterr().err
    assert main(["serve", "--workers", "0"]) == 2


_ = subprocess  # the subprocess module is patched by coverage; keep the import explicit
