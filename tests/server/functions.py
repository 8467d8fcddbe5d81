"""Functions the server tests expose: typed, documented, each with a known behaviour.

``TOOLS`` is a standalone registry for in-process servers. Importing this module also
registers the same functions in the default registry, so that
``workspace serve --load tests.server.functions`` serves them from a subprocess.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Literal

from pydantic import BaseModel

from external_api.errors import RateLimited, UpstreamError
from external_api.function_utils import FunctionRegistry, default_registry

TOOLS = FunctionRegistry()
SECRET_IN_EXCEPTION = "internal-detail-7f3a"


class Point(BaseModel):
    x: int
    y: int


@TOOLS.expose(name="Test/add")
def add(a: int, b: int = 1) -> int:
    """Add two integers.

    Args:
        a: The first addend.
        b: The second addend.
    """
    return a + b


@TOOLS.expose(name="Test/echo")
async def echo(text: str, times: int = 1, unit: Literal["word", "line"] = "word") -> dict[str, str]:
    """Repeat a text.

    Args:
        text: What to repeat.
        times: How often.
        unit: Joined by spaces (word) or newlines (line).
    """
    separator = " " if unit == "word" else "\n"
    return {"text": separator.join([text] * times)}


@TOOLS.expose(name="Test/sleep")
async def sleep(seconds: float) -> float:
    """Sleep, then return the seconds slept.

    Args:
        seconds: How long to sleep.
    """
    await asyncio.sleep(seconds)
    return seconds


@TOOLS.expose(name="Test/point")
def point(x: int, y: int, when: dt.date | None = None) -> dict[str, object]:
    """Return a pydantic model and a date: results are converted to JSON.

    Args:
        x: Abscissa.
        y: Ordinate.
        when: An optional date.
    """
    return {"point": Point(x=x, y=y), "when": when}


@TOOLS.expose(name="Test/boom")
def boom() -> None:
    """Fail with an unexpected exception."""
    raise RuntimeError(f"unexpected failure with {SECRET_IN_EXCEPTION}")


@TOOLS.expose(name="Test/rate_limited")
async def rate_limited(retry_after: float = 2.5) -> None:
    """Fail like a rate-limited upstream.

    Args:
        retry_after: Seconds the upstream asks to wait.
    """
    raise RateLimited("the upstream is rate limiting; retry later", retry_after=retry_after)


@TOOLS.expose(name="Test/upstream_error")
async def upstream_error() -> None:
    """Fail like an upstream answering 500."""
    raise UpstreamError("the upstream answered HTTP 500", status_code=500, body_excerpt="oops")


for _entry in TOOLS.functions():
    default_registry().register(_entry, replace=True)
