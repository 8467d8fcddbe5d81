"""Measure the function server against a bare aiohttp handler and print a table.

``python -m benchmarks.function_server [--requests 4000] [--concurrency 32] [--rounds 3]``

Each server runs in its own process (so the load generator does not share its core):

- ``bare aiohttp``: one handler that parses the JSON body and answers ``{"result": a+b}``;
- ``server, async fn``: ``POST /functions/Bench/add`` on the real function server (the
  whole pipeline: request id, metrics, access log, validation, error envelope) with an
  ``async def`` registered function;
- ``server, sync fn``: the same with a plain ``def`` (runs on a worker thread);
- ``server /execute``: the workspace protocol for the async function.

The client keeps ``--concurrency`` connections busy and records every request's
latency; rounds are interleaved across the targets and the best of ``--rounds`` (by
requests/s) is reported, with the server process's CPU time per request (from
``/proc``), which background load disturbs far less than throughput. Goals: the
registered function reaches >= 0.6x the bare handler's requests/s, p99 <= 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import socket
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

BODY = {"a": 2, "b": 40}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _bare_add(request: web.Request) -> web.Response:
    body = await request.json()
    return web.json_response({"result": body["a"] + body["b"]})


def _run_bare(port: int) -> None:
    app = web.Application()
    app.router.add_post("/add", _bare_add)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def _run_server(port: int) -> None:
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115, PTH123  # logs are written, then dropped
    from external_api.function_utils import FunctionRegistry
    from external_api.observability import configure_logging
    from external_api.server import ServerOptions, serve

    configure_logging("json")
    registry = FunctionRegistry()

    @registry.expose(name="Bench/add")
    async def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @registry.expose(name="Bench/add_sync")
    def add_sync(a: int, b: int) -> int:
        """Add two integers (on a worker thread)."""
        return a + b

    options = ServerOptions(port=port, max_concurrency=1024)
    asyncio.run(serve(options, registry))


@contextlib.contextmanager
def _process(target: Any) -> Iterator[tuple[int, int]]:
    port = _free_port()
    process = multiprocessing.get_context("spawn").Process(target=target, args=(port,))
    process.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("the server did not start") from None
            time.sleep(0.05)
    if process.pid is None:  # pragma: no cover - start() always sets it
        raise RuntimeError("the server process did not start")
    try:
        yield port, process.pid
    finally:
        process.terminate()
        process.join(30)


async def _load(url: str, body: Any, requests: int, concurrency: int) -> tuple[float, list[float]]:
    """Run ``requests`` POSTs over ``concurrency`` connections: (wall seconds, latencies)."""
    latencies: list[float] = []
    remaining = requests
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                async with session.post(url, json=body) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url}: HTTP {response.status}")
                latencies.append(time.perf_counter() - started)

        for _ in range(3):  # warm up connections and code paths
            async with session.post(url, json=body) as response:
                await response.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _round(url: str, body: Any, pid: int, args: argparse.Namespace) -> dict[str, float]:
    cpu = _cpu_seconds(pid)
    wall, latencies = asyncio.run(_load(url, body, args.requests, args.concurrency))
    cpu = _cpu_seconds(pid) - cpu
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "rps": len(latencies) / wall,
        "p50": cuts[49] * 1000,
        "p99": cuts[98] * 1000,
        "cpu_us": cpu / len(latencies) * 1e6,
    }


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    protocol = {"request_id": "b", "function_name": "Bench/add", "parameters": BODY}
    with _process(_run_bare) as (bare_port, bare_pid), _process(_run_server) as (port, pid):
        base = f"http://127.0.0.1:{port}"
        targets = [
            ("bare aiohttp", f"http://127.0.0.1:{bare_port}/add", BODY, bare_pid),
            ("server, async fn", f"{base}/functions/Bench/add", BODY, pid),
            ("server, sync fn", f"{base}/functions/Bench/add_sync", BODY, pid),
            ("server /execute", f"{base}/execute", protocol, pid),
        ]
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.rounds):  # interleaved, so background load hits every target
            for name, url, body, server_pid in targets:
                row = _round(url, body, server_pid, args)
                if row["rps"] > best.get(name, {}).get("rps", 0):
                    best[name] = row
    bare = best["bare aiohttp"]
    print(
        f"{args.requests} requests x {args.rounds} rounds, {args.concurrency} connections, "
        f"{os.cpu_count()} CPUs (best round by requests/s; CPU = server process per request)"
    )
    print(f"{'target':<18} {'req/s':>9} {'x bare':>7} {'p50 ms':>8} {'p99 ms':>8} {'CPU us':>8}")
    for name, row in best.items():
        print(
            f"{name:<18} {row['rps']:>9.0f} {row['rps'] / bare['rps']:>7.2f} "
            f"{row['p50']:>8.2f} {row['p99']:>8.2f} {row['cpu_us']:>8.0f}"
        )


if __name__ == "__main__":
    main()
