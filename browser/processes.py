"""Chromium processes, found and stopped through ``/proc`` (Linux; no psutil).

Every process of one browser launch (browser, zygotes, renderers, utilities and the
crashpad handlers, which Chromium re-parents to init) carries the launch's private
directory in its command line; :func:`pids_with_marker` finds them by it, so a
launch's processes can be verified gone, or killed, without touching anyone else's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "descendants",
    "is_alive",
    "kill_all",
    "pids_with_marker",
    "process_state",
]

_PROC = Path("/proc")


def _pids() -> list[int]:
    return [int(entry.name) for entry in _PROC.iterdir() if entry.name.isdigit()]


def process_state(pid: int) -> str | None:
    """Return the one-letter state of ``pid`` (``R``, ``S``, ``Z``, ...) or ``None`` if gone."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after the last ")".
    return stat.rpartition(")")[2].split()[0]


def is_alive(pid: int) -> bool:
    """Return whether ``pid`` exists and is neither a zombie nor dead."""
    return process_state(pid) not in (None, "Z", "X")


def _parent(pid: int) -> int | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def descendants(pid: int) -> list[int]:
    """Return the PIDs of every process below ``pid`` in the process tree (any state)."""
    children: dict[int, list[int]] = {}
    for child in _pids():
        parent = _parent(child)
        if parent is not None:
            children.setdefault(parent, []).append(child)
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return sorted(found)


def pids_with_marker(marker: str) -> list[int]:
    """Return the PIDs of live (non-zombie) processes whose command line contains ``marker``."""
    needle = marker.encode()
    found = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            cmdline = (_PROC / str(pid) / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline and is_alive(pid):
            found.append(pid)
    return sorted(found)


def kill_all(pids: Iterable[int], grace: float = 2.0) -> None:
    """Send SIGTERM to ``pids``, wait up to ``grace`` seconds, then SIGKILL what is left."""
    remaining = set(pids)
    for pid in remaining:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while remaining and time.monotonic() < deadline:
        remaining = {pid for pid in remaining if is_alive(pid)}
        if remaining:
            time.sleep(0.05)
    for pid in remaining:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
