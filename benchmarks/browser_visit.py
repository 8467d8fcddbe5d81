"""Measure a warm ``visit`` against a cold launch + ``visit`` and print a table.

``python -m benchmarks.browser_visit [--rounds 3] [--warm 10] [--settle 0]``

Each round closes the process browser (``reset_browser``), then times the first
``visit`` of a local page (cold: Chromium launch, extension start, page, navigation,
error read-back) and ``--warm`` more visits on the running browser (warm). The page is
served by the browser tests' local site on 127.0.0.1. ``--settle`` sets
``WORKSPACE_BROWSER_SETTLE`` (the wait for late errors, default 0 here so the table shows
the browser's own cost). Goal: warm <= 0.4x cold (median of all rounds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from browser import visit
from browser.global_browser import get_browser, reset_browser
from external_api.observability import configure_logging
from tests.browser.site import Site
from tests.ports import free_port

GOAL = 0.4


def _timed_visit(url: str) -> float:
    start = time.perf_counter()
    result = visit(url)
    elapsed = time.perf_counter() - start
    if result["status"] != 200:
        raise SystemExit(f"unexpected result: {result}")
    return elapsed


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="cold launches to time")
    parser.add_argument("--warm", type=int, default=10, help="warm visits per round")
    parser.add_argument("--settle", type=float, default=0.0, help="WORKSPACE_BROWSER_SETTLE")
    args = parser.parse_args()
    if args.rounds < 1 or args.warm < 1:
        parser.error("--rounds and --warm must be at least 1")
    configure_logging(level="ERROR")
    os.environ["WORKSPACE_BROWSER_SETTLE"] = str(args.settle)
    site = Site(free_port())
    site.start()
    cold: list[float] = []
    warm: list[float] = []
    try:
        for round_number in range(args.rounds):
            reset_browser()
            cold.append(_timed_visit(site.url(f"/hello?name=cold{round_number}")))
            warm += [_timed_visit(site.url(f"/hello?name=w{i}")) for i in range(args.warm)]
        executable = get_browser().settings.resolved_executable()
    finally:
        reset_browser()
        site.stop()
    cold_median, warm_median = statistics.median(cold), statistics.median(warm)
    ratio = warm_median / cold_median
    print(f"browser visit benchmark ({executable}, settle {args.settle:g} s)")
    print(f"{'measure':<28}{'median s':>10}{'best s':>10}{'n':>5}")
    print(f"{'cold: launch + visit':<28}{cold_median:>10.3f}{min(cold):>10.3f}{len(cold):>5}")
    print(f"{'warm: visit':<28}{warm_median:>10.3f}{min(warm):>10.3f}{len(warm):>5}")
    verdict = "ok" if ratio <= GOAL else "MISSED"
    print(f"{'warm / cold':<28}{ratio:>10.3f}   goal <= {GOAL} ({verdict})")


if __name__ == "__main__":
    main()
