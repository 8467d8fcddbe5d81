"""Chromium processes, found through ``/proc`` (Linux; no psutil).

Every process of one browser launch (browser, zygotes, renderers, utilities and the
crashpad handlers, which Chromium re-parents to init) carries the launch's private
directory in its command line; :func:`pids_with_marker` finds them by it, so a
launch's processes can be verified gone, or killed, without touching anyone else's.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "browser_pid",
    "descendants",
    "is_alive",
    "pids_with_marker",
    "process_state",
]

_PROC = Path("/proc")


def _pids() -> list[int]:
    return [int(entry.name) for entry in _PROC.iterdir() if entry.name.isdigit()]


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` after the command name (state, ppid, ...), or ``None`` if gone."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after the last ")".
    return stat.rpartition(")")[2].split()


def _argv(pid: int) -> list[bytes]:
    try:
        return (_PROC / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def process_state(pid: int) -> str | None:
    """Return the one-letter state of ``pid`` (``R``, ``S``, ``Z``, ...) or ``None`` if gone."""
    fields = _stat_fields(pid)
    return fields[0] if fields else None


def is_alive(pid: int) -> bool:
    """Return whether ``pid`` exists and is neither a zombie nor dead."""
    return process_state(pid) not in (None, "Z", "X")


def descendants(pid: int) -> list[int]:
    """Return the PIDs of every process below ``pid`` in the process tree (any state)."""
    children: dict[int, list[int]] = {}
    for child in _pids():
        fields = _stat_fields(child)
        if fields:
            children.setdefault(int(fields[1]), []).append(child)
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
    return sorted(
        pid
        for pid in _pids()
        if pid != os.getpid() and needle in b"\0".join(_argv(pid)) and is_alive(pid)
    )


def browser_pid(marker: str) -> int | None:
    """Return the main Chromium process among ``marker``'s: no ``--type=``, not crashpad."""
    for pid in pids_with_marker(marker):
        argv = _argv(pid)
        if argv and b"crashpad" not in argv[0] and not any(a.startswith(b"--type=") for a in argv):
            return pid
    return None
