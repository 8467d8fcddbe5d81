"""Release tasks for workspace-toolkit (invoke): ``invoke --list`` is the menu."""

from __future__ import annotations

import re
from pathlib import Path

from invoke.context import Context
from invoke.tasks import task

ROOT = Path(__file__).resolve().parent


def current_version() -> str:
    """Return the version recorded in pyproject.toml's ``[tool.bumpversion]``."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^current_version = "([^"]+)"', text, re.MULTILINE)
    if match is None:
        raise SystemExit("pyproject.toml has no [tool.bumpversion] current_version.")
    return match.group(1)


@task
def version(c: Context) -> None:
    """Print the current version."""
    print(current_version())
