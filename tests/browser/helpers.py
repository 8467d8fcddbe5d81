"""Small helpers shared by the browser tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


async def poll(
    read: Callable[[], Awaitable[T]], until: Callable[[T], bool], *, deadline: float = 10.0
) -> T:
    """Call ``read`` until ``until(value)`` holds; fail with the last value after ``deadline``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    value = await read()
    while not until(value):
        if loop.time() > end:
            raise AssertionError(f"not reached within {deadline} s; last value: {value!r}")
        await asyncio.sleep(0.05)
        value = await read()
    return value


def of_type(result: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The error records of ``result`` with type ``kind``."""
    return [record for record in result["errors"] if record["type"] == kind]
