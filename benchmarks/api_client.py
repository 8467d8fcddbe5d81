"""Measure ApiClient against raw aiohttp on the local fake Yahoo Finance and print a table.

``python -m benchmarks.api_client [--calls 100] [--rounds 5]``

1. Concurrency: ``--calls`` concurrent ``acall_api("YahooFinance/search")`` calls to a
   fake upstream that answers each request after 50 ms (goal: <= 0.3 s in total).
2. Overhead: the same calls one after another, through ApiClient and through a bare
   ``aiohttp.ClientSession.get`` + ``json()`` on the same URL, with the upstream
   answering at once (pure client cost) and after 50 ms (goal: ratio <= 1.3x).

The best of ``--rounds`` rounds is reported for each line (least disturbed by noise).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import aiohttp

from external_api.config import reset_settings
from external_api.data_sources.client import ApiClient
from external_api.observability import configure_logging
from tests.fakes import FakeUpstreams

QUERY = {"query": "apple", "quotes_count": 5, "news_count": 1}
RAW_PARAMS = {"q": "apple", "quotesCount": "5", "newsCount": "1"}


async def best_of(rounds: int, run: Callable[[], Awaitable[None]]) -> float:
    """The shortest wall time of ``rounds`` runs of ``run``."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        await run()
        best = min(best, time.perf_counter() - started)
    return best


async def measure(upstreams: FakeUpstreams, calls: int, rounds: int) -> list[tuple[str, float]]:
    """Run every measurement; return (label, seconds) rows."""
    client = ApiClient()
    url = f"{upstreams.yahoo.url}/v1/finance/search"
    rows: list[tuple[str, float]] = []
    async with aiohttp.ClientSession() as raw:

        async def client_call() -> None:
            await client.acall_api("YahooFinance/search", QUERY)

        async def raw_call() -> None:
            async with raw.get(url, params=RAW_PARAMS) as response:
                response.raise_for_status()
                await response.json()

        async def concurrent(call: Callable[[], Awaitable[None]]) -> None:
            await asyncio.gather(*(call() for _ in range(calls)))

        async def sequential(call: Callable[[], Awaitable[None]]) -> None:
            for _ in range(calls):
                await call()

        await concurrent(client_call)  # warm up: pools, imports, specs
        await concurrent(raw_call)
        for latency in (0.05, 0.0):
            upstreams.yahoo.latency = latency
            label = f"{int(latency * 1000)} ms upstream"
            rows.append(
                (
                    f"{calls} concurrent, ApiClient, {label}",
                    await best_of(rounds, lambda: concurrent(client_call)),
                )
            )
            rows.append(
                (
                    f"{calls} concurrent, raw aiohttp, {label}",
                    await best_of(rounds, lambda: concurrent(raw_call)),
                )
            )
            rows.append(
                (
                    f"{calls} sequential, ApiClient, {label}",
                    await best_of(rounds, lambda: sequential(client_call)),
                )
            )
            rows.append(
                (
                    f"{calls} sequential, raw aiohttp, {label}",
                    await best_of(rounds, lambda: sequential(raw_call)),
                )
            )
    await client.aclose()
    return rows


def main() -> None:
    """Parse the arguments, start the fake upstream, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per measurement (100)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the best is shown (5)")
    args = parser.parse_args()
    configure_logging("console", "WARNING")
    with FakeUpstreams() as upstreams:
        os.environ.update(upstreams.env())
        reset_settings()
        rows = asyncio.run(measure(upstreams, args.calls, args.rounds))
    width = max(len(label) for label, _ in rows)
    print(f"{'measurement':<{width}}  {'total s':>8}  {'per call ms':>11}")
    for label, seconds in rows:
        print(f"{label:<{width}}  {seconds:>8.3f}  {seconds / args.calls * 1000:>11.2f}")
    timings = dict(rows)
    for label in ("50 ms upstream", "0 ms upstream"):
        client = timings[f"{args.calls} sequential, ApiClient, {label}"]
        raw = timings[f"{args.calls} sequential, raw aiohttp, {label}"]
        print(f"overhead ApiClient / raw aiohttp, sequential, {label}: {client / raw:.2f}x")
    concurrent = timings[f"{args.calls} concurrent, ApiClient, 50 ms upstream"]
    print(f"{args.calls} concurrent calls at 50 ms: {concurrent:.3f} s (goal <= 0.3 s)")


if __name__ == "__main__":
    main()
